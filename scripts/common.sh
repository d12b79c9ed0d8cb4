# Shell helpers the install/start scripts share (sourced, not run).

# pip_venv VENV SPEC...: a Python venv at VENV with the pinned SPECs installed, once
# (VENV/.installed marks a complete install; a partial one is redone).
pip_venv() {
  local venv="$1"
  shift
  if [ -f "$venv/.installed" ]; then return 0; fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
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
