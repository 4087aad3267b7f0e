#!/usr/bin/env bash
# Builds the Debian package target/debian/xdpvs_VERSION-1_ARCH.deb with
# cargo-deb ([package.metadata.deb] in Cargo.toml): the release binaries in
# /usr/sbin, /etc/xdpvs/xdpvs.toml (config/xdpvs.toml) as a conffile, the
# unit dist/xdpvs.service, the manual pages xdpvs(8), xdpvsadm(8) and
# xdpvs.toml(5), bash and zsh completions, the changelog and the copyright.
# The pages and completions are generated first, from the clap definitions
# and config/xdpvs.toml, by `cargo run --example gen-docs` into
# target/gen-docs. Prints the package's path on its last line.
#
#   scripts/package.sh            build (the release build is incremental)
#   scripts/package.sh --check    build, then list it with dpkg-deb -c and
#                                 run lintian on it (errors fail; nothing is
#                                 installed)
#   --profile NAME                binaries of another cargo profile (tests/
#                                 package.rs uses dev when there is no release
#                                 build, to reuse test.sh's debug build)
#   --output DIR                  where the .deb goes (default target/debian)
#
# Needs cargo-deb and lintian (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=
profile=release
out=target/debian
while (($#)); do
    case "$1" in
    --check) check=1 ;;
    --profile)
        profile=${2:?--profile needs a name}
        shift
        ;;
    --output)
        out=${2:?--output needs a directory}
        shift
        ;;
    *)
        printf 'usage: %s [--check] [--profile NAME] [--output DIR]\n' "$0" >&2
        exit 2
        ;;
    esac
    shift
done

step() { printf 'package: %s\n' "$*" >&2; }
die() {
    printf 'package: ERROR: %s\n' "$*" >&2
    exit 1
}

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "no cargo; run scripts/setup.sh"
cargo deb --version >/dev/null 2>&1 || die "cargo-deb is not installed; run scripts/setup.sh"
if [[ -n $check ]]; then
    command -v lintian >/dev/null 2>&1 || die "lintian is not installed; run scripts/setup.sh"
fi

locked=()
[[ -f Cargo.lock ]] && locked=(--locked)

step "generating manual pages and completions (cargo run --example gen-docs)"
rm -rf target/gen-docs
cargo run -q "${locked[@]}" --example gen-docs -- target/gen-docs >&2 ||
    die "gen-docs failed"

step "building the package (cargo deb, profile $profile)"
# --strip: the release profile keeps debug info (debug = 1) for profiling;
# Debian policy wants installed binaries stripped.
deb=$(cargo deb --strip --profile "$profile" --output "$out" -- "${locked[@]}" | tail -n 1) ||
    die "cargo deb failed"
[[ -f $deb ]] || die "cargo deb did not report a package (got: $deb)"

if [[ -n $check ]]; then
    step "contents (dpkg-deb -c $deb)"
    dpkg-deb -c "$deb" >&2
    step "lintian $deb"
    # Errors fail (lintian's default --fail-on error); warnings are listed.
    lintian --tag-display-limit 0 "$deb" >&2 || die "lintian reports errors for $deb"
fi
printf '%s\n' "$deb"
