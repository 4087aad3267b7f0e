//! xdpvs — the Linux Virtual Server director as a userspace packet
//! forwarder.
//!
//! A frame's path: a [`worker`] receives it from an AF_XDP socket
//! ([`xsk`]) and hands it to its [`pipeline::Pipeline`], which parses the
//! headers in place ([`wire`]), finds the packet's connection in the
//! worker's own table ([`conn`]) or, for a new flow to a virtual service,
//! asks the service's scheduler ([`sched`]) for a real server ([`dest`]),
//! read from an immutable [`service::Snapshot`]; rewrites the frame for the
//! real server's forwarding method — MAC only (DR), IPIP encapsulation
//! (TUN) or address and port translation (NAT) ([`xmit`]) — and returns the
//! [`frame::Verdict`]: transmit out of a port, not ours, or dropped with a
//! [`frame::DropReason`], each counted once in the worker's [`stats`]
//! block. The control side ([`ctrl`], [`daemon`]) applies [`config`] files
//! and `xdpvsadm` requests ([`adm`]) to the [`service::ServiceTable`] and
//! publishes new snapshots; workers pick them up between batches. The
//! daemon writes its events through [`log`] (leveled, rate-limited lines);
//! workers never log.
//!
//! Modules import only downward, in these layers (checked by
//! `tests/layers.rs`): [`wire`], [`mem`], [`netlink`], [`log`] → [`frame`],
//! [`stats`] → [`dest`], [`conn`], [`sched`] → [`config`] → [`service`] →
//! [`xmit`], [`app`] → [`pipeline`] → [`worker`], [`xsk`] → [`ctrl`], [`health`], [`sync`] →
//! [`daemon`], [`adm`]. `unsafe` is denied everywhere but [`xsk`] and
//! [`mem`].

#![deny(unsafe_code)]

pub mod adm;
pub mod app;
pub mod config;
pub mod conn;
pub mod ctrl;
pub mod daemon;
pub mod dest;
pub mod frame;
pub mod health;
pub mod log;
pub mod mem;
pub mod netlink;
pub mod pipeline;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
pub mod wire;
pub mod worker;
pub mod xmit;
pub mod xsk;
