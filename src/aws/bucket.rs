//! The S3 bucket Firehose delivers the orders to (and Athena reads them from).
//!
//! Either the operator's own bucket (`spec.bucket.create`, configured and,
//! under `deletionPolicy: Delete`, emptied and deleted), or an existing bucket
//! that belongs to someone else: then it is only checked for existence and
//! never changed or deleted.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};

use super::error::{absent_if_not_found, built, ok_if_not_found};
use super::tagging::TagIndex;
use super::{compare_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field, PipelineCtx, Refs};
use crate::api::{Encryption, SalesPipelineStatus};

/// Id of the lifecycle rule the operator manages (other rules are kept).
pub const LIFECYCLE_RULE_ID: &str = "sales-operator";
/// Days after which incomplete multipart uploads are aborted.
pub const ABORT_INCOMPLETE_UPLOAD_DAYS: i32 = 7;
/// Most keys one DeleteObjects call takes.
const DELETE_BATCH: usize = 1000;

/// Default encryption of new objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultEncryption {
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS).
    pub algorithm: String,
    pub kms_key_id: Option<String>,
    /// S3 Bucket Keys (fewer KMS calls); meaningful for SSE-KMS only.
    pub bucket_key_enabled: bool,
}

/// The four public access block settings, in the order S3 lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

impl super::Shown for PublicAccessBlock {
    /// `blockPublicAcls, ignorePublicAcls, ...` (the settings that are on), or `off`.
    fn shown(&self) -> String {
        let on: Vec<&str> = [
            (self.block_public_acls, "blockPublicAcls"),
            (self.ignore_public_acls, "ignorePublicAcls"),
            (self.block_public_policy, "blockPublicPolicy"),
            (self.restrict_public_buckets, "restrictPublicBuckets"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if on.is_empty() {
            "off".to_string()
        } else {
            on.join(", ")
        }
    }
}

impl super::Shown for DefaultEncryption {
    /// `AES256`, or `aws:kms key <id>, bucket key`.
    fn shown(&self) -> String {
        let mut s = self.algorithm.clone();
        if let Some(key) = &self.kms_key_id {
            s.push_str(&format!(" key {key}"));
        }
        if self.bucket_key_enabled {
            s.push_str(", bucket key");
        }
        s
    }
}

/// The operator's lifecycle rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub enabled: bool,
    pub expiration_days: Option<i32>,
    pub abort_incomplete_upload_days: Option<i32>,
}

impl super::Shown for Lifecycle {
    /// `expire after 30 days, abort incomplete uploads after 7 days`, or `disabled`.
    fn shown(&self) -> String {
        if !self.enabled {
            return "disabled".to_string();
        }
        let mut parts = Vec::new();
        if let Some(days) = self.expiration_days {
            parts.push(format!("expire after {days} days"));
        }
        if let Some(days) = self.abort_incomplete_upload_days {
            parts.push(format!("abort incomplete uploads after {days} days"));
        }
        if parts.is_empty() {
            "enabled".to_string()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredBucket {
    pub name: String,
    /// Created and managed by the operator (`spec.bucket.create`); else only used.
    pub managed: bool,
    /// Region the bucket is created in.
    pub region: String,
    pub encryption: DefaultEncryption,
    pub lifecycle: Lifecycle,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedBucket {
    pub name: String,
    /// Whether the operator manages it; the rest is only read when it does.
    pub managed: bool,
    pub public_access: Option<PublicAccessBlock>,
    pub encryption: Option<DefaultEncryption>,
    /// The operator's rule (by id).
    pub lifecycle: Option<Lifecycle>,
    /// Everyone else's rules, kept when the operator's rule is written.
    pub other_rules: Vec<LifecycleRule>,
    pub tags: BTreeMap<String, String>,
}

impl ObservedBucket {
    /// A bucket that exists and has nothing configured.
    fn bare(d: &DesiredBucket) -> Self {
        Self {
            name: d.name.clone(),
            managed: d.managed,
            public_access: None,
            encryption: None,
            lifecycle: None,
            other_rules: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// S3 calls of this component.
pub struct Buckets<'a>(pub &'a aws_sdk_s3::Client, pub &'a TagIndex);

/// CreateBucket's location constraint: every region but us-east-1 names itself.
pub fn location_constraint(region: &str) -> Option<BucketLocationConstraint> {
    (region != "us-east-1").then(|| BucketLocationConstraint::from(region))
}

fn desired_encryption(encryption: Encryption, kms_key_arn: Option<&String>) -> DefaultEncryption {
    match encryption {
        Encryption::SseS3 => {
            DefaultEncryption { algorithm: "AES256".into(), kms_key_id: None, bucket_key_enabled: false }
        }
        Encryption::SseKms => DefaultEncryption {
            algorithm: "aws:kms".into(),
            kms_key_id: kms_key_arn.cloned(),
            bucket_key_enabled: true,
        },
    }
}

fn observed_encryption(config: ServerSideEncryptionConfiguration) -> Option<DefaultEncryption> {
    let rule = config.rules.into_iter().next()?;
    let default = rule.apply_server_side_encryption_by_default?;
    let algorithm = default.sse_algorithm.as_str().to_string();
    if default.sse_algorithm == ServerSideEncryption::Aes256 {
        return Some(DefaultEncryption { algorithm, kms_key_id: None, bucket_key_enabled: false });
    }
    Some(DefaultEncryption {
        algorithm,
        kms_key_id: default.kms_master_key_id,
        bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
    })
}

fn observed_lifecycle(rule: &LifecycleRule) -> Lifecycle {
    Lifecycle {
        enabled: rule.status == ExpirationStatus::Enabled,
        expiration_days: rule.expiration.as_ref().and_then(|e| e.days),
        abort_incomplete_upload_days: rule
            .abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation),
    }
}

fn lifecycle_rule(l: &Lifecycle) -> Result<LifecycleRule, AwsError> {
    let status = if l.enabled { ExpirationStatus::Enabled } else { ExpirationStatus::Disabled };
    built(
        "PutBucketLifecycleConfiguration",
        LifecycleRule::builder()
            .id(LIFECYCLE_RULE_ID)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .status(status)
            .set_expiration(l.expiration_days.map(|days| LifecycleExpiration::builder().days(days).build()))
            .set_abort_incomplete_multipart_upload(
                l.abort_incomplete_upload_days
                    .map(|days| AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build()),
            )
            .build(),
    )
}

/// The tag set to write: PutBucketTagging replaces the whole set, so others' tags are kept.
fn merged_tags(desired: &BTreeMap<String, String>, observed: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut tags = observed.clone();
    tags.extend(desired.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

/// `tags` as S3's tag list, for `operation`.
fn s3_tags(tags: &BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter().map(|(k, v)| built(operation, Tag::builder().key(k).value(v).build())).collect()
}

impl Buckets<'_> {
    async fn exists(&self, name: &str) -> Result<bool, AwsError> {
        Ok(absent_if_not_found(self.0.head_bucket().bucket(name).send().await.aws("HeadBucket"))?.is_some())
    }

    async fn tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        match self.0.get_bucket_tagging().bucket(name).send().await.aws("GetBucketTagging") {
            Ok(out) => Ok(Some(out.tag_set.into_iter().map(|t| (t.key, t.value)).collect())),
            Err(e) if e.code.as_deref() == Some("NoSuchBucket") => Ok(None),
            // NoSuchTagSet: a bucket without tags.
            Err(e) if e.is_not_found() => Ok(Some(BTreeMap::new())),
            Err(e) => Err(e),
        }
    }

    /// Deletes every object version, delete marker and object. Deleting moves
    /// the listing under its markers, so each round lists from the start again.
    async fn empty(&self, name: &str) -> Result<(), AwsError> {
        let mut previous_first = None;
        loop {
            let ids = self.objects_to_delete(name).await?;
            let Some(first) = ids.first().cloned() else {
                return Ok(());
            };
            if previous_first.as_ref() == Some(&first) {
                return Err(AwsError::new(
                    "DeleteObjects",
                    None,
                    format!("{} stays in bucket {name} after DeleteObjects", first.key),
                    None,
                ));
            }
            self.delete_objects(name, ids).await?;
            previous_first = Some(first);
        }
    }

    /// The first page of object versions and delete markers or, where a store
    /// lists no versions, of objects.
    async fn objects_to_delete(&self, name: &str) -> Result<Vec<ObjectIdentifier>, AwsError> {
        let page = self.0.list_object_versions().bucket(name).send().await.aws("ListObjectVersions")?;
        let versions = page.versions.unwrap_or_default().into_iter().map(|v| (v.key, v.version_id));
        let markers = page.delete_markers.unwrap_or_default().into_iter().map(|m| (m.key, m.version_id));
        let mut entries: Vec<_> = versions.chain(markers).collect();
        if entries.is_empty() {
            let page = self.0.list_objects_v2().bucket(name).send().await.aws("ListObjectsV2")?;
            entries = page.contents.unwrap_or_default().into_iter().map(|o| (o.key, None)).collect();
        }
        let ids = entries
            .into_iter()
            .filter_map(|(key, version)| {
                key.map(|k| ObjectIdentifier::builder().key(k).set_version_id(version).build())
            })
            .collect::<Result<Vec<_>, _>>();
        built("DeleteObjects", ids)
    }

    async fn delete_objects(&self, name: &str, ids: Vec<ObjectIdentifier>) -> Result<(), AwsError> {
        for batch in ids.chunks(DELETE_BATCH) {
            let delete =
                built("DeleteObjects", Delete::builder().set_objects(Some(batch.to_vec())).quiet(true).build())?;
            let out = self.0.delete_objects().bucket(name).delete(delete).send().await.aws("DeleteObjects")?;
            if let Some(err) = out.errors.unwrap_or_default().into_iter().next() {
                return Err(AwsError::new(
                    "DeleteObjects",
                    err.code,
                    format!("could not delete {}: {}", err.key.unwrap_or_default(), err.message.unwrap_or_default()),
                    None,
                ));
            }
        }
        Ok(())
    }
}

/// What can differ on a managed bucket; all of it is changed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketField {
    PublicAccessBlock,
    Encryption,
    Lifecycle,
    Tags,
}

impl Field for BucketField {
    fn name(&self) -> String {
        match self {
            BucketField::PublicAccessBlock => "publicAccessBlock",
            BucketField::Encryption => "encryption",
            BucketField::Lifecycle => "lifecycle",
            BucketField::Tags => "tags",
        }
        .into()
    }
}

impl Component for Buckets<'_> {
    type Desired = DesiredBucket;
    type Observed = ObservedBucket;
    type Field = BucketField;
    const KIND: ComponentKind = ComponentKind::Bucket;

    fn desired(ctx: &PipelineCtx, _refs: &Refs) -> DesiredBucket {
        let b = &ctx.spec.bucket;
        DesiredBucket {
            name: ctx.names.bucket.clone(),
            managed: b.create,
            region: ctx.region.clone(),
            encryption: desired_encryption(b.encryption, b.kms_key_arn.as_ref()),
            lifecycle: Lifecycle {
                enabled: true,
                expiration_days: b.expiration_days,
                abort_incomplete_upload_days: Some(ABORT_INCOMPLETE_UPLOAD_DAYS),
            },
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredBucket) -> String {
        if d.managed {
            format!("s3 bucket {}", d.name)
        } else {
            format!("s3 bucket {} (existing, not managed)", d.name)
        }
    }

    async fn observe(&self, d: &DesiredBucket) -> Result<Option<ObservedBucket>, AwsError> {
        if !d.managed {
            return Ok(self.exists(&d.name).await?.then(|| ObservedBucket::bare(d)));
        }
        // GetBucketTagging doubles as the existence check; with the tags from the index, the
        // public access block read does (the index may still list a bucket deleted moments ago).
        let tags = match self.1.covering_bucket(&d.name, &d.tags) {
            Some(tags) => tags,
            None => match self.tags(&d.name).await? {
                Some(tags) => tags,
                None => return Ok(None),
            },
        };
        let public_access =
            match self.0.get_public_access_block().bucket(&d.name).send().await.aws("GetPublicAccessBlock") {
                Err(e) if e.code.as_deref() == Some("NoSuchBucket") => return Ok(None),
                read => absent_if_not_found(read)?,
            }
            .and_then(|o| o.public_access_block_configuration)
            .map(|c| PublicAccessBlock {
                block_public_acls: c.block_public_acls.unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
                block_public_policy: c.block_public_policy.unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
            });
        let encryption = absent_if_not_found(
            self.0.get_bucket_encryption().bucket(&d.name).send().await.aws("GetBucketEncryption"),
        )?
        .and_then(|o| o.server_side_encryption_configuration)
        .and_then(observed_encryption);
        let rules = absent_if_not_found(
            self.0
                .get_bucket_lifecycle_configuration()
                .bucket(&d.name)
                .send()
                .await
                .aws("GetBucketLifecycleConfiguration"),
        )?
        .and_then(|o| o.rules)
        .unwrap_or_default();
        let (ours, other_rules): (Vec<LifecycleRule>, Vec<LifecycleRule>) =
            rules.into_iter().partition(|r| r.id.as_deref() == Some(LIFECYCLE_RULE_ID));
        Ok(Some(ObservedBucket {
            name: d.name.clone(),
            managed: true,
            public_access,
            encryption,
            lifecycle: ours.first().map(observed_lifecycle),
            other_rules,
            tags,
        }))
    }

    fn diff(d: &DesiredBucket, o: &ObservedBucket) -> Vec<Diff<BucketField>> {
        let mut changes = Vec::new();
        if !d.managed {
            return changes;
        }
        if o.public_access != Some(PublicAccessBlock::ALL) {
            changes.push(Diff::new(BucketField::PublicAccessBlock, o.public_access, PublicAccessBlock::ALL));
        }
        if o.encryption.as_ref() != Some(&d.encryption) {
            changes.push(Diff::new(BucketField::Encryption, &o.encryption, &d.encryption));
        }
        if o.lifecycle != Some(d.lifecycle) {
            changes.push(Diff::new(BucketField::Lifecycle, o.lifecycle, d.lifecycle));
        }
        compare_tags(&mut changes, BucketField::Tags, &d.tags, &o.tags);
        changes
    }

    async fn create(&self, d: &DesiredBucket) -> Result<(), AwsError> {
        if !d.managed {
            return Err(AwsError::permanent(
                "CreateBucket",
                format!("bucket {} does not exist (spec.bucket.create is false)", d.name),
            ));
        }
        // Tagged in the create call (CreateBucketConfiguration.Tags), so a crash right after it
        // leaves a bucket that is already ours; the rest of its configuration is converged by
        // the update that follows every create.
        const OP: &str = "CreateBucket";
        let config = CreateBucketConfiguration::builder()
            .set_location_constraint(location_constraint(&d.region))
            .set_tags(Some(s3_tags(&d.tags, OP)?))
            .build();
        match self.0.create_bucket().bucket(&d.name).create_bucket_configuration(config).send().await.aws(OP) {
            // BucketAlreadyOwnedByYou (a conflict): it appeared since the observe; the reconciler
            // judges its ownership before touching it.
            Err(e) if e.code.as_deref() == Some("BucketAlreadyExists") => Err(AwsError::permanent(
                OP,
                format!("bucket name {} is taken by another AWS account: set spec.bucket.name to a free name", d.name),
            )),
            other => other.map(|_| ()),
        }
    }

    async fn update(
        &self,
        d: &DesiredBucket,
        o: &ObservedBucket,
        changes: &[Diff<BucketField>],
    ) -> Result<(), AwsError> {
        if !d.managed || !o.managed {
            return Ok(());
        }
        for change in changes {
            match change.field {
                BucketField::PublicAccessBlock => {
                    let all = PublicAccessBlock::ALL;
                    let config = PublicAccessBlockConfiguration::builder()
                        .block_public_acls(all.block_public_acls)
                        .ignore_public_acls(all.ignore_public_acls)
                        .block_public_policy(all.block_public_policy)
                        .restrict_public_buckets(all.restrict_public_buckets)
                        .build();
                    self.0
                        .put_public_access_block()
                        .bucket(&d.name)
                        .public_access_block_configuration(config)
                        .send()
                        .await
                        .aws("PutPublicAccessBlock")?;
                }
                BucketField::Encryption => {
                    const OP: &str = "PutBucketEncryption";
                    let default = built(
                        OP,
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::from(d.encryption.algorithm.as_str()))
                            .set_kms_master_key_id(d.encryption.kms_key_id.clone())
                            .build(),
                    )?;
                    let rule = ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(default)
                        .bucket_key_enabled(d.encryption.bucket_key_enabled)
                        .build();
                    let config = built(OP, ServerSideEncryptionConfiguration::builder().rules(rule).build())?;
                    self.0
                        .put_bucket_encryption()
                        .bucket(&d.name)
                        .server_side_encryption_configuration(config)
                        .send()
                        .await
                        .aws(OP)?;
                }
                BucketField::Lifecycle => {
                    const OP: &str = "PutBucketLifecycleConfiguration";
                    let mut rules = o.other_rules.clone();
                    rules.push(lifecycle_rule(&d.lifecycle)?);
                    let config = built(OP, BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build())?;
                    self.0
                        .put_bucket_lifecycle_configuration()
                        .bucket(&d.name)
                        .lifecycle_configuration(config)
                        .send()
                        .await
                        .aws(OP)?;
                }
                BucketField::Tags => {
                    const OP: &str = "PutBucketTagging";
                    let tag_set = s3_tags(&merged_tags(&d.tags, &o.tags), OP)?;
                    let tagging = built(OP, Tagging::builder().set_tag_set(Some(tag_set)).build())?;
                    self.0.put_bucket_tagging().bucket(&d.name).tagging(tagging).send().await.aws(OP)?;
                }
            }
        }
        Ok(())
    }

    /// Empties and deletes the operator's own bucket; a bucket it does not own is never touched.
    async fn delete(&self, o: &ObservedBucket) -> Result<(), AwsError> {
        if !o.managed {
            return Ok(());
        }
        let deleted = async {
            self.empty(&o.name).await?;
            self.0.delete_bucket().bucket(&o.name).send().await.aws("DeleteBucket")?;
            Ok::<(), AwsError>(())
        }
        .await;
        ok_if_not_found(deleted)
    }

    fn managed(o: &ObservedBucket) -> bool {
        o.managed
    }

    fn creatable(d: &DesiredBucket) -> Result<(), String> {
        if d.managed {
            return Ok(());
        }
        Err(format!(
            "bucket {} does not exist and spec.bucket.create is false: create it (the pipeline goes on by itself), or set create to true",
            d.name
        ))
    }

    fn claims(o: &ObservedBucket) -> Vec<Claim<'_>> {
        if o.managed {
            vec![Claim::new(format!("s3 bucket {}", o.name), &o.tags)]
        } else {
            Vec::new()
        }
    }

    fn publish(o: &ObservedBucket, refs: &mut Refs) {
        let partition = refs.partition.as_deref().unwrap_or("aws");
        refs.bucket_arn = Some(format!("arn:{partition}:s3:::{}", o.name));
    }

    fn report(o: &ObservedBucket, status: &mut SalesPipelineStatus) {
        status.bucket = Some(o.name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    fn ctx(spec: &SalesPipelineSpec, region: &str) -> PipelineCtx {
        PipelineCtx::new("shop", "sales", spec, region)
    }

    fn desired() -> DesiredBucket {
        let mut spec = SalesPipelineSpec::default();
        spec.bucket.expiration_days = Some(30);
        Buckets::desired(&ctx(&spec, "eu-west-1"), &Refs::default())
    }

    fn observed(d: &DesiredBucket) -> ObservedBucket {
        ObservedBucket {
            name: d.name.clone(),
            managed: d.managed,
            public_access: Some(PublicAccessBlock::ALL),
            encryption: Some(d.encryption.clone()),
            lifecycle: Some(d.lifecycle),
            other_rules: Vec::new(),
            tags: d.tags.clone(),
        }
    }

    fn fields(changes: Vec<Diff<BucketField>>) -> Vec<String> {
        changes.into_iter().map(|c| c.field.name()).collect()
    }

    #[test]
    fn bucket_settings_read_as_settings_not_structs() {
        use super::super::Shown;
        let partial = PublicAccessBlock { block_public_acls: true, ..PublicAccessBlock::default() };
        assert_eq!(Diff::new(BucketField::PublicAccessBlock, Some(partial), PublicAccessBlock::ALL).shown().to_string(),
            "publicAccessBlock: blockPublicAcls -> blockPublicAcls, ignorePublicAcls, blockPublicPolicy, restrictPublicBuckets");
        assert_eq!(None::<PublicAccessBlock>.shown(), "(unset)");
        let kms =
            DefaultEncryption { algorithm: "aws:kms".into(), kms_key_id: Some("k".into()), bucket_key_enabled: true };
        assert_eq!(kms.shown(), "aws:kms key k, bucket key");
        let rule = Lifecycle { enabled: true, expiration_days: Some(30), abort_incomplete_upload_days: Some(7) };
        assert_eq!(rule.shown(), "expire after 30 days, abort incomplete uploads after 7 days");
    }

    #[test]
    fn location_constraint_is_set_everywhere_but_us_east_1() {
        assert_eq!(location_constraint("us-east-1"), None);
        assert_eq!(location_constraint("eu-west-1"), Some(BucketLocationConstraint::EuWest1));
        assert_eq!(
            location_constraint("ap-southeast-7").map(|c| c.as_str().to_string()),
            Some("ap-southeast-7".to_string())
        );
    }

    #[test]
    fn default_bucket_is_owned_private_sse_s3_and_aborts_stale_uploads() {
        let spec = SalesPipelineSpec::default();
        let c = ctx(&spec, "eu-west-1");
        let d = Buckets::desired(&c, &Refs::default());
        assert_eq!(d.name, c.names.bucket);
        assert!(d.managed);
        assert_eq!(
            d.encryption,
            DefaultEncryption { algorithm: "AES256".into(), kms_key_id: None, bucket_key_enabled: false }
        );
        assert_eq!(
            d.lifecycle,
            Lifecycle { enabled: true, expiration_days: None, abort_incomplete_upload_days: Some(7) }
        );
        assert_eq!(d.tags, c.tags);
    }

    #[test]
    fn sse_kms_uses_the_given_key_with_a_bucket_key() {
        let mut spec = SalesPipelineSpec::default();
        spec.bucket.encryption = Encryption::SseKms;
        spec.bucket.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
        let d = Buckets::desired(&ctx(&spec, "eu-west-1"), &Refs::default());
        assert_eq!(
            d.encryption,
            DefaultEncryption {
                algorithm: "aws:kms".into(),
                kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
                bucket_key_enabled: true
            }
        );
    }

    #[test]
    fn lifecycle_rule_expires_objects_only_when_asked() {
        let d = desired();
        let rule = lifecycle_rule(&d.lifecycle).unwrap();
        assert_eq!(rule.id.as_deref(), Some(LIFECYCLE_RULE_ID));
        assert_eq!(rule.status, ExpirationStatus::Enabled);
        assert_eq!(rule.expiration.as_ref().and_then(|e| e.days), Some(30));
        assert_eq!(rule.abort_incomplete_multipart_upload.as_ref().and_then(|a| a.days_after_initiation), Some(7));
        assert_eq!(observed_lifecycle(&rule), d.lifecycle);

        let no_expiry = lifecycle_rule(&Lifecycle { expiration_days: None, ..d.lifecycle }).unwrap();
        assert!(no_expiry.expiration.is_none());
        assert!(no_expiry.abort_incomplete_multipart_upload.is_some());
    }

    #[test]
    fn in_sync_bucket_has_no_changes() {
        let d = desired();
        assert!(Buckets::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn each_drifted_setting_is_exactly_one_change() {
        let d = desired();
        let mut o = observed(&d);
        o.public_access = Some(PublicAccessBlock { block_public_policy: false, ..PublicAccessBlock::ALL });
        assert_eq!(fields(Buckets::diff(&d, &o)), vec!["publicAccessBlock"]);

        let mut o = observed(&d);
        o.encryption =
            Some(DefaultEncryption { algorithm: "aws:kms".into(), kms_key_id: None, bucket_key_enabled: true });
        assert_eq!(fields(Buckets::diff(&d, &o)), vec!["encryption"]);

        let mut o = observed(&d);
        o.lifecycle = Some(Lifecycle { expiration_days: Some(90), ..d.lifecycle });
        assert_eq!(fields(Buckets::diff(&d, &o)), vec!["lifecycle"]);

        let mut o = observed(&d);
        o.tags.clear();
        assert_eq!(fields(Buckets::diff(&d, &o)), vec!["tags"]);
    }

    #[test]
    fn a_bare_bucket_needs_every_setting() {
        let d = desired();
        assert_eq!(
            fields(Buckets::diff(&d, &ObservedBucket::bare(&d))),
            vec!["publicAccessBlock", "encryption", "lifecycle", "tags"]
        );
    }

    #[test]
    fn foreign_tags_and_lifecycle_rules_are_ignored_and_kept() {
        let d = desired();
        let mut o = observed(&d);
        o.tags.insert("cost-center".into(), "42".into());
        o.other_rules.push(LifecycleRule::builder().id("theirs").status(ExpirationStatus::Enabled).build().unwrap());
        assert!(Buckets::diff(&d, &o).is_empty());

        o.tags.remove(crate::aws::TAG_PIPELINE);
        let merged = merged_tags(&d.tags, &o.tags);
        assert_eq!(merged.get("cost-center").map(String::as_str), Some("42"));
        assert!(d.tags.iter().all(|(k, v)| merged.get(k) == Some(v)));
    }

    #[test]
    fn a_bucket_the_operator_does_not_own_is_never_changed() {
        let mut spec = SalesPipelineSpec::default();
        spec.bucket.create = false;
        spec.bucket.name = Some("their-bucket".into());
        let d = Buckets::desired(&ctx(&spec, "eu-west-1"), &Refs::default());
        assert!(!d.managed);
        assert_eq!(d.name, "their-bucket");
        let o = ObservedBucket::bare(&d);
        assert!(!o.managed);
        assert!(Buckets::diff(&d, &o).is_empty());
        assert!(Buckets::resource_name(&d).contains("not managed"));
    }

    #[test]
    fn publish_builds_the_bucket_arn_in_the_known_partition() {
        let d = desired();
        let o = observed(&d);
        let mut refs = Refs::default();
        Buckets::publish(&o, &mut refs);
        assert_eq!(refs.bucket_arn, Some(format!("arn:aws:s3:::{}", d.name)));
        let mut refs = Refs { partition: Some("aws-cn".into()), ..Refs::default() };
        Buckets::publish(&o, &mut refs);
        assert_eq!(refs.bucket_arn, Some(format!("arn:aws-cn:s3:::{}", d.name)));
    }
}
