use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;

use rustix::event::{PollFd, PollFlags};

use super::*;
use crate::ctrl::proto::{Reply, encode_request};

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdpvs-srv-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `server` on a thread the way the daemon will: poll(2) on its
/// descriptor, then `poll`. Every request is answered `Done`.
fn serve(mut server: ControlServer, stop: Arc<AtomicBool>) -> thread::JoinHandle<ControlServer> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(&server, PollFlags::IN)];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
            server.poll(&mut |_req| Response::Ok(Reply::Done).into());
        }
        server
    })
}

fn ask(stream: &mut UnixStream, bytes: &[u8]) -> String {
    stream.write_all(bytes).unwrap();
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn done() -> String {
    String::from_utf8(proto::encode_response(&Response::Ok(Reply::Done))).unwrap()
}

/// Whether the server closes the connection (rather than the read
/// timing out).
fn closed(stream: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).is_ok()
}

#[test]
fn the_socket_is_private_and_survives_bad_clients() {
    let dir = TempDir::new("bad");
    let path = dir.0.join("sub/ctl.sock");
    let server = ControlServer::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = serve(server, Arc::clone(&stop));

    // A good client, kept open across the bad ones.
    let mut good = connect(&path);
    assert_eq!(ask(&mut good, &encode_request(&Request::Clear)), done());

    // Garbage: an error response, then the connection closes.
    let mut garbage = connect(&path);
    let answer = ask(&mut garbage, b"GET / HTTP/1.0\n");
    match proto::decode_response(answer.as_bytes()).unwrap() {
        Response::Err { message, status } => {
            assert!(message.starts_with("malformed message"), "{message}");
            assert_eq!(status, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(closed(&mut garbage));

    // An over-long line: refused before it is all sent.
    let mut long = connect(&path);
    long.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let big = vec![b'x'; MAX_REQUEST + 1];
    let _ = long.write_all(&big); // the server may close while we write
    let mut line = String::new();
    BufReader::new(long.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("request longer than 65536 bytes"), "{line}");

    // Half a request, then a hang-up; and a client that never reads.
    let mut half = connect(&path);
    half.write_all(&encode_request(&Request::Clear)[..10])
        .unwrap();
    drop(half);
    let mut silent = connect(&path);
    silent.write_all(&encode_request(&Request::Clear)).unwrap();

    // Two requests in one write: both answered, in order.
    let two = [
        encode_request(&Request::Clear),
        encode_request(&Request::Save),
    ]
    .concat();
    good.write_all(&two).unwrap();
    let mut r = BufReader::new(good.try_clone().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, done());
    }
    // And a fresh client still gets served.
    let mut again = connect(&path);
    assert_eq!(ask(&mut again, &encode_request(&Request::Clear)), done());

    stop.store(true, Ordering::Relaxed);
    let server = handle.join().unwrap();
    drop(silent);
    drop(server);
    assert!(!path.exists(), "the socket file is removed on drop");
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.0.join("ctl.sock");
    let first = ControlServer::bind(&path).unwrap();
    let e = ControlServer::bind(&path).err().expect("a second daemon");
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(path.exists(), "the live socket is left alone");

    // A socket file nobody listens on: what a killed daemon leaves.
    drop(first);
    let stale = UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());
    let server = ControlServer::bind(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = serve(server, Arc::clone(&stop));
    let mut c = connect(&path);
    assert_eq!(ask(&mut c, &encode_request(&Request::Clear)), done());
    stop.store(true, Ordering::Relaxed);
    drop(handle.join().unwrap());

    // Never a file that is not a socket.
    std::fs::write(&path, "not a socket").unwrap();
    let e = ControlServer::bind(&path).err().expect("not a socket");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn the_descriptor_is_quiet_when_there_is_nothing_to_do() {
    let dir = TempDir::new("quiet");
    let path = dir.0.join("ctl.sock");
    let mut server = ControlServer::bind(&path).unwrap();
    let ready = |server: &ControlServer| {
        let mut fds = [PollFd::new(server, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
    };
    assert!(!ready(&server));
    let mut c = connect(&path);
    assert!(ready(&server), "a connection waiting to be accepted");
    server.poll(&mut |_| Response::Ok(Reply::Done).into());
    assert_eq!(server.clients(), 1);
    assert!(!ready(&server), "accepted, nothing sent yet");
    c.write_all(&encode_request(&Request::Clear)).unwrap();
    assert!(ready(&server), "a request waiting");
    server.poll(&mut |_| Response::Ok(Reply::Done).into());
    assert!(!ready(&server), "answered");
    let mut line = String::new();
    BufReader::new(c.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, done());
    drop(c);
    assert!(ready(&server), "a hang-up to notice");
    server.poll(&mut |_| Response::Ok(Reply::Done).into());
    assert_eq!(server.clients(), 0);
    assert!(!ready(&server));
}
