//! DNS_CHECK: one query over UDP (built and parsed with hickory-proto);
//! passes when a reply with the query's id carries the expected rcode.
//! Replies with another id are ignored (at most a few) until the
//! attempt's bound.

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::check::{Outcome, io_reason};
use super::udp;
use crate::config::{CheckConfig, DnsCheck};

pub async fn query(cfg: &CheckConfig, dns: &DnsCheck) -> Result<Outcome, String> {
    let name = Name::from_ascii(&dns.query_name).map_err(|e| format!("query_name: {e}"))?;
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, RecordType::from(dns.query_type)));
    let id = message.metadata.id;
    let bytes = message.to_vec().map_err(|e| format!("query: {e}"))?;
    let socket = udp::socket(cfg).await?;
    socket
        .send(&bytes)
        .await
        .map_err(|e| io_reason("send", &e))?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..16 {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| io_reason("receive", &e))?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            return Err(format!("not a DNS message ({n} bytes)"));
        };
        if reply.metadata.id != id {
            continue;
        }
        let got = u16::from(reply.metadata.response_code);
        let want = ResponseCode::from_low(dns.rcode as u8);
        return if got == dns.rcode {
            Ok(Outcome::pass(format!(
                "{} with {} answers",
                reply.metadata.response_code,
                reply.answers.len()
            )))
        } else {
            Err(format!(
                "rcode {} is not {want}",
                reply.metadata.response_code
            ))
        };
    }
    Err("no reply with the query's id".to_owned())
}
