#!/bin/sh
# Lists every raw request line of the Talview v4 seed as "<line>\t<text>" (text trimmed).
# Regenerates spec/fixtures/talview_seed_requests.txt:
#   tools/seed-requests.sh > spec/fixtures/talview_seed_requests.txt
# The seed defaults to ../shared/seeds/002_3384fbf1d7adbc06.txt relative to the repo root.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
seed=${1:-"$root/../shared/seeds/002_3384fbf1d7adbc06.txt"}
grep -nE '^[[:space:]]*(GET|POST|PUT|PATCH|DELETE)\b' "$seed" |
  sed -E 's/^([0-9]+):[[:space:]]*/\1\t/; s/[[:space:]]+$//'
