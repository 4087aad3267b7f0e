//! `xdpvs` — the director daemon.
//!
//! `xdpvs --config FILE --check` validates a configuration and exits.
//! Running the data plane (AF_XDP workers, XDP steering, control socket)
//! is not built yet; until it is, the daemon says so and exits non-zero
//! rather than pretending to forward.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xdpvs::config::Config;
use xdpvs::service::{Port, ServiceTable};

#[derive(Parser)]
#[command(name = "xdpvs", version, about = "LVS director on AF_XDP")]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Validate the file, print what is wrong, and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::from_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xdpvs: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The service table applies the rules the file format cannot express
    // (schedulers and features this build has).
    let ports = vec![
        Port {
            mac: [0; 6],
            mtu: cfg.dataplane.mtu,
        };
        cfg.dataplane.interfaces.len()
    ];
    if let Err(e) = ServiceTable::from_config(&cfg, ports, 1) {
        eprintln!("xdpvs: {}: {e}", args.config.display());
        return ExitCode::FAILURE;
    }
    let reals: usize = cfg.services.iter().map(|s| s.reals.len()).sum();
    if args.check {
        println!(
            "{}: OK ({} services, {} real servers)",
            args.config.display(),
            cfg.services.len(),
            reals
        );
        return ExitCode::SUCCESS;
    }
    eprintln!("xdpvs: the AF_XDP data plane is not built yet; only --check works in this version");
    ExitCode::from(2)
}
