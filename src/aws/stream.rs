//! The Kinesis data stream the pipe writes to and Firehose reads from.

use std::collections::BTreeMap;

use aws_sdk_kinesis::types::{
    EncryptionType, ScalingType, StreamMode as AwsStreamMode, StreamModeDetails, StreamStatus,
};

use super::error::{absent_if_not_found, ok_if_not_found};
use super::tagging::TagIndex;
use super::{
    compare, compare_tags, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field,
    PipelineCtx, Refs,
};
use crate::api::{NamedArn, SalesPipelineStatus, StreamMode};

/// KMS key of server-side encryption (the AWS-managed key for Kinesis).
const KMS_KEY: &str = "alias/aws/kinesis";

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStream {
    pub name: String,
    pub mode: StreamMode,
    /// Open shards (PROVISIONED only).
    pub shard_count: Option<i32>,
    pub retention_hours: i32,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedStream {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub mode: StreamMode,
    pub open_shards: i32,
    pub retention_hours: i32,
    pub encrypted: bool,
    pub tags: BTreeMap<String, String>,
}

/// What can differ on a stream; all of it is changed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamField {
    Mode,
    ShardCount,
    RetentionHours,
    Encryption,
    Tags,
}

impl Field for StreamField {
    fn name(&self) -> String {
        match self {
            StreamField::Mode => "mode",
            StreamField::ShardCount => "shardCount",
            StreamField::RetentionHours => "retentionHours",
            StreamField::Encryption => "encryption",
            StreamField::Tags => "tags",
        }
        .into()
    }
}

/// Kinesis calls of this component.
pub struct Streams<'a>(pub &'a aws_sdk_kinesis::Client, pub &'a TagIndex);

fn aws_mode(mode: StreamMode) -> AwsStreamMode {
    match mode {
        StreamMode::OnDemand => AwsStreamMode::OnDemand,
        StreamMode::Provisioned => AwsStreamMode::Provisioned,
    }
}

fn mode_details(mode: StreamMode) -> Result<StreamModeDetails, AwsError> {
    StreamModeDetails::builder()
        .stream_mode(aws_mode(mode))
        .build()
        .map_err(|e| AwsError::permanent("CreateStream", e.to_string()))
}

impl Component for Streams<'_> {
    type Desired = DesiredStream;
    type Observed = ObservedStream;
    type Field = StreamField;
    const KIND: ComponentKind = ComponentKind::Stream;

    fn desired(ctx: &PipelineCtx, _refs: &Refs) -> DesiredStream {
        let s = &ctx.spec.stream;
        DesiredStream {
            name: ctx.names.stream.clone(),
            mode: s.mode,
            shard_count: match s.mode {
                StreamMode::Provisioned => Some(s.shard_count.unwrap_or(1)),
                StreamMode::OnDemand => None,
            },
            retention_hours: s.retention_hours,
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredStream) -> String {
        format!("kinesis stream {}", d.name)
    }

    async fn observe(&self, d: &DesiredStream) -> Result<Option<ObservedStream>, AwsError> {
        let out = absent_if_not_found(
            self.0.describe_stream_summary().stream_name(&d.name).send().await.aws("DescribeStreamSummary"),
        )?;
        let Some(summary) = out.and_then(|o| o.stream_description_summary) else { return Ok(None) };
        if summary.stream_status == StreamStatus::Deleting {
            return Ok(None);
        }
        let tags = match self.1.covering(&summary.stream_arn, &d.tags) {
            Some(tags) => tags,
            None => {
                let out = self.0.list_tags_for_stream().stream_name(&d.name).send().await.aws("ListTagsForStream")?;
                out.tags.into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect()
            }
        };
        let mode = match summary.stream_mode_details.as_ref().map(|m| m.stream_mode()) {
            Some(AwsStreamMode::Provisioned) => StreamMode::Provisioned,
            _ => StreamMode::OnDemand,
        };
        Ok(Some(ObservedStream {
            name: d.name.clone(),
            arn: summary.stream_arn,
            status: summary.stream_status.as_str().to_string(),
            mode,
            open_shards: summary.open_shard_count,
            retention_hours: summary.retention_period_hours,
            encrypted: summary.encryption_type == Some(EncryptionType::Kms),
            tags,
        }))
    }

    fn diff(d: &DesiredStream, o: &ObservedStream) -> Vec<Diff<StreamField>> {
        let mut changes = Vec::new();
        compare(&mut changes, StreamField::Mode, o.mode, d.mode);
        if let Some(shards) = d.shard_count {
            compare(&mut changes, StreamField::ShardCount, o.open_shards, shards);
        }
        compare(&mut changes, StreamField::RetentionHours, o.retention_hours, d.retention_hours);
        compare(&mut changes, StreamField::Encryption, o.encrypted, true);
        compare_tags(&mut changes, StreamField::Tags, &d.tags, &o.tags);
        changes
    }

    async fn create(&self, d: &DesiredStream) -> Result<(), AwsError> {
        // Tagged in the create call: a crash right after it leaves a stream that is already ours.
        // (A stream that exists already answers ResourceInUseException, judged by the reconciler.)
        let mut req = self
            .0
            .create_stream()
            .stream_name(&d.name)
            .stream_mode_details(mode_details(d.mode)?)
            .set_tags(Some(d.tags.clone().into_iter().collect()));
        if let Some(shards) = d.shard_count {
            req = req.shard_count(shards);
        }
        req.send().await.aws("CreateStream")?;
        Ok(())
    }

    async fn update(
        &self,
        d: &DesiredStream,
        o: &ObservedStream,
        changes: &[Diff<StreamField>],
    ) -> Result<(), AwsError> {
        for change in changes {
            match change.field {
                StreamField::Mode => {
                    self.0
                        .update_stream_mode()
                        .stream_arn(&o.arn)
                        .stream_mode_details(mode_details(d.mode)?)
                        .send()
                        .await
                        .aws("UpdateStreamMode")?;
                }
                StreamField::ShardCount => {
                    if let Some(shards) = d.shard_count {
                        self.0
                            .update_shard_count()
                            .stream_name(&d.name)
                            .target_shard_count(shards)
                            .scaling_type(ScalingType::UniformScaling)
                            .send()
                            .await
                            .aws("UpdateShardCount")?;
                    }
                }
                StreamField::RetentionHours if d.retention_hours > o.retention_hours => {
                    self.0
                        .increase_stream_retention_period()
                        .stream_name(&d.name)
                        .retention_period_hours(d.retention_hours)
                        .send()
                        .await
                        .aws("IncreaseStreamRetentionPeriod")?;
                }
                StreamField::RetentionHours => {
                    self.0
                        .decrease_stream_retention_period()
                        .stream_name(&d.name)
                        .retention_period_hours(d.retention_hours)
                        .send()
                        .await
                        .aws("DecreaseStreamRetentionPeriod")?;
                }
                StreamField::Encryption => {
                    self.0
                        .start_stream_encryption()
                        .stream_name(&d.name)
                        .encryption_type(EncryptionType::Kms)
                        .key_id(KMS_KEY)
                        .send()
                        .await
                        .aws("StartStreamEncryption")?;
                }
                StreamField::Tags => {
                    let missing = missing_tags(&d.tags, &o.tags);
                    self.0
                        .add_tags_to_stream()
                        .stream_name(&d.name)
                        .set_tags(Some(missing.into_iter().collect()))
                        .send()
                        .await
                        .aws("AddTagsToStream")?;
                }
            }
        }
        Ok(())
    }

    async fn delete(&self, o: &ObservedStream) -> Result<(), AwsError> {
        ok_if_not_found(
            self.0
                .delete_stream()
                .stream_name(&o.name)
                .enforce_consumer_deletion(true)
                .send()
                .await
                .aws("DeleteStream"),
        )
    }

    fn claims(o: &ObservedStream) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("kinesis stream {}", o.name), &o.tags)]
    }

    fn publish(o: &ObservedStream, refs: &mut Refs) {
        refs.learn_account(&o.arn);
        refs.stream_arn = Some(o.arn.clone());
    }

    fn report(o: &ObservedStream, status: &mut SalesPipelineStatus) {
        status.stream = Some(NamedArn { name: o.name.clone(), arn: Some(o.arn.clone()) });
    }

    fn busy(o: &ObservedStream) -> Option<String> {
        matches!(o.status.as_str(), "CREATING" | "UPDATING").then(|| format!("stream {} is {}", o.name, o.status))
    }

    fn readiness(o: &ObservedStream) -> Result<(), String> {
        match o.status.as_str() {
            "ACTIVE" => Ok(()),
            other => Err(format!("stream {} is {other}", o.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(d: &DesiredStream) -> ObservedStream {
        ObservedStream {
            name: d.name.clone(),
            arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s".into(),
            status: "ACTIVE".into(),
            mode: d.mode,
            open_shards: d.shard_count.unwrap_or(4),
            retention_hours: d.retention_hours,
            encrypted: true,
            tags: d.tags.clone(),
        }
    }

    fn desired() -> DesiredStream {
        DesiredStream {
            name: "s".into(),
            mode: StreamMode::Provisioned,
            shard_count: Some(2),
            retention_hours: 24,
            tags: BTreeMap::from([("team".into(), "data".into())]),
        }
    }

    #[test]
    fn in_sync_stream_has_no_changes() {
        let d = desired();
        assert!(Streams::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn shard_count_and_retention_changes_are_in_place() {
        let d = desired();
        let mut o = observed(&d);
        o.open_shards = 1;
        o.retention_hours = 48;
        let fields: Vec<_> = Streams::diff(&d, &o).into_iter().map(|c| (c.field.name(), c.field.immutable())).collect();
        assert_eq!(fields, vec![("shardCount".to_string(), false), ("retentionHours".to_string(), false)]);
    }

    #[test]
    fn on_demand_ignores_shard_count_and_extra_tags() {
        let mut d = desired();
        d.mode = StreamMode::OnDemand;
        d.shard_count = None;
        let mut o = observed(&d);
        o.open_shards = 7;
        o.tags.insert("added-by-someone".into(), "x".into());
        assert!(Streams::diff(&d, &o).is_empty());
    }

    #[test]
    fn fields_read_as_users_saw_them() {
        let names: Vec<_> = [
            StreamField::Mode,
            StreamField::ShardCount,
            StreamField::RetentionHours,
            StreamField::Encryption,
            StreamField::Tags,
        ]
        .iter()
        .map(Field::name)
        .collect();
        assert_eq!(names, ["mode", "shardCount", "retentionHours", "encryption", "tags"]);
    }
}
