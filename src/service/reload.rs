//! SIGHUP's policy: the file's *change* is applied, live edits the change
//! does not touch are kept.
//!
//! The daemon remembers the file as it last loaded it. On reload,
//! [`ServiceTable::apply_file_change`] compares that old file with the new
//! one, service by service and real server by real server, and applies only
//! what differs between the two files:
//!
//! - a service or real server the new file adds is added; one it removes is
//!   deleted; one whose settings it changes gets the new file's settings;
//! - a service or real server both files describe alike is left exactly as
//!   it is now, whatever `xdpvsadm` did to it (added, edited, deleted, `-C`);
//!   services and real servers added with `xdpvsadm` that neither file
//!   names stay;
//! - `[connections]` timeouts (`--set`) are set only when the file's
//!   timeouts changed, each of the three on its own;
//! - a change that overrides a live edit — the thing as it is now differs
//!   from what the old file said, and the new file's value replaces it — is
//!   reported as one line ([`Override`]), which the daemon logs.
//!
//! The new file is checked in full and the change is applied to a copy of
//! the table that replaces it only when every step succeeded: a reload is
//! all or nothing, like `-R`.

use std::net::SocketAddr;

use super::table::{ServiceError, ServiceTable};
use crate::config::{Config, Connections, Protocol, RealConfig, ServiceConfig};
use crate::conn::TcpState;

/// One live edit the file's change replaced, as the log line says it.
pub type Override = String;

/// A service's settings without its real servers, for comparing.
fn settings(s: &ServiceConfig) -> ServiceConfig {
    ServiceConfig {
        reals: Vec::new(),
        ..s.clone()
    }
}

fn find_service(cfg: &Config, proto: Protocol, vip: SocketAddr) -> Option<&ServiceConfig> {
    cfg.services
        .iter()
        .find(|s| s.proto == proto && s.vip == vip)
}

fn find_real(s: &ServiceConfig, addr: SocketAddr) -> Option<&RealConfig> {
    s.reals.iter().find(|r| r.addr == addr)
}

/// How a service's settings differ, for a log line: `scheduler wlc → rr`.
fn settings_diff(from: &ServiceConfig, to: &ServiceConfig) -> String {
    let mut parts = Vec::new();
    if from.scheduler != to.scheduler {
        parts.push(format!("scheduler {} → {}", from.scheduler, to.scheduler));
    }
    if from.persistence_timeout != to.persistence_timeout {
        parts.push(format!(
            "persistence_timeout {} → {}",
            from.persistence_timeout, to.persistence_timeout
        ));
    }
    if from.persistence_netmask != to.persistence_netmask {
        parts.push(format!(
            "persistence_netmask {} → {}",
            from.persistence_netmask, to.persistence_netmask
        ));
    }
    if from.scheduler_flags != to.scheduler_flags {
        parts.push(format!(
            "scheduler_flags {} → {}",
            from.scheduler_flags.0, to.scheduler_flags.0
        ));
    }
    if from.mh_table_size != to.mh_table_size {
        parts.push(format!(
            "mh_table_size {} → {}",
            from.mh_table_size, to.mh_table_size
        ));
    }
    if from.mh_seed != to.mh_seed {
        parts.push(format!("mh_seed {:?} → {:?}", from.mh_seed, to.mh_seed));
    }
    parts.join(", ")
}

/// How a real server's settings differ: `weight 5 → 1`.
fn real_diff(from: &RealConfig, to: &RealConfig) -> String {
    let mut parts = Vec::new();
    if from.forward != to.forward {
        parts.push(format!("forward {:?} → {:?}", from.forward, to.forward));
    }
    if from.weight != to.weight {
        parts.push(format!("weight {} → {}", from.weight, to.weight));
    }
    if from.upper_threshold != to.upper_threshold {
        parts.push(format!(
            "upper_threshold {} → {}",
            from.upper_threshold, to.upper_threshold
        ));
    }
    if from.lower_threshold != to.lower_threshold {
        parts.push(format!(
            "lower_threshold {} → {}",
            from.lower_threshold, to.lower_threshold
        ));
    }
    parts.join(", ")
}

/// The three `--set` timeouts of a `[connections]`.
fn file_timeouts(c: &Connections) -> [u32; 3] {
    [c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout]
}

impl ServiceTable {
    /// The service `proto` `vip` as it is now, with its real servers in
    /// `reals` (list order).
    fn current(&self, proto: Protocol, vip: SocketAddr) -> Option<ServiceConfig> {
        self.service(proto, vip).map(|s| ServiceConfig {
            reals: s.dests.iter().map(|d| d.cfg.clone()).collect(),
            ..s.cfg.clone()
        })
    }

    /// SIGHUP: applies what changed from file `old` (as last loaded) to
    /// file `new`, keeping live edits the change does not touch (module
    /// docs). Returns the live edits it overrode, one line each. On error
    /// the table is as it was.
    pub fn apply_file_change(
        &mut self,
        old: &Config,
        new: &Config,
    ) -> Result<Vec<Override>, ServiceError> {
        self.check_config(new)?;
        let mut t = self.clone();
        let mut overrides = Vec::new();
        t.timeouts_change(old, new, &mut overrides);
        t.set_defense(new.connections.defense);

        // Services the new file no longer has.
        for o in &old.services {
            if find_service(new, o.proto, o.vip).is_some() {
                continue;
            }
            let Some(cur) = t.current(o.proto, o.vip) else {
                continue; // already deleted live
            };
            if cur != *o {
                overrides.push(format!(
                    "service {} {}: removed from the file, so its live edits go with it",
                    o.proto, o.vip
                ));
            }
            t.del_service(o.proto, o.vip)?;
        }
        for n in &new.services {
            let o = find_service(old, n.proto, n.vip);
            if o == Some(n) {
                continue; // the file did not change it: live edits stay
            }
            t.service_change(o, n, &mut overrides)?;
        }
        *self = t;
        Ok(overrides)
    }

    /// `--set` timeouts: each one the file changed is set, the others keep
    /// what `xdpvsadm --set` made them.
    fn timeouts_change(&mut self, old: &Config, new: &Config, overrides: &mut Vec<Override>) {
        let (was, now) = (
            file_timeouts(&old.connections),
            file_timeouts(&new.connections),
        );
        let t = self.timeouts();
        let live = [
            t.tcp[TcpState::Established as usize],
            t.tcp[TcpState::FinWait as usize],
            t.udp,
        ];
        let mut set = [0u32; 3];
        for (i, name) in ["tcp_timeout", "tcpfin_timeout", "udp_timeout"]
            .into_iter()
            .enumerate()
        {
            if was[i] == now[i] {
                continue;
            }
            set[i] = now[i];
            if live[i] != was[i] && live[i] != now[i] {
                overrides.push(format!(
                    "connections.{name}: the file's {} replaces {} set by xdpvsadm --set",
                    now[i], live[i]
                ));
            }
        }
        self.set_timeouts(set[0], set[1], set[2]);
    }

    /// One service the new file adds or changes (`o` is the old file's).
    fn service_change(
        &mut self,
        o: Option<&ServiceConfig>,
        n: &ServiceConfig,
        overrides: &mut Vec<Override>,
    ) -> Result<(), ServiceError> {
        let (proto, vip) = (n.proto, n.vip);
        let Some(cur) = self.current(proto, vip) else {
            if o.is_some() {
                overrides.push(format!(
                    "service {proto} {vip}: deleted by xdpvsadm, added again because the file changed it"
                ));
            }
            // In the file's order, as a start adds them.
            self.add_service(n)?;
            for r in &n.reals {
                self.add_dest(proto, vip, r)?;
            }
            return Ok(());
        };
        let settings_changed = o.is_none_or(|o| settings(o) != settings(n));
        if settings_changed && settings(&cur) != settings(n) {
            let was = o.map(settings);
            if was.as_ref() != Some(&settings(&cur)) {
                overrides.push(format!(
                    "service {proto} {vip}: the file's settings replace a live edit ({})",
                    settings_diff(&cur, n)
                ));
            }
            self.edit_service(n)?;
        }
        let empty = Vec::new();
        let old_reals = o.map_or(&empty, |o| &o.reals);
        // Real servers the new file no longer has.
        for r in old_reals {
            if find_real(n, r.addr).is_some() {
                continue;
            }
            let Some(live) = find_real(&cur, r.addr) else {
                continue;
            };
            if live != r {
                overrides.push(format!(
                    "service {proto} {vip}: real server {} removed from the file, so its live edit ({}) goes with it",
                    r.addr,
                    real_diff(r, live)
                ));
            }
            self.del_dest(proto, vip, r.addr)?;
        }
        for r in &n.reals {
            let was = old_reals.iter().find(|x| x.addr == r.addr);
            if was == Some(r) {
                continue;
            }
            match find_real(&cur, r.addr) {
                None => {
                    if was.is_some() {
                        overrides.push(format!(
                            "service {proto} {vip}: real server {} deleted by xdpvsadm, added again because the file changed it",
                            r.addr
                        ));
                    }
                    self.add_dest(proto, vip, r)?;
                }
                Some(live) if live == r => {}
                Some(live) => {
                    if was != Some(live) {
                        overrides.push(format!(
                            "service {proto} {vip}: real server {}: the file's settings replace a live edit ({})",
                            r.addr,
                            real_diff(live, r)
                        ));
                    }
                    self.edit_dest(proto, vip, r)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
