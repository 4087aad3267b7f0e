//! The real server as schedulers and workers see it: its slot reference,
//! forwarding method, weight and thresholds, next hop, and the counters
//! that outlive any one snapshot.
//!
//! A real server lives in a numbered slot for as long as it exists. A
//! connection remembers its server as a [`DestRef`] (slot and generation),
//! so after the server is deleted — even if the slot is reused — the
//! connection's packets find no server and are dropped, as IPVS ends the
//! connections of a deleted real server. No `DestRef` is ever issued
//! twice: a slot's generation only grows, and a slot whose generation is
//! spent ([`DestRef::MAX_GENERATION`] occupants) is retired for good
//! rather than wrapped, so a connection, persistence template, FTP
//! expectation or locality entry that outlives its server can never match
//! the server that later takes the slot.
//!
//! The connection counters never underflow: a decrement finds at least the
//! count it takes away, or leaves 0 (saturating), so a connection whose
//! bookkeeping disagrees with its server's (one that outlived a reset of the
//! counters, say) cannot wrap `ActiveConn` to four billion and lock the
//! server out of least-connection scheduling.
//!
//! What must outlive a snapshot is shared by `Arc`: a real server's
//! connection counters ([`DestCounters`]), which all workers update with
//! relaxed atomics on connection state changes (never per packet), and its
//! traffic counters ([`Stats`]), one cache line per worker.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Forwarding mode of a real server (ipvsadm `-g` / `-i` / `-m`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// Direct routing: only the destination MAC changes.
    #[default]
    Dr,
    /// IP-in-IP tunnel to the real server.
    Tun,
    /// NAT: destination rewritten, replies come back through the director.
    Nat,
}

impl Forward {
    /// The spelling in the configuration file: `dr`, `tun`, `nat`.
    pub const fn config_name(self) -> &'static str {
        match self {
            Forward::Dr => "dr",
            Forward::Tun => "tun",
            Forward::Nat => "nat",
        }
    }
}

/// As ipvsadm prints it in `-L`: `Route`, `Tunnel`, `Masq`.
impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::Nat => "Masq",
        })
    }
}

/// A real server's slot and the generation of that slot's occupant.
/// Generation 0 is never a server's, so `DestRef(0)` names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestRef(pub u32);

impl DestRef {
    const GEN_BITS: u32 = 12;
    pub const MAX_SLOTS: u32 = 1 << (32 - Self::GEN_BITS);
    /// The last generation of a slot: its occupants are generations
    /// 1..=MAX_GENERATION, after which the slot is retired (module docs).
    pub const MAX_GENERATION: u32 = (1 << Self::GEN_BITS) - 1;

    pub fn new(slot: u32, generation: u32) -> DestRef {
        debug_assert!(slot < Self::MAX_SLOTS);
        debug_assert!(generation <= Self::MAX_GENERATION);
        DestRef(slot << Self::GEN_BITS | (generation & Self::MAX_GENERATION))
    }

    #[inline]
    pub fn generation(self) -> u32 {
        self.0 & Self::MAX_GENERATION
    }

    #[inline]
    pub fn slot(self) -> usize {
        (self.0 >> Self::GEN_BITS) as usize
    }
}

/// Traffic counters (`ipvsadm --stats`) of a real server or a service:
/// one cache line per worker, each written by its own worker only, so
/// counting a packet is a plain load and store, no atomic read-modify-write
/// and no line shared between cores. Readers sum the lines.
#[derive(Debug)]
pub struct Stats {
    lines: Box<[StatsLine]>,
}

/// One worker's share of a [`Stats`].
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct StatsLine {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
}

/// The counters summed over all workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn new(workers: usize) -> Stats {
        Stats {
            lines: (0..workers.max(1)).map(|_| StatsLine::default()).collect(),
        }
    }

    /// Worker `w`'s line (`None` for a worker this was not sized for).
    #[inline]
    pub fn line(&self, w: usize) -> Option<&StatsLine> {
        self.lines.get(w)
    }

    pub fn total(&self) -> Totals {
        let mut t = Totals::default();
        for l in &self.lines {
            // Relaxed: each value is a monotonic counter read on its own.
            t.conns += l.conns.load(Ordering::Relaxed);
            t.inpkts += l.inpkts.load(Ordering::Relaxed);
            t.outpkts += l.outpkts.load(Ordering::Relaxed);
            t.inbytes += l.inbytes.load(Ordering::Relaxed);
            t.outbytes += l.outbytes.load(Ordering::Relaxed);
        }
        t
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(1)
    }
}

impl StatsLine {
    /// Single writer: load and store are enough (and cost a plain add).
    #[inline]
    fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn conn(&self) {
        Self::add(&self.conns, 1);
    }

    /// A packet from the client toward the real server.
    #[inline]
    pub fn inbound(&self, bytes: usize) {
        Self::add(&self.inpkts, 1);
        Self::add(&self.inbytes, bytes as u64);
    }

    /// A packet from the real server toward the client (NAT).
    #[inline]
    pub fn outbound(&self, bytes: usize) {
        Self::add(&self.outpkts, 1);
        Self::add(&self.outbytes, bytes as u64);
    }
}

/// Connection counters of one real server, shared by all workers.
/// `ActiveConn` counts ESTABLISHED TCP connections, `InActConn` all the
/// others, as ipvsadm shows them.
#[derive(Debug, Default)]
#[repr(align(64))] // one cache line per server: no false sharing
pub struct DestCounters {
    active: AtomicU32,
    inactive: AtomicU32,
    /// Persistence templates pointing at the server (`PersistConn`).
    persistent: AtomicU32,
    overloaded: AtomicBool,
    /// The server's traffic.
    pub stats: Stats,
    /// Its service's traffic, counted along with the server's.
    pub service_stats: Arc<Stats>,
}

// Relaxed everywhere: the counters are statistics that feed scheduling
// decisions; nothing else is published through them.
impl DestCounters {
    /// Counters of a server of the service counted by `service_stats`,
    /// with traffic lines for `workers` workers.
    pub fn new(workers: usize, service_stats: Arc<Stats>) -> DestCounters {
        DestCounters {
            stats: Stats::new(workers),
            service_stats,
            ..DestCounters::default()
        }
    }

    /// (ActiveConn, InActConn).
    #[inline]
    pub fn conns(&self) -> (u32, u32) {
        (
            self.active.load(Ordering::Relaxed),
            self.inactive.load(Ordering::Relaxed),
        )
    }

    /// A new connection, counted inactive until it is established.
    #[inline]
    pub fn bind(&self) {
        self.inactive.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ends; `inactive` says which count held it.
    #[inline]
    pub fn unbind(&self, inactive: bool) {
        let c = if inactive {
            &self.inactive
        } else {
            &self.active
        };
        decrement(c);
    }

    /// A connection moves between the active and inactive counts.
    #[inline]
    pub fn set_active(&self, active: bool) {
        let (from, to) = if active {
            (&self.inactive, &self.active)
        } else {
            (&self.active, &self.inactive)
        };
        decrement(from);
        to.fetch_add(1, Ordering::Relaxed);
    }

    /// Persistence templates pointing at the server.
    pub fn persistent(&self) -> u32 {
        self.persistent.load(Ordering::Relaxed)
    }

    /// A persistence template is created for (`true`) or freed from
    /// (`false`) the server.
    pub fn set_persistent(&self, added: bool) {
        if added {
            self.persistent.fetch_add(1, Ordering::Relaxed);
        } else {
            decrement(&self.persistent);
        }
    }

    #[inline]
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    pub fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Ordering::Relaxed);
    }
}

/// One less, but never below 0 (module docs). A compare-and-swap loop,
/// which runs on connection state changes only, never per packet.
#[inline]
fn decrement(c: &AtomicU32) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

/// A real server as workers see it.
#[derive(Debug, Clone)]
pub struct Dest {
    pub r: DestRef,
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: Forward,
    pub weight: u32,
    /// The latest non-zero weight (IPVS `last_weight`; the weight it was
    /// added with if never changed): Maglev builds its table from it, so
    /// that quiescing a server (weight 0) does not reshape the table.
    pub last_weight: u32,
    /// `ipvsadm -x`: at this many connections the server is overloaded.
    pub upper_threshold: u32,
    /// `ipvsadm -y`: below this many it takes new connections again.
    pub lower_threshold: u32,
    /// Next-hop MAC: the server's own (DR, NAT) or the router's toward it
    /// (TUN). `None` until the neighbour is resolved.
    pub mac: Option<[u8; 6]>,
    /// The director port the server is reached through.
    pub tx_port: u8,
    /// The source address of the kernel's route to the server
    /// (RTA_PREFSRC): the outer source of its TUN packets, and of the
    /// ICMP errors the director sends it. `None` until known.
    pub src: Option<Ipv4Addr>,
    /// The same for an IPv6 real server: the outer source of its ip6ip6
    /// packets and of ICMPv6 errors sent to it.
    pub src6: Option<std::net::Ipv6Addr>,
    /// In service: false while its health checks have taken it out (IPVS
    /// without `IP_VS_DEST_F_AVAILABLE`, as keepalived leaves a real server
    /// it removed). Such a server is in no service's scheduling order; its
    /// connections' packets are dropped, or end them with
    /// `connections.expire_nodest_conn` (`pipeline`), until it is back.
    pub in_service: bool,
    pub counters: Arc<DestCounters>,
}

impl Dest {
    /// May take new connections: not quiescent, not overloaded.
    #[inline]
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.counters.overloaded()
    }

    /// Counts a new connection and applies the upper threshold
    /// (`ip_vs_bind_dest`).
    #[inline]
    pub fn bind(&self) {
        self.counters.bind();
        if self.upper_threshold != 0 {
            let (a, i) = self.counters.conns();
            if u64::from(a) + u64::from(i) >= u64::from(self.upper_threshold) {
                self.counters.set_overloaded(true);
            }
        }
    }

    /// Uncounts an ending connection and lifts the overload mark as
    /// `ip_vs_unbind_dest` does: below the lower threshold, or below 3/4 of
    /// the upper one when no lower threshold is set.
    #[inline]
    pub fn unbind(&self, inactive: bool) {
        self.counters.unbind(inactive);
        if !self.counters.overloaded() {
            return;
        }
        let (a, i) = self.counters.conns();
        let total = u64::from(a) + u64::from(i);
        let clear = if self.lower_threshold != 0 {
            total < u64::from(self.lower_threshold)
        } else if self.upper_threshold != 0 {
            total * 4 < u64::from(self.upper_threshold) * 3
        } else {
            true
        };
        if clear {
            self.counters.set_overloaded(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_is_its_slot_and_generation() {
        let r = DestRef::new(DestRef::MAX_SLOTS - 1, DestRef::MAX_GENERATION);
        assert_eq!(
            (r.slot(), r.generation()),
            (DestRef::MAX_SLOTS as usize - 1, DestRef::MAX_GENERATION)
        );
        assert_ne!(DestRef::new(0, 1), DestRef(0));
        assert_ne!(DestRef::new(1, 1), DestRef::new(1, 2));
    }

    /// Decrements stop at 0; a connection that was never counted here
    /// cannot wrap a count.
    #[test]
    fn counters_never_underflow() {
        let c = DestCounters::default();
        c.unbind(true);
        c.unbind(false);
        c.set_persistent(false);
        assert_eq!((c.conns(), c.persistent()), ((0, 0), 0));
        // Established without having been counted inactive: counted active
        // from then on, and its end takes that back.
        c.set_active(true);
        assert_eq!(c.conns(), (1, 0));
        c.unbind(false);
        c.unbind(false);
        assert_eq!(c.conns(), (0, 0));
        c.bind();
        c.set_active(true);
        c.set_active(false);
        c.set_active(false);
        assert_eq!(c.conns(), (0, 2), "the count moved from stays at 0");
    }

    /// The overload mark of `ip_vs_unbind_dest` comes off, and stays off,
    /// when unbinds go past 0.
    #[test]
    fn unbinds_past_zero_leave_the_server_schedulable() {
        let d = Dest {
            r: DestRef::new(0, 1),
            addr: IpAddr::from([198, 18, 2, 11]),
            port: 80,
            fwd: Forward::Dr,
            weight: 1,
            last_weight: 1,
            upper_threshold: 1,
            lower_threshold: 0,
            mac: None,
            src: None,
            src6: None,
            tx_port: 0,
            in_service: true,
            counters: Arc::new(DestCounters::default()),
        };
        d.bind();
        assert!(d.counters.overloaded());
        d.unbind(true);
        d.unbind(true);
        assert_eq!(d.counters.conns(), (0, 0));
        assert!(!d.counters.overloaded() && d.available());
    }
}
