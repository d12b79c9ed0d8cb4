#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (the moto
# venv, Trino, checkov, parliament, policy_sentry, the Kubernetes test binaries, the status
# judge and actionlint built from Go modules, all cached under ~/.cache/sales-operator; umoci
# and shellcheck from Debian), checks formatting, lints the code and the workflows, builds the
# image (an OCI archive, no container runtime) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> local AWS emulator (moto)"
scripts/moto.sh install
echo "==> Trino (the engine Athena v3 is built on; the query tests run the named queries on it)"
scripts/trino.sh install
echo "==> checkov (tests/chart.rs checks the rendered chart with it)"
scripts/checkov.sh install >/dev/null
echo "==> parliament and policy_sentry (tests/iam_policy.rs checks the generated IAM policies with them)"
scripts/iam-lint.sh install
echo "==> Kubernetes test environment (etcd, kube-apiserver, controller-manager, scheduler, kwok, kubectl, helm)"
bash scripts/kube-env/build.sh
echo "==> status judge (Flux's kstatus and Argo CD's Lua runtime, for tests/status_judged_e2e.rs)"
bash scripts/status-judge.sh
echo "==> umoci (scripts/image.sh), shellcheck and actionlint (the workflows' linter)"
bash scripts/image.sh install
bash scripts/actionlint.sh install >/dev/null
echo "==> actionlint .github/workflows (tests/release.rs shows a broken workflow fails it)"
bash scripts/actionlint.sh
echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> crds/ is generated from the Rust types (checked by tests/cli.rs)"
echo "==> image: static binary (profile image) in an OCI archive (checked by tests/image.rs)"
bash scripts/image.sh --profile image >/dev/null
echo "==> cargo test"
cargo test --no-fail-fast 2>&1
