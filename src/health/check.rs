//! One attempt of a check, whatever its kind: its time bound and the
//! dispatch to the kind's file; what a check prepares once ([`Context`]);
//! the check's name in verdicts.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::http;
pub use super::http::Context;
use super::net::{Outcome, connect, seconds};
use super::{dns, script, udp, via};
use crate::config::{CheckConfig, CheckKind, Via};

/// keepalived's name of the check, with its target: "TCP_CHECK
/// 198.18.2.11:80", "HTTP_GET 198.18.2.11:80/health", "MISC_CHECK /bin/x".
pub fn name(cfg: &CheckConfig) -> String {
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

/// A check's probe through the forwarding path ([`super::via`]): what it
/// follows, and the resolved probe it keeps between attempts.
pub struct Forwarding {
    via: via::Via,
    cached: std::sync::Arc<std::sync::Mutex<via::Cached>>,
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
            cached: Default::default(),
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

/// One attempt, bounded in time. `forwarding`: the check goes through the
/// forwarding path ([`Forwarding::of`]).
pub async fn attempt(
    ctx: &Context,
    forwarding: Option<&Forwarding>,
    cfg: &CheckConfig,
) -> Result<Outcome, String> {
    // Through the forwarding path: a TCP check's SYN to the VIP,
    // forwarded to this real server (health::via). NAT real servers have
    // no `forwarding` and are checked directly.
    if let Some(f) = forwarding {
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
