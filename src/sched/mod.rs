//! Schedule: choosing a real server for a new connection.
//!
//! One file per scheduler, each behind the small [`Scheduler`] trait and
//! registered by name in [`REGISTRY`]. The hot path dispatches through the
//! [`Sched`] enum, not a trait object. A scheduler is built on the control
//! side whenever its service's real servers change (that is where any
//! expensive table is computed) and is then shared, immutable, by every
//! worker through the snapshot; per-decision state that must be shared
//! (the rr cursor, the lblc and lblcr locality tables) is atomic, never a
//! lock.
//!
//! The trait and what a scheduler sees ([`Flow`], [`Dests`]) live in
//! `scheduler.rs`, a service's settings in `params.rs` and `flags.rs`; the
//! scheduler files build on those, never on this file, which only
//! registers them and dispatches.
//!
//! Arithmetic is integer-only and follows the Linux sources
//! (`net/netfilter/ipvs/ip_vs_<name>.c`), including the order in which
//! real servers are considered: IPVS's list order, newest first.

pub mod dh;
mod flags;
mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod locality;
pub mod mh;
pub mod nq;
mod params;
pub mod rr;
mod scheduler;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

pub use flags::SchedFlags;
pub use params::Params;
pub use scheduler::{Dests, Flow, Scheduler};

/// The schedulers, for dispatch without a virtual call.
pub enum Sched {
    Rr(rr::Rr),
    Wlc(wlc::Wlc),
    Wrr(wrr::Wrr),
    Lc(lc::Lc),
    Sed(sed::Sed),
    Nq(nq::Nq),
    Dh(dh::Dh),
    Sh(sh::Sh),
    Mh(mh::Mh),
    Lblc(lblc::Lblc),
    Lblcr(lblcr::Lblcr),
}

fn build<S: Scheduler>(dests: &Dests<'_>, params: &Params, wrap: fn(S) -> Sched) -> Sched {
    wrap(S::build(dests, params))
}

type Builder = fn(&Dests<'_>, &Params) -> Sched;

/// Every scheduler, by name: the one place a new one is registered. In
/// the order ipvsadm's manual lists them (Maglev last), which is the order
/// messages name them in.
pub const REGISTRY: &[(&str, Builder)] = &[
    (rr::Rr::NAME, |d, p| build(d, p, Sched::Rr)),
    (wrr::Wrr::NAME, |d, p| build(d, p, Sched::Wrr)),
    (lc::Lc::NAME, |d, p| build(d, p, Sched::Lc)),
    (wlc::Wlc::NAME, |d, p| build(d, p, Sched::Wlc)),
    (lblc::Lblc::NAME, |d, p| build(d, p, Sched::Lblc)),
    (lblcr::Lblcr::NAME, |d, p| build(d, p, Sched::Lblcr)),
    (dh::Dh::NAME, |d, p| build(d, p, Sched::Dh)),
    (sh::Sh::NAME, |d, p| build(d, p, Sched::Sh)),
    (sed::Sed::NAME, |d, p| build(d, p, Sched::Sed)),
    (nq::Nq::NAME, |d, p| build(d, p, Sched::Nq)),
    (mh::Mh::NAME, |d, p| build(d, p, Sched::Mh)),
];

/// The names in [`REGISTRY`], in its order: the scheduler names that
/// `ipvsadm -s` and `services.scheduler` accept.
pub const NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = REGISTRY[i].0;
        i += 1;
    }
    names
};

/// The registered scheduler called `name`, as its `'static` name.
pub fn registered(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|&n| n == name)
}

/// Scheduler flag names as ipvsadm `-b` spells them (`parse_sched_flags`):
/// name, bit, and the only scheduler it is valid with (`None`: any).
pub const SCHED_FLAG_NAMES: &[(&str, u8, Option<&str>)] = &[
    ("sh-fallback", SchedFlags::FLAG1, Some(sh::Sh::NAME)),
    ("sh-port", SchedFlags::FLAG2, Some(sh::Sh::NAME)),
    ("mh-fallback", SchedFlags::FLAG1, Some(mh::Mh::NAME)),
    ("mh-port", SchedFlags::FLAG2, Some(mh::Mh::NAME)),
    ("flag-1", SchedFlags::FLAG1, None),
    ("flag-2", SchedFlags::FLAG2, None),
    ("flag-3", SchedFlags::FLAG3, None),
];

/// Why a scheduler could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    #[error("unknown scheduler \"{0}\"")]
    Unknown(String),
}

impl Sched {
    /// The scheduler registered as `name`, built for `dests`.
    pub fn build(name: &str, dests: &Dests<'_>, params: &Params) -> Result<Sched, SchedError> {
        match REGISTRY.iter().find(|(n, _)| *n == name) {
            Some((_, b)) => Ok(b(dests, params)),
            None => Err(SchedError::Unknown(name.to_owned())),
        }
    }

    /// The scheduler registered as `name`, built for `dests` to replace
    /// `prev` in the same service ([`Scheduler::rebuild`]); a fresh build
    /// when `prev` is another kind.
    pub fn rebuild(
        name: &str,
        dests: &Dests<'_>,
        params: &Params,
        prev: &Sched,
    ) -> Result<Sched, SchedError> {
        match prev {
            Sched::Rr(p) if name == rr::Rr::NAME => {
                Ok(Sched::Rr(rr::Rr::rebuild(dests, params, p)))
            }
            Sched::Lblc(p) if name == lblc::Lblc::NAME => {
                Ok(Sched::Lblc(lblc::Lblc::rebuild(dests, params, p)))
            }
            Sched::Lblcr(p) if name == lblcr::Lblcr::NAME => {
                Ok(Sched::Lblcr(lblcr::Lblcr::rebuild(dests, params, p)))
            }
            _ => Sched::build(name, dests, params),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Sched::Rr(_) => rr::Rr::NAME,
            Sched::Wlc(_) => wlc::Wlc::NAME,
            Sched::Wrr(_) => wrr::Wrr::NAME,
            Sched::Lc(_) => lc::Lc::NAME,
            Sched::Sed(_) => sed::Sed::NAME,
            Sched::Nq(_) => nq::Nq::NAME,
            Sched::Dh(_) => dh::Dh::NAME,
            Sched::Sh(_) => sh::Sh::NAME,
            Sched::Mh(_) => mh::Mh::NAME,
            Sched::Lblc(_) => lblc::Lblc::NAME,
            Sched::Lblcr(_) => lblcr::Lblcr::NAME,
        }
    }

    /// The list position of the real server for a new connection.
    #[inline]
    pub fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize> {
        let pos = match self {
            Sched::Rr(s) => s.schedule(dests, flow),
            Sched::Wlc(s) => s.schedule(dests, flow),
            Sched::Wrr(s) => s.schedule(dests, flow),
            Sched::Lc(s) => s.schedule(dests, flow),
            Sched::Sed(s) => s.schedule(dests, flow),
            Sched::Nq(s) => s.schedule(dests, flow),
            Sched::Dh(s) => s.schedule(dests, flow),
            Sched::Sh(s) => s.schedule(dests, flow),
            Sched::Mh(s) => s.schedule(dests, flow),
            Sched::Lblc(s) => s.schedule(dests, flow),
            Sched::Lblcr(s) => s.schedule(dests, flow),
        };
        debug_assert!(pos.is_none_or(|p| dests.at(p).available()));
        pos
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::dest::{Dest, DestCounters, DestRef, Forward};
    use std::net::IpAddr;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    /// Real servers 198.18.2.(11+i) with the given weights, in list order.
    pub fn dests(weights: &[u32]) -> (Vec<u32>, Vec<Option<Dest>>) {
        let all = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Some(Dest {
                    r: DestRef::new(i as u32, 0),
                    addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11 + i as u8)),
                    port: 80,
                    fwd: Forward::Dr,
                    weight: w,
                    last_weight: w,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    mac: Some([2, 0, 0, 0, 2, 11 + i as u8]),
                    tx_port: 0,
                    src: None,
                    src6: None,
                    in_service: true,
                    counters: Arc::new(DestCounters::default()),
                })
            })
            .collect();
        ((0..weights.len() as u32).collect(), all)
    }

    /// Real servers as [`dests`] makes them, each `(weight, overloaded,
    /// active, inactive)`: with that many connections counted.
    pub fn loaded(servers: &[(u32, bool, u32, u32)]) -> (Vec<u32>, Vec<Option<Dest>>) {
        let weights: Vec<u32> = servers.iter().map(|s| s.0).collect();
        let (order, all) = dests(&weights);
        for (d, &(_, overloaded, active, inactive)) in all.iter().flatten().zip(servers) {
            let c = &d.counters;
            (0..active + inactive).for_each(|_| c.bind());
            (0..active).for_each(|_| c.set_active(true));
            c.set_overloaded(overloaded);
        }
        (order, all)
    }

    pub fn flow() -> Flow {
        Flow {
            client: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
            cport: 40000,
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
            vport: 80,
            now: 0,
        }
    }
}
