//! Kubernetes Events about SalesPipelines: Warnings through the shared recorder (repeats fold
//! into a series), Normal events through one-off recorders.

use kube::runtime::events::{Event, EventType, Recorder};
use kube::Resource;

use super::Context;
use crate::api::SalesPipeline;

pub fn warning(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(truncate(&note)),
        action: action.into(),
        secondary: None,
    }
}

pub fn truncate(s: &str) -> String {
    let mut end = s.len().min(1000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

pub async fn publish(ctx: &Context, sp: &SalesPipeline, event: Event) {
    // kube's Recorder caches each event it publishes for 6 minutes to fold repeats into a series
    // (by reason, not note). Normal events (one per component changed in AWS) are not repeats:
    // each gets a one-off recorder, so creating 1,000 pipelines leaves no cache of ~8,000 events
    // behind. Warnings share one recorder, so an error that repeats on every retry stays one series.
    let recorder = match event.type_ {
        EventType::Normal => None,
        EventType::Warning => Some(&ctx.recorder),
    };
    publish_with(ctx, sp, event, recorder).await
}

/// Publishes a Warning that is no repeat (each drift is its own): never folded into an earlier one.
pub async fn publish_distinct(ctx: &Context, sp: &SalesPipeline, event: Event) {
    publish_with(ctx, sp, event, None).await
}

/// Publishes `event` through `recorder`, or a one-off recorder.
async fn publish_with(ctx: &Context, sp: &SalesPipeline, event: Event, recorder: Option<&Recorder>) {
    let one_off;
    let recorder = match recorder {
        Some(shared) => shared,
        None => {
            one_off = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
            &one_off
        }
    };
    if let Err(e) = recorder.publish(&event, &sp.object_ref(&())).await {
        tracing::warn!(error = %e, reason = %event.reason, "cannot publish event");
    }
}
