//! `xdpvs` — the director daemon.
//!
//! `xdpvs --config FILE` runs the director in the foreground, logging to
//! stderr, until SIGTERM or SIGINT; SIGHUP reloads FILE. `--check`
//! validates FILE and exits. See `xdpvs::daemon`; the command line is
//! `xdpvs::daemon::cli` (shared with the manual page).

use std::process::ExitCode;

use clap::Parser;
use xdpvs::daemon::cli::Args;

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
