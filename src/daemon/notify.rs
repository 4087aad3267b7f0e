//! The service manager's readiness protocol (`sd_notify(3)`), a few lines
//! over a Unix datagram socket, so that `Type=notify` units
//! (`dist/xdpvs.service`) know when the director forwards.
//!
//! With `NOTIFY_SOCKET` in the environment (a path, or `@name` for the
//! abstract namespace) the daemon sends, one datagram each:
//!
//! - `READY=1` with a `STATUS=` line, right after it logs `running:`;
//! - `RELOADING=1` (with `MONOTONIC_USEC=`, as systemd asks) when a
//!   SIGHUP reload begins and `READY=1` when it has ended, applied or
//!   refused, so `systemctl reload` returns when the new table is in force;
//! - `WATCHDOG=1` from the control thread every half of `WATCHDOG_USEC`
//!   (systemd's `WatchdogSec=`), only in a round in which every worker is
//!   still running: a dead worker stops the pings at once (and the daemon
//!   with them, see [`crate::daemon`]); ignored when `WATCHDOG_PID` names
//!   another process;
//! - `STOPPING=1` with a `STATUS=` line when it shuts down, on SIGTERM or
//!   because a worker ended (then the status names it).
//!
//! Without `NOTIFY_SOCKET` nothing is sent. Sending is best effort: the
//! first failure is logged, later ones are not (a manager that went away
//! must not fill the log).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The environment variables of the protocol.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The daemon's side of the protocol.
pub struct Notifier {
    /// The manager's socket; `None` without `NOTIFY_SOCKET`.
    target: Option<(UnixDatagram, SocketAddr)>,
    /// How often to ping (half the manager's timeout); `None`: no watchdog.
    every: Option<Duration>,
    last_ping: Option<Instant>,
    failed: bool,
}

/// Why the environment's notification settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{NOTIFY_SOCKET}={0:?}: expected an absolute path or @name")]
    BadSocket(String),
    #[error("{NOTIFY_SOCKET}: {0}")]
    Socket(std::io::Error),
    #[error("{WATCHDOG_USEC}={0:?}: expected a positive number of microseconds")]
    BadWatchdog(String),
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier {
            target: None,
            every: None,
            last_ping: None,
            failed: false,
        }
    }

    /// From this process's environment (module docs).
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let var = |k: &str| std::env::var(k).ok();
        Notifier::from_vars(
            var(NOTIFY_SOCKET),
            var(WATCHDOG_USEC),
            var(WATCHDOG_PID),
            std::process::id(),
        )
    }

    /// From the values of the three variables; `pid` is this process's.
    pub fn from_vars(
        socket: Option<String>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
        pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let Some(socket) = socket.filter(|s| !s.is_empty()) else {
            return Ok(Notifier::none());
        };
        let addr = socket_addr(&socket)?;
        let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        let mine = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let every = match watchdog_usec {
            Some(v) if mine => {
                let usec = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&u| u > 0)
                    .ok_or(NotifyError::BadWatchdog(v))?;
                Some(Duration::from_micros(usec) / 2)
            }
            _ => None,
        };
        Ok(Notifier {
            target: Some((sock, addr)),
            every,
            last_ping: None,
            failed: false,
        })
    }

    /// Whether a manager listens (`NOTIFY_SOCKET` was set).
    pub fn active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog interval, if the manager asked for pings.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.every
    }

    /// `READY=1`, with `status` as the manager's `STATUS=`.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1`: a reload begins ([`Self::ready`] ends it).
    pub fn reloading(&mut self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    /// `STOPPING=1`, with `status` saying why.
    pub fn stopping(&mut self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1` if the interval has passed since the last ping. The
    /// caller calls it only when every worker is alive.
    pub fn watchdog(&mut self, now: Instant) {
        let Some(every) = self.every else { return };
        if self
            .last_ping
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.last_ping = Some(now);
        self.send("WATCHDOG=1");
    }

    fn send(&mut self, msg: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
            && !self.failed
        {
            self.failed = true;
            crate::log::warning(format_args!(
                "{NOTIFY_SOCKET}: cannot notify the service manager: {e}"
            ));
        }
    }
}

/// `NOTIFY_SOCKET`'s value as an address: a path, or `@name` abstract.
fn socket_addr(value: &str) -> Result<SocketAddr, NotifyError> {
    use std::os::linux::net::SocketAddrExt;
    let bad = || NotifyError::BadSocket(value.to_owned());
    if let Some(name) = value.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| bad())
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value).map_err(|_| bad())
    } else {
        Err(bad())
    }
}

/// A `STATUS=` value must not break the message into more assignments.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempdir::Dir, UnixDatagram, String) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path.display().to_string())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "xdpvs-notify-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn messages_reach_the_socket_in_order() {
        let (_dir, sock, path) = listener();
        let mut n = Notifier::from_vars(Some(path), None, None, 1).unwrap();
        assert!(n.active());
        n.ready("running:\n2 workers");
        n.reloading();
        n.stopping("stopping");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=running: 2 workers");
        let r = recv(&sock);
        assert!(r.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{r}");
        assert!(
            r["RELOADING=1\nMONOTONIC_USEC=".len()..]
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn the_watchdog_pings_every_half_timeout() {
        let (_dir, sock, path) = listener();
        let mut n =
            Notifier::from_vars(Some(path), Some("2000000".into()), Some("7".into()), 7).unwrap();
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(1)));
        let t = Instant::now();
        n.watchdog(t);
        n.watchdog(t + Duration::from_millis(999));
        n.watchdog(t + Duration::from_millis(1000));
        n.stopping("x");
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=x");
    }

    #[test]
    fn the_watchdog_belongs_to_the_named_process() {
        let n = Notifier::from_vars(Some("/x".into()), Some("100".into()), Some("8".into()), 7)
            .unwrap();
        assert_eq!(n.watchdog_every(), None);
        let n = Notifier::from_vars(Some("/x".into()), None, None, 7).unwrap();
        assert_eq!(n.watchdog_every(), None);
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_bad_values_are_refused() {
        let mut n = Notifier::from_vars(None, Some("100".into()), None, 1).unwrap();
        assert!(!n.active());
        n.ready("x");
        n.watchdog(Instant::now());
        assert!(Notifier::from_vars(Some("relative".into()), None, None, 1).is_err());
        assert!(Notifier::from_vars(Some("/x".into()), Some("0".into()), None, 1).is_err());
        assert!(Notifier::from_vars(Some("/x".into()), Some("soon".into()), None, 1).is_err());
        assert!(Notifier::from_vars(Some("@abstract".into()), None, None, 1).is_ok());
    }

    #[test]
    fn a_vanished_manager_is_not_an_error() {
        let (dir, sock, path) = listener();
        drop(sock);
        drop(dir);
        let mut n = Notifier::from_vars(Some(path), None, None, 1).unwrap();
        n.ready("x");
        n.stopping("y");
        assert!(n.failed);
    }
}
