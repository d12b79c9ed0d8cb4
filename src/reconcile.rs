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
use crate::aws::{AwsError, Change, Clients, Component, ComponentKind, PipelineCtx, Refs};

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    /// Deleted and created again: an immutable field changed on a resource that holds no data.
    Replace,
    Delete,
    /// Kept: under `deletionPolicy: Retain`, or not owned by the pipeline.
    Retain,
    /// AWS cannot apply these changes in place and the resource holds data: nothing is done.
    Blocked,
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
        };
        write!(f, "{verb:<8} {}", self.resource)?;
        if !self.changes.is_empty() {
            let changes: Vec<String> = self.changes.iter().map(ToString::to_string).collect();
            write!(f, " ({})", changes.join("; "))?;
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

    /// Whether the pass stopped on something retrying will not fix.
    pub fn stalled(&self) -> bool {
        self.error.as_ref().is_some_and(|(_, e)| e.is_permanent())
            || self.actions.iter().any(|a| a.verb == Verb::Blocked)
    }

    /// Whether this pass changed anything in AWS.
    pub fn changed(&self) -> bool {
        self.actions.iter().any(|a| matches!(a.verb, Verb::Create | Verb::Update | Verb::Replace | Verb::Delete))
    }

    /// `Ready`, `Reconciling`, `Stalled` and one condition per component.
    pub fn conditions(&self, mode: Mode) -> Vec<NewCondition> {
        let mut out = Vec::new();
        let first_bad = self.components.iter().find(|c| !c.ready);
        if self.ready() {
            out.push(NewCondition::new(READY, TRUE, "Ready", "every component exists and matches the spec"));
        } else if let Some((kind, e)) = &self.error {
            out.push(NewCondition::new(READY, FALSE, "AwsError", format!("{kind}: {e}")));
        } else if let Some(c) = first_bad {
            out.push(NewCondition::new(READY, FALSE, &c.reason, format!("{}: {}", c.kind, c.message)));
        } else {
            out.push(NewCondition::new(READY, UNKNOWN, "Pending", "not reconciled yet"));
        }
        if self.stalled() {
            let msg = match &self.error {
                Some((kind, e)) => format!("{kind}: {e}"),
                None => self
                    .actions
                    .iter()
                    .filter(|a| a.verb == Verb::Blocked)
                    .map(|a| format!("{} cannot be changed in place and holds data: {}", a.resource, join(&a.changes)))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let reason = if self.error.is_some() { "PermanentError" } else { "ImmutableFieldChanged" };
            out.push(NewCondition::new(STALLED, TRUE, reason, msg));
            out.push(NewCondition::new(RECONCILING, FALSE, "Stalled", "waiting for a spec change"));
        } else {
            out.push(NewCondition::new(STALLED, FALSE, "NotStalled", ""));
            if self.ready() || mode == Mode::Observe {
                let reason = if mode == Mode::Observe { "Paused" } else { "InSync" };
                out.push(NewCondition::new(RECONCILING, FALSE, reason, ""));
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
        let desired = C::desired(self.ctx, &self.refs);
        let resource = C::resource_name(&desired);
        let mut observed = c.observe(&desired).await?;
        let mut verb = None;
        let mut applied = Vec::new();
        if observed.is_none() {
            self.outcome.actions.push(Action {
                component: C::KIND,
                resource: resource.clone(),
                verb: Verb::Create,
                changes: vec![],
            });
            if self.mode != Mode::Apply {
                let reason = if self.mode == Mode::Observe { "Paused" } else { "Absent" };
                self.state(C::KIND, false, reason, format!("{resource} does not exist"));
                return Ok(false);
            }
            c.create(&desired).await?;
            verb = Some("Created");
            observed = c.observe(&desired).await?;
        }
        // After a create too: what the create call cannot set (encryption, backups) is set by an update.
        if let Some(o) = &observed {
            let changes = C::diff(&desired, o);
            let (immutable, mutable): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(|ch| ch.immutable);
            if !immutable.is_empty() && verb.is_none() {
                if C::KIND.holds_data() || self.mode != Mode::Apply {
                    let v = if C::KIND.holds_data() { Verb::Blocked } else { Verb::Replace };
                    self.outcome.actions.push(Action {
                        component: C::KIND,
                        resource: resource.clone(),
                        verb: v,
                        changes: immutable.clone(),
                    });
                } else {
                    c.delete(o).await?;
                    c.create(&desired).await?;
                    self.outcome.actions.push(Action {
                        component: C::KIND,
                        resource: resource.clone(),
                        verb: Verb::Replace,
                        changes: immutable.clone(),
                    });
                    verb = Some("Replaced");
                    observed = c.observe(&desired).await?;
                }
            }
            if !mutable.is_empty() && verb != Some("Replaced") {
                if verb.is_none() {
                    self.outcome.actions.push(Action {
                        component: C::KIND,
                        resource: resource.clone(),
                        verb: Verb::Update,
                        changes: mutable.clone(),
                    });
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
    done: Teardown,
}

impl Removal<'_> {
    async fn remove<C: Component>(&mut self, c: &C) -> bool {
        let desired = C::desired(self.ctx, &Refs::default());
        let resource = C::resource_name(&desired);
        if C::KIND.holds_data() && self.policy == DeletionPolicy::Retain {
            self.done.actions.push(Action { component: C::KIND, resource, verb: Verb::Retain, changes: vec![] });
            return true;
        }
        let result = async {
            let Some(observed) = c.observe(&desired).await? else { return Ok(None) };
            if !C::owned(&observed) {
                return Ok(Some(Verb::Retain));
            }
            if !self.dry_run {
                c.delete(&observed).await?;
            }
            Ok(Some(Verb::Delete))
        }
        .await;
        match result {
            Ok(Some(verb)) => {
                self.done.actions.push(Action { component: C::KIND, resource, verb, changes: vec![] });
                true
            }
            Ok(None) => true,
            Err(e) => {
                self.done.error = Some((C::KIND, e));
                false
            }
        }
    }
}

/// Removes the pipeline's resources in reverse dependency order; under
/// `Retain` the table and the bucket (and their data) are kept.
pub async fn teardown(clients: &Clients, ctx: &PipelineCtx, policy: DeletionPolicy, dry_run: bool) -> Teardown {
    let mut r = Removal { ctx, policy, dry_run, done: Teardown::default() };
    // Deleting compares no tags: every component reads its own.
    let tags = TagIndex::default();
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
