//! The `sales-operator` binary as a user runs it: crd, plan, apply, delete,
//! and refusal of bad manifests before any AWS call.

crate::support::moto::own_server!();

use std::path::PathBuf;
use std::process::Command;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use crate::support::text;
use moto::operator;

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

/// The named fields (and the root) of a CRD schema that have no description a user could act on:
/// none, empty, or kube's placeholder ("Auto-generated derived type for ...").
fn undescribed(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    let description = node["description"].as_str().unwrap_or_default().trim();
    if description.is_empty() || description.contains("Auto-generated") || description.contains("derived type") {
        out.push(if path.is_empty() { "(the kind itself)".to_string() } else { path.to_string() });
    }
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        // The standard objects' descriptions come from Kubernetes (kubectl explain has them).
        if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        undescribed(child, &format!("{path}.{name}"), out);
    }
    // A list of objects: their fields too (`.spec.catalog.products[].name`).
    if node["items"]["properties"].is_object() {
        for (name, child) in node["items"]["properties"].as_object().into_iter().flatten() {
            undescribed(child, &format!("{path}[].{name}"), out);
        }
    }
}

#[test]
fn every_crd_field_and_kind_has_a_description() {
    let mut missing = Vec::new();
    for dir in ["crds", "charts/sales-operator/files/crds"] {
        for entry in std::fs::read_dir(project().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let crd: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                let mut fields = Vec::new();
                undescribed(&version["schema"]["openAPIV3Schema"], "", &mut fields);
                missing.extend(fields.into_iter().map(|f| format!("{}: {f}", path.display())));
            }
        }
    }
    assert!(missing.is_empty(), "fields without a description (doc comments in src/api/):\n{}", missing.join("\n"));
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
    assert!(has_line(&out, "retained", "dynamodb table default-sales-orders"), "{out}");
    assert!(has_line(&out, "deleted", "kinesis stream default-sales-orders"), "{out}");
    assert!(out.contains("sales: 6 deleted, 2 retained, 0 absent (deletionPolicy Retain)."), "{out}");
    assert!(!out.contains("torn down"), "{out}");
}

/// Whether `out` has a line starting with `word` that names `resource`.
fn has_line(out: &str, word: &str, resource: &str) -> bool {
    out.lines().any(|l| l.split_whitespace().next() == Some(word) && l.contains(resource))
}

/// A SalesPipeline manifest named `name` (unique per test: they share one moto) in a temp dir.
fn manifest(dir: &tempfile::TempDir, name: &str, spec: &str) -> String {
    let file = dir.path().join(format!("{name}.yaml"));
    let spec = if spec.is_empty() { " {}".to_string() } else { format!("\n{spec}") };
    std::fs::write(
        &file,
        format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\nspec:{spec}\n"
        ),
    )
    .unwrap();
    file.to_str().unwrap().to_string()
}

#[test]
fn delete_says_per_resource_what_it_did_or_would_do_and_takes_the_policy_as_the_api_spells_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = moto::unique("del");
    let file = manifest(&dir, &name, "");
    let apply = operator(&["apply", "-f", &file]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));

    // As README spells it, and in lower case too; a dry run changes nothing and says so.
    for policy in ["Delete", "delete"] {
        let out = operator(&["delete", "-f", &file, "--deletion-policy", policy, "--dry-run"]);
        assert!(out.status.success(), "--deletion-policy {policy}: {}", text(&out.stderr));
        let out = text(&out.stdout);
        assert!(has_line(&out, "would", &format!("dynamodb table default-{name}-orders")), "{out}");
        assert!(out.contains("(dry run, nothing changed): 8 would be deleted, 0 would be retained, 0 absent (deletionPolicy Delete)."), "{out}");
    }
    let out = operator(&["delete", "-f", &file, "--deletion-policy", "Sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("[possible values: Retain, Delete]"), "{}", text(&out.stderr));

    // Retain: the table and bucket stay, and the summary counts them instead of "torn down".
    let out = operator(&["delete", "-f", &file, "--deletion-policy", "Retain"]);
    let out = text(&out.stdout);
    assert!(out.contains(&format!("{name}: 6 deleted, 2 retained, 0 absent (deletionPolicy Retain).")), "{out}");
    // A second delete finds the rest absent.
    let out = operator(&["delete", "-f", &file, "--deletion-policy", "Delete"]);
    let out = text(&out.stdout);
    assert!(has_line(&out, "absent", &format!("kinesis stream default-{name}-orders")), "{out}");
    assert!(out.contains(&format!("{name}: 2 deleted, 0 retained, 6 absent (deletionPolicy Delete).")), "{out}");
}

/// `delete` waits, as `apply` does, for what AWS is still creating: a Firehose stream CREATING
/// refuses DeleteDeliveryStream (docs/aws-behaviour.md), and minutes of CREATING are normal on AWS.
#[tokio::test]
async fn delete_waits_for_a_resource_aws_is_still_creating() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}x", moto::unique("delw"));
    moto::behave(&name, serde_json::json!({}));
    let file = manifest(&dir, &name, "");
    let apply = operator(&["apply", "-f", &file]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    // The Firehose stream is made again, and is CREATING for a while.
    moto::behave(&name, serde_json::json!({"delivery_creating": 6}));
    let delivery = format!("default-{name}-orders");
    let firehose = aws_sdk_firehose::Client::new(&moto::sdk(&moto::settings()).await);
    firehose.delete_delivery_stream().delivery_stream_name(&delivery).send().await.unwrap();
    let again = operator(&["apply", "-f", &file, "--wait", "0"]);
    let out = text(&again.stderr);
    assert!(out.contains(&format!("create   firehose delivery stream {delivery}")), "{out}");

    // One pass: refused while CREATING, reported, the rest of what needs it kept.
    let once = operator(&["delete", "-f", &file, "--deletion-policy", "Delete", "--wait", "0"]);
    assert_eq!(once.status.code(), Some(1), "{}", text(&once.stdout));
    assert!(text(&once.stderr).contains("CREATING"), "{}", text(&once.stderr));
    // Waiting: everything goes once AWS is done creating it.
    let waited = operator(&["delete", "-f", &file, "--deletion-policy", "Delete", "--wait", "60s"]);
    assert!(waited.status.success(), "{}\n{}", text(&waited.stdout), text(&waited.stderr));
    let out = text(&waited.stdout);
    assert!(has_line(&out, "deleted", &format!("firehose delivery stream {delivery}")), "{out}");
    assert!(has_line(&out, "deleted", &format!("kinesis stream {delivery}")), "{out}");
    assert!(text(&waited.stderr).contains("deleting again in"), "{}", text(&waited.stderr));
}

#[test]
fn a_changed_name_prefix_is_refused_as_the_cluster_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = moto::unique("pfx");
    let old = manifest(&dir, &name, &format!("  namePrefix: {name}-a"));
    assert!(operator(&["apply", "-f", &old]).status.success());
    let renamed = manifest(&dir, &format!("{name}-copy"), "");
    // The same pipeline (namespace/name) with another prefix.
    std::fs::write(
        &renamed,
        std::fs::read_to_string(&old).unwrap().replace(&format!("{name}-a"), &format!("{name}-b")),
    )
    .unwrap();
    for command in ["plan", "apply"] {
        let out = operator(&[command, "-f", &renamed]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("spec.namePrefix: is immutable") && stderr.contains(&format!("{name}-a-orders")),
            "{stderr}"
        );
    }
    // Once the old resources are gone, the new prefix is a new pipeline.
    assert!(operator(&["delete", "-f", &old, "--deletion-policy", "Delete"]).status.success());
    let out = operator(&["plan", "-f", &renamed]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn without_a_region_the_cli_says_how_to_set_one_and_never_asks_instance_metadata() {
    // A stand-in for EC2's metadata service on the loopback: any connection is a probe.
    let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    imds.set_nonblocking(true).unwrap();
    let example = project().join("examples/pipeline.yaml");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["plan", "-f", example.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tempfile::tempdir().unwrap().path())
        .env("AWS_ENDPOINT_URL", moto::endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{}", imds.local_addr().unwrap()))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS region") && stderr.contains("export AWS_REGION=eu-west-1"), "{stderr}");
    assert!(imds.accept().is_err(), "the CLI asked instance metadata for a region");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn logs_carry_no_colour_codes_off_a_terminal_nor_debug_forms() {
    let dir = tempfile::tempdir().unwrap();
    let name = moto::unique("logs");
    assert!(operator(&["apply", "-f", &manifest(&dir, &name, "")]).status.success());
    // Neither --duration nor --seed: the first line used to say `duration=None seed=None`.
    let out = operator(&["generate", "--table", &format!("default-{name}-orders"), "--count", "3"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("writing orders") && stderr.contains("count=3"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI codes in {stderr:?}");
    assert!(!stderr.contains("Some(") && !stderr.contains("=None"), "{stderr}");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    use std::ffi::OsStr;
    // The binary's rule (its logging set-up asks it); a test cannot give the binary a terminal.
    assert!(sales_operator::telemetry::colour_logs(true, None));
    assert!(!sales_operator::telemetry::colour_logs(false, None));
    assert!(!sales_operator::telemetry::colour_logs(true, Some(OsStr::new("1"))));
    assert!(sales_operator::telemetry::colour_logs(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
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

/// An endpoint that accepts connections and never answers (a hung AWS, a stopped emulator):
/// `apply --wait` ends at its deadline, saying which call is unanswered, and says so while it
/// waits; so does `delete --wait`.
#[test]
fn a_silent_endpoint_ends_apply_and_delete_at_their_wait_naming_the_unanswered_call() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let file = project().join("examples/pipeline.yaml");
    for (command, wait) in [("apply", "7s"), ("delete", "7s")] {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .args([command, "-f", file.to_str().unwrap(), "--aws-endpoint-url", &url, "--wait", wait])
            .envs(moto::aws_env().into_iter().filter(|(k, _)| *k != "AWS_ENDPOINT_URL"))
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains("AWS did not answer within --wait 7s: "), "{command}: {stderr}");
        assert!(stderr.contains("has not answered for"), "{command}: {stderr}");
        assert!(stderr.contains("waiting for AWS: "), "{command}: no line while waiting: {stderr}");
        assert!(took < std::time::Duration::from_secs(15), "{command} took {took:?}");
    }
    drop(silent);
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
