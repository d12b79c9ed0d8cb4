//! What a release publishes: the workflows pass actionlint (and a broken one
//! does not), the tag's version is Cargo's, the chart's and the changelog's, the
//! release notes are the changelog's section, and the chart's default image is
//! the one the release workflow pushes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn both(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `scripts/actionlint.sh FILES...` (no file: every workflow in .github/workflows/).
fn actionlint(files: &[&std::path::Path]) -> Output {
    Command::new("bash").arg(project().join("scripts/actionlint.sh")).args(files).output().expect("actionlint.sh")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(project().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_workflow_passes_actionlint() {
    let workflows = std::fs::read_dir(project().join(".github/workflows")).unwrap().count();
    assert!(workflows >= 2, "ci.yml and release.yml");
    let out = actionlint(&[]);
    assert!(out.status.success(), "{}", both(&out));
}

#[test]
fn a_broken_workflow_fails_actionlint_naming_each_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    std::fs::write(
        &file,
        "name: broken\non:\n  push:\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    needs: [nonexistent]\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo \"${{ steps.missing.outputs.value }}\"\n      - run: echo $UNQUOTED\n",
    )
    .unwrap();
    let out = actionlint(&[&file]);
    assert!(!out.status.success(), "actionlint passed a broken workflow: {}", both(&out));
    let report = both(&out);
    for mistake in ["[job-needs]", "property \"missing\" is not defined", "[shellcheck]"] {
        assert!(report.contains(mistake), "{mistake:?} not reported:\n{report}");
    }
}

/// The value of `key: value` (quotes dropped) on a line of `text` that starts with `key:`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).map(|v| v.trim().trim_matches('"'))
}

#[test]
fn cargo_the_chart_and_the_changelog_name_one_version() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = read("charts/sales-operator/Chart.yaml");
    assert_eq!(field(&chart, "version"), Some(version), "chart version");
    assert_eq!(field(&chart, "appVersion"), Some(version), "appVersion = the image tag the release pushes");
    let out = Command::new("bash").arg(project().join("scripts/release-notes.sh")).arg(version).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let notes = String::from_utf8_lossy(&out.stdout);
    assert!(notes.contains("### Added") && !notes.contains("## ["), "only the {version} section:\n{notes}");
    let missing =
        Command::new("bash").arg(project().join("scripts/release-notes.sh")).arg("0.0.0-none").output().unwrap();
    assert!(!missing.status.success(), "a version without a section has no notes: {}", both(&missing));
}

#[test]
fn the_chart_defaults_to_the_image_the_release_pushes() {
    let release = read(".github/workflows/release.yml");
    let values = read("charts/sales-operator/values.yaml");
    let upstream = "ghcr.io/sales-operator/sales-operator";
    // The release pushes ghcr.io/<owner>/sales-operator:<version> and points the chart at it
    // (for the upstream owner the line stays as it is).
    assert!(release.contains("image=ghcr.io/${OWNER,,}/sales-operator"), "release.yml pushes elsewhere");
    assert!(release.contains(&format!("s|^  repository: {upstream}$|  repository: $IMAGE|")), "release.yml");
    assert!(values.lines().any(|l| l == format!("  repository: {upstream}")), "values.yaml image.repository");
    assert!(release.contains("--app-version \"$VERSION\"") && release.contains("helm push"), "release.yml");
    for step in ["cosign sign --yes \"$IMAGE@$DIGEST\"", "sbom: true", "provenance: mode=max", "linux/arm64"] {
        assert!(release.contains(step), "release.yml lacks {step:?}");
    }
}
