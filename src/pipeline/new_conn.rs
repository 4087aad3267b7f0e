//! A packet that belongs to no connection: the service it is for, the real
//! server its scheduler (or its client's persistence template) picks, and
//! the connection opened for it (`ip_vs_schedule`, `ip_vs_conn_new`); and
//! the state machine every packet of a connection moves.

use std::net::{IpAddr, Ipv4Addr};

use super::State;
use super::parse::{Parsed, TCP_RST, TCP_SYN};
use crate::conn::{self, Conn, Direction, NewConn, Side};
use crate::dest::Dest;
use crate::dest::Forward;
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::service::Snapshot;
use crate::stats::Counter;
use crate::wire::ipv4::PROTO_TCP;

/// A connection about to be opened for a client's first packet.
pub(super) struct Opening<'a> {
    pub dest: &'a Dest,
    /// The real server's address and port.
    pub rip: Ipv4Addr,
    pub dport: u16,
    /// The persistence template that controls it.
    pub template: Option<u32>,
}

impl State {
    /// A packet that belongs to no connection: schedule it if it is for a
    /// virtual service.
    pub(super) fn new_conn(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        let k = &p.key;
        let syn = p.tcp_flags & (TCP_SYN | TCP_RST) == TCP_SYN;
        if snap.ftp_nat
            && k.proto == PROTO_TCP
            && syn
            && let Some((d, rip, rport)) = self.take_expected(k, now)
        {
            // A passive FTP data connection the helper expects.
            let Some(dest) = snap.dest(d) else {
                return Verdict::Drop(DropReason::DestGone);
            };
            self.stats.inc(Counter::FtpConns);
            let o = Opening {
                dest,
                rip,
                dport: rport,
                template: None,
            };
            return self.open(snap, frame, p, hash, &o, now);
        }
        let Some(svc) = snap.service_v4(k.proto, k.daddr, k.dport) else {
            return Verdict::NotOurs;
        };
        // TCP connections start with a SYN (`tcp_conn_schedule`).
        if k.proto == PROTO_TCP && !syn {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let (dest, template) = match self.v4.new_dest(snap, &mut self.stats, svc, k, now) {
            Ok(x) => x,
            Err(r) => return Verdict::Drop(r),
        };
        let IpAddr::V4(rip) = dest.addr else {
            return Verdict::Drop(DropReason::NoDest);
        };
        // The real server's port for the service's own port; any other
        // port of a port-0 service, or a port-0 real server, keeps the
        // port the client asked for (`ip_vs_sched_persist`).
        let dport = if k.dport == svc.port && dest.port != 0 {
            dest.port
        } else {
            k.dport
        };
        let o = Opening {
            dest,
            rip,
            dport,
            template,
        };
        self.open(snap, frame, p, hash, &o, now)
    }

    /// Adds the connection of the client's first packet `p` as `o` says,
    /// and forwards the packet.
    fn open(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        o: &Opening<'_>,
        now: Tick,
    ) -> Verdict {
        let dest = o.dest;
        let mut client_mac = [0; 6];
        client_mac.copy_from_slice(&frame.data()[6..12]);
        let conn = Conn::connection(&NewConn {
            key: p.key,
            daddr: o.rip,
            dport: o.dport,
            fwd: dest.fwd,
            dest: dest.r,
            in_port: frame.port(),
            client_mac,
            expires: now.saturating_add(snap.timeouts.tcp(conn::TcpState::None)),
        });
        let i = match self
            .v4
            .open(snap, &mut self.stats, conn, hash, o.template, now)
        {
            Ok(i) => i,
            Err(r) => return Verdict::Drop(r),
        };
        dest.bind();
        self.count_conn(dest);
        self.count(dest, Side::Client, p.layout.ip_len);
        let dir = if dest.fwd == Forward::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.update_state(snap, frame.data(), i, dest, dir, p, true, now);
        let Some(e) = super::egress(snap, dest, dest.src) else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let t = super::target(&conn);
        self.tx
            .to_server(frame, &p.layout, &t, &e, &mut self.stats, now)
    }

    /// [`super::flows::Flows::update_state`] for IPv4 packet `p` (frame
    /// `d`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_state(
        &mut self,
        snap: &Snapshot,
        d: &[u8],
        i: u32,
        dest: &Dest,
        dir: Direction,
        p: &Parsed,
        first: bool,
        now: Tick,
    ) {
        let payload = || tcp_payload(d, p);
        self.v4
            .update_state(snap, i, dest, dir, p.tcp_flags, payload, first, now);
    }
}

/// Whether TCP segment `p` (in frame `d`) carries payload.
#[inline]
fn tcp_payload(d: &[u8], p: &Parsed) -> bool {
    let l4 = p.layout.l4();
    let hdr = d.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
    p.layout.ip_len > p.layout.ihl + hdr
}
