#!/usr/bin/env bash
# Soak: runs the director for MINUTES (default 30) under everything at once
# and prints, every REPORT seconds, whether anything grows or is lost
# (issue 13, item 6). Not part of CI.
#
#   scripts/soak.sh [MINUTES]
#
# The bed (namespaces xdpvsk<pid>*, addresses in 198.18.0.0/15 only):
#
#   gen ns  g0 ──veth── d0  director  d1 ──veth── l0 ┐ lan ns (bridge)
#   198.18.0.10   198.18.0.1     198.18.2.2          ├─ s1 198.18.2.11 DR
#   client + generator                               ├─ s2 198.18.2.12 TUN
#                                                    └─ s3 198.18.2.13 NAT
#
#   VIPs: 198.18.1.1:80 DR → s1, 198.18.1.2:80 TUN → s2 (the tests' IPIP
#   decapsulation shim, tests/bpf/ipip_decap.bpf.c, stands in for the
#   kernel's missing ipip module), 198.18.1.3:80 NAT → s3, and UDP
#   198.18.1.4:9 DR → s1 for the generator's load.
#
# What runs, all bounded by the end time:
#   - xdpvs-loadgen sending new UDP flows, one packet each from
#     198.19.0.0/16, into a MAX_ENTRIES table with udp_timeout 2 (short
#     timeouts: the table churns, occupancy bounded), at LOAD percent of
#     the rate the director saturates at: first the generator runs flat
#     out for CALIBRATE seconds and what the director forwarded per second
#     is its capacity on this bed (printed); a steady load above it would
#     only measure the drops of an overloaded director, which take the
#     real clients' packets with the rest. RATE=N sets the steady rate
#     directly (0: the generator's full speed, overload on purpose);
#   - every FLOOD_EVERY s, for FLOOD_LEN s, a spoofed SYN flood
#     (alternately SYN+ACK) at the DR VIP at the generator's full speed,
#     with the defences on;
#   - real clients: a curl loop per mode (a new connection each request,
#     --connect-timeout 2 --max-time 5), and one rate-limited 16 MiB
#     download at a time through the NAT VIP, compared byte for byte;
#   - every EDIT_EVERY s an xdpvsadm edit (a real's weight, the DR
#     service's scheduler, a scratch service added and deleted with its
#     real), and every HUP_EVERY s a SIGHUP reload of the file.
#
# Every REPORT s one line: elapsed time; client requests and failures
# (outside flood windows — the goal is 0 — and inside them); downloads
# done and bad; the table's occupancy (conns of MAX_ENTRIES); the daemon's
# resident memory; edits and reloads done; and below it the drops by
# reason so far (`xdpvsadm --drops`, the non-zero totals).
# The summary at the end repeats the totals, the occupancy's maximum and
# the first and last resident memory. Exit status 0 when no legitimate
# request failed outside a flood window, no download was corrupted and
# the daemon survived; 1 otherwise.
#
# Knobs: REPORT=30 FLOOD_EVERY=90 FLOOD_LEN=15 EDIT_EVERY=3 HUP_EVERY=10
# MAX_ENTRIES=262144 LOAD=80 CALIBRATE=5 RATE (unset: LOAD% of the
# calibrated capacity) GEN_CORE=0 FWD_CORE=1 IDLE=busy (the
# worker's dataplane.idle) PROFILE=release (or debug: no release build,
# far slower). Needs root, ip, ethtool, curl,
# python3, clang (the shim); builds the binaries. Cleans up (daemon,
# clients, servers, namespaces, temporary files) on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

MINUTES=${1:-30}
[[ $MINUTES =~ ^[0-9]+$ ]] && ((MINUTES > 0)) || {
    echo "usage: $0 [MINUTES]" >&2
    exit 2
}
REPORT=${REPORT:-30}
FLOOD_EVERY=${FLOOD_EVERY:-90}
FLOOD_LEN=${FLOOD_LEN:-15}
EDIT_EVERY=${EDIT_EVERY:-3}
HUP_EVERY=${HUP_EVERY:-10}
MAX_ENTRIES=${MAX_ENTRIES:-262144}
RATE=${RATE:-}
LOAD=${LOAD:-80}
CALIBRATE=${CALIBRATE:-5}
GEN_CORE=${GEN_CORE:-0}
FWD_CORE=${FWD_CORE:-1}
PROFILE=${PROFILE:-release}
IDLE=${IDLE:-busy}
# A request that overlaps [flood start, flood end + GRACE] counts as in the
# flood window: SYN retransmission takes 1 s, then 3 s.
GRACE=5

VIP_DR=198.18.1.1 VIP_TUN=198.18.1.2 VIP_NAT=198.18.1.3 VIP_UDP=198.18.1.4
RS=(198.18.2.11 198.18.2.12 198.18.2.13)
DIRECTOR=198.18.2.2
P=xdpvsk$$
NG=${P}g ND=${P}d NL=${P}l
NSS=("${P}s1" "${P}s2" "${P}s3")

say() { printf 'soak: %s\n' "$*" >&2; }
die() {
    printf 'soak: ERROR: %s\n' "$*" >&2
    exit 1
}
((EUID == 0)) || die "needs root"

tmp=$(mktemp -d -t xdpvs-soak.XXXXXX)
pids=() servers=()
xpid=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # The daemon last, so that its shutdown line is in the log.
    for p in "${pids[@]}" "${servers[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}" "${servers[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ -n $xpid ]]; then
        kill -TERM "$xpid" 2>/dev/null || true
        wait "$xpid" 2>/dev/null || true
    fi
    for ns in "$NG" "$ND" "$NL" "${NSS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building ($PROFILE)"
if [[ $PROFILE == release ]]; then
    cargo build --release --bins --quiet
else
    cargo build --bins --quiet
fi
tdir=${CARGO_TARGET_DIR:-$root/target}/$PROFILE
loadgen=$tdir/xdpvs-loadgen xdpvs=$tdir/xdpvs adm=$tdir/xdpvsadm
include=/usr/include/$(uname -m)-linux-gnu
clang -O2 -g -target bpf -I "$include" -c tests/bpf/ipip_decap.bpf.c -o "$tmp/decap.o" ||
    die "cannot build the IPIP decapsulation shim (clang, libbpf-dev)"

nsx() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# ---- the bed ----------------------------------------------------------------
for ns in "$NG" "$ND" "$NL" "${NSS[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$NG" link add g0 type veth peer name d0 netns "$ND"
ip -n "$ND" link add d1 type veth peer name l0 netns "$NL"
ip -n "$NL" link add br0 type bridge
ip -n "$NL" link set l0 master br0
for i in 1 2 3; do
    ip -n "$NL" link add "l$i" type veth peer name s0 netns "${NSS[i - 1]}"
    ip -n "$NL" link set "l$i" master br0
done
ip -n "$NG" addr add 198.18.0.10/24 dev g0
ip -n "$ND" addr add 198.18.0.1/24 dev d0
ip -n "$ND" addr add "$DIRECTOR/24" dev d1
# The LAN carries TUN's 20 more bytes.
for l in "$ND d1" "$NL l0" "$NL l1" "$NL l2" "$NL l3" "$NL br0"; do
    set -- $l
    ip -n "$1" link set "$2" mtu 1520 up
done
ip -n "$NG" link set g0 up
ip -n "$ND" link set d0 up
conf=/proc/sys/net/ipv4/conf
for i in 0 1 2; do
    ns=${NSS[i]}
    ip -n "$ns" addr add "${RS[i]}/24" dev s0
    ip -n "$ns" link set s0 mtu 1520 up
    nsx "$ns" sh -c "for c in all default s0; do echo 0 > $conf/\$c/rp_filter; done"
done
nsx "$NG" ethtool -K g0 tx off >/dev/null
ip -n "$NG" route add 198.18.1.0/24 via 198.18.0.1
ip -n "$ND" route add 198.19.0.0/16 via 198.18.0.10
nsx "$ND" sysctl -qw net.ipv4.ip_forward=1
for c in all default d0 d1; do
    nsx "$ND" sysctl -qw "net.ipv4.conf.$c.rp_filter=0"
done
# DR: the VIP on lo, no ARP for it; replies via the director's kernel.
nsx "${NSS[0]}" "$root/scripts/realserver.sh" dr start "$VIP_DR"
nsx "${NSS[0]}" ip addr add "$VIP_UDP/32" dev lo
# TUN: the same, plus the decapsulation shim on its LAN port.
nsx "${NSS[1]}" "$root/scripts/realserver.sh" dr start "$VIP_TUN"
nsx "${NSS[1]}" sh -c "ip link set dev s0 xdpdrv obj $tmp/decap.o sec xdp 2>/dev/null ||
    ip link set dev s0 xdpgeneric obj $tmp/decap.o sec xdp"
for ns in "${NSS[@]}"; do
    ip -n "$ns" route add default via "$DIRECTOR"
done
for r in "${RS[@]}"; do
    nsx "$ND" ping -c1 -W1 "$r" >/dev/null || die "the director cannot reach $r"
done
nsx "$NG" ping -c1 -W1 198.18.0.1 >/dev/null || die "the generator cannot reach the director"
d0_mac=$(nsx "$ND" cat /sys/class/net/d0/address)

# ---- real servers -------------------------------------------------------------
www=$tmp/www
mkdir -p "$www"
head -c $((16 << 20)) /dev/urandom >"$www/big.bin"
for i in 0 1 2; do
    echo "rs$((i + 1))" >"$www/index.html"
    mkdir -p "$www/$i"
    cp "$www/index.html" "$www/$i/index.html"
    ln -s "$www/big.bin" "$www/$i/big.bin"
    (cd "$www/$i" && exec ip netns exec "${NSS[i]}" python3 -m http.server 80 \
        --bind 0.0.0.0 >"$tmp/http$i.log" 2>&1) &
    servers+=("$!")
done

# ---- the daemon ---------------------------------------------------------------
write_config() { # weight of the DR real
    cat <<EOF
[dataplane]
interfaces = ["d0", "d1"]
cores = [$FWD_CORE]
idle = "$IDLE"
mtu = 1520
tunnel_source = "$DIRECTOR"

[connections]
max_entries = $MAX_ENTRIES
udp_timeout = 2
unreplied_share = 0.5
defense_threshold = 0.75
secure_tcp = 1

[control]
socket = "$tmp/xdpvs.sock"

[[services]]
proto = "tcp"
vip = "$VIP_DR:80"
scheduler = "rr"
[[services.reals]]
addr = "${RS[0]}:80"
forward = "dr"
weight = $1

[[services]]
proto = "tcp"
vip = "$VIP_TUN:80"
scheduler = "wlc"
[[services.reals]]
addr = "${RS[1]}:80"
forward = "tun"

[[services]]
proto = "tcp"
vip = "$VIP_NAT:80"
scheduler = "wlc"
[[services.reals]]
addr = "${RS[2]}:80"
forward = "nat"

[[services]]
proto = "udp"
vip = "$VIP_UDP:9"
scheduler = "rr"
[[services.reals]]
addr = "${RS[0]}:9"
forward = "dr"
EOF
}
write_config 1 >"$tmp/xdpvs.toml"
# Not through nsx: the cleanup's TERM must reach the daemon itself.
ip netns exec "$ND" "$xdpvs" --config "$tmp/xdpvs.toml" </dev/null 2>"$tmp/xdpvs.log" &
xpid=$!
for _ in $(seq 200); do
    grep -q "xdpvs: running:" "$tmp/xdpvs.log" && break
    kill -0 "$xpid" 2>/dev/null || die "xdpvs exited: $(cat "$tmp/xdpvs.log")"
    sleep 0.05
done
grep -q "xdpvs: running:" "$tmp/xdpvs.log" || die "xdpvs did not start: $(cat "$tmp/xdpvs.log")"

adm() { nsx "$ND" "$adm" --socket "$tmp/xdpvs.sock" "$@"; }
counter() { { adm --counters 2>/dev/null || true; } | awk -v n="$1" '$1 == n { print $NF }'; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$xpid/status" 2>/dev/null || echo gone; }

for v in "$VIP_DR" "$VIP_TUN" "$VIP_NAT"; do
    ok=
    for _ in $(seq 50); do
        nsx "$NG" curl -s -o /dev/null --max-time 2 "http://$v/" && ok=1 && break
        sleep 0.2
    done
    [[ -n $ok ]] || die "no answer through $v before the soak"
done
gen() { # traffic dst port seconds rate
    local size=64
    [[ $1 == udp ]] || size=74
    nsx "$NG" taskset -c "$GEN_CORE" "$loadgen" gen --iface g0 --dst-mac "$d0_mac" \
        --dst "$2" --dst-port "$3" --traffic "$1" --size "$size" --flows 16777216 \
        --rate "$5" --duration "$4" >>"$tmp/gen.json" 2>>"$tmp/gen.err" || true
}

if [[ -z $RATE ]]; then
    tx0=$(counter tx)
    gen udp "$VIP_UDP" 9 "$CALIBRATE" 0
    tx1=$(counter tx)
    capacity=$(((${tx1:-0} - ${tx0:-0}) / CALIBRATE))
    ((capacity > 0)) || die "calibration: the director forwarded nothing"
    RATE=$((capacity * LOAD / 100))
    say "capacity: $capacity packets/s forwarded with the generator flat out for $CALIBRATE s; steady load $LOAD% = $RATE packets/s"
fi
say "bed up: DR, TUN and NAT answer; soaking for $MINUTES min (report every $REPORT s)"

start=$SECONDS
end=$((start + MINUTES * 60))
now() { date +%s.%N; }
t0=$(now)

# ---- load: steady (LOAD% of capacity), and flood windows ---------------------
(
    kind=syn
    while ((SECONDS < end)); do
        left=$((end - SECONDS))
        steady=$((FLOOD_EVERY - FLOOD_LEN))
        ((steady > left)) && steady=$left
        ((steady > 0)) && gen udp "$VIP_UDP" 9 "$steady" "$RATE"
        left=$((end - SECONDS))
        ((left <= 0)) && break
        len=$FLOOD_LEN
        ((len > left)) && len=$left
        echo "$(now) start $kind" >>"$tmp/floods"
        gen "$kind" "$VIP_DR" 80 "$len" 0
        echo "$(now) end $kind" >>"$tmp/floods"
        [[ $kind == syn ]] && kind=syn-ack || kind=syn
    done
) &
pids+=("$!")

# ---- real clients -------------------------------------------------------------
client() { # mode vip
    while ((SECONDS < end)); do
        local a b code
        a=$(now)
        code=$(nsx "$NG" curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 \
            --max-time 5 "http://$2/" 2>/dev/null || true)
        b=$(now)
        echo "$a $b $1 ${code:-000}" >>"$tmp/requests"
        sleep 0.2
    done
}
client dr "$VIP_DR" &
pids+=("$!")
client tun "$VIP_TUN" &
pids+=("$!")
client nat "$VIP_NAT" &
pids+=("$!")
(
    n=0
    while ((SECONDS < end - 10)); do
        n=$((n + 1))
        a=$(now)
        rc=0
        nsx "$NG" curl -s --limit-rate 1M --connect-timeout 2 --max-time 60 \
            -o "$tmp/dl.out" "http://$VIP_NAT/big.bin" || rc=$?
        b=$(now)
        if ((rc == 0)) && cmp -s "$www/big.bin" "$tmp/dl.out"; then
            echo "$a $b ok" >>"$tmp/downloads"
        else
            echo "$a $b bad rc=$rc size=$(stat -c %s "$tmp/dl.out" 2>/dev/null || echo 0)" >>"$tmp/downloads"
        fi
        rm -f "$tmp/dl.out"
    done
) &
pids+=("$!")

# ---- edits and reloads ------------------------------------------------------------
(
    i=0 last_hup=$SECONDS
    while ((SECONDS < end)); do
        sleep "$EDIT_EVERY"
        i=$((i + 1))
        case $((i % 4)) in
        0) adm -e -t "$VIP_TUN:80" -r "${RS[1]}:80" -i -w $((1 + i % 3)) ;;
        1) adm -E -t "$VIP_DR:80" -s "$([[ $((i % 8)) == 1 ]] && echo wrr || echo rr)" ;;
        2) adm -A -t 198.18.1.9:8080 -s rr && adm -a -t 198.18.1.9:8080 -r "${RS[2]}:8080" -m ;;
        3) adm -D -t 198.18.1.9:8080 ;;
        esac >/dev/null 2>>"$tmp/edits.err" && echo "$(now) ok" >>"$tmp/edits" ||
            echo "$(now) failed" >>"$tmp/edits"
        # After the -e (i % 4 == 0): the scratch service is gone by then,
        # so no edit fails because a reload removed what it edits.
        if ((i % 4 == 0 && SECONDS - last_hup >= HUP_EVERY)); then
            last_hup=$SECONDS
            write_config $((1 + i % 2)) >"$tmp/xdpvs.toml.new"
            mv "$tmp/xdpvs.toml.new" "$tmp/xdpvs.toml"
            kill -HUP "$xpid" 2>/dev/null && echo "$(now)" >>"$tmp/hups"
        fi
    done
) &
pids+=("$!")

# ---- reports ----------------------------------------------------------------------
touch "$tmp/requests" "$tmp/floods" "$tmp/downloads" "$tmp/edits" "$tmp/hups"
# requests: total, failed outside the flood windows, failed inside.
tally() {
    awk -v grace="$GRACE" '
        FILENAME == ARGV[1] { if ($2 == "start") s[++n] = $1; else e[n] = $1; next }
        { total++
          if ($4 == "200") next
          inside = 0
          for (k = 1; k <= n; k++) {
              fe = (k in e) ? e[k] + grace : 1e18
              if ($2 >= s[k] && $1 <= fe) inside = 1
          }
          if (inside) fin++; else { fout[$3]++; fo++ } }
        END { printf "%d %d %d", total, fo, fin
              for (m in fout) printf " %s:%d", m, fout[m]
              printf "\n" }' "$tmp/floods" "$tmp/requests"
}
drops() { { adm --drops 2>/dev/null || true; } | awk '/^  / && $NF != 0 { printf "%s=%s ", $1, $NF }'; }

rss_first=$(rss) rss_max=0 conns_max=0
printf '%6s %9s %9s %8s %6s %11s %9s %6s %5s\n' min requests fail_out fail_in dl_ok \
    conns rss_kib edits hups
next=$((start + REPORT))
while ((SECONDS < end)); do
    sleep 1
    kill -0 "$xpid" 2>/dev/null || die "the daemon died: $(tail -5 "$tmp/xdpvs.log")"
    if ((SECONDS >= next || SECONDS >= end)); then
        next=$((next + REPORT))
        read -r total fo fin _ < <(tally)
        c=$(counter conns)
        c=${c:-0}
        r=$(rss)
        [[ $r =~ ^[0-9]+$ ]] || r=0
        ((c > conns_max)) && conns_max=$c
        ((r > rss_max)) && rss_max=$r
        printf '%6.1f %9s %9s %8s %6s %11s %9s %6s %5s\n' \
            "$(awk -v a="$SECONDS" -v b="$start" 'BEGIN { print (a - b) / 60 }')" \
            "$total" "$fo" "$fin" "$(grep -c ' ok$' "$tmp/downloads" || true)" \
            "$c/$MAX_ENTRIES" "$r" "$(grep -c ok "$tmp/edits" || true)" \
            "$(wc -l <"$tmp/hups")"
        printf '       drops: %s\n' "$(drops)"
    fi
done

# ---- summary ------------------------------------------------------------------------
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
read -r total fo fin outs < <(tally) || true
bad=$(grep -c ' bad ' "$tmp/downloads" || true)
rss_last=$(rss)
floods=$(grep -c start "$tmp/floods" || true)
echo
echo "summary after $MINUTES min ($PROFILE build; steady load $RATE packets/s${capacity:+ of a $capacity/s capacity}):"
echo "  requests: $total; failed outside flood windows: $fo ${outs:-}; inside ($floods floods): $fin"
corrupt=$(grep -c ' bad rc=0 ' "$tmp/downloads" || true)
echo "  downloads (16 MiB, NAT): $(grep -c ' ok$' "$tmp/downloads" || true) byte-exact, $bad bad: $corrupt complete but different (corrupted), $((bad - corrupt)) cut short by curl (rc and size each):"
{ grep ' bad ' "$tmp/downloads" || true; } | awk '{ printf "    %s %s\n", $4, $5 }' | sort | uniq -c | head -n 10
echo "  table: max $conns_max of $MAX_ENTRIES entries"
echo "  daemon RSS: first $rss_first KiB, last $rss_last KiB, max $rss_max KiB"
echo "  edits: $(grep -c ok "$tmp/edits" || true) ok, $(grep -c failed "$tmp/edits" || true) failed; reloads: $(wc -l <"$tmp/hups"); refused reloads: $(grep -c 'reload refused' "$tmp/xdpvs.log" || true)"
echo "  generator runs: $(grep -c '^{' "$tmp/gen.json" || true); drops by reason over the whole run:"
{ adm --drops 2>/dev/null || true; } | awk '/^  / && $NF != 0 { printf "    %-24s %s\n", $1, $NF }'
grep -q panicked "$tmp/xdpvs.log" && die "the daemon logged a panic"
((fo == 0 && bad == 0)) || exit 1
