//! The rules a virtual service or real server must satisfy, whoever
//! supplies it: the configuration file or `xdpvsadm` through the control
//! socket. One place, so that a rule cannot hold for one and not the other.
//!
//! A rule that fails names the [`Field`] it rejects; the configuration file
//! reports the error at that key, the control socket in its reply.

use std::net::{Ipv4Addr, SocketAddr};

use super::error::Problem;
use super::types::{RealConfig, SCHEDULERS, ServiceConfig};
use crate::dest::Forward;
use crate::sched::{self, Params, SchedFlags};

// Defined with the scheduler registry; `xdpvsadm -b` reads them here too.
pub use crate::sched::SCHED_FLAG_NAMES;

/// Largest `-x` / `-y` threshold: ipvsadm reads them as an `int`.
pub const MAX_THRESHOLD: u32 = i32::MAX.unsigned_abs();

/// The setting a rule rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Vip,
    Scheduler,
    PersistenceTimeout,
    PersistenceNetmask,
    SchedulerFlags,
    MhTableSize,
    Addr,
    Forward,
    Weight,
    UpperThreshold,
    LowerThreshold,
}

type Rule = Result<(), (Field, Problem)>;

fn expected(field: Field, expected: impl Into<String>, got: impl ToString) -> Rule {
    Err((
        field,
        Problem::Expected {
            expected: expected.into(),
            got: got.to_string(),
        },
    ))
}

/// Ones followed by zeros, as a netmask must be.
pub fn is_contiguous(mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    m.leading_ones() + m.trailing_zeros() == 32
}

/// A virtual service's own settings (not its real servers).
pub fn check_service(s: &ServiceConfig) -> Rule {
    let Some(scheduler) = sched::registered(&s.scheduler) else {
        let names: Vec<String> = SCHEDULERS.iter().map(|n| format!("{n:?}")).collect();
        return expected(
            Field::Scheduler,
            format!("one of {}", names.join(", ")),
            format!("{:?}", s.scheduler),
        );
    };
    if s.persistence_timeout > ServiceConfig::MAX_PERSISTENCE_TIMEOUT {
        return expected(
            Field::PersistenceTimeout,
            format!("an integer 0..={}", ServiceConfig::MAX_PERSISTENCE_TIMEOUT),
            s.persistence_timeout,
        );
    }
    if !is_contiguous(s.persistence_netmask) {
        return expected(
            Field::PersistenceNetmask,
            "a contiguous IPv4 netmask, e.g. \"255.255.255.0\"",
            s.persistence_netmask,
        );
    }
    if s.vip.is_ipv6() && s.persistence_netmask != Ipv4Addr::BROADCAST {
        return Err((
            Field::PersistenceNetmask,
            Problem::Ipv4Only {
                what: "persistence_netmask",
            },
        ));
    }
    // Bits alone cannot be incompatible with a scheduler: any scheduler
    // may carry flag-N; only the names sh-* and mh-* are restricted.
    let known = SchedFlags::FLAG1 | SchedFlags::FLAG2 | SchedFlags::FLAG3;
    if s.scheduler_flags.0 & !known != 0 {
        return expected(
            Field::SchedulerFlags,
            "scheduler flags 1, 2 and 3 only",
            s.scheduler_flags.0,
        );
    }
    let (lo, hi) = (
        ServiceConfig::MIN_MH_TABLE_SIZE,
        ServiceConfig::MAX_MH_TABLE_SIZE,
    );
    if !Params::mh_table_size_ok(s.mh_table_size) {
        return expected(
            Field::MhTableSize,
            format!("a prime {lo}..={hi}, e.g. 65537"),
            s.mh_table_size,
        );
    }
    if scheduler != "mh" && s.mh_table_size != ServiceConfig::DEFAULT_MH_TABLE_SIZE {
        return Err((
            Field::MhTableSize,
            Problem::SchedulerOnly {
                what: "mh_table_size",
                scheduler: "mh",
                actual: scheduler,
            },
        ));
    }
    if s.vip.port() == 0 && s.persistence_timeout == 0 {
        return Err((Field::Vip, Problem::PortZeroNotPersistent));
    }
    Ok(())
}

/// A real server of the service at `vip`. A TUN server needs no
/// configured tunnel source: the outer source defaults to the source
/// address of the kernel's route to the server (see `xmit::tun`).
pub fn check_real(vip: SocketAddr, r: &RealConfig) -> Rule {
    if r.weight > RealConfig::MAX_WEIGHT {
        return expected(
            Field::Weight,
            format!("an integer 0..={}", RealConfig::MAX_WEIGHT),
            r.weight,
        );
    }
    for (field, n) in [
        (Field::UpperThreshold, r.upper_threshold),
        (Field::LowerThreshold, r.lower_threshold),
    ] {
        if n > MAX_THRESHOLD {
            return expected(field, format!("an integer 0..={MAX_THRESHOLD}"), n);
        }
    }
    let addr = r.addr;
    if addr.is_ipv4() != vip.is_ipv4() {
        let problem = Problem::AddressFamily {
            vip: vip.ip(),
            real: addr.ip(),
        };
        return Err((Field::Addr, problem));
    }
    if vip.port() != 0 && addr.port() == 0 {
        return Err((Field::Addr, Problem::RealPortZero { addr }));
    }
    if vip.port() != 0 && r.forward != Forward::Nat && addr.port() != vip.port() {
        let problem = Problem::PortMismatch {
            forward: r.forward,
            vip_port: vip.port(),
            real_port: addr.port(),
        };
        return Err((Field::Addr, problem));
    }
    if r.forward == Forward::Tun && addr.is_ipv6() {
        let problem = Problem::Ipv4Only {
            what: "forward = \"tun\" (IPIP)",
        };
        return Err((Field::Forward, problem));
    }
    if r.lower_threshold > r.upper_threshold {
        let problem = Problem::ThresholdOrder {
            lower: r.lower_threshold,
            upper: r.upper_threshold,
        };
        return Err((Field::LowerThreshold, problem));
    }
    Ok(())
}
