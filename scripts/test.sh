#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (the moto
# venv, Trino, checkov, parliament, policy_sentry, the Kubernetes test binaries and the status
# judge built from Go modules; all cached under ~/.cache/sales-operator),
# checks formatting, lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> local AWS emulator (moto)"
scripts/moto.sh install
echo "==> Trino (the engine Athena v3 is built on; the query tests run the named queries on it)"
scripts/trino.sh install
echo "==> checkov (tests/it/chart.rs checks the rendered chart with it)"
scripts/checkov.sh install >/dev/null
echo "==> parliament and policy_sentry (tests/it/iam_policy.rs checks the generated IAM policies with them)"
scripts/iam-lint.sh install
echo "==> Kubernetes test environment (etcd, kube-apiserver, controller-manager, scheduler, kwok, kubectl, helm)"
bash scripts/kube-env/build.sh
echo "==> status judge (Flux's kstatus and Argo CD's Lua runtime, for tests/it/status_judged_e2e.rs)"
bash scripts/status-judge.sh
echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> crds/ is generated from the Rust types (checked by tests/it/cli.rs)"
echo "==> cargo test"
cargo test --no-fail-fast 2>&1
