//! `xdpvs` — the director daemon.
//!
//! `xdpvs --config FILE` runs the director in the foreground, logging to
//! stderr, until SIGTERM or SIGINT; SIGHUP reloads FILE. `--check`
//! validates FILE and exits. `xdpvs import-keepalived FILE --interface IF`
//! prints keepalived.conf's virtual servers as an xdpvs configuration
//! (`xdpvs::config::keepalived`). See `xdpvs::daemon`; the command line is
//! `xdpvs::daemon::cli` (shared with the manual page).

use std::process::ExitCode;

use clap::Parser;
use xdpvs::daemon::cli::{Args, Command, ImportArgs};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::ImportKeepalived(import)) = &args.command {
        return import_keepalived(import);
    }
    let config = args
        .config
        .expect("clap requires --config without a subcommand");
    if args.check {
        return match xdpvs::daemon::check(&config) {
            Ok((services, reals)) => {
                println!(
                    "{}: OK ({services} services, {reals} real servers)",
                    config.display()
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
    match xdpvs::daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            xdpvs::log::error(e);
            ExitCode::FAILURE
        }
    }
}

/// The configuration on stdout, what was not converted on stderr; 0 when
/// a configuration with at least one service was printed.
fn import_keepalived(a: &ImportArgs) -> ExitCode {
    use xdpvs::config::keepalived;
    let import = match keepalived::import_file(&a.file, &a.interfaces, a.config_id.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("xdpvs: {}: {e}", a.file.display());
            return ExitCode::FAILURE;
        }
    };
    for note in &import.notes {
        eprintln!("{note}");
    }
    if import.services == 0 {
        eprintln!(
            "xdpvs: {}: no virtual server could be converted",
            a.file.display()
        );
        return ExitCode::FAILURE;
    }
    print!("{}", import.toml);
    eprintln!(
        "xdpvs: {}: converted {} services with {} real servers; {} statements not converted (above)",
        a.file.display(),
        import.services,
        import.reals,
        import.notes.len()
    );
    ExitCode::SUCCESS
}
