//! UDP_CHECK: a datagram to the target. An ICMP error (port or host
//! unreachable) coming back on the connected socket fails the check; a
//! reply passes it at once; silence until `connect_timeout` passes it
//! unless `require_reply` is set.

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::check::{self, Outcome, io_reason};
use crate::config::{CheckConfig, UdpCheck};

/// Binds a UDP socket (to `bindto`/`bind_port`, if set) connected to the target.
pub async fn socket(cfg: &CheckConfig) -> Result<UdpSocket, String> {
    let to = check::target(cfg).await?;
    let from = check::source(cfg, to).unwrap_or_else(|| {
        let any: std::net::IpAddr = if to.is_ipv4() {
            [0u8; 4].into()
        } else {
            [0u16; 8].into()
        };
        (any, 0).into()
    });
    let socket = UdpSocket::bind(from)
        .await
        .map_err(|e| io_reason(&format!("bind {from}"), &e))?;
    socket
        .connect(to)
        .await
        .map_err(|e| io_reason("connect", &e))?;
    Ok(socket)
}

pub async fn probe(
    cfg: &CheckConfig,
    udp: &UdpCheck,
    deadline: Instant,
) -> Result<Outcome, String> {
    let socket = socket(cfg).await?;
    socket
        .send(&udp.payload)
        .await
        .map_err(|e| io_reason("send", &e))?;
    let mut buf = [0u8; 2048];
    // Stop a little before the attempt's own bound, so silence is told
    // apart from a timeout.
    let quiet = deadline - (deadline - Instant::now()) / 20;
    match tokio::time::timeout_at(quiet, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(Outcome::pass(format!("reply of {n} bytes"))),
        Ok(Err(e)) => Err(io_reason("ICMP", &e)),
        Err(_) if udp.require_reply => Err("no reply".to_owned()),
        Err(_) => Ok(Outcome::pass("no ICMP error")),
    }
}
