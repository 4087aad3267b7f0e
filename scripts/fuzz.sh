#!/usr/bin/env bash
# Coverage-guided fuzzing of xdpvs (cargo-fuzz, libFuzzer)
# on the stable toolchain: cargo-fuzz needs nightly -Z flags, which
# RUSTC_BOOTSTRAP=1 unlocks. The targets and their harnesses are in fuzz/
# (fuzz/src/*.rs say what each checks); each has a committed seed corpus,
# fuzz/corpus/TARGET/, which is only read: what a run adds goes to
# fuzz/target/corpus/TARGET/ (kept between runs), crashes to
# fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60)
#   scripts/fuzz.sh --runs N [TARGET...]    each target until N executions
#   scripts/fuzz.sh --smoke                 CI: replay each corpus, then 2000
#                                           fixed-seed executions per target
#   scripts/fuzz.sh --seeds                 rebuild fuzz/corpus/ (below)
#
# One process per target, one target at a time (libFuzzer's -jobs=1 is the
# same search, with its output in a log file), under `nice -n 19`
# (FUZZ_NICE=0: at normal priority, e.g. as the CPU-bound job beside a
# test run; a niced fuzzer beside a busy build gets almost nothing). Per
# target it prints executions, executions/s, coverage (cov: edges, ft:
# features, from libFuzzer's last status line), corpus size and wall time.
#
# --seeds: the hand-written seeds (fuzz/src/tests.rs, `write_seeds`: control
# requests, the ipvsadm rules of tests/data, config/*.toml, fixed noise for
# the structured targets), grown by a fixed-seed run of 5000 executions and
# minimised with -merge=1: the same corpus on every machine.
#
# Reproduce a crash: fuzz/target/x86_64-unknown-linux-gnu/release/TARGET
# fuzz/artifacts/TARGET/crash-...; keep it as a regression test (fuzz/src/
# tests.rs replays fuzz/corpus/, so copying the input there is enough when
# the fix is in) and in the corpus.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_TARGETS=(pipeline icmp ftp ctrl adm config)
TRIPLE=x86_64-unknown-linux-gnu
BIN_DIR=fuzz/target/$TRIPLE/release
MAX_LEN=4096
NICE=${FUZZ_NICE:-19}

die() {
    printf 'fuzz.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

mode=time
seconds=60
runs=
case ${1:-} in
--smoke) mode=smoke; shift ;;
--seeds) mode=seeds; shift ;;
--runs)
    mode=runs
    runs=${2:?--runs N}
    shift 2
    ;;
[0-9]*)
    seconds=$1
    shift
    ;;
esac
targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi
cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz missing: run scripts/setup.sh"

# The smoke (CI) builds without optimisation: 2000 executions per target
# need no speed, and the unoptimised build is about half the release
# build's time (measured on the same busy 2-core box: 152 s against
# 341 s); its six smoke runs took 55 s in all on a fresh clone.
profile=(--release)
if [[ $mode == smoke ]]; then
    profile=(--dev)
    BIN_DIR=fuzz/target/$TRIPLE/debug
fi
build_start=$SECONDS
# -a: debug assertions (and overflow checks) on, as in the test suite. No
# sanitizer (-s none): what is fuzzed is safe Rust (#![deny(unsafe_code)]
# outside xsk/, not reached here, and mem.rs's madvise call), so
# AddressSanitizer finds nothing a bounds check does not, and it cost 2-4x
# the executions (measured, 15 s each on the busy 2-core box: pipeline 1115
# against 2542/s, config 2062 against 8055/s).
RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz build "${profile[@]}" -a -s none --fuzz-dir fuzz 2>&1 |
    grep -vE '^\s+(Compiling|Checking|Fresh)' || true
for t in "${targets[@]}"; do
    [[ -x $BIN_DIR/$t ]] || die "fuzz target $t did not build"
done
printf 'fuzz.sh: build %ss\n' "$((SECONDS - build_start))"

# Runs target $1 with libFuzzer options "${@:2}" on the work corpus, seeded
# from the committed one; prints the summary line.
fuzz_one() {
    local t=$1
    shift
    local work=fuzz/target/corpus/$t log
    mkdir -p "$work" "fuzz/artifacts/$t"
    log=$(mktemp -t "xdpvs-fuzz-$t.XXXXXX")
    local start=$SECONDS
    if ! nice -n "$NICE" "$BIN_DIR/$t" -print_final_stats=1 -max_len=$MAX_LEN -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" "$@" "$work" "fuzz/corpus/$t" \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        die "$t: libFuzzer found a failure (above; input under fuzz/artifacts/$t/)"
    fi
    local wall=$((SECONDS - start))
    local status execs rate
    status=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log")
    rate=$(awk '/stat::average_exec_per_sec:/ { print $2 }' "$log")
    rm -f "$log"
    local cov ft corp
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$status")
    printf 'fuzz.sh: %-9s execs %s  exec/s %s  cov %s  ft %s  corpus %s  wall %ss\n' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$wall"
}

case $mode in
time)
    for t in "${targets[@]}"; do fuzz_one "$t" -max_total_time="$seconds"; done
    ;;
runs)
    for t in "${targets[@]}"; do fuzz_one "$t" -runs="$runs"; done
    ;;
smoke)
    # Deterministic: the corpus, then a fixed number of fixed-seed mutations
    # in a scratch corpus (a failure here reproduces on every machine).
    for t in "${targets[@]}"; do
        rm -rf "fuzz/target/corpus/$t.smoke"
        mkdir -p "fuzz/target/corpus/$t.smoke" "fuzz/artifacts/$t"
        start=$SECONDS
        nice -n 19 "$BIN_DIR/$t" -seed=1 -runs=2000 -max_len=$MAX_LEN -timeout=10 \
            -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" \
            "fuzz/target/corpus/$t.smoke" "fuzz/corpus/$t" >"fuzz/target/$t.smoke.log" 2>&1 || {
            tail -n 60 "fuzz/target/$t.smoke.log" >&2
            die "$t: smoke run failed (input under fuzz/artifacts/$t/)"
        }
        printf 'fuzz.sh: smoke %-9s %s files + 2000 runs ok (%ss)\n' "$t" \
            "$(find "fuzz/corpus/$t" -type f | wc -l)" "$((SECONDS - start))"
        rm -rf "fuzz/target/corpus/$t.smoke"
    done
    ;;
seeds)
    hand=$(mktemp -d -t xdpvs-seeds.XXXXXX)
    trap 'rm -rf "$hand"' EXIT
    XDPVS_FUZZ_SEEDS=$hand nice -n 19 cargo test --quiet --manifest-path fuzz/Cargo.toml --lib \
        write_seeds -- --ignored >/dev/null
    for t in "${targets[@]}"; do
        grown=$hand/$t.grown
        mkdir -p "$grown"
        nice -n 19 "$BIN_DIR/$t" -seed=1 -runs=5000 -max_len=$MAX_LEN -timeout=10 \
            "$grown" "$hand/$t" >/dev/null 2>&1 || die "$t: a seed or its mutation fails"
        rm -rf "fuzz/corpus/$t"
        mkdir -p "fuzz/corpus/$t"
        nice -n 19 "$BIN_DIR/$t" -merge=1 -max_len=$MAX_LEN "fuzz/corpus/$t" "$hand/$t" "$grown" \
            >/dev/null 2>&1 || die "$t: merge failed"
        printf 'fuzz.sh: seeds %-9s %s files\n' "$t" "$(find "fuzz/corpus/$t" -type f | wc -l)"
    done
    ;;
esac
