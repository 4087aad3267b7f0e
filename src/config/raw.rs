//! The file as serde sees it: the shape is fixed, the leaves are untyped.
//!
//! Leaves are `Spanned<Value>` rather than `u32`, `String`, ... so that a
//! wrong type gets the same message as a wrong value ("expected an integer
//! 0..=65535, got \"heavy\"") from the validator's readers (`read`), at the
//! value's position. Every key is optional here; the validator supplies
//! defaults and reports missing required keys. Tables keep their own span
//! (their `[header]`), so a missing key can point at the table it is
//! missing from.

use serde::Deserialize;
use toml::{Spanned, Value};

/// A scalar (or list of scalars) at a known place in the file.
pub(super) type Leaf = Option<Spanned<Value>>;
/// A list whose elements keep their own positions.
pub(super) type List = Option<Spanned<Vec<Spanned<Value>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration document")]
pub(super) struct RawConfig {
    pub dataplane: Option<Spanned<RawDataplane>>,
    pub connections: Option<Spanned<RawConnections>>,
    pub control: Option<Spanned<RawControl>>,
    pub log: Option<Spanned<RawLog>>,
    pub daemon: Option<Spanned<RawDaemon>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    pub services: Option<Vec<Spanned<RawService>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [dataplane] table")]
pub(super) struct RawDataplane {
    pub interfaces: List,
    pub cores: List,
    pub xdp_mode: Leaf,
    pub zero_copy: Leaf,
    pub complete_checksums: Leaf,
    pub batch_size: Leaf,
    pub mtu: Leaf,
    pub tunnel_source: Leaf,
    pub umem_frames: Leaf,
    pub frame_size: Leaf,
    pub rx_ring_size: Leaf,
    pub tx_ring_size: Leaf,
    pub fill_ring_size: Leaf,
    pub comp_ring_size: Leaf,
    pub busy_poll_usecs: Leaf,
    pub busy_poll_budget: Leaf,
    pub prefer_busy_poll: Leaf,
    pub idle: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [connections] table")]
pub(super) struct RawConnections {
    pub max_entries: Leaf,
    pub tcp_timeout: Leaf,
    pub tcpfin_timeout: Leaf,
    pub udp_timeout: Leaf,
    pub ftp_ports: List,
    pub unreplied_share: Leaf,
    pub defense_threshold: Leaf,
    pub drop_entry: Leaf,
    pub secure_tcp: Leaf,
    pub secure_tcp_timeout: Leaf,
    pub expire_nodest_conn: Leaf,
    pub expire_quiescent_template: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [control] table")]
pub(super) struct RawControl {
    pub socket: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [log] table")]
pub(super) struct RawLog {
    pub level: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [daemon] table")]
pub(super) struct RawDaemon {
    pub user: Leaf,
    pub group: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [metrics] table")]
pub(super) struct RawMetrics {
    pub listen: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[services]] table")]
pub(super) struct RawService {
    pub proto: Leaf,
    pub vip: Leaf,
    pub scheduler: Leaf,
    pub persistence_timeout: Leaf,
    pub persistence_netmask: Leaf,
    pub scheduler_flags: List,
    pub mh_table_size: Leaf,
    pub mh_seed: Leaf,
    pub delay_loop: Leaf,
    pub alpha: Leaf,
    pub virtualhost: Leaf,
    pub inhibit_on_failure: Leaf,
    pub reals: Option<Vec<Spanned<RawReal>>>,
    pub sorry_server: Option<Spanned<RawSorry>>,
    pub sorry_server_inhibit: Leaf,
    pub quorum: Leaf,
    pub hysteresis: Leaf,
    pub quorum_up: Leaf,
    pub quorum_down: Leaf,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a sorry server, e.g. { addr = \"198.18.2.99:80\", forward = \"dr\", weight = 1 }"
)]
pub(super) struct RawSorry {
    pub addr: Leaf,
    pub forward: Leaf,
    pub weight: Leaf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[services.reals]] table")]
pub(super) struct RawReal {
    pub addr: Leaf,
    pub forward: Leaf,
    pub weight: Leaf,
    pub upper_threshold: Leaf,
    pub lower_threshold: Leaf,
    pub inhibit_on_failure: Leaf,
    pub notify_up: Leaf,
    pub notify_down: Leaf,
    pub checks: Option<Vec<Spanned<RawCheck>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[services.reals.checks]] table")]
pub(super) struct RawCheck {
    pub kind: Leaf,
    pub interval: Leaf,
    pub connect_timeout: Leaf,
    pub retry: Leaf,
    pub delay_before_retry: Leaf,
    pub rise: Leaf,
    pub fall: Leaf,
    pub alpha: Leaf,
    pub bindto: Leaf,
    pub bind_port: Leaf,
    pub connect_ip: Leaf,
    pub connect_port: Leaf,
    pub via: Leaf,
    pub urls: Option<Spanned<Vec<Spanned<RawUrl>>>>,
    pub virtualhost: Leaf,
    pub sni: Leaf,
    pub verify_certificate: Leaf,
    pub ca_file: Leaf,
    pub command: Leaf,
    pub timeout: Leaf,
    pub dynamic: Leaf,
    pub user: Leaf,
    pub payload: Leaf,
    pub require_reply: Leaf,
    pub query_name: Leaf,
    pub query_type: Leaf,
    pub rcode: Leaf,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a URL table { path = ..., status = [...] }"
)]
pub(super) struct RawUrl {
    pub path: Leaf,
    pub status: List,
    pub digest: Leaf,
    pub regex: Leaf,
}
