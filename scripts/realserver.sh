#!/bin/sh
# Configures (start) or unconfigures (stop) this Linux host as an LVS real
# server for one VIP, for the director's forwarding mode:
#
#   scripts/realserver.sh dr  start|stop VIP   VIP on lo, no ARP for it
#   scripts/realserver.sh tun start|stop VIP   IPIP: tunl0 holds the VIP
#   scripts/realserver.sh nat start|stop VIP   nothing on the server but the
#                                              route: prints what to check
#
# VIP may be IPv6 (2001:db8:1::1): DR puts it on lo as a /128, TUN on
# ip6tnl0 (module ip6_tunnel, ip6ip6 decapsulation). IPv6 needs no
# arp_ignore counterpart: the kernel answers neighbour solicitations only
# for addresses of the interface asked on (ndisc_recv_ns looks the target
# up strictly on that device), so a VIP on lo or ip6tnl0 gets no NDP
# answer on the LAN. The VIP is added with nodad (duplicate address
# detection would find the director's VIP and disable ours) and
# preferred_lft 0: deprecated, so source selection never picks it for the
# server's own traffic (the arp_announce counterpart), while packets to it
# are still accepted. There is no IPv6 rp_filter sysctl.
#
# DR and TUN real servers accept packets addressed to the VIP, so they must
# hold it — without answering ARP for it, or the LAN would send the VIP's
# traffic to a real server instead of the director. That is what the old
# "hidden" kernel patch did; today's kernels have two sysctls for it:
# arp_ignore=1 (answer ARP only for addresses of the interface asked on;
# the VIP sits on lo or tunl0) and arp_announce=2 (never use the VIP as
# the source of our own ARP requests). TUN servers also need the ipip
# module and rp_filter off on tunl0 (the decapsulated packet's source is
# the client, which the reverse-path check would expect elsewhere).
#
# Works inside a network namespace (`ip netns exec NS scripts/realserver.sh
# ...`): every setting is per namespace. `stop` removes the VIP and puts
# the sysctls back to the kernel defaults (0, and rp_filter as it found it
# when the saved value exists). Needs root, ip(8) and /proc/sys.
set -eu

usage() {
    echo "usage: $0 dr|tun|nat start|stop VIP" >&2
    exit 2
}
[ $# -eq 3 ] || usage
mode=$1 action=$2 vip=$3
case $mode in dr|tun|nat) ;; *) usage ;; esac
case $action in start|stop) ;; *) usage ;; esac
case $vip in
    *:*)
        case $vip in *[!0-9a-fA-F:]*) echo "$0: VIP must be an IPv4 or IPv6 address: $vip" >&2; exit 2 ;; esac
        ;;
    *[!0-9.]*|'') echo "$0: VIP must be an IPv4 or IPv6 address: $vip" >&2; exit 2 ;;
esac
v6=0
case $vip in *:*) v6=1 ;; esac

conf=/proc/sys/net/ipv4/conf
state=${XDPVS_RS_STATE:-/run/xdpvs-realserver}

arp() { # arp_ignore arp_announce
    for c in all lo; do
        echo "$1" > "$conf/$c/arp_ignore"
        echo "$2" > "$conf/$c/arp_announce"
    done
}

if [ $v6 = 1 ]; then
    case $mode-$action in
    dr-start)
        ip -6 addr replace "$vip/128" dev lo nodad preferred_lft 0
        ;;
    dr-stop)
        ip -6 addr del "$vip/128" dev lo 2>/dev/null || true
        ;;
    tun-start)
        if [ ! -d /sys/class/net/ip6tnl0 ]; then
            modprobe ip6_tunnel 2>/dev/null || true
        fi
        if [ ! -d /sys/class/net/ip6tnl0 ]; then
            echo "$0: no ip6tnl0: this kernel has no ip6ip6 (CONFIG_IPV6_TUNNEL, module ip6_tunnel)" >&2
            exit 1
        fi
        ip -6 addr replace "$vip/128" dev ip6tnl0 nodad preferred_lft 0
        ip link set ip6tnl0 up
        ;;
    tun-stop)
        if [ -d /sys/class/net/ip6tnl0 ]; then
            ip -6 addr del "$vip/128" dev ip6tnl0 2>/dev/null || true
            ip link set ip6tnl0 down
        fi
        ;;
    nat-start)
        ip -6 route show default | grep -q . || echo "$0: warning: no IPv6 default route; point it at the director" >&2
        ip -6 addr show | grep -qi " $vip/" && echo "$0: warning: $vip is configured here; a NAT real server must not hold the VIP" >&2
        ip -6 route show default
        ;;
    nat-stop) ;;
    esac
    exit 0
fi

case $mode-$action in
dr-start)
    arp 1 2
    ip addr replace "$vip/32" dev lo
    ;;
dr-stop)
    ip addr del "$vip/32" dev lo 2>/dev/null || true
    arp 0 0
    ;;
tun-start)
    if [ ! -d /sys/class/net/tunl0 ]; then
        modprobe ipip 2>/dev/null || true
    fi
    if [ ! -d /sys/class/net/tunl0 ]; then
        echo "$0: no tunl0: this kernel has no IPIP (CONFIG_NET_IPIP, module ipip)" >&2
        exit 1
    fi
    arp 1 2
    mkdir -p "$state"
    for c in all tunl0; do
        [ -e "$state/rp_filter.$c" ] || cat "$conf/$c/rp_filter" > "$state/rp_filter.$c"
        echo 0 > "$conf/$c/rp_filter"
    done
    ip addr replace "$vip/32" dev tunl0
    ip link set tunl0 up
    ;;
tun-stop)
    if [ -d /sys/class/net/tunl0 ]; then
        ip addr del "$vip/32" dev tunl0 2>/dev/null || true
        ip link set tunl0 down
        for c in all tunl0; do
            if [ -e "$state/rp_filter.$c" ]; then
                cat "$state/rp_filter.$c" > "$conf/$c/rp_filter"
                rm -f "$state/rp_filter.$c"
            fi
        done
    fi
    arp 0 0
    ;;
nat-start)
    # A NAT real server needs no VIP: the director translates. Its replies
    # must go back through the director, i.e. its route to the clients
    # (usually the default route) must point at the director.
    ip route show default | grep -q . || echo "$0: warning: no default route; point it at the director" >&2
    ip addr show | grep -q " $vip/" && echo "$0: warning: $vip is configured here; a NAT real server must not hold the VIP" >&2
    ip route show default
    ;;
nat-stop) ;;
esac
