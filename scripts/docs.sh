#!/usr/bin/env bash
# `make docs`: the collection's HTML documentation, as docs.ansible.com builds it.
#   antsibull-docs renders every module, filter and role entry point (meta/argument_specs.yml)
#   into docs/rst/collections/, Sphinx builds docs/rst (with the guide pages of docs/rst/guide,
#   which include the README's sections and the roles' READMEs) into docs/build/html.
# Nothing is fetched: no intersphinx inventories, no Galaxy. The built site is not committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/bootstrap.sh"
export PATH="$root/.venv/bin:$PATH"
# The repository resolves as nebula.storage through ansible_collections/nebula/storage -> ../..
export ANSIBLE_COLLECTIONS_PATH="$root/ansible_collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
cd docs
rm -rf rst/collections build
mkdir -p rst/collections
chmod og-w rst rst/collections  # antsibull-docs wants its destination writable by its owner only
antsibull-docs --config-file antsibull-docs.cfg collection --fail-on-error --use-current \
  --dest-dir rst nebula.storage
sphinx-build -M html rst build -c . -W --keep-going -q
printf 'docs: %s\n' "$root/docs/build/html/index.html"
