//! Drift: a managed resource found differing from the spec after it had matched it. Each one is
//! reported (a `DriftDetected` event, `status.drift`, and under `driftPolicy: Report` the
//! `Drifted` condition), explained by the AWS change event that caused it when one came, and
//! under `Repair` brought back to the spec by the same pass.

use crate::api::conditions::{NewCondition, Verdict, FALSE, READY, RECONCILING, STALLED, TRUE};
use crate::api::{ComponentKind, Drift, DriftChange, DriftPolicy, Reason, SalesPipeline, SalesPipelineStatus};
use crate::events::{ChangeEvent, Service};
use crate::reconcile::{Mode, Outcome, Verb};

/// The condition that carries the diff under `driftPolicy: Report`.
pub const DRIFTED: &str = "Drifted";
/// The drifts `status.drift` keeps, newest last.
pub const KEPT: usize = 10;

/// Whether `sp`'s current generation was brought to Ready: what a pass has to change now
/// changed outside.
pub fn applied(sp: &SalesPipeline) -> bool {
    let applied = sp.status.as_ref().and_then(|s| s.applied_generation);
    applied.is_some() && applied == sp.metadata.generation
}

/// How far a pass may go: paused → observe; `Report` once this generation was applied → plan
/// (read only); else apply.
pub fn mode(sp: &SalesPipeline) -> Mode {
    if sp.spec.paused {
        Mode::Observe
    } else if sp.spec.drift_policy == DriftPolicy::Report && applied(sp) {
        Mode::Plan
    } else {
        Mode::Apply
    }
}

/// One resource a pass found drifted.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub component: ComponentKind,
    pub resource: String,
    pub changes: Vec<DriftChange>,
}

/// What drifted: under `Apply` on a generation already brought to Ready, what the pass had to change
/// (created again, updated, replaced); under `Plan`, what differs.
pub fn found(outcome: &Outcome, mode: Mode, was_in_sync: bool) -> Vec<Found> {
    if !(mode == Mode::Plan || (mode == Mode::Apply && was_in_sync)) {
        return Vec::new();
    }
    outcome
        .actions
        .iter()
        .filter_map(|a| {
            let changes = match a.verb {
                Verb::Create => {
                    vec![DriftChange { field: "exists".into(), before: "true".into(), after: "false".into() }]
                }
                Verb::Update | Verb::Replace => a
                    .changes
                    .iter()
                    .map(|c| DriftChange { field: c.field.clone(), before: c.to.clone(), after: c.from.clone() })
                    .collect(),
                _ => return None,
            };
            Some(Found { component: a.component, resource: a.resource.clone(), changes })
        })
        .collect()
}

/// The drift record of `found`, explained by the latest of `events` (oldest first) from its
/// component's service, preferring one that names its resource.
pub fn record(found: &Found, events: &[ChangeEvent], repaired: bool, now: &str) -> Drift {
    let service = Service::of(found.component);
    let names_it = |e: &&ChangeEvent| e.names.iter().any(|n| found.resource.ends_with(&format!(" {n}")));
    let ours = || events.iter().rev().filter(|e| e.service == service);
    let event = ours().find(names_it).or_else(|| ours().next());
    Drift {
        detected_at: now.to_string(),
        component: found.component.to_string(),
        resource: found.resource.clone(),
        changes: found.changes.clone(),
        found_by: if event.is_some() { "event" } else { "resync" }.to_string(),
        actor: event.map(|e| e.actor.clone()).filter(|a| !a.is_empty()),
        event_name: event.map(|e| e.event_name.clone()),
        event_time: event.map(|e| e.event_time.clone()).filter(|t| !t.is_empty()),
        source: event.map(ChangeEvent::origin).filter(|o| !o.is_empty()),
        repaired,
    }
}

/// Each field as `field: before → after`.
pub fn diff(changes: &[DriftChange]) -> String {
    changes.iter().map(|c| format!("{}: {} → {}", c.field, c.before, c.after)).collect::<Vec<_>>().join("; ")
}

/// The `DriftDetected` message: what differs, and who, what, when and from where when known.
pub fn note(d: &Drift) -> String {
    let what = format!("{}: {} drifted: {}", d.component, d.resource, diff(&d.changes));
    let Some(event_name) = &d.event_name else { return format!("{what}; found by resync; actor unknown") };
    let mut who = format!("{what}; by {}", d.actor.as_deref().unwrap_or("an unknown identity"));
    who.push_str(&format!(" ({event_name}"));
    if let Some(time) = &d.event_time {
        who.push_str(&format!(" at {time}"));
    }
    if let Some(source) = &d.source {
        who.push_str(&format!(" from {source}"));
    }
    who.push(')');
    who
}

/// Whether `found` was reported already: the `Drifted` condition is on and the last record of
/// its resource says the same, unrepaired.
pub fn reported(previous: &SalesPipelineStatus, found: &Found) -> bool {
    let drifted = previous.conditions.iter().any(|c| c.type_ == DRIFTED && c.status == TRUE);
    drifted
        && previous
            .drift
            .iter()
            .rev()
            .find(|d| d.resource == found.resource)
            .is_some_and(|d| !d.repaired && d.changes == found.changes)
}

/// `previous` drift records and `new` ones, the last [`KEPT`].
pub fn history(previous: &[Drift], new: Vec<Drift>) -> Vec<Drift> {
    let mut all: Vec<Drift> = previous.iter().cloned().chain(new).collect();
    let extra = all.len().saturating_sub(KEPT);
    all.drain(..extra);
    all
}

/// The conditions of a `Report` pass (read only): what differs stalls the pipeline with the diff
/// (nothing changes until a person acts: the spec, or the change undone in AWS); in sync is Ready.
/// Errors and waits are as any pass's.
pub fn report_conditions(outcome: &Outcome, found: &[Found]) -> Vec<NewCondition> {
    let mut computed = outcome.conditions(Mode::Plan);
    if outcome.error.is_some() {
        return computed;
    }
    if found.is_empty() && outcome.ready() {
        computed.push(NewCondition::new(DRIFTED, FALSE, Reason::InSync, "AWS matches the spec"));
        return computed;
    }
    let mut parts: Vec<String> = found.iter().map(|f| format!("{} {}", f.resource, diff(&f.changes))).collect();
    if parts.is_empty() {
        // Not ready without a difference to report (a failed resource, one not usable yet).
        parts = outcome.components.iter().filter(|c| !c.ready).map(|c| format!("{}: {}", c.kind, c.message)).collect();
    }
    let message = format!("driftPolicy Report: {} (not repaired)", parts.join("; "));
    computed.retain(|c| ![READY, STALLED, RECONCILING].contains(&c.type_.as_str()));
    let waiting = "a spec change, or the change undone in AWS";
    computed.extend(
        Verdict::stalled(Reason::Drifted, message.clone(), Reason::Drifted, message.clone(), waiting).conditions(),
    );
    computed.push(NewCondition::new(DRIFTED, TRUE, Reason::Drifted, message));
    computed
}

/// Under `Repair`: a `Drifted` condition left from `Report` goes off once the pipeline is in sync.
pub fn repaired_condition(previous: &SalesPipelineStatus, ready: bool) -> Option<NewCondition> {
    let on = previous.conditions.iter().any(|c| c.type_ == DRIFTED && c.status == TRUE);
    (on && ready).then(|| NewCondition::new(DRIFTED, FALSE, Reason::InSync, "driftPolicy Repair: AWS matches the spec"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Change;
    use crate::reconcile::Action;

    fn action(component: ComponentKind, resource: &str, verb: Verb, changes: Vec<Change>) -> Action {
        Action { component, resource: resource.into(), verb, changes, note: None }
    }

    fn event(service: Service, name: &str, actor: &str) -> ChangeEvent {
        ChangeEvent {
            service,
            account: "1".into(),
            region: "eu-west-1".into(),
            event_name: "IncreaseStreamRetentionPeriod".into(),
            event_time: "2026-12-06T10:00:00Z".into(),
            actor: actor.into(),
            source_ip: "10.0.0.1".into(),
            user_agent: "aws-cli/2".into(),
            names: vec![name.into()],
        }
    }

    fn outcome() -> Outcome {
        Outcome {
            actions: vec![
                action(
                    ComponentKind::Stream,
                    "kinesis stream orders",
                    Verb::Update,
                    vec![Change::new("retentionHours", 48, 24)],
                ),
                action(ComponentKind::Delivery, "firehose delivery stream orders", Verb::Create, vec![]),
                action(ComponentKind::Pipe, "pipe p", Verb::Recover, vec![]),
            ],
            ..Outcome::default()
        }
    }

    #[test]
    fn what_a_pass_changed_on_a_pipeline_in_sync_is_drift_with_the_values_before_and_after() {
        let found = found(&outcome(), Mode::Apply, true);
        assert_eq!(found.len(), 2, "a recovery is not drift: {found:?}");
        assert_eq!(diff(&found[0].changes), "retentionHours: 24 → 48");
        assert_eq!(diff(&found[1].changes), "exists: true → false");
        assert!(super::found(&outcome(), Mode::Apply, false).is_empty(), "building is not drift");
        assert!(super::found(&outcome(), Mode::Observe, true).is_empty(), "paused reports no drift");
        assert_eq!(super::found(&outcome(), Mode::Plan, false).len(), 2);
    }

    #[test]
    fn a_drift_names_who_made_it_when_an_event_explains_it_and_says_so_when_none_does() {
        let found = &found(&outcome(), Mode::Apply, true)[0];
        let events = [
            event(Service::Kinesis, "other", "arn:aws:sts::1:assumed-role/x/bob"),
            event(Service::Kinesis, "orders", "arn:aws:sts::1:assumed-role/admin/alice"),
            event(Service::S3, "orders", "arn:aws:sts::1:assumed-role/admin/carol"),
        ];
        let d = record(found, &events, true, "now");
        assert_eq!(d.actor.as_deref(), Some("arn:aws:sts::1:assumed-role/admin/alice"));
        assert_eq!(d.found_by, "event");
        assert_eq!(
            note(&d),
            "stream: kinesis stream orders drifted: retentionHours: 24 → 48; by arn:aws:sts::1:assumed-role/admin/alice \
             (IncreaseStreamRetentionPeriod at 2026-12-06T10:00:00Z from 10.0.0.1 (aws-cli/2))"
        );
        let unexplained = record(found, &events[2..], false, "now");
        assert_eq!(unexplained.found_by, "resync");
        assert!(note(&unexplained).ends_with("found by resync; actor unknown"), "{}", note(&unexplained));
    }

    #[test]
    fn report_applies_a_generation_once_then_only_reads() {
        let mut sp = SalesPipeline::new("p", Default::default());
        sp.metadata.generation = Some(2);
        sp.spec.drift_policy = DriftPolicy::Report;
        assert_eq!(mode(&sp), Mode::Apply);
        sp.status = Some(SalesPipelineStatus { applied_generation: Some(1), ..Default::default() });
        assert_eq!(mode(&sp), Mode::Apply, "a new generation is applied");
        sp.status = Some(SalesPipelineStatus { applied_generation: Some(2), ..Default::default() });
        assert_eq!(mode(&sp), Mode::Plan);
        sp.spec.drift_policy = DriftPolicy::Repair;
        assert_eq!(mode(&sp), Mode::Apply);
        sp.spec.paused = true;
        assert_eq!(mode(&sp), Mode::Observe);
    }

    #[test]
    fn under_report_drift_stalls_with_the_diff_and_in_sync_is_ready() {
        let drifted = outcome();
        let found = found(&drifted, Mode::Plan, true);
        let conditions = report_conditions(&drifted, &found);
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!((get(READY).status, get(STALLED).status, get(RECONCILING).status), (FALSE, TRUE, FALSE));
        assert_eq!(get(DRIFTED).status, TRUE);
        assert!(
            get(DRIFTED).message.contains("kinesis stream orders retentionHours: 24 → 48"),
            "{}",
            get(DRIFTED).message
        );
        assert_eq!(conditions.iter().filter(|c| c.type_ == READY).count(), 1);
    }

    #[test]
    fn history_keeps_the_last_ten() {
        let one = |i: usize| Drift { resource: i.to_string(), ..Drift::default() };
        let kept = history(&(0..9).map(one).collect::<Vec<_>>(), vec![one(9), one(10), one(11)]);
        assert_eq!(
            kept.iter().map(|d| d.resource.as_str()).collect::<Vec<_>>(),
            ["2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
        );
    }
}
