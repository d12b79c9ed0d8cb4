//! The Helm chart (charts/sales-operator) with the real helm and kubectl of the
//! Kubernetes test environment: lint, render, values schema, RBAC equal to what
//! the operator uses, install/upgrade/uninstall into a real API server, CRDs
//! upgraded by `helm upgrade` and kept by `helm uninstall`, the examples
//! validated server-side, and the installed operator (its rendered arguments and
//! ServiceAccount, run as a process) reconciling a pipeline.

use crate::support::helm_chart;
use crate::support::kube_env;
use crate::support::moto;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use helm_chart::{chart_dir, documents, granted, template};
use kube_env::{project_dir, wait_until, KubeEnv};
use sales_operator::controller::{CLUSTER_PERMISSIONS, KUBERNETES_PERMISSIONS};

const ALL_FEATURES: &str = "charts/sales-operator/ci/all-features-values.yaml";

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn helm_ok(env: &KubeEnv, args: &[&str]) -> String {
    let out = env.helm(args);
    assert!(out.status.success(), "helm {} failed:\n{}", args.join(" "), text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This suite's own control plane, with the CRDs (crds/, as a cluster whose CRDs are managed
/// outside the chart) and prometheus-operator's real ServiceMonitor and PrometheusRule CRDs
/// ([`prometheus_operator_crds`]) applied once, so that the API server validates the chart's
/// monitoring objects against their real schemas. Not the shared one: the chart installs
/// cluster-scoped objects here (ClusterRoles) and runs an operator that watches every namespace,
/// which in the shared control plane would reconcile the other suites' SalesPipelines and
/// OrderGenerators beside their own operators. Releases in it are installed with [`NO_CRDS`]:
/// only one release can own the CRDs.
fn env_with_crds() -> &'static KubeEnv {
    static ENV: OnceLock<KubeEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = KubeEnv::start().unwrap_or_else(|e| panic!("kube-env: {e}"));
        env.apply_crds(&[&project_dir().join("crds"), &prometheus_operator_crds()]);
        env
    })
}

/// The directory of prometheus-operator's own ServiceMonitor and PrometheusRule CRDs (pinned,
/// fetched from its Go module by scripts/monitoring-tools.sh).
fn prometheus_operator_crds() -> PathBuf {
    let out = Command::new("bash")
        .arg(project_dir().join("scripts/monitoring-tools.sh"))
        .arg("crds")
        .output()
        .expect("scripts/monitoring-tools.sh");
    assert!(out.status.success(), "scripts/monitoring-tools.sh crds: {}", text(&out));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default());
    for kind in ["servicemonitors", "prometheusrules"] {
        assert!(dir.join(format!("monitoring.coreos.com_{kind}.yaml")).is_file(), "{}: no {kind} CRD", dir.display());
    }
    dir
}

/// `--set` value of a release that leaves the CRDs to [`env_with_crds`].
const NO_CRDS: &str = "crds.install=false";

/// The chart's CRD copies (templated by templates/crds.yaml).
fn chart_crd_dir() -> PathBuf {
    chart_dir().join("files").join("crds")
}

/// A parsed YAML or JSON file.
fn read_yaml(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [serde_json::Value], k: &str) -> &'a serde_json::Value {
    let found = kind(docs, k);
    assert_eq!(found.len(), 1, "expected one {k}, got {}", found.len());
    found[0]
}

/// The document of kind `k` named `name`.
fn named<'a>(docs: &'a [serde_json::Value], k: &str, name: &str) -> &'a serde_json::Value {
    let found: Vec<_> = kind(docs, k).into_iter().filter(|d| d["metadata"]["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one {k} {name}, got {}", found.len());
    found[0]
}

/// Names of the documents of kind `k`.
fn names_of(docs: &[serde_json::Value], k: &str) -> BTreeSet<String> {
    kind(docs, k).iter().filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string)).collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn env_var<'a>(container: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)
}

fn yaml_files(dir: PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

type Perm = (String, String, String);

/// `table` expanded to (group, resource, verb).
fn expanded(table: &[(&str, &str, &[&str])]) -> BTreeSet<Perm> {
    let mut out = BTreeSet::new();
    for (group, resource, verbs) in table {
        for verb in *verbs {
            out.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    out
}

/// KUBERNETES_PERMISSIONS expanded to (group, resource, verb): (watched namespaces, leader election).
fn code_permissions() -> (BTreeSet<Perm>, BTreeSet<Perm>) {
    let (mut watched, mut lease) = (BTreeSet::new(), BTreeSet::new());
    for (group, resource, verbs) in KUBERNETES_PERMISSIONS {
        let target = if *resource == "leases" { &mut lease } else { &mut watched };
        for verb in *verbs {
            target.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    (watched, lease)
}

/// What `granted` has beyond `used` (never used) and what `used` lacks (missing).
fn compare(granted: &BTreeSet<Perm>, used: &BTreeSet<Perm>) -> (Vec<Perm>, Vec<Perm>) {
    (granted.difference(used).cloned().collect(), used.difference(granted).cloned().collect())
}

#[test]
fn chart_crds_are_byte_identical_to_the_generated_crds() {
    let top: Vec<PathBuf> = yaml_files(project_dir().join("crds"));
    let chart: Vec<PathBuf> = yaml_files(chart_crd_dir());
    let names = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(
        names(&chart),
        names(&top),
        "charts/sales-operator/files/crds/ must hold exactly crds/*.yaml: run `cp crds/*.yaml charts/sales-operator/files/crds/`"
    );
    for (a, b) in top.iter().zip(&chart) {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from {}: run `cp crds/*.yaml charts/sales-operator/files/crds/`",
            b.display(),
            a.display()
        );
    }
}

#[test]
fn chart_lints_clean_with_defaults_and_with_every_feature_on() {
    let env = KubeEnv::shared();
    let chart = chart_dir();
    for extra in [vec![], vec!["-f", ALL_FEATURES]] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let out = env.command(env.bin_dir().join("helm")).current_dir(project_dir()).args(&args).output().unwrap();
        assert!(out.status.success(), "helm {}:\n{}", args.join(" "), text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 chart(s) failed"), "{}", text(&out));
    }
}

#[test]
fn defaults_render_cluster_rbac_and_a_hardened_single_replica_deployment() {
    let env = KubeEnv::shared();
    let docs = documents(&template(env, "ops", &[]));
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .into_iter()
        .collect(),
        "no PodDisruptionBudget for one replica, no ServiceMonitor unless enabled"
    );
    // The image the release workflow publishes for this version (.github/workflows/release.yml).
    let image = one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert_eq!(image, format!("ghcr.io/sales-operator/sales-operator:{}", env!("CARGO_PKG_VERSION")));
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sales-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    for arg in [
        "--metrics-address=0.0.0.0:8080",
        "--leader-election=true",
        "--log-format=text",
        "--data-health-interval=1m",
        "--data-health-window=5m",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} missing: {args:?}");
    }
    // The operator chooses the resync (1 h while change events flow, else 5 min) unless it is set.
    assert!(!args.iter().any(|a| a.starts_with("--resync-period") || a.starts_with("--events-queue")), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--namespace")), "watches every namespace: {args:?}");
    assert_eq!(env_var(c, "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env_var(c, "POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
    assert_eq!(env_var(c, "SALES_OPERATOR_GENERATOR_IMAGE").unwrap()["value"], c["image"]);
    assert!(env_var(c, "AWS_ENDPOINT_URL").is_none(), "real AWS unless an endpoint is set");
    assert!(env_var(c, "SALES_OPERATOR_NAME_PREFIX").is_none(), "every name unless a prefix is set");
    assert!(env_var(c, "SALES_OPERATOR_REQUIRE_IDENTITY").is_none(), "the operator's own credentials unless required");
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http-metrics");
    // The Lease only in the release namespace.
    assert_eq!(one(&docs, "Role")["metadata"]["namespace"], "ops");
}

#[test]
fn every_feature_on_renders_namespaced_rbac_pdb_service_monitor_and_settings() {
    let env = KubeEnv::shared();
    let docs = documents(&template(env, "ops", &["-f", ALL_FEATURES]));
    // Cluster-wide only what AwsIdentities need: nothing on pipelines outside the watched namespaces.
    assert_eq!(
        names_of(&docs, "ClusterRole"),
        ["sales-operator-ops-identities", "sales-operator-ops-identity-admin", "sales-operator-ops-identity-reader"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        names_of(&docs, "ClusterRoleBinding"),
        ["sales-operator-ops-identities", "sales-operator-ops-identity-reader"].map(String::from).into(),
        "the admin role is bound to nobody"
    );
    let reader = named(&docs, "ClusterRoleBinding", "sales-operator-ops-identity-reader");
    assert_eq!(reader["subjects"][0]["name"], "shop-developers");
    let admin = named(&docs, "ClusterRole", "sales-operator-ops-identity-admin");
    assert_eq!(admin["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"], "true");
    let role_namespaces: BTreeSet<&str> =
        kind(&docs, "Role").iter().filter_map(|r| r["metadata"]["namespace"].as_str()).collect();
    assert_eq!(role_namespaces, ["analytics", "ops", "shop"].into_iter().collect());
    for binding in kind(&docs, "RoleBinding") {
        assert_eq!(binding["subjects"][0]["name"], "pipelines-operator");
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
    }
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "pipelines-operator");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/sales-operator"
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry-credentials");
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["team"], "data-platform");
    let c = &pod["containers"][0];
    // image.digest, when set, replaces the tag.
    assert_eq!(
        c["image"],
        "registry.example.com/platform/sales-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    let args = strings(&c["args"]);
    for arg in [
        "--namespace=shop,analytics",
        "--concurrency=8",
        "--resync-period=2m",
        "--data-health-interval=30s",
        "--data-health-window=10m",
        "--log-format=json",
        "--metrics-address=0.0.0.0:9090",
        "--lease-seconds=20",
        "--events-queue=https://sqs.eu-west-1.amazonaws.com/123456789012/sales-operator-change-events",
        "--events-queue=arn:aws:sqs:us-east-1:123456789012:sales-operator-change-events",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} missing: {args:?}");
    }
    assert_eq!(env_var(c, "AWS_REGION").unwrap()["value"], "eu-west-1");
    assert_eq!(env_var(c, "AWS_ENDPOINT_URL").unwrap()["value"], "http://moto.aws-emulator.svc:5000");
    assert_eq!(env_var(c, "SALES_OPERATOR_NAME_PREFIX").unwrap()["value"], "shop-");
    assert_eq!(env_var(c, "SALES_OPERATOR_REQUIRE_IDENTITY").unwrap()["value"], "true");
    assert_eq!(env_var(c, "RUST_LOG").unwrap()["value"], "info,sales_operator=debug");
    assert_eq!(
        env_var(c, "SALES_OPERATOR_GENERATOR_IMAGE").unwrap()["value"],
        "registry.example.com/platform/sales-operator-generator:0.1.0-test"
    );
    assert_eq!(env_var(c, "AWS_MAX_ATTEMPTS").unwrap()["value"], "8");
    assert_eq!(env_var(c, "NODE_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
}

#[test]
fn chart_rbac_grants_exactly_the_permissions_the_operator_uses() {
    let env = KubeEnv::shared();
    let (watched, lease) = code_permissions();

    // Cluster-wide: the ClusterRole has the watched-namespace rules, the Role in the release namespace the Lease.
    let docs = documents(&template(env, "ops", &[]));
    let role = named(&docs, "ClusterRole", "sales-operator");
    assert_eq!(compare(&granted(role), &watched), (vec![], vec![]), "ClusterRole");
    // AwsIdentities and namespaces' labels: cluster-wide in either mode, in a ClusterRole of their own.
    let identities = expanded(CLUSTER_PERMISSIONS);
    let role = named(&docs, "ClusterRole", "sales-operator-ops-identities");
    assert_eq!(compare(&granted(role), &identities), (vec![], vec![]), "identities ClusterRole");
    let binding = named(&docs, "ClusterRoleBinding", "sales-operator-ops-identities");
    assert_eq!(binding["subjects"][0]["name"], "sales-operator");
    let readers = named(&docs, "ClusterRoleBinding", "sales-operator-ops-identity-reader");
    assert_eq!(readers["subjects"][0]["name"], "system:authenticated", "tenants read identities");
    let admin = named(&docs, "ClusterRole", "sales-operator-ops-identity-admin");
    assert!(granted(admin).contains(&("sales-operator.dev".into(), "awsidentities".into(), "create".into())));
    assert!(!granted(named(&docs, "ClusterRole", "sales-operator-ops-identity-reader"))
        .iter()
        .any(|(_, _, v)| v == "create"));
    assert_eq!(compare(&granted(one(&docs, "Role")), &lease), (vec![], vec![]), "leader-election Role");

    // Namespaced: the same rules per watched namespace.
    let docs = documents(&template(env, "ops", &["--set", "watchNamespaces={shop,analytics}"]));
    let role = named(&docs, "ClusterRole", "sales-operator-ops-identities");
    assert_eq!(compare(&granted(role), &identities), (vec![], vec![]), "identities ClusterRole, namespaced mode");
    for role in kind(&docs, "Role") {
        let expected = if role["metadata"]["namespace"] == "ops" { &lease } else { &watched };
        assert_eq!(compare(&granted(role), expected), (vec![], vec![]), "{}", role["metadata"]);
    }

    // Without leader election no Lease rights at all.
    let docs = documents(&template(env, "ops", &["--set", "leaderElection.enabled=false"]));
    assert!(kind(&docs, "Role").is_empty(), "no Lease role without leader election");
    assert!(strings(&one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"])
        .contains(&"--leader-election=false".to_string()));
}

#[test]
fn the_rbac_comparison_reports_an_extra_and_a_missing_verb() {
    let (watched, _) = code_permissions();
    let mut role = watched.clone();
    role.insert(("".into(), "secrets".into(), "get".into()));
    role.remove(&("sales-operator.dev".into(), "salespipelines/status".into(), "patch".into()));
    let (extra, missing) = compare(&role, &watched);
    assert_eq!(extra, vec![("".to_string(), "secrets".to_string(), "get".to_string())]);
    assert_eq!(missing, vec![("sales-operator.dev".into(), "salespipelines/status".into(), "patch".into())]);
}

#[test]
fn values_schema_rejects_wrong_types_and_unknown_keys() {
    let env = KubeEnv::shared();
    let chart = chart_dir();
    let cases = [
        ("replicaCount: two\n", "replicaCount"),
        ("concurrency: 0\n", "concurrency"),
        ("logFormat: yaml\n", "logFormat"),
        ("watchNamespaces: shop\n", "watchNamespaces"),
        ("resyncPeriod: 5 minutes\n", "resyncPeriod"),
        ("dataHealth:\n  window: 0s\n", "window"),
        ("dataHealth:\n  every: 1m\n", "every"),
        ("events:\n  queueUrls: [sales-operator-change-events]\n", "queueUrls"),
        ("aws:\n  endpointUrl: moto:5000\n", "endpointUrl"),
        ("aws:\n  namePrefix: shop_\n", "namePrefix"),
        ("leaderElection:\n  enabled: \"yes\"\n", "enabled"),
        ("serviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: 42\n", "role-arn"),
        ("metrics:\n  port: 70000\n", "port"),
        ("replicas: 2\n", "replicas"),
        ("dashboards:\n  enabled: \"yes\"\n", "enabled"),
        ("dashboards:\n  labelValue: 1\n", "labelValue"),
        ("prometheusRule:\n  freshnessThresholdSeconds: 15m\n", "freshnessThresholdSeconds"),
        ("prometheusRule:\n  alerts:\n    SalesPipelineDataStal: {enabled: false}\n", "SalesPipelineDataStal"),
        ("prometheusRule:\n  alerts:\n    SalesPipelineDataStale: {for: 10 minutes}\n", "for"),
        ("prometheusRule:\n  additionalRules: [{expr: up == 0}]\n", "additionalRules"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (values, field)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, values).unwrap();
        let out = env.helm(&["template", "x", chart.to_str().unwrap(), "-f", file.to_str().unwrap()]);
        assert!(!out.status.success(), "accepted bad values {values:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("values don't meet the specifications of the schema"), "{values:?}: {err}");
        assert!(err.contains(field), "{values:?} error does not name {field}: {err}");
    }
    // Two replicas without leader election would reconcile everything twice.
    let out = env.helm(&[
        "template",
        "x",
        chart.to_str().unwrap(),
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs leaderElection.enabled=true"), "{}", text(&out));
}

#[test]
fn install_upgrade_and_uninstall_with_defaults_keep_the_crds() {
    let env = env_with_crds();
    let ns = env.create_namespace("helm-defaults");
    let release = format!("so-{ns}");
    let chart = chart_dir();
    helm_ok(
        env,
        &["install", &release, chart.to_str().unwrap(), "-n", &ns, "--set", NO_CRDS, "--wait", "--timeout=120s"],
    );
    let deploy = format!("deployment/{release}-sales-operator");
    assert_eq!(env.kubectl_ok(&["get", &deploy, "-n", &ns, "-o", "jsonpath={.status.readyReplicas}"]), "1");
    env.kubectl_ok(&["get", "clusterrole", &format!("{release}-sales-operator")]);
    let args = env.kubectl_ok(&["get", &deploy, "-n", &ns, "-o", "jsonpath={.spec.template.spec.containers[0].args}"]);
    assert!(args.contains("--concurrency=4"), "{args}");

    helm_ok(
        env,
        &[
            "upgrade",
            &release,
            chart.to_str().unwrap(),
            "-n",
            &ns,
            "--reuse-values",
            "--set",
            "concurrency=8",
            "--wait",
        ],
    );
    let args = env.kubectl_ok(&["get", &deploy, "-n", &ns, "-o", "jsonpath={.spec.template.spec.containers[0].args}"]);
    assert!(args.contains("--concurrency=8"), "{args}");
    let history = helm_ok(env, &["history", &release, "-n", &ns, "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    helm_ok(env, &["uninstall", &release, "-n", &ns, "--wait"]);
    assert!(!env.kubectl(&["get", &deploy, "-n", &ns]).status.success(), "Deployment removed");
    assert!(!env.kubectl(&["get", "clusterrole", &format!("{release}-sales-operator")]).status.success());
    // Not the chart's here (crds.install=false): uninstall leaves them alone.
    env.kubectl_ok(&["get", "crd", "salespipelines.sales-operator.dev"]);
}

#[test]
fn install_with_every_feature_on_is_accepted_by_the_api_server() {
    let env = env_with_crds();
    let ns = env.create_namespace("helm-all");
    let other = env.create_namespace("helm-watched");
    let release = format!("so-{ns}");
    let chart = chart_dir();
    let watch = format!("watchNamespaces={{{ns},{other}}}");
    helm_ok(
        env,
        &[
            "install",
            &release,
            chart.to_str().unwrap(),
            "-n",
            &ns,
            "-f",
            project_dir().join(ALL_FEATURES).to_str().unwrap(),
            "--set",
            &watch,
            "--set",
            NO_CRDS,
            "--wait",
            "--timeout=120s",
        ],
    );
    let deploy = format!("deployment/{release}-sales-operator");
    assert_eq!(env.kubectl_ok(&["get", &deploy, "-n", &ns, "-o", "jsonpath={.status.readyReplicas}"]), "3");
    env.kubectl_ok(&["get", "poddisruptionbudget", &format!("{release}-sales-operator"), "-n", &ns]);
    env.kubectl_ok(&["get", "servicemonitor", &format!("{release}-sales-operator"), "-n", &ns]);
    // Accepted by prometheus-operator's own schemas (a typo'd field would have failed the install:
    // the API server rejects unknown fields of a CRD with a schema, as below).
    let rule =
        env.kubectl_ok(&["get", "prometheusrule", &format!("{release}-sales-operator"), "-n", &ns, "-o", "json"]);
    let rule: serde_json::Value = serde_json::from_str(&rule).unwrap();
    assert_eq!(rule["spec"]["groups"][0]["rules"][0]["alert"], "SalesPipelineDataStale", "{rule:#}");
    let dashboards =
        env.kubectl_ok(&["get", "configmap", &format!("{release}-sales-operator-dashboards"), "-n", &ns, "-o", "json"]);
    let dashboards: serde_json::Value = serde_json::from_str(&dashboards).unwrap();
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(dashboards["data"]["sales-operator.json"]
        .as_str()
        .is_some_and(|d| d.contains("\"uid\": \"sales-operator\"")));
    let bad_rule = format!(
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {{name: bad, namespace: {ns}}}\n\
         spec:\n  groups:\n    - name: g\n      rules:\n        - alert: A\n          expr: up == 0\n          for: 10 minutes\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), bad_rule).unwrap();
    let out = env.kubectl(&["apply", "--dry-run=server", "-f", dir.path().join("bad.yaml").to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("spec.groups[0].rules[0].for"),
        "the real schema: {}",
        text(&out)
    );
    env.kubectl_ok(&["get", "role", &format!("{release}-sales-operator"), "-n", &other]);
    // The ServiceAccount may do in the other namespace exactly what the operator does there.
    let sa = format!("system:serviceaccount:{ns}:pipelines-operator");
    let can = |verb: &str, resource: &str, namespace: &str| {
        env.kubectl(&["auth", "can-i", verb, resource, "-n", namespace, "--as", &sa]).status.success()
    };
    assert!(wait_until(Duration::from_secs(30), || can("patch", "salespipelines.sales-operator.dev/status", &other)));
    assert!(can("create", "events.events.k8s.io", &other));
    assert!(!can("delete", "salespipelines.sales-operator.dev", &other), "never deletes a SalesPipeline");
    assert!(!can("get", "secrets", &other), "no Secrets");
    assert!(!can("create", "leases.coordination.k8s.io", &other), "Lease only in its own namespace");
    assert!(can("create", "leases.coordination.k8s.io", &ns));
    helm_ok(env, &["uninstall", &release, "-n", &ns, "--wait"]);
}

#[test]
fn every_example_passes_server_side_dry_run() {
    let env = env_with_crds();
    let examples = yaml_files(project_dir().join("examples"));
    assert!(examples.len() >= 2, "{examples:?}");
    for file in examples {
        let out = env.kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("(server dry run)"), "{}", text(&out));
    }
}

/// The operator as the chart's Deployment would run it: the container's rendered
/// arguments and environment, with the ServiceAccount's token, as a local process.
struct InstalledOperator {
    child: std::process::Child,
    log: PathBuf,
}

impl InstalledOperator {
    fn start(env: &KubeEnv, ns: &str, release: &str, sa: &str) -> InstalledOperator {
        let deployment = env.kubectl_ok(&["get", "deployment", release, "-n", ns, "-o", "json"]);
        let deployment: serde_json::Value = serde_json::from_str(&deployment).unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Only the listen address changes: 0.0.0.0:8080 is the pod's, not this machine's.
        let args: Vec<String> = strings(&container["args"])
            .into_iter()
            .map(
                |a| if a.starts_with("--metrics-address=") { format!("--metrics-address=127.0.0.1:{port}") } else { a },
            )
            .collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sales-operator"));
        cmd.args(&args);
        for var in container["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            match (name, var["value"].as_str()) {
                ("POD_NAME", _) => cmd.env(name, format!("{release}-0")),
                ("POD_NAMESPACE", _) => cmd.env(name, ns),
                (_, Some(value)) => cmd.env(name, value),
                (_, None) => panic!("unexpected env {var}"),
            };
        }
        let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(ns, sa));
        let log = std::env::temp_dir().join(format!("sales-operator-chart-{ns}.log"));
        let child = cmd
            .envs(moto::aws_env())
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        InstalledOperator { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for InstalledOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_installed_operator_reconciles_the_example_pipeline_to_ready() {
    let env = env_with_crds();
    let ns = env.create_namespace("helm-run");
    let release = "sales-operator";
    // Cluster-wide install (the default): ClusterRole + the leader-election Role.
    let cluster_role = format!("{release}-{ns}");
    helm_ok(
        env,
        &[
            "install",
            release,
            chart_dir().to_str().unwrap(),
            "-n",
            &ns,
            "--set",
            &format!("fullnameOverride={cluster_role}"),
            "--set",
            "resyncPeriod=1m",
            "--set",
            NO_CRDS,
            "--wait",
            "--timeout=120s",
        ],
    );
    let op = InstalledOperator::start(env, &ns, &cluster_role, &cluster_role);
    let example = std::fs::read_to_string(project_dir().join("examples/pipeline.yaml"))
        .unwrap()
        .replace("namespace: default", &format!("namespace: {ns}"));
    let out = env.kubectl_stdin(&["apply", "-f", "-"], &example);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "sp/sales", "--timeout=90s"]);
    assert!(
        out.status.success(),
        "not Ready: {}\n{}\noperator log:\n{}",
        text(&out),
        env.kubectl_ok(&["get", "sp", "sales", "-n", &ns, "-o", "yaml"]),
        op.log()
    );
    // It said which build runs, first thing.
    let log = op.log();
    let start = log.lines().find(|l| l.contains("sales-operator starting")).unwrap_or_else(|| panic!("{log}"));
    use sales_operator::telemetry::{REVISION, VERSION};
    assert!(start.contains(VERSION) && start.contains(REVISION), "{start}");
    let holder = env.kubectl_ok(&["get", "lease", &cluster_role, "-n", &ns, "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_eq!(holder, format!("{cluster_role}-0"), "leader election in the release namespace");
    // Torn down while the operator still runs, so the finalizer completes.
    let out = env.kubectl(&["delete", "-n", &ns, "sp/sales", "--timeout=60s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), op.log());
    drop(op);
    helm_ok(env, &["uninstall", release, "-n", &ns]);
}

/// checkov's failed check ids for the chart rendered with `values` (none: the defaults),
/// skipping `skip`. Runs offline: no guideline download, no mapping lookups.
fn checkov_failures(env: &KubeEnv, values: Option<&str>, skip: &[String]) -> BTreeSet<String> {
    let out = Command::new("bash").arg(project_dir().join("scripts/checkov.sh")).output().expect("scripts/checkov.sh");
    assert!(out.status.success(), "scripts/checkov.sh: {}", text(&out));
    let checkov = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut args = vec![];
    if let Some(v) = values {
        args.extend(["-f", v]);
    }
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, template(env, "sales-operator", &args)).unwrap();
    let mut cmd = Command::new(checkov);
    cmd.args(["--framework", "kubernetes", "--skip-download", "--quiet", "-o", "json", "-f"])
        .arg(&rendered)
        .env("BC_SKIP_MAPPING", "TRUE");
    if !skip.is_empty() {
        cmd.args(["--skip-check", &skip.join(",")]);
    }
    let out = cmd.output().expect("run checkov");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON report ({e}): {}", text(&out)));
    let passed = report["summary"]["passed"].as_u64().unwrap_or_default();
    assert!(passed > 50, "checkov checked too little: {report:#}");
    report["results"]["failed_checks"]
        .as_array()
        .map(|f| f.iter().filter_map(|c| c["check_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn checkov_passes_the_rendered_chart_with_only_the_reasoned_skips() {
    let env = KubeEnv::shared();
    let skips: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart_dir().join("ci/checkov-skips.yaml")).expect("ci/checkov-skips.yaml"),
    )
    .expect("checkov-skips.yaml is YAML");
    for (key, values) in [("default", None), ("ci/all-features-values.yaml", Some(ALL_FEATURES))] {
        let listed: Vec<String> = skips[key].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert!(
            skips[key].as_object().is_some_and(|m| m.values().all(|r| r.as_str().is_some_and(|r| r.len() > 40))),
            "{key}: every skip needs its reason"
        );
        let values = values.map(|v| project_dir().join(v).to_string_lossy().into_owned());
        let failed = checkov_failures(env, values.as_deref(), &listed);
        assert!(failed.is_empty(), "{key}: checkov findings not in ci/checkov-skips.yaml: {failed:?}");
        // Each skip is still needed: without the list, exactly the listed checks fail.
        let unskipped = checkov_failures(env, values.as_deref(), &[]);
        assert_eq!(unskipped, listed.iter().cloned().collect::<BTreeSet<_>>(), "{key}: the skip list is stale");
    }
}

#[test]
fn the_optional_network_policy_lets_the_operator_reach_only_the_api_server_aws_and_dns() {
    let env = KubeEnv::shared();
    let all = project_dir().join(ALL_FEATURES);
    let docs = documents(&template(env, "sales-operator", &["-f", all.to_str().unwrap()]));
    let np = one(&docs, "NetworkPolicy");
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], 9090, "only the metrics port");
    assert_eq!(ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "monitoring");
    let egress = np["spec"]["egress"].as_array().unwrap();
    let ports: Vec<Vec<u64>> = egress
        .iter()
        .map(|e| e["ports"].as_array().unwrap().iter().filter_map(|p| p["port"].as_u64()).collect())
        .collect();
    assert_eq!(ports, vec![vec![443, 6443], vec![443, 5000], vec![53, 53]]);
    assert_eq!(egress[0]["to"][0]["ipBlock"]["cidr"], "10.96.0.1/32");
    let deployment = one(&docs, "Deployment");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert!(image.ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), "{image}");
    // Off by default.
    assert!(kind(&documents(&template(env, "sales-operator", &[])), "NetworkPolicy").is_empty());
    // A digest that is not one is refused by the values schema.
    let bad = env.helm(&["template", "x", chart_dir().to_str().unwrap(), "--set", "image.digest=latest"]);
    assert!(!bad.status.success() && text(&bad).contains("digest"), "{}", text(&bad));
}

/// `doc` without the metadata the chart adds to a CRD (labels, annotations).
fn without_chart_metadata(mut doc: serde_json::Value) -> serde_json::Value {
    if let Some(meta) = doc["metadata"].as_object_mut() {
        meta.remove("labels");
        meta.remove("annotations");
    }
    doc
}

/// `v` with every number as a float: Helm's fromYaml/toYaml turn `1.0` into `1`, the same
/// JSON number to the API server.
fn numbers_as_floats(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
        serde_json::Value::Array(a) => a.iter().map(numbers_as_floats).collect(),
        serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect(),
        other => other.clone(),
    }
}

#[test]
fn the_rendered_crds_are_the_generated_ones_kept_on_uninstall_unless_turned_off() {
    let env = KubeEnv::shared();
    let docs = documents(&template(env, "ops", &[]));
    let rendered = kind(&docs, "CustomResourceDefinition");
    let generated: Vec<serde_json::Value> =
        yaml_files(project_dir().join("crds")).iter().map(|f| read_yaml(f)).collect();
    assert_eq!(rendered.len(), generated.len());
    for crd in &rendered {
        let name = &crd["metadata"]["name"];
        let same = generated.iter().find(|g| &g["metadata"]["name"] == name).unwrap_or_else(|| panic!("{name}"));
        // The whole schema, defaults and CEL rules as generated: only the chart's metadata is added.
        assert_eq!(
            numbers_as_floats(&without_chart_metadata((*crd).clone())),
            numbers_as_floats(same),
            "{name} differs from crds/"
        );
        assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "{name}");
        assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm", "{name}");
    }
    let off = documents(&template(env, "ops", &["--set", "crds.install=false"]));
    assert!(kind(&off, "CustomResourceDefinition").is_empty());
    let not_kept = documents(&template(env, "ops", &["--set", "crds.keep=false"]));
    for crd in kind(&not_kept, "CustomResourceDefinition") {
        assert!(crd["metadata"]["annotations"].get("helm.sh/resource-policy").is_none(), "{}", crd["metadata"]);
    }
    let bad = env.helm(&["template", "x", chart_dir().to_str().unwrap(), "--set", "crds.install=yes"]);
    assert!(!bad.status.success() && text(&bad).contains("install"), "{}", text(&bad));
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const SP_CRD: &str = "salespipelines.sales-operator.dev";

/// The chart as an older release shipped it: version 0.0.1, its SalesPipeline CRD without
/// `spec.tags` (written as JSON, which is YAML too).
fn older_chart(dir: &std::path::Path) -> PathBuf {
    let chart = dir.join("sales-operator");
    copy_tree(&chart_dir(), &chart);
    let meta = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let version = format!("version: {}", env!("CARGO_PKG_VERSION"));
    assert!(meta.contains(&version), "Chart.yaml: {meta}");
    std::fs::write(chart.join("Chart.yaml"), meta.replace(&version, "version: 0.0.1")).unwrap();
    let file = chart.join("files/crds").join(format!("{SP_CRD}.yaml"));
    let mut crd = read_yaml(&file);
    for version in crd["spec"]["versions"].as_array_mut().unwrap() {
        let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert!(spec.as_object_mut().unwrap().remove("tags").is_some(), "no spec.tags to take away");
    }
    std::fs::write(&file, serde_json::to_string_pretty(&crd).unwrap()).unwrap();
    chart
}

fn has_tags_field(env: &KubeEnv) -> bool {
    let crd: serde_json::Value = serde_json::from_str(&env.kubectl_ok(&["get", "crd", SP_CRD, "-o", "json"])).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    spec.get("tags").is_some()
}

fn pipeline(env: &KubeEnv, ns: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.kubectl_ok(&["get", "salespipeline", name, "-n", ns, "-o", "json"])).unwrap()
}

#[test]
fn helm_upgrade_brings_the_new_crd_schema_and_uninstall_keeps_crds_and_pipelines() {
    // A control plane of its own: this test changes the CRDs every other test relies on.
    let env = KubeEnv::start().unwrap_or_else(|e| panic!("kube-env: {e}"));
    let ns = env.create_namespace("crd-upgrade");
    let dir = tempfile::tempdir().unwrap();
    let old = older_chart(dir.path());
    helm_ok(&env, &["install", "sales-operator", old.to_str().unwrap(), "-n", &ns]);
    assert!(
        wait_until(Duration::from_secs(60), || env
            .kubectl(&["wait", "--for=condition=Established", &format!("crd/{SP_CRD}"), "--timeout=5s"])
            .status
            .success()),
        "the older chart's CRD is not Established"
    );
    assert!(!has_tags_field(&env), "the older chart's CRD has no spec.tags");

    let manifest = |name: &str| {
        format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  deletionPolicy: Delete\n  tags:\n    team: data\n"
        )
    };
    // Under the old schema the API server prunes the unknown field (what users met with crds/).
    let out = env.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], &manifest("before"));
    assert!(out.status.success(), "{}", text(&out));
    let before = pipeline(&env, &ns, "before");
    assert!(before["spec"].get("tags").is_none(), "old schema keeps no tags: {}", before["spec"]);
    assert_eq!(before["spec"]["deletionPolicy"], "Delete");

    helm_ok(&env, &["upgrade", "sales-operator", chart_dir().to_str().unwrap(), "-n", &ns]);
    assert!(has_tags_field(&env), "helm upgrade did not upgrade the CRD");
    let out = env.kubectl_stdin(&["apply", "-f", "-"], &manifest("after"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pipeline(&env, &ns, "after")["spec"]["tags"]["team"], "data", "the new field is kept");
    // The object made before the upgrade is the same object with the same spec.
    let still = pipeline(&env, &ns, "before");
    assert_eq!(still["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(still["spec"], before["spec"]);

    helm_ok(&env, &["uninstall", "sales-operator", "-n", &ns, "--wait"]);
    for crd in [SP_CRD, "ordergenerators.sales-operator.dev"] {
        let out = env.kubectl(&["get", "crd", crd]);
        assert!(out.status.success(), "helm uninstall deleted {crd}: {}", text(&out));
    }
    for name in ["before", "after"] {
        pipeline(&env, &ns, name);
    }
    assert!(text(&env.helm(&["list", "-n", &ns, "-q"])).trim().is_empty(), "release gone");
}
