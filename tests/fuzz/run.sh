#!/bin/sh
# run.sh - `make fuzz`: builds one libFuzzer program per target with clang-14
# (-fsanitize=fuzzer,address,undefined) and runs each for FUZZ_SECONDS
# (default 60). Targets: jobspec, safetensors, idx, cifar, msg, image (bodies in
# tests/unit/fuzztargets.c). Each run starts from the seed corpus in
# tests/fuzz/corpus/<target>/ plus the crash regressions (and the keywords
# in tests/fuzz/dict/<target>.dict when there is one), grows a working
# corpus under build/fuzz/corpus/<target>/ (not committed), and writes any
# crashing input to build/fuzz/crashes/<target>/. A crash makes the script
# exit 1: fix the bug, then copy the input into tests/fuzz/regressions/
# <target>/ so that `make test` replays it from then on.
#   FUZZ_SECONDS=N   seconds per target      FUZZ_TARGETS="a b"   a subset
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/build/fuzz"
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"jobspec safetensors idx cifar msg image"}
CC=${FUZZ_CC:-clang-14}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (make deps-extra installs clang-14)"; exit 1; }
mkdir -p "$out/obj"
cflags="-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer -I$root \
  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
  $(pkg-config --cflags jansson zlib libjpeg libpng)"
libs="$(pkg-config --libs jansson zlib libjpeg libpng) -lm"
srcs="$(ls "$root"/common/*.c) $root/worker/data/idx.c $root/worker/data/cifar.c \
  $root/worker/data/dataset.c $root/worker/data/synthetic.c $root/worker/data/imgdata.c \
  $root/worker/data/imgindex.c $root/worker/data/image.c $root/worker/data/imgdecode.c \
  $root/worker/data/resample.c $root/worker/data/colorops.c $root/worker/data/transform.c \
  $root/tests/unit/fuzztargets.c"
objs=""
for s in $srcs; do
    o="$out/obj/$(echo "$s" | sed "s|$root/||; s|/|_|g; s|\.c$|.o|")"
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
        $CC $cflags -c "$s" -o "$o" || { echo "fuzz: cannot compile $s"; exit 1; }
    fi
    objs="$objs $o"
done
status=0
summary=""
for t in $targets; do
    bin="$out/fuzz_$t"
    $CC $cflags -fsanitize=fuzzer -DFUZZ_TARGET="fuzz_$t" "$here/fuzz_main.c" $objs $libs \
        -o "$bin" || { echo "fuzz: cannot link $bin"; exit 1; }
    mkdir -p "$out/corpus/$t" "$out/crashes/$t"
    echo "== fuzz $t for ${secs}s"
    log="$out/$t.log"
    dict=""
    [ -f "$here/dict/$t.dict" ] && dict="-dict=$here/dict/$t.dict"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t/" $dict \
        "$out/corpus/$t" "$here/corpus/$t" "$here/regressions/$t" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} runs; input(s) in $out/crashes/$t/:"
        ls "$out/crashes/$t/"
        grep -m 5 -E "ERROR|runtime error|fuzz contract" "$log"
    else
        echo "fuzz $t: ${execs:-?} runs, coverage ${cov:-?} edges, no crash"
    fi
    summary="$summary
  $t: ${execs:-?} runs, ${cov:-?} edges, exit $rc"
done
echo "fuzz summary ($secs s each):$summary"
exit $status
