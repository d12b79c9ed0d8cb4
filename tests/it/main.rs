//! The integration tests: one test crate (one binary to build and link, instead of one per
//! suite, each linking the nine AWS SDK crates), one module per suite.
//!
//! Run one suite with `cargo test --test it pipeline_moto::` (a module path filters), one
//! test with its full name, the ignored benchmark with
//! `cargo test --test it -- --ignored queries_trino::bench_` (scripts/bench-queries.sh).

mod support;

mod argocd_health;
mod aws_behaviour;
mod aws_timing;
mod chart;
mod cli;
mod controller_e2e;
mod delivered_fixture;
mod generator_controller_e2e;
mod generator_moto;
mod iam_policy;
mod kube_env_smoke;
mod manifest_agreement;
mod order_generator_crd;
mod ownership_moto;
mod pipeline_moto;
mod queries_trino;
mod query_moto;
mod status_judged_e2e;
