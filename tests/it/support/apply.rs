//! Applying a pipeline as `sales-operator apply` does: passes until it is Ready or stalled,
//! each after the pause the last one asked for (AWS creates resources asynchronously).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sales_operator::aws::PipelineCtx;
use sales_operator::reconcile::Reconciler;
use sales_operator::reconcile::{reconcile, Mode, Outcome};

/// Longest an apply may take in the tests.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Reconciles until Ready, stalled, or [`APPLY_TIMEOUT`]; the last pass's outcome.
pub async fn converge(c: &Reconciler, ctx: &PipelineCtx) -> Outcome {
    converge_observed(c, ctx, |_| {}).await
}

/// [`converge`], showing every pass's outcome to `each` (to check what a user would see meanwhile).
pub async fn converge_observed(c: &Reconciler, ctx: &PipelineCtx, mut each: impl FnMut(&Outcome)) -> Outcome {
    let deadline = Instant::now() + APPLY_TIMEOUT;
    loop {
        let outcome = reconcile(c, ctx, Mode::Apply).await;
        each(&outcome);
        if outcome.ready() || outcome.stalled() || Instant::now() >= deadline {
            return outcome;
        }
        tokio::time::sleep(outcome.wait.unwrap_or(Duration::from_millis(200))).await;
    }
}
