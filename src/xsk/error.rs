//! The control-path error of this module: opening a socket or managing
//! the steering program. The data path has no errors of its own; what goes
//! wrong there is counted in [`XskStats`](super::stats::XskStats).

use std::io;

/// Opening a socket or managing the steering program failed.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("interface {ifname}: no such interface")]
    NoSuchInterface { ifname: String },
    #[error("AF_XDP socket on {ifname} queue {queue}: {reason}")]
    Config {
        ifname: String,
        queue: u32,
        reason: String,
    },
    #[error("AF_XDP socket on {ifname} queue {queue}: {op}: {source}")]
    Os {
        ifname: String,
        queue: u32,
        op: &'static str,
        source: io::Error,
    },
    #[error(
        "AF_XDP socket on {ifname} queue {queue}: bind: {source}: another AF_XDP socket still holds the queue after {waited:?} (another program on it, or one that has not let go yet)"
    )]
    QueueBusy {
        ifname: String,
        queue: u32,
        waited: std::time::Duration,
        source: io::Error,
    },
    #[error(
        "AF_XDP socket on {ifname} queue {queue}: zero-copy required but the driver refuses it: {source}"
    )]
    ZeroCopyUnsupported {
        ifname: String,
        queue: u32,
        source: io::Error,
    },
    #[error("XDP program on {ifname}: {op}: {reason}")]
    Bpf {
        ifname: String,
        op: &'static str,
        reason: String,
    },
    #[error(
        "XDP program on {ifname}: another XDP program ({name}, id {id}) is attached; not replacing a program that is not ours (detach it with `ip link set dev {ifname} xdp off`)"
    )]
    ForeignProgram {
        ifname: String,
        name: String,
        id: u32,
    },
}
