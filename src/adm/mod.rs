//! `xdpvsadm`'s command line: ipvsadm's, parsed as ipvsadm 1.2x/1.31 parses
//! it (`parse_options`, `process_options`, `generic_opt_check` in
//! ipvsadm.c), into a [`Request`] for the control socket; and the reply
//! rendered as ipvsadm prints it.
//!
//! What ipvsadm's parser does, this one does: the first option must be the
//! command; short options may be bundled (`-Ln`); a long option takes its
//! argument as `--opt=value` or `--opt value`; `-p` takes an optional
//! timeout (the next word, unless it starts with `-`; 300 if absent);
//! `host[:port]` accepts names, `/etc/services` names and `[v6]:port`; a
//! real server without a port gets the service's; `-g` and `-i` servers
//! always get the service's port; options are checked against ipvsadm's
//! table of legal command/option combinations. Errors have ipvsadm's words
//! and exit status: 2 for a command line ipvsadm rejects itself, 255 for
//! an unknown option (popt's error) or an operation the director refuses.
//!
//! Differences, all refusals with a message: fwmark services (`-f`, `-6`),
//! the sync daemon (`--start-daemon`, `--stop-daemon`, `--daemon`,
//! `--mcast-*`, `--syncid`, `--sync-maxlen`), one-packet scheduling
//! (`-o`), persistence engines (`--pe`) and SCTP do not exist in xdpvs.
//! `-R` applies its rules all or none, where ipvsadm applies them one by
//! one. Added: `--socket PATH` (the control socket), the commands
//! `--counters` (every worker's statistics, one row per counter) and
//! `--drops` (the drops per worker and reason), and `--json` for the
//! listings (`-L`, `-L -c`, `-L --timeout`, `--counters`, `--drops`): one
//! JSON document ([`json`], schema in `docs/json.md`).
//!
//! The parts, in the order a command line meets them: `options` (ipvsadm's
//! option table and its matrix of legal combinations), `tokenize` (popt's
//! splitting of the words), `parse` (the options gathered and checked,
//! each read where its commands are: `service`, `real_server`, `list`),
//! `resolve` (names, both ways), [`call`] (the control socket),
//! [`render()`], [`listing`] (ipvsadm's output formats) and [`json`],
//! [`usage()`]; [`cli`] describes the same options to clap, for the manual
//! page and the shell completions.

use crate::ctrl::proto::Request;

pub mod cli;
mod client;
mod entry;
mod invocation;
pub mod json;
mod list;
pub mod listing;
mod options;
mod parse;
mod real_server;
mod render;
mod resolve;
mod service;
mod tokenize;
mod usage;

pub use client::{call, call_all, restore_requests};
pub use invocation::{Action, AdmError, Invocation, View};
pub use render::render;
pub use resolve::{HostLookup, Resolver, set_host_lookup};
pub use usage::usage;

/// Parses `xdpvsadm`'s arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, AdmError> {
    parse::parse_args(args, false)
}

/// The rules `-R` reads, as ipvsadm's `config_stream_read` splits them: one
/// command per line, words separated by blanks, a leading `ipvsadm` (or
/// `xdpvsadm`) word ignored; blank lines and `#` comments skipped. Only
/// table edits may appear (`-A -E -D -C -a -e -d --set`); the first line
/// that is not one, or that ipvsadm would reject, stops everything.
pub fn parse_rules(text: &str) -> Result<Vec<Request>, AdmError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .filter(|w| *w != "ipvsadm" && *w != "xdpvsadm")
            .map(str::to_owned)
            .collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let inv = parse::parse_args(&words, true)?;
        match inv.action {
            Action::Send { request, .. }
                if matches!(
                    request,
                    Request::AddService(_)
                        | Request::EditService(_)
                        | Request::DelService(_)
                        | Request::Clear
                        | Request::AddDest(_)
                        | Request::EditDest(_)
                        | Request::DelDest { .. }
                        | Request::SetTimeouts { .. }
                ) =>
            {
                out.push(request)
            }
            _ => {
                return Err(AdmError::fail(format!(
                    "only -A -E -D -C -a -e -d --set can be restored: {}",
                    line.trim()
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
