//! `xdpvs import-keepalived`: keepalived.conf's `virtual_server` blocks as
//! an xdpvs configuration.
//!
//! keepalived drives the kernel's IPVS and checks its real servers; xdpvs
//! does both itself, so the LVS part of a keepalived.conf (virtual servers,
//! their real servers and checkers, virtual server groups) converts to
//! `[[services]]`, `[[services.reals]]` and `[[services.reals.checks]]`
//! tables. VRRP stays keepalived's: `vrrp_*`, `global_defs`, `static_*`
//! and the other non-LVS blocks are named as not converted, one line per
//! block.
//!
//! Three steps, one file each: `parse` reads the syntax (blocks, quotes,
//! comments, `include` globs, conditional `@id` lines) into statements that
//! know their file and line; `convert` maps the statements to tables,
//! resolving keepalived's default cascade and judging each service and real
//! server by the configuration's own `rules`; `emit` writes the TOML. A
//! statement that is not converted becomes a [`Note`] (`FILE:LINE: what:
//! why`), never silence.
//!
//! The conversion is a function of the file alone: no address is resolved
//! and nothing is checked on the network.

mod convert;
mod emit;
mod parse;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;

pub use parse::{At, Note};

/// The result of a conversion.
#[derive(Debug)]
pub struct Import {
    /// The xdpvs configuration (empty of services when none converted).
    pub toml: String,
    /// What was not converted, by file (in the order they were read) and line.
    pub notes: Vec<Note>,
    /// How many services and real servers the configuration holds.
    pub services: usize,
    pub reals: usize,
}

/// Converts the keepalived file at `path`; `config_id` is keepalived's
/// `--config-id` (it selects `@ID` lines). Fails only when the file
/// cannot be read.
pub fn import_file(
    path: &Path,
    interfaces: &[String],
    config_id: Option<&str>,
) -> std::io::Result<Import> {
    let parsed = parse::parse_file(path, config_id)?;
    Ok(finish(parsed, &path.display().to_string(), interfaces))
}

/// [`import_file`] of a text, as if it were the file `name` (its includes
/// are read relative to `name`).
pub fn import_str(
    text: &str,
    name: &Path,
    interfaces: &[String],
    config_id: Option<&str>,
) -> Import {
    let parsed = parse::parse_str(text, name, config_id);
    finish(parsed, &name.display().to_string(), interfaces)
}

fn finish(parsed: parse::Parsed, name: &str, interfaces: &[String]) -> Import {
    let mut notes = parsed.notes;
    let mut read = HashSet::new();
    let services = convert::convert(&parsed.nodes, &mut notes, &mut read);
    let noted: HashSet<At> = notes.iter().map(|n| n.at.clone()).collect();
    unread(&parsed.nodes, &read, &noted, &mut notes);
    // Reader notes and converter notes interleave in file order (files in
    // reading order: the main file's lines around its includes).
    let order: Vec<std::sync::Arc<str>> = {
        let mut files = Vec::new();
        collect_files(&parsed.nodes, &mut files);
        files
    };
    notes.sort_by_key(|n| {
        let file = order
            .iter()
            .position(|f| *f == n.at.file)
            .unwrap_or(usize::MAX);
        (file, n.at.line)
    });
    let reals = services.iter().map(|s| s.reals.len()).sum();
    Import {
        toml: emit::emit(name, interfaces, &services),
        notes,
        services: services.len(),
        reals,
    }
}

/// The reason given for a statement the converter did not dispatch.
pub const UNREAD: &str = "not converted (the converter has no rule for it)";

/// A note for each statement that is neither read by the converter nor
/// inside a block it named: the guarantee that nothing is dropped
/// silently, whatever the converter's rules miss.
fn unread(nodes: &[parse::Node], read: &HashSet<At>, noted: &HashSet<At>, notes: &mut Vec<Note>) {
    for n in nodes {
        if noted.contains(&n.at) {
            continue;
        }
        if !read.contains(&n.at) {
            notes.push(Note {
                at: n.at.clone(),
                message: format!("{}: {UNREAD}", n.words.join(" ")),
            });
            continue;
        }
        unread(n.children(), read, noted, notes);
    }
}

/// The files of the statements, in first-seen order.
fn collect_files(nodes: &[parse::Node], files: &mut Vec<std::sync::Arc<str>>) {
    for n in nodes {
        if !files.contains(&n.at.file) {
            files.push(n.at.file.clone());
        }
        collect_files(n.children(), files);
    }
}
