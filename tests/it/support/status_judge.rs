//! The verdicts Flux and Argo CD reach on an object, from their own code: the Go helper in
//! tests/status-judge (built by scripts/status-judge.sh with the machine's Go
//! toolchain, cached under ~/.cache/sales-operator by a hash of its source) runs
//! `sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute` and the chart's Argo CD health script
//! under Argo CD's Lua sandbox (gopher-lua with only base, package, table and a safe os;
//! objects with a deletionTimestamp are "Pending deletion" before any Lua runs).
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// One tool's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Verdict {
    pub status: String,
    pub message: String,
}

/// kstatus's and Argo CD's verdicts on one object.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Judgement {
    pub kstatus: Verdict,
    pub argocd: Verdict,
    #[serde(default)]
    pub error: Option<String>,
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The helper binary, built on first use.
pub fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = project_dir().join("scripts/status-judge.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        PathBuf::from(path)
    })
}

/// Judges every object, in order, with the chart's health script.
pub fn judge(objects: &[serde_json::Value]) -> Vec<Judgement> {
    judge_with(&project_dir().join("charts/sales-operator/argocd/health.lua"), objects)
}

/// Judges every object with the health script at `lua`.
pub fn judge_with(lua: &std::path::Path, objects: &[serde_json::Value]) -> Vec<Judgement> {
    let mut child = Command::new(binary())
        .arg(lua)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start status-judge");
    let mut input = String::new();
    for o in objects {
        input.push_str(&serde_json::to_string(o).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("status-judge output");
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "status-judge failed: {}", out.status);
    let verdicts: Vec<Judgement> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(verdicts.len(), objects.len());
    verdicts
}
