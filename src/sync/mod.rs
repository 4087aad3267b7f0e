//! Connection sync with Linux IPVS's own protocol (version 1,
//! `net/netfilter/ipvs/ip_vs_sync.c`): a master multicasts the state of its
//! connections to 224.0.0.81:8848 (+ thread id), backups insert what they
//! receive into their tables so that established connections survive the
//! loss of the master.
//!
//! [`wire`] is the message format: byte views over received datagrams and an
//! encoder into a caller's buffer, neither of which allocates, and every
//! malformed input a counted [`wire::SyncError`]. [`net`] is the sockets
//! (the master's multicast sender, the backup's receiver) and the
//! master's batching of entries into messages.

pub mod net;
pub mod wire;
