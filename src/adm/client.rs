//! The client end of the control socket: requests, each with its answer
//! (a `-L -c` answer's lines gathered into one reply).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::ctrl::proto::{self, MAX_REQUEST, MAX_RESPONSE, Reply, Request, Response};

use super::invocation::AdmError;

/// How long `xdpvsadm` waits for the daemon's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `req` to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Response, AdmError> {
    call_all(socket, std::slice::from_ref(req))
}

/// Sends `reqs` in order on one connection, each once the previous one is
/// answered; returns the first answer that is an error, or the last one.
pub fn call_all(socket: &Path, reqs: &[Request]) -> Result<Response, AdmError> {
    let down = |what: &str, e: std::io::Error| AdmError {
        message: format!(
            "Can't {what} the xdpvs control socket {}: {e}; is the xdpvs daemon running (and are you allowed to use its socket)?",
            socket.display()
        ),
        status: 2,
    };
    let s = UnixStream::connect(socket).map_err(|e| down("connect to", e))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(|e| down("use", e))?;
    let mut reader = BufReader::new(s.try_clone().map_err(|e| down("use", e))?);
    let mut writer = s;
    let mut answer = Response::Ok(Reply::Done);
    for req in reqs {
        writer
            .write_all(&proto::encode_request(req))
            .map_err(|e| down("write to", e))?;
        // A `-c` answer comes in parts: gathered into one reply.
        let mut conns = Vec::new();
        answer = loop {
            let mut line = Vec::new();
            (&mut reader)
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
            let r = proto::decode_response(&line).map_err(|e| AdmError {
                message: format!("bad answer from {}: {e}", socket.display()),
                status: 2,
            })?;
            match r {
                Response::Ok(Reply::ConnsPart(part)) => conns.extend(part),
                Response::Ok(Reply::Conns(last)) => {
                    conns.extend(last);
                    break Response::Ok(Reply::Conns(conns));
                }
                other => break other,
            }
        };
        if let Response::Err { .. } = answer {
            break;
        }
    }
    Ok(answer)
}

/// A `-R` batch as the requests that carry it: one [`Request::Restore`]
/// when it fits a request line, else [`Request::RestorePart`]s of about
/// half a line each followed by the `Restore` of the last edits (the daemon
/// applies the whole batch, all or none, when that arrives).
pub fn restore_requests(edits: Vec<Request>) -> Vec<Request> {
    let budget = MAX_REQUEST / 2;
    // The envelope: `{"version":1,"request":{"restore_part":[` … `]}}\n`.
    let overhead = 64;
    let mut parts: Vec<Vec<Request>> = vec![Vec::new()];
    let mut size = overhead;
    for e in edits {
        let len = serde_json::to_vec(&e).map_or(0, |v| v.len()) + 1;
        let last = parts.last_mut().expect("never empty");
        if !last.is_empty() && size + len > budget {
            parts.push(Vec::new());
            size = overhead;
        }
        size += len;
        parts.last_mut().expect("never empty").push(e);
    }
    let last = parts.pop().expect("never empty");
    let mut out: Vec<Request> = parts.into_iter().map(Request::RestorePart).collect();
    out.push(Request::Restore(last));
    out
}
