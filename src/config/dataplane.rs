//! `[dataplane]`, `[connections]`, `[control]`, `[log]`, `[daemon]` and
//! `[metrics]`: the tables of plain keys. Each key is read with its range; the few cross-checks are
//! reported at the value that breaks them: no repeated interface, core or
//! FTP port, and a data path that can work — enough UMEM frames for the
//! fill ring and TX ([`Tuning::frames_needed`]), and frames of the MTU that
//! fit a UMEM frame and a hand-over buffer ([`Tuning::max_mtu`]; the
//! interfaces' own MTUs are checked at start-up, when they are known).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use toml::Spanned;

use super::error::Problem;
use super::raw::{Leaf, RawConnections, RawControl, RawDaemon, RawDataplane, RawLog, RawMetrics};
use super::read::{Result, Source, describe, is_unicast};
use super::types::{
    CompleteChecksums, Connections, Control, DEFAULT_SOCKET, Daemon, Dataplane, Idle, Log, Metrics,
    Tuning, XdpMode, ZeroCopy,
};
use crate::conn::Mode;
use crate::log::Level;

/// Longest `sun_path` of a Unix socket, without its terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Longest interface name (`IFNAMSIZ` - 1).
const MAX_IFNAME: usize = 15;

impl Source<'_> {
    pub(super) fn dataplane(&self, table: Option<&Spanned<RawDataplane>>) -> Result<Dataplane> {
        const KEY: &str = "dataplane.interfaces";
        const IFNAMES: &str = "a non-empty list of interface names, e.g. [\"eth1\"]";
        let Some(table) = table else {
            return Err(self.missing(None, KEY, IFNAMES));
        };
        let raw = table.get_ref();
        let Some(list) = &raw.interfaces else {
            return Err(self.missing(Some(table.span()), KEY, IFNAMES));
        };
        if list.get_ref().is_empty() {
            let problem = Problem::Expected {
                expected: IFNAMES.to_owned(),
                got: "[]".to_owned(),
            };
            return Err(self.invalid(Some(list.span()), KEY, problem));
        }
        let interfaces = self.unique_list(Some(list), KEY, "interface", |item, key| {
            let expected = "an interface name of 1 to 15 bytes without '/', ':' or whitespace";
            self.string_value(item, key, expected, |s| is_ifname(s).then(|| s.to_owned()))
        })?;
        let cores = self.unique_list(
            raw.cores.as_ref(),
            "dataplane.cores",
            "core",
            |item, key| self.int_value(item, key, 0u16, u16::MAX).map(usize::from),
        )?;
        let xdp_mode = self.choice(
            &raw.xdp_mode,
            "dataplane.xdp_mode",
            &[
                ("native", XdpMode::Native),
                ("generic", XdpMode::Generic),
                ("auto", XdpMode::Auto),
            ],
        )?;
        let zero_copy = self.choice(
            &raw.zero_copy,
            "dataplane.zero_copy",
            &[
                ("on", ZeroCopy::On),
                ("off", ZeroCopy::Off),
                ("auto", ZeroCopy::Auto),
            ],
        )?;
        let complete_checksums = self.choice(
            &raw.complete_checksums,
            "dataplane.complete_checksums",
            &[
                ("auto", CompleteChecksums::Auto),
                ("on", CompleteChecksums::On),
                ("off", CompleteChecksums::Off),
            ],
        )?;
        // At most what the pipeline takes in one batch: refused, not cut down.
        let batch_size = self.int(
            &raw.batch_size,
            "dataplane.batch_size",
            1,
            Dataplane::MAX_BATCH_SIZE,
        )?;
        let mtu = self.int(
            &raw.mtu,
            "dataplane.mtu",
            Dataplane::MIN_MTU,
            Dataplane::MAX_MTU,
        )?;
        let tunnel_source = self.string(
            &raw.tunnel_source,
            "dataplane.tunnel_source",
            "a unicast IPv4 address, e.g. \"198.18.2.2\"",
            |s| {
                s.parse::<Ipv4Addr>()
                    .ok()
                    .filter(|a| is_unicast(IpAddr::V4(*a)))
            },
        )?;
        let tuning = self.tuning(raw)?;
        if let Some(m) = mtu
            && let Some(expected) = tuning.mtu_problem(u32::from(m))
        {
            let value = raw.mtu.as_ref().expect("an mtu was read");
            return Err(self.expected(value, "dataplane.mtu", expected));
        }
        Ok(Dataplane {
            interfaces,
            cores,
            xdp_mode: xdp_mode.unwrap_or_default(),
            zero_copy: zero_copy.unwrap_or_default(),
            complete_checksums: complete_checksums.unwrap_or_default(),
            batch_size: batch_size.unwrap_or(Dataplane::DEFAULT_BATCH_SIZE),
            mtu: mtu.unwrap_or(Dataplane::DEFAULT_MTU),
            tunnel_source,
            tuning,
        })
    }

    /// The socket and polling keys of `[dataplane]`.
    fn tuning(&self, raw: &RawDataplane) -> Result<Tuning> {
        let d = Tuning::default();
        let ring = |leaf: &Leaf, key: &str, default: u32| {
            self.power_of_two(leaf, key, Tuning::MIN_RING, Tuning::MAX_RING)
                .map(|v| v.unwrap_or(default))
        };
        let umem_frames = self
            .power_of_two(
                &raw.umem_frames,
                "dataplane.umem_frames",
                Tuning::MIN_RING,
                Tuning::MAX_UMEM_FRAMES,
            )?
            .unwrap_or(d.umem_frames);
        let frame_size = match &raw.frame_size {
            None => d.frame_size,
            Some(v) => match v.get_ref().as_integer() {
                Some(2048) => 2048,
                Some(4096) => 4096,
                _ => return Err(self.expected(v, "dataplane.frame_size", "2048 or 4096")),
            },
        };
        let fill_ring_size = ring(
            &raw.fill_ring_size,
            "dataplane.fill_ring_size",
            d.fill_ring_size,
        )?;
        let tx_ring_size = ring(&raw.tx_ring_size, "dataplane.tx_ring_size", d.tx_ring_size)?;
        let need = fill_ring_size + tx_ring_size;
        if umem_frames < need {
            // Reported at the key the operator wrote, umem_frames first
            // (raising it is the usual fix).
            let (key, value) = [
                ("dataplane.umem_frames", &raw.umem_frames),
                ("dataplane.fill_ring_size", &raw.fill_ring_size),
                ("dataplane.tx_ring_size", &raw.tx_ring_size),
            ]
            .into_iter()
            .find_map(|(k, v)| Some((k, v.as_ref()?)))
            .expect("the defaults fit, so one of the three keys was given");
            let problem = Problem::Expected {
                expected: format!(
                    "umem_frames ({umem_frames}) of at least fill_ring_size + tx_ring_size \
                     ({fill_ring_size} + {tx_ring_size} = {need}): frames wait in the fill ring \
                     for the kernel or are in flight on TX, and hand-over and cross-port \
                     transmission need free frames beyond the fill ring"
                ),
                got: describe(value.get_ref()),
            };
            return Err(self.invalid(Some(value.span()), key, problem));
        }
        Ok(Tuning {
            umem_frames,
            frame_size,
            rx_ring_size: ring(&raw.rx_ring_size, "dataplane.rx_ring_size", d.rx_ring_size)?,
            tx_ring_size,
            fill_ring_size,
            comp_ring_size: ring(
                &raw.comp_ring_size,
                "dataplane.comp_ring_size",
                d.comp_ring_size,
            )?,
            busy_poll_usecs: self
                .int(
                    &raw.busy_poll_usecs,
                    "dataplane.busy_poll_usecs",
                    0,
                    1_000_000,
                )?
                .unwrap_or(d.busy_poll_usecs),
            busy_poll_budget: self
                .int(&raw.busy_poll_budget, "dataplane.busy_poll_budget", 1, 1024)?
                .unwrap_or(d.busy_poll_budget),
            prefer_busy_poll: self
                .boolean(&raw.prefer_busy_poll, "dataplane.prefer_busy_poll")?
                .unwrap_or(d.prefer_busy_poll),
            idle: self
                .choice(
                    &raw.idle,
                    "dataplane.idle",
                    &[
                        ("busy", Idle::Busy),
                        ("yield", Idle::Yield),
                        ("wait", Idle::Wait),
                    ],
                )?
                .unwrap_or(d.idle),
        })
    }

    pub(super) fn connections(&self, raw: &RawConnections) -> Result<Connections> {
        let d = Connections::default();
        let max = Connections::MAX_TIMEOUT;
        let max_entries = self.int(
            &raw.max_entries,
            "connections.max_entries",
            1,
            Connections::MAX_MAX_ENTRIES,
        )?;
        let tcp = self.int(&raw.tcp_timeout, "connections.tcp_timeout", 1, max)?;
        let tcpfin = self.int(&raw.tcpfin_timeout, "connections.tcpfin_timeout", 1, max)?;
        let udp = self.int(&raw.udp_timeout, "connections.udp_timeout", 1, max)?;
        let ftp_ports = match &raw.ftp_ports {
            None => d.ftp_ports.clone(),
            Some(list) => {
                self.unique_list(Some(list), "connections.ftp_ports", "port", |item, key| {
                    self.int_value(item, key, 1u16, u16::MAX)
                })?
            }
        };
        let dd = crate::conn::Defense::default();
        let mode = |key: &str, leaf| -> Result<Mode> {
            Ok(match self.int(leaf, key, 0u8, 2)? {
                None => Mode::Off,
                Some(0) => Mode::Off,
                Some(1) => Mode::Auto,
                Some(_) => Mode::On,
            })
        };
        let defense = crate::conn::Defense {
            unreplied_share: self
                .fraction(&raw.unreplied_share, "connections.unreplied_share", false)?
                .unwrap_or(dd.unreplied_share),
            threshold: self
                .fraction(
                    &raw.defense_threshold,
                    "connections.defense_threshold",
                    true,
                )?
                .unwrap_or(dd.threshold),
            drop_entry: mode("connections.drop_entry", &raw.drop_entry)?,
            secure_tcp: mode("connections.secure_tcp", &raw.secure_tcp)?,
            secure_tcp_timeout: self
                .int(
                    &raw.secure_tcp_timeout,
                    "connections.secure_tcp_timeout",
                    1,
                    max,
                )?
                .unwrap_or(dd.secure_tcp_timeout),
        };
        let expire_nodest_conn = self
            .boolean(&raw.expire_nodest_conn, "connections.expire_nodest_conn")?
            .unwrap_or(d.expire_nodest_conn);
        let expire_quiescent_template = self
            .boolean(
                &raw.expire_quiescent_template,
                "connections.expire_quiescent_template",
            )?
            .unwrap_or(d.expire_quiescent_template);
        Ok(Connections {
            expire_nodest_conn,
            expire_quiescent_template,
            defense,
            ftp_ports,
            max_entries: max_entries.unwrap_or(d.max_entries),
            tcp_timeout: tcp.unwrap_or(d.tcp_timeout),
            tcpfin_timeout: tcpfin.unwrap_or(d.tcpfin_timeout),
            udp_timeout: udp.unwrap_or(d.udp_timeout),
        })
    }

    pub(super) fn control(&self, raw: &RawControl) -> Result<Control> {
        let expected = format!("a Unix socket path of 1..={MAX_SOCKET_PATH} bytes");
        let socket = self.string(&raw.socket, "control.socket", &expected, |s| {
            (!s.is_empty() && s.len() <= MAX_SOCKET_PATH && !s.contains('\0'))
                .then(|| PathBuf::from(s))
        })?;
        Ok(Control {
            socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        })
    }

    pub(super) fn daemon(&self, raw: &RawDaemon) -> Result<Daemon> {
        let expected = format!("a user or group name of 1..={MAX_ACCOUNT_NAME} bytes");
        let name = |s: &str| is_account_name(s).then(|| s.to_owned());
        Ok(Daemon {
            user: self.string(&raw.user, "daemon.user", &expected, name)?,
            group: self.string(&raw.group, "daemon.group", &expected, name)?,
        })
    }
}

/// Longest user or group name (`useradd`'s limit).
const MAX_ACCOUNT_NAME: usize = 32;

/// A name `getpwnam`/`getgrnam` can look up: not empty, not all digits
/// (a number would be taken for an id), no `:`, `/`, NUL or whitespace.
fn is_account_name(name: &str) -> bool {
    (1..=MAX_ACCOUNT_NAME).contains(&name.len())
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name
            .chars()
            .any(|c| c == ':' || c == '/' || c == '\0' || c.is_whitespace())
}

impl Source<'_> {
    pub(super) fn log(&self, raw: &RawLog) -> Result<Log> {
        let names: Vec<(&str, Level)> = Level::ALL.iter().map(|l| (l.name(), *l)).collect();
        let level = self.choice(&raw.level, "log.level", &names)?;
        Ok(Log {
            level: level.unwrap_or_default(),
        })
    }
}

impl Source<'_> {
    /// `[metrics]`: `listen` is an address to bind, so the unspecified
    /// address (every interface) is allowed, multicast and broadcast not.
    pub(super) fn metrics(&self, raw: &RawMetrics) -> Result<Metrics> {
        let expected = "an address with port to listen on, \"a.b.c.d:port\" or \"[ipv6]:port\"";
        let listen = self.string(&raw.listen, "metrics.listen", expected, |s| {
            s.parse::<std::net::SocketAddr>()
                .ok()
                .filter(|a| a.ip().is_unspecified() || is_unicast(a.ip()))
        })?;
        Ok(Metrics { listen })
    }
}

/// As Linux `dev_valid_name`: 1..IFNAMSIZ bytes, not `.` or `..`, no `/`,
/// `:` or whitespace.
fn is_ifname(name: &str) -> bool {
    (1..=MAX_IFNAME).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}
