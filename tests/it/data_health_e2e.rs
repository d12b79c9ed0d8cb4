//! Issue 24: is data flowing? `sales-operator run` against a real kube-apiserver and moto, the
//! delivery stand-in moving orders and publishing what the pipe, Kinesis and Firehose publish to
//! CloudWatch (moto publishes none itself): the DataFlowing condition, status.dataFlow, the
//! printer columns, the events and the metrics follow the data, and Ready and the kstatus / Argo
//! CD verdicts never do.

use crate::support::delivery_standin::{self, Links, Stages};
use crate::support::kube_env::wait_until;
use crate::support::operator::{
    apply, condition, jsonpath, kubectl, namespace_with_operator_role, wait_ready, Operator,
};
use crate::support::{moto, status_judge};

use std::sync::Arc;
use std::time::Duration;

use sales_operator::aws::Clients;
use sales_operator::generator::{Catalog, OrderSource};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
/// The window each look judges: short, so that a failure ages out within the test.
const WINDOW_SECONDS: u64 = 15;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn aws() -> Clients {
    let rt = rt();
    let sdk = rt.block_on(moto::sdk(&moto::settings()));
    Clients::new(&sdk, None, Default::default()).unwrap()
}

/// The notes of the events of `reason` in `ns`.
fn events(ns: &str, reason: &str) -> Vec<String> {
    let out = kubectl(ns, &["get", "events", "--field-selector", &format!("reason={reason}"), "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().into_iter().flatten().filter_map(|e| e["message"].as_str().map(String::from)).collect()
}

/// Waits until DataFlowing has `reason`; its message.
fn wait_data(ns: &str, name: &str, reason: &str, op: &Operator, mut meanwhile: impl FnMut()) -> String {
    let reached = wait_until(TIMEOUT, || {
        meanwhile();
        condition(ns, name, "DataFlowing", "reason") == reason
    });
    assert!(
        reached,
        "DataFlowing never {reason}:\n{}\noperator log:\n{}",
        kubectl(ns, &["get", "sp", name, "-o", "yaml"]),
        op.log()
    );
    condition(ns, name, "DataFlowing", "message")
}

/// Ready is True, and kstatus and Argo CD's health script say Current and Healthy, whatever the
/// data does.
fn configuration_verdicts_unchanged(ns: &str, name: &str) {
    assert_eq!(condition(ns, name, "Ready", "status"), "True");
    let object: Value = serde_json::from_str(&kubectl(ns, &["get", "sp", name, "-o", "json"])).unwrap();
    let verdict = &status_judge::judge(&[object])[0];
    assert_eq!(verdict.error, None);
    assert_eq!(verdict.kstatus.status, "Current", "{verdict:?}");
    assert_eq!(verdict.argocd.status, "Healthy", "{verdict:?}");
}

/// Orders written into the pipeline's table and moved by the stand-in pipe and Firehose: the
/// objects in S3 and the metrics the three services publish for them. The number of orders.
fn deliver(c: &Clients, links: &Links, stages: &Stages, source: &mut OrderSource) -> usize {
    let now = jiff::Timestamp::now();
    let mut events = Vec::new();
    for i in 0..12 {
        let at = now - jiff::SignedDuration::from_secs(90 - i * 5);
        let order = source.next_order(at);
        events.push(delivery_standin::stream_event(links, "INSERT", &order, at, i as u64));
    }
    let objects = delivery_standin::deliver(links, &events, jiff::SignedDuration::from_millis(300)).unwrap();
    rt().block_on(async {
        delivery_standin::put(&c.s3, links, &objects).await.unwrap();
        delivery_standin::publish_delivered(&c.cloudwatch, stages, events.len(), &objects).await.unwrap();
    });
    events.len()
}

fn metric(op: &Operator, line_start: &str) -> Option<String> {
    let (_, body) = op.get("/metrics")?;
    body.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).map(String::from)
}

#[test]
fn data_health_follows_the_stages_metrics_and_never_touches_ready() {
    let (ns, kubeconfig) = namespace_with_operator_role("data");
    let window = format!("{WINDOW_SECONDS}s");
    let op = Operator::start(&ns, &kubeconfig, &["--data-health-interval", "1s", "--data-health-window", &window]);
    apply(&ns, "flow", "  delivery:\n    bufferSeconds: 60\n");
    wait_ready(&ns, "flow", &op, TIMEOUT);
    let c = aws();
    let names = |path: &str| jsonpath(&ns, "sp/flow", path);
    let stages = Stages {
        pipe: names("{.status.pipe.name}"),
        stream: names("{.status.stream.name}"),
        delivery: names("{.status.delivery.name}"),
    };
    let links = rt().block_on(delivery_standin::links(&c, &stages.pipe, &stages.delivery)).unwrap();

    // No orders yet: Idle, not an alarm.
    let idle = wait_data(&ns, "flow", "Idle", &op, || {});
    assert_eq!(idle, format!("no orders written in the last {WINDOW_SECONDS} s"));
    assert_eq!(condition(&ns, "flow", "DataFlowing", "status"), "Unknown");
    configuration_verdicts_unchanged(&ns, "flow");

    // Orders written and delivered: Flowing, with the freshness of the buffer interval.
    let mut source = OrderSource::new(Arc::new(Catalog::default()), Some(24), "data-health");
    let moved = deliver(&c, &links, &stages, &mut source);
    let flowing = wait_data(&ns, "flow", "Flowing", &op, || {});
    assert_eq!(flowing, "orders reach S3 within 60 s of entering Firehose");
    assert_eq!(condition(&ns, "flow", "DataFlowing", "status"), "True");
    assert_eq!(names("{.status.dataFlow.freshnessSeconds}"), "60");
    assert_eq!(names("{.status.dataFlow.records.delivery}"), moved.to_string());
    let table = kubectl(&ns, &["get", "sp", "flow"]);
    let (header, row) = table.split_once('\n').unwrap();
    assert!(header.contains("DATA") && header.contains("FRESHNESS"), "{table}");
    assert!(row.contains("Flowing") && row.split_whitespace().any(|w| w == "60"), "{table}");
    let labels = format!("{{namespace=\"{ns}\",pipeline=\"flow\"");
    assert!(
        wait_until(TIMEOUT, || metric(&op, &format!("sales_operator_pipeline_freshness_seconds{labels}}}"))
            .is_some_and(|v| v.parse::<f64>() == Ok(60.0))),
        "{:?}",
        op.get("/metrics")
    );
    let flowing = metric(&op, &format!("sales_operator_pipeline_data_flowing{labels},state=\"flowing\"}}"));
    assert_eq!(flowing.and_then(|v| v.parse::<f64>().ok()), Some(1.0));
    configuration_verdicts_unchanged(&ns, "flow");

    // The pipe failing (its role cannot write to the stream): Degraded at the pipe, with the count.
    rt().block_on(delivery_standin::publish_pipe_failed(&c.cloudwatch, &stages, 4)).unwrap();
    let degraded = wait_data(&ns, "flow", "Degraded", &op, || {});
    assert_eq!(degraded, "pipe: ExecutionFailed is 4");
    assert_eq!(condition(&ns, "flow", "DataFlowing", "status"), "False");
    assert_eq!(names("{.status.dataFlow.failingStage}"), "pipe");
    assert!(wait_until(TIMEOUT, || events(&ns, "DataStopped").iter().any(|m| m == "pipe: ExecutionFailed is 4")));
    assert_eq!(
        metric(&op, &format!("sales_operator_pipeline_failures{labels},stage=\"pipe\"}}")).as_deref(),
        Some("4.0")
    );
    configuration_verdicts_unchanged(&ns, "flow");

    // The failure stops and orders flow again: back to Flowing once it left the window.
    let mut last = std::time::Instant::now() - Duration::from_secs(10);
    let mut keep_delivering = || {
        if last.elapsed() > Duration::from_secs(3) {
            deliver(&c, &links, &stages, &mut source);
            last = std::time::Instant::now();
        }
    };
    wait_data(&ns, "flow", "Flowing", &op, &mut keep_delivering);
    assert!(wait_until(TIMEOUT, || events(&ns, "DataResumed").iter().any(|m| m.starts_with("orders reach S3 within"))));

    // Firehose failing: DeliveryToS3.Success 0 and an object under the error prefix, named.
    let key = rt().block_on(delivery_standin::fail_delivery(&c.cloudwatch, &c.s3, &links, &stages, 5)).unwrap();
    assert!(key.starts_with("errors/processing-failed/"), "{key}");
    let degraded = wait_data(&ns, "flow", "Degraded", &op, || {});
    assert!(degraded.starts_with("delivery: DeliveryToS3.Success is "), "{degraded}");
    assert!(degraded.ends_with(&format!("; newest error object {key}")), "{degraded}");
    assert!(wait_until(TIMEOUT, || events(&ns, "DataStopped").iter().any(|m| m.ends_with(&key))));
    assert_eq!(names("{.status.dataFlow.newestErrorObject}"), key);
    assert_eq!(names("{.status.dataFlow.failingStage}"), "delivery");
    configuration_verdicts_unchanged(&ns, "flow");
    wait_data(&ns, "flow", "Flowing", &op, &mut keep_delivering);
    assert_eq!(names("{.status.dataFlow.newestErrorObject}"), "", "the error object is not new any more");
    configuration_verdicts_unchanged(&ns, "flow");

    // The data health's writes are not reconciles: the pass count stays where it was.
    let passes = |op: &Operator| metric(op, "sales_operator_reconciles_total{kind=\"SalesPipeline\",result=\"ok\"}");
    let before = passes(&op);
    assert!(before.is_some(), "{:?}", op.get("/metrics"));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(passes(&op), before, "data-health status writes started reconcile passes");
}
