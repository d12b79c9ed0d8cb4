//! sales-operator: a Kubernetes operator that builds and runs a real-time
//! product-sales analytics pipeline on AWS from one custom resource.
//!
//! Data flows one way: `api` (CRD types) → `names` (pure) → `aws` (one module
//! per component) → `reconcile` (order, no Kubernetes) → `controller` / CLI.

pub mod api;
pub mod aws;
pub mod names;
pub mod order;
pub mod queries;
pub mod reconcile;
