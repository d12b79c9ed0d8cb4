//! One component's pass: observe → ownership → recover or wait → diff →
//! create/update, with what it did recorded in the pass's outcome.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::components::{Components, Env, Step};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::graph::{rank, walk, Need, Progress, GRAPH};
use super::memory::{Memory, Timing, MAX_RECOVERIES};
use super::outcome::{join, Action, ComponentState, Mode, Outcome, Verb};
use super::Reconciler;
use crate::api::Reason;
use crate::aws::error::ErrorKind;
use crate::aws::tagging::TagIndex;
use crate::aws::{
    not_ours, shown, AwsError, Change, Component, ComponentKind, Failure, Field, Owner, PipelineCtx, Recovery, Refs,
    UNKNOWN,
};
use Need::{Exists, Known, Ready, RolesSettled};

/// What the ownership check allows.
enum Ownership {
    Ours,
    /// Take these untagged resources under management (`spec.adopt`).
    Adopt(Vec<String>),
    /// Not the pipeline's: reported, nothing changed.
    Refused,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Pass<'a, A> {
    aws: &'a A,
    memory: &'a Memory,
    timing: Timing,
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

impl<A: Components> Pass<'_, A> {
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
            if let Err(missing) = C::creatable(&desired) {
                let note = format!("{missing}; nothing of the pipeline is created until it exists");
                self.act_noted(C::KIND, &resource, Verb::Missing, vec![], Some(note.clone()));
                self.state(C::KIND, false, Reason::Missing, note);
                if self.mode == Mode::Apply {
                    self.pace(self.poll());
                }
                return Ok(Progress::Stopped);
            }
            self.act(C::KIND, &resource, Verb::Create, vec![]);
            if self.mode != Mode::Apply {
                let reason = if self.mode == Mode::Observe { Reason::Paused } else { Reason::Absent };
                self.state(C::KIND, false, reason, format!("{resource} does not exist"));
                return Ok(Progress::Planned);
            }
            if names_unknown(&desired) {
                self.retract(C::KIND, Verb::Create);
                let message = format!("{resource} is not created while a value it names is not known yet");
                return Ok(self.wait(C::KIND, Reason::NotReached, message));
            }
            // Nothing is created while a component started with it may still turn out not to be
            // this pipeline's: a pipeline whose names are taken creates nothing at all.
            checked.done();
            self.gate.open().await;
            if let Some((other, verb)) = self.refused() {
                self.retract(C::KIND, Verb::Create);
                let why = if verb == Verb::Missing { "is missing" } else { "is not this pipeline's" };
                let message = format!("{resource} is not created while {other} {why}");
                self.state(C::KIND, false, Reason::NotCreated, message);
                return Ok(Progress::Stopped);
            }
            match c.create(&desired).await {
                Ok(()) => {
                    created = true;
                    verb = Some(Reason::Created);
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
                return Ok(self.wait(C::KIND, Reason::Creating, message));
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
                    self.act_noted(C::KIND, &resource, Verb::Adopt, shown(&C::diff(&desired, o)), note);
                    verb = Some(Reason::Adopted);
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
                self.wait(C::KIND, Reason::InProgress, doing);
                return Ok(Progress::Exists);
            }
        }
        // After a create too: what the create call cannot set (encryption, backups) is set by an update.
        if let Some(o) = &observed {
            let changes = C::diff(&desired, o);
            let (immutable, mutable): (Vec<_>, Vec<_>) = changes.into_iter().partition(|ch| ch.field.immutable());
            // Shown as users read them; `mutable` stays typed for the update.
            let (immutable, shown_mutable) = (shown(&immutable), shown(&mutable));
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
                    return Ok(self.wait(C::KIND, Reason::Replacing, message));
                }
            }
            if !mutable.is_empty() {
                if verb.is_none() {
                    self.act(C::KIND, &resource, Verb::Update, shown_mutable.clone());
                }
                match self.mode {
                    Mode::Apply if names_unknown(&desired) => {
                        if verb.is_none() {
                            self.retract(C::KIND, Verb::Update);
                        }
                        self.publish::<C>(o);
                        let message = format!("{resource} is not changed while a value it names is not known yet");
                        self.wait(C::KIND, Reason::NotReached, message);
                        return Ok(Progress::Exists);
                    }
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
                                let message = format!("{resource}: AWS is not ready for {}: {e}", join(&shown_mutable));
                                self.wait(C::KIND, Reason::InProgress, message);
                                return Ok(Progress::Exists);
                            }
                            Err(e) => return Err(e),
                        }
                        verb = verb.or(Some(Reason::Updated));
                        applied = shown_mutable;
                        observed = c.observe(&desired).await?;
                    }
                    Mode::Plan | Mode::Observe => {
                        let reason = if self.mode == Mode::Observe { Reason::Paused } else { Reason::Drifted };
                        self.publish::<C>(o);
                        self.state(C::KIND, false, reason, format!("{resource} differs: {}", join(&shown_mutable)));
                        return Ok(Progress::Ready);
                    }
                }
            }
        }
        let Some(o) = observed else {
            let message = format!("{resource} was changed; AWS does not show it yet");
            return Ok(self.wait(C::KIND, Reason::InProgress, message));
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
                self.state(C::KIND, false, if busy { Reason::InProgress } else { Reason::NotReady }, waiting);
                if busy {
                    self.pace(self.poll());
                }
                Ok(Progress::Exists)
            }
            (Ok(()), Some(b)) => {
                self.state(
                    C::KIND,
                    false,
                    Reason::ImmutableFieldChanged,
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
                self.state(C::KIND, true, verb.unwrap_or(Reason::InSync), message);
                self.memory.attempts.clear(&recovery_key::<C>(&resource, &desired));
                self.memory.attempts.clear(&refusal_key(C::KIND));
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
            self.state(C::KIND, false, Reason::Failed, format!("{resource} is {state}: {reason}"));
            return Ok(Progress::Stopped);
        }
        // A pipe AWS failed because IAM had not propagated its role yet is made again for as long
        // as the propagation window lasts; only other failures count towards MAX_RECOVERIES.
        let key = recovery_key::<C>(resource, desired);
        let propagating = crate::aws::error::names_a_role_not_assumable(&reason) && self.roles_young();
        let (attempt, _) = if propagating {
            self.memory.attempts.get(&key).unwrap_or((0, SystemTime::now()))
        } else {
            self.memory.attempts.count(&key)
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
        Ok(self.wait(C::KIND, Reason::Recovering, format!("{resource} {note}")))
    }

    /// The component is waiting on AWS: not ready, looked at again at [`WAIT_PACE`](super::memory::WAIT_PACE).
    fn wait(&self, kind: ComponentKind, reason: Reason, message: String) -> Progress {
        self.state(kind, false, reason, message);
        self.pace(self.poll());
        Progress::Stopped
    }

    /// How soon a component waiting on AWS is looked at again.
    fn poll(&self) -> Duration {
        self.timing.pace()
    }

    /// How long after a role changed its refusal is still taken for IAM propagation.
    fn iam_window(&self) -> Duration {
        self.timing.iam_window()
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
            self.refuse(C::KIND, resource, Reason::NameConflict, note, message);
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
        self.refuse(C::KIND, resource, Reason::NotOwned, note, message);
        Ownership::Refused
    }

    fn refuse(&self, kind: ComponentKind, resource: &str, reason: Reason, note: String, message: String) {
        self.act_noted(kind, resource, Verb::Conflict, vec![], Some(note));
        self.state(kind, false, reason, message);
    }

    fn state(&self, kind: ComponentKind, ready: bool, reason: Reason, message: String) {
        let mut outcome = lock(&self.outcome);
        outcome.components.retain(|c| c.kind != kind);
        outcome.components.push(ComponentState { kind, ready, reason, message });
    }

    /// The first component refused as not this pipeline's in this pass.
    /// The first component that keeps the others from creating anything: not this pipeline's
    /// (`Conflict`), or missing and not the pipeline's to create (`Missing`).
    fn refused(&self) -> Option<(ComponentKind, Verb)> {
        lock(&self.outcome)
            .actions
            .iter()
            .find(|a| matches!(a.verb, Verb::Conflict | Verb::Missing))
            .map(|a| (a.component, a.verb.clone()))
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
        let reason = if e.is_permanent() { Reason::PermanentError } else { Reason::AwsError };
        self.state(kind, false, reason, e.to_string());
        // Concurrent components may fail together: the one first in the graph is reported.
        let mut outcome = lock(&self.outcome);
        if outcome.error.as_ref().is_none_or(|(other, _)| rank(kind) < rank(*other)) {
            outcome.error = Some((kind, e));
        }
        Progress::Stopped
    }

    /// A service refused a role it cannot assume: IAM has not propagated it yet, if it changed
    /// less than [`IAM_PROPAGATION_WINDOW`](super::memory::IAM_PROPAGATION_WINDOW) ago (or, for the user's roles, the first such refusal
    /// was that recent); retried at [`WAIT_PACE`](super::memory::WAIT_PACE). Later, it is reported as permanent.
    fn propagation(&self, kind: ComponentKind, e: AwsError) -> Progress {
        let (_, first_refusal) = self.memory.attempts.count(&refusal_key(kind));
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
            return self.wait(kind, Reason::WaitingForIam, message);
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
            // A plan shows what is not known yet as `(known after apply)`.
            Known(value) => {
                let known = self.mode != Mode::Apply || value.known(&lock(&self.refs));
                if !known {
                    self.pace(self.poll());
                }
                known
            }
            RolesSettled => {
                if self.mode != Mode::Apply {
                    return true;
                }
                let Some(changed) = lock(&self.refs).roles_changed_at else { return true };
                let settle = self.timing.iam_settle();
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
        let checked = Checked::new(&self.gate);
        self.aws.with(kind, Env { tags, memory: self.memory }, Converge { pass: self, checked })
    }
}

/// Whether `desired` still holds [`UNKNOWN`]: a backstop behind the graph's `Need::Known`, so a
/// placeholder is never sent to AWS (IAM refuses it as a malformed ARN, a service as a bad
/// parameter, and either would be reported as the user's error).
fn names_unknown<D: std::fmt::Debug>(desired: &D) -> bool {
    format!("{desired:?}").contains(UNKNOWN)
}

/// The key of a failed resource's recoveries: a new desired state (a spec change) starts afresh.
fn recovery_key<C: Component>(resource: &str, desired: &C::Desired) -> String {
    format!("recover/{resource}/{}", crate::names::short_hash(&format!("{desired:?}"), 12))
}

/// The walker's step of a reconcile: converge one component.
struct Converge<'p, 'a, A> {
    pass: &'p Pass<'a, A>,
    checked: Checked<'p>,
}

impl<'p, A: Components> Step<'p> for Converge<'p, '_, A> {
    type Output = BoxFuture<'p, (ComponentKind, Progress)>;

    fn run<C: Component + 'p>(self, c: C) -> Self::Output {
        self.pass.step(c, self.checked).boxed()
    }
}

fn refusal_key(kind: ComponentKind) -> String {
    format!("iam-refusal/{kind}")
}

/// One pass along [`GRAPH`] (see [`super::reconcile`]).
pub(super) async fn pass<A: Components>(r: &Reconciler<A>, ctx: &PipelineCtx, mode: Mode) -> Outcome {
    let tags = r.aws.tag_index(ctx).await;
    let pass = Pass {
        aws: &r.aws,
        memory: &r.memory,
        timing: r.timing,
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
    let mut waiting = BTreeMap::new();
    for (kind, needs) in GRAPH.iter().filter(|(kind, _)| !progress.contains_key(kind)) {
        let unmet: Vec<String> = needs
            .iter()
            .filter(|n| !pass.met(**n, &progress))
            .map(|n| match n {
                Exists(k) => format!("{k} to exist"),
                Ready(k) => format!("{k} to be ready"),
                RolesSettled => "its IAM roles to propagate".to_string(),
                Known(value) => value.to_string(),
            })
            .collect();
        waiting.insert(*kind, format!("waiting for {}", unmet.join(", ")));
    }
    let mut outcome = pass.outcome.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    outcome.waiting = waiting;
    // Components finish in any order; status and actions read in graph order.
    outcome.components.sort_by_key(|c| rank(c.kind));
    outcome.actions.sort_by_key(|a| rank(a.component));
    outcome.status.adopted.sort();
    outcome
}
