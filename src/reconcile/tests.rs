//! The reconciler's state machine against scripted fakes ([`super::fake`]):
//! waits, IAM propagation, recovery, the ownership gate and crash-resume,
//! each in milliseconds and without AWS.

use std::time::{Duration, Instant};

use super::fake::{Fakes, Script, World, ROLE};
use super::*;
use crate::api::conditions::{STALLED, TRUE};
use crate::api::manifest::parse_pipeline;
use crate::aws::{ComponentKind, TAG_PIPELINE};
use ComponentKind::{Analytics, Iam, Pipe, Stream, Table};

fn ctx(value: &str) -> PipelineCtx {
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata: {{name: sales, namespace: shop}}\n\
         spec: {{tags: {{value: \"{value}\"}}}}\n"
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    PipelineCtx::new("shop", "sales", &p.spec, "eu-west-1")
}

fn reconciler(world: &World) -> Reconciler<Fakes> {
    let timing = Timing {
        iam_settle: Some(Duration::ZERO),
        iam_window: Some(Duration::from_millis(300)),
        pace: Some(Duration::from_millis(1)),
    };
    Reconciler::new(Fakes(world.clone()), timing)
}

/// Passes until Ready or stalled (at most 2 s); every pass's outcome.
async fn converge(r: &Reconciler<Fakes>, ctx: &PipelineCtx) -> Vec<Outcome> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut passes = Vec::new();
    loop {
        let outcome = reconcile(r, ctx, Mode::Apply).await;
        let done = outcome.ready() || outcome.stalled() || Instant::now() > deadline;
        let wait = outcome.wait.unwrap_or(Duration::from_millis(1));
        passes.push(outcome);
        if done {
            return passes;
        }
        tokio::time::sleep(wait).await;
    }
}

fn state_of(outcome: &Outcome, kind: ComponentKind) -> Option<&ComponentState> {
    outcome.components.iter().find(|c| c.kind == kind)
}

#[tokio::test]
async fn a_new_pipeline_is_created_once_and_ready() {
    let world = World::default();
    let passes = converge(&reconciler(&world), &ctx("a")).await;
    assert!(passes.last().unwrap().ready(), "{:?}", passes.last());
    let state = world.state();
    for kind in ComponentKind::ALL {
        assert_eq!(state.count(kind, "create"), 1, "{kind}");
        assert_eq!(state.resources[&kind].tags.get(TAG_PIPELINE).map(String::as_str), Some("shop/sales"));
    }
}

#[tokio::test]
async fn a_creating_resource_is_waited_for_and_never_changed() {
    let world = World::default();
    world.script(Stream, Script { creating_observations: 6, ..Script::default() });
    let r = reconciler(&world);
    let first = reconcile(&r, &ctx("a"), Mode::Apply).await;
    assert_eq!(state_of(&first, Stream).map(|c| c.reason.as_str()), Some("InProgress"), "{first:?}");
    // The spec changes while AWS is still creating the stream.
    let passes = converge(&r, &ctx("b")).await;
    assert!(passes.last().unwrap().ready(), "{:?}", passes.last());
    assert!(passes.iter().any(|p| state_of(p, Stream).is_some_and(|c| c.reason == "InProgress")));
    let state = world.state();
    let updates: Vec<_> = state.calls.iter().filter(|c| c.kind == Stream && c.op == "update").collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(updates.iter().all(|c| c.state == Some("ACTIVE")), "changed while creating: {updates:?}");
    assert_eq!(state.resources[&Stream].value, "b");
    // What needs the stream to be ready waited for it too.
    let pipe_create = state.calls.iter().position(|c| c.kind == Pipe && c.op == "create").unwrap();
    let stream_active = state.calls.iter().position(|c| c.kind == Stream && c.state == Some("ACTIVE")).unwrap();
    assert!(stream_active < pipe_create, "the pipe was created before its stream was ACTIVE");
}

#[tokio::test]
async fn a_refusal_inside_the_iam_window_is_a_wait_and_after_it_a_stall_naming_the_role() {
    let world = World::default();
    world.script(Pipe, Script { iam_refusals: u32::MAX, ..Script::default() });
    let passes = converge(&reconciler(&world), &ctx("a")).await;
    let (last, waiting) = passes.split_last().unwrap();
    let refused: Vec<_> = waiting.iter().filter_map(|p| state_of(p, Pipe)).collect();
    assert!(!refused.is_empty() && refused.iter().all(|c| c.reason == "WaitingForIam"), "{refused:?}");
    assert!(waiting.iter().all(|p| !p.stalled()), "stalled inside the window");
    assert!(last.stalled(), "{last:?}");
    let stalled = last.conditions(Mode::Apply).into_iter().find(|c| c.type_ == STALLED).unwrap();
    assert_eq!(stalled.status, TRUE);
    assert!(stalled.message.contains(ROLE), "{}", stalled.message);
    assert!(stalled.message.contains("check its trust policy"), "{}", stalled.message);
}

#[tokio::test]
async fn a_failed_resource_is_recovered_at_most_three_times() {
    let world = World::default();
    world.script(Pipe, Script { failed_creates: u32::MAX, ..Script::default() });
    let passes = converge(&reconciler(&world), &ctx("a")).await;
    let last = passes.last().unwrap();
    assert!(last.stalled(), "{last:?}");
    let (_, e) = last.error.as_ref().unwrap();
    assert!(e.message.contains("after 3 recoveries") && e.message.contains("scripted failure"), "{e}");
    let recoveries = passes.iter().flat_map(|p| &p.actions).filter(|a| a.verb == Verb::Recover).count();
    assert_eq!(recoveries, MAX_RECOVERIES as usize);
    assert_eq!(world.state().count(Pipe, "delete"), MAX_RECOVERIES as usize);
}

#[tokio::test]
async fn a_failure_that_clears_is_recovered_and_ready() {
    let world = World::default();
    world.script(Pipe, Script { failed_creates: 2, ..Script::default() });
    let passes = converge(&reconciler(&world), &ctx("a")).await;
    assert!(passes.last().unwrap().ready(), "{:?}", passes.last());
    assert_eq!(world.state().count(Pipe, "create"), 3);
}

#[tokio::test]
async fn nothing_is_created_before_every_component_started_with_it_passed_its_ownership_check() {
    let world = World::default();
    // The table exists and is another pipeline's; stream and bucket start together with it.
    let mut theirs = ctx("a").tags;
    theirs.insert(TAG_PIPELINE.into(), "other/sales".into());
    world.state().resources.insert(
        Table,
        super::fake::Resource {
            value: "a".into(),
            state: "ACTIVE",
            creating_left: 0,
            tags: theirs,
            created_at: std::time::SystemTime::now(),
            streamless_left: 0,
        },
    );
    let outcome = reconcile(&reconciler(&world), &ctx("a"), Mode::Apply).await;
    assert!(outcome.stalled());
    assert_eq!(state_of(&outcome, Table).map(|c| c.reason.as_str()), Some("NameConflict"));
    let state = world.state();
    let mutating: Vec<_> = state.calls.iter().filter(|c| c.op != "observe").collect();
    assert!(mutating.is_empty(), "{mutating:?}");
}

#[tokio::test]
async fn a_crash_after_any_call_is_completed_by_the_next_pass() {
    let clean = World::default();
    converge(&reconciler(&clean), &ctx("a")).await;
    let calls = clean.state().calls.iter().filter(|c| c.op != "observe").count();
    assert!(calls >= ComponentKind::ALL.len());
    for crash_after in 0..calls {
        let world = World::default();
        world.script(Stream, Script { creating_observations: 2, ..Script::default() });
        world.state().crash_after = Some(crash_after);
        let crashed = converge(&reconciler(&world), &ctx("a")).await;
        assert!(!crashed.last().unwrap().ready(), "crash after {crash_after} calls did not stop the pass");
        world.state().crash_after = None;
        // A new process: nothing remembered, only what AWS has.
        let passes = converge(&reconciler(&world), &ctx("a")).await;
        assert!(passes.last().unwrap().ready(), "crash after {crash_after}: {:?}", passes.last());
        let state = world.state();
        for kind in ComponentKind::ALL {
            let created = state.calls.iter().filter(|c| c.kind == kind && c.op == "create").count();
            assert_eq!(created, 1, "crash after {crash_after}: {kind} created {created} times");
        }
    }
}

#[tokio::test]
async fn the_roles_wait_for_what_their_policies_name_and_the_pipe_for_the_roles() {
    let world = World::default();
    converge(&reconciler(&world), &ctx("a")).await;
    let state = world.state();
    let first = |kind, op| state.calls.iter().position(|c| c.kind == kind && c.op == op).unwrap();
    assert!(first(Table, "create") < first(Iam, "create"));
    assert!(first(Stream, "create") < first(Iam, "create"));
    assert!(first(Iam, "create") < first(Pipe, "create"));
}

#[tokio::test]
async fn a_teardown_under_retain_keeps_the_data_and_removes_the_rest_in_reverse() {
    let world = World::default();
    let r = reconciler(&world);
    converge(&r, &ctx("a")).await;
    let done = teardown(&r, &ctx("a"), crate::api::DeletionPolicy::Retain, false).await;
    assert!(done.complete());
    let state = world.state();
    let kept: Vec<_> = state.resources.keys().copied().collect();
    assert_eq!(kept, vec![Table, ComponentKind::Bucket]);
    let deletes: Vec<_> = state.calls.iter().filter(|c| c.op == "delete").map(|c| c.kind).collect();
    let pipe = deletes.iter().position(|k| *k == Pipe).unwrap();
    let iam = deletes.iter().position(|k| *k == Iam).unwrap();
    let stream = deletes.iter().position(|k| *k == Stream).unwrap();
    assert!(pipe < iam && pipe < stream, "{deletes:?}");
}

#[tokio::test]
async fn what_names_an_arn_not_known_yet_waits_for_it_and_never_sends_the_placeholder() {
    let world = World::default();
    // The table exists a while before it shows a stream ARN (stream turned off outside, or a
    // table adopted while AWS creates it): the roles and the pipe name that ARN.
    world.script(Table, Script { streamless_observations: 3, ..Script::default() });
    let passes = converge(&reconciler(&world), &ctx("a")).await;
    assert!(passes.last().unwrap().ready(), "{:?}", passes.last());
    let first = &passes[0];
    assert_eq!(
        first.waiting.get(&Iam).map(String::as_str),
        Some("waiting for the table's stream ARN (the table has no DynamoDB stream yet)"),
        "{first:?}"
    );
    // The analytics' graph entry does not declare the ARN its (fake) desired state names: the
    // backstop holds it back, not reported as an error.
    let analytics = state_of(first, Analytics).expect("the analytics are reached in the first pass");
    assert_eq!(analytics.reason.as_str(), "NotReached", "{analytics:?}");
    assert!(analytics.message.contains("not known yet"), "{analytics:?}");
    assert!(passes.iter().all(|p| !p.stalled() && p.error.is_none()), "{passes:?}");
    let state = world.state();
    for kind in [Iam, Pipe, Analytics] {
        let ops: Vec<_> = state.calls.iter().filter(|c| c.kind == kind && c.op != "observe").collect();
        assert_eq!(ops.len(), 1, "{kind}: one create, once the ARN was known: {ops:?}");
    }
}
