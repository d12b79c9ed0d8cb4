//! What a pass did or would do: the actions on AWS resources, each
//! component's state, and the waits; what a teardown did.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::api::{Reason, SalesPipelineStatus};
use crate::aws::{AwsError, Change, ComponentKind};

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
    /// It does not exist and the pipeline does not create it (`spec.bucket.create: false`):
    /// nothing is created until it exists.
    Missing,
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
            Verb::Missing => "missing",
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
    pub reason: Reason,
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
    pub fn conflict(&self) -> Option<(Reason, String)> {
        let a = self.actions.iter().find(|a| a.verb == Verb::Conflict)?;
        let c = self.components.iter().find(|c| c.kind == a.component)?;
        Some((c.reason, format!("{}: {}", c.kind, c.message)))
    }

    /// Whether this pass changed anything in AWS.
    pub fn changed(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(a.verb, Verb::Create | Verb::Update | Verb::Replace | Verb::Delete | Verb::Adopt | Verb::Recover)
        })
    }
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

    /// Adds a later pass: its actions not already recorded, its error, and as absent only what
    /// no earlier pass deleted or retained.
    pub fn merge(&mut self, later: Teardown) {
        for action in later.actions {
            if !self.actions.iter().any(|a| a.resource == action.resource && a.verb == action.verb) {
                self.actions.push(action);
            }
        }
        self.absent = later.absent.into_iter().filter(|r| !self.actions.iter().any(|a| &a.resource == r)).collect();
        self.error = later.error;
    }
}

pub(super) fn join(changes: &[Change]) -> String {
    changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
