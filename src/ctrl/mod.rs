//! Control side: the daemon's end of what `xdpvsadm` asks for. The
//! command line and ipvsadm's output formats are `xdpvsadm`'s own (the
//! top-level `adm` module); nothing here depends on them, so the daemon
//! links no resolver.
//!
//! - [`proto`]: the control socket's messages and framing.
//! - [`server`]: the socket itself, served without ever blocking the
//!   daemon's control thread.
//! - [`control`]: applies requests to the service table and keeps what
//!   listings need (rate estimates, `-Z` baselines).
//! - [`metrics`]: the Prometheus exposition of everything the control
//!   thread knows; [`http`]: the small HTTP server that serves it.

pub mod control;
pub mod http;
pub mod metrics;
pub mod proto;
pub mod server;
