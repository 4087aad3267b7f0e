//! What can go wrong talking to the kernel over netlink.

use std::io;

/// Control-path errors; "no route" is a [`super::Resolution`], never one of these.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("kernel refused {request}: {source}")]
    Kernel {
        request: &'static str,
        source: io::Error,
    },
    #[error("malformed netlink answer: {0}")]
    Protocol(String),
    #[error("no answer to {request} within {after:?}")]
    Timeout {
        request: &'static str,
        after: std::time::Duration,
    },
}
