//! sales-operator: a Kubernetes operator that builds and runs a real-time
//! product-sales analytics pipeline on AWS from one custom resource.
//!
//! Data flows one way: `api` (CRD types) → `names` (pure) → `aws` (one module
//! per component) → `reconcile` (order, no Kubernetes) → `controller` / CLI.

pub mod api;
mod architecture;
pub mod aws;
pub mod controller;
pub mod dataflow;
pub mod events;
pub mod generator;
pub mod named_queries;
pub mod names;
pub mod order;
pub mod partitions;
pub mod reconcile;
pub mod run_query;
pub mod telemetry;

use std::time::Duration;

/// A duration as flags take and show it (`10s`, `1m30s`, `250ms`): clap's `default_value_t`
/// prints a constant's value in `--help`, so a default is written once, where it is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub Duration);

impl std::str::FromStr for Flag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Flag)
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = jiff::SignedDuration::try_from(self.0).map_err(|_| std::fmt::Error)?;
        write!(f, "{d:#}")
    }
}

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
