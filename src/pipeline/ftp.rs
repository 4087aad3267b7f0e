//! The FTP helper on NAT control connections (see [`crate::app::ftp`]):
//! the pipeline's side of it — sequence shifts, 227 rewrites and the data
//! connections that replies and commands announce.
//!
//! Bounded state: a control connection has at most one pending data
//! connection, as `nf_conntrack_ftp` keeps one expectation per master. A
//! new announcement (PASV/EPSV reply, PORT/EPRT command) on another port
//! replaces the previous one: its expectation is removed, and the
//! connection a PORT created is ended if the real server has not opened
//! it yet (no packet seen); a data connection under way is left alone.
//! So 10 000 PASV replies or PORT commands on one control connection leave
//! it and one data entry in the table. The same port announced again (a
//! retransmission) refreshes the entry in place. Each control connection's
//! last announcement is kept in `State::ftp_pending`, by its entry index,
//! tagged with its client address and port so that a later occupant of
//! the entry does not inherit it.

use std::net::Ipv4Addr;

use super::{EXPECT_TIMEOUT, State};
use crate::app;
use crate::conn::{Conn, FlowKey, Kind, NewConn, Side, TcpState};
use crate::dest::DestRef;
use crate::dest::Forward;
use crate::frame::{Frame, Tick};
use crate::service::Snapshot;
use crate::stats::Counter;
use crate::wire::Layout;
use crate::wire::ipv4::PROTO_TCP;

impl State {
    /// The FTP helper on a packet of NAT control connection `i` (see
    /// [`crate::app::ftp`]): shifts sequence numbers for earlier resized
    /// replies, rewrites a 227 reply's address to the VIP, and creates the
    /// data connections that replies and commands announce. Returns the
    /// packet's (possibly new) layout; on anything doubtful the packet
    /// passes as it is.
    #[cold]
    #[inline(never)]
    pub(super) fn ftp(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        l: &Layout,
        i: u32,
        side: Side,
        now: Tick,
    ) -> Layout {
        let end = l.l2_len + l.ip_len;
        let l4 = l.l4();
        let doff = usize::from(frame.data()[l4 + 12] >> 4) * 4;
        let payload_at = l4 + doff;
        let intact = payload_at < end && app::ftp::checksum_ok(frame.data(), l);
        let c = *self.v4.conns.get(i);
        let seq = u32::from_be_bytes(frame.data()[l4 + 4..l4 + 8].try_into().unwrap_or([0; 4]));
        match side {
            Side::Server => {
                app::fix_seq(&mut frame.data_mut()[l4..end], &c.seq);
                if !intact {
                    return *l;
                }
                match app::ftp::reply(&frame.data()[payload_at..end]) {
                    Some(app::ftp::Reply::Pasv {
                        addr,
                        port,
                        at,
                        len,
                    }) => {
                        if addr == c.vaddr {
                            self.expect(snap, i, &c, port, now);
                            return *l;
                        }
                        if addr != c.daddr {
                            self.stats.inc(Counter::FtpRefused);
                            return *l;
                        }
                        let (text, n) = app::ftp::pasv_text(c.vaddr);
                        let mtu = usize::from(snap.ports[usize::from(c.in_port())].mtu);
                        let Some(nl) =
                            app::ftp::replace(frame, l, payload_at, at, len, &text[..n], mtu)
                        else {
                            self.stats.inc(Counter::FtpRefused);
                            return *l;
                        };
                        if n != len {
                            self.v4
                                .conns
                                .get_mut(i)
                                .seq
                                .resized(seq, n as i32 - len as i32);
                        }
                        self.stats.inc(Counter::FtpRewrites);
                        self.expect(snap, i, &c, port, now);
                        nl
                    }
                    Some(app::ftp::Reply::Epsv { port }) => {
                        self.expect(snap, i, &c, port, now);
                        *l
                    }
                    None => *l,
                }
            }
            Side::Client => {
                app::fix_ack(&mut frame.data_mut()[l4..end], doff, &c.seq);
                if intact && let Some(a) = app::ftp::command(&frame.data()[payload_at..end]) {
                    if a.addr == c.caddr {
                        self.open_active(snap, i, &c, a.port, now);
                    } else {
                        self.stats.inc(Counter::FtpRefused);
                    }
                }
                *l
            }
        }
    }

    /// Makes `port` the data connection control connection `i` (`c`)
    /// announced last, forgetting the one before it if that is still
    /// pending (module docs).
    fn replace_pending(&mut self, snap: &Snapshot, i: u32, c: &Conn<Ipv4Addr>, port: u16) {
        let owner = u64::from(u32::from(c.caddr)) << 32 | u64::from(c.cport) << 16;
        let slot = &mut self.ftp_pending[i as usize];
        let last = std::mem::replace(slot, owner | u64::from(port));
        let prev = last as u16;
        if last & !0xffff != owner || prev == 0 || prev == port {
            return;
        }
        // Passive: the expectation of a connection from the client.
        let ek = FlowKey::expectation(c.proto(), c.caddr, c.vaddr, prev);
        if let Some((j, _)) = self.v4.conns.lookup(&ek, self.v4.conns.hash(&ek)) {
            let e = self.v4.conns.get(j);
            if e.daddr == c.daddr && e.dest() == c.dest() {
                self.v4.conns.remove(j);
            }
        }
        // Active: the connection the real server was to open from its
        // port 20, if it has not.
        if let Some(vport) = c.vport.checked_sub(1) {
            let key = FlowKey {
                proto: PROTO_TCP,
                saddr: c.caddr,
                sport: prev,
                daddr: c.vaddr,
                dport: vport,
            };
            if let Some((j, Side::Client)) = self.v4.conns.lookup(&key, self.v4.conns.hash(&key)) {
                let d = self.v4.conns.get(j);
                if d.kind() == Kind::Connection
                    && d.daddr == c.daddr
                    && d.dest() == c.dest()
                    && d.tcp_state() == TcpState::None
                {
                    self.end(snap, j);
                }
            }
        }
    }

    /// Expects the client of control connection `i` (`c`) to open a data
    /// connection to VIP:`port`, for its real server's `port` (passive
    /// mode), in place of what it announced before. Refreshes an
    /// expectation that is already there.
    fn expect(&mut self, snap: &Snapshot, i: u32, c: &Conn<Ipv4Addr>, port: u16, now: Tick) {
        self.replace_pending(snap, i, c, port);
        let e = Conn::expectation(c, port, now.saturating_add(EXPECT_TIMEOUT));
        let key = e.client_key();
        let h = self.v4.conns.hash(&key);
        if let Some((j, _)) = self.v4.conns.lookup(&key, h) {
            self.v4.conns.get_mut(j).retarget(e.daddr, e.dest());
            self.v4.conns.set_expires(j, e.expires());
        } else if self.v4.conns.insert(e, h).is_err() {
            self.stats.inc(Counter::FtpRefused);
            return;
        }
        self.stats.inc(Counter::FtpExpected);
    }

    /// The expected data connection a client's SYN to `key`'s VIP port
    /// opens, taken out of the table: its real server and port.
    /// Whether the helper expects data connection `key` here (what
    /// [`State::take_expected`] would take), without taking it.
    pub(super) fn expects(&self, key: &FlowKey<Ipv4Addr>, now: Tick) -> bool {
        let ek = FlowKey::expectation(key.proto, key.saddr, key.daddr, key.dport);
        self.v4
            .conns
            .lookup(&ek, self.v4.conns.hash(&ek))
            .is_some_and(|(j, _)| self.v4.conns.get(j).expires() > now)
    }

    pub(super) fn take_expected(
        &mut self,
        key: &FlowKey<Ipv4Addr>,
        now: Tick,
    ) -> Option<(DestRef, Ipv4Addr, u16)> {
        let ek = FlowKey::expectation(key.proto, key.saddr, key.daddr, key.dport);
        let (j, _) = self.v4.conns.lookup(&ek, self.v4.conns.hash(&ek))?;
        let e = *self.v4.conns.get(j);
        self.v4.conns.remove(j);
        (e.expires() > now).then_some((e.dest(), e.daddr, e.dport))
    }

    /// Creates the data connection the real server of control connection
    /// `i` (`c`) will open from its port 20 (control port − 1) to the
    /// client's `port` (active mode), so that its packets are translated
    /// to come from VIP:20; in place of what `c` announced before.
    fn open_active(&mut self, snap: &Snapshot, i: u32, c: &Conn<Ipv4Addr>, port: u16, now: Tick) {
        let (Some(vport), Some(dport)) = (c.vport.checked_sub(1), c.dport.checked_sub(1)) else {
            return;
        };
        let Some(dest) = snap.dest(c.dest()) else {
            return;
        };
        self.replace_pending(snap, i, c, port);
        let conn = Conn::connection(&NewConn {
            key: FlowKey {
                proto: PROTO_TCP,
                saddr: c.caddr,
                sport: port,
                daddr: c.vaddr,
                dport: vport,
            },
            daddr: c.daddr,
            dport,
            fwd: Forward::Nat,
            dest: c.dest(),
            in_port: c.in_port(),
            client_mac: c.client_mac(),
            expires: now.saturating_add(EXPECT_TIMEOUT),
        });
        let key = conn.client_key();
        let h = self.v4.conns.hash(&key);
        if let Some((j, _)) = self.v4.conns.lookup(&key, h) {
            let old = *self.v4.conns.get(j);
            if old.daddr == conn.daddr && old.dport == dport && old.expires() > now {
                return; // the same PORT again
            }
            self.end(snap, j);
        }
        match self.v4.conns.insert(conn, h) {
            Ok(_) => {
                self.stats.inc(Counter::ConnsCreated);
                self.stats.inc(Counter::FtpConns);
                dest.bind();
                self.count_conn(dest);
            }
            Err(_) => self.stats.inc(Counter::FtpRefused),
        }
    }
}
