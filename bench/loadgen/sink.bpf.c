// SPDX-License-Identifier: GPL-2.0
//
// xdpvs-loadgen sink: every IPv4 frame (plain, or IPIP from a TUN director)
// goes to the AF_XDP socket of the queue it arrived on; ARP and everything
// else stays with the kernel, so the sink's namespace still answers the
// director's neighbour lookups for the real-server addresses it holds.
// Test equipment for scripts/bench.sh, not part of the director.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

SEC("xdp")
int xdpvs_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}
