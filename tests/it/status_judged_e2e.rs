//! Status that GitOps can trust (issue #14): every version of every SalesPipeline,
//! OrderGenerator and generator Deployment, as a watch delivers it while the operator works on
//! a real kube-apiserver (kwok nodes, moto), judged by Flux's kstatus library and by the Argo CD
//! health script under Argo CD's own Lua sandbox (tests/it/support/status_judge.rs).
//!
//! Asserted on every sample: never Current or Healthy unless observedGeneration == generation
//! and the operator's work is done; Failed and Degraded exactly when Stalled (for the observed
//! generation); deletion Terminating / Progressing; no message shows Rust Debug formatting.

use crate::support::kube_env;
use crate::support::operator;
use crate::support::status_judge;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kube_env::wait_until;
use operator::{env, namespace_with_operator_role, Operator};
use serde_json::Value;
use status_judge::Judgement;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Every object a `kubectl get --watch` delivers, in order (one per resourceVersion).
struct Watch {
    child: Child,
    samples: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
}

impl Watch {
    fn start(ns: &str, resource: &str) -> Watch {
        let env = env();
        let mut child = env
            .command(env.bin_dir().join("kubectl"))
            .args(["get", resource, "-n", ns, "--watch", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get --watch");
        let stdout = child.stdout.take().unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let reader = std::thread::spawn(move || {
            for value in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                match value {
                    Ok(v) => sink.lock().unwrap().push(v),
                    Err(_) => return,
                }
            }
        });
        Watch { child, samples, reader: Some(reader) }
    }

    /// Stops the watch (after a moment, for the last events in flight); returns every sample.
    fn stop(mut self) -> Vec<Value> {
        std::thread::sleep(Duration::from_secs(2));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.samples.lock().unwrap().clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    env().kubectl_ok(&all)
}

fn jsonpath(ns: &str, what: &str, path: &str) -> String {
    let out = env().kubectl(&["get", "-n", ns, what, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn condition(ns: &str, what: &str, type_: &str, field: &str) -> String {
    jsonpath(ns, what, &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"))
}

fn apply(ns: &str, kind: &str, name: &str, spec: &str) {
    let yaml =
        format!("apiVersion: sales-operator.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}");
    let out = env().kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &yaml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn generation_observed(ns: &str, what: &str) -> bool {
    let g = jsonpath(ns, what, "{.metadata.generation}");
    !g.is_empty() && jsonpath(ns, what, "{.status.observedGeneration}") == g
}

fn await_condition(ns: &str, what: &str, type_: &str, field: &str, want: &str, op: &Operator) {
    assert!(
        wait_until(TIMEOUT, || generation_observed(ns, what) && condition(ns, what, type_, field) == want),
        "{what}: {type_}.{field} never became {want}:\n{}\noperator log (tail):\n{}",
        jsonpath(ns, what, "{.status}"),
        tail(&op.log())
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn cond<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn cond_is(o: &Value, type_: &str, status: &str) -> bool {
    cond(o, type_).is_some_and(|c| c["status"] == status)
}

fn reason(o: &Value, type_: &str) -> String {
    cond(o, type_).and_then(|c| c["reason"].as_str()).unwrap_or_default().to_string()
}

fn observed_current(o: &Value) -> bool {
    o["metadata"]["generation"].as_i64().is_some()
        && o["status"]["observedGeneration"].as_i64() == o["metadata"]["generation"].as_i64()
}

fn deleting(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
}

fn name(o: &Value) -> String {
    format!("{}/{}", o["kind"].as_str().unwrap_or_default(), o["metadata"]["name"].as_str().unwrap_or_default())
}

/// Whether the operator's work on this version is done, judged from the object alone.
fn work_done(o: &Value) -> bool {
    if !observed_current(o) || deleting(o) || !cond_is(o, "Ready", "True") {
        return false;
    }
    let paused = o["spec"]["paused"] == true;
    match o["kind"].as_str() {
        Some("SalesPipeline") if reason(o, "Ready") == "Paused" => paused,
        Some("SalesPipeline") => {
            let components = ["Table", "Stream", "Bucket", "Iam", "Pipe", "Delivery", "Catalog", "Analytics"]
                .map(|c| format!("{c}Ready"));
            !paused && components.iter().all(|c| cond_is(o, c, "True"))
        }
        Some("OrderGenerator") => {
            let want = if paused { 0 } else { o["spec"]["replicas"].as_i64().unwrap_or(1) };
            o["status"]["replicas"].as_i64() == Some(want) && o["status"]["readyReplicas"].as_i64() == Some(want)
        }
        _ => false,
    }
}

/// The labels of the states a sample is in (for the coverage check).
fn state_of(o: &Value, j: &Judgement) -> Option<&'static str> {
    let (k, a) = (j.kstatus.status.as_str(), j.argocd.status.as_str());
    let kind = o["kind"].as_str().unwrap_or_default();
    Some(match () {
        _ if deleting(o) => "deleting",
        _ if o["status"]["observedGeneration"] == -1 => "not observed yet (schema default)",
        _ if !observed_current(o) => "spec change not yet observed",
        _ if reason(o, "Ready") == "PipelineNotFound" => "OrderGenerator before its pipeline",
        _ if reason(o, "Ready") == "PipelinePaused" && (k, a) == ("InProgress", "Progressing") => {
            "OrderGenerator stopped with its paused pipeline"
        }
        _ if reason(o, "Ready") == "AwsError" && cond_is(o, "Reconciling", "True") => "transient AWS error",
        _ if cond_is(o, "Stalled", "True") && kind == "SalesPipeline" => "permanent error",
        _ if reason(o, "Stalled") == "ProgressDeadlineExceeded" => "OrderGenerator unschedulable",
        _ if reason(o, "Ready") == "Paused" && (k, a) == ("Current", "Suspended") => "paused",
        _ if kind == "OrderGenerator" && reason(o, "Ready") == "Running" => "OrderGenerator after its pipeline",
        _ if kind == "SalesPipeline" && reason(o, "Ready") == "Ready" => "Ready",
        _ => return None,
    })
}

/// Asserts the invariants on every sample; returns the states seen.
fn judge_all(samples: &[Value]) -> BTreeSet<&'static str> {
    assert!(!samples.is_empty(), "the watches delivered nothing");
    let verdicts = status_judge::judge(samples);
    let mut seen = BTreeSet::new();
    for (o, j) in samples.iter().zip(&verdicts) {
        let at = format!(
            "{} generation {} resourceVersion {}: kstatus {:?}, Argo CD {:?}\n{}",
            name(o),
            o["metadata"]["generation"],
            o["metadata"]["resourceVersion"],
            j.kstatus,
            j.argocd,
            serde_json::to_string_pretty(&o["status"]).unwrap()
        );
        assert_eq!(j.error, None, "{at}");
        let (k, a) = (j.kstatus.status.as_str(), j.argocd.status.as_str());
        if deleting(o) {
            assert_eq!((k, a), ("Terminating", "Progressing"), "{at}");
        } else {
            if k == "Current" || a == "Healthy" || a == "Suspended" {
                assert!(work_done(o), "Current/Healthy before the work is done: {at}");
            }
            if a == "Suspended" {
                assert_eq!(o["spec"]["paused"], true, "{at}");
            }
            let stalled = observed_current(o) && cond_is(o, "Stalled", "True");
            assert_eq!(k == "Failed", stalled, "kstatus Failed exactly when Stalled: {at}");
            assert_eq!(a == "Degraded", stalled, "Argo CD Degraded exactly when Stalled: {at}");
            if !observed_current(o) {
                assert_eq!((k, a), ("InProgress", "Progressing"), "{at}");
            }
        }
        for c in o["status"]["conditions"].as_array().into_iter().flatten() {
            assert_debug_free(c["message"].as_str().unwrap_or_default(), &at);
        }
        seen.extend(state_of(o, j));
    }
    // The schema default: a new object says "not observed yet" from its first version on.
    let mut first_seen = BTreeSet::new();
    for o in samples {
        if first_seen.insert(name(o)) && o["kind"] != "Deployment" {
            assert_eq!(o["status"]["observedGeneration"], -1, "first version of {}: {}", name(o), o["status"]);
        }
    }
    seen
}

/// No Rust Debug form (`Some(60)`, `PublicAccessBlock { .. }`) in text a person reads.
fn assert_debug_free(text: &str, at: &str) {
    assert!(!text.contains("Some(") && !text.contains(" { "), "Debug formatting in {text:?}: {at}");
}

fn assert_events_debug_free(ns: &str) {
    let events: Value = serde_json::from_str(&kubectl(ns, &["get", "events.events.k8s.io", "-o", "json"])).unwrap();
    let items = events["items"].as_array().cloned().unwrap_or_default();
    for e in &items {
        assert_debug_free(e["note"].as_str().unwrap_or_default(), &format!("event {}", e["reason"]));
    }
}

#[test]
fn pipeline_and_generator_states_are_never_current_before_the_work_is_done() {
    let (ns, kubeconfig) = namespace_with_operator_role("judged");
    let pipelines = Watch::start(&ns, "salespipelines");
    let generators = Watch::start(&ns, "ordergenerators");
    let op = Operator::start(&ns, &kubeconfig, &[]);

    // An OrderGenerator before its pipeline exists, then after it is Ready.
    apply(&ns, "OrderGenerator", "load", "  pipelineRef:\n    name: sales\n  replicas: 1\n");
    await_condition(&ns, "og/load", "Ready", "reason", "PipelineNotFound", &op);
    apply(&ns, "SalesPipeline", "sales", "  {}\n");
    await_condition(&ns, "sp/sales", "Ready", "status", "True", &op);
    await_condition(&ns, "og/load", "Ready", "reason", "Running", &op);

    // A spec change: Ready of generation 1 is not Ready of generation 2.
    apply(&ns, "SalesPipeline", "sales", "  stream:\n    retentionHours: 48\n");
    await_condition(&ns, "sp/sales", "Ready", "reason", "Ready", &op);
    assert_eq!(jsonpath(&ns, "sp/sales", "{.status.observedGeneration}"), "2");

    // Paused from the start (nothing exists), and paused with drift.
    apply(&ns, "SalesPipeline", "held", "  paused: true\n");
    await_condition(&ns, "sp/held", "Ready", "reason", "Paused", &op);
    apply(&ns, "SalesPipeline", "sales", "  paused: true\n  stream:\n    retentionHours: 72\n");
    await_condition(&ns, "sp/sales", "Ready", "reason", "Paused", &op);
    // Its generator writes nothing while it is paused (issue 25): scaled to zero, waiting.
    await_condition(&ns, "og/load", "Ready", "reason", "PipelinePaused", &op);
    let message = condition(&ns, "sp/sales", "Ready", "message");
    assert!(message.contains("retentionHours: 48 -> 72"), "{message}");
    let out = env().kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "sp/held", "sp/sales", "--timeout=10s"]);
    assert!(out.status.success(), "kubectl wait on paused pipelines");

    // Needs a person: the bucket it names is someone else's.
    let theirs = format!("{ns}-someone-elses");
    crate::support::moto::create_bucket_outside(&theirs);
    apply(&ns, "SalesPipeline", "bad", &format!("  bucket:\n    name: {theirs}\n"));
    await_condition(&ns, "sp/bad", "Stalled", "status", "True", &op);

    // Deletion.
    kubectl(&ns, &["delete", "og/load", "sp/sales", "sp/held", "sp/bad", "--wait=true", "--timeout=90s"]);

    let mut samples = pipelines.stop();
    // A normal creation, through AWS's windows and refusals (the AWS-behaviour layer), is never
    // Stalled, not even for one pass: every version of the two pipelines that only converge.
    let normal: Vec<&Value> =
        samples.iter().filter(|o| matches!(name(o).as_str(), "SalesPipeline/sales" | "SalesPipeline/held")).collect();
    assert!(normal.len() > 3, "{} versions", normal.len());
    for o in normal {
        assert!(!cond_is(o, "Stalled", "True"), "{} stalled: {}", name(o), o["status"]);
    }
    samples.extend(generators.stop());
    let seen = judge_all(&samples);
    for state in [
        "not observed yet (schema default)",
        "OrderGenerator before its pipeline",
        "OrderGenerator after its pipeline",
        "OrderGenerator stopped with its paused pipeline",
        "Ready",
        "spec change not yet observed",
        "paused",
        "permanent error",
        "deleting",
    ] {
        assert!(seen.contains(state), "no sample in state {state:?}; seen: {seen:?}");
    }
    assert_events_debug_free(&ns);
}

#[test]
fn a_transient_aws_error_is_in_progress_never_current_nor_failed() {
    let (ns, kubeconfig) = namespace_with_operator_role("judged-flaky");
    let pipelines = Watch::start(&ns, "salespipelines");
    // Nothing listens on port 9 of the loopback: every AWS call fails to connect (retryable).
    let op = Operator::start(&ns, &kubeconfig, &["--aws-endpoint-url", "http://127.0.0.1:9"]);
    apply(&ns, "SalesPipeline", "flaky", "  {}\n");
    await_condition(&ns, "sp/flaky", "Ready", "reason", "AwsError", &op);
    // A few retries' worth of versions.
    std::thread::sleep(Duration::from_secs(5));
    let samples = pipelines.stop();
    let seen = judge_all(&samples);
    assert!(seen.contains("transient AWS error"), "seen: {seen:?}");
    assert!(!seen.contains("permanent error"), "seen: {seen:?}");
    drop(op);
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The Deployment's rollout is complete: what `kubectl rollout status` waits for.
fn rollout_complete(d: &Value) -> bool {
    let s = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let n = |f: &str| s[f].as_i64().unwrap_or(0);
    s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
        && n("updatedReplicas") == want
        && n("availableReplicas") == want
        && n("replicas") == want
}

#[test]
fn a_generator_is_ready_only_after_its_rollout_and_stalls_when_pods_cannot_be_scheduled() {
    let (ns, kubeconfig) = namespace_with_operator_role("judged-og");
    let generators = Watch::start(&ns, "ordergenerators");
    let deployments = Watch::start(&ns, "deployments");
    let op = Operator::start(&ns, &kubeconfig, &[]);
    let spec = |rate: u32, extra: &str| {
        format!("  tableName: given-orders\n  ordersPerSecond: {rate}\n  replicas: 2\n  seed: 1\n{extra}")
    };

    apply(&ns, "OrderGenerator", "load", &spec(50, ""));
    await_condition(&ns, "og/load", "Ready", "reason", "Running", &op);
    // A new pod template (the rate is an argument): Ready again only once every pod is replaced.
    apply(&ns, "OrderGenerator", "load", &spec(80, ""));
    await_condition(&ns, "og/load", "Ready", "reason", "Running", &op);
    assert_eq!(jsonpath(&ns, "og/load", "{.status.observedGeneration}"), "2");

    // A pod no node can hold (kwok nodes have 32 CPUs): Stalled with the Deployment's message.
    apply(
        &ns,
        "OrderGenerator",
        "huge",
        &spec(50, "  progressDeadlineSeconds: 5\n  resources:\n    requests:\n      cpu: \"100\"\n"),
    );
    await_condition(&ns, "og/huge", "Stalled", "reason", "ProgressDeadlineExceeded", &op);
    let message = condition(&ns, "og/huge", "Stalled", "message");
    assert!(message.contains("progress"), "{message}");
    assert_eq!(condition(&ns, "og/huge", "Ready", "status"), "False");

    // Paused: Ready (Paused) only once no pod is left.
    apply(&ns, "OrderGenerator", "load", &spec(80, "  paused: true\n"));
    await_condition(&ns, "og/load", "Ready", "reason", "Paused", &op);
    // Foreground deletion: the generators stay, with a deletionTimestamp, until the garbage
    // collector has removed their Deployments.
    kubectl(&ns, &["delete", "og/load", "og/huge", "--cascade=foreground", "--wait=true", "--timeout=60s"]);

    let og_samples = generators.stop();
    let d_samples = deployments.stop();
    let seen = judge_all(&og_samples);
    for state in ["OrderGenerator unschedulable", "paused", "spec change not yet observed", "deleting"] {
        assert!(seen.contains(state), "no sample in state {state:?}; seen: {seen:?}");
    }
    // Every version that says Running was written after its Deployment's rollout was complete
    // (resourceVersions are one etcd revision sequence).
    let mut running = 0;
    for o in og_samples.iter().filter(|o| reason(o, "Ready") == "Running" && observed_current(o) && !deleting(o)) {
        running += 1;
        let deployment = format!("{}-generator", o["metadata"]["name"].as_str().unwrap());
        let before = d_samples
            .iter()
            .filter(|d| d["metadata"]["name"] == deployment.as_str() && rv(d) < rv(o))
            .max_by_key(|d| rv(d))
            .unwrap_or_else(|| panic!("no Deployment version before {}", rv(o)));
        assert!(
            rollout_complete(before),
            "{} Running at resourceVersion {} while its Deployment (resourceVersion {}) was rolling out: {}",
            name(o),
            rv(o),
            rv(before),
            before["status"]
        );
    }
    assert!(running >= 2, "Running versions judged: {running}");
    // The rollout between 50 and 80 orders/s had versions with old and new pods side by side.
    assert!(d_samples.iter().any(|d| !rollout_complete(d) && d["status"]["replicas"].as_i64() > Some(0)));
}
