#!/bin/sh
# lint.sh - static checks: layering rules, cppcheck, clang-tidy.
set -eu
cd "$(dirname "$0")/.."
status=0
# Layering: common/ never includes MPI, ZeroMQ or libmicrohttpd; each is used
# from as few files as possible.
if grep -lE '#include *[<"](mpi|zmq|microhttpd)\.h' common/*.[ch] 2>/dev/null; then
    echo "lint: common/ must not include mpi.h, zmq.h or microhttpd.h" >&2
    status=1
fi
for pair in "mpi.h:worker/dist.c" "microhttpd.h:server/http.c" \
    "sqlite3.h:server/store(_impl.h|.c|_apply.c|_query.c|_flow.c|_jobs.c|_attempts.c)" "zmq.h:(server/broker.c|worker/link.c)"; do
    hdr=${pair%%:*}
    allowed=${pair#*:}
    bad=$(grep -lE "#include *[<\"]$hdr" $(git ls-files '*.c' '*.h' | grep -v '^tests/') 2>/dev/null |
        grep -vE "^$allowed\$" || true)
    if [ -n "$bad" ]; then
        echo "lint: only $allowed may include $hdr, not: $bad" >&2
        status=1
    fi
done
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
    --suppress=missingIncludeSystem --inline-suppr -I. -D__GNUC__ \
    common worker server || status=1
# clang-tidy (.clang-tidy) on the product sources, two files at a time.
flags="-std=c11 -D_POSIX_C_SOURCE=200809L -I. -fopenmp $(PKG_CONFIG_PATH=/usr/lib/$(gcc -print-multiarch)/openblas-openmp/pkgconfig \
    pkg-config --cflags openblas jansson libmicrohttpd libzmq sqlite3 libcurl uuid zlib libsodium ompi-c check yaml-0.1)"
git ls-files 'common/*.c' 'worker/*.c' 'server/*.c' |
    xargs -P 2 -I{} sh -c "clang-tidy -quiet {} -- $flags 2>/dev/null || echo 'lint: clang-tidy: {}' >&2" \
    2> /tmp/kiln-tidy.$$ || true
if [ -s /tmp/kiln-tidy.$$ ]; then
    cat /tmp/kiln-tidy.$$ >&2
    status=1
fi
rm -f /tmp/kiln-tidy.$$
exit $status
