#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, property and
# integration tests (the namespace test bed included; they need root), then
# the doc tests. Stops at the first failure. Afterwards no network namespace
# named xdpvs* may be left behind (TESTBED.md); that is checked on every exit.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NETNS_PREFIX=xdpvs
start=$SECONDS
log=$(mktemp -t xdpvs-test.XXXXXX)

step() { printf '\n==> test.sh: %s\n' "$*"; }
fail() {
    printf '\ntest.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

leftover_netns() {
    command -v ip >/dev/null 2>&1 || return 0
    ip netns list 2>/dev/null | awk -v p="$NETNS_PREFIX" 'index($1, p) == 1 { print $1 }'
}

netns_checked=
check_netns() {
    local leaked
    netns_checked=1
    leaked=$(leftover_netns | tr '\n' ' ')
    [[ -z $leaked ]] && return 0
    printf '\ntest.sh: FAILED: network namespaces left behind: %s\n' "$leaked" >&2
    printf 'test.sh: a test did not clean up; remove them with: ip netns del NAME\n' >&2
    return 1
}

# Runs on every exit path, so a failing or interrupted run still reports
# namespaces that its tests leaked.
on_exit() {
    local status=$?
    rm -f "$log"
    if [[ -z $netns_checked ]]; then
        check_netns || status=1
    fi
    exit "$status"
}
trap on_exit EXIT

# Runs a cargo command, keeping its output for the summary.
cargo_step() {
    local what=$1
    shift
    step "$what: cargo $*"
    cargo "$@" 2>&1 | tee -a "$log" || fail "$what (cargo $*)"
}

step "setup"
scripts/setup.sh || fail "scripts/setup.sh"

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi

((EUID == 0)) || printf 'test.sh: WARNING: not root; the namespace tests need root and will fail\n' >&2

locked=()
[[ -f Cargo.lock ]] && locked=(--locked)

cargo_step "build" build --all-targets "${locked[@]}"
cargo_step "unit, property and integration tests" test --all-targets "${locked[@]}"
cargo_step "doc tests" test --doc "${locked[@]}"
cargo_step "formatting" fmt --all -- --check
cargo_step "lints" clippy --all-targets "${locked[@]}" -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo_step "API docs" doc --no-deps "${locked[@]}"
# The fuzz targets (fuzz/, a crate of its own): their corpora replayed
# through the harnesses as a plain test, their lints, then each target
# built with libFuzzer and the sanitizer and run briefly (scripts/fuzz.sh
# --smoke: the corpus plus 2000 fixed-seed executions each).
cargo_step "fuzz corpora" test --manifest-path fuzz/Cargo.toml --lib "${locked[@]}"
cargo_step "fuzz lints" clippy --manifest-path fuzz/Cargo.toml --all-targets "${locked[@]}" -- -D warnings
cargo_step "fuzz formatting" fmt --manifest-path fuzz/Cargo.toml -- --check
step "fuzz smoke: scripts/fuzz.sh --smoke"
scripts/fuzz.sh --smoke 2>&1 | tee -a "$log" || fail "fuzz smoke (scripts/fuzz.sh --smoke)"

# A namespace left behind fails the run even when every test passed.
check_netns || exit 1

# "test result: ok. 32 passed; 0 failed; 1 ignored; 0 measured; ..."
read -r passed ignored < <(awk '/^test result: ok\./ { p += $4; i += $8 } END { print p + 0, i + 0 }' "$log")
printf '\ntest.sh: OK: %s tests passed, %s ignored (build, tests, doc tests, fmt, clippy, docs); no %s* namespaces left; %ss\n' \
    "$passed" "$ignored" "$NETNS_PREFIX" "$((SECONDS - start))"
