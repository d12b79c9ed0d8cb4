//! Everything a reconcile needs: the Kubernetes client, the event recorder,
//! metrics, configuration and the AWS clients per region.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::identities::{self, Refusal};
use super::RunArgs;
use crate::api::{AwsIdentity, SalesPipeline};
use crate::aws::identity::Assume;
use crate::aws::{sdk_config, AwsError, AwsSettings, CallLog, Clients};
use crate::events::Feed;
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
    /// `--resync-period`, when set: it wins over the event-driven default.
    resync_period: Option<Duration>,
    /// The AWS change events (none without `--events-queue`) and the index of managed resources.
    pub events: Arc<Feed>,
    /// `--name-prefix`: the AWS names the operator's IAM policy covers.
    pub name_prefix: Option<String>,
    /// What OrderGenerator pods inherit from the operator.
    pub pod_defaults: super::generator::PodDefaults,
    sdk: SdkConfig,
    timing: Timing,
    calls: CallLog,
    /// One reconciler per identity session (none: the operator's credentials) and region.
    reconcilers: Mutex<HashMap<(Option<Assume>, String), Reconciler>>,
    /// One STS session per identity, whatever the regions of its pipelines (the clients of each
    /// region share its credentials cache). The cell makes concurrent first passes of one
    /// identity's pipelines wait for one AssumeRole instead of each making its own.
    sessions: Mutex<HashMap<Assume, Arc<tokio::sync::OnceCell<SdkConfig>>>>,
    /// The operator's own account, once STS has said it.
    own_account: Mutex<Option<String>>,
    failures: Mutex<HashMap<ObjectRef<SalesPipeline>, u32>>,
    /// Each pipeline's Ready status and account (empty: not known).
    ready: Mutex<HashMap<ObjectRef<SalesPipeline>, (&'static str, String)>>,
    /// The watch events of our own status writes, to tell them from real changes.
    pub echoes: Echoes,
    /// The watch caches of every watched namespace's SalesPipelines.
    pipelines: Vec<Store<SalesPipeline>>,
    /// The watch cache of the cluster's AwsIdentities.
    identities: Store<AwsIdentity>,
    /// `--require-identity`: a pipeline with no identity stalls instead of using the operator's own credentials.
    require_identity: bool,
}

/// What a reconcile reads besides its own object: the watch caches and the change-event feed.
pub struct Caches {
    /// Every watched namespace's SalesPipelines.
    pub pipelines: Vec<Store<SalesPipeline>>,
    /// The cluster's AwsIdentities.
    pub identities: Store<AwsIdentity>,
    /// The AWS change events and the index of the resources each pipeline manages.
    pub events: Arc<Feed>,
}

/// Where a pipeline's AWS calls go: the identity it acts through (if any), its account and region.
#[derive(Clone, Debug)]
pub struct Target {
    /// The AwsIdentity's name and session; `None`: the operator's own credentials.
    pub identity: Option<(String, Assume)>,
    pub region: String,
    /// The account: the identity's role names it; the operator's own is `None` until STS has said it.
    pub account: Option<String>,
}

/// Why a pipeline's target cannot be known.
#[derive(Debug, thiserror::Error)]
pub enum Untargeted {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Config(AwsError),
    #[error("reading the namespace's labels for the AwsIdentities' namespaceSelector: {0}")]
    Kube(#[from] kube::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The resync while change events find drift: a backstop for lost events.
pub const EVENT_RESYNC: Duration = Duration::from_secs(3600);
/// The resync without change events (none configured, or a queue not answering).
pub const POLL_RESYNC: Duration = Duration::from_secs(300);

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
        caches: Caches,
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
            resync_period: args.resync_period,
            events: caches.events,
            name_prefix: args.name_prefix.clone(),
            calls,
            reconcilers: Mutex::new(HashMap::new()),
            own_account: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            identities: caches.identities,
            require_identity: args.require_identity,
            failures: Mutex::new(HashMap::new()),
            ready: Mutex::new(HashMap::new()),
            echoes: Echoes::default(),
            pipelines: caches.pipelines,
        }
    }

    /// How long until a pipeline that needs nothing is looked at again: `--resync-period`, else
    /// [`EVENT_RESYNC`] while every change-event queue answers, else [`POLL_RESYNC`].
    pub fn resync(&self) -> Duration {
        match self.resync_period {
            Some(period) => period,
            None if self.events.healthy() => EVENT_RESYNC,
            None => POLL_RESYNC,
        }
    }

    /// Every watched SalesPipeline, as the watch caches have it.
    pub fn pipelines(&self) -> Vec<Arc<SalesPipeline>> {
        self.pipelines.iter().flat_map(|store| store.state()).collect()
    }

    /// The operator's SDK configuration (its own credentials and region).
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The operator's own region, if configured.
    fn own_region(&self) -> Option<&str> {
        self.sdk.region().map(|r| r.as_ref())
    }

    /// Where `sp`'s calls go: its identity (`spec.identityRef`, else its namespace's default, else
    /// none), region (its own, else the identity's, else the operator's) and account (the
    /// identity's role's, else the operator's own: STS GetCallerIdentity once per process).
    pub async fn target(&self, sp: &SalesPipeline) -> Result<Target, Untargeted> {
        let namespace = sp.namespace().unwrap_or_default();
        let all = self.identities.state();
        let labels = if identities::needs_labels(&all) {
            let ns = Api::<Namespace>::all(self.client.clone()).get(&namespace).await?;
            ns.metadata.labels.unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let wanted = sp.spec.identity_ref.as_ref().map(|r| r.name.as_str());
        let identity = identities::resolve(&namespace, &labels, wanted, &all, self.require_identity)
            .map_err(Untargeted::Refused)?;
        let region = sp
            .spec
            .region
            .clone()
            .or_else(|| identity.as_ref().and_then(|i| i.spec.region.clone()))
            .or_else(|| self.own_region().map(str::to_string))
            .ok_or_else(|| Untargeted::Config(crate::aws::no_region()))?;
        match identity {
            None => Ok(Target { identity: None, region, account: self.own_account().await }),
            Some(i) => {
                let assume = identities::session(&i).map_err(Untargeted::Refused)?;
                let account = Some(assume.role.account.clone());
                Ok(Target { identity: Some((i.name_any(), assume)), region, account })
            }
        }
    }

    /// The SalesPipeline that claimed one of `sp`'s AWS names first (older, or first by
    /// namespace/name when created in the same second), and the names they share, in `target`'s
    /// account and region. Looked up in the index of every watched pipeline's names (one lookup
    /// per name, whatever the number of pipelines), before any AWS call: AWS's ownership tags
    /// decide in any case, this only says it sooner and names the other pipeline. Another
    /// pipeline's account and region are those its status records, else those it would get
    /// (its identity's); an account not known either way counts as the same one.
    pub async fn name_conflict(&self, sp: &SalesPipeline, target: &Target) -> Option<(String, Vec<String>)> {
        let region = target.region.as_str();
        let names = Names::derive(&sp.namespace()?, &sp.name_any(), &sp.spec, region);
        let account = target.account.as_deref();
        for (other, shared, in_account) in self.events.older_claimants(sp, region, &names, account) {
            let in_account = match in_account {
                Some(known) => known,
                None => match self.pipelines.iter().find_map(|store| store.get(&other)) {
                    Some(theirs) => match self.target(&theirs).await {
                        Ok(t) => t.account.as_deref().zip(account).is_none_or(|(a, b)| a == b),
                        // It cannot be built while refused: it claims nothing.
                        Err(Untargeted::Refused(_)) => false,
                        Err(_) => true,
                    },
                    // Not in the watch cache yet (the first list): AWS's ownership tags decide.
                    None => false,
                },
            };
            if in_account {
                return Some((format!("{}/{}", other.namespace.clone().unwrap_or_default(), other.name), shared));
            }
        }
        None
    }

    /// The reconciler of `target` (its identity's session, else the operator's credentials, in
    /// its region): its AWS clients and what it remembers between passes, created once. An
    /// identity's role is assumed when its reconciler is created, so STS's refusal comes here.
    pub async fn reconciler(&self, target: &Target) -> Result<Reconciler, AwsError> {
        let key = (target.identity.as_ref().map(|(_, a)| a.clone()), target.region.clone());
        if let Some(r) = lock(&self.reconcilers).get(&key) {
            return Ok(r.clone());
        }
        let sdk = match &key.0 {
            Some(assume) => self.session(assume, &target.region).await?,
            None => self.sdk.clone(),
        };
        let r = Reconciler::new(Clients::new(&sdk, Some(&target.region), self.calls.clone())?, self.timing);
        Ok(lock(&self.reconcilers).entry(key).or_insert(r).clone())
    }

    /// The SDK configuration of `assume`'s session, assumed once (from `region`'s STS endpoint);
    /// a refusal is not kept, the next pass asks again.
    async fn session(&self, assume: &Assume, region: &str) -> Result<SdkConfig, AwsError> {
        let cell = lock(&self.sessions).entry(assume.clone()).or_default().clone();
        let base = self.sdk_in(region);
        let sdk = cell.get_or_try_init(|| crate::aws::identity::assumed(&base, assume)).await?;
        Ok(sdk.clone())
    }

    /// The operator's SDK configuration with `region`.
    fn sdk_in(&self, region: &str) -> SdkConfig {
        self.sdk.to_builder().region(aws_config::Region::new(region.to_string())).build()
    }

    /// The operator's own account (STS GetCallerIdentity, asked once per process); `None` while
    /// STS has not answered.
    pub async fn own_account(&self) -> Option<String> {
        if let Some(account) = lock(&self.own_account).clone() {
            return Some(account);
        }
        let region = self.own_region().unwrap_or("us-east-1").to_string();
        let sts = aws_sdk_sts::Client::new(&self.sdk_in(&region));
        match sts.get_caller_identity().send().await {
            Ok(me) => {
                if let Some(arn) = &me.arn {
                    self.events.own_principal(arn);
                }
                let account = me.account?;
                *lock(&self.own_account) = Some(account.clone());
                Some(account)
            }
            Err(e) => {
                tracing::debug!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "GetCallerIdentity");
                None
            }
        }
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

    /// Records `obj`'s Ready status and account (`None`: deleted) and updates the pipelines gauge.
    pub fn record_ready(&self, obj: ObjectRef<SalesPipeline>, ready: Option<(&'static str, Option<String>)>) {
        let mut map = lock(&self.ready);
        match ready {
            Some((r, account)) => {
                map.insert(obj, (r, account.unwrap_or_default()));
            }
            None => {
                map.remove(&obj);
            }
        }
        let mut counts = BTreeMap::new();
        for (ready, account) in map.values() {
            *counts.entry((account.clone(), *ready)).or_insert(0) += 1;
        }
        self.metrics.set_pipelines(counts);
    }
}

/// Per pipeline: the resourceVersion our last status write gave it and when its next pass is due.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<ObjectRef<SalesPipeline>, Echo>>);

#[derive(Debug)]
struct Echo {
    /// Our last write's resourceVersion, until its watch event was seen (`None`: no write to
    /// expect).
    version: Option<String>,
    generation: Option<i64>,
    due: Instant,
    /// A status write between passes is under way: its resourceVersion is not known yet.
    writing: bool,
    /// The versions of the triggers taken for that write's while it was under way.
    taken: Vec<String>,
}

impl Echoes {
    /// Remembers that the pass over spec `generation` ended, its status write (if any) giving
    /// `obj` resourceVersion `version`, and that its next pass is due in `next`.
    pub fn expect(
        &self,
        obj: ObjectRef<SalesPipeline>,
        version: Option<String>,
        generation: Option<i64>,
        next: Duration,
    ) {
        let echo = Echo { version, generation, due: Instant::now() + next, writing: false, taken: Vec::new() };
        lock(&self.0).insert(obj, echo);
    }

    /// A status write between passes (the data health's) at spec `generation` is about to be
    /// sent: its watch event may come before its answer. Whether `obj` had a pass over that
    /// generation (else the write is not announced, and its watch event reconciles).
    pub fn writing(&self, obj: &ObjectRef<SalesPipeline>, generation: Option<i64>) -> bool {
        let mut echoes = lock(&self.0);
        match echoes.get_mut(obj).filter(|echo| echo.generation == generation) {
            Some(echo) => {
                echo.writing = true;
                echo.taken.clear();
                true
            }
            None => false,
        }
    }

    /// The write announced by [`Echoes::writing`] ended, giving `obj` resourceVersion `version`
    /// (`None`: it failed). Its watch event is ours too, and the next pass stays when it was
    /// due. Whether a trigger taken for it while it was under way was someone else's: then the
    /// caller asks for the pass it skipped.
    pub fn rewrote(&self, obj: &ObjectRef<SalesPipeline>, version: Option<String>) -> bool {
        let mut echoes = lock(&self.0);
        let Some(echo) = echoes.get_mut(obj).filter(|echo| echo.writing) else { return false };
        echo.writing = false;
        let taken = std::mem::take(&mut echo.taken);
        let ours_seen = version.as_ref().is_some_and(|v| taken.contains(v));
        echo.version = if ours_seen { None } else { version.clone() };
        taken.iter().any(|t| Some(t) != version.as_ref())
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
        let mut echoes = lock(&self.0);
        let echo = echoes.get_mut(obj)?;
        let left = Some(echo.due.saturating_duration_since(Instant::now())).filter(|left| !left.is_zero());
        if echo.writing && generation == echo.generation {
            // Most likely the watch event of the write under way; `rewrote` says if it was not.
            echo.taken.extend(version.map(str::to_string));
            return left;
        }
        let expected = echo.version.take();
        if version.is_none() || version != expected.as_deref() || generation != echo.generation {
            return None;
        }
        left
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
        echoes.expect(pipeline(), Some("42".into()), Some(1), five_minutes);
        let left = echoes.own(&pipeline(), Some("42"), Some(1)).expect("our own write");
        assert!(left > Duration::from_secs(290) && left <= five_minutes, "{left:?}");
        assert_eq!(echoes.own(&pipeline(), Some("42"), Some(1)), None, "answers once: the resync reconciles");

        echoes.expect(pipeline(), Some("43".into()), Some(1), five_minutes);
        assert_eq!(echoes.own(&pipeline(), Some("44"), Some(1)), None, "changed by someone else");
        echoes.expect(pipeline(), Some("44".into()), Some(1), five_minutes);
        assert_eq!(echoes.own(&pipeline(), Some("44"), Some(2)), None, "spec changed before our write");
        echoes.expect(pipeline(), Some("45".into()), Some(1), Duration::ZERO);
        assert_eq!(echoes.own(&pipeline(), Some("45"), Some(1)), None, "its next pass is due");
        echoes.expect(pipeline(), Some("46".into()), Some(1), five_minutes);
        echoes.forget(&pipeline());
        assert_eq!(echoes.own(&pipeline(), Some("46"), Some(1)), None);
    }

    #[test]
    fn a_data_health_write_between_passes_is_ours_too_and_keeps_the_next_pass() {
        let echoes = Echoes::default();
        let five_minutes = Duration::from_secs(300);
        // A steady pass writes nothing: only the due time is remembered.
        echoes.expect(pipeline(), None, Some(1), five_minutes);
        assert_eq!(echoes.own(&pipeline(), Some("50"), Some(1)), None, "not our write");
        // Its answer first, then its watch event.
        assert!(echoes.writing(&pipeline(), Some(1)));
        assert!(!echoes.rewrote(&pipeline(), Some("51".into())));
        let left = echoes.own(&pipeline(), Some("51"), Some(1)).expect("the data health's write");
        assert!(left > Duration::from_secs(290) && left <= five_minutes, "{left:?}");
        // Its watch event first, then its answer.
        assert!(echoes.writing(&pipeline(), Some(1)));
        assert!(echoes.own(&pipeline(), Some("52"), Some(1)).is_some(), "taken for the write under way");
        assert!(!echoes.rewrote(&pipeline(), Some("52".into())), "it was ours");
        assert_eq!(echoes.own(&pipeline(), Some("52"), Some(1)), None, "answers once");
        // Someone else's change while the write was under way: the skipped pass is asked for.
        assert!(echoes.writing(&pipeline(), Some(1)));
        assert!(echoes.own(&pipeline(), Some("53"), Some(1)).is_some());
        assert!(echoes.rewrote(&pipeline(), Some("54".into())), "53 was not ours");
        assert!(echoes.writing(&pipeline(), Some(1)));
        assert!(echoes.own(&pipeline(), Some("55"), Some(1)).is_some());
        assert!(echoes.rewrote(&pipeline(), None), "the write failed: 55 was not ours");
        // A spec changed meanwhile is never taken; nor is anything before the first pass.
        assert!(echoes.writing(&pipeline(), Some(1)));
        assert_eq!(echoes.own(&pipeline(), Some("56"), Some(2)), None, "a newer spec reconciles");
        echoes.forget(&pipeline());
        assert!(!echoes.writing(&pipeline(), Some(1)), "no pass yet: the first one runs");
        assert_eq!(echoes.own(&pipeline(), Some("57"), Some(1)), None);
    }
}
