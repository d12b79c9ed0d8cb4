//! A Trino server per caller of [`start`] (the engine Athena v3 is built on), started
//! through `scripts/trino.sh run` (pinned version, cached install) on a free
//! loopback port against the given Glue and S3 endpoints, and stopped by a
//! watchdog when the test process exits (`moto::spawn_watched`). Queries go through
//! `scripts/trino_query.py` (Trino's REST protocol, session time zone UTC).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts Trino reading the Glue catalog at `glue` and S3 at `s3`; its URL once it runs queries.
pub fn start(glue: &str, s3: &str) -> String {
    let out = Command::new("bash").arg(project_dir().join("scripts/trino.sh")).arg("install").status().unwrap();
    assert!(out.success(), "scripts/trino.sh install failed");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let log = std::env::temp_dir().join(format!("sales-operator-test-trino-{port}.log"));
    let sh = project_dir().join("scripts/trino.sh");
    super::moto::spawn_watched(&format!("\"{}\" run {glue} {port} {s3}", sh.display()), &log);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let started = loop {
        let info = Command::new("curl").args(["-fsS", &format!("{url}/v1/info")]).output().unwrap();
        if String::from_utf8_lossy(&info.stdout).contains("\"starting\":false") {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // Started comes before Trino can schedule a query (NO_NODES_AVAILABLE): wait, as
    // scripts/trino.sh does, for an active node listed by a query that answers.
    let left = deadline.saturating_duration_since(Instant::now()).as_secs().max(30);
    let ready = started
        && Command::new("python3")
            .arg(project_dir().join("scripts/trino_query.py"))
            .args([&url, "--wait-ready", &left.to_string()])
            .status()
            .is_ok_and(|s| s.success());
    assert!(ready, "trino did not become ready to run queries on {url}; log: {}", log.display());
    url
}

/// Whether a failed query never ran: a single-node Trino briefly has no active node when its
/// discovery announcement lapses on a loaded machine (it may have listed partitions already).
pub fn found_no_node(error: &str) -> bool {
    error.contains("NO_NODES_AVAILABLE")
}

/// A query's answer: column names, rows (Trino's JSON values), and Trino's statistics.
#[derive(Debug)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub stats: serde_json::Value,
    pub wall_seconds: f64,
}

/// Runs `sql` on `url` in catalog `awsdatacatalog`, schema `schema`.
pub fn query(url: &str, schema: &str, sql: &str) -> Result<Answer, String> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(project_dir().join("scripts/trino_query.py"))
        .args([url, schema, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child.stdin.take().unwrap().write_all(sql.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(Answer {
        columns: serde_json::from_value(v["columns"].clone()).map_err(|e| e.to_string())?,
        rows: serde_json::from_value(v["rows"].clone()).map_err(|e| e.to_string())?,
        stats: v["stats"].clone(),
        wall_seconds: v["wall_seconds"].as_f64().unwrap_or(0.0),
    })
}
