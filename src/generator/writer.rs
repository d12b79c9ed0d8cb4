//! Paced, batched, concurrent writes that lose nothing.
//!
//! Pacing: order *k* (from 0) is due at `start + k / rate`. The writer wakes at
//! absolute times computed from that schedule, never "sleep 1/rate after the
//! last write", so late wake-ups and slow requests do not add up: the count
//! written by any time *t* stays `rate·t` (no drift). Orders due together go
//! in one BatchWriteItem of up to 25; at rates where a batch would fill within
//! `max_batch_delay` the writer waits up to that long for more orders before
//! sending, so 1,000 orders/s are 40 requests/s rather than 1,000. Up to
//! `concurrency` requests are in flight at once (one tokio task each); when all
//! are busy the schedule runs ahead and the next batches are full. If the
//! writer falls more than [`MAX_BACKLOG_SECONDS`] behind (a long outage), the
//! debt beyond that is forgiven instead of bursting later.
//!
//! Exactly-once: every order becomes its DynamoDB item once; a retry resends
//! the very same item. Items returned as `UnprocessedItems` and batches that
//! failed with a retryable error (throttling, 5xx, network — after the SDK's
//! own retries) are resent with exponential backoff and jitter until written.
//! A permanent error (missing table, access denied) stops the run.
//! On shutdown no new orders are made; requests in flight and pending
//! retries are finished for at most `shutdown_timeout`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::order_source::OrderSource;
use crate::aws::error::ErrorKind;
use crate::aws::{AwsResultExt, CallLog};
use crate::order::Order;

/// Most items in one BatchWriteItem (a DynamoDB limit).
pub const MAX_BATCH: usize = 25;
/// Largest schedule debt kept, in seconds of orders; more is forgiven.
pub const MAX_BACKLOG_SECONDS: f64 = 10.0;

/// Why a write failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    /// Throttling, 5xx, network: worth another try.
    pub retryable: bool,
}

/// Where batches of orders go: DynamoDB, or an in-process sink for benchmarks.
pub trait Sink: Send + Sync + 'static {
    /// Writes `batch` (1 to 25 put requests). Returns the requests not written
    /// yet (DynamoDB's `UnprocessedItems`), which the writer sends again.
    fn write(&self, batch: &[WriteRequest]) -> impl Future<Output = Result<Vec<WriteRequest>, SinkError>> + Send;

    /// Attempts the client repeated by itself (the SDK's retries of throttled
    /// or failed requests), for the progress line and the report.
    fn client_retries(&self) -> u64 {
        0
    }
}

/// Writes batches with DynamoDB BatchWriteItem.
#[derive(Clone, Debug)]
pub struct DynamoDbSink {
    client: aws_sdk_dynamodb::Client,
    table: String,
    calls: Option<CallLog>,
}

impl DynamoDbSink {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), calls: None }
    }

    /// Reads the SDK's retries from `calls`, the interceptor installed on the client.
    pub fn with_calls(mut self, calls: CallLog) -> Self {
        self.calls = Some(calls);
        self
    }
}

impl Sink for DynamoDbSink {
    async fn write(&self, batch: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
        let out = self
            .client
            .batch_write_item()
            .request_items(&self.table, batch.to_vec())
            .send()
            .await
            .aws("BatchWriteItem")
            .map_err(|e| SinkError {
                retryable: matches!(e.kind, ErrorKind::Transient | ErrorKind::Busy),
                message: e.to_string(),
            })?;
        Ok(out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default())
    }

    fn client_retries(&self) -> u64 {
        self.calls.as_ref().map_or(0, |c| {
            c.counts().iter().filter(|((_, op), _)| op == "BatchWriteItem").map(|(_, n)| n.retries).sum()
        })
    }
}

/// Accepts everything at once: measures the generator's own ceiling.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    async fn write(&self, batch: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
        std::hint::black_box(batch);
        Ok(Vec::new())
    }
}

/// The put request of one order (the item is built once; retries resend it).
pub fn put_request(order: &Order) -> WriteRequest {
    let item: HashMap<String, AttributeValue> = order.to_item();
    // The builder fails only when `item` is unset, and it is always set here.
    let put = PutRequest::builder().set_item(Some(item)).build().expect("PutRequest with its item set");
    WriteRequest::builder().put_request(put).build()
}

/// How the writer paces, batches, retries and stops.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Orders per second (> 0).
    pub orders_per_second: f64,
    /// Stop after this many orders.
    pub count: Option<u64>,
    /// Stop making orders after this long.
    pub duration: Option<Duration>,
    /// Requests in flight at once (≥ 1).
    pub concurrency: usize,
    /// Longest an order waits for others to share its batch.
    pub max_batch_delay: Duration,
    /// Log a progress line this often.
    pub progress_interval: Option<Duration>,
    /// After a shutdown signal, how long to finish in-flight writes and retries.
    pub shutdown_timeout: Duration,
    /// First retry delay of a batch; doubles per attempt, with jitter.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            orders_per_second: 1.0,
            count: None,
            duration: None,
            concurrency: 4,
            max_batch_delay: Duration::from_millis(50),
            progress_interval: Some(Duration::from_secs(10)),
            shutdown_timeout: Duration::from_secs(20),
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `count` orders written.
    Count,
    /// `duration` elapsed.
    Duration,
    /// SIGTERM/SIGINT (or the caller's shutdown future).
    Signal,
    /// A permanent write error.
    Error,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// Orders confirmed written (each exactly once).
    pub written: u64,
    /// Orders made.
    pub generated: u64,
    /// Orders sent but not confirmed when the shutdown timeout ran out or a
    /// permanent error stopped the run: they may or may not be in the table.
    pub unconfirmed: u64,
    /// Orders not written because of a permanent error: refused by it, or
    /// waiting to be sent (again) when it stopped the run.
    pub failed: u64,
    /// BatchWriteItem requests completed (successfully or not).
    pub requests: u64,
    /// Batches sent again (unprocessed items or a retryable error).
    pub retries: u64,
    /// Items DynamoDB returned as UnprocessedItems.
    pub unprocessed_items: u64,
    /// Requests that failed with a retryable error after the SDK's own retries.
    pub failed_requests: u64,
    /// Attempts the SDK itself repeated (throttling, 5xx) before answering.
    pub sdk_retries: u64,
    /// Orders whose schedule slot was dropped because the writer was more than
    /// [`MAX_BACKLOG_SECONDS`] behind.
    pub skipped_slots: u64,
    pub elapsed_seconds: f64,
    /// `written / (elapsed_seconds + 1 / rate)`: each order owns one interval
    /// of the schedule, so 3 orders at 1/s (sent at 0, 1 and 2 s) read as 1/s.
    pub orders_per_second: f64,
    /// How late new batches were sent after their first order was due (mean and worst), in ms.
    pub mean_send_delay_ms: f64,
    pub max_send_delay_ms: f64,
    pub stopped_by: StopReason,
    /// The permanent error that stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// A run that wrote nothing (yet), e.g. one stopped before it started.
    pub fn empty(stopped_by: StopReason) -> Self {
        Self {
            written: 0,
            generated: 0,
            unconfirmed: 0,
            failed: 0,
            requests: 0,
            retries: 0,
            unprocessed_items: 0,
            failed_requests: 0,
            sdk_retries: 0,
            skipped_slots: 0,
            elapsed_seconds: 0.0,
            orders_per_second: 0.0,
            mean_send_delay_ms: 0.0,
            max_send_delay_ms: 0.0,
            stopped_by,
            error: None,
        }
    }
}

/// When order `k` is due: `origin + k / rate`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    origin: Instant,
    rate: f64,
}

impl Schedule {
    pub fn new(origin: Instant, rate: f64) -> Self {
        Self { origin, rate }
    }

    /// Orders due at `now`: those with `k / rate <= now - origin` (order 0 is due at once).
    pub fn due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_secs_f64();
        // The epsilon makes `due(due_at(k))` include `k` despite float rounding.
        (elapsed * self.rate + 1e-6).floor() as u64 + 1
    }

    /// When order `k` is due.
    pub fn due_at(&self, k: u64) -> Instant {
        self.origin + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Orders due strictly before `end`.
    pub fn due_before(&self, end: Instant) -> u64 {
        let span = end.saturating_duration_since(self.origin).as_secs_f64() * self.rate;
        (span - 1e-6).ceil().max(0.0) as u64
    }

    /// Moves the schedule `orders` slots later.
    pub fn skip(&mut self, orders: u64) {
        self.origin += Duration::from_secs_f64(orders as f64 / self.rate);
    }
}

/// The batching decisions, apart from any clock or I/O (so tests can drive it with made-up times).
#[derive(Clone, Debug)]
pub struct Pacer {
    pub schedule: Schedule,
    /// How long the oldest due order may wait for others to share its batch.
    linger: Duration,
    count: Option<u64>,
    end: Option<Instant>,
}

impl Pacer {
    pub fn new(start: Instant, cfg: &WriterConfig) -> Self {
        let rate = cfg.orders_per_second;
        // Waiting pays only when another order is due within the delay.
        let linger = if rate * cfg.max_batch_delay.as_secs_f64() >= 1.0 { cfg.max_batch_delay } else { Duration::ZERO };
        Self { schedule: Schedule::new(start, rate), linger, count: cfg.count, end: cfg.duration.map(|d| start + d) }
    }

    /// How many orders the run makes in all: the count, or those due before the end.
    pub fn limit(&self) -> u64 {
        let by_time = self.end.map_or(u64::MAX, |e| self.schedule.due_before(e));
        self.count.unwrap_or(u64::MAX).min(by_time)
    }

    /// Orders due at `now` and not made yet.
    pub fn pending(&self, now: Instant, made: u64) -> u64 {
        self.schedule.due(now).min(self.limit()).saturating_sub(made)
    }

    /// The size of the batch to send at `now` (0: none yet). A batch goes when
    /// it is full, when its oldest order has waited `linger`, or when it holds
    /// the run's last orders.
    pub fn batch(&self, now: Instant, made: u64) -> usize {
        let pending = self.pending(now, made);
        if pending == 0 {
            return 0;
        }
        let full = pending >= MAX_BATCH as u64;
        let waited = now >= self.schedule.due_at(made) + self.linger;
        let last = made + pending >= self.limit();
        if full || waited || last {
            pending.min(MAX_BATCH as u64) as usize
        } else {
            0
        }
    }

    /// When [`Pacer::batch`] next returns more than 0 (`None`: the run has made all its orders).
    pub fn next_batch_at(&self, made: u64) -> Option<Instant> {
        let limit = self.limit();
        if made >= limit {
            return None;
        }
        let fill = (made + MAX_BATCH as u64 - 1).min(limit - 1);
        Some((self.schedule.due_at(made) + self.linger).min(self.schedule.due_at(fill)))
    }

    /// Forgives the schedule debt beyond `max_backlog` orders; returns how many slots were dropped.
    pub fn forgive(&mut self, now: Instant, made: u64, max_backlog: u64) -> u64 {
        let behind = self.pending(now, made);
        if behind <= max_backlog {
            return 0;
        }
        let excess = behind - max_backlog;
        self.schedule.skip(excess);
        excess
    }
}

/// The result of one request task.
struct Done {
    batch: Vec<WriteRequest>,
    attempt: u32,
    result: Result<Vec<WriteRequest>, SinkError>,
}

struct Retry {
    batch: Vec<WriteRequest>,
    attempt: u32,
    not_before: Instant,
}

struct InFlight {
    handle: JoinHandle<Done>,
    size: usize,
}

impl Future for InFlight {
    type Output = (usize, Result<Done, tokio::task::JoinError>);

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let size = self.size;
        std::pin::Pin::new(&mut self.handle).poll(cx).map(|r| (size, r))
    }
}

fn backoff(cfg: &WriterConfig, attempt: u32) -> Duration {
    let base = cfg.retry_initial.saturating_mul(1u32 << attempt.min(16)).min(cfg.retry_max);
    // Full jitter in [base/2, base]: retries of many batches do not arrive together.
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Writes orders from `source` into `sink` as `cfg` says until the count or
/// duration is reached, `shutdown` completes, or a permanent error occurs.
pub async fn run<S: Sink>(
    cfg: &WriterConfig,
    source: &mut OrderSource,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()>,
) -> Report {
    let rate = cfg.orders_per_second;
    let concurrency = cfg.concurrency.max(1);
    let start = Instant::now();
    let mut pacer = Pacer::new(start, cfg);
    let max_backlog = ((rate * MAX_BACKLOG_SECONDS).ceil() as u64).max(MAX_BATCH as u64 * concurrency as u64);

    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut retries: Vec<Retry> = Vec::new();
    let mut r = Report::empty(StopReason::Count);
    let (mut delay_sum, mut delay_batches) = (0.0f64, 0u64);
    let mut stopped: Option<StopReason> = None;
    let mut flush_deadline: Option<Instant> = None;
    let mut progress = Progress::new(cfg.progress_interval, start);

    let launch = |sink: &Arc<S>, batch: Vec<WriteRequest>, attempt: u32| {
        let sink = Arc::clone(sink);
        let size = batch.len();
        let handle = tokio::spawn(async move {
            let result = sink.write(&batch).await;
            Done { batch, attempt, result }
        });
        InFlight { handle, size }
    };

    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();

        // 1. Retries first: their orders are the oldest.
        if r.error.is_none() {
            while in_flight.len() < concurrency {
                let Some(i) = retries.iter().position(|t| t.not_before <= now) else { break };
                let t = retries.swap_remove(i);
                r.retries += 1;
                in_flight.push(launch(&sink, t.batch, t.attempt));
            }
        }

        // 2. New orders, as the schedule makes them due. With a duration, the
        // orders due before the end are still sent after it (at once).
        if stopped.is_none() && r.generated >= pacer.limit() {
            stopped = Some(if cfg.count.is_some_and(|c| r.generated >= c) {
                StopReason::Count
            } else {
                StopReason::Duration
            });
        }
        if stopped.is_none() {
            let skipped = pacer.forgive(now, r.generated, max_backlog);
            if skipped > 0 {
                r.skipped_slots += skipped;
                tracing::warn!(
                    skipped,
                    "writes cannot keep up with {rate} orders/s; dropping {skipped} schedule slots to stay at most {MAX_BACKLOG_SECONDS} s behind"
                );
            }
            // Backpressure: while AWS refuses what was sent, make no new orders (the debt is capped above).
            while in_flight.len() < concurrency && retries.len() < concurrency {
                let n = pacer.batch(now, r.generated);
                if n == 0 {
                    break;
                }
                let oldest_due = pacer.schedule.due_at(r.generated);
                let late = now.saturating_duration_since(oldest_due).as_secs_f64() * 1e3;
                delay_sum += late;
                delay_batches += 1;
                r.max_send_delay_ms = r.max_send_delay_ms.max(late);
                let ts = jiff::Timestamp::now();
                let batch: Vec<WriteRequest> = (0..n).map(|_| put_request(&source.next_order(ts))).collect();
                r.generated += n as u64;
                in_flight.push(launch(&sink, batch, 0));
            }
        }

        let draining = stopped.is_some() || r.error.is_some();
        if draining && in_flight.is_empty() && (retries.is_empty() || r.error.is_some()) {
            break;
        }
        if let Some(deadline) = flush_deadline {
            if now >= deadline {
                tracing::warn!(
                    in_flight = in_flight.len(),
                    retries = retries.len(),
                    "shutdown timeout: giving up on writes not yet confirmed"
                );
                break;
            }
        }

        // 3. Sleep until something can happen.
        let mut wake = now + Duration::from_secs(3600);
        if stopped.is_none() && r.error.is_none() && in_flight.len() < concurrency && retries.len() < concurrency {
            if let Some(t) = pacer.next_batch_at(r.generated) {
                wake = wake.min(t);
            }
        }
        if r.error.is_none() && in_flight.len() < concurrency {
            if let Some(t) = retries.iter().map(|t| t.not_before).min() {
                wake = wake.min(t);
            }
        }
        if let Some(t) = progress.next {
            wake = wake.min(t);
        }
        if let Some(t) = flush_deadline {
            wake = wake.min(t);
        }

        tokio::select! {
            biased;
            _ = &mut shutdown, if flush_deadline.is_none() => {
                if stopped.is_none() {
                    stopped = Some(StopReason::Signal);
                }
                flush_deadline = Some(Instant::now() + cfg.shutdown_timeout);
                tracing::info!(
                    written = r.written,
                    in_flight = in_flight.len(),
                    retries = retries.len(),
                    "stopping: finishing the writes in flight"
                );
            }
            Some((size, joined)) = in_flight.next(), if !in_flight.is_empty() => {
                r.requests += 1;
                match joined {
                    Ok(Done { batch, attempt, result: Ok(unprocessed) }) => {
                        r.written += (batch.len() - unprocessed.len().min(batch.len())) as u64;
                        if !unprocessed.is_empty() {
                            r.unprocessed_items += unprocessed.len() as u64;
                            let not_before = Instant::now() + backoff(cfg, attempt);
                            retries.push(Retry { batch: unprocessed, attempt: attempt + 1, not_before });
                        }
                    }
                    Ok(Done { batch, attempt, result: Err(e) }) if e.retryable => {
                        r.failed_requests += 1;
                        tracing::debug!(error = %e, attempt, "batch failed; retrying");
                        let not_before = Instant::now() + backoff(cfg, attempt);
                        retries.push(Retry { batch, attempt: attempt + 1, not_before });
                    }
                    Ok(Done { batch, result: Err(e), .. }) => {
                        tracing::error!(error = %e, "permanent write error; stopping");
                        r.failed += batch.len() as u64;
                        r.error.get_or_insert(e.message);
                        stopped = Some(StopReason::Error);
                    }
                    Err(join) => {
                        r.unconfirmed += size as u64;
                        r.error.get_or_insert(format!("write task failed: {join}"));
                        stopped = Some(StopReason::Error);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }

        if progress.due(Instant::now()) {
            // Due but not sent yet: waiting to share a batch, or for a free request slot.
            let pending = if stopped.is_none() { pacer.pending(Instant::now(), r.generated) } else { 0 };
            r.sdk_retries = sink.client_retries();
            progress.log(&r, rate, in_flight.len(), pending);
        }
    }

    // Whatever is left was sent but never confirmed, or never sent again.
    for f in in_flight.iter() {
        f.handle.abort();
        r.unconfirmed += f.size as u64;
    }
    let pending_retries: u64 = retries.iter().map(|t| t.batch.len() as u64).sum();
    if r.error.is_some() {
        // Retries of a run stopped by a permanent error: nothing more is sent.
        r.failed += pending_retries;
    } else {
        r.unconfirmed += pending_retries;
    }
    r.sdk_retries = sink.client_retries();
    r.stopped_by = stopped.unwrap_or(StopReason::Signal);
    r.elapsed_seconds = start.elapsed().as_secs_f64();
    // Each order owns one interval of the schedule: n orders at rate r span n/r, not (n-1)/r.
    let span = r.elapsed_seconds + 1.0 / rate;
    r.orders_per_second = if span > 0.0 { r.written as f64 / span } else { 0.0 };
    r.mean_send_delay_ms = if delay_batches > 0 { delay_sum / delay_batches as f64 } else { 0.0 };
    r
}

/// The periodic progress line.
struct Progress {
    every: Option<Duration>,
    next: Option<Instant>,
    last_at: Instant,
    last_written: u64,
}

impl Progress {
    fn new(every: Option<Duration>, start: Instant) -> Self {
        let every = every.filter(|d| !d.is_zero());
        Self { every, next: every.map(|d| start + d), last_at: start, last_written: 0 }
    }

    fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| now >= t)
    }

    fn log(&mut self, r: &Report, target: f64, in_flight: usize, pending: u64) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(self.last_at).as_secs_f64();
        let current = if secs > 0.0 { (r.written - self.last_written) as f64 / secs } else { 0.0 };
        tracing::info!(
            written = r.written,
            rate = (current * 10.0).round() / 10.0,
            target,
            retries = r.retries,
            sdk_retries = r.sdk_retries,
            unprocessed = r.unprocessed_items,
            in_flight,
            pending,
            "progress: {} orders written, {current:.1}/s",
            r.written
        );
        self.last_at = now;
        self.last_written = r.written;
        if let (Some(every), Some(next)) = (self.every, self.next) {
            // The next line on the grid, skipping ticks missed while busy.
            let mut t = next + every;
            while t <= now {
                t += every;
            }
            self.next = Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::generator::products::Catalog;

    #[test]
    fn schedule_counts_orders_due_without_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 3.0);
        assert_eq!(s.due(t0), 1);
        assert_eq!(s.due(t0 + Duration::from_millis(333)), 1);
        assert_eq!(s.due(t0 + Duration::from_millis(334)), 2);
        assert_eq!(s.due(t0 + Duration::from_secs(3600)), 3 * 3600 + 1);
        for k in [0u64, 1, 7, 1000, 123_456] {
            assert_eq!(s.due(s.due_at(k)), k + 1, "k={k}");
        }
        assert_eq!(s.due_before(t0 + Duration::from_secs(10)), 30);
        let slow = Schedule::new(t0, 1.0 / 3.0);
        assert_eq!(slow.due_at(2), t0 + Duration::from_secs(6));
        assert_eq!(slow.due_before(t0 + Duration::from_secs(60)), 20);
    }

    #[test]
    fn skipping_moves_the_schedule_later() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 100.0);
        s.skip(50);
        assert_eq!(s.due_at(0), t0 + Duration::from_millis(500));
    }

    /// Records batch sizes; every `nth` call returns the last half of its batch as unprocessed,
    /// every `fail`-th call fails with a retryable error.
    #[derive(Default)]
    struct FlakySink {
        calls: AtomicU64,
        nth: u64,
        fail: u64,
        written: Mutex<Vec<String>>,
        sizes: Mutex<Vec<usize>>,
    }

    fn id(w: &WriteRequest) -> String {
        match w.put_request.as_ref().and_then(|p| p.item.get("orderid")) {
            Some(AttributeValue::S(s)) => s.clone(),
            other => panic!("no orderid: {other:?}"),
        }
    }

    impl Sink for FlakySink {
        async fn write(&self, batch: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.sizes.lock().unwrap().push(batch.len());
            if self.fail > 0 && n.is_multiple_of(self.fail) {
                return Err(SinkError { message: "injected".into(), retryable: true });
            }
            let keep = if self.nth > 0 && n.is_multiple_of(self.nth) { batch.len().div_ceil(2) } else { batch.len() };
            self.written.lock().unwrap().extend(batch[..keep].iter().map(id));
            Ok(batch[keep..].to_vec())
        }
    }

    fn source(seed: u64) -> OrderSource {
        OrderSource::new(Arc::new(Catalog::default()), Some(seed), "0")
    }

    fn fast(rate: f64, count: u64) -> WriterConfig {
        WriterConfig {
            orders_per_second: rate,
            count: Some(count),
            progress_interval: None,
            retry_initial: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn unprocessed_items_and_failures_are_retried_until_every_order_is_written_once() {
        let sink = Arc::new(FlakySink { nth: 3, fail: 5, ..Default::default() });
        let r = run(&fast(1e6, 1000), &mut source(1), Arc::clone(&sink), std::future::pending()).await;
        assert_eq!((r.written, r.generated, r.unconfirmed), (1000, 1000, 0), "{r:?}");
        assert!(r.retries > 0 && r.unprocessed_items > 0 && r.failed_requests > 0, "{r:?}");
        assert_eq!(r.stopped_by, StopReason::Count);
        let mut ids = sink.written.lock().unwrap().clone();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000);
        assert!(sink.sizes.lock().unwrap().iter().all(|&n| (1..=MAX_BATCH).contains(&n)));
    }

    #[tokio::test]
    async fn a_permanent_error_stops_the_run_and_says_why() {
        struct Denied;
        impl Sink for Denied {
            async fn write(&self, _: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
                Err(SinkError { message: "AccessDeniedException: no".into(), retryable: false })
            }
        }
        let r = run(&fast(1e6, 1000), &mut source(1), Arc::new(Denied), std::future::pending()).await;
        assert_eq!(r.stopped_by, StopReason::Error);
        assert_eq!(r.written, 0);
        assert!(r.error.as_deref().unwrap().contains("AccessDenied"));
        assert!(r.generated < 1000, "stops making orders: {r:?}");
    }

    /// Drives a pacer with made-up times and an instant sink: (send time, batch size) of every batch.
    fn simulate(cfg: &WriterConfig) -> (Instant, Vec<(Duration, usize)>) {
        let t0 = Instant::now();
        let pacer = Pacer::new(t0, cfg);
        let (mut now, mut made, mut sent) = (t0, 0u64, Vec::new());
        loop {
            let n = pacer.batch(now, made);
            if n > 0 {
                sent.push((now - t0, n));
                made += n as u64;
                continue;
            }
            match pacer.next_batch_at(made) {
                Some(t) => {
                    assert!(t > now, "the next batch time must lie ahead: no busy loop");
                    // Timers fire up to a millisecond late.
                    now = t + Duration::from_micros(700);
                }
                None => return (t0, sent),
            }
        }
    }

    #[test]
    fn low_rates_send_each_order_alone_at_its_time() {
        let (_, sent) = simulate(&WriterConfig { orders_per_second: 1.0 / 3.0, ..fast(1.0, 4) });
        let secs: Vec<u64> = sent.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(secs, [0, 3, 6, 9]);
        assert!(sent.iter().all(|&(t, n)| n == 1 && t.subsec_millis() <= 1), "{sent:?}");
    }

    #[test]
    fn high_rates_fill_batches_of_25() {
        let (_, sent) = simulate(&fast(1000.0, 1000));
        assert_eq!(sent.len(), 40, "{sent:?}");
        assert!(sent.iter().all(|&(_, n)| n == MAX_BATCH), "{sent:?}");
        // The last batch goes when its last order is due: 999 ms.
        assert_eq!(sent[39].0.as_millis(), 999);
    }

    #[test]
    fn medium_rates_batch_what_is_due_within_the_batch_delay() {
        let (_, sent) = simulate(&fast(100.0, 300));
        assert_eq!(sent.iter().map(|&(_, n)| n).sum::<usize>(), 300);
        // 50 ms of orders at 100/s: 6 per request (5 more arrive while the first waits).
        assert!(sent.iter().all(|&(_, n)| n <= 7), "{sent:?}");
        assert!((45..=60).contains(&sent.len()), "{}", sent.len());
    }

    #[test]
    fn schedule_has_no_drift_over_an_hour() {
        let cfg = WriterConfig { count: None, duration: Some(Duration::from_secs(3600)), ..fast(7.0, 0) };
        let (_, sent) = simulate(&cfg);
        assert_eq!(sent.iter().map(|&(_, n)| n as u64).sum::<u64>(), 7 * 3600);
        // The last order is due at (7*3600-1)/7 s and goes out within a timer tick (no linger at 7/s).
        let last = sent.last().unwrap().0.as_secs_f64();
        let due = (7.0 * 3600.0 - 1.0) / 7.0;
        assert!((last - due).abs() < 0.002, "{last} vs {due}");
    }

    #[test]
    fn duration_makes_rate_times_duration_orders() {
        let cfg = WriterConfig { count: None, duration: Some(Duration::from_secs(10)), ..fast(20.0, 0) };
        let (_, sent) = simulate(&cfg);
        assert_eq!(sent.iter().map(|&(_, n)| n).sum::<usize>(), 200);
    }

    #[test]
    fn a_long_outage_is_forgiven_beyond_the_backlog_limit() {
        let cfg = fast(10.0, 10_000);
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, &cfg);
        // 60 s without a write: 601 orders due; at most 100 (10 s) are kept.
        let now = t0 + Duration::from_secs(60);
        assert_eq!(pacer.forgive(now, 1, 100), 500);
        assert_eq!(pacer.pending(now, 1), 100);
        assert_eq!(pacer.forgive(now, 1, 100), 0);
    }

    #[tokio::test]
    async fn no_new_orders_are_made_while_writes_keep_failing() {
        struct Throttled;
        impl Sink for Throttled {
            async fn write(&self, _: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
                Err(SinkError { message: "ThrottlingException".into(), retryable: true })
            }
        }
        let cfg = WriterConfig { count: None, shutdown_timeout: Duration::from_millis(100), ..fast(1e6, 0) };
        let stop = tokio::time::sleep(Duration::from_millis(300));
        let r = run(&cfg, &mut source(8), Arc::new(Throttled), stop).await;
        // At most the batches in flight and those waiting to be retried: 2 x 4 x 25.
        assert!(r.generated <= 200, "{r:?}");
        assert!(r.failed_requests > 10, "{r:?}");
        assert_eq!((r.written, r.unconfirmed), (0, r.generated), "{r:?}");
        assert_eq!(r.stopped_by, StopReason::Signal);
    }

    #[tokio::test]
    async fn shutdown_flushes_in_flight_batches_and_makes_no_new_orders() {
        struct Slow(AtomicU64);
        impl Sink for Slow {
            async fn write(&self, batch: &[WriteRequest]) -> Result<Vec<WriteRequest>, SinkError> {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
                Ok(vec![])
            }
        }
        let sink = Arc::new(Slow(AtomicU64::new(0)));
        let cfg = WriterConfig { count: None, ..fast(1000.0, 0) };
        let stop = tokio::time::sleep(Duration::from_millis(500));
        let r = run(&cfg, &mut source(6), Arc::clone(&sink), stop).await;
        assert_eq!(r.stopped_by, StopReason::Signal);
        assert_eq!(r.unconfirmed, 0);
        assert_eq!(r.written, r.generated);
        assert_eq!(r.written, sink.0.load(Ordering::SeqCst));
        assert!(r.written > 0);
    }
}
