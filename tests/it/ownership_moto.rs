//! Ownership (SPEC §8) against the moto server: a pipeline never modifies or deletes a
//! resource that does not carry its ownership tags, takes an untagged one only through
//! `spec.adopt`, and never deletes an adopted table or bucket.

use crate::support::apply;
crate::support::moto::own_server!();

use std::collections::BTreeMap;

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::api::DeletionPolicy;
use sales_operator::aws::{ComponentKind, PipelineCtx, TAG_ADOPTED, TAG_PIPELINE};
use sales_operator::reconcile::Reconciler;
use sales_operator::reconcile::{reconcile, teardown, Mode, Outcome, Verb};

use apply::{converge, converge_observed};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use moto::{reconciler, REGION};

/// The pipeline `namespace/name` with `spec` (YAML, indented by 2).
fn pipeline_in(namespace: &str, name: &str, spec: &str) -> PipelineCtx {
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
    );
    let p = parse_pipeline(&yaml, "test").unwrap_or_else(|e| panic!("{e}"));
    PipelineCtx::new(namespace, name, &p.spec, REGION)
}

/// Reason and message of the pipeline's `Stalled` condition, and the reason of `kind`'s state.
fn stalled(outcome: &Outcome, kind: ComponentKind) -> (String, String, String) {
    let c = outcome
        .conditions(Mode::Apply)
        .into_iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .unwrap_or_else(|| panic!("not stalled: {:#?}", outcome.components));
    let component =
        outcome.components.iter().find(|s| s.kind == kind).map(|s| s.reason.to_string()).unwrap_or_default();
    (component, c.reason.to_string(), c.message)
}

async fn table_tags(c: &Reconciler, name: &str) -> BTreeMap<String, String> {
    let arn = c.aws.dynamodb.describe_table().table_name(name).send().await.unwrap().table.unwrap().table_arn.unwrap();
    let tags = c.aws.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.unwrap().tags.unwrap_or_default();
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

/// Everything of team A's chain that team B could have taken over.
async fn snapshot(c: &Reconciler, ctx: &PipelineCtx) -> Vec<String> {
    let n = &ctx.names;
    let stream_tags = c.aws.kinesis.list_tags_for_stream().stream_name(&n.stream).send().await.unwrap().tags;
    let pipe = c.aws.pipes.describe_pipe().name(&n.pipe).send().await.unwrap();
    let delivery = c.aws.firehose.describe_delivery_stream().delivery_stream_name(&n.delivery).send().await.unwrap();
    let destination = format!("{:?}", delivery.delivery_stream_description.map(|d| d.destinations));
    let mut policies = Vec::new();
    for (role, policy) in [(&n.pipe_role, &n.pipe_policy), (&n.firehose_role, &n.firehose_policy)] {
        let doc = c.aws.iam.get_role_policy().role_name(role).policy_name(policy).send().await.unwrap().policy_document;
        let tags = c.aws.iam.list_role_tags().role_name(role).send().await.unwrap().tags;
        policies.push(format!("{role}: {doc} {tags:?}"));
    }
    let database = c.aws.glue.get_database().name(&n.database).send().await.unwrap();
    let glue_table = c.aws.glue.get_table().database_name(&n.database).name(&n.glue_table).send().await.unwrap();
    let location = glue_table.table.and_then(|t| t.storage_descriptor).and_then(|s| s.location);
    vec![
        format!("table tags {:?}", table_tags(c, &n.table).await),
        format!("stream tags {stream_tags:?}"),
        format!(
            "pipe {:?} {:?} {:?}",
            pipe.target,
            pipe.role_arn,
            pipe.tags.map(|t| t.into_iter().collect::<BTreeMap<_, _>>())
        ),
        format!("delivery {destination}"),
        format!("roles {policies:?}"),
        format!("database {:?}", database.database.map(|d| d.parameters)),
        format!("glue table location {location:?}"),
    ]
}

#[tokio::test]
async fn a_second_pipeline_with_the_same_names_is_refused_and_deletes_nothing_of_the_first() {
    let c = reconciler().await;
    let prefix = moto::unique("shared");
    let spec = format!("  namePrefix: {prefix}\n  deletionPolicy: Delete\n");
    let team_a = pipeline_in("team-a", "sales", &spec);
    let team_b = pipeline_in("team-b", "sales", &spec);
    assert_eq!(team_a.names.table, team_b.names.table, "the same names on purpose");
    assert_eq!(team_a.names.pipe_role, team_b.names.pipe_role);
    assert!(converge(&c, &team_a).await.ready());
    let before = snapshot(&c, &team_a).await;
    let mutations = c.aws.calls.mutations();

    let b = reconcile(&c, &team_b, Mode::Apply).await;
    assert!(!b.ready() && b.stalled(), "{:#?}", b.components);
    let (component, reason, message) = stalled(&b, ComponentKind::Table);
    assert_eq!((component.as_str(), reason.as_str()), ("NameConflict", "NameConflict"), "{message}");
    assert!(message.contains("belongs to SalesPipeline team-a/sales"), "{message}");
    assert_eq!(c.aws.calls.mutations(), mutations, "team-b changed something in AWS");
    assert_eq!(snapshot(&c, &team_a).await, before);
    // `plan` says so too.
    let plan = reconcile(&c, &team_b, Mode::Plan).await;
    assert!(plan.actions.iter().any(|a| a.verb == Verb::Conflict), "{:?}", plan.actions);

    let done = teardown(&c, &team_b, DeletionPolicy::Delete, false).await;
    assert!(done.complete(), "{:?}", done.error);
    assert!(done.actions.iter().all(|a| a.verb == Verb::Retain), "{:?}", done.actions);
    assert_eq!(c.aws.calls.mutations(), mutations, "team-b's teardown deleted something");
    assert_eq!(snapshot(&c, &team_a).await, before);
    assert!(converge(&c, &team_a).await.ready(), "team-a is still whole");

    let done = teardown(&c, &team_a, DeletionPolicy::Delete, false).await;
    assert!(done.complete() && done.actions.iter().all(|a| a.verb == Verb::Delete), "{:?}", done.actions);
}

/// The seed project's hand-made table: `orderid` key, no stream, no tags.
async fn hand_made_table(c: &Reconciler, name: &str) {
    c.aws
        .dynamodb
        .create_table()
        .table_name(name)
        .key_schema(KeySchemaElement::builder().attribute_name("orderid").key_type(KeyType::Hash).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("orderid")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    // Made a while ago by someone else: visible and ACTIVE (AWS creates asynchronously).
    until(|| async {
        let t = c.aws.dynamodb.describe_table().table_name(name).send().await.ok().and_then(|o| o.table);
        t.and_then(|t| t.table_status).is_some_and(|s| s.as_str() == "ACTIVE")
    })
    .await;
}

/// Waits (up to 30 s) until `check` holds.
async fn until<F: std::future::Future<Output = bool>>(check: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "AWS never got there");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn stream_enabled(c: &Reconciler, name: &str) -> bool {
    let t = c.aws.dynamodb.describe_table().table_name(name).send().await.unwrap().table.unwrap();
    t.stream_specification.is_some_and(|s| s.stream_enabled)
}

#[tokio::test]
async fn an_existing_untagged_table_is_left_alone_unless_adopted_and_an_adopted_one_is_never_deleted() {
    let c = reconciler().await;
    let table = moto::unique("OrderTable");
    hand_made_table(&c, &table).await;
    let name = moto::unique("seed");
    let spec = format!("  table:\n    name: {table}\n  deletionPolicy: Delete\n");

    let refused = reconcile(&c, &pipeline_in("shop", &name, &spec), Mode::Apply).await;
    let (component, reason, message) = stalled(&refused, ComponentKind::Table);
    assert_eq!((component.as_str(), reason.as_str()), ("NotOwned", "NotOwned"), "{message}");
    assert!(message.contains("spec.adopt"), "{message}");
    assert!(!stream_enabled(&c, &table).await, "the stream was turned on without adopt");
    assert!(table_tags(&c, &table).await.is_empty(), "tagged without adopt");
    let kept = teardown(&c, &pipeline_in("shop", &name, &spec), DeletionPolicy::Delete, false).await;
    assert!(kept.actions.iter().any(|a| a.component == ComponentKind::Table && a.verb == Verb::Retain));
    assert!(c.aws.dynamodb.describe_table().table_name(&table).send().await.is_ok());

    let adopting = format!("{spec}  adopt: [table]\n");
    let ctx = pipeline_in("shop", &name, &adopting);
    let mut actions = Vec::new();
    let adopted = converge_observed(&c, &ctx, |o| actions.extend(o.actions.clone())).await;
    assert!(adopted.ready(), "{:#?}", adopted.components);
    let action = actions.iter().find(|a| a.verb == Verb::Adopt).expect("an adopt action");
    assert!(action.changes.iter().any(|ch| ch.field == "stream"), "reports what it changed: {action}");
    assert!(stream_enabled(&c, &table).await);
    let tags = table_tags(&c, &table).await;
    assert_eq!(tags.get(TAG_PIPELINE).map(String::as_str), Some(format!("shop/{name}").as_str()));
    assert_eq!(tags.get(TAG_ADOPTED).map(String::as_str), Some("true"));
    assert_eq!(adopted.status.adopted, vec![format!("dynamodb table {table}")]);
    assert!(converge(&c, &ctx).await.ready(), "adopted stays managed");

    let done = teardown(&c, &ctx, DeletionPolicy::Delete, false).await;
    assert!(done.complete(), "{:?}", done.error);
    let table_action = done.actions.iter().find(|a| a.component == ComponentKind::Table).unwrap();
    assert_eq!(table_action.verb, Verb::Retain, "{table_action}");
    assert!(c.aws.dynamodb.describe_table().table_name(&table).send().await.is_ok(), "an adopted table was deleted");
    assert!(
        c.aws.kinesis.describe_stream_summary().stream_name(&ctx.names.stream).send().await.is_err(),
        "what the pipeline created is deleted as the policy says"
    );
}

#[tokio::test]
async fn an_existing_untagged_bucket_is_left_alone_unless_adopted_and_an_adopted_one_is_never_deleted() {
    let c = reconciler().await;
    let bucket = moto::unique("hand-made-bucket");
    let config = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
        .build();
    c.aws.s3.create_bucket().bucket(&bucket).create_bucket_configuration(config).send().await.unwrap();
    c.aws.s3.put_object().bucket(&bucket).key("old/data.json").body(b"{}\n".to_vec().into()).send().await.unwrap();
    let name = moto::unique("lake");
    let spec = format!("  bucket:\n    name: {bucket}\n  deletionPolicy: Delete\n");

    let refused = reconcile(&c, &pipeline_in("shop", &name, &spec), Mode::Apply).await;
    let (component, reason, _) = stalled(&refused, ComponentKind::Bucket);
    assert_eq!((component.as_str(), reason.as_str()), ("NotOwned", "NotOwned"), "{:#?}", refused.components);
    assert!(c.aws.s3.get_bucket_tagging().bucket(&bucket).send().await.is_err(), "tagged without adopt");
    assert!(c.aws.s3.get_bucket_encryption().bucket(&bucket).send().await.is_err(), "configured without adopt");

    let ctx = pipeline_in("shop", &name, &format!("{spec}  adopt: [bucket]\n"));
    let adopted = converge(&c, &ctx).await;
    assert!(adopted.ready(), "{:#?}", adopted.components);
    assert!(c.aws.s3.get_bucket_encryption().bucket(&bucket).send().await.is_ok());
    let done = teardown(&c, &ctx, DeletionPolicy::Delete, false).await;
    assert!(done.complete(), "{:?}", done.error);
    assert!(c.aws.s3.head_object().bucket(&bucket).key("old/data.json").send().await.is_ok(), "adopted data deleted");
}

#[tokio::test]
async fn an_existing_untagged_stream_is_not_modified_without_adopt() {
    let c = reconciler().await;
    let stream = moto::unique("their-stream");
    let mode = aws_sdk_kinesis::types::StreamModeDetails::builder()
        .stream_mode(aws_sdk_kinesis::types::StreamMode::Provisioned)
        .build()
        .unwrap();
    c.aws.kinesis.create_stream().stream_name(&stream).shard_count(1).stream_mode_details(mode).send().await.unwrap();
    until(|| async {
        let s = c.aws.kinesis.describe_stream_summary().stream_name(&stream).send().await.ok();
        s.and_then(|s| s.stream_description_summary).is_some_and(|s| s.stream_status.as_str() == "ACTIVE")
    })
    .await;
    let name = moto::unique("s");
    let ctx = pipeline_in("shop", &name, &format!("  stream:\n    name: {stream}\n"));

    let refused = reconcile(&c, &ctx, Mode::Apply).await;
    let state = refused.components.iter().find(|s| s.kind == ComponentKind::Stream).unwrap();
    assert_eq!(state.reason, "NotOwned", "{}", state.message);
    let summary = c.aws.kinesis.describe_stream_summary().stream_name(&stream).send().await.unwrap();
    let mode = summary.stream_description_summary.unwrap().stream_mode_details.unwrap().stream_mode;
    assert_eq!(mode, aws_sdk_kinesis::types::StreamMode::Provisioned, "switched to on-demand without adopt");
    assert!(c.aws.kinesis.list_tags_for_stream().stream_name(&stream).send().await.unwrap().tags.is_empty());

    let adopted =
        converge(&c, &pipeline_in("shop", &name, &format!("  stream:\n    name: {stream}\n  adopt: [stream]\n"))).await;
    assert!(adopted.ready(), "{:#?}", adopted.components);
}

#[tokio::test]
async fn a_resource_of_another_pipeline_cannot_be_adopted() {
    let c = reconciler().await;
    let owner = pipeline_in("team-a", &moto::unique("owner"), "  {}\n");
    assert!(converge(&c, &owner).await.ready());
    let spec = format!("  table:\n    name: {}\n  adopt: [table]\n", owner.names.table);
    let thief = pipeline_in("team-b", &moto::unique("thief"), &spec);
    let tags = table_tags(&c, &owner.names.table).await;

    let refused = reconcile(&c, &thief, Mode::Apply).await;
    let (component, reason, message) = stalled(&refused, ComponentKind::Table);
    assert_eq!((component.as_str(), reason.as_str()), ("NameConflict", "NameConflict"), "{message}");
    assert_eq!(table_tags(&c, &owner.names.table).await, tags);
}

#[tokio::test]
async fn a_pipeline_deleted_under_retain_and_applied_again_gets_its_table_and_bucket_back() {
    let c = reconciler().await;
    let name = moto::unique("again");
    let ctx = pipeline_in("shop", &name, "  {}\n");
    assert!(converge(&c, &ctx).await.ready());
    let n = &ctx.names;
    c.aws.s3.put_object().bucket(&n.bucket).key("orders/kept.json").body(b"{}\n".to_vec().into()).send().await.unwrap();
    let arn = |t: Option<aws_sdk_dynamodb::types::TableDescription>| t.and_then(|t| t.table_arn);
    let before = arn(c.aws.dynamodb.describe_table().table_name(&n.table).send().await.unwrap().table);

    let done = teardown(&c, &ctx, DeletionPolicy::Retain, false).await;
    assert!(done.complete(), "{:?}", done.error);
    // The same manifest again: the same identity, so the retained table and bucket are its own.
    let mut actions = Vec::new();
    let again =
        converge_observed(&c, &pipeline_in("shop", &name, "  {}\n"), |o| actions.extend(o.actions.clone())).await;
    assert!(again.ready(), "{:#?}", again.components);
    assert!(!actions.iter().any(|a| a.verb == Verb::Conflict), "{actions:?}");
    let created: Vec<_> = actions.iter().filter(|a| a.verb == Verb::Create).map(|a| a.component).collect();
    assert!(!created.contains(&ComponentKind::Table) && !created.contains(&ComponentKind::Bucket), "{created:?}");
    assert_eq!(arn(c.aws.dynamodb.describe_table().table_name(&n.table).send().await.unwrap().table), before);
    assert!(c.aws.s3.head_object().bucket(&n.bucket).key("orders/kept.json").send().await.is_ok());
}
