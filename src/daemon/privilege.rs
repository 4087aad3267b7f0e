//! Least privilege: once the XDP programs are attached, the AF_XDP sockets
//! open (their UMEM registered and locked) and the control socket bound,
//! the daemon gives up what it needed only for that.
//!
//! What start-up needs: `CAP_NET_ADMIN` and `CAP_BPF` (load and attach
//! the XDP program, create its maps), `CAP_PERFMON` (without it the
//! verifier refuses the program's packet pointer arithmetic "for !root"
//! when the daemon does not run as root), `CAP_NET_RAW` (open AF_XDP
//! sockets), `CAP_IPC_LOCK` (or a large enough `RLIMIT_MEMLOCK`, for the
//! UMEM), `CAP_SYS_ADMIN` on kernels that ask it for some BPF commands
//! (and to find a stale program by id), `CAP_SETUID`/`CAP_SETGID` to
//! switch to `daemon.user`, and `CAP_SETPCAP` to shrink the bounding set.
//!
//! What it keeps, in the control thread only:
//!
//! - `CAP_NET_ADMIN`: the neighbour requests (`RTM_NEWNEIGH` with
//!   `NTF_USE`) that make the kernel resolve a real server's next hop, and
//!   detaching an XDP program attached through netlink at stop;
//! - `CAP_NET_RAW`, only when the configuration at start-up has a health
//!   check through the forwarding path (`via = "forwarding"`): its probe
//!   sends and reads frames on a packet socket (`health::via`). A check of
//!   that kind first added by a reload fails, saying it needs it;
//! - `CAP_BPF`, or failing that `CAP_SYS_ADMIN`, only where this kernel
//!   asks for it to read and update the steering program's maps (kernels
//!   before 6.5 with `kernel.unprivileged_bpf_disabled` set check the
//!   capability on every `bpf()` call; later ones only when a map or
//!   program is created). The control thread finds out by reading the
//!   maps with each candidate set in effect, smallest first.
//!
//! Every other capability is dropped from the effective, permitted,
//! inheritable and ambient sets, and from the bounding set where
//! `CAP_SETPCAP` allows; `no_new_privs` is set. Worker threads keep none
//! at all: they only move frames through sockets that are already open.
//! Capabilities belong to threads, so each worker drops its own before it
//! handles a frame (the daemon waits for all of them before it reports
//! `running:`).
//!
//! With `daemon.user` (and `daemon.group`, default the user's primary
//! group) the daemon also switches its user and group ids, in every
//! thread, keeping the capabilities above across the switch
//! (`PR_SET_KEEPCAPS`). The configuration file must then be readable by
//! that user (SIGHUP reads it again): start-up checks that. The control
//! socket stays mode 0600, handed to that user; it is removed at stop
//! only if the user may write its directory (systemd's
//! `RuntimeDirectory=` is removed with the unit anyway).

use std::collections::HashSet;
use std::fmt::Write as _;

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Group, Uid, User};

/// The capability every kept set holds (module docs).
pub const ALWAYS_KEPT: Capability = Capability::CAP_NET_ADMIN;

/// The candidates added to [`ALWAYS_KEPT`] for map access, tried in order
/// (nothing more first).
const FOR_MAPS: [Option<Capability>; 3] = [
    None,
    Some(Capability::CAP_BPF),
    Some(Capability::CAP_SYS_ADMIN),
];

/// Why privileges could not be dropped: start-up stops.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("{file}: daemon.user: no user named {name:?} on this system")]
    NoUser { file: String, name: String },
    #[error("{file}: daemon.group: no group named {name:?} on this system")]
    NoGroup { file: String, name: String },
    #[error("{file}: daemon.{key}: looking up {name:?}: {error}")]
    Lookup {
        file: String,
        key: &'static str,
        name: String,
        error: nix::Error,
    },
    #[error(
        "daemon.user: cannot switch to user {user} ({uid}) and group {group} ({gid}): {what}: {error}"
    )]
    Switch {
        user: String,
        uid: u32,
        group: String,
        gid: u32,
        what: &'static str,
        error: nix::Error,
    },
    #[error("capabilities: {what}: {error}")]
    Caps { what: &'static str, error: String },
    #[error("capabilities: the XDP maps cannot be read with {tried} in effect: {why}")]
    Maps { tried: String, why: String },
    #[error(
        "{file}: daemon.user: user {user} cannot read the configuration file, which SIGHUP reads again: {error}"
    )]
    Unreadable {
        file: String,
        user: String,
        error: std::io::Error,
    },
}

/// Whom to become (`daemon.user`, `daemon.group`), resolved at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: Uid,
    pub group: String,
    pub gid: Gid,
}

impl Identity {
    /// Looks the names up; `Ok(None)` without `daemon.user` and
    /// `daemon.group`. A group alone keeps the user.
    pub fn resolve(
        file: &str,
        user: Option<&str>,
        group: Option<&str>,
    ) -> Result<Option<Identity>, PrivilegeError> {
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let lookup_err = |key, name: &str| {
            let (file, name) = (file.to_owned(), name.to_owned());
            move |error| PrivilegeError::Lookup {
                file,
                key,
                name,
                error,
            }
        };
        let pw = match user {
            Some(name) => User::from_name(name)
                .map_err(lookup_err("user", name))?
                .ok_or_else(|| PrivilegeError::NoUser {
                    file: file.to_owned(),
                    name: name.to_owned(),
                })?,
            None => {
                let uid = Uid::current();
                User::from_uid(uid)
                    .map_err(lookup_err("user", &uid.to_string()))?
                    .unwrap_or_else(|| nameless_user(uid))
            }
        };
        let (group, gid) = match group {
            Some(name) => {
                let g = Group::from_name(name)
                    .map_err(lookup_err("group", name))?
                    .ok_or_else(|| PrivilegeError::NoGroup {
                        file: file.to_owned(),
                        name: name.to_owned(),
                    })?;
                (g.name, g.gid)
            }
            None => {
                let name = Group::from_gid(pw.gid)
                    .ok()
                    .flatten()
                    .map_or_else(|| pw.gid.to_string(), |g| g.name);
                (name, pw.gid)
            }
        };
        Ok(Some(Identity {
            user: pw.name,
            uid: pw.uid,
            group,
            gid,
        }))
    }

    fn switch_err(&self, what: &'static str) -> impl FnOnce(nix::Error) -> PrivilegeError + '_ {
        move |error| PrivilegeError::Switch {
            user: self.user.clone(),
            uid: self.uid.as_raw(),
            group: self.group.clone(),
            gid: self.gid.as_raw(),
            what,
            error,
        }
    }

    /// Switches every thread's ids to these, keeping the permitted
    /// capabilities of the calling thread (the other threads lose theirs).
    fn switch(&self) -> Result<(), PrivilegeError> {
        use nix::unistd::{setgroups, setresgid, setresuid};
        if Uid::current() == self.uid
            && Uid::effective() == self.uid
            && Gid::current() == self.gid
            && Gid::effective() == self.gid
        {
            return Ok(());
        }
        nix::sys::prctl::set_keepcaps(true).map_err(self.switch_err("PR_SET_KEEPCAPS"))?;
        // glibc applies each of these to every thread of the process.
        setgroups(&[self.gid]).map_err(self.switch_err("setgroups"))?;
        setresgid(self.gid, self.gid, self.gid).map_err(self.switch_err("setresgid"))?;
        setresuid(self.uid, self.uid, self.uid).map_err(self.switch_err("setresuid"))?;
        nix::sys::prctl::set_keepcaps(false).map_err(self.switch_err("PR_SET_KEEPCAPS"))?;
        Ok(())
    }
}

/// A user id without a passwd entry, as itself.
fn nameless_user(uid: Uid) -> User {
    User {
        name: uid.to_string(),
        passwd: Default::default(),
        uid,
        gid: Gid::current(),
        gecos: Default::default(),
        dir: Default::default(),
        shell: Default::default(),
    }
}

fn caps_err(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |e| PrivilegeError::Caps {
        what,
        error: e.to_string(),
    }
}

/// The calling thread's capabilities in `set`.
fn read(set: CapSet) -> Result<HashSet<Capability>, PrivilegeError> {
    caps::read(None, set).map_err(caps_err("read"))
}

/// Shrinks the calling thread to `keep`: bounding set (where allowed),
/// inheritable, ambient, effective, then permitted.
fn shrink_to(keep: &HashSet<Capability>) -> Result<(), PrivilegeError> {
    let permitted = read(CapSet::Permitted)?;
    if permitted.contains(&Capability::CAP_SETPCAP) {
        caps::set(None, CapSet::Effective, &permitted)
            .map_err(caps_err("set the effective set"))?;
        for c in read(CapSet::Bounding)?.difference(keep) {
            caps::drop(None, CapSet::Bounding, *c)
                .map_err(caps_err("drop from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, keep).map_err(caps_err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, keep).map_err(caps_err("set the permitted set"))?;
    Ok(())
}

/// What [`drop_control`] did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The capabilities kept, by name, sorted.
    pub kept: Vec<String>,
    /// The identity switched to, if any.
    pub identity: Option<Identity>,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = if self.kept.is_empty() {
            "none".to_owned()
        } else {
            self.kept.join(", ").to_lowercase()
        };
        write!(f, "capabilities: kept {kept}, dropped the rest")?;
        if let Some(id) = &self.identity {
            write!(
                f,
                "; running as user {} ({}), group {} ({})",
                id.user, id.uid, id.group, id.gid
            )?;
        }
        Ok(())
    }
}

/// The control thread's part (module docs): switches to `identity` if
/// given (every thread), then keeps [`ALWAYS_KEPT`] (and `CAP_NET_RAW` if
/// `raw`: forwarding-path checks, threads started later inherit it) plus the smallest
/// candidate (nothing more, `CAP_BPF`, `CAP_SYS_ADMIN`) with which `maps_work` succeeds (it must
/// read the XDP maps and say why not). Call it while the workers wait,
/// then have each call [`drop_worker`].
pub fn drop_control(
    identity: Option<&Identity>,
    raw: bool,
    mut maps_work: impl FnMut() -> Result<(), String>,
) -> Result<Dropped, PrivilegeError> {
    if let Some(id) = identity {
        id.switch()?;
    }
    // Across a change of user only the permitted set survives; the
    // probing below needs it in effect.
    let permitted = read(CapSet::Permitted)?;
    caps::set(None, CapSet::Effective, &permitted).map_err(caps_err("set the effective set"))?;
    let raw = raw.then_some(Capability::CAP_NET_RAW);
    let base: HashSet<Capability> = [Some(ALWAYS_KEPT), raw]
        .into_iter()
        .flatten()
        .filter(|c| permitted.contains(c))
        .collect();
    let mut tried = Vec::new();
    let mut chosen = None;
    let mut why = String::new();
    for extra in FOR_MAPS {
        let mut set = base.clone();
        if let Some(c) = extra {
            if !permitted.contains(&c) {
                continue;
            }
            set.insert(c);
        }
        caps::set(None, CapSet::Effective, &set).map_err(caps_err("set the effective set"))?;
        match maps_work() {
            Ok(()) => {
                chosen = Some(set);
                break;
            }
            Err(e) => {
                tried.push(names(&set));
                why = e;
            }
        }
    }
    let Some(keep) = chosen else {
        return Err(PrivilegeError::Maps {
            tried: tried.join(", then "),
            why,
        });
    };
    shrink_to(&keep)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| PrivilegeError::Caps {
        what: "PR_SET_NO_NEW_PRIVS",
        error: e.to_string(),
    })?;
    let mut kept: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    kept.sort();
    Ok(Dropped {
        kept,
        identity: identity.cloned(),
    })
}

/// A worker thread's part: no capability at all (module docs).
pub fn drop_worker() -> Result<(), PrivilegeError> {
    shrink_to(&HashSet::new())?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| PrivilegeError::Caps {
        what: "PR_SET_NO_NEW_PRIVS",
        error: e.to_string(),
    })
}

/// `{cap_a, cap_b}` for a message.
fn names(set: &HashSet<Capability>) -> String {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string().to_lowercase()).collect();
    v.sort();
    let mut s = String::from("{");
    for (i, n) in v.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{n}");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_unknown_ones_are_named() {
        let id = Identity::resolve("f.toml", Some("root"), None)
            .unwrap()
            .unwrap();
        assert_eq!((id.uid.as_raw(), id.gid.as_raw()), (0, 0));
        assert_eq!(id.group, "root");
        assert_eq!(Identity::resolve("f.toml", None, None).unwrap(), None);
        let e = Identity::resolve("f.toml", Some("no-such-user-xdpvs"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.toml: daemon.user: no user named \"no-such-user-xdpvs\" on this system"
        );
        let e = Identity::resolve("f.toml", Some("root"), Some("no-such-group-xdpvs")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.toml: daemon.group: no group named \"no-such-group-xdpvs\" on this system"
        );
    }

    #[test]
    fn the_log_line_names_what_was_kept() {
        let d = Dropped {
            kept: vec!["CAP_NET_ADMIN".into()],
            identity: Some(Identity {
                user: "xdpvs".into(),
                uid: Uid::from_raw(998),
                group: "xdpvs".into(),
                gid: Gid::from_raw(997),
            }),
        };
        assert_eq!(
            d.to_string(),
            "capabilities: kept cap_net_admin, dropped the rest; running as user xdpvs (998), group xdpvs (997)"
        );
        let set: HashSet<Capability> = [Capability::CAP_NET_ADMIN, Capability::CAP_BPF].into();
        assert_eq!(names(&set), "{cap_bpf, cap_net_admin}");
    }

    /// In a thread of its own (capabilities are per thread), with the
    /// test process's capabilities: root's in CI.
    #[test]
    fn a_worker_thread_ends_with_no_capability_and_others_keep_theirs() {
        let before = read(CapSet::Effective).unwrap();
        let inside = std::thread::spawn(|| {
            drop_worker().unwrap();
            (
                read(CapSet::Effective).unwrap(),
                read(CapSet::Permitted).unwrap(),
            )
        })
        .join()
        .unwrap();
        assert!(inside.0.is_empty() && inside.1.is_empty(), "{inside:?}");
        assert_eq!(read(CapSet::Effective).unwrap(), before);
    }

    #[test]
    fn the_control_thread_keeps_the_smallest_set_the_maps_accept() {
        let permitted = read(CapSet::Permitted).unwrap();
        assert!(
            permitted.contains(&Capability::CAP_BPF),
            "tests run as root (CI does): permitted {permitted:?}"
        );
        let (dropped, eff) = std::thread::spawn(|| {
            // Maps that want CAP_BPF, as an older kernel's would.
            let d = drop_control(None, false, || {
                match caps::has_cap(None, CapSet::Effective, Capability::CAP_BPF) {
                    Ok(true) => Ok(()),
                    _ => Err("Operation not permitted".into()),
                }
            })
            .unwrap();
            (d, read(CapSet::Effective).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(dropped.kept, ["CAP_BPF", "CAP_NET_ADMIN"]);
        assert_eq!(eff, [Capability::CAP_BPF, Capability::CAP_NET_ADMIN].into());
        let e = std::thread::spawn(|| drop_control(None, false, || Err("no".into())).unwrap_err())
            .join()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "capabilities: the XDP maps cannot be read with {cap_net_admin}, then {cap_bpf, cap_net_admin}, then {cap_net_admin, cap_sys_admin} in effect: no"
        );
    }
}
