//! Generates the manual pages and shell completions the Debian package
//! ships (`scripts/package.sh` runs it):
//!
//! ```text
//! cargo run --example gen-docs -- OUT
//!   OUT/man/xdpvs.8  OUT/man/xdpvsadm.8   from the clap definitions (clap_mangen)
//!   OUT/man/xdpvs.toml.5                  dist/xdpvs.toml.5.in + the keys of config/xdpvs.toml
//!   OUT/completions/bash/xdpvs  OUT/completions/bash/xdpvsadm   (clap_complete)
//!   OUT/completions/zsh/_xdpvs  OUT/completions/zsh/_xdpvsadm
//! ```
//!
//! The command lines are `xdpvs::daemon::cli::command()` (what the daemon
//! parses) and `xdpvs::adm::cli::command()` (built from xdpvsadm's option
//! table). xdpvs.toml(5)'s KEYS section is made from the reference file's
//! comments, so a key documented there is documented in the page. The
//! pages' date is that of the newest entry of `dist/changelog`, so the
//! output depends only on the tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;
use clap_mangen::Man;
use roff::{Roff, bold, italic, roman};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: gen-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(out)) {
        Ok(files) => {
            for f in files {
                println!("gen-docs: wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<Vec<PathBuf>, String> {
    let date = changelog_date(&read(&Path::new(ROOT).join("dist/changelog"))?)?;
    let man = out.join("man");
    let bash = out.join("completions/bash");
    let zsh = out.join("completions/zsh");
    for d in [&man, &bash, &zsh] {
        fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let mut written = Vec::new();
    let mut write = |path: PathBuf, bytes: Vec<u8>| -> Result<(), String> {
        fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };

    write(man.join("xdpvs.8"), daemon_page(&date)?)?;
    write(man.join("xdpvsadm.8"), adm_page(&date)?)?;
    let template = read(&Path::new(ROOT).join("dist/xdpvs.toml.5.in"))?;
    let reference = read(&Path::new(ROOT).join("config/xdpvs.toml"))?;
    write(
        man.join("xdpvs.toml.5"),
        toml_page(&template, &reference, &date)?.into_bytes(),
    )?;

    for (name, cmd) in [
        ("xdpvs", xdpvs::daemon::cli::command()),
        ("xdpvsadm", xdpvs::adm::cli::command()),
    ] {
        for (shell, path) in [
            (Shell::Bash, bash.join(name)),
            (Shell::Zsh, zsh.join(format!("_{name}"))),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut buf);
            write(path, buf)?;
        }
    }
    Ok(written)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The date of the newest entry of a Debian changelog (its first trailer
/// line, ` -- NAME <MAIL>  Wed, 02 Dec 2026 00:00:00 +0000`), as
/// `2026-12-02`.
fn changelog_date(changelog: &str) -> Result<String, String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let line = changelog
        .lines()
        .find(|l| l.starts_with(" -- "))
        .ok_or("dist/changelog: no trailer line (\" -- NAME <MAIL>  DATE\")")?;
    let date = line
        .rsplit_once(">  ")
        .map(|(_, d)| d)
        .ok_or_else(|| format!("dist/changelog: no date in {line:?}"))?;
    let words: Vec<&str> = date.split_whitespace().collect();
    let bad = || format!("dist/changelog: date {date:?} is not RFC 2822");
    let (day, month, year) = match words.as_slice() {
        [_, d, m, y, ..] => (*d, *m, *y),
        _ => return Err(bad()),
    };
    let day: u32 = day.parse().map_err(|_| bad())?;
    let month = MONTHS.iter().position(|m| *m == month).ok_or_else(bad)? + 1;
    let year: u32 = year.parse().map_err(|_| bad())?;
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}

fn man(cmd: clap::Command, date: &str) -> Man {
    Man::new(cmd)
        .section("8")
        .date(date)
        .source(format!("xdpvs {VERSION}"))
        .manual("System Administration")
}

/// A page: clap_mangen's title, name, synopsis, description and options,
/// then `tail` (this page's own sections), then the version.
fn page(m: &Man, tail: &Roff) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    m.render_title(&mut buf)
        .and_then(|()| m.render_name_section(&mut buf))
        .and_then(|()| m.render_synopsis_section(&mut buf))
        .and_then(|()| m.render_description_section(&mut buf))
        .and_then(|()| m.render_options_section(&mut buf))
        .and_then(|()| tail.to_writer(&mut buf))
        .and_then(|()| m.render_version_section(&mut buf))
        .map_err(|e| format!("rendering a page: {e}"))?;
    Ok(buf)
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

fn see_also(r: &mut Roff, pages: &[(&str, &str)]) {
    section(r, "SEE ALSO");
    let n = pages.len();
    for (i, (page, sect)) in pages.iter().enumerate() {
        let sep = if i + 1 < n { ")," } else { ")" };
        r.text([bold(*page), roman(format!("({sect}{sep}"))]);
    }
}

fn daemon_page(date: &str) -> Result<Vec<u8>, String> {
    let m = man(xdpvs::daemon::cli::command(), date);
    let mut tail = Roff::new();
    section(&mut tail, "SIGNALS");
    for (sig, what) in [
        (
            "SIGHUP",
            "Reload the configuration file: services and real servers are diffed and applied \
             live; a bad file changes nothing and the log says why.",
        ),
        (
            "SIGTERM, SIGINT",
            "Stop the workers, detach the XDP programs, remove the control socket and log \
             each worker's counters.",
        ),
    ] {
        tail.control("TP", []);
        tail.text([bold(sig)]);
        tail.text([roman(what)]);
    }
    import_keepalived_section(&mut tail)?;
    section(&mut tail, "EXIT STATUS");
    tail.text([roman(
        "0 after a clean stop or a valid --check; 1 when the configuration is invalid, \
         start-up fails or a worker dies (the last line on standard error says why). \
         import-keepalived: 0 when a configuration was printed, 1 when nothing could be \
         converted or the file cannot be read.",
    )]);
    files_section(&mut tail);
    see_also(
        &mut tail,
        &[
            ("xdpvsadm", "8"),
            ("xdpvs.toml", "5"),
            ("ipvsadm", "8"),
            ("systemd.service", "5"),
        ],
    );
    page(&m, &tail)
}

/// `xdpvs import-keepalived`: its description and options, from the
/// subcommand's clap definition (clap_mangen lists subcommands by name only).
fn import_keepalived_section(r: &mut Roff) -> Result<(), String> {
    let cmd = xdpvs::daemon::cli::command();
    let sub = cmd
        .find_subcommand("import-keepalived")
        .ok_or("no import-keepalived subcommand")?;
    section(r, "IMPORT-KEEPALIVED");
    r.text([bold(
        "xdpvs import-keepalived FILE --interface IF [--interface IF2 ...] [--config-id ID]",
    )]);
    r.control("PP", []);
    let about = sub
        .get_long_about()
        .or(sub.get_about())
        .ok_or("no description")?;
    r.text([roman(about.to_string())]);
    for a in sub.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        let value = a
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        r.control("TP", []);
        r.text([bold(format!("--{long}{value}"))]);
        r.text([roman(
            a.get_help().map(ToString::to_string).unwrap_or_default(),
        )]);
    }
    Ok(())
}

fn files_section(r: &mut Roff) {
    section(r, "FILES");
    for (file, what) in [
        (
            "/etc/xdpvs/xdpvs.toml",
            "The configuration file the packaged unit starts the daemon with (see xdpvs.toml(5)).",
        ),
        (
            xdpvs::config::DEFAULT_SOCKET,
            "The control socket xdpvsadm talks to (control.socket).",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(file)]);
        r.text([roman(what)]);
    }
}

fn adm_page(date: &str) -> Result<Vec<u8>, String> {
    let m = man(xdpvs::adm::cli::command(), date);
    let mut tail = Roff::new();
    section(&mut tail, "DIFFERENCES FROM IPVSADM");
    paragraphs(&mut tail, xdpvs::adm::cli::DIFFERENCES);
    section(&mut tail, "EXIT STATUS");
    for (status, what) in xdpvs::adm::cli::EXIT_STATUS {
        tail.control("TP", []);
        tail.text([bold(*status)]);
        tail.text([roman(*what)]);
    }
    files_section(&mut tail);
    see_also(
        &mut tail,
        &[("xdpvs", "8"), ("xdpvs.toml", "5"), ("ipvsadm", "8")],
    );
    page(&m, &tail)
}

/// Text paragraphs separated by blank lines.
fn paragraphs(r: &mut Roff, text: &str) {
    for (i, p) in text.split("\n\n").enumerate() {
        if i > 0 {
            r.control("PP", []);
        }
        r.text([roman(p.replace('\n', " "))]);
    }
}

// ---- xdpvs.toml(5) ----------------------------------------------------------

/// One documented key (or several keys that share one comment).
struct Entry {
    /// `key = default` lines, as the reference file has them.
    heads: Vec<String>,
    /// The comment above, without the `# `.
    text: Vec<String>,
}

/// What the KEYS section holds, in file order.
enum Item {
    /// A table's heading (`[dataplane]`, `[[services]]`).
    Table(String),
    Key(Entry),
    /// A comment block that belongs to no key.
    Note(Vec<String>),
    /// The comment blocks after the last key: examples.
    Examples(Vec<Vec<String>>),
}

/// A TOML key line of the reference file, `name = value`.
fn key_line(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    (!name.is_empty()
        && !line.starts_with(' ')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then(|| (name, value.trim()))
}

/// The keys of the reference configuration with their comments, each table
/// and key once (repeated `[[services.reals]]` tables add nothing new).
/// A comment block is a key's when the key follows it directly; a block
/// whose last line is a commented-out key (`# tunnel_source = "…"`)
/// documents that optional key; other blocks are notes, placed before
/// what follows them; those after the last key are the examples. The
/// header before the first table is left out (the page's DESCRIPTION
/// says it).
fn parse_reference(text: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut seen_tables: Vec<String> = Vec::new();
    let mut seen_keys: Vec<String> = Vec::new();
    let mut table: Option<String> = None;
    let mut skipping = false;
    let mut block: Vec<String> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::new();
    // Whether the previous line was a key line (keys without a comment of
    // their own join that key's entry).
    let mut after_key = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if let Some(c) = trimmed.strip_prefix('#') {
            block.push(c.strip_prefix(' ').unwrap_or(c).to_owned());
            after_key = false;
            continue;
        }
        if trimmed.is_empty() {
            after_key = false;
            if block.is_empty() {
                continue;
            }
            let b = std::mem::take(&mut block);
            if table.is_none() {
                continue;
            }
            if skipping {
                notes.push(b);
                continue;
            }
            // `# name = value` lines closing the block: optional keys,
            // sharing the text above them (`# notify_up = …`, `# notify_down = …`).
            let text_len = b.len() - b.iter().rev().take_while(|l| key_line(l).is_some()).count();
            if text_len < b.len() {
                let mut heads = Vec::new();
                for (name, value) in b[text_len..].iter().filter_map(|l| key_line(l)) {
                    let key = format!("{}.{name}", table.as_deref().unwrap_or(""));
                    if !seen_keys.contains(&key) {
                        seen_keys.push(key);
                        heads.push(format!("{name} = {value}  (optional; unset by default)"));
                    }
                }
                if !heads.is_empty() {
                    items.extend(notes.drain(..).map(Item::Note));
                    items.push(Item::Key(Entry {
                        heads,
                        text: b[..text_len].to_vec(),
                    }));
                }
                continue;
            }
            notes.push(b);
            continue;
        }
        if trimmed.starts_with('[') {
            let name = trimmed.to_owned();
            let pending = std::mem::take(&mut block);
            skipping = seen_tables.contains(&name);
            table = Some(name.trim_matches(['[', ']']).to_owned());
            after_key = false;
            if skipping {
                notes.clear();
                continue;
            }
            seen_tables.push(name.clone());
            items.push(Item::Table(name));
            items.extend(notes.drain(..).map(Item::Note));
            if !pending.is_empty() {
                items.push(Item::Note(pending));
            }
            continue;
        }
        let Some((name, value)) = key_line(trimmed) else {
            block.clear();
            after_key = false;
            continue;
        };
        let b = std::mem::take(&mut block);
        let key = format!("{}.{name}", table.as_deref().unwrap_or(""));
        if skipping || table.is_none() || seen_keys.contains(&key) {
            notes.clear();
            after_key = true;
            continue;
        }
        seen_keys.push(key);
        let head = format!("{name} = {value}");
        items.extend(notes.drain(..).map(Item::Note));
        match items.last_mut() {
            Some(Item::Key(e)) if after_key && b.is_empty() => e.heads.push(head),
            _ => items.push(Item::Key(Entry {
                heads: vec![head],
                text: b,
            })),
        }
        after_key = true;
    }
    if !block.is_empty() {
        notes.push(block);
    }
    if !notes.is_empty() {
        items.push(Item::Examples(notes));
    }
    items
}

/// Comment lines as roff: blank lines start paragraphs, indented lines
/// (tables of values, examples) are kept as they are, `---- title ----`
/// rules become bold titles.
fn comment_text(r: &mut Roff, lines: &[String]) {
    let mut pre = false;
    for l in lines {
        let indented = l.starts_with(' ');
        if indented != pre {
            r.control(if indented { "nf" } else { "fi" }, []);
            pre = indented;
        }
        if l.trim().is_empty() {
            if !pre {
                r.control("PP", []);
            } else {
                r.text([roman("")]);
            }
        } else if l.starts_with("----") {
            let title = l.trim_matches(['-', ' ']);
            if !title.is_empty() {
                r.text([bold(title)]);
                r.control("br", []);
            }
        } else {
            r.text([roman(l.as_str())]);
        }
    }
    if pre {
        r.control("fi", []);
    }
}

fn keys_section(reference: &str) -> String {
    let mut r = Roff::new();
    for item in parse_reference(reference) {
        match item {
            Item::Table(name) => {
                r.control("SS", [name.as_str()]);
            }
            Item::Note(lines) => {
                r.control("PP", []);
                comment_text(&mut r, &lines);
            }
            Item::Examples(blocks) => {
                r.control("SH", ["EXAMPLES"]);
                for lines in blocks {
                    r.control("PP", []);
                    comment_text(&mut r, &lines);
                }
            }
            Item::Key(e) => {
                r.control("TP", []);
                for (i, h) in e.heads.iter().enumerate() {
                    if i > 0 {
                        r.control("TQ", []);
                    }
                    r.text([bold(h.as_str())]);
                }
                comment_text(&mut r, &e.text);
            }
        }
    }
    // With roff's preamble, which makes an apostrophe print as one.
    r.render()
}

fn toml_page(template: &str, reference: &str, date: &str) -> Result<String, String> {
    if !template.lines().any(|l| l == "@KEYS@") {
        return Err("dist/xdpvs.toml.5.in has no @KEYS@ line".into());
    }
    let mut out = String::new();
    for line in template.lines() {
        if line == "@KEYS@" {
            out.push_str(&keys_section(reference));
        } else {
            out.push_str(&line.replace("@DATE@", date).replace("@VERSION@", VERSION));
            out.push('\n');
        }
    }
    Ok(out)
}
