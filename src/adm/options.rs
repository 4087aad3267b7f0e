//! ipvsadm's option table (popt's, 1.31, plus `--socket`, `--json`,
//! `--counters` and `--drops`) and its
//! `commands_v_options` matrix of legal command/option combinations, for
//! the options xdpvs has.

use crate::config::Forward;

/// A command: the first option of a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
    /// `--counters`: not ipvsadm's; every worker's statistics.
    Counters,
    /// `--drops`: not ipvsadm's; the drops per worker and reason.
    Drops,
}

/// An option that may follow a command, in [`OPTS`] order (its bit in a
/// command line's option set is `1 << opt as u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
    /// `--json`: not ipvsadm's; the listing as JSON.
    Json,
}

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arg {
    None,
    Required,
    /// `-p`: the next word, unless it starts with `-`.
    Optional,
}

/// What an option is, for the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Opt(Opt),
    Fwd(Forward),
    Sort,
    Socket,
    /// Exists in ipvsadm, not in xdpvs: refused with this reason.
    Unsupported(&'static str),
}

const NO_FWMARK: &str = "fwmark services (-f) are not supported by xdpvs; use -t or -u";
const NO_FWMARK6: &str = "fwmark services (-f, -6) are not supported by xdpvs; use -t or -u";
const NO_SCTP: &str = "SCTP services are not supported by xdpvs; use -t or -u";
const NO_OPS: &str = "one-packet scheduling (-o) is not supported by xdpvs";
const NO_PE: &str = "persistence engines (--pe) are not supported by xdpvs";
const NO_SYNC: &str = "the connection sync daemon is not supported by xdpvs";

/// ipvsadm's popt table (1.31), plus `--socket`, `--json`, `--counters` and `--drops`: long name, short name,
/// argument, meaning. The first entry of a name wins.
#[rustfmt::skip]
pub(super) const TABLE: &[(&str, Option<char>, Arg, Tag)] = &[
    ("add-service",     Some('A'), Arg::None,     Tag::Cmd(Cmd::Add)),
    ("edit-service",    Some('E'), Arg::None,     Tag::Cmd(Cmd::Edit)),
    ("delete-service",  Some('D'), Arg::None,     Tag::Cmd(Cmd::Del)),
    ("clear",           Some('C'), Arg::None,     Tag::Cmd(Cmd::Flush)),
    ("list",            Some('L'), Arg::None,     Tag::Cmd(Cmd::List)),
    ("list",            Some('l'), Arg::None,     Tag::Cmd(Cmd::List)),
    ("zero",            Some('Z'), Arg::None,     Tag::Cmd(Cmd::Zero)),
    ("add-server",      Some('a'), Arg::None,     Tag::Cmd(Cmd::AddDest)),
    ("edit-server",     Some('e'), Arg::None,     Tag::Cmd(Cmd::EditDest)),
    ("delete-server",   Some('d'), Arg::None,     Tag::Cmd(Cmd::DelDest)),
    ("set",             None,      Arg::None,     Tag::Cmd(Cmd::Timeout)),
    ("help",            Some('h'), Arg::None,     Tag::Help),
    ("version",         Some('v'), Arg::None,     Tag::Version),
    ("restore",         Some('R'), Arg::None,     Tag::Cmd(Cmd::Restore)),
    ("save",            Some('S'), Arg::None,     Tag::Cmd(Cmd::Save)),
    ("tcp-service",     Some('t'), Arg::Required, Tag::Tcp),
    ("udp-service",     Some('u'), Arg::Required, Tag::Udp),
    ("scheduler",       Some('s'), Arg::Required, Tag::Opt(Opt::Scheduler)),
    ("persistent",      Some('p'), Arg::Optional, Tag::Opt(Opt::Persistent)),
    ("netmask",         Some('M'), Arg::Required, Tag::Opt(Opt::Netmask)),
    ("real-server",     Some('r'), Arg::Required, Tag::Opt(Opt::Server)),
    ("masquerading",    Some('m'), Arg::None,     Tag::Fwd(Forward::Nat)),
    ("ipip",            Some('i'), Arg::None,     Tag::Fwd(Forward::Tun)),
    ("gatewaying",      Some('g'), Arg::None,     Tag::Fwd(Forward::Dr)),
    ("weight",          Some('w'), Arg::Required, Tag::Opt(Opt::Weight)),
    ("u-threshold",     Some('x'), Arg::Required, Tag::Opt(Opt::UThreshold)),
    ("l-threshold",     Some('y'), Arg::Required, Tag::Opt(Opt::LThreshold)),
    ("numeric",         Some('n'), Arg::None,     Tag::Opt(Opt::Numeric)),
    ("connection",      Some('c'), Arg::None,     Tag::Opt(Opt::Connection)),
    ("timeout",         None,      Arg::None,     Tag::Opt(Opt::Timeout)),
    ("stats",           None,      Arg::None,     Tag::Opt(Opt::Stats)),
    ("rate",            None,      Arg::None,     Tag::Opt(Opt::Rate)),
    ("thresholds",      None,      Arg::None,     Tag::Opt(Opt::Thresholds)),
    ("persistent-conn", None,      Arg::None,     Tag::Opt(Opt::PersistentConn)),
    ("nosort",          None,      Arg::None,     Tag::Opt(Opt::NoSort)),
    ("sort",            None,      Arg::None,     Tag::Sort),
    ("exact",           Some('X'), Arg::None,     Tag::Opt(Opt::Exact)),
    ("sched-flags",     Some('b'), Arg::Required, Tag::Opt(Opt::SchedFlags)),
    ("socket",          None,      Arg::Required, Tag::Socket),
    ("counters",        None,      Arg::None,     Tag::Cmd(Cmd::Counters)),
    ("drops",           None,      Arg::None,     Tag::Cmd(Cmd::Drops)),
    ("json",            None,      Arg::None,     Tag::Opt(Opt::Json)),
    ("fwmark-service",  Some('f'), Arg::Required, Tag::Unsupported(NO_FWMARK)),
    ("ipv6",            Some('6'), Arg::None,     Tag::Unsupported(NO_FWMARK6)),
    ("sctp-service",    None,      Arg::Required, Tag::Unsupported(NO_SCTP)),
    ("ops",             Some('o'), Arg::None,     Tag::Unsupported(NO_OPS)),
    ("pe",              None,      Arg::Required, Tag::Unsupported(NO_PE)),
    ("start-daemon",    None,      Arg::Required, Tag::Unsupported(NO_SYNC)),
    ("stop-daemon",     None,      Arg::Required, Tag::Unsupported(NO_SYNC)),
    ("daemon",          None,      Arg::None,     Tag::Unsupported(NO_SYNC)),
    ("mcast-interface", None,      Arg::Required, Tag::Unsupported(NO_SYNC)),
    ("syncid",          None,      Arg::Required, Tag::Unsupported(NO_SYNC)),
];

pub(super) const OPT_COUNT: usize = 21;

/// ipvsadm's `optnames`, for the options we have, in [`Opt`] order; the
/// columns of [`LEGAL`].
pub(super) const OPTS: [&str; OPT_COUNT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "timeout",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "exact",
    "sched-flags",
    // Not ipvsadm's: legal with the listings only.
    "json",
    // Not an ipvsadm option: never in a command row, so always legal.
    "socket",
];

/// ipvsadm's `commands_v_options` for the options we have, and its
/// `cmdnames`: per command, one cell per option of [`OPTS`]: `+`
/// compulsory, `x` illegal, `1` at most one of the `1`s, `.` optional.
///
/// Columns: `-n`, `-c`, service address (`-t`/`-u`), `-s`, `-p`, `-M`,
/// `-r`, forwarding method (`-g`/`-i`/`-m`), `-w`, `-x`, `-y`,
/// `--timeout`, `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
/// `--nosort`, `--exact`, `-b`, `--json`, `--socket`.
#[rustfmt::skip]
static LEGAL: [(Cmd, &str, [u8; OPT_COUNT]); 14] = [
    //                                     -n  -c  svc -s  -p  -M  -r  fwd -w  -x  -y  tmo sta rat thr pco nos -X  -b  jsn soc
    (Cmd::Add,      "add-service",    row("x   x   +   .   .   .   x   x   x   x   x   x   x   x   x   x   x   x   .   x   .")),
    (Cmd::Edit,     "edit-service",   row("x   x   +   .   .   .   x   x   x   x   x   x   x   x   x   x   x   x   .   x   .")),
    (Cmd::Del,      "delete-service", row("x   x   +   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Flush,    "flush",          row("x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::List,     "list",           row(".   1   1   x   x   x   x   x   x   x   x   1   .   .   .   .   .   .   x   .   .")),
    (Cmd::AddDest,  "add-server",     row("x   x   +   x   x   x   +   .   .   .   .   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::DelDest,  "delete-server",  row("x   x   +   x   x   x   +   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::EditDest, "edit-server",    row("x   x   +   x   x   x   +   .   .   .   .   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Timeout,  "set",            row("x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Restore,  "restore",        row("x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Save,     "save",           row(".   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Zero,     "zero",           row("x   x   .   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .")),
    (Cmd::Counters, "counters",       row("x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .   .")),
    (Cmd::Drops,    "drops",          row("x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   x   .   .")),
];

/// A row of [`LEGAL`] without its spacing; one of the wrong length does
/// not compile.
const fn row(cells: &str) -> [u8; OPT_COUNT] {
    let cells = cells.as_bytes();
    let mut out = [0; OPT_COUNT];
    let (mut i, mut n) = (0, 0);
    while i < cells.len() {
        if cells[i] != b' ' {
            assert!(n < OPT_COUNT, "a row of LEGAL has too many cells");
            out[n] = cells[i];
            n += 1;
        }
        i += 1;
    }
    assert!(n == OPT_COUNT, "a row of LEGAL has too few cells");
    out
}

impl Cmd {
    fn legal(self) -> &'static (Cmd, &'static str, [u8; OPT_COUNT]) {
        LEGAL
            .iter()
            .find(|(c, _, _)| *c == self)
            .expect("every command has a row in LEGAL")
    }

    /// ipvsadm's `cmdnames`.
    pub(super) fn name(self) -> &'static str {
        self.legal().1
    }

    /// The command's row of [`LEGAL`], in [`OPTS`] order.
    pub(super) fn row(self) -> &'static [u8; OPT_COUNT] {
        &self.legal().2
    }
}
