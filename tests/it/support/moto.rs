//! moto servers (the local AWS emulator, tests/aws-emulator), started through
//! `scripts/moto.sh` (pinned version, cached venv) on free loopback ports and stopped by a
//! watchdog when the test process exits.
//!
//! A suite that drives AWS itself declares a server of its own with [`own_server!`]: a
//! `mod moto` whose functions (`reconciler`, `settings`, `sdk`, `aws_env`, `behave`, `endpoint`,
//! and the shared ones below) use that suite's server, as each suite had when it was a test
//! binary of its own. What lives in a server then stays the suite's: moto's quota of 50
//! Firehose streams per region (pipeline_moto's crash test alone creates some 25 pipelines and
//! deletes none), moto's queue of canned Athena results (query_moto), and the AWS-behaviour
//! layer's rules and counters. The free functions of this module use the process's default
//! server: the benches' (they include this file), and that of the suites that run the operator
//! as a process (support/operator.rs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One moto server (behind the AWS-behaviour layer unless [`like_aws`] says bare).
pub struct Server {
    endpoint: String,
}

/// The process's default server, started on first use.
pub fn default_server() -> &'static Server {
    static DEFAULT: OnceLock<Server> = OnceLock::new();
    DEFAULT.get_or_init(Server::start)
}

/// The server of the suite whose module path is `suite`, started on its first use (see [`own_server!`]).
pub fn server_of(suite: &'static str) -> &'static Server {
    static SERVERS: Mutex<BTreeMap<&'static str, &'static OnceLock<Server>>> = Mutex::new(BTreeMap::new());
    let cell: &'static OnceLock<Server> =
        SERVERS.lock().unwrap().entry(suite).or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    cell.get_or_init(Server::start)
}

/// Declares `mod moto` in a suite: this module's functions on a moto server of the suite's own
/// (`crate::support::moto::own_server!();` where the suite, as a binary, had `mod moto;`).
#[allow(unused_macros)] // the benches include this file and declare no suites
macro_rules! own_server {
    () => {
        /// This suite's own moto server (see crate::support::moto).
        mod moto {
            #![allow(dead_code, unused_imports)]
            pub use $crate::support::moto::{iam_settle, like_aws, set_aws_env, unique, FAST_AWS, POLL, REGION};

            fn server() -> &'static $crate::support::moto::Server {
                $crate::support::moto::server_of(module_path!())
            }
            /// The endpoint URL of this suite's moto server, starting it on first use.
            pub fn endpoint() -> &'static str {
                server().endpoint()
            }
            pub fn settings() -> sales_operator::aws::AwsSettings {
                server().settings()
            }
            pub async fn sdk(settings: &sales_operator::aws::AwsSettings) -> aws_config::SdkConfig {
                server().sdk(settings).await
            }
            pub async fn reconciler() -> sales_operator::reconcile::Reconciler {
                server().reconciler().await
            }
            pub async fn reconciler_as(
                assume: sales_operator::aws::identity::Assume,
            ) -> sales_operator::reconcile::Reconciler {
                server().reconciler_as(Some(assume)).await
            }
            pub fn aws_env() -> Vec<(&'static str, String)> {
                server().aws_env()
            }
            pub fn behave(matching: &str, rule: serde_json::Value) {
                server().behave(matching, rule)
            }
            pub fn calls_seen(operation: &str) -> u64 {
                server().calls_seen(operation)
            }
            /// The `sales-operator` binary with `args`, against this suite's server.
            pub fn operator(args: &[&str]) -> std::process::Output {
                std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator"))
                    .args(args)
                    .envs(aws_env())
                    .output()
                    .expect("run sales-operator")
            }
        }
    };
}
#[allow(unused_imports)] // the benches include this file and declare no suites
pub(crate) use own_server;

impl Server {
    fn start() -> Server {
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
                return Server { endpoint: url };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto did not start on {url}; log: {}", log.display());
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// [`behave`] on this server.
    pub fn behave(&self, matching: &str, rule: serde_json::Value) {
        let mut doc = rule;
        doc.as_object_mut().expect("a rule is a JSON object").insert("match".into(), matching.into());
        let (status, body) = self.http("POST", "/_behaviour", &doc.to_string());
        assert_eq!(status, 200, "POST /_behaviour {doc}: {body}");
    }

    /// How many requests of `operation` ("sts:AssumeRole") the AWS-behaviour layer has seen.
    pub fn calls_seen(&self, operation: &str) -> u64 {
        let (status, body) = self.http("GET", "/_behaviour/calls", "");
        assert_eq!(status, 200, "GET /_behaviour/calls: {body}");
        let calls: serde_json::Value = serde_json::from_str(&body).expect("calls are JSON");
        calls[operation].as_u64().unwrap_or(0)
    }

    /// The AWS-behaviour layer's CloudTrail-shaped records of the last requests, oldest first.
    pub fn trail(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.http("GET", "/_behaviour/trail", "");
        assert_eq!(status, 200, "GET /_behaviour/trail: {body}");
        let trail: serde_json::Value = serde_json::from_str(&body).expect("the trail is JSON");
        trail["Records"].as_array().cloned().unwrap_or_default()
    }

    /// One HTTP/1.1 request to this moto server: (status, body).
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
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

    /// [`aws_env`] for this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("AWS_ENDPOINT_URL", self.endpoint.clone())];
        env.extend(credentials_env());
        env.push(("SALES_OPERATOR_IAM_SETTLE", iam_settle().as_secs_f64().to_string()));
        env.push(("SALES_OPERATOR_AWS_POLL", POLL.as_secs_f64().to_string()));
        env
    }

    /// [`settings`] for this server.
    pub fn settings(&self) -> sales_operator::aws::AwsSettings {
        sales_operator::aws::AwsSettings {
            region: Some(REGION.into()),
            endpoint_url: Some(self.endpoint.clone()),
            ..Default::default()
        }
    }

    /// [`sdk`]: the SDK configuration for `settings`, with this process holding the dummy credentials.
    pub async fn sdk(&self, settings: &sales_operator::aws::AwsSettings) -> aws_config::SdkConfig {
        sdk(settings).await
    }

    /// [`reconciler`] for this server: in-process SDK clients retrying fast (tests inject faults),
    /// with the tests' pace.
    pub async fn reconciler(&self) -> sales_operator::reconcile::Reconciler {
        self.reconciler_as(None).await
    }

    /// [`Server::reconciler`], acting through an assumed role when `assume` is given.
    pub async fn reconciler_as(
        &self,
        assume: Option<sales_operator::aws::identity::Assume>,
    ) -> sales_operator::reconcile::Reconciler {
        let fast = sales_operator::aws::AwsSettings {
            max_attempts: Some(4),
            initial_backoff: Some(Duration::from_millis(5)),
            assume,
            ..self.settings()
        };
        set_aws_env();
        let sdk = sales_operator::aws::connect(&fast).await.expect("the role's session");
        let clients = sales_operator::aws::Clients::new(&sdk, None, Default::default()).expect("clients for moto");
        let timing =
            sales_operator::reconcile::Timing { iam_settle: Some(iam_settle()), pace: Some(POLL), iam_window: None };
        sales_operator::reconcile::Reconciler::new(clients, timing)
    }
}

/// The endpoint URL of the default moto server, starting it on first use.
pub fn endpoint() -> &'static str {
    default_server().endpoint()
}

/// A name no other test in this run uses (one counter for the process, whichever server).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

/// The default rule of the AWS-behaviour layer (docs/aws-behaviour.md, "Timing and refusals")
/// with AWS's waits shortened to seconds: what a server is started with unless
/// `SALES_OPERATOR_TEST_AWS` is `bare` (then moto runs with every behaviour off).
pub const FAST_AWS: &str = r#"{"table_creating": 1, "table_backups_unavailable": 2, "stream_creating": 1.5, "pipe_creating": 2, "delivery_creating": 2, "iam_propagation": 2, "read_after_create": 0.3}"#;

/// Sets the AWS-behaviour rule (`POST /_behaviour`) of every resource whose name contains
/// `matching`, on the default server: `rule` is a JSON object of the layer's keys
/// (`{"table_creating": 1.5}`; keys left out are off, not the default's). The longest matching
/// substring wins, so give each test a name no other name contains, e.g.
/// `format!("{}-x", unique("t"))` (`t-1-1` is inside `t-1-12`).
pub fn behave(matching: &str, rule: serde_json::Value) {
    default_server().behave(matching, rule)
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

/// Environment for running the `sales-operator` binary against the default server.
pub fn aws_env() -> Vec<(&'static str, String)> {
    default_server().aws_env()
}

/// The dummy credentials, the region and no instance metadata: the same for every server.
fn credentials_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// The region the tests use.
pub const REGION: &str = "eu-west-1";

/// The default server in [`REGION`], with the operator's default retries (override fields with
/// `AwsSettings { max_attempts: .., ..settings() }`).
pub fn settings() -> sales_operator::aws::AwsSettings {
    default_server().settings()
}

/// The SDK configuration for `settings` (which names the server), with this process holding the
/// dummy credentials.
pub async fn sdk(settings: &sales_operator::aws::AwsSettings) -> aws_config::SdkConfig {
    set_aws_env();
    sales_operator::aws::sdk_config(settings).await
}

/// In-process SDK clients for the default server, retrying fast (tests inject faults).
pub async fn reconciler() -> sales_operator::reconcile::Reconciler {
    default_server().reconciler().await
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

/// Sets the dummy credentials and region in this process (for in-process SDK clients). Not the
/// endpoint: in-process clients get theirs from their settings, and the servers differ.
pub fn set_aws_env() {
    for (k, v) in credentials_env() {
        // Tests set the same values every time, so concurrent calls agree.
        unsafe { std::env::set_var(k, v) };
    }
}

/// Creates the S3 bucket `name` in [`REGION`] on the default server as someone other than the
/// operator would: no ownership tags, so a pipeline naming it must not take it.
pub fn create_bucket_outside(name: &str) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let c = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk(&settings()).await).force_path_style(true).build(),
        );
        c.create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
    });
}
