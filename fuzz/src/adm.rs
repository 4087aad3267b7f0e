//! `xdpvsadm`'s argument parser and `-R` input (target `adm`).
//!
//! The input's first byte chooses: the rest as command-line arguments
//! (split at NUL and blanks), or as `-R` rules. Checked: no panic; rules
//! that parse and apply restore a table whose `-S -n` output parses again
//! to requests that rebuild the same table (`-S | -R` round trip).

use std::time::Instant;

use xdpvs::adm::{self, Action, View, listing::Numeric};
use xdpvs::ctrl::control::{Control, NoConns};
use xdpvs::ctrl::proto::{Reply, Request, Response};

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
