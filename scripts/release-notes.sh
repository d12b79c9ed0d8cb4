#!/usr/bin/env bash
# Prints the CHANGELOG.md section of VERSION (its lines below `## [VERSION] - date`, up to the
# next `## [`), the release workflow's release notes. Fails when there is no such section or it
# is empty: a release says what it changes.
#   scripts/release-notes.sh 0.1.0 [CHANGELOG.md]
set -euo pipefail
version="${1:?usage: $0 VERSION [CHANGELOG.md]}"
file="${2:-$(dirname "$0")/../CHANGELOG.md}"
notes=$(awk -v v="$version" '
  index($0, "## [" v "]") == 1 { found = 1; next }
  found && /^## \[/ { exit }
  found && /^\[[^]]+\]: / { next }
  found { print }
' "$file" | sed -e '/./,$!d')
if [[ -z "${notes//[[:space:]]/}" ]]; then
  echo "release-notes: no section '## [$version]' with content in $file" >&2
  exit 1
fi
printf '%s\n' "$notes"
