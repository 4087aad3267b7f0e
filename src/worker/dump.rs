//! `xdpvsadm -c`: a worker copies its connection table out on request, one
//! slice at a time.
//!
//! The control thread asks for a slice ([`ConnDump::request`]); the worker
//! sees the request between rounds (one relaxed load), copies the live
//! entries of the next [`SLICE`] entry slots out and clears it; the control
//! thread takes the slice and asks for the next, until the worker says the
//! table is done. So a listing of a table of any size never holds a worker
//! for more than one slice (a few thousand entries) between two rounds,
//! and memory per worker is bounded by one slice. A connection that lives
//! through the whole listing is listed exactly once (an entry keeps its
//! slot); one opened or closed meanwhile may or may not be, as with
//! `/proc/net/ip_vs_conn`. The lock is only ever taken on that control
//! path, never per packet.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Protocol;
use crate::conn::{Conn, ConnTable};
use crate::frame::Tick;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

/// Most entries in one slice.
pub const SLICE: usize = 4096;

/// Most entry slots a worker walks for one slice (free slots cost a flag
/// test each; an empty region of the table is crossed quickly).
pub const SLICE_SLOTS: usize = 4 * SLICE;

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

/// One slice of a worker's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnSlice {
    pub entries: Vec<ConnEntry>,
    /// The worker's table has no more slots after this slice.
    pub last: bool,
}

#[derive(Default)]
struct Cursor {
    /// The first slot of the slice asked for.
    next: usize,
    answer: Option<ConnSlice>,
}

/// A request for a slice of a worker's connection entries and the answer.
#[derive(Default)]
pub(super) struct ConnDump {
    pub requested: AtomicBool,
    cursor: Mutex<Cursor>,
}

impl ConnDump {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for the slice starting at slot `from` (0: a new listing).
    pub fn request(&self, from: usize) {
        let mut c = self.lock();
        c.next = from;
        c.answer = None;
        // Set and cleared only under the lock, so that a worker finishing
        // one slice never clears the request for the next. The worker's
        // unlocked load is a hint; the lock orders the cursor.
        self.requested.store(true, Ordering::Relaxed);
    }

    /// Worker side: answers the request with the next slice of `conns`.
    pub fn answer(&self, conns: &ConnTable<Ipv4Addr>, now: Tick) {
        let mut c = self.lock();
        if !self.requested.load(Ordering::Relaxed) {
            return; // withdrawn meanwhile
        }
        let from = c.next;
        let end = from.saturating_add(SLICE_SLOTS).min(conns.slots());
        let mut entries = Vec::with_capacity(SLICE.min(end.saturating_sub(from)));
        // The next slice starts after the last slot this one walked.
        let mut to = end;
        for (i, e) in conns.live_in(from..end) {
            if entries.len() == SLICE {
                to = i;
                break;
            }
            entries.extend(conn_view(e, now));
        }
        c.next = to;
        c.answer = Some(ConnSlice {
            entries,
            last: to >= conns.slots(),
        });
        self.requested.store(false, Ordering::Relaxed);
    }

    /// The answer, once there is one, and the slot the next slice starts
    /// at.
    pub fn take(&self) -> Option<(ConnSlice, usize)> {
        let mut c = self.lock();
        let next = c.next;
        c.answer.take().map(|a| (a, next))
    }

    /// Withdraws an unanswered request (a worker that does not answer).
    pub fn cancel(&self) {
        let mut c = self.lock();
        self.requested.store(false, Ordering::Relaxed);
        c.answer = None;
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

#[cfg(test)]
mod tests;
