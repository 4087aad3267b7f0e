//! ipvsadm's `parse_options` and `process_options`: one command line's
//! options gathered into an [`Entry`] in the order given, checked against
//! ipvsadm's matrix of legal combinations, and made into the command's
//! request. Each option's value is read where its commands are: the
//! service's in [`service`], the real server's in [`real_server`], the
//! listing's in [`list`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::{DEFAULT_SOCKET, Forward, Protocol};
use crate::ctrl::proto::{Request, ServiceKey};

use super::listing::Format;
use super::options::{Cmd, OPTS, Opt, Tag};
use super::tokenize::{Item, tokenize};
use super::{Action, AdmError, Invocation, View, list, real_server, service};

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub(super) const MAX_TIMEOUT: u32 = 86400 * 31;

/// A command line being parsed (`struct ipvs_command_entry` and the
/// option bits).
pub(super) struct Entry {
    pub(super) cmd: Cmd,
    pub(super) options: u32,
    pub(super) proto: Protocol,
    pub(super) vip: Option<SocketAddr>,
    pub(super) scheduler: Option<String>,
    pub(super) persistence: u32,
    pub(super) netmask: Ipv4Addr,
    pub(super) dest: Option<SocketAddr>,
    pub(super) forward: Forward,
    pub(super) weight: u32,
    pub(super) upper: u32,
    pub(super) lower: u32,
    pub(super) flags: Option<String>,
    pub(super) view: View,
}

impl Entry {
    /// `set_option`.
    pub(super) fn set(&mut self, opt: Opt) -> Result<(), AdmError> {
        let bit = 1 << opt as u32;
        if self.options & bit != 0 {
            return Err(AdmError::fail(format!(
                "multiple '{}' options specified",
                OPTS[opt as usize]
            )));
        }
        self.options |= bit;
        Ok(())
    }

    pub(super) fn has(&self, opt: Opt) -> bool {
        self.options & (1 << opt as u32) != 0
    }

    /// `generic_opt_check`.
    pub(super) fn check(&self) -> Result<(), AdmError> {
        let row = self.cmd.row();
        let mut first_exclusive = None;
        for (j, &rule) in row.iter().enumerate() {
            let set = self.options & (1 << j) != 0;
            if !set {
                if rule == b'+' {
                    return Err(AdmError::fail(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        OPTS[j],
                        self.cmd.name()
                    )));
                }
                continue;
            }
            match rule {
                b'x' => {
                    return Err(AdmError::fail(format!(
                        "Illegal '{}' option with the '{}' command",
                        OPTS[j],
                        self.cmd.name()
                    )));
                }
                b'1' => match first_exclusive {
                    None => first_exclusive = Some(j),
                    Some(last) => {
                        return Err(AdmError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            OPTS[j],
                            OPTS[last],
                            self.cmd.name()
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// The service (`-t`, `-u`), if given.
    pub(super) fn service(&self) -> Option<ServiceKey> {
        self.vip.map(|vip| ServiceKey {
            proto: self.proto,
            vip,
        })
    }

    /// The service, for a command whose row in the option check demands
    /// one.
    pub(super) fn key(&self) -> ServiceKey {
        self.service().expect("the option check demands a service")
    }
}

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
    };
    Ok(Invocation {
        socket,
        action: Action::Send {
            request,
            view: e.view,
        },
    })
}

/// `string_to_number`: `strtol` over the whole string, within `min..=max`.
pub(super) fn number(s: &str, min: u32, max: u32) -> Option<u32> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    if neg {
        return (n == 0 && min == 0).then_some(0);
    }
    u32::try_from(n).ok().filter(|n| (min..=max).contains(n))
}

/// `parse_timeout`.
pub(super) fn timeout(s: &str, min: u32, max: u32) -> Result<u32, AdmError> {
    number(s, min, max)
        .ok_or_else(|| AdmError::fail(format!("invalid timeout value `{s}' specified")))
}
