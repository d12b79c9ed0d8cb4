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
pub mod reconcile;
pub mod telemetry;

use std::time::Duration;

/// Parses `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: use e.g. 30s, 10m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration unit in {s:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}
