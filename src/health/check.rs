//! One attempt of a check, whatever its kind: the shared parts (the
//! address to probe, the source to bind, the time bound) and the dispatch
//! to the kind's file.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{dns, http, script, udp, via};
use crate::config::{CheckConfig, CheckKind, Via};

/// A passed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// misc_dynamic's weight.
    pub weight: Option<u32>,
    /// What passed, for the verdict ("connected", "status 200").
    pub detail: String,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Outcome {
        Outcome {
            weight: None,
            detail: detail.into(),
        }
    }
}

/// What a check prepares once and reuses at every attempt.
pub struct Context {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub regexes: Vec<Option<regex::bytes::Regex>>,
    /// `via = "forwarding"` to a DR or TUN real server.
    pub forwarding: Option<Forwarding>,
}

/// A check's probe through the forwarding path ([`super::via`]): what it
/// follows, and the resolved probe it keeps between attempts.
pub struct Forwarding {
    via: via::Via,
    cached: Arc<std::sync::Mutex<via::Cached>>,
}

impl Forwarding {
    /// For check `cfg` of the real server `real` of the service on `vip`
    /// (`(proto, vip, real)`), reached by `forward` along `dp`, when it
    /// goes through the forwarding path: `via = "forwarding"` to a DR or
    /// TUN real server (NAT: `None`, the direct check).
    pub fn of(
        dp: &via::Path,
        (_, vip, real): (crate::config::Protocol, SocketAddr, SocketAddr),
        forward: crate::config::Forward,
        cfg: &CheckConfig,
    ) -> Option<Forwarding> {
        if cfg.via != Via::Forwarding || !via::forwards(forward) {
            return None;
        }
        Some(Forwarding {
            via: via::Via::new(dp, vip, real, forward, cfg),
            cached: Arc::default(),
        })
    }

    /// One probe, in the runtime's blocking pool (it blocks on its
    /// socket, bounded by `timeout`).
    async fn probe(&self, timeout: std::time::Duration) -> Result<Outcome, String> {
        let (v, cached) = (self.via.clone(), self.cached.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
            c.run(&v, timeout)
        })
        .await
        .map_err(|e| format!("forwarding-path probe: {e}"))??;
        Ok(Outcome::pass("SYN-ACK through the forwarding path"))
    }
}

impl Context {
    pub fn new(cfg: &CheckConfig, _real: SocketAddr) -> Result<Context, String> {
        let mut ctx = Context {
            tls: None,
            regexes: Vec::new(),
            forwarding: None,
        };
        match &cfg.kind {
            CheckKind::Http(h) | CheckKind::Https(h) => {
                for url in &h.urls {
                    let re = url
                        .regex
                        .as_deref()
                        .map(regex::bytes::Regex::new)
                        .transpose()
                        .map_err(|e| format!("regex: {e}"))?;
                    ctx.regexes.push(re);
                }
                if let CheckKind::Https(h) = &cfg.kind {
                    ctx.tls = Some(http::tls_config(h)?);
                }
            }
            _ => {}
        }
        Ok(ctx)
    }
}

/// keepalived's name of the check, with its target: "TCP_CHECK
/// 198.18.2.11:80", "HTTP_GET 198.18.2.11:80/health", "MISC_CHECK /bin/x".
pub fn name(cfg: &CheckConfig, _real: SocketAddr) -> String {
    let host = match cfg.connect_ip.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, cfg.connect_port).to_string(),
        Err(_) => format!("{}:{}", cfg.connect_ip, cfg.connect_port),
    };
    let via = match cfg.via {
        Via::Direct => "",
        Via::Forwarding => " via forwarding",
    };
    match &cfg.kind {
        CheckKind::Tcp => format!("TCP_CHECK {host}{via}"),
        CheckKind::Http(h) => format!("HTTP_GET {host}{}{via}", h.urls[0].path),
        CheckKind::Https(h) => format!("SSL_GET {host}{}{via}", h.urls[0].path),
        CheckKind::Script(s) => format!("MISC_CHECK {}", s.command),
        CheckKind::Udp(_) => format!("UDP_CHECK {host}{via}"),
        CheckKind::Dns(d) => format!("DNS_CHECK {host} {}{via}", d.query_name),
    }
}

/// One attempt, bounded in time.
pub async fn attempt(ctx: &Context, cfg: &CheckConfig) -> Result<Outcome, String> {
    // Through the forwarding path: a TCP check's SYN to the VIP,
    // forwarded to this real server (health::via). NAT real servers have
    // no `forwarding` and are checked directly.
    if let Some(f) = &ctx.forwarding {
        return match cfg.kind {
            CheckKind::Tcp => f.probe(cfg.connect_timeout).await,
            _ => Err(format!(
                "via = \"forwarding\" probes TCP only, not kind = \"{}\"",
                cfg.kind.config_name()
            )),
        };
    }
    let deadline = Instant::now() + cfg.connect_timeout;
    match &cfg.kind {
        CheckKind::Script(s) => script::run(s).await,
        kind => {
            let work = async {
                match kind {
                    CheckKind::Tcp => {
                        let stream = connect(cfg).await?;
                        // Closed with a RST rather than leaving TIME_WAITs
                        // behind at thousands of checks a second.
                        let _ = stream.set_zero_linger();
                        Ok(Outcome::pass("connected"))
                    }
                    CheckKind::Http(h) => http::get(ctx, cfg, h, false).await,
                    CheckKind::Https(h) => http::get(ctx, cfg, h, true).await,
                    CheckKind::Udp(u) => udp::probe(cfg, u, deadline).await,
                    CheckKind::Dns(d) => dns::query(cfg, d).await,
                    CheckKind::Script(_) => unreachable!("handled above"),
                }
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(result) => result,
                Err(_) => Err(format!("timed out after {}", seconds(cfg.connect_timeout))),
            }
        }
    }
}

/// `5s`, `0.25s`.
pub fn seconds(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// An I/O error as a reason, without Rust's "(os error N)".
pub fn io_reason(what: &str, e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    format!("{what}: {text}")
}

/// The address to probe: `connect_ip` (resolved if it is a name) and
/// `connect_port`.
pub async fn target(cfg: &CheckConfig) -> Result<SocketAddr, String> {
    if let Ok(ip) = cfg.connect_ip.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, cfg.connect_port));
    }
    let want_v4 = cfg.bindto.map(|b| b.is_ipv4());
    let addrs = tokio::net::lookup_host((cfg.connect_ip.as_str(), cfg.connect_port))
        .await
        .map_err(|e| format!("resolve {}: {}", cfg.connect_ip, io_text(&e)))?;
    addrs
        .into_iter()
        .find(|a| want_v4.is_none_or(|v4| a.is_ipv4() == v4))
        .ok_or_else(|| format!("resolve {}: no address", cfg.connect_ip))
}

fn io_text(e: &io::Error) -> String {
    io_reason("", e).trim_start_matches(": ").to_owned()
}

/// The source to bind, if any: `bindto` and/or `bind_port`.
pub fn source(cfg: &CheckConfig, to: SocketAddr) -> Option<SocketAddr> {
    match (cfg.bindto, cfg.bind_port) {
        (None, None) => None,
        (ip, port) => {
            let unspecified = if to.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            Some(SocketAddr::new(
                ip.unwrap_or(unspecified),
                port.unwrap_or(0),
            ))
        }
    }
}

/// A TCP connection to the check's target from its source.
pub async fn connect(cfg: &CheckConfig) -> Result<TcpStream, String> {
    let to = target(cfg).await?;
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| io_reason("socket", &e))?;
    if let Some(from) = source(cfg, to) {
        if cfg.bind_port.is_some() {
            socket
                .set_reuseaddr(true)
                .map_err(|e| io_reason("bind", &e))?;
        }
        socket
            .bind(from)
            .map_err(|e| io_reason(&format!("bind {from}"), &e))?;
    }
    socket
        .connect(to)
        .await
        .map_err(|e| io_reason("connect", &e))
}
