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

# ---- the oldest ansible-core meta/runtime.yml claims: .venv-X.Y on Python 3.12 -----------------
# (make test's "oldest" steps run pytest and ansible-test sanity with it; NO_OLDEST=1 skips it)
oldest=$(sed -nE 's/^requires_ansible: *"?>= *([0-9]+\.[0-9]+).*/\1/p' meta/runtime.yml)
if [ -z "${NO_OLDEST:-}" ] && [ -n "$oldest" ]; then
  [ -f "requirements/ansible-$oldest.in" ] || die "meta/runtime.yml claims ansible-core >= $oldest but requirements/ansible-$oldest.in does not exist"
  ovenv=".venv-$oldest"
  ostamp=$(cat "requirements/ansible-$oldest.in" "requirements/constraints-$oldest.txt" | sha256sum | cut -c1-16)
  if ! [ -x "$ovenv/bin/python" ] || [ "$(cat "$ovenv/.stamp" 2>/dev/null)" != "$ostamp" ]; then
    py312=""
    for c in python3.12 $(command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -rV | sed "s#^#$(pyenv root 2>/dev/null)/versions/#; s#\$#/bin/python3#"); do
      c=$(command -v "$c" 2>/dev/null) || continue
      "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' 2>/dev/null && { py312=$c; break; }
    done
    [ -n "$py312" ] || die "no Python 3.12 found for $ovenv (ansible-core $oldest); install it (pyenv install 3.12) or set NO_OLDEST=1"
    say "creating $ovenv with $py312 (ansible-core $oldest)"
    rm -rf "$ovenv"
    "$py312" -m venv "$ovenv" || die "$py312 cannot create a venv"
    "$ovenv/bin/pip" install -q --disable-pip-version-check -c "requirements/constraints-$oldest.txt" -r "requirements/ansible-$oldest.in" \
      >/tmp/nebula-bootstrap-pip-oldest.log 2>&1 || { grep -v '^WARNING: Location' /tmp/nebula-bootstrap-pip-oldest.log | tail -15 >&2; die "pip install into $ovenv failed"; }
    echo "$ostamp" >"$ovenv/.stamp"
  fi
fi

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
