//! The order generator's numbers (docs/benchmarks.md, "Order generator"):
//! 1. its own ceiling: orders/s and CPU per order into an in-process null sink
//!    on one core (order generation + item building + pacing + task per batch);
//! 2. orders/s one generator process sustains against the moto server, by
//!    number of requests in flight;
//! 3. rate accuracy at 1, 100 and 1,000 orders/s, into the null sink (the
//!    pacing alone) and into moto (end to end), all six runs at once over one
//!    window (GENERATOR_BENCH_WINDOW seconds, default 60).
//!
//! Run: `cargo test -q --bench generator` (dev profile, as the tests build) or
//! `cargo bench --bench generator` (release). Takes about 2 minutes.

#[path = "../tests/it/support/moto.rs"]
mod moto;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, WriteRequest,
};
use sales_operator::aws::CallLog;
use sales_operator::generator::writer::{self, put_request, Sink, SinkError, WriterConfig};
use sales_operator::generator::{Catalog, DynamoDbSink, NullSink, OrderSource, Report};

/// CPU time of the calling thread (the whole runtime on a current-thread runtime).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of the whole process (user + system), 10 ms resolution.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
        Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
    });
    Duration::from_millis(ticks.unwrap_or(0) * 10)
}

fn source(seed: u64) -> OrderSource {
    OrderSource::new(Arc::new(Catalog::default()), Some(seed), "bench")
}

fn unpaced(count: u64, concurrency: usize) -> WriterConfig {
    WriterConfig {
        orders_per_second: 1e9,
        count: Some(count),
        concurrency,
        progress_interval: None,
        ..WriterConfig::default()
    }
}

fn null_sink_ceiling() {
    println!("## 1. Generator ceiling (in-process null sink, one core: current-thread runtime)\n");
    println!("| what | orders | wall | orders/s | CPU per order |");
    println!("|---|---|---|---|---|");
    // Generation and item building alone.
    let n = 200_000u64;
    let mut s = source(1);
    let (t, cpu) = (Instant::now(), thread_cpu());
    let now = jiff::Timestamp::now();
    for _ in 0..n {
        std::hint::black_box(put_request(&s.next_order(now)));
    }
    let (wall, used) = (t.elapsed(), thread_cpu() - cpu);
    row("make order + DynamoDB item", n, wall, used);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for concurrency in [1usize, 4] {
        let n = 500_000u64;
        let (t, cpu) = (Instant::now(), thread_cpu());
        let r = rt.block_on(writer::run(
            &unpaced(n, concurrency),
            &mut source(2),
            Arc::new(NullSink),
            std::future::pending(),
        ));
        let (wall, used) = (t.elapsed(), thread_cpu() - cpu);
        assert_eq!(r.written, n);
        row(&format!("full writer, unpaced, {concurrency} in flight"), n, wall, used);
    }
    // Paced at 100,000/s: the goal of the issue.
    let n = 500_000u64;
    let cfg = WriterConfig { orders_per_second: 100_000.0, ..unpaced(n, 4) };
    let (t, cpu) = (Instant::now(), thread_cpu());
    let r = rt.block_on(writer::run(&cfg, &mut source(3), Arc::new(NullSink), std::future::pending()));
    let (wall, used) = (t.elapsed(), thread_cpu() - cpu);
    assert_eq!(r.written, n);
    row("full writer, paced at 100,000/s", n, wall, used);
    println!();
}

fn row(what: &str, n: u64, wall: Duration, cpu: Duration) {
    println!(
        "| {what} | {n} | {:.2} s | {:.0} | {:.2} µs |",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64
    );
}

struct Aws {
    dynamodb: aws_sdk_dynamodb::Client,
    calls: CallLog,
}

async fn aws() -> Aws {
    let sdk = moto::sdk(&moto::settings()).await;
    let calls = CallLog::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
    );
    Aws { dynamodb, calls }
}

async fn table(aws: &Aws) -> String {
    let name = moto::unique("bench-orders");
    aws.dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("orderid")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("orderid").key_type(KeyType::Hash).build().expect("key"))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream"),
        )
        .send()
        .await
        .expect("create table");
    name
}

async fn moto_throughput(aws: &Aws) {
    println!("## 2. Against moto (one generator process, unpaced, multi-thread runtime)\n");
    println!("| requests in flight | orders | wall | orders/s | generator CPU per order | SDK retries |");
    println!("|---|---|---|---|---|---|");
    for concurrency in [1usize, 4, 8, 16] {
        let n = 15_000u64;
        let t = table(aws).await;
        let sink = Arc::new(DynamoDbSink::new(aws.dynamodb.clone(), &t).with_calls(aws.calls.clone()));
        aws.calls.reset();
        let (start, cpu) = (Instant::now(), process_cpu());
        let r = writer::run(&unpaced(n, concurrency), &mut source(4), sink, std::future::pending()).await;
        let (wall, used) = (start.elapsed(), process_cpu() - cpu);
        assert_eq!(r.written, n, "{r:?}");
        println!(
            "| {concurrency} | {n} | {:.2} s | {:.0} | {:.1} µs | {} |",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            used.as_secs_f64() * 1e6 / n as f64,
            r.sdk_retries
        );
    }
    println!();
}

/// Wraps a sink, recording each order's delay from its due time to its acknowledgement.
struct Timed<S> {
    inner: S,
    start: Instant,
    rate: f64,
    /// (seconds since start when acknowledged, seconds late)
    acks: Mutex<Vec<(f64, f64)>>,
}

fn sequence(w: &WriteRequest) -> Option<u64> {
    match w.put_request.as_ref()?.item.get("orderid")? {
        AttributeValue::S(id) => id.rsplit('-').next()?.parse().ok(),
        _ => None,
    }
}

impl<S: Sink> Sink for Timed<S> {
    async fn write(&self, batch: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
        let unprocessed = self.inner.write(batch).await?;
        let now = self.start.elapsed().as_secs_f64();
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        for w in batch.iter().filter(|w| !unprocessed.contains(w)) {
            if let Some(seq) = sequence(w) {
                acks.push((now, now - seq as f64 / self.rate));
            }
        }
        Ok(unprocessed)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    label: String,
    rate: f64,
    acks: Arc<dyn Fn() -> Vec<(f64, f64)> + Send + Sync>,
    handle: tokio::task::JoinHandle<Report>,
}

fn start_paced<S: Sink>(label: String, rate: f64, inner: S, window: u64) -> Run {
    let sink = Arc::new(Timed { inner, start: Instant::now(), rate, acks: Mutex::new(Vec::new()) });
    let cfg = WriterConfig {
        orders_per_second: rate,
        duration: Some(Duration::from_secs(window)),
        progress_interval: None,
        ..WriterConfig::default()
    };
    let s = Arc::clone(&sink);
    let handle = tokio::spawn(async move {
        let mut src = source(5);
        writer::run(&cfg, &mut src, s, std::future::pending()).await
    });
    let acks = Arc::new(move || sink.acks.lock().unwrap_or_else(|p| p.into_inner()).clone());
    Run { label, rate, acks, handle }
}

async fn rate_accuracy(aws: &Aws, window: u64) {
    println!("## 3. Rate accuracy ({window} s window; the six runs at once)\n");
    println!("| target, sink | written in window | achieved | error | worst 10 s slice | delay due→written p50 / p99 / max | requests |");
    println!("|---|---|---|---|---|---|---|");
    let mut runs = Vec::new();
    for rate in [1.0f64, 100.0, 1000.0] {
        runs.push(start_paced(format!("{rate}/s, null sink"), rate, NullSink, window));
        let t = table(aws).await;
        runs.push(start_paced(format!("{rate}/s, moto"), rate, DynamoDbSink::new(aws.dynamodb.clone(), &t), window));
    }
    for run in runs {
        let r: Report = run.handle.await.expect("run");
        let rate = run.rate;
        let acks = (run.acks)();
        let in_window = acks.iter().filter(|(t, _)| *t <= window as f64).count();
        let achieved = in_window as f64 / window as f64;
        let slices: Vec<f64> = (0..window / 10)
            .map(|i| {
                let (a, b) = ((i * 10) as f64, (i * 10 + 10) as f64);
                acks.iter().filter(|(t, _)| *t > a && *t <= b).count() as f64 / 10.0
            })
            .collect();
        let worst = slices.iter().map(|s| (s - rate).abs() / rate).fold(0.0f64, f64::max);
        if std::env::var_os("GENERATOR_BENCH_DEBUG").is_some() {
            let mut worst = acks.clone();
            worst.sort_by(|a, b| b.1.total_cmp(&a.1));
            eprintln!("{}: worst (ack time s, delay s): {:?}", run.label, &worst[..worst.len().min(5)]);
        }
        let mut delays: Vec<f64> = acks.iter().map(|(_, d)| d * 1e3).collect();
        delays.sort_by(f64::total_cmp);
        println!(
            "| {} | {in_window} | {achieved:.3}/s | {:+.2} % | {:.1} % | {:.1} / {:.1} / {:.1} ms | {} |",
            run.label,
            (achieved - rate) / rate * 100.0,
            worst * 100.0,
            percentile(&delays, 0.5),
            percentile(&delays, 0.99),
            delays.last().copied().unwrap_or(0.0),
            r.requests
        );
    }
    println!();
}

fn main() {
    let window: u64 = std::env::var("GENERATOR_BENCH_WINDOW").ok().and_then(|w| w.parse().ok()).unwrap_or(60);
    let profile = if cfg!(debug_assertions) { "dev (unoptimized)" } else { "release" };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("# Order generator benchmark ({profile} profile, {cores} cores)\n");
    null_sink_ceiling();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let aws = aws().await;
        moto_throughput(&aws).await;
        rate_accuracy(&aws, window).await;
    });
}
