//! A real Kubernetes control plane for integration tests (no Docker, no kubelet).
//!
//! `scripts/kube-env/build.sh` builds pinned etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kubectl, helm and kwok into a cache
//! outside the repo (a no-op once cached); `scripts/kube-env/start.sh` starts
//! them on free loopback ports with RBAC on, plus kwok fake nodes so that
//! Deployments get ready replicas. See docs/kube-test-env.md.
//!
//! A suite uses it with `use crate::support::kube_env;`. Most tests use
//! [`KubeEnv::shared`] (one control plane for the whole test crate, every suite
//! in it; tests are isolated by namespace with [`KubeEnv::create_namespace`]).
//!
//! Std only (no crate of the project), so any test binary can include it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One running control plane (etcd, kube-apiserver, kube-controller-manager,
/// kube-scheduler, kwok). Stopped (and its data deleted) on drop, and in any
/// case by a watchdog as soon as the test process exits.
pub struct KubeEnv {
    dir: PathBuf,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    stopped: bool,
}

static SHARED: OnceLock<KubeEnv> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Root of the project (where `scripts/` and `crds/` live).
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scripts_dir() -> PathBuf {
    project_dir().join("scripts").join("kube-env")
}

fn run_script(name: &str, args: &[&str]) -> Result<String, String> {
    let script = scripts_dir().join(name);
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit()) // build progress / failure logs go to the terminal
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} {:?} failed ({})", script.display(), args, out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().map(|l| l.trim().to_string()).ok_or_else(|| format!("{} printed nothing", script.display()))
}

/// Polls `f` every 200 ms until it returns true; false after `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl KubeEnv {
    /// Builds the binaries if they are not cached yet (`build.sh`), then starts
    /// a fresh control plane in a new temp dir (`start.sh`). Takes a few seconds
    /// once built; the first build takes many minutes.
    pub fn start() -> Result<KubeEnv, String> {
        let bin_dir = PathBuf::from(run_script("build.sh", &[])?);
        let pid = std::process::id().to_string();
        let dir = PathBuf::from(run_script("start.sh", &["--watch-pid", &pid])?);
        let server_url = std::fs::read_to_string(dir.join("server-url"))
            .map_err(|e| format!("{}/server-url: {e}", dir.display()))?
            .trim()
            .to_string();
        Ok(KubeEnv { kubeconfig: dir.join("kubeconfig"), dir, bin_dir, server_url, stopped: false })
    }

    /// One control plane shared by every test of the test crate, all suites
    /// (started on first use; stopped by the watchdog when the process exits).
    /// Isolate tests by namespace. Panics if it cannot start.
    pub fn shared() -> &'static KubeEnv {
        SHARED.get_or_init(|| KubeEnv::start().unwrap_or_else(|e| panic!("kube-env: {e}")))
    }

    /// Admin (system:masters) kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Directory holding kubectl, helm, kwok, etcd, kube-*.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The instance's state dir (logs in `logs/`, certificates in `pki/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:<port>`
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// PEM file of the CA that signed the API server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("pki").join("ca.crt")
    }

    /// A `Command` for `program` with KUBECONFIG set to the admin kubeconfig and
    /// the bin dir first on PATH (for running the operator, helm hooks, ...).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut path = std::ffi::OsString::from(self.bin_dir.as_os_str());
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", &self.kubeconfig).env("PATH", path).stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig, args)
    }

    /// Runs kubectl with another kubeconfig (e.g. from [`Self::kubeconfig_for_token`]).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        self.command(self.bin_dir.join("kubectl"))
            .env("KUBECONFIG", kubeconfig)
            .args(args)
            .output()
            .expect("cannot run kubectl")
    }

    /// Runs kubectl as admin, panics (with stderr) unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            panic!(
                "kubectl {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl as admin with `stdin` piped in (e.g. `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(self.bin_dir.join("kubectl"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run kubectl");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.to_string();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("kubectl");
        let _ = writer.join();
        out
    }

    /// Runs helm as admin (helm's cache/config/data dirs live in the instance dir).
    pub fn helm(&self, args: &[&str]) -> Output {
        let home = self.dir.join("helm");
        self.command(self.bin_dir.join("helm"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .args(args)
            .output()
            .expect("cannot run helm")
    }

    /// Creates a namespace `<prefix>-<unique suffix>` and returns its name.
    pub fn create_namespace(&self, prefix: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut clean: String =
            prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        clean.truncate(40);
        let clean = clean.trim_matches('-');
        let clean = if clean.is_empty() { "test" } else { clean };
        let name = format!("{clean}-{}-{n}", std::process::id());
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }

    /// Applies CRD manifests (files or directories) and waits until every CRD in
    /// the cluster is Established. (`kubectl wait --for=condition=Established`
    /// right after the apply fails outright while a new CRD has no conditions yet.)
    pub fn apply_crds(&self, paths: &[&Path]) {
        for p in paths {
            self.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &p.to_string_lossy()]);
        }
        let established = wait_until(Duration::from_secs(60), || {
            let out = self.kubectl(&[
                "get",
                "crd",
                "-o",
                r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{"\n"}{end}"#,
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            out.status.success() && text.lines().count() > 0 && text.lines().all(|l| l.trim() == "True")
        });
        assert!(established, "CRDs not Established within 60 s");
    }

    /// A bearer token for ServiceAccount `ns/sa` (`kubectl create token`, 1 h).
    pub fn service_account_token(&self, ns: &str, sa: &str) -> String {
        self.kubectl_ok(&["create", "token", sa, "-n", ns, "--duration=1h"]).trim().to_string()
    }

    /// Writes a kubeconfig that authenticates with `token` (so a process runs
    /// with exactly that identity's RBAC) and returns its path.
    pub fn kubeconfig_for_token(&self, token: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("kubeconfig-token-{n}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-env\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: token\n  user:\n    token: {}\ncontexts:\n- name: kube-env\n  context: {{cluster: kube-env, user: token}}\ncurrent-context: kube-env\n",
            self.server_url,
            self.ca_file().display(),
            token
        );
        std::fs::write(&path, text).expect("write token kubeconfig");
        path
    }

    /// Stops the control plane and deletes its data (also done on drop).
    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = run_script("stop.sh", &[self.dir.to_str().unwrap_or_default()]);
        }
    }
}

impl Drop for KubeEnv {
    fn drop(&mut self) {
        self.stop();
    }
}
