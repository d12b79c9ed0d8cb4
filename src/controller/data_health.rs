//! Is data flowing? Every `--data-health-interval`, each Ready pipeline's stages' CloudWatch
//! metrics over the last `--data-health-window` (one GetMetricData) and Firehose's error prefix
//! (one ListObjectsV2), judged by [`crate::dataflow`], written as the `DataFlowing` condition and
//! `status.dataFlow` under a field manager of their own (so the reconcile passes, which own
//! everything else in the status, neither write nor remove them), as Prometheus metrics, and as
//! `DataStopped` / `DataResumed` events on transitions. Ready is never touched.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::api::conditions::{self, UNKNOWN};
use crate::api::{DataFlowStatus, Reason, SalesPipeline, SalesPipelineStatus};
use crate::dataflow::{self, Health, Window, DATA_FLOWING};
use crate::names::Names;
use crate::telemetry::PipelineData;

/// The field manager of the data health's status fields.
pub const MANAGER: &str = "sales-operator-data-health";

/// `status` without the data health's fields (the reconcile passes' part of it).
pub fn without(mut status: SalesPipelineStatus) -> SalesPipelineStatus {
    status.data_flow = None;
    status.conditions.retain(|c| c.type_ != DATA_FLOWING);
    status
}

/// How the data health runs (flags of `sales-operator run`).
#[derive(clap::Args, Debug, Clone)]
pub struct DataHealthArgs {
    /// How often each Ready pipeline's data health is read from CloudWatch (one GetMetricData and
    /// one ListObjectsV2 per pipeline); 0 turns it off.
    #[arg(long, env = "SALES_OPERATOR_DATA_HEALTH_INTERVAL", default_value = "1m", value_parser = crate::parse_duration)]
    pub data_health_interval: Duration,
    /// The span of metrics each look judges, ending now. AWS publishes most of them per minute and
    /// a few minutes late, so shorter than 5m shows a busy pipeline as Idle now and then.
    #[arg(long, env = "SALES_OPERATOR_DATA_HEALTH_WINDOW", default_value = "5m", value_parser = parse_window)]
    pub data_health_window: Duration,
}

fn parse_window(value: &str) -> Result<Duration, String> {
    let window = crate::parse_duration(value)?;
    if window < Duration::from_secs(1) {
        return Err("at least 1s (AWS publishes these metrics per minute: 5m is the default)".into());
    }
    Ok(window)
}

/// Per pipeline: where the next look at the error prefix starts (the greatest key listed), and
/// the error objects found within the window (when found, key), oldest first.
#[derive(Debug, Default)]
struct Mark {
    start_after: Option<String>,
    errors: VecDeque<(Instant, String)>,
}

type Marks = Mutex<HashMap<ObjectRef<SalesPipeline>, Mark>>;

/// Looks at every Ready pipeline every `interval`, `concurrency` at a time, until the process ends.
pub async fn run(ctx: Arc<Context>, args: DataHealthArgs, concurrency: usize) {
    if args.data_health_interval.is_zero() {
        return;
    }
    let marks = Marks::default();
    let mut ticker = tokio::time::interval(args.data_health_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown: Vec<ObjectRef<SalesPipeline>> = Vec::new();
    loop {
        ticker.tick().await;
        let pipelines = ctx.pipelines();
        // Series of pipelines that are gone go with them.
        let present: std::collections::HashSet<_> = pipelines.iter().map(|sp| ObjectRef::from(sp.as_ref())).collect();
        for gone in shown.iter().filter(|o| !present.contains(o)) {
            ctx.metrics.forget_data_health(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
            lock(&marks).remove(gone);
        }
        shown = present.into_iter().collect();
        futures::stream::iter(pipelines)
            .for_each_concurrent(concurrency.max(1), |sp| {
                let (ctx, marks) = (&ctx, &marks);
                async move {
                    if let Err(e) = look(ctx, &sp, args.data_health_window, marks).await {
                        let namespace = sp.namespace().unwrap_or_default();
                        tracing::warn!(%namespace, name = %sp.name_any(), error = %e, "cannot write the data health");
                    }
                }
            })
            .await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the reconcile passes brought `sp`'s current spec to Ready (and it is not being deleted).
fn ready(sp: &SalesPipeline) -> bool {
    sp.meta().deletion_timestamp.is_none() && sp.settled()
}

/// One look at one pipeline.
async fn look(ctx: &Context, sp: &SalesPipeline, window: Duration, marks: &Marks) -> Result<(), kube::Error> {
    let namespace = sp.namespace().unwrap_or_default();
    let name = sp.name_any();
    let obj = ObjectRef::from(sp);
    if !ready(sp) {
        ctx.metrics.forget_data_health(&namespace, &name);
        lock(marks).remove(&obj);
        let shown = sp.status.as_ref().is_some_and(|s| s.data_flow.is_some() || has_condition(s));
        return if shown { write(ctx, sp, None).await } else { Ok(()) };
    }
    let now = SystemTime::now();
    let since = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let seconds = window.as_secs();
    let mark = lock(marks).get(&obj).and_then(|m| m.start_after.clone());
    let read = async {
        let target = ctx.target(sp).await.map_err(|e| e.to_string())?;
        let reconciler = ctx.reconciler(&target).await.map_err(|e| e.to_string())?;
        let clients = &reconciler.aws;
        let names = Names::derive(&namespace, &name, &sp.spec, &clients.region);
        let values = dataflow::read(&clients.cloudwatch, &names, window, now).await.map_err(|e| e.to_string())?;
        let errors =
            dataflow::error_objects(&clients.s3, &names.bucket, &sp.spec.delivery.error_prefix, mark.as_deref(), since)
                .await
                .map_err(|e| e.to_string())?;
        Ok::<_, String>((values, errors))
    };
    let checked_at = jiff::Timestamp::now();
    let (condition, status) = match read.await {
        Ok((values, errors)) => {
            let (newest_error_object, error_objects) = {
                let mut marks = lock(marks);
                let m = marks.entry(obj.clone()).or_default();
                m.start_after = errors.last_key.or(m.start_after.take());
                let found = Instant::now();
                m.errors.extend(errors.new_keys.into_iter().map(|key| (found, key)));
                m.errors.retain(|(at, _)| at.elapsed() < window);
                (m.errors.back().map(|(_, key)| key.clone()), m.errors.len())
            };
            let window = Window { values, newest_error_object, error_objects };
            let health = dataflow::judge(&window);
            ctx.metrics.data_health(&namespace, &name, Ok(metrics(&health, &window)));
            announce(ctx, sp, &health, seconds).await;
            (health.condition(seconds), Some(health.status(&window, seconds, checked_at)))
        }
        Err(error) => {
            ctx.metrics.data_health(&namespace, &name, Err(()));
            let message = format!("cannot read the stages' metrics: {error}");
            let condition = conditions::NewCondition::new(DATA_FLOWING, UNKNOWN, Reason::MetricsUnreadable, message);
            (condition, sp.status.as_ref().and_then(|s| s.data_flow.clone()))
        }
    };
    write(ctx, sp, Some((condition, status))).await
}

fn has_condition(status: &SalesPipelineStatus) -> bool {
    conditions::find(&status.conditions, DATA_FLOWING).is_some()
}

/// What the metrics show of one look.
fn metrics(health: &Health, window: &Window) -> PipelineData {
    let state = match health {
        Health::Flowing { .. } => "flowing",
        Health::Idle => "idle",
        Health::Degraded { .. } => "degraded",
    };
    PipelineData {
        state,
        freshness_seconds: window.freshness_seconds(),
        records: window.records().iter().map(|(stage, n)| (stage.as_str(), *n)).collect(),
        failures: window.failures().iter().map(|(stage, n)| (stage.as_str(), *n)).collect(),
        iterator_age_seconds: window.iterator_age_seconds(),
    }
}

/// `DataStopped` when a pipeline becomes Degraded, `DataResumed` when a Degraded one flows again.
async fn announce(ctx: &Context, sp: &SalesPipeline, health: &Health, window_seconds: u64) {
    let before = sp.status.as_ref().and_then(|s| s.data_flow.as_ref()).map(|d| d.state.as_str());
    let degraded = Reason::Degraded.as_str();
    let message = health.condition(window_seconds).message;
    let event = match health {
        Health::Degraded { .. } if before != Some(degraded) => {
            super::recorder::warning("DataStopped", "DataHealth", message)
        }
        Health::Flowing { .. } if before == Some(degraded) => Event {
            type_: EventType::Normal,
            reason: "DataResumed".into(),
            note: Some(message),
            action: "DataHealth".into(),
            secondary: None,
        },
        _ => return,
    };
    // Each stop is its own (another stage, another error object): never folded into an earlier one.
    super::recorder::publish_distinct(ctx, sp, event).await;
}

/// Applies the data health's part of the status (`None`: removes it), unless it already shows
/// the same (the time of the look aside).
async fn write(
    ctx: &Context,
    sp: &SalesPipeline,
    shown: Option<(conditions::NewCondition, Option<DataFlowStatus>)>,
) -> Result<(), kube::Error> {
    let current = sp.status.clone().unwrap_or_default();
    let status = match &shown {
        None => serde_json::json!({}),
        Some((condition, data_flow)) => {
            let same_condition = conditions::find(&current.conditions, DATA_FLOWING).is_some_and(|c| {
                c.status == condition.status && c.reason == condition.reason && c.message == condition.message
            });
            let undated = |d: &DataFlowStatus| DataFlowStatus { checked_at: String::new(), ..d.clone() };
            let same_data = current.data_flow.as_ref().map(undated) == data_flow.as_ref().map(undated);
            if same_condition && same_data {
                return Ok(());
            }
            let merged = conditions::merge(
                &current.conditions,
                std::slice::from_ref(condition),
                sp.metadata.generation,
                jiff::Timestamp::now(),
            );
            let mut status = serde_json::json!({ "conditions": merged });
            if let Some(d) = data_flow {
                status["dataFlow"] = serde_json::to_value(d).unwrap_or_default();
            }
            status
        }
    };
    let api: Api<SalesPipeline> = Api::namespaced(ctx.client.clone(), &sp.namespace().unwrap_or_default());
    let obj = ObjectRef::from(sp);
    // The write's watch event is ours: no pass for it (it may come before the answer).
    let announced = ctx.echoes.writing(&obj, sp.metadata.generation);
    let written = super::apply_status_as(&api, sp, MANAGER, &status).await;
    let version = written.as_ref().ok().and_then(|w| w.resource_version());
    if announced && ctx.echoes.rewrote(&obj, version) {
        // A change by someone else came while the write was under way and was taken for it.
        ctx.events.trigger(obj);
    }
    written.map(|_| ())
}
