//! The AWS side of change events (`sales-operator events-setup`, docs/change-events.md): an SQS
//! queue, one EventBridge rule per service on the default bus matching CloudTrail's events of the
//! mutating calls that matter for a pipeline's resources, and the queue policy that lets exactly
//! those rules send to it. `deploy/change-events/cloudformation.yaml` creates the same; a unit test
//! keeps its patterns equal to [`CHANGE_EVENTS`].

use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{json, Value};

use crate::aws::operator_policy::MANAGED_BY_VALUE;
use crate::aws::{AwsError, AwsResultExt, TAG_MANAGED_BY};

pub use crate::names::{valid_events_queue, DEFAULT_EVENTS_QUEUE, MAX_EVENTS_QUEUE};

/// The `detail-type` CloudTrail gives the API calls it delivers to EventBridge.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The CloudFormation template (`events-setup --print-cloudformation`).
pub const TEMPLATE: &str = include_str!("../../deploy/change-events/cloudformation.yaml");

/// The id of the queue among each rule's targets.
pub const TARGET_ID: &str = "sales-operator-queue";

/// Each event source and the CloudTrail event names (sorted) of the mutating calls that change a
/// pipeline's resources of that service. Event names are the API operations' names, except S3's
/// (`PutBucketLifecycle` for PutBucketLifecycleConfiguration, `PutBucketPublicAccessBlock` for
/// PutPublicAccessBlock). The one place these patterns are written: the template must agree.
pub const CHANGE_EVENTS: &[(&str, &[&str])] = &[
    (
        "aws.dynamodb",
        &["DeleteTable", "TagResource", "UntagResource", "UpdateContinuousBackups", "UpdateTable", "UpdateTimeToLive"],
    ),
    (
        "aws.kinesis",
        &[
            "AddTagsToStream",
            "DecreaseStreamRetentionPeriod",
            "DeleteStream",
            "IncreaseStreamRetentionPeriod",
            "RemoveTagsFromStream",
            "StartStreamEncryption",
            "StopStreamEncryption",
            "TagResource",
            "UntagResource",
            "UpdateShardCount",
            "UpdateStreamMode",
        ],
    ),
    ("aws.pipes", &["DeletePipe", "StartPipe", "StopPipe", "TagResource", "UntagResource", "UpdatePipe"]),
    (
        "aws.firehose",
        &[
            "DeleteDeliveryStream",
            "StartDeliveryStreamEncryption",
            "StopDeliveryStreamEncryption",
            "TagDeliveryStream",
            "UntagDeliveryStream",
            "UpdateDestination",
        ],
    ),
    (
        "aws.s3",
        &[
            "DeleteBucket",
            "DeleteBucketEncryption",
            "DeleteBucketLifecycle",
            "DeleteBucketPolicy",
            "DeleteBucketPublicAccessBlock",
            "DeleteBucketTagging",
            "PutBucketEncryption",
            "PutBucketLifecycle",
            "PutBucketPolicy",
            "PutBucketPublicAccessBlock",
            "PutBucketTagging",
        ],
    ),
    (
        "aws.glue",
        &[
            "BatchDeleteTable",
            "DeleteCrawler",
            "DeleteDatabase",
            "DeleteTable",
            "TagResource",
            "UntagResource",
            "UpdateCrawler",
            "UpdateCrawlerSchedule",
            "UpdateDatabase",
            "UpdateTable",
        ],
    ),
    (
        "aws.athena",
        &["DeleteNamedQuery", "DeleteWorkGroup", "TagResource", "UntagResource", "UpdateNamedQuery", "UpdateWorkGroup"],
    ),
    (
        "aws.iam",
        &[
            "AttachRolePolicy",
            "DeleteRole",
            "DeleteRolePermissionsBoundary",
            "DeleteRolePolicy",
            "DetachRolePolicy",
            "PutRolePermissionsBoundary",
            "PutRolePolicy",
            "TagRole",
            "UntagRole",
            "UpdateAssumeRolePolicy",
            "UpdateRole",
        ],
    ),
];

/// The EventBridge pattern of one source's rule: its change events that succeeded.
pub fn event_pattern(source: &str, event_names: &[&str]) -> Value {
    json!({
        "source": [source],
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "eventName": event_names,
            "readOnly": [false],
            "errorCode": [{ "exists": false }]
        }
    })
}

/// The service part of a source (`aws.kinesis` → `kinesis`).
pub fn service_of(source: &str) -> &str {
    source.strip_prefix("aws.").unwrap_or(source)
}

/// The name of the rule for `source` that feeds queue `queue`: `<queue>-<service>`.
pub fn rule_name(queue: &str, source: &str) -> String {
    format!("{queue}-{}", service_of(source))
}

/// The queue's attributes besides its policy, as SQS reports them: SSE with SQS-managed keys,
/// 4 days' retention, 60 s visibility, 20 s long polls.
pub fn queue_attributes() -> Vec<(QueueAttributeName, &'static str)> {
    vec![
        (QueueAttributeName::SqsManagedSseEnabled, "true"),
        (QueueAttributeName::MessageRetentionPeriod, "345600"),
        (QueueAttributeName::VisibilityTimeout, "60"),
        (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20"),
    ]
}

/// The queue policy: EventBridge may send to the queue on behalf of these rules only.
pub fn queue_policy(queue_arn: &str, rule_arns: &[String]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ChangeEventRulesSend",
            "Effect": "Allow",
            "Principal": { "Service": "events.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": rule_arns } }
        }]
    })
}

/// `sales-operator events-setup`.
#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// The SQS queue's name (its rules are named `<queue>-<service>`).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_EVENTS_QUEUE)]
    pub queue_name: String,
    /// Print the CloudFormation template that creates the same resources, and call nothing.
    #[arg(long)]
    pub print_cloudformation: bool,
}

/// Why `events-setup` failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--queue-name: {0} is not a queue name for events-setup (1-{MAX_EVENTS_QUEUE} letters, digits, '-' or '_')"
    )]
    QueueName(String),
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// AWS answered without something it always sends.
    #[error("{operation}: AWS's answer has no {field}")]
    Incomplete { operation: &'static str, field: &'static str },
    /// EventBridge refused to add the queue as a rule's target.
    #[error("events:PutTargets: rule {rule} did not take queue {queue} as its target: {reason}")]
    Target { rule: String, queue: String, reason: String },
}

/// What `events-setup` did to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Created,
    Updated,
    Unchanged,
}

/// One resource and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub verb: Verb,
    /// `queue NAME`, `queue policy of NAME`, `rule NAME`.
    pub resource: String,
    /// What was changed, for [`Verb::Updated`].
    pub changes: Vec<String>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.verb {
            Verb::Created => "created",
            Verb::Updated => "updated",
            Verb::Unchanged => "unchanged",
        };
        write!(f, "{word:<10}{}", self.resource)?;
        if !self.changes.is_empty() {
            write!(f, " ({})", self.changes.join(", "))?;
        }
        Ok(())
    }
}

/// The outcome of `events-setup`.
#[derive(Clone, Debug)]
pub struct Report {
    pub queue_url: String,
    pub queue_arn: String,
    pub rule_arns: Vec<String>,
    pub steps: Vec<Step>,
}

impl Report {
    /// Whether nothing was created or changed.
    pub fn unchanged(&self) -> bool {
        self.steps.iter().all(|s| s.verb == Verb::Unchanged)
    }
}

fn step(verb: Verb, resource: String, changes: Vec<String>) -> Step {
    Step { verb, resource, changes }
}

/// Creates what is missing of the queue, its policy and the rules in the SDK configuration's
/// region, and brings what differs back to the desired settings; leaves the rest as it is.
pub async fn run(sdk: &SdkConfig, queue_name: &str) -> Result<Report, SetupError> {
    if !valid_events_queue(queue_name) {
        return Err(SetupError::QueueName(queue_name.to_string()));
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut steps = Vec::new();

    let (queue_url, queue_step) = ensure_queue(&sqs, queue_name).await?;
    steps.push(queue_step);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .aws("sqs:GetQueueAttributes")?;
    let attributes = attributes.attributes().cloned().unwrap_or_default();
    let queue_arn = attributes
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .ok_or(SetupError::Incomplete { operation: "sqs:GetQueueAttributes", field: "QueueArn" })?;

    let mut rule_arns = Vec::new();
    for (source, names) in CHANGE_EVENTS {
        let name = rule_name(queue_name, source);
        let (arn, rule_step) = ensure_rule(&events, &name, source, names).await?;
        let target_changed = ensure_target(&events, &name, &queue_arn).await?;
        steps.push(with_change(rule_step, target_changed.then(|| "target".to_string())));
        rule_arns.push(arn);
    }

    let desired = queue_policy(&queue_arn, &rule_arns);
    let current = attributes.get(&QueueAttributeName::Policy).and_then(|p| serde_json::from_str::<Value>(p).ok());
    let policy_step = format!("queue policy of {queue_name}");
    match current {
        Some(current) if normalized(&current) == normalized(&desired) => {
            steps.push(step(Verb::Unchanged, policy_step, vec![]))
        }
        current => {
            sqs.set_queue_attributes()
                .queue_url(&queue_url)
                .attributes(QueueAttributeName::Policy, desired.to_string())
                .send()
                .await
                .aws("sqs:SetQueueAttributes")?;
            let verb = if current.is_some() { Verb::Updated } else { Verb::Created };
            steps.push(step(verb, policy_step, vec![]));
        }
    }
    Ok(Report { queue_url, queue_arn, rule_arns, steps })
}

/// `s` with one more change: an unchanged resource whose target changed is updated.
fn with_change(mut s: Step, change: Option<String>) -> Step {
    if let Some(change) = change {
        if s.verb == Verb::Unchanged {
            s.verb = Verb::Updated;
        }
        if s.verb == Verb::Updated {
            s.changes.push(change);
        }
    }
    s
}

fn is_missing_queue<E: ProvideErrorMetadata>(e: &E) -> bool {
    matches!(e.code(), Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist"))
}

/// The queue's URL, creating the queue or correcting its attributes and tag as needed.
async fn ensure_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, Step), SetupError> {
    let resource = format!("queue {name}");
    let found = match sqs.get_queue_url().queue_name(name).send().await {
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist() || is_missing_queue(s)) => None,
        answer => Some(
            answer
                .aws("sqs:GetQueueUrl")?
                .queue_url()
                .map(str::to_string)
                .ok_or(SetupError::Incomplete { operation: "sqs:GetQueueUrl", field: "QueueUrl" })?,
        ),
    };
    let Some(url) = found else {
        let mut create = sqs.create_queue().queue_name(name).tags(TAG_MANAGED_BY, MANAGED_BY_VALUE);
        for (key, value) in queue_attributes() {
            create = create.attributes(key, value);
        }
        let out = create.send().await.aws("sqs:CreateQueue")?;
        let url = out
            .queue_url()
            .map(str::to_string)
            .ok_or(SetupError::Incomplete { operation: "sqs:CreateQueue", field: "QueueUrl" })?;
        return Ok((url, step(Verb::Created, resource, vec![])));
    };

    let out = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .aws("sqs:GetQueueAttributes")?;
    let current = out.attributes().cloned().unwrap_or_default();
    let differing: Vec<(QueueAttributeName, &str)> = queue_attributes()
        .into_iter()
        .filter(|(key, value)| current.get(key).map(String::as_str) != Some(*value))
        .collect();
    let mut changes: Vec<String> = differing.iter().map(|(key, _)| key.as_str().to_string()).collect();
    if !differing.is_empty() {
        let mut set = sqs.set_queue_attributes().queue_url(&url);
        for (key, value) in differing {
            set = set.attributes(key, value);
        }
        set.send().await.aws("sqs:SetQueueAttributes")?;
    }
    let tags = sqs.list_queue_tags().queue_url(&url).send().await.aws("sqs:ListQueueTags")?;
    if tags.tags().and_then(|t| t.get(TAG_MANAGED_BY)).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        sqs.tag_queue().queue_url(&url).tags(TAG_MANAGED_BY, MANAGED_BY_VALUE).send().await.aws("sqs:TagQueue")?;
        changes.push(format!("tag {TAG_MANAGED_BY}"));
    }
    let verb = if changes.is_empty() { Verb::Unchanged } else { Verb::Updated };
    Ok((url, step(verb, resource, changes)))
}

fn managed_by_tag() -> Result<Tag, SetupError> {
    Tag::builder()
        .key(TAG_MANAGED_BY)
        .value(MANAGED_BY_VALUE)
        .build()
        .map_err(|_| SetupError::Incomplete { operation: "events:TagResource", field: "tag" })
}

/// The rule's ARN, creating the rule or correcting its pattern, state, description and tag.
async fn ensure_rule(
    events: &aws_sdk_eventbridge::Client,
    name: &str,
    source: &str,
    event_names: &[&str],
) -> Result<(String, Step), SetupError> {
    let resource = format!("rule {name}");
    let pattern = event_pattern(source, event_names);
    let description =
        format!("sales-operator change events: {} calls that change pipeline resources", service_of(source));
    let put = || {
        events
            .put_rule()
            .name(name)
            .event_bus_name("default")
            .event_pattern(pattern.to_string())
            .state(RuleState::Enabled)
            .description(&description)
    };
    let current =
        match events.describe_rule().name(name).event_bus_name("default").send().await.aws("events:DescribeRule") {
            Ok(rule) => rule,
            Err(e) if e.is_not_found() => {
                let out = put().tags(managed_by_tag()?).send().await.aws("events:PutRule")?;
                let arn = out
                    .rule_arn()
                    .map(str::to_string)
                    .ok_or(SetupError::Incomplete { operation: "events:PutRule", field: "RuleArn" })?;
                return Ok((arn, step(Verb::Created, resource, vec![])));
            }
            Err(e) => return Err(e.into()),
        };
    let arn = current
        .arn()
        .map(str::to_string)
        .ok_or(SetupError::Incomplete { operation: "events:DescribeRule", field: "Arn" })?;
    let mut changes = Vec::new();
    let current_pattern = current.event_pattern().and_then(|p| serde_json::from_str::<Value>(p).ok());
    if current_pattern.as_ref().map(normalized) != Some(normalized(&pattern)) {
        changes.push("event pattern".to_string());
    }
    if current.state() != Some(&RuleState::Enabled) {
        changes.push("state".to_string());
    }
    if current.description() != Some(description.as_str()) {
        changes.push("description".to_string());
    }
    if !changes.is_empty() {
        put().send().await.aws("events:PutRule")?;
    }
    let tags = events.list_tags_for_resource().resource_arn(&arn).send().await.aws("events:ListTagsForResource")?;
    if !tags.tags().iter().any(|t| t.key() == TAG_MANAGED_BY && t.value() == MANAGED_BY_VALUE) {
        events.tag_resource().resource_arn(&arn).tags(managed_by_tag()?).send().await.aws("events:TagResource")?;
        changes.push(format!("tag {TAG_MANAGED_BY}"));
    }
    let verb = if changes.is_empty() { Verb::Unchanged } else { Verb::Updated };
    Ok((arn, step(verb, resource, changes)))
}

/// Makes the queue rule `rule`'s target [`TARGET_ID`] (the whole event as the message); whether
/// that changed anything.
async fn ensure_target(events: &aws_sdk_eventbridge::Client, rule: &str, queue_arn: &str) -> Result<bool, SetupError> {
    let targets = events
        .list_targets_by_rule()
        .rule(rule)
        .event_bus_name("default")
        .send()
        .await
        .aws("events:ListTargetsByRule")?;
    let set = targets.targets().iter().any(|t| {
        t.id() == TARGET_ID
            && t.arn() == queue_arn
            && t.input().is_none()
            && t.input_path().is_none()
            && t.input_transformer().is_none()
    });
    if set {
        return Ok(false);
    }
    let target = Target::builder().id(TARGET_ID).arn(queue_arn).build().map_err(|e| SetupError::Target {
        rule: rule.to_string(),
        queue: queue_arn.to_string(),
        reason: e.to_string(),
    })?;
    let out = events
        .put_targets()
        .rule(rule)
        .event_bus_name("default")
        .targets(target)
        .send()
        .await
        .aws("events:PutTargets")?;
    if let Some(failed) = out.failed_entries().first().filter(|_| out.failed_entry_count() > 0) {
        return Err(SetupError::Target {
            rule: rule.to_string(),
            queue: queue_arn.to_string(),
            reason: format!(
                "{}: {}",
                failed.error_code().unwrap_or("unknown error"),
                failed.error_message().unwrap_or_default()
            ),
        });
    }
    Ok(true)
}

/// `v` compared as AWS compares policies and patterns: a one-element list equals its element,
/// and the order of a list of scalars does not count.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 1 => normalized(&items[0]),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        other => other.clone(),
    }
}

/// The lines `events-setup` prints for `report` in `region`.
pub fn report_lines(report: &Report, region: &str) -> Vec<String> {
    let mut lines: Vec<String> = report.steps.iter().map(Step::to_string).collect();
    let count = |verb: Verb| report.steps.iter().filter(|s| s.verb == verb).count();
    lines.push(String::new());
    lines.push(format!("Queue URL: {}", report.queue_url));
    lines.push(if report.unchanged() {
        format!(
            "Nothing changed: the queue, its policy and {} rules in {region} were already set up.",
            report.rule_arns.len()
        )
    } else {
        format!(
            "{} created, {} updated, {} unchanged in {region}.",
            count(Verb::Created),
            count(Verb::Updated),
            count(Verb::Unchanged)
        )
    });
    if region != "us-east-1" {
        lines.push(
            "IAM's change events reach EventBridge only in us-east-1: run events-setup --region us-east-1 too \
             (with the operator reading that queue) to see IAM role drift."
                .to_string(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The patterns of the template's rules, by source.
    fn template_patterns(template: &Value) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for resource in template["Resources"].as_object().into_iter().flat_map(|r| r.values()) {
            if resource["Type"] == "AWS::Events::Rule" {
                let pattern = resource["Properties"]["EventPattern"].clone();
                let source = pattern["source"][0].as_str().unwrap_or_default().to_string();
                out.insert(source, pattern);
            }
        }
        out
    }

    fn template() -> Value {
        serde_saphyr::from_str(TEMPLATE).expect("the template is YAML")
    }

    fn rules(t: &Value) -> Vec<(String, Value)> {
        let resources = t["Resources"].as_object().unwrap();
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Events::Rule")
            .map(|(id, r)| (id.clone(), r["Properties"].clone()))
            .collect()
    }

    #[test]
    fn the_template_matches_the_same_events_as_the_rust_table() {
        let t = template();
        let patterns = template_patterns(&t);
        let expected: BTreeMap<String, Value> =
            CHANGE_EVENTS.iter().map(|(source, names)| (source.to_string(), event_pattern(source, names))).collect();
        assert_eq!(patterns, expected, "deploy/change-events/cloudformation.yaml and CHANGE_EVENTS differ");
        assert_eq!(rules(&t).len(), CHANGE_EVENTS.len(), "one rule per source");
    }

    #[test]
    fn every_template_rule_is_named_after_the_queue_and_targets_it() {
        let t = template();
        assert_eq!(t["Parameters"]["QueueName"]["Default"], DEFAULT_EVENTS_QUEUE);
        for (id, rule) in rules(&t) {
            let source = rule["EventPattern"]["source"][0].as_str().unwrap();
            assert_eq!(rule["Name"]["Fn::Sub"], format!("${{QueueName}}-{}", service_of(source)), "{id}");
            assert_eq!(rule["EventBusName"], "default", "{id}");
            assert_eq!(rule["State"], "ENABLED", "{id}");
            assert_eq!(
                rule["Targets"],
                json!([{ "Id": TARGET_ID, "Arn": { "Fn::GetAtt": ["Queue", "Arn"] } }]),
                "{id}"
            );
        }
    }

    #[test]
    fn the_template_queue_and_policy_are_those_events_setup_makes() {
        let t = template();
        let queue = &t["Resources"]["Queue"];
        assert_eq!(queue["Type"], "AWS::SQS::Queue");
        for (key, value) in queue_attributes() {
            let got = &queue["Properties"][key.as_str()];
            assert_eq!(got.to_string().trim_matches('"'), value, "{}", key.as_str());
        }
        assert_eq!(queue["Properties"]["Tags"], json!([{ "Key": TAG_MANAGED_BY, "Value": MANAGED_BY_VALUE }]));
        let policy = t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .find(|r| r["Type"] == "AWS::SQS::QueuePolicy")
            .expect("a queue policy");
        let rule_arns: Vec<String> = rules(&t).iter().map(|(id, _)| id.clone()).collect();
        let arns: Vec<Value> = rule_arns.iter().map(|id| json!({ "Fn::GetAtt": [id, "Arn"] })).collect();
        let mut expected = queue_policy("QUEUE", &[]);
        expected["Statement"][0]["Resource"] = json!({ "Fn::GetAtt": ["Queue", "Arn"] });
        expected["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] = json!(arns);
        assert_eq!(normalized(&policy["Properties"]["PolicyDocument"]), normalized(&expected));
        assert_eq!(policy["Properties"]["Queues"], json!([{ "Ref": "Queue" }]));
        assert_eq!(t["Outputs"]["QueueUrl"]["Value"], json!({ "Ref": "Queue" }));
        assert_eq!(t["Outputs"]["QueueArn"]["Value"], json!({ "Fn::GetAtt": ["Queue", "Arn"] }));
    }

    #[test]
    fn the_table_is_sorted_and_only_mutating() {
        for (source, names) in CHANGE_EVENTS {
            let mut sorted = names.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(&sorted, names, "{source}");
            for name in *names {
                assert!(!crate::aws::calls::is_read_operation(name), "{source} {name} only reads");
            }
            assert!(rule_name(&"q".repeat(MAX_EVENTS_QUEUE), source).len() <= 64, "{source}");
        }
    }

    #[test]
    fn a_policy_or_pattern_compares_as_aws_stores_it() {
        let arns = vec!["arn:b".to_string(), "arn:a".to_string()];
        let mut reordered = queue_policy("q", &arns);
        reordered["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] = json!(["arn:a", "arn:b"]);
        reordered["Statement"][0]["Principal"]["Service"] = json!(["events.amazonaws.com"]);
        assert_eq!(normalized(&reordered), normalized(&queue_policy("q", &arns)));
        assert_ne!(normalized(&queue_policy("q", &arns[..1])), normalized(&queue_policy("q", &arns)));
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(valid_events_queue(DEFAULT_EVENTS_QUEUE) && valid_events_queue("a_1"));
        for bad in ["", "a.fifo", "a b", &"q".repeat(MAX_EVENTS_QUEUE + 1)] {
            assert!(!valid_events_queue(bad), "{bad}");
        }
    }
}
