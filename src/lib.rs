//! xdpvs — the Linux Virtual Server director as a userspace packet
//! forwarder.
//!
//! A frame's path: a worker receives it from an AF_XDP socket (rx) and hands
//! it to its [`pipeline::Pipeline`], which parses the headers in place
//! ([`wire`]), finds the packet's connection in the worker's own table or,
//! for a new flow to a virtual service, asks the service's scheduler for a
//! real server ([`conn`], [`sched`], [`dest`], read from an immutable
//! [`service::Snapshot`]), rewrites the frame for the real server's
//! forwarding method — MAC only (DR), IPIP encapsulation (TUN) or address
//! and port translation (NAT) ([`xmit`]) — and returns the verdict: send it
//! out of a port (tx), pass it to the kernel, or drop it and count why.
//! The control side ([`config`], [`service::ServiceTable`]) edits services
//! and real servers and publishes new snapshots; workers pick them up
//! between batches.

#![deny(unsafe_code)]

pub mod adm;
pub mod app;
pub mod config;
pub mod conn;
pub mod ctrl;
pub mod daemon;
pub mod dest;
pub mod frame;
pub mod mem;
pub mod netlink;
pub mod pipeline;
pub mod sched;
pub mod service;
pub mod stats;
pub mod wire;
pub mod worker;
pub mod xmit;
pub mod xsk;
