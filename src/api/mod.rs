//! Custom resource types of the `sales-operator.dev/v1alpha1` API.

pub mod aws_identity;
pub mod conditions;
pub mod manifest;
pub mod order_generator;
pub mod reason;
pub mod sales_pipeline;

pub use aws_identity::{AwsIdentity, AwsIdentitySpec, NamespaceSelector, RoleToAssume};
pub use order_generator::{OrderGenerator, OrderGeneratorSpec, OrderGeneratorStatus};
pub use reason::Reason;
pub use sales_pipeline::*;

/// API group of every custom resource of the operator.
pub const GROUP: &str = "sales-operator.dev";

/// Set to a new value (e.g. the time) to have a SalesPipeline reconciled now, re-reading AWS
/// even when it is stalled; its `status.lastHandledReconcileAt` echoes the value once done (as
/// Flux's `reconcile.fluxcd.io/requestedAt`).
pub const RECONCILE_REQUESTED_AT: &str = "sales-operator.dev/reconcile-requested-at";
