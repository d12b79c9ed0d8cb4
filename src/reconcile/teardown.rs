//! Removing a pipeline's resources along the graph backwards, under its
//! deletion policy, never touching what is not its own.

use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::components::{Components, Env, Step};
use super::converge::lock;
use super::graph::{dependents, rank, walk, GRAPH};
use super::outcome::{Action, Teardown, Verb};
use super::Reconciler;
use crate::api::DeletionPolicy;
use crate::aws::tagging::TagIndex;
use crate::aws::{not_ours, Component, ComponentKind, Owner, PipelineCtx, Refs};

struct Removal<'a> {
    ctx: &'a PipelineCtx,
    policy: DeletionPolicy,
    dry_run: bool,
    refs: Refs,
    done: Mutex<Teardown>,
}

impl Removal<'_> {
    async fn remove<C: Component>(&self, c: C) -> (ComponentKind, bool) {
        let desired = C::desired(self.ctx, &self.refs);
        let resource = C::resource_name(&desired);
        if C::KIND.holds_data() && self.policy == DeletionPolicy::Retain {
            self.record(C::KIND, resource, Verb::Retain, None);
            return (C::KIND, true);
        }
        let identity = self.ctx.identity();
        let result = async {
            let Some(observed) = c.observe(&desired).await? else { return Ok(None) };
            if !C::managed(&observed) {
                return Ok(Some((Verb::Retain, Some("not managed by the pipeline".to_string()))));
            }
            let claims = C::claims(&observed);
            // Never delete what is not ours, whatever the deletion policy.
            let foreign: Vec<String> = not_ours(&claims, identity)
                .into_iter()
                .map(|(claim, owner)| match owner {
                    Owner::Pipeline(other) => format!("{} belongs to SalesPipeline {other}", claim.resource),
                    _ => format!("{} is not tagged as this pipeline's", claim.resource),
                })
                .collect();
            if !foreign.is_empty() {
                return Ok(Some((Verb::Retain, Some(foreign.join("; ")))));
            }
            if C::KIND.holds_data() && claims.iter().any(|claim| claim.adopted()) {
                return Ok(Some((Verb::Retain, Some("adopted: an adopted table or bucket is never deleted".into()))));
            }
            if !self.dry_run {
                c.delete(&observed).await?;
            }
            Ok(Some((Verb::Delete, None)))
        }
        .await;
        match result {
            Ok(Some((verb, note))) => {
                self.record(C::KIND, resource, verb, note);
                (C::KIND, true)
            }
            Ok(None) => {
                lock(&self.done).absent.push(resource);
                (C::KIND, true)
            }
            Err(e) => {
                let mut done = lock(&self.done);
                if done.error.as_ref().is_none_or(|(other, _)| rank(C::KIND) > rank(*other)) {
                    done.error = Some((C::KIND, e));
                }
                (C::KIND, false)
            }
        }
    }

    fn record(&self, component: ComponentKind, resource: String, verb: Verb, note: Option<String>) {
        lock(&self.done).actions.push(Action { component, resource, verb, changes: vec![], note });
    }
}

/// The walker's step of a teardown: remove one component.
struct Remove<'r, 'a>(&'r Removal<'a>);

impl<'r> Step<'r> for Remove<'r, '_> {
    type Output = BoxFuture<'r, (ComponentKind, bool)>;

    fn run<C: Component + 'r>(self, c: C) -> Self::Output {
        self.0.remove(c).boxed()
    }
}

/// A look at one component for what it tells of the account (see [`account_refs`]).
struct Learn<'r> {
    ctx: &'r PipelineCtx,
    refs: &'r mut Refs,
}

impl<'r> Step<'r> for Learn<'r> {
    type Output = BoxFuture<'r, ()>;

    fn run<C: Component + 'r>(self, c: C) -> Self::Output {
        async move {
            if self.refs.account.is_some() {
                return;
            }
            if let Ok(Some(o)) = c.observe(&C::desired(self.ctx, self.refs)).await {
                C::publish(&o, self.refs);
            }
        }
        .boxed()
    }
}

/// What the teardown needs to know before it walks: the account and partition, for the ARNs
/// by which the Glue and Athena resources' tags are read. From the first of the table, the
/// stream or the roles that still exists; unknown, those tags read as absent and the resources
/// are kept (never deleted unverified).
async fn account_refs<A: Components>(r: &Reconciler<A>, ctx: &PipelineCtx, env: Env<'_>) -> Refs {
    let mut refs = Refs::default();
    for kind in [ComponentKind::Table, ComponentKind::Stream, ComponentKind::Iam] {
        r.aws.with(kind, env, Learn { ctx, refs: &mut refs }).await;
    }
    refs
}

/// The teardown walk (see [`super::teardown`]).
pub(super) async fn remove<A: Components>(
    r: &Reconciler<A>,
    ctx: &PipelineCtx,
    policy: DeletionPolicy,
    dry_run: bool,
) -> Teardown {
    // Every component reads its own tags: a deletion rests on nothing cached.
    let tags = TagIndex::default();
    let env = Env { tags: &tags, memory: &r.memory };
    let refs = account_refs(r, ctx, env).await;
    let removal = Removal { ctx, policy, dry_run, refs, done: Mutex::new(Teardown::default()) };
    // A component goes once everything that needs it is gone; one that could not be removed
    // keeps what it needs (a pipe that is still there keeps its stream and role).
    let mut kinds = GRAPH.map(|(kind, _)| kind);
    kinds.reverse();
    walk(
        &kinds,
        |kind, removed| dependents(kind).all(|d| removed.get(&d) == Some(&true)),
        |kind| r.aws.with(kind, env, Remove(&removal)),
    )
    .await;
    let mut done = removal.done.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    done.actions.sort_by_key(|a| std::cmp::Reverse(rank(a.component)));
    done
}
