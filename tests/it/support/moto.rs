//! A moto server (the local AWS emulator) per test binary, started through
//! `scripts/moto.sh` (pinned version, cached venv) on a free loopback port and
//! stopped by a watchdog when the test process exits.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ENDPOINT: OnceLock<String> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The endpoint URL of this test binary's moto server, starting it on first use.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(start)
}

/// A name no other test in this run uses (tests share one server).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

fn start() -> String {
    let out = Command::new("bash")
        .arg(project_dir().join("scripts/moto.sh"))
        .arg("bin")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/moto.sh bin");
    assert!(out.status.success(), "scripts/moto.sh bin failed");
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let log = std::env::temp_dir().join(format!("sales-operator-test-moto-{port}.log"));
    // AWS's timing (tests/aws-emulator/aws_behaviour.py) unless asked for bare moto: SALES_OPERATOR_TEST_AWS=bare.
    let behaviour = if like_aws() { format!("SALES_OPERATOR_AWS_BEHAVIOUR='{FAST_AWS}' ") } else { String::new() };
    spawn_watched(&format!("{behaviour}\"{bin}\" -H 127.0.0.1 -p {port}"), &log);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(200));
            return url;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not start on {url}; log: {}", log.display());
}

/// The default rule of the AWS-behaviour layer (docs/aws-behaviour.md, "Timing and refusals")
/// with AWS's waits shortened to seconds: what `start` gives moto unless `SALES_OPERATOR_TEST_AWS`
/// is `bare` (then moto runs with every behaviour off).
pub const FAST_AWS: &str = r#"{"table_creating": 1, "table_backups_unavailable": 2, "stream_creating": 1.5, "pipe_creating": 2, "delivery_creating": 2, "iam_propagation": 2, "read_after_create": 0.3}"#;

/// Sets the AWS-behaviour rule (`POST /_behaviour`) of every resource whose name contains
/// `matching`: `rule` is a JSON object of the layer's keys (`{"table_creating": 1.5}`; keys left
/// out are off, not the default's). The longest matching substring wins, so give each test a
/// name no other name contains, e.g. `format!("{}-x", unique("t"))` (`t-1-1` is inside `t-1-12`).
pub fn behave(matching: &str, rule: serde_json::Value) {
    let mut doc = rule;
    doc.as_object_mut().expect("a rule is a JSON object").insert("match".into(), matching.into());
    let (status, body) = http("POST", "/_behaviour", &doc.to_string());
    assert_eq!(status, 200, "POST /_behaviour {doc}: {body}");
}

/// One HTTP/1.1 request to this moto server: (status, body).
fn http(method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = endpoint().trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to moto");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).expect("send to moto");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read moto's answer");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Starts the shell `command` in the background, its output into `log`, under a watchdog that
/// stops it as soon as this test process is gone. Detached: returns at once.
pub fn spawn_watched(command: &str, log: &std::path::Path) {
    let script = format!(
        "{command} >\"{log}\" 2>&1 & child=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; kill $child 2>/dev/null",
        log = log.display(),
        parent = std::process::id()
    );
    let started = Command::new("bash")
        .arg("-c")
        .arg(format!("({script}) >/dev/null 2>&1 &"))
        .stdin(Stdio::null())
        .status()
        .expect("start a watched server");
    assert!(started.success(), "could not start {command}");
}

/// Environment for running the `sales-operator` binary against this moto.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("SALES_OPERATOR_IAM_SETTLE", iam_settle().as_secs_f64().to_string()),
        ("SALES_OPERATOR_AWS_POLL", POLL.as_secs_f64().to_string()),
    ]
}

/// The region the tests use.
pub const REGION: &str = "eu-west-1";

/// This moto server in [`REGION`], with the operator's default retries (override fields with
/// `AwsSettings { max_attempts: .., ..settings() }`).
pub fn settings() -> sales_operator::aws::AwsSettings {
    sales_operator::aws::AwsSettings {
        region: Some(REGION.into()),
        endpoint_url: Some(endpoint().to_string()),
        ..Default::default()
    }
}

/// The SDK configuration for `settings`, with this process holding the dummy credentials.
pub async fn sdk(settings: &sales_operator::aws::AwsSettings) -> aws_config::SdkConfig {
    set_aws_env();
    sales_operator::aws::sdk_config(settings).await
}

/// In-process SDK clients for this moto server, retrying fast (tests inject faults).
pub async fn clients() -> sales_operator::aws::Clients {
    let fast = sales_operator::aws::AwsSettings {
        max_attempts: Some(4),
        initial_backoff: Some(Duration::from_millis(5)),
        ..settings()
    };
    let mut c =
        sales_operator::aws::Clients::new(&sdk(&fast).await, None, Default::default()).expect("clients for moto");
    c.memory.timing.iam_settle = Some(iam_settle());
    c.memory.timing.pace = Some(POLL);
    c
}

/// Whether moto runs behind the AWS-behaviour layer with [`FAST_AWS`] (the default), or bare
/// (`SALES_OPERATOR_TEST_AWS=bare`).
pub fn like_aws() -> bool {
    std::env::var("SALES_OPERATOR_TEST_AWS").as_deref() != Ok("bare")
}

/// How long the operator under test lets a new role settle before a service assumes it: a bit
/// longer than [`FAST_AWS`]'s `iam_propagation`, as the default is for AWS's; none on bare moto,
/// where every role is usable at once.
pub fn iam_settle() -> Duration {
    if like_aws() {
        Duration::from_millis(2500)
    } else {
        Duration::ZERO
    }
}

/// How often the operator under test looks again at what AWS is still creating: AWS's waits are
/// seconds here, not minutes.
pub const POLL: Duration = Duration::from_millis(500);

/// Sets the dummy credentials in this process (for in-process SDK clients).
pub fn set_aws_env() {
    for (k, v) in aws_env() {
        // Tests set the same values every time, so concurrent calls agree.
        unsafe { std::env::set_var(k, v) };
    }
}
