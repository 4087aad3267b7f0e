//! The words every stage shares: a received [`Frame`], the [`Verdict`] a
//! stage gives it, why it was dropped ([`DropReason`]), the pipeline's
//! clock ([`Tick`]) and the batch limit ([`MAX_BATCH`]).
//!
//! This module is the vocabulary's leaf: it imports nothing of the crate
//! but [`crate::wire`], so the parser, the transmitters, the pipeline, the
//! worker and the socket layer all import it downward.

/// Time as the pipeline counts it: whole seconds from any fixed origin.
pub type Tick = u32;

/// The largest batch of frames a worker receives and processes at once
/// (`dataplane.batch_size` may not exceed it).
pub const MAX_BATCH: usize = 64;

/// Where a received frame starts in its buffer (`XDP_PACKET_HEADROOM`, the
/// room the kernel leaves in front of an AF_XDP frame): encapsulation
/// prepends its headers there. A UMEM chunk of `frame_size` bytes holds a
/// frame of at most `frame_size - RX_HEADROOM`.
pub const RX_HEADROOM: usize = 256;

/// A received frame inside its buffer (an AF_XDP UMEM chunk): the bytes
/// `buf[head..head + len]`, with headroom before `head` for headers that
/// encapsulation prepends.
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
    port: u8,
}

impl<'a> Frame<'a> {
    /// `len` bytes at `head` of `buf`, received on port `port`.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize, port: u8) -> Frame<'a> {
        assert!(head + len <= buf.len(), "frame outside its buffer");
        Frame {
            buf,
            head,
            len,
            port,
        }
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Offset of the first byte in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The port it was received on.
    #[inline]
    pub fn port(&self) -> u8 {
        self.port
    }

    /// Sets the port it counts as received on: for a frame that another
    /// worker received and handed over.
    #[inline]
    pub fn set_port(&mut self, port: u8) {
        self.port = port;
    }

    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Grows the frame to `len` bytes into the buffer's tailroom (the new
    /// bytes keep whatever the buffer held). False, unchanged, if the
    /// buffer is too short.
    #[inline]
    pub(crate) fn grow_to(&mut self, len: usize) -> bool {
        if self.head + len > self.buf.len() {
            return false;
        }
        self.len = self.len.max(len);
        true
    }

    /// Sets the length, within what [`Frame::grow_to`] allowed.
    #[inline]
    pub(crate) fn set_len(&mut self, len: usize) {
        assert!(
            self.head + len <= self.buf.len(),
            "frame outside its buffer"
        );
        self.len = len;
    }

    /// Grows the frame by `n` bytes at the front, into the headroom, or —
    /// without headroom — by moving the data back into the tailroom.
    #[inline]
    pub(crate) fn push_front(&mut self, n: usize) -> bool {
        if self.head < n {
            if self.buf.len() < n + self.len {
                return false;
            }
            self.buf.copy_within(self.head..self.head + self.len, n);
            self.head = n;
        }
        self.head -= n;
        self.len += n;
        true
    }
}

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit `len` bytes from the frame's (new) head out of `port`.
    Tx { port: u8, len: usize },
    /// Copied elsewhere — to the worker that owns it, or into this
    /// worker's socket on the port it leaves by — and recycled here.
    Handed,
    /// Not the load balancer's (ARP, the director's own traffic): the
    /// kernel's. An AF_XDP socket cannot give a frame back to the kernel,
    /// so a frame that reached one with this verdict is recycled and
    /// counted (`not_ours`); the steering program keeps them rare.
    NotOurs,
    /// Dropped, and counted by reason.
    Drop(DropReason),
}

/// Declares an enum of counters with their names and descriptions, one
/// line each: the only place a counter is named. Used for
/// [`DropReason`] here and for `stats::Counter`.
macro_rules! named_counters {
    (
        $(#[$attr:meta])*
        pub enum $enum:ident {
            $($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $enum {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl $enum {
            pub const COUNT: usize = [$($enum::$variant),+].len();
            pub const ALL: [$enum; Self::COUNT] = [$($enum::$variant),+];

            /// The counter's name, as logs, `xdpvsadm` and metrics show it.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)+
                }
            }

            /// What the counter counts, in one line.
            pub fn help(self) -> &'static str {
                match self {
                    $($enum::$variant => concat!($($doc),+).trim_ascii(),)+
                }
            }
        }
    };
}
pub(crate) use named_counters;

named_counters! {
    /// Why a frame was dropped. Each has a counter.
    pub enum DropReason {
        /// Truncated or inconsistent headers.
        Malformed = "malformed",
        /// IPv4 header checksum wrong (the kernel's `ip_rcv` drops these too).
        BadIpChecksum = "bad_ip_checksum",
        /// A fragment of a packet for a VIP (ports are not in every
        /// fragment, and this forwarder does not reassemble), or a first
        /// fragment from a NAT real server with no connection here.
        Fragment = "fragment",
        /// A later fragment from a NAT real server whose first fragment
        /// this worker did not translate (out of order, lost, or received
        /// by another worker): dropped rather than leak the real server's
        /// address.
        FragmentUntracked = "fragment_untracked",
        /// A TCP segment that is not a SYN, for a VIP, with no connection.
        NoConnection = "no_connection",
        /// The scheduler found no available real server.
        NoDest = "no_dest",
        /// The connection table is full, and nothing in it had expired: new
        /// flows are refused.
        TableFull = "table_full",
        /// The unreplied share is at its cap and no unreplied connection
        /// was found to evict in a bounded number of probes.
        UnrepliedFull = "unreplied_full",
        /// The real server's next-hop MAC is not resolved yet.
        NoNeighbour = "no_neighbour",
        /// A TUN packet with no outer source address: no
        /// `dataplane.tunnel_source`, and the kernel's route to the real
        /// server names no source (its out interface has no IPv4 address).
        NoSource = "no_source",
        /// The connection's real server was deleted.
        DestGone = "dest_gone",
        /// Too big for the egress MTU and fragmentation allowed (not done
        /// here), or too many "fragmentation needed" errors this second.
        TooBig = "too_big",
        /// A NAT reply whose TTL ran out.
        TtlExceeded = "ttl_exceeded",
        /// No room in the buffer to prepend the tunnel header.
        NoHeadroom = "no_headroom",
        /// A NAT connection's reply 5-tuple is already another connection's.
        NatCollision = "nat_collision",
        /// An ICMP error about one of our connections with a wrong ICMP
        /// checksum (IPVS drops these too).
        BadIcmpChecksum = "bad_icmp_checksum",
        /// A packet of a connection whose real server its health checks
        /// took out of service, with `expire_nodest_conn` off: dropped, the
        /// connection kept for the server's return (IPVS drops these too).
        DestDown = "dest_down",
        /// A malformed IPv6 packet for us: extension-header chain
        /// truncated, too long, or its transport header cut short.
        BadIpv6 = "bad_ipv6",
        /// An IPv6 packet for a VIP carrying a Fragment header (not
        /// reassembled here; ports may be in another fragment).
        Ipv6Fragment = "ipv6_fragment",
        /// An IPv6 packet forwarded with hop limit at most 1: toward a
        /// real server in any mode, or a NAT reply toward its client (no
        /// ICMPv6 time exceeded is sent).
        HopLimit = "hop_limit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_once_and_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.help().is_empty() && !r.help().starts_with(' '));
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
