//! `sales-operator run`: the Kubernetes controller. Wires kube-runtime to the
//! reconcile core; knows how to talk to the API server, not to AWS.

pub mod context;
pub mod data_health;
mod drift;
mod events;
pub mod generator;
pub mod identities;
pub mod pipeline;
mod recorder;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::ListParams;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;

use crate::api::{AwsIdentity, OrderGenerator, SalesPipeline};
use crate::aws::{AwsSettings, CallLog};
use crate::events::{consumer, Feed};
use crate::reconcile::Timing;
use crate::telemetry::{self, Health, Metrics};
pub use context::{Context, Target, Untargeted};
use k8s_openapi::api::apps::v1::Deployment;

/// Every Kubernetes permission the operator uses, as (API group, resource, verbs): the chart's
/// RBAC (charts/sales-operator) grants exactly these, checked by tests/it/chart.rs. All but the
/// Lease are needed in each watched namespace; the Lease (leader election) only in the
/// operator's own. Every write to its own objects is a patch (finalizer: JSON patch; status:
/// server-side apply; Lease: strategic merge), so no `update`; `get` on SalesPipelines is the
/// OrderGenerator controller resolving its pipelineRef. OrderGenerators own one Deployment
/// each (applied server-side, removed by garbage collection through the owner reference).
pub const KUBERNETES_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("sales-operator.dev", "salespipelines", &["get", "list", "watch", "patch"]),
    ("sales-operator.dev", "salespipelines/status", &["patch"]),
    ("sales-operator.dev", "ordergenerators", &["list", "watch"]),
    ("sales-operator.dev", "ordergenerators/status", &["patch"]),
    // Server-side apply of a Deployment that does not exist yet needs create besides patch.
    ("apps", "deployments", &["list", "watch", "create", "patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    ("coordination.k8s.io", "leases", &["get", "create", "patch"]),
];

/// The cluster-wide permissions the operator uses, whatever namespaces it watches: it reads the
/// AwsIdentities and, for their label selectors, the labels of a pipeline's namespace. The chart
/// grants exactly these in a ClusterRole of their own.
pub const CLUSTER_PERMISSIONS: &[(&str, &str, &[&str])] =
    &[("sales-operator.dev", "awsidentities", &["list", "watch"]), ("", "namespaces", &["get"])];

/// How the controller runs (flags and environment of `sales-operator run`).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch (repeat or comma-separate); all namespaces when unset.
    #[arg(long = "namespace", env = "SALES_OPERATOR_WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Re-check every pipeline this often, so drift in AWS is repaired without any Kubernetes
    /// event. Default: 5m; 1h while every `--events-queue` answers (events find drift then).
    #[arg(long, env = "SALES_OPERATOR_RESYNC_PERIOD", value_parser = crate::parse_duration)]
    pub resync_period: Option<Duration>,
    /// URL (or ARN) of an SQS queue of AWS change events (`events-setup`, docs/change-events.md):
    /// a change made outside the operator to a pipeline's resource reconciles that pipeline within
    /// seconds. Repeat (or comma-separate) for each account and region.
    #[arg(long = "events-queue", env = "SALES_OPERATOR_EVENTS_QUEUES", value_delimiter = ',', value_parser = crate::events::consumer::queue_arg)]
    pub events_queues: Vec<String>,
    /// Pipelines reconciled at the same time.
    #[arg(long, env = "SALES_OPERATOR_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "SALES_OPERATOR_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,
    /// Take a coordination.k8s.io Lease so only one replica reconciles.
    #[arg(long, env = "SALES_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the coordination.k8s.io Lease the replicas compete for.
    #[arg(long, env = "SALES_OPERATOR_LEASE_NAME", default_value = "sales-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the pod name / host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Image of the OrderGenerator pods (the same binary) when a generator names none.
    #[arg(long, env = "SALES_OPERATOR_GENERATOR_IMAGE", default_value = concat!("ghcr.io/sales-operator/sales-operator:", env!("CARGO_PKG_VERSION")))]
    pub generator_image: String,
    /// Lease duration in seconds; a replica that stops renewing loses leadership after it.
    #[arg(long, env = "SALES_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Stall pipelines that name no AwsIdentity when none is their namespace's default
    /// (`IdentityRequired`), instead of building them with the operator's own credentials: for
    /// clusters where every team has its own account and the operator's is nobody's.
    #[arg(long, env = "SALES_OPERATOR_REQUIRE_IDENTITY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub require_identity: bool,
    /// The prefix the operator's IAM policy was narrowed to (`iam-policy --name-prefix`): a
    /// pipeline with AWS names outside it stalls (`OutsideNamePrefix`) before any AWS call.
    #[arg(long, env = "SALES_OPERATOR_NAME_PREFIX", value_parser = parse_name_prefix)]
    pub name_prefix: Option<String>,
    #[command(flatten)]
    pub data_health: data_health::DataHealthArgs,
}

fn parse_name_prefix(value: &str) -> Result<String, String> {
    if crate::aws::operator_policy::valid_name_prefix(value) {
        Ok(value.to_string())
    } else {
        Err("1-40 letters, digits or '-', starting with a letter or digit".to_string())
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serve metrics on {addr}: {source}")]
    Serve { addr: SocketAddr, source: std::io::Error },
    #[error("leader election failed: {0}")]
    Lease(String),
    #[error("cannot watch {0}")]
    Watch(String),
    #[error("leadership lost: stopping so another replica takes over")]
    LostLease,
}

/// Runs the controller until SIGTERM/SIGINT (or lost leadership).
pub async fn run(args: RunArgs, aws: AwsSettings, timing: Timing) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let calls = CallLog::default();
    let feed = Arc::new(Feed::new(args.events_queues.iter().filter(|q| !q.is_empty()).cloned().collect()));
    let metrics = Arc::new(Metrics::new(calls.clone(), (!feed.queues().is_empty()).then(|| feed.clone())));
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health { metrics: metrics.clone(), ready: ready.clone() };
    let addr = args.metrics_address;
    let server = tokio::spawn(async move { telemetry::serve(addr, health).await });

    // Ready once the custom resources can be listed in every watched namespace (leader or not).
    let probes = apis::<SalesPipeline>(&client, &args.namespaces);
    let first = ListParams::default().limit(1);
    let mut delay = Duration::from_millis(500);
    loop {
        let listed = futures::future::join_all(probes.iter().map(|api| api.list_metadata(&first))).await;
        match listed.into_iter().find_map(Result::err) {
            None => break,
            Some(e) => {
                tracing::warn!(error = %e, "cannot list SalesPipelines yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        if server.is_finished() {
            break;
        }
    }
    if server.is_finished() {
        return match server.await {
            Ok(Err(source)) => Err(RunError::Serve { addr, source }),
            _ => Err(RunError::Lease("metrics server stopped".into())),
        };
    }
    ready.store(true, Ordering::SeqCst);

    let mut leadership = None;
    if args.leader_election {
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("sales-operator-{}", std::process::id()));
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&args.lease_namespace)
            .with_identity(&identity)
            .with_duration(args.lease_seconds)
            .with_grace(args.lease_seconds.div_ceil(3).max(1))
            .build()
            .await
            .map_err(|e| RunError::Lease(e.to_string()))?;
        let (mut is_leader, task) = manager.watch().await;
        tracing::info!(%identity, lease = %args.lease_name, "waiting for leadership");
        loop {
            if *is_leader.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = is_leader.changed() => if changed.is_err() { return Err(RunError::Lease("lease watcher stopped".into())) },
                _ = shutdown_signal() => return Ok(()),
            }
        }
        tracing::info!(%identity, "became leader");
        leadership = Some((is_leader, task));
    }

    // The cluster's AwsIdentities: known in full before the first pipeline is looked at, so that
    // none is built with the operator's credentials for want of its namespace's default.
    let (identity_events, identities) = slim_watch(Api::<AwsIdentity>::all(client.clone()), |_| {});
    tokio::spawn(identity_events.for_each(|event| async move {
        if let Err(e) = event {
            tracing::warn!(error = %e, "watching AwsIdentities");
        }
    }));
    identities.wait_until_ready().await.map_err(|e| RunError::Watch(format!("AwsIdentities: {e}")))?;
    // Every watched SalesPipeline's AWS names go into the feed's index as the watch sees them:
    // change events and the name-conflict check look them up there.
    let watches: Vec<_> = apis::<SalesPipeline>(&client, &args.namespaces)
        .into_iter()
        .zip(watched(&args.namespaces))
        .map(|(api, namespace)| slim_watch(api, index_names(feed.clone(), namespace)))
        .collect();
    let stores = watches.iter().map(|(_, store)| store.clone()).collect();
    let caches = context::Caches { pipelines: stores, identities, events: feed.clone() };
    let ctx = Arc::new(Context::new(client.clone(), aws, timing, &args, metrics, calls.clone(), caches).await);
    feed.own_region(ctx.sdk().region().map(|r| r.as_ref()));
    let watcher: Arc<dyn consumer::Watcher> = Arc::new(events::QueueWatcher::new(ctx.clone(), &args));
    for (i, url) in feed.queues().iter().enumerate() {
        let client = consumer::client(ctx.sdk(), url, calls.clone());
        tokio::spawn(consumer::consume(feed.clone(), i, client, watcher.clone()));
    }
    tokio::spawn(data_health::run(ctx.clone(), args.data_health.clone(), usize::from(args.concurrency)));
    let namespaces = watched(&args.namespaces);
    let pipelines = watches.into_iter().zip(namespaces).map(|((trigger, store), namespace)| {
        let users = store.clone();
        // A changed identity (granted, revoked, made default, its role changed) wakes every
        // pipeline that may use it; an AWS change event, the pipeline whose resource it names.
        Controller::for_stream(trigger, store)
            .reconcile_on(feed.subscribe(namespace))
            .watches(Api::<AwsIdentity>::all(client.clone()), watcher::Config::default(), move |_| {
                users.state().iter().map(|sp| ObjectRef::from(sp.as_ref())).collect::<Vec<_>>()
            })
            .with_config(controller::Config::default().concurrency(args.concurrency))
            .shutdown_on_signal()
            .run(pipeline::reconcile, pipeline::error_policy, ctx.clone())
            .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            .boxed()
    });
    let deployments = apis::<Deployment>(&client, &args.namespaces);
    // A pipeline that becomes Ready (or changes its table) wakes the generators that use it.
    let referenced = apis::<SalesPipeline>(&client, &args.namespaces);
    let generators =
        apis::<OrderGenerator>(&client, &args.namespaces).into_iter().zip(deployments).zip(referenced).map(
            |((api, owned), pipelines)| {
                let (trigger, store) = slim_watch(api, |_| {});
                let generators = store.clone();
                Controller::for_stream(trigger, store)
                    .owns(owned, watcher::Config::default().labels("app.kubernetes.io/managed-by=sales-operator"))
                    .watches(pipelines, watcher::Config::default(), move |sp| generator::users_of(&generators, &sp))
                    .with_config(controller::Config::default().concurrency(args.concurrency))
                    .shutdown_on_signal()
                    .run(generator::reconcile, generator::error_policy, ctx.clone())
                    .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                    .boxed()
            },
        );
    let controllers = futures::stream::select_all(pipelines.chain(generators));
    let drive = controllers.for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "reconcile failed");
        }
    });
    match leadership {
        None => {
            drive.await;
            Ok(())
        }
        Some((mut is_leader, _task)) => {
            let lost = async move {
                loop {
                    if is_leader.changed().await.is_err() || !*is_leader.borrow() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = drive => Ok(()),
                _ = lost => Err(RunError::LostLease),
            }
        }
    }
}

/// Server-side applies `status` to `obj`'s status subresource (field manager
/// [`pipeline::MANAGER`]) unless `current` already equals it, so a steady state writes nothing.
/// Returns the resourceVersion the write produced, `None` when nothing was written.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<String>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    Ok(apply_status_as(api, obj, pipeline::MANAGER, status).await?.resource_version())
}

/// Server-side applies `status` to `obj`'s status subresource as field manager `manager`, taking
/// over the fields it sets; the object as written.
pub async fn apply_status_as<K, S>(api: &Api<K>, obj: &K, manager: &str, status: &S) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = kube::api::PatchParams::apply(manager).force();
    api.patch_status(&obj.name_any(), &params, &kube::api::Patch::Apply(&patch)).await
}

/// Watches `api` into a cache that keeps only what the reconcilers read: managed fields and the
/// last-applied annotation (together most of a small object) are dropped before caching, so the
/// operator's memory grows by a few KiB per custom resource, not tens. `seen` sees every watch
/// event first.
fn slim_watch<K>(
    api: Api<K>,
    mut seen: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> (impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static, Store<K>)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let trigger = watcher(api, watcher::Config::default())
        .map_ok(|event| event.modify(slim))
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                seen(event)
            }
        })
        .reflect(writer)
        .applied_objects();
    (trigger, store)
}

/// Keeps `feed`'s index of AWS names up to date from the watch of `namespace`'s SalesPipelines
/// (`None`: all): names from each spec as soon as it is seen, forgotten once it is gone.
fn index_names(feed: Arc<Feed>, namespace: Option<String>) -> impl FnMut(&watcher::Event<SalesPipeline>) + Send {
    let mut relist: Option<HashSet<ObjectRef<SalesPipeline>>> = None;
    move |event| match event {
        watcher::Event::Init => relist = Some(HashSet::new()),
        watcher::Event::InitApply(sp) => {
            feed.watched(sp);
            relist.get_or_insert_default().insert(ObjectRef::from(sp));
        }
        watcher::Event::InitDone => {
            if let Some(seen) = relist.take() {
                feed.relisted(namespace.as_deref(), &seen);
            }
        }
        watcher::Event::Apply(sp) => feed.watched(sp),
        watcher::Event::Delete(sp) => feed.forget(&ObjectRef::from(sp)),
    }
}

/// Drops the parts of an object the operator never reads.
fn slim<K: Resource>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The namespaces [`apis`] gives an `Api` for, in its order (`None`: all).
fn watched(namespaces: &[String]) -> Vec<Option<String>> {
    let named: Vec<Option<String>> = namespaces.iter().filter(|n| !n.is_empty()).cloned().map(Some).collect();
    if named.is_empty() {
        vec![None]
    } else {
        named
    }
}

fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespaces: Vec<&String> = namespaces.iter().filter(|n| !n.is_empty()).collect();
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces.into_iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
