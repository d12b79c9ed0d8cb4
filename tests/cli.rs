//! The `sales-operator` binary as a user runs it: crd, plan, apply, delete,
//! and refusal of bad manifests before any AWS call.

#[path = "support/moto.rs"]
mod moto;

use std::path::PathBuf;
use std::process::{Command, Output};

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(args)
        .envs(moto::aws_env())
        .output()
        .expect("run sales-operator")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn crds_directory_matches_the_rust_types() {
    let out = operator(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    // Documents start with a "---" line (the YAML itself may contain "---" inside strings).
    let docs: Vec<&str> = printed.split("\n---\n").map(|d| d.trim_start_matches("---\n")).collect();
    assert!(!docs.is_empty());
    for doc in docs {
        let name = doc
            .lines()
            .skip_while(|l| !l.starts_with("metadata:"))
            .find_map(|l| l.trim().strip_prefix("name: "))
            .expect("CRD has metadata.name");
        let file = project().join("crds").join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            committed.trim_start_matches("---\n"),
            doc.trim_end_matches('\n').to_string() + "\n",
            "{} is stale: run `cargo run -- crd --output-dir crds`",
            file.display()
        );
    }
}

#[test]
fn version_names_the_release_the_git_revision_and_the_build_date() {
    let out = operator(&["--version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let rest = line
        .trim_end()
        .strip_prefix(&format!("sales-operator {} (revision ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line:?}"));
    let (revision, date) = rest.strip_suffix(')').and_then(|r| r.split_once(", built ")).expect("revision, date");
    assert_eq!(date.len(), 10, "{line:?}");
    // Built in a git checkout (CI, a developer's tree): the commit checked out, not a stale one.
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(project()).output();
    match head {
        Ok(h) if h.status.success() => assert_eq!(revision, text(&h.stdout).trim(), "{line:?}"),
        _ => assert_eq!(revision, "unknown", "{line:?}"),
    }
}

#[test]
fn examples_are_valid_pipelines() {
    for example in ["examples/pipeline.yaml", "examples/pipeline-full.yaml"] {
        let p = sales_operator::api::manifest::read_pipeline(project().join(example).to_str().unwrap());
        assert!(p.is_ok(), "{example}: {}", p.err().map(|e| e.to_string()).unwrap_or_default());
    }
}

#[test]
fn invalid_manifests_are_refused_naming_the_field_and_create_nothing() {
    let dir = project().join("tests/manifests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "at least ten invalid manifests");
    for file in &files {
        let content = std::fs::read_to_string(file).unwrap();
        let expected =
            content.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("# expect: FIELD header");
        let out = operator(&["apply", "-f", file.to_str().unwrap(), "--wait", "0"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(&format!("{expected}:")),
            "{}: error should name {expected}:\n{stderr}",
            file.display()
        );
    }
    // Nothing reached AWS: the moto server has no table, stream or bucket at all for "bad".
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = moto::sdk(&moto::settings()).await;
        let c = sales_operator::aws::Clients::new(&sdk, None, Default::default()).unwrap();
        let tables = c.dynamodb.list_tables().send().await.unwrap().table_names.unwrap_or_default();
        assert!(!tables.iter().any(|t| t.contains("-bad")), "{tables:?}");
        let streams = c.kinesis.list_streams().send().await.unwrap().stream_names;
        assert!(!streams.iter().any(|t| t.contains("-bad")), "{streams:?}");
    });
}

#[test]
fn apply_plan_and_delete_run_the_example_end_to_end() {
    let example = project().join("examples/pipeline.yaml");
    let example = example.to_str().unwrap();

    let plan = operator(&["plan", "-f", example]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("+ create   dynamodb table default-sales-orders"), "{}", text(&plan.stdout));

    let apply = operator(&["apply", "-f", example, "-o", "json"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let status: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "True", "{status:#}");
    assert_eq!(status["table"]["name"], "default-sales-orders");
    assert!(status["pipe"]["arn"].as_str().unwrap().starts_with("arn:aws:pipes:eu-west-1:"));

    let again = operator(&["apply", "-f", example]);
    assert!(again.status.success());
    assert!(!text(&again.stderr).contains("create "), "a second apply creates nothing: {}", text(&again.stderr));
    assert!(text(&again.stdout).contains("Ready=True"), "{}", text(&again.stdout));

    let plan = operator(&["plan", "-f", example]);
    assert!(text(&plan.stdout).contains("No changes"), "{}", text(&plan.stdout));

    let delete = operator(&["delete", "-f", example]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    let out = text(&delete.stdout);
    assert!(out.contains("retain   dynamodb table default-sales-orders"), "{out}");
    assert!(out.contains("delete   kinesis stream default-sales-orders"), "{out}");
}

#[test]
fn an_unreachable_endpoint_is_a_clear_error_not_a_panic() {
    let file = project().join("examples/pipeline.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["plan", "-f", file.to_str().unwrap(), "--aws-endpoint-url", "http://127.0.0.1:9"])
        .envs(moto::aws_env().into_iter().filter(|(k, _)| *k != "AWS_ENDPOINT_URL"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: table: DescribeTable failed"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn the_longest_legal_name_and_namespace_give_aws_names_within_every_limit() {
    let name = format!("{}.{}", "n".repeat(126), "m".repeat(126));
    let namespace = "s".repeat(63);
    assert_eq!(name.len(), 253);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("longest.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  deletionPolicy: Delete\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let apply = operator(&["apply", "-f", file, "-o", "json"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let status: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    let limits = [
        ("/table/name", 255),
        ("/stream/name", 128),
        ("/pipe/name", 64),
        ("/delivery/name", 64),
        ("/bucket", 63),
        ("/catalog/database", 255),
        ("/analytics/workgroup", 128),
    ];
    for (pointer, limit) in limits {
        let value = status.pointer(pointer).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{pointer}: {status:#}"));
        assert!(value.len() <= limit, "{pointer} = {value} ({} > {limit})", value.len());
    }
    for role in ["pipe", "firehose"] {
        let arn = status["roles"][role].as_str().unwrap();
        let role_name = arn.rsplit('/').next().unwrap();
        assert!(role_name.len() <= 64, "{role_name}");
    }
    // The ownership tag value fits AWS's 256 characters and still names this pipeline.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tags = rt.block_on(async {
        let sdk = moto::sdk(&moto::settings()).await;
        let c = sales_operator::aws::Clients::new(&sdk, None, Default::default()).unwrap();
        let arn = status["table"]["arn"].as_str().unwrap().to_string();
        c.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.unwrap().tags.unwrap_or_default()
    });
    let owner = tags.iter().find(|t| t.key == sales_operator::aws::TAG_PIPELINE).expect("ownership tag");
    assert!(owner.value.len() <= 256 && owner.value.starts_with(&format!("{namespace}/nnn")), "{}", owner.value);
    assert_eq!(owner.value, sales_operator::aws::pipeline_identity(&namespace, &name));

    let delete = operator(&["delete", "-f", file]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
}
