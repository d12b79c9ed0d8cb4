//! Metrics, health and readiness: one small HTTP server (`/metrics`,
//! `/healthz`, `/readyz`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::api::conditions::{FALSE, TRUE, UNKNOWN};
use crate::aws::calls::is_read_operation;
use crate::aws::CallLog;
use crate::events::Feed;

/// Whether log lines may carry ANSI colour codes: only on a terminal, and never when `NO_COLOR`
/// is set to anything but the empty string (no-color.org).
pub fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The package version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from, or `unknown` (build.rs).
pub const REVISION: &str = env!("SALES_OPERATOR_REVISION");
/// The build date, `YYYY-MM-DD` in UTC (build.rs; `SOURCE_DATE_EPOCH` when set).
pub const BUILD_DATE: &str = env!("SALES_OPERATOR_BUILD_DATE");
/// What `sales-operator --version` prints after the name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SALES_OPERATOR_REVISION"),
    ", built ",
    env!("SALES_OPERATOR_BUILD_DATE"),
    ")"
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

/// SalesPipelines per (account, Ready status); the account is empty while not known.
type PipelineCounts = Arc<Mutex<BTreeMap<(String, &'static str), i64>>>;

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    pipelines: PipelineCounts,
    data: Arc<Mutex<DataHealthState>>,
}

/// The Ready statuses the pipelines gauge always shows for each account (zero included).
const READY_STATUSES: [&str; 3] = [TRUE, FALSE, UNKNOWN];

/// Exposes the pipelines per account and Ready status at scrape time.
#[derive(Debug)]
struct Pipelines(PipelineCounts);

impl prometheus_client::collector::Collector for Pipelines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut gauge = encoder.encode_descriptor(
            "sales_operator_pipelines",
            "SalesPipelines by Ready condition status and AWS account",
            None,
            MetricType::Gauge,
        )?;
        let accounts: std::collections::BTreeSet<&String> = counts.keys().map(|(account, _)| account).collect();
        for account in accounts {
            for ready in READY_STATUSES {
                let n = counts.get(&(account.clone(), ready)).copied().unwrap_or(0);
                let labels = [("ready", ready), ("account", account.as_str())];
                ConstGauge::new(n).encode(gauge.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Exposes the AWS call counts of a [`CallLog`] at scrape time.
#[derive(Debug)]
struct AwsCalls(CallLog);

impl prometheus_client::collector::Collector for AwsCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.counts_by_account();
        let mut calls = encoder.encode_descriptor(
            "sales_operator_aws_calls",
            "AWS API calls by service, operation, kind (read/mutating), outcome and account",
            None,
            MetricType::Counter,
        )?;
        for ((account, service, operation), c) in &counts {
            let kind = if is_read_operation(operation) { "read" } else { "mutating" };
            for (outcome, value) in [("ok", c.ok), ("error", c.error)] {
                let labels = [
                    ("service", service.as_str()),
                    ("operation", operation.as_str()),
                    ("kind", kind),
                    ("outcome", outcome),
                    ("account", account.as_str()),
                ];
                ConstCounter::new(value).encode(calls.encode_family(&labels)?)?;
            }
        }
        let mut retries = encoder.encode_descriptor(
            "sales_operator_aws_retries",
            "AWS API call attempts beyond the first (throttling, 5xx)",
            None,
            MetricType::Counter,
        )?;
        for ((account, service, operation), c) in &counts {
            let labels =
                [("service", service.as_str()), ("operation", operation.as_str()), ("account", account.as_str())];
            ConstCounter::new(c.retries).encode(retries.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Exposes the change-event feed's health and what became of its messages at scrape time.
#[derive(Debug)]
struct ChangeEvents(Arc<Feed>);

impl prometheus_client::collector::Collector for ChangeEvents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let feed = &self.0;
        let mut up = encoder.encode_descriptor(
            "sales_operator_events_up",
            "Whether the change-event queue answers (1) or the operator polls with the short resync (0)",
            None,
            MetricType::Gauge,
        )?;
        for (i, queue) in feed.queues().iter().enumerate() {
            ConstGauge::new(i64::from(feed.queue_up(i))).encode(up.encode_family(&[("queue", queue.as_str())])?)?;
        }
        let mut events = encoder.encode_descriptor(
            "sales_operator_change_events",
            "AWS change events received, by outcome: matched (a pipeline reconciled), own (the operator's call), unknown (no pipeline's resource), malformed",
            None,
            MetricType::Counter,
        )?;
        let c = &feed.counts;
        for (outcome, n) in
            [("matched", &c.matched), ("own", &c.own), ("unknown", &c.unknown), ("malformed", &c.malformed)]
        {
            let value = n.load(Ordering::Relaxed);
            ConstCounter::new(value).encode(events.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}

/// One pipeline's data health as its metrics show it (the last look; docs/data-health.md).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineData {
    /// `flowing`, `idle` or `degraded`.
    pub state: &'static str,
    pub freshness_seconds: Option<f64>,
    /// Records moved in the window by stage (`pipe`, `stream`, `delivery`).
    pub records: Vec<(&'static str, f64)>,
    /// Failures in the window by stage (`pipe`, `delivery`).
    pub failures: Vec<(&'static str, f64)>,
    pub iterator_age_seconds: Option<f64>,
}

/// The states `sales_operator_pipeline_data_flowing` always shows for each pipeline.
const DATA_STATES: [&str; 3] = ["flowing", "idle", "degraded"];

/// Each pipeline's last look by (namespace, name), and the looks by outcome.
#[derive(Debug, Default)]
struct DataHealthState {
    pipelines: BTreeMap<(String, String), PipelineData>,
    checks_ok: u64,
    checks_error: u64,
}

/// A label besides `namespace` and `pipeline`, and a value.
type Sample = (Option<(&'static str, &'static str)>, f64);

/// One gauge family over every pipeline: `samples` gives each pipeline's values.
fn pipeline_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    pipelines: &BTreeMap<(String, String), PipelineData>,
    samples: impl Fn(&PipelineData) -> Vec<Sample>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for ((namespace, pipeline), data) in pipelines {
        for (extra, value) in samples(data) {
            let mut labels = vec![("namespace", namespace.as_str()), ("pipeline", pipeline.as_str())];
            labels.extend(extra);
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// Exposes the pipelines' data health at scrape time.
#[derive(Debug)]
struct DataHealth(Arc<Mutex<DataHealthState>>);

impl prometheus_client::collector::Collector for DataHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let p = &state.pipelines;
        pipeline_gauge(
            &mut encoder,
            "sales_operator_pipeline_freshness_seconds",
            "Seconds from entering Firehose to landing in S3, at most, in the last window (DeliveryToS3.DataFreshness)",
            p,
            |d| d.freshness_seconds.map(|s| (None, s)).into_iter().collect(),
        )?;
        pipeline_gauge(
            &mut encoder,
            "sales_operator_pipeline_records",
            "Records each stage moved in the last window (pipe EventCount, stream IncomingRecords, delivery DeliveryToS3.Records)",
            p,
            |d| d.records.iter().map(|(stage, n)| (Some(("stage", *stage)), *n)).collect(),
        )?;
        pipeline_gauge(
            &mut encoder,
            "sales_operator_pipeline_failures",
            "Failures in the last window by stage (pipe ExecutionFailed + TargetStageFailed, delivery objects under the error prefix)",
            p,
            |d| d.failures.iter().map(|(stage, n)| (Some(("stage", *stage)), *n)).collect(),
        )?;
        pipeline_gauge(
            &mut encoder,
            "sales_operator_pipeline_iterator_age_seconds",
            "How far Firehose's reading of the Kinesis stream is behind, at most, in the last window",
            p,
            |d| d.iterator_age_seconds.map(|s| (None, s)).into_iter().collect(),
        )?;
        pipeline_gauge(
            &mut encoder,
            "sales_operator_pipeline_data_flowing",
            "1 for the pipeline's data state (flowing, idle, degraded), 0 for the others",
            p,
            |d| DATA_STATES.iter().map(|s| (Some(("state", *s)), f64::from(u8::from(d.state == *s)))).collect(),
        )?;
        let mut checks = encoder.encode_descriptor(
            "sales_operator_data_health_checks",
            "Looks at a pipeline's metrics by outcome (ok, error: CloudWatch or S3 refused or did not answer)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [("ok", state.checks_ok), ("error", state.checks_error)] {
            ConstCounter::new(n).encode(checks.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The operator's metrics; `events`' only when it reads change-event queues.
    pub fn new(calls: CallLog, events: Option<Arc<Feed>>) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let pipelines = PipelineCounts::default();
        registry.register("sales_operator_reconciles", "Reconciles by resource kind and result", reconciles.clone());
        registry.register(
            "sales_operator_reconcile_errors",
            "Failed reconciles by resource kind and error",
            errors.clone(),
        );
        registry.register(
            "sales_operator_reconcile_duration_seconds",
            "Reconcile duration by resource kind",
            duration.clone(),
        );
        registry.register_collector(Box::new(Pipelines(pipelines.clone())));
        registry.register_collector(Box::new(AwsCalls(calls)));
        let data = Arc::new(Mutex::new(DataHealthState::default()));
        registry.register_collector(Box::new(DataHealth(data.clone())));
        if let Some(feed) = events {
            registry.register_collector(Box::new(ChangeEvents(feed)));
        }
        // OpenMetrics info: exposed as sales_operator_build_info{version,revision} 1.
        registry.register(
            "sales_operator_build",
            "The version and git revision of the running binary",
            Info::new(BuildLabels { version: VERSION.into(), revision: REVISION.into() }),
        );
        Self { registry, reconciles, errors, duration, pipelines, data }
    }

    /// Records one reconcile of `kind` (e.g. `SalesPipeline`).
    pub fn reconciled(&self, kind: &str, result: &str, took: Duration) {
        self.reconciles.get_or_create(&ResultLabels { kind: kind.into(), result: result.into() }).inc();
        self.duration.get_or_create(&KindLabels { kind: kind.into() }).observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &str, error: &str) {
        self.errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() }).inc();
    }

    /// Sets how many pipelines of each account have each Ready status (`True`, `False`,
    /// `Unknown`); accounts left out have none any more.
    pub fn set_pipelines(&self, counts: BTreeMap<(String, &'static str), i64>) {
        *self.pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = counts;
    }

    /// Records the last look at pipeline `namespace`/`name`: `Ok(data)` what it showed, `Err(())`
    /// a look that failed (the previous values stay).
    pub fn data_health(&self, namespace: &str, name: &str, look: Result<PipelineData, ()>) {
        let mut state = self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match look {
            Ok(data) => {
                state.checks_ok += 1;
                state.pipelines.insert((namespace.to_string(), name.to_string()), data);
            }
            Err(()) => state.checks_error += 1,
        }
    }

    /// Drops pipeline `namespace`/`name`'s data-health series (not Ready any more, or deleted).
    pub fn forget_data_health(&self, namespace: &str, name: &str) {
        let mut state = self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.pipelines.remove(&(namespace.to_string(), name.to_string()));
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What the HTTP server reports.
#[derive(Clone, Debug)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once the operator has listed its custom resources successfully.
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    match h.metrics.render() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], String::from("encoding failed"))
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> (StatusCode, &'static str) {
    if h.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: custom resources not listed yet")
    }
}

/// Binds `addr` and serves until the process ends.
pub async fn serve(addr: SocketAddr, health: Health) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_the_running_version_and_revision() {
        let text = Metrics::new(CallLog::default(), None).render().unwrap();
        let line = format!("sales_operator_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1");
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        assert!(text.contains("# TYPE sales_operator_build info"), "{text}");
    }

    #[test]
    fn the_pipelines_gauge_shows_every_ready_status_of_each_account_and_forgets_gone_accounts() {
        let metrics = Metrics::new(CallLog::default(), None);
        let counts = [(("111111111111".to_string(), "True"), 2), (("222222222222".to_string(), "False"), 1)];
        metrics.set_pipelines(counts.into_iter().collect());
        let text = metrics.render().unwrap();
        let gauge = |ready: &str, account: &str, n: i64| {
            format!("sales_operator_pipelines{{ready=\"{ready}\",account=\"{account}\"}} {n}")
        };
        for line in [
            gauge("True", "111111111111", 2),
            gauge("False", "111111111111", 0),
            gauge("Unknown", "111111111111", 0),
            gauge("True", "222222222222", 0),
            gauge("False", "222222222222", 1),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        metrics.set_pipelines([(("111111111111".to_string(), "True"), 3)].into_iter().collect());
        let text = metrics.render().unwrap();
        assert!(text.lines().any(|l| l == gauge("True", "111111111111", 3)), "{text}");
        assert!(!text.contains("222222222222"), "{text}");
    }

    #[test]
    fn the_events_metrics_show_each_queue_and_each_outcome() {
        let feed = Arc::new(Feed::new(vec!["https://sqs.eu-west-1.amazonaws.com/1/q".into()]));
        assert!(feed.handle("not json").is_err());
        feed.counts.malformed.fetch_add(1, Ordering::Relaxed);
        let text = Metrics::new(CallLog::default(), Some(feed)).render().unwrap();
        for line in [
            "sales_operator_events_up{queue=\"https://sqs.eu-west-1.amazonaws.com/1/q\"} 0",
            "sales_operator_change_events_total{outcome=\"malformed\"} 1",
            "sales_operator_change_events_total{outcome=\"matched\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        let text = Metrics::new(CallLog::default(), None).render().unwrap();
        assert!(!text.contains("sales_operator_events_up"), "{text}");
    }

    #[test]
    fn the_version_line_carries_a_revision_and_a_utc_date() {
        assert!(VERSION_LINE.starts_with(&format!("{VERSION} (revision {REVISION}, built ")), "{VERSION_LINE}");
        assert!(REVISION == "unknown" || REVISION.chars().all(|c| c.is_ascii_hexdigit()), "{REVISION}");
        let date: Vec<&str> = BUILD_DATE.split('-').collect();
        assert_eq!(date.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 2, 2], "{BUILD_DATE}");
        assert!(jiff::civil::Date::strptime("%Y-%m-%d", BUILD_DATE).is_ok(), "{BUILD_DATE}");
    }
}
