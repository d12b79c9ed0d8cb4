//! One module per AWS component, all with the same shape ([`Component`]):
//! desired state from the spec, observe, diff, create/update, delete.

pub mod calls;
pub mod error;

pub mod analytics;
pub mod bucket;
pub mod catalog;
pub mod delivery;
pub mod iam;
pub mod identity;
pub mod operator_policy;
pub mod pipe;
pub mod stream;
pub mod table;
pub mod tagging;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub use calls::CallLog;
pub use error::{AwsError, AwsResultExt};

use crate::api::{SalesPipelineSpec, SalesPipelineStatus};
use crate::names::Names;

/// Where and how to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Region used when the pipeline names none (else the SDK's default chain).
    pub region: Option<String>,
    /// Endpoint override for every service (a local emulator), else `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Attempts per call, including the first (throttling and 5xx are retried with backoff).
    pub max_attempts: Option<u32>,
    /// First retry delay; doubles per attempt with jitter, capped at 20 s.
    pub initial_backoff: Option<Duration>,
    /// Whether the region may come from EC2 instance metadata when neither `region`, the
    /// environment nor the profile names one (the controller on EC2). The CLI's commands do
    /// not ask: off EC2 every probe waits out a timeout before the "no AWS region" error.
    pub region_from_imds: bool,
    /// Act as this role (STS AssumeRole with the credentials found), not as those credentials.
    pub assume: Option<identity::Assume>,
}

/// The shared SDK configuration (credentials, retries, endpoint).
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(settings.max_attempts.unwrap_or(6))
        .with_initial_backoff(settings.initial_backoff.unwrap_or(Duration::from_millis(200)))
        .with_max_backoff(Duration::from_secs(20));
    // A call that hangs (a dropped connection, a stalled endpoint) must not hold its pipeline's
    // reconcile forever: each attempt gets 30 s, retries included 2 min.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(120))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts)
        .http_client(https_client());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    } else if !settings.region_from_imds {
        loader = loader.region(region_without_imds());
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

impl AwsSettings {
    /// These settings with the assumed role's session (if any) named and tagged after pipeline
    /// `namespace/name` ([`identity::Assume::for_pipeline`]).
    pub fn for_pipeline(self, namespace: &str, name: &str) -> Self {
        Self { assume: self.assume.map(|a| a.for_pipeline(namespace, name)), ..self }
    }
}

/// [`sdk_config`], acting as `settings.assume`'s role when one is given (a refusal is reported
/// here, before anything else is called).
pub async fn connect(settings: &AwsSettings) -> Result<SdkConfig, AwsError> {
    let sdk = sdk_config(settings).await;
    match &settings.assume {
        Some(assume) => identity::assumed(&sdk, assume).await,
        None => Ok(sdk),
    }
}

/// The SDK's region chain without EC2 instance metadata: `AWS_REGION` / `AWS_DEFAULT_REGION`,
/// then the profile. Off EC2 every metadata probe waits out a timeout before failing.
pub fn region_without_imds() -> aws_config::meta::region::RegionProviderChain {
    aws_config::meta::region::RegionProviderChain::first_try(
        aws_config::environment::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
}

/// The SDK's default HTTPS client (rustls on aws-lc, system roots, proxy from the environment),
/// built once and shared by every service client in every region. Left unset, each SDK client
/// builds its own, with its own TLS root store and connection pool: about 130 KiB per client,
/// 20 MiB for the 160 clients of 20 regions.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// The error of a pipeline with no region known.
pub fn no_region() -> AwsError {
    AwsError::permanent(
        "configure",
        "no AWS region: set spec.region in the manifest (or the AwsIdentity's), pass --region (e.g. --region eu-west-1) or export AWS_REGION=eu-west-1",
    )
}

/// A client for each service the pipeline uses, all sharing one [`CallLog`].
#[derive(Clone, Debug)]
pub struct Clients {
    pub region: String,
    pub iam: aws_sdk_iam::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub pipes: aws_sdk_pipes::Client,
    pub s3: aws_sdk_s3::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub glue: aws_sdk_glue::Client,
    pub athena: aws_sdk_athena::Client,
    /// CloudWatch: the stages' metrics, for the data health (crate::dataflow).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Whether this region's Athena endpoint implements BatchGetNamedQuery.
    pub athena_batch_gets: analytics::BatchGets,
    /// Resource Groups Tagging API: the tags of all of a pipeline's resources in one read.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub calls: CallLog,
}

macro_rules! client {
    ($krate:ident, $sdk:expr, $region:expr, $calls:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .region(Region::new($region.clone()))
                .interceptor($calls.clone())
                .retry_classifier(error::QuotasAreNotRetried)
                .build(),
        )
    };
}

impl Clients {
    /// Clients for `region` (falling back to the SDK config's region).
    pub fn new(sdk: &SdkConfig, region: Option<&str>, calls: CallLog) -> Result<Self, AwsError> {
        let region =
            region.map(str::to_string).or_else(|| sdk.region().map(|r| r.to_string())).ok_or_else(no_region)?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .region(Region::new(region.clone()))
                .force_path_style(sdk.endpoint_url().is_some())
                .interceptor(calls.clone())
                .retry_classifier(error::QuotasAreNotRetried)
                .build(),
        );
        Ok(Self {
            iam: client!(aws_sdk_iam, sdk, region, calls),
            dynamodb: client!(aws_sdk_dynamodb, sdk, region, calls),
            kinesis: client!(aws_sdk_kinesis, sdk, region, calls),
            pipes: client!(aws_sdk_pipes, sdk, region, calls),
            firehose: client!(aws_sdk_firehose, sdk, region, calls),
            glue: client!(aws_sdk_glue, sdk, region, calls),
            athena: client!(aws_sdk_athena, sdk, region, calls),
            cloudwatch: client!(aws_sdk_cloudwatch, sdk, region, calls),
            tagging: client!(aws_sdk_resourcegroupstagging, sdk, region, calls),
            athena_batch_gets: analytics::BatchGets::default(),
            s3,
            region,
            calls,
        })
    }
}

pub use crate::api::ComponentKind;

/// A changeable field of one component: each component's fields are an enum, so a field that
/// [`Component::diff`] reports and [`Component::update`] does not apply is a compile error
/// (update matches on it without a catch-all arm), never a string that silently matches nothing.
///
/// ```compile_fail,E0004
/// use sales_operator::aws::Field;
/// #[derive(Clone, Debug, PartialEq)]
/// enum StreamField { ShardCount, RetentionHours }
/// impl Field for StreamField {
///     fn name(&self) -> String {
///         match self {
///             StreamField::ShardCount => "shardCount".into(),
///             StreamField::RetentionHours => "retentionHours".into(),
///         }
///     }
/// }
/// fn update(field: &StreamField) -> &'static str {
///     // RetentionHours is not handled: E0004, non-exhaustive patterns.
///     match field {
///         StreamField::ShardCount => "UpdateShardCount",
///     }
/// }
/// ```
pub trait Field: Clone + fmt::Debug + PartialEq + Send + Sync {
    /// How the field reads for users in plans, conditions and events (`shardCount`,
    /// `pipeRole.policy`, `namedQuery.top_products.sql`).
    fn name(&self) -> String;

    /// AWS cannot change it in place: reported, never passed to [`Component::update`].
    fn immutable(&self) -> bool {
        false
    }
}

/// One typed field that differs between desired and observed: what `diff` finds and `update`
/// applies. Its values are already shown as a user reads them ([`Shown`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff<F> {
    pub field: F,
    pub from: String,
    pub to: String,
}

impl<F: Field> Diff<F> {
    /// A change of `field` from `from` to `to`.
    pub fn new(field: F, from: impl Shown, to: impl Shown) -> Self {
        Self { field, from: from.shown(), to: to.shown() }
    }

    /// The change as plans, conditions and events show it.
    pub fn shown(&self) -> Change {
        Change {
            field: self.field.name(),
            from: self.from.clone(),
            to: self.to.clone(),
            immutable: self.field.immutable(),
        }
    }
}

impl<F: Field> fmt::Display for Diff<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shown().fmt(f)
    }
}

/// The shown form of typed changes.
pub fn shown<F: Field>(diffs: &[Diff<F>]) -> Vec<Change> {
    diffs.iter().map(Diff::shown).collect()
}

/// One field that differs between desired and observed, as users read it (type-erased from a
/// [`Diff`]): what actions, plans and conditions carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Field, e.g. `shardCount`.
    pub field: String,
    pub from: String,
    pub to: String,
    /// AWS cannot change it in place; reported, never acted on by recreating.
    pub immutable: bool,
}

impl Change {
    /// A change of `field` from `from` to `to`, both shown as a user writes them ([`Shown`]).
    pub fn new(field: &str, from: impl Shown, to: impl Shown) -> Self {
        Self { field: field.to_string(), from: from.shown(), to: to.shown(), immutable: false }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.field, self.from, self.to)
    }
}

/// Compares one field, pushing a [`Diff`] when it differs.
pub fn compare<F: Field, T: PartialEq + Shown>(changes: &mut Vec<Diff<F>>, field: F, observed: T, desired: T) {
    if observed != desired {
        changes.push(Diff::new(field, observed, desired));
    }
}

/// The one tags diff of every component: when tags of `desired` are missing or different in
/// `observed`, a change of `field` (the component's `Tags`) from the keys to set to `set`.
/// Extra tags are left alone. Applied with [`missing_tags`] and the service's tagging call.
pub fn compare_tags<F: Field>(
    changes: &mut Vec<Diff<F>>,
    field: F,
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) {
    let missing = missing_tags(desired, observed);
    if !missing.is_empty() {
        changes.push(Diff::new(field, missing.keys().collect::<Vec<_>>(), "set"));
    }
}

/// What an absent value reads as in a change (`(unset) -> 120`).
pub const UNSET: &str = "(unset)";

/// A value as a user writes it in a spec or reads it in the AWS console (`60`, `true`,
/// `PAY_PER_REQUEST`, `arn:aws:s3:::bucket`, `(unset)`), never Rust's `Debug` form: this is
/// what conditions, events and `plan` show of a [`Change`].
pub trait Shown {
    fn shown(&self) -> String;
}

impl<T: Shown + ?Sized> Shown for &T {
    fn shown(&self) -> String {
        (**self).shown()
    }
}

macro_rules! shown_as_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_as_display!(str, String, bool, i32, i64, u32, u64, usize, f64);

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> String {
        match self {
            Some(v) => v.shown(),
            None => UNSET.to_string(),
        }
    }
}

/// A list: `[a, b]`.
impl<T: Shown> Shown for [T] {
    fn shown(&self) -> String {
        format!("[{}]", self.iter().map(Shown::shown).collect::<Vec<_>>().join(", "))
    }
}

impl<T: Shown> Shown for Vec<T> {
    fn shown(&self) -> String {
        self.as_slice().shown()
    }
}

/// Two settings changed together: `a, b`.
impl<A: Shown, B: Shown> Shown for (A, B) {
    fn shown(&self) -> String {
        format!("{}, {}", self.0.shown(), self.1.shown())
    }
}

/// A map: `{key=value, ...}`.
impl<K: Shown, V: Shown> Shown for std::collections::BTreeMap<K, V> {
    fn shown(&self) -> String {
        let pairs: Vec<String> = self.iter().map(|(k, v)| format!("{}={}", k.shown(), v.shown())).collect();
        format!("{{{}}}", pairs.join(", "))
    }
}

/// Spec enums read as they are written in the manifest (`PAY_PER_REQUEST`).
macro_rules! shown_as_serialized {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(_) => UNSET.to_string(),
                }
            }
        }
    )*};
}
shown_as_serialized!(crate::api::BillingMode, crate::api::StreamMode, crate::api::StreamViewType);

/// What every component's desired state is built from.
#[derive(Clone, Debug)]
pub struct PipelineCtx {
    pub spec: SalesPipelineSpec,
    pub names: Names,
    pub region: String,
    /// The user's tags plus the ownership tags.
    pub tags: BTreeMap<String, String>,
    /// Also look for resources an earlier spec needed and this one does not (the Glue crawler and
    /// its role after a switch to Projection mode), to remove them. The controller turns it off
    /// once the current generation has been reconciled to Ready: nothing can be left over then.
    pub sweep: bool,
}

/// Ownership tag keys.
pub const TAG_MANAGED_BY: &str = "sales-operator.dev/managed-by";
/// The one pipeline a resource belongs to: [`pipeline_identity`].
pub const TAG_PIPELINE: &str = "sales-operator.dev/pipeline";
/// Set on a resource that existed before the pipeline took it under management (`spec.adopt`).
pub const TAG_ADOPTED: &str = "sales-operator.dev/adopted";

/// Longest tag value every service of the pipeline accepts.
const MAX_TAG_VALUE: usize = 256;

/// The value of [`TAG_PIPELINE`]: `<namespace>/<name>`, stable for the same manifest (the CLI
/// and the controller agree; a pipeline deleted under `Retain` and applied again finds its
/// table and bucket). The longest Kubernetes names (63 + 1 + 253) exceed AWS's 256-character tag
/// values: those keep their first characters and end in `+` and a hash of the whole identity
/// (`+` is in every service's tag value alphabet; Kubernetes names never contain it).
pub fn pipeline_identity(namespace: &str, name: &str) -> String {
    let full = format!("{namespace}/{name}");
    if full.len() <= MAX_TAG_VALUE {
        return full;
    }
    let hash = crate::names::short_hash(&full, 16);
    format!("{}+{hash}", &full[..MAX_TAG_VALUE - hash.len() - 1])
}

/// The tags of a resource whose tags could not be read (no ARN known yet): owned by nobody.
pub static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();

/// Whose a resource is, by its ownership tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Tagged for this pipeline.
    This,
    /// No ownership tag: made by hand or by another tool.
    Nobody,
    /// Tagged for another pipeline (its `namespace/name`).
    Pipeline(String),
}

impl Owner {
    /// The owner `tags` name, seen from the pipeline `identity`.
    pub fn of(tags: &BTreeMap<String, String>, identity: &str) -> Owner {
        match tags.get(TAG_PIPELINE) {
            Some(owner) if owner == identity => Owner::This,
            Some(owner) => Owner::Pipeline(owner.clone()),
            None => Owner::Nobody,
        }
    }
}

/// One existing AWS resource of a component and the tags it carries (for the ownership check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub resource: String,
    pub tags: &'a BTreeMap<String, String>,
}

impl Claim<'_> {
    pub fn new(resource: impl Into<String>, tags: &BTreeMap<String, String>) -> Claim<'_> {
        Claim { resource: resource.into(), tags }
    }

    /// Whether it was adopted (existed before the pipeline took it).
    pub fn adopted(&self) -> bool {
        self.tags.get(TAG_ADOPTED).is_some_and(|v| v == "true")
    }
}

/// The claims that are not the pipeline `identity`'s, with whose they are instead: what the
/// reconciler refuses to change and the teardown refuses to delete.
pub fn not_ours<'c, 'a>(claims: &'c [Claim<'a>], identity: &str) -> Vec<(&'c Claim<'a>, Owner)> {
    claims
        .iter()
        .map(|claim| (claim, Owner::of(claim.tags, identity)))
        .filter(|(_, owner)| *owner != Owner::This)
        .collect()
}

impl PipelineCtx {
    pub fn new(namespace: &str, name: &str, spec: &SalesPipelineSpec, region: &str) -> Self {
        let names = Names::derive(namespace, name, spec, region);
        let mut tags = spec.tags.clone();
        tags.insert(TAG_MANAGED_BY.to_string(), "sales-operator".to_string());
        tags.insert(TAG_PIPELINE.to_string(), pipeline_identity(namespace, name));
        Self { spec: spec.clone(), names, region: region.to_string(), tags, sweep: true }
    }

    /// The value of this pipeline's [`TAG_PIPELINE`].
    pub fn identity(&self) -> &str {
        self.tags.get(TAG_PIPELINE).map(String::as_str).unwrap_or_default()
    }

    /// Whether `spec.adopt` lists `kind`.
    pub fn adopts(&self, kind: ComponentKind) -> bool {
        self.spec.adopt.contains(&kind)
    }

    /// What the built-in queries run against: the pipeline's Glue table, pruned by the
    /// Firehose prefix's dates when the table projects them.
    pub fn query_target(&self) -> crate::named_queries::QueryTarget {
        let projected = match self.spec.catalog.mode {
            crate::api::CatalogMode::Projection => Some(self.spec.delivery.prefix.as_str()),
            // The crawler names the partition columns itself (partition_0, ...).
            crate::api::CatalogMode::Crawler => None,
        };
        crate::named_queries::QueryTarget::new(&self.names.glue_table, projected, self.spec.delivery.buffer_seconds)
    }

    /// This context with the [`TAG_ADOPTED`] tag added to the desired tags, for taking an
    /// existing resource under management.
    pub fn adopting(&self) -> Self {
        let mut ctx = self.clone();
        ctx.tags.insert(TAG_ADOPTED.to_string(), "true".to_string());
        ctx
    }
}

/// What upstream components produced that downstream ones need (ARNs).
/// `None` while the upstream does not exist yet (e.g. in a plan).
#[derive(Clone, Debug, Default)]
pub struct Refs {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub table_arn: Option<String>,
    pub table_stream_arn: Option<String>,
    pub stream_arn: Option<String>,
    pub bucket_arn: Option<String>,
    pub pipe_role_arn: Option<String>,
    pub firehose_role_arn: Option<String>,
    pub glue_role_arn: Option<String>,
    /// When the managed roles last changed (created, or a policy written); `None` for the user's roles.
    pub roles_changed_at: Option<std::time::SystemTime>,
}

/// Placeholder for an ARN not known until its resource exists: shown by a plan, never sent to
/// AWS (a component whose desired state holds it waits, [`Ref`]).
pub const UNKNOWN: &str = "(known after apply)";

/// A value of [`Refs`] a component's desired state is built from. Until it is known the
/// component waits (the graph's `Need::Known`): a role policy naming `(known after apply)` is
/// refused by IAM, and a wait is not a permanent error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    TableStreamArn,
    StreamArn,
    BucketArn,
    PipeRoleArn,
    FirehoseRoleArn,
    Account,
}

impl Ref {
    /// Whether `refs` holds it.
    pub fn known(self, refs: &Refs) -> bool {
        let value = match self {
            Ref::TableStreamArn => &refs.table_stream_arn,
            Ref::StreamArn => &refs.stream_arn,
            Ref::BucketArn => &refs.bucket_arn,
            Ref::PipeRoleArn => &refs.pipe_role_arn,
            Ref::FirehoseRoleArn => &refs.firehose_role_arn,
            Ref::Account => &refs.account,
        };
        value.is_some()
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ref::TableStreamArn => "the table's stream ARN (the table has no DynamoDB stream yet)",
            Ref::StreamArn => "the Kinesis stream's ARN",
            Ref::BucketArn => "the bucket's ARN",
            Ref::PipeRoleArn => "the pipe role's ARN",
            Ref::FirehoseRoleArn => "the Firehose role's ARN",
            Ref::Account => "the AWS account id",
        })
    }
}

/// The ARN in `r`, or [`UNKNOWN`].
pub fn known(r: &Option<String>) -> String {
    r.clone().unwrap_or_else(|| UNKNOWN.to_string())
}

impl Refs {
    /// Learns partition and account from any ARN (`arn:PARTITION:svc:region:ACCOUNT:...`).
    pub fn learn_account(&mut self, arn: &str) {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6 && !parts[4].is_empty() {
            self.partition.get_or_insert_with(|| parts[1].to_string());
            self.account.get_or_insert_with(|| parts[4].to_string());
        }
    }
}

/// The shape every AWS component module has. Its calls return `Send` futures, so the
/// reconciler can run components concurrently inside the controller's tasks.
pub trait Component: Send + Sync {
    /// The resource(s) as the pipeline wants them.
    type Desired: fmt::Debug + Send + Sync;
    /// The resource(s) as AWS reports them.
    type Observed: fmt::Debug + Send + Sync;
    /// What can differ between them ([`Field`]).
    type Field: Field;

    const KIND: ComponentKind;

    /// Desired state from the spec and what upstream components produced.
    fn desired(ctx: &PipelineCtx, refs: &Refs) -> Self::Desired;

    /// A human name for plan output and events.
    fn resource_name(desired: &Self::Desired) -> String;

    /// Reads the current state; `None` when absent.
    fn observe(&self, desired: &Self::Desired)
        -> impl Future<Output = Result<Option<Self::Observed>, AwsError>> + Send;

    /// What differs (pure).
    fn diff(desired: &Self::Desired, observed: &Self::Observed) -> Vec<Diff<Self::Field>>;

    fn create(&self, desired: &Self::Desired) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Applies the mutable `changes` in place (the reconciler never passes an immutable one).
    fn update(
        &self,
        desired: &Self::Desired,
        observed: &Self::Observed,
        changes: &[Diff<Self::Field>],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn delete(&self, observed: &Self::Observed) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Records what downstream components need from this one.
    fn publish(observed: &Self::Observed, refs: &mut Refs);

    /// Writes the identifiers of what it manages into the pipeline's status.
    fn report(observed: &Self::Observed, status: &mut SalesPipelineStatus);

    /// Every existing resource of the component that carries tags, with its tags: what the
    /// ownership check reads before any change or delete. (What AWS cannot tag, such as Glue
    /// tables and named queries, lives inside a resource that is: a database, a workgroup.)
    fn claims(observed: &Self::Observed) -> Vec<Claim<'_>>;

    /// Whether the pipeline manages it at all (a bucket used with `create: false` is only read).
    fn managed(observed: &Self::Observed) -> bool {
        let _ = observed;
        true
    }

    /// Whether the pipeline may create it when it does not exist; else what is missing (a bucket
    /// used with `create: false`): nothing of the pipeline is created until it exists.
    fn creatable(desired: &Self::Desired) -> Result<(), String> {
        let _ = desired;
        Ok(())
    }

    /// Whether it is usable (e.g. ACTIVE); the message says what it is waiting for.
    fn readiness(observed: &Self::Observed) -> Result<(), String> {
        let _ = observed;
        Ok(())
    }

    /// What AWS is still doing to it (`CREATING`, `UPDATING`): while it is, AWS refuses changes,
    /// so none is attempted and the pipeline waits.
    fn busy(observed: &Self::Observed) -> Option<String> {
        let _ = observed;
        None
    }

    /// A failed state AWS will not leave by itself (`CREATE_FAILED`), and how to recover from it.
    fn failed(observed: &Self::Observed) -> Option<Failure> {
        let _ = observed;
        None
    }

    /// Starts it again after a failed start ([`Recovery::Restart`]).
    fn restart(&self, observed: &Self::Observed) -> impl Future<Output = Result<(), AwsError>> + Send {
        let _ = observed;
        async { Err(AwsError::permanent("Restart", format!("{} cannot be restarted", Self::KIND))) }
    }
}

/// A resource in a failed state (SPEC §9: recovered when it holds no data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The state AWS reports (`CREATE_FAILED`).
    pub state: String,
    /// AWS's reason (a pipe's StateReason, a Firehose stream's FailureDescription).
    pub reason: String,
    pub recovery: Recovery,
}

/// How a failed resource is brought back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Deleted; the next pass creates it again (it holds no data).
    Recreate,
    /// Started again.
    Restart,
}

/// Tags as the `Vec<(key, value)>` most comparisons want.
pub fn tag_pairs(tags: &BTreeMap<String, String>) -> Vec<(String, String)> {
    tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The tags of `desired` that are missing or different in `observed` (extra tags are left alone).
pub fn missing_tags(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired.iter().filter(|(k, v)| observed.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_show_values_not_rust_debug_forms() {
        let show = |c: Change| c.to_string();
        assert_eq!(show(Change::new("bufferSeconds", Some(60), Some(120))), "bufferSeconds: 60 -> 120");
        assert_eq!(show(Change::new("bufferSeconds", None::<i32>, Some(120))), "bufferSeconds: (unset) -> 120");
        assert_eq!(show(Change::new("prefix", Some("a/"), "b/")), "prefix: a/ -> b/");
        let modes = (crate::api::BillingMode::Provisioned, crate::api::BillingMode::PayPerRequest);
        assert_eq!(show(Change::new("billingMode", modes.0, modes.1)), "billingMode: PROVISIONED -> PAY_PER_REQUEST");
        assert_eq!(show(Change::new("tags", vec!["env", "team"], "set")), "tags: [env, team] -> set");
        assert_eq!(
            show(Change::new("enc", (Some("SSE_KMS"), None::<&str>), ("SSE_S3", "k"))),
            "enc: SSE_KMS, (unset) -> SSE_S3, k"
        );
        let map = BTreeMap::from([("a", Some("1")), ("b", None)]);
        assert_eq!(show(Change::new("parameters", map, "x")), "parameters: {a=1, b=(unset)} -> x");
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_pipeline_tag_says_whose_a_resource_is() {
        assert_eq!(Owner::of(&tags(&[(TAG_PIPELINE, "shop/sales")]), "shop/sales"), Owner::This);
        assert_eq!(Owner::of(&tags(&[(TAG_PIPELINE, "a/sales")]), "b/sales"), Owner::Pipeline("a/sales".into()));
        // managed-by alone is not ownership: it does not say which pipeline.
        assert_eq!(Owner::of(&tags(&[(TAG_MANAGED_BY, "sales-operator")]), "shop/sales"), Owner::Nobody);
        assert_eq!(Owner::of(&BTreeMap::new(), "shop/sales"), Owner::Nobody);
    }

    #[test]
    fn identity_is_namespace_and_name_within_the_aws_tag_value_limit() {
        assert_eq!(pipeline_identity("shop", "sales"), "shop/sales");
        let (ns, long, other) = ("s".repeat(63), "n".repeat(253), format!("{}x", "n".repeat(252)));
        let id = pipeline_identity(&ns, &long);
        assert_eq!(id.len(), MAX_TAG_VALUE);
        assert!(id.starts_with(&format!("{ns}/nnn")));
        assert_ne!(id, pipeline_identity(&ns, &other), "names differing past the cut stay distinct");
        assert_eq!(id, pipeline_identity(&ns, &long), "stable");
    }
}
