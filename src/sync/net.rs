//! The sync daemon's sockets and the master's batching, as IPVS does them
//! (`ip_vs_sync.c`: `make_send_sock`, `make_receive_sock`,
//! `sync_thread_master`, `sync_thread_backup`).
//!
//! - The master sends each message as one UDP datagram to the group
//!   (224.0.0.81 by default) on port `port + id` (id: the sync thread,
//!   0 here), out of the sync interface (`IP_MULTICAST_IF` by index), with
//!   the configured TTL (1 by default: the link only) and without looping
//!   it back to itself.
//! - The backup binds the group address and that port (`SO_REUSEADDR`,
//!   so a restarted backup binds again at once) and joins the group on
//!   the sync interface only.
//! - [`Outbox`] fills messages as the kernel's master fills its buffers:
//!   entries are appended until the next one would pass `maxlen` (or 255
//!   entries), then the message goes out; a message that is not full goes
//!   out once its first entry is [`FLUSH_AFTER`] old (the kernel's
//!   `IPVS_SYNC_FLUSH_TIME`, 2 s), so a quiet master still syncs within
//!   two seconds.
//!
//! Nothing here knows connections: [`Outbox`] takes wire entries, the
//! [`Receiver`] hands back datagrams for [`super::wire::Message`] to read.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use rustix::net::sockopt;

use super::wire::{Builder, EncodeError, Entry, HEADER_LEN};

/// How long a message that is not full may wait before it is sent.
pub const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// The largest datagram a backup reads (the kernel's receive buffer is
/// sized from the interface's MTU; 65507 bytes holds any UDP datagram).
pub const MAX_DATAGRAM: usize = 65507;

/// Where a sync daemon talks: the interface (by index), the group and
/// port (the sync thread's id already added), and the master's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub ifindex: u32,
    pub group: Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
}

/// The master's socket.
#[derive(Debug)]
pub struct Sender {
    sock: UdpSocket,
    to: SocketAddrV4,
}

impl Sender {
    pub fn open(c: &Channel) -> io::Result<Sender> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sockopt::set_ip_multicast_if_with_ifindex(
            &sock,
            &c.group,
            &Ipv4Addr::UNSPECIFIED,
            c.ifindex,
        )?;
        sockopt::set_ip_multicast_loop(&sock, false)?;
        sockopt::set_ip_multicast_ttl(&sock, u32::from(c.ttl))?;
        Ok(Sender {
            sock,
            to: SocketAddrV4::new(c.group, c.port),
        })
    }

    /// Sends one message; a message is never cut (the caller built it to
    /// fit `maxlen`).
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        let n = self.sock.send_to(msg, self.to)?;
        if n == msg.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sync: sent {n} of {} bytes",
                msg.len()
            )))
        }
    }
}

/// The backup's socket, with its receive buffer.
#[derive(Debug)]
pub struct Receiver {
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl Receiver {
    /// Binds the group and port and joins the group on the interface.
    /// `wait` bounds each [`Receiver::recv`] (so the thread can see that it
    /// is asked to stop).
    pub fn open(c: &Channel, wait: Duration) -> io::Result<Receiver> {
        let sock = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            None,
        )?;
        sockopt::set_socket_reuseaddr(&sock, true)?;
        rustix::net::bind(&sock, &SocketAddrV4::new(c.group, c.port))?;
        sockopt::set_ip_add_membership_with_ifindex(
            &sock,
            &c.group,
            &Ipv4Addr::UNSPECIFIED,
            c.ifindex,
        )?;
        let sock = UdpSocket::from(sock);
        sock.set_read_timeout(Some(wait))?;
        Ok(Receiver {
            sock,
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    /// The next datagram and its sender; `None` when none came within the
    /// wait.
    pub fn recv(&mut self) -> io::Result<Option<(&[u8], std::net::SocketAddr)>> {
        match self.sock.recv_from(&mut self.buf) {
            Ok((n, from)) => Ok(Some((&self.buf[..n], from))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The master's message being filled (module docs).
#[derive(Debug)]
pub struct Outbox {
    syncid: u8,
    maxlen: usize,
    pending: Vec<Entry>,
    /// When the first pending entry came.
    since: Option<Instant>,
    buf: Vec<u8>,
}

impl Outbox {
    /// Messages of at most `maxlen` bytes for `syncid`; `None` when
    /// `maxlen` holds no entry at all.
    pub fn new(syncid: u8, maxlen: usize) -> Option<Outbox> {
        let smallest = HEADER_LEN + super::wire::V4_LEN;
        (maxlen >= smallest).then(|| Outbox {
            syncid,
            maxlen,
            pending: Vec::new(),
            since: None,
            buf: vec![0; maxlen],
        })
    }

    /// Adds `e` at `now`; when it does not fit in the current message,
    /// that message is given to `send` first. An entry no message of
    /// `maxlen` can hold (an IPv6 entry with options in a tiny message) is
    /// refused: `false`.
    pub fn push(&mut self, e: Entry, now: Instant, send: &mut dyn FnMut(&[u8])) -> bool {
        if HEADER_LEN + e.wire_len() > self.maxlen {
            return false;
        }
        self.pending.push(e);
        if !self.encode() {
            self.pending.pop();
            self.flush(send);
            self.pending.push(e);
        }
        self.since.get_or_insert(now);
        true
    }

    /// Sends the current message if its first entry is `FLUSH_AFTER` old.
    pub fn tick(&mut self, now: Instant, send: &mut dyn FnMut(&[u8])) {
        if self
            .since
            .is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER)
        {
            self.flush(send);
        }
    }

    /// Sends the current message, if it holds anything.
    pub fn flush(&mut self, send: &mut dyn FnMut(&[u8])) {
        if self.pending.is_empty() {
            return;
        }
        let fits = self.encode();
        debug_assert!(fits, "pending entries always fit");
        let n = self.encoded_len();
        send(&self.buf[..n]);
        self.pending.clear();
        self.since = None;
    }

    /// When the current message must go out at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + FLUSH_AFTER)
    }

    /// Entries waiting in the current message.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Encodes the pending entries into `buf`: whether they all fit.
    fn encode(&mut self) -> bool {
        let Some(mut b) = Builder::new(&mut self.buf, self.syncid, self.maxlen) else {
            return false;
        };
        for e in &self.pending {
            match b.push(e) {
                Ok(()) => {}
                Err(EncodeError::Full) => return false,
                // A mixed-family entry is the caller's bug; it is left out.
                Err(EncodeError::MixedFamily) => {}
            }
        }
        true
    }

    fn encoded_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{IPPROTO_TCP, Message, flags};
    use super::*;

    fn entry(cport: u16) -> Entry {
        Entry {
            protocol: IPPROTO_TCP,
            flags: flags::DROUTE,
            state: 1,
            caddr: "198.18.0.2".parse().unwrap(),
            cport,
            vaddr: "198.18.1.1".parse().unwrap(),
            vport: 80,
            daddr: "198.18.2.11".parse().unwrap(),
            dport: 80,
            fwmark: 0,
            timeout: 900,
            seq: None,
        }
    }

    /// Messages are filled to `maxlen`, none is larger, every entry goes
    /// out once and in order, and a message that is not full waits for
    /// the flush time.
    #[test]
    fn messages_fill_to_maxlen_and_flush_after_two_seconds() {
        let maxlen = 8 + 36 * 10 + 20;
        let mut o = Outbox::new(3, maxlen).unwrap();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let t0 = Instant::now();
        for i in 0..25 {
            assert!(o.push(entry(i), t0, &mut |m| sent.push(m.to_vec())));
        }
        assert_eq!(sent.len(), 2, "two full messages of 10");
        assert_eq!(o.len(), 5);
        o.tick(t0 + Duration::from_millis(1999), &mut |m| {
            sent.push(m.to_vec())
        });
        assert_eq!(sent.len(), 2, "not yet");
        assert_eq!(o.deadline(), Some(t0 + FLUSH_AFTER));
        o.tick(t0 + FLUSH_AFTER, &mut |m| sent.push(m.to_vec()));
        assert_eq!(sent.len(), 3);
        assert!(o.is_empty() && o.deadline().is_none());
        let mut ports = Vec::new();
        for m in &sent {
            assert!(m.len() <= maxlen);
            let msg = Message::new_checked(m).unwrap();
            assert_eq!(msg.syncid(), 3);
            ports.extend(msg.entries().map(|e| e.unwrap().cport));
        }
        assert_eq!(ports, (0..25).collect::<Vec<u16>>());
        assert_eq!(
            sent.iter().map(|m| m.len()).collect::<Vec<_>>(),
            [368, 368, 188]
        );
    }

    #[test]
    fn a_maxlen_without_room_for_an_entry_is_refused() {
        assert!(Outbox::new(0, 8 + 35).is_none());
        let mut o = Outbox::new(0, 8 + 36).unwrap();
        let mut v6 = entry(1);
        v6.caddr = "2001:db8::2".parse().unwrap();
        v6.vaddr = "2001:db8::1".parse().unwrap();
        v6.daddr = "2001:db8::3".parse().unwrap();
        assert!(!o.push(v6, Instant::now(), &mut |_| {}));
        assert!(o.push(entry(1), Instant::now(), &mut |_| {}));
    }
}
