#!/usr/bin/env bash
# Builds the sales-operator image (linux/amd64) as an OCI archive, with no container runtime:
# umoci (Debian) writes the OCI layout, tar the archive. The image holds a statically linked
# binary (glibc, -C target-feature=+crt-static), Debian's CA bundle, passwd/group with
# nonroot (65532) and nsswitch.conf (image/rootfs/), an empty /tmp and /home/nonroot: no
# shell, no libc. The Dockerfile builds the same image with buildx (the release workflow).
#
#   scripts/image.sh install                  install umoci and ca-certificates (Debian) if missing
#   scripts/image.sh [--profile release|image] [--binary FILE] [--output FILE]
#
# --profile   cargo profile of the binary: `release` (default; what releases ship) or `image`
#             (the dev profile without debug info, much faster to build; Cargo.toml)
# --binary    package this static binary instead of building one (CI packs its test build's)
# --output    the archive (default: <cargo target dir>/image/sales-operator-linux-amd64.oci.tar)
#
# Labels: org.opencontainers.image.{source,version,revision,licenses,created,title}. The source
# is $IMAGE_SOURCE (default the upstream repository); the revision `git rev-parse HEAD` (or
# $SALES_OPERATOR_REVISION); created is $SOURCE_DATE_EPOCH when set, else the commit's time.
# Prints the archive's path. Push it with `skopeo copy oci-archive:FILE docker://REPO:TAG`.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_SOURCE="${IMAGE_SOURCE:-https://github.com/sales-operator/sales-operator}"
log() { echo "image: $*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=common.sh
. scripts/common.sh
install_tools() { apt_install umoci ca-certificates; }

if [[ "${1:-}" == install ]]; then install_tools; exit 0; fi

profile=release binary="" output=""
while (( $# )); do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
output="${output:-$target_dir/image/sales-operator-linux-amd64.oci.tar}"

# The static binary of `profile`, built (cargo builds nothing when it is up to date).
static_binary() {
  log "building the static binary (cargo --profile $profile --target $IMAGE_TARGET, $IMAGE_RUSTFLAGS)"
  RUSTFLAGS="$IMAGE_RUSTFLAGS" cargo build --locked --quiet --profile "$profile" --target "$IMAGE_TARGET" --bin sales-operator \
    || return 1
  local dir=$profile; [[ $profile == dev ]] && dir=debug
  echo "$target_dir/$IMAGE_TARGET/$dir/sales-operator"
}
install_tools
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "/etc/ssl/certs/ca-certificates.crt missing: apt-get install ca-certificates"

start=$(date +%s)
if [[ -z "$binary" ]]; then binary=$(static_binary); fi
built=$(date +%s)
[[ -x "$binary" ]] || die "no binary at $binary"
if readelf -l "$binary" | grep -q 'INTERP'; then die "$binary is dynamically linked (it has a program interpreter)"; fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
license=$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
revision="${SALES_OPERATOR_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The layer: root-owned files, then nonroot's home; fixed order, times and owners (reproducible).
root="$work/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
install -m 0755 "$binary" "$root/sales-operator"
install -m 0644 image/rootfs/etc/passwd image/rootfs/etc/group image/rootfs/etc/nsswitch.conf "$root/etc/"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"
chmod 0700 "$root/home/nonroot"
chmod 0755 "$root" "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs" "$root/home"
tar_flags=(--format=pax "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"
  --sort=name --mtime="@$epoch" --numeric-owner -C "$root")
tar "${tar_flags[@]}" --owner=0 --group=0 -cf "$work/layer.tar" --exclude=./home/nonroot ./
tar "${tar_flags[@]}" --owner=65532 --group=65532 -rf "$work/layer.tar" --no-recursion ./home/nonroot

oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:$version"
umoci raw add-layer --image "$oci:$version" --history.created "$created" \
  --history.created_by "scripts/image.sh" "$work/layer.tar"
umoci config --image "$oci:$version" --no-history --created "$created" --os linux --architecture amd64 \
  --config.user 65532:65532 --config.entrypoint /sales-operator --config.cmd run \
  --config.workingdir / --config.exposedports 8080/tcp \
  --config.label "org.opencontainers.image.title=sales-operator" \
  --config.label "org.opencontainers.image.source=$IMAGE_SOURCE" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.licenses=$license" \
  --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$oci"

mkdir -p "$(dirname "$output")"
tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -C "$oci" -cf "$output.tmp" .
mv -f "$output.tmp" "$output"
log "$output: $(du -h "$output" | cut -f1), binary ${binary#"$PWD"/} ($(( built - start )) s to build, $(( $(date +%s) - built )) s to pack)"
echo "$output"
