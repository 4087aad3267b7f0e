//! `xdpvsadm` — ipvsadm's command line for a running xdpvs director.
//!
//! Everything is in [`xdpvs::adm`]: this parses the arguments, sends
//! the request (a large `-R`, in parts) to the daemon's control socket and
//! prints the answer.

use std::io::{Read, Write};
use std::process::ExitCode;

use xdpvs::adm::listing::Numeric;
use xdpvs::adm::{self, Action, AdmError, Resolver};
use xdpvs::ctrl::proto::Response;

fn run() -> Result<(), AdmError> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let inv = adm::parse(&args)?;
    let (request, view) = match inv.action {
        Action::Help => {
            print!("{}", adm::usage());
            return Ok(());
        }
        Action::Version => {
            println!(
                "xdpvsadm {} (ipvsadm-compatible, IPVS {})",
                env!("CARGO_PKG_VERSION"),
                xdpvs::adm::listing::IPVS_VERSION
            );
            return Ok(());
        }
        Action::Restore => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| AdmError {
                    message: format!("cannot read rules from stdin: {e}"),
                    status: 2,
                })?;
            let rules = adm::parse_rules(&text)?;
            (adm::restore_requests(rules), adm::View::default())
        }
        Action::Send { request, view } => (vec![request], view),
    };
    match adm::call_all(&inv.socket, &request)? {
        Response::Ok(reply) => {
            let text = if view.numeric {
                adm::render(&reply, &view, &Numeric)
            } else {
                adm::render(&reply, &view, &Resolver::default())
            };
            let mut out = std::io::stdout().lock();
            // A closed pipe (`xdpvsadm -L | head`) is not an error worth a
            // message.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            Ok(())
        }
        Response::Err { message, status } => Err(AdmError { message, status }),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            ExitCode::from(e.status)
        }
    }
}
