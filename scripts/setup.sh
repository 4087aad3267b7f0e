#!/usr/bin/env bash
# Installs what xdpvs needs on a Debian 12 machine, as root. Idempotent: when
# everything is present it only checks (a second or so) and changes nothing.
#
#   build        build-essential pkg-config clang llvm m4 libelf-dev zlib1g-dev
#                libpcap-dev libbpf-dev linux-libc-dev
#                (xsk-rs builds libxdp/libbpf from source; the XDP program is
#                compiled with clang -target bpf against libbpf-dev headers)
#   test bed     iproute2 iputils-ping nftables ethtool tcpdump (namespaces, veth,
#                bridges)
#                apache2 vsftpd curl lftp socat      (real servers and clients; socat
#                for the kernel-selftest-shaped beds of tests/offloads.rs)
#                prometheus   (promtool: tests/metrics.rs checks /metrics with
#                `promtool check metrics`; its service is not started here)
#   comparison   dpdk dpdk-dev librte-net-af-xdp23   (Debian 12 ships
#                dpdk-testpmd in dpdk-dev and the AF_XDP PMD, needed for
#                --vdev net_af_xdp0, as a separate package), valgrind, linux-perf,
#                fonts-dejavu-core (the chart font of scripts/bench.sh, read
#                from its file: no fontconfig involved)
#   systemd      systemd (systemd-analyze verifies dist/xdpvs.service), util-linux
#                (setpriv runs the daemon as the unit would: tests/systemd.rs)
#   package      lintian (scripts/package.sh --check, tests/package.rs), and
#                cargo-deb (a cargo tool, installed with cargo install from
#                crates.io when missing or of another version)
#   fuzzing      cargo-fuzz (likewise; scripts/fuzz.sh, the fuzz smoke of
#                scripts/test.sh; it runs on the stable toolchain with
#                RUSTC_BOOTSTRAP=1 for -Zsanitizer)
#
# The Rust toolchain is not installed here: bookworm's rustc (1.63) is too old
# for edition 2024 and has no rustup package, and rustup's installer downloads
# from outside the package registries. This script checks that a recent
# toolchain is present and says so clearly if not.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang llvm m4 libelf-dev zlib1g-dev libpcap-dev
    libbpf-dev linux-libc-dev
    iproute2 iputils-ping nftables curl ethtool tcpdump apache2 vsftpd lftp socat
    prometheus dnsmasq-base openssl
    dpdk dpdk-dev librte-net-af-xdp23 valgrind linux-perf fonts-dejavu-core
    systemd util-linux
    lintian tshark
)
# scripts/package.sh's cargo-deb, pinned: its output format (the .deb's path
# on the last line) and options (--strip, --profile) are relied on.
CARGO_DEB_VERSION=3.8.0
# scripts/fuzz.sh's cargo-fuzz, pinned (its build layout, fuzz/target/TRIPLE/
# release/TARGET, is relied on).
CARGO_FUZZ_VERSION=0.13.2
# Edition 2024 needs Rust 1.85.
MIN_RUST_MINOR=85

step() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

# ---- Debian packages ---------------------------------------------------------

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "install ok installed" when present; anything else (not-installed,
    # config-files, half-installed) or no record at all means install it.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == *" installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    step "packages: all ${#PACKAGES[@]} present"
else
    step "packages: installing ${#missing[@]} missing: ${missing[*]}"
    ((EUID == 0)) || die "installing packages needs root; run: sudo $0"
    # The test bed starts apache2 and vsftpd itself, inside its namespaces and
    # with throw-away configs; keep their postinst from starting system-wide
    # instances now (invoke-rc.d honours policy-rc.d exit code 101).
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    # tshark's postinst asks whether non-root users may capture; answer no
    # beforehand so the install never prompts (the tests run it as root).
    if [[ " ${missing[*]} " == *" tshark "* ]]; then
        echo 'wireshark-common wireshark-common/install-setuid boolean false' |
            debconf-set-selections
    fi
    step "packages: apt-get update"
    apt-get update -qq || die "apt-get update failed"
    step "packages: apt-get install"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install failed: ${missing[*]}"
    for pkg in "${missing[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == *" installed" ]] || die "package $pkg is still not installed ($status)"
    done
    step "packages: installed ${missing[*]}"
fi

# ---- Rust toolchain ------------------------------------------------------------

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 ||
    die "Rust toolchain not found: no cargo on PATH or in $cargo_bin.
       Install Rust 1.$MIN_RUST_MINOR or newer (rustup, stable toolchain with
       rustfmt and clippy) and run this script again. It cannot be fetched
       from here: rustup downloads from outside the Debian archive."
rust_version=$(rustc --version 2>/dev/null) || die "cargo found but rustc does not run"
minor=$(sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p' <<<"$rust_version")
if [[ -z $minor ]] || ((minor < MIN_RUST_MINOR)); then
    die "$rust_version is too old: edition 2024 needs Rust 1.$MIN_RUST_MINOR or newer (rustup update stable)"
fi
step "rust: $rust_version, $(cargo --version)"

if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup component list --installed 2>/dev/null || true)
    want=()
    for component in rustfmt clippy; do
        grep -q "^$component" <<<"$installed" || want+=("$component")
    done
    if ((${#want[@]} == 0)); then
        step "rust: components rustfmt clippy present"
    elif rustup component add "${want[@]}" >/dev/null 2>&1; then
        step "rust: added components ${want[*]}"
    else
        # Not fatal: building and testing need neither.
        step "rust: WARNING: could not add components ${want[*]} (cargo fmt / cargo clippy unavailable)"
    fi
else
    step "rust: no rustup; skipping the rustfmt/clippy component check"
fi

# ---- cargo tools -----------------------------------------------------------------

have_deb=$(cargo deb --version 2>/dev/null || true)
if [[ $have_deb == *" $CARGO_DEB_VERSION" ]]; then
    step "cargo-deb: $have_deb present"
else
    step "cargo-deb: installing $CARGO_DEB_VERSION (have: ${have_deb:-none}; cargo install, a few minutes)"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION" ||
        die "cargo install cargo-deb $CARGO_DEB_VERSION failed"
    have_deb=$(cargo deb --version 2>/dev/null) || die "cargo-deb installed but does not run"
    step "cargo-deb: installed ($have_deb)"
fi

have_fuzz=$(cargo fuzz --version 2>/dev/null || true)
if [[ $have_fuzz == *" $CARGO_FUZZ_VERSION" ]]; then
    step "cargo-fuzz: $have_fuzz present"
else
    step "cargo-fuzz: installing $CARGO_FUZZ_VERSION (have: ${have_fuzz:-none}; cargo install, a few minutes)"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" ||
        die "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed"
    have_fuzz=$(cargo fuzz --version 2>/dev/null) || die "cargo-fuzz installed but does not run"
    step "cargo-fuzz: installed ($have_fuzz)"
fi

step "done"
