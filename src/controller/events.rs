//! What the operator does when a change-event queue stops or starts answering: a Kubernetes
//! Event a user sees, and, on the way down, every pipeline looked at again within the short
//! resync (their next passes were set an hour away).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::context::POLL_RESYNC;
use super::{Context, RunArgs};
use crate::events::consumer::Watcher;

/// Reports a queue's health on the operator's Pod.
pub struct QueueWatcher {
    ctx: Arc<Context>,
    pod: ObjectReference,
}

impl QueueWatcher {
    pub fn new(ctx: Arc<Context>, args: &RunArgs) -> Self {
        let name =
            args.identity.clone().or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "sales-operator".into());
        let pod = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(args.lease_namespace.clone()),
            name: Some(name),
            ..ObjectReference::default()
        };
        Self { ctx, pod }
    }

    fn publish(&self, type_: EventType, reason: &str, note: String) {
        let (ctx, pod) = (self.ctx.clone(), self.pod.clone());
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "ReadChangeEvents".into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = ctx.recorder.publish(&event, &pod).await {
                tracing::warn!(error = %e, reason = %event.reason, "cannot publish event");
            }
        });
    }
}

impl Watcher for QueueWatcher {
    fn down(&self, queue: &str, why: &str) {
        let every = POLL_RESYNC.as_secs() / 60;
        self.publish(
            EventType::Warning,
            "ChangeEventsDown",
            format!("cannot read change-event queue {queue}: {why}; every pipeline is re-checked every {every} minutes until it answers"),
        );
        // Spread over the short resync, so that falling back is not a burst of every pipeline.
        let feed = self.ctx.events.clone();
        tokio::spawn(async move {
            let pipelines = feed.pipelines();
            let step = POLL_RESYNC / u32::try_from(pipelines.len().max(1)).unwrap_or(u32::MAX);
            for pipeline in pipelines {
                if feed.healthy() {
                    return;
                }
                feed.trigger(pipeline);
                tokio::time::sleep(step).await;
            }
        });
    }

    fn up(&self, queue: &str) {
        self.publish(
            EventType::Normal,
            "ChangeEventsUp",
            format!("change-event queue {queue} answers again: changes in AWS reconcile their pipeline within seconds"),
        );
    }
}
