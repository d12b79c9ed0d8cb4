#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (the moto
# venv, Trino, checkov, parliament, policy_sentry, the Kubernetes test binaries, the status
# judge, the PromQL parser and actionlint built from Go modules, prometheus-operator's CRDs from
# its Go module, all cached under ~/.cache/sales-operator; umoci and shellcheck from Debian),
# checks formatting, lints the code and the workflows, packs the test build's static binary as
# the image (an OCI archive, no container runtime) and runs every test.
#
# On a new machine the installs (downloads and one Go build of the Kubernetes binaries, ~15 min)
# and cargo's work (clippy and the test build, in one compilation) each leave a core idle much
# of the time, so the installs run in the background while cargo works; the tests start once
# both are done. Each step's output is
# printed, with the seconds since the start (docs/benchmarks.md, "CI from a clean clone").
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=common.sh
. scripts/common.sh
step() { echo "==> [$SECONDS s] $*"; }

installs() {
  # The longest install, a Go build (11-13 min cold), starts first; the others are mostly
  # downloads and run beside it (they took ~3 min before it).
  local kube_log kube_status=0
  kube_log=$(mktemp)
  step "Kubernetes test environment (etcd, kube-apiserver, controller-manager, scheduler, kwok, kubectl, helm), in the background"
  bash scripts/kube-env/build.sh >"$kube_log" 2>&1 &
  kube_pid=$!
  # an install that fails ends this subshell: the Go build with it
  trap 'kill_tree "$kube_pid"' EXIT
  step "local AWS emulator (moto)"
  scripts/moto.sh install
  step "Trino (the engine Athena v3 is built on; the query tests run the named queries on it)"
  scripts/trino.sh install
  step "checkov (tests/it/chart.rs checks the rendered chart with it)"
  scripts/checkov.sh install >/dev/null
  step "parliament and policy_sentry (tests/it/iam_policy.rs checks the generated IAM policies with them)"
  scripts/iam-lint.sh install
  step "status judge (Flux's kstatus and Argo CD's Lua runtime, for tests/it/status_judged_e2e.rs)"
  bash scripts/status-judge.sh
  step "prometheus-operator's CRDs and Prometheus's PromQL parser (tests/it/chart.rs and dashboards.rs check the chart's monitoring objects with them)"
  bash scripts/monitoring-tools.sh install
  step "umoci (scripts/image.sh), shellcheck and actionlint (the workflows' linter)"
  bash scripts/image.sh install
  bash scripts/actionlint.sh install >/dev/null
  step "waiting for the Kubernetes test environment"
  wait "$kube_pid" || kube_status=$?
  cat "$kube_log"
  rm -f "$kube_log"
  if (( kube_status != 0 )); then return "$kube_status"; fi
  step "installs done"
}

# Ends a process and everything it started (the installs, when fmt or clippy fails first).
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
log=$(mktemp)
installs_pid=
cleanup() {
  if [[ -n $installs_pid ]] && kill -0 "$installs_pid" 2>/dev/null; then kill_tree "$installs_pid"; fi
  rm -f "$log" "${image_binary:-}"
}
trap cleanup EXIT
step "installs, in the background (their output follows once cargo has built the tests)"
installs >"$log" 2>&1 &
installs_pid=$!

step "cargo fmt --check"
cargo fmt --check
# Lints and the test build in one compilation: clippy-driver as the workspace's compiler
# wrapper lints every target of the project (as `cargo clippy --all-targets -- -D warnings`) while
# it compiles them, so the dependencies are compiled once instead of once in check mode for
# clippy and again for the tests (docs/benchmarks.md). The later steps keep the same wrapper, so
# `cargo test` finds everything built.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver || rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# CI builds once: no incremental state for the project's crates (it costs CPU and disk to write).
if [[ -n ${CI:-} ]]; then export CARGO_INCREMENTAL=0; fi
# The image's binary from the same build: the tests are built as scripts/image.sh builds the
# image's binary (common.sh: IMAGE_TARGET, IMAGE_RUSTFLAGS), so the dependencies are compiled
# once for the tests and the image (a separate image build compiled them all a second time:
# docs/benchmarks.md). Exported: what the tests run (scripts/demo.sh's cargo build) finds the
# same build.
export CARGO_BUILD_TARGET="$IMAGE_TARGET" RUSTFLAGS="$IMAGE_RUSTFLAGS"
step "cargo clippy and cargo test --no-run in one build, static, with the image's binary (the installs finish meanwhile)"
cargo test --no-run --all-targets --quiet 2>&1
# Packed without its debug info (the dev profile's line tables: 66 MB of its 156 MB).
image_binary=$(mktemp)
strip -o "$image_binary" "${CARGO_TARGET_DIR:-target}/$CARGO_BUILD_TARGET/debug/sales-operator"
step "waiting for the installs"
status=0
wait "$installs_pid" || status=$?
cat "$log"
if (( status != 0 )); then
  step "the installs failed (exit $status)"
  exit "$status"
fi
step "actionlint .github/workflows (tests/it/release.rs shows a broken workflow fails it)"
bash scripts/actionlint.sh
echo "==> crds/ is generated from the Rust types (checked by tests/it/cli.rs)"
step "image: the test build's static binary in an OCI archive (checked by tests/it/image.rs)"
bash scripts/image.sh --binary "$image_binary" >/dev/null
# Four tests at a time: most of their time is waiting (for AWS's timing in the AWS-behaviour
# layer, for a control plane, for a controller's next pass), so on 2 cores four take 60 % of the
# time two do (docs/benchmarks.md).
step "cargo test (4 test threads)"
cargo test --no-fail-fast 2>&1 -- --test-threads 4
step "done"
