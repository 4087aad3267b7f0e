//! The control protocol and the command handler (target `ctrl`).
//!
//! The input is lines of the control protocol (what `xdpvsadm` writes on
//! the socket), decoded with `ctrl::proto::decode_request` and applied in
//! order to one `Control` holding a small table. Checked: no panic; a
//! request that is refused leaves the table as it was (its `-S` reply,
//! the timeouts and the `-L` listing compared before and after); every
//! response encodes and decodes to itself.

use std::time::Instant;

use xdpvs::ctrl::control::{Control, NoConns};
use xdpvs::ctrl::proto::{Request, Response, decode_request, decode_response, encode_response};

/// Requests per input at most.
const MAX_REQUESTS: usize = 64;

/// What a refused request must not change.
fn state(c: &mut Control) -> (Response, Response) {
    (
        c.handle(Request::Save, &mut NoConns),
        c.handle(Request::GetTimeouts, &mut NoConns),
    )
}

pub fn run(data: &[u8]) {
    let mut c = Control::new(crate::pipeline::table(), 4096, Instant::now());
    for line in data.split(|&b| b == b'\n').take(MAX_REQUESTS) {
        let Ok(req) = decode_request(line) else {
            continue;
        };
        let before = state(&mut c);
        let resp = c.handle(req.clone(), &mut NoConns);
        let enc = encode_response(&resp);
        let enc = enc.strip_suffix(b"\n").unwrap_or(&enc);
        assert_eq!(
            decode_response(enc).as_ref(),
            Ok(&resp),
            "response round trip"
        );
        if let Response::Err { .. } = resp {
            assert_eq!(state(&mut c), before, "a refused {req:?} changed the table");
        }
    }
}
