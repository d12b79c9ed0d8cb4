//! The AWS side of change events (docs/change-events.md): the CloudFormation template deployed on
//! moto's CloudFormation, and `sales-operator events-setup` run as a user runs it, each proven by
//! a mutating call whose change event reaches the queue (the AWS-behaviour layer publishes the
//! CloudTrail events moto does not) while a read sends nothing.
//!
//! moto (5.2.5) quirks met here: its CloudFormation does not implement AWS::SQS::QueuePolicy (the
//! stack completes without it, and moto's EventBridge delivers to SQS without any queue policy
//! anyway), so the template's policy is checked by the unit tests of src/events/setup.rs and the
//! policy `events-setup` writes is read back here. A matched rule whose queue was deleted makes
//! moto refuse the whole event for every rule, so no test here deletes a queue. Every queue of
//! this suite's server receives every test's events: messages are told apart by stream name.

crate::support::moto::own_server!();

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails, StreamStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use sales_operator::events::setup::{self, CHANGE_EVENTS, TARGET_ID};
use serde_json::Value;

use crate::support::text;

async fn sdk() -> aws_config::SdkConfig {
    moto::sdk(&moto::settings()).await
}

/// deploy/change-events/cloudformation.yaml deployed on moto's CloudFormation as stack `queue`
/// for queue `queue`: the queue's URL and ARN (the stack's outputs).
pub async fn deploy_template(sdk: &aws_config::SdkConfig, queue: &str) -> (String, String) {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let parameter =
        aws_sdk_cloudformation::types::Parameter::builder().parameter_key("QueueName").parameter_value(queue).build();
    let stack = cfn
        .create_stack()
        .stack_name(queue)
        .template_body(setup::TEMPLATE)
        .parameters(parameter)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create stack: {}", aws_sdk_cloudformation::error::DisplayErrorContext(e)));
    let described = cfn.describe_stacks().stack_name(stack.stack_id().unwrap()).send().await.unwrap();
    let stack = &described.stacks()[0];
    assert_eq!(stack.stack_status().unwrap().as_str(), "CREATE_COMPLETE", "{stack:?}");
    let output = |key: &str| {
        stack.outputs().iter().find(|o| o.output_key() == Some(key)).and_then(|o| o.output_value()).unwrap().to_string()
    };
    (output("QueueUrl"), output("QueueArn"))
}

/// An ACTIVE on-demand stream `name` (the layer, like AWS, may not show a new stream at once and
/// keeps it CREATING for a moment).
async fn active_stream(kinesis: &aws_sdk_kinesis::Client, name: &str) {
    let mode = StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build().unwrap();
    kinesis.create_stream().stream_name(name).stream_mode_details(mode).send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kinesis.describe_stream_summary().stream_name(name).send().await;
        let status = out.ok().and_then(|o| o.stream_description_summary).map(|s| s.stream_status);
        if status == Some(StreamStatus::Active) {
            return;
        }
        assert!(Instant::now() < deadline, "stream {name} not ACTIVE within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The change events about stream `stream` that reach queue `url` within `wait` (each message
/// received is deleted; those about other tests' streams are dropped).
async fn events_about(sqs: &aws_sdk_sqs::Client, url: &str, stream: &str, wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    while Instant::now() < deadline && found.is_empty() {
        let out =
            sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            if body["detail"]["requestParameters"]["streamName"] == stream {
                found.push(body);
            }
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    found
}

/// Reads a stream (nothing reaches `url`), then changes its retention: one change event arrives,
/// shaped as CloudTrail's.
async fn a_change_reaches_the_queue_and_a_read_does_not(sqs: &aws_sdk_sqs::Client, url: &str) {
    let kinesis = aws_sdk_kinesis::Client::new(&sdk().await);
    let stream = format!("{}-x", moto::unique("events"));
    active_stream(&kinesis, &stream).await;
    kinesis.describe_stream_summary().stream_name(&stream).send().await.unwrap();
    kinesis.list_tags_for_stream().stream_name(&stream).send().await.unwrap();
    let read = events_about(sqs, url, &stream, Duration::from_secs(2)).await;
    assert!(read.is_empty(), "creating or reading a stream sent change events: {read:#?}");

    kinesis.increase_stream_retention_period().stream_name(&stream).retention_period_hours(48).send().await.unwrap();
    let events = events_about(sqs, url, &stream, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["source"], "aws.kinesis");
    assert_eq!(e["detail-type"], setup::DETAIL_TYPE);
    assert_eq!(e["detail"]["eventName"], "IncreaseStreamRetentionPeriod");
    assert_eq!(e["detail"]["readOnly"], false);
}

#[tokio::test]
async fn the_cloudformation_template_deployed_carries_a_change_event_to_its_queue() {
    let sdk = sdk().await;
    let queue = moto::unique("cfn-events");
    let (url, arn) = deploy_template(&sdk, &queue).await;
    assert!(url.ends_with(&format!("/{queue}")) && arn.ends_with(&format!(":{queue}")), "{url} {arn}");

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    for (key, value) in setup::queue_attributes() {
        assert_eq!(attributes.get(&key).map(String::as_str), Some(value), "{}", key.as_str());
    }

    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let rules = events.list_rules().name_prefix(format!("{queue}-")).send().await.unwrap();
    assert_eq!(rules.rules().len(), CHANGE_EVENTS.len(), "{rules:?}");
    for (source, names) in CHANGE_EVENTS {
        let name = setup::rule_name(&queue, source);
        let rule = events.describe_rule().name(&name).send().await.unwrap();
        let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
        assert_eq!(pattern, setup::event_pattern(source, names), "{name}");
        let targets = events.list_targets_by_rule().rule(&name).send().await.unwrap();
        assert_eq!(targets.targets().len(), 1, "{name}");
        assert_eq!((targets.targets()[0].id(), targets.targets()[0].arn()), (TARGET_ID, arn.as_str()), "{name}");
    }

    a_change_reaches_the_queue_and_a_read_does_not(&sqs, &url).await;
}

/// `sales-operator events-setup --region eu-west-1 ARGS` against this suite's server.
fn events_setup(args: &[&str]) -> std::process::Output {
    let mut all = vec!["events-setup", "--region", moto::REGION];
    all.extend(args);
    moto::operator(&all)
}

async fn count_queues_and_rules(sdk: &aws_config::SdkConfig, queue: &str) -> (usize, usize) {
    let queues = aws_sdk_sqs::Client::new(sdk).list_queues().queue_name_prefix(queue).send().await.unwrap();
    let rules = aws_sdk_eventbridge::Client::new(sdk).list_rules().name_prefix(queue).send().await.unwrap();
    (queues.queue_urls().len(), rules.rules().len())
}

#[tokio::test]
async fn events_setup_creates_once_then_changes_nothing_repairs_a_changed_rule_and_its_queue_receives_changes() {
    let sdk = sdk().await;
    let queue = moto::unique("cli-events");
    let first = events_setup(&["--queue-name", &queue]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let said = text(&first.stdout);
    let created = said.lines().filter(|l| l.starts_with("created ")).count();
    assert_eq!(created, 1 + CHANGE_EVENTS.len() + 1, "the queue, the rules and the policy:\n{said}");
    assert!(said.contains(&format!("created   queue {queue}\n")), "{said}");
    let url = said.lines().find_map(|l| l.strip_prefix("Queue URL: ")).unwrap_or_else(|| panic!("{said}")).to_string();
    assert!(said.contains("us-east-1"), "the IAM note: {said}");
    assert_eq!(count_queues_and_rules(&sdk, &queue).await, (1, CHANGE_EVENTS.len()));

    let second = events_setup(&["--queue-name", &queue]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let said = text(&second.stdout);
    assert!(said.contains("Nothing changed"), "{said}");
    assert!(!said.lines().any(|l| l.starts_with("created ") || l.starts_with("updated ")), "{said}");
    assert!(said.contains(&format!("Queue URL: {url}\n")), "{said}");
    assert_eq!(count_queues_and_rules(&sdk, &queue).await, (1, CHANGE_EVENTS.len()));

    // What it made: the queue's settings and tag, and a policy naming exactly its rules.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes =
        sqs.get_queue_attributes().queue_url(&url).attribute_names(QueueAttributeName::All).send().await.unwrap();
    let attributes = attributes.attributes.unwrap();
    for (key, value) in setup::queue_attributes() {
        assert_eq!(attributes.get(&key).map(String::as_str), Some(value), "{}", key.as_str());
    }
    let policy: Value = serde_json::from_str(&attributes[&QueueAttributeName::Policy]).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(statement["Action"], "sqs:SendMessage");
    assert_eq!(statement["Resource"], attributes[&QueueAttributeName::QueueArn].as_str());
    let sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"].as_array().unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let mut rule_arns = Vec::new();
    for (source, _) in CHANGE_EVENTS {
        let rule = events.describe_rule().name(setup::rule_name(&queue, source)).send().await.unwrap();
        let arn = rule.arn().unwrap().to_string();
        let tags = events.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
        assert!(
            tags.tags().iter().any(|t| t.key() == "sales-operator.dev/managed-by" && t.value() == "sales-operator"),
            "{arn}: {tags:?}"
        );
        rule_arns.push(Value::from(arn));
    }
    assert_eq!(sources.len(), rule_arns.len(), "{policy:#}");
    assert!(rule_arns.iter().all(|a| sources.contains(a)), "{policy:#}");
    let tags = sqs.list_queue_tags().queue_url(&url).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().get("sales-operator.dev/managed-by").map(String::as_str), Some("sales-operator"));

    // A rule changed by hand is put back.
    let kinesis_rule = setup::rule_name(&queue, "aws.kinesis");
    events
        .put_rule()
        .name(&kinesis_rule)
        .event_pattern(r#"{"source":["aws.kinesis"],"detail":{"eventName":["DeleteStream"]}}"#)
        .send()
        .await
        .unwrap();
    let third = events_setup(&["--queue-name", &queue]);
    assert!(third.status.success(), "{}", text(&third.stderr));
    let said = text(&third.stdout);
    // (PutRule without a description drops it: that is put back too.)
    assert!(said.contains(&format!("updated   rule {kinesis_rule} (event pattern")), "{said}");
    assert_eq!(said.lines().filter(|l| l.starts_with("updated ")).count(), 1, "{said}");
    assert_eq!(count_queues_and_rules(&sdk, &queue).await, (1, CHANGE_EVENTS.len()));

    a_change_reaches_the_queue_and_a_read_does_not(&sqs, &url).await;
}

#[test]
fn events_setup_prints_the_template_without_calling_aws_and_refuses_a_bad_queue_name() {
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["events-setup", "--print-cloudformation"])
        // Nowhere to call: a call would fail the command.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_REGION")
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    assert_eq!(text(&printed.stdout), setup::TEMPLATE);

    let bad = events_setup(&["--queue-name", "changes.fifo"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--queue-name: changes.fifo is not a queue name"), "{}", text(&bad.stderr));
}
