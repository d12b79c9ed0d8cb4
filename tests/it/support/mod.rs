//! What the suites share: the emulators and servers they start (moto, Trino, the Kubernetes
//! test environment, the status judge), the operator as a process, and the stand-ins for what
//! the emulator does not run. One instance of each serves the whole test crate.

pub mod accounts;
pub mod apply;
pub mod delivery_standin;
pub mod helm_chart;
pub mod kube_env;
pub mod moto;
pub mod operator;
pub mod s3_counter;
pub mod status_judge;
pub mod trino;

/// A process's output as text (lossy UTF-8).
pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}
