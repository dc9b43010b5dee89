#!/usr/bin/env bash
# Runs the Rust unit tests under valgrind's memcheck and fails on any definite
# or indirect leak or memory error. The property tests run with fewer cases
# (PROPTEST_CASES, default 32 here) to keep this to a minute or so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
bin="$(cargo test --lib --no-run --message-format=json 2>/dev/null \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){try{const m=JSON.parse(l);if(m.profile&&m.profile.test&&m.executable)console.log(m.executable)}catch{}}})' \
  | head -n 1)"
[ -n "$bin" ] || { echo "could not find the unit-test binary" >&2; exit 1; }
PROPTEST_CASES="${PROPTEST_CASES:-32}" valgrind --quiet --leak-check=full \
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=3 "$bin" --test-threads=1
echo "valgrind: no leaks and no memory errors in the Rust unit tests"
