//! The dependency graph as data, and the one walker that runs the components
//! along it: forwards for a reconcile, backwards for a teardown.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::aws::{ComponentKind, Ref};

/// Starts `start(kind)` for each of `kinds` as soon as `ready(kind, finished)` holds, all that
/// are ready at once, until nothing more can start: what each started component returned (the
/// ones missing never started). The walk of [`reconcile`] and [`teardown`] alike.
pub(super) async fn walk<'f, T>(
    kinds: &[ComponentKind],
    mut ready: impl FnMut(ComponentKind, &BTreeMap<ComponentKind, T>) -> bool,
    mut start: impl FnMut(ComponentKind) -> BoxFuture<'f, (ComponentKind, T)>,
) -> BTreeMap<ComponentKind, T> {
    let mut finished = BTreeMap::new();
    let mut started = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        for &kind in kinds {
            if !started.contains(&kind) && ready(kind, &finished) {
                started.push(kind);
                running.push(start(kind));
            }
        }
        match running.next().await {
            Some((kind, result)) => {
                finished.insert(kind, result);
            }
            None => return finished,
        }
    }
}

/// What a component needs of another before it is reconciled: the edges of [`GRAPH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Its identifiers (ARNs) are known: it exists, even while AWS is still creating it.
    Exists(ComponentKind),
    /// It is usable (ACTIVE, RUNNING).
    Ready(ComponentKind),
    /// The roles it is given have had [`Memory::iam_settle`](crate::aws::Memory) to propagate
    /// through IAM since they last changed (a service refuses, or fails on, a younger role).
    RolesSettled,
    /// A value its desired state is built from is known (in a plan it is shown as
    /// `(known after apply)` instead): a resource can exist without it, e.g. a table whose
    /// stream was turned off, or one adopted while AWS is still creating it.
    Known(Ref),
}

use ComponentKind::{Analytics, Bucket, Catalog, Delivery, Iam, Pipe, Stream, Table};
use Need::{Exists, Known, Ready, RolesSettled};
use Ref::{Account, BucketArn, FirehoseRoleArn, PipeRoleArn, StreamArn, TableStreamArn};

/// The dependency graph as data: every component with what it needs. [`reconcile`] starts each
/// component as soon as its needs are met, concurrently (the roles' policies name the table's
/// stream, the Kinesis stream and the bucket, which AWS gives at once, while it is still creating
/// them); [`teardown`] removes a component once everything that needs it is gone.
pub const GRAPH: [(ComponentKind, &[Need]); 8] = [
    (Table, &[]),
    (Stream, &[]),
    (Bucket, &[]),
    (
        Iam,
        &[
            Exists(Table),
            Exists(Stream),
            Exists(Bucket),
            Known(TableStreamArn),
            Known(StreamArn),
            Known(BucketArn),
            Known(Account),
        ],
    ),
    (
        Pipe,
        &[
            Ready(Table),
            Ready(Stream),
            Ready(Iam),
            RolesSettled,
            Known(TableStreamArn),
            Known(StreamArn),
            Known(PipeRoleArn),
        ],
    ),
    (
        Delivery,
        &[
            Ready(Stream),
            Ready(Bucket),
            Ready(Iam),
            RolesSettled,
            Known(StreamArn),
            Known(BucketArn),
            Known(FirehoseRoleArn),
        ],
    ),
    (Catalog, &[Exists(Table), Exists(Bucket), Ready(Iam), RolesSettled]),
    (Analytics, &[Exists(Table), Exists(Bucket)]),
];

/// Where a component got to in a pass, as its dependents see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Usable (or, read-only, as usable as it will get): dependents may go on.
    Ready,
    /// It exists and its identifiers are known, but it is not usable yet.
    Exists,
    /// Absent in a read-only pass: shown as a create, and dependents are planned too.
    Planned,
    /// Not usable this pass (an error, a conflict, not visible yet).
    Stopped,
}

impl Progress {
    pub(super) fn meets(self, need: Need) -> bool {
        match need {
            Exists(_) => matches!(self, Progress::Ready | Progress::Exists | Progress::Planned),
            Ready(_) => matches!(self, Progress::Ready | Progress::Planned),
            RolesSettled | Known(_) => true,
        }
    }
}

/// A component's place in the graph (the order status, actions and errors are shown in).
pub(super) fn rank(kind: ComponentKind) -> usize {
    GRAPH.iter().position(|(k, _)| *k == kind).unwrap_or(GRAPH.len())
}

/// The components that need `kind` ([`GRAPH`] read backwards).
pub(super) fn dependents(kind: ComponentKind) -> impl Iterator<Item = ComponentKind> {
    GRAPH
        .iter()
        .filter(move |(_, needs)| needs.iter().any(|n| matches!(n, Exists(k) | Ready(k) if *k == kind)))
        .map(|(dependent, _)| *dependent)
}
