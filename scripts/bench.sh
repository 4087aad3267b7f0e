#!/usr/bin/env bash
# Measures xdpvs beside its peers on this machine, in one run, at the same
# offered load and on the same cores:
#
#   testpmd   dpdk-testpmd through its AF_XDP PMD, io and macswap forwarding
#             (the DPDK-style polling forwarder on these ports: the reference)
#   nftables  the kernel as a load balancer: DNAT with numgen over the reals
#             (IPVS where the kernel has it is not run: this kernel lacks it)
#   xdpvs     DR, TUN, NAT with 1k and 1M active UDP flows, plus a TCP SYN
#             flood (new-connection rate) and established-style TCP
#
# Topology (namespaces named xdpvsb<pid>*, 198.18.0.0/15 only, removed by a
# trap on every exit path):
#
#   gen ns  g0 ──veth── d0  director ns  d1 ──veth── s0  sink ns
#   198.18.0.10   198.18.0.1         198.18.2.2   198.18.2.11-13 (the reals)
#
# The generator (xdpvs-loadgen gen, AF_XDP TX) sends stamped frames to the
# VIP 198.18.1.1:80 from up to millions of client tuples in 198.19.0.0/16;
# the forwarder carries them from d0 to d1 (a two-armed director); the sink
# (xdpvs-loadgen sink, AF_XDP RX on the real-server side) counts rate,
# loss, reordering and latency. Every measurement is repeated REPS times,
# repetitions interleaved so that ratios pair runs made side by side.
#
# Output: a markdown table on stdout, target/bench/report.json,
# target/bench/report.png, and the raw runs in target/bench/runs.jsonl.
#
# Knobs (environment):
#   REPS=3 DURATION=5 SIZE=64 RATE=0 (packets/s, 0 = as fast as the
#   generator goes)  GEN_CORE=0 SINK_CORE=0 FWD_CORE=1 MAIN_CORE=0
#   (testpmd's main lcore)  ONLY="testpmd nftables xdpvs" (subset)
#   ONLY=scrape: the scrape cost alone, xdpvs DR UDP 1k flows with and
#   without a client scraping /metrics SCRAPE_HZ=10 times a second
#   (measurements "xdpvs dr" and "xdpvs dr+scrape", runs interleaved; the
#   scraper is one curl --rate on MAIN_CORE), with the CPU time the daemon's
#   control and metrics threads used during the scraped runs
#   ONLY=listing: `xdpvsadm -L -n -c` at load, xdpvs DR UDP with 1M flows
#   at LISTING_RATE packets/s (default 20000), with and without listings
#   running back to back on MAIN_CORE (nice 19) during the measurement (measurements
#   "xdpvs dr" and "xdpvs dr+listing", interleaved): the frames lost beyond
#   the baseline are what listing costs forwarding; each listing's entry
#   count and time are printed
#   ONLY=edits: control-plane scale on a running daemon: `xdpvsadm -R` of a
#   generated 10000-rule ipvsadm-save, `-S | -R` of it, and 1000 separate
#   `xdpvsadm -a` calls, each timed (no traffic)
#   PROFILE=1 (perf record the xdpvs worker during one DR run)
# With 2 cores the generator and the sink share a core; on a bigger box give
# each its own: GEN_CORE=2 SINK_CORE=3 FWD_CORE=4 MAIN_CORE=0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

REPS=${REPS:-3}
DURATION=${DURATION:-5}
SIZE=${SIZE:-64}
RATE=${RATE:-0}
GEN_CORE=${GEN_CORE:-0}
SINK_CORE=${SINK_CORE:-0}
FWD_CORE=${FWD_CORE:-1}
MAIN_CORE=${MAIN_CORE:-0}
ONLY=${ONLY:-testpmd nftables xdpvs}
PROFILE=${PROFILE:-0}
SCRAPE_HZ=${SCRAPE_HZ:-10}
LISTING_RATE=${LISTING_RATE:-20000}
METRICS_LISTEN=127.0.0.1:9477
WARM_RATE=${WARM_RATE:-150000}
FLOWS_SMALL=1000
FLOWS_LARGE=1000000
SYN_FLOWS=16777216

VIP=198.18.1.1
REALS=(198.18.2.11 198.18.2.12 198.18.2.13)
P=xdpvsb$$
NG=${P}g
ND=${P}d
NS=${P}s

out=$root/target/bench
tmp=$(mktemp -d -t xdpvs-bench.XXXXXX)
runs=$out/runs.jsonl
start=$SECONDS

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: ERROR: %s\n' "$*" >&2
    exit 1
}

fwd_pid=
cleanup() {
    local status=$?
    if [[ -n $fwd_pid ]]; then
        kill -TERM "$fwd_pid" 2>/dev/null || true
        wait "$fwd_pid" 2>/dev/null || true
    fi
    for ns in "$NG" "$ND" "$NS"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$tmp" "/var/run/dpdk/$P"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- prerequisites -----------------------------------------------------------

((EUID == 0)) || die "needs root (network namespaces, XDP): run as root"
for tool in ip nft taskset dpdk-testpmd; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/setup.sh"
done
ncpu=$(nproc)
for c in "$GEN_CORE" "$SINK_CORE" "$FWD_CORE" "$MAIN_CORE"; do
    ((c < ncpu)) || die "core $c does not exist (this machine has $ncpu): set GEN_CORE/SINK_CORE/FWD_CORE/MAIN_CORE"
done

say "building (release)"
cargo build --release --bins --quiet
tdir=${CARGO_TARGET_DIR:-$root/target}
loadgen=$tdir/release/xdpvs-loadgen
xdpvs=$tdir/release/xdpvs
adm=$tdir/release/xdpvsadm
[[ -x $loadgen && -x $xdpvs && -x $adm ]] || die "release binaries missing in $tdir/release"
mkdir -p "$out"
: >"$runs"

# ---- topology ------------------------------------------------------------------

nsx() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

say "topology $NG -> $ND -> $NS"
for ns in "$NG" "$ND" "$NS"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$NG" link add g0 numrxqueues 1 numtxqueues 1 type veth peer name d0 numrxqueues 1 numtxqueues 1 netns "$ND"
ip -n "$ND" link add d1 numrxqueues 1 numtxqueues 1 type veth peer name s0 numrxqueues 1 numtxqueues 1 netns "$NS"
ip -n "$NG" addr add 198.18.0.10/24 dev g0
ip -n "$ND" addr add 198.18.0.1/24 dev d0
ip -n "$ND" addr add 198.18.2.2/24 dev d1
for r in "${REALS[@]}"; do
    ip -n "$NS" addr add "$r/24" dev s0
done
for l in "$NG g0" "$ND d0" "$ND d1" "$NS s0"; do
    # shellcheck disable=SC2086
    set -- $l
    ip -n "$1" link set "$2" up
done
# Replies and the kernel's reverse-path check need the clients' network.
ip -n "$ND" route add 198.19.0.0/16 via 198.18.0.10
ip -n "$NS" route add default via 198.18.2.2
nsx "$ND" sysctl -qw net.ipv4.ip_forward=1
nsx "$ND" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.d0.rp_filter=0
# Resolve the neighbours now, not inside a measurement.
for r in "${REALS[@]}"; do
    nsx "$ND" ping -c1 -W1 "$r" >/dev/null || die "director cannot reach real $r"
done
nsx "$NG" ping -c1 -W1 198.18.0.1 >/dev/null || die "generator cannot reach the director"
d0_mac=$(nsx "$ND" cat /sys/class/net/d0/address)

# ---- one measurement -------------------------------------------------------------

# measure SYSTEM MODE TRAFFIC FLOWS REP: warm the forwarder's flow state
# with one packet per flow (not measured), then send for DURATION seconds
# with the sink counting, and append one line to runs.jsonl.
measure() {
    local system=$1 mode=$2 traffic=$3 flows=$4 rep=$5
    local port=80 gen_json sink_json size=$SIZE
    # TCP needs 20 more header bytes than UDP for the same stamp.
    [[ $traffic == udp ]] || size=$((SIZE < 74 ? 74 : SIZE))
    local genargs=(--iface g0 --dst-mac "$d0_mac" --dst "$VIP" --dst-port "$port"
        --traffic "$traffic" --size "$size" --flows "$flows")
    if [[ $traffic != syn ]]; then
        # Below every forwarder's rate, so each flow's first packet arrives.
        local warm=$((flows < 20000 ? 20000 : flows))
        nsx "$NG" taskset -c "$GEN_CORE" "$loadgen" gen "${genargs[@]}" --count "$warm" \
            --rate "$WARM_RATE" --duration 30 >/dev/null
        sleep 0.3
    fi
    rm -f "$tmp/ready"
    nsx "$NS" taskset -c "$SINK_CORE" "$loadgen" sink --iface s0 \
        --duration $((DURATION + 10)) --idle-stop-ms 700 --ready-file "$tmp/ready" \
        >"$tmp/sink.json" 2>"$tmp/sink.err" &
    local sink_pid=$!
    for _ in $(seq 100); do
        [[ -e $tmp/ready ]] && break
        kill -0 "$sink_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -e $tmp/ready ]] || die "sink did not start: $(cat "$tmp/sink.err")"
    gen_json=$(nsx "$NG" taskset -c "$GEN_CORE" "$loadgen" gen "${genargs[@]}" \
        --rate "$RATE" --duration "$DURATION") || die "generator failed"
    wait "$sink_pid" || die "sink failed: $(cat "$tmp/sink.err")"
    sink_json=$(cat "$tmp/sink.json")
    printf '{"system":"%s","mode":"%s","traffic":"%s","flows":%s,"pkt_size":%s,"rep":%s,"gen":%s,"sink":%s}\n' \
        "$system" "$mode" "$traffic" "$flows" "$size" "$rep" "$gen_json" "$sink_json" >>"$runs"
    local mpps
    mpps=$(sed -n 's/.*"mpps":\([0-9]*\.[0-9]\{0,3\}\).*/\1/p' <<<"$sink_json")
    say "  $system $mode $traffic flows=$flows rep=$rep: ${mpps:-?} Mpps forwarded"
}

stop_forwarder() {
    [[ -n $fwd_pid ]] || return 0
    kill -TERM "$fwd_pid" 2>/dev/null || true
    wait "$fwd_pid" 2>/dev/null || true
    fwd_pid=
    # Let the XDP programs detach before the next forwarder attaches.
    sleep 0.3
}

# ---- the forwarders -----------------------------------------------------------------

testpmd_run() {
    local mode=$1 rep=$2
    # One forwarding lcore (FWD_CORE) polls both ports; the main lcore only
    # prints statistics. --no-huge/--no-pci: AF_XDP ports on the veths.
    ip netns exec "$ND" dpdk-testpmd -l "$MAIN_CORE,$FWD_CORE" --main-lcore "$MAIN_CORE" \
        --no-huge --no-pci -m 1024 --log-level=pmd.net.af_xdp:error \
        --vdev net_af_xdp0,iface=d0 --vdev net_af_xdp1,iface=d1 \
        --file-prefix "$P" -- --forward-mode="$mode" --nb-cores=1 -a \
        --stats-period 1 >"$tmp/testpmd.log" 2>&1 &
    fwd_pid=$!
    for _ in $(seq 200); do
        grep -q "Port statistics" "$tmp/testpmd.log" && break
        kill -0 "$fwd_pid" 2>/dev/null || die "testpmd exited: $(tail -20 "$tmp/testpmd.log")"
        sleep 0.05
    done
    grep -q "Port statistics" "$tmp/testpmd.log" || die "testpmd did not start: $(tail -20 "$tmp/testpmd.log")"
    measure testpmd "$mode" udp "$FLOWS_SMALL" "$rep"
    stop_forwarder
}

nftables_run() {
    local rep=$1
    # The kernel forwards on the CPU that takes the packet from d0's
    # backlog; RPS puts that on FWD_CORE like the other forwarders.
    printf '%x' $((1 << FWD_CORE)) | nsx "$ND" tee /sys/class/net/d0/queues/rx-0/rps_cpus >/dev/null
    nsx "$ND" nft -f - <<EOF
table ip xdpvsbench {
    chain pre {
        type nat hook prerouting priority dstnat;
        ip daddr $VIP udp dport 80 dnat to numgen inc mod 3 map { 0 : ${REALS[0]}, 1 : ${REALS[1]}, 2 : ${REALS[2]} }
    }
}
EOF
    measure nftables dnat udp "$FLOWS_SMALL" "$rep"
    nsx "$ND" nft delete table ip xdpvsbench
    nsx "$ND" conntrack -F 2>/dev/null || true
    printf '0' | nsx "$ND" tee /sys/class/net/d0/queues/rx-0/rps_cpus >/dev/null
}

xdpvs_start() {
    local forward=$1 proto=$2
    local cfg=$tmp/xdpvs.toml
    # One worker on FWD_CORE serves queue 0 of d0 and of d1, as testpmd's
    # one lcore polls both ports. It busy-polls like testpmd unless
    # XDPVS_IDLE says otherwise.
    cat >"$cfg" <<EOF
[dataplane]
interfaces = ["d0", "d1"]
cores = [$FWD_CORE]
idle = "${XDPVS_IDLE:-busy}"
tunnel_source = "198.18.2.2"
batch_size = 64
# The busy polling DPDK's AF_XDP PMD does by default (busy_budget=64,
# SO_BUSY_POLL 20 us, SO_PREFER_BUSY_POLL), so both run the same way;
# XDPVS_BUSY_POLL=0 turns it off.
busy_poll_usecs = $((${XDPVS_BUSY_POLL:-1} ? 20 : 0))
busy_poll_budget = 64
prefer_busy_poll = $( ((${XDPVS_BUSY_POLL:-1})) && echo true || echo false)

[connections]
max_entries = 4194304

[control]
socket = "$tmp/xdpvs.sock"
$([[ -n ${XDPVS_METRICS:-} ]] && printf '\n[metrics]\nlisten = "%s"\n' "$METRICS_LISTEN")

[[services]]
proto = "$proto"
vip = "$VIP:80"
scheduler = "rr"
EOF
    for r in "${REALS[@]}"; do
        printf '\n[[services.reals]]\naddr = "%s:80"\nforward = "%s"\n' "$r" "$forward" >>"$cfg"
    done
    ip netns exec "$ND" "$xdpvs" --config "$cfg" 2>"$tmp/xdpvs.log" &
    fwd_pid=$!
    for _ in $(seq 200); do
        grep -q "xdpvs: running:" "$tmp/xdpvs.log" && return 0
        kill -0 "$fwd_pid" 2>/dev/null || die "xdpvs exited: $(cat "$tmp/xdpvs.log")"
        sleep 0.05
    done
    die "xdpvs did not start: $(cat "$tmp/xdpvs.log")"
}

xdpvs_run() {
    local forward=$1 traffic=$2 flows=$3 rep=$4 proto=udp
    [[ $traffic == udp ]] || proto=tcp
    xdpvs_start "$forward" "$proto"
    local cpu0
    cpu0=$(side_cpu_ms "$fwd_pid")
    measure xdpvs "$forward" "$traffic" "$flows" "$rep"
    # The baseline of xdpvs_scrape_run's figure.
    [[ " $ONLY " == *" scrape "* ]] &&
        say "    control and metrics threads used $(($(side_cpu_ms "$fwd_pid") - cpu0)) ms of CPU meanwhile"
    stop_forwarder
    grep "worker" "$tmp/xdpvs.log" | sed 's/^/bench:    /' >&2 || true
}

# CPU time (ms) the daemon's threads other than its workers (control,
# metrics) have used so far: utime + stime of /proc/PID/task/*/stat.
side_cpu_ms() {
    local pid=$1 total=0 t stat comm rest
    local hz
    hz=$(getconf CLK_TCK)
    for t in /proc/"$pid"/task/*; do
        stat=$(cat "$t/stat" 2>/dev/null) || continue
        comm=${stat#*(}
        comm=${comm%%)*}
        [[ $comm == xdpvs-w* ]] && continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        # Fields 14 and 15 of stat are the 12th and 13th after the comm.
        total=$((total + ${12} + ${13}))
    done
    echo $((total * 1000 / hz))
}

# Milliseconds since T0 (date +%s%N).
since_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# One `xdpvsadm -L -n -c` after another until the file $tmp/stop-listing
# exists; each listing's entry count and seconds go to $tmp/listings.
listing_loop() {
    local t0 n
    while [[ ! -e $tmp/stop-listing ]]; do
        t0=$(date +%s%N)
        n=$(taskset -c "$MAIN_CORE" nice -n 19 "$adm" --socket "$tmp/xdpvs.sock" -L -n -c | wc -l)
        printf '%s %s\n' "$((n - 2))" "$(since_ms "$t0")ms" >>"$tmp/listings"
    done
}

xdpvs_listing_run() {
    local rep=$1 with=$2
    xdpvs_start dr udp
    if ((with)); then
        rm -f "$tmp/stop-listing" "$tmp/listings"
        listing_loop &
        local lister=$!
        RATE=$LISTING_RATE measure xdpvs dr+listing udp "$FLOWS_LARGE" "$rep"
        touch "$tmp/stop-listing"
        wait "$lister" || true
        say "    listings during the run (entries time): $(tr '\n' ';' <"$tmp/listings")"
    else
        RATE=$LISTING_RATE measure xdpvs dr udp "$FLOWS_LARGE" "$rep"
    fi
    stop_forwarder
    grep "worker" "$tmp/xdpvs.log" | sed 's/^/bench:    /' >&2 || true
}

# A generated ipvsadm-save of a large site: 1000 services of 9 real
# servers each (10000 rules).
large_site() {
    local s r n vip
    for ((s = 0; s < 1000; s++)); do
        vip="198.18.$((64 + s / 250)).$((1 + s % 250)):80"
        echo "-A -t $vip -s wrr"
        for ((r = 0; r < 9; r++)); do
            n=$((s * 9 + r))
            echo "-a -t $vip -r 198.19.$((n / 250)).$((1 + n % 250)):80 -g -w $((1 + r))"
        done
    done
}

xdpvs_edits_run() {
    xdpvs_start dr udp
    # The socket is a path: no need to enter the namespace.
    local a=("$adm" --socket "$tmp/xdpvs.sock") t0
    large_site >"$tmp/site.rules"
    t0=$(date +%s%N)
    "${a[@]}" -R <"$tmp/site.rules" || die "-R of 10000 rules failed"
    say "  xdpvsadm -R of 10000 rules: $(since_ms "$t0") ms"
    "${a[@]}" -S -n >"$tmp/saved.rules"
    say "  -S after it: $(wc -l <"$tmp/saved.rules") rules"
    t0=$(date +%s%N)
    { echo "-C"; cat "$tmp/saved.rules"; } | "${a[@]}" -R || die "-S | -R failed"
    say "  xdpvsadm -C + -R of the saved 10000 rules: $(since_ms "$t0") ms"
    "${a[@]}" -S -n | cmp -s - "$tmp/saved.rules" || die "-S | -R does not round-trip"
    say "  -S | -R round-trips: identical"
    "${a[@]}" -A -t 198.18.9.1:80 -s wlc
    t0=$(date +%s%N)
    for ((n = 0; n < 1000; n++)); do
        "${a[@]}" -a -t 198.18.9.1:80 -r "198.18.$((100 + n / 250)).$((1 + n % 250)):80" -g -w 1 ||
            die "xdpvsadm -a failed"
    done
    say "  1000 separate xdpvsadm -a (table of 11000 rules): $(since_ms "$t0") ms"
    # What 1000 starts of xdpvsadm cost alone: a request that edits nothing.
    t0=$(date +%s%N)
    for ((n = 0; n < 1000; n++)); do
        "${a[@]}" -L --timeout >/dev/null || die "xdpvsadm -L --timeout failed"
    done
    say "  1000 separate xdpvsadm -L --timeout (the same client, no edit): $(since_ms "$t0") ms"
    stop_forwarder
}

xdpvs_scrape_run() {
    local rep=$1
    XDPVS_METRICS=1 xdpvs_start dr udp
    local cpu0
    cpu0=$(side_cpu_ms "$fwd_pid")
    # One curl for every scrape (--rate: SCRAPE_HZ a second, a new
    # connection each, as the daemon closes them), on MAIN_CORE, its -w lines
    # unbuffered so that none is lost when it is stopped; not
    # through nsx, whose background subshell $! would name instead.
    ip netns exec "$ND" taskset -c "$MAIN_CORE" stdbuf -oL curl -s -o /dev/null -w '%{http_code}\n' \
        --rate "$SCRAPE_HZ/s" "http://$METRICS_LISTEN/metrics?[1-100000]" \
        >"$tmp/scrapes" 2>/dev/null &
    local scraper_pid=$!
    measure xdpvs dr+scrape udp "$FLOWS_SMALL" "$rep"
    kill -TERM "$scraper_pid" 2>/dev/null || true
    wait "$scraper_pid" 2>/dev/null || true
    local cpu1 n
    cpu1=$(side_cpu_ms "$fwd_pid")
    n=$(grep -c '^200$' "$tmp/scrapes" || true)
    stop_forwarder
    say "    $n scrapes answered 200; control and metrics threads used $((cpu1 - cpu0)) ms of CPU meanwhile"
}

profile_xdpvs() {
    command -v perf >/dev/null 2>&1 || die "PROFILE=1 needs perf (linux-perf): run scripts/setup.sh"
    xdpvs_start dr udp
    nsx "$NS" taskset -c "$SINK_CORE" "$loadgen" sink --iface s0 --duration 12 >/dev/null &
    local spid=$!
    sleep 0.5
    nsx "$NG" taskset -c "$GEN_CORE" "$loadgen" gen --iface g0 --dst-mac "$d0_mac" \
        --dst "$VIP" --size "$SIZE" --flows "$FLOWS_SMALL" --duration 8 >/dev/null &
    local gpid=$!
    sleep 1
    perf record -e cpu-clock -C "$FWD_CORE" -o "$out/perf.data" -- sleep 5 2>/dev/null
    wait "$gpid"
    wait "$spid" || true
    stop_forwarder
    # head closes the pipe early: not a failure (pipefail).
    {
        echo "# by thread"
        perf report -i "$out/perf.data" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -10 || true
        echo "# by symbol"
        perf report -i "$out/perf.data" --sort comm,symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45 || true
    } >"$out/profile.txt"
    say "profile of core $FWD_CORE during xdpvs DR: $out/profile.txt"
}

# ---- the run -------------------------------------------------------------------------

has() { [[ " $ONLY " == *" $1 "* ]]; }
for rep in $(seq "$REPS"); do
    say "repetition $rep of $REPS ($((SECONDS - start)) s)"
    if has testpmd; then
        testpmd_run io "$rep"
        testpmd_run macswap "$rep"
    fi
    has nftables && nftables_run "$rep"
    if has scrape; then
        # Alternating which goes first, so neither always runs on a warmer box.
        if ((rep % 2)); then
            xdpvs_run dr udp "$FLOWS_SMALL" "$rep"
            xdpvs_scrape_run "$rep"
        else
            xdpvs_scrape_run "$rep"
            xdpvs_run dr udp "$FLOWS_SMALL" "$rep"
        fi
    fi
    if has listing; then
        xdpvs_listing_run "$rep" $((rep % 2))
        xdpvs_listing_run "$rep" $(((rep + 1) % 2))
    fi
    ((rep == 1)) && has edits && xdpvs_edits_run
    if has xdpvs; then
        for mode in dr tun nat; do
            xdpvs_run "$mode" udp "$FLOWS_SMALL" "$rep"
            xdpvs_run "$mode" udp "$FLOWS_LARGE" "$rep"
        done
        xdpvs_run dr tcp "$FLOWS_SMALL" "$rep"
        xdpvs_run dr syn "$SYN_FLOWS" "$rep"
    fi
done
((PROFILE)) && profile_xdpvs

machine="$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), veth, AF_XDP copy mode; cores gen=$GEN_CORE sink=$SINK_CORE forwarder=$FWD_CORE; $SIZE-byte frames, rate=${RATE:-0} (0 = max), ${DURATION} s x $REPS"
[[ -s $runs ]] || exit 0
"$loadgen" report --runs "$runs" --out "$out" --machine "$machine"
say "machine: $machine"
say "wrote $out/report.json $out/report.png ($((SECONDS - start)) s)"
