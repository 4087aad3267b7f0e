#!/usr/bin/env bash
# Installs what is missing, builds in release mode and runs the demo example
# (the packet pipeline over generated packets). Arguments go to the example.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi

printf '\n==> demo.sh: cargo run --release --example demo\n'
exec cargo run --release --example demo -- "$@"
