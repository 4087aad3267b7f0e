#!/usr/bin/env bash
# The LVS guide's cluster: Apache (apache2) and FTP (vsftpd) on three real
# servers behind one VIP, in NAT (with the director's FTP helper), DR and
# TUN (persistent port 21), on the namespace test bed. A client (curl)
# fetches pages and 1 MiB files through the VIP — passive (PASV, EPSV) and
# active (PORT, EPRT), downloads and uploads, checked byte for byte — and
# the director's tables (xdpvsadm -L -n, --stats) are printed per mode.
#
# The scenario is tests/ftp.rs, run in release mode with its output shown;
# the bed's namespaces are created and removed by the test itself (RAII
# guard plus a guardian process), so nothing is left behind. Needs root.
# Called by scripts/demo.sh; runs alone as well.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ${XDPVS_SKIP_SETUP:-} != 1 ]]; then
    scripts/setup.sh
fi

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi

printf '\n==> demo-ftp.sh: Apache and FTP through xdpvs in NAT, DR and TUN\n'
exec cargo test --release --test ftp -- --nocapture --test-threads 1 _apache_and_ftp_
