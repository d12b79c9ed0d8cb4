//! Everything a reconcile needs: the Kubernetes client, the event recorder,
//! metrics, configuration and the AWS clients per region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use super::RunArgs;
use crate::api::SalesPipeline;
use crate::aws::{sdk_config, AwsError, AwsSettings, CallLog, Clients};
use crate::names::Names;
use crate::reconcile::{Reconciler, Timing};
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
    /// `--name-prefix`: the AWS names the operator's IAM policy covers.
    pub name_prefix: Option<String>,
    /// What OrderGenerator pods inherit from the operator.
    pub pod_defaults: super::generator::PodDefaults,
    sdk: SdkConfig,
    timing: Timing,
    calls: CallLog,
    reconcilers: Mutex<HashMap<String, Reconciler>>,
    failures: Mutex<HashMap<ObjectRef<SalesPipeline>, u32>>,
    ready: Mutex<HashMap<ObjectRef<SalesPipeline>, &'static str>>,
    /// The watch events of our own status writes, to tell them from real changes.
    pub echoes: Echoes,
    /// The watch caches of every watched namespace's SalesPipelines.
    pipelines: Vec<Store<SalesPipeline>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// First retry delay after a failed reconcile; doubles per consecutive failure.
const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest delay between retries of a failing pipeline.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

impl Context {
    pub async fn new(
        client: Client,
        aws: AwsSettings,
        timing: Timing,
        args: &RunArgs,
        metrics: Arc<Metrics>,
        calls: CallLog,
        pipelines: Vec<Store<SalesPipeline>>,
    ) -> Self {
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
            timing,
            client,
            metrics,
            resync: args.resync_period,
            name_prefix: args.name_prefix.clone(),
            calls,
            reconcilers: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            ready: Mutex::new(HashMap::new()),
            echoes: Echoes::default(),
            pipelines,
        }
    }

    /// The region a pipeline's resources live in: its own, else the operator's.
    pub fn region_of<'a>(&'a self, sp: &'a SalesPipeline) -> Option<&'a str> {
        sp.spec.region.as_deref().or_else(|| self.sdk.region().map(|r| r.as_ref()))
    }

    /// The SalesPipeline that claimed one of `sp`'s AWS names first (older, or first by
    /// namespace/name when created in the same second), and the names they share. Seen in the
    /// watch caches, before any AWS call: AWS's ownership tags decide in any case, this only
    /// says it sooner and names the other pipeline.
    pub fn name_conflict(&self, sp: &SalesPipeline) -> Option<(String, Vec<String>)> {
        let key = |p: &SalesPipeline| (p.creation_timestamp(), p.namespace(), p.name_any());
        let region = self.region_of(sp)?;
        let names = Names::derive(&sp.namespace()?, &sp.name_any(), &sp.spec, region);
        self.pipelines
            .iter()
            .flat_map(|store| store.state())
            .filter(|other| key(other) < key(sp))
            .filter_map(|other| {
                let other_region = self.region_of(&other)?;
                let other_namespace = other.namespace()?;
                let theirs = Names::derive(&other_namespace, &other.name_any(), &other.spec, other_region);
                let shared = names.shared_with(region, &theirs, other_region);
                (!shared.is_empty()).then(|| (key(&other), format!("{other_namespace}/{}", other.name_any()), shared))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, other, shared)| (other, shared))
    }

    /// The reconciler of `region` (the pipeline's, else the operator's): its AWS clients and
    /// what it remembers between passes, created once.
    pub fn reconciler(&self, region: Option<&str>) -> Result<Reconciler, AwsError> {
        let key = region.map(str::to_string).or_else(|| self.sdk.region().map(|r| r.to_string())).unwrap_or_default();
        let mut cache = lock(&self.reconcilers);
        if let Some(r) = cache.get(&key) {
            return Ok(r.clone());
        }
        let r = Reconciler::new(Clients::new(&self.sdk, region, self.calls.clone())?, self.timing);
        cache.insert(key, r.clone());
        Ok(r)
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

/// Per pipeline: the resourceVersion our last status write gave it and when its next pass is due.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<ObjectRef<SalesPipeline>, Echo>>);

#[derive(Debug)]
struct Echo {
    version: String,
    generation: Option<i64>,
    due: Instant,
}

impl Echoes {
    /// Remembers that our status write gave `obj` resourceVersion `version`, after a pass over
    /// spec `generation`, and that its next pass is due in `next`.
    pub fn expect(&self, obj: ObjectRef<SalesPipeline>, version: String, generation: Option<i64>, next: Duration) {
        lock(&self.0).insert(obj, Echo { version, generation, due: Instant::now() + next });
    }

    /// Whether a trigger for `obj` at `version` and `generation` is only the watch event of our
    /// last status write: same resourceVersion, same spec generation (a spec changed between
    /// our read and our write also ends at our write's resourceVersion) and its next pass not
    /// due yet. Then the time left until that pass. A remembered write answers once; any other
    /// trigger (spec or status changed by someone else, the resync) reconciles.
    pub fn own(
        &self,
        obj: &ObjectRef<SalesPipeline>,
        version: Option<&str>,
        generation: Option<i64>,
    ) -> Option<Duration> {
        let echo = lock(&self.0).remove(obj)?;
        if version != Some(echo.version.as_str()) || generation != echo.generation {
            return None;
        }
        Some(echo.due.saturating_duration_since(Instant::now())).filter(|left| !left.is_zero())
    }

    /// Forgets `obj` (deleted).
    pub fn forget(&self, obj: &ObjectRef<SalesPipeline>) {
        lock(&self.0).remove(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> ObjectRef<SalesPipeline> {
        ObjectRef::new("sales").within("shop")
    }

    #[test]
    fn only_the_echo_of_our_own_write_is_skipped_and_only_once() {
        let echoes = Echoes::default();
        let five_minutes = Duration::from_secs(300);
        echoes.expect(pipeline(), "42".into(), Some(1), five_minutes);
        let left = echoes.own(&pipeline(), Some("42"), Some(1)).expect("our own write");
        assert!(left > Duration::from_secs(290) && left <= five_minutes, "{left:?}");
        assert_eq!(echoes.own(&pipeline(), Some("42"), Some(1)), None, "answers once: the resync reconciles");

        echoes.expect(pipeline(), "43".into(), Some(1), five_minutes);
        assert_eq!(echoes.own(&pipeline(), Some("44"), Some(1)), None, "changed by someone else");
        echoes.expect(pipeline(), "44".into(), Some(1), five_minutes);
        assert_eq!(echoes.own(&pipeline(), Some("44"), Some(2)), None, "spec changed before our write");
        echoes.expect(pipeline(), "45".into(), Some(1), Duration::ZERO);
        assert_eq!(echoes.own(&pipeline(), Some("45"), Some(1)), None, "its next pass is due");
        echoes.expect(pipeline(), "46".into(), Some(1), five_minutes);
        echoes.forget(&pipeline());
        assert_eq!(echoes.own(&pipeline(), Some("46"), Some(1)), None);
    }
}
