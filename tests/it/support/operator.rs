//! `sales-operator run` as a process for the end-to-end tests: the shared
//! Kubernetes test environment with the CRDs applied, namespaces whose operator
//! runs under the Helm chart's own ServiceAccount and Role, and the operator's
//! /metrics.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::kube_env::{project_dir, KubeEnv};
use super::{helm_chart, moto};

/// The shared test API server, with the project's CRDs established.
pub fn env() -> &'static KubeEnv {
    static CRDS: OnceLock<()> = OnceLock::new();
    let env = KubeEnv::shared();
    CRDS.get_or_init(|| {
        env.apply_crds(&[&project_dir().join("crds")]);
    });
    env
}

/// A kubeconfig with the token of the chart's ServiceAccount in `ns`, after applying the chart's
/// RBAC for an operator that watches `ns` (`helm template --set watchNamespaces={ns}`).
pub fn operator_kubeconfig(ns: &str) -> PathBuf {
    let env = env();
    apply_rbac(&helm_chart::operator_rbac(env, ns));
    env.kubeconfig_for_token(&env.service_account_token(ns, "sales-operator"))
}

/// A new namespace (named from `prefix`) and [`operator_kubeconfig`] for it.
pub fn namespace_with_operator_role(prefix: &str) -> (String, PathBuf) {
    let ns = env().create_namespace(prefix);
    let kubeconfig = operator_kubeconfig(&ns);
    (ns, kubeconfig)
}

pub fn apply_rbac(rbac: &str) {
    let out = env().kubectl_stdin(&["apply", "-f", "-"], rbac);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A running `sales-operator run` watching one namespace, against moto; killed on drop.
pub struct Operator {
    child: Child,
    metrics: String,
    log: PathBuf,
}

impl Operator {
    /// Starts it for `ns` with `kubeconfig`'s credentials and the `extra` flags.
    pub fn start(ns: &str, kubeconfig: &Path, extra: &[&str]) -> Operator {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("sales-operator-e2e-{ns}-{port}.log"));
        let metrics = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .args(["run", "--namespace", ns, "--metrics-address", &metrics, "--lease-namespace", ns])
            .args(extra)
            .envs(moto::aws_env())
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,sales_operator=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sales-operator run");
        Operator { child, metrics, log }
    }

    /// `GET path` on the metrics server: status and body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
    }

    /// Sum of the `sales_operator_aws_calls_total` samples matching `filter`.
    pub fn aws_calls(&self, filter: &str) -> u64 {
        let (_, body) = self.get("/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with("sales_operator_aws_calls_total") && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl -n NS ARGS…`: its stdout; the test fails on an error.
pub fn kubectl(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    env().kubectl_ok(&all)
}

/// `kubectl get WHAT -o jsonpath=PATH` in `ns`.
pub fn jsonpath(ns: &str, what: &str, path: &str) -> String {
    kubectl(ns, &["get", what, "-o", &format!("jsonpath={path}")])
}

/// `field` (`status`, `reason`, `message`) of SalesPipeline `name`'s condition `type_`.
pub fn condition(ns: &str, name: &str, type_: &str, field: &str) -> String {
    jsonpath(ns, &format!("sp/{name}"), &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"))
}

/// `kubectl apply`s SalesPipeline `name` in `ns` with `spec` (YAML lines indented under `spec:`).
pub fn apply(ns: &str, name: &str, spec: &str) {
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\nspec:\n{spec}"
    );
    let out = env().kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &yaml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Waits (up to `timeout`) until SalesPipeline `name` is Ready for its current generation.
pub fn wait_ready(ns: &str, name: &str, op: &Operator, timeout: Duration) {
    let what = format!("sp/{name}");
    let ready = super::kube_env::wait_until(timeout, || {
        condition(ns, name, "Ready", "status") == "True"
            && jsonpath(ns, &what, "{.status.observedGeneration}") == jsonpath(ns, &what, "{.metadata.generation}")
    });
    assert!(ready, "not Ready:\n{}\noperator log:\n{}", kubectl(ns, &["get", "sp", name, "-o", "yaml"]), op.log());
}
