//! The IAM roles EventBridge Pipes, Firehose and the Glue crawler assume, each
//! with one inline least-privilege policy scoped to this pipeline's ARNs.
//!
//! With `spec.iam.createRoles: false` the user's roles are used as given: no
//! role is created, changed or deleted, and no IAM call is made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_iam::types::Tag;
use serde_json::{json, Value};

use super::error::{absent_if_not_found, ok_if_not_found};
use super::{
    compare_tags, known, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field,
    PipelineCtx, Refs, TAG_PIPELINE,
};
use crate::api::{CatalogMode, Encryption, RolesStatus, SalesPipelineStatus};
use crate::names::ROLE_PATH;

/// What a role is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolePurpose {
    /// Assumed by EventBridge Pipes: reads the table's stream, writes to Kinesis.
    Pipe,
    /// Assumed by Firehose: reads Kinesis, writes to S3.
    Firehose,
    /// Assumed by the Glue crawler: reads S3, writes the Data Catalog.
    Glue,
}

impl RolePurpose {
    /// The service principal that assumes the role.
    pub fn service(self) -> &'static str {
        match self {
            RolePurpose::Pipe => "pipes.amazonaws.com",
            RolePurpose::Firehose => "firehose.amazonaws.com",
            RolePurpose::Glue => "glue.amazonaws.com",
        }
    }

    /// Prefix of the role's fields in a change (`pipeRole.policy`).
    fn field(self) -> &'static str {
        match self {
            RolePurpose::Pipe => "pipeRole",
            RolePurpose::Firehose => "firehoseRole",
            RolePurpose::Glue => "glueRole",
        }
    }

    fn description(self) -> &'static str {
        match self {
            RolePurpose::Pipe => {
                "sales-operator: lets EventBridge Pipes read the orders table stream and write to Kinesis"
            }
            RolePurpose::Firehose => "sales-operator: lets Firehose read the orders Kinesis stream and write to S3",
            RolePurpose::Glue => {
                "sales-operator: lets the Glue crawler read the delivered orders and update the catalog"
            }
        }
    }
}

/// Role ARNs by purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleArns {
    pub pipe: Option<String>,
    pub firehose: Option<String>,
    pub glue: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRole {
    pub purpose: RolePurpose,
    pub name: String,
    pub path: String,
    pub trust_policy: Value,
    pub policy_name: String,
    pub policy: Value,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRoles {
    /// Roles the operator manages; empty when `spec.iam.createRoles` is false.
    pub roles: Vec<DesiredRole>,
    /// Roles this pipeline created before and no longer needs (the Glue role
    /// once the catalog leaves Crawler mode): deleted when found with this pipeline's tag.
    pub retired: Vec<DesiredRole>,
    /// The user's roles (`spec.iam.*RoleArn`) when `createRoles` is false.
    pub given: Option<RoleArns>,
    /// Whether a Glue role is needed (Crawler mode).
    pub glue: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRole {
    pub purpose: RolePurpose,
    pub name: String,
    pub arn: String,
    /// Parsed (and URL-decoded) trust policy.
    pub trust_policy: Value,
    pub policy_name: String,
    /// The inline policy, `None` when absent.
    pub policy: Option<Value>,
    pub tags: BTreeMap<String, String>,
    /// When it was created or last had a policy written (by this process), whichever is later:
    /// what IAM propagation is timed from.
    pub changed_at: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRoles {
    /// Managed roles that exist.
    pub roles: Vec<ObservedRole>,
    /// Roles no longer needed that still exist.
    pub retired: Vec<ObservedRole>,
    /// The user's roles when `createRoles` is false.
    pub given: Option<RoleArns>,
    /// What is not there yet, one phrase each (roles not created, ARNs not given).
    pub missing: Vec<String>,
}

/// When this process last wrote each role (created it, or put one of its policies). IAM is
/// eventually consistent: services refuse a role for seconds after such a write, and GetRole
/// reports only the creation date.
#[derive(Clone, Debug, Default)]
pub struct RoleWrites(Arc<Mutex<HashMap<String, SystemTime>>>);

impl RoleWrites {
    fn record(&self, role: &str) {
        if let Ok(mut writes) = self.0.lock() {
            writes.insert(role.to_string(), SystemTime::now());
        }
    }

    fn last(&self, role: &str) -> Option<SystemTime> {
        self.0.lock().ok().and_then(|writes| writes.get(role).copied())
    }
}

impl ObservedRoles {
    /// The ARNs downstream components use: the user's, or the observed roles'.
    pub fn arns(&self) -> RoleArns {
        if let Some(given) = &self.given {
            return given.clone();
        }
        let arn = |p: RolePurpose| self.roles.iter().find(|r| r.purpose == p).map(|r| r.arn.clone());
        RoleArns { pipe: arn(RolePurpose::Pipe), firehose: arn(RolePurpose::Firehose), glue: arn(RolePurpose::Glue) }
    }

    /// The latest change of any managed role.
    pub fn changed_at(&self) -> Option<SystemTime> {
        self.roles.iter().filter_map(|r| r.changed_at).max()
    }
}

/// IAM calls of this component, and this process's record of its role writes.
pub struct Roles<'a>(pub &'a aws_sdk_iam::Client, pub &'a RoleWrites);

fn trust_policy(purpose: RolePurpose, account: Option<&str>) -> Value {
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "Service": purpose.service() },
        "Action": "sts:AssumeRole",
    });
    // Confused-deputy protection: only this account's pipes/streams/crawlers may assume it.
    if let Some(account) = account {
        statement["Condition"] = json!({ "StringEquals": { "aws:SourceAccount": account } });
    }
    json!({ "Version": "2012-10-17", "Statement": [statement] })
}

fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn policy(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn pipe_policy(refs: &Refs) -> Value {
    policy(vec![
        allow(
            "ReadTableStream",
            &["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            vec![known(&refs.table_stream_arn)],
        ),
        // ListStreams supports no resource type: granted on a stream ARN it is void.
        allow("ListTableStreams", &["dynamodb:ListStreams"], vec!["*".to_string()]),
        allow("WriteKinesis", &["kinesis:PutRecord", "kinesis:PutRecords"], vec![known(&refs.stream_arn)]),
    ])
}

fn firehose_policy(ctx: &PipelineCtx, refs: &Refs) -> Value {
    let bucket = known(&refs.bucket_arn);
    let mut statements = vec![
        allow(
            "ReadKinesis",
            &[
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetShardIterator",
                "kinesis:GetRecords",
                "kinesis:ListShards",
            ],
            vec![known(&refs.stream_arn)],
        ),
        allow(
            "WriteBucket",
            &[
                "s3:AbortMultipartUpload",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:ListBucketMultipartUploads",
                "s3:PutObject",
            ],
            vec![bucket.clone(), format!("{bucket}/*")],
        ),
    ];
    let b = &ctx.spec.bucket;
    if let (Encryption::SseKms, Some(key)) = (b.encryption, &b.kms_key_arn) {
        statements.push(allow("EncryptObjects", &["kms:GenerateDataKey", "kms:Decrypt"], vec![key.clone()]));
    }
    policy(statements)
}

fn glue_policy(ctx: &PipelineCtx, refs: &Refs) -> Value {
    let partition = refs.partition.as_deref().unwrap_or("aws");
    let (region, account, db) = (&ctx.region, known(&refs.account), &ctx.names.database);
    let glue = format!("arn:{partition}:glue:{region}:{account}");
    let bucket = known(&refs.bucket_arn);
    policy(vec![
        allow("ReadBucket", &["s3:GetObject", "s3:ListBucket"], vec![bucket.clone(), format!("{bucket}/*")]),
        allow(
            "WriteCatalog",
            &[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:CreateTable",
                "glue:UpdateTable",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchCreatePartition",
                "glue:BatchGetPartition",
                "glue:CreatePartition",
                "glue:UpdatePartition",
            ],
            vec![format!("{glue}:catalog"), format!("{glue}:database/{db}"), format!("{glue}:table/{db}/*")],
        ),
        allow(
            "WriteCrawlerLogs",
            &["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            vec![format!("arn:{partition}:logs:{region}:{account}:log-group:/aws-glue/crawlers*")],
        ),
    ])
}

/// Decodes `%XX` escapes (IAM returns policy documents URL-encoded, RFC 3986: `+` is literal).
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A policy document as IAM returns it: URL-encoded JSON (or plain JSON from
/// some emulators). What does not parse is kept as a string, so it differs.
fn parse_policy(document: &str) -> Value {
    serde_json::from_str(document)
        .ok()
        .or_else(|| percent_decode(document).and_then(|d| serde_json::from_str(&d).ok()))
        .unwrap_or_else(|| Value::String(document.to_string()))
}

/// Makes equivalent documents equal: a single `Statement`, `Action`, `Resource`
/// or principal may be written as a one-element list.
fn normalise(v: &Value) -> Value {
    const LISTS: &[&str] = &["Action", "NotAction", "Resource", "NotResource", "Service", "AWS", "Federated"];
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), normalise(v)) {
                        ("Statement", one @ Value::Object(_)) => Value::Array(vec![one]),
                        (key, one @ Value::String(_)) if LISTS.contains(&key) => Value::Array(vec![one]),
                        (_, other) => other,
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn same_policy(observed: &Value, desired: &Value) -> bool {
    normalise(observed) == normalise(desired)
}

fn policy_change(field: RoleField, observed: Option<&Value>, desired: &Value) -> Diff<RoleField> {
    Diff::new(field, observed.map(Value::to_string).unwrap_or_else(|| "absent".to_string()), desired.to_string())
}

/// What can differ on the managed roles, per role; all of it is changed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleField {
    /// The role is missing: created (`pipeRole`: absent -> present).
    Missing(RolePurpose),
    /// A role the spec no longer needs: deleted (`glueRole`: present -> absent).
    Retired(RolePurpose),
    TrustPolicy(RolePurpose),
    Policy(RolePurpose),
    Tags(RolePurpose),
}

impl Field for RoleField {
    fn name(&self) -> String {
        match *self {
            RoleField::Missing(role) | RoleField::Retired(role) => role.field().to_string(),
            RoleField::TrustPolicy(role) => format!("{}.trustPolicy", role.field()),
            RoleField::Policy(role) => format!("{}.policy", role.field()),
            RoleField::Tags(role) => format!("{}.tags", role.field()),
        }
    }
}

fn iam_tags(tags: &BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(|e| AwsError::permanent(operation, e.to_string())))
        .collect()
}

impl Roles<'_> {
    async fn observe_role(&self, r: &DesiredRole) -> Result<Option<ObservedRole>, AwsError> {
        let out = absent_if_not_found(self.0.get_role().role_name(&r.name).send().await.aws("GetRole"))?;
        let Some(role) = out.and_then(|o| o.role) else {
            return Ok(None);
        };
        let policy = absent_if_not_found(
            self.0.get_role_policy().role_name(&r.name).policy_name(&r.policy_name).send().await.aws("GetRolePolicy"),
        )?;
        Ok(Some(ObservedRole {
            purpose: r.purpose,
            name: r.name.clone(),
            arn: role.arn,
            trust_policy: role.assume_role_policy_document.as_deref().map(parse_policy).unwrap_or(Value::Null),
            policy_name: r.policy_name.clone(),
            policy: policy.map(|p| parse_policy(&p.policy_document)),
            tags: role.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
            changed_at: SystemTime::try_from(role.create_date).ok().max(self.1.last(&r.name)),
        }))
    }

    async fn create_role(&self, r: &DesiredRole) -> Result<(), AwsError> {
        let created = self
            .0
            .create_role()
            .role_name(&r.name)
            .path(&r.path)
            .description(r.purpose.description())
            .assume_role_policy_document(r.trust_policy.to_string())
            .set_tags(Some(iam_tags(&r.tags, "CreateRole")?))
            .send()
            .await
            .aws("CreateRole");
        self.1.record(&r.name);
        // EntityAlreadyExists: a role of that name appeared since the observe; the reconciler
        // judges its ownership before changing anything (a crash after an earlier CreateRole
        // leaves a role the observe finds, tagged as ours in the create call).
        created?;
        self.put_policy(r).await
    }

    async fn put_trust_policy(&self, r: &DesiredRole) -> Result<(), AwsError> {
        self.0
            .update_assume_role_policy()
            .role_name(&r.name)
            .policy_document(r.trust_policy.to_string())
            .send()
            .await
            .aws("UpdateAssumeRolePolicy")?;
        self.1.record(&r.name);
        Ok(())
    }

    async fn put_policy(&self, r: &DesiredRole) -> Result<(), AwsError> {
        self.0
            .put_role_policy()
            .role_name(&r.name)
            .policy_name(&r.policy_name)
            .policy_document(r.policy.to_string())
            .send()
            .await
            .aws("PutRolePolicy")?;
        self.1.record(&r.name);
        Ok(())
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        self.0.tag_role().role_name(name).set_tags(Some(iam_tags(tags, "TagRole")?)).send().await.aws("TagRole")?;
        Ok(())
    }

    /// Deletes the inline policy, then the role; either already gone is fine.
    async fn delete_role(&self, name: &str, policy_name: &str) -> Result<(), AwsError> {
        ok_if_not_found(
            self.0.delete_role_policy().role_name(name).policy_name(policy_name).send().await.aws("DeleteRolePolicy"),
        )?;
        ok_if_not_found(self.0.delete_role().role_name(name).send().await.aws("DeleteRole"))
    }
}

impl Component for Roles<'_> {
    type Desired = DesiredRoles;
    type Observed = ObservedRoles;
    type Field = RoleField;
    const KIND: ComponentKind = ComponentKind::Iam;

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> DesiredRoles {
        let iam = &ctx.spec.iam;
        let glue = ctx.spec.catalog.mode == CatalogMode::Crawler;
        if !iam.create_roles {
            let given = RoleArns {
                pipe: iam.pipe_role_arn.clone(),
                firehose: iam.firehose_role_arn.clone(),
                glue: iam.glue_role_arn.clone().filter(|_| glue),
            };
            return DesiredRoles { roles: Vec::new(), retired: Vec::new(), given: Some(given), glue };
        }
        let n = &ctx.names;
        let role = |purpose, name: &str, policy_name: &str, policy| DesiredRole {
            purpose,
            name: name.to_string(),
            path: ROLE_PATH.to_string(),
            trust_policy: trust_policy(purpose, refs.account.as_deref()),
            policy_name: policy_name.to_string(),
            policy,
            tags: ctx.tags.clone(),
        };
        let mut roles = vec![
            role(RolePurpose::Pipe, &n.pipe_role, &n.pipe_policy, pipe_policy(refs)),
            role(RolePurpose::Firehose, &n.firehose_role, &n.firehose_policy, firehose_policy(ctx, refs)),
        ];
        let glue_role = role(RolePurpose::Glue, &n.glue_role, &n.glue_policy, glue_policy(ctx, refs));
        let mut retired = Vec::new();
        if glue {
            roles.push(glue_role);
        } else if ctx.sweep {
            retired.push(glue_role);
        }
        DesiredRoles { roles, retired, given: None, glue }
    }

    fn resource_name(d: &DesiredRoles) -> String {
        if d.roles.is_empty() {
            return "iam roles (given in spec.iam)".to_string();
        }
        format!("iam roles {}", d.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "))
    }

    async fn observe(&self, d: &DesiredRoles) -> Result<Option<ObservedRoles>, AwsError> {
        if let Some(given) = &d.given {
            let mut missing = Vec::new();
            if d.glue && given.glue.is_none() {
                missing.push(
                    "spec.iam.glueRoleArn is not set (the crawler needs a role when createRoles is false)".to_string(),
                );
            }
            return Ok(Some(ObservedRoles {
                roles: Vec::new(),
                retired: Vec::new(),
                given: Some(given.clone()),
                missing,
            }));
        }
        let (mut roles, mut missing, mut retired) = (Vec::new(), Vec::new(), Vec::new());
        for r in &d.roles {
            match self.observe_role(r).await? {
                Some(o) => roles.push(o),
                None => missing.push(format!("role {} does not exist", r.name)),
            }
        }
        for r in &d.retired {
            // Only a role this pipeline tagged as its own is ever removed.
            if let Some(o) =
                self.observe_role(r).await?.filter(|o| o.tags.get(TAG_PIPELINE) == r.tags.get(TAG_PIPELINE))
            {
                retired.push(o);
            }
        }
        if roles.is_empty() && retired.is_empty() {
            return Ok(None);
        }
        Ok(Some(ObservedRoles { roles, retired, given: None, missing }))
    }

    fn diff(d: &DesiredRoles, o: &ObservedRoles) -> Vec<Diff<RoleField>> {
        let mut changes = Vec::new();
        for r in &d.roles {
            let Some(found) = o.roles.iter().find(|x| x.name == r.name) else {
                changes.push(Diff::new(RoleField::Missing(r.purpose), "absent", "present"));
                continue;
            };
            if !same_policy(&found.trust_policy, &r.trust_policy) {
                let field = RoleField::TrustPolicy(r.purpose);
                changes.push(policy_change(field, Some(&found.trust_policy), &r.trust_policy));
            }
            if !found.policy.as_ref().is_some_and(|p| same_policy(p, &r.policy)) {
                changes.push(policy_change(RoleField::Policy(r.purpose), found.policy.as_ref(), &r.policy));
            }
            compare_tags(&mut changes, RoleField::Tags(r.purpose), &r.tags, &found.tags);
        }
        for r in &o.retired {
            changes.push(Diff::new(RoleField::Retired(r.purpose), "present", "absent"));
        }
        changes
    }

    async fn create(&self, d: &DesiredRoles) -> Result<(), AwsError> {
        for r in &d.roles {
            self.create_role(r).await?;
        }
        Ok(())
    }

    async fn update(&self, d: &DesiredRoles, o: &ObservedRoles, changes: &[Diff<RoleField>]) -> Result<(), AwsError> {
        let desired = |purpose: RolePurpose| d.roles.iter().find(|r| r.purpose == purpose);
        for change in changes {
            match change.field {
                RoleField::Missing(purpose) => {
                    if let Some(r) = desired(purpose) {
                        self.create_role(r).await?;
                    }
                }
                RoleField::TrustPolicy(purpose) => {
                    if let Some(r) = desired(purpose) {
                        self.put_trust_policy(r).await?;
                    }
                }
                RoleField::Policy(purpose) => {
                    if let Some(r) = desired(purpose) {
                        self.put_policy(r).await?;
                    }
                }
                RoleField::Tags(purpose) => {
                    if let Some(r) = desired(purpose) {
                        let observed =
                            o.roles.iter().find(|x| x.name == r.name).map(|x| x.tags.clone()).unwrap_or_default();
                        self.tag_role(&r.name, &missing_tags(&r.tags, &observed)).await?;
                    }
                }
                RoleField::Retired(purpose) => {
                    if let Some(r) = o.retired.iter().find(|r| r.purpose == purpose) {
                        self.delete_role(&r.name, &r.policy_name).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the operator's roles (never the user's given ones).
    async fn delete(&self, o: &ObservedRoles) -> Result<(), AwsError> {
        for r in o.roles.iter().chain(&o.retired) {
            self.delete_role(&r.name, &r.policy_name).await?;
        }
        Ok(())
    }

    fn claims(o: &ObservedRoles) -> Vec<Claim<'_>> {
        o.roles.iter().chain(&o.retired).map(|r| Claim::new(format!("iam role {}", r.name), &r.tags)).collect()
    }

    fn publish(o: &ObservedRoles, refs: &mut Refs) {
        let arns = o.arns();
        for arn in [&arns.pipe, &arns.firehose, &arns.glue].into_iter().flatten() {
            refs.learn_account(arn);
        }
        refs.pipe_role_arn = arns.pipe;
        refs.firehose_role_arn = arns.firehose;
        refs.glue_role_arn = arns.glue;
        refs.roles_changed_at = o.changed_at();
    }

    fn report(o: &ObservedRoles, status: &mut SalesPipelineStatus) {
        let arns = o.arns();
        status.roles = Some(RolesStatus { pipe: arns.pipe, firehose: arns.firehose, glue: arns.glue });
    }

    fn readiness(o: &ObservedRoles) -> Result<(), String> {
        if o.missing.is_empty() {
            Ok(())
        } else {
            Err(o.missing.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    const ACCOUNT: &str = "123456789012";
    const TABLE_STREAM: &str =
        "arn:aws:dynamodb:eu-west-1:123456789012:table/shop-sales-orders/stream/2026-01-01T00:00:00.000";
    const STREAM: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/shop-sales-orders";
    const BUCKET: &str = "arn:aws:s3:::shop-sales-1234abcd";

    fn refs() -> Refs {
        Refs {
            partition: Some("aws".into()),
            account: Some(ACCOUNT.into()),
            table_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/shop-sales-orders".into()),
            table_stream_arn: Some(TABLE_STREAM.into()),
            stream_arn: Some(STREAM.into()),
            bucket_arn: Some(BUCKET.into()),
            ..Refs::default()
        }
    }

    fn desired_for(spec: &SalesPipelineSpec) -> DesiredRoles {
        Roles::desired(&PipelineCtx::new("shop", "sales", spec, "eu-west-1"), &refs())
    }

    fn crawler_spec() -> SalesPipelineSpec {
        let mut spec = SalesPipelineSpec::default();
        spec.catalog.mode = CatalogMode::Crawler;
        spec
    }

    fn role(d: &DesiredRoles, purpose: RolePurpose) -> &DesiredRole {
        d.roles.iter().find(|r| r.purpose == purpose).expect("role is desired")
    }

    /// Every (action, resource) pair a policy allows.
    fn grants(policy: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in policy["Statement"].as_array().expect("statements") {
            assert_eq!(s["Effect"], "Allow");
            for a in s["Action"].as_array().expect("actions") {
                for r in s["Resource"].as_array().expect("resources") {
                    out.push((a.as_str().unwrap_or_default().to_string(), r.as_str().unwrap_or_default().to_string()));
                }
            }
        }
        out
    }

    fn resources(policy: &Value) -> Vec<String> {
        let mut r: Vec<String> = grants(policy).into_iter().map(|(_, r)| r).collect();
        r.sort();
        r.dedup();
        r
    }

    fn observed(d: &DesiredRoles) -> ObservedRoles {
        ObservedRoles {
            roles: d
                .roles
                .iter()
                .map(|r| ObservedRole {
                    purpose: r.purpose,
                    name: r.name.clone(),
                    arn: format!("arn:aws:iam::{ACCOUNT}:role/sales-operator/{}", r.name),
                    trust_policy: r.trust_policy.clone(),
                    policy_name: r.policy_name.clone(),
                    policy: Some(r.policy.clone()),
                    tags: r.tags.clone(),
                    changed_at: None,
                })
                .collect(),
            retired: Vec::new(),
            given: None,
            missing: Vec::new(),
        }
    }

    fn fields(changes: &[Diff<RoleField>]) -> Vec<String> {
        changes.iter().map(|c| c.field.name()).collect()
    }

    #[test]
    fn role_fields_read_as_users_saw_them() {
        use RolePurpose::{Firehose, Glue, Pipe};
        let names: Vec<_> = [
            RoleField::Missing(Pipe),
            RoleField::Retired(Glue),
            RoleField::TrustPolicy(Pipe),
            RoleField::Policy(Firehose),
            RoleField::Tags(Glue),
        ]
        .iter()
        .map(Field::name)
        .collect();
        assert_eq!(names, ["pipeRole", "glueRole", "pipeRole.trustPolicy", "firehoseRole.policy", "glueRole.tags"]);
    }

    #[test]
    fn policy_is_scoped_to_this_pipelines_arns() {
        let d = desired_for(&crawler_spec());
        // "*" only for dynamodb:ListStreams, which supports no resource type.
        assert_eq!(
            resources(&role(&d, RolePurpose::Pipe).policy),
            vec!["*".to_string(), TABLE_STREAM.to_string(), STREAM.to_string()]
        );
        assert_eq!(
            resources(&role(&d, RolePurpose::Firehose).policy),
            vec![STREAM.to_string(), BUCKET.to_string(), format!("{BUCKET}/*")]
        );
        let glue = resources(&role(&d, RolePurpose::Glue).policy);
        assert_eq!(
            glue,
            vec![
                "arn:aws:glue:eu-west-1:123456789012:catalog".to_string(),
                "arn:aws:glue:eu-west-1:123456789012:database/shop_sales_sales".to_string(),
                "arn:aws:glue:eu-west-1:123456789012:table/shop_sales_sales/*".to_string(),
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws-glue/crawlers*".to_string(),
                BUCKET.to_string(),
                format!("{BUCKET}/*"),
            ]
        );
        for r in &d.roles {
            assert!(
                grants(&r.policy)
                    .iter()
                    .all(|(a, res)| !a.contains('*') && (res != "*" || a == "dynamodb:ListStreams")),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn pipe_may_only_read_the_table_stream_and_write_kinesis() {
        let d = desired_for(&SalesPipelineSpec::default());
        let g = grants(&role(&d, RolePurpose::Pipe).policy);
        assert!(g.contains(&("dynamodb:GetRecords".into(), TABLE_STREAM.into())));
        assert!(g.contains(&("kinesis:PutRecords".into(), STREAM.into())));
        assert!(!g.iter().any(|(a, r)| a.starts_with("kinesis:") && r == TABLE_STREAM));
        assert!(!g.iter().any(|(a, _)| a.starts_with("dynamodb:Put") || a.starts_with("kinesis:Get")));
    }

    #[test]
    fn unknown_arns_are_placeholders() {
        let d = Roles::desired(
            &PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1"),
            &Refs::default(),
        );
        assert_eq!(
            resources(&role(&d, RolePurpose::Pipe).policy),
            vec![super::super::UNKNOWN.to_string(), "*".to_string()]
        );
        assert!(role(&d, RolePurpose::Pipe).trust_policy["Statement"][0].get("Condition").is_none());
    }

    #[test]
    fn kms_permissions_only_with_sse_kms() {
        let d = desired_for(&SalesPipelineSpec::default());
        assert!(!grants(&role(&d, RolePurpose::Firehose).policy).iter().any(|(a, _)| a.starts_with("kms:")));
        let mut spec = SalesPipelineSpec::default();
        spec.bucket.encryption = Encryption::SseKms;
        spec.bucket.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
        let d = desired_for(&spec);
        let kms: Vec<_> = grants(&role(&d, RolePurpose::Firehose).policy)
            .into_iter()
            .filter(|(a, _)| a.starts_with("kms:"))
            .collect();
        assert_eq!(
            kms,
            vec![
                ("kms:GenerateDataKey".to_string(), "arn:aws:kms:eu-west-1:123456789012:key/k".to_string()),
                ("kms:Decrypt".to_string(), "arn:aws:kms:eu-west-1:123456789012:key/k".to_string()),
            ]
        );
    }

    #[test]
    fn trust_policy_names_the_service_and_this_account() {
        let d = desired_for(&crawler_spec());
        for (purpose, service) in [
            (RolePurpose::Pipe, "pipes.amazonaws.com"),
            (RolePurpose::Firehose, "firehose.amazonaws.com"),
            (RolePurpose::Glue, "glue.amazonaws.com"),
        ] {
            let r = role(&d, purpose);
            let s = &r.trust_policy["Statement"][0];
            assert_eq!(s["Principal"]["Service"], service);
            assert_eq!(s["Action"], "sts:AssumeRole");
            assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], ACCOUNT);
            assert_eq!(r.path, ROLE_PATH);
        }
    }

    #[test]
    fn glue_role_only_in_crawler_mode() {
        let projection = desired_for(&SalesPipelineSpec::default());
        assert_eq!(
            projection.roles.iter().map(|r| r.purpose).collect::<Vec<_>>(),
            vec![RolePurpose::Pipe, RolePurpose::Firehose]
        );
        assert_eq!(projection.retired.iter().map(|r| r.purpose).collect::<Vec<_>>(), vec![RolePurpose::Glue]);
        let crawler = desired_for(&crawler_spec());
        assert_eq!(
            crawler.roles.iter().map(|r| r.purpose).collect::<Vec<_>>(),
            vec![RolePurpose::Pipe, RolePurpose::Firehose, RolePurpose::Glue]
        );
        assert!(crawler.retired.is_empty());
        let mut settled = PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1");
        settled.sweep = false;
        assert!(Roles::desired(&settled, &refs()).retired.is_empty(), "no leftover lookup once settled");
    }

    #[test]
    fn no_roles_when_create_roles_is_false() {
        let mut spec = crawler_spec();
        spec.iam.create_roles = false;
        spec.iam.pipe_role_arn = Some("arn:aws:iam::123456789012:role/p".into());
        spec.iam.firehose_role_arn = Some("arn:aws:iam::123456789012:role/f".into());
        let d = desired_for(&spec);
        assert!(d.roles.is_empty() && d.retired.is_empty());
        let given = d.given.clone().expect("given roles");
        assert_eq!(given.pipe.as_deref(), Some("arn:aws:iam::123456789012:role/p"));

        // What observe reports without calling AWS, and what publish hands on.
        let o = ObservedRoles { roles: Vec::new(), retired: Vec::new(), given: Some(given), missing: Vec::new() };
        assert!(Roles::diff(&d, &o).is_empty());
        let mut refs = Refs::default();
        Roles::publish(&o, &mut refs);
        assert_eq!(refs.pipe_role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/p"));
        assert_eq!(refs.firehose_role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/f"));
        assert_eq!(refs.glue_role_arn, None);
        assert_eq!(refs.account.as_deref(), Some(ACCOUNT));
    }

    #[test]
    fn in_sync_roles_have_no_changes() {
        let d = desired_for(&crawler_spec());
        assert!(Roles::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn each_drifted_part_of_a_role_is_exactly_one_change() {
        let d = desired_for(&crawler_spec());

        let mut o = observed(&d);
        o.roles[0].trust_policy = trust_policy(RolePurpose::Pipe, Some("999999999999"));
        assert_eq!(fields(&Roles::diff(&d, &o)), vec!["pipeRole.trustPolicy"]);

        let mut o = observed(&d);
        o.roles[1].policy = Some(policy(vec![allow("All", &["s3:*"], vec!["*".into()])]));
        assert_eq!(fields(&Roles::diff(&d, &o)), vec!["firehoseRole.policy"]);

        let mut o = observed(&d);
        o.roles[2].policy = None;
        let changes = Roles::diff(&d, &o);
        assert_eq!(fields(&changes), vec!["glueRole.policy"]);
        assert_eq!(changes[0].from, "absent");

        let mut o = observed(&d);
        o.roles[0].tags.clear();
        assert_eq!(fields(&Roles::diff(&d, &o)), vec!["pipeRole.tags"]);

        let mut o = observed(&d);
        o.roles.remove(2);
        assert_eq!(fields(&Roles::diff(&d, &o)), vec!["glueRole"]);
    }

    #[test]
    fn extra_foreign_tags_are_ignored() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        o.roles[0].tags.insert("added-by-someone".into(), "x".into());
        assert!(Roles::diff(&d, &o).is_empty());
    }

    #[test]
    fn a_retired_glue_role_is_removed() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        o.retired.push(ObservedRole {
            purpose: RolePurpose::Glue,
            name: "shop-sales-glue".into(),
            arn: "arn:aws:iam::123456789012:role/sales-operator/shop-sales-glue".into(),
            trust_policy: Value::Null,
            policy_name: "sales-operator-glue".into(),
            policy: None,
            tags: BTreeMap::new(),
            changed_at: None,
        });
        let changes = Roles::diff(&d, &o);
        assert_eq!(fields(&changes), vec!["glueRole"]);
        assert_eq!((changes[0].from.as_str(), changes[0].to.as_str()), ("present", "absent"));
    }

    #[test]
    fn url_encoded_policies_compare_as_json() {
        let d = desired_for(&SalesPipelineSpec::default());
        let doc = role(&d, RolePurpose::Pipe).policy.to_string();
        let encoded: String = doc
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert_eq!(parse_policy(&encoded), role(&d, RolePurpose::Pipe).policy);
        assert_eq!(parse_policy(&doc), role(&d, RolePurpose::Pipe).policy);
        // Pretty-printed with spaces escaped as %20, and a literal '+' kept.
        assert_eq!(parse_policy("%7B%0A%20%20%22a%22%3A%20%22x+y%22%7D"), json!({"a": "x+y"}));
        assert_eq!(parse_policy("%7Bbroken"), Value::String("%7Bbroken".into()));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn single_strings_equal_one_element_lists() {
        let listed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"], "Principal": {"Service": ["glue.amazonaws.com"]}}]});
        let single = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Principal": {"Service": "glue.amazonaws.com"}}});
        assert!(same_policy(&single, &listed));
        let other = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}});
        assert!(!same_policy(&other, &listed));
    }

    #[test]
    fn readiness_waits_for_every_role() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        assert_eq!(Roles::readiness(&o), Ok(()));
        o.missing.push("role shop-sales-firehose does not exist".into());
        assert!(Roles::readiness(&o).unwrap_err().contains("shop-sales-firehose"));
    }

    #[test]
    fn publish_and_report_give_the_observed_role_arns() {
        let d = desired_for(&crawler_spec());
        let o = observed(&d);
        let mut refs = Refs::default();
        Roles::publish(&o, &mut refs);
        assert_eq!(
            refs.pipe_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/sales-operator/shop-sales-pipe")
        );
        assert_eq!(
            refs.glue_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/sales-operator/shop-sales-glue")
        );
        let mut status = SalesPipelineStatus::default();
        Roles::report(&o, &mut status);
        let roles = status.roles.expect("roles reported");
        assert_eq!(
            roles.firehose.as_deref(),
            Some("arn:aws:iam::123456789012:role/sales-operator/shop-sales-firehose")
        );
    }
}
