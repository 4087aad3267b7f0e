//! Errors of the control path: what is wrong with a configuration file, where.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::dest::Forward;

/// Why a configuration file was rejected. The `Display` form is one line,
/// ready for an operator: `FILE:LINE: KEY: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration file: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML; the message and position are toml's own.
    #[error("{}: invalid TOML: {message}", at.with_column())]
    Syntax { at: Location, message: String },
    /// The TOML is fine but a key or value is not what xdpvs accepts.
    #[error("{at}: {key}: {problem}")]
    Invalid {
        at: Location,
        /// Key path from the document root, e.g. `services[1].reals[0].weight`.
        key: String,
        problem: Problem,
    },
}

impl ConfigError {
    /// Where the error is, if it has a place in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { at, .. } | ConfigError::Invalid { at, .. } => Some(at),
        }
    }
}

/// A place in a configuration file. Lines and columns count from 1; both are
/// `None` for something that is absent from the file (a missing `[dataplane]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl Location {
    /// `file:line:column`, as far as known.
    pub fn with_column(&self) -> impl fmt::Display + '_ {
        struct WithColumn<'a>(&'a Location);
        impl fmt::Display for WithColumn<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)?;
                match (self.0.line, self.0.column) {
                    (Some(_), Some(column)) => write!(f, ":{column}"),
                    _ => Ok(()),
                }
            }
        }
        WithColumn(self)
    }
}

/// `file:line` (the key path that follows pinpoints the spot in the line).
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        match self.line {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// What is wrong with the key that a [`ConfigError::Invalid`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Wrong type, out of range, or malformed.
    #[error("expected {expected}, got {got}")]
    Expected { expected: String, got: String },
    /// A required key is absent.
    #[error("required key is missing; expected {expected}")]
    Missing { expected: String },
    /// The shape is wrong: an unknown key (a typo?), or a table or list where
    /// the other was expected. The message is serde's.
    #[error("{message}")]
    Shape { message: String },
    /// The same interface, core, service or real server twice.
    #[error("duplicate {what}, first given at line {first_line}")]
    Duplicate { what: String, first_line: u32 },
    /// DR and TUN leave the transport header alone, so the real server must
    /// listen on the VIP's port.
    #[error(
        "expected port {vip_port} (the VIP's port; forward = \"{}\" cannot change the port, only \"nat\" can), got {real_port}",
        forward.config_name()
    )]
    PortMismatch {
        forward: Forward,
        vip_port: u16,
        real_port: u16,
    },
    /// Port 0 in a real server of a service that has a port.
    #[error(
        "expected the real server's port (port 0 is only valid when the service port is 0), got {addr}"
    )]
    RealPortZero { addr: SocketAddr },
    /// A port-0 (all ports) service that is not persistent.
    #[error("port 0 (all ports) is only valid for a persistent service (persistence_timeout > 0)")]
    PortZeroNotPersistent,
    /// The real server's address family differs from the VIP's.
    #[error("expected an address of the VIP's family ({vip}), got {real}")]
    AddressFamily { vip: IpAddr, real: IpAddr },
    /// Something xdpvs only supports for IPv4 was used with IPv6.
    #[error("{what} is only supported for IPv4 services")]
    Ipv4Only { what: &'static str },
    /// A setting that only one scheduler understands, on a service with
    /// another (ipvsadm: "incompatible scheduler flag").
    #[error("{what} is only valid with scheduler = \"{scheduler}\", not \"{actual}\"")]
    SchedulerOnly {
        what: &'static str,
        scheduler: &'static str,
        actual: &'static str,
    },
    /// `lower_threshold` above `upper_threshold` (Linux IPVS refuses this too).
    #[error(
        "expected at most upper_threshold ({upper}; 0 = no limit, which allows only 0 here), got {lower}"
    )]
    ThresholdOrder { lower: u32, upper: u32 },
    /// A health-check key of another kind of check (`urls` on a TCP check).
    #[error("{what} is only valid with kind = \"{kinds}\", not \"{actual}\"")]
    KindOnly {
        what: &'static str,
        kinds: &'static str,
        actual: &'static str,
    },
}
