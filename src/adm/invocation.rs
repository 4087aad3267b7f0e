//! What a command line asks for, and why one is refused.

use std::path::PathBuf;

use super::listing;
use crate::ctrl::proto::Request;

/// Why a command line was refused, or a request failed: one line for
/// stderr, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmError {
    pub message: String,
    pub status: u8,
}

impl AdmError {
    /// ipvsadm's `fail(2, ...)`.
    pub(super) fn fail(message: impl Into<String>) -> AdmError {
        AdmError {
            message: message.into(),
            status: 2,
        }
    }

    /// ipvsadm's `tryhelp_exit(argv[0], -1)`.
    pub(super) fn tryhelp() -> AdmError {
        AdmError {
            message: "Try `xdpvsadm -h' or 'xdpvsadm --help' for more information.".into(),
            status: 255,
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--socket`, or [`DEFAULT_SOCKET`](crate::config::DEFAULT_SOCKET).
    pub socket: PathBuf,
    pub action: Action,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the request, print the reply as `view` says.
    Send { request: Request, view: View },
    /// `-R`: read rules from stdin ([`parse_rules`](super::parse_rules)) and send them as one
    /// [`Request::Restore`].
    Restore,
    /// `-h`: print [`usage()`](super::usage()).
    Help,
    /// `-v`.
    Version,
}

/// How a reply is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct View {
    /// `-n`.
    pub numeric: bool,
    /// `-S`: rules rather than the table.
    pub save: bool,
    /// `--nosort`: the daemon's order.
    pub nosort: bool,
    /// `--stats`, `--rate`, ... and `--exact`.
    pub listing: listing::Options,
    /// `--persistent-conn` (also changes `-c`'s heading).
    pub persistent_conn: bool,
    /// `--json`: the reply as a JSON document ([`json`](super::json)).
    pub json: bool,
    /// `--drops`: the counters as the drops table.
    pub drops: bool,
}
