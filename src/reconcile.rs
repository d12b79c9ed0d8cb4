//! Brings AWS to a pipeline's desired state, walking the components in
//! dependency order, and tears it down in reverse. Knows nothing about
//! Kubernetes: the CLI and the controller share it unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::api::conditions::{NewCondition, FALSE, READY, RECONCILING, STALLED, TRUE, UNKNOWN};
use crate::api::{DeletionPolicy, SalesPipelineStatus};
use crate::aws::analytics::Workgroups;
use crate::aws::bucket::Buckets;
use crate::aws::catalog::Catalogs;
use crate::aws::delivery::Deliveries;
use crate::aws::error::ErrorKind;
use crate::aws::iam::Roles;
use crate::aws::pipe::Pipes;
use crate::aws::stream::Streams;
use crate::aws::table::Tables;
use crate::aws::tagging::TagIndex;
use crate::aws::{
    not_ours, AwsError, Change, Clients, Component, ComponentKind, Failure, Owner, PipelineCtx, Recovery, Refs,
};

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
    /// In a failed state AWS does not leave by itself (`CREATE_FAILED`): deleted to be created
    /// again, or restarted. Only what holds no data (a pipe, a Firehose stream).
    Recover,
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
            Verb::Recover => "recover",
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
    /// How soon to look again while AWS is still at work (a resource CREATING, a role
    /// propagating, a refusal to retry); `None` when nothing is awaited.
    pub wait: Option<Duration>,
    /// The components this pass did not reach, with what they wait for.
    pub waiting: BTreeMap<ComponentKind, String>,
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
        self.actions.iter().any(|a| {
            matches!(a.verb, Verb::Create | Verb::Update | Verb::Replace | Verb::Delete | Verb::Adopt | Verb::Recover)
        })
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
                    let message = self.waiting.get(&kind).map_or("waiting for an earlier component", String::as_str);
                    NewCondition::new(kind.condition_type(), UNKNOWN, "NotReached", message)
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

/// Evaluates `$body` with `$c` bound to the component of `$kind`, built on `$clients` and `$tags`:
/// the one place a [`ComponentKind`] becomes its module's [`Component`].
macro_rules! with_component {
    ($kind:expr, $clients:expr, $tags:expr, |$c:ident| $body:expr) => {{
        let (clients, tags): (&Clients, &TagIndex) = ($clients, $tags);
        match $kind {
            Table => {
                let $c = Tables(&clients.dynamodb, tags);
                $body
            }
            Stream => {
                let $c = Streams(&clients.kinesis, tags);
                $body
            }
            Bucket => {
                let $c = Buckets(&clients.s3, tags);
                $body
            }
            Iam => {
                let $c = Roles(&clients.iam, &clients.memory.role_writes);
                $body
            }
            Pipe => {
                let $c = Pipes(&clients.pipes);
                $body
            }
            Delivery => {
                let $c = Deliveries(&clients.firehose, tags);
                $body
            }
            Catalog => {
                let $c = Catalogs(&clients.glue, tags);
                $body
            }
            Analytics => {
                let $c = Workgroups(&clients.athena, tags, &clients.athena_batch_gets);
                $body
            }
        }
    }};
}

/// Starts `start(kind)` for each of `kinds` as soon as `ready(kind, finished)` holds, all that
/// are ready at once, until nothing more can start: what each started component returned (the
/// ones missing never started). The walk of [`reconcile`] and [`teardown`] alike.
async fn walk<'f, T>(
    kinds: &[ComponentKind],
    mut ready: impl FnMut(ComponentKind, &BTreeMap<ComponentKind, T>) -> bool,
    mut start: impl FnMut(ComponentKind) -> BoxFuture<'f, (ComponentKind, T)>,
) -> BTreeMap<ComponentKind, T> {
    let mut finished = BTreeMap::new();
    let mut started = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        for &kind in kinds {
            if !started.contains(&kind) && ready(kind, &finished) {
                started.push(kind);
                running.push(start(kind));
            }
        }
        match running.next().await {
            Some((kind, result)) => {
                finished.insert(kind, result);
            }
            None => return finished,
        }
    }
}

/// What a component needs of another before it is reconciled: the edges of [`GRAPH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Its identifiers (ARNs) are known: it exists, even while AWS is still creating it.
    Exists(ComponentKind),
    /// It is usable (ACTIVE, RUNNING).
    Ready(ComponentKind),
    /// The roles it is given have had [`Memory::iam_settle`](crate::aws::Memory) to propagate
    /// through IAM since they last changed (a service refuses, or fails on, a younger role).
    RolesSettled,
}

use ComponentKind::{Analytics, Bucket, Catalog, Delivery, Iam, Pipe, Stream, Table};
use Need::{Exists, Ready, RolesSettled};

/// The dependency graph as data: every component with what it needs. [`reconcile`] starts each
/// component as soon as its needs are met, concurrently (the roles' policies name the table's
/// stream, the Kinesis stream and the bucket, which AWS gives at once, while it is still creating
/// them); [`teardown`] removes a component once everything that needs it is gone.
pub const GRAPH: [(ComponentKind, &[Need]); 8] = [
    (Table, &[]),
    (Stream, &[]),
    (Bucket, &[]),
    (Iam, &[Exists(Table), Exists(Stream), Exists(Bucket)]),
    (Pipe, &[Ready(Table), Ready(Stream), Ready(Iam), RolesSettled]),
    (Delivery, &[Ready(Stream), Ready(Bucket), Ready(Iam), RolesSettled]),
    (Catalog, &[Exists(Table), Exists(Bucket), Ready(Iam), RolesSettled]),
    (Analytics, &[Exists(Table), Exists(Bucket)]),
];

/// How often a pipeline waiting on AWS (a resource CREATING, a refusal to retry) is looked at
/// again: ACK's pace for a resource that is not synced yet.
pub const WAIT_PACE: Duration = Duration::from_secs(5);
/// How long after a role changed a refusal to assume it is taken for IAM propagation and retried.
pub const IAM_PROPAGATION_WINDOW: Duration = Duration::from_secs(120);
/// How long after a role changed the services that assume it are first asked to, by default.
pub const IAM_SETTLE: Duration = Duration::from_secs(10);
/// Recoveries of a failed resource (for one desired state) before the pipeline stalls.
pub const MAX_RECOVERIES: u32 = 3;

/// Where a component got to in a pass, as its dependents see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Usable (or, read-only, as usable as it will get): dependents may go on.
    Ready,
    /// It exists and its identifiers are known, but it is not usable yet.
    Exists,
    /// Absent in a read-only pass: shown as a create, and dependents are planned too.
    Planned,
    /// Not usable this pass (an error, a conflict, not visible yet).
    Stopped,
}

impl Progress {
    fn meets(self, need: Need) -> bool {
        match need {
            Exists(_) => matches!(self, Progress::Ready | Progress::Exists | Progress::Planned),
            Ready(_) => matches!(self, Progress::Ready | Progress::Planned),
            RolesSettled => true,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Pass<'a> {
    clients: &'a Clients,
    ctx: &'a PipelineCtx,
    mode: Mode,
    refs: Mutex<Refs>,
    outcome: Mutex<Outcome>,
    gate: Gate,
}

/// Opens once every component started so far has been checked for ownership (or has stopped).
#[derive(Default)]
struct Gate {
    pending: Mutex<usize>,
    changed: tokio::sync::Notify,
}

impl Gate {
    async fn open(&self) {
        loop {
            let notified = self.changed.notified();
            if *lock(&self.pending) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A component's place at the [`Gate`]: counted until it is checked, or dropped.
struct Checked<'g> {
    gate: &'g Gate,
    pending: bool,
}

impl<'g> Checked<'g> {
    fn new(gate: &'g Gate) -> Self {
        *lock(&gate.pending) += 1;
        Self { gate, pending: true }
    }

    fn done(&mut self) {
        if std::mem::take(&mut self.pending) {
            *lock(&self.gate.pending) -= 1;
            self.gate.changed.notify_waiters();
        }
    }
}

impl Drop for Checked<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

impl Pass<'_> {
    /// Observe → diff → create/update one component.
    async fn converge<C: Component>(&self, c: &C, checked: &mut Checked<'_>) -> Result<Progress, AwsError> {
        let refs = lock(&self.refs).clone();
        let mut desired = C::desired(self.ctx, &refs);
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
                return Ok(Progress::Planned);
            }
            // Nothing is created while a component started with it may still turn out not to be
            // this pipeline's: a pipeline whose names are taken creates nothing at all.
            checked.done();
            self.gate.open().await;
            if let Some(other) = self.refused() {
                self.retract(C::KIND, Verb::Create);
                let message = format!("{resource} is not created while {other} is not this pipeline's");
                self.state(C::KIND, false, "NotCreated", message);
                return Ok(Progress::Stopped);
            }
            match c.create(&desired).await {
                Ok(()) => {
                    created = true;
                    verb = Some("Created");
                }
                // It appeared since the observe (someone else's, or read-after-create lag):
                // judged below like any resource that was there before.
                Err(e) if e.is_conflict() => self.retract(C::KIND, Verb::Create),
                Err(e) => return Err(e),
            }
            observed = c.observe(&desired).await?;
            if observed.is_none() {
                // AWS is eventually consistent: a Describe right after a Create may not find it.
                let message = format!("{resource} is being created; AWS does not show it yet");
                return Ok(self.wait(C::KIND, "Creating", message));
            }
        }
        // Nothing that exists is changed before its ownership is known (SPEC §8); what this pass
        // created is ours whatever tags AWS reports for it yet.
        if let (Some(o), false) = (&observed, created) {
            match self.ownership::<C>(o, &resource) {
                Ownership::Ours => {}
                Ownership::Adopt(claimed) => {
                    desired = C::desired(&self.ctx.adopting(), &refs);
                    let note = Some(format!("existing, untagged: {}", claimed.join(", ")));
                    self.act_noted(C::KIND, &resource, Verb::Adopt, C::diff(&desired, o), note);
                    verb = Some("Adopted");
                }
                Ownership::Refused => return Ok(Progress::Stopped),
            }
        }
        checked.done();
        if let Some(o) = &observed {
            if let Some(failure) = C::failed(o) {
                self.publish::<C>(o);
                return self.recover(c, o, &desired, &resource, failure).await;
            }
            // AWS refuses changes to what it is still creating or changing: wait for it.
            if let (Some(doing), Mode::Apply) = (C::busy(o), self.mode) {
                self.publish::<C>(o);
                self.wait(C::KIND, "InProgress", doing);
                return Ok(Progress::Exists);
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
                    // Deleted now, created by a later pass once AWS has removed it (a delete is
                    // asynchronous: a create of the same name meanwhile is refused).
                    c.delete(o).await?;
                    self.act(C::KIND, &resource, Verb::Replace, immutable.clone());
                    let message = format!("{resource} is being replaced: {}", join(&immutable));
                    return Ok(self.wait(C::KIND, "Replacing", message));
                }
            }
            if !mutable.is_empty() {
                if verb.is_none() {
                    self.act(C::KIND, &resource, Verb::Update, mutable.clone());
                }
                match self.mode {
                    Mode::Apply => {
                        match c.update(&desired, o, &mutable).await {
                            Ok(()) => {}
                            // Still being created or changed (`ResourceInUseException`, backups
                            // being enabled): nothing was changed; a later pass tries again.
                            Err(e) if matches!(e.kind, ErrorKind::Busy | ErrorKind::Conflict) => {
                                if verb.is_none() {
                                    self.retract(C::KIND, Verb::Update);
                                }
                                self.publish::<C>(o);
                                let message = format!("{resource}: AWS is not ready for {}: {e}", join(&mutable));
                                self.wait(C::KIND, "InProgress", message);
                                return Ok(Progress::Exists);
                            }
                            Err(e) => return Err(e),
                        }
                        verb = verb.or(Some("Updated"));
                        applied = mutable;
                        observed = c.observe(&desired).await?;
                    }
                    Mode::Plan | Mode::Observe => {
                        let reason = if self.mode == Mode::Observe { "Paused" } else { "Drifted" };
                        self.publish::<C>(o);
                        self.state(C::KIND, false, reason, format!("{resource} differs: {}", join(&mutable)));
                        return Ok(Progress::Ready);
                    }
                }
            }
        }
        let Some(o) = observed else {
            let message = format!("{resource} was changed; AWS does not show it yet");
            return Ok(self.wait(C::KIND, "InProgress", message));
        };
        self.publish::<C>(&o);
        {
            let mut outcome = lock(&self.outcome);
            for claim in C::claims(&o).iter().filter(|claim| claim.adopted()) {
                outcome.status.adopted.push(claim.resource.clone());
            }
        }
        let blocked = lock(&self.outcome)
            .actions
            .iter()
            .rev()
            .find(|a| a.component == C::KIND && a.verb == Verb::Blocked)
            .cloned();
        match (C::readiness(&o), blocked) {
            (Err(waiting), _) => {
                let busy = C::busy(&o).is_some();
                self.state(C::KIND, false, if busy { "InProgress" } else { "NotReady" }, waiting);
                if busy {
                    self.pace(self.poll());
                }
                Ok(Progress::Exists)
            }
            (Ok(()), Some(b)) => {
                self.state(
                    C::KIND,
                    false,
                    "ImmutableFieldChanged",
                    format!("{resource}: {} (cannot be changed in place)", join(&b.changes)),
                );
                Ok(Progress::Ready)
            }
            (Ok(()), None) => {
                let message = match verb {
                    Some(v) if !applied.is_empty() => format!("{v} {resource}: {}", join(&applied)),
                    Some(v) => format!("{v} {resource}"),
                    None => format!("{resource} is in sync"),
                };
                self.state(C::KIND, true, verb.unwrap_or("InSync"), message);
                self.clients.memory.attempts.clear(&recovery_key::<C>(&resource, &desired));
                self.clients.memory.attempts.clear(&refusal_key(C::KIND));
                Ok(Progress::Ready)
            }
        }
    }

    /// Brings a failed resource back ([`Component::failed`]): deleted to be created again by a
    /// later pass, or restarted; at most [`MAX_RECOVERIES`] times for one desired state.
    async fn recover<C: Component>(
        &self,
        c: &C,
        o: &C::Observed,
        desired: &C::Desired,
        resource: &str,
        failure: Failure,
    ) -> Result<Progress, AwsError> {
        let Failure { state, reason, recovery } = failure;
        if self.mode != Mode::Apply {
            self.state(C::KIND, false, "Failed", format!("{resource} is {state}: {reason}"));
            return Ok(Progress::Stopped);
        }
        // A pipe AWS failed because IAM had not propagated its role yet is made again for as long
        // as the propagation window lasts; only other failures count towards MAX_RECOVERIES.
        let key = recovery_key::<C>(resource, desired);
        let propagating = crate::aws::error::names_a_role_not_assumable(&reason) && self.roles_young();
        let (attempt, _) = if propagating {
            self.clients.memory.attempts.get(&key).unwrap_or((0, SystemTime::now()))
        } else {
            self.clients.memory.attempts.count(&key)
        };
        if attempt > MAX_RECOVERIES {
            return Err(AwsError::permanent(
                "Recover",
                format!("{resource} is {state} again after {MAX_RECOVERIES} recoveries: {reason}"),
            ));
        }
        let done = match recovery {
            Recovery::Recreate => {
                c.delete(o).await?;
                "deleted, to be created again"
            }
            Recovery::Restart => {
                c.restart(o).await?;
                "started again"
            }
        };
        let note = if propagating {
            format!("was {state}: {reason}; {done} (IAM has not propagated its role yet)")
        } else {
            format!("was {state}: {reason}; {done} (recovery {attempt} of {MAX_RECOVERIES})")
        };
        self.act_noted(C::KIND, resource, Verb::Recover, vec![], Some(note.clone()));
        Ok(self.wait(C::KIND, "Recovering", format!("{resource} {note}")))
    }

    /// The component is waiting on AWS: not ready, looked at again at [`WAIT_PACE`].
    fn wait(&self, kind: ComponentKind, reason: &str, message: String) -> Progress {
        self.state(kind, false, reason, message);
        self.pace(self.poll());
        Progress::Stopped
    }

    /// How soon a component waiting on AWS is looked at again.
    fn poll(&self) -> Duration {
        self.clients.memory.timing.pace.unwrap_or(WAIT_PACE)
    }

    /// How long after a role changed its refusal is still taken for IAM propagation.
    fn iam_window(&self) -> Duration {
        self.clients.memory.timing.iam_window.unwrap_or(IAM_PROPAGATION_WINDOW)
    }

    /// How long ago the managed roles last changed, if known.
    fn since_roles_changed(&self) -> Option<Duration> {
        let changed = lock(&self.refs).roles_changed_at?;
        Some(SystemTime::now().duration_since(changed).unwrap_or_default())
    }

    /// Asks for the next pass within `after`.
    fn pace(&self, after: Duration) {
        let mut outcome = lock(&self.outcome);
        outcome.wait = Some(outcome.wait.map_or(after, |w| w.min(after)));
    }

    fn publish<C: Component>(&self, o: &C::Observed) {
        C::publish(o, &mut lock(&self.refs));
        C::report(o, &mut lock(&self.outcome).status);
    }

    fn act(&self, component: ComponentKind, resource: &str, verb: Verb, changes: Vec<Change>) {
        self.act_noted(component, resource, verb, changes, None);
    }

    fn act_noted(
        &self,
        component: ComponentKind,
        resource: &str,
        verb: Verb,
        changes: Vec<Change>,
        note: Option<String>,
    ) {
        lock(&self.outcome).actions.push(Action { component, resource: resource.to_string(), verb, changes, note });
    }

    /// Withdraws the last `verb` action of `kind` (it did not happen after all).
    fn retract(&self, kind: ComponentKind, verb: Verb) {
        let mut outcome = lock(&self.outcome);
        if let Some(i) = outcome.actions.iter().rposition(|a| a.component == kind && a.verb == verb) {
            outcome.actions.remove(i);
        }
    }

    /// The ownership check of an existing component: every resource it has must carry this
    /// pipeline's tags, or be untagged and listed in `spec.adopt`. Anything else is refused,
    /// with the component's state and a `Conflict` action saying why.
    fn ownership<C: Component>(&self, o: &C::Observed, resource: &str) -> Ownership {
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

    fn refuse(&self, kind: ComponentKind, resource: &str, reason: &str, note: String, message: String) {
        self.act_noted(kind, resource, Verb::Conflict, vec![], Some(note));
        self.state(kind, false, reason, message);
    }

    fn state(&self, kind: ComponentKind, ready: bool, reason: &str, message: String) {
        let mut outcome = lock(&self.outcome);
        outcome.components.retain(|c| c.kind != kind);
        outcome.components.push(ComponentState { kind, ready, reason: reason.to_string(), message });
    }

    /// The first component refused as not this pipeline's in this pass.
    fn refused(&self) -> Option<ComponentKind> {
        lock(&self.outcome).actions.iter().find(|a| a.verb == Verb::Conflict).map(|a| a.component)
    }

    async fn step<C: Component>(&self, c: C, mut checked: Checked<'_>) -> (ComponentKind, Progress) {
        let result = self.converge(&c, &mut checked).await;
        drop(checked);
        let progress = match result {
            Ok(progress) => progress,
            Err(e) if e.kind == ErrorKind::IamPropagation => self.propagation(C::KIND, e),
            Err(e) => self.failed(C::KIND, e),
        };
        (C::KIND, progress)
    }

    fn failed(&self, kind: ComponentKind, e: AwsError) -> Progress {
        let reason = if e.is_permanent() { "PermanentError" } else { "AwsError" };
        self.state(kind, false, reason, e.to_string());
        // Concurrent components may fail together: the one first in the graph is reported.
        let mut outcome = lock(&self.outcome);
        if outcome.error.as_ref().is_none_or(|(other, _)| rank(kind) < rank(*other)) {
            outcome.error = Some((kind, e));
        }
        Progress::Stopped
    }

    /// A service refused a role it cannot assume: IAM has not propagated it yet, if it changed
    /// less than [`IAM_PROPAGATION_WINDOW`] ago (or, for the user's roles, the first such refusal
    /// was that recent); retried at [`WAIT_PACE`]. Later, it is reported as permanent.
    fn propagation(&self, kind: ComponentKind, e: AwsError) -> Progress {
        let (_, first_refusal) = self.clients.memory.attempts.count(&refusal_key(kind));
        let elapsed = self
            .since_roles_changed()
            .unwrap_or_else(|| SystemTime::now().duration_since(first_refusal).unwrap_or_default());
        let window = self.iam_window();
        if elapsed < window {
            let message = format!(
                "{e} (IAM has not propagated the role yet: retrying for up to {} s after it changed, {} s so far)",
                window.as_secs(),
                elapsed.as_secs()
            );
            return self.wait(kind, "WaitingForIam", message);
        }
        let message = format!(
            "{} (still refused {} s after the role changed: check its trust policy and permissions)",
            e.message,
            elapsed.as_secs()
        );
        self.failed(kind, AwsError { message, ..e }.judged(ErrorKind::Permanent))
    }

    /// Whether the managed roles changed less than the IAM propagation window ago.
    fn roles_young(&self) -> bool {
        self.since_roles_changed().is_some_and(|since| since < self.iam_window())
    }

    /// Whether `need` is met; a [`RolesSettled`] not met yet asks for the pass that will meet it.
    fn met(&self, need: Need, progress: &BTreeMap<ComponentKind, Progress>) -> bool {
        match need {
            Exists(kind) | Ready(kind) => progress.get(&kind).is_some_and(|p| p.meets(need)),
            RolesSettled => {
                if self.mode != Mode::Apply {
                    return true;
                }
                let Some(changed) = lock(&self.refs).roles_changed_at else { return true };
                let settle = self.clients.memory.timing.iam_settle.unwrap_or(IAM_SETTLE);
                let left = (changed + settle).duration_since(SystemTime::now()).unwrap_or_default();
                if left.is_zero() {
                    return true;
                }
                self.pace(left);
                false
            }
        }
    }

    fn run<'p>(&'p self, kind: ComponentKind, tags: &'p TagIndex) -> BoxFuture<'p, (ComponentKind, Progress)> {
        // Counted at the gate from the moment it is started, before it is first polled.
        let g = Checked::new(&self.gate);
        with_component!(kind, self.clients, tags, |c| self.step(c, g).boxed())
    }
}

/// The key of a failed resource's recoveries: a new desired state (a spec change) starts afresh.
fn recovery_key<C: Component>(resource: &str, desired: &C::Desired) -> String {
    format!("recover/{resource}/{}", crate::names::short_hash(&format!("{desired:?}"), 12))
}

/// A component's place in the graph (the order status, actions and errors are shown in).
fn rank(kind: ComponentKind) -> usize {
    GRAPH.iter().position(|(k, _)| *k == kind).unwrap_or(GRAPH.len())
}

fn refusal_key(kind: ComponentKind) -> String {
    format!("iam-refusal/{kind}")
}

/// One pass over the components along [`GRAPH`]: each starts as soon as what it needs is there,
/// independent ones concurrently. What waits on something that is not there yet this pass is
/// left for the next one (`Outcome::wait` says when).
pub async fn reconcile(clients: &Clients, ctx: &PipelineCtx, mode: Mode) -> Outcome {
    let tags = TagIndex::fetch_or_empty(&clients.tagging, ctx).await;
    let pass = Pass {
        clients,
        ctx,
        mode,
        refs: Mutex::new(Refs::default()),
        outcome: Mutex::new(Outcome::default()),
        gate: Gate::default(),
    };
    let kinds = GRAPH.map(|(kind, _)| kind);
    let needs = |kind| GRAPH.iter().find(|(k, _)| *k == kind).map_or(&[][..], |(_, needs)| *needs);
    let progress =
        walk(&kinds, |kind, progress| needs(kind).iter().all(|&n| pass.met(n, progress)), |kind| pass.run(kind, &tags))
            .await;
    let mut outcome = pass.outcome.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (kind, needs) in GRAPH.iter().filter(|(kind, _)| !progress.contains_key(kind)) {
        let unmet: Vec<String> = needs
            .iter()
            .filter(|n| !matches!(n, Exists(k) | Ready(k) if progress.get(k).is_some_and(|p| p.meets(**n))))
            .map(|n| match n {
                Exists(k) => format!("{k} to exist"),
                Ready(k) => format!("{k} to be ready"),
                RolesSettled => "its IAM roles to propagate".to_string(),
            })
            .collect();
        outcome.waiting.insert(*kind, format!("waiting for {}", unmet.join(", ")));
    }
    // Components finish in any order; status and actions read in graph order.
    outcome.components.sort_by_key(|c| rank(c.kind));
    outcome.actions.sort_by_key(|a| rank(a.component));
    outcome.status.adopted.sort();
    outcome
}

/// Result of a teardown.
#[derive(Clone, Debug, Default)]
pub struct Teardown {
    pub actions: Vec<Action>,
    pub error: Option<(ComponentKind, AwsError)>,
    /// The resources that were not there to delete (`delete` reports them as absent).
    pub absent: Vec<String>,
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

    fn run<'r>(
        &'r self,
        kind: ComponentKind,
        clients: &'r Clients,
        tags: &'r TagIndex,
    ) -> BoxFuture<'r, (ComponentKind, bool)> {
        with_component!(kind, clients, tags, |c| self.remove(c).boxed())
    }
}

/// The components that need `kind` ([`GRAPH`] read backwards).
fn dependents(kind: ComponentKind) -> impl Iterator<Item = ComponentKind> {
    GRAPH
        .iter()
        .filter(move |(_, needs)| needs.iter().any(|n| matches!(n, Exists(k) | Ready(k) if *k == kind)))
        .map(|(dependent, _)| *dependent)
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
    for kind in [Table, Stream, Iam] {
        with_component!(kind, clients, tags, |c| learn(&c, ctx, &mut refs).await);
    }
    refs
}

/// Removes the pipeline's resources in reverse dependency order; under
/// `Retain` the table and the bucket (and their data) are kept, and nothing that is not the
/// pipeline's (untagged, another pipeline's, or an adopted table or bucket) is ever deleted.
pub async fn teardown(clients: &Clients, ctx: &PipelineCtx, policy: DeletionPolicy, dry_run: bool) -> Teardown {
    // Every component reads its own tags: a deletion rests on nothing cached.
    let tags = TagIndex::default();
    let refs = account_refs(clients, ctx, &tags).await;
    let r = Removal { ctx, policy, dry_run, refs, done: Mutex::new(Teardown::default()) };
    // A component goes once everything that needs it is gone; one that could not be removed
    // keeps what it needs (a pipe that is still there keeps its stream and role).
    let mut kinds = GRAPH.map(|(kind, _)| kind);
    kinds.reverse();
    walk(
        &kinds,
        |kind, removed| dependents(kind).all(|d| removed.get(&d) == Some(&true)),
        |kind| r.run(kind, clients, &tags),
    )
    .await;
    let mut done = r.done.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    done.actions.sort_by_key(|a| std::cmp::Reverse(rank(a.component)));
    done
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
