//! `xdpvs` — the director daemon.
//!
//! `xdpvs --config FILE` runs the director in the foreground, logging to
//! stderr, until SIGTERM or SIGINT; SIGHUP reloads FILE. `--check`
//! validates FILE and exits. See `xdpvs::daemon`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

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
    if args.check {
        return match xdpvs::daemon::check(&args.config) {
            Ok((services, reals)) => {
                println!(
                    "{}: OK ({services} services, {reals} real servers)",
                    args.config.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xdpvs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    xdpvs::log::log_panics();
    match xdpvs::daemon::run(&args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            xdpvs::log::error(e);
            ExitCode::FAILURE
        }
    }
}
