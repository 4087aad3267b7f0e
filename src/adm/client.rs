//! The client end of the control socket: one request, one answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::ctrl::proto::{self, MAX_RESPONSE, Request, Response};

use super::invocation::AdmError;

/// How long `xdpvsadm` waits for the daemon's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `req` to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Response, AdmError> {
    let down = |what: &str, e: std::io::Error| AdmError {
        message: format!(
            "Can't {what} the xdpvs control socket {}: {e}; is the xdpvs daemon running (and are you allowed to use its socket)?",
            socket.display()
        ),
        status: 2,
    };
    let mut s = UnixStream::connect(socket).map_err(|e| down("connect to", e))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(|e| down("use", e))?;
    s.write_all(&proto::encode_request(req))
        .map_err(|e| down("write to", e))?;
    let mut line = Vec::new();
    BufReader::new(s)
        .take(MAX_RESPONSE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| down("read from", e))?;
    if line.is_empty() {
        return Err(AdmError {
            message: format!(
                "the xdpvs daemon at {} closed the connection without answering",
                socket.display()
            ),
            status: 2,
        });
    }
    proto::decode_response(&line).map_err(|e| AdmError {
        message: format!("bad answer from {}: {e}", socket.display()),
        status: 2,
    })
}
