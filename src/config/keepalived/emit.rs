//! The converted services as an xdpvs configuration file: `[dataplane]`
//! with the interfaces given on the command line, then each service, its
//! real servers and their checks, each table preceded by a comment naming
//! the keepalived statement it came from.

use std::fmt::Write;

use toml::Value;

use super::convert::{ServiceOut, Table};

/// The TOML text. `source` names the keepalived file in the heading.
pub fn emit(source: &str, interfaces: &[String], services: &[ServiceOut]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Converted from {source} by `xdpvs import-keepalived`."
    );
    out.push_str(
        "# Each table names the keepalived statement it came from; what was not\n\
         # converted was listed on standard error. See config/xdpvs.toml for every key.\n\n",
    );
    out.push_str("[dataplane]\n");
    let ifaces = Value::Array(interfaces.iter().map(|i| Value::from(i.as_str())).collect());
    let _ = writeln!(out, "interfaces = {ifaces}");
    for s in services {
        table(&mut out, "services", &s.table);
        for r in &s.reals {
            table(&mut out, "services.reals", &r.table);
            for c in &r.checks {
                table(&mut out, "services.reals.checks", c);
            }
        }
    }
    out
}

fn table(out: &mut String, header: &str, t: &Table) {
    let _ = writeln!(out, "\n# {}: {}", t.from, t.what);
    let _ = writeln!(out, "[[{header}]]");
    for (key, value) in &t.keys {
        let _ = writeln!(out, "{key} = {value}");
    }
}
