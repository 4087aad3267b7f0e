//! A reply as ipvsadm prints it: sorted as ipvsadm sorts (unless
//! `--nosort`), then laid out by [`listing`].

use std::net::SocketAddr;

use crate::ctrl::proto::{Reply, ServiceView};

use super::invocation::View;
use super::json;
use super::listing::{self, Names};

/// ipvsadm's order (`ipvs_cmp_services`, `ipvs_cmp_dests`): IPv4 before
/// IPv6, TCP before UDP, then address and port.
fn sort(services: &mut [ServiceView]) {
    let key = |a: &SocketAddr| (a.is_ipv6(), a.ip(), a.port());
    services.sort_by_key(|s| (key(&s.vip).0, s.proto, key(&s.vip)));
    for s in services {
        s.dests.sort_by_key(|d| key(&d.addr));
    }
}

/// A reply as ipvsadm prints it (or as JSON, with `--json`).
pub fn render(reply: &Reply, view: &View, names: &dyn Names) -> String {
    if view.json {
        return json::render(&sorted(reply, view), view, names);
    }
    match reply {
        Reply::Done => String::new(),
        Reply::Table { size, services } => {
            let mut services = services.clone();
            if !view.nosort || view.save {
                sort(&mut services);
            }
            if view.save {
                listing::save_with(&services, names)
            } else {
                listing::list_with(*size, &services, &view.listing, names)
            }
        }
        Reply::Service(s) => {
            let mut s = vec![(**s).clone()];
            if !view.nosort {
                sort(&mut s);
            }
            listing::list_one(&s[0], &view.listing, names)
        }
        Reply::Timeouts { tcp, tcpfin, udp } => listing::timeouts(*tcp, *tcpfin, *udp),
        Reply::Conns(c) | Reply::ConnsPart(c) => listing::conns(c, view.persistent_conn, names),
        Reply::Counters(c) if view.drops => listing::drops(c),
        Reply::Counters(c) => listing::counters(c),
    }
}

/// The reply with its services in ipvsadm's order (unless `--nosort`).
fn sorted(reply: &Reply, view: &View) -> Reply {
    let mut reply = reply.clone();
    if !view.nosort {
        match &mut reply {
            Reply::Table { services, .. } => sort(services),
            Reply::Service(s) => sort(std::slice::from_mut(&mut **s)),
            _ => {}
        }
    }
    reply
}
