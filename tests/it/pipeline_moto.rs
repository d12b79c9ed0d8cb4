//! The reconcile core against the moto server: what `apply`, a steady state,
//! drift, crashes, faults and teardown do to real SDK calls.

use crate::support::accounts::{self, HOME, TENANT};
use crate::support::apply;
crate::support::moto::own_server!();

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::api::{DeletionPolicy, SalesPipeline};
use sales_operator::aws::calls::{Fault, FaultPlan};
use sales_operator::aws::identity::{Assume, RoleArn};
use sales_operator::aws::{ComponentKind, PipelineCtx};
use sales_operator::reconcile::Reconciler;
use sales_operator::reconcile::{reconcile, teardown, Mode, Verb};

use apply::{converge, converge_observed};
use moto::{reconciler, REGION};

/// A pipeline with a name unique to this test, and `spec` (YAML, indented by 2).
fn pipeline(spec: &str) -> (SalesPipeline, PipelineCtx) {
    let name = moto::unique("p");
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n{}",
        if spec.trim().is_empty() { "  {}\n".to_string() } else { spec.to_string() }
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    let ctx = PipelineCtx::new("shop", &name, &p.spec, REGION);
    (p, ctx)
}

#[tokio::test]
async fn first_apply_creates_every_resource_as_specified() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    let out = converge(&c, &ctx).await;
    assert!(out.ready(), "{:#?}", out.components);
    let n = &ctx.names;

    let table = c.aws.dynamodb.describe_table().table_name(&n.table).send().await.unwrap().table.unwrap();
    let stream_spec = table.stream_specification.unwrap();
    assert!(stream_spec.stream_enabled);
    assert_eq!(stream_spec.stream_view_type.unwrap().as_str(), "NEW_AND_OLD_IMAGES");
    let table_stream_arn = table.latest_stream_arn.unwrap();

    let kinesis = c.aws.kinesis.describe_stream_summary().stream_name(&n.stream).send().await.unwrap();
    let kinesis_arn = kinesis.stream_description_summary.unwrap().stream_arn;

    let pipe = c.aws.pipes.describe_pipe().name(&n.pipe).send().await.unwrap();
    assert_eq!(pipe.source.as_deref(), Some(table_stream_arn.as_str()));
    assert_eq!(pipe.target.as_deref(), Some(kinesis_arn.as_str()));
    let source = pipe.source_parameters.unwrap().dynamo_db_stream_parameters.unwrap();
    assert_eq!(source.batch_size, Some(100));
    assert_eq!(source.starting_position.as_str(), "TRIM_HORIZON");
    let target = pipe.target_parameters.unwrap();
    let template = target.input_template.unwrap();
    assert!(template.contains("<$.dynamodb.NewImage.price.N>"), "{template}");
    assert_eq!(target.kinesis_stream_parameters.unwrap().partition_key, "$.dynamodb.Keys.orderid.S");
    let pipe_role = pipe.role_arn.unwrap();
    assert!(pipe_role.ends_with(&format!("role/sales-operator/{}", n.pipe_role)), "{pipe_role}");

    let fh = c.aws.firehose.describe_delivery_stream().delivery_stream_name(&n.delivery).send().await.unwrap();
    let d = fh.delivery_stream_description.unwrap();
    let src = d.source.unwrap().kinesis_stream_source_description.unwrap();
    assert_eq!(src.kinesis_stream_arn.as_deref(), Some(kinesis_arn.as_str()));
    let s3 = d.destinations[0].extended_s3_destination_description.clone().unwrap();
    assert_eq!(s3.bucket_arn, format!("arn:aws:s3:::{}", n.bucket));
    assert!(s3.prefix.unwrap().starts_with("orders/"));
    assert!(s3.error_output_prefix.unwrap().contains("!{firehose:error-output-type}"));
    let processors = s3.processing_configuration.unwrap().processors.unwrap();
    assert_eq!(processors[0].r#type.as_str(), "AppendDelimiterToRecord");

    let enc = c.aws.s3.get_bucket_encryption().bucket(&n.bucket).send().await.unwrap();
    assert!(enc.server_side_encryption_configuration.is_some());
    let pab = c.aws.s3.get_public_access_block().bucket(&n.bucket).send().await.unwrap();
    assert_eq!(pab.public_access_block_configuration.unwrap().block_public_acls, Some(true));

    let db = c.aws.glue.get_database().name(&n.database).send().await.unwrap();
    assert_eq!(db.database.unwrap().name, n.database);
    let gt = c.aws.glue.get_table().database_name(&n.database).name(&n.glue_table).send().await.unwrap().table.unwrap();
    let params = gt.parameters.unwrap();
    assert_eq!(params.get("projection.enabled").map(String::as_str), Some("true"));
    assert!(params["storage.location.template"].starts_with(&format!("s3://{}/orders/", n.bucket)));

    let wg = c.aws.athena.get_work_group().work_group(&n.workgroup).send().await.unwrap().work_group.unwrap();
    let cfg = wg.configuration.unwrap();
    assert_eq!(
        cfg.result_configuration.unwrap().output_location.as_deref(),
        Some(format!("s3://{}/athena-results/", n.bucket).as_str())
    );
    assert_eq!(cfg.bytes_scanned_cutoff_per_query, Some(1_073_741_824));

    // Roles: trusted by their service only, policies scoped to this pipeline's ARNs.
    let role = c.aws.iam.get_role().role_name(&n.pipe_role).send().await.unwrap().role.unwrap();
    let trust = urlencoding_decode(role.assume_role_policy_document.as_deref().unwrap());
    assert!(trust.contains("pipes.amazonaws.com"), "{trust}");
    let policy = c.aws.iam.get_role_policy().role_name(&n.pipe_role).policy_name(&n.pipe_policy).send().await.unwrap();
    let doc = urlencoding_decode(&policy.policy_document);
    assert!(doc.contains(&table_stream_arn) && doc.contains(&kinesis_arn), "{doc}");
    // No wildcard resource but for dynamodb:ListStreams, which supports no resource type.
    let pipe_policy: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for statement in pipe_policy["Statement"].as_array().unwrap() {
        if statement["Resource"] == serde_json::json!(["*"]) {
            assert_eq!(statement["Action"], serde_json::json!(["dynamodb:ListStreams"]), "{doc}");
        }
    }
    let fpolicy =
        c.aws.iam.get_role_policy().role_name(&n.firehose_role).policy_name(&n.firehose_policy).send().await.unwrap();
    let fdoc = urlencoding_decode(&fpolicy.policy_document);
    assert!(fdoc.contains(&kinesis_arn) && fdoc.contains(&format!("arn:aws:s3:::{}/*", n.bucket)), "{fdoc}");
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    sales_operator::aws::iam::percent_decode(s).expect("a URL-encoded policy document")
}

#[tokio::test]
async fn second_apply_makes_no_mutating_call_and_reports_ready() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    assert!(converge(&c, &ctx).await.ready());
    c.aws.calls.reset();
    let out = reconcile(&c, &ctx, Mode::Apply).await;
    assert!(out.ready(), "{:#?}", out.components);
    assert!(out.actions.is_empty(), "{:#?}", out.actions);
    assert_eq!(c.aws.calls.mutations(), 0, "mutating calls: {:?}", c.aws.calls.mutating_operations());
    assert!(c.aws.calls.reads() > 0);
}

#[tokio::test]
async fn plan_lists_creates_then_nothing_once_applied() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    let plan = reconcile(&c, &ctx, Mode::Plan).await;
    assert!(plan.error.is_none(), "{:?}", plan.error);
    assert_eq!(
        plan.actions.iter().map(|a| (a.component, a.verb.clone())).next(),
        Some((ComponentKind::Table, Verb::Create))
    );
    assert_eq!(c.aws.calls.mutations(), 0, "a plan must not change anything");
    converge(&c, &ctx).await;
    let plan = reconcile(&c, &ctx, Mode::Plan).await;
    assert!(plan.actions.is_empty(), "{:#?}", plan.actions);
}

#[tokio::test]
async fn changed_fields_are_updated_in_place() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("  stream:\n    mode: PROVISIONED\n    shardCount: 1\n");
    assert!(converge(&c, &ctx).await.ready());
    let arn_before = c.aws.kinesis.describe_stream_summary().stream_name(&ctx.names.stream).send().await.unwrap();

    let mut changed = ctx.clone();
    changed.spec.stream.shard_count = Some(2);
    changed.spec.delivery.buffer_seconds = 120;
    changed.spec.delivery.buffer_mib = 16;
    changed.spec.pipe.batch_size = 500;
    c.aws.calls.reset();
    let mut actions = Vec::new();
    let out = converge_observed(&c, &changed, |o| actions.extend(o.actions.clone())).await;
    assert!(out.ready(), "{:#?}", out.components);
    let verbs: Vec<_> = actions.iter().map(|a| (a.component, a.verb.clone())).collect();
    assert_eq!(
        verbs,
        vec![
            (ComponentKind::Stream, Verb::Update),
            (ComponentKind::Pipe, Verb::Update),
            (ComponentKind::Delivery, Verb::Update),
            // The named queries' dt slack is the buffer interval.
            (ComponentKind::Analytics, Verb::Update)
        ]
    );
    let ops = c.aws.calls.mutating_operations();
    assert!(!ops.iter().any(|o| o.contains(":Create") || o.contains(":Delete")), "{ops:?}");

    let after = c.aws.kinesis.describe_stream_summary().stream_name(&ctx.names.stream).send().await.unwrap();
    let (before, after) = (arn_before.stream_description_summary.unwrap(), after.stream_description_summary.unwrap());
    assert_eq!(before.stream_arn, after.stream_arn);
    assert_eq!(after.open_shard_count, 2);
    let pipe = c.aws.pipes.describe_pipe().name(&ctx.names.pipe).send().await.unwrap();
    assert_eq!(pipe.source_parameters.unwrap().dynamo_db_stream_parameters.unwrap().batch_size, Some(500));
    let fh = c.aws.firehose.describe_delivery_stream().delivery_stream_name(&ctx.names.delivery).send().await.unwrap();
    let hints = fh.delivery_stream_description.unwrap().destinations[0]
        .extended_s3_destination_description
        .clone()
        .unwrap()
        .buffering_hints
        .unwrap();
    assert_eq!((hints.interval_in_seconds, hints.size_in_mbs), (Some(120), Some(16)));
}

#[tokio::test]
async fn deleted_stream_and_pipe_are_restored_and_relinked() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    assert!(converge(&c, &ctx).await.ready());
    c.aws.kinesis.delete_stream().stream_name(&ctx.names.stream).send().await.unwrap();
    c.aws.pipes.delete_pipe().name(&ctx.names.pipe).send().await.unwrap();

    let mut actions = Vec::new();
    let out = converge_observed(&c, &ctx, |o| actions.extend(o.actions.clone())).await;
    assert!(out.ready(), "{:#?}", out.components);
    let created: Vec<_> = actions.iter().filter(|a| a.verb == Verb::Create).map(|a| a.component).collect();
    assert_eq!(created, vec![ComponentKind::Stream, ComponentKind::Pipe]);
    let kinesis_arn = c
        .aws
        .kinesis
        .describe_stream_summary()
        .stream_name(&ctx.names.stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let pipe = c.aws.pipes.describe_pipe().name(&ctx.names.pipe).send().await.unwrap();
    assert_eq!(pipe.target.as_deref(), Some(kinesis_arn.as_str()));
}

/// A table whose stream was turned off outside has no stream ARN for a while: what names it (the
/// pipe role's policy, the pipe) waits for the new one, never sends `(known after apply)` to AWS.
#[tokio::test]
async fn a_table_stream_turned_off_outside_is_turned_on_again_and_the_pipe_follows_its_new_arn() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    assert!(converge(&c, &ctx).await.ready());
    let off = aws_sdk_dynamodb::types::StreamSpecification::builder().stream_enabled(false).build().unwrap();
    c.aws.dynamodb.update_table().table_name(&ctx.names.table).stream_specification(off).send().await.unwrap();

    let mut passes = Vec::new();
    let out = converge_observed(&c, &ctx, |o| passes.push(o.clone())).await;
    assert!(out.ready(), "{:#?}", out.components);
    for (i, pass) in passes.iter().enumerate() {
        assert!(pass.error.is_none() && !pass.stalled(), "pass {i}: {:#?}", pass.components);
    }
    let table = c.aws.dynamodb.describe_table().table_name(&ctx.names.table).send().await.unwrap().table.unwrap();
    let stream_arn = table.latest_stream_arn.expect("the stream is on again");
    let pipe = c.aws.pipes.describe_pipe().name(&ctx.names.pipe).send().await.unwrap();
    assert_eq!(pipe.source.as_deref(), Some(stream_arn.as_str()));
}

/// A bucket the pipeline uses but does not create (`bucket.create: false`) that does not exist:
/// the plan says it is missing, apply creates nothing at all and waits (not a permanent error),
/// and the pipeline goes on by itself once the bucket is created outside.
#[tokio::test]
async fn a_missing_bucket_it_may_not_create_stops_everything_before_any_create_until_it_exists() {
    let c = reconciler().await;
    let bucket = format!("{}-own", moto::unique("b"));
    let (_, ctx) = pipeline(&format!("  bucket:\n    create: false\n    name: {bucket}\n"));

    let plan = reconcile(&c, &ctx, Mode::Plan).await;
    let missing: Vec<_> = plan.actions.iter().filter(|a| a.verb == Verb::Missing).collect();
    assert_eq!(missing.len(), 1, "{:#?}", plan.actions);
    assert_eq!(missing[0].component, ComponentKind::Bucket);
    assert!(missing[0].to_string().contains("spec.bucket.create is false"), "{}", missing[0]);

    c.aws.calls.reset();
    let pass = reconcile(&c, &ctx, Mode::Apply).await;
    assert_eq!(c.aws.calls.mutations(), 0, "created: {:?}", c.aws.calls.mutating_operations());
    assert!(!pass.stalled() && pass.error.is_none(), "{:#?}", pass.components);
    assert!(pass.wait.is_some(), "looked at again");
    let state = |kind| pass.components.iter().find(|s| s.kind == kind).map(|s| (s.reason.as_str(), s.message.clone()));
    let (reason, message) = state(ComponentKind::Bucket).unwrap();
    assert_eq!(reason, "Missing", "{message}");
    let (_, table) = state(ComponentKind::Table).unwrap();
    assert!(table.ends_with("is not created while bucket is missing"), "{table}");

    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
        .build();
    c.aws.s3.create_bucket().bucket(&bucket).create_bucket_configuration(location).send().await.unwrap();
    let out = converge(&c, &ctx).await;
    assert!(out.ready(), "{:#?}", out.components);
}

/// This pipeline's resources of every kind: existence of the name-unique ones,
/// counts where AWS allows duplicates (roles with our prefix, named queries).
/// Named queries are only counted while their workgroup exists (moto keeps
/// them after a recursive DeleteWorkGroup; AWS does not).
async fn inventory(c: &Reconciler, ctx: &PipelineCtx) -> Vec<(&'static str, usize)> {
    let n = &ctx.names;
    let exists = |ok: bool| usize::from(ok);
    let table = c.aws.dynamodb.describe_table().table_name(&n.table).send().await.is_ok();
    let stream = c.aws.kinesis.describe_stream_summary().stream_name(&n.stream).send().await.is_ok();
    let pipes = c.aws.pipes.list_pipes().name_prefix(&n.pipe).send().await.unwrap().pipes.unwrap_or_default();
    let delivery = c.aws.firehose.describe_delivery_stream().delivery_stream_name(&n.delivery).send().await.is_ok();
    let bucket = c.aws.s3.head_bucket().bucket(&n.bucket).send().await.is_ok();
    let roles = c.aws.iam.list_roles().path_prefix("/sales-operator/").max_items(1000).send().await.unwrap().roles;
    let database = c.aws.glue.get_database().name(&n.database).send().await.is_ok();
    let workgroup = c
        .aws
        .athena
        .get_work_group()
        .work_group(&n.workgroup)
        .send()
        .await
        .map(|w| w.work_group.is_some())
        .unwrap_or(false);
    let queries = if workgroup {
        c.aws
            .athena
            .list_named_queries()
            .work_group(&n.workgroup)
            .send()
            .await
            .unwrap()
            .named_query_ids
            .unwrap_or_default()
            .len()
    } else {
        0
    };
    vec![
        ("table", exists(table)),
        ("stream", exists(stream)),
        ("pipe", pipes.iter().filter(|p| p.name.as_deref() == Some(n.pipe.as_str())).count()),
        ("delivery", exists(delivery)),
        ("bucket", exists(bucket)),
        ("roles", roles.iter().filter(|r| r.role_name.starts_with(&format!("{}-", n.prefix))).count()),
        ("glue database", exists(database)),
        ("workgroup", exists(workgroup)),
        ("named queries", queries),
    ]
}

#[tokio::test]
async fn a_crash_after_any_mutating_call_is_completed_by_the_next_apply_without_duplicates() {
    crash_after_every_mutating_call(&reconciler().await).await;
}

#[tokio::test]
async fn a_crash_acting_through_an_assumed_role_in_another_account_is_completed_the_same_way() {
    let settings = moto::settings();
    let role = accounts::role_trusting(&settings, TENANT, &moto::unique("crash"), HOME, None).await;
    let c = moto::reconciler_as(Assume::new(RoleArn::parse(&role).unwrap(), None)).await;
    let probe = crash_after_every_mutating_call(&c).await;
    let table = c.aws.dynamodb.describe_table().table_name(&probe.names.table).send().await.unwrap();
    let arn = table.table.and_then(|t| t.table_arn).unwrap_or_default();
    assert!(arn.contains(&format!(":{TENANT}:table/")), "{arn}");
    assert_eq!(accounts::table_tags(&settings, HOME, &probe.names.table).await, None);
}

/// Crashes an apply after each of its mutating calls in turn; the next apply completes it
/// without duplicates. Returns the first (uncrashed) pipeline.
async fn crash_after_every_mutating_call(c: &Reconciler) -> PipelineCtx {
    // How many mutating calls a first apply makes.
    let (_, probe) = pipeline("");
    assert!(converge(c, &probe).await.ready());
    let total = c.aws.calls.mutations();
    assert!(total > 10, "a first apply makes many calls, got {total}");
    let expected = inventory(c, &probe).await;
    assert!(expected.iter().all(|(_, n)| *n >= 1), "{expected:?}");

    let mut crashes = 0;
    for crash_after in 0..total {
        let (_, ctx) = pipeline("");
        c.aws.calls.set_faults(FaultPlan { stop_after_mutations: Some(crash_after), faults: vec![] });
        // The apply's passes until the crash (the walk is concurrent, so which call comes
        // `crash_after`-th varies; each is some mutating call of the apply).
        c.aws.calls.reset();
        let crashed = loop {
            let pass = reconcile(c, &ctx, Mode::Apply).await;
            if pass.error.is_some() || pass.ready() {
                break pass;
            }
            tokio::time::sleep(pass.wait.unwrap_or(std::time::Duration::from_millis(200))).await;
        };
        // Concurrent calls in flight when the `crash_after`-th completes still land, and AWS's
        // refusals ("retry later") vary the count: near the end an apply may finish first.
        crashes += usize::from(crashed.error.is_some());
        c.aws.calls.set_faults(FaultPlan::default());
        let resumed = converge(c, &ctx).await;
        assert!(resumed.ready(), "after a crash at call {crash_after}: {:#?}", resumed.components);
        assert_eq!(inventory(c, &ctx).await, expected, "after a crash at call {crash_after}");
    }
    assert!(crashes as u64 * 4 >= total * 3, "only {crashes} of {total} crash points stopped an apply");
    probe
}

#[tokio::test]
async fn delete_with_retain_keeps_table_and_bucket_with_their_data() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    assert!(converge(&c, &ctx).await.ready());
    let n = &ctx.names;
    c.aws.s3.put_object().bucket(&n.bucket).key("orders/x.json").body(b"{}\n".to_vec().into()).send().await.unwrap();

    let done = teardown(&c, &ctx, DeletionPolicy::Retain, false).await;
    assert!(done.complete(), "{:?}", done.error);
    assert!(c.aws.dynamodb.describe_table().table_name(&n.table).send().await.is_ok());
    assert!(c.aws.s3.get_object().bucket(&n.bucket).key("orders/x.json").send().await.is_ok());
    assert!(c.aws.kinesis.describe_stream_summary().stream_name(&n.stream).send().await.is_err());
    assert!(c.aws.pipes.describe_pipe().name(&n.pipe).send().await.is_err());
    assert!(c.aws.iam.get_role().role_name(&n.pipe_role).send().await.is_err());
    let retained: Vec<_> = done.actions.iter().filter(|a| a.verb == Verb::Retain).map(|a| a.component).collect();
    assert_eq!(retained, vec![ComponentKind::Bucket, ComponentKind::Table]);
}

#[tokio::test]
async fn delete_with_delete_policy_removes_everything_including_a_non_empty_bucket() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("  deletionPolicy: Delete\n");
    assert!(converge(&c, &ctx).await.ready());
    let n = &ctx.names;
    c.aws.s3.put_object().bucket(&n.bucket).key("orders/x.json").body(b"{}\n".to_vec().into()).send().await.unwrap();

    let done = teardown(&c, &ctx, DeletionPolicy::Delete, false).await;
    assert!(done.complete(), "{:?}", done.error);
    assert!(inventory(&c, &ctx).await.iter().all(|(_, n)| *n == 0), "{:?}", inventory(&c, &ctx).await);
    assert!(c.aws.glue.get_database().name(&n.database).send().await.is_err());
    let wg = c.aws.athena.get_work_group().work_group(&n.workgroup).send().await;
    assert!(wg.map(|w| w.work_group.is_none()).unwrap_or(true));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_backoff() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    c.aws
        .calls
        .set_faults(FaultPlan { stop_after_mutations: None, faults: vec![("CreateTable".into(), Fault::Throttle, 1)] });
    // Every CreateTable attempt is throttled: the SDK retries, then the pass fails transiently.
    let out = reconcile(&c, &ctx, Mode::Apply).await;
    let (kind, err) = out.error.clone().expect("CreateTable never succeeds");
    assert_eq!(kind, ComponentKind::Table);
    assert!(!err.is_permanent(), "throttling is transient: {err}");
    let counts = c.aws.calls.counts();
    let create = &counts[&("DynamoDB".to_string(), "CreateTable".to_string())];
    assert_eq!(create.retries, 3, "4 attempts in all: {create:?}");
    assert!(!out.stalled());

    // Occasional throttles and 5xx are absorbed by retries. (Faults replace the
    // response of a request moto did process, so they go on reads: a lost
    // response to a create is a different scenario, covered by the crash test.)
    c.aws.calls.set_faults(FaultPlan {
        stop_after_mutations: None,
        faults: vec![
            ("DescribeStreamSummary".into(), Fault::Throttle, 2),
            ("DescribeTable".into(), Fault::ServerError, 2),
            ("GetRole".into(), Fault::ServerError, 3),
            ("DescribePipe".into(), Fault::Throttle, 2),
        ],
    });
    let out = converge(&c, &ctx).await;
    assert!(out.ready(), "{:#?}", out.components);
    assert!(c.aws.calls.counts().values().map(|c| c.retries).sum::<u64>() > 3);
}

#[tokio::test]
async fn access_denied_is_permanent_and_not_retried() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    c.aws.calls.set_faults(FaultPlan {
        stop_after_mutations: None,
        faults: vec![("CreateDeliveryStream".into(), Fault::AccessDenied, 1)],
    });
    let out = converge(&c, &ctx).await;
    let (kind, err) = out.error.clone().unwrap();
    assert_eq!(kind, ComponentKind::Delivery);
    assert!(err.is_permanent());
    assert!(out.stalled());
    assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    let counts = c.aws.calls.counts();
    let create = &counts[&("Firehose".to_string(), "CreateDeliveryStream".to_string())];
    assert_eq!((create.error, create.retries), (1, 0));
}

#[tokio::test]
async fn paused_pipeline_is_observed_not_changed() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("  paused: true\n");
    let out = reconcile(&c, &ctx, Mode::Observe).await;
    assert!(!out.ready());
    assert_eq!(c.aws.calls.mutations(), 0);
    assert!(c.aws.dynamodb.describe_table().table_name(&ctx.names.table).send().await.is_err());
}

/// A resync reads the tags of every resource the Tagging API lists in one GetResources (moto
/// lists all but the Kinesis stream, whose tags are read from Kinesis); tags removed out of band,
/// through the index or not, are still put back.
#[tokio::test]
async fn tags_come_from_one_tagging_api_read_and_tag_drift_is_repaired() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("  tags:\n    team: sales\n");
    assert!(converge(&c, &ctx).await.ready());
    c.aws.calls.reset();
    let out = reconcile(&c, &ctx, Mode::Apply).await;
    assert!(out.ready() && out.actions.is_empty(), "{:#?}", out.actions);
    let count =
        |op: &str| c.aws.calls.counts().iter().filter(|((_, o), _)| o == op).map(|(_, n)| n.ok + n.error).sum::<u64>();
    assert_eq!(count("GetResources"), 1);
    for per_service in
        ["ListTagsOfResource", "GetBucketTagging", "ListTagsForDeliveryStream", "GetTags", "ListTagsForResource"]
    {
        assert_eq!(count(per_service), 0, "{per_service}: the index covers it");
    }
    assert_eq!(count("ListTagsForStream"), 1, "moto's Tagging API does not list Kinesis streams");

    let n = &ctx.names;
    let table = c.aws.dynamodb.describe_table().table_name(&n.table).send().await.unwrap().table.unwrap();
    let table_arn = table.table_arn.unwrap();
    c.aws.dynamodb.untag_resource().resource_arn(&table_arn).tag_keys("team").send().await.unwrap();
    // The bucket's tag set without `team` (S3 replaces the whole set); the ownership tags stay,
    // or the bucket would no longer be the pipeline's to repair.
    let kept: Vec<aws_sdk_s3::types::Tag> = ctx
        .tags
        .iter()
        .filter(|(k, _)| *k != "team")
        .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(k).value(v).build().unwrap())
        .collect();
    let tagging = aws_sdk_s3::types::Tagging::builder().set_tag_set(Some(kept)).build().unwrap();
    c.aws.s3.put_bucket_tagging().bucket(&n.bucket).tagging(tagging).send().await.unwrap();
    c.aws.firehose.untag_delivery_stream().delivery_stream_name(&n.delivery).tag_keys("team").send().await.unwrap();
    c.aws.kinesis.remove_tags_from_stream().stream_name(&n.stream).tag_keys("team").send().await.unwrap();

    let mut actions = Vec::new();
    let out = converge_observed(&c, &ctx, |o| actions.extend(o.actions.clone())).await;
    assert!(out.ready(), "{:#?}", out.components);
    let mut retagged: Vec<ComponentKind> = actions
        .iter()
        .filter(|a| a.verb == Verb::Update && a.changes.iter().any(|ch| ch.field == "tags"))
        .map(|a| a.component)
        .collect();
    retagged.sort();
    assert_eq!(
        retagged,
        [ComponentKind::Table, ComponentKind::Stream, ComponentKind::Bucket, ComponentKind::Delivery],
        "{:#?}",
        out.actions
    );
    let tags = c.aws.dynamodb.list_tags_of_resource().resource_arn(&table_arn).send().await.unwrap().tags.unwrap();
    assert!(tags.iter().any(|t| t.key == "team" && t.value == "sales"), "{tags:?}");
    let tags = c.aws.s3.get_bucket_tagging().bucket(&n.bucket).send().await.unwrap().tag_set;
    assert!(tags.iter().any(|t| t.key == "team" && t.value == "sales"), "{tags:?}");
    let again = reconcile(&c, &ctx, Mode::Apply).await;
    assert!(again.actions.is_empty(), "{:#?}", again.actions);
}

/// Without tag:GetResources (or with the Tagging API failing) a pass reads each service's tags
/// instead, and still changes nothing in a pipeline that is in sync.
#[tokio::test]
async fn a_denied_tagging_api_read_falls_back_to_per_service_tag_reads() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("");
    assert!(converge(&c, &ctx).await.ready());
    c.aws.calls.reset();
    c.aws.calls.set_faults(FaultPlan {
        stop_after_mutations: None,
        faults: vec![("GetResources".into(), Fault::AccessDenied, 1)],
    });
    let out = reconcile(&c, &ctx, Mode::Apply).await;
    assert!(out.ready() && out.actions.is_empty(), "{:#?} {:?}", out.actions, out.error);
    assert_eq!(c.aws.calls.mutations(), 0);
    let counts = c.aws.calls.counts();
    let called = |op: &str| counts.iter().filter(|((_, o), _)| o == op).map(|(_, n)| n.ok + n.error).sum::<u64>();
    assert_eq!(called("GetResources"), 1);
    for per_service in
        ["ListTagsOfResource", "ListTagsForStream", "GetBucketTagging", "ListTagsForDeliveryStream", "GetTags"]
    {
        assert_eq!(called(per_service), 1, "{per_service}");
    }
}

/// Plan lines, component messages and conditions show values as a user writes them: no
/// `Some(120)`, no `PublicAccessBlock { .. }` (issue #14).
#[tokio::test]
async fn plan_lines_and_conditions_show_values_not_rust_debug_forms() {
    let c = reconciler().await;
    let (_, ctx) = pipeline("  stream:\n    mode: PROVISIONED\n    shardCount: 1\n");
    assert!(converge(&c, &ctx).await.ready());
    // Drift made outside the operator, and spec changes.
    c.aws.s3.delete_public_access_block().bucket(&ctx.names.bucket).send().await.unwrap();
    let mut changed = ctx.clone();
    changed.spec.stream.shard_count = Some(2);
    changed.spec.delivery.buffer_seconds = 120;
    changed.spec.pipe.batch_size = 500;

    let plan = reconcile(&c, &changed, Mode::Plan).await;
    let lines: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    let mut texts = lines.clone();
    texts.extend(plan.components.iter().map(|s| s.message.clone()));
    texts.extend(plan.conditions(Mode::Plan).into_iter().map(|c| c.message));
    for t in &texts {
        assert!(!t.contains("Some(") && !t.contains(" { "), "Debug formatting: {t}");
    }
    let all = lines.join("\n");
    for expected in [
        "shardCount: 1 -> 2",
        "bufferSeconds: 60 -> 120",
        "batchSize: 100 -> 500",
        "publicAccessBlock: (unset) -> blockPublicAcls, ignorePublicAcls, blockPublicPolicy, restrictPublicBuckets",
    ] {
        assert!(all.contains(expected), "{expected:?} not in the plan:\n{all}");
    }
}
