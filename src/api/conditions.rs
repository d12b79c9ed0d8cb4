//! kstatus-compatible conditions: `Ready`, `Reconciling`, `Stalled`, and one per component.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::Reason;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// `status.observedGeneration` of an object the operator has not looked at yet: the schema
/// default of both CRDs' status, never equal to a generation (which starts at 1).
pub const NOT_OBSERVED: i64 = -1;

/// Condition status values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// A condition as the reconcile computed it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    pub type_: String,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl NewCondition {
    pub fn new(type_: &str, status: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        Self { type_: type_.to_string(), status, reason: reason.as_str().to_string(), message: message.into() }
    }
}

/// The kstatus conditions (`Ready`, `Stalled`, `Reconciling`) of one verdict on either custom
/// resource: the one place their combinations are decided, so Flux, Argo CD and `kubectl wait`
/// read every status the same way (docs/status.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    ready: NewCondition,
    stalled: NewCondition,
    reconciling: NewCondition,
}

impl Verdict {
    /// The work is done: `Ready=True` with `reason`, `Reconciling=False` with `settled`.
    pub fn done(reason: Reason, message: impl Into<String>, settled: Reason) -> Self {
        Self {
            ready: NewCondition::new(READY, TRUE, reason, message),
            stalled: NewCondition::new(STALLED, FALSE, Reason::NotStalled, ""),
            reconciling: NewCondition::new(RECONCILING, FALSE, settled, ""),
        }
    }

    /// Still at work, or retrying: `Ready=False` with `reason`, `Reconciling=True` with `doing`.
    pub fn working(reason: Reason, message: impl Into<String>, doing: Reason, progress: impl Into<String>) -> Self {
        Self {
            ready: NewCondition::new(READY, FALSE, reason, message),
            stalled: NewCondition::new(STALLED, FALSE, Reason::NotStalled, ""),
            reconciling: NewCondition::new(RECONCILING, TRUE, doing, progress),
        }
    }

    /// Needs a person: `Stalled=True` with `reason` and `message`, `Ready=False` with
    /// `ready_reason`, `Reconciling=False` saying what it waits for.
    pub fn stalled(
        ready_reason: Reason,
        ready_message: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
        waiting_for: &str,
    ) -> Self {
        Self {
            ready: NewCondition::new(READY, FALSE, ready_reason, ready_message),
            stalled: NewCondition::new(STALLED, TRUE, reason, message),
            reconciling: NewCondition::new(RECONCILING, FALSE, Reason::Stalled, format!("waiting for {waiting_for}")),
        }
    }

    /// `Ready` not known yet (`Unknown`), the rest as given.
    pub fn unknown(mut self) -> Self {
        self.ready.status = UNKNOWN;
        self
    }

    /// `Ready`, `Stalled`, `Reconciling`.
    pub fn conditions(self) -> Vec<NewCondition> {
        vec![self.ready, self.stalled, self.reconciling]
    }
}

/// Builds the condition list from `computed`, keeping `lastTransitionTime`
/// from `previous` for every condition whose status did not change.
pub fn merge(
    previous: &[Condition],
    computed: &[NewCondition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    computed
        .iter()
        .map(|c| {
            let old = previous.iter().find(|p| p.type_ == c.type_);
            let last_transition_time = match old {
                Some(o) if o.status == c.status => o.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: c.type_.clone(),
                status: c.status.to_string(),
                reason: c.reason.clone(),
                message: truncate(&c.message, 32768),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The condition of `type_`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let first = merge(&[], &[NewCondition::new(READY, FALSE, Reason::Creating, "x")], Some(1), t0);
        let same = merge(&first, &[NewCondition::new(READY, FALSE, Reason::Creating, "y")], Some(2), t1);
        assert_eq!(same[0].last_transition_time.0, t0);
        assert_eq!(same[0].message, "y");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[NewCondition::new(READY, TRUE, Reason::Ready, "ok")], Some(2), t1);
        assert_eq!(flipped[0].last_transition_time.0, t1);
    }
}
