//! The real-server commands, `-a`, `-e` and `-d`: `-r`, `-w`, `-x`, `-y`
//! as ipvsadm reads them, and the port a real server gets.

use std::net::SocketAddr;

use crate::config::{Forward, Protocol};
use crate::ctrl::proto::{DestSpec, Request};

use super::entry::{Entry, number};
use super::invocation::AdmError;
use super::resolve::host_port;

/// `-r host[:port]`: without a port, the service's, as far as the service
/// is known yet (`-t` or `-u` given before `-r`).
pub(super) fn address(
    arg: &str,
    proto: Protocol,
    service: Option<SocketAddr>,
) -> Result<SocketAddr, AdmError> {
    let (ip, port) = host_port(arg, proto)
        .ok_or_else(|| AdmError::fail("illegal real server address[:port] specified"))?;
    let port = port.unwrap_or_else(|| service.map_or(0, |v| v.port()));
    Ok(SocketAddr::new(ip, port))
}

/// `-w`.
pub(super) fn weight(arg: &str) -> Result<u32, AdmError> {
    number(arg, 0, 65535).ok_or_else(|| AdmError::fail("illegal weight specified"))
}

/// `-x` (`u_threshold`) and `-y` (`l_threshold`).
pub(super) fn threshold(arg: &str, which: &str) -> Result<u32, AdmError> {
    number(arg, 0, i32::MAX as u32)
        .ok_or_else(|| AdmError::fail(format!("illegal {which} specified")))
}

/// `-a`, `-e`: the real server's settings.
pub(super) fn spec(e: &Entry) -> DestSpec {
    let service = e.key();
    let mut addr = e.dest.expect("the option check demands a real server");
    // DR and TUN cannot change the port: the service's, always.
    if e.forward != Forward::Nat {
        addr.set_port(service.vip.port());
    }
    DestSpec {
        service,
        addr,
        forward: e.forward,
        weight: e.weight,
        upper_threshold: e.upper,
        lower_threshold: e.lower,
    }
}

/// `-d`: deleting needs no forwarding method; the port is as given.
pub(super) fn delete(e: &Entry) -> Request {
    Request::DelDest {
        service: e.key(),
        dest: e.dest.expect("the option check demands a real server"),
    }
}
