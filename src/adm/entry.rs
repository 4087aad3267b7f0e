//! One command line's options as they are gathered (`struct
//! ipvs_command_entry` and the option bits), and ipvsadm's number
//! parsing, which every command's options share.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::{Forward, Protocol};
use crate::ctrl::proto::ServiceKey;

use super::invocation::{AdmError, View};
use super::options::{Cmd, OPTS, Opt};

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
