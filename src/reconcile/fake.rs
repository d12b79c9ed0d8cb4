//! Scripted in-process components: the reconciler's state machine tested
//! without AWS or an emulator, in milliseconds. One [`World`] holds a
//! resource per component kind, a log of every call, and what each kind is
//! scripted to do (stay CREATING, end CREATE_FAILED, be refused as IAM
//! propagation, or "crash": every call after the N-th mutating one fails).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::components::{Components, Env, Step};
use crate::api::{NamedArn, SalesPipelineStatus};
use crate::aws::tagging::TagIndex;
use crate::aws::{known, AwsError, Claim, Component, ComponentKind, Diff, Failure, Field, PipelineCtx, Recovery, Refs};

/// One fake resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub value: String,
    /// `CREATING`, `ACTIVE` or `CREATE_FAILED`.
    pub state: &'static str,
    /// Observations left before a CREATING resource reads ACTIVE.
    pub creating_left: u32,
    pub tags: BTreeMap<String, String>,
    pub created_at: SystemTime,
    /// Observations left before the table shows its stream ARN.
    pub streamless_left: u32,
}

/// What one kind is scripted to do.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// A created resource reads CREATING for this many observations.
    pub creating_observations: u32,
    /// The next this many creates end CREATE_FAILED.
    pub failed_creates: u32,
    /// The next this many creates are refused as IAM propagation ("is unable to assume role").
    pub iam_refusals: u32,
    /// A created table shows no stream ARN for this many observations (its stream turned off, or
    /// adopted while AWS is still creating it).
    pub streamless_observations: u32,
}

/// One call a fake component received: its kind, the operation, and the resource's state then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub kind: ComponentKind,
    pub op: &'static str,
    pub state: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct State {
    pub resources: BTreeMap<ComponentKind, Resource>,
    pub scripts: BTreeMap<ComponentKind, Script>,
    pub calls: Vec<Call>,
    /// Mutating calls that succeed before the process "crashes": every later call fails.
    pub crash_after: Option<usize>,
}

impl State {
    fn mutating(&self) -> usize {
        self.calls.iter().filter(|c| c.op != "observe").count()
    }

    /// The calls of `op`, per kind.
    pub fn count(&self, kind: ComponentKind, op: &str) -> usize {
        self.calls.iter().filter(|c| c.kind == kind && c.op == op).count()
    }
}

/// The fake AWS every fake component reads and changes.
#[derive(Clone, Debug, Default)]
pub struct World(Arc<Mutex<State>>);

impl World {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn script(&self, kind: ComponentKind, script: Script) {
        self.state().scripts.insert(kind, script);
    }

    /// Records a call; fails it when the process has "crashed".
    fn call(&self, kind: ComponentKind, op: &'static str) -> Result<MutexGuard<'_, State>, AwsError> {
        let mut state = self.state();
        if state.crash_after.is_some_and(|n| state.mutating() >= n) {
            return Err(AwsError::new("Fake", Some("ServiceUnavailable".into()), "crashed".into(), Some(503)));
        }
        let current = state.resources.get(&kind).map(|r| r.state);
        state.calls.push(Call { kind, op, state: current });
        Ok(state)
    }
}

/// The desired state of a fake: a value from `spec.tags["value"]`, and the pipeline's tags.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeDesired {
    pub value: String,
    pub tags: BTreeMap<String, String>,
    /// The table's stream ARN, for the kinds whose real desired state names it (the roles, the
    /// pipe) and for the analytics, whose graph entry does not declare it (the backstop's case).
    pub stream_arn: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FakeObserved {
    pub kind: ComponentKind,
    pub resource: Resource,
}

/// The one field of a fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeField {
    Value,
}

impl Field for FakeField {
    fn name(&self) -> String {
        match self {
            FakeField::Value => "value".into(),
        }
    }
}

/// The fake component of `ComponentKind::ALL[K]`.
pub struct Fake<const K: usize>(World);

/// The role a fake service refuses to assume.
pub const ROLE: &str = "arn:aws:iam::123456789012:role/sales-operator/fake-pipe-role";

impl<const K: usize> Component for Fake<K> {
    type Desired = FakeDesired;
    type Observed = FakeObserved;
    type Field = FakeField;
    const KIND: ComponentKind = ComponentKind::ALL[K];

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> FakeDesired {
        let names_stream = matches!(Self::KIND, ComponentKind::Iam | ComponentKind::Pipe | ComponentKind::Analytics);
        FakeDesired {
            value: ctx.spec.tags.get("value").cloned().unwrap_or_default(),
            tags: ctx.tags.clone(),
            stream_arn: if names_stream { known(&refs.table_stream_arn) } else { String::new() },
        }
    }

    fn resource_name(_: &FakeDesired) -> String {
        format!("fake {}", Self::KIND)
    }

    fn observe(&self, _: &FakeDesired) -> impl Future<Output = Result<Option<FakeObserved>, AwsError>> + Send {
        let result = self.0.call(Self::KIND, "observe").map(|mut state| {
            let r = state.resources.get_mut(&Self::KIND)?;
            r.streamless_left = r.streamless_left.saturating_sub(1);
            if r.state == "CREATING" {
                if r.creating_left == 0 {
                    r.state = "ACTIVE";
                } else {
                    r.creating_left -= 1;
                }
            }
            Some(FakeObserved { kind: Self::KIND, resource: r.clone() })
        });
        async move { result }
    }

    fn diff(d: &FakeDesired, o: &FakeObserved) -> Vec<Diff<FakeField>> {
        let mut changes = Vec::new();
        if o.resource.value != d.value {
            changes.push(Diff::new(FakeField::Value, o.resource.value.as_str(), d.value.as_str()));
        }
        changes
    }

    fn create(&self, d: &FakeDesired) -> impl Future<Output = Result<(), AwsError>> + Send {
        let result = self.0.call(Self::KIND, "create").and_then(|mut state| {
            if state.resources.contains_key(&Self::KIND) {
                return Err(AwsError::new("Create", Some("ResourceInUseException".into()), "exists".into(), Some(400)));
            }
            let script = state.scripts.entry(Self::KIND).or_default();
            if script.iam_refusals > 0 {
                script.iam_refusals -= 1;
                let message = format!("Service is unable to assume role {ROLE}. Please check the role provided.");
                return Err(AwsError::new("Create", Some("InvalidArgumentException".into()), message, Some(400)));
            }
            let (state_now, creating_left) = if script.failed_creates > 0 {
                script.failed_creates -= 1;
                ("CREATE_FAILED", 0)
            } else if script.creating_observations > 0 {
                ("CREATING", script.creating_observations - 1)
            } else {
                ("ACTIVE", 0)
            };
            let resource = Resource {
                value: d.value.clone(),
                state: state_now,
                creating_left,
                tags: d.tags.clone(),
                created_at: SystemTime::now(),
                streamless_left: script.streamless_observations,
            };
            state.resources.insert(Self::KIND, resource);
            Ok(())
        });
        async move { result }
    }

    fn update(
        &self,
        d: &FakeDesired,
        _: &FakeObserved,
        _: &[Diff<FakeField>],
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        let result = self.0.call(Self::KIND, "update").map(|mut state| {
            if let Some(r) = state.resources.get_mut(&Self::KIND) {
                r.value = d.value.clone();
            }
        });
        async move { result }
    }

    fn delete(&self, _: &FakeObserved) -> impl Future<Output = Result<(), AwsError>> + Send {
        let result = self.0.call(Self::KIND, "delete").map(|mut state| {
            state.resources.remove(&Self::KIND);
        });
        async move { result }
    }

    fn publish(o: &FakeObserved, refs: &mut Refs) {
        let arn = |what: &str| Some(format!("arn:aws:fake:eu-west-1:123456789012:{what}"));
        refs.learn_account(ROLE);
        match o.kind {
            ComponentKind::Table if o.resource.streamless_left == 0 => refs.table_stream_arn = arn("table/stream"),
            ComponentKind::Stream => refs.stream_arn = arn("stream"),
            ComponentKind::Bucket => refs.bucket_arn = arn("bucket"),
            ComponentKind::Iam => {
                refs.pipe_role_arn = Some(ROLE.to_string());
                refs.firehose_role_arn = Some(ROLE.to_string());
                refs.roles_changed_at = Some(o.resource.created_at);
            }
            _ => {}
        }
    }

    fn report(o: &FakeObserved, status: &mut SalesPipelineStatus) {
        if o.kind == ComponentKind::Stream {
            status.stream = Some(NamedArn { name: "fake".into(), arn: None });
        }
    }

    fn claims(o: &FakeObserved) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("fake {}", o.kind), &o.resource.tags)]
    }

    fn busy(o: &FakeObserved) -> Option<String> {
        (o.resource.state == "CREATING").then(|| format!("fake {} is CREATING", o.kind))
    }

    fn readiness(o: &FakeObserved) -> Result<(), String> {
        match o.resource.state {
            "ACTIVE" => Ok(()),
            other => Err(format!("fake {} is {other}", o.kind)),
        }
    }

    fn failed(o: &FakeObserved) -> Option<Failure> {
        (o.resource.state == "CREATE_FAILED").then(|| Failure {
            state: "CREATE_FAILED".into(),
            reason: "scripted failure".into(),
            recovery: Recovery::Recreate,
        })
    }
}

/// Every kind served by its fake, all in one [`World`].
#[derive(Clone, Debug, Default)]
pub struct Fakes(pub World);

impl Components for Fakes {
    fn with<'a, S: Step<'a>>(&'a self, kind: ComponentKind, _env: Env<'a>, step: S) -> S::Output {
        let w = self.0.clone();
        match kind {
            ComponentKind::Table => step.run(Fake::<0>(w)),
            ComponentKind::Stream => step.run(Fake::<1>(w)),
            ComponentKind::Bucket => step.run(Fake::<2>(w)),
            ComponentKind::Iam => step.run(Fake::<3>(w)),
            ComponentKind::Pipe => step.run(Fake::<4>(w)),
            ComponentKind::Delivery => step.run(Fake::<5>(w)),
            ComponentKind::Catalog => step.run(Fake::<6>(w)),
            ComponentKind::Analytics => step.run(Fake::<7>(w)),
        }
    }

    async fn tag_index<'a>(&'a self, _: &'a PipelineCtx) -> TagIndex {
        TagIndex::default()
    }
}
