//! The EventBridge Pipe from the table's DynamoDB stream to the Kinesis stream.
//!
//! The pipe shapes every stream record into the flat order (its input
//! template, see [`crate::order::pipe_input_template`]) so that what reaches
//! S3 is JSON lines Athena reads directly.
//!
//! Immutable in AWS, reported and never acted on here:
//! - the starting position;
//! - the source ARN. A different table stream ARN means the table (or its
//!   stream) was recreated; Pipes cannot move a pipe to another source. The
//!   pipe holds no data, so the reconciler may choose to delete and recreate
//!   it; this module only reports the change as immutable.

use std::collections::BTreeMap;

use aws_sdk_pipes::types::{
    DynamoDbStreamStartPosition, Filter, FilterCriteria, PipeSourceDynamoDbStreamParameters, PipeSourceParameters,
    PipeTargetKinesisStreamParameters, PipeTargetParameters, RequestedPipeState,
    UpdatePipeSourceDynamoDbStreamParameters, UpdatePipeSourceParameters,
};

use super::error::{absent_if_not_found, build_error, ok_if_not_found};
use super::{
    compare, compare_tags, known, missing_tags, AwsError, AwsResultExt, Claim, Component, ComponentKind, Diff, Failure,
    Field, PipelineCtx, Recovery, Refs,
};
use crate::api::{PipeStatus, SalesPipelineStatus, StartingPosition};

/// The state the operator keeps the pipe in.
const RUNNING: &str = "RUNNING";

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredPipe {
    pub name: String,
    /// The table's stream ARN.
    pub source: String,
    /// The Kinesis stream ARN.
    pub target: String,
    pub role_arn: String,
    pub batch_size: i32,
    pub maximum_batching_window_seconds: i32,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    /// Event filter pattern (`{"eventName":["INSERT"]}`); `None` forwards every event.
    pub filter_pattern: Option<String>,
    /// Kinesis partition key, a JSON path into the stream record.
    pub partition_key: String,
    pub input_template: String,
    /// Always `RUNNING`.
    pub desired_state: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedPipe {
    pub name: String,
    pub arn: String,
    /// What the pipe is doing (`RUNNING`, `CREATING`, `STOPPED`, ...).
    pub current_state: String,
    /// What it was asked to do (`RUNNING`, `STOPPED`).
    pub desired_state: Option<String>,
    pub state_reason: Option<String>,
    pub source: String,
    pub target: String,
    pub role_arn: String,
    pub batch_size: Option<i32>,
    pub maximum_batching_window_seconds: Option<i32>,
    pub starting_position: Option<String>,
    pub filter_patterns: Vec<String>,
    pub partition_key: Option<String>,
    pub input_template: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// EventBridge Pipes calls of this component.
pub struct Pipes<'a>(pub &'a aws_sdk_pipes::Client);

/// The filter pattern forwarding only `event_names` (sorted); `None` when empty (forward all).
pub fn filter_pattern(event_names: &[crate::api::EventName]) -> Option<String> {
    if event_names.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = event_names.iter().map(|e| e.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Some(serde_json::json!({ "eventName": names }).to_string())
}

/// Patterns compared as JSON (AWS may re-serialise them), falling back to the text.
fn same_patterns(observed: &[String], desired: &Option<String>) -> bool {
    let parse = |p: &str| {
        serde_json::from_str::<serde_json::Value>(p).unwrap_or_else(|_| serde_json::Value::String(p.to_string()))
    };
    let observed: Vec<_> = observed.iter().map(|p| parse(p)).collect();
    let desired: Vec<_> = desired.iter().map(|p| parse(p)).collect();
    observed == desired
}

fn filter_criteria(d: &DesiredPipe) -> FilterCriteria {
    // An empty filter list removes a filter on update (documented UpdatePipe behaviour).
    let filters = d.filter_pattern.iter().map(|p| Filter::builder().pattern(p).build()).collect();
    FilterCriteria::builder().set_filters(Some(filters)).build()
}

fn target_parameters(d: &DesiredPipe, operation: &'static str) -> Result<PipeTargetParameters, AwsError> {
    let kinesis = PipeTargetKinesisStreamParameters::builder()
        .partition_key(&d.partition_key)
        .build()
        .map_err(build_error(operation))?;
    Ok(PipeTargetParameters::builder().input_template(&d.input_template).kinesis_stream_parameters(kinesis).build())
}

fn source_parameters(d: &DesiredPipe) -> Result<PipeSourceParameters, AwsError> {
    let dynamodb = PipeSourceDynamoDbStreamParameters::builder()
        .batch_size(d.batch_size)
        .maximum_batching_window_in_seconds(d.maximum_batching_window_seconds)
        .starting_position(DynamoDbStreamStartPosition::from(d.starting_position.as_str()))
        .build()
        .map_err(build_error("CreatePipe"))?;
    let mut params = PipeSourceParameters::builder().dynamo_db_stream_parameters(dynamodb);
    if d.filter_pattern.is_some() {
        params = params.filter_criteria(filter_criteria(d));
    }
    Ok(params.build())
}

/// The full source parameters for UpdatePipe. Always complete: AWS merges
/// partial parameters, moto replaces them; sending everything agrees with both.
fn update_source_parameters(d: &DesiredPipe) -> UpdatePipeSourceParameters {
    let dynamodb = UpdatePipeSourceDynamoDbStreamParameters::builder()
        .batch_size(d.batch_size)
        .maximum_batching_window_in_seconds(d.maximum_batching_window_seconds)
        .build();
    UpdatePipeSourceParameters::builder()
        .dynamo_db_stream_parameters(dynamodb)
        .filter_criteria(filter_criteria(d))
        .build()
}

/// What can differ on a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeField {
    /// Immutable: Pipes cannot change a pipe's source (see the module docs).
    Source,
    /// Immutable, like the source.
    StartingPosition,
    RoleArn,
    BatchSize,
    MaximumBatchingWindowSeconds,
    Filter,
    Target,
    PartitionKey,
    InputTemplate,
    /// A stopped pipe, to run.
    State,
    Tags,
}

impl Field for PipeField {
    fn name(&self) -> String {
        match self {
            PipeField::Source => "source",
            PipeField::StartingPosition => "startingPosition",
            PipeField::RoleArn => "roleArn",
            PipeField::BatchSize => "batchSize",
            PipeField::MaximumBatchingWindowSeconds => "maximumBatchingWindowSeconds",
            PipeField::Filter => "filter",
            PipeField::Target => "target",
            PipeField::PartitionKey => "partitionKey",
            PipeField::InputTemplate => "inputTemplate",
            PipeField::State => "state",
            PipeField::Tags => "tags",
        }
        .into()
    }

    fn immutable(&self) -> bool {
        matches!(self, PipeField::Source | PipeField::StartingPosition)
    }
}

/// The call that applies a change of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeCall {
    UpdatePipe,
    StartPipe,
    TagResource,
    /// Immutable fields: the reconciler partitions them out and never passes them to update.
    None,
}

impl PipeField {
    fn call(self) -> PipeCall {
        match self {
            PipeField::RoleArn
            | PipeField::BatchSize
            | PipeField::MaximumBatchingWindowSeconds
            | PipeField::Filter
            | PipeField::Target
            | PipeField::PartitionKey
            | PipeField::InputTemplate => PipeCall::UpdatePipe,
            PipeField::State => PipeCall::StartPipe,
            PipeField::Tags => PipeCall::TagResource,
            PipeField::Source | PipeField::StartingPosition => PipeCall::None,
        }
    }
}

impl Component for Pipes<'_> {
    type Desired = DesiredPipe;
    type Observed = ObservedPipe;
    type Field = PipeField;
    const KIND: ComponentKind = ComponentKind::Pipe;

    fn desired(ctx: &PipelineCtx, refs: &Refs) -> DesiredPipe {
        let p = &ctx.spec.pipe;
        DesiredPipe {
            name: ctx.names.pipe.clone(),
            source: known(&refs.table_stream_arn),
            target: known(&refs.stream_arn),
            role_arn: known(&refs.pipe_role_arn),
            batch_size: p.batch_size,
            maximum_batching_window_seconds: p.maximum_batching_window_seconds,
            starting_position: match p.starting_position {
                StartingPosition::TrimHorizon => "TRIM_HORIZON",
                StartingPosition::Latest => "LATEST",
            }
            .to_string(),
            filter_pattern: filter_pattern(&p.event_names),
            partition_key: p.partition_key.clone(),
            input_template: crate::order::pipe_input_template(),
            desired_state: RUNNING.to_string(),
            tags: ctx.tags.clone(),
        }
    }

    fn resource_name(d: &DesiredPipe) -> String {
        format!("pipe {}", d.name)
    }

    async fn observe(&self, d: &DesiredPipe) -> Result<Option<ObservedPipe>, AwsError> {
        let Some(out) = absent_if_not_found(self.0.describe_pipe().name(&d.name).send().await.aws("DescribePipe"))?
        else {
            return Ok(None);
        };
        let current_state = out.current_state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default();
        if current_state == "DELETING" {
            return Ok(None);
        }
        let source_params = out.source_parameters.as_ref();
        let dynamodb = source_params.and_then(|s| s.dynamo_db_stream_parameters.as_ref());
        let filter_patterns = source_params
            .and_then(|s| s.filter_criteria.as_ref())
            .map(|f| f.filters().iter().filter_map(|f| f.pattern.clone()).collect())
            .unwrap_or_default();
        let target_params = out.target_parameters.as_ref();
        Ok(Some(ObservedPipe {
            name: d.name.clone(),
            arn: out.arn.clone().unwrap_or_default(),
            current_state,
            desired_state: out.desired_state.as_ref().map(|s| s.as_str().to_string()),
            state_reason: out.state_reason.clone(),
            source: out.source.clone().unwrap_or_default(),
            target: out.target.clone().unwrap_or_default(),
            role_arn: out.role_arn.clone().unwrap_or_default(),
            batch_size: dynamodb.and_then(|p| p.batch_size),
            maximum_batching_window_seconds: dynamodb.and_then(|p| p.maximum_batching_window_in_seconds),
            // A required field AWS always returns; moto drops it after an UpdatePipe (which cannot
            // carry it), and the SDK then fills in a placeholder: only a real position counts.
            starting_position: dynamodb
                .map(|p| p.starting_position.as_str())
                .filter(|p| DynamoDbStreamStartPosition::try_parse(p).is_ok())
                .map(str::to_string),
            filter_patterns,
            partition_key: target_params
                .and_then(|t| t.kinesis_stream_parameters.as_ref())
                .map(|k| k.partition_key.clone()),
            input_template: target_params.and_then(|t| t.input_template.clone()),
            tags: out.tags.clone().unwrap_or_default().into_iter().collect(),
        }))
    }

    fn diff(d: &DesiredPipe, o: &ObservedPipe) -> Vec<Diff<PipeField>> {
        let mut changes = Vec::new();
        if o.source != d.source {
            // Pipes cannot change a pipe's source: the reconciler decides (see the module docs).
            changes.push(Diff::new(PipeField::Source, &o.source, &d.source));
        }
        if let Some(position) = &o.starting_position {
            if *position != d.starting_position {
                changes.push(Diff::new(PipeField::StartingPosition, position, &d.starting_position));
            }
        }
        compare(&mut changes, PipeField::RoleArn, o.role_arn.as_str(), d.role_arn.as_str());
        // Absent values are AWS's defaults for a DynamoDB stream source.
        compare(&mut changes, PipeField::BatchSize, o.batch_size.unwrap_or(100), d.batch_size);
        compare(
            &mut changes,
            PipeField::MaximumBatchingWindowSeconds,
            o.maximum_batching_window_seconds.unwrap_or(0),
            d.maximum_batching_window_seconds,
        );
        if !same_patterns(&o.filter_patterns, &d.filter_pattern) {
            changes.push(Diff::new(PipeField::Filter, &o.filter_patterns, &d.filter_pattern));
        }
        compare(&mut changes, PipeField::Target, o.target.as_str(), d.target.as_str());
        compare(&mut changes, PipeField::PartitionKey, o.partition_key.as_deref(), Some(d.partition_key.as_str()));
        compare(&mut changes, PipeField::InputTemplate, o.input_template.as_deref(), Some(d.input_template.as_str()));
        // A pipe being stopped still runs (current RUNNING or STOPPING): shown as what it is asked to be.
        let found = match o.desired_state.as_deref() {
            Some("STOPPED") => "STOPPED",
            _ => o.current_state.as_str(),
        };
        if found == "STOPPED" && d.desired_state == RUNNING {
            changes.push(Diff::new(PipeField::State, found, &d.desired_state));
        }
        compare_tags(&mut changes, PipeField::Tags, &d.tags, &o.tags);
        changes
    }

    async fn create(&self, d: &DesiredPipe) -> Result<(), AwsError> {
        let result = self
            .0
            .create_pipe()
            .name(&d.name)
            .role_arn(&d.role_arn)
            .source(&d.source)
            .source_parameters(source_parameters(d)?)
            .target(&d.target)
            .target_parameters(target_parameters(d, "CreatePipe")?)
            .desired_state(RequestedPipeState::from(d.desired_state.as_str()))
            .set_tags(Some(d.tags.clone().into_iter().collect()))
            .send()
            .await
            .aws("CreatePipe");
        // AWS answers ConflictException for an existing pipe (moto silently overwrites): the
        // reconciler observed none, so it appeared since; it judges its ownership before any change.
        result.map(|_| ())
    }

    async fn update(&self, d: &DesiredPipe, o: &ObservedPipe, changes: &[Diff<PipeField>]) -> Result<(), AwsError> {
        let calls: Vec<PipeCall> = changes.iter().map(|c| c.field.call()).collect();
        if calls.contains(&PipeCall::UpdatePipe) {
            // Asking for RUNNING here also restarts a stopped pipe.
            self.0
                .update_pipe()
                .name(&d.name)
                .role_arn(&d.role_arn)
                .source_parameters(update_source_parameters(d))
                .target(&d.target)
                .target_parameters(target_parameters(d, "UpdatePipe")?)
                .desired_state(RequestedPipeState::from(d.desired_state.as_str()))
                .send()
                .await
                .aws("UpdatePipe")?;
        } else if calls.contains(&PipeCall::StartPipe) {
            self.0.start_pipe().name(&d.name).send().await.aws("StartPipe")?;
        }
        if calls.contains(&PipeCall::TagResource) {
            let missing = missing_tags(&d.tags, &o.tags);
            self.0
                .tag_resource()
                .resource_arn(&o.arn)
                .set_tags(Some(missing.into_iter().collect()))
                .send()
                .await
                .aws("TagResource")?;
        }
        Ok(())
    }

    async fn delete(&self, o: &ObservedPipe) -> Result<(), AwsError> {
        ok_if_not_found(self.0.delete_pipe().name(&o.name).send().await.aws("DeletePipe"))
    }

    fn claims(o: &ObservedPipe) -> Vec<Claim<'_>> {
        vec![Claim::new(format!("pipe {}", o.name), &o.tags)]
    }

    fn publish(o: &ObservedPipe, refs: &mut Refs) {
        refs.learn_account(&o.arn);
    }

    fn report(o: &ObservedPipe, status: &mut SalesPipelineStatus) {
        status.pipe = Some(PipeStatus {
            name: o.name.clone(),
            arn: Some(o.arn.clone()),
            state: Some(o.current_state.clone()).filter(|s| !s.is_empty()),
        });
    }

    fn busy(o: &ObservedPipe) -> Option<String> {
        matches!(o.current_state.as_str(), "CREATING" | "UPDATING" | "STARTING" | "STOPPING")
            .then(|| format!("pipe {} is {}, not yet RUNNING", o.name, o.current_state))
    }

    fn failed(o: &ObservedPipe) -> Option<Failure> {
        let recovery = match o.current_state.as_str() {
            // A pipe holds no data: one that failed to be created or changed is made again.
            "CREATE_FAILED" | "UPDATE_FAILED" => Recovery::Recreate,
            "START_FAILED" => Recovery::Restart,
            _ => return None,
        };
        let reason = o.state_reason.clone().unwrap_or_else(|| "AWS gave no reason".to_string());
        Some(Failure { state: o.current_state.clone(), reason, recovery })
    }

    async fn restart(&self, o: &ObservedPipe) -> Result<(), AwsError> {
        self.0.start_pipe().name(&o.name).send().await.aws("StartPipe")?;
        Ok(())
    }

    fn readiness(o: &ObservedPipe) -> Result<(), String> {
        let reason = o.state_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        match o.current_state.as_str() {
            RUNNING => Ok(()),
            "CREATING" | "STARTING" | "UPDATING" => {
                Err(format!("pipe {} is {}, not yet RUNNING", o.name, o.current_state))
            }
            "STOPPED" | "STOPPING" => Err(format!("pipe {} is {}{reason}", o.name, o.current_state)),
            other => Err(format!("pipe {} is {other}{reason}", o.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EventName, SalesPipelineSpec};
    use crate::aws::UNKNOWN;

    fn refs() -> Refs {
        Refs {
            table_stream_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026".into()),
            stream_arn: Some("arn:aws:kinesis:eu-west-1:123456789012:stream/s".into()),
            pipe_role_arn: Some("arn:aws:iam::123456789012:role/p".into()),
            ..Refs::default()
        }
    }

    fn desired() -> DesiredPipe {
        let ctx = PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1");
        Pipes::desired(&ctx, &refs())
    }

    fn observed(d: &DesiredPipe) -> ObservedPipe {
        ObservedPipe {
            name: d.name.clone(),
            arn: "arn:aws:pipes:eu-west-1:123456789012:pipe/p".into(),
            current_state: "RUNNING".into(),
            desired_state: Some("RUNNING".into()),
            state_reason: None,
            source: d.source.clone(),
            target: d.target.clone(),
            role_arn: d.role_arn.clone(),
            batch_size: Some(d.batch_size),
            maximum_batching_window_seconds: Some(d.maximum_batching_window_seconds),
            starting_position: Some(d.starting_position.clone()),
            filter_patterns: d.filter_pattern.iter().cloned().collect(),
            partition_key: Some(d.partition_key.clone()),
            input_template: Some(d.input_template.clone()),
            tags: d.tags.clone(),
        }
    }

    /// A change made to an in-sync observation.
    type Mutation = fn(&mut ObservedPipe);

    fn fields(changes: Vec<Diff<PipeField>>) -> Vec<(String, bool)> {
        changes.into_iter().map(|c| (c.field.name(), c.field.immutable())).collect()
    }

    #[test]
    fn default_spec_forwards_inserts_flattened_to_the_stream() {
        let d = desired();
        assert_eq!(d.filter_pattern.as_deref(), Some(r#"{"eventName":["INSERT"]}"#));
        assert_eq!(d.input_template, crate::order::pipe_input_template());
        assert_eq!(d.partition_key, "$.dynamodb.Keys.orderid.S");
        assert_eq!(d.starting_position, "TRIM_HORIZON");
        assert_eq!(d.desired_state, "RUNNING");
        assert_eq!(d.source, "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026");
        assert_eq!(d.target, "arn:aws:kinesis:eu-west-1:123456789012:stream/s");
        assert_eq!(d.tags.get(super::super::TAG_MANAGED_BY).map(String::as_str), Some("sales-operator"));
    }

    #[test]
    fn filter_pattern_lists_each_event_name_once_sorted_and_none_when_empty() {
        assert_eq!(
            filter_pattern(&[EventName::Remove, EventName::Insert, EventName::Insert]).as_deref(),
            Some(r#"{"eventName":["INSERT","REMOVE"]}"#)
        );
        assert_eq!(filter_pattern(&[]), None);
    }

    #[test]
    fn unknown_upstream_arns_are_placeholders() {
        let ctx = PipelineCtx::new("shop", "sales", &SalesPipelineSpec::default(), "eu-west-1");
        let d = Pipes::desired(&ctx, &Refs::default());
        assert_eq!(d.source, UNKNOWN);
    }

    #[test]
    fn in_sync_pipe_has_no_changes() {
        let d = desired();
        assert!(Pipes::diff(&d, &observed(&d)).is_empty());
    }

    #[test]
    fn filter_compared_as_json_not_text() {
        let d = desired();
        let mut o = observed(&d);
        o.filter_patterns = vec![r#"{ "eventName" : [ "INSERT" ] }"#.into()];
        assert!(Pipes::diff(&d, &o).is_empty());
    }

    #[test]
    fn each_mutable_change_is_reported_alone() {
        let d = desired();
        let cases: Vec<(&str, Mutation)> = vec![
            ("roleArn", |o| o.role_arn = "arn:aws:iam::123456789012:role/other".into()),
            ("batchSize", |o| o.batch_size = Some(10)),
            ("maximumBatchingWindowSeconds", |o| o.maximum_batching_window_seconds = Some(5)),
            ("filter", |o| o.filter_patterns.clear()),
            ("target", |o| o.target = "arn:aws:kinesis:eu-west-1:123456789012:stream/x".into()),
            ("partitionKey", |o| o.partition_key = Some("$.x".into())),
            ("inputTemplate", |o| o.input_template = None),
            ("state", |o| o.current_state = "STOPPED".into()),
            ("tags", |o| o.tags.clear()),
        ];
        for (field, change) in cases {
            let mut o = observed(&d);
            change(&mut o);
            assert_eq!(fields(Pipes::diff(&d, &o)), vec![(field.to_string(), false)], "{field}");
        }
    }

    #[test]
    fn a_pipe_asked_to_stop_is_shown_stopped_while_it_still_runs() {
        let d = desired();
        let mut o = observed(&d);
        o.desired_state = Some("STOPPED".into());
        o.current_state = RUNNING.into();
        let changes = Pipes::diff(&d, &o);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].from.as_str(), changes[0].to.as_str()), ("STOPPED", RUNNING));
    }

    #[test]
    fn source_and_starting_position_changes_are_immutable() {
        let d = desired();
        let mut o = observed(&d);
        o.source = "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2025".into();
        o.starting_position = Some("LATEST".into());
        assert_eq!(
            fields(Pipes::diff(&d, &o)),
            vec![("source".to_string(), true), ("startingPosition".to_string(), true)]
        );
    }

    #[test]
    fn foreign_tags_and_absent_defaults_are_ignored() {
        let d = desired();
        let mut o = observed(&d);
        o.tags.insert("added-by-someone".into(), "x".into());
        o.maximum_batching_window_seconds = None;
        assert!(Pipes::diff(&d, &o).is_empty());
    }

    #[test]
    fn removing_the_event_filter_is_a_filter_change() {
        let mut d = desired();
        d.filter_pattern = None;
        let mut o = observed(&d);
        o.filter_patterns = vec![r#"{"eventName":["INSERT"]}"#.into()];
        assert_eq!(fields(Pipes::diff(&d, &o)), vec![("filter".to_string(), false)]);
    }

    #[test]
    fn update_parameters_are_complete() {
        let d = desired();
        let p = update_source_parameters(&d);
        let dynamodb = p.dynamo_db_stream_parameters.unwrap();
        assert_eq!(dynamodb.batch_size, Some(d.batch_size));
        assert_eq!(dynamodb.maximum_batching_window_in_seconds, Some(d.maximum_batching_window_seconds));
        assert_eq!(p.filter_criteria.unwrap().filters()[0].pattern.as_deref(), d.filter_pattern.as_deref());
        let t = target_parameters(&d, "UpdatePipe").unwrap();
        assert_eq!(t.input_template.as_deref(), Some(d.input_template.as_str()));
        assert_eq!(t.kinesis_stream_parameters.unwrap().partition_key, d.partition_key);
    }

    #[test]
    fn readiness_waits_for_running() {
        let d = desired();
        let mut o = observed(&d);
        assert!(Pipes::readiness(&o).is_ok());
        o.current_state = "CREATING".into();
        assert!(Pipes::readiness(&o).unwrap_err().contains("CREATING"));
        o.current_state = "START_FAILED".into();
        o.state_reason = Some("role cannot read the stream".into());
        assert!(Pipes::readiness(&o).unwrap_err().contains("role cannot read the stream"));
    }
}
