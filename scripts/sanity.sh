#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection laid out as
# ansible_collections/nebula/storage (ansible-test needs that path for real,
# and resolves our development symlink to the repository root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# A private copy per run, so that concurrent runs never share a tree.
work=$(mktemp -d /tmp/nebula-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
build="$work/ansible_collections/nebula/storage"
mkdir -p "$build"
cd "$root"
# Tracked files plus new, not-ignored ones: what the next commit would hold.
git ls-files -co --exclude-standard -z \
  | grep -zv '^ansible_collections/' \
  | rsync -a --from0 --files-from=- ./ "$build/"
cd "$build"
git init -q . && git add -A >/dev/null   # ansible-test reads the file list from git
# ansible-test's own --venv mode downloads a pip bootstrap script from a host
# CI cannot reach, so the sanity requirements (pinned by ansible-test itself)
# go into a venv of their own, next to the main one.
# SANITY_VENV, SANITY_PYTHON and SANITY_CONSTRAINTS select another ansible-core (scripts/oldest.sh).
sv="${SANITY_VENV:-$root/.venv-sanity}"
if [ ! -x "$sv/bin/ansible-test" ]; then
  "${SANITY_PYTHON:-$root/.venv/bin/python}" -m venv "$sv"
  "$sv/bin/pip" install -q --disable-pip-version-check -c "${SANITY_CONSTRAINTS:-$root/requirements/constraints.txt}" ansible-core \
    >/tmp/nebula-sanity-pip.log 2>&1 || { tail -5 /tmp/nebula-sanity-pip.log >&2; exit 1; }
fi
# ansible-test bootstraps pip in its per-test venvs from a cached script.
pipver=$(grep -oP "^\s+pip='\K[0-9.]+" "$("$sv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
mkdir -p ~/.ansible/test/cache
cp "$root/scripts/get_pip_offline.py" ~/.ansible/test/cache/"get_pip_${pipver//./_}.py"
pyver=$("$sv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$sv/bin/ansible-test" sanity --local --requirements --python "$pyver" --color no "$@"
