#!/usr/bin/env bash
# Drives the kernel's packet generator (/proc/net/pktgen) toward a VIP with
# many flows: the load generator operators already know, for a real
# director box. Run it on a separate generator machine wired to the
# director's client-side NIC.
#
#   scripts/pktgen.sh DEV DST_MAC [VIP] [PORT]
#
#   DEV      the generator's NIC toward the director
#   DST_MAC  the director's MAC on that link (the next hop)
#   VIP      the virtual service address (default 198.18.1.1)
#   PORT     its UDP port (default 80)
#
# Environment: THREADS=1 (one pktgen kernel thread per CPU 0..THREADS-1),
# SIZE=64 (frame bytes without FCS), COUNT=10000000 per thread (0 = until
# Ctrl-C), FLOWS=1000000, RATE_PPS=0 per thread (0 = line rate),
# SRC_MIN/SRC_MAX (client addresses, default 198.19.0.1-198.19.255.254),
# BURST=1 (xmit_more batching, drivers that support it).
#
# Client addresses and ports are randomised over FLOWS distinct flows
# (pktgen's FLOWS/FLOWLEN), so the director sees that many connections.
# The kernel's pktgen needs CONFIG_NET_PKTGEN (module pktgen). Where the
# kernel lacks it, this script says so and points at the project's own
# generator, which also measures loss and latency: scripts/bench.sh and
# `xdpvs-loadgen gen` (README "Performance").
set -euo pipefail

die() {
    printf 'pktgen: ERROR: %s\n' "$*" >&2
    exit 1
}

no_pktgen() {
    cat >&2 <<'EOF'
pktgen: this kernel has no packet generator (CONFIG_NET_PKTGEN is not set:
        no /proc/net/pktgen and no pktgen module).
        Use the project's AF_XDP generator instead, which also measures
        loss, reordering and latency at a sink:
          scripts/bench.sh                       # the whole comparison
          xdpvs-loadgen gen --iface DEV --dst-mac MAC --dst VIP \
              --flows 1000000 --duration 10      # just the load
        (cargo build --release --bins; see README "Performance")
EOF
    exit 2
}

(($# >= 2)) || die "usage: $0 DEV DST_MAC [VIP] [PORT]"
DEV=$1
DST_MAC=$2
VIP=${3:-198.18.1.1}
PORT=${4:-80}
THREADS=${THREADS:-1}
SIZE=${SIZE:-64}
COUNT=${COUNT:-10000000}
FLOWS=${FLOWS:-1000000}
RATE_PPS=${RATE_PPS:-0}
SRC_MIN=${SRC_MIN:-198.19.0.1}
SRC_MAX=${SRC_MAX:-198.19.255.254}
BURST=${BURST:-1}

((EUID == 0)) || die "needs root (/proc/net/pktgen)"
[[ -d /sys/class/net/$DEV ]] || die "no interface $DEV"
[[ $DST_MAC =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "DST_MAC $DST_MAC is not a MAC address"

if [[ ! -d /proc/net/pktgen ]]; then
    modprobe pktgen 2>/dev/null || true
fi
[[ -e /proc/net/pktgen/pgctrl ]] || no_pktgen
ncpu=$(nproc)
((THREADS >= 1 && THREADS <= ncpu)) || die "THREADS=$THREADS: must be 1..$ncpu"

# pgset FILE CMD: one pktgen command; pktgen reports failure in the file.
pgset() {
    local file=$1 cmd=$2
    echo "$cmd" >"$file"
    if ! grep -q "^Result: OK" "$file" 2>/dev/null; then
        # Some commands (start) report on pgctrl differently; check errors only.
        if grep -q "^Result: .*[Ee]rror\|^Result: No such" "$file" 2>/dev/null; then
            die "pktgen $file: '$cmd': $(grep '^Result:' "$file")"
        fi
    fi
}

stop() {
    echo "stop" >/proc/net/pktgen/pgctrl 2>/dev/null || true
}
trap stop EXIT INT TERM

pgset /proc/net/pktgen/pgctrl reset
for ((t = 0; t < THREADS; t++)); do
    thread=/proc/net/pktgen/kpktgend_$t
    [[ -e $thread ]] || die "no pktgen thread kpktgend_$t"
    pgset "$thread" "rem_device_all"
    dev="$DEV@$t"
    pgset "$thread" "add_device $dev"
    d=/proc/net/pktgen/$dev
    pgset "$d" "count $COUNT"
    pgset "$d" "pkt_size $((SIZE + 4))" # pktgen counts the FCS
    pgset "$d" "burst $BURST"
    pgset "$d" "queue_map_min $t"
    pgset "$d" "queue_map_max $t"
    pgset "$d" "dst_mac $DST_MAC"
    pgset "$d" "dst $VIP"
    pgset "$d" "udp_dst_min $PORT"
    pgset "$d" "udp_dst_max $PORT"
    pgset "$d" "src_min $SRC_MIN"
    pgset "$d" "src_max $SRC_MAX"
    pgset "$d" "udp_src_min 1024"
    pgset "$d" "udp_src_max 65535"
    pgset "$d" "flag IPSRC_RND"
    pgset "$d" "flag UDPSRC_RND"
    pgset "$d" "flows $FLOWS"
    pgset "$d" "flowlen 8"
    if ((RATE_PPS > 0)); then
        pgset "$d" "ratep $RATE_PPS"
    fi
done

printf 'pktgen: %s threads on %s -> %s:%s (MAC %s), %s flows, %s-byte frames\n' \
    "$THREADS" "$DEV" "$VIP" "$PORT" "$DST_MAC" "$FLOWS" "$SIZE" >&2
echo "start" >/proc/net/pktgen/pgctrl # returns when every thread is done
trap - EXIT
for ((t = 0; t < THREADS; t++)); do
    printf '%s@%s: ' "$DEV" "$t"
    grep -A2 "^Result:" "/proc/net/pktgen/$DEV@$t" | tr -s ' \n' ' '
    echo
done
