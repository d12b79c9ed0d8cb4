//! The reconciler against AWS as it behaves (SPEC §9), through the AWS-behaviour layer
//! (docs/aws-behaviour.md "Timing and refusals"): asynchronous creation, IAM propagation,
//! failed states, throttling and quotas. Each test sets the layer's rule for its own names.

use crate::support::apply;
crate::support::moto::own_server!();

use std::time::Duration;

use serde_json::json;

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::aws::{ComponentKind, PipelineCtx};
use sales_operator::reconcile::Reconciler;
use sales_operator::reconcile::{Outcome, Verb};

use apply::converge_observed;
use moto::{reconciler, REGION};

/// A pipeline whose names no other test's names contain (rules match substrings), with the
/// layer's `rule` for them.
fn pipeline(rule: serde_json::Value) -> PipelineCtx {
    let name = format!("{}x", moto::unique("t"));
    moto::behave(&name, rule);
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: shop\nspec: {{}}\n"
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    PipelineCtx::new("shop", &name, &p.spec, REGION)
}

/// Every pass of an apply, until Ready or stalled.
async fn apply(c: &Reconciler, ctx: &PipelineCtx) -> Vec<Outcome> {
    let mut passes = Vec::new();
    converge_observed(c, ctx, |o| passes.push(o.clone())).await;
    passes
}

fn actions(passes: &[Outcome]) -> Vec<(ComponentKind, Verb)> {
    passes.iter().flat_map(|o| o.actions.iter().map(|a| (a.component, a.verb.clone()))).collect()
}

fn reasons(passes: &[Outcome], kind: ComponentKind) -> Vec<String> {
    passes.iter().filter_map(|o| o.components.iter().find(|c| c.kind == kind)).map(|c| c.reason.to_string()).collect()
}

/// AWS's windows as issue #13 measured them, in tenths: every resource CREATING for a while,
/// backups refused for a while after the table, a role unusable for a while.
fn like_aws() -> serde_json::Value {
    json!({
        "table_creating": 0.8, "table_backups_unavailable": 2.5, "stream_creating": 2,
        "pipe_creating": 4.5, "delivery_creating": 4, "iam_propagation": 1,
        "read_after_create": 0.3,
    })
}

#[tokio::test]
async fn a_new_pipeline_gets_ready_without_ever_stalling_and_with_point_in_time_recovery_on() {
    let c = reconciler().await;
    let ctx = pipeline(like_aws());
    let passes = apply(&c, &ctx).await;
    let last = passes.last().unwrap();
    assert!(last.ready(), "{:#?}", last.components);
    for (i, pass) in passes.iter().enumerate() {
        assert!(!pass.stalled(), "pass {i} stalled: {:#?}", pass.components);
        assert!(pass.error.is_none(), "pass {i}: {:?}", pass.error);
    }
    assert!(passes.len() > 2, "AWS's windows take more than one pass: {}", passes.len());
    // Backups were refused a while ("retry later") and are on now, read back from AWS.
    let backups = c.aws.dynamodb.describe_continuous_backups().table_name(&ctx.names.table).send().await.unwrap();
    let pitr = backups.continuous_backups_description.unwrap().point_in_time_recovery_description.unwrap();
    assert_eq!(pitr.point_in_time_recovery_status.unwrap().as_str(), "ENABLED");
    assert!(reasons(&passes, ComponentKind::Table).iter().any(|r| r == "InProgress"), "{passes:#?}");
    // One create per component, no recovery needed.
    // Every action with its note, so a failure says which resource AWS failed and why.
    let every: Vec<_> = passes.iter().flat_map(|o| &o.actions).map(|a| (a.component, &a.verb, &a.note)).collect();
    let creates = actions(&passes).into_iter().filter(|(_, v)| *v == Verb::Create).count();
    assert_eq!(creates, 8, "{every:#?}");
    assert!(!actions(&passes).iter().any(|(_, v)| *v == Verb::Recover), "{every:#?}");
}

#[tokio::test]
async fn a_pipe_that_ends_create_failed_is_recreated_and_the_pipeline_gets_ready() {
    let c = reconciler().await;
    let ctx = pipeline(json!({"pipe_creating": 1, "pipe_create_failures": 1}));
    let passes = apply(&c, &ctx).await;
    assert!(passes.last().unwrap().ready(), "{:#?}", passes.last().unwrap().components);
    let recovered: Vec<_> = passes.iter().flat_map(|o| &o.actions).filter(|a| a.verb == Verb::Recover).collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].component, ComponentKind::Pipe);
    let note = recovered[0].note.clone().unwrap_or_default();
    assert!(note.contains("CREATE_FAILED") && note.contains("recovery 1 of 3"), "{note}");
    assert!(passes.iter().all(|o| !o.stalled()));
}

#[tokio::test]
async fn a_pipe_that_ends_start_failed_is_started_again() {
    let c = reconciler().await;
    let ctx = pipeline(json!({"pipe_creating": 1, "pipe_start_failures": 1}));
    let passes = apply(&c, &ctx).await;
    assert!(passes.last().unwrap().ready(), "{:#?}", passes.last().unwrap().components);
    let recovered: Vec<_> = passes.iter().flat_map(|o| &o.actions).filter(|a| a.verb == Verb::Recover).collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].note.as_deref().unwrap_or_default().contains("started again"), "{recovered:?}");
    let creates = actions(&passes).into_iter().filter(|a| *a == (ComponentKind::Pipe, Verb::Create)).count();
    assert_eq!(creates, 1, "a restart, not a new pipe");
}

#[tokio::test]
async fn a_firehose_stream_that_ends_creating_failed_is_recreated() {
    let c = reconciler().await;
    let ctx = pipeline(json!({"delivery_creating": 1, "delivery_create_failures": 1}));
    let passes = apply(&c, &ctx).await;
    assert!(passes.last().unwrap().ready(), "{:#?}", passes.last().unwrap().components);
    let creates = actions(&passes).into_iter().filter(|a| *a == (ComponentKind::Delivery, Verb::Create)).count();
    assert_eq!(creates, 2, "{:?}", actions(&passes));
    assert!(actions(&passes).contains(&(ComponentKind::Delivery, Verb::Recover)));
}

#[tokio::test]
async fn a_resource_that_keeps_failing_stalls_after_three_recoveries_with_aws_reason() {
    let c = reconciler().await;
    let ctx = pipeline(json!({"pipe_creating": 0.5, "pipe_create_failures": 10}));
    let passes = apply(&c, &ctx).await;
    let last = passes.last().unwrap();
    assert!(last.stalled(), "{:#?}", last.components);
    let (kind, e) = last.error.clone().unwrap();
    assert_eq!(kind, ComponentKind::Pipe);
    assert!(e.to_string().contains("CREATE_FAILED again after 3 recoveries"), "{e}");
    let recoveries = actions(&passes).into_iter().filter(|a| *a == (ComponentKind::Pipe, Verb::Recover)).count();
    assert_eq!(recoveries, 3);
}

#[tokio::test]
async fn a_firehose_refusal_of_a_fresh_role_is_retried_until_the_role_propagates() {
    let mut c = reconciler().await;
    // No settling: Firehose is asked at once and refuses the role IAM has not propagated.
    c.timing.iam_settle = Some(Duration::ZERO);
    let ctx = pipeline(json!({"iam_propagation": 3}));
    let passes = apply(&c, &ctx).await;
    let last = passes.last().unwrap();
    assert!(last.ready(), "{:#?}", last.components);
    assert!(reasons(&passes, ComponentKind::Delivery).iter().any(|r| r == "WaitingForIam"), "{passes:#?}");
    assert!(passes.iter().all(|o| !o.stalled() && o.error.is_none()), "{passes:#?}");
}

#[tokio::test]
async fn a_role_still_refused_after_the_propagation_window_is_reported_not_retried_forever() {
    let mut c = reconciler().await;
    c.timing.iam_settle = Some(Duration::ZERO);
    // Shorter than the pipe's three recoveries take, so the Firehose refusal is what stalls.
    c.timing.iam_window = Some(Duration::from_secs(1));
    let ctx = pipeline(json!({"iam_propagation": 600}));
    let passes = apply(&c, &ctx).await;
    let last = passes.last().unwrap();
    assert!(last.stalled(), "{:#?}", last.components);
    let failed = last.components.iter().find(|s| s.kind == ComponentKind::Delivery).unwrap();
    assert_eq!(failed.reason, "PermanentError", "{}", failed.message);
    assert!(failed.message.contains("still refused") && failed.message.contains("trust policy"), "{}", failed.message);
    assert!(passes.len() < 20, "retried {} passes", passes.len());
}

#[tokio::test]
async fn a_firehose_quota_used_up_is_reported_with_the_quota() {
    let c = reconciler().await;
    // One Firehose stream in the region at least (tests share it), then a quota of one.
    let first = pipeline(json!({}));
    assert!(apply(&c, &first).await.last().unwrap().ready());
    let ctx = pipeline(json!({"delivery_limit": 1}));
    let passes = apply(&c, &ctx).await;
    let last = passes.last().unwrap();
    assert!(last.stalled(), "{:#?}", last.components);
    let (kind, e) = last.error.clone().unwrap();
    assert_eq!(kind, ComponentKind::Delivery);
    assert!(e.is_permanent() && e.to_string().contains("consumed your limit"), "{e}");
    // Not retried by the SDK either (its standard retry takes LimitExceededException for throttling).
    let counts = c.aws.calls.counts();
    let create = &counts[&("Firehose".to_string(), "CreateDeliveryStream".to_string())];
    assert_eq!(create.retries, 0, "{create:?}");
}

#[tokio::test]
async fn throttling_bursts_are_absorbed() {
    let c = reconciler().await;
    let ctx = pipeline(json!({"throttle_every": 3, "table_creating": 0.5, "stream_creating": 0.5}));
    let passes = apply(&c, &ctx).await;
    assert!(passes.last().unwrap().ready(), "{:#?}", passes.last().unwrap().components);
    assert!(c.aws.calls.counts().values().map(|n| n.retries).sum::<u64>() > 5);
}

#[tokio::test]
async fn plan_lists_every_resource_apply_will_create() {
    let c = reconciler().await;
    let ctx = pipeline(json!({}));
    let plan = sales_operator::reconcile::reconcile(&c, &ctx, sales_operator::reconcile::Mode::Plan).await;
    let creates: Vec<ComponentKind> =
        plan.actions.iter().filter(|a| a.verb == Verb::Create).map(|a| a.component).collect();
    assert_eq!(creates, ComponentKind::ALL.to_vec(), "{:?}", plan.actions);
    assert_eq!(c.aws.calls.mutations(), 0);
}
