//! The Helm chart (charts/sales-operator) as the tests use it: rendered with
//! the real `helm` of the Kubernetes test environment, so the RBAC the tests
//! run the operator under is the chart's own.
#![allow(dead_code)]

use std::path::PathBuf;

use super::kube_env::{project_dir, KubeEnv};

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

/// `rbac` (rendered YAML) with `verb` taken off every rule for exactly `resource`
/// (a rule left without verbs is dropped). Panics when no rule granted it.
pub fn without_verb(rbac: &str, resource: &str, verb: &str) -> String {
    let lines: Vec<&str> = rbac.lines().collect();
    let wanted = format!("resources: [\"{resource}\"]");
    let mut out: Vec<String> = Vec::new();
    let mut removed = false;
    let mut i = 0;
    while i < lines.len() {
        let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or_default();
        if lines[i].trim() == wanted && next.starts_with("verbs: [") {
            let list = next.trim_start_matches("verbs: [").trim_end_matches(']');
            let verbs: Vec<&str> = list.split(',').map(|v| v.trim().trim_matches('"')).collect();
            let kept: Vec<String> = verbs.iter().filter(|v| **v != verb).map(|v| format!("\"{v}\"")).collect();
            removed |= kept.len() < verbs.len();
            if kept.is_empty() {
                out.pop(); // the rule's `- apiGroups:` line
            } else {
                let indent = &lines[i + 1][..lines[i + 1].len() - next.len()];
                out.push(lines[i].to_string());
                out.push(format!("{indent}verbs: [{}]", kept.join(", ")));
            }
            i += 2;
            continue;
        }
        out.push(lines[i].to_string());
        i += 1;
    }
    assert!(removed, "no rule grants {verb} on {resource}:\n{rbac}");
    out.join("\n") + "\n"
}
