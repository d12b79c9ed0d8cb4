# Shell helpers the install/start scripts share (sourced, not run).

# The image's binary (scripts/image.sh, and the test build scripts/test.sh packs): glibc linked
# statically, for this target triple. With a target, cargo gives RUSTFLAGS to the target's units
# only: build scripts and proc macros stay dynamic.
IMAGE_TARGET=x86_64-unknown-linux-gnu
IMAGE_RUSTFLAGS="-C target-feature=+crt-static"

# go_toolchain WHO: the machine's Go on PATH, go1.26 (fetched through the module proxy) when it is
# older; fails naming WHO when there is no Go.
go_toolchain() {
  local gominor
  export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { echo "$1: go is not installed" >&2; return 1; }
  gominor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  if (( gominor < 26 )); then export GOTOOLCHAIN=go1.26.8; fi
}

# go_program NAME SRC [GO BUILD FLAGS...]: builds the Go program in SRC (versions pinned by its
# go.mod/go.sum) with the machine's Go toolchain (go1.26 fetched through the module proxy when
# older) into ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/NAME-<hash of its source>/NAME,
# once (concurrent callers wait for one build); prints the binary's path.
go_program() {
  local name="$1" src="$2" key dir bin
  shift 2
  go_toolchain "$name"
  key=$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
  dir="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/$name-$key"
  bin="$dir/$name"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$dir"
    (
      flock 9
      if [[ ! -x "$bin" ]]; then
        echo "$name: building into $dir" >&2
        (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false "$@" -o "$bin.tmp" .)
        mv -f "$bin.tmp" "$bin"
      fi
    ) 9>"$dir/.build.lock"
  fi
  echo "$bin"
}

# pip_venv VENV SPEC...: a Python venv at VENV with the pinned SPECs installed, once
# (VENV/.installed marks a complete install; a partial one is redone).
pip_venv() {
  local venv="$1"
  shift
  if [ -f "$venv/.installed" ]; then return 0; fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
  # --no-compile: Python compiles (and caches) what is imported, not every installed module
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-compile "$@" >&2
  touch "$venv/.installed"
}

# stop_pidfile FILE: stops the process whose pid FILE holds, if any, and removes FILE.
stop_pidfile() {
  if [ -f "$1" ]; then
    kill "$(cat "$1")" 2>/dev/null || true
    rm -f "$1"
  fi
}

# apt_install PACKAGE...: installs the Debian packages that are missing (as root; apt-get update
# only when the package lists do not know one of them yet).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p"); done
  (( ${#missing[@]} )) || return 0
  if (( EUID != 0 )); then echo "missing Debian packages: ${missing[*]} (apt-get install them as root)" >&2; return 1; fi
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# free_tcp_port: a loopback port free now.
free_tcp_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_start: what the operator benchmarks run against: a kube-apiserver (scripts/kube-env, its
# kubectl first on PATH, KUBECONFIG exported) with the project's CRDs, and moto behind the
# AWS-behaviour layer at $endpoint; all under $work, stopped with the operator whose pid is in
# $op_pid when the script exits (its log, $work/operator.log, copied to $OPERATOR_LOG if set).
bench_start() {
  work=$(mktemp -d)
  local kube_bin
  kube_bin=$(bash scripts/kube-env/build.sh 2>/dev/null | tail -1)
  kube_dir=$(bash scripts/kube-env/start.sh --watch-pid $$ "$work/kube")
  export KUBECONFIG=$kube_dir/kubeconfig PATH=$kube_bin:$PATH
  moto_port=$(free_tcp_port)
  # shellcheck disable=SC2034 # for the caller
  endpoint=$(SALES_OPERATOR_STATE=$work scripts/moto.sh start "$moto_port")
  op_pid=""
  trap bench_stop EXIT
  kubectl apply --server-side -f crds/ >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
}

bench_stop() {
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null || true
  [[ -n "${OPERATOR_LOG:-}" ]] && cp "$work/operator.log" "$OPERATOR_LOG" || true
  SALES_OPERATOR_STATE=$work scripts/moto.sh stop "$moto_port" || true
  bash scripts/kube-env/stop.sh "$kube_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
