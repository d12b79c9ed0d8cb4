//! The Helm chart (charts/sales-operator) as the tests use it: rendered with
//! the real `helm` of the Kubernetes test environment, so the RBAC the tests
//! run the operator under is the chart's own.
//!
//! Include next to kube_env (both at the top level of tests/<name>.rs):
//! ```ignore
//! #[path = "support/kube_env.rs"]
//! mod kube_env;
//! #[path = "support/helm_chart.rs"]
//! mod helm_chart;
//! ```
#![allow(dead_code)]

use std::path::PathBuf;

use crate::kube_env::{project_dir, KubeEnv};

/// The release name the tests install the chart as; its full name (ServiceAccount,
/// Roles, Lease) is then `sales-operator`, the binary's default lease name.
pub const RELEASE: &str = "sales-operator";

pub fn chart_dir() -> PathBuf {
    project_dir().join("charts").join("sales-operator")
}

/// `helm template RELEASE chart -n ns <args>`; panics with helm's stderr on failure.
pub fn template(env: &KubeEnv, ns: &str, args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec!["template", RELEASE, chart.to_str().unwrap(), "-n", ns];
    all.extend_from_slice(args);
    let out = env.helm(&all);
    assert!(out.status.success(), "helm {}:\n{}", all.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The chart's ServiceAccount and RBAC for an operator that watches `ns` only
/// (installed in `ns`): what `helm install --set watchNamespaces={ns}` creates
/// besides the Deployment and Service.
pub fn operator_rbac(env: &KubeEnv, ns: &str) -> String {
    template(
        env,
        ns,
        &[
            "--set",
            &format!("watchNamespaces={{{ns}}}"),
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    )
}

/// The documents of a rendered multi-document YAML stream (empty ones dropped).
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in yaml.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            if current.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
                let doc: serde_json::Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("cannot parse rendered YAML: {e}\n{current}"));
                docs.push(doc);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// Every (apiGroup, resource, verb) granted by the `rules` of a Role or ClusterRole.
pub fn granted(role: &serde_json::Value) -> std::collections::BTreeSet<(String, String, String)> {
    let mut out = std::collections::BTreeSet::new();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    for rule in role["rules"].as_array().cloned().unwrap_or_default() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}
