#!/usr/bin/env bash
# `make demo`: bring up the lab (a front-end and two hypervisor hosts as
# containers), run site.yml against it with the demo inventory, and print what
# was configured where. The lab stays up for exploring; `make lab-down` ends it.
# The whole output is kept in .cache/demo.log; a first run must print no
# warning, and the demo fails if Ansible or molecule printed one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log="$root/.cache/demo.log"
mkdir -p "$root/.cache"

demo() {
  "$root/lab/molecule" create -s default
  "$root/lab/molecule" prepare -s default --force
  export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
  # shellcheck source=lab/common.sh
  . "$root/lab/common.sh"
  in_lab ansible-playbook -i inventory/demo/hosts.yml site.yml
  in_lab ansible-playbook -i inventory/demo/hosts.yml playbooks/report.yml
}

rc=0
demo 2>&1 | tee "$log" || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
if grep -n 'WARNING' "$log" >&2; then
  printf '\ndemo: the lines above are warnings (full output: %s)\n' "$log" >&2
  exit 1
fi
printf '\nThe lab is still running: %s\n' "lab/ns podman exec -it fe bash   |   make lab-down"
