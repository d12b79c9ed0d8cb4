//! `sales-operator run` as a process against a real kube-apiserver (RBAC
//! enforced, operator under a namespace-scoped ServiceAccount whose Role is the
//! Helm chart's own, rendered by `helm template`) and moto, driven with kubectl
//! as a user would.

use crate::support::accounts;
use crate::support::helm_chart;
use crate::support::kube_env;
use crate::support::moto;
use crate::support::operator;

use std::time::{Duration, Instant};

use kube_env::wait_until;
use operator::{
    apply, apply_rbac, condition, env, jsonpath, kubectl, namespace_with_operator_role, wait_ready, Operator,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Pipeline `name` applied with the name of a bucket someone else created first: it stalls.
/// The bucket's name.
fn stalled_on_a_taken_bucket(ns: &str, name: &str, op: &Operator) -> String {
    let bucket = format!("{ns}-taken-bucket");
    moto::create_bucket_outside(&bucket);
    apply(ns, name, &format!("  bucket:\n    name: {bucket}\n"));
    assert!(
        wait_until(TIMEOUT, || condition(ns, name, "Stalled", "status") == "True"),
        "not Stalled:\n{}\n{}",
        kubectl(ns, &["get", "sp", name, "-o", "yaml"]),
        op.log()
    );
    bucket
}

/// Deletes `bucket` as someone outside Kubernetes would.
fn delete_bucket_outside(bucket: &str) {
    let c = aws();
    tokio::runtime::Runtime::new().unwrap().block_on(c.s3.delete_bucket().bucket(bucket).send()).unwrap();
}

fn aws() -> sales_operator::aws::Clients {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sdk = rt.block_on(moto::sdk(&moto::settings()));
    sales_operator::aws::Clients::new(&sdk, None, Default::default()).unwrap()
}

fn table_exists(c: &sales_operator::aws::Clients, name: &str) -> bool {
    tokio::runtime::Runtime::new().unwrap().block_on(c.dynamodb.describe_table().table_name(name).send()).is_ok()
}

fn stream_exists(c: &sales_operator::aws::Clients, name: &str) -> bool {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.kinesis.describe_stream_summary().stream_name(name).send())
        .is_ok()
}

fn bucket_exists(c: &sales_operator::aws::Clients, name: &str) -> bool {
    tokio::runtime::Runtime::new().unwrap().block_on(c.s3.head_bucket().bucket(name).send()).is_ok()
}

#[test]
fn pipeline_lifecycle_create_update_and_delete_with_retain() {
    let (ns, kubeconfig) = namespace_with_operator_role("life");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "1m"]);
    apply(&ns, "shop", "  stream:\n    mode: PROVISIONED\n    shardCount: 1\n");
    wait_ready(&ns, "shop", &op, TIMEOUT);

    assert_eq!(jsonpath(&ns, "sp/shop", "{.metadata.finalizers[0]}"), "sales-operator.dev/cleanup");
    assert_eq!(
        jsonpath(&ns, "sp/shop", "{.status.observedGeneration}"),
        jsonpath(&ns, "sp/shop", "{.metadata.generation}")
    );
    let table = jsonpath(&ns, "sp/shop", "{.status.table.name}");
    let bucket = jsonpath(&ns, "sp/shop", "{.status.bucket}");
    let stream = jsonpath(&ns, "sp/shop", "{.status.stream.name}");
    assert_eq!(table, format!("{ns}-shop-orders"));
    let c = aws();
    assert!(table_exists(&c, &table) && bucket_exists(&c, &bucket) && stream_exists(&c, &stream));
    let columns = kubectl(&ns, &["get", "sp", "shop"]);
    assert!(columns.contains("READY") && columns.contains("True") && columns.contains("RUNNING"), "{columns}");
    let events = kubectl(&ns, &["get", "events", "-o", "jsonpath={range .items[*]}{.reason} {end}"]);
    for reason in ["CreatedTable", "CreatedStream", "CreatedPipe", "CreatedDelivery"] {
        assert!(events.contains(reason), "event {reason} missing: {events}");
    }

    // A spec change bumps the generation; the status follows and the stream is resized in place.
    apply(&ns, "shop", "  stream:\n    mode: PROVISIONED\n    shardCount: 2\n");
    assert_eq!(jsonpath(&ns, "sp/shop", "{.metadata.generation}"), "2");
    assert!(
        wait_until(TIMEOUT, || jsonpath(&ns, "sp/shop", "{.status.observedGeneration}") == "2"),
        "status did not follow generation 2:\n{}",
        op.log()
    );
    wait_ready(&ns, "shop", &op, TIMEOUT);
    let shards = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.kinesis.describe_stream_summary().stream_name(&stream).send())
        .unwrap();
    assert_eq!(shards.stream_description_summary.unwrap().open_shard_count, 2);
    assert!(
        kubectl(&ns, &["get", "events", "-o", "jsonpath={range .items[*]}{.reason} {end}"]).contains("UpdatedStream")
    );

    // Delete with the default Retain policy: the finalizer goes, table and bucket stay.
    let out = env().kubectl(&["delete", "-n", &ns, "sp/shop", "--timeout=60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), op.log());
    assert!(table_exists(&c, &table), "Retain keeps the table");
    assert!(bucket_exists(&c, &bucket), "Retain keeps the bucket");
    assert!(!stream_exists(&c, &stream), "the stream is removed");
}

#[test]
fn delete_policy_delete_removes_every_aws_resource() {
    let (ns, kubeconfig) = namespace_with_operator_role("del");
    let op = Operator::start(&ns, &kubeconfig, &[]);
    apply(&ns, "gone", "  deletionPolicy: Delete\n");
    wait_ready(&ns, "gone", &op, TIMEOUT);
    let table = jsonpath(&ns, "sp/gone", "{.status.table.name}");
    let bucket = jsonpath(&ns, "sp/gone", "{.status.bucket}");
    let out = env().kubectl(&["delete", "-n", &ns, "sp/gone", "--timeout=60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), op.log());
    let c = aws();
    assert!(!table_exists(&c, &table));
    assert!(!bucket_exists(&c, &bucket));
}

#[test]
fn a_pipeline_that_needs_a_person_stalls_with_the_message_and_is_not_retried() {
    let (ns, kubeconfig) = namespace_with_operator_role("stall");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "1m"]);
    let theirs = stalled_on_a_taken_bucket(&ns, "bad", &op);
    assert_eq!(jsonpath(&ns, "sp/bad", "{.status.conditions[?(@.type==\"Stalled\")].reason}"), "NotOwned");
    let message = jsonpath(&ns, "sp/bad", "{.status.conditions[?(@.type==\"Stalled\")].message}");
    assert!(message.contains(&theirs), "{message}");
    assert_eq!(jsonpath(&ns, "sp/bad", "{.status.conditions[?(@.type==\"Ready\")].status}"), "False");
    let before = op.aws_calls("");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(op.aws_calls(""), before, "a stalled pipeline makes no AWS calls until its spec changes");
}

/// Issue 21: a bucket the pipeline may not create is waited for (a person creates it), not a
/// stall "waiting for a spec change"; nothing else is created meanwhile, and once the bucket
/// exists the pipeline goes on by itself.
#[test]
fn a_missing_bucket_it_may_not_create_is_waited_for_and_the_pipeline_goes_on_once_it_exists() {
    let (ns, kubeconfig) = namespace_with_operator_role("given");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "1m", "--aws-poll", "1s"]);
    let bucket = format!("{ns}-given-bucket");
    apply(&ns, "later", &format!("  bucket:\n    create: false\n    name: {bucket}\n"));
    let bucket_reason = || jsonpath(&ns, "sp/later", "{.status.conditions[?(@.type==\"BucketReady\")].reason}");
    assert!(wait_until(TIMEOUT, || bucket_reason() == "Missing"), "{}", op.log());
    let condition = |t: &str| jsonpath(&ns, "sp/later", &format!("{{.status.conditions[?(@.type==\"{t}\")].status}}"));
    assert_eq!(
        (condition("Ready"), condition("Reconciling"), condition("Stalled")),
        ("False".into(), "True".into(), "False".into())
    );
    let message = jsonpath(&ns, "sp/later", "{.status.conditions[?(@.type==\"BucketReady\")].message}");
    assert!(message.contains(&bucket) && message.contains("create it"), "{message}");
    let calls = op.aws_calls("");
    assert!(calls > 0, "the operator's metrics count its AWS calls\n{}", op.log());
    assert_eq!(op.aws_calls("kind=\"mutating\""), 0, "nothing is created while the bucket is missing");
    // Looked at again at the poll pace, not only when the spec changes: created outside, it is found.
    std::thread::sleep(Duration::from_secs(3));
    assert!(op.aws_calls("") > calls, "looked at again while the bucket is missing\n{}", op.log());
    moto::create_bucket_outside(&bucket);
    wait_ready(&ns, "later", &op, TIMEOUT);
    assert_eq!(condition("Stalled"), "False");
}

#[test]
fn steady_state_makes_no_kubernetes_writes_and_no_aws_calls_between_resyncs() {
    let (ns, kubeconfig) = namespace_with_operator_role("quiet");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "10m"]);
    apply(&ns, "calm", "  {}\n");
    wait_ready(&ns, "calm", &op, TIMEOUT);
    // The watch event of each status write the operator made is recognised as its own: no pass.
    let unchanged = "sales_operator_reconciles_total{kind=\"SalesPipeline\",result=\"unchanged\"}";
    let skipped = || {
        let (_, body) = op.get("/metrics").unwrap_or_default();
        body.lines().find_map(|l| l.strip_prefix(unchanged)?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    assert!(wait_until(TIMEOUT, || skipped() >= 1), "the echo of the Ready write was reconciled\n{}", op.log());
    std::thread::sleep(Duration::from_secs(1));
    let version = jsonpath(&ns, "sp/calm", "{.metadata.resourceVersion}");
    let calls = op.aws_calls("");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(jsonpath(&ns, "sp/calm", "{.metadata.resourceVersion}"), version, "no writes to the object");
    assert_eq!(op.aws_calls(""), calls, "no AWS calls between resyncs");
    // Every change was accepted but what AWS refuses for a while after a create (continuous
    // backups "being enabled"): a wait, not a failure.
    let refused = op.aws_calls("kind=\"mutating\"") - op.aws_calls("kind=\"mutating\",outcome=\"ok\"");
    let backups = op.aws_calls("operation=\"UpdateContinuousBackups\",kind=\"mutating\"")
        - op.aws_calls("operation=\"UpdateContinuousBackups\",kind=\"mutating\",outcome=\"ok\"");
    assert_eq!(refused, backups, "mutating calls refused other than UpdateContinuousBackups\n{}", op.log());
}

#[test]
fn metrics_expose_reconciles_aws_calls_and_pipelines_by_ready() {
    let (ns, kubeconfig) = namespace_with_operator_role("metrics");
    let op = Operator::start(&ns, &kubeconfig, &[]);
    apply(&ns, "m", "  {}\n");
    wait_ready(&ns, "m", &op, TIMEOUT);
    // The gauge and the counter are updated just after the status write that `kubectl wait` saw.
    // Per account: the operator's own (moto's default), as STS GetCallerIdentity says.
    let ready_gauge = format!("sales_operator_pipelines{{ready=\"True\",account=\"{}\"}} 1", accounts::HOME);
    let reconciled = "sales_operator_reconciles_total{kind=\"SalesPipeline\",result=\"ok\"}";
    assert!(wait_until(TIMEOUT, || op
        .get("/metrics")
        .is_some_and(|(_, b)| b.contains(&ready_gauge) && b.contains(reconciled))));
    let (status, body) = op.get("/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(reconciled), "{body}");
    assert!(body.contains("sales_operator_reconcile_duration_seconds_bucket"), "{body}");
    assert!(body.contains(&ready_gauge), "{body}");
    let create_table = format!(
        "service=\"DynamoDB\",operation=\"CreateTable\",kind=\"mutating\",outcome=\"ok\",account=\"{}\"",
        accounts::HOME
    );
    assert!(op.aws_calls(&create_table) == 1, "{body}");
    assert_eq!(op.get("/healthz").unwrap().0, 200);
}

#[test]
fn readyz_waits_for_the_first_successful_list() {
    let env = env();
    let ns = env.create_namespace("ready");
    // A ServiceAccount that may not list SalesPipelines yet.
    env.kubectl_ok(&["create", "serviceaccount", "sales-operator", "-n", &ns]);
    let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(&ns, "sales-operator"));
    let op = Operator::start(&ns, &kubeconfig, &["--leader-election", "false"]);
    assert!(wait_until(TIMEOUT, || op.get("/healthz").is_some_and(|(s, _)| s == 200)), "{}", op.log());
    assert_eq!(op.get("/readyz").unwrap().0, 503, "not ready before the CRs can be listed");
    apply_rbac(&helm_chart::operator_rbac(env, &ns));
    assert!(wait_until(TIMEOUT, || op.get("/readyz").is_some_and(|(s, _)| s == 200)), "{}", op.log());
}

#[test]
fn without_patch_on_the_status_subresource_a_pipeline_never_gets_ready() {
    // The chart's Role minus one verb the operator needs: the API server must refuse the
    // status write, so this RBAC really is enforced (and the chart's Role really suffices).
    let env = env();
    let ns = env.create_namespace("norbac");
    let full = helm_chart::operator_rbac(env, &ns);
    let incomplete = helm_chart::without_verb(&full, "salespipelines/status", "patch");
    assert_ne!(incomplete, full);
    apply_rbac(&incomplete);
    let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(&ns, "sales-operator"));
    let op = Operator::start(&ns, &kubeconfig, &[]);
    apply(&ns, "denied", "  {}\n");
    assert!(
        wait_until(TIMEOUT, || op.log().contains("salespipelines/status") && op.log().contains("forbidden")),
        "the status write was not refused:\n{}",
        op.log()
    );
    // No status could be written: it is still the schema default, "not observed yet".
    assert_eq!(jsonpath(&ns, "sp/denied", "{.status}"), r#"{"observedGeneration":-1}"#);

    // The chart's full Role: the same operator, unchanged, gets the pipeline Ready.
    apply_rbac(&full);
    let out = env.kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "sp/denied", "--timeout=120s"]);
    assert!(out.status.success(), "not Ready with the full Role:\n{}", op.log());
}

#[test]
fn with_two_replicas_only_the_leader_calls_aws() {
    let (ns, kubeconfig) = namespace_with_operator_role("leader");
    let first = Operator::start(&ns, &kubeconfig, &["--identity", "one"]);
    assert!(wait_until(TIMEOUT, || first.log().contains("became leader")), "{}", first.log());
    let second = Operator::start(&ns, &kubeconfig, &["--identity", "two"]);
    assert!(wait_until(TIMEOUT, || second.log().contains("waiting for leadership")), "{}", second.log());
    apply(&ns, "led", "  {}\n");
    wait_ready(&ns, "led", &first, TIMEOUT);
    assert!(first.aws_calls("") > 0);
    assert_eq!(second.aws_calls(""), 0, "the follower must not call AWS");
    assert_eq!(kubectl(&ns, &["get", "lease", "sales-operator", "-o", "jsonpath={.spec.holderIdentity}"]), "one");

    // The leader goes away: the follower takes over and reconciles.
    drop(first);
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(90), || second.log().contains("became leader")), "{}", second.log());
    apply(&ns, "led", "  pipe:\n    batchSize: 50\n");
    assert!(
        wait_until(TIMEOUT, || jsonpath(&ns, "sp/led", "{.status.observedGeneration}") == "2"),
        "the new leader did not reconcile (took over after {:?}):\n{}",
        started.elapsed(),
        second.log()
    );
}

#[test]
fn a_status_written_over_by_another_client_is_restored() {
    let (ns, kubeconfig) = namespace_with_operator_role("conflict");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "10m"]);
    apply(&ns, "contested", "  {}\n");
    wait_ready(&ns, "contested", &op, TIMEOUT);
    let rv = jsonpath(&ns, "sp/contested", "{.metadata.resourceVersion}");

    // A stale write is refused by the API server (optimistic concurrency)...
    let stale = format!(
        r#"{{"metadata":{{"resourceVersion":"{}"}},"status":{{"conditions":[]}}}}"#,
        rv.parse::<u64>().unwrap() - 1
    );
    let out =
        env().kubectl(&["patch", "-n", &ns, "sp/contested", "--subresource=status", "--type=merge", "-p", &stale]);
    assert!(!out.status.success(), "a patch with a stale resourceVersion must conflict");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Conflict")
            || String::from_utf8_lossy(&out.stderr).contains("modified")
    );

    // ...and a current one that clobbers the operator's conditions is undone on the next reconcile.
    let clobber = r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"Clobbered","message":"someone else","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let out =
        env().kubectl(&["patch", "-n", &ns, "sp/contested", "--subresource=status", "--type=merge", "-p", clobber]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        wait_until(TIMEOUT, || jsonpath(&ns, "sp/contested", "{.status.conditions[?(@.type==\"Ready\")].reason}")
            == "Ready"),
        "status not restored:\n{}\n{}",
        kubectl(&ns, &["get", "sp", "contested", "-o", "yaml"]),
        op.log()
    );
    assert_eq!(jsonpath(&ns, "sp/contested", "{.status.conditions[?(@.type==\"TableReady\")].status}"), "True");
}

#[test]
fn a_stalled_pipeline_is_looked_at_again_each_resync_and_recovers_once_fixed_outside() {
    let (ns, kubeconfig) = namespace_with_operator_role("recover");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "3s"]);
    let bucket = stalled_on_a_taken_bucket(&ns, "later", &op);
    // The bucket that was not the pipeline's is removed outside Kubernetes: a resync finds the name free.
    delete_bucket_outside(&bucket);
    wait_ready(&ns, "later", &op, TIMEOUT);
    assert_eq!(jsonpath(&ns, "sp/later", "{.status.conditions[?(@.type==\"Stalled\")].status}"), "False");
}

/// Issue 23: a new value of `sales-operator.dev/reconcile-requested-at` makes a pass now, even
/// of a stalled pipeline (which otherwise waits for a spec change or the resync), and the status
/// echoes the value once that pass is done.
#[test]
fn a_reconcile_request_re_reads_aws_now_even_when_stalled_and_is_echoed_in_status() {
    let (ns, kubeconfig) = namespace_with_operator_role("ondemand");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "1h"]);
    let bucket = stalled_on_a_taken_bucket(&ns, "now", &op);
    let stalled = || condition(&ns, "now", "Stalled", "reason");
    assert_eq!(stalled(), "NotOwned");
    let request = |value: &str| {
        let annotation = format!("{}={value}", sales_operator::api::RECONCILE_REQUESTED_AT);
        kubectl(&ns, &["annotate", "--overwrite", "sp/now", &annotation]);
    };
    let handled = || jsonpath(&ns, "sp/now", "{.status.lastHandledReconcileAt}");
    std::thread::sleep(Duration::from_secs(1));
    let before = op.aws_calls("");

    request("2026-12-06T04:00:00Z");
    assert!(wait_until(TIMEOUT, || handled() == "2026-12-06T04:00:00Z"), "not echoed:\n{}", op.log());
    assert!(op.aws_calls("") > before, "the request did not re-read AWS\n{}", op.log());
    assert_eq!(stalled(), "NotOwned", "still someone else's bucket");
    std::thread::sleep(Duration::from_secs(3));
    let handled_once = op.aws_calls("");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(op.aws_calls(""), handled_once, "a handled request asks for nothing more");

    // Fixed outside: the next request finds the name free at once, not at the 1 h resync.
    delete_bucket_outside(&bucket);
    request("again");
    wait_ready(&ns, "now", &op, TIMEOUT);
    assert!(wait_until(TIMEOUT, || handled() == "again"), "not echoed:\n{}", op.log());
}

/// After a switch from Crawler to Projection mode the crawler and its role go; once that
/// generation is Ready, resyncs stop looking for them (one read per resource, not one more).
#[test]
fn a_mode_switch_removes_the_crawler_and_later_resyncs_stop_looking_for_it() {
    let (ns, kubeconfig) = namespace_with_operator_role("sweep");
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "3s"]);
    apply(&ns, "crawl", "  catalog:\n    mode: Crawler\n");
    wait_ready(&ns, "crawl", &op, TIMEOUT);
    let crawler = jsonpath(&ns, "sp/crawl", "{.status.catalog.crawler}");
    let glue_role = jsonpath(&ns, "sp/crawl", "{.status.roles.glue}");
    assert!(!crawler.is_empty() && !glue_role.is_empty(), "Crawler mode reports the crawler and its role");

    apply(&ns, "crawl", "  catalog:\n    mode: Projection\n");
    assert!(
        wait_until(TIMEOUT, || jsonpath(&ns, "sp/crawl", "{.status.observedGeneration}") == "2"
            && jsonpath(&ns, "sp/crawl", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"),
        "{}",
        op.log()
    );
    let c = aws();
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(c.glue.get_crawler().name(&crawler).send()).is_err(), "crawler {crawler} removed");
    let role_name = glue_role.rsplit('/').next().unwrap_or_default().to_string();
    assert!(rt.block_on(c.iam.get_role().role_name(&role_name).send()).is_err(), "role {role_name} removed");

    // The reconcile that follows the Ready status write is the first settled one.
    std::thread::sleep(Duration::from_secs(1));
    let passes = || op.aws_calls("operation=\"GetDatabase\"");
    let (passes0, crawler0, roles0) =
        (passes(), op.aws_calls("operation=\"GetCrawler\""), op.aws_calls("operation=\"GetRole\""));
    assert!(wait_until(TIMEOUT, || passes() >= passes0 + 3), "three resyncs\n{}", op.log());
    let done = passes() - passes0;
    assert_eq!(op.aws_calls("operation=\"GetCrawler\""), crawler0, "no crawler lookups once settled");
    let role_reads = op.aws_calls("operation=\"GetRole\"") - roles0;
    assert!(role_reads <= 2 * (done + 1), "only the two live roles are read: {role_reads} GetRole in {done} passes");
}

#[test]
fn two_namespaces_claiming_the_same_names_the_second_is_refused_before_any_aws_call() {
    let env = env();
    let team_a = env.create_namespace("team-a");
    let team_b = env.create_namespace("team-b");
    // One operator watching both namespaces, under the chart's RBAC for both.
    apply_rbac(&helm_chart::template(
        env,
        &team_a,
        &[
            "--set",
            &format!("watchNamespaces={{{team_a},{team_b}}}"),
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    ));
    let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(&team_a, "sales-operator"));
    let op = Operator::start(&team_a, &kubeconfig, &["--namespace", &team_b]);
    let prefix = moto::unique("shared");
    let spec = format!("  namePrefix: {prefix}\n  deletionPolicy: Delete\n");
    apply(&team_a, "sales", &spec);
    wait_ready(&team_a, "sales", &op, TIMEOUT);
    let table = jsonpath(&team_a, "sp/sales", "{.status.table.name}");
    let stream = jsonpath(&team_a, "sp/sales", "{.status.stream.name}");
    let bucket = jsonpath(&team_a, "sp/sales", "{.status.bucket}");
    let c = aws();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tags_of_a = || {
        let arn = rt.block_on(c.dynamodb.describe_table().table_name(&table).send()).unwrap().table.unwrap().table_arn;
        let tags = rt.block_on(c.dynamodb.list_tags_of_resource().set_resource_arn(arn).send()).unwrap().tags;
        format!("{tags:?}")
    };
    let before = tags_of_a();
    assert!(before.contains(&format!("{team_a}/sales")), "{before}");
    let mutations = op.aws_calls("kind=\"mutating\"");

    apply(&team_b, "sales", &spec);
    assert!(
        wait_until(TIMEOUT, || condition(&team_b, "sales", "Stalled", "reason") == "NameConflict"),
        "team-b is not Stalled with NameConflict:\n{}\n{}",
        kubectl(&team_b, &["get", "sp", "sales", "-o", "yaml"]),
        op.log()
    );
    let message = condition(&team_b, "sales", "Stalled", "message");
    assert!(message.contains(&format!("SalesPipeline {team_a}/sales already uses")), "{message}");
    assert_eq!(condition(&team_b, "sales", "Ready", "status"), "False");
    let events = kubectl(&team_b, &["get", "events", "-o", "jsonpath={range .items[*]}{.reason} {end}"]);
    assert!(events.contains("NameConflict"), "{events}");
    assert_eq!(op.aws_calls("kind=\"mutating\""), mutations, "team-b changed AWS:\n{}", op.log());
    assert_eq!(tags_of_a(), before);

    // Deleting team-b's pipeline deletes nothing of team-a's.
    let out = env.kubectl(&["delete", "-n", &team_b, "sp/sales", "--timeout=60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), op.log());
    assert!(table_exists(&c, &table) && stream_exists(&c, &stream) && bucket_exists(&c, &bucket));
    assert_eq!(tags_of_a(), before);
    assert_eq!(condition(&team_a, "sales", "Ready", "status"), "True");

    let out = env.kubectl(&["delete", "-n", &team_a, "sp/sales", "--timeout=60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), op.log());
    assert!(!table_exists(&c, &table) && !bucket_exists(&c, &bucket), "team-a's own Delete policy still applies");
}
