//! The DynamoDB table the orders are written to, with the stream the pipe reads.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as AwsBillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    PointInTimeRecoveryStatus, ProvisionedThroughput, ScalarAttributeType, StreamSpecification,
    StreamViewType as AwsStreamViewType, TableDescription, TableStatus as AwsTableStatus, Tag,
};

use super::error::{absent_if_not_found, built, ok_if_not_found};
use super::tagging::TagIndex;
use super::{
    compare, compare_tags, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field,
    PipelineCtx, Refs,
};
use crate::api::{BillingMode, SalesPipelineStatus, StreamViewType, TableStatus};
use crate::order::KEY;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTable {
    pub name: String,
    pub billing_mode: BillingMode,
    /// Read and write capacity units (PROVISIONED only).
    pub capacity: Option<(i64, i64)>,
    /// The stream is always on; only its view type is chosen.
    pub stream_view_type: StreamViewType,
    pub point_in_time_recovery: bool,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTable {
    pub name: String,
    pub arn: String,
    pub status: String,
    /// Attribute name of the HASH key.
    pub partition_key: Option<String>,
    pub billing_mode: BillingMode,
    /// Provisioned read and write capacity units (0 under PAY_PER_REQUEST).
    pub capacity: (i64, i64),
    pub stream_enabled: bool,
    /// As AWS names it (`NEW_AND_OLD_IMAGES`, `KEYS_ONLY`, ...).
    pub stream_view_type: Option<String>,
    pub stream_arn: Option<String>,
    pub point_in_time_recovery: bool,
    pub tags: BTreeMap<String, String>,
}

/// DynamoDB calls of this component.
pub struct Tables<'a>(pub &'a aws_sdk_dynamodb::Client, pub &'a TagIndex);

fn aws_billing(mode: BillingMode) -> AwsBillingMode {
    match mode {
        BillingMode::PayPerRequest => AwsBillingMode::PayPerRequest,
        BillingMode::Provisioned => AwsBillingMode::Provisioned,
    }
}

fn aws_view(view: StreamViewType) -> AwsStreamViewType {
    match view {
        StreamViewType::NewAndOldImages => AwsStreamViewType::NewAndOldImages,
        StreamViewType::NewImage => AwsStreamViewType::NewImage,
    }
}

fn stream_spec(d: &DesiredTable, operation: &'static str) -> Result<StreamSpecification, AwsError> {
    built(
        operation,
        StreamSpecification::builder().stream_enabled(true).stream_view_type(aws_view(d.stream_view_type)).build(),
    )
}

fn throughput(d: &DesiredTable, operation: &'static str) -> Result<Option<ProvisionedThroughput>, AwsError> {
    d.capacity
        .map(|(read, write)| {
            built(
                operation,
                ProvisionedThroughput::builder().read_capacity_units(read).write_capacity_units(write).build(),
            )
        })
        .transpose()
}

fn aws_tags(tags: &BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter().map(|(k, v)| built(operation, Tag::builder().key(k).value(v).build())).collect()
}

impl Tables<'_> {
    async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut tags = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .0
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(token)
                .send()
                .await
                .aws("ListTagsOfResource");
            // A table still being created may not be taggable (nor listable) yet.
            let Some(page) = absent_if_not_found(page)? else {
                return Ok(tags);
            };
            tags.extend(page.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)));
            token = page.next_token;
            if token.is_none() {
                return Ok(tags);
            }
        }
    }

    async fn point_in_time_recovery(&self, name: &str) -> Result<bool, AwsError> {
        match self.0.describe_continuous_backups().table_name(name).send().await.aws("DescribeContinuousBackups") {
            Ok(out) => Ok(out
                .continuous_backups_description
                .and_then(|c| c.point_in_time_recovery_description)
                .and_then(|p| p.point_in_time_recovery_status)
                == Some(PointInTimeRecoveryStatus::Enabled)),
            // This operation names a missing (or not yet created) table `TableNotFoundException`.
            Err(e) if e.is_not_found() || e.code.as_deref() == Some("TableNotFoundException") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn set_point_in_time_recovery(&self, name: &str, enabled: bool) -> Result<(), AwsError> {
        let spec = built(
            "UpdateContinuousBackups",
            PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(enabled).build(),
        )?;
        self.0
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .aws("UpdateContinuousBackups")?;
        Ok(())
    }
}

fn observed_from(name: &str, t: TableDescription) -> Result<ObservedTable, AwsError> {
    let arn = t
        .table_arn
        .ok_or_else(|| AwsError::new("DescribeTable", None, format!("table {name} has no ARN yet"), None))?;
    let billing_mode = match t.billing_mode_summary.and_then(|b| b.billing_mode) {
        Some(AwsBillingMode::PayPerRequest) => BillingMode::PayPerRequest,
        // Tables that were always provisioned carry no billing mode summary.
        _ => BillingMode::Provisioned,
    };
    let capacity = t
        .provisioned_throughput
        .map(|p| (p.read_capacity_units.unwrap_or_default(), p.write_capacity_units.unwrap_or_default()))
        .unwrap_or_default();
    let stream = t.stream_specification;
    Ok(ObservedTable {
        name: name.to_string(),
        arn,
        status: t.table_status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        partition_key: t
            .key_schema
            .unwrap_or_default()
            .into_iter()
            .find(|k| k.key_type == KeyType::Hash)
            .map(|k| k.attribute_name),
        billing_mode,
        capacity,
        stream_enabled: stream.as_ref().is_some_and(|s| s.stream_enabled),
        stream_view_type: stream.and_then(|s| s.stream_view_type).map(|v| v.as_str().to_string()),
        stream_arn: t.latest_stream_arn,
        point_in_time_recovery: false,
        tags: BTreeMap::new(),
    })
}

/// What can differ on a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableField {
    /// Immutable: a table's key schema is fixed at creation.
    PartitionKey,
    BillingMode,
    ReadCapacity,
    WriteCapacity,
    /// The table's stream, off to on.
    Stream,
    /// Immutable: changing it means a new stream (new ARN) and a gap in the orders the pipe sees.
    StreamViewType,
    PointInTimeRecovery,
    Tags,
}

impl Field for TableField {
    fn name(&self) -> String {
        match self {
            TableField::PartitionKey => "partitionKey",
            TableField::BillingMode => "billingMode",
            TableField::ReadCapacity => "readCapacity",
            TableField::WriteCapacity => "writeCapacity",
            TableField::Stream => "stream",
            TableField::StreamViewType => "streamViewType",
            TableField::PointInTimeRecovery => "pointInTimeRecovery",
            TableField::Tags => "tags",
        }
        .into()
    }

    fn immutable(&self) -> bool {
        matches!(self, TableField::PartitionKey | TableField::StreamViewType)
    }
}

impl Component for Tables<'_> {
    type Desired = DesiredTable;
    type Observed = ObservedTable;
    type Field = TableField;
    const KIND: ComponentKind = ComponentKind::Table;

    fn desired(ctx: &PipelineCtx, _refs: &Refs) -> DesiredTable {
        let t = &ctx.spec.table;
        DesiredTable {
            name: ctx.names.table.clone(),
            billing_mode: t.billing_mode,
            capacity: match t.billing_mode {
                BillingMode::Provisioned => Some((t.read_capacity.unwrap_or(1), t.write_capacity.unwrap_or(1))),
                BillingMode::PayPerRequest => None,
            },
            stream_view_type: t.stream_view_type,
            point_in_time_recovery: t.point_in_time_recovery,
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredTable) -> String {
        format!("dynamodb table {}", d.name)
    }

    async fn observe(&self, d: &DesiredTable) -> Result<Option<ObservedTable>, AwsError> {
        let out = absent_if_not_found(self.0.describe_table().table_name(&d.name).send().await.aws("DescribeTable"))?;
        let Some(table) = out.and_then(|o| o.table) else {
            return Ok(None);
        };
        if table.table_status == Some(AwsTableStatus::Deleting) {
            return Ok(None);
        }
        let mut observed = observed_from(&d.name, table)?;
        observed.point_in_time_recovery = self.point_in_time_recovery(&d.name).await?;
        observed.tags = match self.1.covering(&observed.arn, &d.tags) {
            Some(tags) => tags,
            None => self.tags(&observed.arn).await?,
        };
        Ok(Some(observed))
    }

    fn diff(d: &DesiredTable, o: &ObservedTable) -> Vec<Diff<TableField>> {
        let mut changes = Vec::new();
        if o.partition_key.as_deref() != Some(KEY) {
            changes.push(Diff::new(TableField::PartitionKey, &o.partition_key, KEY));
        }
        compare(&mut changes, TableField::BillingMode, o.billing_mode, d.billing_mode);
        // A billing mode change carries the capacity with it.
        if let (Some((read, write)), BillingMode::Provisioned) = (d.capacity, o.billing_mode) {
            compare(&mut changes, TableField::ReadCapacity, o.capacity.0, read);
            compare(&mut changes, TableField::WriteCapacity, o.capacity.1, write);
        }
        let view = aws_view(d.stream_view_type).as_str().to_string();
        if !o.stream_enabled {
            changes.push(Diff::new(TableField::Stream, "disabled", format!("enabled ({view})")));
        } else if o.stream_view_type.as_deref() != Some(view.as_str()) {
            changes.push(Diff::new(TableField::StreamViewType, &o.stream_view_type, &view));
        }
        compare(&mut changes, TableField::PointInTimeRecovery, o.point_in_time_recovery, d.point_in_time_recovery);
        compare_tags(&mut changes, TableField::Tags, &d.tags, &o.tags);
        changes
    }

    async fn create(&self, d: &DesiredTable) -> Result<(), AwsError> {
        const OP: &str = "CreateTable";
        let key = built(OP, KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build())?;
        let attribute = built(
            OP,
            AttributeDefinition::builder().attribute_name(KEY).attribute_type(ScalarAttributeType::S).build(),
        )?;
        let created = self
            .0
            .create_table()
            .table_name(&d.name)
            .key_schema(key)
            .attribute_definitions(attribute)
            .billing_mode(aws_billing(d.billing_mode))
            .set_provisioned_throughput(throughput(d, OP)?)
            .stream_specification(stream_spec(d, OP)?)
            .set_tags(Some(aws_tags(&d.tags, OP)?))
            .send()
            .await
            .aws(OP);
        // Continuous backups can only be enabled once the table is ACTIVE, and AWS refuses them
        // for a while after that too ("Backups are being enabled"): a later pass reads them back
        // and enables them. A conflict (it appeared since the observe) goes to the reconciler,
        // which judges its ownership before touching it.
        created.map(|_| ())
    }

    async fn update(&self, d: &DesiredTable, o: &ObservedTable, changes: &[Diff<TableField>]) -> Result<(), AwsError> {
        // Each field to the call that applies it; several fields may share one call.
        let (mut throughput_call, mut billing, mut stream, mut pitr, mut tags) = (false, false, false, false, false);
        for change in changes {
            match change.field {
                TableField::BillingMode => (throughput_call, billing) = (true, true),
                TableField::ReadCapacity | TableField::WriteCapacity => throughput_call = true,
                TableField::Stream => stream = true,
                TableField::PointInTimeRecovery => pitr = true,
                TableField::Tags => tags = true,
                // Immutable: the reconciler partitions them out and never passes them here.
                TableField::PartitionKey | TableField::StreamViewType => {}
            }
        }
        if throughput_call {
            let mut req =
                self.0.update_table().table_name(&d.name).set_provisioned_throughput(throughput(d, "UpdateTable")?);
            if billing {
                req = req.billing_mode(aws_billing(d.billing_mode));
            }
            req.send().await.aws("UpdateTable")?;
        }
        // A separate UpdateTable: AWS changes throughput and streams in different calls.
        if stream {
            self.0
                .update_table()
                .table_name(&d.name)
                .stream_specification(stream_spec(d, "UpdateTable")?)
                .send()
                .await
                .aws("UpdateTable")?;
        }
        if pitr {
            self.set_point_in_time_recovery(&d.name, d.point_in_time_recovery).await?;
        }
        if tags {
            let missing = missing_tags(&d.tags, &o.tags);
            self.0
                .tag_resource()
                .resource_arn(&o.arn)
                .set_tags(Some(aws_tags(&missing, "TagResource")?))
                .send()
                .await
                .aws("TagResource")?;
        }
        Ok(())
    }

    async fn delete(&self, o: &ObservedTable) -> Result<(), AwsError> {
        ok_if_not_found(self.0.delete_table().table_name(&o.name).send().await.aws("DeleteTable"))
    }

    fn claims(o: &ObservedTable) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("dynamodb table {}", o.name), &o.tags)]
    }

    fn publish(o: &ObservedTable, refs: &mut Refs) {
        refs.learn_account(&o.arn);
        refs.table_arn = Some(o.arn.clone());
        refs.table_stream_arn = o.stream_arn.clone().filter(|_| o.stream_enabled);
    }

    fn report(o: &ObservedTable, status: &mut SalesPipelineStatus) {
        status.table =
            Some(TableStatus { name: o.name.clone(), arn: Some(o.arn.clone()), stream_arn: o.stream_arn.clone() });
    }

    fn busy(o: &ObservedTable) -> Option<String> {
        matches!(o.status.as_str(), "CREATING" | "UPDATING").then(|| format!("table {} is {}", o.name, o.status))
    }

    fn readiness(o: &ObservedTable) -> Result<(), String> {
        if !o.stream_enabled {
            return Err(format!("table {} has no stream enabled", o.name));
        }
        match (o.status.as_str(), &o.stream_arn) {
            ("ACTIVE", Some(_)) => Ok(()),
            ("ACTIVE", None) => Err(format!("table {} has no stream ARN yet", o.name)),
            (other, _) => Err(format!("table {} is {other}", o.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    fn desired() -> DesiredTable {
        DesiredTable {
            name: "t".into(),
            billing_mode: BillingMode::Provisioned,
            capacity: Some((5, 10)),
            stream_view_type: StreamViewType::NewAndOldImages,
            point_in_time_recovery: true,
            tags: BTreeMap::from([("team".into(), "data".into())]),
        }
    }

    fn observed(d: &DesiredTable) -> ObservedTable {
        ObservedTable {
            name: d.name.clone(),
            arn: "arn:aws:dynamodb:eu-west-1:123456789012:table/t".into(),
            status: "ACTIVE".into(),
            partition_key: Some(KEY.into()),
            billing_mode: d.billing_mode,
            capacity: d.capacity.unwrap_or_default(),
            stream_enabled: true,
            stream_view_type: Some(aws_view(d.stream_view_type).as_str().into()),
            stream_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000".into()),
            point_in_time_recovery: d.point_in_time_recovery,
            tags: d.tags.clone(),
        }
    }

    fn fields(changes: Vec<Diff<TableField>>) -> Vec<(String, bool)> {
        changes.into_iter().map(|c| (c.field.name(), c.field.immutable())).collect()
    }

    #[test]
    fn desired_table_follows_the_spec() {
        let mut spec = SalesPipelineSpec::default();
        let ctx = PipelineCtx::new("shop", "sales", &spec, "eu-west-1");
        let d = Tables::desired(&ctx, &Refs::default());
        assert_eq!(d.name, "shop-sales-orders");
        assert_eq!((d.billing_mode, d.capacity), (BillingMode::PayPerRequest, None));
        assert_eq!(d.stream_view_type, StreamViewType::NewAndOldImages);
        assert!(d.point_in_time_recovery);
        assert_eq!(d.tags, ctx.tags);

        spec.table.billing_mode = BillingMode::Provisioned;
        spec.table.read_capacity = Some(3);
        spec.table.write_capacity = Some(7);
        let d = Tables::desired(&PipelineCtx::new("shop", "sales", &spec, "eu-west-1"), &Refs::default());
        assert_eq!(d.capacity, Some((3, 7)));
    }

    #[test]
    fn in_sync_table_has_no_changes() {
        let d = desired();
        assert!(Tables::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn capacity_changes_are_in_place() {
        let d = desired();
        let mut o = observed(&d);
        o.capacity = (1, 10);
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("readCapacity".to_string(), false)]);
        o.capacity = (5, 1);
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("writeCapacity".to_string(), false)]);
    }

    #[test]
    fn billing_mode_change_is_one_in_place_change() {
        let d = desired();
        let mut o = observed(&d);
        o.billing_mode = BillingMode::PayPerRequest;
        o.capacity = (0, 0);
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("billingMode".to_string(), false)]);
    }

    #[test]
    fn changed_stream_view_type_is_immutable() {
        let d = desired();
        let mut o = observed(&d);
        o.stream_view_type = Some("NEW_IMAGE".into());
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("streamViewType".to_string(), true)]);
    }

    #[test]
    fn disabled_stream_is_enabled_again_in_place() {
        let d = desired();
        let mut o = observed(&d);
        o.stream_enabled = false;
        o.stream_view_type = None;
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("stream".to_string(), false)]);
        assert!(Tables::readiness(&o).is_err());
    }

    #[test]
    fn point_in_time_recovery_and_missing_tags_are_updated() {
        let d = desired();
        let mut o = observed(&d);
        o.point_in_time_recovery = false;
        o.tags = BTreeMap::from([("team".into(), "other".into()), ("added-by-someone".into(), "x".into())]);
        assert_eq!(
            fields(Tables::diff(&d, &o)),
            vec![("pointInTimeRecovery".to_string(), false), ("tags".to_string(), false)]
        );
    }

    #[test]
    fn extra_foreign_tags_are_ignored() {
        let d = desired();
        let mut o = observed(&d);
        o.tags.insert("added-by-someone".into(), "x".into());
        assert!(Tables::diff(&d, &o).is_empty());
    }

    #[test]
    fn a_different_partition_key_is_immutable() {
        let d = desired();
        let mut o = observed(&d);
        o.partition_key = Some("id".into());
        assert_eq!(fields(Tables::diff(&d, &o)), vec![("partitionKey".to_string(), true)]);
    }

    #[test]
    fn ready_only_when_active_with_a_stream() {
        let d = desired();
        let mut o = observed(&d);
        assert_eq!(Tables::readiness(&o), Ok(()));
        o.stream_arn = None;
        assert!(Tables::readiness(&o).is_err());
        o = observed(&d);
        o.status = "CREATING".into();
        assert!(Tables::readiness(&o).unwrap_err().contains("CREATING"));
    }

    #[test]
    fn publish_gives_table_and_stream_arns_and_the_account() {
        let d = desired();
        let o = observed(&d);
        let mut refs = Refs::default();
        Tables::publish(&o, &mut refs);
        assert_eq!(refs.table_arn.as_deref(), Some(o.arn.as_str()));
        assert_eq!(refs.table_stream_arn, o.stream_arn);
        assert_eq!(refs.account.as_deref(), Some("123456789012"));
        assert_eq!(refs.partition.as_deref(), Some("aws"));
    }
}
