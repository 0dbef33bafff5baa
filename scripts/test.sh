#!/usr/bin/env bash
# `make test`: every check, then one closing line `N passed, N failed`.
#   unit + functional pytest (each test counts), ansible-test sanity,
#   ansible-lint (production profile), and each molecule scenario.
# TEST_ONLY=unit,sanity,lint,molecule limits the steps; SCENARIOS="a b" the scenarios.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
"$root/scripts/bootstrap.sh" || exit 2
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
out="$root/.cache/test"
rm -rf "$out"; mkdir -p "$out"
only=",${TEST_ONLY:-unit,sanity,lint,molecule},"
passed=0 failed=0
declare -a summary

record() {  # record NAME PASSED FAILED SECONDS
  passed=$((passed + $2)); failed=$((failed + $3))
  summary+=("$(printf '%-28s %4d passed %4d failed %6ss' "$1" "$2" "$3" "$4")")
}

step() {  # step NAME COMMAND... : one check, pass or fail by exit code
  local name=$1; shift
  local t0=$SECONDS log="$out/${name//[^A-Za-z0-9_.-]/_}.log"
  printf '==> %s\n' "$name"
  if "$@" >"$log" 2>&1; then
    record "$name" 1 0 $((SECONDS - t0))
  else
    record "$name" 0 1 $((SECONDS - t0))
    printf '%s FAILED; last lines of %s:\n' "$name" "$log"; tail -40 "$log"
  fi
}

if [[ $only == *,unit,* ]]; then
  printf '==> pytest (unit and functional)\n'
  t0=$SECONDS
  pytest -q -p no:cacheprovider --junitxml="$out/pytest.xml" >"$out/pytest.log" 2>&1
  rc=$?
  tail -15 "$out/pytest.log"
  read -r p f < <(python3 - "$out/pytest.xml" <<'PY'
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
  record pytest "$p" "$f" $((SECONDS - t0))
fi
[[ $only == *,sanity,* ]] && step "ansible-test sanity" "$root/scripts/sanity.sh"
[[ $only == *,lint,* ]] && step "ansible-lint production" ansible-lint
if [[ $only == *,molecule,* ]]; then
  scenarios=${SCENARIOS:-$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)}
  for s in $scenarios; do
    step "molecule $s" "$root/lab/molecule" test -s "$s"
  done
  "$root/lab/down" >/dev/null 2>&1 || true
fi

printf '\n%s\n' "---- summary ----"
printf '%s\n' "${summary[@]}"
printf '\n%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
