//! The control socket's protocol: what `xdpvsadm` asks the daemon and what
//! it answers.
//!
//! # Framing
//!
//! A Unix stream socket carrying one JSON object per line (`\n`-terminated,
//! UTF-8), request and response alternating: the client writes one request
//! line, the daemon answers with one response line, and the client may send
//! the next request on the same connection or hang up. The one exception is
//! `-L -c` ([`Request::ListConns`]): its answer is any number of
//! [`Reply::ConnsPart`] lines (each at most [`CONNS_PER_LINE`] entries)
//! followed by one [`Reply::Conns`] line, so a table of millions of
//! connections never becomes one giant line.
//!
//! A request line is at most [`MAX_REQUEST`] bytes, its newline included;
//! the daemon answers a longer one, a line that is not a request, or one of
//! another protocol version with an error response and closes the
//! connection. A response line is at most [`MAX_RESPONSE`] bytes.
//!
//! # Messages
//!
//! ```text
//! {"version":1,"request":"clear"}
//! {"version":1,"request":{"add_service":{"proto":"tcp","vip":"198.18.1.1:80",
//!   "scheduler":"wlc","persistence_timeout":0,"persistence_netmask":"255.255.255.255",
//!   "flags":0}}}
//! {"version":1,"response":{"ok":"done"}}
//! {"version":1,"response":{"err":{"message":"Service not defined","status":255}}}
//! ```
//!
//! [`Request`] and [`Response`] are the schema (serde's externally tagged
//! enums, names in snake_case). Requests mirror ipvsadm's commands; replies
//! carry data rather than text, so that `xdpvsadm` can print names instead
//! of numbers (resolving them itself, never in the daemon) and sort as
//! ipvsadm does. Every request is validated by the daemon: the socket is an
//! interface in its own right, not a private channel of `xdpvsadm`.
//!
//! `version` changes whenever a message changes incompatibly.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::config::{Forward, Protocol, SchedFlags};
/// The traffic counters of a [`ServiceView`] or [`DestView`].
pub use crate::service::Totals;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request line, newline included; anything longer is refused
/// rather than buffered. A `-R` batch larger than this travels as
/// [`Request::RestorePart`]s.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Most edits one `-R` batch may hold, all its parts together: what one
/// connection may make the daemon buffer (a few tens of MiB).
pub const MAX_RESTORE: usize = 200_000;

/// Longest response line the client accepts (a listing of every service
/// with all counters, or every connection of `-c`).
pub const MAX_RESPONSE: usize = 256 << 20;

/// Most connection entries in one line of a `-L -c` answer.
pub const CONNS_PER_LINE: usize = 8192;

/// A virtual service: `-t|-u host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceKey {
    pub proto: Protocol,
    pub vip: SocketAddr,
}

/// A virtual service's settings (`-A`, `-E`): everything ipvsadm sends.
/// As in ipvsadm, `-E` replaces all of them: what the command line leaves
/// out takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub proto: Protocol,
    pub vip: SocketAddr,
    /// `-s`.
    pub scheduler: String,
    /// `-p`, seconds; 0 = not persistent.
    pub persistence_timeout: u32,
    /// `-M`.
    pub persistence_netmask: Ipv4Addr,
    /// `-b`.
    pub flags: SchedFlags,
}

impl ServiceSpec {
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            proto: self.proto,
            vip: self.vip,
        }
    }
}

/// A real server's settings (`-a`, `-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub service: ServiceKey,
    /// `-r`.
    pub addr: SocketAddr,
    /// `-g`, `-i`, `-m`.
    pub forward: Forward,
    /// `-w`.
    pub weight: u32,
    /// `-x`; 0 = no limit.
    pub upper_threshold: u32,
    /// `-y`; 0 = no limit.
    pub lower_threshold: u32,
}

/// What a client asks; one per ipvsadm command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`.
    EditService(ServiceSpec),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddDest(DestSpec),
    /// `-e`.
    EditDest(DestSpec),
    /// `-d`.
    DelDest {
        service: ServiceKey,
        dest: SocketAddr,
    },
    /// `-L` of every service ([`Reply::Table`]), or of one
    /// ([`Reply::Service`]).
    List { service: Option<ServiceKey> },
    /// `-S` ([`Reply::Table`]).
    Save,
    /// `-Z`: the counters of one service and its real servers, or of all.
    Zero { service: Option<ServiceKey> },
    /// `--set tcp tcpfin udp`; 0 leaves a timeout unchanged.
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// `-L --timeout` ([`Reply::Timeouts`]).
    GetTimeouts,
    /// `-L -c` ([`Reply::Conns`]).
    ListConns,
    /// `--counters` ([`Reply::Counters`]): every worker's statistics.
    Counters,
    /// `-R`: the requests in order, applied all or none. Only table edits
    /// (`-A -E -D -C -a -e -d --set`) may appear in it. When
    /// [`Request::RestorePart`]s came before it on the same connection, the
    /// batch is theirs followed by its own.
    Restore(Vec<Request>),
    /// The first edits of a `-R` batch too large for one line, kept by the
    /// daemon for this connection (answered [`Reply::Done`], nothing
    /// applied yet) until the [`Request::Restore`] that ends the batch; at
    /// most [`MAX_RESTORE`] edits in all. Any other request, or the
    /// connection's end, discards what was kept: nothing of it is applied.
    RestorePart(Vec<Request>),
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    /// `message` is one line, ipvsadm's wording where ipvsadm has one;
    /// `status` is the exit status `xdpvsadm` ends with.
    Err {
        message: String,
        status: u8,
    },
}

/// What a successful request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A change was applied.
    Done,
    /// Every service, in the table's order; `size` is the connection
    /// table's (`(size=N)`).
    Table {
        size: u32,
        services: Vec<ServiceView>,
    },
    /// One service.
    Service(Box<ServiceView>),
    /// `--timeout`, in seconds.
    Timeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// Connection entries (`-c`): the last line of the answer, with the
    /// entries the [`Reply::ConnsPart`] lines before it did not carry.
    Conns(Vec<ConnView>),
    /// Some of the connection entries of a `-c` answer; more lines follow.
    ConnsPart(Vec<ConnView>),
    /// Every counter of the workers' statistics, in their order.
    Counters(Vec<CounterView>),
}

/// One virtual service as `-L` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub proto: Protocol,
    pub vip: SocketAddr,
    pub scheduler: String,
    pub flags: SchedFlags,
    /// Seconds; 0 = not persistent (no `-p`).
    pub persistence_timeout: u32,
    /// `-M`; `255.255.255.255` (a /32) is the default and is not printed.
    /// ipvsadm shows it for IPv4 services only.
    pub persistence_netmask: Ipv4Addr,
    pub stats: Totals,
    pub rates: Rates,
    pub dests: Vec<DestView>,
}

/// One real server of a [`ServiceView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestView {
    pub addr: SocketAddr,
    pub forward: Forward,
    pub weight: u32,
    /// `-x`; 0 = no limit.
    pub upper_threshold: u32,
    /// `-y`; 0 = no limit.
    pub lower_threshold: u32,
    pub active: u32,
    pub inactive: u32,
    /// Persistence templates pointing at this server.
    pub persistent: u32,
    pub stats: Totals,
    pub rates: Rates,
}

/// Per-second rates as IPVS estimates them (`--rate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One counter of the workers' statistics (`crate::stats`): its value
/// in each worker, in worker order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterView {
    pub name: String,
    pub help: String,
    /// A level (table occupancy), not a count that only grows.
    pub gauge: bool,
    pub workers: Vec<u64>,
}

/// One connection entry as `ipvsadm -L -c` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    pub proto: Protocol,
    pub client: SocketAddr,
    pub virt: SocketAddr,
    pub dest: SocketAddr,
    /// As `/proc/net/ip_vs_conn` names it: [`crate::conn::TcpState::name`]
    /// for TCP (templates included), `UDP` for UDP.
    pub state: String,
    /// Seconds until it expires.
    pub expires: u32,
}

impl Response {
    /// An error with ipvsadm's exit status for a refused operation (its
    /// `main` returns -1).
    pub fn refused(message: impl Into<String>) -> Response {
        Response::Err {
            message: message.into(),
            status: 255,
        }
    }
}

#[derive(Serialize)]
struct Out<'a, T> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct RequestBody<'a> {
    request: &'a Request,
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    response: &'a Response,
}

/// A message's envelope; the body is kept as text and decoded into its
/// type afterwards, without building a JSON tree first (a `-c` listing's
/// lines carry thousands of entries each: the tree cost more than the
/// entries).
#[derive(Deserialize)]
struct In<'a> {
    version: u32,
    #[serde(default, borrow)]
    request: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    response: Option<&'a serde_json::value::RawValue>,
}

fn line<T: Serialize>(body: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(&Out {
        version: VERSION,
        body,
    })
    .expect("protocol messages always serialize");
    v.push(b'\n');
    v
}

/// A request as one line, newline included.
pub fn encode_request(req: &Request) -> Vec<u8> {
    line(&RequestBody { request: req })
}

/// A response as one line, newline included.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    line(&ResponseBody { response: resp })
}

fn envelope(line: &[u8]) -> Result<In<'_>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_owned())?;
    let msg: In = serde_json::from_str(text.trim_end_matches(['\n', '\r']))
        .map_err(|e| format!("malformed message: {e}"))?;
    if msg.version != VERSION {
        return Err(format!(
            "protocol version {} is not supported (this side speaks {VERSION})",
            msg.version
        ));
    }
    Ok(msg)
}

/// A request line (its newline optional), or why it is not one.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    let value = envelope(line)?
        .request
        .ok_or_else(|| "malformed message: no \"request\"".to_owned())?;
    serde_json::from_str(value.get()).map_err(|e| format!("malformed request: {e}"))
}

/// A response line (its newline optional), or why it is not one.
pub fn decode_response(line: &[u8]) -> Result<Response, String> {
    let value = envelope(line)?
        .response
        .ok_or_else(|| "malformed message: no \"response\"".to_owned())?;
    serde_json::from_str(value.get()).map_err(|e| format!("malformed response: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_documented() {
        let add = Request::AddService(ServiceSpec {
            proto: Protocol::Tcp,
            vip: "198.18.1.1:80".parse().unwrap(),
            scheduler: "wlc".into(),
            persistence_timeout: 0,
            persistence_netmask: Ipv4Addr::BROADCAST,
            flags: SchedFlags(0),
        });
        let line = encode_request(&add);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"version\":1,\"request\":{\"add_service\":{\"proto\":\"tcp\",\
             \"vip\":\"198.18.1.1:80\",\"scheduler\":\"wlc\",\"persistence_timeout\":0,\
             \"persistence_netmask\":\"255.255.255.255\",\"flags\":0}}}\n"
        );
        assert_eq!(decode_request(&line), Ok(add));
        assert_eq!(
            decode_request(b"{\"version\":1,\"request\":\"clear\"}"),
            Ok(Request::Clear)
        );
        let err = Response::refused("Service not defined");
        let line = encode_response(&err);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"version\":1,\"response\":{\"err\":{\"message\":\"Service not defined\",\"status\":255}}}\n"
        );
        assert_eq!(decode_response(&line), Ok(err));
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        for (line, why) in [
            (&b"hello"[..], "malformed message"),
            (b"{\"version\":2,\"request\":\"clear\"}", "version 2"),
            (b"{\"version\":1}", "no \"request\""),
            (b"{\"version\":1,\"request\":\"nope\"}", "malformed request"),
            (b"{\"version\":1,\"request\":\"cl\xffear\"}", "not UTF-8"),
        ] {
            let e = decode_request(line).unwrap_err();
            assert!(e.contains(why), "{e:?} should mention {why:?}");
        }
    }
}
