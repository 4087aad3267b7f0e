//! The control socket, served from the daemon's control thread without
//! ever blocking it.
//!
//! Every socket is non-blocking and every client has its own buffers: a
//! client that sends slowly, never reads its answer, sends garbage or
//! hangs up mid-request costs only its own connection. A request is read
//! only once the previous answer has been written, so one client holds at
//! most one request and one answer; a line over [`MAX_REQUEST`] or one that
//! is not a request gets an error response and the connection is closed
//! once the response is written.
//!
//! A `-R` batch too large for one line arrives as
//! [`Request::RestorePart`]s before its [`Request::Restore`]: the server
//! keeps the parts with the client (at most [`MAX_RESTORE`] edits), answers
//! each at once, and hands the handler one `Restore` of the whole batch, so
//! the batch is still applied all or none. Another request in between, or
//! the client's end, discards the parts.
//!
//! For the caller's poll(2) there is one descriptor ([`ControlServer::as_raw_fd`]):
//! an epoll instance holding the listening socket and every client, each
//! registered for what the server waits on from it (a request, or room to
//! write the answer), so the descriptor is readable exactly when
//! [`ControlServer::poll`] has work.
//!
//! The socket file is created mode 0600 before the socket listens (no
//! window in which anyone else may connect), owned by the daemon's user;
//! it is removed when the server is dropped, if it is still ours.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::fs::Mode;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::ctrl::proto::{self, ConnView, MAX_REQUEST, MAX_RESTORE, Reply, Request, Response};

/// What a handler gives the server for a request.
pub enum Answer {
    /// One response line.
    Now(Response),
    /// A `-L -c` answer, sent as [`Reply::ConnsPart`] lines as the stream
    /// yields entries, then one [`Reply::Conns`] line.
    Stream(Box<dyn ConnStream>),
}

impl From<Response> for Answer {
    fn from(r: Response) -> Answer {
        Answer::Now(r)
    }
}

/// Connection entries that arrive over time (the workers' tables, a slice
/// at a time).
pub trait ConnStream: Send {
    /// What has arrived, without waiting long (a millisecond or two at
    /// most: it runs on the control thread).
    fn poll(&mut self) -> StreamPoll;
}

/// One step of a [`ConnStream`].
pub enum StreamPoll {
    /// Entries; at most [`proto::CONNS_PER_LINE`] of them.
    Part(Vec<ConnView>),
    /// Nothing yet: ask again on the next poll.
    Pending,
    /// Every entry has been given.
    End,
}

/// Clients served at once; more are accepted and closed at once, so that
/// a waiting backlog cannot keep the descriptor readable.
pub const MAX_CLIENTS: usize = 32;

/// A client that has neither sent a whole request nor read its answer in
/// this long is dropped (checked on each [`ControlServer::poll`]).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests served per client per [`ControlServer::poll`], so that one busy
/// client cannot starve the others or the caller.
const REQUESTS_PER_POLL: usize = 8;

/// epoll token of the listening socket; clients count from 1.
const LISTENER: u64 = 0;

struct Client {
    stream: UnixStream,
    /// Bytes of the request being received.
    input: Vec<u8>,
    /// The answer being sent, and how much of it is sent.
    output: Vec<u8>,
    sent: usize,
    /// The [`Request::RestorePart`]s received so far.
    restore: Vec<Request>,
    /// A `-L -c` answer still being sent; no request is read meanwhile.
    listing: Option<Box<dyn ConnStream>>,
    /// Close once `output` is sent: after an error response, or after the
    /// client shut down its side.
    closing: bool,
    last_active: Instant,
    interest: epoll::EventFlags,
}

/// What happened to a client in one turn.
enum Fate {
    Keep,
    Drop,
}

/// A listening control socket and its clients.
pub struct ControlServer {
    path: PathBuf,
    /// (device, inode) of the socket file we created.
    id: (u64, u64),
    listener: UnixListener,
    epoll: OwnedFd,
    clients: HashMap<u64, Client>,
    next_token: u64,
}

impl ControlServer {
    /// Listens on `path`: creates its directory if needed, refuses when
    /// another daemon answers there, replaces a stale socket file left by
    /// one that died, and never replaces anything that is not a socket.
    pub fn bind(path: &Path) -> io::Result<ControlServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        ErrorKind::AddrInUse,
                        format!("another xdpvs is already listening on {}", path.display()),
                    ));
                }
                // Nobody listens: a stale file.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::fs::remove_file(path)?,
                Err(e) => return Err(e),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }

        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
        // Until listen(2) nobody can connect, whatever the file's mode.
        let id = match rustix::fs::chmod(path, Mode::from_raw_mode(0o600))
            .map_err(io::Error::from)
            .and_then(|()| std::fs::metadata(path))
        {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        if let Err(e) = rustix::net::listen(&fd, 16) {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        let listener = UnixListener::from(fd);
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &listener,
            epoll::EventData::new_u64(LISTENER),
            epoll::EventFlags::IN,
        )?;
        Ok(ControlServer {
            path: path.to_owned(),
            id,
            listener,
            epoll,
            clients: HashMap::new(),
            next_token: LISTENER + 1,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Whether a `-L -c` answer is being sent: then [`ControlServer::poll`]
    /// has work without the descriptor saying so (the workers' slices).
    pub fn streaming(&self) -> bool {
        self.clients.values().any(|c| c.listing.is_some())
    }

    /// Accepts new clients and serves every client that is ready, calling
    /// `handler` for each whole request; returns without waiting for
    /// anything.
    pub fn poll(&mut self, handler: &mut impl FnMut(Request) -> Answer) {
        let now = Instant::now();
        self.accept(now);
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for token in tokens {
            let Some(c) = self.clients.get_mut(&token) else {
                continue;
            };
            let fate = serve(c, handler, now);
            let fate = match fate {
                Fate::Keep => {
                    let want = if c.sent < c.output.len() {
                        epoll::EventFlags::OUT
                    } else {
                        epoll::EventFlags::IN
                    };
                    if want == c.interest {
                        Fate::Keep
                    } else {
                        c.interest = want;
                        match epoll::modify(
                            &self.epoll,
                            &c.stream,
                            epoll::EventData::new_u64(token),
                            want,
                        ) {
                            Ok(()) => Fate::Keep,
                            Err(_) => Fate::Drop,
                        }
                    }
                }
                Fate::Drop => Fate::Drop,
            };
            if let Fate::Drop = fate
                && let Some(c) = self.clients.remove(&token)
            {
                let _ = epoll::delete(&self.epoll, &c.stream);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: no one waiting. Anything else (out of
                // descriptors) is retried on the next call.
                Err(_) => return,
            };
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                continue; // dropped: closed
            }
            let token = self.next_token;
            self.next_token += 1;
            let interest = epoll::EventFlags::IN;
            if epoll::add(
                &self.epoll,
                &stream,
                epoll::EventData::new_u64(token),
                interest,
            )
            .is_err()
            {
                continue;
            }
            self.clients.insert(
                token,
                Client {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    sent: 0,
                    restore: Vec::new(),
                    listing: None,
                    closing: false,
                    last_active: now,
                    interest,
                },
            );
        }
    }
}

/// One turn for one client: write what is pending, then read and answer
/// requests while the answers go out at once.
fn serve(c: &mut Client, handler: &mut impl FnMut(Request) -> Answer, now: Instant) -> Fate {
    for _ in 0..REQUESTS_PER_POLL {
        match flush(c, now) {
            Ok(true) => {}
            Ok(false) => break, // the client is slow to read: wait for room
            Err(()) => return Fate::Drop,
        }
        if let Some(listing) = c.listing.as_mut() {
            let response = match listing.poll() {
                StreamPoll::Part(entries) => Response::Ok(Reply::ConnsPart(entries)),
                StreamPoll::Pending => break,
                StreamPoll::End => {
                    c.listing = None;
                    Response::Ok(Reply::Conns(Vec::new()))
                }
            };
            c.output = proto::encode_response(&response);
            c.sent = 0;
            c.last_active = now;
            continue;
        }
        if c.closing {
            return Fate::Drop;
        }
        match next_line(c, now) {
            Ok(Some(line)) => {
                let answer = match proto::decode_request(&line) {
                    Ok(req) => restore_parts(c, req, handler),
                    Err(why) => {
                        c.closing = true;
                        Answer::Now(Response::Err {
                            message: why,
                            status: 2,
                        })
                    }
                };
                match answer {
                    Answer::Now(response) => {
                        c.output = proto::encode_response(&response);
                        c.sent = 0;
                    }
                    // Sent from the loop's head, a line at a time.
                    Answer::Stream(s) => c.listing = Some(s),
                }
            }
            // An error answer to send before closing: the loop's head
            // sends it.
            Ok(None) if !c.output.is_empty() => {}
            Ok(None) => break,
            Err(()) => return Fate::Drop,
        }
    }
    if c.closing && c.sent == c.output.len() {
        return Fate::Drop;
    }
    if now.duration_since(c.last_active) > CLIENT_TIMEOUT {
        return Fate::Drop;
    }
    Fate::Keep
}

/// Serves `req` for `c`, collecting the parts of a large `-R` batch (module
/// docs).
fn restore_parts(
    c: &mut Client,
    req: Request,
    handler: &mut impl FnMut(Request) -> Answer,
) -> Answer {
    let too_long = |c: &mut Client| {
        c.restore = Vec::new();
        c.closing = true;
        Answer::Now(Response::Err {
            message: format!("restore longer than {MAX_RESTORE} edits"),
            status: 2,
        })
    };
    match req {
        Request::RestorePart(part) => {
            if c.restore.len() + part.len() > MAX_RESTORE {
                return too_long(c);
            }
            c.restore.extend(part);
            Answer::Now(Response::Ok(Reply::Done))
        }
        Request::Restore(last) if !c.restore.is_empty() => {
            if c.restore.len() + last.len() > MAX_RESTORE {
                return too_long(c);
            }
            let mut batch = std::mem::take(&mut c.restore);
            batch.extend(last);
            handler(Request::Restore(batch))
        }
        other => {
            if !c.restore.is_empty() {
                c.restore = Vec::new();
                return Answer::Now(Response::refused(format!(
                    "{} arrived in the middle of a restore: the restore's parts were discarded, nothing of them applied",
                    crate::ctrl::control::request_name(&other)
                )));
            }
            handler(other)
        }
    }
}

/// Writes pending output; `Ok(true)` once all is written.
fn flush(c: &mut Client, now: Instant) -> Result<bool, ()> {
    while c.sent < c.output.len() {
        match c.stream.write(&c.output[c.sent..]) {
            Ok(0) => return Err(()),
            Ok(n) => {
                c.sent += n;
                c.last_active = now;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(_) => return Err(()),
        }
    }
    c.output = Vec::new();
    c.sent = 0;
    Ok(true)
}

/// The next whole request line, if one has arrived. A line too long is
/// answered with an error here and the client marked for closing.
fn next_line(c: &mut Client, now: Instant) -> Result<Option<Vec<u8>>, ()> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = c.input.iter().position(|&b| b == b'\n') {
            let rest = c.input.split_off(end + 1);
            return Ok(Some(std::mem::replace(&mut c.input, rest)));
        }
        if c.input.len() >= MAX_REQUEST {
            c.closing = true;
            c.input = Vec::new();
            c.output = proto::encode_response(&Response::Err {
                message: format!("request longer than {MAX_REQUEST} bytes"),
                status: 2,
            });
            c.sent = 0;
            return Ok(None);
        }
        // Never buffer more than one over-long request's worth.
        let room = (MAX_REQUEST - c.input.len()).min(buf.len());
        match c.stream.read(&mut buf[..room]) {
            // The client is done: answer nothing more. A request cut off
            // by the hang-up is not served.
            Ok(0) => {
                c.closing = true;
                return Ok(None);
            }
            Ok(n) => {
                c.input.extend_from_slice(&buf[..n]);
                c.last_active = now;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(_) => return Err(()),
        }
    }
}

impl AsRawFd for ControlServer {
    /// Readable when [`ControlServer::poll`] has work.
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

impl AsFd for ControlServer {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Only our own file: another daemon may have replaced it.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests;
