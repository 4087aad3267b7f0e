// SPDX-License-Identifier: GPL-2.0
//
// xdpvs steering: send to the AF_XDP socket of the receiving queue only the
// packets the load balancer handles, and everything else (ARP, neighbour
// discovery, ICMP echo to the director, SSH, routing protocols) to the
// kernel stack.
//
// IPv4 and IPv6 follow the same rules, each family with maps of its own
// (the IPv6 ones end in 6). Redirected:
//   - TCP/UDP to a virtual service: (daddr, dport, proto) in `vips`, or
//     (daddr, 0, proto) for a port-0 (all ports) service;
//   - TCP/UDP replies of NAT real servers: (saddr, sport, proto) in
//     `nat_reals`, or (saddr, 0, proto) for every port of the server (FTP
//     helper: data connections from port 20 and passive ports);
//   - IPv4 fragments to a VIP address (`vip_addrs`) or from a NAT real
//     server's address (`nat_real_addrs`): the forwarder decides (it drops
//     and counts them; the kernel would not know the VIP either, and would
//     forward a real server's fragments untranslated, leaking its address);
//   - ICMP errors (dest unreachable, source quench, time exceeded, parameter
//     problem) to a VIP address or from a NAT real server's address: they
//     concern the forwarder's connections. ICMPv6 likewise for destination
//     unreachable, packet too big, time exceeded and parameter problem;
//     neighbour discovery, router advertisements, MLD and echo are always
//     the kernel's.
//
// IPv6 extension headers (hop-by-hop, routing, destination options,
// authentication) are walked, at most MAX_EXT6 of them, as the forwarder's
// own parser (src/wire/ipv6.rs) walks them; a longer or truncated chain is
// the kernel's. A Fragment header makes the packet a fragment: it goes by
// address alone, as an IPv4 fragment does.
//
// The director's own traffic stays the kernel's: a packet from a NAT real
// server addressed to one of the director's own addresses (`local_addrs`,
// every interface's, kept current by the daemon) answers a connection the
// director opened itself (a health check, an admin's curl), so the rules
// "from a NAT real server" above do not take it. Packets *to* a VIP are
// still taken even when the VIP is a local address (held on `lo`).
//
// Keys hold addresses and ports in network byte order, exactly as on the
// wire; userspace (src/xsk/steer.rs) writes them the same way.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct svc_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

// IPv6: the same layout with a 16-byte address (20 bytes, no padding
// inside).
struct svc6_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct addr6 {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct svc_key);
	__type(value, __u8);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct svc_key);
	__type(value, __u8);
} nat_reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} nat_real_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct svc6_key);
	__type(value, __u8);
} vips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct svc6_key);
	__type(value, __u8);
} nat_reals6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct addr6);
	__type(value, __u8);
} vip_addrs6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct addr6);
	__type(value, __u8);
} nat_real_addrs6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct addr6);
	__type(value, __u8);
} local_addrs6 SEC(".maps");

enum { CNT_REDIRECTED, CNT_PASSED, CNT_REDIRECT_FAILED, CNT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ports {
	__be16 src;
	__be16 dst;
};

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

// From a NAT real server's address, to someone other than the director.
static __always_inline int from_nat_real(struct iphdr *ip)
{
	return bpf_map_lookup_elem(&nat_real_addrs, &ip->saddr) &&
	       !bpf_map_lookup_elem(&local_addrs, &ip->daddr);
}

// IPv6 next-header values the walk steps over, and the Fragment header.
#define NH_HOPOPTS 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AUTH 51
#define NH_DSTOPTS 60
#define NH_ICMPV6 58
#define MAX_EXT6 8

struct ext6_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

// From a NAT real server's IPv6 address, to someone other than the
// director.
static __always_inline int from_nat_real6(struct ipv6hdr *ip6)
{
	return bpf_map_lookup_elem(&nat_real_addrs6, &ip6->saddr) &&
	       !bpf_map_lookup_elem(&local_addrs6, &ip6->daddr);
}

static __always_inline int wanted6(void *l3, void *end)
{
	struct ipv6hdr *ip6 = l3;
	void *p = ip6 + 1;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > end)
		return 0;
	nh = ip6->nexthdr;
#pragma unroll
	for (i = 0; i < MAX_EXT6; i++) {
		struct ext6_hdr *h = p;

		if (nh != NH_HOPOPTS && nh != NH_ROUTING && nh != NH_DSTOPTS &&
		    nh != NH_AUTH && nh != NH_FRAGMENT)
			break;
		if ((void *)(h + 1) > end)
			return 0;
		if (nh == NH_FRAGMENT)
			return bpf_map_lookup_elem(&vip_addrs6, &ip6->daddr) ||
			       from_nat_real6(ip6);
		if (nh == NH_AUTH)
			p += ((__u32)h->hdrlen + 2) * 4;
		else
			p += ((__u32)h->hdrlen + 1) * 8;
		nh = h->nexthdr;
	}

	if (nh == IPPROTO_TCP || nh == IPPROTO_UDP) {
		struct ports *ports = p;
		struct svc6_key key = {};

		if ((void *)(ports + 1) > end)
			return 0;
		key.proto = nh;
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		key.port = ports->dst;
		if (bpf_map_lookup_elem(&vips6, &key))
			return 1;
		key.port = 0;
		if (bpf_map_lookup_elem(&vips6, &key))
			return 1;
		if (bpf_map_lookup_elem(&local_addrs6, &ip6->daddr))
			return 0;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		key.port = ports->src;
		if (bpf_map_lookup_elem(&nat_reals6, &key))
			return 1;
		key.port = 0;
		return bpf_map_lookup_elem(&nat_reals6, &key) != 0;
	}
	if (nh == NH_ICMPV6) {
		__u8 *type = p;

		if ((void *)(type + 1) > end)
			return 0;
		// Errors only (types 1-4); informational messages (128 and up:
		// echo, MLD, NDP) are the kernel's.
		if (*type < 1 || *type > 4)
			return 0;
		return bpf_map_lookup_elem(&vip_addrs6, &ip6->daddr) ||
		       from_nat_real6(ip6);
	}
	return 0;
}

static __always_inline int wanted(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 proto;
	__u32 ihl;
	void *l3;

	if ((void *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vlan = l3;

		if ((void *)(vlan + 1) > end)
			return 0;
		proto = vlan->proto;
		l3 = vlan + 1;
	}
	if (proto == bpf_htons(ETH_P_IPV6))
		return wanted6(l3, end);
	if (proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = l3;
	if ((void *)(ip + 1) > end)
		return 0;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return 0;

	// More-fragments flag or a fragment offset: only the first fragment
	// has ports, so fragments go by address alone.
	if (ip->frag_off & bpf_htons(0x3fff))
		return bpf_map_lookup_elem(&vip_addrs, &ip->daddr) ||
		       from_nat_real(ip);

	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		struct ports *p = l3 + ihl;
		struct svc_key key = {};

		if ((void *)(p + 1) > end)
			return 0;
		key.proto = ip->protocol;
		key.addr = ip->daddr;
		key.port = p->dst;
		if (bpf_map_lookup_elem(&vips, &key))
			return 1;
		key.port = 0;
		if (bpf_map_lookup_elem(&vips, &key))
			return 1;
		if (bpf_map_lookup_elem(&local_addrs, &ip->daddr))
			return 0;
		key.addr = ip->saddr;
		key.port = p->src;
		if (bpf_map_lookup_elem(&nat_reals, &key))
			return 1;
		// Port 0: every port of the real server (FTP data connections).
		key.port = 0;
		return bpf_map_lookup_elem(&nat_reals, &key) != 0;
	}
	if (ip->protocol == IPPROTO_ICMP) {
		__u8 *type = l3 + ihl;

		if ((void *)(type + 1) > end)
			return 0;
		if (*type != 3 && *type != 4 && *type != 11 && *type != 12)
			return 0;
		return bpf_map_lookup_elem(&vip_addrs, &ip->daddr) ||
		       from_nat_real(ip);
	}
	return 0;
}

SEC("xdp")
int xdpvs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	int ret;

	if (!wanted(data, end)) {
		count(CNT_PASSED);
		return XDP_PASS;
	}
	// XDP_PASS as the fallback: a queue without a socket hands its
	// packets to the kernel rather than dropping them.
	ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT) {
		count(CNT_REDIRECTED);
	} else {
		count(CNT_REDIRECT_FAILED);
		count(CNT_PASSED);
	}
	return ret;
}
