#!/usr/bin/env bash
# `make test`: every check, then one closing line `N passed, N failed`.
#   unit + functional pytest (each test counts), ansible-test sanity,
#   ansible-lint (production profile), and each molecule scenario.
# TEST_ONLY=unit,sanity,lint,molecule,docs,oldest limits the steps; SCENARIOS="a b" the scenarios.
#   docs: make docs and the built pages in headless Chromium; oldest: pytest and ansible-test sanity
#   under the oldest ansible-core meta/runtime.yml claims (.venv-X.Y, Python 3.12).
# TEST_JOBS=N runs up to N steps at once (default 3; 1 runs them one by one).
# The steps share nothing: each scenario has its own containers and network
# (extensions/molecule/shared/vars/lab.yml), pytest and sanity work in temp directories.
# Much of a step's time is spent waiting (systemd, sshd, podman, oned),
# so on two cores three steps at once finish far sooner than one after another.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
# The reference files first: ../shared/fixtures, else .cache/fixtures (fetched when missing); without
# either, one line naming the directory and the command that fetches it, before anything is installed.
NEBULA_FIXTURES=$("$root/scripts/fixtures.sh" ensure) || exit 2
export NEBULA_FIXTURES
"$root/scripts/bootstrap.sh" || exit 2
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
out="$root/.cache/test"
rm -rf "$out"; mkdir -p "$out"
only=",${TEST_ONLY:-unit,sanity,lint,molecule,docs,oldest},"
oldest=$(sed -nE 's/^requires_ansible: *"?>= *([0-9]+\.[0-9]+).*/\1/p' meta/runtime.yml)
oldest_pytest="pytest ansible-core $oldest"
jobs=${TEST_JOBS:-3}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "TEST_JOBS=$jobs is not a positive number" >&2; exit 2; }
t_start=$SECONDS

logname() { printf '%s/%s' "$out" "${1//[^A-Za-z0-9_.-]/_}"; }

# A step runs in the background; it leaves NAME.log and NAME.result ("PASSED FAILED SECONDS").
step() {  # step NAME COMMAND... : one check, pass or fail by exit code
  local name=$1; shift
  local base t0=$SECONDS
  base=$(logname "$name")
  if "$@" >"$base.log" 2>&1; then
    echo "1 0 $((SECONDS - t0))" >"$base.result"
  else
    echo "0 1 $((SECONDS - t0))" >"$base.result"
  fi
}

pytest_step() {  # every test counts: passed and failed from the junit report
  counted_pytest_step pytest pytest
}
oldest_pytest_step() {  # the unit and functional tests again, under the oldest ansible-core we claim
  counted_pytest_step "$oldest_pytest" "$root/scripts/oldest.sh" pytest
}
counted_pytest_step() {  # counted_pytest_step NAME COMMAND...: COMMAND gets -q ... --junitxml=FILE
  local name=$1 base t0=$SECONDS rc p f xml
  shift
  base=$(logname "$name")
  xml="$base.xml"
  "$@" -q -p no:cacheprovider --junitxml="$xml" >"$base.log" 2>&1
  rc=$?
  read -r p f < <(python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(t - f - e - sk, f + e)
except Exception:
    print(0, 1)
PY
)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # collection errors, crashes
  echo "$p $f $((SECONDS - t0))" >"$base.result"
}

docs_step() {  # make docs, then the built pages in headless Chromium (tests/docs)
  "$root/scripts/docs.sh" && pytest -q -p no:cacheprovider tests/docs
}

# The queue, longest steps first, so that the short ones fill the gaps at the end.
declare -a names=() cmds=()
queue() { names+=("$1"); shift; cmds+=("$(printf '%q ' "$@")"); }
queue_scenario() { queue "molecule $1" step "molecule $1" "$root/lab/molecule" test -s "$1"; }
scenario_cost() {  # seconds of each scenario run alone (TEST_JOBS=1, 2026-12-02); unknown ones count as long
  case $1 in
    storpool_addon) echo 470 ;; default) echo 300 ;; nfs_shared) echo 700 ;; gfs2_clvm) echo 400 ;;
    oned_lifecycle) echo 1000 ;;  # real oned (lab/oned): 1007 s alone at a load of 25-40 (other helpers' work)
    onestor_replica) echo 560 ;; awx) echo 175 ;; *) echo 600 ;;  # onestor_replica, nfs_shared: real oned, 2026-12-03
  esac
}
declare -a molecule_steps=()
if [[ $only == *,molecule,* ]]; then
  scenarios=${SCENARIOS:-$(find extensions/molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)}
  mapfile -t molecule_steps < <(for s in $scenarios; do echo "$(scenario_cost "$s") $s"; done | sort -rn | awk '{print $2}')
  # Shared by every scenario, made once before they start: the image and the network namespace.
  printf '==> lab image and network namespace\n'
  if ! { "$root/lab/image.sh" && "$root/lab/oned/image.sh" && "$root/lab/ns" true; } >"$out/lab.log" 2>&1; then
    tail -20 "$out/lab.log"; printf '\n0 passed, 1 failed\n'; exit 1
  fi
fi
n_mol=${#molecule_steps[@]}
# the three longest scenarios first, then pytest, then the rest
for ((i = 0; i < n_mol && i < 3; i++)); do queue_scenario "${molecule_steps[i]}"; done
[[ $only == *,unit,* ]] && queue pytest pytest_step
[[ $only == *,oldest,* ]] && queue "$oldest_pytest" oldest_pytest_step
for ((i = 3; i < n_mol; i++)); do queue_scenario "${molecule_steps[i]}"; done
[[ $only == *,sanity,* ]] && queue "ansible-test sanity" step "ansible-test sanity" "$root/scripts/sanity.sh"
[[ $only == *,lint,* ]] && queue "ansible-lint production" step "ansible-lint production" ansible-lint
[[ $only == *,oldest,* ]] && queue "ansible-test sanity $oldest" step "ansible-test sanity $oldest" "$root/scripts/oldest.sh" sanity
[[ $only == *,docs,* ]] && queue "docs site in chromium" step "docs site in chromium" docs_step
[[ $only == *,lint,* ]] && queue "antsibull-docs lint" step "antsibull-docs lint" \
  env ANSIBLE_COLLECTIONS_PATH="$root/ansible_collections" antsibull-docs lint-collection-docs --plugin-docs .
[[ $only == *,lint,* ]] && queue "antsibull-changelog lint" step "antsibull-changelog lint" antsibull-changelog lint

running=0
for i in "${!names[@]}"; do
  while [ "$running" -ge "$jobs" ]; do wait -n; running=$((running - 1)); done
  printf '==> %s (started at %ds)\n' "${names[i]}" $((SECONDS - t_start))
  eval "${cmds[i]}" &
  running=$((running + 1))
done
wait

[[ $only == *,molecule,* ]] && { "$root/lab/down" >/dev/null 2>&1 || true; }

passed=0 failed=0
printf '\n%s\n' "---- summary ----"
for name in "${names[@]}"; do
  base=$(logname "$name")
  read -r p f s <"$base.result" 2>/dev/null || { p=0; f=1; s=0; }
  passed=$((passed + p)); failed=$((failed + f))
  printf '%-28s %4d passed %4d failed %6ss\n' "$name" "$p" "$f" "$s"
  if [ "$f" -ne 0 ]; then
    printf '%s FAILED; last lines of %s.log:\n' "$name" "$base"; tail -40 "$base.log"
  fi
done
printf 'wall time: %ds with up to %d steps at once\n' $((SECONDS - t_start)) "$jobs"
printf '\n%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
