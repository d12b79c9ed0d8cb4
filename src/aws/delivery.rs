//! The Firehose delivery stream that reads the Kinesis stream and writes
//! newline-delimited JSON orders into the bucket.
//!
//! The source (Kinesis stream and the role reading it) cannot be changed on an
//! existing delivery stream: such a change is reported as immutable. The S3
//! destination is updated in place with UpdateDestination, always with the
//! full desired destination.

use std::collections::BTreeMap;

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, EncryptionConfiguration, ExtendedS3DestinationConfiguration,
    ExtendedS3DestinationUpdate, KinesisStreamSourceConfiguration, KmsEncryptionConfig, NoEncryptionConfig,
    ProcessingConfiguration, Processor, ProcessorType, Tag,
};

use super::error::{absent_if_not_found, build_error, ok_if_not_found};
use super::tagging::TagIndex;
use super::{
    compare, compare_tags, known, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Failure,
    Field, PipelineCtx, Recovery, Refs,
};
use crate::api::{Compression, Encryption, NamedArn, SalesPipelineStatus};

/// The processor that ends every record with a newline (SPEC §7: JSON lines in S3).
pub const APPEND_DELIMITER: &str = "AppendDelimiterToRecord";
const KINESIS_SOURCE: &str = "KinesisStreamAsSource";

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredDelivery {
    pub name: String,
    /// The Kinesis stream read.
    pub source_stream_arn: String,
    /// The role Firehose assumes to read the stream and write the bucket.
    pub role_arn: String,
    pub bucket_arn: String,
    pub prefix: String,
    pub error_prefix: String,
    pub buffer_seconds: i32,
    pub buffer_mib: i32,
    /// Firehose's name for it (`GZIP`, `UNCOMPRESSED`, ...).
    pub compression: String,
    /// Enabled processors, by type.
    pub processors: Vec<String>,
    /// KMS key of the objects (SSE_KMS buckets); `None` leaves it to the
    /// bucket's default encryption.
    pub kms_key_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedDelivery {
    pub name: String,
    pub arn: String,
    /// `ACTIVE`, `CREATING`, ...
    pub status: String,
    pub failure: Option<String>,
    /// `KinesisStreamAsSource`, `DirectPut`, ...
    pub stream_type: String,
    /// Needed by UpdateDestination.
    pub version_id: String,
    /// Needed by UpdateDestination.
    pub destination_id: String,
    pub source_stream_arn: Option<String>,
    pub source_role_arn: Option<String>,
    pub role_arn: Option<String>,
    pub bucket_arn: Option<String>,
    pub prefix: Option<String>,
    pub error_prefix: Option<String>,
    pub buffer_seconds: Option<i32>,
    pub buffer_mib: Option<i32>,
    pub compression: Option<String>,
    /// Enabled processors, by type (empty when processing is disabled).
    pub processors: Vec<String>,
    pub kms_key_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Firehose calls of this component.
pub struct Deliveries<'a>(pub &'a aws_sdk_firehose::Client, pub &'a TagIndex);

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "GZIP",
        Compression::Uncompressed => "UNCOMPRESSED",
        Compression::Snappy => "Snappy",
        Compression::Zip => "ZIP",
        Compression::HadoopSnappy => "HADOOP_SNAPPY",
    }
}

fn buffering(d: &DesiredDelivery) -> BufferingHints {
    BufferingHints::builder().interval_in_seconds(d.buffer_seconds).size_in_mbs(d.buffer_mib).build()
}

fn encryption(d: &DesiredDelivery, operation: &'static str) -> Result<EncryptionConfiguration, AwsError> {
    Ok(match &d.kms_key_arn {
        Some(key) => EncryptionConfiguration::builder()
            .kms_encryption_config(
                KmsEncryptionConfig::builder().awskms_key_arn(key).build().map_err(build_error(operation))?,
            )
            .build(),
        None => EncryptionConfiguration::builder().no_encryption_config(NoEncryptionConfig::NoEncryption).build(),
    })
}

fn processing(d: &DesiredDelivery, operation: &'static str) -> Result<ProcessingConfiguration, AwsError> {
    let processors = d
        .processors
        .iter()
        .map(|p| Processor::builder().r#type(ProcessorType::from(p.as_str())).build().map_err(build_error(operation)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProcessingConfiguration::builder().enabled(!processors.is_empty()).set_processors(Some(processors)).build())
}

/// The whole desired destination as an update (nothing left for AWS to merge).
fn destination_update(d: &DesiredDelivery) -> Result<ExtendedS3DestinationUpdate, AwsError> {
    Ok(ExtendedS3DestinationUpdate::builder()
        .role_arn(&d.role_arn)
        .bucket_arn(&d.bucket_arn)
        .prefix(&d.prefix)
        .error_output_prefix(&d.error_prefix)
        .buffering_hints(buffering(d))
        .compression_format(CompressionFormat::from(d.compression.as_str()))
        .encryption_configuration(encryption(d, "UpdateDestination")?)
        .processing_configuration(processing(d, "UpdateDestination")?)
        .build())
}

fn tags(tags: &BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(build_error(operation))).collect()
}

/// What can differ on a delivery stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryField {
    /// Immutable: a delivery stream's type (source) is fixed at creation (see the module docs).
    Type,
    /// Immutable, like the type.
    SourceStream,
    /// Immutable, like the type.
    SourceRole,
    RoleArn,
    BucketArn,
    Prefix,
    ErrorPrefix,
    BufferSeconds,
    BufferMib,
    Compression,
    Processing,
    Encryption,
    Tags,
}

impl Field for DeliveryField {
    fn name(&self) -> String {
        match self {
            DeliveryField::Type => "type",
            DeliveryField::SourceStream => "sourceStream",
            DeliveryField::SourceRole => "sourceRole",
            DeliveryField::RoleArn => "roleArn",
            DeliveryField::BucketArn => "bucketArn",
            DeliveryField::Prefix => "prefix",
            DeliveryField::ErrorPrefix => "errorPrefix",
            DeliveryField::BufferSeconds => "bufferSeconds",
            DeliveryField::BufferMib => "bufferMib",
            DeliveryField::Compression => "compression",
            DeliveryField::Processing => "processing",
            DeliveryField::Encryption => "encryption",
            DeliveryField::Tags => "tags",
        }
        .into()
    }

    fn immutable(&self) -> bool {
        matches!(self, DeliveryField::Type | DeliveryField::SourceStream | DeliveryField::SourceRole)
    }
}

/// The call that applies a change of a delivery stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeliveryCall {
    UpdateDestination,
    TagDeliveryStream,
    /// Immutable fields: the reconciler partitions them out and never passes them to update.
    None,
}

impl DeliveryField {
    fn call(self) -> DeliveryCall {
        match self {
            DeliveryField::RoleArn
            | DeliveryField::BucketArn
            | DeliveryField::Prefix
            | DeliveryField::ErrorPrefix
            | DeliveryField::BufferSeconds
            | DeliveryField::BufferMib
            | DeliveryField::Compression
            | DeliveryField::Processing
            | DeliveryField::Encryption => DeliveryCall::UpdateDestination,
            DeliveryField::Tags => DeliveryCall::TagDeliveryStream,
            DeliveryField::Type | DeliveryField::SourceStream | DeliveryField::SourceRole => DeliveryCall::None,
        }
    }
}

impl Deliveries<'_> {
    async fn list_tags(&self, name: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut tags = BTreeMap::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .0
                .list_tags_for_delivery_stream()
                .delivery_stream_name(name)
                .set_exclusive_start_tag_key(start.take())
                .send()
                .await
                .aws("ListTagsForDeliveryStream")?;
            let last = out.tags.last().map(|t| t.key.clone());
            tags.extend(out.tags.into_iter().map(|t| (t.key, t.value.unwrap_or_default())));
            match last {
                Some(key) if out.has_more_tags => start = Some(key),
                _ => return Ok(tags),
            }
        }
    }
}

impl Component for Deliveries<'_> {
    type Desired = DesiredDelivery;
    type Observed = ObservedDelivery;
    type Field = DeliveryField;
    const KIND: ComponentKind = ComponentKind::Delivery;

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> DesiredDelivery {
        let s = &ctx.spec.delivery;
        DesiredDelivery {
            name: ctx.names.delivery.clone(),
            source_stream_arn: known(&refs.stream_arn),
            role_arn: known(&refs.firehose_role_arn),
            bucket_arn: known(&refs.bucket_arn),
            prefix: s.prefix.clone(),
            error_prefix: s.error_prefix.clone(),
            buffer_seconds: s.buffer_seconds,
            buffer_mib: s.buffer_mib,
            compression: compression_name(s.compression).to_string(),
            processors: vec![APPEND_DELIMITER.to_string()],
            kms_key_arn: match ctx.spec.bucket.encryption {
                Encryption::SseKms => ctx.spec.bucket.kms_key_arn.clone(),
                Encryption::SseS3 => None,
            },
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredDelivery) -> String {
        format!("firehose delivery stream {}", d.name)
    }

    async fn observe(&self, d: &DesiredDelivery) -> Result<Option<ObservedDelivery>, AwsError> {
        let out = absent_if_not_found(
            self.0.describe_delivery_stream().delivery_stream_name(&d.name).send().await.aws("DescribeDeliveryStream"),
        )?;
        let Some(desc) = out.and_then(|o| o.delivery_stream_description) else {
            return Ok(None);
        };
        if desc.delivery_stream_status.as_str() == "DELETING" {
            return Ok(None);
        }
        let tags = match self.1.covering(&desc.delivery_stream_arn, &d.tags) {
            Some(tags) => tags,
            None => self.list_tags(&d.name).await?,
        };
        let source = desc.source.as_ref().and_then(|s| s.kinesis_stream_source_description.as_ref());
        let destination = desc.destinations.iter().find(|dest| dest.extended_s3_destination_description.is_some());
        let s3 = destination.and_then(|dest| dest.extended_s3_destination_description.as_ref());
        let processors = s3
            .and_then(|s| s.processing_configuration.as_ref())
            .filter(|p| p.enabled == Some(true))
            .map(|p| p.processors().iter().map(|p| p.r#type.as_str().to_string()).collect())
            .unwrap_or_default();
        Ok(Some(ObservedDelivery {
            name: d.name.clone(),
            arn: desc.delivery_stream_arn.clone(),
            status: desc.delivery_stream_status.as_str().to_string(),
            failure: desc.failure_description.as_ref().map(|f| format!("{}: {}", f.r#type.as_str(), f.details)),
            stream_type: desc.delivery_stream_type.as_str().to_string(),
            version_id: desc.version_id.clone(),
            destination_id: destination
                .or(desc.destinations.first())
                .map(|dest| dest.destination_id.clone())
                .unwrap_or_default(),
            source_stream_arn: source.and_then(|s| s.kinesis_stream_arn.clone()),
            source_role_arn: source.and_then(|s| s.role_arn.clone()),
            role_arn: s3.map(|s| s.role_arn.clone()),
            bucket_arn: s3.map(|s| s.bucket_arn.clone()),
            prefix: s3.and_then(|s| s.prefix.clone()),
            error_prefix: s3.and_then(|s| s.error_output_prefix.clone()),
            buffer_seconds: s3.and_then(|s| s.buffering_hints.as_ref()).and_then(|b| b.interval_in_seconds),
            buffer_mib: s3.and_then(|s| s.buffering_hints.as_ref()).and_then(|b| b.size_in_mbs),
            compression: s3.map(|s| s.compression_format.as_str().to_string()),
            processors,
            kms_key_arn: s3
                .and_then(|s| s.encryption_configuration.as_ref())
                .and_then(|e| e.kms_encryption_config.as_ref())
                .map(|k| k.awskms_key_arn.clone()),
            tags,
        }))
    }

    fn diff(d: &DesiredDelivery, o: &ObservedDelivery) -> Vec<Diff<DeliveryField>> {
        let mut changes = Vec::new();
        if o.stream_type != KINESIS_SOURCE {
            changes.push(Diff::new(DeliveryField::Type, &o.stream_type, KINESIS_SOURCE));
        }
        if o.source_stream_arn.as_deref() != Some(d.source_stream_arn.as_str()) {
            changes.push(Diff::new(DeliveryField::SourceStream, &o.source_stream_arn, &d.source_stream_arn));
        }
        if o.source_role_arn.as_deref() != Some(d.role_arn.as_str()) {
            changes.push(Diff::new(DeliveryField::SourceRole, &o.source_role_arn, &d.role_arn));
        }
        let want = |v: &str| Some(v.to_string());
        compare(&mut changes, DeliveryField::RoleArn, o.role_arn.clone(), want(&d.role_arn));
        compare(&mut changes, DeliveryField::BucketArn, o.bucket_arn.clone(), want(&d.bucket_arn));
        compare(&mut changes, DeliveryField::Prefix, o.prefix.clone(), want(&d.prefix));
        compare(&mut changes, DeliveryField::ErrorPrefix, o.error_prefix.clone(), want(&d.error_prefix));
        compare(&mut changes, DeliveryField::BufferSeconds, o.buffer_seconds, Some(d.buffer_seconds));
        compare(&mut changes, DeliveryField::BufferMib, o.buffer_mib, Some(d.buffer_mib));
        compare(&mut changes, DeliveryField::Compression, o.compression.clone(), want(&d.compression));
        compare(&mut changes, DeliveryField::Processing, &o.processors, &d.processors);
        compare(&mut changes, DeliveryField::Encryption, &o.kms_key_arn, &d.kms_key_arn);
        compare_tags(&mut changes, DeliveryField::Tags, &d.tags, &o.tags);
        changes
    }

    async fn create(&self, d: &DesiredDelivery) -> Result<(), AwsError> {
        let op = "CreateDeliveryStream";
        let source = KinesisStreamSourceConfiguration::builder()
            .kinesis_stream_arn(&d.source_stream_arn)
            .role_arn(&d.role_arn)
            .build()
            .map_err(build_error(op))?;
        let destination = ExtendedS3DestinationConfiguration::builder()
            .role_arn(&d.role_arn)
            .bucket_arn(&d.bucket_arn)
            .prefix(&d.prefix)
            .error_output_prefix(&d.error_prefix)
            .buffering_hints(buffering(d))
            .compression_format(CompressionFormat::from(d.compression.as_str()))
            .encryption_configuration(encryption(d, op)?)
            .processing_configuration(processing(d, op)?)
            .build()
            .map_err(build_error(op))?;
        let result = self
            .0
            .create_delivery_stream()
            .delivery_stream_name(&d.name)
            .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
            .kinesis_stream_source_configuration(source)
            .extended_s3_destination_configuration(destination)
            .set_tags(Some(tags(&d.tags, op)?))
            .send()
            .await
            .aws(op);
        // A conflict (it appeared since the observe) is judged by the reconciler.
        result.map(|_| ())
    }

    async fn update(
        &self,
        d: &DesiredDelivery,
        o: &ObservedDelivery,
        changes: &[Diff<DeliveryField>],
    ) -> Result<(), AwsError> {
        let calls: Vec<DeliveryCall> = changes.iter().map(|c| c.field.call()).collect();
        if calls.contains(&DeliveryCall::UpdateDestination) {
            // A stale version id answers ConcurrentModificationException (a
            // conflict): the next reconcile reads the new one.
            self.0
                .update_destination()
                .delivery_stream_name(&d.name)
                .current_delivery_stream_version_id(&o.version_id)
                .destination_id(&o.destination_id)
                .extended_s3_destination_update(destination_update(d)?)
                .send()
                .await
                .aws("UpdateDestination")?;
        }
        if calls.contains(&DeliveryCall::TagDeliveryStream) {
            let missing = missing_tags(&d.tags, &o.tags);
            self.0
                .tag_delivery_stream()
                .delivery_stream_name(&d.name)
                .set_tags(Some(tags(&missing, "TagDeliveryStream")?))
                .send()
                .await
                .aws("TagDeliveryStream")?;
        }
        Ok(())
    }

    async fn delete(&self, o: &ObservedDelivery) -> Result<(), AwsError> {
        ok_if_not_found(
            self.0.delete_delivery_stream().delivery_stream_name(&o.name).send().await.aws("DeleteDeliveryStream"),
        )
    }

    fn claims(o: &ObservedDelivery) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("firehose delivery stream {}", o.name), &o.tags)]
    }

    fn publish(o: &ObservedDelivery, refs: &mut Refs) {
        refs.learn_account(&o.arn);
    }

    fn report(o: &ObservedDelivery, status: &mut SalesPipelineStatus) {
        status.delivery = Some(NamedArn { name: o.name.clone(), arn: Some(o.arn.clone()) });
    }

    fn busy(o: &ObservedDelivery) -> Option<String> {
        (o.status == "CREATING").then(|| format!("delivery stream {} is CREATING, not yet ACTIVE", o.name))
    }

    fn failed(o: &ObservedDelivery) -> Option<Failure> {
        // A Firehose stream keeps nothing once delivered: one that failed to be created is made again.
        (o.status == "CREATING_FAILED").then(|| Failure {
            state: o.status.clone(),
            reason: o.failure.clone().unwrap_or_else(|| "AWS gave no reason".to_string()),
            recovery: Recovery::Recreate,
        })
    }

    fn readiness(o: &ObservedDelivery) -> Result<(), String> {
        match o.status.as_str() {
            "ACTIVE" => Ok(()),
            "CREATING" => Err(format!("delivery stream {} is CREATING, not yet ACTIVE", o.name)),
            other => {
                let failure = o.failure.as_deref().map(|f| format!(": {f}")).unwrap_or_default();
                Err(format!("delivery stream {} is {other}{failure}", o.name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    fn refs() -> Refs {
        Refs {
            stream_arn: Some("arn:aws:kinesis:eu-west-1:123456789012:stream/s".into()),
            firehose_role_arn: Some("arn:aws:iam::123456789012:role/f".into()),
            bucket_arn: Some("arn:aws:s3:::b".into()),
            ..Refs::default()
        }
    }

    fn desired_for(spec: &SalesPipelineSpec) -> DesiredDelivery {
        Deliveries::desired(&PipelineCtx::new("shop", "sales", spec, "eu-west-1"), &refs())
    }

    fn desired() -> DesiredDelivery {
        desired_for(&SalesPipelineSpec::default())
    }

    fn observed(d: &DesiredDelivery) -> ObservedDelivery {
        ObservedDelivery {
            name: d.name.clone(),
            arn: "arn:aws:firehose:eu-west-1:123456789012:deliverystream/d".into(),
            status: "ACTIVE".into(),
            failure: None,
            stream_type: KINESIS_SOURCE.into(),
            version_id: "3".into(),
            destination_id: "destinationId-000000000001".into(),
            source_stream_arn: Some(d.source_stream_arn.clone()),
            source_role_arn: Some(d.role_arn.clone()),
            role_arn: Some(d.role_arn.clone()),
            bucket_arn: Some(d.bucket_arn.clone()),
            prefix: Some(d.prefix.clone()),
            error_prefix: Some(d.error_prefix.clone()),
            buffer_seconds: Some(d.buffer_seconds),
            buffer_mib: Some(d.buffer_mib),
            compression: Some(d.compression.clone()),
            processors: d.processors.clone(),
            kms_key_arn: d.kms_key_arn.clone(),
            tags: d.tags.clone(),
        }
    }

    /// A change made to an in-sync observation.
    type Mutation = fn(&mut ObservedDelivery);

    fn fields(changes: Vec<Diff<DeliveryField>>) -> Vec<(String, bool)> {
        changes.into_iter().map(|c| (c.field.name(), c.field.immutable())).collect()
    }

    #[test]
    fn default_spec_delivers_newline_delimited_gzip_hour_partitions() {
        let d = desired();
        assert_eq!(d.processors, vec![APPEND_DELIMITER.to_string()]);
        assert_eq!(d.compression, "GZIP");
        assert_eq!(d.prefix, crate::api::DEFAULT_PREFIX);
        assert!(d.error_prefix.contains("!{firehose:error-output-type}"));
        assert_eq!((d.buffer_seconds, d.buffer_mib), (60, 5));
        assert_eq!(d.kms_key_arn, None);
        assert_eq!(d.source_stream_arn, "arn:aws:kinesis:eu-west-1:123456789012:stream/s");
        assert_eq!(d.bucket_arn, "arn:aws:s3:::b");
    }

    #[test]
    fn kms_bucket_gets_kms_encrypted_objects() {
        let mut spec = SalesPipelineSpec::default();
        spec.bucket.encryption = Encryption::SseKms;
        spec.bucket.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
        assert_eq!(desired_for(&spec).kms_key_arn.as_deref(), Some("arn:aws:kms:eu-west-1:123456789012:key/k"));
    }

    #[test]
    fn in_sync_delivery_has_no_changes() {
        let d = desired();
        assert!(Deliveries::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn each_destination_change_is_reported_alone() {
        let d = desired();
        let cases: Vec<(&str, Mutation)> = vec![
            ("roleArn", |o| o.role_arn = Some("arn:aws:iam::123456789012:role/x".into())),
            ("bucketArn", |o| o.bucket_arn = Some("arn:aws:s3:::other".into())),
            ("prefix", |o| o.prefix = Some("x/".into())),
            ("errorPrefix", |o| o.error_prefix = None),
            ("bufferSeconds", |o| o.buffer_seconds = Some(300)),
            ("bufferMib", |o| o.buffer_mib = Some(64)),
            ("compression", |o| o.compression = Some("UNCOMPRESSED".into())),
            ("processing", |o| o.processors.clear()),
            ("encryption", |o| o.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into())),
            ("tags", |o| o.tags.clear()),
        ];
        for (field, change) in cases {
            let mut o = observed(&d);
            change(&mut o);
            assert_eq!(fields(Deliveries::diff(&d, &o)), vec![(field.to_string(), false)], "{field}");
        }
    }

    #[test]
    fn changes_read_as_values_a_user_writes() {
        let d = desired();
        let mut o = observed(&d);
        o.buffer_seconds = Some(120);
        o.bucket_arn = None;
        o.processors.clear();
        let text: Vec<String> = Deliveries::diff(&d, &o).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "bucketArn: (unset) -> arn:aws:s3:::b",
                "bufferSeconds: 120 -> 60",
                "processing: [] -> [AppendDelimiterToRecord]"
            ]
        );
    }

    #[test]
    fn source_changes_are_immutable() {
        let d = desired();
        let mut o = observed(&d);
        o.stream_type = "DirectPut".into();
        o.source_stream_arn = None;
        o.source_role_arn = None;
        assert_eq!(
            fields(Deliveries::diff(&d, &o)),
            vec![("type".to_string(), true), ("sourceStream".to_string(), true), ("sourceRole".to_string(), true)]
        );
    }

    #[test]
    fn foreign_tags_are_ignored() {
        let d = desired();
        let mut o = observed(&d);
        o.tags.insert("cost-center".into(), "42".into());
        assert!(Deliveries::diff(&d, &o).is_empty());
    }

    #[test]
    fn destination_update_carries_the_full_destination() {
        let mut d = desired();
        d.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
        let u = destination_update(&d).unwrap();
        assert_eq!(u.role_arn.as_deref(), Some(d.role_arn.as_str()));
        assert_eq!(u.bucket_arn.as_deref(), Some(d.bucket_arn.as_str()));
        assert_eq!(u.prefix.as_deref(), Some(d.prefix.as_str()));
        assert_eq!(u.error_output_prefix.as_deref(), Some(d.error_prefix.as_str()));
        let hints = u.buffering_hints.unwrap();
        assert_eq!((hints.interval_in_seconds, hints.size_in_mbs), (Some(60), Some(5)));
        assert_eq!(u.compression_format, Some(CompressionFormat::Gzip));
        let processing = u.processing_configuration.unwrap();
        assert_eq!(processing.enabled, Some(true));
        assert_eq!(processing.processors()[0].r#type, ProcessorType::AppendDelimiterToRecord);
        assert_eq!(
            u.encryption_configuration.unwrap().kms_encryption_config.unwrap().awskms_key_arn,
            "arn:aws:kms:eu-west-1:123456789012:key/k"
        );
    }

    #[test]
    fn readiness_waits_for_active_and_shows_failures() {
        let d = desired();
        let mut o = observed(&d);
        assert!(Deliveries::readiness(&o).is_ok());
        o.status = "CREATING".into();
        assert!(Deliveries::readiness(&o).unwrap_err().contains("not yet ACTIVE"));
        o.status = "CREATING_FAILED".into();
        o.failure = Some("INVALID_KMS_KEY: key disabled".into());
        assert!(Deliveries::readiness(&o).unwrap_err().contains("key disabled"));
    }
}
