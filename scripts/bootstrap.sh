#!/usr/bin/env bash
# Install what `make test` and `make demo` need, and nothing twice:
#   - Debian packages from requirements/host-packages.txt (only when root);
#   - the Python venv in .venv, pinned by requirements/constraints.txt.
# Fails with one line naming what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# ---- Debian packages -------------------------------------------------------
mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' requirements/host-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/nebula-bootstrap-apt.log 2>&1 \
      || { tail -15 /tmp/nebula-bootstrap-apt.log >&2; die "apt-get install of ${missing[*]} failed"; }
    # Debian starts these on install; the tests run their own private instances.
    for svc in nfs-kernel-server ssh polkit; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
  else
    die "missing Debian packages: ${missing[*]} (run as root, or install them)"
  fi
fi

# ---- Python >= 3.12 --------------------------------------------------------
ok_python() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
find_python() {
  local c
  if [ -n "${PYTHON:-}" ]; then
    ok_python "$PYTHON" && { echo "$PYTHON"; return; }
    die "PYTHON=$PYTHON is not a Python >= 3.12"
  fi
  for c in python3.13 python3.12 python3; do
    c=$(command -v "$c" 2>/dev/null) || continue
    ok_python "$c" && { echo "$c"; return; }
  done
  if command -v pyenv >/dev/null 2>&1; then
    for c in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.|$)' | sort -rV); do
      c="$(pyenv root)/versions/$c/bin/python3"
      ok_python "$c" && { echo "$c"; return; }
    done
  fi
  die "no Python >= 3.12 found; set PYTHON="
}

venv=.venv
stamp=$(cat requirements/dev.in requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
py=$(find_python)
say "creating $venv with $py ($("$py" -V 2>&1))"
rm -rf "$venv"
"$py" -m venv "$venv" || die "$py cannot create a venv (install python3-venv)"
"$venv/bin/pip" install -q --disable-pip-version-check -c requirements/constraints.txt -r requirements/dev.in \
  >/tmp/nebula-bootstrap-pip.log 2>&1 || { grep -v '^WARNING: Location' /tmp/nebula-bootstrap-pip.log | tail -15 >&2; die "pip install into $venv failed"; }
echo "$stamp" >"$venv/.stamp"
say "venv ready"
