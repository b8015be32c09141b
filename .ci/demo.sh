#!/usr/bin/env bash
# make demo: start the sandbox in a fresh temporary run directory on a free port, run
# examples/quickstart.lua against it, and always stop the sandbox. Exits with the
# quickstart's status. `make deps` and the build are the Makefile's prerequisites.
#
# The examples find the sandbox through one variable, ASSESSKIT_SANDBOX_DIR: the sandbox's
# run directory, whose credentials.json holds its base URL and demo credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export LUA_PATH="${LUA_PATH:-$root/lua/?.lua;$root/lua/?/init.lua;;}"
export LUA_CPATH="${LUA_CPATH:-$root/build/lua5.4/?.so;;}"

dir=$(mktemp -d /tmp/assesskit-demo-XXXXXX)
started=0
cleanup() {
  local status=$?
  if [ "$started" = 1 ]; then
    bin/assesskit-sandbox stop --dir "$dir" >/dev/null 2>&1 \
      || echo "demo: the sandbox in $dir did not stop" >&2
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bin/assesskit-sandbox start --port 0 --dir "$dir" >"$dir.start.log" 2>&1; then
  cat "$dir.start.log" >&2
  rm -f "$dir.start.log"
  echo "demo: the sandbox did not start" >&2
  exit 1
fi
started=1
rm -f "$dir.start.log"
echo "demo: sandbox running at $(cat "$dir/base_url") (run directory $dir)"
echo "demo: ASSESSKIT_SANDBOX_DIR=$dir lua5.4 examples/quickstart.lua"
echo

export ASSESSKIT_SANDBOX_DIR="$dir"
set +e
lua5.4 examples/quickstart.lua
status=$?
set -e
echo
if [ "$status" = 0 ]; then echo "demo: ok"; else echo "demo: the quickstart failed (exit $status)" >&2; fi
exit "$status"
