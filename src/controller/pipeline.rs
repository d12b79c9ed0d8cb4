//! The SalesPipeline controller: finalizer, reconcile core, status, events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::recorder::{publish, publish_distinct, truncate, warning};
use super::{drift, Context, Target, Untargeted};
use crate::api::conditions::{self, NewCondition, Verdict, FALSE, READY, RECONCILING, STALLED, TRUE, UNKNOWN};
use crate::api::{Drift, Reason, SalesPipeline, SalesPipelineStatus, RECONCILE_REQUESTED_AT};
use crate::aws::calls::for_pipeline;
use crate::aws::{AwsError, ComponentKind, PipelineCtx};
use crate::reconcile::{self, Action as AwsAction, Mode, Verb};

/// Finalizer on every SalesPipeline: AWS resources are torn down before the object goes.
pub const FINALIZER: &str = "sales-operator.dev/cleanup";
/// Field manager of everything the operator writes.
pub const MANAGER: &str = "sales-operator";
/// How soon a pipeline still converging (e.g. a table CREATING) is looked at again.
const CONVERGING_REQUEUE: Duration = Duration::from_secs(10);

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{component}: {source}")]
    Aws { component: ComponentKind, source: AwsError },
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
    #[error("object has no {0}")]
    MissingKey(&'static str),
    /// The pipeline's AWS identity cannot be used now (STS did not answer, or deletion is
    /// blocked by it); retried with backoff.
    #[error("{0}")]
    Identity(String),
    /// A pass AWS kept waiting past [`PASS_BOUND`]: abandoned, tried again with backoff.
    #[error("{0}")]
    NoAnswer(String),
}

/// The longest one reconcile pass may wait on AWS: a hung endpoint must not hold a worker
/// forever (each call is bounded too, by the SDK's 2-minute operation timeout).
pub const PASS_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

impl Error {
    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Aws { source, .. } if source.is_permanent() => "aws_permanent",
            Error::Aws { .. } => "aws_transient",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.metric_label()
                }
                _ => "finalizer",
            },
            Error::MissingKey(_) => "missing_key",
            Error::NoAnswer(_) => "aws_no_answer",
            Error::Identity(_) => "identity",
        }
    }
}

/// Entry point of the controller for one SalesPipeline.
pub async fn reconcile(sp: Arc<SalesPipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = sp.namespace().ok_or(Error::MissingKey("metadata.namespace"))?;
    let span = tracing::info_span!("reconcile", namespace = %namespace, name = %sp.name_any());
    async move {
        let started = Instant::now();
        let live = sp.meta().deletion_timestamp.is_none() && sp.finalizers().iter().any(|f| f == FINALIZER);
        // An AWS change event for it asks for a look even when nothing changed in Kubernetes.
        let event = ctx.events.has_pending(&ObjectRef::from(sp.as_ref()));
        if let Some(left) = ctx
            .echoes
            .own(&ObjectRef::from(sp.as_ref()), sp.meta().resource_version.as_deref(), sp.meta().generation)
            .filter(|_| live && !event)
        {
            // The watch event of our own status write: nothing changed since that pass.
            ctx.metrics.reconciled("SalesPipeline", "unchanged", started.elapsed());
            return Ok(Action::requeue(left));
        }
        let api: Api<SalesPipeline> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = finalizer(&api, FINALIZER, sp, |event| async {
            match event {
                Finalizer::Apply(sp) => apply(&sp, &ctx, &api).await,
                Finalizer::Cleanup(sp) => cleanup(&sp, &ctx, &api).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        let outcome = if result.is_ok() { "ok" } else { "error" };
        ctx.metrics.reconciled("SalesPipeline", outcome, started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// Retries a failed pipeline with its own exponential backoff; others are not held up.
pub fn error_policy(sp: Arc<SalesPipeline>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed("SalesPipeline", err.metric_label());
    let delay = ctx.backoff(ObjectRef::from(sp.as_ref()));
    tracing::warn!(namespace = sp.namespace().unwrap_or_default(), name = %sp.name_any(), error = %err, retry_in_seconds = delay.as_secs_f64(), "reconcile failed");
    Action::requeue(delay)
}

async fn apply(sp: &SalesPipeline, ctx: &Context, api: &Api<SalesPipeline>) -> Result<Action, Error> {
    let previous = sp.status.clone().unwrap_or_default();
    let generation = sp.metadata.generation;
    let event = ctx.events.has_pending(&ObjectRef::from(sp));
    if previous.observed_generation == generation && requested(sp).is_none() && !event {
        if let Some(stalled) = conditions::find(&previous.conditions, STALLED).filter(|c| c.status == TRUE) {
            // A permanent error on this generation: no AWS call until the spec changes, except one
            // look per resync period (what AWS refused may have been fixed outside Kubernetes,
            // e.g. an IAM role that had not propagated yet).
            let since = jiff::Timestamp::now().duration_since(stalled.last_transition_time.0);
            let since = std::time::Duration::try_from(since).unwrap_or_default();
            if since < ctx.resync() {
                return Ok(Action::requeue(ctx.resync() - since));
            }
        }
    }
    let stop = |reason: Reason, message: String| stall(ctx, api, sp, &previous, reason, message);
    let target = match ctx.target(sp).await {
        Ok(target) => target,
        Err(Untargeted::Kube(e)) => return Err(Error::Kube(e)),
        Err(Untargeted::Refused(refusal)) => return stop(refusal.reason(), refusal.to_string()).await,
        Err(Untargeted::Config(e)) => {
            let status = SalesPipelineStatus { observed_generation: generation, ..previous.clone() };
            write_status(api, sp, status, &stalled(Reason::InvalidConfiguration, e.to_string())).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(message) = account_changed(&previous, &target) {
        return stop(Reason::AccountChanged, message).await;
    }
    if let Some((other, shared)) = ctx.name_conflict(sp, &target).await {
        // Another pipeline in the cluster claimed these names first: not a single AWS call.
        let message = format!(
            "SalesPipeline {other} already uses {}: two pipelines cannot manage one resource; \
             give this one other names (spec.namePrefix or the component's name)",
            shared.join(", ")
        );
        return stop(Reason::NameConflict, message).await;
    }
    let reconciler = match ctx.reconciler(&target).await {
        Ok(r) => r,
        Err(e) if target.identity.is_some() && e.is_permanent() => {
            return stop(Reason::IdentityRefused, e.to_string()).await;
        }
        Err(e) if target.identity.is_some() => return Err(Error::Identity(e.to_string())),
        Err(e) => {
            let status = SalesPipelineStatus { observed_generation: generation, ..previous.clone() };
            write_status(api, sp, status, &stalled(Reason::InvalidConfiguration, e.to_string())).await?;
            return Ok(Action::await_change());
        }
    };
    let namespace = sp.namespace().ok_or(Error::MissingKey("metadata.namespace"))?;
    let mut pctx = PipelineCtx::new(&namespace, &sp.name_any(), &sp.spec, &reconciler.aws.region);
    if let Some(prefix) = &ctx.name_prefix {
        let outside = crate::aws::operator_policy::names_outside_prefix(&pctx.names, prefix);
        if !outside.is_empty() {
            // The operator's IAM policy would deny them half way: not a single AWS call.
            let message = format!(
                "{} do not start with {prefix}, the name prefix the operator's IAM policy is narrowed to \
                 (--name-prefix): give this pipeline a spec.namePrefix, and any name it sets, starting with it",
                outside.join(", ")
            );
            return stop(Reason::OutsideNamePrefix, message).await;
        }
    }
    if let Some(account) = &target.account {
        ctx.events.manages(sp, account, &target.region, &pctx.names);
    }
    pctx.sweep = !sp.settled();
    let in_sync = drift::applied(sp);
    let mode = drift::mode(sp);
    let account = target.account.as_deref();
    // What AWS said changed since the last pass: it explains the drift this pass finds.
    let changes = ctx.events.take_pending(&ObjectRef::from(sp));
    let pass = for_pipeline(&namespace, &sp.name_any(), account, reconcile::reconcile(&reconciler, &pctx, mode));
    let outcome = within(PASS_BOUND, &reconciler.aws.calls, pass).await?;
    let drifts = report_drift(ctx, sp, &previous, &outcome, mode, in_sync, &changes).await;
    if outcome.ready() || !drifts.records.is_empty() {
        ctx.events.settled(&ObjectRef::from(sp));
    }

    for action in outcome.actions.iter().filter(|_| mode == Mode::Apply) {
        publish(ctx, sp, action_event(action)).await;
    }
    if let Some((component, e)) = &outcome.error {
        let reason = if e.is_permanent() { "PermanentAwsError" } else { "AwsError" };
        publish(ctx, sp, warning(&format!("{reason}{}", component.title()), "Reconcile", format!("{component}: {e}")))
            .await;
    }
    let applied = if mode == Mode::Apply && outcome.ready() { generation } else { previous.applied_generation };
    let status = SalesPipelineStatus {
        observed_generation: generation,
        applied_generation: applied,
        account: target.account.clone(),
        region: Some(target.region.clone()),
        identity: target.identity.as_ref().map(|(name, _)| name.clone()),
        drift: drift::history(&previous.drift, drifts.records),
        ..outcome.status.clone()
    };
    let computed = match mode {
        Mode::Plan => drift::report_conditions(&outcome, &drifts.found),
        _ => {
            let mut computed = outcome.conditions(mode);
            computed.extend(drift::repaired_condition(&previous, outcome.ready()));
            computed
        }
    };
    let written = write_status(api, sp, status, &computed).await?;
    let ready = computed.iter().find(|c| c.type_ == READY).map_or(UNKNOWN, |c| c.status);
    ctx.record_ready(ObjectRef::from(sp), Some((ready, target.account.clone())));

    let next = match outcome.error {
        Some((component, source)) if !source.is_permanent() => return Err(Error::Aws { component, source }),
        _ if outcome.stalled() || mode == Mode::Plan => ctx.resync(),
        _ if outcome.ready() || mode == Mode::Observe => {
            ctx.succeeded(&ObjectRef::from(sp));
            ctx.resync()
        }
        _ => outcome.wait.unwrap_or(CONVERGING_REQUEUE),
    };
    ctx.echoes.expect(ObjectRef::from(sp), written, generation, next);
    Ok(Action::requeue(next))
}

/// The drifts of a pass and their new records.
struct Drifts {
    found: Vec<drift::Found>,
    records: Vec<Drift>,
}

/// Reports what drifted since the pipeline was last in sync (or, under `Report`, what differs and
/// was not reported yet): a `DriftDetected` event each, explained by `changes` when an AWS change
/// event names it, and `DriftRepaired` once this pass brought it back.
async fn report_drift(
    ctx: &Context,
    sp: &SalesPipeline,
    previous: &SalesPipelineStatus,
    outcome: &reconcile::Outcome,
    mode: Mode,
    in_sync: bool,
    changes: &[crate::events::ChangeEvent],
) -> Drifts {
    let found = drift::found(outcome, mode, in_sync);
    let now = jiff::Timestamp::now().to_string();
    let mut records = Vec::new();
    for f in found.iter().filter(|f| mode != Mode::Plan || !drift::reported(previous, f)) {
        let repaired = mode == Mode::Apply && outcome.error.as_ref().is_none_or(|(kind, _)| *kind != f.component);
        let record = drift::record(f, changes, repaired, &now);
        tracing::warn!(component = %f.component, resource = %f.resource, found_by = %record.found_by, actor = record.actor.as_deref().unwrap_or("unknown"), "drift: {}", drift::diff(&f.changes));
        publish_distinct(ctx, sp, warning("DriftDetected", "Reconcile", drift::note(&record))).await;
        if repaired {
            let note = format!("{}: {} brought back to the spec: {}", f.component, f.resource, drift::diff(&f.changes));
            let event = Event {
                type_: EventType::Normal,
                reason: "DriftRepaired".into(),
                note: Some(truncate(&note)),
                action: "Reconcile".into(),
                secondary: None,
            };
            publish(ctx, sp, event).await;
        }
        records.push(record);
    }
    Drifts { found, records }
}

/// `pass` if it ends within `bound`; else [`Error::NoAnswer`] naming the call AWS left unanswered.
async fn within<T>(
    bound: std::time::Duration,
    calls: &crate::aws::CallLog,
    pass: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout(bound, pass).await.map_err(|_| {
        let pending = calls
            .slowest_in_flight()
            .map(|(call, waited)| format!(" ({call} unanswered for {} s)", waited.as_secs()))
            .unwrap_or_default();
        Error::NoAnswer(format!(
            "AWS kept this reconcile waiting for {} s{pending}: abandoned, tried again",
            bound.as_secs()
        ))
    })
}

/// Stalls `sp` for `reason` found before any AWS call of this pass: a Warning event, Ready=False
/// and Stalled=True with `message`, the rest of the status kept; looked at again each resync.
async fn stall(
    ctx: &Context,
    api: &Api<SalesPipeline>,
    sp: &SalesPipeline,
    previous: &SalesPipelineStatus,
    reason: Reason,
    message: String,
) -> Result<Action, Error> {
    publish(ctx, sp, warning(reason.as_str(), "Reconcile", message.clone())).await;
    let status = SalesPipelineStatus { observed_generation: sp.metadata.generation, ..previous.clone() };
    write_status(api, sp, status, &stalled(reason, message)).await?;
    ctx.record_ready(ObjectRef::from(sp), Some((FALSE, previous.account.clone())));
    Ok(Action::requeue(ctx.resync()))
}

/// Whether the status shows AWS resources of the pipeline (its table, stream, ... was seen).
fn built(status: &SalesPipelineStatus) -> bool {
    status.table.is_some()
        || status.stream.is_some()
        || status.bucket.is_some()
        || status.roles.is_some()
        || status.pipe.is_some()
        || status.delivery.is_some()
        || status.catalog.is_some()
        || status.analytics.is_some()
}

/// Why `target` may not act for a pipeline whose resources are in another account, if so.
fn account_changed(previous: &SalesPipelineStatus, target: &Target) -> Option<String> {
    let (Some(before), Some(now)) = (previous.account.as_deref(), target.account.as_deref()) else {
        return None;
    };
    if before == now || !built(previous) {
        return None;
    }
    let through = match &target.identity {
        Some((name, _)) => format!("AwsIdentity {name} acts"),
        None => "the operator's own credentials act".to_string(),
    };
    Some(format!(
        "the pipeline's resources are in AWS account {before}, but {through} in account {now}: a pipeline does not \
         move between accounts; set spec.identityRef (or the identity's roleArn) back to account {before}, or \
         delete the pipeline and create it again"
    ))
}

/// Ready=False and Stalled=True for `reason`, found before any AWS call: nothing to retry
/// until the spec changes.
fn stalled(reason: Reason, message: String) -> Vec<NewCondition> {
    Verdict::stalled(reason, message.clone(), reason, message, "a spec change").conditions()
}

/// The value of `sp`'s reconcile request, if it has not been handled yet.
fn requested(sp: &SalesPipeline) -> Option<&str> {
    let handled = sp.status.as_ref().and_then(|s| s.last_handled_reconcile_at.as_deref());
    sp.annotations().get(RECONCILE_REQUESTED_AT).map(String::as_str).filter(|value| Some(*value) != handled)
}

async fn cleanup(sp: &SalesPipeline, ctx: &Context, api: &Api<SalesPipeline>) -> Result<Action, Error> {
    let previous = sp.status.clone().unwrap_or_default();
    let blocked = |why: String| blocked_by_identity(ctx, api, sp, why);
    let target = match ctx.target(sp).await {
        Ok(target) => target,
        Err(Untargeted::Kube(e)) => return Err(Error::Kube(e)),
        // Refused before it built anything (its status shows no resource): nothing to remove.
        Err(_) if !built(&previous) => return forget(ctx, sp),
        Err(e) => return blocked(e.to_string()).await,
    };
    if let Some(why) = account_changed(&previous, &target) {
        return blocked(why).await;
    }
    let reconciler = match ctx.reconciler(&target).await {
        Ok(r) => r,
        Err(_) if !built(&previous) => return forget(ctx, sp),
        Err(e) => return blocked(e.to_string()).await,
    };
    let namespace = sp.namespace().ok_or(Error::MissingKey("metadata.namespace"))?;
    let pctx = PipelineCtx::new(&namespace, &sp.name_any(), &sp.spec, &reconciler.aws.region);
    let teardown = reconcile::teardown(&reconciler, &pctx, sp.spec.deletion_policy, false);
    let done = for_pipeline(&namespace, &sp.name_any(), target.account.as_deref(), teardown).await;
    for action in &done.actions {
        publish(ctx, sp, action_event(action)).await;
    }
    if let Some((component, source)) = done.error {
        if source.is_busy() {
            // AWS is still creating or changing it (a Firehose stream CREATING cannot be
            // deleted yet): a wait at the AWS pace, not a failure to back off from.
            let pace = reconciler.timing.pace();
            let message = format!(
                "deleting: {component}: AWS is not done with it yet ({source}); deleting again in {} s",
                pace.as_secs()
            );
            let computed = Verdict::working(Reason::Deleting, message.clone(), Reason::Deleting, message).conditions();
            write_status(api, sp, previous, &computed).await?;
            return Ok(Action::requeue(pace));
        }
        deletion_blocked(ctx, api, sp, &format!("{component}: {source}")).await?;
        return Err(Error::Aws { component, source });
    }
    forget(ctx, sp)
}

/// The finalizer stays: a Warning event and the Ready condition say why.
async fn deletion_blocked(ctx: &Context, api: &Api<SalesPipeline>, sp: &SalesPipeline, why: &str) -> Result<(), Error> {
    let message = format!("deletion is blocked: {why}; the finalizer stays until it succeeds");
    publish(ctx, sp, warning("DeletionFailed", "Delete", message.clone())).await;
    let previous = sp.status.clone().unwrap_or_default();
    let computed = Verdict::working(Reason::DeletionFailed, message.clone(), Reason::Deleting, message).conditions();
    write_status(api, sp, previous, &computed).await?;
    Ok(())
}

/// Deletion waits for the pipeline's identity (or account) to be usable again.
async fn blocked_by_identity(
    ctx: &Context,
    api: &Api<SalesPipeline>,
    sp: &SalesPipeline,
    why: String,
) -> Result<Action, Error> {
    deletion_blocked(ctx, api, sp, &why).await?;
    Err(Error::Identity(why))
}

/// Done with a deleted pipeline: the finalizer goes.
fn forget(ctx: &Context, sp: &SalesPipeline) -> Result<Action, Error> {
    ctx.record_ready(ObjectRef::from(sp), None);
    ctx.events.forget(&ObjectRef::from(sp));
    ctx.echoes.forget(&ObjectRef::from(sp));
    Ok(Action::await_change())
}

/// Writes the status through the status subresource with server-side apply,
/// only when it differs from what is there (a steady state writes nothing).
/// `computed` conditions replace those of the same type; others are kept.
async fn write_status(
    api: &Api<SalesPipeline>,
    sp: &SalesPipeline,
    mut status: SalesPipelineStatus,
    computed: &[NewCondition],
) -> Result<Option<String>, Error> {
    // The data health's fields are its own (field manager data_health::MANAGER): never written here.
    let previous = sp.status.clone().map(super::data_health::without).unwrap_or_default();
    status.last_handled_reconcile_at =
        sp.annotations().get(RECONCILE_REQUESTED_AT).cloned().or(previous.last_handled_reconcile_at.clone());
    let merged = conditions::merge(&previous.conditions, computed, status.observed_generation, jiff::Timestamp::now());
    let mut all: Vec<Condition> =
        previous.conditions.iter().filter(|c| !computed.iter().any(|n| n.type_ == c.type_)).cloned().collect();
    all.extend(merged);
    all.sort_by(|a, b| condition_rank(&a.type_).cmp(&condition_rank(&b.type_)).then(a.type_.cmp(&b.type_)));
    status.conditions = all;
    Ok(super::apply_status(api, sp, Some(&previous), &super::data_health::without(status)).await?)
}

fn condition_rank(type_: &str) -> u8 {
    match type_ {
        READY => 0,
        RECONCILING => 1,
        STALLED => 2,
        _ => 3,
    }
}

fn action_event(a: &AwsAction) -> Event {
    let (type_, reason) = match a.verb {
        Verb::Create => (EventType::Normal, "Created"),
        Verb::Update => (EventType::Normal, "Updated"),
        Verb::Replace => (EventType::Normal, "Replaced"),
        Verb::Delete => (EventType::Normal, "Deleted"),
        Verb::Retain => (EventType::Normal, "Retained"),
        Verb::Blocked => (EventType::Warning, "UpdateBlocked"),
        Verb::Adopt => (EventType::Normal, "Adopted"),
        Verb::Conflict => (EventType::Warning, "Conflict"),
        Verb::Recover => (EventType::Warning, "Recovered"),
        Verb::Missing => (EventType::Warning, "Missing"),
    };
    let action = if matches!(a.verb, Verb::Delete | Verb::Retain) { "Delete" } else { "Reconcile" };
    // One reason per component and verb, for `kubectl get events --field-selector reason=...`.
    let reason = format!("{reason}{}", a.component.title());
    Event { type_, reason, note: Some(truncate(&a.to_string())), action: action.into(), secondary: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pass_aws_never_answers_is_abandoned_at_the_bound_and_one_that_ends_is_kept() {
        let calls = crate::aws::CallLog::default();
        let bound = std::time::Duration::from_millis(50);
        let hung = within(bound, &calls, std::future::pending::<()>()).await;
        match hung {
            Err(Error::NoAnswer(message)) => assert!(message.contains("abandoned, tried again"), "{message}"),
            other => panic!("expected NoAnswer, got {other:?}"),
        }
        assert_eq!(within(bound, &calls, async { 7 }).await.ok(), Some(7));
    }
}
