//! Health checking of real servers (keepalived's checkers, issue 14).
//!
//! [`plan`] turns a [`Config`] into [`Target`]s: every real server with at
//! least one check. A [`Monitor`] runs them on its own thread, in a
//! single-threaded tokio runtime (timers, sockets and child processes are
//! all asynchronous, so thousands of checks cost one thread and no
//! blocking), and reports [`Verdict`]s: one initial verdict per target
//! (down if any of its checks has `alpha`, else up), then one per change of
//! its state (up/down, or a dynamic script's weight). The daemon polls
//! [`Monitor::verdicts`]; nothing here touches the service table.
//!
//! A check runs every `interval`: one attempt, and up to `retry` more
//! after `delay_before_retry` each while they fail; if all fail, the check
//! has failed once. `fall` consecutive failures take an up check down,
//! `rise` consecutive passes bring a down check up. A target is up iff
//! all its checks are up; its checks are independent tasks.
//!
//! Every attempt is bounded in time (`connect_timeout`, a script's
//! `timeout`) and in what it reads, so a host that does not resolve, a
//! script that hangs, a TLS server with a bad certificate or an endpoint
//! that answers garbage or never closes is a failed check with its
//! reason, never a stuck checker.
//!
//! [`via`]: the TCP check through the forwarding path (`via =
//! "forwarding"`): a SYN to VIP:port forwarded to the one real server as
//! the data path would (DR, TUN); for NAT it is the direct check.

use std::net::SocketAddr;

use crate::config::{CheckConfig, Config, Forward, Protocol};

mod check;
mod dns;
mod http;
mod monitor;
mod script;
mod udp;
pub mod via;

pub use check::Outcome;
pub use monitor::{Monitor, THREAD_NAME};

/// A real server to check, with its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub proto: Protocol,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub forward: Forward,
    /// At least one; all must pass for the real server to be up.
    pub checks: Vec<CheckConfig>,
    /// The `[dataplane]` settings a `via = "forwarding"` check follows.
    pub dataplane: via::Path,
}

/// A change of a target's state (or its initial state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub proto: Protocol,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    /// The real server's new state (all its checks).
    pub up: bool,
    /// misc_dynamic's weight while up; `None`: the configured weight.
    pub weight: Option<u32>,
    /// The check that made the change, e.g. "HTTP_GET 198.18.2.11:80/health".
    pub check: String,
    /// Why, e.g. "status 500 not in 200-299", "connect: Connection refused".
    pub reason: String,
}

/// Every real server of `cfg` with at least one check, in file order.
pub fn plan(cfg: &Config) -> Vec<Target> {
    cfg.services
        .iter()
        .flat_map(|service| {
            service
                .reals
                .iter()
                .filter(|real| !real.health.checks.is_empty())
                .map(|real| Target {
                    proto: service.proto,
                    vip: service.vip,
                    real: real.addr,
                    forward: real.forward,
                    checks: real.health.checks.clone(),
                    dataplane: via::Path::from(&cfg.dataplane),
                })
        })
        .collect()
}
