// SPDX-License-Identifier: GPL-2.0
//
// TEST EQUIPMENT, not part of xdpvs. The namespace test bed attaches this to
// each real server's LAN interface in TUN mode, because the kernel of the
// build and CI machines is built without CONFIG_NET_IPIP: there is no ipip
// module and no tunl0 to decapsulate what the director sends.
//
// It plays the real server's IPIP tunnel endpoint: an IPv4 packet with
// protocol 4 loses its outer IPv4 header (the Ethernet header is moved
// forward over it, then the frame start is advanced), so the inner packet,
// addressed to the VIP the real server holds on lo, reaches the stack as if
// tunl0 had received it. Everything else passes untouched.
//
// Deliberately strict: the outer header must be unfragmented and the inner
// one must be IPv4, so a director bug (wrong protocol, fragments, a broken
// inner header) shows up as a dropped packet in the test, not as a repaired
// one.
//
// Built at test time by tests/testbed/mod.rs:
//   clang -O2 -g -target bpf -I/usr/include/<multiarch> -c ipip_decap.bpf.c

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer;
	struct iphdr *inner;
	struct ethhdr saved;
	__u32 hlen;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end)
		return XDP_PASS;
	if (outer->protocol != IPPROTO_IPIP)
		return XDP_PASS;
	if (outer->version != 4 || outer->ihl < 5)
		return XDP_DROP;
	/* More-fragments set or a fragment offset: the director must not
	 * fragment the tunnel packet (the shim does not reassemble). */
	if (outer->frag_off & bpf_htons(0x3fff))
		return XDP_DROP;
	hlen = outer->ihl * 4;
	inner = (void *)outer + hlen;
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	if (inner->version != 4)
		return XDP_DROP;

	saved = *eth;
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
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
