//! Persistence (`ipvsadm -p`, `ip_vs_sched_persist`): every connection of
//! a client, or of its block under the service's netmask, goes to the real
//! server its template names.

use super::flows::{Family, Flows, schedule};
use crate::conn::{Conn, FlowKey};
use crate::dest::Dest;
use crate::frame::{DropReason, Tick};
use crate::service::{Service, Snapshot};
use crate::stats::WorkerStats;

/// FTP's control port: its template covers every port of the VIP, so the
/// data connections meet the control connection's server.
const FTP_PORT: u16 = 21;

/// The key of the persistence template a new connection `k` of service
/// `svc` is controlled by, and the template's port (see
/// [`Flows::persistent_dest`]).
#[inline]
fn template_key<A: Family>(svc: &Service, k: &FlowKey<A>) -> (FlowKey<A>, u16) {
    let vport = if k.dport == svc.port && svc.port != FTP_PORT {
        k.dport
    } else {
        0
    };
    let client = k.saddr.masked(svc);
    (FlowKey::template(k.proto, client, k.daddr, vport), vport)
}

impl<A: Family> Flows<A> {
    /// Whether this table holds a live template for a new connection `k`
    /// of persistent service `svc` (one [`Flows::persistent_dest`] would
    /// use).
    pub(super) fn has_template(
        &self,
        snap: &Snapshot,
        svc: &Service,
        k: &FlowKey<A>,
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

    /// The real server for a new connection of `svc`: through its
    /// persistence template when the service is persistent (with the
    /// template's index, [`Flows::persistent_dest`]), else as its
    /// scheduler picks.
    pub(super) fn new_dest<'s>(
        &mut self,
        snap: &'s Snapshot,
        stats: &mut WorkerStats,
        svc: &'s Service,
        k: &FlowKey<A>,
        now: Tick,
    ) -> Result<(&'s Dest, Option<u32>), DropReason> {
        if svc.persistence_timeout > 0 {
            let (d, t) = self.persistent_dest(snap, stats, svc, k, now)?;
            Ok((d, Some(t)))
        } else {
            let d = schedule(snap, svc, k, now).ok_or(DropReason::NoDest)?;
            Ok((d, None))
        }
    }

    /// The real server of a persistent service for a new connection, from
    /// the client's persistence template or, without a usable one, from the
    /// scheduler with a new template (`ip_vs_sched_persist`).
    ///
    /// The template is keyed by the client address under the service's
    /// netmask (IPv4) or prefix length (IPv6) and the VIP; its port is the service port, or 0 for port-0
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
        stats: &mut WorkerStats,
        svc: &'s Service,
        k: &FlowKey<A>,
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
        let rip = A::of(dest.addr).ok_or(DropReason::NoDest)?;
        let dport = if vport == 0 { 0 } else { dest.port };
        let expires = now.saturating_add(timeout);
        let tc = Conn::template(&tkey, (rip, dport), dest.fwd, dest.r, expires, timeout);
        let t = self
            .insert(snap, stats, tc, thash, now)
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
