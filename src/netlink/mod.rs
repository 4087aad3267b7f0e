//! The director's view of the kernel's interfaces, routes and neighbours.
//!
//! Workers send frames themselves (AF_XDP), so the kernel never builds their
//! Ethernet header: the director must learn the MAC of each real server's
//! next hop and write it into frames. It asks the kernel the questions that
//! `ip link show`, `ip route get` and `ip neigh` ask, over a blocking
//! NETLINK_ROUTE socket owned by the control thread.
//!
//! The kernel resolves a neighbour only when it sends to it itself, and with
//! AF_XDP it never does. So a next hop that is missing, FAILED or STALE in
//! the kernel's table is nudged with `RTM_NEWNEIGH` + `NTF_USE` (what
//! `ip neigh replace ADDR dev DEV use` and Cilium send): the kernel acts as
//! if it had a packet for it — an ARP request for a missing or failed entry,
//! reachability confirmation (unicast ARP after `delay_first_probe_time`)
//! for a STALE one, so that a MAC which changed is replaced rather than
//! trusted for ever.
//!
//! What a destination resolves to:
//! - [`Resolution::Resolved`]: the next hop's entry is REACHABLE, STALE,
//!   DELAY, PROBE, PERMANENT or NOARP and has an Ethernet address.
//! - [`Resolution::Pending`]: there is a route but no usable entry yet, for
//!   less than the pending limit (default [`DEFAULT_PENDING_LIMIT`], the
//!   kernel's own resolution time: 3 probes 1 s apart) since this
//!   [`Netlink`] first saw it unresolved.
//! - [`Resolution::Unreachable`]: no route (or a blackhole, prohibit,
//!   unreachable or local one), the kernel marked the entry FAILED, the next
//!   hop stayed unresolved past the pending limit, or the out interface has
//!   no Ethernet addresses. A next hop once Unreachable stays so until it
//!   resolves; resolution keeps being triggered on every call, so a host
//!   that comes back is Resolved again within a call or two.
//!
//! Each route the kernel chooses also names the source address it would
//! send from (RTA_PREFSRC: the route's `src`, else the address the kernel
//! selects on the out interface, as `ip route get` prints it); IPVS's
//! `__ip_vs_get_out_rt` takes the same one as the outer source of a
//! tunnel. Resolved and Pending destinations carry it (`None` when the
//! out interface has no address of the family). [`Netlink::local_addrs`]
//! lists the director's own addresses (RTM_GETADDR, every interface).
//!
//! IPv4 and IPv6 are resolved alike ([`Family`]): an IPv6 destination's
//! route is the kernel's IPv6 route (its gateway often a link-local
//! address), its next hop an NDP entry, nudged the same way (the kernel
//! then sends a neighbour solicitation). A route whose next hop is of the
//! other family (RTA_VIA) is Unreachable: there is no entry to resolve.
//!
//! A socket lives in the network namespace of the thread that created it.

mod error;
mod socket;

pub use error::NetlinkError;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use socket::RouteSocket;

/// How long a next hop may stay unresolved before it is Unreachable: the
/// kernel's default resolution time (`mcast_solicit` 3 × `retrans_time` 1 s).
pub const DEFAULT_PENDING_LIMIT: Duration = Duration::from_secs(3);

/// Next hops not asked about for this long are forgotten, so that real
/// servers removed from the configuration do not pile up.
const FORGET_AFTER: Duration = Duration::from_secs(60);

const IFNAMSIZ: usize = 16;

const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// States whose link-layer address may be used (the kernel's NUD_VALID).
const NUD_VALID: u16 =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

/// A network interface as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// All zeros when the interface has no Ethernet address.
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Queue counts bound the AF_XDP sockets one can open on the interface.
    pub rx_queues: u32,
    pub tx_queues: u32,
    /// Administratively up and running (IFF_UP and IFF_RUNNING: carrier, or
    /// for a veth, its peer up): able to pass frames now.
    pub up: bool,
}

/// Where frames for one destination go next; `A` is its address family
/// ([`Ipv4Addr`]: ARP, [`Ipv6Addr`]: neighbour discovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<A = Ipv4Addr> {
    /// MAC known and usable (NUD_REACHABLE/STALE/DELAY/PROBE/PERMANENT/NOARP).
    Resolved {
        ifindex: u32,
        next_hop: A,
        mac: [u8; 6],
        /// The source address of the route (RTA_PREFSRC).
        src: Option<A>,
    },
    /// Route known, neighbour not resolved yet (resolution was triggered).
    Pending {
        ifindex: u32,
        next_hop: A,
        /// The source address of the route (RTA_PREFSRC).
        src: Option<A>,
    },
    /// No route, or the neighbour failed (NUD_FAILED, or unresolved past
    /// the pending limit).
    Unreachable,
}

/// An address family the resolver serves: [`Ipv4Addr`] or [`Ipv6Addr`]
/// (sealed: the netlink encoding of each is this module's).
pub trait Family:
    sealed::Netlink + Copy + Eq + Hash + fmt::Debug + fmt::Display + Into<IpAddr>
{
}

impl Family for Ipv4Addr {}
impl Family for Ipv6Addr {}

mod sealed {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::neighbour::NeighbourAddress;
    use netlink_packet_route::route::RouteAddress;

    /// How one family's addresses are spelled in netlink messages.
    pub trait Netlink: Sized {
        const FAMILY: AddressFamily;
        /// A host route's prefix length.
        const HOST_PREFIX: u8;
        fn route(self) -> RouteAddress;
        fn neighbour(self) -> NeighbourAddress;
        fn from_route(a: &RouteAddress) -> Option<Self>;
        fn from_neighbour(a: &NeighbourAddress) -> Option<Self>;
    }

    impl Netlink for Ipv4Addr {
        const FAMILY: AddressFamily = AddressFamily::Inet;
        const HOST_PREFIX: u8 = 32;
        fn route(self) -> RouteAddress {
            RouteAddress::Inet(self)
        }
        fn neighbour(self) -> NeighbourAddress {
            NeighbourAddress::Inet(self)
        }
        fn from_route(a: &RouteAddress) -> Option<Self> {
            match a {
                RouteAddress::Inet(a) => Some(*a),
                _ => None,
            }
        }
        fn from_neighbour(a: &NeighbourAddress) -> Option<Self> {
            match a {
                NeighbourAddress::Inet(a) => Some(*a),
                _ => None,
            }
        }
    }

    impl Netlink for Ipv6Addr {
        const FAMILY: AddressFamily = AddressFamily::Inet6;
        const HOST_PREFIX: u8 = 128;
        fn route(self) -> RouteAddress {
            RouteAddress::Inet6(self)
        }
        fn neighbour(self) -> NeighbourAddress {
            NeighbourAddress::Inet6(self)
        }
        fn from_route(a: &RouteAddress) -> Option<Self> {
            match a {
                RouteAddress::Inet6(a) => Some(*a),
                _ => None,
            }
        }
        fn from_neighbour(a: &NeighbourAddress) -> Option<Self> {
            match a {
                NeighbourAddress::Inet6(a) => Some(*a),
                _ => None,
            }
        }
    }
}

/// The kernel's answer to a route lookup, as far as sending goes.
#[derive(Debug, Clone, Copy)]
struct Route<A> {
    ifindex: u32,
    next_hop: A,
    src: Option<A>,
}

/// What this side remembers of a next hop the kernel has not resolved.
#[derive(Debug, Clone, Copy)]
struct Unresolved {
    since: Instant,
    failed: bool,
    asked: Instant,
}

/// A kernel neighbour entry, as far as resolution cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Neighbour {
    state: u16,
    mac: Option<[u8; 6]>,
}

/// What to do with a next hop, given its entry (or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Usable; `refresh` asks the kernel to confirm a STALE entry.
    Use { mac: [u8; 6], refresh: bool },
    /// Not usable yet; `trigger` when the kernel is not already resolving.
    Wait { trigger: bool, failed: bool },
    /// Never usable: a NOARP or PERMANENT entry without an Ethernet address.
    Never,
}

fn verdict(entry: Option<Neighbour>) -> Verdict {
    let Some(Neighbour { state, mac }) = entry else {
        return Verdict::Wait {
            trigger: true,
            failed: false,
        };
    };
    if state & NUD_VALID != 0 {
        return match mac {
            Some(mac) => Verdict::Use {
                mac,
                refresh: state & NUD_STALE != 0,
            },
            None if state & (NUD_NOARP | NUD_PERMANENT) != 0 => Verdict::Never,
            // A valid state without an address does not happen for ARP;
            // ask again rather than trust it.
            None => Verdict::Wait {
                trigger: true,
                failed: false,
            },
        };
    }
    Verdict::Wait {
        trigger: state & NUD_INCOMPLETE == 0,
        failed: state & NUD_FAILED != 0,
    }
}

/// What the daemon asks the kernel over and over (once a second and on
/// every edit): next hops and its own addresses. [`Netlink`] is the real
/// one; the daemon's tests put one that fails or times out in its place.
pub trait Resolver {
    /// [`Netlink::resolve_all`].
    fn resolve_all(&mut self, dsts: &[Ipv4Addr]) -> Result<Vec<Resolution>, NetlinkError>;
    /// [`Netlink::resolve_all`] for IPv6 destinations.
    fn resolve_all6(
        &mut self,
        dsts: &[Ipv6Addr],
    ) -> Result<Vec<Resolution<Ipv6Addr>>, NetlinkError>;
    /// [`Netlink::local_addrs`].
    fn local_addrs(&mut self) -> Result<Vec<IpAddr>, NetlinkError>;
}

impl Resolver for Netlink {
    fn resolve_all(&mut self, dsts: &[Ipv4Addr]) -> Result<Vec<Resolution>, NetlinkError> {
        Netlink::resolve_all(self, dsts)
    }

    fn resolve_all6(
        &mut self,
        dsts: &[Ipv6Addr],
    ) -> Result<Vec<Resolution<Ipv6Addr>>, NetlinkError> {
        Netlink::resolve_all(self, dsts)
    }

    fn local_addrs(&mut self) -> Result<Vec<IpAddr>, NetlinkError> {
        Netlink::local_addrs(self)
    }
}

/// The director's NETLINK_ROUTE socket and what it remembers between calls.
pub struct Netlink {
    socket: RouteSocket,
    pending_limit: Duration,
    unresolved: HashMap<(u32, IpAddr), Unresolved>,
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the calling thread's current network
    /// namespace.
    pub fn new() -> Result<Netlink, NetlinkError> {
        Ok(Netlink {
            socket: RouteSocket::open()?,
            pending_limit: DEFAULT_PENDING_LIMIT,
            unresolved: HashMap::new(),
        })
    }

    /// How long a next hop stays Pending before it is Unreachable; raise it
    /// where the kernel's `mcast_solicit`/`retrans_time` were raised.
    pub fn set_pending_limit(&mut self, limit: Duration) {
        self.pending_limit = limit;
    }

    /// The interface named `name` (RTM_GETLINK by IFLA_IFNAME).
    pub fn interface(&mut self, name: &str) -> Result<Interface, NetlinkError> {
        if name.is_empty() || name.len() >= IFNAMSIZ {
            return Err(NetlinkError::NoSuchInterface(name.to_owned()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let answer = match self
            .socket
            .request("link lookup", RouteNetlinkMessage::GetLink(msg), 0)
        {
            Err(NetlinkError::Kernel { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                return Err(NetlinkError::NoSuchInterface(name.to_owned()));
            }
            answer => answer?,
        };
        let Some(RouteNetlinkMessage::NewLink(link)) = answer.into_iter().next() else {
            return Err(NetlinkError::Protocol("link lookup: no RTM_NEWLINK".into()));
        };
        let flags = link.header.flags;
        let mut iface = Interface {
            name: name.to_owned(),
            index: link.header.index,
            mac: [0; 6],
            mtu: 0,
            rx_queues: 0,
            tx_queues: 0,
            up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
        };
        for attr in link.attributes {
            match attr {
                LinkAttribute::IfName(n) => iface.name = n,
                LinkAttribute::Address(a) => iface.mac = a.try_into().unwrap_or([0; 6]),
                LinkAttribute::Mtu(m) => iface.mtu = m,
                LinkAttribute::NumRxQueues(q) => iface.rx_queues = q,
                LinkAttribute::NumTxQueues(q) => iface.tx_queues = q,
                _ => {}
            }
        }
        // IFLA_NUM_*_QUEUES are the queues the device allocated; a NIC set
        // to fewer channels (`ethtool -L`) uses only the first of them, and
        // AF_XDP refuses to bind to the others. sysfs lists the ones in use.
        if let Some(n) = queues_in_use(&iface.name, iface.index, "rx") {
            iface.rx_queues = n;
        }
        if let Some(n) = queues_in_use(&iface.name, iface.index, "tx") {
            iface.tx_queues = n;
        }
        Ok(iface)
    }

    /// Route lookup (like `ip route get`) for `dst`, then the next hop's
    /// neighbour entry on the out interface; triggers resolution when the
    /// entry is missing, failed or stale. Reads the whole neighbour table:
    /// for many destinations, use [`Netlink::resolve_all`].
    pub fn resolve<A: Family>(&mut self, dst: A) -> Result<Resolution<A>, NetlinkError> {
        Ok(self.resolve_all(&[dst])?[0])
    }

    /// [`Netlink::resolve`] for each of `dsts`, in order: one neighbour dump
    /// shared by all, one route lookup per destination, at most one
    /// resolution trigger per next hop. About 5 ms for 1000 destinations.
    /// A destination the kernel has no usable route for is Unreachable, not
    /// an error; errors are the socket's, or a kernel refusal that says
    /// nothing about one destination (and then no result is returned).
    pub fn resolve_all<A: Family>(
        &mut self,
        dsts: &[A],
    ) -> Result<Vec<Resolution<A>>, NetlinkError> {
        let neighbours = self.neighbours::<A>()?;
        let now = Instant::now();
        let mut triggered = HashSet::new();
        let mut out = Vec::with_capacity(dsts.len());
        for &dst in dsts {
            let Some(Route {
                ifindex,
                next_hop,
                src,
            }) = self.route(dst)?
            else {
                out.push(Resolution::Unreachable);
                continue;
            };
            let key = (ifindex, next_hop);
            let ukey = (ifindex, next_hop.into());
            let resolution = match verdict(neighbours.get(&key).copied()) {
                Verdict::Use { mac, refresh } => {
                    self.unresolved.remove(&ukey);
                    if refresh && triggered.insert(key) {
                        self.trigger(ifindex, next_hop)?;
                    }
                    Resolution::Resolved {
                        ifindex,
                        next_hop,
                        mac,
                        src,
                    }
                }
                Verdict::Never => Resolution::Unreachable,
                Verdict::Wait { trigger, failed } => {
                    if trigger && triggered.insert(key) {
                        self.trigger(ifindex, next_hop)?;
                    }
                    let limit = self.pending_limit;
                    let entry = match self.unresolved.entry(ukey) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(Unresolved {
                            since: now,
                            failed: false,
                            asked: now,
                        }),
                    };
                    entry.asked = now;
                    entry.failed |= failed || now.duration_since(entry.since) >= limit;
                    if entry.failed {
                        Resolution::Unreachable
                    } else {
                        Resolution::Pending {
                            ifindex,
                            next_hop,
                            src,
                        }
                    }
                }
            };
            out.push(resolution);
        }
        self.unresolved
            .retain(|_, u| now.duration_since(u.asked) < FORGET_AFTER);
        Ok(out)
    }

    /// The director's own addresses, IPv4 and IPv6, on every interface
    /// (RTM_GETADDR dump of both families; IFA_LOCAL, else IFA_ADDRESS, as
    /// `ip addr` lists them), sorted (IPv4 first), once each.
    pub fn local_addrs(&mut self) -> Result<Vec<IpAddr>, NetlinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = AddressMessage::default();
            msg.header.family = family;
            let answer = self.socket.request(
                "address dump",
                RouteNetlinkMessage::GetAddress(msg),
                NLM_F_DUMP,
            )?;
            for m in answer {
                let RouteNetlinkMessage::NewAddress(a) = m else {
                    continue;
                };
                if a.header.family != family {
                    continue;
                }
                // IFA_LOCAL is the interface's own address; IFA_ADDRESS is
                // the peer's on a point-to-point IPv4 link, and the same
                // otherwise (IPv6 sends IFA_ADDRESS alone).
                let mut local = None;
                let mut address = None;
                for attr in a.attributes {
                    match attr {
                        AddressAttribute::Local(l) => local = Some(l),
                        AddressAttribute::Address(l) => address = Some(l),
                        _ => {}
                    }
                }
                if let Some(l) = local.or(address) {
                    out.push(l);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The out interface, next hop (the gateway, or `dst` when on-link) and
    /// source address for `dst`; None when the kernel has no usable unicast
    /// route.
    fn route<A: Family>(&mut self, dst: A) -> Result<Option<Route<A>>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = A::FAMILY;
        msg.header.destination_prefix_length = A::HOST_PREFIX;
        msg.attributes
            .push(RouteAttribute::Destination(dst.route()));
        let answer =
            match self
                .socket
                .request("route lookup", RouteNetlinkMessage::GetRoute(msg), 0)
            {
                // No route, or one of type unreachable, prohibit or blackhole.
                Err(NetlinkError::Kernel { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EINVAL)
                    ) =>
                {
                    return Ok(None);
                }
                answer => answer?,
            };
        let Some(RouteNetlinkMessage::NewRoute(route)) = answer.into_iter().next() else {
            return Err(NetlinkError::Protocol(
                "route lookup: no RTM_NEWROUTE".into(),
            ));
        };
        if route.header.kind != RouteType::Unicast {
            return Ok(None);
        }
        let mut oif = None;
        let mut next_hop = dst;
        let mut src = None;
        for attr in route.attributes {
            match attr {
                RouteAttribute::Oif(i) => oif = Some(i),
                RouteAttribute::Gateway(gw) => match A::from_route(&gw) {
                    Some(gw) => next_hop = gw,
                    // A gateway of the other family: no neighbour of ours.
                    None => return Ok(None),
                },
                RouteAttribute::PrefSource(s) => {
                    src = A::from_route(&s).filter(|s| !(*s).into().is_unspecified());
                }
                // A next hop of the other family (RTA_VIA): no neighbour
                // entry of this family to resolve.
                RouteAttribute::Via(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(oif.map(|ifindex| Route {
            ifindex,
            next_hop,
            src,
        }))
    }

    /// The kernel's neighbour table of family `A` (ARP or NDP), by
    /// (ifindex, address).
    fn neighbours<A: Family>(&mut self) -> Result<HashMap<(u32, A), Neighbour>, NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = A::FAMILY;
        let answer = self.socket.request(
            "neighbour dump",
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_DUMP,
        )?;
        let mut table = HashMap::with_capacity(answer.len());
        for m in answer {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            let mut addr = None;
            let mut mac = None;
            for attr in n.attributes {
                match attr {
                    NeighbourAttribute::Destination(a) => addr = A::from_neighbour(&a),
                    NeighbourAttribute::LinkLayerAddress(l) => mac = l.try_into().ok(),
                    _ => {}
                }
            }
            if let Some(addr) = addr {
                let state = u16::from(n.header.state);
                table.insert((n.header.ifindex, addr), Neighbour { state, mac });
            }
        }
        Ok(table)
    }

    /// Makes the kernel resolve (or confirm) `next_hop` on `ifindex` as if
    /// it had a packet for it: RTM_NEWNEIGH with NTF_USE creates the entry
    /// when missing and runs the state machine (an ARP request, or a
    /// neighbour solicitation), without setting a state.
    fn trigger<A: Family>(&mut self, ifindex: u32, next_hop: A) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = A::FAMILY;
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::None;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes
            .push(NeighbourAttribute::Destination(next_hop.neighbour()));
        self.socket.request(
            "neighbour resolution (NTF_USE)",
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK,
        )?;
        Ok(())
    }
}

/// How many `kind` ("rx" or "tx") queues interface `name` has in use, from
/// sysfs (`/sys/class/net/NAME/queues/rx-N`: the kernel's
/// `real_num_rx_queues`). `None` when sysfs shows another namespace's
/// interface (it is the mounting namespace's view) or is not there.
fn queues_in_use(name: &str, index: u32, kind: &str) -> Option<u32> {
    let dir = std::path::Path::new("/sys/class/net").join(name);
    let sys_index: u32 = std::fs::read_to_string(dir.join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if sys_index != index {
        return None;
    }
    let prefix = format!("{kind}-");
    let n = std::fs::read_dir(dir.join("queues"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn entry(state: u16, mac: Option<[u8; 6]>) -> Option<Neighbour> {
        Some(Neighbour { state, mac })
    }

    #[test]
    fn valid_states_with_an_address_are_used() {
        for state in [
            NUD_REACHABLE,
            NUD_DELAY,
            NUD_PROBE,
            NUD_PERMANENT,
            NUD_NOARP,
        ] {
            assert_eq!(
                verdict(entry(state, Some(MAC))),
                Verdict::Use {
                    mac: MAC,
                    refresh: false
                }
            );
        }
        assert_eq!(
            verdict(entry(NUD_STALE, Some(MAC))),
            Verdict::Use {
                mac: MAC,
                refresh: true
            }
        );
    }

    #[test]
    fn missing_failed_and_incomplete_entries_wait() {
        assert_eq!(
            verdict(None),
            Verdict::Wait {
                trigger: true,
                failed: false
            }
        );
        assert_eq!(
            verdict(entry(0, None)),
            Verdict::Wait {
                trigger: true,
                failed: false
            }
        );
        // The kernel is already probing: no second trigger.
        assert_eq!(
            verdict(entry(NUD_INCOMPLETE, None)),
            Verdict::Wait {
                trigger: false,
                failed: false
            }
        );
        // A failed entry still carries the old address; it must not be used.
        assert_eq!(
            verdict(entry(NUD_FAILED, Some(MAC))),
            Verdict::Wait {
                trigger: true,
                failed: true
            }
        );
    }

    #[test]
    fn noarp_without_ethernet_address_is_never_usable() {
        assert_eq!(verdict(entry(NUD_NOARP, None)), Verdict::Never);
        assert_eq!(verdict(entry(NUD_PERMANENT, None)), Verdict::Never);
    }
}
