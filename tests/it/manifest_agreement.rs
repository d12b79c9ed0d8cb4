//! The CLI's manifest validation against the real API server, differentially: the same table of
//! SalesPipeline manifests goes to `sales-operator validate` and to the test kube-apiserver
//! (`kubectl create --dry-run=server --validate=strict`, the server's own schema, CEL, name and
//! strict-field checks, nothing stored), and both must agree on every manifest: accepted by both,
//! or rejected by both naming the same fields.
//!
//! `create` rather than `apply`: `kubectl apply` refuses a manifest without a name on the
//! client side, before the server could say which field is wrong.

use crate::support::kube_env;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube_env::{project_dir, KubeEnv};

/// What one side said of a manifest.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// The field paths the rejection names.
    Rejected(BTreeSet<String>),
}

fn manifest(name: &str, namespace: Option<&str>, spec: &str) -> String {
    let ns = namespace.map(|n| format!("  namespace: {n}\n")).unwrap_or_default();
    let spec = if spec.is_empty() { " {}".to_string() } else { format!("\n{spec}") };
    format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n{ns}spec:{spec}\n"
    )
}

/// `spec.tags` with `n` tags.
fn tags(n: usize) -> String {
    format!("  tags:{}", (0..n).map(|i| format!("\n    k{i}: v")).collect::<String>())
}

fn spec_case(label: &str, spec: &str) -> (String, String) {
    (label.to_string(), manifest("bounds", None, spec))
}

/// Valid edge cases and invalid ones just past each bound, beside tests/manifests/invalid/.
fn cases(long_namespace: &str) -> Vec<(String, String)> {
    let mut cases = vec![
        ("name of 111 characters without dots".into(), manifest(&"a".repeat(111), None, "")),
        ("name of 253 characters".into(), manifest(&"n".repeat(253), None, "")),
        (
            "dotted name of 253 characters with a 120-character part".into(),
            manifest(&format!("{}.{}", "b".repeat(120), "c".repeat(132)), None, ""),
        ),
        ("name of digits and dots".into(), manifest("1.2.3", None, "")),
        ("63-character namespace".into(), manifest("shop", Some(long_namespace), "")),
        ("longest name in the longest namespace".into(), manifest(&"z".repeat(253), Some(long_namespace), "")),
        ("name of 254 characters".into(), manifest(&"n".repeat(254), None, "")),
        ("name with upper case".into(), manifest("Shop", None, "")),
        ("name with an underscore".into(), manifest("shop_eu", None, "")),
        ("name starting with '-'".into(), manifest("-shop", None, "")),
        ("name ending with '.'".into(), manifest("shop.", None, "")),
        ("name with an empty part".into(), manifest("a..b", None, "")),
    ];
    let specs: &[(&str, &str)] = &[
        ("lowest bounds", "  stream:\n    mode: PROVISIONED\n    shardCount: 1\n    retentionHours: 24\n  pipe:\n    batchSize: 1\n    maximumBatchingWindowSeconds: 0\n  delivery:\n    bufferSeconds: 0\n    bufferMib: 1\n  bucket:\n    expirationDays: 1\n  analytics:\n    bytesScannedCutoff: 10000000\n  table:\n    billingMode: PROVISIONED\n    readCapacity: 1\n    writeCapacity: 1"),
        ("highest bounds", "  stream:\n    mode: PROVISIONED\n    shardCount: 500\n    retentionHours: 8760\n  pipe:\n    batchSize: 10000\n    maximumBatchingWindowSeconds: 300\n    eventNames: [INSERT, MODIFY, REMOVE]\n  delivery:\n    bufferSeconds: 900\n    bufferMib: 128\n  bucket:\n    expirationDays: 36500\n  table:\n    billingMode: PROVISIONED\n    readCapacity: 40000\n    writeCapacity: 40000\n  analytics:\n    namedQueries: [revenue_by_product_hour, top_products, order_rate_per_minute, average_order_value_by_region, sales_projection]"),
        ("longest names", &format!("  namePrefix: P{}\n  table:\n    name: {}\n  stream:\n    name: {}\n  pipe:\n    name: {}\n  delivery:\n    name: {}\n  analytics:\n    workgroup: {}\n  tags:\n    {}: {}", "p".repeat(39), "t".repeat(255), "s".repeat(128), "p".repeat(64), "d".repeat(64), "w".repeat(128), "k".repeat(128), "v".repeat(256))),
        ("shortest table name", "  table:\n    name: abc"),
        ("shard count 501", "  stream:\n    mode: PROVISIONED\n    shardCount: 501"),
        ("shard count 0", "  stream:\n    mode: PROVISIONED\n    shardCount: 0"),
        ("retention 23 hours", "  stream:\n    retentionHours: 23"),
        ("retention 8761 hours", "  stream:\n    retentionHours: 8761"),
        ("batch size 10001", "  pipe:\n    batchSize: 10001"),
        ("batching window 301 s", "  pipe:\n    maximumBatchingWindowSeconds: 301"),
        ("buffer 901 s", "  delivery:\n    bufferSeconds: 901"),
        ("buffer 0 MiB", "  delivery:\n    bufferMib: 0"),
        ("expiration 36501 days", "  bucket:\n    expirationDays: 36501"),
        ("capacity 40001", "  table:\n    billingMode: PROVISIONED\n    readCapacity: 40001\n    writeCapacity: 1"),
        ("name prefix of 41", &format!("  namePrefix: {}", "p".repeat(41))),
        ("table name of 2", "  table:\n    name: ab"),
        ("table name of 256", &format!("  table:\n    name: {}", "t".repeat(256))),
        ("four event names", "  pipe:\n    eventNames: [INSERT, MODIFY, REMOVE, INSERT]"),
        ("six named queries", "  analytics:\n    namedQueries: [top_products, top_products, sales_projection, order_rate_per_minute, revenue_by_product_hour, average_order_value_by_region]"),
        ("tag key of 129", &format!("  tags:\n    {}: v", "k".repeat(129))),
        ("tag value of 257", &format!("  tags:\n    team: {}", "v".repeat(257))),
        ("reserved tag key", "  tags:\n    aws:owner: me"),
        ("a region no partition lists", "  region: xx-yyyy-1"),
        ("a region of the European Sovereign Cloud", "  region: eusc-de-east-1"),
        ("reserved tag key in capitals", "  tags:\n    AWS:owner: me"),
        ("47 tags", &tags(47)),
        ("48 tags", &tags(48)),
        ("tag key with '#'", "  tags:\n    team#1: a"),
        ("tag value with an emoji", "  tags:\n    team: \"\u{1F680}\""),
        ("tags of letters, spaces and every allowed sign", "  tags:\n    \u{e9}quipe: ventes \u{e9}t\u{e9}\n    app:tier: a/b=c+d-e@f_g.h"),
        ("empty tag key", "  tags:\n    \"\": v"),
        ("two errors at once", "  stream:\n    retentionHours: 23\n  pipe:\n    batchSize: 0"),
        ("unknown field and bad value", "  stream:\n    shards: 2\n  pipe:\n    batchSize: 0"),
        // Issue 25: under strict validation unknown fields fail the decoding first, alone.
        ("typos: two unknown fields and two bad enum values", "  stream:\n    mode: PROVISONED\n    shardCont: 2\n  delivery:\n    bufferSecond: 30\n  deletionPolicy: delete"),
        ("the same with the field names fixed", "  stream:\n    mode: PROVISONED\n    shardCount: 2\n  delivery:\n    bufferSeconds: 30\n  deletionPolicy: delete"),
        ("unknown field beside a CEL error", "  stream:\n    mode: PROVISIONED\n  pipe:\n    batchsize: 10"),
        ("unknown field beside a duplicate list item", "  pipe:\n    eventNames: [INSERT, INSERT]\n    filter: INSERT"),
        ("unknown top-level spec field and a bad bound", "  deletion: Retain\n  stream:\n    retentionHours: 23"),
    ];
    cases.extend(specs.iter().map(|(label, spec)| spec_case(label, spec)));
    cases
}

fn invalid_files() -> Vec<PathBuf> {
    let dir = project_dir().join("tests/manifests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Every `spec…`/`metadata…` field path in a message (`spec`, `spec.stream.shardCount`,
/// `spec.pipe.eventNames[3]`), trailing dots and colons dropped.
fn field_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for root in ["spec", "metadata"] {
        for (i, _) in text.match_indices(root) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
                continue;
            }
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '[' | ']')))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches('.');
            // A path is followed by `:` (`spec: Required value`) or quoted (`unknown field "spec.x"`).
            let next = rest[end..].chars().next();
            if (path == root && next != Some(':')) || !matches!(next, Some(':' | '"') | None) {
                continue;
            }
            out.insert(path.to_string());
        }
    }
    out
}

fn cli_verdict(file: &Path) -> Verdict {
    let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["validate", "-f", file.to_str().unwrap()])
        .output()
        .expect("run sales-operator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Verdict::Accepted,
        Some(2) => Verdict::Rejected(
            stderr.lines().filter_map(|l| l.trim().strip_prefix("- ")).flat_map(field_paths).collect(),
        ),
        other => panic!("{}: validate exited {other:?}: {stderr}", file.display()),
    }
}

fn server_verdict(env: &KubeEnv, file: &Path, namespace: &str) -> Verdict {
    let mut args = vec!["create", "--dry-run=server", "--validate=strict", "-f", file.to_str().unwrap()];
    // A manifest that names its namespace is sent there; the others to the test's.
    if !std::fs::read_to_string(file).unwrap().contains("\n  namespace: ") {
        args.extend(["-n", namespace]);
    }
    let out = env.kubectl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Verdict::Accepted
    } else {
        let fields = field_paths(&stderr);
        assert!(!fields.is_empty(), "{}: the API server refused without naming a field: {stderr}", file.display());
        Verdict::Rejected(fields)
    }
}

#[test]
fn cli_and_api_server_agree_on_every_manifest() {
    let env = KubeEnv::shared();
    env.apply_crds(&[&project_dir().join("crds")]);
    let namespace = env.create_namespace("agree");
    // The longest namespace Kubernetes allows, for the cases that name it.
    let long_namespace = format!("{namespace}-{}", "x".repeat(62 - namespace.len()));
    assert_eq!(long_namespace.len(), 63);
    env.kubectl_ok(&["create", "namespace", &long_namespace]);

    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, PathBuf)> = invalid_files()
        .into_iter()
        .map(|f| (format!("tests/manifests/invalid/{}", f.file_name().unwrap().to_string_lossy()), f))
        .collect();
    for (i, (label, yaml)) in cases(&long_namespace).into_iter().enumerate() {
        let file = dir.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        files.push((label, file));
    }

    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (label, file) in &files {
        let cli = cli_verdict(file);
        let server = server_verdict(env, file, &namespace);
        match &server {
            Verdict::Accepted => accepted += 1,
            Verdict::Rejected(_) => rejected += 1,
        }
        eprintln!("{label}: {server:?}");
        if cli != server {
            disagreements.push(format!("{label}:\n    CLI:        {cli:?}\n    API server: {server:?}"));
        }
    }
    assert!(disagreements.is_empty(), "the CLI and the API server disagree:\n{}", disagreements.join("\n"));
    // The table really exercises both verdicts.
    assert!(accepted >= 6 && rejected >= 30, "{accepted} accepted, {rejected} rejected");
}

#[test]
fn field_paths_are_read_from_both_message_styles() {
    let server = r#"The SalesPipeline "bad" is invalid: [spec.stream.shardCount: Invalid value: "integer": must be between 1 and 500, spec.pipe.eventNames[3]: Duplicate value: "INSERT"]"#;
    let fields: Vec<String> = field_paths(server).into_iter().collect();
    assert_eq!(fields, ["spec.pipe.eventNames[3]", "spec.stream.shardCount"]);
    assert_eq!(field_paths(r#"strict decoding error: unknown field "spec.stream.shards""#).len(), 1);
    assert!(field_paths("self.mode != 'PROVISIONED'").is_empty());
}
