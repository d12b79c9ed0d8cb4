//! sales-operator: a Kubernetes operator that builds and runs a real-time
//! product-sales analytics pipeline on AWS from one custom resource.
//!
//! Data flows one way: `api` (CRD types) → `names` (pure) → `aws` (one module
//! per component) → `reconcile` (order, no Kubernetes) → `controller` / CLI.

pub mod api;
pub mod aws;
pub mod controller;
pub mod generator;
pub mod names;
pub mod order;
pub mod queries;
pub mod query;
pub mod reconcile;
pub mod telemetry;

use std::time::Duration;

/// Parses `90s`, `10m`, `1h30m`, `250ms`, `1.5s` or plain seconds (`60`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    let d: jiff::SignedDuration =
        s.parse().map_err(|_| format!("invalid duration {s:?}: use e.g. 250ms, 30s, 10m or 1h30m"))?;
    Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: must not be negative"))
}
