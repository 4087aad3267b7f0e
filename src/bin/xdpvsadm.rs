//! `xdpvsadm` — ipvsadm-compatible control of a running director.
//!
//! The control socket it talks to is not built yet; until it is, every
//! command fails with a message saying so, rather than pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("xdpvsadm: the control socket of xdpvs is not built yet; no command can be applied");
    ExitCode::from(2)
}
