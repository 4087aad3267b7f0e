//! `xdpvsadm -c`: a worker copies its connection table out on request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Protocol;
use crate::conn::{Conn, ConnTable};
use crate::frame::Tick;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

/// One connection (or persistence template) as `xdpvsadm -c` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnEntry {
    pub proto: Protocol,
    pub client: SocketAddr,
    pub virt: SocketAddr,
    pub dest: SocketAddr,
    /// As `/proc/net/ip_vs_conn` names it: the TCP state, or `UDP`.
    pub state: &'static str,
    /// Seconds until it expires.
    pub expires: u32,
}

/// A request for a worker's connection entries and the answer. The
/// control thread sets `requested`; the worker sees it between rounds (one
/// relaxed load), copies its table out and clears it. The lock is only
/// ever taken on that control path, never per packet.
#[derive(Default)]
pub(super) struct ConnDump {
    pub requested: AtomicBool,
    result: Mutex<Option<Vec<ConnEntry>>>,
}

impl ConnDump {
    /// Answers the request with the entries of `conns`.
    pub fn answer(&self, conns: &ConnTable<Ipv4Addr>, now: Tick) {
        let entries = conns.iter().filter_map(|c| conn_view(c, now)).collect();
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(entries);
        self.requested.store(false, Ordering::Release);
    }

    /// The answer, once there is one.
    pub fn take(&self) -> Option<Vec<ConnEntry>> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A connection (or persistence template) as `xdpvsadm -c` lists it.
fn conn_view(c: &Conn<Ipv4Addr>, now: Tick) -> Option<ConnEntry> {
    let proto = match c.proto() {
        PROTO_TCP => Protocol::Tcp,
        PROTO_UDP => Protocol::Udp,
        _ => return None,
    };
    let state = if proto == Protocol::Tcp {
        c.tcp_state().name()
    } else {
        "UDP"
    };
    let sa = |a: Ipv4Addr, p: u16| SocketAddr::new(IpAddr::V4(a), p);
    Some(ConnEntry {
        proto,
        client: sa(c.caddr, c.cport),
        virt: sa(c.vaddr, c.vport),
        dest: sa(c.daddr, c.dport),
        state,
        expires: c.expires().saturating_sub(now),
    })
}
