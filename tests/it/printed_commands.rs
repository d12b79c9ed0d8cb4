//! Commands the project prints or documents, run as a reader would paste them: the commands
//! `scripts/demo.sh` prints at its end, in a fresh shell (no AWS variables, another directory),
//! and the README's "Against the emulator by hand" block, line by line.
//!
//! Each test starts its own moto through `scripts/moto.sh` on a free port and stops it again.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use crate::support::text;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Stops the moto that `scripts/moto.sh start PORT` left running, when the test ends however.
struct MotoOnPort(u16);

impl Drop for MotoOnPort {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(project().join("scripts/moto.sh"))
            .args(["stop", &self.0.to_string()])
            .stdin(Stdio::null())
            .status();
    }
}

/// `command` in a fresh shell: only PATH and HOME from this environment, in `dir`.
fn paste(command: &str, dir: &Path) -> Output {
    Command::new("bash")
        .args(["-c", command])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run bash")
}

/// The indented line that follows each line ending in "with:" (the demo's closing hints).
fn hints(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].trim_end().ends_with("with:") && w[1].starts_with("  "))
        .map(|w| w[1].trim().to_string())
        .collect()
}

#[test]
fn the_demos_closing_commands_work_when_pasted_into_a_fresh_shell() {
    let port = free_port();
    let _moto = MotoOnPort(port);
    // The demo itself with no AWS variables (it sets its own), up to the data health (no Trino).
    let mut demo = Command::new("bash");
    demo.arg(project().join("scripts/demo.sh")).env("DEMO_TRINO", "0").env("MOTO_PORT", port.to_string());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        demo.env_remove(key);
    }
    let out = demo.stdin(Stdio::null()).output().expect("run scripts/demo.sh");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "scripts/demo.sh failed:\n{stdout}\n{}", text(&out.stderr));
    assert!(!stdout.contains('\x1b') && !text(&out.stderr).contains("\x1b[0m"), "ANSI codes in the demo's output");
    // The orders it delivered, then their data health from the stages' metrics.
    let delivered = stdout.find("delivered 300 records").unwrap_or_else(|| panic!("nothing delivered:\n{stdout}"));
    let health = stdout
        .find("sales: DataFlowing=True (Flowing): orders reach S3 within 60 s of entering Firehose")
        .unwrap_or_else(|| panic!("no data health:\n{stdout}"));
    assert!(delivered < health, "{stdout}");
    assert!(stdout.contains("  delivery  default-sales-orders: 300 records, 0 failures"), "{stdout}");

    let hints = hints(&stdout);
    let teardown = hints.iter().find(|h| h.contains(" delete -f ")).expect("a teardown hint");
    let stop = hints.iter().find(|h| h.contains("moto.sh stop")).expect("a hint to stop the emulator");
    let elsewhere = tempfile::tempdir().unwrap();

    let out = paste(teardown, elsewhere.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{teardown}\n{stdout}\n{stderr}");
    assert!(!stderr.contains("WARN"), "{teardown}: {stderr}");
    assert!(stdout.contains("sales: 6 deleted, 2 retained, 0 absent (deletionPolicy Retain)."), "{stdout}");

    let out = paste(stop, elsewhere.path());
    assert!(out.status.success(), "{stop}: {}", text(&out.stderr));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "moto still answers after: {stop}");
}

/// The README's shell block that follows `heading`, one command per line (`\` continuations joined).
fn readme_block(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(project().join("README.md")).unwrap();
    let after = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let start = after.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &after[start..start + after[start..].find("```").expect("the block's end")];
    block.replace("\\\n", " ").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn the_readmes_commands_against_the_emulator_work_as_printed() {
    let commands = readme_block("Against the emulator by hand:");
    assert_eq!(commands.len(), 4, "{commands:?}");
    // Three substitutions, no more: a free port for 5000 (tests run side by side), the binary under
    // test for `cargo run --` (the same program, without a second build inside the test), and
    // the table name that apply printed for the placeholder that asks for it.
    let port = free_port();
    let _moto = MotoOnPort(port);
    let bin = env!("CARGO_BIN_EXE_sales-operator");
    let script: Vec<String> = commands
        .iter()
        .map(|c| {
            let c = c.replace("5000", &port.to_string()).replace("cargo run --", bin);
            if c.contains(" apply -f ") {
                format!("{c} | tee apply.out")
            } else {
                c.replace("<the table apply printed>", "\"$(awk '$1 == \"table\" && NF == 2 {print $2}' apply.out)\"")
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let script = format!("set -euo pipefail\ncd {}\n{}\n", project().display(), script.join("\n"))
        .replace("| tee apply.out", &format!("| tee {}/apply.out", dir.path().display()))
        .replace("' apply.out", &format!("' {}/apply.out", dir.path().display()));
    let out = paste(&script, dir.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    assert!(stdout.contains("Ready=True"), "{stdout}");
    assert!(stdout.contains("Done: 100 orders written to shop-sales-orders"), "{stdout}");
}
