#!/bin/sh
# run.sh BINDIR [NAME...] - runs every tests/integration/test_*.sh (or only the
# named ones, e.g. test_server) with the built programs.
# Exits non-zero if any fails; prints one summary line.
set -u
bindir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
pass=0
fail=0
failed=""
for t in "$here"/test_*.sh; do
    [ -e "$t" ] || continue
    name=$(basename "$t" .sh)
    if [ $# -gt 1 ]; then
        case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    echo "== $name"
    if KILN_BIN="$bindir" timeout 600 sh "$t"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed="$failed $name"
    fi
done
echo "integration: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
