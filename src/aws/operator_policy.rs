//! The IAM policy of the operator's own role: every AWS action the operator
//! may call, in one list. `docs/iam.md` and `sales-operator iam-policy` are
//! generated from it; tests/it/iam_policy.rs fails when the code calls an action
//! that is not listed (observed calls against moto and a scan of src/aws/) or
//! lists one the code never calls.

use std::collections::BTreeSet;

/// Every AWS action the operator calls (sorted) on pipeline resources, besides `iam:PassRole`
/// (the change-event queue's are [`CHANGE_EVENT_ACTIONS`]).
pub const OPERATOR_ACTIONS: &[&str] = &[
    "athena:BatchGetNamedQuery",
    "athena:CreateNamedQuery",
    "athena:CreateWorkGroup",
    "athena:DeleteNamedQuery",
    "athena:DeleteWorkGroup",
    "athena:GetNamedQuery",
    "athena:GetWorkGroup",
    "athena:ListNamedQueries",
    "athena:ListTagsForResource",
    "athena:TagResource",
    "athena:UpdateNamedQuery",
    "athena:UpdateWorkGroup",
    "cloudwatch:GetMetricData",
    "dynamodb:CreateTable",
    "dynamodb:DeleteTable",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTable",
    "dynamodb:ListTagsOfResource",
    "dynamodb:TagResource",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateTable",
    "firehose:CreateDeliveryStream",
    "firehose:DeleteDeliveryStream",
    "firehose:DescribeDeliveryStream",
    "firehose:ListTagsForDeliveryStream",
    "firehose:TagDeliveryStream",
    "firehose:UpdateDestination",
    "glue:CreateCrawler",
    "glue:CreateDatabase",
    "glue:CreateTable",
    "glue:DeleteCrawler",
    "glue:DeleteDatabase",
    "glue:DeleteTable",
    "glue:GetCrawler",
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTags",
    "glue:StopCrawler",
    "glue:TagResource",
    "glue:UpdateCrawler",
    "glue:UpdateTable",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "kinesis:AddTagsToStream",
    "kinesis:CreateStream",
    "kinesis:DecreaseStreamRetentionPeriod",
    "kinesis:DeleteStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:IncreaseStreamRetentionPeriod",
    "kinesis:ListTagsForStream",
    "kinesis:StartStreamEncryption",
    "kinesis:UpdateShardCount",
    "kinesis:UpdateStreamMode",
    "pipes:CreatePipe",
    "pipes:DeletePipe",
    "pipes:DescribePipe",
    "pipes:StartPipe",
    "pipes:TagResource",
    "pipes:UpdatePipe",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:TagResource",
    "tag:GetResources",
];

/// Every AWS action the OrderGenerator workload (`sales-operator generate`) calls, on its table.
pub const GENERATOR_ACTIONS: &[&str] = &["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"];

/// Every AWS action the operator calls on its change-event queue (docs/change-events.md): one
/// queue for all pipelines of an account and region, named by `events-setup --queue-name`, so
/// `--name-prefix` does not narrow it; `iam-policy --events-queue` names another.
pub const CHANGE_EVENT_ACTIONS: &[&str] =
    &["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"];

/// Every AWS action `sales-operator events-setup` calls: on the queue, and on its rules.
pub const EVENTS_SETUP_QUEUE_ACTIONS: &[&str] = &[
    "sqs:CreateQueue",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListQueueTags",
    "sqs:SetQueueAttributes",
    "sqs:TagQueue",
];
/// See [`EVENTS_SETUP_QUEUE_ACTIONS`].
pub const EVENTS_SETUP_RULE_ACTIONS: &[&str] = &[
    "events:DescribeRule",
    "events:ListTagsForResource",
    "events:ListTargetsByRule",
    "events:PutRule",
    "events:PutTargets",
    "events:TagResource",
];

/// The ARN pattern of change-event queue `queue` in every region.
pub fn queue_arn(queue: &str) -> String {
    format!("arn:aws:sqs:*:*:{queue}")
}

/// The policy `sales-operator events-setup --queue-name QUEUE` needs: the queue, and the rules
/// named after it (`QUEUE-<service>` on the default bus).
pub fn events_setup_policy_document(queue: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            statement("ChangeEventQueue", EVENTS_SETUP_QUEUE_ACTIONS, vec![queue_arn(queue)], None),
            statement(
                "ChangeEventRules",
                EVENTS_SETUP_RULE_ACTIONS,
                vec![format!("arn:aws:events:*:*:rule/{queue}-*")],
                None
            ),
        ]
    })
}

/// The IAM policy of a role for the OrderGenerator pods writing into the table `table_arn`.
pub fn generator_policy_document(table_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WriteOrders",
            "Effect": "Allow",
            "Action": GENERATOR_ACTIONS,
            "Resource": table_arn
        }]
    })
}

/// The trust policy of a role the operator assumes for pipelines (`--assume-role`): `principal`
/// (the operator's role ARN, or an account id) may assume it, only with `external_id` when
/// given, and may tag the session with the pipeline and nothing else.
pub fn trust_policy_document(
    principal: &str,
    external_id: Option<&str>,
    session_tag_keys: &[String],
) -> serde_json::Value {
    let mut keys = vec![super::TAG_PIPELINE.to_string(), super::identity::TAG_IDENTITY.to_string()];
    keys.extend(session_tag_keys.iter().cloned());
    let mut assume = serde_json::json!({
        "Sid": "SalesOperatorAssumes",
        "Effect": "Allow",
        "Principal": { "AWS": principal },
        "Action": "sts:AssumeRole"
    });
    if let Some(id) = external_id {
        assume["Condition"] = serde_json::json!({ "StringEquals": { "sts:ExternalId": id } });
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [assume, {
            "Sid": "SalesOperatorTagsSessions",
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": "sts:TagSession",
            "Condition": { "ForAllValues:StringEquals": { "aws:TagKeys": keys } }
        }]
    })
}

/// The operator's own policy when it acts through AwsIdentities: sts:AssumeRole and
/// sts:TagSession on their roles, nothing else (each role carries the pipeline permissions in
/// its own account).
pub fn assume_policy_document(roles: &[super::identity::RoleArn]) -> serde_json::Value {
    let resources: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SalesOperatorAssumesIdentities",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Resource": resources
        }]
    })
}

/// The role the operator creates for each pipeline live under this IAM path
/// ([`crate::names::ROLE_PATH`]), so its IAM rights are scoped to them.
pub const ROLE_RESOURCE: &str = "arn:aws:iam::*:role/sales-operator/*";

/// The services the pipeline roles are passed to (Pipes, Firehose, Glue crawler).
pub const PASSED_TO_SERVICES: &[&str] = &["firehose.amazonaws.com", "glue.amazonaws.com", "pipes.amazonaws.com"];

/// The IAM prefix of an SDK service name (`Metadata::service()`, as counted by
/// [`super::CallLog`]); `None` for a service the operator does not use.
pub fn iam_prefix(sdk_service: &str) -> Option<&'static str> {
    Some(match sdk_service {
        "DynamoDB" => "dynamodb",
        "Kinesis" => "kinesis",
        "Pipes" => "pipes",
        "S3" => "s3",
        "Firehose" => "firehose",
        "Glue" => "glue",
        "Athena" => "athena",
        "CloudWatch" => "cloudwatch",
        "IAM" => "iam",
        "Resource Groups Tagging API" => "tag",
        "SQS" => "sqs",
        "EventBridge" => "events",
        _ => return None,
    })
}

/// The IAM actions that authorise one SDK call. Most are `prefix:Operation`;
/// S3 names several differently. `None` for an unknown service.
pub fn iam_actions(sdk_service: &str, operation: &str) -> Option<Vec<String>> {
    let prefix = iam_prefix(sdk_service)?;
    let renamed: &[&str] = match (prefix, operation) {
        ("s3", "GetBucketEncryption") => &["s3:GetEncryptionConfiguration"],
        ("s3", "PutBucketEncryption") => &["s3:PutEncryptionConfiguration"],
        ("s3", "GetBucketLifecycleConfiguration") => &["s3:GetLifecycleConfiguration"],
        ("s3", "PutBucketLifecycleConfiguration") => &["s3:PutLifecycleConfiguration"],
        ("s3", "DeleteBucketLifecycle") => &["s3:PutLifecycleConfiguration"],
        ("s3", "GetPublicAccessBlock") => &["s3:GetBucketPublicAccessBlock"],
        ("s3", "PutPublicAccessBlock") => &["s3:PutBucketPublicAccessBlock"],
        ("s3", "HeadBucket") | ("s3", "ListObjectsV2") | ("s3", "ListObjects") => &["s3:ListBucket"],
        ("s3", "ListObjectVersions") => &["s3:ListBucketVersions"],
        ("s3", "DeleteObjects") => &["s3:DeleteObject", "s3:DeleteObjectVersion"],
        ("s3", "HeadObject") => &["s3:GetObject"],
        // SQS authorises its batch calls by their single action
        // (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api.html).
        ("sqs", "DeleteMessageBatch") => &["sqs:DeleteMessage"],
        ("sqs", "SendMessageBatch") => &["sqs:SendMessage"],
        ("sqs", "ChangeMessageVisibilityBatch") => &["sqs:ChangeMessageVisibility"],
        // Tags in the create call need the tagging permission too (documented for S3, Kinesis,
        // IAM and Firehose; required of every service here, so the policy suffices either way).
        ("s3", "CreateBucket") => &["s3:CreateBucket", "s3:TagResource"],
        ("kinesis", "CreateStream") => &["kinesis:CreateStream", "kinesis:AddTagsToStream"],
        ("dynamodb", "CreateTable") => &["dynamodb:CreateTable", "dynamodb:TagResource"],
        ("iam", "CreateRole") => &["iam:CreateRole", "iam:TagRole"],
        ("firehose", "CreateDeliveryStream") => &["firehose:CreateDeliveryStream", "firehose:TagDeliveryStream"],
        ("pipes", "CreatePipe") => &["pipes:CreatePipe", "pipes:TagResource"],
        ("athena", "CreateWorkGroup") => &["athena:CreateWorkGroup", "athena:TagResource"],
        ("glue", "CreateDatabase") => &["glue:CreateDatabase", "glue:TagResource"],
        ("glue", "CreateCrawler") => &["glue:CreateCrawler", "glue:TagResource"],
        _ => &[],
    };
    if renamed.is_empty() {
        Some(vec![format!("{prefix}:{operation}")])
    } else {
        Some(renamed.iter().map(|a| a.to_string()).collect())
    }
}

/// One SDK call that `allowed` does not authorise.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    pub service: String,
    pub operation: String,
    /// The IAM action it needs (`unknown service` when the service is not mapped).
    pub action: String,
}

/// The `(service, operation)` calls (as in [`super::CallLog::counts`]) whose IAM
/// actions are not all in `allowed`.
pub fn missing_actions<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str)>, allowed: &[&str]) -> Vec<Missing> {
    let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
    let mut missing = BTreeSet::new();
    for (service, operation) in calls {
        let needed = iam_actions(service, operation).unwrap_or_else(|| vec![format!("unknown service {service}")]);
        for action in needed.into_iter().filter(|a| !allowed.contains(a.as_str())) {
            missing.insert(Missing { service: service.to_string(), operation: operation.to_string(), action });
        }
    }
    missing.into_iter().collect()
}

/// Ownership tag the operator's policy conditions on: every resource a pipeline creates carries
/// it ([`super::TAG_MANAGED_BY`] = [`MANAGED_BY_VALUE`]).
pub const MANAGED_BY_VALUE: &str = "sales-operator";

/// The actions on existing resources the policy allows only on resources carrying the ownership
/// tag (`aws:ResourceTag/sales-operator.dev/managed-by`), because their service evaluates that
/// key for them (AWS's Service Authorization Reference; checked by tests/it/iam_policy.rs).
pub const OWNED_ACTIONS: &[&str] = &[
    "athena:CreateNamedQuery",
    "athena:DeleteNamedQuery",
    "athena:DeleteWorkGroup",
    "athena:TagResource",
    "athena:UpdateNamedQuery",
    "athena:UpdateWorkGroup",
    "dynamodb:DeleteTable",
    "dynamodb:TagResource",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateTable",
    "firehose:DeleteDeliveryStream",
    "firehose:TagDeliveryStream",
    "firehose:UpdateDestination",
    // On the database: a Glue table is authorised on its catalog, database and table, and only
    // the database carries tags.
    "glue:CreateTable",
    "glue:DeleteCrawler",
    "glue:DeleteDatabase",
    "glue:DeleteTable",
    "glue:StopCrawler",
    "glue:TagResource",
    "glue:UpdateCrawler",
    "glue:UpdateTable",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "kinesis:AddTagsToStream",
    "kinesis:DecreaseStreamRetentionPeriod",
    "kinesis:DeleteStream",
    "kinesis:IncreaseStreamRetentionPeriod",
    "kinesis:StartStreamEncryption",
    "pipes:DeletePipe",
    "pipes:StartPipe",
    "pipes:TagResource",
    "pipes:UpdatePipe",
];

/// The actions that create a resource (or tag one), allowed only when the request carries the
/// ownership tag with its value and a pipeline tag (`aws:RequestTag/...`). The tagging actions
/// are here too: a create call with tags is also authorised as the service's tagging action on
/// the new, still untagged resource, and adoption (`spec.adopt`) tags an existing untagged one.
pub const CREATE_ACTIONS: &[&str] = &[
    "athena:CreateWorkGroup",
    "athena:TagResource",
    "dynamodb:CreateTable",
    "dynamodb:TagResource",
    "firehose:CreateDeliveryStream",
    "firehose:TagDeliveryStream",
    "glue:CreateDatabase",
    "glue:TagResource",
    "iam:CreateRole",
    "iam:TagRole",
    "kinesis:AddTagsToStream",
    "kinesis:CreateStream",
    "pipes:CreatePipe",
    "pipes:TagResource",
    "s3:CreateBucket",
    "s3:TagResource",
];

/// Creation on `Resource: "*"`: the action supports no resource type (Glue crawlers are named
/// in the request only), still conditioned on the request's tags.
pub const CREATE_UNSCOPED_ACTIONS: &[&str] = &["glue:CreateCrawler"];

/// Changes the policy cannot condition on the ownership tag (docs/iam.md says why for each).
pub const UNCONDITIONED_ACTIONS: &[&str] = &[
    // On the catalog and table resources (which carry no tags); the database is in OWNED_ACTIONS.
    "glue:CreateTable",
    "glue:DeleteDatabase",
    "glue:DeleteTable",
    "glue:UpdateTable",
    // On the AWS-managed KMS key; the stream is in OWNED_ACTIONS.
    "kinesis:StartStreamEncryption",
    // S3 evaluates bucket tags only on buckets with ABAC enabled, which the operator does not do.
    "s3:DeleteBucket",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
];

/// Changes on `Resource: "*"` without condition: the reference lists neither a resource type
/// nor a condition key for them.
pub const UNSCOPED_ACTIONS: &[&str] = &["kinesis:UpdateShardCount", "kinesis:UpdateStreamMode", "tag:GetResources"];

/// The data health's metric reads (crate::dataflow). GetMetricData supports no resource type and
/// no condition key (Service Authorization Reference, Amazon CloudWatch), so it is granted on
/// `Resource: "*"`; it only reads. Its other read, ListObjectsV2 of the error prefix, is
/// `s3:ListBucket`, granted on the pipeline buckets with the other reads.
pub const DATA_HEALTH_ACTIONS: &[&str] = &["cloudwatch:GetMetricData"];

/// The statements' action groups besides the reads.
const GROUPS: [&[&str]; 6] = [
    OWNED_ACTIONS,
    CREATE_ACTIONS,
    CREATE_UNSCOPED_ACTIONS,
    UNCONDITIONED_ACTIONS,
    UNSCOPED_ACTIONS,
    DATA_HEALTH_ACTIONS,
];

/// Every other action of [`OPERATOR_ACTIONS`] only reads, on the pipeline resources' ARNs.
pub fn read_actions() -> Vec<&'static str> {
    let elsewhere: BTreeSet<&str> = GROUPS.concat().into_iter().collect();
    OPERATOR_ACTIONS.iter().copied().filter(|a| !elsewhere.contains(a)).collect()
}

/// The ARN patterns of the operator's policy: every resource type it acts on, narrowed to the
/// names that start with a prefix when one is given (see [`Arns::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arns {
    pub table: String,
    pub stream: String,
    pub kms_key: String,
    pub pipe: String,
    pub delivery: String,
    pub buckets: Vec<String>,
    pub objects: Vec<String>,
    pub glue_catalog: String,
    pub glue_database: String,
    pub glue_table: String,
    pub glue_function: String,
    pub crawler: String,
    pub workgroup: String,
    pub role: String,
}

/// Whether `prefix` is usable as `--name-prefix`: the alphabet and length of `spec.namePrefix`.
pub fn valid_name_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && prefix.len() <= crate::names::MAX_PREFIX
}

/// What every default bucket name of a pipeline whose `namePrefix` starts with `prefix` starts
/// with ([`crate::names::default_bucket`]: lower case, '-' for anything else, runs of '-'
/// collapsed, and `so-` in front of names S3 reserves).
pub fn bucket_prefixes(prefix: &str) -> Vec<String> {
    let mut base: String =
        prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let base = base.trim_start_matches('-').to_string();
    let reserved = ["xn-", "sthree"];
    if reserved.iter().any(|r| base.starts_with(r)) {
        vec![format!("so-{base}")]
    } else if reserved.iter().any(|r| r.starts_with(base.as_str())) {
        // Longer prefixes may or may not turn into a reserved name.
        vec![base.clone(), format!("so-{base}")]
    } else {
        vec![base]
    }
}

/// What every default Glue database name of such a pipeline starts with (`<prefix>_sales`, lower
/// case, '_' for '-').
pub fn database_prefix(prefix: &str) -> String {
    prefix.to_ascii_lowercase().replace('-', "_")
}

impl Arns {
    /// The patterns for the names starting with `name_prefix` (every name when `None`), in any
    /// region and account of the `aws` partition.
    pub fn new(name_prefix: Option<&str>) -> Self {
        let p = name_prefix.unwrap_or_default();
        let db = database_prefix(p);
        let buckets: Vec<String> = match name_prefix {
            Some(p) => bucket_prefixes(p),
            None => vec![String::new()],
        };
        Self {
            table: format!("arn:aws:dynamodb:*:*:table/{p}*"),
            stream: format!("arn:aws:kinesis:*:*:stream/{p}*"),
            kms_key: "arn:aws:kms:*:*:key/*".to_string(),
            pipe: format!("arn:aws:pipes:*:*:pipe/{p}*"),
            delivery: format!("arn:aws:firehose:*:*:deliverystream/{p}*"),
            objects: buckets.iter().map(|b| format!("arn:aws:s3:::{b}*/*")).collect(),
            buckets: buckets.iter().map(|b| format!("arn:aws:s3:::{b}*")).collect(),
            glue_catalog: "arn:aws:glue:*:*:catalog".to_string(),
            glue_database: format!("arn:aws:glue:*:*:database/{db}*"),
            glue_table: format!("arn:aws:glue:*:*:table/{db}*/*"),
            glue_function: format!("arn:aws:glue:*:*:userDefinedFunction/{db}*/*"),
            crawler: format!("arn:aws:glue:*:*:crawler/{p}*"),
            workgroup: format!("arn:aws:athena:*:*:workgroup/{p}*"),
            role: format!("arn:aws:iam::*:role{}{p}*", crate::names::ROLE_PATH),
        }
    }
}

/// The AWS names of a pipeline that the policy made with `--name-prefix prefix` does not cover
/// (a name set in the spec, or a `namePrefix` that does not start with it), as `what name`.
pub fn names_outside_prefix(names: &crate::names::Names, prefix: &str) -> Vec<String> {
    let mut outside = Vec::new();
    let mut check = |what: &str, name: &str, starts: &[String]| {
        if !starts.iter().any(|s| name.starts_with(s.as_str())) {
            outside.push(format!("{what} {name}"));
        }
    };
    let p = [prefix.to_string()];
    check("dynamodb table", &names.table, &p);
    check("kinesis stream", &names.stream, &p);
    check("pipe", &names.pipe, &p);
    check("firehose delivery stream", &names.delivery, &p);
    check("s3 bucket", &names.bucket, &bucket_prefixes(prefix));
    check("glue database", &names.database, &[database_prefix(prefix)]);
    check("glue crawler", &names.crawler, &p);
    check("athena workgroup", &names.workgroup, &p);
    for role in [&names.pipe_role, &names.firehose_role, &names.glue_role] {
        check("iam role", role, &p);
    }
    outside
}

/// `StringEquals aws:ResourceTag/<managed-by>`: the resource carries the ownership tag.
fn owned_condition() -> serde_json::Value {
    serde_json::json!({ "StringEquals": { format!("aws:ResourceTag/{}", super::TAG_MANAGED_BY): MANAGED_BY_VALUE } })
}

/// The request tags the resource with the ownership tag and a pipeline tag.
fn creating_condition() -> serde_json::Value {
    serde_json::json!({
        "StringEquals": { format!("aws:RequestTag/{}", super::TAG_MANAGED_BY): MANAGED_BY_VALUE },
        "Null": { format!("aws:RequestTag/{}", super::TAG_PIPELINE): "false" }
    })
}

fn statement(
    sid: &str,
    actions: &[&str],
    resources: Vec<String>,
    condition: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut actions = actions.to_vec();
    actions.sort();
    actions.dedup();
    let resource = match resources.as_slice() {
        [one] => serde_json::json!(one),
        _ => serde_json::json!(resources),
    };
    let mut s = serde_json::json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource });
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

/// The policy document of the operator's role, for every name ([`policy_document_for`] narrows it).
pub fn policy_document() -> serde_json::Value {
    policy_document_for(None)
}

/// The policy document of the operator's role, its ARN patterns narrowed to names starting with
/// `name_prefix` (`sales-operator iam-policy --name-prefix`).
pub fn policy_document_for(name_prefix: Option<&str>) -> serde_json::Value {
    policy_document_with(name_prefix, crate::names::DEFAULT_EVENTS_QUEUE)
}

/// [`policy_document_for`], reading change events from queue `events_queue`
/// (`iam-policy --events-queue`).
pub fn policy_document_with(name_prefix: Option<&str>, events_queue: &str) -> serde_json::Value {
    let a = Arns::new(name_prefix);
    let mut read = vec![a.table.clone(), a.stream.clone(), a.pipe.clone(), a.delivery.clone()];
    read.extend(a.buckets.iter().cloned());
    read.extend([
        a.glue_catalog.clone(),
        a.glue_database.clone(),
        a.glue_table.clone(),
        a.crawler.clone(),
        a.workgroup.clone(),
        a.role.clone(),
    ]);
    let owned = vec![
        a.table.clone(),
        a.stream.clone(),
        a.pipe.clone(),
        a.delivery.clone(),
        a.glue_database.clone(),
        a.crawler.clone(),
        a.workgroup.clone(),
        a.role.clone(),
    ];
    let mut create = vec![a.table.clone(), a.stream.clone(), a.pipe.clone(), a.delivery.clone()];
    create.extend(a.buckets.iter().cloned());
    create.extend([
        a.glue_catalog.clone(),
        a.glue_database.clone(),
        a.crawler.clone(),
        a.workgroup.clone(),
        a.role.clone(),
    ]);
    let mut unconditioned = a.buckets.clone();
    unconditioned.extend(a.objects.iter().cloned());
    unconditioned.extend([a.glue_catalog.clone(), a.glue_table.clone(), a.glue_function.clone(), a.kms_key.clone()]);
    let mut pass = owned_condition();
    pass["StringEquals"]["iam:PassedToService"] = serde_json::json!(PASSED_TO_SERVICES);
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            statement("ReadPipelineResources", &read_actions(), read, None),
            statement("CreateTaggedResources", CREATE_ACTIONS, create, Some(creating_condition())),
            statement("CreateTaggedCrawlers", CREATE_UNSCOPED_ACTIONS, vec!["*".into()], Some(creating_condition())),
            statement("ChangeOwnedResources", OWNED_ACTIONS, owned, Some(owned_condition())),
            statement("ChangeUntaggableOrUnconditionable", UNCONDITIONED_ACTIONS, unconditioned, None),
            statement("UnscopedActions", UNSCOPED_ACTIONS, vec!["*".into()], None),
            statement("ReadDataHealthMetrics", DATA_HEALTH_ACTIONS, vec!["*".into()], None),
            statement("PassOwnedPipelineRoles", &["iam:PassRole"], vec![a.role.clone()], Some(pass)),
            statement("ReadChangeEvents", CHANGE_EVENT_ACTIONS, vec![queue_arn(events_queue)], None),
        ]
    })
}

/// [`policy_document`] as pretty JSON, newline-terminated.
pub fn policy_json() -> String {
    policy_json_for(None)
}

/// [`policy_document_for`] as pretty JSON, newline-terminated.
pub fn policy_json_for(name_prefix: Option<&str>) -> String {
    policy_json_with(name_prefix, crate::names::DEFAULT_EVENTS_QUEUE)
}

/// [`policy_document_with`] as pretty JSON, newline-terminated.
pub fn policy_json_with(name_prefix: Option<&str>, events_queue: &str) -> String {
    let mut text = serde_json::to_string_pretty(&policy_document_with(name_prefix, events_queue)).unwrap_or_default();
    text.push('\n');
    text
}

/// Start and end markers of the generated part of docs/iam.md.
pub const DOC_BEGIN: &str = "<!-- BEGIN GENERATED: sales-operator iam-policy (scripts/gen-iam-doc.sh) -->";
pub const DOC_END: &str = "<!-- END GENERATED -->";

/// The condition of a statement, in words (docs/iam.md).
fn condition_words(statement: &serde_json::Value) -> String {
    let Some(condition) = statement.get("Condition") else {
        return "none".to_string();
    };
    let mut words = Vec::new();
    if let Some(map) = condition.as_object() {
        for (op, keys) in map {
            for (key, value) in keys.as_object().into_iter().flatten() {
                let value = match value {
                    serde_json::Value::Array(v) => v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" or "),
                    v => v.as_str().unwrap_or_default().to_string(),
                };
                words.push(match op.as_str() {
                    "Null" if value == "false" => format!("`{key}` present"),
                    _ => format!("`{key}` = `{value}`"),
                });
            }
        }
    }
    words.join(", ")
}

fn list_of(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Array(v) => v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        v => v.as_str().map(str::to_string).into_iter().collect(),
    }
}

/// The generated part of docs/iam.md (between [`DOC_BEGIN`] and [`DOC_END`]).
pub fn doc_section() -> String {
    let mut out = String::new();
    out.push_str(&format!("{DOC_BEGIN}\n\n```json\n{}```\n\n", policy_json()));
    out.push_str("| statement | condition | actions | resources |\n|---|---|---|---|\n");
    for s in policy_document()["Statement"].as_array().into_iter().flatten() {
        let actions = list_of(&s["Action"]).join(", ");
        let resources: Vec<String> = list_of(&s["Resource"]).iter().map(|r| format!("`{r}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {actions} | {} |\n",
            s["Sid"].as_str().unwrap_or_default(),
            condition_words(s),
            resources.join(" ")
        ));
    }
    out.push_str(&format!("\n{DOC_END}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_resource_is_the_pipeline_roles_path() {
        assert_eq!(ROLE_RESOURCE, format!("arn:aws:iam::*:role{}*", crate::names::ROLE_PATH));
    }

    #[test]
    fn actions_are_sorted_and_unique() {
        let mut sorted = OPERATOR_ACTIONS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, OPERATOR_ACTIONS);
    }

    #[test]
    fn s3_operations_map_to_their_iam_action_names() {
        assert_eq!(iam_actions("S3", "GetBucketEncryption").unwrap(), ["s3:GetEncryptionConfiguration"]);
        assert_eq!(iam_actions("S3", "HeadBucket").unwrap(), ["s3:ListBucket"]);
        assert_eq!(iam_actions("S3", "DeleteObjects").unwrap(), ["s3:DeleteObject", "s3:DeleteObjectVersion"]);
        assert_eq!(iam_actions("S3", "PutBucketTagging").unwrap(), ["s3:PutBucketTagging"]);
        assert_eq!(
            iam_actions("Firehose", "ListTagsForDeliveryStream").unwrap(),
            ["firehose:ListTagsForDeliveryStream"]
        );
        assert_eq!(iam_actions("DynamoDB", "DescribeTable").unwrap(), ["dynamodb:DescribeTable"]);
        assert_eq!(iam_actions("EC2", "RunInstances"), None);
    }

    #[test]
    fn a_list_missing_one_action_fails_the_check() {
        let calls = [("DynamoDB", "CreateTable"), ("S3", "DeleteObjects"), ("Kinesis", "UpdateShardCount")];
        assert_eq!(missing_actions(calls, OPERATOR_ACTIONS), vec![]);
        let without: Vec<&str> = OPERATOR_ACTIONS.iter().copied().filter(|a| *a != "s3:DeleteObjectVersion").collect();
        assert_eq!(
            missing_actions(calls, &without),
            vec![Missing {
                service: "S3".into(),
                operation: "DeleteObjects".into(),
                action: "s3:DeleteObjectVersion".into()
            }]
        );
        let unknown = missing_actions([("EC2", "RunInstances")], OPERATOR_ACTIONS);
        assert_eq!(unknown[0].action, "unknown service EC2");
    }

    fn statements(doc: &serde_json::Value) -> Vec<serde_json::Value> {
        doc["Statement"].as_array().unwrap().clone()
    }

    #[test]
    fn every_operator_action_is_granted_by_one_group_and_reads_only_read() {
        let granted: BTreeSet<&str> = GROUPS.concat().into_iter().chain(read_actions()).collect();
        assert_eq!(granted, OPERATOR_ACTIONS.iter().copied().collect::<BTreeSet<_>>());
        for group in [OWNED_ACTIONS, CREATE_ACTIONS, UNCONDITIONED_ACTIONS, UNSCOPED_ACTIONS] {
            let mut sorted = group.to_vec();
            sorted.sort();
            assert_eq!(sorted, group);
        }
        for action in read_actions() {
            let op = action.split(':').nth(1).unwrap();
            assert!(crate::aws::calls::is_read_operation(op), "{action} is not a read");
        }
        // What changes an existing resource is in exactly one of: owned, unconditioned, unscoped,
        // or it is a tagging action (owned and create).
        for action in OWNED_ACTIONS {
            assert!(!UNSCOPED_ACTIONS.contains(action));
        }
    }

    #[test]
    fn the_policy_scopes_roles_to_the_operator_path_and_passes_them_to_three_services_only() {
        let doc = policy_document();
        let all = statements(&doc);
        let pass = all.iter().find(|s| s["Action"] == serde_json::json!(["iam:PassRole"])).unwrap();
        assert_eq!(pass["Resource"], ROLE_RESOURCE);
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"].as_array().unwrap().len(), 3);
        assert_eq!(
            pass["Condition"]["StringEquals"]["aws:ResourceTag/sales-operator.dev/managed-by"],
            "sales-operator"
        );
        for s in &all {
            for action in list_of(&s["Action"]).iter().filter(|a| a.starts_with("iam:")) {
                assert!(list_of(&s["Resource"]).contains(&ROLE_RESOURCE.to_string()), "{action} in {s}");
            }
        }
    }

    #[test]
    fn owned_and_create_statements_carry_the_ownership_condition() {
        let doc = policy_document();
        let all = statements(&doc);
        let by_sid = |sid: &str| all.iter().find(|s| s["Sid"] == sid).unwrap().clone();
        let owned = by_sid("ChangeOwnedResources");
        assert_eq!(owned["Condition"], owned_condition());
        assert_eq!(list_of(&owned["Action"]), OWNED_ACTIONS);
        for sid in ["CreateTaggedResources", "CreateTaggedCrawlers"] {
            let c = &by_sid(sid)["Condition"];
            assert_eq!(c["StringEquals"]["aws:RequestTag/sales-operator.dev/managed-by"], "sales-operator");
            assert_eq!(c["Null"]["aws:RequestTag/sales-operator.dev/pipeline"], "false");
        }
        // Only actions that support no resource type are granted on "*".
        for s in all.iter().filter(|s| s["Resource"] == "*") {
            let actions = list_of(&s["Action"]);
            assert!(
                actions.iter().all(|a| [UNSCOPED_ACTIONS, CREATE_UNSCOPED_ACTIONS, DATA_HEALTH_ACTIONS]
                    .concat()
                    .contains(&a.as_str())),
                "{s}"
            );
        }
    }

    #[test]
    fn a_name_prefix_narrows_every_named_arn() {
        let wide = policy_json();
        let narrow = policy_json_for(Some("Shop-"));
        let count = |text: &str, pattern: &str| text.matches(pattern).count();
        assert_eq!(count(&narrow, "dynamodb:*:*:table/Shop-*"), count(&wide, "dynamodb:*:*:table/*"), "{narrow}");
        for (wide_arn, narrow_arn) in [
            ("stream/*", "stream/Shop-*"),
            ("pipe/*", "pipe/Shop-*"),
            ("deliverystream/*", "deliverystream/Shop-*"),
            ("crawler/*", "crawler/Shop-*"),
            ("workgroup/*", "workgroup/Shop-*"),
            ("role/sales-operator/*", "role/sales-operator/Shop-*"),
            ("database/*", "database/shop_*"),
            ("glue:*:*:table/*/*", "glue:*:*:table/shop_*/*"),
            ("arn:aws:s3:::*\"", "arn:aws:s3:::shop-*\""),
        ] {
            assert!(count(&wide, wide_arn) > 0, "{wide_arn}");
            assert_eq!(count(&narrow, narrow_arn), count(&wide, wide_arn), "{narrow_arn}");
        }
        // Not named after the pipeline: the root catalog, the AWS-managed key, and "*".
        assert!(narrow.contains("\"arn:aws:glue:*:*:catalog\"") && narrow.contains("arn:aws:kms:*:*:key/*"));
    }

    #[test]
    fn bucket_and_database_prefixes_follow_the_default_names() {
        assert_eq!(bucket_prefixes("Shop--Sales"), ["shop-sales"]);
        assert_eq!(bucket_prefixes("xn-a"), ["so-xn-a"]);
        assert_eq!(bucket_prefixes("st"), ["st", "so-st"]);
        assert_eq!(database_prefix("Shop-Sales"), "shop_sales");
        // Every default name of a pipeline whose namePrefix starts with the prefix is covered.
        for (policy, pipeline) in
            [("shop", "shop-sales"), ("Shop-", "Shop-Sales"), ("x", "xn-orders"), ("st", "sthree-x"), ("a1", "a1")]
        {
            let spec = crate::api::SalesPipelineSpec { name_prefix: Some(pipeline.into()), ..Default::default() };
            let names = crate::names::Names::derive("ns", "name", &spec, "eu-west-1");
            assert_eq!(names_outside_prefix(&names, policy), Vec::<String>::new(), "{policy} {pipeline}: {names:?}");
        }
        let mut spec = crate::api::SalesPipelineSpec { name_prefix: Some("shop-sales".into()), ..Default::default() };
        spec.table.name = Some("orders".into());
        let names = crate::names::Names::derive("ns", "name", &spec, "eu-west-1");
        assert_eq!(names_outside_prefix(&names, "shop"), ["dynamodb table orders"]);
        assert_eq!(names_outside_prefix(&names, "other").len(), 11);
    }

    #[test]
    fn change_events_are_read_from_the_one_queue_only() {
        let doc = policy_document_for(Some("shop-"));
        let all = statements(&doc);
        let read = all.iter().find(|s| s["Sid"] == "ReadChangeEvents").unwrap();
        assert_eq!(list_of(&read["Action"]), CHANGE_EVENT_ACTIONS);
        assert_eq!(read["Resource"], "arn:aws:sqs:*:*:sales-operator-change-events");
        assert!(read.get("Condition").is_none());
        let other = policy_document_with(None, "team-a-events");
        assert!(statements(&other).iter().any(|s| s["Resource"] == "arn:aws:sqs:*:*:team-a-events"));
        for s in &all {
            let sqs = list_of(&s["Action"]).iter().any(|a| a.starts_with("sqs:"));
            assert_eq!(sqs, s["Sid"] == "ReadChangeEvents", "{s}");
        }
        let setup = events_setup_policy_document("q");
        assert_eq!(setup["Statement"][0]["Resource"], "arn:aws:sqs:*:*:q");
        assert_eq!(setup["Statement"][1]["Resource"], "arn:aws:events:*:*:rule/q-*");
        for group in [CHANGE_EVENT_ACTIONS, EVENTS_SETUP_QUEUE_ACTIONS, EVENTS_SETUP_RULE_ACTIONS] {
            let mut sorted = group.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, group);
        }
    }

    #[test]
    fn name_prefixes_are_the_name_prefix_alphabet() {
        assert!(valid_name_prefix("shop-") && valid_name_prefix("A1"));
        for bad in ["", "-shop", "shop_", "a*", &"x".repeat(41)] {
            assert!(!valid_name_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn the_policy_fits_in_a_managed_policy_even_with_the_longest_prefix() {
        // IAM counts a managed policy's characters without white space: at most 6,144.
        let longest = "p".repeat(crate::names::MAX_PREFIX);
        let queue = "q".repeat(crate::names::MAX_EVENTS_QUEUE);
        for prefix in [None, Some(longest.as_str())] {
            let compact = serde_json::to_string(&policy_document_with(prefix, &queue)).unwrap();
            assert!(compact.len() <= 6144, "{} characters with prefix {prefix:?}", compact.len());
        }
    }
}
