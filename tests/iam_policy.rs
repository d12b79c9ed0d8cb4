//! IAM truth: the operator's policy (`OPERATOR_ACTIONS`, rendered into
//! docs/iam.md) allows every AWS call the operator makes, and lists nothing it
//! never calls. Checked three ways: the calls a whole pipeline lifecycle really
//! makes against moto (counted by `CallLog`), a scan of every SDK operation
//! called in src/aws/, and docs/iam.md being the rendered policy.

#[path = "support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::api::DeletionPolicy;
use sales_operator::aws::operator_policy::{self, iam_actions, missing_actions, OPERATOR_ACTIONS};
use sales_operator::aws::{Clients, PipelineCtx};
use sales_operator::reconcile::{reconcile, teardown, Mode};

use moto::{clients, REGION};

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

async fn apply_ready(c: &Clients, ctx: &PipelineCtx) {
    let out = reconcile(c, ctx, Mode::Apply).await;
    assert!(out.ready(), "{:#?}\n{:?}", out.components, out.error);
}

async fn delete(c: &Clients, ctx: &PipelineCtx) {
    let done = teardown(c, ctx, DeletionPolicy::Delete, false).await;
    assert!(done.error.is_none(), "{:?}", done.error);
}

#[tokio::test]
async fn every_aws_call_of_a_pipeline_lifecycle_is_allowed_by_the_operator_policy() {
    // The operator's calls only: what the test does out of band goes through other clients.
    let c = clients().await;
    let oob = clients().await;

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
    oob.kinesis.delete_stream().stream_name(&ctx.names.stream).send().await.unwrap();
    oob.pipes.delete_pipe().name(&ctx.names.pipe).send().await.unwrap();
    oob.glue.delete_table().database_name(&ctx.names.database).name(&ctx.names.glue_table).send().await.unwrap();
    let restored = reconcile(&c, &changed, Mode::Apply).await;
    assert!(restored.error.is_none(), "{:?}", restored.error);
    apply_ready(&c, &changed).await;
    // Data in the bucket: a Delete teardown empties it first.
    oob.s3
        .put_object()
        .bucket(&ctx.names.bucket)
        .key("orders/2026/01/01/00/part-0.gz")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    delete(&c, &changed).await;

    // Crawler catalog: create and teardown (moto has no UpdateCrawler; the source scan covers it).
    let crawled =
        pipeline("  catalog:\n    mode: Crawler\n    crawlerSchedule: cron(0 * * * ? *)\n  deletionPolicy: Delete\n");
    apply_ready(&c, &crawled).await;
    delete(&c, &crawled).await;

    let counts = c.calls.counts();
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
}

/// parliament's findings (scripts/iam-lint.sh) on `policies` (name, document).
fn lint(policies: &[(String, serde_json::Value)]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("bash")
        .args([project_dir().join("scripts/iam-lint.sh").to_str().unwrap(), "check"])
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
    assert!(out.status.success(), "scripts/iam-lint.sh check failed");
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("findings JSON")
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
    let c = clients().await;
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
            let doc = c.iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap().policy_document;
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

/// The "Accepted findings" table of docs/iam.md: (policy name, issue, actions).
fn accepted_findings() -> Vec<(String, String, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(project_dir().join("docs/iam.md")).unwrap();
    let table = doc.split("Accepted findings").nth(1).expect("docs/iam.md has an Accepted findings table");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
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
    accepted.iter().any(|(name, issue, listed)| {
        policy.starts_with(&format!("{name} of ")) && finding["issue"] == issue.as_str() && actions.is_subset(listed)
    })
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
