//! Persistence (`ipvsadm -p`, `ip_vs_sched_persist`): every connection of
//! a client, or of its block under the service's netmask, goes to the real
//! server its template names.

use std::net::{IpAddr, Ipv4Addr};

use super::State;
use super::new_conn::schedule;
use crate::conn::{Conn, FlowKey};
use crate::dest::Dest;
use crate::frame::{DropReason, Tick};
use crate::service::{Service, Snapshot};

/// FTP's control port: its template covers every port of the VIP, so the
/// data connections meet the control connection's server.
const FTP_PORT: u16 = 21;

/// The key of the persistence template a new connection `k` of service
/// `svc` is controlled by, and the template's port (see
/// [`State::persistent_dest`]).
#[inline]
fn template_key(svc: &Service, k: &FlowKey<Ipv4Addr>) -> (FlowKey<Ipv4Addr>, u16) {
    let mask = svc.persistence_netmask.to_bits();
    let vport = if k.dport == svc.port && svc.port != FTP_PORT {
        k.dport
    } else {
        0
    };
    let client = Ipv4Addr::from_bits(k.saddr.to_bits() & mask);
    (FlowKey::template(k.proto, client, k.daddr, vport), vport)
}

impl State {
    /// Whether this table holds a live template for a new connection `k`
    /// of persistent service `svc` (one [`State::persistent_dest`] would
    /// use).
    pub(super) fn has_template(
        &self,
        snap: &Snapshot,
        svc: &Service,
        k: &FlowKey<Ipv4Addr>,
        now: Tick,
    ) -> bool {
        let (tkey, _) = template_key(svc, k);
        self.conns
            .lookup(&tkey, self.conns.hash(&tkey))
            .is_some_and(|(t, _)| {
                let tc = self.conns.get(t);
                (tc.expires() > now || tc.controls() > 0)
                    && snap.dest(tc.dest()).is_some_and(|d| usable(snap, d))
            })
    }

    /// The real server of a persistent service for a new connection, from
    /// the client's persistence template or, without a usable one, from the
    /// scheduler with a new template (`ip_vs_sched_persist`).
    ///
    /// The template is keyed by the client address under the service's
    /// netmask and the VIP; its port is the service port, or 0 for port-0
    /// services and for FTP (port 21), whose data connections use other
    /// ports of the same real server. Each new connection re-arms the
    /// template for the persistence timeout; when it comes due while it
    /// still controls connections it is re-armed again, so it expires a
    /// timeout after its last connection is gone. A template whose real
    /// server has been deleted or taken out of service (health checks) is
    /// replaced; one whose server is overloaded is still honoured, and one
    /// whose server is quiescent (weight 0) too unless
    /// `expire_quiescent_template` is on (`ip_vs_check_template`).
    pub(super) fn persistent_dest<'s>(
        &mut self,
        snap: &'s Snapshot,
        svc: &'s Service,
        k: &FlowKey<Ipv4Addr>,
        now: Tick,
    ) -> Result<(&'s Dest, u32), DropReason> {
        let (tkey, vport) = template_key(svc, k);
        let timeout = svc.persistence_timeout;
        let thash = self.conns.hash(&tkey);
        if let Some((t, _)) = self.conns.lookup(&tkey, thash) {
            let tc = *self.conns.get(t);
            // Past its time but still controlling connections, IPVS would
            // have re-armed it: it is alive.
            let alive = tc.expires() > now || tc.controls() > 0;
            match snap.dest(tc.dest()) {
                Some(d) if alive && usable(snap, d) => {
                    self.conns.set_expires(t, now.saturating_add(timeout));
                    return Ok((d, t));
                }
                d => {
                    if tc.controls() > 0 {
                        // Its connections still refer to it: keep it until
                        // they are gone, out of the lookup's way.
                        self.conns.unhash(t);
                    } else {
                        if let Some(d) = d {
                            d.counters.set_persistent(false);
                        }
                        self.conns.remove(t);
                    }
                }
            }
        }
        let dest = schedule(snap, svc, k, now).ok_or(DropReason::NoDest)?;
        let IpAddr::V4(rip) = dest.addr else {
            return Err(DropReason::NoDest);
        };
        let dport = if vport == 0 { 0 } else { dest.port };
        let expires = now.saturating_add(timeout);
        let tc = Conn::template(&tkey, (rip, dport), dest.fwd, dest.r, expires, timeout);
        let t = self
            .insert(snap, tc, thash, now)
            .map_err(|_| DropReason::TableFull)?;
        dest.counters.set_persistent(true);
        Ok((dest, t))
    }
}

/// Whether a template may keep sending its client to `d`
/// (`ip_vs_check_template`): the server is in service, and not quiescent
/// where `expire_quiescent_template` is on.
#[inline]
fn usable(snap: &Snapshot, d: &Dest) -> bool {
    d.in_service && !(snap.expire_quiescent_template && d.weight == 0)
}
