//! `xdpvsadm`'s argument parser and `-R` input (target `adm`).
//!
//! The input's first byte chooses: the rest as command-line arguments
//! (split at NUL and blanks), or as `-R` rules. Checked: no panic; rules
//! that parse and apply restore a table whose `-S -n` output parses again
//! to requests that rebuild the same table (`-S | -R` round trip).
//!
//! Host names resolve through a fixed table ([`hosts`]) instead of the
//! system resolver: `getaddrinfo` on every word the fuzzer makes up held
//! the target to about 140 executions a second, and its answers depend
//! on the machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use xdpvs::adm::{self, Action, View, listing::Numeric};
use xdpvs::ctrl::control::{Control, NoConns};
use xdpvs::ctrl::proto::{Reply, Request, Response};

/// The names the harness knows (a few, so that named hosts and netmasks
/// are reached); every other name fails to resolve.
fn hosts(name: &str) -> Vec<IpAddr> {
    let v4 = |a, b, c, d| vec![IpAddr::V4(Ipv4Addr::new(a, b, c, d))];
    match name {
        "localhost" => v4(127, 0, 0, 1),
        "vip" => v4(198, 18, 1, 1),
        "rs1" => v4(198, 18, 2, 11),
        "rs2" => v4(198, 18, 2, 12),
        "mask24" => v4(255, 255, 255, 0),
        "v6only" => vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
        _ => Vec::new(),
    }
}

fn empty() -> Control {
    Control::new(crate::pipeline::table_empty(), 4096, Instant::now())
}

fn save(c: &mut Control) -> Reply {
    match c.handle(Request::Save, &mut NoConns) {
        Response::Ok(r) => r,
        Response::Err { message, .. } => panic!("-S refused: {message}"),
    }
}

pub fn run(data: &[u8]) {
    adm::set_host_lookup(hosts);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let args: Vec<String> = text
            .split(['\0', ' '])
            .filter(|w| !w.is_empty())
            .take(64)
            .map(str::to_owned)
            .collect();
        if let Ok(inv) = adm::parse(&args)
            && let Action::Send { request, .. } = inv.action
        {
            // Whatever parses, the daemon answers without panicking.
            let mut c = Control::new(crate::pipeline::table(), 4096, Instant::now());
            c.handle(request, &mut NoConns);
        }
        return;
    }
    if text.len() > 8192 {
        return;
    }
    let Ok(reqs) = adm::parse_rules(text) else {
        return;
    };
    let mut c = empty();
    if let Response::Err { .. } = c.handle(Request::Restore(reqs), &mut NoConns) {
        return;
    }
    let table = save(&mut c);
    let view = View {
        numeric: true,
        save: true,
        ..View::default()
    };
    let rules = adm::render(&table, &view, &Numeric);
    let again = adm::parse_rules(&rules)
        .unwrap_or_else(|e| panic!("-S output does not parse: {e:?}\n{rules}"));
    let mut d = empty();
    match d.handle(Request::Restore(again), &mut NoConns) {
        Response::Ok(_) => {}
        Response::Err { message, .. } => panic!("-S output refused: {message}\n{rules}"),
    }
    let table2 = save(&mut d);
    assert_eq!(
        adm::render(&table2, &view, &Numeric),
        rules,
        "-S | -R round trip"
    );
}
