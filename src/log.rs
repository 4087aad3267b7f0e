//! The daemon's log: one line per event on stderr, each with its level, in
//! a form systemd's journal reads natively.
//!
//! # Format
//!
//! Every line is `<P>xdpvs: MESSAGE`, where `P` is the syslog priority of
//! its [`Level`] (RFC 5424: 3 error, 4 warning, 5 notice, 6 info,
//! 7 debug). This is the `sd-daemon(3)` convention: journald strips the
//! prefix and files the line at that priority (`SyslogLevelPrefix=`, on by
//! default), so `journalctl -u xdpvs -p warning` shows what needs looking
//! at; runit, s6, daemontools or a plain file keep the prefix as text, where
//! it reads and greps the same. The text after the prefix is the line the
//! daemon has always printed (`xdpvs: running: ...`), so scripts that look
//! for `xdpvs: running:` keep working; a script anchored at the start of a
//! line matches `^<[0-7]>xdpvs: running:`.
//!
//! Which events have which level:
//!
//! - error: the daemon cannot start or must stop (`xdpvs: worker N panicked:
//!   ...`, a configuration error at start), and a panic's own report
//!   ([`log_panics`]: one line, not the standard library's several);
//! - warning: something an operator should fix while the director runs (a
//!   reload refused, a real server with no route or no neighbour, netlink
//!   or XDP map failures, a queue busy at start);
//! - notice: the daemon's life: `running:`, `reloaded ...`, `stopping`;
//! - info: what it set up (interfaces, workers, the control socket) and the
//!   counters at shutdown;
//! - debug: each control request served (one line per `xdpvsadm` call).
//!
//! No line is ever logged per packet: workers do not log at all; what they
//! see is counted (`crate::stats`) and read with `xdpvsadm --counters` or
//! `--drops`.
//!
//! # Level
//!
//! Lines above the configured level are not written: `[log] level` in the
//! configuration file (default `info`), overridden by the environment
//! variable `XDPVS_LOG` (`error`, `warning`, `notice`, `info`, `debug`) —
//! the `RUST_LOG` idea, one level for the whole daemon. The level in force
//! until the configuration is read is `info`.
//!
//! # Repeated conditions
//!
//! A condition that recurs (netlink failing every second, the same map
//! update refused at each change) is logged through [`limited`] under a
//! key: its first occurrence is written at once; further ones within
//! [`REPEAT_INTERVAL`] are counted, not written. The next line for the key
//! after the interval, or the control thread's periodic [`flush`] once the
//! interval has passed without one, carries the count: `... (repeated 532
//! times)` — the condition occurred that many more times since the last
//! line for it. Nothing counted is lost: [`flush_all`] at shutdown writes
//! every pending count.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a repeated condition stays quiet after a line for it.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(30);

/// The environment variable that overrides `[log] level`.
pub const ENV: &str = "XDPVS_LOG";

/// A line's importance, as syslog numbers it (lower is more important).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    #[default]
    Info = 6,
    Debug = 7,
}

impl Level {
    /// Every level, most important first.
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    /// The name `[log] level` and `XDPVS_LOG` use.
    pub const fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// A level by its name ([`Level::name`]; `warn` is taken for
    /// `warning`, as `RUST_LOG` spells it); case is ignored.
    pub fn parse(s: &str) -> Option<Level> {
        let s = s.trim().to_ascii_lowercase();
        if s == "warn" {
            return Some(Level::Warning);
        }
        Level::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The syslog priority number (`<P>`).
    pub const fn priority(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line as written, newline included: `<P>xdpvs: MESSAGE\n`. A
/// message is one line: newlines in it become spaces.
pub fn format_line(level: Level, msg: &str) -> String {
    let mut line = format!("<{}>xdpvs: ", level.priority());
    line.extend(msg.chars().map(|c| if c == '\n' { ' ' } else { c }));
    line.push('\n');
    line
}

/// A condition being counted under its key.
#[derive(Debug)]
struct Repeat {
    key: String,
    level: Level,
    /// When its last line was written.
    written: Instant,
    /// Occurrences since then, not written.
    suppressed: u64,
    /// The message of the last of them.
    last: String,
}

/// The level filter and the repeat counts, without the output: what the
/// global log holds, and what the tests drive with their own clock.
#[derive(Debug)]
pub struct Logger {
    max: Level,
    interval: Duration,
    repeats: Vec<Repeat>,
}

impl Logger {
    pub fn new(max: Level, interval: Duration) -> Logger {
        Logger {
            max,
            interval,
            repeats: Vec::new(),
        }
    }

    pub fn level(&self) -> Level {
        self.max
    }

    pub fn set_level(&mut self, max: Level) {
        self.max = max;
    }

    /// Whether lines of `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.max
    }

    /// The line for a one-off event, if its level is written.
    pub fn line(&self, level: Level, msg: &str) -> Option<String> {
        self.enabled(level).then(|| format_line(level, msg))
    }

    /// The line for an occurrence of the condition `key` at `now`, if one
    /// is due (see the module's "Repeated conditions").
    pub fn limited(&mut self, key: &str, level: Level, msg: &str, now: Instant) -> Option<String> {
        if !self.enabled(level) {
            return None;
        }
        let interval = self.interval;
        match self.repeats.iter_mut().find(|r| r.key == key) {
            Some(r) if now.saturating_duration_since(r.written) < interval => {
                r.suppressed += 1;
                r.level = level;
                msg.clone_into(&mut r.last);
                None
            }
            Some(r) => {
                let n = std::mem::take(&mut r.suppressed);
                r.written = now;
                r.level = level;
                msg.clone_into(&mut r.last);
                Some(format_line(level, &with_count(msg, n)))
            }
            None => {
                self.repeats.push(Repeat {
                    key: key.to_owned(),
                    level,
                    written: now,
                    suppressed: 0,
                    last: msg.to_owned(),
                });
                Some(format_line(level, msg))
            }
        }
    }

    /// The counts due at `now` (their interval over), or all of them if
    /// `all`, as lines: the last message of each condition with its count.
    /// Conditions quiet for a whole interval are forgotten, so that their
    /// next occurrence is written at once.
    pub fn flush(&mut self, now: Instant, all: bool) -> Vec<String> {
        let interval = self.interval;
        let mut out = Vec::new();
        self.repeats.retain_mut(|r| {
            let due = all || now.saturating_duration_since(r.written) >= interval;
            if !due {
                return true;
            }
            if r.suppressed == 0 {
                return false;
            }
            out.push(format_line(r.level, &with_count(&r.last, r.suppressed)));
            r.suppressed = 0;
            r.written = now;
            !all
        });
        out
    }
}

fn with_count(msg: &str, n: u64) -> String {
    match n {
        0 => msg.to_owned(),
        1 => format!("{msg} (repeated 1 time)"),
        n => format!("{msg} (repeated {n} times)"),
    }
}

static LOG: Mutex<Logger> = Mutex::new(Logger {
    max: Level::Info,
    interval: REPEAT_INTERVAL,
    repeats: Vec::new(),
});

fn global() -> std::sync::MutexGuard<'static, Logger> {
    // A panic while holding the lock leaves nothing half-done worth
    // refusing to log over.
    LOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each line written whole, in one call: lines from several threads do
/// not interleave. A closed stderr is not worth dying for.
fn write(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = err.write_all(l.as_bytes());
    }
    let _ = err.flush();
}

/// Sets the level of the process's log.
pub fn set_level(level: Level) {
    global().set_level(level);
}

/// The level of the process's log.
pub fn level() -> Level {
    global().level()
}

/// The level `XDPVS_LOG` asks for: `Ok(None)` if it is not set, `Err` with
/// the value if it names no level.
pub fn env_level() -> Result<Option<Level>, String> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(v.to_string_lossy().into_owned()),
        Ok(v) => Level::parse(&v).map(Some).ok_or(v),
    }
}

/// Writes one event at `level`.
pub fn log(level: Level, msg: impl fmt::Display) {
    let g = global();
    if !g.enabled(level) {
        return;
    }
    let line = format_line(level, &msg.to_string());
    drop(g);
    write(&[line]);
}

pub fn error(msg: impl fmt::Display) {
    log(Level::Error, msg);
}

pub fn warning(msg: impl fmt::Display) {
    log(Level::Warning, msg);
}

pub fn notice(msg: impl fmt::Display) {
    log(Level::Notice, msg);
}

pub fn info(msg: impl fmt::Display) {
    log(Level::Info, msg);
}

pub fn debug(msg: impl fmt::Display) {
    log(Level::Debug, msg);
}

/// Writes an occurrence of the repeated condition `key`, rate-limited
/// (module docs).
pub fn limited(key: &str, level: Level, msg: impl fmt::Display) {
    let mut g = global();
    if !g.enabled(level) {
        return;
    }
    let line = g.limited(key, level, &msg.to_string(), Instant::now());
    drop(g);
    write(line.as_slice());
}

/// Makes a panic one error line (`<3>xdpvs: thread NAME panicked at
/// FILE:LINE:COL: MESSAGE`) instead of the standard library's several;
/// with `RUST_BACKTRACE` set (and not `0`), the standard report (and its backtrace)
/// follows it. The daemon then reports which worker ended and why
/// (`crate::daemon`).
pub fn log_panics() {
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        error(format_args!("thread {name} panicked{at}: {msg}"));
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0") {
            standard(info);
        }
    }));
}

/// Writes the repeat counts whose interval is over; called by the control
/// thread each round (cheap when there are none).
pub fn flush() {
    let lines = global().flush(Instant::now(), false);
    write(&lines);
}

/// Writes every pending repeat count (at shutdown).
pub fn flush_all() {
    let lines = global().flush(Instant::now(), true);
    write(&lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn lines_carry_the_syslog_priority_and_the_old_text() {
        assert_eq!(
            format_line(Level::Notice, "running: 2 workers"),
            "<5>xdpvs: running: 2 workers\n"
        );
        assert_eq!(format_line(Level::Error, "a\nb"), "<3>xdpvs: a b\n");
        let prios: Vec<u8> = Level::ALL.iter().map(|l| l.priority()).collect();
        assert_eq!(prios, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn levels_parse_by_name() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
            assert_eq!(Level::parse(&l.name().to_uppercase()), Some(l));
        }
        assert_eq!(Level::parse("warn"), Some(Level::Warning));
        assert_eq!(Level::parse(" debug "), Some(Level::Debug));
        for bad in ["", "trace", "3", "info,xdpvs=debug"] {
            assert_eq!(Level::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lines_above_the_level_are_not_written() {
        let mut l = Logger::new(Level::Notice, 30 * S);
        assert!(l.line(Level::Info, "x").is_none());
        assert!(l.line(Level::Debug, "x").is_none());
        assert_eq!(
            l.line(Level::Warning, "x").as_deref(),
            Some("<4>xdpvs: x\n")
        );
        let t = Instant::now();
        assert!(l.limited("k", Level::Info, "x", t).is_none());
        assert!(l.flush(t + 60 * S, true).is_empty());
        l.set_level(Level::Debug);
        assert_eq!(l.line(Level::Debug, "x").as_deref(), Some("<7>xdpvs: x\n"));
    }

    #[test]
    fn a_repeated_condition_is_written_once_per_interval_with_its_count() {
        let mut l = Logger::new(Level::Info, 30 * S);
        let t = Instant::now();
        assert_eq!(
            l.limited("nl", Level::Warning, "next hops: busy", t)
                .as_deref(),
            Some("<4>xdpvs: next hops: busy\n")
        );
        // 532 more within the interval: nothing written, nothing due.
        for i in 1..=532u32 {
            let at = t + Duration::from_millis(u64::from(i) * 50);
            assert!(
                l.limited("nl", Level::Warning, "next hops: busy", at)
                    .is_none()
            );
        }
        assert!(l.flush(t + 29 * S, false).is_empty());
        // Another key is independent.
        assert!(
            l.limited("maps", Level::Warning, "XDP maps: full", t)
                .is_some()
        );
        // The next one after the interval carries the count.
        assert_eq!(
            l.limited("nl", Level::Warning, "next hops: busy", t + 31 * S)
                .as_deref(),
            Some("<4>xdpvs: next hops: busy (repeated 532 times)\n")
        );
        // Then quiet again for an interval, counted from that line.
        assert!(
            l.limited("nl", Level::Warning, "next hops: gone", t + 32 * S)
                .is_none()
        );
        assert!(l.flush(t + 40 * S, false).is_empty());
        // The flush after the interval writes the tail, with the last text.
        assert_eq!(
            l.flush(t + 62 * S, false),
            ["<4>xdpvs: next hops: gone (repeated 1 time)\n"]
        );
        // Quiet for a whole interval: forgotten, the next is written at once.
        assert!(l.flush(t + 100 * S, false).is_empty());
        assert_eq!(
            l.limited("nl", Level::Warning, "next hops: busy", t + 101 * S)
                .as_deref(),
            Some("<4>xdpvs: next hops: busy\n")
        );
    }

    #[test]
    fn flush_all_writes_every_pending_count() {
        let mut l = Logger::new(Level::Info, 30 * S);
        let t = Instant::now();
        for key in ["a", "b", "c"] {
            l.limited(key, Level::Warning, key, t);
        }
        for _ in 0..3 {
            l.limited("a", Level::Warning, "a", t + S);
        }
        l.limited("b", Level::Warning, "b", t + S);
        let lines = l.flush(t + 2 * S, true);
        assert_eq!(
            lines,
            [
                "<4>xdpvs: a (repeated 3 times)\n",
                "<4>xdpvs: b (repeated 1 time)\n"
            ]
        );
        assert!(l.flush(t + 3 * S, true).is_empty());
    }
}
