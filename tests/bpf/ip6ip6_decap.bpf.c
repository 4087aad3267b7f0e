// SPDX-License-Identifier: GPL-2.0
//
// TEST EQUIPMENT, not part of xdpvs. The IPv6 twin of ipip_decap.bpf.c: the
// kernel of the build and CI machines has no ip6_tunnel either (`ip link add
// type ip6tnl` answers "Unknown device type"), so there is no ip6tnl0 to
// decapsulate the ip6ip6 packets the director sends in TUN mode. Attached to
// a real server's LAN interface, it removes the outer IPv6 header (the
// Ethernet header is moved forward over it, then the frame start advanced),
// so the inner packet, addressed to the VIP the real server holds on lo,
// reaches the stack as if ip6tnl0 had received it. Everything else passes.
//
// Deliberately strict: the outer header must carry the inner packet directly
// (next header 41, no extension headers: the director adds none) and the
// inner header must be IPv6, so a director bug shows up as a dropped packet
// in the test, not as a repaired one.
//
// Not yet wired into tests/testbed/mod.rs (which builds ipip_decap.bpf.c the
// same way):
//   clang -O2 -g -target bpf -I/usr/include/<multiarch> -c ip6ip6_decap.bpf.c

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int ip6ip6_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *outer;
	struct ipv6hdr *inner;
	struct ethhdr saved;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end)
		return XDP_PASS;
	if (outer->nexthdr != IPPROTO_IPV6)
		return XDP_PASS;
	if (outer->version != 6)
		return XDP_DROP;
	inner = outer + 1;
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	if (inner->version != 6)
		return XDP_DROP;

	saved = *eth;
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*outer)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	*eth = saved;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
