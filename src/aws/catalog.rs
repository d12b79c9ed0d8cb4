//! The Glue Data Catalog entries that make the delivered orders queryable.
//!
//! Always a database. Then, by `spec.catalog.mode`:
//! - `Projection` (default): the orders table, defined by us, with partition
//!   projection on `dt` (derived from the Firehose prefix), queryable at once;
//! - `Crawler`: a scheduled crawler over the delivered objects; the crawler
//!   creates the table, we create none.
//!
//! The component is present when the database exists; a missing table or
//! crawler is a change that `update` creates. Switching mode creates the new
//! part and deletes the old one (the crawler, or only *our* table: tables we
//! define carry the [`MANAGED_MARKER`] parameter, tables the crawler made do not).
//!
//! A prefix that cannot be projected (see [`projection_layout`]) is not an AWS
//! error but an invalid spec: `desired` records it in [`DesiredCatalog::problem`],
//! `diff` reports it as a change, and `create`/`update` fix what they can and
//! then return a permanent error carrying the explanation (so the pipeline is
//! `Stalled` with a message a person can act on).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_glue::types::{
    Column, CrawlerTargets, DatabaseInput, DeleteBehavior, S3Target, SchemaChangePolicy, SerDeInfo, StorageDescriptor,
    TableInput, UpdateBehavior,
};

use super::error::{absent_if_not_found, build_error, ok_if_not_found, ErrorKind};
use super::tagging::TagIndex;
use super::{
    compare_tags, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field, PipelineCtx,
    Refs, Shown, TAG_MANAGED_BY, UNKNOWN,
};
use crate::api::{CatalogMode, CatalogStatus, SalesPipelineStatus};
use crate::order::{EVENT_FIELDS, FIELDS};
use crate::partitions::{projection_layout, static_part, PrefixLayout, PARTITION_COLUMN};

/// Parameter marking databases and tables the operator defined (Glue tables cannot be tagged).
pub const MANAGED_MARKER: &str = TAG_MANAGED_BY;
const MANAGED_VALUE: &str = "sales-operator";

const TABLE_TYPE: &str = "EXTERNAL_TABLE";
const SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
const UPDATE_BEHAVIOR: &str = "UPDATE_IN_DATABASE";
const DELETE_BEHAVIOR: &str = "LOG";

/// A column of the Glue table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlueColumn {
    pub name: String,
    pub glue_type: String,
    pub comment: String,
}

/// A Glue table definition (what we send, and what we read back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    pub table_type: String,
    pub columns: Vec<GlueColumn>,
    pub partition_keys: Vec<GlueColumn>,
    pub location: String,
    pub input_format: String,
    pub output_format: String,
    pub serde: String,
    pub parameters: BTreeMap<String, String>,
}

/// A Glue crawler definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrawlerDef {
    pub name: String,
    pub role: String,
    pub database: String,
    pub s3_targets: Vec<String>,
    pub schedule: Option<String>,
    pub update_behavior: String,
    pub delete_behavior: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredCatalog {
    pub database: String,
    pub description: String,
    /// `None` until the account is known (tags are then not compared).
    pub database_arn: Option<String>,
    pub mode: CatalogMode,
    /// The orders table's name (ours in Projection mode, the crawler's in Crawler mode).
    pub table_name: String,
    /// Projection mode: the table we define.
    pub table: Option<TableDef>,
    /// Crawler mode: the crawler.
    pub crawler: Option<CrawlerDef>,
    /// The crawler's name in either mode (to find one left over from the other mode).
    pub crawler_name: String,
    /// Look for a crawler left over from Crawler mode ([`PipelineCtx::sweep`]).
    pub sweep: bool,
    pub crawler_arn: Option<String>,
    /// Why the spec cannot be satisfied (e.g. a prefix that cannot be projected).
    pub problem: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTable {
    pub def: TableDef,
    /// Defined by us (carries [`MANAGED_MARKER`]), not by a crawler or a person.
    pub owned: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedCrawler {
    pub def: CrawlerDef,
    /// `READY`, `RUNNING`, `STOPPING`.
    pub state: String,
    /// `None` when not read (account unknown).
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedCatalog {
    pub database: String,
    /// Created by us (carries [`MANAGED_MARKER`]); only such a database is deleted.
    pub owned: bool,
    /// `None` when not read (account unknown).
    pub database_tags: Option<BTreeMap<String, String>>,
    /// The mode it was observed for (readiness depends on it).
    pub mode: CatalogMode,
    pub table_name: String,
    pub table: Option<ObservedTable>,
    pub crawler: Option<ObservedCrawler>,
}

/// Glue calls of this component.
pub struct Catalogs<'a>(pub &'a aws_sdk_glue::Client, pub &'a TagIndex);

/// The table columns: the pipe's event fields, then the order's fields.
pub fn columns() -> Vec<GlueColumn> {
    EVENT_FIELDS
        .iter()
        .chain(FIELDS)
        .map(|f| GlueColumn {
            name: f.name.to_string(),
            glue_type: f.glue_type.to_string(),
            comment: f.comment.to_string(),
        })
        .collect()
}

/// The projection table for objects under `s3://bucket/` laid out as `layout`.
pub fn projection_table(name: &str, bucket: &str, layout: &PrefixLayout) -> TableDef {
    let location = format!("s3://{bucket}/{}", layout.static_part);
    let parameters = BTreeMap::from(
        [
            ("classification", "json".to_string()),
            ("projection.enabled", "true".to_string()),
            ("projection.dt.type", "date".to_string()),
            ("projection.dt.format", layout.date_format.clone()),
            // In days, not `NOW-1YEARS`: Athena reads both, Trino (Athena v3's engine, the local
            // route to the SQL) only DAYS and finer; 366 days is never shorter than a year.
            ("projection.dt.range", "NOW-366DAYS,NOW".to_string()),
            ("projection.dt.interval", "1".to_string()),
            ("projection.dt.interval.unit", layout.interval_unit.to_string()),
            ("storage.location.template", format!("{location}${{{PARTITION_COLUMN}}}{}", layout.suffix)),
            (MANAGED_MARKER, MANAGED_VALUE.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    TableDef {
        name: name.to_string(),
        table_type: TABLE_TYPE.to_string(),
        columns: columns(),
        partition_keys: vec![GlueColumn {
            name: PARTITION_COLUMN.to_string(),
            glue_type: "string".to_string(),
            comment: format!("delivery time partition ({})", layout.date_format),
        }],
        location,
        input_format: INPUT_FORMAT.to_string(),
        output_format: OUTPUT_FORMAT.to_string(),
        serde: SERDE.to_string(),
        parameters,
    }
}

fn glue_arn(ctx: &PipelineCtx, refs: &Refs, kind: &str, name: &str) -> Option<String> {
    let (partition, account) = (refs.partition.as_ref()?, refs.account.as_ref()?);
    Some(format!("arn:{partition}:glue:{}:{account}:{kind}/{name}", ctx.region))
}

/// Glue answers these while a crawler is busy: wait and try again rather than stall.
fn crawler_busy(mut e: AwsError) -> AwsError {
    if matches!(
        e.code.as_deref(),
        Some("CrawlerRunningException" | "SchedulerTransitioningException" | "CrawlerStoppingException")
    ) {
        e.kind = ErrorKind::Busy;
    }
    e
}

fn glue_column(c: &GlueColumn, operation: &'static str) -> Result<Column, AwsError> {
    Column::builder().name(&c.name).r#type(&c.glue_type).comment(&c.comment).build().map_err(build_error(operation))
}

fn observed_column(c: &Column) -> GlueColumn {
    GlueColumn {
        name: c.name.clone(),
        glue_type: c.r#type.clone().unwrap_or_default(),
        comment: c.comment.clone().unwrap_or_default(),
    }
}

/// The full table input (UpdateTable replaces the definition with it).
fn table_input(t: &TableDef, operation: &'static str) -> Result<TableInput, AwsError> {
    let columns = t.columns.iter().map(|c| glue_column(c, operation)).collect::<Result<Vec<_>, _>>()?;
    let partition_keys = t.partition_keys.iter().map(|c| glue_column(c, operation)).collect::<Result<Vec<_>, _>>()?;
    let storage = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(&t.location)
        .input_format(&t.input_format)
        .output_format(&t.output_format)
        .serde_info(SerDeInfo::builder().serialization_library(&t.serde).build())
        .build();
    TableInput::builder()
        .name(&t.name)
        .table_type(&t.table_type)
        .storage_descriptor(storage)
        .set_partition_keys(Some(partition_keys))
        .set_parameters(Some(t.parameters.clone().into_iter().collect()))
        .build()
        .map_err(build_error(operation))
}

fn crawler_targets(c: &CrawlerDef) -> CrawlerTargets {
    CrawlerTargets::builder()
        .set_s3_targets(Some(c.s3_targets.iter().map(|p| S3Target::builder().path(p).build()).collect()))
        .build()
}

fn schema_change_policy(c: &CrawlerDef) -> SchemaChangePolicy {
    SchemaChangePolicy::builder()
        .update_behavior(UpdateBehavior::from(c.update_behavior.as_str()))
        .delete_behavior(DeleteBehavior::from(c.delete_behavior.as_str()))
        .build()
}

fn crawler_description(c: &CrawlerDef) -> String {
    format!("Discovers the orders delivered to {} (managed by sales-operator)", c.s3_targets.join(", "))
}

/// What can differ in the catalog; all of it is changed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogField {
    /// The spec cannot be served (no Glue role in Crawler mode): reported, and an error.
    Spec,
    DatabaseTags,
    /// The projection table is missing: created.
    Table,
    TableType,
    TableColumns,
    TablePartitionKeys,
    TableLocation,
    TableFormats,
    TableSerde,
    TableParameters,
    /// Our projection table, in Crawler mode: deleted.
    StaleTable,
    /// The crawler is missing: created.
    Crawler,
    CrawlerRole,
    CrawlerDatabase,
    CrawlerTargets,
    CrawlerSchedule,
    CrawlerSchemaChangePolicy,
    CrawlerTags,
    /// The crawler, in Projection mode: deleted.
    StaleCrawler,
}

impl Field for CatalogField {
    fn name(&self) -> String {
        match self {
            CatalogField::Spec => "spec",
            CatalogField::DatabaseTags => "database.tags",
            CatalogField::Table => "table",
            CatalogField::TableType => "table.type",
            CatalogField::TableColumns => "table.columns",
            CatalogField::TablePartitionKeys => "table.partitionKeys",
            CatalogField::TableLocation => "table.location",
            CatalogField::TableFormats => "table.formats",
            CatalogField::TableSerde => "table.serde",
            CatalogField::TableParameters => "table.parameters",
            CatalogField::StaleTable => "staleTable",
            CatalogField::Crawler => "crawler",
            CatalogField::CrawlerRole => "crawler.role",
            CatalogField::CrawlerDatabase => "crawler.database",
            CatalogField::CrawlerTargets => "crawler.targets",
            CatalogField::CrawlerSchedule => "crawler.schedule",
            CatalogField::CrawlerSchemaChangePolicy => "crawler.schemaChangePolicy",
            CatalogField::CrawlerTags => "crawler.tags",
            CatalogField::StaleCrawler => "staleCrawler",
        }
        .into()
    }
}

fn table_changes(d: &TableDef, o: &TableDef, changes: &mut Vec<Diff<CatalogField>>) {
    let mut field = |name: CatalogField, differs: bool, from: &dyn Shown, to: &dyn Shown| {
        if differs {
            changes.push(Diff::new(name, from, to));
        }
    };
    field(CatalogField::TableType, o.table_type != d.table_type, &o.table_type, &d.table_type);
    field(CatalogField::TableColumns, o.columns != d.columns, &names(&o.columns), &names(&d.columns));
    field(
        CatalogField::TablePartitionKeys,
        o.partition_keys != d.partition_keys,
        &names(&o.partition_keys),
        &names(&d.partition_keys),
    );
    field(CatalogField::TableLocation, o.location != d.location, &o.location, &d.location);
    let formats = |t: &TableDef| (t.input_format.clone(), t.output_format.clone());
    field(CatalogField::TableFormats, formats(o) != formats(d), &formats(o), &formats(d));
    field(CatalogField::TableSerde, o.serde != d.serde, &o.serde, &d.serde);
    // Extra parameters (added by Glue or Athena) are left alone.
    let missing = missing_tags(&d.parameters, &o.parameters);
    field(
        CatalogField::TableParameters,
        !missing.is_empty(),
        &missing.keys().map(|k| (k, o.parameters.get(k))).collect::<BTreeMap<_, _>>(),
        &missing,
    );
}

fn names(columns: &[GlueColumn]) -> Vec<String> {
    columns.iter().map(|c| format!("{} {}", c.name, c.glue_type)).collect()
}

fn crawler_changes(d: &CrawlerDef, o: &CrawlerDef, changes: &mut Vec<Diff<CatalogField>>) {
    let mut field = |name: CatalogField, from: String, to: String| {
        if from != to {
            changes.push(Diff::new(name, from, to));
        }
    };
    field(CatalogField::CrawlerRole, o.role.clone(), d.role.clone());
    field(CatalogField::CrawlerDatabase, o.database.clone(), d.database.clone());
    field(CatalogField::CrawlerTargets, o.s3_targets.join(","), d.s3_targets.join(","));
    field(
        CatalogField::CrawlerSchedule,
        o.schedule.clone().unwrap_or_default(),
        d.schedule.clone().unwrap_or_default(),
    );
    field(
        CatalogField::CrawlerSchemaChangePolicy,
        format!("{}/{}", o.update_behavior, o.delete_behavior),
        format!("{}/{}", d.update_behavior, d.delete_behavior),
    );
}

/// The tags diff of a resource whose tags could be read (with an ARN known).
fn tag_change(
    field: CatalogField,
    desired: &BTreeMap<String, String>,
    observed: &Option<BTreeMap<String, String>>,
    changes: &mut Vec<Diff<CatalogField>>,
) {
    if let Some(observed) = observed {
        compare_tags(changes, field, desired, observed);
    }
}

impl Catalogs<'_> {
    async fn tags(
        &self,
        arn: &Option<String>,
        desired: &BTreeMap<String, String>,
    ) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        let Some(arn) = arn else { return Ok(None) };
        if let Some(tags) = self.1.covering(arn, desired) {
            return Ok(Some(tags));
        }
        let out = self.0.get_tags().resource_arn(arn).send().await.aws("GetTags")?;
        Ok(Some(out.tags.unwrap_or_default().into_iter().collect()))
    }

    async fn tag(
        &self,
        arn: &Option<String>,
        desired: &BTreeMap<String, String>,
        observed: &Option<BTreeMap<String, String>>,
    ) -> Result<(), AwsError> {
        let (Some(arn), Some(observed)) = (arn, observed) else {
            return Ok(());
        };
        let missing: HashMap<_, _> = missing_tags(desired, observed).into_iter().collect();
        self.0.tag_resource().resource_arn(arn).set_tags_to_add(Some(missing)).send().await.aws("TagResource")?;
        Ok(())
    }

    async fn create_table(&self, d: &DesiredCatalog, t: &TableDef) -> Result<(), AwsError> {
        let result = self
            .0
            .create_table()
            .database_name(&d.database)
            .table_input(table_input(t, "CreateTable")?)
            .send()
            .await
            .aws("CreateTable");
        match result {
            // Someone else's table of that name (e.g. made by a crawler): take it
            // over with our definition.
            Err(e) if e.is_conflict() => self.update_table(d, t).await,
            other => other.map(|_| ()),
        }
    }

    async fn update_table(&self, d: &DesiredCatalog, t: &TableDef) -> Result<(), AwsError> {
        self.0
            .update_table()
            .database_name(&d.database)
            .table_input(table_input(t, "UpdateTable")?)
            .send()
            .await
            .aws("UpdateTable")?;
        Ok(())
    }

    async fn create_crawler(&self, d: &DesiredCatalog, c: &CrawlerDef) -> Result<(), AwsError> {
        let mut req = self
            .0
            .create_crawler()
            .name(&c.name)
            .role(&c.role)
            .database_name(&c.database)
            .description(crawler_description(c))
            .targets(crawler_targets(c))
            .schema_change_policy(schema_change_policy(c))
            .set_tags(Some(d.tags.clone().into_iter().collect()));
        if let Some(schedule) = &c.schedule {
            req = req.schedule(schedule);
        }
        req.send().await.aws("CreateCrawler").map(|_| ())
    }

    /// UpdateCrawler with the full definition (schedule included).
    async fn update_crawler(&self, c: &CrawlerDef) -> Result<(), AwsError> {
        let mut req = self
            .0
            .update_crawler()
            .name(&c.name)
            .role(&c.role)
            .database_name(&c.database)
            .description(crawler_description(c))
            .targets(crawler_targets(c))
            .schema_change_policy(schema_change_policy(c));
        if let Some(schedule) = &c.schedule {
            req = req.schedule(schedule);
        }
        req.send().await.aws("UpdateCrawler").map_err(crawler_busy)?;
        Ok(())
    }

    async fn delete_crawler(&self, c: &ObservedCrawler) -> Result<(), AwsError> {
        if c.state == "RUNNING" {
            match self.0.stop_crawler().name(&c.def.name).send().await.aws("StopCrawler") {
                Err(e) if e.code.as_deref() == Some("CrawlerNotRunningException") || e.is_not_found() => {}
                other => {
                    other.map_err(crawler_busy)?;
                }
            }
        }
        ok_if_not_found(
            self.0.delete_crawler().name(&c.def.name).send().await.aws("DeleteCrawler").map_err(crawler_busy),
        )
    }

    async fn delete_table(&self, database: &str, table: &str) -> Result<(), AwsError> {
        ok_if_not_found(self.0.delete_table().database_name(database).name(table).send().await.aws("DeleteTable"))
    }
}

/// What the spec wants that it cannot have.
fn problem(ctx: &PipelineCtx, refs: &Refs) -> Option<String> {
    let iam = &ctx.spec.iam;
    let no_role = !iam.create_roles && iam.glue_role_arn.is_none() && refs.glue_role_arn.is_none();
    match ctx.spec.catalog.mode {
        CatalogMode::Projection => projection_layout(&ctx.spec.delivery.prefix).err(),
        CatalogMode::Crawler if no_role => Some(
            "catalog mode Crawler needs a role for the crawler: \
             set spec.iam.glueRoleArn (createRoles is false)"
                .to_string(),
        ),
        CatalogMode::Crawler => None,
    }
}

/// The calls an update makes, from the fields that changed.
#[derive(Default)]
struct CatalogCalls {
    database_tags: bool,
    create_table: bool,
    update_table: bool,
    delete_table: bool,
    create_crawler: bool,
    update_crawler: bool,
    crawler_tags: bool,
    delete_crawler: bool,
}

impl Component for Catalogs<'_> {
    type Desired = DesiredCatalog;
    type Observed = ObservedCatalog;
    type Field = CatalogField;
    const KIND: ComponentKind = ComponentKind::Catalog;

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> DesiredCatalog {
        let names = &ctx.names;
        let problem = problem(ctx, refs);
        let table = match (ctx.spec.catalog.mode, projection_layout(&ctx.spec.delivery.prefix)) {
            (CatalogMode::Projection, Ok(layout)) => Some(projection_table(&names.glue_table, &names.bucket, &layout)),
            _ => None,
        };
        let crawler = (ctx.spec.catalog.mode == CatalogMode::Crawler && problem.is_none()).then(|| CrawlerDef {
            name: names.crawler.clone(),
            role: refs
                .glue_role_arn
                .clone()
                .or_else(|| ctx.spec.iam.glue_role_arn.clone())
                .unwrap_or_else(|| UNKNOWN.to_string()),
            database: names.database.clone(),
            s3_targets: vec![format!("s3://{}/{}", names.bucket, static_part(&ctx.spec.delivery.prefix))],
            schedule: Some(ctx.spec.catalog.crawler_schedule.clone()),
            update_behavior: UPDATE_BEHAVIOR.to_string(),
            delete_behavior: DELETE_BEHAVIOR.to_string(),
        });
        DesiredCatalog {
            database: names.database.clone(),
            description: format!("Sales orders of pipeline {} (managed by sales-operator)", names.prefix),
            database_arn: glue_arn(ctx, refs, "database", &names.database),
            mode: ctx.spec.catalog.mode,
            table_name: names.glue_table.clone(),
            table,
            crawler,
            crawler_name: names.crawler.clone(),
            sweep: ctx.sweep,
            crawler_arn: glue_arn(ctx, refs, "crawler", &names.crawler),
            problem,
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredCatalog) -> String {
        match d.mode {
            CatalogMode::Projection => {
                format!("glue database {} and table {}", d.database, d.table_name)
            }
            CatalogMode::Crawler => format!("glue database {} and crawler {}", d.database, d.crawler_name),
        }
    }

    async fn observe(&self, d: &DesiredCatalog) -> Result<Option<ObservedCatalog>, AwsError> {
        let db = absent_if_not_found(self.0.get_database().name(&d.database).send().await.aws("GetDatabase"))?;
        let Some(db) = db.and_then(|o| o.database) else {
            return Ok(None);
        };
        let owned = db.parameters.as_ref().and_then(|p| p.get(MANAGED_MARKER)).is_some_and(|v| v == MANAGED_VALUE);
        let database_tags = self.tags(&d.database_arn, &d.tags).await?;

        let table = absent_if_not_found(
            self.0.get_table().database_name(&d.database).name(&d.table_name).send().await.aws("GetTable"),
        )?
        .and_then(|o| o.table)
        .map(|t| {
            let storage = t.storage_descriptor.as_ref();
            let parameters: BTreeMap<String, String> = t.parameters.clone().unwrap_or_default().into_iter().collect();
            ObservedTable {
                owned: parameters.get(MANAGED_MARKER).is_some_and(|v| v == MANAGED_VALUE),
                def: TableDef {
                    name: t.name.clone(),
                    table_type: t.table_type.clone().unwrap_or_default(),
                    columns: storage.map(|s| s.columns().iter().map(observed_column).collect()).unwrap_or_default(),
                    partition_keys: t.partition_keys().iter().map(observed_column).collect(),
                    location: storage.and_then(|s| s.location.clone()).unwrap_or_default(),
                    input_format: storage.and_then(|s| s.input_format.clone()).unwrap_or_default(),
                    output_format: storage.and_then(|s| s.output_format.clone()).unwrap_or_default(),
                    serde: storage
                        .and_then(|s| s.serde_info.as_ref())
                        .and_then(|s| s.serialization_library.clone())
                        .unwrap_or_default(),
                    parameters,
                },
            }
        });

        let crawler = if d.crawler.is_some() || d.sweep {
            absent_if_not_found(self.0.get_crawler().name(&d.crawler_name).send().await.aws("GetCrawler"))?
                .and_then(|o| o.crawler)
        } else {
            None
        };
        let crawler = match crawler {
            None => None,
            Some(c) => {
                let policy = c.schema_change_policy.as_ref();
                Some(ObservedCrawler {
                    def: CrawlerDef {
                        name: c.name.clone().unwrap_or_else(|| d.crawler_name.clone()),
                        role: c.role.clone().unwrap_or_default(),
                        database: c.database_name.clone().unwrap_or_default(),
                        s3_targets: c
                            .targets
                            .as_ref()
                            .map(|t| t.s3_targets().iter().filter_map(|s| s.path.clone()).collect())
                            .unwrap_or_default(),
                        schedule: c.schedule.as_ref().and_then(|s| s.schedule_expression.clone()),
                        update_behavior: policy
                            .and_then(|p| p.update_behavior.as_ref())
                            .map(|b| b.as_str().to_string())
                            .unwrap_or_default(),
                        delete_behavior: policy
                            .and_then(|p| p.delete_behavior.as_ref())
                            .map(|b| b.as_str().to_string())
                            .unwrap_or_default(),
                    },
                    state: c.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    tags: self.tags(&d.crawler_arn, &d.tags).await?,
                })
            }
        };

        Ok(Some(ObservedCatalog {
            database: d.database.clone(),
            owned,
            database_tags,
            mode: d.mode,
            table_name: d.table_name.clone(),
            table,
            crawler,
        }))
    }

    fn diff(d: &DesiredCatalog, o: &ObservedCatalog) -> Vec<Diff<CatalogField>> {
        let mut changes = Vec::new();
        if let Some(problem) = &d.problem {
            changes.push(Diff::new(CatalogField::Spec, "", problem));
        }
        tag_change(CatalogField::DatabaseTags, &d.tags, &o.database_tags, &mut changes);
        match (&d.table, &o.table) {
            (Some(_), None) => changes.push(Diff::new(CatalogField::Table, "absent", &d.table_name)),
            (Some(want), Some(have)) => table_changes(want, &have.def, &mut changes),
            // Crawler mode: our projection table goes; the crawler's own table stays.
            (None, Some(have)) if d.mode == CatalogMode::Crawler && have.owned => {
                changes.push(Diff::new(CatalogField::StaleTable, &have.def.name, "absent"))
            }
            (None, _) => {}
        }
        match (&d.crawler, &o.crawler) {
            (Some(want), None) => changes.push(Diff::new(CatalogField::Crawler, "absent", &want.name)),
            (Some(want), Some(have)) => {
                crawler_changes(want, &have.def, &mut changes);
                tag_change(CatalogField::CrawlerTags, &d.tags, &have.tags, &mut changes);
            }
            (None, Some(have)) if d.mode == CatalogMode::Projection => {
                changes.push(Diff::new(CatalogField::StaleCrawler, &have.def.name, "absent"))
            }
            (None, _) => {}
        }
        changes
    }

    async fn create(&self, d: &DesiredCatalog) -> Result<(), AwsError> {
        let database = DatabaseInput::builder()
            .name(&d.database)
            .description(&d.description)
            .parameters(MANAGED_MARKER, MANAGED_VALUE)
            .build()
            .map_err(build_error("CreateDatabase"))?;
        let result = self
            .0
            .create_database()
            .database_input(database)
            .set_tags(Some(d.tags.clone().into_iter().collect()))
            .send()
            .await
            .aws("CreateDatabase");
        // A conflict (it appeared since the observe) is judged by the reconciler.
        result?;
        if let Some(table) = &d.table {
            self.create_table(d, table).await?;
        }
        if let Some(crawler) = &d.crawler {
            require_role(crawler, "CreateCrawler")?;
            self.create_crawler(d, crawler).await?;
        }
        match &d.problem {
            Some(problem) => Err(AwsError::permanent("CatalogSpec", problem.clone())),
            None => Ok(()),
        }
    }

    async fn update(
        &self,
        d: &DesiredCatalog,
        o: &ObservedCatalog,
        changes: &[Diff<CatalogField>],
    ) -> Result<(), AwsError> {
        // Each field to the call that applies it; the parts of a table or crawler share one call.
        let mut calls = CatalogCalls::default();
        for change in changes {
            match change.field {
                // Returned as a permanent error below, whatever else changed.
                CatalogField::Spec => {}
                CatalogField::DatabaseTags => calls.database_tags = true,
                CatalogField::Table => calls.create_table = true,
                CatalogField::TableType
                | CatalogField::TableColumns
                | CatalogField::TablePartitionKeys
                | CatalogField::TableLocation
                | CatalogField::TableFormats
                | CatalogField::TableSerde
                | CatalogField::TableParameters => calls.update_table = true,
                CatalogField::StaleTable => calls.delete_table = true,
                CatalogField::Crawler => calls.create_crawler = true,
                CatalogField::CrawlerRole
                | CatalogField::CrawlerDatabase
                | CatalogField::CrawlerTargets
                | CatalogField::CrawlerSchedule
                | CatalogField::CrawlerSchemaChangePolicy => calls.update_crawler = true,
                CatalogField::CrawlerTags => calls.crawler_tags = true,
                CatalogField::StaleCrawler => calls.delete_crawler = true,
            }
        }
        if calls.database_tags {
            self.tag(&d.database_arn, &d.tags, &o.database_tags).await?;
        }
        if let Some(table) = &d.table {
            if calls.create_table {
                self.create_table(d, table).await?;
            } else if calls.update_table {
                self.update_table(d, table).await?;
            }
        }
        if let Some(crawler) = &d.crawler {
            if calls.create_crawler {
                require_role(crawler, "CreateCrawler")?;
                self.create_crawler(d, crawler).await?;
            } else {
                if calls.update_crawler {
                    require_role(crawler, "UpdateCrawler")?;
                    self.update_crawler(crawler).await?;
                }
                if calls.crawler_tags {
                    self.tag(&d.crawler_arn, &d.tags, &o.crawler.as_ref().and_then(|c| c.tags.clone())).await?;
                }
            }
        }
        // The new part exists now; remove the one of the other mode.
        if calls.delete_crawler {
            if let Some(crawler) = &o.crawler {
                self.delete_crawler(crawler).await?;
            }
        }
        if calls.delete_table {
            self.delete_table(&d.database, &d.table_name).await?;
        }
        match &d.problem {
            Some(problem) => Err(AwsError::permanent("CatalogSpec", problem.clone())),
            None => Ok(()),
        }
    }

    async fn delete(&self, o: &ObservedCatalog) -> Result<(), AwsError> {
        if let Some(crawler) = &o.crawler {
            self.delete_crawler(crawler).await?;
        }
        if o.table.is_some() {
            self.delete_table(&o.database, &o.table_name).await?;
        }
        // A database we did not create (named in the spec, pre-existing) keeps its other tables.
        if o.owned {
            ok_if_not_found(self.0.delete_database().name(&o.database).send().await.aws("DeleteDatabase"))?;
        }
        Ok(())
    }

    fn claims(o: &ObservedCatalog) -> Vec<Claim<'_>> {
        let mut claims = vec![Claim::new(
            format!("glue database {}", o.database),
            o.database_tags.as_ref().unwrap_or(&super::NO_TAGS),
        )];
        if let Some(c) = &o.crawler {
            claims.push(Claim::new(format!("glue crawler {}", c.def.name), c.tags.as_ref().unwrap_or(&super::NO_TAGS)));
        }
        claims
    }

    fn publish(_o: &ObservedCatalog, _refs: &mut Refs) {}

    fn report(o: &ObservedCatalog, status: &mut SalesPipelineStatus) {
        status.catalog = Some(CatalogStatus {
            database: o.database.clone(),
            table: o.table_name.clone(),
            crawler: o.crawler.as_ref().map(|c| c.def.name.clone()),
        });
    }

    fn readiness(o: &ObservedCatalog) -> Result<(), String> {
        match o.mode {
            CatalogMode::Projection if o.table.is_none() => {
                Err(format!("glue table {}.{} does not exist yet", o.database, o.table_name))
            }
            CatalogMode::Crawler if o.crawler.is_none() => {
                Err(format!("glue crawler for database {} does not exist yet", o.database))
            }
            _ => Ok(()),
        }
    }
}

/// The crawler's role must be known before it is sent to AWS.
fn require_role(c: &CrawlerDef, operation: &'static str) -> Result<(), AwsError> {
    if c.role == UNKNOWN {
        return Err(AwsError {
            operation,
            code: None,
            message: "the Glue crawler role ARN is not known yet (its component does not exist)".into(),
            status: None,
            kind: ErrorKind::Transient,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};

    use super::*;
    use crate::api::SalesPipelineSpec;

    fn refs() -> Refs {
        Refs {
            partition: Some("aws".into()),
            account: Some("123456789012".into()),
            glue_role_arn: Some("arn:aws:iam::123456789012:role/g".into()),
            ..Refs::default()
        }
    }

    fn desired_for(spec: &SalesPipelineSpec) -> DesiredCatalog {
        Catalogs::desired(&PipelineCtx::new("shop", "sales", spec, "eu-west-1"), &refs())
    }

    fn crawler_spec() -> SalesPipelineSpec {
        let mut spec = SalesPipelineSpec::default();
        spec.catalog.mode = CatalogMode::Crawler;
        spec
    }

    fn observed(d: &DesiredCatalog) -> ObservedCatalog {
        ObservedCatalog {
            database: d.database.clone(),
            owned: true,
            database_tags: Some(d.tags.clone()),
            mode: d.mode,
            table_name: d.table_name.clone(),
            table: d.table.clone().map(|def| ObservedTable { def, owned: true }),
            crawler: d.crawler.clone().map(|def| ObservedCrawler {
                def,
                state: "READY".into(),
                tags: Some(d.tags.clone()),
            }),
        }
    }

    fn fields(changes: Vec<Diff<CatalogField>>) -> Vec<String> {
        changes.into_iter().map(|c| c.field.name()).collect()
    }

    #[test]
    fn projection_table_has_order_columns_and_dt_projection() {
        let d = desired_for(&SalesPipelineSpec::default());
        let t = d.table.as_ref().unwrap();
        let bucket = &PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1").names.bucket;
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let expected: Vec<_> = EVENT_FIELDS.iter().chain(FIELDS).map(|f| f.name).collect();
        assert_eq!(names, expected);
        assert_eq!(t.columns.iter().find(|c| c.name == "price").unwrap().glue_type, "decimal(10,2)");
        assert_eq!(
            t.partition_keys.iter().map(|c| (c.name.as_str(), c.glue_type.as_str())).collect::<Vec<_>>(),
            vec![("dt", "string")]
        );
        assert_eq!(t.table_type, "EXTERNAL_TABLE");
        assert_eq!(t.serde, SERDE);
        assert_eq!((t.input_format.as_str(), t.output_format.as_str()), (INPUT_FORMAT, OUTPUT_FORMAT));
        assert_eq!(t.location, format!("s3://{bucket}/orders/"));
        let p = |k: &str| t.parameters.get(k).map(String::as_str);
        assert_eq!(p("classification"), Some("json"));
        assert_eq!(p("projection.enabled"), Some("true"));
        assert_eq!(p("projection.dt.type"), Some("date"));
        assert_eq!(p("projection.dt.format"), Some("yyyy/MM/dd/HH"));
        assert_eq!(p("projection.dt.range"), Some("NOW-366DAYS,NOW"));
        assert_eq!(p("projection.dt.interval"), Some("1"));
        assert_eq!(p("projection.dt.interval.unit"), Some("HOURS"));
        assert_eq!(p("storage.location.template"), Some(format!("s3://{bucket}/orders/${{dt}}/").as_str()));
        assert_eq!(p(MANAGED_MARKER), Some("sales-operator"));
        assert!(d.crawler.is_none());
        assert!(d.problem.is_none());
    }

    #[test]
    fn crawler_mode_wants_a_crawler_and_no_table() {
        let d = desired_for(&crawler_spec());
        assert!(d.table.is_none());
        let c = d.crawler.unwrap();
        assert_eq!(c.role, "arn:aws:iam::123456789012:role/g");
        assert_eq!(c.database, d.database);
        assert!(c.s3_targets[0].starts_with("s3://") && c.s3_targets[0].ends_with("/orders/"));
        assert_eq!(c.schedule.as_deref(), Some("cron(0 * * * ? *)"));
        assert_eq!((c.update_behavior.as_str(), c.delete_behavior.as_str()), ("UPDATE_IN_DATABASE", "LOG"));
        assert_eq!(d.database_arn.as_deref(), Some("arn:aws:glue:eu-west-1:123456789012:database/shop_sales_sales"));
    }

    #[test]
    fn unprojectable_prefix_is_a_problem_reported_as_a_change() {
        let mut spec = SalesPipelineSpec::default();
        spec.delivery.prefix = "orders/".into();
        let d = desired_for(&spec);
        assert!(d.table.is_none());
        assert!(d.problem.as_deref().unwrap().contains("cannot be used for partition projection"));
        assert_eq!(fields(Catalogs::diff(&d, &observed(&d))), vec!["spec"]);
        // The same prefix is fine for a crawler.
        spec.catalog.mode = CatalogMode::Crawler;
        assert!(desired_for(&spec).problem.is_none());
    }

    #[test]
    fn in_sync_catalog_has_no_changes_in_either_mode() {
        for spec in [SalesPipelineSpec::default(), crawler_spec()] {
            let d = desired_for(&spec);
            assert!(Catalogs::diff(&d, &observed(&d)).is_empty());
        }
    }

    #[test]
    fn missing_table_or_crawler_is_created_by_update() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        o.table = None;
        assert_eq!(fields(Catalogs::diff(&d, &o)), vec!["table"]);
        let d = desired_for(&crawler_spec());
        let mut o = observed(&d);
        o.crawler = None;
        assert_eq!(fields(Catalogs::diff(&d, &o)), vec!["crawler"]);
    }

    #[test]
    fn each_table_drift_is_reported_alone() {
        let d = desired_for(&SalesPipelineSpec::default());
        type Mutation = fn(&mut TableDef);
        let cases: Vec<(&str, Mutation)> = vec![
            ("table.type", |t| t.table_type = "VIRTUAL_VIEW".into()),
            ("table.columns", |t| {
                t.columns.pop();
            }),
            ("table.partitionKeys", |t| t.partition_keys.clear()),
            ("table.location", |t| t.location = "s3://other/".into()),
            ("table.formats", |t| t.input_format = "x".into()),
            ("table.serde", |t| t.serde = "org.apache.hive.hcatalog.data.JsonSerDe".into()),
            ("table.parameters", |t| {
                t.parameters.insert("projection.dt.format".into(), "yyyy".into());
            }),
        ];
        for (field, change) in cases {
            let mut o = observed(&d);
            if let Some(t) = o.table.as_mut() {
                change(&mut t.def);
            }
            assert_eq!(fields(Catalogs::diff(&d, &o)), vec![field], "{field}");
        }
    }

    #[test]
    fn each_crawler_drift_is_reported_alone() {
        let d = desired_for(&crawler_spec());
        type Mutation = fn(&mut ObservedCrawler);
        let cases: Vec<(&str, Mutation)> = vec![
            ("crawler.role", |c| c.def.role = "arn:aws:iam::123456789012:role/x".into()),
            ("crawler.database", |c| c.def.database = "x".into()),
            ("crawler.targets", |c| c.def.s3_targets.clear()),
            ("crawler.schedule", |c| c.def.schedule = Some("cron(0 0 * * ? *)".into())),
            ("crawler.schemaChangePolicy", |c| c.def.delete_behavior = "DELETE_FROM_DATABASE".into()),
            ("crawler.tags", |c| c.tags = Some(BTreeMap::new())),
        ];
        for (field, change) in cases {
            let mut o = observed(&d);
            if let Some(c) = o.crawler.as_mut() {
                change(c);
            }
            assert_eq!(fields(Catalogs::diff(&d, &o)), vec![field], "{field}");
        }
    }

    #[test]
    fn foreign_tags_and_extra_table_parameters_are_ignored() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        o.database_tags.as_mut().unwrap().insert("owner".into(), "data-team".into());
        o.table.as_mut().unwrap().def.parameters.insert("transient_lastDdlTime".into(), "1".into());
        assert!(Catalogs::diff(&d, &o).is_empty());
        let mut o = observed(&d);
        o.database_tags.as_mut().unwrap().clear();
        assert_eq!(fields(Catalogs::diff(&d, &o)), vec!["database.tags"]);
    }

    #[test]
    fn switching_mode_removes_our_part_of_the_other_mode_only() {
        // Projection -> Crawler: our table goes, a crawler comes.
        let projection = desired_for(&SalesPipelineSpec::default());
        let crawler = desired_for(&crawler_spec());
        let o = observed(&projection);
        assert_eq!(fields(Catalogs::diff(&crawler, &o)), vec!["staleTable", "crawler"]);
        // A table made by the crawler is not ours: it stays.
        let mut o = observed(&crawler);
        o.table = Some(ObservedTable { def: projection.table.clone().unwrap(), owned: false });
        assert!(Catalogs::diff(&crawler, &o).is_empty());
        // Crawler -> Projection: the table comes, the crawler goes.
        let o = observed(&crawler);
        assert_eq!(fields(Catalogs::diff(&projection, &o)), vec!["table", "staleCrawler"]);
    }

    #[test]
    fn crawler_mode_without_any_role_is_a_problem() {
        let mut spec = crawler_spec();
        spec.iam.create_roles = false;
        let d = Catalogs::desired(&PipelineCtx::new("shop", "sales", &spec, "eu-west-1"), &Refs::default());
        assert!(d.problem.unwrap().contains("glueRoleArn"));
    }

    #[test]
    fn readiness_needs_the_part_of_the_mode() {
        let d = desired_for(&SalesPipelineSpec::default());
        let mut o = observed(&d);
        assert!(Catalogs::readiness(&o).is_ok());
        o.table = None;
        assert!(Catalogs::readiness(&o).is_err());
    }

    fn mock_glue(rules: &[&Rule]) -> aws_sdk_glue::Client {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_glue::Config::builder()
            .behavior_version(aws_sdk_glue::config::BehaviorVersion::latest())
            .region(aws_sdk_glue::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_glue::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_glue::Client::from_conf(config)
    }

    #[tokio::test]
    async fn schedule_drift_sends_update_crawler_with_the_full_definition() {
        let d = desired_for(&crawler_spec());
        let want = d.crawler.clone().unwrap();
        let mut o = observed(&d);
        if let Some(c) = o.crawler.as_mut() {
            c.def.schedule = Some("cron(0 0 * * ? *)".into());
        }
        let changes = Catalogs::diff(&d, &o);
        assert_eq!(fields(changes.clone()), vec!["crawler.schedule"]);
        let expected = want.clone();
        let rule = mock!(aws_sdk_glue::Client::update_crawler)
            .match_requests(move |req| {
                let targets: Vec<_> =
                    req.targets().map(|t| t.s3_targets().iter().filter_map(|s| s.path()).collect()).unwrap_or_default();
                let policy = req.schema_change_policy();
                req.name() == Some(expected.name.as_str())
                    && req.role() == Some(expected.role.as_str())
                    && req.database_name() == Some(expected.database.as_str())
                    && targets == expected.s3_targets.iter().map(String::as_str).collect::<Vec<_>>()
                    && req.schedule() == Some("cron(0 * * * ? *)")
                    && policy.and_then(|p| p.update_behavior()) == Some(&UpdateBehavior::UpdateInDatabase)
                    && policy.and_then(|p| p.delete_behavior()) == Some(&DeleteBehavior::Log)
            })
            .then_output(|| aws_sdk_glue::operation::update_crawler::UpdateCrawlerOutput::builder().build());
        let client = mock_glue(&[&rule]);
        Catalogs(&client, &TagIndex::default()).update(&d, &o, &changes).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn table_drift_sends_update_table_with_the_full_definition() {
        let d = desired_for(&SalesPipelineSpec::default());
        let want = d.table.clone().unwrap();
        let mut o = observed(&d);
        if let Some(t) = o.table.as_mut() {
            t.def.parameters.remove("projection.dt.format");
        }
        let changes = Catalogs::diff(&d, &o);
        let database = d.database.clone();
        let rule = mock!(aws_sdk_glue::Client::update_table)
            .match_requests(move |req| {
                let Some(input) = req.table_input() else {
                    return false;
                };
                let storage = input.storage_descriptor();
                req.database_name() == Some(database.as_str())
                    && input.name() == want.name
                    && storage.map(|s| s.columns().len()) == Some(want.columns.len())
                    && storage.and_then(|s| s.location()) == Some(want.location.as_str())
                    && input.partition_keys().len() == 1
                    && input.parameters().map(|p| p.len()) == Some(want.parameters.len())
                    && input.parameters().and_then(|p| p.get("projection.dt.format")).map(String::as_str)
                        == Some("yyyy/MM/dd/HH")
            })
            .then_output(|| aws_sdk_glue::operation::update_table::UpdateTableOutput::builder().build());
        let client = mock_glue(&[&rule]);
        Catalogs(&client, &TagIndex::default()).update(&d, &o, &changes).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }
}
