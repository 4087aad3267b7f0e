#!/usr/bin/env bash
# Measures how the connection table holds up under floods (issue 12, items
# 5 and 6), on a namespace bed like scripts/bench.sh's:
#
#   gen ns  g0 ──veth── d0  director ns  d1 ──veth── s0  server ns
#   198.18.0.10   198.18.0.1         198.18.2.2   198.18.2.11 (the real)
#
#   scripts/flood.sh expiry    new UDP flows (one packet each) at RATE/s
#                              for DURATION s into a 65536-entry table with
#                              udp_timeout = TIMEOUT: prints the `conns`
#                              gauge and table_full every 5 s, and the
#                              expected occupancy (no defences: every
#                              flow is unreplied)
#   scripts/flood.sh syn       a spoofed SYN flood (sources 198.19.0.0/16)
#   scripts/flood.sh syn-ack   a spoofed SYN+ACK flood
#                              at the generator's maximum rate (RATE=0) for
#                              DURATION s against a 65536-entry table, DR,
#                              with the defences on (unreplied_share 0.5,
#                              secure_tcp 1), while a real
#                              client in the generator's namespace runs curl
#                              in a loop (one connection a request) and one
#                              long rate-limited download: prints the share
#                              of requests that succeeded, whether the
#                              download is byte-exact, and the counters
#
# Knobs: DURATION (60 expiry, 30 floods) RATE (15000 expiry, 0 floods)
# TIMEOUT=2 GEN_CORE=0 FWD_CORE=1 DEFENSE=1 (0: the floods without
# defences, unreplied_share 1, for comparison) DROP_ENTRY=0 SECURE_TCP=1
# (the floods' drop_entry and secure_tcp modes). Namespaces are named
# xdpvsf<pid>*, addresses in 198.18.0.0/15 only, removed on every exit
# path. Needs root, ip, ethtool, curl, python3; builds the release binaries.
# The generator's veth has tx checksum offload off, so the measurement does
# not include finishing partial checksums (tests/offloads.rs covers those).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

what=${1:-}
case $what in
expiry) : "${DURATION:=60}" "${RATE:=15000}" ;;
syn | syn-ack) : "${DURATION:=30}" "${RATE:=0}" ;;
*)
    echo "usage: $0 expiry|syn|syn-ack" >&2
    exit 2
    ;;
esac
TIMEOUT=${TIMEOUT:-2}
GEN_CORE=${GEN_CORE:-0}
FWD_CORE=${FWD_CORE:-1}
DEFENSE=${DEFENSE:-1}
ENTRIES=65536
VIP=198.18.1.1
REAL=198.18.2.11
P=xdpvsf$$
NG=${P}g
ND=${P}d
NS=${P}s

say() { printf 'flood: %s\n' "$*" >&2; }
die() {
    printf 'flood: ERROR: %s\n' "$*" >&2
    exit 1
}
((EUID == 0)) || die "needs root"

tmp=$(mktemp -d -t xdpvs-flood.XXXXXX)
pids=()
cleanup() {
    local status=$?
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for ns in "$NG" "$ND" "$NS"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building (release)"
cargo build --release --bins --quiet
tdir=${CARGO_TARGET_DIR:-$root/target}
loadgen=$tdir/release/xdpvs-loadgen
xdpvs=$tdir/release/xdpvs
adm=$tdir/release/xdpvsadm

nsx() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

for ns in "$NG" "$ND" "$NS"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$NG" link add g0 type veth peer name d0 netns "$ND"
ip -n "$ND" link add d1 type veth peer name s0 netns "$NS"
ip -n "$NG" addr add 198.18.0.10/24 dev g0
ip -n "$ND" addr add 198.18.0.1/24 dev d0
ip -n "$ND" addr add 198.18.2.2/24 dev d1
ip -n "$NS" addr add "$REAL/24" dev s0
for l in "$NG g0" "$ND d0" "$ND d1" "$NS s0"; do
    set -- $l
    ip -n "$1" link set "$2" up
done
nsx "$NG" ethtool -K g0 tx off >/dev/null
ip -n "$NG" route add "$VIP/32" via 198.18.0.1
ip -n "$ND" route add 198.19.0.0/16 via 198.18.0.10
ip -n "$NS" route add default via 198.18.2.2
nsx "$ND" sysctl -qw net.ipv4.ip_forward=1
for c in all default d0 d1; do
    nsx "$ND" sysctl -qw "net.ipv4.conf.$c.rp_filter=0"
done
nsx "$NS" "$root/scripts/realserver.sh" dr start "$VIP"
nsx "$ND" ping -c1 -W1 "$REAL" >/dev/null || die "director cannot reach the real server"
nsx "$NG" ping -c1 -W1 198.18.0.1 >/dev/null || die "generator cannot reach the director"
d0_mac=$(nsx "$ND" cat /sys/class/net/d0/address)

share=0.5 drop=${DROP_ENTRY:-0} secure=${SECURE_TCP:-1}
((DEFENSE)) || share=1 drop=0 secure=0
proto=tcp
[[ $what == expiry ]] && proto=udp share=1 drop=0 secure=0
cat >"$tmp/xdpvs.toml" <<EOF
[dataplane]
interfaces = ["d0", "d1"]
cores = [$FWD_CORE]
idle = "busy"

[connections]
max_entries = $ENTRIES
udp_timeout = $TIMEOUT
unreplied_share = $share
defense_threshold = 0.75
drop_entry = $drop
secure_tcp = $secure

[control]
socket = "$tmp/xdpvs.sock"

[[services]]
proto = "$proto"
vip = "$VIP:80"
scheduler = "rr"

[[services.reals]]
addr = "$REAL:80"
forward = "dr"
EOF
# Not through nsx: a function run in the background is a subshell, and
# the TERM of the cleanup must reach the daemon itself.
ip netns exec "$ND" "$xdpvs" --config "$tmp/xdpvs.toml" 2>"$tmp/xdpvs.log" &
xpid=$!
pids+=("$xpid")
for _ in $(seq 200); do
    grep -q "xdpvs: running:" "$tmp/xdpvs.log" && break
    kill -0 "$xpid" 2>/dev/null || die "xdpvs exited: $(cat "$tmp/xdpvs.log")"
    sleep 0.05
done
grep -q "xdpvs: running:" "$tmp/xdpvs.log" || die "xdpvs did not start"

counter() { # name: its total
    nsx "$ND" "$adm" --socket "$tmp/xdpvs.sock" --counters 2>/dev/null |
        awk -v n="$1" '$1 == n { print $NF }'
}

gen() { # traffic rate duration
    local size=64
    [[ $1 == udp ]] || size=74
    nsx "$NG" taskset -c "$GEN_CORE" "$loadgen" gen --iface g0 --dst-mac "$d0_mac" \
        --dst "$VIP" --dst-port 80 --traffic "$1" --size "$size" --flows 16777216 \
        --rate "$2" --duration "$3"
}

if [[ $what == expiry ]]; then
    say "UDP new flows at $RATE/s for $DURATION s, udp_timeout $TIMEOUT, $ENTRIES entries"
    # Ticks are whole seconds: a flow opened during second s expires at
    # s + TIMEOUT, so it lives TIMEOUT - 1 to TIMEOUT seconds.
    say "expected occupancy: rate x (timeout - 1) = $((RATE * (TIMEOUT - 1))) to rate x timeout = $((RATE * TIMEOUT))"
    gen udp "$RATE" "$DURATION" >"$tmp/gen.json" &
    gpid=$!
    pids+=("$gpid")
    printf '%6s %10s %10s %12s\n' second conns table_full conns_created
    for ((t = 5; t <= DURATION; t += 5)); do
        sleep 5
        printf '%6s %10s %10s %12s\n' "$t" "$(counter conns)" "$(counter table_full)" \
            "$(counter conns_created)"
    done
    wait "$gpid" || die "generator failed"
    say "generator: $(cat "$tmp/gen.json")"
    exit 0
fi

# The real server: a small page and a 64 MiB file.
www=$tmp/www
mkdir -p "$www"
echo "hello from the real server" >"$www/index.html"
head -c $((64 << 20)) /dev/urandom >"$www/big.bin"
(cd "$www" && exec ip netns exec "$NS" python3 -m http.server 80 --bind 0.0.0.0 \
    >"$tmp/http.log" 2>&1) &
pids+=("$!")
for _ in $(seq 100); do
    nsx "$NG" curl -s -o /dev/null --max-time 2 "http://$VIP/" && break
    sleep 0.1
done
nsx "$NG" curl -s -o /dev/null --max-time 2 "http://$VIP/" || die "no answer through the VIP before the flood"
say "a request before the flood: $(nsx "$NG" curl -s -o /dev/null -w '%{http_code} in %{time_total} s' "http://$VIP/")"

say "download: 64 MiB at 3 MiB/s"
nsx "$NG" curl -s --limit-rate 3M --max-time $((DURATION + 60)) -o "$tmp/big.out" \
    "http://$VIP/big.bin" &
dpid=$!
pids+=("$dpid")
sleep 1
say "$what flood at rate ${RATE:-max} for $DURATION s (defences: share $share, drop_entry $drop, secure_tcp $secure)"
gen "$what" "$RATE" "$DURATION" >"$tmp/gen.json" &
gpid=$!
pids+=("$gpid")
sleep 1
ok=0 n=0 secs=0
end=$((SECONDS + DURATION - 2))
while ((SECONDS < end)); do
    read -r code t < <(nsx "$NG" curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
        --connect-timeout 3 --max-time 5 "http://$VIP/" || true)
    n=$((n + 1))
    if [[ $code == 200 ]]; then
        ok=$((ok + 1))
        secs=$(awk -v a="$secs" -v b="$t" 'BEGIN { print a + b }')
    fi
done
mid_conns=$(counter conns)
mid_unreplied=$(counter conns_unreplied)
wait "$gpid" || die "generator failed"
dl=ok
wait "$dpid" || dl="curl failed ($?)"
if [[ $dl == ok ]]; then
    cmp -s "$www/big.bin" "$tmp/big.out" && dl="byte-exact ($(stat -c %s "$tmp/big.out") bytes)" ||
        dl="DIFFERS ($(stat -c %s "$tmp/big.out") bytes)"
fi
say "generator: $(cat "$tmp/gen.json")"
printf 'requests during the flood: %d of %d succeeded (%s %%)\n' "$ok" "$n" \
    "$(awk -v a="$ok" -v b="$n" 'BEGIN { printf "%.2f", b ? 100 * a / b : 0 }')"
printf 'mean time of a successful request: %s s\n' \
    "$(awk -v a="$secs" -v b="$ok" 'BEGIN { printf "%.3f", b ? a / b : 0 }')"
printf 'download: %s\n' "$dl"
printf 'table at the end of the flood: conns %s of %s, unreplied %s\n' "$mid_conns" "$ENTRIES" "$mid_unreplied"
for c in conns_created unreplied_evicted defense_dropped conns_reclaimed table_full unreplied_full no_connection; do
    printf '  %-18s %s\n' "$c" "$(counter "$c")"
done
