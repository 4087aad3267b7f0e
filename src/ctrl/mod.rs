//! Control side: what `xdpvsadm` asks for, how the daemon answers, and how
//! the answers are shown.
//!
//! - [`proto`]: the control socket's messages and framing.
//! - [`server`]: the socket itself, served without ever blocking the
//!   daemon's control thread.
//! - [`control`]: applies requests to the service table and keeps what
//!   listings need (rate estimates, `-Z` baselines).
//! - [`listing`]: ipvsadm's output formats.
//! - [`adm`]: ipvsadm's command line, parsed into requests.

pub mod adm;
pub mod control;
pub mod listing;
pub mod proto;
pub mod server;
