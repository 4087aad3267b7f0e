//! Opening a socket: the UMEM, the AF_XDP socket, the UMEM's registration,
//! the four rings' sizes and mappings, busy polling, and the bind to one
//! (interface, queue) — the system calls that happen once per socket.
//!
//! The fill ring is stocked before the bind, so the first packets find
//! chunks. With `ZeroCopy::Auto` a bind the driver refuses in zero-copy
//! mode is retried from scratch in copy mode, and the refusal kept as
//! [`Xsk::copy_reason`]; every other failure names the step that failed.
//!
//! A queue that another AF_XDP socket held until a moment ago refuses the
//! bind with `EBUSY` until the kernel has freed that socket's buffer pool,
//! which it does in deferred work after the socket is closed (and, for a
//! socket in an XDP program's XSKMAP, after the map lets go of it): a
//! supervisor restarting xdpvs, or DPDK's AF_XDP driver that just exited,
//! leaves exactly that. So a busy bind is retried from scratch, with a
//! backoff from 5 ms to 200 ms, for [`BUSY_WAIT`] in all; the first one is
//! logged (`xdpvs: IF queue Q busy, retrying`), and a queue still busy
//! after that is [`XskError::QueueBusy`].

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::config::{BUSY_WAIT, XskConfig};
use super::error::XskError;
use super::ring::Ring;
use super::stats::XskStats;
use super::umem::{Chunks, Handled, Places, Umem};
use super::{MAX_BATCH, Xsk};
use crate::config::ZeroCopy;
use crate::frame::Verdict;

// Not in libc for x86-64 yet (asm-generic/socket.h).
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

fn is_pow2(n: u32) -> bool {
    n.is_power_of_two()
}

/// A step that failed, and why.
type StepError = (&'static str, io::Error);

fn is_busy_bind((op, e): &StepError) -> bool {
    *op == "bind" && e.raw_os_error() == Some(libc::EBUSY)
}

/// Calls `attempt` until it succeeds or fails other than with a busy
/// bind, sleeping (through `sleep`) 5 ms, then twice as long each time up
/// to 200 ms, until the sleeps add up to `limit`; then the busy error is
/// returned. `on_busy` is called at the first busy bind only.
fn retry_busy<T>(
    limit: Duration,
    mut attempt: impl FnMut() -> Result<T, StepError>,
    mut on_busy: impl FnMut(),
    mut sleep: impl FnMut(Duration),
) -> Result<T, StepError> {
    let mut waited = Duration::ZERO;
    let mut pause = Duration::from_millis(5);
    loop {
        match attempt() {
            Err(e) if is_busy_bind(&e) && waited < limit => {
                if waited.is_zero() {
                    on_busy();
                }
                let p = pause.min(limit - waited);
                sleep(p);
                waited += p;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            done => return done,
        }
    }
}

impl Xsk {
    /// Opens a socket on `cfg.queue` of `cfg.ifname`. `port` is the
    /// pipeline port index stamped into every frame this socket yields.
    pub fn open(cfg: &XskConfig, port: u8) -> Result<Xsk, XskError> {
        let cfg_err = |reason: String| XskError::Config {
            ifname: cfg.ifname.clone(),
            queue: cfg.queue,
            reason,
        };
        if !is_pow2(cfg.frames) {
            return Err(cfg_err(format!(
                "frames = {} is not a power of two",
                cfg.frames
            )));
        }
        if cfg.frame_size != 2048 && cfg.frame_size != 4096 {
            return Err(cfg_err(format!(
                "frame_size = {} (must be 2048 or 4096)",
                cfg.frame_size
            )));
        }
        for (name, size) in [
            ("rx_size", cfg.rx_size),
            ("tx_size", cfg.tx_size),
            ("fill_size", cfg.fill_size),
            ("comp_size", cfg.comp_size),
        ] {
            if !is_pow2(size) {
                return Err(cfg_err(format!("{name} = {size} is not a power of two")));
            }
        }
        let cname =
            std::ffi::CString::new(cfg.ifname.as_str()).map_err(|_| XskError::NoSuchInterface {
                ifname: cfg.ifname.clone(),
            })?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoSuchInterface {
                ifname: cfg.ifname.clone(),
            });
        }
        let os = |op: &'static str| {
            move |source: io::Error| XskError::Os {
                ifname: cfg.ifname.clone(),
                queue: cfg.queue,
                op,
                source,
            }
        };
        let logged = Cell::new(false);
        let open_mode = |mode| {
            retry_busy(
                BUSY_WAIT,
                || Self::open_mode(cfg, ifindex, port, mode),
                || {
                    if !logged.replace(true) {
                        crate::log::warning(format_args!(
                            "{} queue {} busy, retrying",
                            cfg.ifname, cfg.queue
                        ));
                    }
                },
                std::thread::sleep,
            )
        };
        // A queue still busy is said so; any other failure names its step.
        let fail = |e: StepError| {
            if is_busy_bind(&e) {
                XskError::QueueBusy {
                    ifname: cfg.ifname.clone(),
                    queue: cfg.queue,
                    waited: BUSY_WAIT,
                    source: e.1,
                }
            } else {
                os(e.0)(e.1)
            }
        };
        match cfg.zero_copy {
            ZeroCopy::On => {
                open_mode(libc::XDP_ZEROCOPY).map_err(|(op, source)| match source.raw_os_error() {
                    Some(libc::EOPNOTSUPP) if op == "bind" => XskError::ZeroCopyUnsupported {
                        ifname: cfg.ifname.clone(),
                        queue: cfg.queue,
                        source,
                    },
                    _ => fail((op, source)),
                })
            }
            ZeroCopy::Off => open_mode(libc::XDP_COPY).map_err(fail),
            ZeroCopy::Auto => match open_mode(libc::XDP_ZEROCOPY) {
                Ok(x) => Ok(x),
                Err(e) if is_busy_bind(&e) => Err(fail(e)),
                Err(("bind", zc_err)) => {
                    let mut x = open_mode(libc::XDP_COPY).map_err(fail)?;
                    x.copy_reason = Some(zc_err);
                    Ok(x)
                }
                Err(e) => Err(fail(e)),
            },
        }
    }

    /// Everything from the UMEM to the bind, with bind flag `mode`
    /// (`XDP_ZEROCOPY` or `XDP_COPY`). Errors name the failing step.
    fn open_mode(cfg: &XskConfig, ifindex: u32, port: u8, mode: u16) -> Result<Xsk, StepError> {
        let umem_len = cfg.frames as usize * cfg.frame_size as usize;
        let umem = Umem::new(umem_len).map_err(|e| ("mmap UMEM", e))?;
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(("socket(AF_XDP)", io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let reg = libc::xdp_umem_reg {
            addr: umem.base.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
            .map_err(|e| ("XDP_UMEM_REG", e))?;
        for (opt, size, what) in [
            (
                libc::XDP_UMEM_FILL_RING,
                cfg.fill_size,
                "XDP_UMEM_FILL_RING",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.comp_size,
                "XDP_UMEM_COMPLETION_RING",
            ),
            (libc::XDP_RX_RING, cfg.rx_size, "XDP_RX_RING"),
            (libc::XDP_TX_RING, cfg.tx_size, "XDP_TX_RING"),
        ] {
            setsockopt(raw, libc::SOL_XDP, opt, &size).map_err(|e| (what, e))?;
        }
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is writable for `optlen` bytes.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&raw mut off).cast(),
                &mut optlen,
            )
        };
        if rc != 0 {
            return Err(("XDP_MMAP_OFFSETS", io::Error::last_os_error()));
        }
        let map = "mmap ring";
        let rx = Ring::map(raw, libc::XDP_PGOFF_RX_RING as u64, &off.rx, cfg.rx_size)
            .map_err(|e| (map, e))?;
        let tx = Ring::map(raw, libc::XDP_PGOFF_TX_RING as u64, &off.tx, cfg.tx_size)
            .map_err(|e| (map, e))?;
        let fill = Ring::map(raw, libc::XDP_UMEM_PGOFF_FILL_RING, &off.fr, cfg.fill_size)
            .map_err(|e| (map, e))?;
        let comp = Ring::map(
            raw,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            &off.cr,
            cfg.comp_size,
        )
        .map_err(|e| (map, e))?;

        if let Some(bp) = cfg.busy_poll {
            let usecs = bp.usecs as libc::c_int;
            let budget = bp.budget as libc::c_int;
            let prefer = bp.prefer as libc::c_int;
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_BUSY_POLL, &usecs)
                .map_err(|e| ("SO_BUSY_POLL", e))?;
            setsockopt(raw, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget)
                .map_err(|e| ("SO_BUSY_POLL_BUDGET", e))?;
            setsockopt(raw, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &prefer)
                .map_err(|e| ("SO_PREFER_BUSY_POLL", e))?;
        }

        let mut x = Xsk {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            chunks: Chunks::new(cfg.frames, cfg.frame_size),
            places: Places::new(cfg.frames, cfg.frame_size),
            frame_size: cfg.frame_size,
            frames: cfg.frames,
            port,
            zero_copy: mode == libc::XDP_ZEROCOPY,
            copy_reason: None,
            busy_poll: cfg.busy_poll.is_some(),
            // Highest offsets at the bottom: the first chunks go out first.
            free: (0..cfg.frames as u64)
                .rev()
                .map(|i| i * cfg.frame_size as u64)
                .collect(),
            fill_out: 0,
            tx_out: 0,
            in_handling: 0,
            lost: 0,
            handled: vec![Handled::default(); MAX_BATCH],
            verdicts: vec![Verdict::NotOurs; MAX_BATCH],
            stats: XskStats::default(),
        };
        // The fill ring is stocked before bind so the first packets find
        // chunks.
        x.refill();

        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: cfg.queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the given length.
        let rc = unsafe {
            libc::bind(
                raw,
                (&raw const sa).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(("bind", io::Error::last_os_error()));
        }
        Ok(x)
    }

    /// The socket, for the steering program's XSKMAP.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the bind got zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Why zero-copy was not used when the configuration allowed it
    /// (`ZeroCopy::Auto` fell back to copy mode); `None` otherwise.
    pub fn copy_reason(&self) -> Option<&io::Error> {
        self.copy_reason.as_ref()
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is readable for size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    fn busy() -> StepError {
        ("bind", io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Runs the policy over a bind that is busy `n` times, with a clock
    /// that only the sleeps move: (result, attempts, busy reports, time
    /// slept, the sleeps).
    fn run(
        n: usize,
    ) -> (
        Result<u32, StepError>,
        usize,
        usize,
        Duration,
        Vec<Duration>,
    ) {
        let (mut attempts, mut reports, mut sleeps) = (0, 0, Vec::new());
        let r = retry_busy(
            BUSY_WAIT,
            || {
                attempts += 1;
                if attempts <= n { Err(busy()) } else { Ok(7) }
            },
            || reports += 1,
            |d| sleeps.push(d),
        );
        let slept = sleeps.iter().sum();
        (r, attempts, reports, slept, sleeps)
    }

    #[test]
    fn a_free_queue_binds_at_once() {
        let (r, attempts, reports, slept, _) = run(0);
        assert_eq!(
            (r.unwrap(), attempts, reports, slept),
            (7, 1, 0, Duration::ZERO)
        );
    }

    #[test]
    fn a_queue_freed_soon_binds_after_backing_off_and_one_report() {
        let (r, attempts, reports, slept, sleeps) = run(5);
        assert_eq!((r.unwrap(), attempts, reports), (7, 6, 1));
        let ms: Vec<u64> = sleeps.iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(ms, [5, 10, 20, 40, 80]);
        assert_eq!(slept, Duration::from_millis(155));
    }

    #[test]
    fn a_queue_that_stays_busy_fails_after_the_limit() {
        let (r, attempts, reports, slept, sleeps) = run(usize::MAX);
        assert!(is_busy_bind(&r.unwrap_err()));
        assert_eq!(reports, 1, "reported once");
        assert_eq!(slept, BUSY_WAIT, "waits exactly the limit in all");
        assert!(sleeps.iter().all(|d| *d <= Duration::from_millis(200)));
        assert_eq!(attempts, sleeps.len() + 1);
        assert!(attempts < 20, "{attempts} attempts");
    }

    #[test]
    fn other_failures_are_not_retried() {
        for e in [
            ("bind", io::Error::from_raw_os_error(libc::EINVAL)),
            ("XDP_UMEM_REG", io::Error::from_raw_os_error(libc::EBUSY)),
        ] {
            let mut attempts = 0;
            let r: Result<(), _> = retry_busy(
                BUSY_WAIT,
                || {
                    attempts += 1;
                    Err((
                        e.0,
                        io::Error::from_raw_os_error(e.1.raw_os_error().unwrap()),
                    ))
                },
                || panic!("not busy"),
                |_| panic!("no sleep"),
            );
            assert_eq!((r.unwrap_err().0, attempts), (e.0, 1));
        }
    }
}
