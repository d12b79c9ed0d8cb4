//! The order generator against the moto server: what lands in the table and
//! in its DynamoDB stream, under throttling, on SIGTERM/SIGINT, at a rate, and
//! on a re-run with the same seed.

crate::support::moto::own_server!();

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
use rust_decimal::Decimal;
use sales_operator::aws::calls::{Fault, FaultPlan};
use sales_operator::aws::{AwsSettings, CallLog};
use sales_operator::generator::{
    run, Catalog, DynamoDbSink, GeneratorConfig, OrderSource, Report, StopReason, WriterConfig,
};
use sales_operator::order::{ItemType, Order, FIELDS, KEY};

struct Aws {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    calls: CallLog,
}

async fn aws(max_attempts: u32) -> Aws {
    let settings = AwsSettings {
        max_attempts: Some(max_attempts),
        initial_backoff: Some(Duration::from_millis(5)),
        ..moto::settings()
    };
    let sdk = moto::sdk(&settings).await;
    let calls = CallLog::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
    );
    Aws { dynamodb, streams: aws_sdk_dynamodbstreams::Client::new(&sdk), calls }
}

/// A table like the pipeline's: key `orderid` (S), stream with NEW_AND_OLD_IMAGES.
async fn create_table(aws: &Aws) -> String {
    let name = moto::unique("orders");
    aws.dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name(KEY).attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build().unwrap())
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // A table someone made before running the generator: ACTIVE (AWS creates asynchronously).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let table = aws.dynamodb.describe_table().table_name(&name).send().await.ok().and_then(|o| o.table);
        if table.and_then(|t| t.table_status).is_some_and(|s| s.as_str() == "ACTIVE") {
            return name;
        }
        assert!(std::time::Instant::now() < deadline, "table {name} never became ACTIVE");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An attribute as text: `S` and `N` values (the order has no other types).
type Flat = BTreeMap<String, String>;

fn flat(item: &HashMap<String, AttributeValue>) -> Flat {
    item.iter()
        .map(|(k, v)| {
            let text = match v {
                AttributeValue::S(s) => format!("S:{s}"),
                AttributeValue::N(n) => format!("N:{n}"),
                other => panic!("{k} has an unexpected type: {other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}

fn flat_stream(image: &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>) -> Flat {
    use aws_sdk_dynamodbstreams::types::AttributeValue as V;
    image
        .iter()
        .map(|(k, v)| {
            let text = match v {
                V::S(s) => format!("S:{s}"),
                V::N(n) => format!("N:{n}"),
                other => panic!("{k} has an unexpected type: {other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Every item of the table, by order id.
async fn scan(aws: &Aws, table: &str) -> BTreeMap<String, Flat> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = aws.dynamodb.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.unwrap();
        for item in page.items() {
            let f = flat(item);
            let id = f[KEY].trim_start_matches("S:").to_string();
            assert!(out.insert(id.clone(), f).is_none(), "{id} scanned twice");
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// One stream record: event name, key, images and view type.
#[derive(Debug)]
struct Change {
    event: OperationType,
    id: String,
    new: Option<Flat>,
    old: Option<Flat>,
    view: Option<String>,
}

/// Every record of the table's stream, from the trim horizon.
async fn stream(aws: &Aws, table: &str) -> Vec<Change> {
    let t = aws.dynamodb.describe_table().table_name(table).send().await.unwrap().table.unwrap();
    let arn = t.latest_stream_arn.expect("the table has a stream");
    let desc = aws.streams.describe_stream().stream_arn(&arn).send().await.unwrap().stream_description.unwrap();
    let mut out = Vec::new();
    for shard in desc.shards() {
        let mut iterator = aws
            .streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        // Every record once, by event id: a page that brings nothing new ends the shard
        // (an iterator that does not advance would otherwise loop for ever).
        let mut seen = std::collections::HashSet::new();
        while let Some(it) = iterator {
            let page = aws.streams.get_records().shard_iterator(it).limit(1000).send().await.unwrap();
            let fresh: Vec<_> =
                page.records().iter().filter(|r| seen.insert(r.event_id().unwrap_or_default().to_string())).collect();
            if fresh.is_empty() {
                break;
            }
            for r in fresh {
                let d = r.dynamodb().unwrap();
                let id = match d.keys().and_then(|k| k.get(KEY)) {
                    Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(s)) => s.clone(),
                    other => panic!("record without {KEY}: {other:?}"),
                };
                out.push(Change {
                    event: r.event_name().unwrap().clone(),
                    id,
                    new: d.new_image().map(flat_stream),
                    old: d.old_image().map(flat_stream),
                    view: d.stream_view_type().map(|v| v.as_str().to_string()),
                });
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

fn config(seed: Option<u64>, replica: &str, writer: WriterConfig) -> GeneratorConfig {
    GeneratorConfig { catalog: Catalog::default(), seed, replica: replica.into(), writer }
}

fn count_at(rate: f64, count: u64) -> WriterConfig {
    WriterConfig { orders_per_second: rate, count: Some(count), progress_interval: None, ..Default::default() }
}

async fn generate(aws: &Aws, table: &str, cfg: &GeneratorConfig) -> Report {
    let sink = Arc::new(DynamoDbSink::new(aws.dynamodb.clone(), table).with_calls(aws.calls.clone()));
    run(cfg, sink, std::future::pending()).await.unwrap()
}

/// Checks one stored item against the order it should be (all but the timestamp),
/// and that every field has its type and form.
fn assert_item_is(item: &Flat, expected: &Order, written_between: (jiff::Timestamp, jiff::Timestamp)) {
    let names: HashSet<&str> = item.keys().map(String::as_str).collect();
    let fields: HashSet<&str> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, fields, "{item:?}");
    for f in FIELDS {
        let prefix = match f.item_type {
            ItemType::String => "S:",
            ItemType::Number => "N:",
        };
        assert!(item[f.name].starts_with(prefix), "{} should be {prefix} in {item:?}", f.name);
    }
    let v = |name: &str| item[name][2..].to_string();
    assert_eq!(v(KEY), expected.order_id);
    assert_eq!(v("product_name"), expected.product_name);
    assert_eq!(v("category"), expected.category);
    assert_eq!(v("quantity").parse::<u32>().unwrap(), expected.quantity);
    let price = v("price");
    let decimals = price.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 2, "price {price} has more than 2 decimals");
    assert_eq!(Decimal::from_str(&price).unwrap(), expected.price, "price of {}", expected.order_id);
    assert_eq!(v("customer_id"), expected.customer_id);
    assert_eq!(v("store_id"), expected.store_id);
    assert_eq!(v("region"), expected.region);
    let ts_text = v("order_ts");
    let ts: jiff::Timestamp = ts_text.parse().unwrap_or_else(|e| panic!("order_ts {ts_text:?}: {e}"));
    assert!(ts_text.ends_with('Z') && ts_text.len() == "2026-11-26T10:00:00.500Z".len(), "{ts_text}");
    assert!(ts >= written_between.0 && ts <= written_between.1, "{ts} outside the run");
}

fn expected_orders(seed: u64, replica: &str, n: usize) -> Vec<Order> {
    let mut source = OrderSource::new(Arc::new(Catalog::default()), Some(seed), replica);
    (0..n).map(|_| source.next_order(jiff::Timestamp::UNIX_EPOCH)).collect()
}

fn with_ms_slack(t: jiff::Timestamp, ms: i64) -> jiff::Timestamp {
    t.checked_add(jiff::SignedDuration::from_millis(ms)).unwrap()
}

#[tokio::test]
async fn seeded_run_writes_exactly_n_well_formed_orders_and_n_insert_stream_records() {
    const N: usize = 400;
    let aws = aws(4).await;
    let table = create_table(&aws).await;
    let before = jiff::Timestamp::now();
    let r = generate(&aws, &table, &config(Some(42), "0", count_at(5000.0, N as u64))).await;
    let after = jiff::Timestamp::now();
    assert_eq!((r.written, r.generated, r.unconfirmed, r.failed), (N as u64, N as u64, 0, 0), "{r:?}");
    assert_eq!(r.stopped_by, StopReason::Count);

    let items = scan(&aws, &table).await;
    assert_eq!(items.len(), N);
    let window = (with_ms_slack(before, -1), with_ms_slack(after, 1));
    for expected in expected_orders(42, "0", N) {
        let item = items.get(&expected.order_id).unwrap_or_else(|| panic!("{} missing", expected.order_id));
        assert_item_is(item, &expected, window);
    }

    let records = stream(&aws, &table).await;
    assert_eq!(records.len(), N, "one stream record per order");
    let ids: HashSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), N);
    for c in &records {
        assert_eq!(c.event, OperationType::Insert, "{c:?}");
        assert_eq!(c.view.as_deref(), Some("NEW_AND_OLD_IMAGES"));
        assert_eq!(c.new.as_ref(), Some(&items[&c.id]), "the new image is the item");
        assert!(c.old.is_none(), "an INSERT has no old image");
    }
}

#[tokio::test]
async fn throttling_and_unprocessed_items_still_write_every_order_exactly_once() {
    const N: usize = 300;
    let aws = aws(2).await;
    let table = create_table(&aws).await;
    aws.calls.set_faults(FaultPlan {
        stop_after_mutations: None,
        faults: vec![
            // Order matters: the first fault whose period divides the attempt number applies.
            ("BatchWriteItem".into(), Fault::UnprocessedItems, 3),
            ("BatchWriteItem".into(), Fault::ThrottleUnapplied, 2),
            // Applied, then answered with a throttle: the retry writes the same item again.
            ("BatchWriteItem".into(), Fault::Throttle, 5),
        ],
    });
    let writer = WriterConfig { retry_initial: Duration::from_millis(5), ..count_at(3000.0, N as u64) };
    let r = generate(&aws, &table, &config(Some(9), "t", writer)).await;
    aws.calls.set_faults(FaultPlan::default());
    assert_eq!((r.written, r.generated, r.unconfirmed, r.failed), (N as u64, N as u64, 0, 0), "{r:?}");
    assert!(r.unprocessed_items > 0 && r.retries > 0, "UnprocessedItems were retried: {r:?}");
    assert!(r.sdk_retries + r.failed_requests > 0, "throttles were retried: {r:?}");

    let items = scan(&aws, &table).await;
    assert_eq!(items.len(), N);
    let far = (jiff::Timestamp::UNIX_EPOCH, with_ms_slack(jiff::Timestamp::now(), 1));
    for expected in expected_orders(9, "t", N) {
        assert_item_is(&items[&expected.order_id], &expected, far);
    }
    let records = stream(&aws, &table).await;
    let inserts: Vec<&Change> = records.iter().filter(|c| c.event == OperationType::Insert).collect();
    assert_eq!(inserts.len(), N, "one INSERT per order");
    assert_eq!(inserts.iter().map(|c| c.id.as_str()).collect::<HashSet<_>>().len(), N);
    // A write repeated after an applied-then-throttled attempt rewrites identical content.
    for c in records.iter().filter(|c| c.event != OperationType::Insert) {
        assert_eq!(c.event, OperationType::Modify, "{c:?}");
        assert_eq!(c.new, c.old, "a retry changed order {}", c.id);
    }
}

/// 50/s for 4 s: exactly 200 orders, every batch sent on schedule (not bunched up late, not
/// early). The wall time to the last acknowledgement also holds moto's latency, which on a busy
/// machine stretched a 4 s run to 4.5 s; docs/benchmarks.md measures the accuracy over 60 s.
#[tokio::test]
async fn orders_are_sent_on_schedule_at_the_configured_rate() {
    let aws = aws(4).await;
    let table = create_table(&aws).await;
    let writer = WriterConfig {
        orders_per_second: 50.0,
        duration: Some(Duration::from_secs(4)),
        progress_interval: None,
        ..Default::default()
    };
    let started = Instant::now();
    let r = generate(&aws, &table, &config(None, "0", writer)).await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(r.written, 200, "{r:?}");
    assert_eq!(r.stopped_by, StopReason::Duration);
    assert!(r.max_send_delay_ms < 500.0, "a batch was sent late: {r:?}");
    assert!((3.9..5.5).contains(&took), "a 4 s run took {took:.2} s: {r:?}");
    assert_eq!(scan(&aws, &table).await.len(), 200);
}

#[tokio::test]
async fn same_seed_reproduces_ids_and_contents_and_another_seed_does_not_collide() {
    const N: usize = 120;
    let aws = aws(4).await;
    let (a, b, c) = (create_table(&aws).await, create_table(&aws).await, create_table(&aws).await);
    generate(&aws, &a, &config(Some(7), "0", count_at(2000.0, N as u64))).await;
    generate(&aws, &b, &config(Some(7), "0", count_at(2000.0, N as u64))).await;
    generate(&aws, &c, &config(Some(8), "0", count_at(2000.0, N as u64))).await;
    let without_ts = |items: BTreeMap<String, Flat>| -> BTreeMap<String, Flat> {
        items
            .into_iter()
            .map(|(id, mut f)| {
                f.remove("order_ts");
                (id, f)
            })
            .collect()
    };
    let (a, b, c) =
        (without_ts(scan(&aws, &a).await), without_ts(scan(&aws, &b).await), without_ts(scan(&aws, &c).await));
    assert_eq!(a.len(), N);
    assert_eq!(a, b, "same seed, same orders");
    assert!(a.keys().all(|id| !c.contains_key(id)), "another seed gives other ids");
}

fn operator() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sales-operator"));
    cmd.envs(moto::aws_env()).env("RUST_LOG", "warn");
    cmd
}

#[tokio::test]
async fn binary_writes_the_count_and_says_so() {
    let aws = aws(4).await;
    let table = create_table(&aws).await;
    let out = operator()
        .args(["generate", "--table", &table, "--orders-per-second", "500", "--count", "60", "--seed", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with(&format!("Done: 60 orders written to {table} in ")), "{stdout}");
    assert_eq!(scan(&aws, &table).await.len(), 60);
}

#[tokio::test]
async fn missing_table_is_reported_before_any_order_is_made() {
    let out = operator().args(["generate", "--table", "no-such-orders-table", "--count", "5"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("table no-such-orders-table: not found"), "{stderr}");
}

#[tokio::test]
async fn sigterm_while_aws_is_unreachable_exits_at_once() {
    let mut child = operator()
        .args(["generate", "--table", "orders", "--output", "json"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(3), "took {:?} to stop", sent.elapsed());
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigterm_and_sigint_stop_cleanly_and_every_reported_order_is_in_the_table() {
    for signal in ["TERM", "INT"] {
        let aws = aws(4).await;
        let table = create_table(&aws).await;
        let child = operator()
            .args(["generate", "--table", &table, "--orders-per-second", "1000", "--count", "1000000"])
            .args(["--output", "json", "--progress-interval", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let killed = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "SIG{signal}: exit {:?}: {stderr}", out.status);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("SIG{signal}: no JSON report ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(report["stopped_by"], "signal", "{report}");
        assert_eq!(report["signal"], format!("SIG{signal}"), "{report}");
        assert_eq!(report["unconfirmed"], 0, "{report}");
        let written = report["written"].as_u64().unwrap();
        assert!(written > 0 && written < 1_000_000, "SIG{signal}: {report}");
        assert_eq!(report["generated"], written, "every order made was written: {report}");

        let items = scan(&aws, &table).await;
        assert_eq!(items.len() as u64, written, "SIG{signal}: the table holds exactly what was reported");
        let inserts = stream(&aws, &table).await.into_iter().filter(|c| c.event == OperationType::Insert).count();
        assert_eq!(inserts as u64, written);
    }
}
