//! The HTTP endpoint of `[metrics] listen`: a thread of its own that
//! speaks just enough HTTP/1.1 for a Prometheus scrape, and asks the
//! control thread for the page.
//!
//! The thread owns the listening socket and every byte of network I/O, so
//! a slow or hostile client can delay only other scrapes, never the
//! control thread (and never a worker). For each `GET /metrics` it sends
//! the control thread a one-shot channel ([`MetricsServer::answer`] picks
//! them up on every turn of the control loop, at most 20 ms apart) and
//! waits up to [`RENDER_TIMEOUT`] for the text; a control thread that does
//! not answer in time gets the client a 503.
//!
//! The parser is strict and small: one request per connection (the answer
//! says `Connection: close`), a request head of at most [`MAX_HEAD`] bytes
//! read within [`CLIENT_TIMEOUT`], a request line `METHOD TARGET
//! HTTP/1.x`. `GET` and `HEAD` of `/metrics` (any query string) are
//! answered 200; `/` gets a line pointing there; other targets 404, other
//! methods 405, a head that is too long 431, anything that is not HTTP/1
//! 400 or 505. A request body is never read. Clients are served one at a
//! time, each bounded in time, so a backlog can wait but cannot grow
//! without bound (the kernel's listen backlog holds it).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ctrl::metrics::CONTENT_TYPE;

/// Longest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send its request head, and to take the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a scrape waits for the control thread's text.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the thread looks at its stop flag while no client comes.
const STOP_POLL_MS: i32 = 100;

/// A scrape the HTTP thread waits on: the control thread sends the text.
type Ask = mpsc::SyncSender<String>;

/// The running endpoint. Dropping it stops and joins the thread and
/// closes the socket.
pub struct MetricsServer {
    addr: SocketAddr,
    asks: mpsc::Receiver<Ask>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` and starts the thread, which first runs `init`
    /// (the daemon gives it its capabilities up: serving HTTP needs none,
    /// and capabilities are per thread). An `init` that fails fails the
    /// bind, and no thread is left running.
    pub fn bind(
        addr: SocketAddr,
        init: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, asks) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("xdpvs-metrics".to_owned())
            .spawn(move || {
                let started = init();
                let ok = started.is_ok();
                let _ = ready_tx.send(started);
                if ok {
                    serve(&listener, &tx, &flag);
                }
            })?;
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other("the metrics thread ended at start"));
            }
        }
        Ok(MetricsServer {
            addr,
            asks,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, if `bind` was given 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the scrapes waiting, if any, with one rendering; returns
    /// how many. Called by the control thread on every turn of its loop.
    pub fn answer(&self, render: impl FnOnce() -> String) -> usize {
        let waiting: Vec<Ask> = self.asks.try_iter().collect();
        if waiting.is_empty() {
            return 0;
        }
        let text = render();
        for ask in &waiting {
            // A client whose wait ended has hung up: nothing to do.
            let _ = ask.try_send(text.clone());
        }
        waiting.len()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, asks: &mpsc::Sender<Ask>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // Errors end this client only.
                let _ = client(stream, asks);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let fd = listener.as_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: i64::from(STOP_POLL_MS) * 1_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
            }
            // ECONNABORTED and the like: the next client.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics { head: bool },
    Index { head: bool },
    Status(u16),
}

/// Reads one request head and answers it.
fn client(mut stream: TcpStream, asks: &mpsc::Sender<Ask>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let route = match read_head(&mut stream)? {
        Some(head) => route(&head),
        None => Route::Status(431),
    };
    match route {
        Route::Metrics { head } => {
            let (tx, rx) = mpsc::sync_channel(1);
            let text = asks
                .send(tx)
                .ok()
                .and_then(|()| rx.recv_timeout(RENDER_TIMEOUT).ok());
            match text {
                Some(text) => respond(&mut stream, 200, CONTENT_TYPE, &text, head),
                None => respond(&mut stream, 503, "text/plain", "not ready\n", head),
            }
        }
        Route::Index { head } => respond(
            &mut stream,
            200,
            "text/plain",
            "xdpvs: metrics at /metrics\n",
            head,
        ),
        Route::Status(code) => respond(
            &mut stream,
            code,
            "text/plain",
            &format!("{}\n", reason(code)),
            false,
        ),
    }
}

/// The request head, up to its blank line; `None` if it is longer than
/// [`MAX_HEAD`]. A client that is too slow or hangs up is an error.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Judges a request head (without its blank line).
fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::Status(400);
    };
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Status(400);
    };
    if !version.starts_with("HTTP/") {
        return Route::Status(400);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Route::Status(505);
    }
    // Each header a `name: value` line, names without spaces (RFC 9112
    // forbids whitespace before the colon).
    for h in lines {
        match h.split_once(':') {
            Some((name, _)) if !name.is_empty() && !name.contains([' ', '\t']) => {}
            _ => return Route::Status(400),
        }
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Route::Status(400);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::Status(405),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match path {
        "/metrics" => Route::Metrics { head },
        "/" => Route::Index { head },
        p if p.starts_with('/') => Route::Status(404),
        _ => Route::Status(400),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let header = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    // Our side first, so the client sees the end before the close.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(server: &MetricsServer, request: &[u8]) -> String {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        // Answer the scrape from "the control thread" while reading.
        let deadline = Instant::now() + Duration::from_secs(10);
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            server.answer(|| "xdpvs_up 1\n".to_owned());
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push_str(std::str::from_utf8(&buf[..n]).unwrap()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no answer: {out:?}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    fn server() -> MetricsServer {
        MetricsServer::bind("127.0.0.1:0".parse().unwrap(), || Ok(())).unwrap()
    }

    #[test]
    fn a_scrape_gets_the_control_threads_text() {
        let s = server();
        let out = ask(
            &s,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
            "{out}"
        );
        assert!(out.contains("Content-Length: 11\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nxdpvs_up 1\n"), "{out}");
        let out = ask(&s, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn anything_else_is_refused_with_its_status() {
        let s = server();
        for (req, status) in [
            (&b"GET /other HTTP/1.1\r\n\r\n"[..], "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"GET /metrics HTTP/2.0\r\n\r\n", "505"),
            (b"GET /metrics\r\n\r\n", "400"),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", "400"),
            (b"GET /metrics HTTP/1.1\r\nBad header\r\n\r\n", "400"),
            (b"get /metrics HTTP/1.1\r\n\r\n", "400"),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", "400"),
        ] {
            let out = ask(&s, req);
            assert!(
                out.starts_with(&format!("HTTP/1.1 {status} ")),
                "{:?}: {out}",
                String::from_utf8_lossy(req)
            );
        }
        let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while long.len() <= MAX_HEAD + 1024 {
            long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        long.extend_from_slice(b"\r\n");
        assert!(ask(&s, &long).starts_with("HTTP/1.1 431 "));
        // Still serving after all that.
        assert!(ask(&s, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }

    #[test]
    fn a_silent_client_does_not_stop_the_others_for_long() {
        let s = server();
        // Connects and says nothing; the next scrape waits at most
        // CLIENT_TIMEOUT for it.
        let _silent = TcpStream::connect(s.local_addr()).unwrap();
        let started = Instant::now();
        let out = ask(&s, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
        assert!(started.elapsed() < CLIENT_TIMEOUT + Duration::from_secs(4));
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1"),
            Route::Metrics { head: false }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::Index { head: false });
        assert_eq!(route(b"GET metrics HTTP/1.1"), Route::Status(400));
        assert_eq!(route(b"DELETE /metrics HTTP/1.1"), Route::Status(405));
    }
}
