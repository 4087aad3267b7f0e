//! One attempt of a check, whatever its kind: its time bound and the
//! dispatch to the kind's file; what a check prepares once ([`Context`]);
//! the check's name in verdicts.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::http;
pub use super::http::Context;
use super::net::{Outcome, connect, seconds};
use super::{dns, script, udp};
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

/// One attempt, bounded in time.
pub async fn attempt(ctx: &Context, cfg: &CheckConfig) -> Result<Outcome, String> {
    if let (Via::Forwarding, false) = (cfg.via, matches!(cfg.kind, CheckKind::Script(_))) {
        // The probe through the forwarding path is built by health::via
        // (issue 14, helper C); until it is merged such a check cannot pass.
        return Err("via = \"forwarding\" is not built in this version".to_owned());
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
