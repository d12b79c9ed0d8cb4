//! Brings AWS to a pipeline's desired state, walking the components in
//! dependency order, and tears it down in reverse. Knows nothing about
//! Kubernetes: the CLI and the controller share it unchanged.

use std::fmt;

use crate::api::conditions::{NewCondition, FALSE, READY, RECONCILING, STALLED, TRUE, UNKNOWN};
use crate::api::{DeletionPolicy, SalesPipelineStatus};
use crate::aws::analytics::Workgroups;
use crate::aws::bucket::Buckets;
use crate::aws::catalog::Catalogs;
use crate::aws::delivery::Deliveries;
use crate::aws::iam::Roles;
use crate::aws::pipe::Pipes;
use crate::aws::stream::Streams;
use crate::aws::table::Tables;
use crate::aws::tagging::TagIndex;
use crate::aws::{not_ours, AwsError, Change, Clients, Component, ComponentKind, Owner, PipelineCtx, Refs};

/// How far a pass may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create and update what differs.
    Apply,
    /// Read only; report what `Apply` would do.
    Plan,
    /// Read only; report state (a paused pipeline).
    Observe,
}

/// What was (or, in a plan, would be) done to one AWS resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub component: ComponentKind,
    pub resource: String,
    pub verb: Verb,
    pub changes: Vec<Change>,
    /// Why, for a conflict or a retained resource (shown after the resource).
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    /// Deleted and created again: an immutable field changed on a resource that holds no data.
    Replace,
    Delete,
    /// Kept: under `deletionPolicy: Retain`, adopted and holding data, or not the pipeline's.
    Retain,
    /// AWS cannot apply these changes in place and the resource holds data: nothing is done.
    Blocked,
    /// An existing, untagged resource taken under management (`spec.adopt`): tagged and converged.
    Adopt,
    /// It exists but is not the pipeline's (untagged, or another pipeline's): nothing is done.
    Conflict,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.verb {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Replace => "replace",
            Verb::Delete => "delete",
            Verb::Retain => "retain",
            Verb::Blocked => "blocked",
            Verb::Adopt => "adopt",
            Verb::Conflict => "conflict",
        };
        write!(f, "{verb:<8} {}", self.resource)?;
        if !self.changes.is_empty() {
            let changes: Vec<String> = self.changes.iter().map(ToString::to_string).collect();
            write!(f, " ({})", changes.join("; "))?;
        }
        if let Some(note) = &self.note {
            write!(f, ": {note}")?;
        }
        Ok(())
    }
}

/// The state of one component after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentState {
    pub kind: ComponentKind,
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

/// Result of a reconcile pass.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub components: Vec<ComponentState>,
    /// Identifiers of the managed resources (conditions are added by [`Outcome::conditions`]).
    pub status: SalesPipelineStatus,
    /// The error that stopped the pass, with the component it happened in.
    pub error: Option<(ComponentKind, AwsError)>,
}

impl Outcome {
    pub fn ready(&self) -> bool {
        self.error.is_none()
            && self.components.len() == ComponentKind::ALL.len()
            && self.components.iter().all(|c| c.ready)
    }

    /// Whether the operator's work for this pass is done: Ready, or paused (`Mode::Observe`) and
    /// observed without an error or a stop that needs a person (README "Paused").
    pub fn settled(&self, mode: Mode) -> bool {
        self.ready() || (mode == Mode::Observe && self.error.is_none() && !self.stalled())
    }

    /// Whether the pass stopped on something retrying will not fix.
    pub fn stalled(&self) -> bool {
        self.error.as_ref().is_some_and(|(_, e)| e.is_permanent())
            || self.actions.iter().any(|a| matches!(a.verb, Verb::Blocked | Verb::Conflict))
    }

    /// The first ownership conflict of the pass: (reason, message).
    pub fn conflict(&self) -> Option<(&str, String)> {
        let a = self.actions.iter().find(|a| a.verb == Verb::Conflict)?;
        let c = self.components.iter().find(|c| c.kind == a.component)?;
        Some((c.reason.as_str(), format!("{}: {}", c.kind, c.message)))
    }

    /// Whether this pass changed anything in AWS.
    pub fn changed(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a.verb, Verb::Create | Verb::Update | Verb::Replace | Verb::Delete | Verb::Adopt))
    }

    /// `Ready`, `Reconciling`, `Stalled` and one condition per component.
    pub fn conditions(&self, mode: Mode) -> Vec<NewCondition> {
        let mut out = Vec::new();
        let first_bad = self.components.iter().find(|c| !c.ready);
        // Paused (SPEC §2, README "Paused"): the operator's work is to change nothing, and it is
        // done once it has looked. Ready=True with reason `Paused` (kstatus Current, Argo CD
        // Suspended); what differs from the spec is in the message and the component conditions.
        // A stop that needs a person (Stalled) or an error that a retry may clear still shows.
        let paused = mode == Mode::Observe && self.settled(mode);
        if paused {
            let message = match first_bad {
                None if self.ready() => {
                    "paused (spec.paused): nothing is changed; every component matches the spec".into()
                }
                None => "paused (spec.paused): nothing is changed".to_string(),
                Some(c) => format!("paused (spec.paused): nothing is changed; {}: {}", c.kind, c.message),
            };
            out.push(NewCondition::new(READY, TRUE, "Paused", message));
        } else if self.ready() {
            out.push(NewCondition::new(READY, TRUE, "Ready", "every component exists and matches the spec"));
        } else if let Some((kind, e)) = &self.error {
            out.push(NewCondition::new(READY, FALSE, "AwsError", format!("{kind}: {e}")));
        } else if let Some(c) = first_bad {
            out.push(NewCondition::new(READY, FALSE, &c.reason, format!("{}: {}", c.kind, c.message)));
        } else {
            out.push(NewCondition::new(READY, UNKNOWN, "Pending", "not reconciled yet"));
        }
        if self.stalled() {
            let (reason, msg) = match (self.conflict(), &self.error) {
                (Some((reason, message)), _) => (reason, message),
                (None, Some((kind, e))) => ("PermanentError", format!("{kind}: {e}")),
                (None, None) => (
                    "ImmutableFieldChanged",
                    self.actions
                        .iter()
                        .filter(|a| a.verb == Verb::Blocked)
                        .map(|a| {
                            format!("{} cannot be changed in place and holds data: {}", a.resource, join(&a.changes))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            };
            out.push(NewCondition::new(STALLED, TRUE, reason, msg));
            out.push(NewCondition::new(RECONCILING, FALSE, "Stalled", "waiting for a spec change"));
        } else {
            out.push(NewCondition::new(STALLED, FALSE, "NotStalled", ""));
            if paused {
                out.push(NewCondition::new(RECONCILING, FALSE, "Paused", ""));
            } else if self.ready() {
                out.push(NewCondition::new(RECONCILING, FALSE, "InSync", ""));
            } else {
                let msg = match (&self.error, first_bad) {
                    (Some((kind, e)), _) => format!("retrying after {kind}: {e}"),
                    (None, Some(c)) => format!("{}: {}", c.kind, c.message),
                    (None, None) => "in progress".to_string(),
                };
                out.push(NewCondition::new(RECONCILING, TRUE, "Progressing", msg));
            }
        }
        for kind in ComponentKind::ALL {
            let c = self.components.iter().find(|c| c.kind == kind);
            out.push(match c {
                Some(c) if c.ready => NewCondition::new(kind.condition_type(), TRUE, &c.reason, c.message.clone()),
                Some(c) => NewCondition::new(kind.condition_type(), FALSE, &c.reason, c.message.clone()),
                None => {
                    NewCondition::new(kind.condition_type(), UNKNOWN, "NotReached", "waiting for an earlier component")
                }
            });
        }
        out
    }
}

fn join(changes: &[Change]) -> String {
    changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What the ownership check allows.
enum Ownership {
    Ours,
    /// Take these untagged resources under management (`spec.adopt`).
    Adopt(Vec<String>),
    /// Not the pipeline's: reported, nothing changed.
    Refused,
}

struct Pass<'a> {
    ctx: &'a PipelineCtx,
    mode: Mode,
    refs: Refs,
    outcome: Outcome,
}

impl Pass<'_> {
    /// Observe → diff → create/update one component. `Ok(false)` stops the walk
    /// (the component is absent in a read-only pass, or not usable yet).
    async fn converge<C: Component>(&mut self, c: &C) -> Result<bool, AwsError> {
        let mut desired = C::desired(self.ctx, &self.refs);
        let resource = C::resource_name(&desired);
        let mut observed = c.observe(&desired).await?;
        let mut verb = None;
        let mut applied = Vec::new();
        let mut created = false;
        if observed.is_none() {
            self.act(C::KIND, &resource, Verb::Create, vec![]);
            if self.mode != Mode::Apply {
                let reason = if self.mode == Mode::Observe { "Paused" } else { "Absent" };
                self.state(C::KIND, false, reason, format!("{resource} does not exist"));
                return Ok(false);
            }
            match c.create(&desired).await {
                Ok(()) => {
                    created = true;
                    verb = Some("Created");
                }
                // It appeared since the observe (someone else's, or read-after-create lag):
                // judged below like any resource that was there before.
                Err(e) if e.is_conflict() => {
                    self.outcome.actions.pop();
                }
                Err(e) => return Err(e),
            }
            observed = c.observe(&desired).await?;
        }
        // Nothing that exists is changed before its ownership is known (SPEC §8); what this pass
        // created is ours whatever tags AWS reports for it yet.
        if let (Some(o), false) = (&observed, created) {
            match self.ownership::<C>(o, &resource) {
                Ownership::Ours => {}
                Ownership::Adopt(claimed) => {
                    desired = C::desired(&self.ctx.adopting(), &self.refs);
                    let note = Some(format!("existing, untagged: {}", claimed.join(", ")));
                    self.act_noted(C::KIND, &resource, Verb::Adopt, C::diff(&desired, o), note);
                    verb = Some("Adopted");
                }
                Ownership::Refused => return Ok(false),
            }
        }
        // After a create too: what the create call cannot set (encryption, backups) is set by an update.
        if let Some(o) = &observed {
            let changes = C::diff(&desired, o);
            let (immutable, mutable): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(|ch| ch.immutable);
            if !immutable.is_empty() && !created {
                if C::KIND.holds_data() || self.mode != Mode::Apply {
                    let v = if C::KIND.holds_data() { Verb::Blocked } else { Verb::Replace };
                    self.act(C::KIND, &resource, v, immutable.clone());
                } else {
                    c.delete(o).await?;
                    c.create(&desired).await?;
                    self.act(C::KIND, &resource, Verb::Replace, immutable.clone());
                    verb = Some("Replaced");
                    observed = c.observe(&desired).await?;
                }
            }
            if !mutable.is_empty() && verb != Some("Replaced") {
                if verb.is_none() {
                    self.act(C::KIND, &resource, Verb::Update, mutable.clone());
                }
                match self.mode {
                    Mode::Apply => {
                        if let Some(o) = &observed {
                            c.update(&desired, o, &mutable).await?;
                        }
                        verb = verb.or(Some("Updated"));
                        applied = mutable;
                        observed = c.observe(&desired).await?;
                    }
                    Mode::Plan | Mode::Observe => {
                        let reason = if self.mode == Mode::Observe { "Paused" } else { "Drifted" };
                        if let Some(o) = &observed {
                            C::publish(o, &mut self.refs);
                            C::report(o, &mut self.outcome.status);
                        }
                        self.state(C::KIND, false, reason, format!("{resource} differs: {}", join(&mutable)));
                        return Ok(true);
                    }
                }
            }
        }
        let Some(o) = observed else {
            return Err(AwsError::new("Observe", None, format!("{resource} was created but is not visible yet"), None));
        };
        C::publish(&o, &mut self.refs);
        C::report(&o, &mut self.outcome.status);
        for claim in C::claims(&o).iter().filter(|claim| claim.adopted()) {
            self.outcome.status.adopted.push(claim.resource.clone());
        }
        let blocked =
            self.outcome.actions.iter().rev().find(|a| a.component == C::KIND && a.verb == Verb::Blocked).cloned();
        match (C::readiness(&o), blocked) {
            (Err(waiting), _) => {
                self.state(C::KIND, false, "NotReady", waiting);
                Ok(false)
            }
            (Ok(()), Some(b)) => {
                self.state(
                    C::KIND,
                    false,
                    "ImmutableFieldChanged",
                    format!("{resource}: {} (cannot be changed in place)", join(&b.changes)),
                );
                Ok(true)
            }
            (Ok(()), None) => {
                let message = match verb {
                    Some(v) if !applied.is_empty() => format!("{v} {resource}: {}", join(&applied)),
                    Some(v) => format!("{v} {resource}"),
                    None => format!("{resource} is in sync"),
                };
                self.state(C::KIND, true, verb.unwrap_or("InSync"), message);
                Ok(true)
            }
        }
    }

    fn act(&mut self, component: ComponentKind, resource: &str, verb: Verb, changes: Vec<Change>) {
        self.act_noted(component, resource, verb, changes, None);
    }

    fn act_noted(
        &mut self,
        component: ComponentKind,
        resource: &str,
        verb: Verb,
        changes: Vec<Change>,
        note: Option<String>,
    ) {
        self.outcome.actions.push(Action { component, resource: resource.to_string(), verb, changes, note });
    }

    /// The ownership check of an existing component: every resource it has must carry this
    /// pipeline's tags, or be untagged and listed in `spec.adopt`. Anything else is refused,
    /// with the component's state and a `Conflict` action saying why.
    fn ownership<C: Component>(&mut self, o: &C::Observed, resource: &str) -> Ownership {
        if !C::managed(o) {
            return Ownership::Ours;
        }
        let identity = self.ctx.identity().to_string();
        let claims = C::claims(o);
        let strangers = not_ours(&claims, &identity);
        if let Some((claim, Owner::Pipeline(other))) = strangers.iter().find(|(_, o)| matches!(o, Owner::Pipeline(_))) {
            let message = format!(
                "{} belongs to SalesPipeline {other}: two pipelines cannot manage one resource; \
                 give this pipeline other names (spec.namePrefix or the component's name)",
                claim.resource
            );
            let note = format!("belongs to SalesPipeline {other}");
            self.refuse(C::KIND, resource, "NameConflict", note, message);
            return Ownership::Refused;
        }
        // What is left is untagged.
        let untagged: Vec<String> = strangers.iter().map(|(c, _)| c.resource.clone()).collect();
        if untagged.is_empty() {
            return Ownership::Ours;
        }
        if self.ctx.adopts(C::KIND) {
            return Ownership::Adopt(untagged);
        }
        let message = format!(
            "{} exists but was not created by this pipeline (no {} tag for {identity}); it is left untouched: \
             list \"{}\" in spec.adopt to take it under management, or choose another name",
            untagged.join(", "),
            crate::aws::TAG_PIPELINE,
            C::KIND
        );
        let note = format!("exists, not created by this pipeline (spec.adopt: [{}] takes it over)", C::KIND);
        self.refuse(C::KIND, resource, "NotOwned", note, message);
        Ownership::Refused
    }

    fn refuse(&mut self, kind: ComponentKind, resource: &str, reason: &str, note: String, message: String) {
        self.act_noted(kind, resource, Verb::Conflict, vec![], Some(note));
        self.state(kind, false, reason, message);
    }

    fn state(&mut self, kind: ComponentKind, ready: bool, reason: &str, message: String) {
        self.outcome.components.push(ComponentState { kind, ready, reason: reason.to_string(), message });
    }

    async fn step<C: Component>(&mut self, c: &C) -> bool {
        match self.converge(c).await {
            Ok(go_on) => go_on,
            Err(e) => {
                let reason = if e.is_permanent() { "PermanentError" } else { "AwsError" };
                self.state(C::KIND, false, reason, e.to_string());
                self.outcome.error = Some((C::KIND, e));
                false
            }
        }
    }
}

/// One pass over every component in dependency order.
pub async fn reconcile(clients: &Clients, ctx: &PipelineCtx, mode: Mode) -> Outcome {
    let mut pass = Pass { ctx, mode, refs: Refs::default(), outcome: Outcome::default() };
    let tags = TagIndex::fetch_or_empty(&clients.tagging, ctx).await;
    let _ = pass.step(&Tables(&clients.dynamodb, &tags)).await
        && pass.step(&Streams(&clients.kinesis, &tags)).await
        && pass.step(&Buckets(&clients.s3, &tags)).await
        && pass.step(&Roles(&clients.iam)).await
        && pass.step(&Pipes(&clients.pipes)).await
        && pass.step(&Deliveries(&clients.firehose, &tags)).await
        && pass.step(&Catalogs(&clients.glue, &tags)).await
        && pass.step(&Workgroups(&clients.athena, &tags, &clients.athena_batch_gets)).await;
    pass.outcome
}

/// Result of a teardown.
#[derive(Clone, Debug, Default)]
pub struct Teardown {
    pub actions: Vec<Action>,
    pub error: Option<(ComponentKind, AwsError)>,
}

impl Teardown {
    pub fn complete(&self) -> bool {
        self.error.is_none()
    }
}

struct Removal<'a> {
    ctx: &'a PipelineCtx,
    policy: DeletionPolicy,
    dry_run: bool,
    refs: Refs,
    done: Teardown,
}

impl Removal<'_> {
    async fn remove<C: Component>(&mut self, c: &C) -> bool {
        let desired = C::desired(self.ctx, &self.refs);
        let resource = C::resource_name(&desired);
        if C::KIND.holds_data() && self.policy == DeletionPolicy::Retain {
            self.record(C::KIND, resource, Verb::Retain, None);
            return true;
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
                true
            }
            Ok(None) => true,
            Err(e) => {
                self.done.error = Some((C::KIND, e));
                false
            }
        }
    }

    fn record(&mut self, component: ComponentKind, resource: String, verb: Verb, note: Option<String>) {
        self.done.actions.push(Action { component, resource, verb, changes: vec![], note });
    }
}

/// What the teardown needs to know before it walks: the account and partition, for the ARNs
/// by which the Glue and Athena resources' tags are read. From the first of the table, the
/// stream or the roles that still exists; unknown, those tags read as absent and the resources
/// are kept (never deleted unverified).
async fn account_refs(clients: &Clients, ctx: &PipelineCtx, tags: &TagIndex) -> Refs {
    async fn learn<C: Component>(c: &C, ctx: &PipelineCtx, refs: &mut Refs) {
        if refs.account.is_some() {
            return;
        }
        if let Ok(Some(o)) = c.observe(&C::desired(ctx, refs)).await {
            C::publish(&o, refs);
        }
    }
    let mut refs = Refs::default();
    learn(&Tables(&clients.dynamodb, tags), ctx, &mut refs).await;
    learn(&Streams(&clients.kinesis, tags), ctx, &mut refs).await;
    learn(&Roles(&clients.iam), ctx, &mut refs).await;
    refs
}

/// Removes the pipeline's resources in reverse dependency order; under
/// `Retain` the table and the bucket (and their data) are kept, and nothing that is not the
/// pipeline's (untagged, another pipeline's, or an adopted table or bucket) is ever deleted.
pub async fn teardown(clients: &Clients, ctx: &PipelineCtx, policy: DeletionPolicy, dry_run: bool) -> Teardown {
    // Every component reads its own tags: a deletion rests on nothing cached.
    let tags = TagIndex::default();
    let refs = account_refs(clients, ctx, &tags).await;
    let mut r = Removal { ctx, policy, dry_run, refs, done: Teardown::default() };
    let _ = r.remove(&Workgroups(&clients.athena, &tags, &clients.athena_batch_gets)).await
        && r.remove(&Catalogs(&clients.glue, &tags)).await
        && r.remove(&Deliveries(&clients.firehose, &tags)).await
        && r.remove(&Pipes(&clients.pipes)).await
        && r.remove(&Roles(&clients.iam)).await
        && r.remove(&Buckets(&clients.s3, &tags)).await
        && r.remove(&Streams(&clients.kinesis, &tags)).await
        && r.remove(&Tables(&clients.dynamodb, &tags)).await;
    r.done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_outcome(ready: &[bool]) -> Outcome {
        let components = ComponentKind::ALL
            .iter()
            .zip(ready)
            .map(|(&kind, &ready)| ComponentState {
                kind,
                ready,
                reason: if ready { "InSync" } else { "Paused" }.into(),
                message: if ready { "in sync".into() } else { "x differs: retentionHours: 24 -> 48".into() },
            })
            .collect();
        Outcome { components, ..Outcome::default() }
    }

    fn status_of<'a>(conditions: &'a [NewCondition], type_: &str) -> (&'static str, &'a str) {
        let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status, c.reason.as_str())
    }

    #[test]
    fn a_paused_pipeline_is_settled_whatever_differs() {
        for ready in [vec![true; 8], vec![true, false], vec![false]] {
            let conditions = paused_outcome(&ready).conditions(Mode::Observe);
            assert_eq!(status_of(&conditions, READY), (TRUE, "Paused"), "{ready:?}");
            assert_eq!(status_of(&conditions, RECONCILING), (FALSE, "Paused"));
            assert_eq!(status_of(&conditions, STALLED), (FALSE, "NotStalled"));
        }
        let drifted = paused_outcome(&[true, false]).conditions(Mode::Observe);
        let ready = drifted.iter().find(|c| c.type_ == READY).unwrap();
        assert!(ready.message.contains("stream: x differs: retentionHours: 24 -> 48"), "{}", ready.message);
        assert_eq!(status_of(&drifted, "StreamReady"), (FALSE, "Paused"));
        assert!(paused_outcome(&[true, false]).settled(Mode::Observe));
        assert!(!paused_outcome(&[true, false]).settled(Mode::Apply));
    }

    #[test]
    fn a_paused_pipeline_that_cannot_be_observed_is_not_settled() {
        let mut transient = paused_outcome(&[true]);
        transient.error =
            Some((ComponentKind::Stream, AwsError::new("DescribeStreamSummary", None, "timeout".into(), Some(503))));
        assert!(!transient.settled(Mode::Observe));
        let conditions = transient.conditions(Mode::Observe);
        assert_eq!(status_of(&conditions, READY).0, FALSE);
        assert_eq!(status_of(&conditions, RECONCILING).0, TRUE);

        let mut permanent = paused_outcome(&[true]);
        permanent.error = Some((ComponentKind::Stream, AwsError::permanent("DescribeStreamSummary", "denied")));
        let conditions = permanent.conditions(Mode::Observe);
        assert_eq!(status_of(&conditions, READY).0, FALSE);
        assert_eq!(status_of(&conditions, STALLED), (TRUE, "PermanentError"));
    }

    #[test]
    fn an_unpaused_pipeline_with_drift_is_not_ready() {
        let conditions = paused_outcome(&[true, false]).conditions(Mode::Apply);
        assert_eq!(status_of(&conditions, READY), (FALSE, "Paused"));
        assert_eq!(status_of(&conditions, RECONCILING).0, TRUE);
    }
}
