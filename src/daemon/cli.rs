//! `xdpvs`'s command line, here rather than in `src/bin/xdpvs.rs` so that
//! the manual page `xdpvs(8)` and the shell completions are generated from
//! the same definition the daemon parses (`cargo run --example gen-docs`,
//! called by `scripts/package.sh`).

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueHint};

/// `xdpvs`'s arguments.
#[derive(Debug, Parser)]
#[command(
    name = "xdpvs",
    version,
    about = "LVS director on AF_XDP",
    override_usage = "xdpvs --config FILE [--check]\n       \
                      xdpvs import-keepalived FILE --interface IF [--interface IF2 ...]",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
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
UMEM (LimitMEMLOCK=infinity under systemd).\n\
\n\
Coming from keepalived: `xdpvs import-keepalived /etc/keepalived/keepalived.conf \
--interface eth1` prints an equivalent xdpvs configuration (its virtual_server \
blocks, real servers and health checkers) on standard output and names every \
statement it did not convert, with file and line, on standard error. keepalived \
keeps doing VRRP; xdpvs does the balancing and the checks."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Configuration file (TOML, see xdpvs.toml(5)).
    #[arg(long, short = 'c', value_name = "FILE", value_hint = ValueHint::FilePath, required = true)]
    pub config: Option<PathBuf>,
    /// Validate the file, print what is wrong, and exit.
    #[arg(long)]
    pub check: bool,
}

/// `xdpvs`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a keepalived.conf to an xdpvs configuration.
    #[command(long_about = "Print an xdpvs configuration (TOML) equivalent to the \
virtual_server blocks of a keepalived.conf on standard output: virtual servers (and \
virtual_server_group members) become [[services]], real servers [[services.reals]], \
and TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK and DNS_CHECK become \
[[services.reals.checks]]; include files are followed. keepalived's file does not \
name the interfaces xdpvs serves, so --interface gives them. Every statement that \
is not converted (VRRP and global blocks, fwmark services, unsupported keys and \
checkers) is named on standard error as FILE:LINE: statement: reason. Exit status \
0 when a configuration was printed (even with such lines), 1 when nothing could be \
converted or the file cannot be read.")]
    ImportKeepalived(ImportArgs),
}

/// `xdpvs import-keepalived`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// keepalived's configuration file.
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// An interface for dataplane.interfaces (repeat for more).
    #[arg(long = "interface", value_name = "IF", required = true)]
    pub interfaces: Vec<String>,
    /// keepalived's --config-id: lines written `@ID ...` are read only for
    /// this ID, `@^ID ...` for every other (without it, only `@^ID` lines).
    #[arg(long, value_name = "ID")]
    pub config_id: Option<String>,
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
        assert_eq!(a.config, Some(PathBuf::from("/etc/xdpvs/xdpvs.toml")));
        assert!(a.check);
        assert!(
            Args::try_parse_from(["xdpvs"]).is_err(),
            "--config is required"
        );
    }

    #[test]
    fn parses_import_keepalived() {
        let a = Args::try_parse_from([
            "xdpvs",
            "import-keepalived",
            "/etc/keepalived/keepalived.conf",
            "--interface",
            "eth1",
            "--interface",
            "eth2",
        ])
        .expect("parses");
        let Some(Command::ImportKeepalived(i)) = a.command else {
            panic!("not the subcommand: {a:?}");
        };
        assert_eq!(i.file, PathBuf::from("/etc/keepalived/keepalived.conf"));
        assert_eq!(i.interfaces, ["eth1", "eth2"]);
        assert_eq!(i.config_id, None);
        assert!(
            Args::try_parse_from(["xdpvs", "import-keepalived", "k.conf"]).is_err(),
            "--interface is required"
        );
        assert!(
            Args::try_parse_from([
                "xdpvs",
                "-c",
                "x.toml",
                "import-keepalived",
                "k.conf",
                "--interface",
                "e"
            ])
            .is_err(),
            "--config and the subcommand do not mix"
        );
    }
}
