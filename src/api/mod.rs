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
