//! Everything a reconcile needs: the Kubernetes client, the event recorder,
//! metrics, configuration and the AWS clients per region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_config::SdkConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::Client;

use super::RunArgs;
use crate::api::SalesPipeline;
use crate::aws::{sdk_config, AwsError, AwsSettings, CallLog, Clients};
use crate::telemetry::Metrics;

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    /// Publishes Warning events: repeats of one error fold into a series through its cache.
    pub recorder: Recorder,
    /// Who publishes events (for the one-off recorders of Normal events).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub resync: Duration,
    /// What OrderGenerator pods inherit from the operator.
    pub pod_defaults: super::generator::PodDefaults,
    sdk: SdkConfig,
    calls: CallLog,
    clients: Mutex<HashMap<String, Clients>>,
    failures: Mutex<HashMap<ObjectRef<SalesPipeline>, u32>>,
    ready: Mutex<HashMap<ObjectRef<SalesPipeline>, &'static str>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// First retry delay after a failed reconcile; doubles per consecutive failure.
const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest delay between retries of a failing pipeline.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

impl Context {
    pub async fn new(client: Client, aws: AwsSettings, args: &RunArgs, metrics: Arc<Metrics>, calls: CallLog) -> Self {
        let reporter = Reporter { controller: "sales-operator".into(), instance: args.identity.clone() };
        let pod_defaults = super::generator::PodDefaults {
            image: args.generator_image.clone(),
            region: aws.region.clone(),
            endpoint_url: aws.endpoint_url.clone(),
        };
        Self {
            pod_defaults,
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            sdk: sdk_config(&aws).await,
            client,
            metrics,
            resync: args.resync_period,
            calls,
            clients: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            ready: Mutex::new(HashMap::new()),
        }
    }

    /// AWS clients for `region` (the pipeline's, else the operator's), created once.
    pub fn clients(&self, region: Option<&str>) -> Result<Clients, AwsError> {
        let key = region.map(str::to_string).or_else(|| self.sdk.region().map(|r| r.to_string())).unwrap_or_default();
        let mut cache = lock(&self.clients);
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let c = Clients::new(&self.sdk, region, self.calls.clone())?;
        cache.insert(key, c.clone());
        Ok(c)
    }

    /// Delay before retrying `obj` after another failure (exponential, capped).
    pub fn backoff(&self, obj: ObjectRef<SalesPipeline>) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(obj).or_insert(0);
        let delay = BACKOFF_START.saturating_mul(2u32.saturating_pow(*n)).min(BACKOFF_CAP);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `obj` after a successful reconcile.
    pub fn succeeded(&self, obj: &ObjectRef<SalesPipeline>) {
        lock(&self.failures).remove(obj);
    }

    /// Records `obj`'s Ready status (`None`: deleted) and updates the pipelines-by-Ready gauge.
    pub fn record_ready(&self, obj: ObjectRef<SalesPipeline>, ready: Option<&'static str>) {
        let mut map = lock(&self.ready);
        match ready {
            Some(r) => {
                map.insert(obj, r);
            }
            None => {
                map.remove(&obj);
            }
        }
        let count = |s: &str| map.values().filter(|v| **v == s).count() as i64;
        self.metrics.set_pipelines(&[
            ("True", count("True")),
            ("False", count("False")),
            ("Unknown", count("Unknown")),
        ]);
    }
}
