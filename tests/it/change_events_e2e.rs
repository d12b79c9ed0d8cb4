//! Issue 23 end to end: `sales-operator run` reading change-event queues (made by `events-setup`
//! and by the CloudFormation template) on moto behind the AWS-behaviour layer, which publishes a
//! CloudTrail-shaped event for every mutating call it forwards. Outside changes are made by
//! another identity (a role assumed with session name `alice`), as on AWS.

use crate::support::accounts::{self, HOME};
use crate::support::moto;
use crate::support::operator;
use crate::support::status_judge;
use crate::support::{kube_env, text};

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube_env::wait_until;
use operator::{apply, condition, jsonpath, kubectl, namespace_with_operator_role, wait_ready, Operator};
use sales_operator::aws::identity::{Assume, RoleArn};
use sales_operator::aws::{AwsSettings, Clients};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(90);
/// "Within seconds": an event's repair, with the layer's AWS pace (the benchmark measures it).
const REPAIRED: Duration = Duration::from_secs(20);
/// IAM's change events reach the default bus of us-east-1 only (docs/change-events.md).
const IAM_REGION: &str = "us-east-1";

/// moto refuses every PutEvents while a rule's queue is gone: the test that deletes its queue
/// runs alone among these.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The notes of the events of `reason` in `ns`.
fn events(ns: &str, reason: &str) -> Vec<String> {
    let out = kubectl(ns, &["get", "events", "--field-selector", &format!("reason={reason}"), "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().into_iter().flatten().filter_map(|e| e["message"].as_str().map(String::from)).collect()
}

/// `sales-operator events-setup --region REGION --queue-name NAME`; the queue's ARN.
fn events_setup(region: &str, name: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["events-setup", "--region", region, "--queue-name", name])
        .envs(moto::aws_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    format!("arn:aws:sqs:{region}:{HOME}:{name}")
}

/// Queues in the pipelines' region and in us-east-1 (IAM's events): the `--events-queue` flags.
fn queues(prefix: &str) -> Vec<String> {
    let name = moto::unique(prefix);
    let here = events_setup(moto::REGION, &name);
    let iam = events_setup(IAM_REGION, &name);
    vec!["--events-queue".into(), here, "--events-queue".into(), iam]
}

/// A metric's value, summed over the samples whose line contains every one of `filters`.
fn metric(op: &Operator, name: &str, filters: &[&str]) -> f64 {
    let (_, body) = op.get("/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The mutating AWS calls the operator made to the pipeline's services (its queue's not
/// counted), by metric sample.
fn mutating_calls(op: &Operator) -> std::collections::BTreeMap<String, f64> {
    let (_, body) = op.get("/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("sales_operator_aws_calls_total") && l.contains("kind=\"mutating\""))
        .filter(|l| !l.contains("service=\"SQS\""))
        .filter_map(|l| {
            let (sample, value) = l.rsplit_once(' ')?;
            Some((sample.to_string(), value.parse::<f64>().ok()?)).filter(|(_, v)| *v > 0.0)
        })
        .collect()
}

fn wait_events_up(op: &Operator, queues: usize) {
    let up = wait_until(TIMEOUT, || metric(op, "sales_operator_events_up", &[]) == queues as f64);
    assert!(up, "the queues are not read:\n{}", op.log());
}

/// The clients of an outside identity: role `outside-admin` in the operator's account, assumed
/// with session name `alice` (a principal that is not the operator's). Its ARN.
fn outside(region: &str) -> (Clients, String) {
    rt().block_on(async {
        let settings = AwsSettings { region: Some(region.into()), ..moto::settings() };
        let name = "outside-admin";
        let iam = aws_sdk_iam::Client::new(&accounts::admin_of(&settings, HOME).await);
        let arn = match iam.get_role().role_name(name).send().await {
            Ok(found) => found.role.unwrap().arn,
            Err(_) => accounts::role_trusting(&settings, HOME, name, &format!("arn:aws:iam::{HOME}:root"), None).await,
        };
        let mut assume = Assume::new(RoleArn::parse(&arn).unwrap(), None);
        assume.session_name = "alice".into();
        let sdk = sales_operator::aws::connect(&AwsSettings { assume: Some(assume), ..settings }).await.unwrap();
        let clients = Clients::new(&sdk, None, Default::default()).unwrap();
        (clients, format!("arn:aws:sts::{HOME}:assumed-role/{name}/alice"))
    })
}

/// The AWS names of pipeline `name` from its status.
struct Built {
    stream: String,
    bucket: String,
    pipe: String,
    delivery: String,
    firehose_role: String,
}

fn built(ns: &str, name: &str) -> Built {
    let status: Value = serde_json::from_str(&kubectl(ns, &["get", "sp", name, "-o", "json"])).unwrap();
    let s = &status["status"];
    let role = s["roles"]["firehose"].as_str().unwrap_or_default();
    Built {
        stream: s["stream"]["name"].as_str().unwrap().into(),
        bucket: s["bucket"].as_str().unwrap().into(),
        pipe: s["pipe"]["name"].as_str().unwrap().into(),
        delivery: s["delivery"]["name"].as_str().unwrap().into(),
        firehose_role: role.rsplit('/').next().unwrap().into(),
    }
}

fn retention(c: &Clients, stream: &str) -> i32 {
    rt().block_on(c.kinesis.describe_stream_summary().stream_name(stream).send())
        .ok()
        .and_then(|o| o.stream_description_summary)
        .map_or(0, |s| s.retention_period_hours)
}

fn stream_active(c: &Clients, stream: &str) -> bool {
    rt().block_on(c.kinesis.describe_stream_summary().stream_name(stream).send())
        .ok()
        .and_then(|o| o.stream_description_summary)
        .is_some_and(|s| s.stream_status.as_str() == "ACTIVE")
}

fn change_retention(c: &Clients, stream: &str, hours: i32) {
    assert!(wait_until(TIMEOUT, || stream_active(c, stream)), "stream {stream} not ACTIVE");
    rt().block_on(
        c.kinesis.increase_stream_retention_period().stream_name(stream).retention_period_hours(hours).send(),
    )
    .unwrap();
}

fn delivery_exists(c: &Clients, name: &str) -> bool {
    rt().block_on(c.firehose.describe_delivery_stream().delivery_stream_name(name).send()).is_ok()
}

fn delete_delivery(c: &Clients, name: &str) {
    rt().block_on(c.firehose.delete_delivery_stream().delivery_stream_name(name).send()).unwrap();
}

/// Waits until `done`, within [`REPAIRED`] of `since`, and until a `DriftDetected` event names
/// `actor` and `field`.
fn repaired(ns: &str, op: &Operator, what: &str, actor: &str, field: &str, mut done: impl FnMut() -> bool) {
    let since = Instant::now();
    assert!(wait_until(REPAIRED, &mut done), "{what}: not repaired within {REPAIRED:?}:\n{}", op.log());
    let took = since.elapsed();
    let reported = wait_until(Duration::from_secs(10), || {
        events(ns, "DriftDetected").iter().any(|m| m.contains(actor) && m.contains(field))
    });
    assert!(reported, "{what}: no DriftDetected naming {actor} and {field}: {:?}", events(ns, "DriftDetected"));
    eprintln!("{what}: repaired {took:?} after the change");
}

#[test]
fn outside_changes_are_repaired_within_seconds_and_reported_with_who_made_them() {
    let _serial = serial();
    let (ns, kubeconfig) = namespace_with_operator_role("drift");
    let mut args = vec!["--resync-period".to_string(), "1h".into()];
    args.extend(queues("drift"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(&ns, &kubeconfig, &args);
    wait_events_up(&op, 2);
    // SSE-KMS: a bucket whose encryption is removed falls back to S3's default, SSE-S3.
    let key = format!("arn:aws:kms:{}:{HOME}:key/1234abcd-12ab-34cd-56ef-1234567890ab", moto::REGION);
    apply(
        &ns,
        "shop",
        &format!("  deletionPolicy: Delete\n  bucket:\n    encryption: SSE_KMS\n    kmsKeyArn: {key}\n"),
    );
    wait_ready(&ns, "shop", &op, TIMEOUT);
    let names = built(&ns, "shop");
    let (alice, actor) = outside(moto::REGION);
    let (alice_iam, _) = outside(IAM_REGION);

    // The operator's own calls: their events come back and are dropped; no reconcile follows.
    let own = || metric(&op, "sales_operator_change_events_total", &["outcome=\"own\""]);
    assert!(wait_until(TIMEOUT, || own() > 0.0), "the operator's own events never came:\n{}", op.log());
    let reconciles = || metric(&op, "sales_operator_reconciles_total", &["kind=\"SalesPipeline\""]);
    std::thread::sleep(Duration::from_secs(5));
    let (settled_reconciles, settled_own) = (reconciles(), own());
    std::thread::sleep(Duration::from_secs(25));
    assert_eq!(reconciles(), settled_reconciles, "a reconcile without a change:\n{}", op.log());
    eprintln!("own events dropped: {} (+{} while idle)", own(), own() - settled_own);

    let retention_before = retention(&alice, &names.stream);
    change_retention(&alice, &names.stream, retention_before + 24);
    repaired(&ns, &op, "stream retention", &actor, "retentionHours", || {
        retention(&alice, &names.stream) == retention_before
    });

    let encrypted = || {
        let found = rt().block_on(alice.s3.get_bucket_encryption().bucket(&names.bucket).send());
        let rules =
            found.ok().and_then(|o| o.server_side_encryption_configuration).map(|c| c.rules).unwrap_or_default();
        let default = rules.first().and_then(|r| r.apply_server_side_encryption_by_default.clone());
        default.is_some_and(|d| d.sse_algorithm.as_str() == "aws:kms")
    };
    assert!(encrypted(), "not built with SSE-KMS");
    rt().block_on(alice.s3.delete_bucket_encryption().bucket(&names.bucket).send()).unwrap();
    repaired(&ns, &op, "bucket encryption", &actor, "encryption", encrypted);

    let pipe_state = || {
        rt().block_on(alice.pipes.describe_pipe().name(&names.pipe).send())
            .ok()
            .and_then(|p| p.desired_state)
            .map(|s| s.as_str().to_string())
            .unwrap_or_default()
    };
    rt().block_on(alice.pipes.stop_pipe().name(&names.pipe).send()).unwrap();
    repaired(&ns, &op, "pipe stopped", &actor, "state", || pipe_state() == "RUNNING");

    let policies = || {
        rt().block_on(alice_iam.iam.list_role_policies().role_name(&names.firehose_role).send())
            .map(|o| o.policy_names)
            .unwrap_or_default()
    };
    let inline = policies();
    assert_eq!(inline.len(), 1, "{inline:?}");
    rt().block_on(alice_iam.iam.delete_role_policy().role_name(&names.firehose_role).policy_name(&inline[0]).send())
        .unwrap();
    repaired(&ns, &op, "role inline policy", &actor, "firehoseRole", || policies() == inline);

    delete_delivery(&alice, &names.delivery);
    repaired(&ns, &op, "Firehose stream deleted", &actor, "exists", || delivery_exists(&alice, &names.delivery));

    // status.drift keeps them, each with who and what; DriftRepaired follows each.
    let drift: Value = serde_json::from_str(&jsonpath(&ns, "sp/shop", "{.status.drift}")).unwrap();
    let drift = drift.as_array().unwrap();
    assert!(drift.len() >= 5, "{drift:#?}");
    for d in drift {
        assert_eq!(d["actor"], actor.as_str(), "{d:#}");
        assert_eq!((d["foundBy"].as_str(), d["repaired"].as_bool()), (Some("event"), Some(true)), "{d:#}");
        assert!(d["eventName"].as_str().is_some_and(|n| !n.is_empty()) && d["eventTime"].is_string(), "{d:#}");
    }
    assert!(events(&ns, "DriftRepaired").len() >= 5, "{:?}", events(&ns, "DriftRepaired"));
    wait_ready(&ns, "shop", &op, TIMEOUT);
}

#[test]
fn report_mode_reports_every_outside_change_changes_nothing_and_applies_a_spec_change_once() {
    let _serial = serial();
    let (ns, kubeconfig) = namespace_with_operator_role("report");
    // This queue is the CloudFormation template's, deployed on moto's CloudFormation.
    let queue = rt().block_on(deploy_template(&moto::unique("report")));
    let op = Operator::start(&ns, &kubeconfig, &["--resync-period", "1h", "--events-queue", &queue]);
    wait_events_up(&op, 1);
    apply(&ns, "audit", "  driftPolicy: Report\n  deletionPolicy: Delete\n");
    wait_ready(&ns, "audit", &op, TIMEOUT);
    assert_eq!(
        jsonpath(&ns, "sp/audit", "{.status.appliedGeneration}"),
        jsonpath(&ns, "sp/audit", "{.metadata.generation}")
    );
    let names = built(&ns, "audit");
    let (alice, actor) = outside(moto::REGION);
    std::thread::sleep(Duration::from_secs(3));
    let mutations = mutating_calls(&op);

    let retention_before = retention(&alice, &names.stream);
    change_retention(&alice, &names.stream, retention_before + 24);
    let drifted = || condition(&ns, "audit", "Drifted", "message");
    assert!(
        wait_until(REPAIRED, || drifted().contains("retentionHours")),
        "not reported:\n{}\n{}",
        kubectl(&ns, &["get", "sp", "audit", "-o", "yaml"]),
        op.log()
    );
    assert_eq!(condition(&ns, "audit", "Ready", "status"), "False");
    assert_eq!(condition(&ns, "audit", "Stalled", "reason"), "Drifted");
    delete_delivery(&alice, &names.delivery);
    assert!(wait_until(REPAIRED, || drifted().contains("exists: true → false")), "{}", drifted());
    let reported = events(&ns, "DriftDetected");
    assert!(reported.iter().any(|m| m.contains(&actor) && m.contains("retentionHours")), "{reported:?}");
    assert!(reported.iter().any(|m| m.contains(&actor) && m.contains("DeleteDeliveryStream")), "{reported:?}");

    // kstatus and Argo CD: a drifted pipeline under Report needs a person.
    let object: Value = serde_json::from_str(&kubectl(&ns, &["get", "sp", "audit", "-o", "json"])).unwrap();
    let judged = status_judge::judge(std::slice::from_ref(&object));
    assert_eq!((judged[0].kstatus.status.as_str(), judged[0].argocd.status.as_str()), ("Failed", "Degraded"));

    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(mutating_calls(&op), mutations, "Report made a mutating call:\n{}", op.log());
    assert_eq!(retention(&alice, &names.stream), retention_before + 24, "repaired under Report");
    assert!(!delivery_exists(&alice, &names.delivery), "created again under Report");
    assert_eq!(events(&ns, "DriftRepaired"), Vec::<String>::new());

    // A spec change is applied once: everything back to the spec, then Report again.
    apply(&ns, "audit", "  driftPolicy: Report\n  deletionPolicy: Delete\n  bucket:\n    expirationDays: 30\n");
    wait_ready(&ns, "audit", &op, TIMEOUT);
    assert_eq!(retention(&alice, &names.stream), retention_before);
    assert!(delivery_exists(&alice, &names.delivery));
    assert_eq!(condition(&ns, "audit", "Drifted", "status"), "False");
    let object: Value = serde_json::from_str(&kubectl(&ns, &["get", "sp", "audit", "-o", "json"])).unwrap();
    let judged = status_judge::judge(std::slice::from_ref(&object));
    assert_eq!((judged[0].kstatus.status.as_str(), judged[0].argocd.status.as_str()), ("Current", "Healthy"));
    std::thread::sleep(Duration::from_secs(3));
    let applied = mutating_calls(&op);
    change_retention(&alice, &names.stream, retention_before + 24);
    assert!(wait_until(REPAIRED, || drifted().contains("retentionHours")), "{}", drifted());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(mutating_calls(&op), applied, "the new generation was applied more than once");
}

/// Deploys the repository's CloudFormation template (deploy/change-events) on moto; the queue's ARN.
async fn deploy_template(queue: &str) -> String {
    moto::set_aws_env();
    crate::events_setup::deploy_template(&moto::sdk(&moto::settings()).await, queue).await.1
}

#[test]
fn a_queue_that_goes_away_brings_the_short_resync_back_with_a_warning_and_its_return_brings_events_back() {
    let _serial = serial();
    let (ns, kubeconfig) = namespace_with_operator_role("queuegone");
    let name = moto::unique("gone");
    let queue = events_setup(moto::REGION, &name);
    let op = Operator::start(&ns, &kubeconfig, &["--events-queue", &queue]);
    wait_events_up(&op, 1);
    apply(&ns, "shop", "  deletionPolicy: Delete\n");
    wait_ready(&ns, "shop", &op, TIMEOUT);
    let names = built(&ns, "shop");
    let (alice, actor) = outside(moto::REGION);

    // A message that is no change event and a change to a resource no pipeline manages: both
    // dropped, and the consumer goes on.
    let sdk = rt().block_on(moto::sdk(&moto::settings()));
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = rt().block_on(sqs.get_queue_url().queue_name(&name).send()).unwrap().queue_url.unwrap();
    rt().block_on(sqs.send_message().queue_url(&url).message_body("{\"detail-type\": 7}").send()).unwrap();
    let stranger = moto::unique("nobodys");
    rt().block_on(alice.kinesis.create_stream().stream_name(&stranger).shard_count(1).send()).unwrap();
    change_retention(&alice, &stranger, 48);
    let outcome = |o: &str| metric(&op, "sales_operator_change_events_total", &[&format!("outcome=\"{o}\"")]);
    assert!(wait_until(TIMEOUT, || outcome("malformed") >= 1.0 && outcome("unknown") >= 1.0), "{}", op.log());
    assert_eq!(metric(&op, "sales_operator_events_up", &[]), 1.0);

    // The queue deleted: the warning a user sees, the gauge at 0, the short resync back.
    rt().block_on(sqs.delete_queue().queue_url(&url).send()).unwrap();
    let down = wait_until(TIMEOUT, || metric(&op, "sales_operator_events_up", &[]) == 0.0);
    assert!(down, "still up:\n{}", op.log());
    assert!(wait_until(TIMEOUT, || !events(&ns, "ChangeEventsDown").is_empty()), "no warning:\n{}", op.log());
    assert!(events(&ns, "ChangeEventsDown")[0].contains("every 5 minutes"), "{:?}", events(&ns, "ChangeEventsDown"));
    assert!(op.log().contains("falling back to the periodic resync"), "{}", op.log());

    // Back (events-setup again): events again, by themselves.
    events_setup(moto::REGION, &name);
    wait_events_up(&op, 1);
    assert!(wait_until(TIMEOUT, || !events(&ns, "ChangeEventsUp").is_empty()), "{}", op.log());
    let retention_before = retention(&alice, &names.stream);
    change_retention(&alice, &names.stream, retention_before + 24);
    repaired(&ns, &op, "stream retention", &actor, "retentionHours", || {
        retention(&alice, &names.stream) == retention_before
    });
    rt().block_on(alice.kinesis.delete_stream().stream_name(&stranger).send()).ok();
}
