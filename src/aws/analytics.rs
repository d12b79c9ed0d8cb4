//! The Athena workgroup and the built-in analysis queries installed in it.
//!
//! Named queries are identified by name within the workgroup. Athena allows
//! several queries of one name, so duplicates of a built-in name are deleted
//! (one is kept). Only queries whose name is a built-in query name are ever
//! changed or deleted; a person's own queries in the workgroup are left alone.
//!
//! UpdateNamedQuery cannot move a query to another database: a changed
//! database is a create of the new query followed by a delete of the old one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_config::retry::RetryConfig;

use aws_sdk_athena::types::{
    EncryptionConfiguration, EncryptionOption, ResultConfiguration, ResultConfigurationUpdates, Tag,
    WorkGroupConfiguration, WorkGroupConfigurationUpdates, WorkGroupState,
};

use super::error::build_error;
use super::tagging::TagIndex;
use super::{
    compare, compare_tags, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Field,
    PipelineCtx, Refs,
};
use crate::api::{AnalyticsStatus, Encryption, SalesPipelineStatus};
use crate::named_queries;

/// A named query as the pipeline wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredQuery {
    pub name: String,
    pub description: String,
    pub database: String,
    pub sql: String,
}

/// A named query found in the workgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedQuery {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub database: String,
    pub sql: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAnalytics {
    pub workgroup: String,
    /// `None` until the account is known (tags are then not compared).
    pub arn: Option<String>,
    pub description: String,
    pub result_location: String,
    /// `SSE_S3` or `SSE_KMS`.
    pub encryption: String,
    pub kms_key: Option<String>,
    pub enforce_configuration: bool,
    pub publish_metrics: bool,
    pub bytes_scanned_cutoff: i64,
    pub queries: Vec<DesiredQuery>,
    /// Names in `spec.analytics.namedQueries` that are not built-in queries.
    pub unknown_queries: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedAnalytics {
    pub workgroup: String,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    pub result_location: Option<String>,
    pub encryption: Option<String>,
    pub kms_key: Option<String>,
    pub enforce_configuration: Option<bool>,
    pub publish_metrics: Option<bool>,
    pub bytes_scanned_cutoff: Option<i64>,
    pub queries: Vec<ObservedQuery>,
    /// `None` when not read (account unknown).
    pub tags: Option<BTreeMap<String, String>>,
}

/// Athena calls of this component.
pub struct Workgroups<'a>(pub &'a aws_sdk_athena::Client, pub &'a TagIndex, pub &'a BatchGets);

/// Whether the endpoint implements BatchGetNamedQuery: AWS does, a local emulator may not
/// (moto answers an HTML 500). Shared by the clients of one region; once an answer without an
/// AWS error code shows the call is missing, the queries are read one GetNamedQuery each.
#[derive(Clone, Debug)]
pub struct BatchGets(Arc<AtomicBool>);

impl Default for BatchGets {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl BatchGets {
    pub fn available(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn unavailable(&self, e: &AwsError) {
        if self.0.swap(false, Ordering::Relaxed) {
            tracing::debug!(error = %e, "BatchGetNamedQuery is not implemented by this endpoint; reading named queries one by one");
        }
    }
}

/// Most named query ids one BatchGetNamedQuery takes.
const BATCH_GET_MAX: usize = 50;

fn observed_query(q: aws_sdk_athena::types::NamedQuery, id: String) -> ObservedQuery {
    ObservedQuery {
        id: q.named_query_id.unwrap_or(id),
        name: q.name,
        description: q.description,
        database: q.database,
        sql: q.query_string,
    }
}

/// What can differ on the workgroup and its named queries; all of it is changed in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnalyticsField {
    State,
    ResultLocation,
    ResultEncryption,
    EnforceConfiguration,
    PublishMetrics,
    BytesScannedCutoff,
    /// One built-in named query, by name (`namedQuery.top_products.sql`).
    NamedQuery(String, QueryPart),
    /// `spec.analytics.namedQueries` names queries that are not built in: reported, and an error.
    NamedQueries,
    Tags,
}

/// What differs about one named query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryPart {
    /// Wanted and absent: created.
    Missing,
    /// In another database: created anew, the old one deleted.
    Database,
    Sql,
    Description,
    /// More than one of that name: the extra ones deleted.
    Duplicates,
    /// A built-in query no longer wanted: deleted.
    Unwanted,
}

impl Field for AnalyticsField {
    fn name(&self) -> String {
        match self {
            AnalyticsField::State => "state".into(),
            AnalyticsField::ResultLocation => "resultLocation".into(),
            AnalyticsField::ResultEncryption => "resultEncryption".into(),
            AnalyticsField::EnforceConfiguration => "enforceConfiguration".into(),
            AnalyticsField::PublishMetrics => "publishMetrics".into(),
            AnalyticsField::BytesScannedCutoff => "bytesScannedCutoff".into(),
            AnalyticsField::NamedQuery(name, part) => match part {
                QueryPart::Missing | QueryPart::Unwanted => format!("namedQuery.{name}"),
                QueryPart::Database => format!("namedQuery.{name}.database"),
                QueryPart::Sql => format!("namedQuery.{name}.sql"),
                QueryPart::Description => format!("namedQuery.{name}.description"),
                QueryPart::Duplicates => format!("namedQuery.{name}.duplicates"),
            },
            AnalyticsField::NamedQueries => "namedQueries".into(),
            AnalyticsField::Tags => "tags".into(),
        }
    }
}

/// One named-query call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryAction {
    Create(DesiredQuery),
    Update { id: String, query: DesiredQuery },
    Delete { id: String },
}

/// Whether `name` is one of ours (a built-in query name).
fn is_built_in(name: &str) -> bool {
    named_queries::find(name).is_some()
}

/// What to do with the named queries, grouped by the change each group repairs.
/// Pure: `diff` reports the changes, `update` runs the actions of the changes it is given.
pub fn plan_queries(d: &DesiredAnalytics, o: &ObservedAnalytics) -> Vec<(Diff<AnalyticsField>, Vec<QueryAction>)> {
    let mut by_name: BTreeMap<&str, Vec<&ObservedQuery>> = BTreeMap::new();
    for q in &o.queries {
        by_name.entry(q.name.as_str()).or_default().push(q);
    }
    let mut plan = Vec::new();
    for want in &d.queries {
        let field = |part| AnalyticsField::NamedQuery(want.name.clone(), part);
        let found = by_name.remove(want.name.as_str()).unwrap_or_default();
        // Keep an exact match if there is one, else the first; the rest are duplicates.
        let exact = |q: &&ObservedQuery| {
            q.sql == want.sql && q.database == want.database && q.description.as_deref() == Some(&want.description)
        };
        let keep = found.iter().position(exact).or(if found.is_empty() { None } else { Some(0) });
        let Some(keep) = keep else {
            plan.push((
                Diff::new(field(QueryPart::Missing), "absent", "present"),
                vec![QueryAction::Create(want.clone())],
            ));
            continue;
        };
        let kept = found[keep];
        if kept.database != want.database {
            plan.push((
                Diff::new(field(QueryPart::Database), &kept.database, &want.database),
                vec![QueryAction::Create(want.clone()), QueryAction::Delete { id: kept.id.clone() }],
            ));
        } else if kept.sql != want.sql || kept.description.as_deref() != Some(&want.description) {
            let part = if kept.sql != want.sql { QueryPart::Sql } else { QueryPart::Description };
            plan.push((
                Diff::new(field(part), "differs", "built-in"),
                vec![QueryAction::Update { id: kept.id.clone(), query: want.clone() }],
            ));
        }
        let duplicates: Vec<_> = found
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != keep)
            .map(|(_, q)| QueryAction::Delete { id: q.id.clone() })
            .collect();
        if !duplicates.is_empty() {
            plan.push((Diff::new(field(QueryPart::Duplicates), duplicates.len(), 0), duplicates));
        }
    }
    // Built-in queries no longer wanted; anything else is someone's own query.
    for (name, found) in by_name.into_iter().filter(|(name, _)| is_built_in(name)) {
        let deletes = found.iter().map(|q| QueryAction::Delete { id: q.id.clone() }).collect();
        let field = AnalyticsField::NamedQuery(name.to_string(), QueryPart::Unwanted);
        plan.push((Diff::new(field, "present", "absent"), deletes));
    }
    plan
}

fn unknown_queries_change(d: &DesiredAnalytics) -> Option<Diff<AnalyticsField>> {
    if d.unknown_queries.is_empty() {
        return None;
    }
    let known: Vec<_> = named_queries::BUILT_IN.iter().map(|q| q.name).collect();
    let problem = format!(
        "spec.analytics.namedQueries names unknown queries {}; the built-in queries are {}",
        d.unknown_queries.join(", "),
        known.join(", ")
    );
    Some(Diff::new(AnalyticsField::NamedQueries, "", problem))
}

fn unknown_queries_error(d: &DesiredAnalytics) -> Result<(), AwsError> {
    match unknown_queries_change(d) {
        Some(change) => Err(AwsError::permanent("NamedQueriesSpec", change.to)),
        None => Ok(()),
    }
}

fn encryption(d: &DesiredAnalytics, operation: &'static str) -> Result<EncryptionConfiguration, AwsError> {
    EncryptionConfiguration::builder()
        .encryption_option(EncryptionOption::from(d.encryption.as_str()))
        .set_kms_key(d.kms_key.clone())
        .build()
        .map_err(build_error(operation))
}

/// The whole desired configuration as updates (nothing left for AWS to keep from before).
fn configuration_updates(d: &DesiredAnalytics) -> Result<WorkGroupConfigurationUpdates, AwsError> {
    Ok(WorkGroupConfigurationUpdates::builder()
        .enforce_work_group_configuration(d.enforce_configuration)
        .publish_cloud_watch_metrics_enabled(d.publish_metrics)
        .bytes_scanned_cutoff_per_query(d.bytes_scanned_cutoff)
        .result_configuration_updates(
            ResultConfigurationUpdates::builder()
                .output_location(&d.result_location)
                .encryption_configuration(encryption(d, "UpdateWorkGroup")?)
                .build(),
        )
        .build())
}

fn athena_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Athena's answer for a workgroup (or named query) that does not exist.
fn is_invalid_request(e: &AwsError) -> bool {
    e.code.as_deref() == Some("InvalidRequestException")
}

impl Workgroups<'_> {
    async fn list_tags(
        &self,
        arn: &Option<String>,
        desired: &BTreeMap<String, String>,
    ) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        let Some(arn) = arn else { return Ok(None) };
        if let Some(tags) = self.1.covering(arn, desired) {
            return Ok(Some(tags));
        }
        let mut tags = BTreeMap::new();
        let mut token = None;
        loop {
            let out = self
                .0
                .list_tags_for_resource()
                .resource_arn(arn)
                .set_next_token(token)
                .send()
                .await
                .aws("ListTagsForResource")?;
            tags.extend(
                out.tags.unwrap_or_default().into_iter().filter_map(|t| Some((t.key?, t.value.unwrap_or_default()))),
            );
            token = out.next_token;
            if token.is_none() {
                return Ok(Some(tags));
            }
        }
    }

    /// Every named query of the workgroup: ListNamedQueries, then one BatchGetNamedQuery per 50
    /// ids (a GetNamedQuery each for ids it leaves unprocessed, or where the endpoint lacks it).
    async fn list_queries(&self, workgroup: &str) -> Result<Vec<ObservedQuery>, AwsError> {
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .0
                .list_named_queries()
                .work_group(workgroup)
                .set_next_token(token)
                .send()
                .await
                .aws("ListNamedQueries")?;
            ids.extend(out.named_query_ids.unwrap_or_default());
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        let mut queries = Vec::new();
        let mut one_by_one = Vec::new();
        if !self.2.available() {
            one_by_one = ids;
        } else {
            for chunk in ids.chunks(BATCH_GET_MAX) {
                // Not retried: any failure falls back to single reads, which are.
                let batch = self
                    .0
                    .batch_get_named_query()
                    .set_named_query_ids(Some(chunk.to_vec()))
                    .customize()
                    .config_override(aws_sdk_athena::config::Builder::default().retry_config(RetryConfig::disabled()))
                    .send()
                    .await
                    .aws("BatchGetNamedQuery");
                match batch {
                    Ok(out) => {
                        for q in out.named_queries.unwrap_or_default() {
                            let id = q.named_query_id.clone().unwrap_or_default();
                            queries.push(observed_query(q, id));
                        }
                        let unprocessed = out.unprocessed_named_query_ids.unwrap_or_default();
                        one_by_one.extend(unprocessed.into_iter().filter_map(|u| u.named_query_id));
                    }
                    Err(e) => {
                        if e.code.is_none() {
                            self.2.unavailable(&e);
                        }
                        one_by_one.extend(chunk.iter().cloned());
                    }
                }
            }
        }
        for id in one_by_one {
            let out = match self.0.get_named_query().named_query_id(&id).send().await.aws("GetNamedQuery") {
                // Deleted since it was listed.
                Err(e) if is_invalid_request(&e) => continue,
                other => other?,
            };
            if let Some(q) = out.named_query {
                queries.push(observed_query(q, id));
            }
        }
        Ok(queries)
    }

    async fn run(&self, d: &DesiredAnalytics, action: &QueryAction) -> Result<(), AwsError> {
        match action {
            QueryAction::Create(q) => {
                self.0
                    .create_named_query()
                    .work_group(&d.workgroup)
                    .name(&q.name)
                    .description(&q.description)
                    .database(&q.database)
                    .query_string(&q.sql)
                    .send()
                    .await
                    .aws("CreateNamedQuery")?;
            }
            QueryAction::Update { id, query } => {
                self.0
                    .update_named_query()
                    .named_query_id(id)
                    .name(&query.name)
                    .description(&query.description)
                    .query_string(&query.sql)
                    .send()
                    .await
                    .aws("UpdateNamedQuery")?;
            }
            QueryAction::Delete { id } => {
                match self.0.delete_named_query().named_query_id(id).send().await.aws("DeleteNamedQuery") {
                    Err(e) if is_invalid_request(&e) || e.is_not_found() => {}
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Component for Workgroups<'_> {
    type Desired = DesiredAnalytics;
    type Observed = ObservedAnalytics;
    type Field = AnalyticsField;
    const KIND: ComponentKind = ComponentKind::Analytics;

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> DesiredAnalytics {
        let a = &ctx.spec.analytics;
        let names = &ctx.names;
        let mut wanted: Vec<&str> = Vec::new();
        for name in &a.named_queries {
            if !wanted.contains(&name.as_str()) {
                wanted.push(name);
            }
        }
        let target = ctx.query_target();
        let queries = wanted
            .iter()
            .filter_map(|name| named_queries::find(name))
            .map(|q| DesiredQuery {
                name: q.name.to_string(),
                description: q.description.to_string(),
                database: names.database.clone(),
                sql: q.render(&target, &[]),
            })
            .collect();
        let (encryption, kms_key) = match ctx.spec.bucket.encryption {
            Encryption::SseKms => ("SSE_KMS", ctx.spec.bucket.kms_key_arn.clone()),
            Encryption::SseS3 => ("SSE_S3", None),
        };
        DesiredAnalytics {
            workgroup: names.workgroup.clone(),
            arn: match (&refs.partition, &refs.account) {
                (Some(partition), Some(account)) => {
                    Some(format!("arn:{partition}:athena:{}:{account}:workgroup/{}", ctx.region, names.workgroup))
                }
                _ => None,
            },
            description: format!("Sales analytics of pipeline {} (managed by sales-operator)", names.prefix),
            result_location: a
                .result_location
                .clone()
                .unwrap_or_else(|| format!("s3://{}/athena-results/", names.bucket)),
            encryption: encryption.to_string(),
            kms_key,
            enforce_configuration: true,
            publish_metrics: true,
            bytes_scanned_cutoff: a.bytes_scanned_cutoff,
            queries,
            unknown_queries: wanted.iter().filter(|n| !is_built_in(n)).map(|n| n.to_string()).collect(),
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredAnalytics) -> String {
        format!("athena workgroup {}", d.workgroup)
    }

    async fn observe(&self, d: &DesiredAnalytics) -> Result<Option<ObservedAnalytics>, AwsError> {
        // AWS: InvalidRequestException for a missing workgroup; moto: 200 with `WorkGroup: null`.
        let out = match self.0.get_work_group().work_group(&d.workgroup).send().await.aws("GetWorkGroup") {
            Err(e) if is_invalid_request(&e) || e.is_not_found() => return Ok(None),
            other => other?,
        };
        let Some(wg) = out.work_group else {
            return Ok(None);
        };
        let config = wg.configuration.as_ref();
        let result = config.and_then(|c| c.result_configuration.as_ref());
        let encryption = result.and_then(|r| r.encryption_configuration.as_ref());
        Ok(Some(ObservedAnalytics {
            workgroup: wg.name.clone(),
            state: wg.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_else(|| "ENABLED".to_string()),
            result_location: result.and_then(|r| r.output_location.clone()),
            encryption: encryption.map(|e| e.encryption_option.as_str().to_string()),
            kms_key: encryption.and_then(|e| e.kms_key.clone()),
            enforce_configuration: config.and_then(|c| c.enforce_work_group_configuration),
            publish_metrics: config.and_then(|c| c.publish_cloud_watch_metrics_enabled),
            bytes_scanned_cutoff: config.and_then(|c| c.bytes_scanned_cutoff_per_query),
            queries: self.list_queries(&d.workgroup).await?,
            tags: self.list_tags(&d.arn, &d.tags).await?,
        }))
    }

    fn diff(d: &DesiredAnalytics, o: &ObservedAnalytics) -> Vec<Diff<AnalyticsField>> {
        let mut changes = Vec::new();
        compare(&mut changes, AnalyticsField::State, o.state.as_str(), "ENABLED");
        compare(
            &mut changes,
            AnalyticsField::ResultLocation,
            o.result_location.as_deref(),
            Some(d.result_location.as_str()),
        );
        compare(
            &mut changes,
            AnalyticsField::ResultEncryption,
            (o.encryption.as_deref(), o.kms_key.as_deref()),
            (Some(d.encryption.as_str()), d.kms_key.as_deref()),
        );
        compare(
            &mut changes,
            AnalyticsField::EnforceConfiguration,
            o.enforce_configuration,
            Some(d.enforce_configuration),
        );
        compare(&mut changes, AnalyticsField::PublishMetrics, o.publish_metrics, Some(d.publish_metrics));
        compare(&mut changes, AnalyticsField::BytesScannedCutoff, o.bytes_scanned_cutoff, Some(d.bytes_scanned_cutoff));
        changes.extend(plan_queries(d, o).into_iter().map(|(change, _)| change));
        changes.extend(unknown_queries_change(d));
        if let Some(tags) = &o.tags {
            compare_tags(&mut changes, AnalyticsField::Tags, &d.tags, tags);
        }
        changes
    }

    async fn create(&self, d: &DesiredAnalytics) -> Result<(), AwsError> {
        let configuration = WorkGroupConfiguration::builder()
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location(&d.result_location)
                    .encryption_configuration(encryption(d, "CreateWorkGroup")?)
                    .build(),
            )
            .enforce_work_group_configuration(d.enforce_configuration)
            .publish_cloud_watch_metrics_enabled(d.publish_metrics)
            .bytes_scanned_cutoff_per_query(d.bytes_scanned_cutoff)
            .build();
        let result = self
            .0
            .create_work_group()
            .name(&d.workgroup)
            .description(&d.description)
            .configuration(configuration)
            .set_tags(Some(athena_tags(&d.tags)))
            .send()
            .await
            .aws("CreateWorkGroup");
        // Athena answers InvalidRequestException "... is already created" for an
        // existing workgroup.
        // (judged by the reconciler, as any conflict: it appeared since the observe).
        match result {
            Err(mut e) if is_invalid_request(&e) && e.message.contains("already") => {
                e.kind = super::error::ErrorKind::Conflict;
                return Err(e);
            }
            other => {
                other?;
            }
        }
        for q in &d.queries {
            self.run(d, &QueryAction::Create(q.clone())).await?;
        }
        unknown_queries_error(d)
    }

    async fn update(
        &self,
        d: &DesiredAnalytics,
        o: &ObservedAnalytics,
        changes: &[Diff<AnalyticsField>],
    ) -> Result<(), AwsError> {
        // Each field to the call that applies it; the workgroup's settings share one call.
        let (mut workgroup, mut queries, mut tags) = (false, false, false);
        for change in changes {
            match change.field {
                AnalyticsField::State
                | AnalyticsField::ResultLocation
                | AnalyticsField::ResultEncryption
                | AnalyticsField::EnforceConfiguration
                | AnalyticsField::PublishMetrics
                | AnalyticsField::BytesScannedCutoff => workgroup = true,
                // Run below as the plan's actions for that query.
                AnalyticsField::NamedQuery(..) => queries = true,
                // Returned as a permanent error below, whatever else changed.
                AnalyticsField::NamedQueries => {}
                AnalyticsField::Tags => tags = true,
            }
        }
        if workgroup {
            self.0
                .update_work_group()
                .work_group(&d.workgroup)
                .description(&d.description)
                .state(WorkGroupState::Enabled)
                .configuration_updates(configuration_updates(d)?)
                .send()
                .await
                .aws("UpdateWorkGroup")?;
        }
        let given = |field: &AnalyticsField| changes.iter().any(|c| c.field == *field);
        for (change, actions) in plan_queries(d, o).into_iter().filter(|_| queries) {
            if given(&change.field) {
                for action in &actions {
                    self.run(d, action).await?;
                }
            }
        }
        if tags {
            if let (Some(arn), Some(tags)) = (&d.arn, &o.tags) {
                let missing = missing_tags(&d.tags, tags);
                self.0
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(athena_tags(&missing)))
                    .send()
                    .await
                    .aws("TagResource")?;
            }
        }
        unknown_queries_error(d)
    }

    async fn delete(&self, o: &ObservedAnalytics) -> Result<(), AwsError> {
        match self
            .0
            .delete_work_group()
            .work_group(&o.workgroup)
            .recursive_delete_option(true)
            .send()
            .await
            .aws("DeleteWorkGroup")
        {
            Err(e) if e.is_not_found() || is_invalid_request(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn claims(o: &ObservedAnalytics) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("athena workgroup {}", o.workgroup), o.tags.as_ref().unwrap_or(&super::NO_TAGS))]
    }

    fn publish(_o: &ObservedAnalytics, _refs: &mut Refs) {}

    fn report(o: &ObservedAnalytics, status: &mut SalesPipelineStatus) {
        let mut installed: Vec<String> =
            o.queries.iter().filter(|q| is_built_in(&q.name)).map(|q| q.name.clone()).collect();
        installed.sort();
        installed.dedup();
        status.analytics = Some(AnalyticsStatus {
            workgroup: o.workgroup.clone(),
            result_location: o.result_location.clone().unwrap_or_default(),
            named_queries: installed,
        });
    }

    fn readiness(o: &ObservedAnalytics) -> Result<(), String> {
        match o.state.as_str() {
            "ENABLED" => Ok(()),
            other => Err(format!("athena workgroup {} is {other}", o.workgroup)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};

    use super::*;
    use crate::api::SalesPipelineSpec;

    fn refs() -> Refs {
        Refs { partition: Some("aws".into()), account: Some("123456789012".into()), ..Refs::default() }
    }

    fn desired_for(spec: &SalesPipelineSpec) -> DesiredAnalytics {
        Workgroups::desired(&PipelineCtx::new("shop", "sales", spec, "eu-west-1"), &refs())
    }

    fn desired() -> DesiredAnalytics {
        desired_for(&SalesPipelineSpec::default())
    }

    fn observed(d: &DesiredAnalytics) -> ObservedAnalytics {
        ObservedAnalytics {
            workgroup: d.workgroup.clone(),
            state: "ENABLED".into(),
            result_location: Some(d.result_location.clone()),
            encryption: Some(d.encryption.clone()),
            kms_key: d.kms_key.clone(),
            enforce_configuration: Some(d.enforce_configuration),
            publish_metrics: Some(d.publish_metrics),
            bytes_scanned_cutoff: Some(d.bytes_scanned_cutoff),
            queries: d
                .queries
                .iter()
                .enumerate()
                .map(|(i, q)| ObservedQuery {
                    id: format!("id-{i}"),
                    name: q.name.clone(),
                    description: Some(q.description.clone()),
                    database: q.database.clone(),
                    sql: q.sql.clone(),
                })
                .collect(),
            tags: Some(d.tags.clone()),
        }
    }

    fn fields(changes: Vec<Diff<AnalyticsField>>) -> Vec<String> {
        changes.into_iter().map(|c| c.field.name()).collect()
    }

    fn actions(d: &DesiredAnalytics, o: &ObservedAnalytics) -> Vec<QueryAction> {
        plan_queries(d, o).into_iter().flat_map(|(_, a)| a).collect()
    }

    #[test]
    fn default_spec_installs_every_built_in_query_for_the_glue_table() {
        let d = desired();
        let ctx = PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1");
        assert_eq!(d.queries.len(), named_queries::BUILT_IN.len());
        for q in &d.queries {
            assert_eq!(q.database, ctx.names.database);
            assert!(q.sql.contains(&format!("FROM {}", ctx.names.glue_table)), "{}", q.name);
            assert!(!q.sql.contains('{'), "{}", q.name);
        }
        assert_eq!(d.result_location, format!("s3://{}/athena-results/", ctx.names.bucket));
        assert_eq!((d.encryption.as_str(), d.kms_key.as_deref()), ("SSE_S3", None));
        assert!(d.enforce_configuration && d.publish_metrics);
        assert_eq!(d.bytes_scanned_cutoff, 1_073_741_824);
        assert_eq!(d.arn.as_deref(), Some("arn:aws:athena:eu-west-1:123456789012:workgroup/shop-sales-sales"));
        assert!(d.unknown_queries.is_empty());
    }

    #[test]
    fn explicit_result_location_and_kms_bucket_are_honoured() {
        let mut spec = SalesPipelineSpec::default();
        spec.analytics.result_location = Some("s3://results-bucket/sales/".into());
        spec.bucket.encryption = Encryption::SseKms;
        spec.bucket.kms_key_arn = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
        let d = desired_for(&spec);
        assert_eq!(d.result_location, "s3://results-bucket/sales/");
        assert_eq!(
            (d.encryption.as_str(), d.kms_key.as_deref()),
            ("SSE_KMS", Some("arn:aws:kms:eu-west-1:123456789012:key/k"))
        );
    }

    #[test]
    fn in_sync_workgroup_has_no_changes() {
        let d = desired();
        assert!(Workgroups::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn each_workgroup_change_is_reported_alone() {
        let d = desired();
        type Mutation = fn(&mut ObservedAnalytics);
        let cases: Vec<(&str, Mutation)> = vec![
            ("state", |o| o.state = "DISABLED".into()),
            ("resultLocation", |o| o.result_location = Some("s3://x/".into())),
            ("resultEncryption", |o| o.encryption = None),
            ("enforceConfiguration", |o| o.enforce_configuration = Some(false)),
            ("publishMetrics", |o| o.publish_metrics = None),
            ("bytesScannedCutoff", |o| o.bytes_scanned_cutoff = Some(10_000_000)),
            ("tags", |o| o.tags = Some(BTreeMap::new())),
        ];
        for (field, change) in cases {
            let mut o = observed(&d);
            change(&mut o);
            assert_eq!(fields(Workgroups::diff(&d, &o)), vec![field], "{field}");
        }
    }

    #[test]
    fn foreign_tags_and_users_own_queries_are_ignored() {
        let d = desired();
        let mut o = observed(&d);
        o.tags.as_mut().unwrap().insert("team".into(), "bi".into());
        for id in ["mine-1", "mine-2"] {
            o.queries.push(ObservedQuery {
                id: id.into(),
                name: "my_report".into(),
                description: None,
                database: "other".into(),
                sql: "SELECT 1".into(),
            });
        }
        assert!(Workgroups::diff(&d, &o).is_empty());
    }

    #[test]
    fn named_query_fields_read_as_users_saw_them() {
        let field = |part| AnalyticsField::NamedQuery("top_products".into(), part);
        let names: Vec<_> = [
            QueryPart::Missing,
            QueryPart::Database,
            QueryPart::Sql,
            QueryPart::Description,
            QueryPart::Duplicates,
            QueryPart::Unwanted,
        ]
        .into_iter()
        .map(|part| field(part).name())
        .collect();
        assert_eq!(
            names,
            [
                "namedQuery.top_products",
                "namedQuery.top_products.database",
                "namedQuery.top_products.sql",
                "namedQuery.top_products.description",
                "namedQuery.top_products.duplicates",
                "namedQuery.top_products",
            ]
        );
        assert_eq!(AnalyticsField::NamedQueries.name(), "namedQueries");
    }

    #[test]
    fn missing_query_is_created() {
        let d = desired();
        let mut o = observed(&d);
        let gone = o.queries.remove(1);
        assert_eq!(fields(Workgroups::diff(&d, &o)), vec![format!("namedQuery.{}", gone.name)]);
        assert_eq!(actions(&d, &o), vec![QueryAction::Create(d.queries[1].clone())]);
    }

    #[test]
    fn changed_sql_is_updated_in_place() {
        let d = desired();
        let mut o = observed(&d);
        o.queries[0].sql = "SELECT 1".into();
        assert_eq!(fields(Workgroups::diff(&d, &o)), vec![format!("namedQuery.{}.sql", d.queries[0].name)]);
        assert_eq!(actions(&d, &o), vec![QueryAction::Update { id: "id-0".into(), query: d.queries[0].clone() }]);
    }

    #[test]
    fn changed_database_is_recreated_new_first() {
        let d = desired();
        let mut o = observed(&d);
        o.queries[0].database = "old_db".into();
        assert_eq!(fields(Workgroups::diff(&d, &o)), vec![format!("namedQuery.{}.database", d.queries[0].name)]);
        assert_eq!(
            actions(&d, &o),
            vec![QueryAction::Create(d.queries[0].clone()), QueryAction::Delete { id: "id-0".into() }]
        );
    }

    #[test]
    fn duplicates_are_deleted_keeping_the_matching_one() {
        let d = desired();
        let mut o = observed(&d);
        let mut stale = o.queries[0].clone();
        stale.id = "dup".into();
        stale.sql = "SELECT old".into();
        o.queries.insert(0, stale);
        assert_eq!(fields(Workgroups::diff(&d, &o)), vec![format!("namedQuery.{}.duplicates", d.queries[0].name)]);
        assert_eq!(actions(&d, &o), vec![QueryAction::Delete { id: "dup".into() }]);
    }

    #[test]
    fn built_in_queries_no_longer_wanted_are_deleted() {
        let mut spec = SalesPipelineSpec::default();
        let all = desired();
        spec.analytics.named_queries = vec!["top_products".into()];
        let d = desired_for(&spec);
        let o = observed(&all);
        let plan = plan_queries(&d, &o);
        assert_eq!(plan.len(), named_queries::BUILT_IN.len() - 1);
        assert!(plan.iter().all(|(c, a)| c.to == "absent" && matches!(a[..], [QueryAction::Delete { .. }])));
        assert!(plan.iter().all(|(c, _)| c.field.name() != "namedQuery.top_products"));
    }

    #[test]
    fn unknown_query_names_are_reported_and_refused() {
        let mut spec = SalesPipelineSpec::default();
        spec.analytics.named_queries = vec!["top_products".into(), "no_such_query".into(), "top_products".into()];
        let d = desired_for(&spec);
        assert_eq!(d.queries.len(), 1);
        assert_eq!(d.unknown_queries, vec!["no_such_query".to_string()]);
        let changes = Workgroups::diff(&d, &observed(&d));
        assert_eq!(fields(changes.clone()), vec!["namedQueries"]);
        assert!(changes[0].to.contains("no_such_query") && changes[0].to.contains("revenue_by_product_hour"));
        assert!(unknown_queries_error(&d).is_err_and(|e| e.is_permanent()));
    }

    #[test]
    fn report_lists_installed_built_in_names_sorted() {
        let d = desired();
        let mut o = observed(&d);
        o.queries.push(ObservedQuery {
            id: "x".into(),
            name: "my_report".into(),
            description: None,
            database: "d".into(),
            sql: "s".into(),
        });
        o.queries.push(o.queries[0].clone());
        let mut status = SalesPipelineStatus::default();
        Workgroups::report(&o, &mut status);
        let mut expected: Vec<_> = named_queries::BUILT_IN.iter().map(|q| q.name.to_string()).collect();
        expected.sort();
        let a = status.analytics.unwrap();
        assert_eq!(a.named_queries, expected);
        assert_eq!(a.result_location, d.result_location);
    }

    /// An Athena client answered by aws-smithy-mocks `rules` (shared with the query tests).
    pub(crate) fn mock_athena(rules: &[&Rule]) -> aws_sdk_athena::Client {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_athena::Config::builder()
            .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
            .region(aws_sdk_athena::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_athena::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_athena::Client::from_conf(config)
    }

    fn named_query(id: &str) -> aws_sdk_athena::types::NamedQuery {
        aws_sdk_athena::types::NamedQuery::builder()
            .named_query_id(id)
            .name(format!("q-{id}"))
            .database("d")
            .query_string("SELECT 1")
            .build()
            .unwrap()
    }

    fn listed(ids: &'static [&'static str]) -> Rule {
        mock!(aws_sdk_athena::Client::list_named_queries).then_output(move || {
            aws_sdk_athena::operation::list_named_queries::ListNamedQueriesOutput::builder()
                .set_named_query_ids(Some(ids.iter().map(|s| s.to_string()).collect()))
                .build()
        })
    }

    fn got_one() -> Rule {
        mock!(aws_sdk_athena::Client::get_named_query).then_output(|| {
            aws_sdk_athena::operation::get_named_query::GetNamedQueryOutput::builder()
                .named_query(named_query("c"))
                .build()
        })
    }

    #[tokio::test]
    async fn named_queries_are_read_with_one_batch_get_and_unprocessed_ones_one_by_one() {
        let list = listed(&["a", "b", "c"]);
        let batch = mock!(aws_sdk_athena::Client::batch_get_named_query)
            .match_requests(|req| req.named_query_ids() == ["a", "b", "c"])
            .then_output(|| {
                aws_sdk_athena::operation::batch_get_named_query::BatchGetNamedQueryOutput::builder()
                    .named_queries(named_query("a"))
                    .named_queries(named_query("b"))
                    .unprocessed_named_query_ids(
                        aws_sdk_athena::types::UnprocessedNamedQueryId::builder()
                            .named_query_id("c")
                            .error_code("INTERNAL_FAILURE")
                            .build(),
                    )
                    .build()
            });
        let single = got_one();
        let client = mock_athena(&[&list, &batch, &single]);
        let batch_gets = BatchGets::default();
        let queries = Workgroups(&client, &TagIndex::default(), &batch_gets).list_queries("wg").await.unwrap();
        assert_eq!(queries.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!((batch.num_calls(), single.num_calls()), (1, 1));
        assert!(batch_gets.available());
    }

    #[tokio::test]
    async fn an_endpoint_without_batch_get_named_query_is_read_one_by_one_from_then_on() {
        // moto's answer to an operation it does not implement: an HTML 500, no AWS error code.
        let list = listed(&["c"]);
        let batch = mock!(aws_sdk_athena::Client::batch_get_named_query).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(500u16).unwrap(),
                aws_smithy_types::body::SdkBody::from("<!doctype html><title>500 Internal Server Error</title>"),
            )
        });
        let single = got_one();
        let client = mock_athena(&[&list, &batch, &single]);
        let batch_gets = BatchGets::default();
        let workgroups = Workgroups(&client, &TagIndex::default(), &batch_gets);
        let first = workgroups.list_queries("wg").await.unwrap();
        assert_eq!(first.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(batch.num_calls(), 1, "tried once, not retried");
        assert!(!batch_gets.available());
        workgroups.list_queries("wg").await.unwrap();
        assert_eq!((batch.num_calls(), single.num_calls()), (1, 2), "not tried again");
    }

    #[tokio::test]
    async fn cutoff_change_sends_update_work_group_with_the_full_configuration() {
        let d = desired();
        let mut o = observed(&d);
        o.bytes_scanned_cutoff = Some(10_000_000);
        o.state = "DISABLED".into();
        let changes = Workgroups::diff(&d, &o);
        assert_eq!(fields(changes.clone()), vec!["state", "bytesScannedCutoff"]);
        let (workgroup, location) = (d.workgroup.clone(), d.result_location.clone());
        let rule = mock!(aws_sdk_athena::Client::update_work_group)
            .match_requests(move |req| {
                let Some(u) = req.configuration_updates() else {
                    return false;
                };
                let result = u.result_configuration_updates();
                req.work_group() == Some(workgroup.as_str())
                    && req.state() == Some(&WorkGroupState::Enabled)
                    && u.bytes_scanned_cutoff_per_query() == Some(1_073_741_824)
                    && u.enforce_work_group_configuration() == Some(true)
                    && u.publish_cloud_watch_metrics_enabled() == Some(true)
                    && result.and_then(|r| r.output_location()) == Some(location.as_str())
                    && result.and_then(|r| r.encryption_configuration()).map(|e| e.encryption_option())
                        == Some(&EncryptionOption::SseS3)
            })
            .then_output(|| aws_sdk_athena::operation::update_work_group::UpdateWorkGroupOutput::builder().build());
        let client = mock_athena(&[&rule]);
        Workgroups(&client, &TagIndex::default(), &BatchGets::default()).update(&d, &o, &changes).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn changed_sql_sends_update_named_query_with_the_rendered_sql() {
        let d = desired();
        let mut o = observed(&d);
        o.queries[2].sql = "SELECT 1".into();
        let changes = Workgroups::diff(&d, &o);
        let want = d.queries[2].clone();
        let rule = mock!(aws_sdk_athena::Client::update_named_query)
            .match_requests(move |req| {
                req.named_query_id() == Some("id-2")
                    && req.name() == Some(want.name.as_str())
                    && req.description() == Some(want.description.as_str())
                    && req.query_string() == Some(want.sql.as_str())
            })
            .then_output(|| aws_sdk_athena::operation::update_named_query::UpdateNamedQueryOutput::builder().build());
        let client = mock_athena(&[&rule]);
        Workgroups(&client, &TagIndex::default(), &BatchGets::default()).update(&d, &o, &changes).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn missing_workgroup_is_absent_whether_aws_or_moto_answers() {
        // moto: 200 with no workgroup.
        let moto = mock!(aws_sdk_athena::Client::get_work_group)
            .then_output(|| aws_sdk_athena::operation::get_work_group::GetWorkGroupOutput::builder().build());
        let client = mock_athena(&[&moto]);
        assert_eq!(
            Workgroups(&client, &TagIndex::default(), &BatchGets::default()).observe(&desired()).await.unwrap(),
            None
        );
        // AWS: InvalidRequestException.
        let aws = mock!(aws_sdk_athena::Client::get_work_group).then_error(|| {
            aws_sdk_athena::operation::get_work_group::GetWorkGroupError::InvalidRequestException(
                aws_sdk_athena::types::error::InvalidRequestException::builder()
                    .message("WorkGroup x is not found.")
                    .meta(aws_sdk_athena::error::ErrorMetadata::builder().code("InvalidRequestException").build())
                    .build(),
            )
        });
        let client = mock_athena(&[&aws]);
        assert_eq!(
            Workgroups(&client, &TagIndex::default(), &BatchGets::default()).observe(&desired()).await.unwrap(),
            None
        );
    }
}
