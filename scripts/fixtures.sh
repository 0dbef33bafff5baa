#!/usr/bin/env bash
# The reference files the tests read (OpenNebula's oned.conf 3.0 to 7.4 and rc files, the 7.4.0
# sources, the StorPool addon): ../shared/fixtures beside the checkout, else .cache/fixtures, which
# this script fills from the upstream release tags, checked against tests/fixtures.sha256.
#
#   scripts/fixtures.sh dir      print the fixtures directory the tests use, or one line saying what is
#                                missing and how to fetch it (exit 1)
#   scripts/fixtures.sh ensure   as dir, but fetch into .cache/fixtures first when neither exists
#   scripts/fixtures.sh fetch    download into .cache/fixtures (again), checking every file
#   scripts/fixtures.sh check [DIR]  check DIR (default: the one `dir` prints) against the sums
#
# FIXTURES_BASE_URL (default https://) is put in front of the upstream hosts (raw.githubusercontent.com,
# github.com): a mirror at file:///srv/mirror/ or http://127.0.0.1:8000/ serves <base>/github.com/...
# SHARED_FIXTURES and CACHE_FIXTURES move the two directories (tests use them).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_FIXTURES:-$(cd "$root/.." && pwd)/shared/fixtures}
cache=${CACHE_FIXTURES:-$root/.cache/fixtures}
py=$(command -v python3) || { echo "fixtures: python3 is needed" >&2; exit 2; }
helper=("$py" "$root/scripts/fixtures_fetch.py")

complete() {  # a fetched cache is complete when it was made from today's sums
  [ -f "$1/.complete" ] && [ "$(cat "$1/.complete")" = "$(sha256sum <"$root/tests/fixtures.sha256" | cut -d' ' -f1)" ]
}
where() {
  if [ -d "$shared" ]; then echo "$shared"
  elif [ -d "$cache" ] && complete "$cache"; then echo "$cache"
  else return 1
  fi
}
missing() {
  echo "fixtures: neither $shared nor $cache exists${1:+ ($1)}; run scripts/fixtures.sh fetch (downloads them from OpenNebula's GitHub release tags)" >&2
  exit 1
}
fetch() {
  mkdir -p "$(dirname "$cache")"
  "${helper[@]}" fetch "$cache"
}

case ${1:-dir} in
  dir) where || missing ;;
  ensure)
    where && exit 0
    log=$(mktemp); trap 'rm -f "$log"' EXIT
    if fetch >"$log" 2>&1; then echo "$cache"
    else missing "fetching failed: $(grep '^fixtures: error: ' "$log" | tail -1 | sed 's/^fixtures: error: //' | cut -c1-240)"
    fi ;;
  fetch) fetch && echo "$cache" ;;
  check)
    dir=${2:-$(where)} || missing
    "${helper[@]}" check "$dir" && echo "fixtures: $dir matches tests/fixtures.sha256" ;;
  *) echo "usage: scripts/fixtures.sh dir|ensure|fetch|check [DIR]" >&2; exit 2 ;;
esac
