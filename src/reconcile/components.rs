//! The seam between the walker and AWS: for each kind, the component that
//! serves it. [`Clients`] gives the real ones (one module of `crate::aws`
//! each); tests give scripted fakes, so the state machine runs in-process.

use std::future::Future;

use super::memory::Memory;
use crate::aws::analytics::Workgroups;
use crate::aws::bucket::Buckets;
use crate::aws::catalog::Catalogs;
use crate::aws::delivery::Deliveries;
use crate::aws::iam::Roles;
use crate::aws::pipe::Pipes;
use crate::aws::stream::Streams;
use crate::aws::table::Tables;
use crate::aws::tagging::TagIndex;
use crate::aws::{Clients, Component, ComponentKind, PipelineCtx};

/// What a component is built with for one pass: the pass's ownership-tag index and the
/// reconciler's memory (the IAM component keeps its role writes there).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub tags: &'a TagIndex,
    pub memory: &'a Memory,
}

/// Something to do with one component, whatever its type: the walker's step.
pub trait Step<'a> {
    type Output;
    fn run<C: Component + 'a>(self, component: C) -> Self::Output;
}

/// Where the components of a pipeline come from.
pub trait Components: Sync {
    /// Runs `step` on the component of `kind`.
    fn with<'a, S: Step<'a>>(&'a self, kind: ComponentKind, env: Env<'a>, step: S) -> S::Output;

    /// The tags of the pipeline's resources, read once for a pass (empty when unreadable:
    /// each component then reads its own).
    fn tag_index<'a>(&'a self, ctx: &'a PipelineCtx) -> impl Future<Output = TagIndex> + Send + 'a;
}

impl Components for Clients {
    fn with<'a, S: Step<'a>>(&'a self, kind: ComponentKind, env: Env<'a>, step: S) -> S::Output {
        let tags = env.tags;
        match kind {
            ComponentKind::Table => step.run(Tables(&self.dynamodb, tags)),
            ComponentKind::Stream => step.run(Streams(&self.kinesis, tags)),
            ComponentKind::Bucket => step.run(Buckets(&self.s3, tags)),
            ComponentKind::Iam => step.run(Roles(&self.iam, &env.memory.role_writes)),
            ComponentKind::Pipe => step.run(Pipes(&self.pipes)),
            ComponentKind::Delivery => step.run(Deliveries(&self.firehose, tags)),
            ComponentKind::Catalog => step.run(Catalogs(&self.glue, tags)),
            ComponentKind::Analytics => step.run(Workgroups(&self.athena, tags, &self.athena_batch_gets)),
        }
    }

    fn tag_index<'a>(&'a self, ctx: &'a PipelineCtx) -> impl Future<Output = TagIndex> + Send + 'a {
        TagIndex::fetch_or_empty(&self.tagging, ctx)
    }
}
