//! What every kind of check shares: the passed attempt's [`Outcome`], the
//! address to probe (`connect_ip` resolved, `connect_port`), the source to
//! bind (`bindto`, `bind_port`), the TCP connect, and reasons written from
//! I/O errors.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::config::CheckConfig;

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
