//! Names, both ways, as ipvsadm resolves them: `host[:port]` and
//! netmasks on the command line (the system resolver, `/etc/services`),
//! and the host and service names that a listing without `-n` shows
//! ([`Resolver`]). Only `xdpvsadm` resolves; the daemon never does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;

use crate::config::Protocol;

use super::entry::number;
use super::listing::Names;

/// `/etc/services`: (name or alias, protocol) → port, and back.
pub(super) struct Services {
    pub(super) by_name: HashMap<(String, Protocol), u16>,
    by_port: HashMap<(u16, Protocol), String>,
}

pub(super) fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let mut s = Services {
            by_name: HashMap::new(),
            by_port: HashMap::new(),
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let proto = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => continue,
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            // getservbyport returns the first entry.
            s.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_owned());
            for n in std::iter::once(name).chain(words) {
                s.by_name.entry((n.to_owned(), proto)).or_insert(port);
            }
        }
        s
    })
}

/// How a host name on the command line becomes addresses.
pub type HostLookup = fn(&str) -> Vec<IpAddr>;

static HOST_LOOKUP: OnceLock<HostLookup> = OnceLock::new();

/// Replaces the system resolver for the host names (and named netmasks)
/// the command line and `-R` rules give, for the rest of the process;
/// only the first call counts. For harnesses that must be deterministic
/// and fast (the fuzz targets): `getaddrinfo` reads `/etc/hosts` and may
/// ask a name server for every word that is not an address.
pub fn set_host_lookup(f: HostLookup) {
    let _ = HOST_LOOKUP.set(f);
}

/// The system resolver (`getaddrinfo`), as `host_to_addr` uses it.
fn system_lookup(host: &str) -> Vec<IpAddr> {
    (host, 0)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

fn lookup(host: &str) -> Vec<IpAddr> {
    HOST_LOOKUP.get().copied().unwrap_or(system_lookup)(host)
}

/// `parse_service`: `host[:port]` or `[v6]:port`; the port is `None` when
/// not given.
pub(super) fn host_port(buf: &str, proto: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(inner) = buf.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        (h, Some(after.strip_prefix(':')?))
    } else if buf.parse::<std::net::Ipv6Addr>().is_ok() {
        (buf, None)
    } else {
        match buf.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (buf, None),
        }
    };
    let ip: IpAddr = if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
        IpAddr::V6(v6)
    } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
        IpAddr::V4(v4)
    } else {
        // `host_to_addr`: the resolver, IPv4 only.
        lookup(host).into_iter().find(IpAddr::is_ipv4)?
    };
    let port = match port {
        None => None,
        Some(p) => Some(match number(p, 0, 65535) {
            Some(n) => n as u16,
            None => *services().by_name.get(&(p.to_owned(), proto))?,
        }),
    };
    Some((ip, port))
}

/// `parse_netmask`.
pub(super) fn netmask(s: &str) -> Option<Ipv4Addr> {
    if let Ok(m) = s.parse() {
        return Some(m);
    }
    lookup(s).into_iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    })
}

/// Names as ipvsadm shows them without `-n`: the resolver's host name
/// (`gethostbyaddr`), the `/etc/services` name, else the number.
#[derive(Debug, Default)]
pub struct Resolver {
    hosts: RefCell<HashMap<IpAddr, String>>,
}

impl Names for Resolver {
    fn addr_port(&self, addr: SocketAddr, proto: Protocol) -> String {
        let host = self
            .hosts
            .borrow_mut()
            .entry(addr.ip())
            .or_insert_with(|| {
                dns_lookup::lookup_addr(&addr.ip()).unwrap_or_else(|_| addr.ip().to_string())
            })
            .clone();
        let port = services()
            .by_port
            .get(&(addr.port(), proto))
            .cloned()
            .unwrap_or_else(|| addr.port().to_string());
        match addr {
            SocketAddr::V4(_) => format!("{host}:{port}"),
            SocketAddr::V6(_) => format!("[{host}]:{port}"),
        }
    }
}
