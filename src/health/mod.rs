//! Health checking of real servers (keepalived's checkers, issue 14).
//!
//! [`plan`] turns a [`Config`](crate::config::Config) into [`Target`]s: every real server with at
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

mod check;
mod dns;
mod http;
mod monitor;
mod net;
mod plan;
mod script;
mod udp;
pub mod via;

pub use monitor::{Monitor, THREAD_NAME};
pub use net::Outcome;
pub use plan::{Target, Verdict, plan};
