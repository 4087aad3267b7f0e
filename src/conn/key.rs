//! The key the connection table is indexed by.

/// The 5-tuple of a packet, as seen on the wire (source → destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<A> {
    pub proto: u8,
    pub saddr: A,
    pub sport: u16,
    pub daddr: A,
    pub dport: u16,
}
