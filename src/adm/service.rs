//! The virtual-service commands, `-A`, `-E` and `-D`: the service's
//! address (`-t`, `-u`; also what `-a -e -d -L -Z` name), `-s`, `-p`,
//! `-M` and `-b` as ipvsadm reads them.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::rules::SCHED_FLAG_NAMES;
use crate::config::{DEFAULT_SCHEDULER, Protocol, SchedFlags};
use crate::ctrl::proto::ServiceSpec;

use super::entry::{Entry, MAX_TIMEOUT, timeout};
use super::invocation::AdmError;
use super::resolve::host_port;

/// `IPVS_SVC_PERSISTENT_TIMEOUT`: `-p` without a value.
const DEFAULT_PERSISTENCE: u32 = 300;

/// `-t`, `-u`: `host[:port]`; no port is port 0.
pub(super) fn address(arg: &str, proto: Protocol) -> Result<SocketAddr, AdmError> {
    let (ip, port) = host_port(arg, proto)
        .ok_or_else(|| AdmError::fail("illegal virtual server address[:port] specified"))?;
    Ok(SocketAddr::new(ip, port.unwrap_or(0)))
}

/// `-p [timeout]`.
pub(super) fn persistence(arg: Option<&str>) -> Result<u32, AdmError> {
    match arg {
        None => Ok(DEFAULT_PERSISTENCE),
        Some(a) => timeout(a, 1, MAX_TIMEOUT),
    }
}

/// `-M`.
pub(super) fn netmask(arg: &str) -> Result<Ipv4Addr, AdmError> {
    super::resolve::netmask(arg)
        .ok_or_else(|| AdmError::fail("illegal virtual server persistent mask specified"))
}

/// `-s`, else ipvsadm's default, and `-b`, which ipvsadm parses after
/// all the other options, against the final scheduler.
pub(super) fn scheduler(e: &Entry) -> Result<(String, SchedFlags), AdmError> {
    let scheduler = e
        .scheduler
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned());
    let flags = match &e.flags {
        Some(f) => sched_flags(&scheduler, f)?,
        None => SchedFlags::default(),
    };
    Ok((scheduler, flags))
}

/// `-A`, `-E`: every setting of the service, as ipvsadm sends them
/// (what the command line leaves out takes its default).
pub(super) fn spec(
    e: &Entry,
    scheduler: String,
    flags: SchedFlags,
) -> Result<ServiceSpec, AdmError> {
    let key = e.key();
    if key.vip.port() == 0 && e.persistence == 0 {
        return Err(AdmError::fail(
            "Zero port specified for non-persistent service",
        ));
    }
    Ok(ServiceSpec {
        proto: key.proto,
        vip: key.vip,
        scheduler,
        persistence_timeout: e.persistence,
        persistence_netmask: e.netmask,
        flags,
    })
}

/// `parse_sched_flags`.
fn sched_flags(scheduler: &str, arg: &str) -> Result<SchedFlags, AdmError> {
    let mut bits = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let Some(&(_, bit, only)) = SCHED_FLAG_NAMES.iter().find(|e| e.0 == flag) else {
            return Err(AdmError::fail(format!("invalid scheduler flag `{flag}'")));
        };
        if only.is_some_and(|s| s != scheduler) {
            return Err(AdmError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
        bits |= bit;
    }
    Ok(SchedFlags(bits))
}
