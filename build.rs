//! Stamps the binary with the git revision and the build date
//! (`SALES_OPERATOR_REVISION`, `SALES_OPERATOR_BUILD_DATE`), shown by
//! `--version`, logged at start and exported as `sales_operator_build_info`.
//!
//! The revision is `SALES_OPERATOR_REVISION` when set (a release or image
//! build without `.git`), else `git rev-parse HEAD`, else `unknown` (a source
//! tarball). The date is `SOURCE_DATE_EPOCH` when set (reproducible builds),
//! else now, as `YYYY-MM-DD` in UTC. Std only: no build dependency.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD` of a Unix time (days-from-civil, inverted; proleptic Gregorian, UTC).
fn date(unix_seconds: u64) -> String {
    let z = (unix_seconds / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SALES_OPERATOR_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let revision = match std::env::var("SALES_OPERATOR_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_string(),
        _ => {
            // Run again when HEAD moves: HEAD itself (per worktree), the branch it names, packed refs.
            // Only existing paths: cargo reruns a script on every build for a missing one.
            let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(git(&["rev-parse", "--git-path", &branch]));
            }
            watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
            for path in watched.into_iter().flatten().map(PathBuf::from) {
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
            git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    println!("cargo:rustc-env=SALES_OPERATOR_REVISION={revision}");
    println!("cargo:rustc-env=SALES_OPERATOR_BUILD_DATE={}", date(seconds));
}
