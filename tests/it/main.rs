//! The integration tests: one test crate (one binary to build and link, instead of one per
//! suite, each linking the nine AWS SDK crates), one module per suite.
//!
//! Run one suite with `cargo test --test it pipeline_moto::` (a module path filters), one
//! test with its full name, the ignored benchmark with
//! `cargo test --test it -- --ignored queries_trino::bench_` (scripts/bench-queries.sh).
//!
//! What the suites share in this one process, and what keeps them apart:
//! - moto: every suite that drives AWS itself has a server of its own
//!   (`crate::support::moto::own_server!()`), as it had as a binary of its own: moto's quota of
//!   50 Firehose streams per region, its queue of canned Athena results and the AWS-behaviour
//!   layer's rules and counters stay the suite's. The suites that run the operator as a process
//!   (controller_e2e, generator_controller_e2e, status_judged_e2e, chart) share the default one;
//!   they set no rules and create fewer than 20 pipelines between them. `moto::unique` names are
//!   unique across the process (one counter).
//! - one process environment: `moto::set_aws_env` sets only what is the same for every server
//!   (dummy credentials, region); each server's endpoint goes into the SDK settings, and to the
//!   `sales-operator` processes in their own environment (`moto::aws_env()`).

mod support;

mod argocd_health;
mod aws_behaviour;
mod aws_timing;
mod change_events_e2e;
mod chart;
mod cli;
mod controller_e2e;
mod dashboards;
mod data_health_e2e;
mod dataflow_moto;
mod delivered_fixture;
mod events_setup;
mod generator_controller_e2e;
mod generator_moto;
mod iam_policy;
mod identities;
mod identities_e2e;
mod image;
mod kube_env_smoke;
mod manifest_agreement;
mod order_generator_crd;
mod ownership_moto;
mod pipeline_moto;
mod printed_commands;
mod queries_trino;
mod query_moto;
mod release;
mod status_judged_e2e;
