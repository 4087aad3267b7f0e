#!/usr/bin/env bash
# The xdpvs demo: a small LVS cluster built out of network namespaces on this
# machine, with the real director daemon in the middle, in each forwarding
# mode (DR, TUN, NAT). Run it as root from a clone of the repository:
#
#     scripts/demo.sh
#
# What it does:
#   1. scripts/setup.sh (installs missing Debian packages, checks Rust), then
#      `cargo build --release --bins` (xdpvs, xdpvsadm).
#   2. Builds the TESTBED.md topology in namespaces named xdpvsNNNNN* (NNNNN
#      from this shell's pid), addresses from 198.18.0.0/15 only:
#
#      client ──veth── router ──veth── lan (bridge) ─┬─ director 198.18.2.2  (xdpvs)
#      198.18.0.10     198.18.0.1 / 198.18.2.1       ├─ rs1      198.18.2.11 (apache2)
#                      VIP 198.18.1.1 via .2.2       ├─ rs2      198.18.2.12 (apache2)
#                                                    └─ rs3      198.18.2.13 (apache2)
#
#      Each real server runs Debian's apache2 with a throw-away config whose
#      page says "rs1", "rs2" or "rs3", so every answer shows who served it.
#   3. For DR, then TUN, then NAT: configures the real servers as LVS
#      documents that mode, writes an xdpvs config (one TCP service on the
#      VIP, rr over the three real servers), starts xdpvs in the director
#      namespace, sends 12 curl requests from the client to the VIP, shows
#      which real server answered each, the daemon's table, traffic counters
#      and connection entries through xdpvsadm, then stops the daemon
#      (SIGTERM) and shows its per-worker counters.
#   4. Removes everything it created, on every exit path (trap on EXIT, INT,
#      TERM): processes in its namespaces, the namespaces (and with them all
#      veths and the bridge), the temp dir. Nothing outside its namespaces is
#      touched (no address, route or XDP program in the root namespace).
#
# Exits non-zero, saying what failed, if any step fails.
#
# Build profile: release, because the demo shows the data plane as it is
# deployed (a debug build of the per-packet path is many times slower) and
# from a fresh clone most of the build is the dependencies either way.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

say() { printf '%s\n' "$*"; }
section() { printf '\n==== %s ====\n' "$*"; }
step() { printf -- '--- %s\n' "$*"; }
die() {
    printf '\ndemo.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

((EUID == 0)) || die "must run as root (network namespaces, XDP and AF_XDP need CAP_NET_ADMIN and CAP_BPF): sudo $0"

section "1. Setup and build"
scripts/setup.sh

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
    PATH="$cargo_bin:$PATH"
fi
step "cargo build --release --bins"
cargo build --release --bins
bin="${CARGO_TARGET_DIR:-$repo/target}/release"
XDPVS=$bin/xdpvs
XDPVSADM=$bin/xdpvsadm
[[ -x $XDPVS && -x $XDPVSADM ]] || die "built binaries not found in $bin"
for tool in ip ethtool curl clang ping; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup.sh installs it)"
done
[[ -x /usr/sbin/apache2 ]] || die "/usr/sbin/apache2 not found (package apache2, installed by scripts/setup.sh)"

# ---- Names, addresses, clean-up ----------------------------------------------

# A per-run prefix: test-bed names are xdpvs + 7 digits; ours are xdpvs + 5
# digits + letters, so the two never collide.
printf -v P 'xdpvs%05d' $(($$ % 100000))
NS_C=${P}c NS_R=${P}r NS_D=${P}d
NS_S=("${P}s1" "${P}s2" "${P}s3")
BRIDGE=${P}lan
CLIENT=198.18.0.10
ROUTER_C=198.18.0.1
ROUTER_L=198.18.2.1
DIRECTOR=198.18.2.2
VIP=198.18.1.1
REALS=(198.18.2.11 198.18.2.12 198.18.2.13)
QUEUES=2 # RX/TX queues of the director's LAN veth: one xdpvs worker each
OFFLOADS="tx off rx off tso off gso off gro off"
REQUESTS=12

created=()
tmp=
daemon_pid=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((${#created[@]})); then
        printf '\n==== Clean-up ====\n'
        local ns pids sig
        for sig in TERM KILL; do
            pids=
            for ns in "${created[@]}"; do
                pids+=" $(ip netns pids "$ns" 2>/dev/null)"
            done
            [[ -z ${pids// /} ]] && break
            # shellcheck disable=SC2086 # a list of pids
            kill -"$sig" $pids 2>/dev/null
            for _ in $(seq 30); do
                pids=
                for ns in "${created[@]}"; do
                    pids+=$(ip netns pids "$ns" 2>/dev/null)
                done
                [[ -z $pids ]] && break
                sleep 0.1
            done
        done
        # Deleting a namespace destroys its veth ends, their peers and the
        # bridge ports.
        for ((i = ${#created[@]} - 1; i >= 0; i--)); do
            ip netns del "${created[i]}" 2>/dev/null
        done
        left=$(ip netns list | grep -c "^$P" || true)
        say "removed ${#created[@]} namespaces ($P*); left behind: $left"
    fi
    [[ -n $tmp ]] && rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# Runs a shell script in a namespace; on failure shows its output and stops.
ns_sh() {
    local ns=$1 script=$2 out
    out=$(ip netns exec "$ns" bash -ec "$script" 2>&1) || die "in namespace $ns: $out"
}

mac_of() { # 198.18.2.11 -> 02:00:c6:12:02:0b, as the test bed
    local IFS=.
    # shellcheck disable=SC2086
    set -- $1
    printf '02:00:%02x:%02x:%02x:%02x' "$1" "$2" "$3" "$4"
}

# ---- The cluster ---------------------------------------------------------------

section "2. Building the cluster (namespaces $P*)"
ip netns add "$NS_R" 2>/dev/null || die "ip netns add $NS_R failed (name taken? see ip netns list)"
created+=("$NS_R")
for ns in "$NS_C" "$NS_D" "${NS_S[@]}"; do
    ip netns add "$ns" || die "ip netns add $ns"
    created+=("$ns")
done
tmp=$(mktemp -d /tmp/xdpvs-demo.XXXXXX)
chmod 755 "$tmp" # apache's workers (www-data) read their docroot under it

# The router creates every veth with its peer end straight in the other
# namespace, so the root namespace never holds one of them.
router="ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
ip link add ${P}rc type veth peer name $NS_C netns $NS_C
ip link add $BRIDGE address $(mac_of $ROUTER_L) type bridge stp_state 0 forward_delay 0
ip link add ${P}pd numrxqueues $QUEUES numtxqueues $QUEUES type veth peer name $NS_D numrxqueues $QUEUES numtxqueues $QUEUES netns $NS_D
"
for i in 1 2 3; do
    router+="ip link add ${P}p$i type veth peer name ${P}s$i netns ${P}s$i
"
done
for port in "${P}pd" "${P}p1" "${P}p2" "${P}p3"; do
    router+="ethtool -K $port $OFFLOADS >/dev/null
ip link set $port master $BRIDGE up
"
done
router+="ethtool -K ${P}rc $OFFLOADS >/dev/null
ip link set dev ${P}rc address $(mac_of $ROUTER_C)
ip addr add $ROUTER_C/24 dev ${P}rc
ip link set ${P}rc up
ip addr add $ROUTER_L/24 dev $BRIDGE
ip link set $BRIDGE up
ip route add $VIP/32 via $DIRECTOR dev $BRIDGE"
ns_sh "$NS_R" "$router"

host_setup() { # namespace address gateway
    local dev=$1
    printf '%s\n' "ip link set lo up" \
        "ethtool -K $dev $OFFLOADS >/dev/null" \
        "ip link set dev $dev address $(mac_of "$2")" \
        "ip addr add $2/24 dev $dev" \
        "ip link set $dev up" \
        "ip route add default via $3 dev $dev"
}
ns_sh "$NS_C" "$(host_setup "$NS_C" $CLIENT $ROUTER_C)"
ns_sh "$NS_D" "$(host_setup "$NS_D" $DIRECTOR $ROUTER_L)"
for i in 0 1 2; do
    ns_sh "${NS_S[i]}" "$(host_setup "${NS_S[i]}" "${REALS[i]}" $ROUTER_L)"
done
say "client   $NS_C   $CLIENT, default via router $ROUTER_C"
say "router   $NS_R   $ROUTER_C / $ROUTER_L (bridge $BRIDGE), route $VIP/32 via director $DIRECTOR"
say "director $NS_D   $DIRECTOR on $NS_D ($QUEUES RX queues), offloads off"
for i in 0 1 2; do
    say "rs$((i + 1))      ${NS_S[i]}  ${REALS[i]}"
done

apache_conf() { # dir n
    cat <<EOF
# Throw-away config of the xdpvs demo (real server rs$2).
ServerRoot "$1"
ServerName rs$2
Listen 0.0.0.0:80
PidFile "$1/apache2.pid"
ErrorLog "$1/error.log"
LogLevel warn
DefaultRuntimeDir "$1/run"
Mutex file:$1/run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
User www-data
Group www-data
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
DocumentRoot "$1/htdocs"
DirectoryIndex index.html
<Directory "$1/htdocs">
    Require all granted
</Directory>
EOF
}
for i in 1 2 3; do
    d=$tmp/rs$i
    mkdir -p "$d/htdocs" "$d/run"
    echo "rs$i" >"$d/htdocs/index.html"
    apache_conf "$d" $i >"$d/apache2.conf"
    in_ns "${P}s$i" /usr/sbin/apache2 -f "$d/apache2.conf" -DFOREGROUND \
        </dev/null >"$d/stderr.log" 2>&1 &
done
for i in 1 2 3; do
    ok=
    for _ in $(seq 100); do
        if in_ns "${P}s$i" curl -s -o /dev/null -m 1 "http://${REALS[i - 1]}/"; then
            ok=1
            break
        fi
        sleep 0.05
    done
    [[ -n $ok ]] || die "apache2 on rs$i did not answer within 5 s: $(cat "$tmp/rs$i/stderr.log" "$tmp/rs$i/error.log" 2>/dev/null)"
done
say "apache2 answering on rs1 rs2 rs3 (page: \"rs1\", \"rs2\", \"rs3\")"

# xdpvs takes the real servers' MACs from the kernel's neighbour table (and
# asks the kernel to resolve missing ones); on a LAN that has been up for a
# while they are there. Here the LAN is seconds old: without this, the first
# SYN after start-up would be dropped as no_neighbour and the client would
# retransmit it a second later.
for r in "${REALS[@]}"; do
    in_ns "$NS_D" ping -c1 -W2 "$r" >/dev/null || die "the director cannot ping real server $r"
done
say "director: ARP entries for the real servers in place (ping from $NS_D)"

# The TUN decapsulation shim: this machine's kernel has no IPIP module, so
# the real servers strip the outer header with a small XDP program of the
# test bed's (test equipment; the director's encapsulation is the product).
arch_inc=/usr/include/$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")
clang -O2 -g -target bpf -I"$arch_inc" -c tests/bpf/ipip_decap.bpf.c -o "$tmp/ipip_decap.bpf.o" ||
    die "compiling tests/bpf/ipip_decap.bpf.c (clang, libbpf-dev, linux-libc-dev)"

# ---- Per mode ---------------------------------------------------------------------

set_lan_mtu() {
    local mtu=$1 i
    ns_sh "$NS_R" "for p in ${P}pd ${P}p1 ${P}p2 ${P}p3 $BRIDGE; do ip link set dev \$p mtu $mtu; done"
    ns_sh "$NS_D" "ip link set dev $NS_D mtu $mtu"
    for i in 1 2 3; do
        ns_sh "${P}s$i" "ip link set dev ${P}s$i mtu $mtu"
    done
}

# Puts the real servers in the state LVS documents for the mode.
configure_reals() {
    local mode=$1 i ns conf=/proc/sys/net/ipv4/conf
    case $mode in
    dr)
        say "real servers: VIP $VIP on lo; arp_ignore=1, arp_announce=2 (they never answer ARP for the VIP);"
        say "              default route via the router: replies go straight to the client"
        for ns in "${NS_S[@]}"; do
            ns_sh "$ns" "ip addr add $VIP/32 dev lo
for c in all $ns; do echo 1 > $conf/\$c/arp_ignore; echo 2 > $conf/\$c/arp_announce; done"
        done
        ;;
    tun)
        say "real servers: as DR, plus IPIP decapsulation (here the XDP shim, on a real box the ipip"
        say "              module and tunl0), rp_filter=0; LAN MTU 1520 so a 1500-byte packet fits encapsulated"
        set_lan_mtu 1520
        for ns in "${NS_S[@]}"; do
            ns_sh "$ns" "for c in all default $ns; do echo 0 > $conf/\$c/rp_filter; done
ip link set dev $ns xdpdrv obj $tmp/ipip_decap.bpf.o sec xdp 2>/dev/null ||
    ip link set dev $ns xdpgeneric obj $tmp/ipip_decap.bpf.o sec xdp"
        done
        ;;
    nat)
        say "real servers: no VIP; default route via the director $DIRECTOR, which rewrites the replies"
        set_lan_mtu 1500
        for ns in "${NS_S[@]}"; do
            ns_sh "$ns" "ip link set dev $ns xdp off
ip addr del $VIP/32 dev lo
ip route replace default via $DIRECTOR dev $ns"
        done
        ;;
    esac
}

write_config() { # mode mtu
    cat <<EOF
# xdpvs demo, $1 mode: one TCP service on the VIP, round robin.
[dataplane]
interfaces = ["$NS_D"]
idle = "wait"          # sleep in poll(2) when idle: this is a shared machine
batch_size = 32
mtu = $2
tunnel_source = "$DIRECTOR"

[connections]
max_entries = 65536

[control]
socket = "$tmp/xdpvs.sock"

[[services]]
proto = "tcp"
vip = "$VIP:80"
scheduler = "rr"
EOF
    for r in "${REALS[@]}"; do
        printf '\n[[services.reals]]\naddr = "%s:80"\nforward = "%s"\n' "$r" "$1"
    done
}

adm() {
    say "# xdpvsadm $*"
    "$XDPVSADM" --socket "$tmp/xdpvs.sock" "$@" || die "xdpvsadm $* failed"
}

run_mode() {
    local mode=$1 title=$2 mtu=1500 log=$tmp/xdpvs-$1.log cfg=$tmp/xdpvs-$1.toml
    [[ $mode == tun ]] && mtu=1520
    section "$title"
    configure_reals "$mode"
    write_config "$mode" $mtu >"$cfg"

    step "starting: ip netns exec $NS_D xdpvs --config $cfg"
    ip netns exec "$NS_D" "$XDPVS" --config "$cfg" </dev/null 2>"$log" &
    daemon_pid=$!
    local ready=
    for _ in $(seq 200); do
        if grep -q '^<[0-7]>xdpvs: running:' "$log"; then
            ready=1
            break
        fi
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $ready ]] || die "xdpvs ($mode) did not report \"running:\" within 10 s; its log:
$(cat "$log")"
    say "start-up log:"
    sed 's/^/    /' "$log"

    step "$REQUESTS requests from the client: curl http://$VIP/ (a new TCP connection each)"
    local answers=() body n
    for ((n = 1; n <= REQUESTS; n++)); do
        body=$(in_ns "$NS_C" curl -sS --fail --connect-timeout 3 --max-time 10 "http://$VIP/" 2>&1) ||
            die "$mode: request $n failed: $body"
        [[ $body =~ ^rs[123]$ ]] || die "$mode: request $n: unexpected answer: $body"
        answers+=("$body")
    done
    say "answered by: ${answers[*]}"
    local tally=
    for rs in rs1 rs2 rs3; do
        n=$(printf '%s\n' "${answers[@]}" | grep -c "^$rs\$" || true)
        ((n > 0)) || die "$mode: $rs answered no request"
        tally+=" $rs=$n"
    done
    say "per real server:$tally (rr: an even split)"

    step "the director's view (xdpvsadm, ipvsadm's syntax and output)"
    adm -L -n
    adm -L -n --stats
    if [[ $mode == nat ]]; then
        say "(OutPkts: the replies, which come back through the director and leave it from the VIP)"
    else
        say "(OutPkts 0: the real servers answer the client directly, not through the director)"
    fi
    adm -L -n -c
    # The rate estimator samples every 2 seconds, as IPVS's does.
    sleep 2.2
    adm -L -n --rate
    say "(--rate: IPVS's estimator, sampled every 2 s; the requests above, per second)"

    step "stopping: kill -TERM xdpvs"
    kill -TERM "$daemon_pid"
    local rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=
    ((rc == 0)) || die "xdpvs ($mode) exited with status $rc; its log:
$(cat "$log")"
    say "its log from SIGTERM on (per-worker counters):"
    sed -n '/^<[0-7]>xdpvs: stopping/,$p' "$log" | sed 's/^/    /'
    if [[ $mode == nat ]]; then
        say "(handoff: packets that arrived at the worker not owning their connection, passed to the owner)"
    fi
    if grep -q '^<[0-7]>xdpvs: worker [0-9]*: rx' "$log"; then :; else
        die "xdpvs ($mode) printed no worker counters on SIGTERM; its log:
$(cat "$log")"
    fi
}

run_mode dr "3. DR (direct routing): the director only rewrites the MAC"
run_mode tun "4. TUN (IP-in-IP): the director wraps each packet in an outer IPv4 header"
run_mode nat "5. NAT (masquerading): the director rewrites addresses both ways"

section "6. The LVS guide's cluster: Apache and FTP in NAT, DR and TUN"
XDPVS_SKIP_SETUP=1 scripts/demo-ftp.sh

section "Done: DR, TUN and NAT each served $REQUESTS requests through xdpvs, and Apache and FTP"
