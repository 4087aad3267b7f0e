//! ipvsadm's `parse_options` and `process_options`: one command line's
//! options gathered into an `Entry` in the order given, checked against
//! ipvsadm's matrix of legal combinations, and made into the command's
//! request. Each option's value is read where its commands are: the
//! service's in [`service`], the real server's in [`real_server`], the
//! listing's in [`list`].

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::config::{DEFAULT_SOCKET, Forward, Protocol};
use crate::ctrl::proto::Request;

use super::entry::{Entry, MAX_TIMEOUT, timeout};
use super::invocation::{Action, AdmError, Invocation, View};
use super::listing::Format;
use super::options::{Cmd, Opt, Tag};
use super::tokenize::{Item, tokenize};
use super::{list, real_server, service};

/// Parses a command line, without the program name. `reading_stdin` is set
/// for the lines of `-R`, where `-R` itself is refused (as ipvsadm does,
/// to avoid an endless loop).
pub(super) fn parse_args(args: &[String], reading_stdin: bool) -> Result<Invocation, AdmError> {
    let (items, rest) = tokenize(args)?;
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut items: Vec<Item> = items
        .into_iter()
        .filter(|it| {
            if it.tag == Tag::Socket {
                socket = PathBuf::from(it.arg.clone().unwrap_or_default());
                false
            } else {
                true
            }
        })
        .collect();
    if items.is_empty() && rest.is_empty() {
        // `ipvsadm` alone lists the table.
        return Ok(Invocation {
            socket,
            action: Action::Send {
                request: Request::List { service: None },
                view: View::default(),
            },
        });
    }
    if items.is_empty() {
        return Err(AdmError::tryhelp());
    }
    let first = items.remove(0);
    let cmd = match first.tag {
        Tag::Cmd(c) => c,
        Tag::Help => {
            return Ok(Invocation {
                socket,
                action: Action::Help,
            });
        }
        Tag::Version => {
            return Ok(Invocation {
                socket,
                action: Action::Version,
            });
        }
        Tag::Unsupported(why) => return Err(AdmError::fail(why)),
        _ => return Err(AdmError::tryhelp()),
    };
    let mut e = Entry {
        cmd,
        options: 0,
        proto: Protocol::Tcp,
        vip: None,
        scheduler: None,
        persistence: 0,
        netmask: Ipv4Addr::BROADCAST,
        dest: None,
        forward: Forward::Dr,
        weight: 1,
        upper: 0,
        lower: 0,
        flags: None,
        view: View::default(),
    };
    for it in items {
        let arg = it.arg.as_deref().unwrap_or("");
        match it.tag {
            Tag::Tcp | Tag::Udp => {
                e.set(Opt::Service)?;
                e.proto = if it.tag == Tag::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                e.vip = Some(service::address(arg, e.proto)?);
            }
            Tag::Opt(Opt::Scheduler) => {
                e.set(Opt::Scheduler)?;
                e.scheduler = Some(arg.to_owned());
            }
            Tag::Opt(Opt::Persistent) => {
                e.set(Opt::Persistent)?;
                e.persistence = service::persistence(it.arg.as_deref())?;
            }
            Tag::Opt(Opt::Netmask) => {
                e.set(Opt::Netmask)?;
                e.netmask = service::netmask(arg)?;
            }
            Tag::Opt(Opt::Server) => {
                e.set(Opt::Server)?;
                e.dest = Some(real_server::address(arg, e.proto, e.vip)?);
            }
            Tag::Fwd(f) => {
                e.set(Opt::Forward)?;
                e.forward = f;
            }
            Tag::Opt(Opt::Weight) => {
                e.set(Opt::Weight)?;
                e.weight = real_server::weight(arg)?;
            }
            Tag::Opt(Opt::UThreshold) => {
                e.set(Opt::UThreshold)?;
                e.upper = real_server::threshold(arg, "u_threshold")?;
            }
            Tag::Opt(Opt::LThreshold) => {
                e.set(Opt::LThreshold)?;
                e.lower = real_server::threshold(arg, "l_threshold")?;
            }
            Tag::Opt(Opt::SchedFlags) => {
                e.set(Opt::SchedFlags)?;
                e.flags = Some(arg.to_owned());
            }
            Tag::Opt(o) => {
                e.set(o)?;
                match o {
                    Opt::Numeric => e.view.numeric = true,
                    Opt::Stats => e.view.listing.format = Format::Stats,
                    Opt::Rate => e.view.listing.format = Format::Rate,
                    Opt::Thresholds => e.view.listing.format = Format::Thresholds,
                    Opt::PersistentConn => e.view.persistent_conn = true,
                    Opt::NoSort => e.view.nosort = true,
                    Opt::Exact => e.view.listing.exact = true,
                    Opt::Json => e.view.json = true,
                    _ => {}
                }
            }
            Tag::Sort => {}
            Tag::Unsupported(why) => return Err(AdmError::fail(why)),
            Tag::Cmd(_) | Tag::Help | Tag::Version | Tag::Socket => {
                return Err(AdmError::fail(format!("invalid option `{}'", it.spelled)));
            }
        }
    }
    // ipvsadm takes the three --set values from the leftover words.
    let mut rest = rest.into_iter();
    let mut timeouts = [0; 3];
    if cmd == Cmd::Timeout {
        let vals: Vec<String> = rest.by_ref().take(3).collect();
        if vals.len() < 3 {
            return Err(AdmError::fail("--set option requires 3 timeout values"));
        }
        for (t, v) in timeouts.iter_mut().zip(&vals) {
            *t = timeout(v, 0, MAX_TIMEOUT)?;
        }
    }
    if let Some(extra) = rest.next() {
        return Err(AdmError::fail(format!("unexpected argument {extra}")));
    }
    // ipvsadm parses -b after the loop, against the final scheduler.
    let (scheduler, flags) = service::scheduler(&e)?;
    e.check()?;

    let request = match cmd {
        Cmd::Add => Request::AddService(service::spec(&e, scheduler, flags)?),
        Cmd::Edit => Request::EditService(service::spec(&e, scheduler, flags)?),
        Cmd::Del => Request::DelService(e.key()),
        Cmd::Flush => Request::Clear,
        Cmd::AddDest => Request::AddDest(real_server::spec(&e)),
        Cmd::EditDest => Request::EditDest(real_server::spec(&e)),
        Cmd::DelDest => real_server::delete(&e),
        Cmd::Timeout => Request::SetTimeouts {
            tcp: timeouts[0],
            tcpfin: timeouts[1],
            udp: timeouts[2],
        },
        Cmd::Zero => Request::Zero {
            service: e.service(),
        },
        Cmd::Save => {
            e.view.save = true;
            Request::Save
        }
        Cmd::Restore => {
            if reading_stdin {
                return Err(AdmError::tryhelp());
            }
            return Ok(Invocation {
                socket,
                action: Action::Restore,
            });
        }
        Cmd::List => list::request(&mut e)?,
        Cmd::Counters => Request::Counters,
        Cmd::Drops => {
            e.view.drops = true;
            Request::Counters
        }
    };
    Ok(Invocation {
        socket,
        action: Action::Send {
            request,
            view: e.view,
        },
    })
}
