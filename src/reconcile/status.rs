//! The status a pass gives the pipeline: `Ready`, `Reconciling`, `Stalled` and
//! one condition per component, computed only from what the pass saw and did.

use super::outcome::{join, Mode, Outcome, Verb};
use crate::api::conditions::{NewCondition, Verdict, FALSE, TRUE, UNKNOWN};
use crate::api::Reason;
use crate::aws::ComponentKind;

impl Outcome {
    /// `Ready`, `Reconciling`, `Stalled` and one condition per component.
    pub fn conditions(&self, mode: Mode) -> Vec<NewCondition> {
        let first_bad = self.components.iter().find(|c| !c.ready);
        // Paused (SPEC §2, README "Paused"): the operator's work is to change nothing, and it is
        // done once it has looked. Ready=True with reason `Paused` (kstatus Current, Argo CD
        // Suspended); what differs from the spec is in the message and the component conditions.
        // A stop that needs a person (Stalled) or an error that a retry may clear still shows.
        let paused = mode == Mode::Observe && self.settled(mode);
        let (not_ready, why) = match (&self.error, first_bad) {
            (Some((kind, e)), _) => (Reason::AwsError, format!("{kind}: {e}")),
            (None, Some(c)) => (c.reason, format!("{}: {}", c.kind, c.message)),
            (None, None) => (Reason::Pending, "not reconciled yet".to_string()),
        };
        let verdict = if paused {
            let message = match first_bad {
                None if self.ready() => {
                    "paused (spec.paused): nothing is changed; every component matches the spec".into()
                }
                None => "paused (spec.paused): nothing is changed".to_string(),
                Some(c) => format!("paused (spec.paused): nothing is changed; {}: {}", c.kind, c.message),
            };
            Verdict::done(Reason::Paused, message, Reason::Paused)
        } else if self.ready() {
            Verdict::done(Reason::Ready, "every component exists and matches the spec", Reason::InSync)
        } else if self.stalled() {
            let (reason, msg) = match (self.conflict(), &self.error) {
                (Some((reason, message)), _) => (reason, message),
                (None, Some((kind, e))) => (Reason::PermanentError, format!("{kind}: {e}")),
                (None, None) => (
                    Reason::ImmutableFieldChanged,
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
            Verdict::stalled(not_ready, why, reason, msg, "a spec change")
        } else {
            let progress = match (&self.error, first_bad) {
                (Some((kind, e)), _) => format!("retrying after {kind}: {e}"),
                (None, Some(c)) => format!("{}: {}", c.kind, c.message),
                (None, None) => "in progress".to_string(),
            };
            let verdict = Verdict::working(not_ready, why, Reason::Progressing, progress);
            if not_ready == Reason::Pending {
                verdict.unknown()
            } else {
                verdict
            }
        };
        let mut out = verdict.conditions();
        for kind in ComponentKind::ALL {
            let c = self.components.iter().find(|c| c.kind == kind);
            out.push(match c {
                Some(c) if c.ready => NewCondition::new(kind.condition_type(), TRUE, c.reason, c.message.clone()),
                Some(c) => NewCondition::new(kind.condition_type(), FALSE, c.reason, c.message.clone()),
                None => {
                    let message = self.waiting.get(&kind).map_or("waiting for an earlier component", String::as_str);
                    NewCondition::new(kind.condition_type(), UNKNOWN, Reason::NotReached, message)
                }
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{READY, RECONCILING, STALLED};
    use crate::aws::AwsError;
    use crate::reconcile::ComponentState;

    fn paused_outcome(ready: &[bool]) -> Outcome {
        let components = ComponentKind::ALL
            .iter()
            .zip(ready)
            .map(|(&kind, &ready)| ComponentState {
                kind,
                ready,
                reason: if ready { Reason::InSync } else { Reason::Paused },
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
