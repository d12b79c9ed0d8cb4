//! Smoke tests of the Kubernetes test environment (scripts/kube-env, tests/it/support/kube_env.rs):
//! what the operator's integration tests rely on really works against the
//! pinned kube-apiserver, kube-controller-manager, kube-scheduler, kwok and helm.

use crate::support::kube_env;

use kube_env::{project_dir, wait_until, KubeEnv};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const SP_CRD: &str = "salespipelines.sales-operator.dev";

/// The project's CRD manifests: `crds/*.yaml` (override with SALES_OPERATOR_CRD_DIR).
fn crd_files() -> Vec<PathBuf> {
    let dir =
        std::env::var_os("SALES_OPERATOR_CRD_DIR").map(PathBuf::from).unwrap_or_else(|| project_dir().join("crds"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read CRD dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}: run `cargo run -- crd --output-dir crds`", dir.display());
    files
}

/// `metadata.name` of every CRD in crds/ (the file names).
fn crd_names() -> Vec<String> {
    crd_files().iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect()
}

/// Applies every CRD once per test binary and waits until they are Established.
/// Returns the `kubectl wait` output.
fn ensure_crds(env: &KubeEnv) -> &'static str {
    static DONE: OnceLock<String> = OnceLock::new();
    DONE.get_or_init(|| {
        let files = crd_files();
        env.apply_crds(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
        // Established already: `kubectl wait` now reports each CRD's condition.
        let mut args = vec!["wait".to_string(), "--for=condition=Established".into(), "--timeout=60s".into()];
        args.extend(crd_names().into_iter().map(|n| format!("crd/{n}")));
        env.kubectl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
}

/// A minimal SalesPipeline; `mode` goes to spec.stream.mode.
fn sales_pipeline(name: &str, ns: &str, mode: &str) -> String {
    format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stream:\n    mode: {mode}\n"
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn crds_apply_and_become_established() {
    let env = KubeEnv::shared();
    let waited = ensure_crds(env);
    let crds = crd_names();
    assert!(crds.iter().any(|c| c == SP_CRD), "{crds:?}");
    assert_eq!(waited.matches("condition met").count(), crds.len(), "{waited}");
    let names = env.kubectl_ok(&["api-resources", "--api-group=sales-operator.dev", "-o", "name"]);
    for crd in &crds {
        let plural = crd.split('.').next().unwrap();
        assert!(names.lines().any(|l| l.starts_with(plural)), "{crd} not served: {names}");
    }
}

#[test]
fn get_salespipelines_shows_printer_columns_and_category() {
    let env = KubeEnv::shared();
    ensure_crds(env);
    let ns = env.create_namespace("printcols");
    let out = env.kubectl_stdin(&["create", "-f", "-"], &sales_pipeline("demo", &ns, "ON_DEMAND"));
    assert!(out.status.success(), "{}", stderr(&out));

    let table = env.kubectl_ok(&["get", "salespipelines", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "TABLE", "STREAM", "PIPE", "DATA", "FRESHNESS", "ACCOUNT", "REGION", "AGE"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap_or_default().starts_with("demo "), "{table}");

    let by_short_name = env.kubectl_ok(&["get", "sp", "-n", &ns, "-o", "name"]);
    assert_eq!(by_short_name.trim(), "salespipeline.sales-operator.dev/demo");
    let by_category = env.kubectl_ok(&["get", "sales", "-n", &ns, "-o", "name"]);
    assert!(by_category.contains("salespipeline.sales-operator.dev/demo"), "{by_category}");
}

#[test]
fn invalid_stream_mode_is_rejected_by_the_api_server() {
    let env = KubeEnv::shared();
    ensure_crds(env);
    let ns = env.create_namespace("invalid");
    let out = env.kubectl_stdin(&["create", "-f", "-"], &sales_pipeline("bad", &ns, "SOMETIMES"));
    assert!(!out.status.success(), "invalid SalesPipeline was accepted");
    let err = stderr(&out);
    assert!(err.contains("spec.stream.mode"), "{err}");
    assert!(err.contains("Unsupported value") && err.contains("SOMETIMES"), "{err}");
    let left = env.kubectl_ok(&["get", "salespipelines", "-n", &ns, "-o", "name"]);
    assert_eq!(left.trim(), "", "nothing may be stored");
}

#[test]
fn deployment_gets_ready_replicas_on_kwok_nodes() {
    let env = KubeEnv::shared();
    let ns = env.create_namespace("deploy");
    env.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        &ns,
        "--replicas=3",
        "--image=registry.invalid/never-pulled:1",
    ]);
    let ready = wait_until(Duration::from_secs(90), || {
        let out = env.kubectl(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.replicas}/{.status.readyReplicas}",
        ]);
        String::from_utf8_lossy(&out.stdout) == "3/3"
    });
    let nodes = env.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
    ]);
    assert!(ready, "deployment not ready within 90s; pods:\n{nodes}");
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    for line in nodes.lines() {
        assert!(line.starts_with("kwok-node-") && line.ends_with(" Running"), "{nodes}");
    }
}

#[test]
fn deleting_an_owner_garbage_collects_its_dependent() {
    let env = KubeEnv::shared();
    let ns = env.create_namespace("gc");
    env.kubectl_ok(&["create", "configmap", "owner", "-n", &ns]);
    let uid = env.kubectl_ok(&["get", "configmap", "owner", "-n", &ns, "-o", "jsonpath={.metadata.uid}"]);
    let child = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child\n  namespace: {ns}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}\n"
    );
    let out = env.kubectl_stdin(&["create", "-f", "-"], &child);
    assert!(out.status.success(), "{}", stderr(&out));

    env.kubectl_ok(&["delete", "configmap", "owner", "-n", &ns, "--wait=false"]);
    let collected = wait_until(Duration::from_secs(60), || {
        let out = env.kubectl(&["get", "configmap", "child", "-n", &ns]);
        !out.status.success() && stderr(&out).contains("NotFound")
    });
    assert!(collected, "dependent ConfigMap was not garbage-collected within 60s");
}

#[test]
fn rbac_restricts_a_service_account_token() {
    let env = KubeEnv::shared();
    let ns = env.create_namespace("rbac");
    env.kubectl_ok(&["create", "serviceaccount", "reader", "-n", &ns]);
    env.kubectl_ok(&["create", "role", "cm-reader", "-n", &ns, "--verb=get,list", "--resource=configmaps"]);
    env.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        &ns,
        "--role=cm-reader",
        &format!("--serviceaccount={ns}:reader"),
    ]);
    let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(&ns, "reader"));
    let as_reader = |args: &[&str]| env.kubectl_with(&kubeconfig, args);

    // The RBAC authorizer sees the new binding through an informer: allow it a moment.
    let can_list =
        wait_until(Duration::from_secs(30), || as_reader(&["get", "configmaps", "-n", &ns]).status.success());
    let out = as_reader(&["get", "configmaps", "-n", &ns]);
    assert!(can_list, "reader cannot list configmaps: {}", stderr(&out));
    let whoami = as_reader(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(String::from_utf8_lossy(&whoami.stdout), format!("system:serviceaccount:{ns}:reader"));

    let create = as_reader(&["create", "configmap", "nope", "-n", &ns]);
    assert!(!create.status.success(), "reader could create a configmap");
    assert!(stderr(&create).contains("Forbidden") || stderr(&create).contains("forbidden"), "{}", stderr(&create));

    let secrets = as_reader(&["get", "secrets", "-n", &ns]);
    assert!(!secrets.status.success(), "reader could list secrets");
    assert!(stderr(&secrets).contains("forbidden"), "{}", stderr(&secrets));
}

#[test]
fn helm_installs_a_chart() {
    let env = KubeEnv::shared();
    let ns = env.create_namespace("helm");
    let chart = tempfile::tempdir().unwrap();
    std::fs::create_dir(chart.path().join("templates")).unwrap();
    std::fs::write(chart.path().join("Chart.yaml"), "apiVersion: v2\nname: smoke\nversion: 0.1.0\n").unwrap();
    std::fs::write(
        chart.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    std::fs::write(chart.path().join("values.yaml"), "greeting: hello\n").unwrap();
    let out = env.helm(&["install", "smoke", chart.path().to_str().unwrap(), "-n", &ns, "--wait", "--timeout=60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let greeting = env.kubectl_ok(&["get", "configmap", "smoke-cm", "-n", &ns, "-o", "jsonpath={.data.greeting}"]);
    assert_eq!(greeting, "hello");
}

/// One pinned version, as lib.sh names it (`NAME=v…`).
fn pinned(name: &str) -> String {
    let lib = std::fs::read_to_string(project_dir().join("scripts/kube-env/lib.sh")).unwrap();
    let line =
        lib.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in lib.sh"));
    line.split_whitespace().next().unwrap().to_string()
}

/// Built from one Go module, each binary is still the release lib.sh pins and says so: the
/// Kubernetes ones and helm are stamped (helm's kubeVersion checks read the API server's).
#[test]
fn every_binary_reports_the_pinned_version() {
    let env = KubeEnv::shared();
    let version = |program: &str, args: &[&str]| {
        let out = env.command(env.bin_dir().join(program)).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let k8s = pinned("K8S_VERSION");
    for program in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        assert_eq!(version(program, &["--version"]).trim(), format!("Kubernetes {k8s}"), "{program}");
    }
    assert!(version("kubectl", &["version", "--client"]).contains(&format!("Client Version: {k8s}")));
    let server = env.kubectl_ok(&["version", "-o", "json"]);
    assert!(server.contains(&format!("\"gitVersion\": \"{k8s}\"")), "{server}");
    let etcd = pinned("ETCD_VERSION");
    assert!(version("etcd", &["--version"]).contains(&format!("etcd Version: {}", etcd.trim_start_matches('v'))));
    assert!(version("helm", &["version", "--short"]).starts_with(&pinned("HELM_VERSION")));
}
