//! The immutable view of the services and real servers that the packet
//! path reads; [`super::ServiceTable`] builds a new one for every change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::steer::{SteerRule, Superseded};
use crate::config::Protocol;
use crate::conn::Timeouts;
use crate::dest::{Dest, DestRef, Stats};
use crate::frame::Tick;
use crate::sched::{Dests, Sched};

/// A virtual service as workers see it.
pub struct Service {
    pub proto: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    pub sched: Arc<Sched>,
    /// The service table's version of the service this was built from.
    pub(crate) version: u64,
    /// Slots of its real servers, in IPVS list order (newest first).
    pub dests: Box<[u32]>,
    pub persistence_timeout: u32,
    pub persistence_netmask: Ipv4Addr,
    /// IPv6 services: the persistence prefix length (`ipvsadm -M` takes
    /// one for IPv6, 128 by default); unused for IPv4.
    pub persistence_prefix6: u8,
    /// The service's traffic (`ipvsadm --stats`).
    pub stats: Arc<Stats>,
    /// Some real server is NAT: replies come back through the director, so
    /// workers hand its packets to the client's owner (see `worker`).
    pub has_nat: bool,
}

/// One of the director's network ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub mac: [u8; 6],
    pub mtu: u16,
    /// TCP/UDP frames received here with a partial checksum are finished
    /// before they are forwarded (`dataplane.complete_checksums`, decided
    /// for the port's driver at start-up; [`crate::wire::partial`]).
    pub complete_checksums: bool,
}

/// Protocol number on the wire.
pub fn ip_proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => crate::wire::ipv4::PROTO_TCP,
        Protocol::Udp => crate::wire::ipv4::PROTO_UDP,
    }
}

/// Everything the packet path reads, immutable once built.
pub struct Snapshot {
    pub ports: Box<[Port]>,
    /// Outer source address of IPIP packets (TUN).
    pub tunnel_source: Option<Ipv4Addr>,
    pub timeouts: Timeouts,
    /// The connection tables' flood defences (`[connections]`).
    pub defense: crate::conn::Defense,
    /// `connections.expire_nodest_conn` (IPVS's sysctl).
    pub expire_nodest_conn: bool,
    /// `connections.expire_quiescent_template` (IPVS's sysctl).
    pub expire_quiescent_template: bool,
    pub(super) services: Box<[Service]>,
    /// (proto, IPv4 VIP, port) → index in `services`.
    pub(super) v4: hashbrown::HashMap<(u8, Ipv4Addr, u16), u32, foldhash::fast::FixedState>,
    pub(super) dests: Box<[Option<Dest>]>,
    pub(super) vips_v4: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
    pub(super) nat_rips_v4: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
    /// IPv4 VIP → its persistent TCP port-21 service (see `service_v4`).
    pub(super) ftp_v4: hashbrown::HashMap<Ipv4Addr, u32, foldhash::fast::FixedState>,
    /// The same four for IPv6 services.
    pub(super) v6: hashbrown::HashMap<(u8, Ipv6Addr, u16), u32, foldhash::fast::FixedState>,
    pub(super) vips_v6: hashbrown::HashSet<Ipv6Addr, foldhash::fast::FixedState>,
    pub(super) nat_rips_v6: hashbrown::HashSet<Ipv6Addr, foldhash::fast::FixedState>,
    pub(super) ftp_v6: hashbrown::HashMap<Ipv6Addr, u32, foldhash::fast::FixedState>,
    /// Virtual ports whose NAT connections get the FTP helper
    /// (`connections.ftp_ports`, IPVS's `ip_vs_ftp ports=`).
    pub ftp_ports: Box<[u16]>,
    /// Some TCP service with a NAT real server has a port in `ftp_ports`
    /// (or is a port-0 service): the helper may create connections.
    pub ftp_nat: bool,
    /// Workers hand NAT and persistent traffic to the owner of the client's
    /// address (masked by `steer_mask`) rather than of its address and
    /// port, so that all connections of one client meet in one table (see
    /// `worker`). Set when some service is persistent or `ftp_nat` holds.
    pub steer_by_client: bool,
    /// The widest persistence netmask of all persistent services (the AND
    /// of their masks), as bits.
    pub steer_mask: u32,
    /// Some service has a NAT real server or `steer_by_client` holds, or
    /// an old steering rule is still kept: with several workers, received
    /// frames must be checked for their owner. Otherwise (DR and TUN only)
    /// every frame stays where it arrived and workers skip that check and
    /// its service lookup.
    pub handover: bool,
    /// Who owns a packet under these services (`service::steer`).
    pub steering: Arc<SteerRule>,
    /// The rules this one superseded that connections may still be owned
    /// under, newest first (at most `HISTORY_CAP`).
    pub steer_history: Box<[Superseded]>,
    /// How long a rule this one supersedes is kept at least: the longest
    /// timeout plus a margin.
    pub steer_keep: Tick,
}

impl Snapshot {
    /// The service for a packet to `addr:port`: the exact one, else the
    /// VIP's port-0 (all ports) service.
    ///
    /// Between the two, as IPVS's `ip_vs_service_find` does: a TCP packet
    /// to port 20 or to an unprivileged port (≥ 1024) of a VIP with a
    /// persistent FTP service (port 21) belongs to that service — it may
    /// be one of its data connections, which persistence sends to the
    /// control connection's real server (DR and TUN FTP, the LVS way).
    #[inline]
    pub fn service_v4(&self, proto: u8, addr: Ipv4Addr, port: u16) -> Option<&Service> {
        let i = self
            .v4
            .get(&(proto, addr, port))
            .or_else(|| {
                if proto == crate::wire::ipv4::PROTO_TCP && (port == 20 || port >= 1024) {
                    self.ftp_v4.get(&addr)
                } else {
                    None
                }
            })
            .or_else(|| self.v4.get(&(proto, addr, 0)))?;
        Some(&self.services[*i as usize])
    }

    /// Whether `addr` is a VIP (of any service).
    #[inline]
    pub fn is_vip_v4(&self, addr: Ipv4Addr) -> bool {
        self.vips_v4.contains(&addr)
    }

    /// Whether NAT connections to virtual port `port` get the FTP helper.
    #[inline]
    pub fn is_ftp_port(&self, port: u16) -> bool {
        self.ftp_ports.contains(&port)
    }

    /// Whether a packet from `src` to `dst` is the load balancer's: to a
    /// VIP, or from a NAT real server.
    pub fn is_ours_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.vips_v4.contains(&dst) || self.nat_rips_v4.contains(&src)
    }

    /// Whether `addr` is a NAT real server's (its packets may be replies).
    #[inline]
    pub fn is_nat_real_v4(&self, addr: Ipv4Addr) -> bool {
        self.nat_rips_v4.contains(&addr)
    }

    /// [`Snapshot::service_v4`] for an IPv6 VIP.
    #[inline]
    pub fn service_v6(&self, proto: u8, addr: Ipv6Addr, port: u16) -> Option<&Service> {
        let i = self
            .v6
            .get(&(proto, addr, port))
            .or_else(|| {
                if proto == crate::wire::ipv4::PROTO_TCP && (port == 20 || port >= 1024) {
                    self.ftp_v6.get(&addr)
                } else {
                    None
                }
            })
            .or_else(|| self.v6.get(&(proto, addr, 0)))?;
        Some(&self.services[*i as usize])
    }

    /// Whether `addr` is an IPv6 VIP (of any service).
    #[inline]
    pub fn is_vip_v6(&self, addr: Ipv6Addr) -> bool {
        self.vips_v6.contains(&addr)
    }

    /// [`Snapshot::is_ours_v4`] for IPv6.
    pub fn is_ours_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.vips_v6.contains(&dst) || self.nat_rips_v6.contains(&src)
    }

    /// Whether `addr` is an IPv6 NAT real server's.
    #[inline]
    pub fn is_nat_real_v6(&self, addr: Ipv6Addr) -> bool {
        self.nat_rips_v6.contains(&addr)
    }

    /// The real server a connection refers to, unless it has been deleted.
    #[inline]
    pub fn dest(&self, r: DestRef) -> Option<&Dest> {
        self.dests
            .get(r.slot())
            .and_then(Option::as_ref)
            .filter(|d| d.r == r)
    }

    /// A service's real servers, for its scheduler.
    #[inline]
    pub fn dests_of<'a>(&'a self, svc: &'a Service) -> Dests<'a> {
        Dests::new(&svc.dests, &self.dests)
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }
}
