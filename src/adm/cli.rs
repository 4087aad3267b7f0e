//! `xdpvsadm`'s command line as a [`clap::Command`], for its manual page
//! `xdpvsadm(8)` and its shell completions (`cargo run --example
//! gen-docs`, called by `scripts/package.sh`). xdpvsadm does not parse with
//! it: ipvsadm's command line is popt's (bundled short options, an optional
//! `-p` argument, the first option naming the command), which
//! `tokenize` and `parse` reproduce. The command is built from the same
//! option table (`options::TABLE`), so every option the parser knows is in the
//! page and in the completions, with the help text of `DOC`; the
//! synopsis is `-h`'s ([`usage()`]). Options ipvsadm has and xdpvs refuses
//! are listed in the page's text ([`DIFFERENCES`]), not as options.

use clap::builder::PossibleValuesParser;
use clap::{Arg as ClapArg, ArgAction, Command, ValueHint};

use crate::config::{DEFAULT_SCHEDULER, DEFAULT_SOCKET, SCHEDULERS};

use super::options::{Arg, TABLE, Tag};
use super::usage::usage;

/// Per long option of `options::TABLE` (every one xdpvs has): its value names and
/// its help text, for the manual page.
#[rustfmt::skip]
pub(super) const DOC: &[(&str, &[&str], &str)] = &[
    ("add-service",     &[], "Add a virtual service. A service address is given with -t or -u; -s, -p, -M and -b set its scheduling."),
    ("edit-service",    &[], "Edit a virtual service's scheduler, persistence, netmask or scheduler flags."),
    ("delete-service",  &[], "Delete a virtual service and its real servers."),
    ("clear",           &[], "Clear the whole table: every virtual service and real server."),
    ("list",            &[], "List the table (the default command), or one service with -t or -u; with -c the connections, with --timeout the timeouts."),
    ("zero",            &[], "Zero the packet, byte and rate counters of one service, or of all."),
    ("add-server",      &[], "Add a real server (-r) to a virtual service, with its forwarding method, weight and thresholds."),
    ("edit-server",     &[], "Edit a real server's forwarding method, weight or thresholds."),
    ("delete-server",   &[], "Delete a real server from a virtual service."),
    ("set",             &["tcp", "tcpfin", "udp"], "Set the idle timeouts, in seconds, of established TCP, closing TCP and UDP connections; 0 leaves a value unchanged."),
    ("help",            &[], "Print the usage and exit."),
    ("version",         &[], "Print the version and exit."),
    ("restore",         &[], "Restore rules from standard input, in the format -S writes; all are applied, or none."),
    ("save",            &[], "Save the table to standard output as rules -R reads."),
    ("tcp-service",     &["service-address"], "A TCP virtual service, host[:port]; a name or an /etc/services port name is resolved; IPv6 as [addr]:port."),
    ("udp-service",     &["service-address"], "A UDP virtual service, host[:port]."),
    ("scheduler",       &["scheduler"], "The scheduler of a virtual service, one of:"),
    ("persistent",      &["timeout"], "Make the service persistent: a client goes on to the same real server for TIMEOUT seconds (300 if absent) after its last connection."),
    ("netmask",         &["netmask"], "Persistence granularity: clients equal under this IPv4 netmask share a real server."),
    ("real-server",     &["server-address"], "A real server, host[:port]; without a port it gets the service's (always for -g and -i)."),
    ("masquerading",    &[], "Forward by masquerading (NAT): addresses and ports rewritten, replies through the director."),
    ("ipip",            &[], "Forward by IP-in-IP encapsulation (tunnelling)."),
    ("gatewaying",      &[], "Forward by direct routing (the default): only the MAC address changes."),
    ("weight",          &["weight"], "The real server's weight, 0 to 65535 (default 1); 0 takes no new connections."),
    ("u-threshold",     &["uthreshold"], "Upper connection threshold of the real server (0: none)."),
    ("l-threshold",     &["lthreshold"], "Lower connection threshold of the real server (0: 3/4 of the upper)."),
    ("numeric",         &[], "Print addresses and ports as numbers, without resolving names."),
    ("connection",      &[], "List the connections (with -L)."),
    ("timeout",         &[], "List the timeouts (with -L)."),
    ("stats",           &[], "List with packet and byte counters (with -L)."),
    ("rate",            &[], "List with rates (with -L)."),
    ("thresholds",      &[], "List with thresholds (with -L)."),
    ("persistent-conn", &[], "List persistent connections (with -L) and their templates (with -L -c)."),
    ("nosort",          &[], "List services and real servers in the daemon's order."),
    ("sort",            &[], "Does nothing; accepted for backwards compatibility."),
    ("exact",           &[], "Print exact numbers rather than K, M, G units (with -L --stats or --rate)."),
    ("sched-flags",     &["flags"], "Scheduler flags, comma-separated: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3."),
    ("socket",          &["path"], "The xdpvs control socket."),
    ("counters",        &[], "List every worker's counters, one row per counter (not in ipvsadm)."),
    ("drops",           &[], "List the dropped and lost frames per worker and reason, in a table (not in ipvsadm)."),
    ("json",            &[], "Print a listing (-L, -L -c, --timeout, --counters, --drops) as one JSON document, schema in docs/json.md (not in ipvsadm)."),
];

/// How xdpvsadm differs from ipvsadm, for the manual page: paragraphs,
/// separated by blank lines.
pub const DIFFERENCES: &str = "\
xdpvsadm takes ipvsadm's command line: the first option is the command, short \
options may be bundled (-Ln), a long option takes its argument as --opt=value or \
--opt value, and messages and exit statuses are ipvsadm's.\n\
\n\
Refused, with a message: fwmark services (-f, -6), SCTP services \
(--sctp-service), one-packet scheduling (-o), persistence engines (--pe) and the \
connection sync daemon (--start-daemon, --stop-daemon, --daemon, \
--mcast-interface, --syncid). -R applies its rules all or none, where ipvsadm \
applies them one by one. Added: --counters, --drops, --json and --socket.";

/// xdpvsadm's exit statuses, for the manual page.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "2",
        "A command line ipvsadm rejects itself (a missing or illegal option, a bad value), or a director that cannot be reached.",
    ),
    (
        "255",
        "An unknown option, or an operation the director refuses (ipvsadm's status for both).",
    ),
];

/// The help text and value names of a long option.
fn doc(long: &str) -> Option<(&'static [&'static str], &'static str)> {
    DOC.iter()
        .find(|(l, _, _)| *l == long)
        .map(|&(_, values, help)| (values, help))
}

/// The synopsis forms of `-h`, one per line.
fn synopsis() -> String {
    let text = usage();
    text.lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// xdpvsadm's command line, from `options::TABLE` and `DOC`. Panics if an
/// option has no `DOC` entry (a unit test checks that none is missing).
pub fn command() -> Command {
    let mut cmd = Command::new("xdpvsadm")
        .version(env!("CARGO_PKG_VERSION"))
        .about("administer the xdpvs director's virtual services, as ipvsadm")
        .long_about(
            "xdpvsadm sets up, maintains and lists the virtual service table of a \
running xdpvs(8) director, through its control socket, with the command line and \
output formats of ipvsadm(8). Each virtual service has an address, a port, a \
protocol and a scheduler; its real servers each have a forwarding method (direct \
routing, tunnelling or masquerading) and a weight.",
        )
        .override_usage(synopsis())
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut seen: Vec<&str> = Vec::new();
    for &(long, short, kind, tag) in TABLE {
        if matches!(tag, Tag::Unsupported(_)) {
            continue;
        }
        if seen.contains(&long) {
            // `-l` is another name of `-L`.
            if let Some(c) = short {
                cmd = cmd.mut_arg(long, |a| a.visible_short_alias(c));
            }
            continue;
        }
        seen.push(long);
        let (values, help) = doc(long).unwrap_or_else(|| panic!("--{long} has no DOC entry"));
        let mut arg = ClapArg::new(long).long(long).help(help);
        if let Some(c) = short {
            arg = arg.short(c);
        }
        arg = match kind {
            Arg::None if values.is_empty() => arg.action(ArgAction::SetTrue),
            // `--set tcp tcpfin udp`: the values are the leftover words.
            Arg::None => arg
                .num_args(values.len())
                .value_names(values.iter().copied()),
            Arg::Required => arg.num_args(1).value_names(values.iter().copied()),
            Arg::Optional => arg.num_args(0..=1).value_names(values.iter().copied()),
        };
        arg = arg.help_heading(if matches!(tag, Tag::Cmd(_) | Tag::Help | Tag::Version) {
            "Commands"
        } else {
            "Options"
        });
        arg = match long {
            "scheduler" => arg
                .help(format!("{help} {}.", SCHEDULERS.join(", ")))
                .value_parser(PossibleValuesParser::new(SCHEDULERS.iter().copied()))
                .hide_possible_values(true)
                .default_value(DEFAULT_SCHEDULER),
            "socket" => arg
                .value_hint(ValueHint::FilePath)
                .default_value(DEFAULT_SOCKET),
            "tcp-service" | "udp-service" | "real-server" => arg.value_hint(ValueHint::Hostname),
            _ => arg,
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_documented_once() {
        for &(long, _, _, tag) in TABLE {
            if !matches!(tag, Tag::Unsupported(_)) {
                assert!(
                    doc(long).is_some(),
                    "--{long} has no entry in adm::cli::DOC"
                );
            }
        }
        for (i, &(long, _, _)) in DOC.iter().enumerate() {
            assert!(
                TABLE
                    .iter()
                    .any(|e| e.0 == long && !matches!(e.3, Tag::Unsupported(_))),
                "DOC names --{long}, which xdpvsadm does not have"
            );
            assert!(
                DOC[..i].iter().all(|d| d.0 != long),
                "--{long} is twice in DOC"
            );
        }
    }

    #[test]
    fn command_has_the_parsers_options() {
        let mut cmd = command();
        cmd.clone().debug_assert();
        cmd.build();
        for &(long, short, kind, tag) in TABLE {
            let found = cmd.get_arguments().find(|a| a.get_long() == Some(long));
            if matches!(tag, Tag::Unsupported(_)) {
                assert!(found.is_none(), "--{long} is refused, so not an option");
                continue;
            }
            let a = found.unwrap_or_else(|| panic!("--{long} missing"));
            if let Some(c) = short {
                let names: Vec<char> = a.get_short_and_visible_aliases().unwrap_or_default();
                assert!(names.contains(&c), "--{long} lacks -{c}");
            }
            let takes = a.get_num_args().expect("built").takes_values();
            assert_eq!(
                takes,
                kind != Arg::None || long == "set",
                "--{long}: value or not, as the parser"
            );
        }
    }

    #[test]
    fn synopsis_is_usages() {
        let s = synopsis();
        assert!(s.lines().count() >= 10, "{s}");
        assert!(s.lines().all(|l| l.starts_with("xdpvsadm ")), "{s}");
        assert!(s.contains("xdpvsadm -L|l [options]"), "{s}");
    }

    #[test]
    fn schedulers_are_possible_values() {
        let cmd = command();
        let s = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("scheduler"))
            .expect("-s");
        let values: Vec<String> = s
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(values, SCHEDULERS);
    }
}
