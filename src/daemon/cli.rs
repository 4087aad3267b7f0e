//! `xdpvs`'s command line, here rather than in `src/bin/xdpvs.rs` so that
//! the manual page `xdpvs(8)` and the shell completions are generated from
//! the same definition the daemon parses (`cargo run --example gen-docs`,
//! called by `scripts/package.sh`).

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueHint};

/// `xdpvs`'s arguments.
#[derive(Debug, Parser)]
#[command(
    name = "xdpvs",
    version,
    about = "LVS director on AF_XDP",
    override_usage = "xdpvs --config FILE [--check]",
    long_about = "xdpvs is a layer-4 load balancer in the manner of Linux IPVS, in user \
space: it attaches an XDP program to each configured interface, opens one AF_XDP \
socket per RX queue, and runs one busy-poll worker per queue that schedules new \
connections to real servers and forwards their packets by direct routing, IP-in-IP \
tunnelling or NAT.\n\
\n\
It runs in the foreground, logging to standard error, until SIGTERM or SIGINT. \
SIGHUP reloads the configuration file: services and real servers are diffed and \
applied live, without losing connections. xdpvsadm(8) changes and lists the \
running table through the control socket, with ipvsadm's command line.\n\
\n\
It needs the privileges to attach XDP programs and open AF_XDP sockets (root, \
or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF) and enough locked memory for its \
UMEM (LimitMEMLOCK=infinity under systemd)."
)]
pub struct Args {
    /// Configuration file (TOML, see xdpvs.toml(5)).
    #[arg(long, short = 'c', value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: PathBuf,
    /// Validate the file, print what is wrong, and exit.
    #[arg(long)]
    pub check: bool,
}

/// The command line as a [`clap::Command`], for the manual page and the
/// completions.
pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_config_and_check() {
        let a = Args::try_parse_from(["xdpvs", "-c", "/etc/xdpvs/xdpvs.toml", "--check"])
            .expect("parses");
        assert_eq!(a.config, PathBuf::from("/etc/xdpvs/xdpvs.toml"));
        assert!(a.check);
        assert!(
            Args::try_parse_from(["xdpvs"]).is_err(),
            "--config is required"
        );
    }
}
