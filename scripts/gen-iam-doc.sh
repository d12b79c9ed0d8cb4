#!/usr/bin/env bash
# Regenerates the policy section of docs/iam.md from the code's list of AWS
# actions (src/aws/operator_policy.rs: OPERATOR_ACTIONS, doc_section()).
# tests/it/iam_policy.rs fails while docs/iam.md differs from what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
SALES_OPERATOR_UPDATE_DOCS=1 cargo test --quiet --test it iam_policy::docs_iam_md_holds_the_current_policy
echo "docs/iam.md updated"
