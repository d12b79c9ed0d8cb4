//! The `SalesPipeline` custom resource: one document describing the whole
//! DynamoDB -> Pipe -> Kinesis -> Firehose -> S3 -> Glue -> Athena chain.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};

use crate::api::conditions::NOT_OBSERVED;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a sales analytics pipeline. Every field has a default
/// except what cannot be defaulted; the defaults are part of the CRD schema.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sales-operator.dev",
    version = "v1alpha1",
    kind = "SalesPipeline",
    doc = "A real-time sales analytics pipeline on AWS, built and kept in sync by sales-operator: DynamoDB table -> EventBridge Pipe -> Kinesis -> Firehose -> S3 -> Glue -> Athena, with the IAM roles they need. `spec: {}` is a complete pipeline; `kubectl describe sp NAME` shows one condition per component. Deleting it removes the AWS resources under spec.deletionPolicy.",
    plural = "salespipelines",
    shortname = "sp",
    category = "sales",
    namespaced,
    cel,
    status = "SalesPipelineStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Table","type":"string","jsonPath":".status.table.name"}"#,
    printcolumn = r#"{"name":"Stream","type":"string","jsonPath":".status.stream.name"}"#,
    printcolumn = r#"{"name":"Pipe","type":"string","jsonPath":".status.pipe.state"}"#,
    printcolumn = r#"{"name":"Data","type":"string","jsonPath":".status.dataFlow.state"}"#,
    printcolumn = r#"{"name":"Freshness","type":"integer","jsonPath":".status.dataFlow.freshnessSeconds"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.account"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".status.region"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Identity","type":"string","priority":1,"jsonPath":".status.identity"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SalesPipelineSpec {
    /// AWS region of every resource, one the AWS SDK's partition data lists (aws-sdk 1.136:
    /// the aws, aws-cn, aws-us-gov, aws-eusc and ISO partitions; a newer region needs a newer
    /// operator). Default: the operator's configured region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "region_schema")]
    pub region: Option<String>,
    /// The AwsIdentity (an AWS account's role, granted to namespaces by the cluster admin) whose
    /// account the pipeline lives in. Default: the one marked default for the namespace, else
    /// the operator's own credentials. The account cannot change under a pipeline that has
    /// resources (it stalls with `AccountChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_ref: Option<IdentityRef>,
    /// Prefix of every AWS name. Default: `<namespace>-<name>` (shortened with a
    /// hash when too long). Changing it after creation is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9-]{0,39}$')").message("must be 1-40 letters, digits or '-', starting with a letter or digit"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: AWS names derive from it"))]
    pub name_prefix: Option<String>,
    #[serde(default)]
    pub table: TableSpec,
    #[serde(default)]
    pub stream: StreamSpec,
    #[serde(default)]
    pub pipe: PipeSpec,
    #[serde(default)]
    pub delivery: DeliverySpec,
    #[serde(default)]
    pub bucket: BucketSpec,
    #[serde(default)]
    pub catalog: CatalogSpec,
    #[serde(default)]
    pub analytics: AnalyticsSpec,
    #[serde(default)]
    pub iam: IamSpec,
    /// What happens to the data-bearing resources (table, bucket) when the
    /// pipeline is deleted: `Retain` (default) keeps them with their data, `Delete`
    /// removes them too. Everything else is always removed.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Tags added to every AWS resource, beside the operator's ownership tags: at most 47
    /// (AWS allows 50 per resource; the operator adds up to 3), keys of 1-128 and values of at
    /// most 256 letters, digits, spaces and `_ . : / = + - @` (what every service of the
    /// pipeline accepts), no key starting with `aws:` or `sales-operator.dev/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 47, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('sales-operator.dev/') && !k.matches('^[aA][wW][sS]:'))").message("keys must not use the reserved prefixes 'sales-operator.dev/' or 'aws:'"))]
    #[x_kube(validation = Rule::new("self.all(k, k.size() >= 1 && k.size() <= 128)").message("keys must be 1 to 128 characters"))]
    #[x_kube(validation = Rule::new(r"self.all(k, k.matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$') && self[k].matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$'))").message("keys and values may hold only letters, digits, spaces and _ . : / = + - @ (what IAM, Firehose and every other service of the pipeline accept)"))]
    pub tags: BTreeMap<String, String>,
    /// Observe and report only; change nothing in AWS.
    #[serde(default)]
    pub paused: bool,
    /// What the operator does when a resource it built is changed outside Kubernetes: `Repair`
    /// (default) brings it back to the spec; `Report` builds the pipeline once and from its
    /// first Ready on only reports differences (`DriftDetected` events, `status.drift`, the
    /// `Drifted` condition), until the spec changes (a new generation is applied once).
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    /// Components whose existing, untagged AWS resources the pipeline may take under
    /// management. Without it, a resource that exists but does not carry this pipeline's
    /// ownership tags is never modified or deleted (the pipeline stalls with `NotOwned`). An
    /// adopted table or bucket is never deleted, whatever the deletion policy. A resource
    /// tagged for another pipeline cannot be adopted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub adopt: Vec<ComponentKind>,
}

/// Names a cluster-scoped AwsIdentity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityRef {
    /// metadata.name of the AwsIdentity.
    #[x_kube(validation = Rule::new("self.size() >= 1 && self.size() <= 253").message("must be the name of an AwsIdentity (1-253 characters)"))]
    pub name: String,
}

/// A region the AWS SDK's partition data lists (see `spec.region`), or none.
pub(crate) fn region_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "nullable": true,
        "enum": ["af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-isoe-west-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "eusc-de-east-1", "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-iso-east-1", "us-iso-west-1", "us-isob-east-1", "us-isob-west-1", "us-isof-east-1", "us-isof-south-1", "us-west-1", "us-west-2"]
    })
}

/// The components of a pipeline, in dependency (creation) order; `spec.adopt` names them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    Table,
    Stream,
    Bucket,
    Iam,
    Pipe,
    Delivery,
    Catalog,
    Analytics,
}

impl SalesPipeline {
    /// Whether the last reconcile brought this generation of the spec to Ready.
    pub fn settled(&self) -> bool {
        self.status.as_ref().is_some_and(|status| {
            status.observed_generation.is_some()
                && status.observed_generation == self.metadata.generation
                && crate::api::conditions::is_true(&status.conditions, crate::api::conditions::READY)
        })
    }
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 8] = [
        ComponentKind::Table,
        ComponentKind::Stream,
        ComponentKind::Bucket,
        ComponentKind::Iam,
        ComponentKind::Pipe,
        ComponentKind::Delivery,
        ComponentKind::Catalog,
        ComponentKind::Analytics,
    ];

    /// The status condition type of this component (`TableReady`, ...).
    pub fn condition_type(self) -> &'static str {
        match self {
            ComponentKind::Table => "TableReady",
            ComponentKind::Stream => "StreamReady",
            ComponentKind::Bucket => "BucketReady",
            ComponentKind::Iam => "IamReady",
            ComponentKind::Pipe => "PipeReady",
            ComponentKind::Delivery => "DeliveryReady",
            ComponentKind::Catalog => "CatalogReady",
            ComponentKind::Analytics => "AnalyticsReady",
        }
    }

    /// PascalCase name, e.g. for event reasons (`CreatedStream`).
    pub fn title(self) -> &'static str {
        match self {
            ComponentKind::Table => "Table",
            ComponentKind::Stream => "Stream",
            ComponentKind::Bucket => "Bucket",
            ComponentKind::Iam => "IamRoles",
            ComponentKind::Pipe => "Pipe",
            ComponentKind::Delivery => "Delivery",
            ComponentKind::Catalog => "Catalog",
            ComponentKind::Analytics => "Analytics",
        }
    }

    /// Whether the component holds data (kept under `deletionPolicy: Retain`).
    pub fn holds_data(self) -> bool {
        matches!(self, ComponentKind::Table | ComponentKind::Bucket)
    }
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ComponentKind::Table => "table",
            ComponentKind::Stream => "stream",
            ComponentKind::Bucket => "bucket",
            ComponentKind::Iam => "iam",
            ComponentKind::Pipe => "pipe",
            ComponentKind::Delivery => "delivery",
            ComponentKind::Catalog => "catalog",
            ComponentKind::Analytics => "analytics",
        };
        f.write_str(s)
    }
}

/// The DynamoDB table the orders are written to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.billingMode != 'PROVISIONED' || (has(self.readCapacity) && has(self.writeCapacity))").message("readCapacity and writeCapacity are required when billingMode is PROVISIONED").field_path(".billingMode"))]
pub struct TableSpec {
    /// Table name. Default: `<namePrefix>-orders`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{3,255}$')").message("must be 3-255 letters, digits, '_', '.' or '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: a table cannot be renamed"))]
    pub name: Option<String>,
    #[serde(default)]
    pub billing_mode: BillingMode,
    /// Read capacity units (PROVISIONED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 40000").message("must be between 1 and 40000"))]
    pub read_capacity: Option<i64>,
    /// Write capacity units (PROVISIONED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 40000").message("must be between 1 and 40000"))]
    pub write_capacity: Option<i64>,
    /// What the table's stream carries. The stream is always on: the pipeline reads it.
    #[serde(default)]
    pub stream_view_type: StreamViewType,
    /// Continuous backups (point-in-time recovery).
    #[serde(default = "yes")]
    pub point_in_time_recovery: bool,
}

impl Default for TableSpec {
    fn default() -> Self {
        Self {
            name: None,
            billing_mode: BillingMode::default(),
            read_capacity: None,
            write_capacity: None,
            stream_view_type: StreamViewType::default(),
            point_in_time_recovery: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// DynamoDB capacity mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BillingMode {
    #[default]
    #[serde(rename = "PAY_PER_REQUEST")]
    PayPerRequest,
    #[serde(rename = "PROVISIONED")]
    Provisioned,
}

/// DynamoDB stream view types that carry the order (the pipe reads the new image).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamViewType {
    #[default]
    #[serde(rename = "NEW_AND_OLD_IMAGES")]
    NewAndOldImages,
    #[serde(rename = "NEW_IMAGE")]
    NewImage,
}

/// The Kinesis data stream between the pipe and Firehose.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'PROVISIONED' || has(self.shardCount)").message("shardCount is required when mode is PROVISIONED").field_path(".shardCount"))]
#[x_kube(validation = Rule::new("self.mode == 'PROVISIONED' || !has(self.shardCount)").message("shardCount is only allowed when mode is PROVISIONED").field_path(".shardCount"))]
pub struct StreamSpec {
    /// Stream name. Default: `<namePrefix>-orders`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{1,128}$')").message("must be 1-128 letters, digits, '_', '.' or '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: a stream cannot be renamed"))]
    pub name: Option<String>,
    #[serde(default)]
    pub mode: StreamMode,
    /// Number of shards (PROVISIONED only); changed in place with UpdateShardCount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 500").message("must be between 1 and 500"))]
    pub shard_count: Option<i32>,
    /// How long records stay in the stream.
    #[serde(default = "default_retention_hours")]
    #[x_kube(validation = Rule::new("self >= 24 && self <= 8760").message("must be between 24 and 8760 hours"))]
    pub retention_hours: i32,
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self { name: None, mode: StreamMode::default(), shard_count: None, retention_hours: default_retention_hours() }
    }
}

fn default_retention_hours() -> i32 {
    24
}

/// Kinesis capacity mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamMode {
    #[default]
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
    #[serde(rename = "PROVISIONED")]
    Provisioned,
}

/// The EventBridge Pipe from the table's stream to Kinesis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipeSpec {
    /// Pipe name. Default: `<namePrefix>-orders`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{1,64}$')").message("must be 1-64 letters, digits, '_', '.' or '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: a pipe cannot be renamed"))]
    pub name: Option<String>,
    /// Records per batch read from the stream.
    #[serde(default = "default_batch_size")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000").message("must be between 1 and 10000"))]
    pub batch_size: i32,
    /// How long the pipe waits to fill a batch.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 300").message("must be between 0 and 300 seconds"))]
    pub maximum_batching_window_seconds: i32,
    /// Where a new pipe starts reading the stream. Immutable in AWS.
    #[serde(default)]
    pub starting_position: StartingPosition,
    /// Which change events are forwarded (an empty list forwards all).
    #[serde(default = "default_event_names")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 3))]
    pub event_names: Vec<EventName>,
    /// Kinesis partition key, a JSON path into the stream record.
    #[serde(default = "default_partition_key")]
    #[x_kube(validation = Rule::new("self.startsWith('$.') && self.size() <= 256").message("must be a JSON path starting with '$.', at most 256 characters"))]
    pub partition_key: String,
}

impl Default for PipeSpec {
    fn default() -> Self {
        Self {
            name: None,
            batch_size: default_batch_size(),
            maximum_batching_window_seconds: 0,
            starting_position: StartingPosition::default(),
            event_names: default_event_names(),
            partition_key: default_partition_key(),
        }
    }
}

fn default_batch_size() -> i32 {
    100
}

fn default_event_names() -> Vec<EventName> {
    vec![EventName::Insert]
}

fn default_partition_key() -> String {
    "$.dynamodb.Keys.orderid.S".to_string()
}

/// Starting position of a pipe on a DynamoDB stream.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartingPosition {
    /// Every record still in the stream (24 h): no order written before the pipe existed is lost.
    #[default]
    #[serde(rename = "TRIM_HORIZON")]
    TrimHorizon,
    #[serde(rename = "LATEST")]
    Latest,
}

/// A DynamoDB stream event type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventName {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "MODIFY")]
    Modify,
    #[serde(rename = "REMOVE")]
    Remove,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }
}

/// The Firehose delivery stream from Kinesis to S3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.prefix.contains('!{') || self.errorPrefix.contains('!{firehose:error-output-type}')").message("must contain !{firehose:error-output-type} when prefix uses expressions").field_path(".errorPrefix"))]
pub struct DeliverySpec {
    /// Delivery stream name. Default: `<namePrefix>-orders`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{1,64}$')").message("must be 1-64 letters, digits, '_', '.' or '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: a delivery stream cannot be renamed"))]
    pub name: Option<String>,
    /// Flush to S3 at least this often.
    #[serde(default = "default_buffer_seconds")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 900").message("must be between 0 and 900 seconds"))]
    pub buffer_seconds: i32,
    /// Flush to S3 when this much data is buffered.
    #[serde(default = "default_buffer_mib")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 128").message("must be between 1 and 128 MiB"))]
    pub buffer_mib: i32,
    #[serde(default)]
    pub compression: Compression,
    /// S3 key prefix of delivered objects (Firehose expressions allowed).
    #[serde(default = "default_prefix")]
    #[x_kube(validation = Rule::new("self.size() >= 1 && self.size() <= 1024 && !self.startsWith('/')").message("must be 1-1024 characters and must not start with '/'"))]
    pub prefix: String,
    /// S3 key prefix of records Firehose could not deliver.
    #[serde(default = "default_error_prefix")]
    #[x_kube(validation = Rule::new("self.size() >= 1 && self.size() <= 1024 && !self.startsWith('/')").message("must be 1-1024 characters and must not start with '/'"))]
    pub error_prefix: String,
}

impl Default for DeliverySpec {
    fn default() -> Self {
        Self {
            name: None,
            buffer_seconds: default_buffer_seconds(),
            buffer_mib: default_buffer_mib(),
            compression: Compression::default(),
            prefix: default_prefix(),
            error_prefix: default_error_prefix(),
        }
    }
}

fn default_buffer_seconds() -> i32 {
    60
}

fn default_buffer_mib() -> i32 {
    5
}

pub use crate::partitions::DEFAULT_PREFIX;

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_string()
}

fn default_error_prefix() -> String {
    "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/"
        .to_string()
}

/// Compression of delivered objects.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    #[serde(rename = "GZIP")]
    Gzip,
    #[serde(rename = "UNCOMPRESSED")]
    Uncompressed,
    #[serde(rename = "Snappy")]
    Snappy,
    #[serde(rename = "ZIP")]
    Zip,
    #[serde(rename = "HADOOP_SNAPPY")]
    HadoopSnappy,
}

/// The S3 bucket delivered orders (and Athena results) land in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.create || has(self.name)").message("name is required when create is false").field_path(".name"))]
#[x_kube(validation = Rule::new("self.encryption != 'SSE_KMS' || has(self.kmsKeyArn)").message("kmsKeyArn is required when encryption is SSE_KMS").field_path(".kmsKeyArn"))]
pub struct BucketSpec {
    /// Bucket name. Default: derived from `<namePrefix>` plus a hash. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$') && !self.contains('..') && !self.contains('.-') && !self.contains('-.') && !self.startsWith('xn--') && !self.startsWith('sthree-') && !self.endsWith('-s3alias') && !self.endsWith('--ol-s3') && !self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')").message("must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit, not an IP address"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("is immutable: a bucket cannot be renamed"))]
    pub name: Option<String>,
    /// Create the bucket (true) or use an existing one the operator does not own (false).
    #[serde(default = "yes")]
    pub create: bool,
    /// Delete delivered objects after this many days (no expiry when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 36500").message("must be between 1 and 36500 days"))]
    pub expiration_days: Option<i32>,
    #[serde(default)]
    pub encryption: Encryption,
    /// KMS key for SSE_KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('arn:aws')").message("must be a KMS key ARN"))]
    pub kms_key_arn: Option<String>,
}

impl Default for BucketSpec {
    fn default() -> Self {
        Self { name: None, create: true, expiration_days: None, encryption: Encryption::default(), kms_key_arn: None }
    }
}

/// Server-side encryption of the bucket.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    #[default]
    #[serde(rename = "SSE_S3")]
    SseS3,
    #[serde(rename = "SSE_KMS")]
    SseKms,
}

/// The Glue Data Catalog entries that make the delivered orders queryable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// Glue database. Default: `<namePrefix>_sales` (lower case, '_' for '-').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9_]{1,255}$')").message("must be 1-255 lowercase letters, digits or '_'"))]
    pub database: Option<String>,
    /// Glue table of the delivered orders.
    #[serde(default = "default_catalog_table")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9_]{1,255}$')").message("must be 1-255 lowercase letters, digits or '_'"))]
    pub table: String,
    /// `Projection`: a table with partition projection, queryable at once, no crawler runs.
    /// `Crawler`: a Glue crawler on a schedule discovers the table, as the original project did.
    #[serde(default)]
    pub mode: CatalogMode,
    /// Crawler schedule (Crawler mode), a Glue cron expression.
    #[serde(default = "default_crawler_schedule")]
    #[x_kube(validation = Rule::new("self.matches('^cron\\\\([^()]+\\\\)$')").message("must be a Glue cron expression such as cron(0 * * * ? *)"))]
    pub crawler_schedule: String,
}

impl Default for CatalogSpec {
    fn default() -> Self {
        Self {
            database: None,
            table: default_catalog_table(),
            mode: CatalogMode::default(),
            crawler_schedule: default_crawler_schedule(),
        }
    }
}

fn default_catalog_table() -> String {
    "orders".to_string()
}

fn default_crawler_schedule() -> String {
    "cron(0 * * * ? *)".to_string()
}

/// How the Glue table is maintained.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CatalogMode {
    #[default]
    Projection,
    Crawler,
}

/// The Athena workgroup and the analysis queries installed in it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSpec {
    /// Workgroup name. Default: `<namePrefix>-sales`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]{1,128}$')").message("must be 1-128 letters, digits, '.', '_' or '-'"))]
    pub workgroup: Option<String>,
    /// Where query results go. Default: `s3://<bucket>/athena-results/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$')").message("must be an s3:// URI"))]
    pub result_location: Option<String>,
    /// Cancel any query that scans more than this many bytes (Athena minimum: 10 MB).
    #[serde(default = "default_cutoff")]
    #[x_kube(validation = Rule::new("self >= 10000000").message("must be at least 10000000 bytes (Athena's minimum)"))]
    pub bytes_scanned_cutoff: i64,
    /// Named queries to install (built-in analysis names); empty installs none.
    #[serde(default = "default_named_queries")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "set",
        "maxItems" = 5,
        "items" = {"type": "string", "enum": ["revenue_by_product_hour", "top_products", "order_rate_per_minute", "average_order_value_by_region", "sales_projection"]}
    ))]
    pub named_queries: Vec<String>,
}

impl Default for AnalyticsSpec {
    fn default() -> Self {
        Self {
            workgroup: None,
            result_location: None,
            bytes_scanned_cutoff: default_cutoff(),
            named_queries: default_named_queries(),
        }
    }
}

fn default_cutoff() -> i64 {
    1_073_741_824
}

fn default_named_queries() -> Vec<String> {
    crate::named_queries::BUILT_IN.iter().map(|q| q.name.to_string()).collect()
}

/// IAM roles the pipeline's services assume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.createRoles || (has(self.pipeRoleArn) && has(self.firehoseRoleArn))").message("pipeRoleArn and firehoseRoleArn are required when createRoles is false").field_path(".createRoles"))]
pub struct IamSpec {
    /// Create least-privilege roles (true) or use the given role ARNs.
    #[serde(default = "yes")]
    pub create_roles: bool,
    /// Role the EventBridge Pipe assumes when `createRoles` is false (reads the table's stream,
    /// writes the Kinesis stream; docs/iam.md lists the actions), e.g.
    /// `arn:aws:iam::123456789012:role/orders-pipe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$')").message("must be an IAM role ARN"))]
    pub pipe_role_arn: Option<String>,
    /// Role Firehose assumes when `createRoles` is false (reads the Kinesis stream, writes the
    /// bucket; docs/iam.md lists the actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$')").message("must be an IAM role ARN"))]
    pub firehose_role_arn: Option<String>,
    /// Role of the Glue crawler (Crawler mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$')").message("must be an IAM role ARN"))]
    pub glue_role_arn: Option<String>,
}

impl Default for IamSpec {
    fn default() -> Self {
        Self { create_roles: true, pipe_role_arn: None, firehose_role_arn: None, glue_role_arn: None }
    }
}

/// What deletion of the pipeline does to its data.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the table and the bucket (and their data); remove everything else.
    #[default]
    Retain,
    /// Remove everything, including a non-empty bucket.
    Delete,
}

/// What the operator does about drift: a managed resource changed outside Kubernetes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Report the drift, then bring the resource back to the spec.
    #[default]
    Repair,
    /// Report the drift; change nothing in AWS until the spec changes.
    Report,
}

/// As the API spells it (`Retain`, `Delete`).
impl std::fmt::Display for DeletionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Retain => "Retain",
            Self::Delete => "Delete",
        })
    }
}

/// Observed state, kstatus-compatible.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
// The API server fills this in on a new object, so that before the operator has looked at it
// the object says "not observed yet" (kstatus: InProgress, Argo CD: Progressing) instead of
// nothing, which kstatus reads as Current.
#[schemars(extend("default" = {"observedGeneration": NOT_OBSERVED}))]
pub struct SalesPipelineStatus {
    /// The generation the conditions describe; -1 until the operator has looked at the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and one condition per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The DynamoDB table the orders are written to (OrderGenerators read its name here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableStatus>,
    /// The Kinesis data stream the pipe writes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<NamedArn>,
    /// The EventBridge Pipe from the table's stream to Kinesis, and its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe: Option<PipeStatus>,
    /// The Firehose delivery stream from Kinesis to the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<NamedArn>,
    /// Name of the S3 bucket the orders are delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The Glue database, table and (Crawler mode) crawler that make the orders queryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogStatus>,
    /// The Athena workgroup, its result location and the named queries installed
    /// (`sales-operator query --pipeline NAME QUERY` runs them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<AnalyticsStatus>,
    /// ARNs of the IAM roles the pipe, Firehose and the Glue crawler assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesStatus>,
    /// The AWS account the pipeline's resources are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The AWS region the pipeline's resources are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AwsIdentity the operator acts through (none: its own credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The resources taken under management through `spec.adopt` (never deleted if they hold data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<String>,
    /// The last value of the `sales-operator.dev/reconcile-requested-at` annotation the operator
    /// acted on: once it shows the value you set, the pass it asked for is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The generation last brought to Ready: under `driftPolicy: Report`, nothing is changed in
    /// AWS while it equals `metadata.generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// The last drifts found (at most 10, oldest first): what changed outside Kubernetes, who
    /// changed it when an AWS change event says so, and whether it was repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 10))]
    pub drift: Vec<Drift>,
    /// Whether orders move, from the stages' CloudWatch metrics over the last window (written
    /// with the `DataFlowing` condition while the pipeline is Ready; docs/data-health.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_flow: Option<DataFlowStatus>,
}

/// The last look at a pipeline's data health.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFlowStatus {
    /// `Flowing`, `Idle` or `Degraded` (the `DataFlowing` condition's reason).
    pub state: String,
    /// How long orders took from entering Firehose to landing in S3, at most, in the window
    /// (Firehose's `DeliveryToS3.DataFreshness`), in seconds; absent when not published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_seconds: Option<i64>,
    /// Records each stage moved in the window (pipe, stream, delivery).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records: BTreeMap<String, i64>,
    /// The stage that fails or falls behind, when `Degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_stage: Option<String>,
    /// The newest object Firehose wrote under the error output prefix, when it wrote one since
    /// the last look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_error_object: Option<String>,
    /// The window the metrics cover, in seconds.
    pub window_seconds: i64,
    /// When the metrics were read (RFC 3339).
    pub checked_at: String,
}

/// One drift: a managed resource found differing from the spec after it had matched it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// When the operator found it (RFC 3339).
    pub detected_at: String,
    /// The component (`stream`, `bucket`, ...).
    pub component: String,
    /// The AWS resource.
    pub resource: String,
    /// Each field that differs; a deleted resource has one change of field `exists`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<DriftChange>,
    /// `event` (an AWS change event triggered the look) or `resync` (the periodic re-check).
    pub found_by: String,
    /// Who made the change (`userIdentity.arn` of the AWS change event); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The AWS API call that made it (`eventName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// When AWS says the call was made (`eventTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// Where the call came from (`sourceIPAddress`, user agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Whether the operator brought it back to the spec (`driftPolicy: Repair`).
    pub repaired: bool,
}

/// One field of a drift, its values as users write them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftChange {
    /// The field, as the spec names it (`stream.shardCount`), or `exists`.
    pub field: String,
    /// The value before the drift: the spec's, which AWS had.
    pub before: String,
    /// The value found in AWS.
    pub after: String,
}

/// A managed resource's name and ARN.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedArn {
    /// Name of the resource in AWS.
    pub name: String,
    /// ARN of the resource, once AWS has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// The orders table.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// Table name (`sales-operator generate --table NAME` writes into it).
    pub name: String,
    /// Table ARN (`sales-operator iam-policy --generator-table-arn ARN` scopes a writer to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// ARN of the table's DynamoDB stream, the pipe's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

/// The EventBridge Pipe.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipeStatus {
    /// Pipe name.
    pub name: String,
    /// Pipe ARN, once AWS has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Current state reported by EventBridge Pipes (RUNNING, STOPPED, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The Glue Data Catalog entries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogStatus {
    /// Glue database (the schema Athena queries name).
    pub database: String,
    /// Glue table of the delivered orders.
    pub table: String,
    /// Glue crawler (Crawler mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawler: Option<String>,
}

/// The Athena workgroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsStatus {
    /// Athena workgroup the named queries are installed in.
    pub workgroup: String,
    /// S3 location of the workgroup's query results.
    pub result_location: String,
    /// Names of the named queries installed in the workgroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_queries: Vec<String>,
}

/// The IAM roles the pipeline's services assume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolesStatus {
    /// ARN of the pipe's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe: Option<String>,
    /// ARN of Firehose's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firehose: Option<String>,
    /// ARN of the Glue crawler's role (Crawler mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glue: Option<String>,
}
