//! An AF_PACKET socket on one interface, for the control side's probes
//! that must leave exactly as the data path's frames do (the health
//! checks `via = "forwarding"`, `crate::health::via`): it sends whole
//! Ethernet frames that the caller built, and receives the IPv4 frames a
//! classic BPF filter accepts.
//!
//! Why not an IP socket: a probe sent the data path's way has the VIP as
//! its destination and must go to one chosen MAC (DR) or inside an IPIP
//! header (TUN), which the kernel's routing would not do; and its answer
//! comes from the VIP, which the kernel's reverse-path filter (or a VIP
//! held on the director's `lo`, a martian source then) drops before any
//! IP socket sees it. AF_PACKET sees frames as they arrive, before IP.
//!
//! Frames an XDP program redirects to AF_XDP never reach this socket; the
//! steering program passes the director's own traffic to the kernel (its
//! `local_addrs` rule), so answers to the director's address do.
//!
//! The filter is attached before the socket is bound to its protocol and
//! interface, so no frame the filter would reject is ever queued (the
//! usual order: a socket opened with protocol 0 receives nothing). Frames
//! this host sends itself (`PACKET_OUTGOING`) are skipped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Instruction classes and modes of classic BPF (linux/filter.h), the
/// ones a small filter needs.
pub mod bpf {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MSH: u16 = 0xa0;
    pub const JEQ: u16 = 0x10;
    pub const JSET: u16 = 0x40;
    pub const K: u16 = 0x00;
}

/// `ETH_P_IP`, the protocol the socket is bound to.
const ETH_P_IP: u16 = 0x0800;

/// An AF_PACKET raw socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex` that receives the incoming
    /// IPv4 frames `filter` accepts (it sees each from its Ethernet
    /// header). Needs CAP_NET_RAW.
    pub fn open(ifindex: u32, filter: &[Insn]) -> io::Result<PacketSocket> {
        // SAFETY: plain system call with constant arguments; protocol 0
        // receives nothing until the bind below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(raw, "socket(AF_PACKET)")?;
        // SAFETY: `raw` is a descriptor just returned to us and owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket { fd, ifindex };
        sock.set_filter(filter)?;
        let one: libc::c_int = 1;
        // SAFETY: an int option, its size given. Kernels before 4.20 lack
        // the option; outgoing frames are skipped in `recv` anyway.
        let _ = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let sll = sockaddr_ll(ifindex, ETH_P_IP, None);
        // SAFETY: `sll` is a valid sockaddr_ll and its size is given.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(rc, "bind(AF_PACKET)")?;
        Ok(sock)
    }

    /// Replaces the filter (atomically: each frame meets the old or the
    /// new one). Frames the old one queued stay queued: see
    /// [`PacketSocket::drain`].
    pub fn set_filter(&self, filter: &[Insn]) -> io::Result<()> {
        let len = u16::try_from(filter.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF filter too long"))?;
        let mut insns: Vec<libc::sock_filter> = filter
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let prog = libc::sock_fprog {
            len,
            filter: insns.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `len` instructions in `insns`, alive
        // for the call (the kernel copies them); the option length is the
        // size of the struct passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const prog).cast(),
                size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        check(rc, "SO_ATTACH_FILTER")
    }

    /// Discards the frames queued now (at most `limit`); returns how many.
    pub fn drain(&self, limit: usize) -> usize {
        let mut buf = [0u8; 64];
        for n in 0..limit {
            // SAFETY: `buf` is writable for its length; no address wanted.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if rc < 0 {
                return n;
            }
        }
        limit
    }

    /// Sends one whole Ethernet frame (its header included) out of the
    /// interface, unchanged.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        }
        let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
        let proto = u16::from_be_bytes([frame[12], frame[13]]);
        let sll = sockaddr_ll(self.ifindex, proto, Some(dst));
        // SAFETY: `frame` is valid for `frame.len()` bytes and `sll` is a
        // valid sockaddr_ll of the size given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("send: {e}")));
        }
        if n as usize != frame.len() {
            return Err(io::Error::other(format!(
                "send: {n} of {} bytes",
                frame.len()
            )));
        }
        Ok(())
    }

    /// Waits until `deadline` for an incoming frame the filter accepted
    /// and copies it into `buf` (a longer one is cut to `buf`'s length):
    /// `Ok(Some(len))`, or `Ok(None)` once the deadline has passed.
    pub fn recv(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = deadline - now;
            let ts = rustix::time::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let mut fds = [rustix::event::PollFd::new(
                &self.fd,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io::Error::other(format!("poll: {e}"))),
            }
            // SAFETY: all-zero bytes are a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is writable for `buf.len()` bytes; `from` and
            // `from_len` are a writable sockaddr_ll and its size.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_fd().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                    _ => return Err(io::Error::new(e.kind(), format!("recv: {e}"))),
                }
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }
}

fn sockaddr_ll(ifindex: u32, proto: u16, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: all-zero bytes are a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    if let Some(mac) = dst {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
    }
    sll
}
