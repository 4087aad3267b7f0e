//! The FTP helper for NAT services (IPVS `ip_vs_ftp.c`).
//!
//! FTP moves files over separate data connections whose address and port
//! travel inside the control connection as text. Behind a NAT director two
//! of those go wrong, and the helper fixes them:
//!
//! - Passive mode: the real server answers `PASV` with `227 Entering
//!   Passive Mode (h1,h2,h3,h4,p1,p2)` naming *its own* address, which the
//!   client must not (and often cannot) use. The helper rewrites the
//!   address to the VIP — the reply may change length, hence
//!   [`super::SeqAdjust`] — and expects the client's data connection to
//!   VIP:port, which it sends to the same real server and port. `EPSV`'s
//!   `229 (|||port|)` carries no address: nothing is rewritten, the data
//!   connection is expected all the same.
//! - Active mode: the client's `PORT h1,...,p2` / `EPRT |1|addr|port|`
//!   names the client's own address, which NAT does not change (only the
//!   VIP side is translated), so the command is left as it is. The real
//!   server will connect from its port 20 (the control port − 1,
//!   vsftpd's `connect_from_port_20`) to that address; the helper creates
//!   that connection up front, so its packets are translated to come from
//!   VIP:20.
//!
//! What is trusted: only complete lines (ending in `\n`) that start a
//! segment or follow a `\n` in it, at most [`MAX_LINE`] bytes, in a
//! segment whose TCP checksum is right. A line split over two segments is
//! left as it is — as IPVS does, the helper never holds a segment back to
//! wait for the rest — so a 227 reply split in two reaches the client
//! unchanged and no data connection is expected (the client's data
//! connection then fails or falls back; vsftpd writes every reply in one
//! `write`, so this does not happen with it). Addresses are accepted only
//! if every number is a decimal of at most three digits ≤ 255 (ports: five
//! digits ≤ 65535, not 0), and a 227 reply is rewritten only if it names
//! the connection's real server (or is left alone if it already names the
//! VIP); a `PORT` is honoured only for the client's own address, so the
//! helper cannot be used to open connections to third parties (FTP
//! bounce). Anything else is forwarded untouched.

use std::net::Ipv4Addr;

use crate::frame::Frame;
use crate::wire::Layout;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::TcpPacket;

/// Longest command or reply line the helper looks at (RFC 959 puts no
/// limit; real PASV/PORT lines are under 80 bytes).
pub const MAX_LINE: usize = 512;

/// What a real server's reply announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `227`: the address (its text at `at..at + len` of the payload) and
    /// the port the server listens on.
    Pasv {
        addr: Ipv4Addr,
        port: u16,
        at: usize,
        len: usize,
    },
    /// `229`: the port only.
    Epsv { port: u16 },
}

/// What a client's command announces: it listens on `addr:port` (`PORT`,
/// or `EPRT` with address family 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Active {
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// The complete lines of a payload with their offsets: each starts at the
/// payload's start or after a `\n`, and ends with `\n` (excluded).
fn lines(payload: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        while start < payload.len() {
            let rest = &payload[start..];
            let nl = rest.iter().position(|&b| b == b'\n')?;
            let at = start;
            start += nl + 1;
            if nl <= MAX_LINE {
                return Some((at, &rest[..nl]));
            }
        }
        None
    })
}

/// The first `227` or `229` reply in a server's segment.
pub fn reply(payload: &[u8]) -> Option<Reply> {
    lines(payload).find_map(|(at, line)| {
        if let Some(rest) = line.strip_prefix(b"227 ") {
            // The numbers follow a '(' (vsftpd, IPVS) or, without one,
            // start at the first digit (RFC 1123 §4.1.2.6).
            let open = rest.iter().position(|&b| b == b'(' || b.is_ascii_digit())?;
            let from = if rest[open] == b'(' { open + 1 } else { open };
            let (nums, ends) = numbers::<6>(&rest[from..], b',', 255)?;
            let addr = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
            let port = (nums[4] << 8 | nums[5]) as u16;
            let text_at = at + 4 + from;
            (port != 0).then_some(Reply::Pasv {
                addr,
                port,
                at: text_at,
                len: ends[3],
            })
        } else if let Some(rest) = line.strip_prefix(b"229 ") {
            // "(|||port|)": any printable delimiter, three times, the port,
            // the delimiter again.
            let open = rest.iter().position(|&b| b == b'(')?;
            let r = &rest[open + 1..];
            let d = *r.first()?;
            if !d.is_ascii_graphic() || d.is_ascii_digit() || r.get(1..3)? != [d, d] {
                return None;
            }
            let (port, used) = decimal(&r[3..], 65535)?;
            (r.get(3 + used) == Some(&d) && port != 0).then_some(Reply::Epsv { port: port as u16 })
        } else {
            None
        }
    })
}

/// The first `PORT` or IPv4 `EPRT` command in a client's segment.
pub fn command(payload: &[u8]) -> Option<Active> {
    lines(payload).find_map(|(_, line)| {
        let verb = line.get(..5)?;
        let arg = trim_cr(&line[5..]);
        if verb.eq_ignore_ascii_case(b"PORT ") {
            let (nums, ends) = numbers::<6>(arg, b',', 255)?;
            if ends[5] != arg.len() {
                return None;
            }
            let addr = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
            let port = (nums[4] << 8 | nums[5]) as u16;
            (port != 0).then_some(Active { addr, port })
        } else if verb.eq_ignore_ascii_case(b"EPRT ") {
            // "<d>1<d>a.b.c.d<d>port<d>" (RFC 2428).
            let d = *arg.first()?;
            if !d.is_ascii_graphic() || d.is_ascii_digit() || arg.get(1..3)? != [b'1', d] {
                return None;
            }
            let (nums, ends) = numbers::<4>(&arg[3..], b'.', 255)?;
            let r = &arg[3 + ends[3]..];
            if r.first() != Some(&d) {
                return None;
            }
            let (port, used) = decimal(&r[1..], 65535)?;
            if r[1 + used..] != [d] || port == 0 {
                return None;
            }
            let addr = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
            Some(Active {
                addr,
                port: port as u16,
            })
        } else {
            None
        }
    })
}

fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

/// A decimal of 1 to 5 digits at the start of `s`, at most `max`, and how
/// many bytes it took.
fn decimal(s: &[u8], max: u32) -> Option<(u32, usize)> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let width = if max <= 255 { 3 } else { 5 };
    if digits == 0 || digits > width {
        return None;
    }
    let v = s[..digits]
        .iter()
        .fold(0u32, |v, &b| v * 10 + u32::from(b - b'0'));
    (v <= max).then_some((v, digits))
}

/// `N` decimals ≤ `max` separated by `sep` at the start of `s`: their
/// values and where each ends.
fn numbers<const N: usize>(s: &[u8], sep: u8, max: u32) -> Option<([u32; N], [usize; N])> {
    let mut vals = [0; N];
    let mut ends = [0; N];
    let mut at = 0;
    for i in 0..N {
        if i > 0 {
            if s.get(at) != Some(&sep) {
                return None;
            }
            at += 1;
        }
        let (v, used) = decimal(&s[at..], max)?;
        vals[i] = v;
        at += used;
        ends[i] = at;
    }
    Some((vals, ends))
}

/// `a,b,c,d` as a 227 reply writes an address, and its length.
pub fn pasv_text(addr: Ipv4Addr) -> ([u8; 15], usize) {
    let mut out = [0u8; 15];
    let mut n = 0;
    for (i, o) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b',';
            n += 1;
        }
        let mut digits = [0u8; 3];
        let mut k = 0;
        let mut v = o;
        loop {
            digits[k] = b'0' + v % 10;
            k += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for j in (0..k).rev() {
            out[n] = digits[j];
            n += 1;
        }
    }
    (out, n)
}

/// Whether the TCP checksum of the parsed segment is right: the helper
/// only reads, and recomputes over, payload that arrived intact (IPVS
/// checks it before calling a helper too).
pub fn checksum_ok(d: &[u8], l: &Layout) -> bool {
    let ip = Ipv4Packet::new_unchecked(&d[l.l2_len..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    TcpPacket::new_unchecked(&d[l.l4()..l.l2_len + l.ip_len]).verify_checksum_v4(src, dst)
}

/// Replaces `old_len` bytes at payload offset `at` of the parsed segment
/// with `new`, moving the rest of the segment, and fixes the IPv4 total
/// length and both checksums (the TCP one recomputed in full: the caller
/// has checked the old one). `payload_at` is the payload's offset in the
/// frame. Returns the new layout, or `None` (frame untouched) when the
/// result would not fit the frame's buffer or exceed `mtu`.
pub fn replace(
    frame: &mut Frame<'_>,
    l: &Layout,
    payload_at: usize,
    at: usize,
    old_len: usize,
    new: &[u8],
    mtu: usize,
) -> Option<Layout> {
    let end = l.l2_len + l.ip_len;
    let from = payload_at + at + old_len;
    debug_assert!(from <= end);
    let ip_len = (l.ip_len + new.len()).checked_sub(old_len)?;
    if ip_len > mtu || ip_len > usize::from(u16::MAX) {
        return None;
    }
    let new_end = l.l2_len + ip_len;
    if new_end > frame.len() && !frame.grow_to(new_end) {
        return None;
    }
    let d = frame.data_mut();
    d.copy_within(from..end, payload_at + at + new.len());
    d[payload_at + at..payload_at + at + new.len()].copy_from_slice(new);
    frame.set_len(new_end);
    let d = frame.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l.l2_len..]);
    ip.set_total_len(ip_len as u16);
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let layout = Layout { ip_len, ..*l };
    TcpPacket::new_unchecked(&mut d[layout.l4()..new_end]).fill_checksum_v4(src, dst);
    Some(layout)
}

#[cfg(test)]
mod tests;
