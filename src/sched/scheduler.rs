//! The one small trait every scheduler implements, and what a scheduler
//! sees: the new connection ([`Flow`]) and its service's real servers
//! ([`Dests`]).

use std::net::IpAddr;

use super::params::Params;
use crate::dest::Dest;

/// What a scheduler may look at about the new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub client: IpAddr,
    pub cport: u16,
    pub vip: IpAddr,
    pub vport: u16,
    /// The pipeline's clock, in seconds (for schedulers that age state).
    pub now: u32,
}

/// A service's real servers, in IPVS list order.
#[derive(Clone, Copy)]
pub struct Dests<'a> {
    order: &'a [u32],
    all: &'a [Option<Dest>],
}

impl<'a> Dests<'a> {
    /// `order` holds slots of `all`; each must be `Some`.
    pub fn new(order: &'a [u32], all: &'a [Option<Dest>]) -> Dests<'a> {
        debug_assert!(order.iter().all(|&s| all[s as usize].is_some()));
        Dests { order, all }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The real server at list position `pos`.
    #[inline]
    pub fn at(&self, pos: usize) -> &'a Dest {
        match &self.all[self.order[pos] as usize] {
            Some(d) => d,
            None => unreachable!("service lists a free destination slot"),
        }
    }

    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &'a Dest> + 'a {
        let all = self.all;
        self.order
            .iter()
            .filter_map(move |&s| all[s as usize].as_ref())
    }
}

/// One scheduling algorithm.
pub trait Scheduler: Send + Sync + Sized {
    /// The name `ipvsadm -s` uses.
    const NAME: &'static str;

    /// Built on the control side when the service or its real servers
    /// change; may precompute whatever makes [`Scheduler::schedule`] cheap.
    fn build(dests: &Dests<'_>, params: &Params) -> Self;

    /// Built again for the same service, replacing `prev`: when its real
    /// servers or settings change but not its scheduler. State that IPVS
    /// keeps across such changes (rr's list pointer, lblc's and lblcr's locality table) is
    /// carried over; by default nothing is.
    fn rebuild(dests: &Dests<'_>, params: &Params, prev: &Self) -> Self {
        let _ = prev;
        Self::build(dests, params)
    }

    /// The list position of the real server for a new connection, or `None`
    /// when none is available. Never returns a quiescent (weight 0) or
    /// overloaded server.
    fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize>;
}
