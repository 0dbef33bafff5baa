#!/usr/bin/env bash
# The oldest ansible-core meta/runtime.yml claims (requires_ansible ">=X.Y"), tested as the newest is:
#   scripts/oldest.sh pytest [PYTEST ARGS]   unit + functional pytest with .venv-X.Y (Python 3.12)
#   scripts/oldest.sh sanity                 ansible-test sanity of ansible-core X.Y
# .venv-X.Y comes from scripts/bootstrap.sh (requirements/ansible-X.Y.in, constraints-X.Y.txt).
# pytest runs in a private copy of the tree whose .venv is .venv-X.Y, because the functional tests
# run the .venv's ansible-playbook; the fixtures are the ones `make test` found ($NEBULA_FIXTURES).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
oldest=$(sed -nE 's/^requires_ansible: *"?>= *([0-9]+\.[0-9]+).*/\1/p' meta/runtime.yml)
ovenv="$root/.venv-$oldest"
[ -x "$ovenv/bin/python" ] || { echo "oldest: $ovenv is missing; run scripts/bootstrap.sh" >&2; exit 2; }
NEBULA_FIXTURES=${NEBULA_FIXTURES:-$("$root/scripts/fixtures.sh" dir)} || exit 2
export NEBULA_FIXTURES
echo "ansible-core $("$ovenv/bin/python" -c 'import ansible; print(ansible.__version__)') on $("$ovenv/bin/python" -V 2>&1)"
case ${1:-} in
  pytest)
    shift
    work=$(mktemp -d /tmp/nebula-oldest.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    git ls-files -co --exclude-standard -z | grep -zvE '^(ansible_collections/|\.venv)' \
      | rsync -a --from0 --files-from=- ./ "$work/"
    mkdir -p "$work/ansible_collections/nebula"
    ln -sfn ../.. "$work/ansible_collections/nebula/storage"
    ln -sfn "$ovenv" "$work/.venv"
    cd "$work"
    "$work/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
    ;;
  sanity)
    # its own venv: ansible-test installs the sanity tests' requirements into the venv it runs from
    SANITY_VENV="$root/.venv-sanity-$oldest" SANITY_PYTHON="$ovenv/bin/python" \
      SANITY_CONSTRAINTS="$root/requirements/constraints-$oldest.txt" exec "$root/scripts/sanity.sh"
    ;;
  *) echo "usage: scripts/oldest.sh pytest|sanity" >&2; exit 2 ;;
esac
