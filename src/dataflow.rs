//! Is data flowing? A pipeline's data health from the metrics AWS publishes for each stage
//! (docs/data-health.md cites the pages): which metrics to ask CloudWatch for in one
//! `GetMetricData`, and what their values over the last window say — the `DataFlowing`
//! condition, apart from `Ready` (which stays about configuration).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric as CloudWatchMetric, MetricDataQuery, MetricStat};

use crate::api::conditions::{NewCondition, FALSE, TRUE, UNKNOWN};
use crate::api::{DataFlowStatus, Reason};
use crate::aws::{AwsError, AwsResultExt};
use crate::names::Names;

/// The condition this module decides.
pub const DATA_FLOWING: &str = "DataFlowing";

/// A stage of the pipeline whose metrics say whether orders move, in the order they pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Pipe,
    Stream,
    Delivery,
}

impl Stage {
    /// The name of this stage's resource of the pipeline named `names`: the dimension value AWS
    /// publishes its metrics under.
    pub fn resource(self, names: &Names) -> &str {
        match self {
            Stage::Pipe => &names.pipe,
            Stage::Stream => &names.stream,
            Stage::Delivery => &names.delivery,
        }
    }

    /// As conditions and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pipe => "pipe",
            Stage::Stream => "stream",
            Stage::Delivery => "delivery",
        }
    }
}

/// How the values of a metric over the window are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    Sum,
    Maximum,
    Average,
}

impl Stat {
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Sum => "Sum",
            Stat::Maximum => "Maximum",
            Stat::Average => "Average",
        }
    }
}

/// One metric asked for: its query id (lower case, unique in the request, as GetMetricData
/// requires), namespace, name, dimension and statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub id: &'static str,
    pub stage: Stage,
    pub namespace: &'static str,
    pub name: &'static str,
    pub dimension: &'static str,
    pub stat: Stat,
}

const fn metric(
    id: &'static str,
    stage: Stage,
    namespace: &'static str,
    name: &'static str,
    dimension: &'static str,
    stat: Stat,
) -> Metric {
    Metric { id, stage, namespace, name, dimension, stat }
}

const PIPES: &str = "AWS/EventBridge/Pipes";
const KINESIS: &str = "AWS/Kinesis";
const FIREHOSE: &str = "AWS/Firehose";

/// Every metric read, with the dimension AWS publishes it under.
pub const METRICS: &[Metric] = &[
    metric("pipe_invocations", Stage::Pipe, PIPES, "Invocations", "PipeName", Stat::Sum),
    metric("pipe_events", Stage::Pipe, PIPES, "EventCount", "PipeName", Stat::Sum),
    metric("pipe_failed", Stage::Pipe, PIPES, "ExecutionFailed", "PipeName", Stat::Sum),
    metric("pipe_throttled", Stage::Pipe, PIPES, "ExecutionThrottled", "PipeName", Stat::Sum),
    metric("pipe_target_failed", Stage::Pipe, PIPES, "TargetStageFailed", "PipeName", Stat::Sum),
    metric("stream_incoming", Stage::Stream, KINESIS, "IncomingRecords", "StreamName", Stat::Sum),
    metric(
        "stream_iterator_age",
        Stage::Stream,
        KINESIS,
        "GetRecords.IteratorAgeMilliseconds",
        "StreamName",
        Stat::Maximum,
    ),
    metric(
        "delivery_read",
        Stage::Delivery,
        FIREHOSE,
        "DataReadFromKinesisStream.Records",
        "DeliveryStreamName",
        Stat::Sum,
    ),
    metric("delivery_records", Stage::Delivery, FIREHOSE, "DeliveryToS3.Records", "DeliveryStreamName", Stat::Sum),
    metric("delivery_success", Stage::Delivery, FIREHOSE, "DeliveryToS3.Success", "DeliveryStreamName", Stat::Average),
    metric(
        "delivery_freshness",
        Stage::Delivery,
        FIREHOSE,
        "DeliveryToS3.DataFreshness",
        "DeliveryStreamName",
        Stat::Maximum,
    ),
];

impl Metric {
    /// The dimension's value for the pipeline named `names`.
    pub fn dimension_value<'a>(&self, names: &'a Names) -> &'a str {
        self.stage.resource(names)
    }
}

/// The GetMetricData queries for the pipeline named `names`: every metric of [`METRICS`] as one
/// data point over the whole window.
pub fn queries(names: &Names, window: Duration) -> Vec<MetricDataQuery> {
    let period = i32::try_from(window.as_secs().max(60)).unwrap_or(i32::MAX);
    METRICS
        .iter()
        .map(|m| {
            let dimension = Dimension::builder().name(m.dimension).value(m.dimension_value(names)).build();
            let metric =
                CloudWatchMetric::builder().namespace(m.namespace).metric_name(m.name).dimensions(dimension).build();
            let stat = MetricStat::builder().metric(metric).period(period).stat(m.stat.as_str()).build();
            MetricDataQuery::builder().id(m.id).metric_stat(stat).return_data(true).build()
        })
        .collect()
}

/// Reads the window that ends `now` with one GetMetricData: each metric's value combined by its
/// statistic; a metric without a data point is absent.
pub async fn read(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: &Names,
    window: Duration,
    now: SystemTime,
) -> Result<BTreeMap<&'static str, f64>, AwsError> {
    let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let out = cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries(names, window)))
        .start_time(start.into())
        .end_time(now.into())
        .send()
        .await
        .aws("GetMetricData")?;
    let mut values = BTreeMap::new();
    for result in out.metric_data_results() {
        let Some(m) = METRICS.iter().find(|m| result.id() == Some(m.id)) else { continue };
        let points = result.values();
        if points.is_empty() {
            continue;
        }
        let value = match m.stat {
            Stat::Sum => points.iter().sum(),
            Stat::Maximum => points.iter().copied().fold(f64::MIN, f64::max),
            Stat::Average => points.iter().sum::<f64>() / points.len() as f64,
        };
        values.insert(m.id, value);
    }
    Ok(values)
}

/// The fixed part of Firehose's error output prefix: what comes before its first `!{...}`
/// expression (`errors/` of the default `errors/!{firehose:error-output-type}/...`).
pub fn error_prefix_root(error_prefix: &str) -> &str {
    error_prefix.find("!{").map_or(error_prefix, |i| &error_prefix[..i])
}

/// What Firehose wrote under the error output prefix since the last look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorObjects {
    /// The keys new since the last look, in key order.
    pub new_keys: Vec<String>,
    /// The greatest key listed: where the next look starts after.
    pub last_key: Option<String>,
}

/// One `ListObjectsV2` of the error prefix's fixed part in `bucket`, after `start_after` (the
/// last key of the previous look). Without one (the first look since the operator started),
/// only objects written since `since` count as new.
pub async fn error_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    error_prefix: &str,
    start_after: Option<&str>,
    since: SystemTime,
) -> Result<ErrorObjects, AwsError> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(error_prefix_root(error_prefix))
        .set_start_after(start_after.map(str::to_string))
        .send()
        .await
        .aws("ListObjectsV2")?;
    let since = aws_smithy_types::DateTime::from(since);
    let mut found = ErrorObjects { last_key: start_after.map(str::to_string), ..Default::default() };
    for object in out.contents() {
        let Some(key) = object.key() else { continue };
        if found.last_key.as_deref().is_none_or(|last| key > last) {
            found.last_key = Some(key.to_string());
        }
        let new = start_after.is_some() || object.last_modified().is_some_and(|t| t.secs() >= since.secs());
        if new {
            found.new_keys.push(key.to_string());
        }
    }
    Ok(found)
}

/// What CloudWatch answered for one window: each metric's combined value by query id, `None`
/// when it published no data point (AWS publishes most of these only while data moves).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub values: BTreeMap<&'static str, f64>,
    /// The newest object Firehose wrote under the error output prefix since the last look.
    pub newest_error_object: Option<String>,
    /// How many objects it wrote there since the last look.
    pub error_objects: usize,
}

impl Window {
    fn value(&self, id: &str) -> Option<f64> {
        self.values.get(id).copied()
    }

    fn count(&self, id: &str) -> f64 {
        self.value(id).unwrap_or(0.0)
    }

    /// Records each stage moved: the pipe's `EventCount`, the stream's `IncomingRecords`,
    /// Firehose's `DeliveryToS3.Records`.
    pub fn records(&self) -> [(Stage, f64); 3] {
        [
            (Stage::Pipe, self.count("pipe_events")),
            (Stage::Stream, self.count("stream_incoming")),
            (Stage::Delivery, self.count("delivery_records")),
        ]
    }

    /// Failures by stage: the pipe's failed executions (`ExecutionFailed` and
    /// `TargetStageFailed`), Firehose's objects under the error prefix.
    pub fn failures(&self) -> [(Stage, f64); 2] {
        [
            (Stage::Pipe, self.count("pipe_failed") + self.count("pipe_target_failed")),
            (Stage::Delivery, self.error_objects as f64),
        ]
    }

    /// How far the stream's reader is behind, in seconds, when published.
    pub fn iterator_age_seconds(&self) -> Option<f64> {
        self.value("stream_iterator_age").map(|ms| ms / 1000.0)
    }

    /// The freshness Firehose published, in seconds.
    pub fn freshness_seconds(&self) -> Option<f64> {
        self.value("delivery_freshness")
    }
}

/// How far behind the stream's reader may be before the stream counts as falling behind.
pub const ITERATOR_AGE_LIMIT_MS: f64 = 5.0 * 60.0 * 1000.0;

/// What the window says.
#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    /// Orders reach S3, this many seconds after they entered Firehose at most (None: not
    /// published in the window).
    Flowing { freshness_seconds: Option<f64> },
    /// Nothing was written in the window.
    Idle,
    /// The first stage that fails or falls behind, the metric and its value, and what else
    /// is known (Firehose's newest error object).
    Degraded { stage: Stage, metric: &'static str, value: f64, detail: Option<String> },
}

fn degraded(stage: Stage, id: &str, window: &Window, detail: Option<String>) -> Option<Health> {
    let m = METRICS.iter().find(|m| m.id == id)?;
    Some(Health::Degraded { stage, metric: m.name, value: window.count(id), detail })
}

/// Judges one window, stage by stage in the order orders pass: the first stage that fails or
/// falls behind is the one named.
pub fn judge(window: &Window) -> Health {
    for id in ["pipe_failed", "pipe_target_failed", "pipe_throttled"] {
        if window.count(id) > 0.0 {
            if let Some(h) = degraded(Stage::Pipe, id, window, None) {
                return h;
            }
        }
    }
    let moved = window.count("pipe_events") + window.count("stream_incoming") + window.count("delivery_read");
    if window.value("stream_iterator_age").is_some_and(|age| age > ITERATOR_AGE_LIMIT_MS) {
        if let Some(h) = degraded(Stage::Stream, "stream_iterator_age", window, None) {
            return h;
        }
    }
    let delivery_failed = window.value("delivery_success").is_some_and(|s| s < 1.0);
    if delivery_failed || window.newest_error_object.is_some() {
        let detail = window.newest_error_object.clone();
        if let Some(h) = degraded(Stage::Delivery, "delivery_success", window, detail) {
            return h;
        }
    }
    if moved == 0.0 && window.count("delivery_records") == 0.0 {
        return Health::Idle;
    }
    // Records entered the pipe but none reached Kinesis: the pipe cannot write to its target.
    if window.count("pipe_events") > 0.0 && window.count("stream_incoming") == 0.0 {
        if let Some(h) = degraded(Stage::Pipe, "stream_incoming", window, None) {
            return h;
        }
    }
    Health::Flowing { freshness_seconds: window.value("delivery_freshness") }
}

impl Health {
    /// The `DataFlowing` condition that says it, values as users read them.
    pub fn condition(&self, window_seconds: u64) -> NewCondition {
        match self {
            Health::Flowing { freshness_seconds: Some(s) } => NewCondition::new(
                DATA_FLOWING,
                TRUE,
                Reason::Flowing,
                format!("orders reach S3 within {} s of entering Firehose", s.round()),
            ),
            Health::Flowing { freshness_seconds: None } => NewCondition::new(
                DATA_FLOWING,
                TRUE,
                Reason::Flowing,
                "orders move through every stage (Firehose published no freshness in the window)",
            ),
            Health::Idle => NewCondition::new(
                DATA_FLOWING,
                UNKNOWN,
                Reason::Idle,
                format!("no orders written in the last {window_seconds} s"),
            ),
            Health::Degraded { stage, metric, value, detail } => {
                let mut message = format!("{}: {metric} is {}", stage.as_str(), shown(*value));
                if let Some(object) = detail {
                    message.push_str(&format!("; newest error object {object}"));
                }
                NewCondition::new(DATA_FLOWING, FALSE, Reason::Degraded, message)
            }
        }
    }
}

impl Health {
    /// The condition's reason word (`Flowing`, `Idle`, `Degraded`).
    pub fn state(&self) -> Reason {
        match self {
            Health::Flowing { .. } => Reason::Flowing,
            Health::Idle => Reason::Idle,
            Health::Degraded { .. } => Reason::Degraded,
        }
    }

    /// The status block of this look at `window` (`status.dataFlow`).
    pub fn status(&self, window: &Window, window_seconds: u64, checked_at: jiff::Timestamp) -> DataFlowStatus {
        DataFlowStatus {
            state: self.state().as_str().to_string(),
            freshness_seconds: window.freshness_seconds().map(|s| s.round() as i64),
            records: window
                .records()
                .iter()
                .filter(|(_, n)| *n > 0.0)
                .map(|(stage, n)| (stage.as_str().to_string(), n.round() as i64))
                .collect(),
            failing_stage: match self {
                Health::Degraded { stage, .. } => Some(stage.as_str().to_string()),
                _ => None,
            },
            newest_error_object: window.newest_error_object.clone(),
            window_seconds: i64::try_from(window_seconds).unwrap_or(i64::MAX),
            checked_at: checked_at.to_string(),
        }
    }
}

/// A metric value as users read it: whole numbers without a fraction.
fn shown(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[(&'static str, f64)]) -> Window {
        Window { values: values.iter().copied().collect(), ..Default::default() }
    }

    #[test]
    fn one_query_per_metric_with_the_pipelines_names_as_dimensions() {
        let names = Names::derive("shop", "sales", &crate::api::SalesPipelineSpec::default(), "eu-west-1");
        let queries = queries(&names, Duration::from_secs(300));
        assert_eq!(queries.len(), METRICS.len());
        let pipe = queries.iter().find(|q| q.id() == Some("pipe_failed")).and_then(|q| q.metric_stat()).unwrap();
        assert_eq!((pipe.period(), pipe.stat()), (Some(300), Some("Sum")));
        let dimension = &pipe.metric().unwrap().dimensions()[0];
        assert_eq!((dimension.name(), dimension.value()), (Some("PipeName"), Some(names.pipe.as_str())));
    }

    #[test]
    fn every_query_id_is_unique_lower_case_and_names_a_documented_namespace() {
        let mut ids: Vec<_> = METRICS.iter().map(|m| m.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), METRICS.len());
        for m in METRICS {
            assert!(m.id.chars().next().is_some_and(|c| c.is_ascii_lowercase()), "{}", m.id);
            assert!([PIPES, KINESIS, FIREHOSE].contains(&m.namespace), "{}", m.namespace);
        }
    }

    #[test]
    fn orders_delivered_are_flowing_with_the_freshness() {
        let w = window(&[
            ("pipe_events", 100.0),
            ("stream_incoming", 100.0),
            ("delivery_read", 100.0),
            ("delivery_records", 100.0),
            ("delivery_success", 1.0),
            ("delivery_freshness", 63.0),
        ]);
        assert_eq!(judge(&w), Health::Flowing { freshness_seconds: Some(63.0) });
        let c = judge(&w).condition(300);
        assert_eq!((c.status, c.reason.as_str()), (TRUE, "Flowing"));
        assert_eq!(c.message, "orders reach S3 within 63 s of entering Firehose");
    }

    #[test]
    fn nothing_written_is_idle_not_an_alarm() {
        assert_eq!(judge(&Window::default()), Health::Idle);
        let c = Health::Idle.condition(300);
        assert_eq!(
            (c.status, c.reason.as_str(), c.message.as_str()),
            (UNKNOWN, "Idle", "no orders written in the last 300 s")
        );
    }

    #[test]
    fn a_failing_pipe_is_degraded_at_the_pipe_with_the_count() {
        let w = window(&[("pipe_invocations", 4.0), ("pipe_failed", 4.0)]);
        let c = judge(&w).condition(300);
        assert_eq!((c.status, c.reason.as_str()), (FALSE, "Degraded"));
        assert_eq!(c.message, "pipe: ExecutionFailed is 4");
    }

    #[test]
    fn a_failing_delivery_names_the_newest_error_object() {
        let mut w = window(&[("pipe_events", 10.0), ("stream_incoming", 10.0), ("delivery_success", 0.0)]);
        w.newest_error_object = Some("errors/s3-error/2026/12/06/x.gz".into());
        let c = judge(&w).condition(300);
        assert_eq!(
            c.message,
            "delivery: DeliveryToS3.Success is 0; newest error object errors/s3-error/2026/12/06/x.gz"
        );
    }

    #[test]
    fn the_first_failing_stage_is_named_and_a_lagging_reader_is_the_streams() {
        let w = window(&[("pipe_failed", 1.0), ("delivery_success", 0.0)]);
        assert!(matches!(judge(&w), Health::Degraded { stage: Stage::Pipe, .. }));
        let w = window(&[("stream_incoming", 5.0), ("stream_iterator_age", ITERATOR_AGE_LIMIT_MS + 1.0)]);
        assert!(matches!(
            judge(&w),
            Health::Degraded { stage: Stage::Stream, metric: "GetRecords.IteratorAgeMilliseconds", .. }
        ));
        let w = window(&[("pipe_events", 5.0)]);
        assert!(matches!(judge(&w), Health::Degraded { stage: Stage::Pipe, metric: "IncomingRecords", .. }));
    }
}
