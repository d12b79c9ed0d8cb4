//! Brings AWS to a pipeline's desired state, walking the components along
//! the dependency graph, and tears it down in reverse. Knows nothing about
//! Kubernetes: the CLI and the controller share it unchanged.
//!
//! Rooms: [`graph`] (the graph as data and its walker), [`converge`] (one
//! component's pass), [`teardown`], [`outcome`] (what a pass did),
//! [`status`] (the conditions it gives), [`memory`] (what the reconciler
//! remembers and its pace), [`components`] (the seam to AWS, or to fakes).

pub mod components;
mod converge;
#[cfg(test)]
mod fake;
pub mod graph;
pub mod memory;
pub mod outcome;
pub mod status;
mod teardown;
#[cfg(test)]
mod tests;

pub use components::{Components, Env, Step};
pub use graph::{Need, GRAPH};
pub use memory::{Memory, Timing, IAM_PROPAGATION_WINDOW, IAM_SETTLE, MAX_RECOVERIES, WAIT_PACE};
pub use outcome::{Action, ComponentState, Mode, Outcome, Teardown, Verb};

use crate::api::DeletionPolicy;
use crate::aws::{Clients, PipelineCtx};

/// The reconciler of one AWS account and region: its components (the AWS clients, or fakes in
/// tests), what it remembers between passes, and its pace.
#[derive(Clone, Debug)]
pub struct Reconciler<A = Clients> {
    pub aws: A,
    pub memory: Memory,
    pub timing: Timing,
}

impl<A: Components> Reconciler<A> {
    pub fn new(aws: A, timing: Timing) -> Self {
        Self { aws, memory: Memory::default(), timing }
    }
}

/// One pass over the components along [`GRAPH`]: each starts as soon as what it needs is there,
/// independent ones concurrently. What waits on something that is not there yet this pass is
/// left for the next one (`Outcome::wait` says when).
pub async fn reconcile<A: Components>(r: &Reconciler<A>, ctx: &PipelineCtx, mode: Mode) -> Outcome {
    converge::pass(r, ctx, mode).await
}

/// Removes the pipeline's resources in reverse dependency order; under `Retain` the table and the
/// bucket (and their data) are kept, and nothing that is not the pipeline's (untagged, another
/// pipeline's, or an adopted table or bucket) is ever deleted.
pub async fn teardown<A: Components>(
    r: &Reconciler<A>,
    ctx: &PipelineCtx,
    policy: DeletionPolicy,
    dry_run: bool,
) -> Teardown {
    teardown::remove(r, ctx, policy, dry_run).await
}
