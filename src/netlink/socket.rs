//! One request, its whole answer: the blocking NETLINK_ROUTE exchange under
//! [`super::Netlink`].
//!
//! The socket is used by one thread for one request at a time, so a reply
//! is told apart from leftovers only by its sequence number: messages with
//! another number (answers to a request whose reader gave up on an error)
//! are skipped, never taken for the current answer.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::error::NetlinkError;

/// The kernel sends dump datagrams of at most 32 KiB (it sizes them after
/// the reader's largest buffer, capped there); twice that never truncates.
const RECV_BUF: usize = 64 * 1024;

/// How long one receive waits for the kernel's answer. The kernel answers
/// route, neighbour and address requests at once; a socket that stays
/// silent this long (a wedged kernel, a lost answer) is an error of the
/// request ([`NetlinkError::Timeout`]) rather than a control thread
/// blocked for ever. The next request skips whatever late answer comes
/// (module docs).
pub(super) const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) struct RouteSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl RouteSocket {
    /// The socket belongs to the network namespace of the calling thread
    /// at this moment, for its whole life.
    pub(super) fn open() -> io::Result<RouteSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(RECV_TIMEOUT),
        )?;
        Ok(RouteSocket {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
            out: Vec::new(),
        })
    }

    /// Sends `msg` with `flags` (NLM_F_REQUEST is added) and returns the
    /// messages of the answer: all parts of a dump (`NLM_F_DUMP`), nothing
    /// for an acknowledged change (`NLM_F_ACK`), else the one reply.
    /// A negative acknowledgement is `NetlinkError::Kernel` carrying the
    /// errno, named after `what`.
    pub(super) fn request(
        &mut self,
        what: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        self.out.clear();
        self.out.resize(req.buffer_len(), 0);
        req.serialize(&mut self.out);
        self.socket.send(&self.out, 0)?;

        let until_done = flags & NLM_F_DUMP == NLM_F_DUMP || flags & NLM_F_ACK != 0;
        let mut answer = Vec::new();
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NetlinkError::Timeout {
                        request: what,
                        after: RECV_TIMEOUT,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| NetlinkError::Protocol(format!("{what}: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Protocol(format!(
                        "{what}: zero-length message"
                    )));
                }
                off += len.next_multiple_of(4);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                let multipart = msg.header.flags & NLM_F_MULTIPART != 0;
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        answer.push(m);
                        if !until_done && !multipart {
                            return Ok(answer);
                        }
                    }
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(kernel(what, done.code));
                    }
                    NetlinkPayload::Done(_) => return Ok(answer),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(answer),
                        Some(code) => return Err(kernel(what, code.get())),
                    },
                    NetlinkPayload::Overrun(_) => {
                        return Err(NetlinkError::Protocol(format!("{what}: overrun")));
                    }
                    NetlinkPayload::Noop => {}
                    _ => {}
                }
            }
        }
    }
}

fn kernel(what: &'static str, code: i32) -> NetlinkError {
    NetlinkError::Kernel {
        request: what,
        source: io::Error::from_raw_os_error(code.abs()),
    }
}
