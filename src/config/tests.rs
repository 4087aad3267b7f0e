use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::*;

/// Lines 1-2 of most test documents.
const HEAD: &str = "[dataplane]\ninterfaces = [\"eth1\"]\n";

/// Lines 3-6: one DR service on 198.18.1.1:80 with one real server.
const SERVICE: &str = "\
[[services]]
proto = \"tcp\"
vip = \"198.18.1.1:80\"
[[services.reals]]
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_named(text, "t.toml")
}

/// The message for `text`, which must be rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// The message for HEAD + SERVICE + `real` (the real server's keys, from line 7).
fn real_error(real: &str) -> String {
    error(&format!("{HEAD}{SERVICE}{real}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- accepted files --------------------------------------------------------

#[test]
fn reference_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xdpvs.toml");
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.dataplane.interfaces, ["eth1"]);
    assert_eq!(config.dataplane.xdp_mode, XdpMode::Auto);
    assert_eq!(config.dataplane.zero_copy, ZeroCopy::Auto);
    assert_eq!(config.dataplane.batch_size, 64);
    assert_eq!(config.dataplane.mtu, 1500);
    assert_eq!(config.dataplane.tunnel_source, None);
    assert_eq!(config.connections, Connections::default());
    assert_eq!(config.control, Control::default());
    assert_eq!(config.metrics.listen, None);
    assert_eq!(config.services.len(), 1);
    let web = &config.services[0];
    assert_eq!(web.proto, Protocol::Tcp);
    assert_eq!(web.vip, addr("198.18.1.1:80"));
    assert_eq!(web.scheduler, "wlc");
    let reals: Vec<SocketAddr> = web.reals.iter().map(|r| r.addr).collect();
    let expected = ["198.18.2.11:80", "198.18.2.12:80", "198.18.2.13:80"].map(addr);
    assert_eq!(reals, expected);
    assert!(
        web.reals
            .iter()
            .all(|r| r.forward == Forward::Dr && r.weight == 1)
    );
}

#[test]
fn minimal_file_gets_every_default() {
    let config = parse(HEAD).unwrap();
    let expected = Config {
        dataplane: Dataplane {
            interfaces: vec!["eth1".to_owned()],
            cores: vec![],
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            complete_checksums: CompleteChecksums::Auto,
            batch_size: 64,
            mtu: 1500,
            tunnel_source: None,
            tuning: Tuning {
                umem_frames: 4096,
                frame_size: 2048,
                rx_ring_size: 2048,
                tx_ring_size: 2048,
                fill_ring_size: 2048,
                comp_ring_size: 2048,
                busy_poll_usecs: 0,
                busy_poll_budget: 64,
                prefer_busy_poll: false,
                idle: Idle::Busy,
            },
        },
        connections: Connections {
            max_entries: 1_048_576,
            tcp_timeout: 900,
            tcpfin_timeout: 120,
            udp_timeout: 300,
            ftp_ports: vec![21],
            defense: xdpvs_defense_default(),
            expire_nodest_conn: false,
            expire_quiescent_template: false,
        },
        control: Control {
            socket: PathBuf::from("/run/xdpvs/xdpvs.sock"),
        },
        log: crate::config::Log {
            level: crate::log::Level::Info,
        },
        daemon: Daemon::default(),
        metrics: Metrics::default(),
        services: vec![],
    };
    assert_eq!(config, expected);
}

#[test]
fn service_and_real_defaults() {
    let config = parse(&format!("{HEAD}{SERVICE}addr = \"198.18.2.11:80\"\n")).unwrap();
    let expected = ServiceConfig {
        proto: Protocol::Tcp,
        vip: addr("198.18.1.1:80"),
        scheduler: "wlc".to_owned(),
        persistence_timeout: 0,
        persistence_netmask: Ipv4Addr::BROADCAST,
        scheduler_flags: SchedFlags::default(),
        mh_table_size: 65537,
        mh_seed: None,
        health: Default::default(),
        reals: vec![RealConfig {
            addr: addr("198.18.2.11:80"),
            forward: Forward::Dr,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        }],
        sorry_server: None,
        sorry_server_inhibit: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
    };
    assert_eq!(config.services, [expected]);
}

/// The keys of issue 14 this module reads for the service side of health
/// checking: the sorry server, quorum, and the connection expiry sysctls.
#[test]
fn sorry_server_quorum_and_expiry_keys() {
    let text = format!(
        "{HEAD}[connections]\nexpire_nodest_conn = true\nexpire_quiescent_template = true\n\
         [[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n\
         sorry_server = {{ addr = \"198.18.2.99:8080\", forward = \"nat\", weight = 3 }}\n\
         sorry_server_inhibit = true\nquorum = 4\nhysteresis = 1\n\
         quorum_up = \"/usr/bin/logger 'quorum up' x\\\\ y\"\nquorum_down = \"/bin/true\"\n"
    );
    let c = parse(&text).unwrap();
    assert!(c.connections.expire_nodest_conn && c.connections.expire_quiescent_template);
    let s = &c.services[0];
    let sorry = s.sorry_server.as_ref().unwrap();
    assert_eq!(
        (sorry.addr, sorry.forward, sorry.weight),
        (addr("198.18.2.99:8080"), Forward::Nat, 3)
    );
    assert!(s.sorry_server_inhibit);
    assert_eq!((s.quorum, s.hysteresis), (4, 1));
    assert_eq!(
        s.quorum_up.as_ref().unwrap().argv,
        ["/usr/bin/logger", "quorum up", "x y"]
    );
    assert_eq!(s.quorum_down.as_ref().unwrap().argv, ["/bin/true"]);
    let svc = "[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n";
    for (bad, key) in [
        ("quorum = 0\n", "services[0].quorum"),
        ("quorum_up = \"echo hi\"\n", "services[0].quorum_up"),
        (
            "quorum_down = \"/bin/x 'open\"\n",
            "services[0].quorum_down",
        ),
        (
            "sorry_server = { addr = \"198.18.2.99:81\" }\n",
            "services[0].sorry_server.addr",
        ),
        (
            "sorry_server = { addr = \"198.18.2.99:80\", port = 1 }\n",
            "services[0].sorry_server",
        ),
        (
            "sorry_server = { addr = \"198.18.2.11:80\" }\n[[services.reals]]\naddr = \"198.18.2.11:80\"\n",
            "services[0].sorry_server.addr",
        ),
    ] {
        let e = parse(&format!("{HEAD}{svc}{bad}")).unwrap_err().to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
}

#[test]
fn every_key_set() {
    let text = r#"
[dataplane]
interfaces = ["eth1", "eth2"]
cores = [2, 3]
xdp_mode = "native"
zero_copy = "off"
batch_size = 32
mtu = 1700
tunnel_source = "198.18.2.2"

[connections]
max_entries = 4096
tcp_timeout = 60
tcpfin_timeout = 10
udp_timeout = 30

[control]
socket = "/tmp/x.sock"

[[services]]
proto = "udp"
vip = "198.18.1.1:0"
scheduler = "mh"
persistence_timeout = 540
persistence_netmask = "255.255.255.0"
scheduler_flags = ["mh-port", "flag-3"]
mh_table_size = 4093

[[services.reals]]
addr = "198.18.2.11:0"
forward = "tun"
weight = 65535
upper_threshold = 100
lower_threshold = 50
"#;
    let config = parse(text).unwrap();
    let d = &config.dataplane;
    assert_eq!(d.interfaces, ["eth1", "eth2"]);
    assert_eq!(d.cores, [2, 3]);
    assert_eq!((d.xdp_mode, d.zero_copy), (XdpMode::Native, ZeroCopy::Off));
    assert_eq!((d.batch_size, d.mtu), (32, 1700));
    let c = &config.connections;
    let timeouts = (
        c.max_entries,
        c.tcp_timeout,
        c.tcpfin_timeout,
        c.udp_timeout,
    );
    assert_eq!(timeouts, (4096, 60, 10, 30));
    assert_eq!(config.control.socket, Path::new("/tmp/x.sock"));
    let s = &config.services[0];
    assert_eq!((s.proto, s.scheduler.as_str()), (Protocol::Udp, "mh"));
    assert_eq!(s.persistence_timeout, 540);
    assert_eq!(s.persistence_netmask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(
        s.scheduler_flags,
        SchedFlags(SchedFlags::FLAG2 | SchedFlags::FLAG3)
    );
    assert_eq!(s.mh_table_size, 4093);
    let r = &s.reals[0];
    assert_eq!((r.forward, r.weight), (Forward::Tun, 65535));
    assert_eq!((r.upper_threshold, r.lower_threshold), (100, 50));
}

#[test]
fn inline_tables_and_ipv6() {
    let text = r#"
dataplane = { interfaces = ["eth1"] }
services = [
  { proto = "tcp", vip = "[2001:db8::1]:80", reals = [
      { addr = "[2001:db8::11]:80" },
      { addr = "[2001:db8::12]:8080", forward = "nat", weight = 0 },
  ] },
]
"#;
    let config = parse(text).unwrap();
    let s = &config.services[0];
    assert_eq!(s.vip, addr("[2001:db8::1]:80"));
    assert_eq!(s.reals[1].addr, addr("[2001:db8::12]:8080"));
    assert_eq!((s.reals[1].forward, s.reals[1].weight), (Forward::Nat, 0));
}

#[test]
fn nat_may_change_the_port() {
    let config = parse(&format!(
        "{HEAD}{SERVICE}addr = \"198.18.2.11:8080\"\nforward = \"nat\"\n"
    ))
    .unwrap();
    assert_eq!(config.services[0].reals[0].addr.port(), 8080);
}

#[test]
fn every_scheduler_is_accepted() {
    for name in SCHEDULERS {
        let text = format!("{HEAD}{SERVICE}addr = \"198.18.2.11:80\"\n").replace(
            "proto = \"tcp\"",
            &format!("proto = \"tcp\"\nscheduler = {name:?}"),
        );
        assert_eq!(parse(&text).unwrap().services[0].scheduler, *name);
    }
}

#[test]
fn display_as_ipvsadm_prints() {
    assert_eq!(Protocol::Tcp.to_string(), "TCP");
    assert_eq!(Protocol::Udp.to_string(), "UDP");
    let forwards = [Forward::Dr, Forward::Tun, Forward::Nat].map(|f| f.to_string());
    assert_eq!(forwards, ["Route", "Tunnel", "Masq"]);
}

// ---- syntax and shape --------------------------------------------------------

#[test]
fn syntax_error_has_line_and_column() {
    assert_eq!(
        error("[dataplane]\ninterfaces = [\"eth1\"\n"),
        "t.toml:2:21: invalid TOML: unclosed array, expected `]`"
    );
    assert_eq!(
        error("[dataplane]\ninterfaces = [\"eth1\"]\ninterfaces = [\"eth2\"]\n"),
        "t.toml:3:1: invalid TOML: duplicate key"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nwieght = 2\n"),
        "t.toml:8: services[0].reals[0].wieght: unknown field `wieght`, expected one of \
         `addr`, `forward`, `weight`, `upper_threshold`, `lower_threshold`, \
         `inhibit_on_failure`, `notify_up`, `notify_down`, `checks`"
    );
    assert_eq!(
        error(&format!("{HEAD}batch = 3\n")),
        "t.toml:3: dataplane.batch: unknown field `batch`, expected one of `interfaces`, \
         `cores`, `xdp_mode`, `zero_copy`, `complete_checksums`, `batch_size`, `mtu`, \
         `tunnel_source`, `umem_frames`, `frame_size`, `rx_ring_size`, `tx_ring_size`, `fill_ring_size`, `comp_ring_size`, \
         `busy_poll_usecs`, `busy_poll_budget`, `prefer_busy_poll`, `idle`"
    );
    assert_eq!(
        error(&format!("{HEAD}[service]\n")),
        "t.toml:3: service: unknown field `service`, expected one of `dataplane`, \
         `connections`, `control`, `log`, `daemon`, `metrics`, `services`"
    );
}

#[test]
fn wrong_shapes_are_rejected() {
    assert_eq!(
        error("[dataplane]\ninterfaces = \"eth1\"\n"),
        "t.toml:2: dataplane.interfaces: invalid type: string \"eth1\", expected a sequence"
    );
    assert_eq!(
        error(&format!("{HEAD}[services]\nproto = \"tcp\"\n")),
        "t.toml:3: services: invalid type: map, expected a sequence"
    );
    assert_eq!(
        error(&format!("control = 3\n{HEAD}")),
        "t.toml:1: control: invalid type: integer `3`, expected a [control] table"
    );
}

// ---- [dataplane] -------------------------------------------------------------

#[test]
fn interfaces_are_required() {
    assert_eq!(
        error(""),
        "t.toml: dataplane.interfaces: required key is missing; \
         expected a non-empty list of interface names, e.g. [\"eth1\"]"
    );
    assert_eq!(
        error("\n[dataplane]\ncores = [1]\n"),
        "t.toml:2: dataplane.interfaces: required key is missing; \
         expected a non-empty list of interface names, e.g. [\"eth1\"]"
    );
    assert_eq!(
        error("[dataplane]\ninterfaces = []\n"),
        "t.toml:2: dataplane.interfaces: expected a non-empty list of interface names, \
         e.g. [\"eth1\"], got []"
    );
}

#[test]
fn interface_names_are_checked() {
    let expected = "expected an interface name of 1 to 15 bytes without '/', ':' or whitespace";
    for bad in ["", "a/b", "eth 1", "eth0:1", "abcdefghijklmnop", ".."] {
        assert_eq!(
            error(&format!(
                "[dataplane]\ninterfaces = [\"eth1\",\n  {bad:?}]\n"
            )),
            format!("t.toml:3: dataplane.interfaces[1]: {expected}, got {bad:?}")
        );
    }
    assert_eq!(
        error("[dataplane]\ninterfaces = [1]\n"),
        format!("t.toml:2: dataplane.interfaces[0]: {expected}, got 1")
    );
    assert!(parse("[dataplane]\ninterfaces = [\"abcdefghijklmno\"]\n").is_ok());
}

#[test]
fn duplicates_in_lists_are_rejected() {
    assert_eq!(
        error("[dataplane]\ninterfaces = [\"eth1\",\n\"eth1\"]\n"),
        "t.toml:3: dataplane.interfaces[1]: duplicate interface eth1, first given at line 2"
    );
    assert_eq!(
        error(&format!("{HEAD}cores = [2, 3, 2]\n")),
        "t.toml:3: dataplane.cores[2]: duplicate core 2, first given at line 3"
    );
    assert_eq!(
        error(&format!("{HEAD}cores = [-1]\n")),
        "t.toml:3: dataplane.cores[0]: expected an integer 0..=65535, got -1"
    );
}

#[test]
fn complete_checksums_per_driver() {
    for (value, mode) in [
        ("auto", CompleteChecksums::Auto),
        ("on", CompleteChecksums::On),
        ("off", CompleteChecksums::Off),
    ] {
        let c = parse(&format!("{HEAD}complete_checksums = \"{value}\"\n")).unwrap();
        assert_eq!(c.dataplane.complete_checksums, mode);
    }
    let auto = CompleteChecksums::Auto;
    for virt in ["veth", "virtio_net", "tun"] {
        assert!(auto.applies_to(Some(virt)), "{virt}");
        assert!(!CompleteChecksums::Off.applies_to(Some(virt)));
    }
    for nic in ["ixgbe", "mlx5_core", "i40e", "bridge"] {
        assert!(!auto.applies_to(Some(nic)), "{nic}");
        assert!(CompleteChecksums::On.applies_to(Some(nic)));
    }
    assert!(
        auto.applies_to(None),
        "an unknown driver is treated as virtual"
    );
}

#[test]
fn dataplane_values_are_checked() {
    let cases = [
        (
            "xdp_mode = \"fast\"",
            "dataplane.xdp_mode: expected one of \"native\", \"generic\", \"auto\", got \"fast\"",
        ),
        (
            "zero_copy = true",
            "dataplane.zero_copy: expected one of \"on\", \"off\", \"auto\", got true",
        ),
        (
            "complete_checksums = \"yes\"",
            "dataplane.complete_checksums: expected one of \"auto\", \"on\", \"off\", got \"yes\"",
        ),
        (
            "batch_size = 0",
            "dataplane.batch_size: expected an integer 1..=64, got 0",
        ),
        (
            "batch_size = 6.4",
            "dataplane.batch_size: expected an integer 1..=64, got 6.4",
        ),
        (
            "mtu = 575",
            "dataplane.mtu: expected an integer 576..=9000, got 575",
        ),
        (
            "mtu = 9001",
            "dataplane.mtu: expected an integer 576..=9000, got 9001",
        ),
        (
            "tunnel_source = \"198.18.2\"",
            "dataplane.tunnel_source: expected a unicast IPv4 address, e.g. \"198.18.2.2\", got \"198.18.2\"",
        ),
        (
            "tunnel_source = \"0.0.0.0\"",
            "dataplane.tunnel_source: expected a unicast IPv4 address, e.g. \"198.18.2.2\", got \"0.0.0.0\"",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(
            error(&format!("{HEAD}{line}\n")),
            format!("t.toml:3: {message}")
        );
    }
}

/// A batch larger than the pipeline takes is refused at its line, with the
/// limit, rather than cut down when the workers start.
#[test]
fn batch_size_is_at_most_the_pipeline_batch() {
    let max = crate::frame::MAX_BATCH;
    assert_eq!(Dataplane::MAX_BATCH_SIZE as usize, max);
    let ok = parse(&format!("{HEAD}batch_size = {max}\n")).unwrap();
    assert_eq!(ok.dataplane.batch_size as usize, max);
    for n in [max + 1, 1024, 1025] {
        assert_eq!(
            error(&format!("{HEAD}\nbatch_size = {n}\n")),
            format!("t.toml:4: dataplane.batch_size: expected an integer 1..=64, got {n}")
        );
    }
}

// ---- [connections] and [control] ---------------------------------------------

#[test]
fn connection_limits_are_checked() {
    let cases = [
        (
            "max_entries = 0",
            "connections.max_entries: expected an integer 1..=67108864, got 0",
        ),
        (
            "max_entries = 67108865",
            "connections.max_entries: expected an integer 1..=67108864, got 67108865",
        ),
        (
            "tcp_timeout = 0",
            "connections.tcp_timeout: expected an integer 1..=2147483, got 0",
        ),
        (
            "tcpfin_timeout = 2147484",
            "connections.tcpfin_timeout: expected an integer 1..=2147483, got 2147484",
        ),
        (
            "udp_timeout = \"5m\"",
            "connections.udp_timeout: expected an integer 1..=2147483, got \"5m\"",
        ),
    ];
    for (line, message) in cases {
        let text = format!("{HEAD}[connections]\n{line}\n");
        assert_eq!(error(&text), format!("t.toml:4: {message}"));
    }
    let max = format!("{HEAD}[connections]\nmax_entries = 67108864\ntcp_timeout = 2147483\n");
    let config = parse(&max).unwrap();
    assert_eq!(config.connections.max_entries, 1 << 26);
    assert_eq!(config.connections.tcp_timeout, 2_147_483);
}

#[test]
fn log_level_is_read_and_checked() {
    use crate::log::Level;
    assert_eq!(parse(HEAD).unwrap().log.level, Level::Info);
    for l in Level::ALL {
        let text = format!("{HEAD}[log]\nlevel = \"{}\"\n", l.name());
        assert_eq!(parse(&text).unwrap().log.level, l);
    }
    assert_eq!(
        error(&format!("{HEAD}[log]\nlevel = \"trace\"\n")),
        "t.toml:4: log.level: expected one of \"error\", \"warning\", \"notice\", \"info\", \"debug\", got \"trace\""
    );
}

#[test]
fn control_socket_is_checked() {
    assert_eq!(
        error(&format!("{HEAD}[control]\nsocket = \"\"\n")),
        "t.toml:4: control.socket: expected a Unix socket path of 1..=107 bytes, got \"\""
    );
    let long = format!("/{}", "a".repeat(107));
    assert_eq!(
        error(&format!("{HEAD}[control]\nsocket = \"{long}\"\n")),
        format!(
            "t.toml:4: control.socket: expected a Unix socket path of 1..=107 bytes, got \"{long}\""
        )
    );
}

#[test]
fn daemon_user_and_group_are_names() {
    let config = parse(&format!(
        "{HEAD}[daemon]\nuser = \"xdpvs\"\ngroup = \"xdpvs-adm\"\n"
    ))
    .unwrap();
    assert_eq!(config.daemon.user.as_deref(), Some("xdpvs"));
    assert_eq!(config.daemon.group.as_deref(), Some("xdpvs-adm"));
    let config = parse(&format!("{HEAD}[daemon]\nuser = \"xdpvs\"\n")).unwrap();
    assert_eq!(config.daemon.group, None);
    for bad in ["", "123", "a b", "a:b", "../x"] {
        assert_eq!(
            error(&format!("{HEAD}[daemon]\nuser = \"{bad}\"\n")),
            format!(
                "t.toml:4: daemon.user: expected a user or group name of 1..=32 bytes, got \"{bad}\""
            )
        );
    }
    assert_eq!(
        error(&format!("{HEAD}[daemon]\ngroup = 7\n")),
        "t.toml:4: daemon.group: expected a user or group name of 1..=32 bytes, got 7"
    );
}

#[test]
fn metrics_listen_is_an_address_to_bind() {
    assert_eq!(parse(HEAD).unwrap().metrics.listen, None);
    let listen = |v: &str| parse(&format!("{HEAD}[metrics]\nlisten = \"{v}\"\n"));
    assert_eq!(
        listen("127.0.0.1:9477").unwrap().metrics.listen,
        Some(addr("127.0.0.1:9477"))
    );
    assert_eq!(
        listen("[::]:9477").unwrap().metrics.listen,
        Some(addr("[::]:9477"))
    );
    assert_eq!(
        listen("0.0.0.0:9477").unwrap().metrics.listen,
        Some(addr("0.0.0.0:9477"))
    );
    for bad in [
        "127.0.0.1",
        "localhost:9477",
        "224.0.0.1:9477",
        "255.255.255.255:1",
    ] {
        assert_eq!(
            error(&format!("{HEAD}[metrics]\nlisten = \"{bad}\"\n")),
            format!(
                "t.toml:4: metrics.listen: expected an address with port to listen on, \
                 \"a.b.c.d:port\" or \"[ipv6]:port\", got \"{bad}\""
            ),
        );
    }
    assert_eq!(
        error(&format!("{HEAD}[metrics]\nport = 9477\n")),
        "t.toml:4: metrics.port: unknown field `port`, expected `listen`"
    );
}

// ---- [[services]] --------------------------------------------------------------

#[test]
fn proto_and_vip_are_required() {
    assert_eq!(
        error(&format!("{HEAD}\n[[services]]\nvip = \"198.18.1.1:80\"\n")),
        "t.toml:4: services[0].proto: required key is missing; expected \"tcp\" or \"udp\""
    );
    assert_eq!(
        error(&format!("{HEAD}[[services]]\nproto = \"tcp\"\n")),
        "t.toml:3: services[0].vip: required key is missing; \
         expected the virtual address and port, e.g. \"198.18.1.1:80\""
    );
}

#[test]
fn service_values_are_checked() {
    let vip = "expected a unicast address with port, \"a.b.c.d:port\" or \"[ipv6]:port\"";
    let cases = [
        (
            "proto = \"sctp\"",
            "services[0].proto: expected one of \"tcp\", \"udp\", got \"sctp\"".to_owned(),
        ),
        (
            "vip = \"198.18.1.1\"",
            format!("services[0].vip: {vip}, got \"198.18.1.1\""),
        ),
        (
            "vip = \"198.18.1.1:65536\"",
            format!("services[0].vip: {vip}, got \"198.18.1.1:65536\""),
        ),
        (
            "vip = \"224.0.0.1:80\"",
            format!("services[0].vip: {vip}, got \"224.0.0.1:80\""),
        ),
        (
            "scheduler = \"fifo\"",
            "services[0].scheduler: expected one of \"rr\", \"wrr\", \"lc\", \"wlc\", \"lblc\", \
             \"lblcr\", \"dh\", \"sh\", \"sed\", \"nq\", \"mh\", got \"fifo\""
                .to_owned(),
        ),
        (
            "persistence_timeout = -1",
            "services[0].persistence_timeout: expected an integer 0..=2678400, got -1".to_owned(),
        ),
        (
            "persistence_timeout = 2678401",
            "services[0].persistence_timeout: expected an integer 0..=2678400, got 2678401"
                .to_owned(),
        ),
        (
            "persistence_netmask = \"255.0.255.0\"",
            "services[0].persistence_netmask: expected a contiguous IPv4 netmask, \
             e.g. \"255.255.255.0\", got \"255.0.255.0\""
                .to_owned(),
        ),
    ];
    for (line, message) in cases {
        // A valid service with `line` added last, replacing the key if present.
        let key = line.split(' ').next().unwrap();
        let mut text = format!("{HEAD}[[services]]\n");
        for valid in ["proto = \"tcp\"", "vip = \"198.18.1.1:80\""] {
            if !valid.starts_with(key) {
                text += &format!("{valid}\n");
            }
        }
        text += &format!("{line}\n");
        let line_no = text.lines().count();
        assert_eq!(error(&text), format!("t.toml:{line_no}: {message}"));
    }
}

/// HEAD, a service with `scheduler` (lines 3-6), then `lines` from line 7.
fn scheduler_text(scheduler: &str, lines: &str) -> String {
    format!(
        "{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n\
         scheduler = {scheduler:?}\n{lines}\n"
    )
}

#[test]
fn scheduler_flags_as_ipvsadm_accepts_them() {
    let flags = |scheduler: &str, list: &str| {
        let text = scheduler_text(scheduler, &format!("scheduler_flags = {list}"));
        parse(&text).unwrap().services[0].scheduler_flags
    };
    assert_eq!(flags("sh", "[\"sh-fallback\", \"sh-port\"]"), SchedFlags(3));
    assert!(flags("sh", "[\"sh-fallback\"]").fallback());
    assert!(flags("sh", "[\"sh-port\"]").port());
    assert_eq!(flags("mh", "[\"mh-fallback\"]"), SchedFlags(1));
    assert_eq!(flags("mh", "[\"mh-port\"]"), SchedFlags(2));
    assert_eq!(
        flags("rr", "[\"flag-1\", \"flag-2\", \"flag-3\"]"),
        SchedFlags(7)
    );
    assert_eq!(flags("sh", "[\"flag-1\", \"sh-fallback\"]"), SchedFlags(1));
    assert_eq!(flags("mh", "[]"), SchedFlags(0));
    let absent = parse(&scheduler_text("sh", "")).unwrap();
    assert_eq!(absent.services[0].scheduler_flags, SchedFlags::default());
}

#[test]
fn scheduler_flags_are_checked() {
    let names = "\"sh-fallback\", \"sh-port\", \"mh-fallback\", \"mh-port\", \"flag-1\", \
                 \"flag-2\", \"flag-3\"";
    let cases = [
        (
            "sh",
            "scheduler_flags = [\"sh-fallbak\"]",
            format!(
                "t.toml:7: services[0].scheduler_flags[0]: expected one of {names}, got \"sh-fallbak\""
            ),
        ),
        (
            "sh",
            "scheduler_flags = [1]",
            format!("t.toml:7: services[0].scheduler_flags[0]: expected one of {names}, got 1"),
        ),
        (
            "wlc",
            "scheduler_flags = [\"flag-1\", \"sh-port\"]",
            "t.toml:7: services[0].scheduler_flags[1]: sh-port is only valid with \
             scheduler = \"sh\", not \"wlc\""
                .to_owned(),
        ),
        (
            "sh",
            "scheduler_flags = [\"mh-fallback\"]",
            "t.toml:7: services[0].scheduler_flags[0]: mh-fallback is only valid with \
             scheduler = \"mh\", not \"sh\""
                .to_owned(),
        ),
        (
            "sh",
            "scheduler_flags = [\"sh-port\",\n  \"sh-port\"]",
            "t.toml:8: services[0].scheduler_flags[1]: duplicate scheduler flag sh-port, \
             first given at line 7"
                .to_owned(),
        ),
        (
            "sh",
            "scheduler_flags = \"sh-port\"",
            "t.toml:7: services[0].scheduler_flags: invalid type: string \"sh-port\", \
             expected a sequence"
                .to_owned(),
        ),
    ];
    for (scheduler, line, message) in cases {
        assert_eq!(error(&scheduler_text(scheduler, line)), message);
    }
    // Without a scheduler key the service is wlc, and says so.
    let text = format!(
        "{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n\
         scheduler_flags = [\"mh-port\"]\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:6: services[0].scheduler_flags[0]: mh-port is only valid with \
         scheduler = \"mh\", not \"wlc\""
    );
}

#[test]
fn mh_table_size_is_a_prime_for_mh() {
    let size = |n: &str| {
        let text = scheduler_text("mh", &format!("mh_table_size = {n}"));
        parse(&text).map(|c| c.services[0].mh_table_size)
    };
    for ok in [3, 251, 4093, 65537, 131071, 1_048_573] {
        assert_eq!(size(&ok.to_string()).unwrap(), ok);
    }
    let expected = "expected a prime 3..=1048573, e.g. 65537";
    for bad in ["65536", "2", "1", "0", "-7", "1048583", "\"big\"", "4093.0"] {
        assert_eq!(
            size(bad).unwrap_err().to_string(),
            format!("t.toml:7: services[0].mh_table_size: {expected}, got {bad}")
        );
    }
    assert_eq!(
        error(&scheduler_text("sh", "mh_table_size = 4093")),
        "t.toml:7: services[0].mh_table_size: mh_table_size is only valid with \
         scheduler = \"mh\", not \"sh\""
    );
    let absent = parse(&scheduler_text("mh", "")).unwrap();
    assert_eq!(absent.services[0].mh_table_size, 65537);
}

#[test]
fn mh_seed_is_an_integer_for_mh() {
    let seed = |n: &str| {
        let text = scheduler_text("mh", &format!("mh_seed = {n}"));
        parse(&text).map(|c| c.services[0].mh_seed)
    };
    assert_eq!(seed("0").unwrap(), Some(0));
    assert_eq!(seed("9223372036854775807").unwrap(), Some(i64::MAX as u64));
    for bad in ["-1", "\"x\"", "1.5"] {
        assert_eq!(
            seed(bad).unwrap_err().to_string(),
            format!(
                "t.toml:7: services[0].mh_seed: expected an integer \
                 0..=9223372036854775807, got {bad}"
            )
        );
    }
    assert_eq!(
        error(&scheduler_text("sh", "mh_seed = 1")),
        "t.toml:7: services[0].mh_seed: mh_seed is only valid with \
         scheduler = \"mh\", not \"sh\""
    );
    assert_eq!(
        parse(&scheduler_text("mh", "")).unwrap().services[0].mh_seed,
        None
    );
}

#[test]
fn port_zero_needs_persistence() {
    let text = format!("{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:0\"\n");
    assert_eq!(
        error(&text),
        "t.toml:5: services[0].vip: port 0 (all ports) is only valid for a persistent \
         service (persistence_timeout > 0)"
    );
    let persistent = format!(
        "{text}persistence_timeout = 540\n[[services.reals]]\naddr = \"198.18.2.11:0\"\n\
         [[services.reals]]\naddr = \"198.18.2.12:21\"\nforward = \"dr\"\n"
    );
    let config = parse(&persistent).unwrap();
    assert_eq!(config.services[0].reals[0].addr.port(), 0);
    assert_eq!(config.services[0].reals[1].addr.port(), 21);
}

#[test]
fn duplicate_services_are_rejected() {
    let service = "[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n";
    assert_eq!(
        error(&format!("{HEAD}{service}{service}")),
        "t.toml:8: services[1].vip: duplicate service TCP 198.18.1.1:80, first given at line 5"
    );
    // Same address, other protocol: a different service.
    let udp = service.replace("tcp", "udp");
    assert_eq!(
        parse(&format!("{HEAD}{service}{udp}"))
            .unwrap()
            .services
            .len(),
        2
    );
}

#[test]
fn persistence_netmask_is_ipv4_only() {
    let text = format!(
        "{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"[2001:db8::1]:80\"\n\
         persistence_netmask = \"255.255.255.0\"\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:6: services[0].persistence_netmask: persistence_netmask is only supported \
         for IPv4 services"
    );
}

// ---- [[services.reals]] --------------------------------------------------------

#[test]
fn real_addr_is_required() {
    assert_eq!(
        real_error("weight = 1\n"),
        "t.toml:6: services[0].reals[0].addr: required key is missing; \
         expected the real server's address and port, e.g. \"198.18.2.11:80\""
    );
}

#[test]
fn weight_is_checked() {
    // The example of the brief: the second real server of the first service.
    let text = format!(
        "{HEAD}{SERVICE}addr = \"198.18.2.11:80\"\n[[services.reals]]\n\
         addr = \"198.18.2.12:80\"\nweight = 70000\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:10: services[0].reals[1].weight: expected an integer 0..=65535, got 70000"
    );
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nweight = \"heavy\"\n"),
        "t.toml:8: services[0].reals[0].weight: expected an integer 0..=65535, got \"heavy\""
    );
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nweight = -1\n"),
        "t.toml:8: services[0].reals[0].weight: expected an integer 0..=65535, got -1"
    );
}

#[test]
fn real_values_are_checked() {
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nforward = \"masq\"\n"),
        "t.toml:8: services[0].reals[0].forward: expected one of \"dr\", \"tun\", \"nat\", \
         got \"masq\""
    );
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nupper_threshold = 2147483648\n"),
        "t.toml:8: services[0].reals[0].upper_threshold: expected an integer \
         0..=2147483647, got 2147483648"
    );
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nupper_threshold = 10\nlower_threshold = 11\n"),
        "t.toml:9: services[0].reals[0].lower_threshold: expected at most upper_threshold \
         (10; 0 = no limit, which allows only 0 here), got 11"
    );
    assert_eq!(
        real_error("addr = \"198.18.2.11:80\"\nlower_threshold = 1\n"),
        "t.toml:8: services[0].reals[0].lower_threshold: expected at most upper_threshold \
         (0; 0 = no limit, which allows only 0 here), got 1"
    );
}

#[test]
fn duplicate_reals_are_rejected() {
    let text = format!(
        "{HEAD}{SERVICE}addr = \"198.18.2.11:80\"\n[[services.reals]]\n\
         addr = \"198.18.2.11:80\"\nforward = \"nat\"\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:9: services[0].reals[1].addr: duplicate real server 198.18.2.11:80, \
         first given at line 7"
    );
}

#[test]
fn dr_and_tun_keep_the_port() {
    assert_eq!(
        real_error("addr = \"198.18.2.11:8080\"\n"),
        "t.toml:7: services[0].reals[0].addr: expected port 80 (the VIP's port; \
         forward = \"dr\" cannot change the port, only \"nat\" can), got 8080"
    );
    let text = format!(
        "[dataplane]\ninterfaces = [\"eth1\"]\ntunnel_source = \"198.18.2.2\"\n\
         {SERVICE}addr = \"198.18.2.11:81\"\nforward = \"tun\"\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:8: services[0].reals[0].addr: expected port 80 (the VIP's port; \
         forward = \"tun\" cannot change the port, only \"nat\" can), got 81"
    );
}

#[test]
fn real_port_zero_needs_a_port_zero_service() {
    assert_eq!(
        real_error("addr = \"198.18.2.11:0\"\nforward = \"nat\"\n"),
        "t.toml:7: services[0].reals[0].addr: expected the real server's port (port 0 is \
         only valid when the service port is 0), got 198.18.2.11:0"
    );
}

#[test]
fn address_families_must_match() {
    assert_eq!(
        real_error("addr = \"[2001:db8::11]:80\"\n"),
        "t.toml:7: services[0].reals[0].addr: expected an address of the VIP's family \
         (198.18.1.1), got 2001:db8::11"
    );
}

/// The outer source defaults to the route's (ipvsadm `-i` alone works);
/// IPIP stays IPv4 only.
#[test]
fn tun_needs_no_tunnel_source_but_ipv4() {
    let cfg = parse(&format!(
        "{HEAD}{SERVICE}addr = \"198.18.2.11:80\"\nforward = \"tun\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.dataplane.tunnel_source, None);
    assert_eq!(cfg.services[0].reals[0].forward, Forward::Tun);
    let text = format!(
        "{HEAD}tunnel_source = \"198.18.2.2\"\n[[services]]\nproto = \"tcp\"\n\
         vip = \"[2001:db8::1]:80\"\n[[services.reals]]\naddr = \"[2001:db8::11]:80\"\n\
         forward = \"tun\"\n"
    );
    assert_eq!(
        error(&text),
        "t.toml:9: services[0].reals[0].forward: forward = \"tun\" (IPIP) is only supported \
         for IPv4 services"
    );
}

// ---- files ---------------------------------------------------------------------

#[test]
fn unreadable_file_is_named() {
    let err = Config::from_file(Path::new("/nonexistent/xdpvs.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/xdpvs.toml: cannot read the configuration file: "),
        "{err}"
    );
}

#[test]
fn errors_carry_their_location() {
    let err = parse(&format!("{HEAD}mtu = 1\n")).unwrap_err();
    let at = err.location().unwrap();
    assert_eq!(
        (at.file.as_str(), at.line, at.column),
        ("t.toml", Some(3), Some(7))
    );
    assert!(matches!(
        err,
        ConfigError::Invalid {
            problem: Problem::Expected { .. },
            ..
        }
    ));
}

#[test]
fn tuning_keys_are_checked() {
    let t = |extra: &str| parse(&HEAD.replace("[dataplane]", &format!("[dataplane]\n{extra}")));
    let c = t("umem_frames = 8192\nfill_ring_size = 4096\nidle = \"wait\"\nprefer_busy_poll = true\nframe_size = 4096").unwrap();
    let tu = c.dataplane.tuning;
    assert_eq!(
        (
            tu.umem_frames,
            tu.fill_ring_size,
            tu.idle,
            tu.prefer_busy_poll,
            tu.frame_size
        ),
        (8192, 4096, Idle::Wait, true, 4096)
    );
    for (bad, says) in [
        ("rx_ring_size = 1000", "dataplane.rx_ring_size"),
        (
            "umem_frames = 1024",
            "umem_frames (1024) of at least fill_ring_size + tx_ring_size (2048 + 2048 = 4096)",
        ),
        ("frame_size = 3000", "2048 or 4096"),
        ("idle = \"sleepy\"", "\"busy\""),
        ("prefer_busy_poll = 1", "true or false"),
        ("busy_poll_budget = 0", "dataplane.busy_poll_budget"),
    ] {
        let e = t(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

/// Issue 12, item 11: a data path that cannot work is refused, at the key
/// the operator wrote (line 3 is the first key after HEAD).
#[test]
fn umem_frames_cover_the_fill_ring_and_tx() {
    let t = |extra: &str| error(&HEAD.replace("[dataplane]", &format!("[dataplane]\n{extra}")));
    let need = "of at least fill_ring_size + tx_ring_size";
    // The fill ring as large as the UMEM leaves nothing for hand-over and
    // cross-port transmission.
    assert_eq!(
        t("fill_ring_size = 4096"),
        format!(
            "t.toml:2: dataplane.fill_ring_size: expected umem_frames (4096) {need} \
             (4096 + 2048 = 6144): frames wait in the fill ring for the kernel or are in \
             flight on TX, and hand-over and cross-port transmission need free frames \
             beyond the fill ring, got 4096"
        )
    );
    // umem_frames is named first when it was given: raising it is the fix.
    let e = t("fill_ring_size = 4096\numem_frames = 4096");
    assert!(
        e.starts_with("t.toml:3: dataplane.umem_frames: expected umem_frames (4096) "),
        "{e}"
    );
    let e = t("tx_ring_size = 4096");
    assert!(
        e.starts_with("t.toml:2: dataplane.tx_ring_size: ") && e.contains("(2048 + 4096 = 6144)"),
        "{e}"
    );
    let e = t("umem_frames = 2048\nfill_ring_size = 1024\ntx_ring_size = 2048");
    assert!(
        e.contains("dataplane.umem_frames") && e.contains("= 3072)"),
        "{e}"
    );
    // Exactly enough is enough.
    let ok = |extra: &str| parse(&HEAD.replace("[dataplane]", &format!("[dataplane]\n{extra}")));
    let c = ok("umem_frames = 2048\nfill_ring_size = 1024\ntx_ring_size = 1024").unwrap();
    assert_eq!(c.dataplane.tuning.frames_needed(), 2048);
    ok("umem_frames = 8192\nfill_ring_size = 4096\ntx_ring_size = 4096").unwrap();
}

#[test]
fn the_mtu_fits_a_frame_and_a_hand_over_buffer() {
    let t = |extra: &str| parse(&HEAD.replace("[dataplane]", &format!("[dataplane]\n{extra}")));
    // 2048-byte frames: 2048 - 256 headroom - 18 Ethernet and VLAN = 1774.
    assert_eq!(t("mtu = 1774").unwrap().dataplane.tuning.max_mtu(), 1774);
    assert_eq!(
        t("mtu = 1775").unwrap_err().to_string(),
        "t.toml:2: dataplane.mtu: expected an MTU of at most 1774 (a 2048-byte frame_size \
         less 256 bytes of headroom and 18 of Ethernet header and VLAN tag), got 1775"
    );
    // 4096-byte frames hold more, but a frame handed to another worker
    // must fit its 2048-byte buffer.
    assert_eq!(
        t("frame_size = 4096\nmtu = 2030")
            .unwrap()
            .dataplane
            .tuning
            .max_mtu(),
        2030
    );
    assert_eq!(
        t("frame_size = 4096\nmtu = 3000").unwrap_err().to_string(),
        "t.toml:3: dataplane.mtu: expected an MTU of at most 2030 (the buffers that hand \
         frames between workers hold 2048 bytes, 18 of them Ethernet header and VLAN tag), \
         got 3000"
    );
    // The default MTU fits the default frame.
    let d = t("").unwrap().dataplane;
    assert!(d.tuning.mtu_problem(u32::from(d.mtu)).is_none());
    assert!(d.tuning.mtu_problem(9000).is_some());
}

fn xdpvs_defense_default() -> crate::conn::Defense {
    crate::conn::Defense::default()
}

#[test]
fn flood_defence_keys() {
    use crate::conn::{Defense, Mode};
    let text = "[connections]\nunreplied_share = 0.25\ndefense_threshold = 0\n\
                drop_entry = 1\nsecure_tcp = 2\nsecure_tcp_timeout = 3\n";
    let c = parse(&format!("{HEAD}{text}")).unwrap();
    assert_eq!(
        c.connections.defense,
        Defense {
            unreplied_share: 250_000,
            threshold: 0,
            drop_entry: Mode::Auto,
            secure_tcp: Mode::On,
            secure_tcp_timeout: 3,
        }
    );
    let one = parse(&format!("{HEAD}[connections]\nunreplied_share = 1\n")).unwrap();
    assert_eq!(one.connections.defense.unreplied_share, 1_000_000);
    for (text, key) in [
        ("unreplied_share = 0", "connections.unreplied_share"),
        ("unreplied_share = 1.5", "connections.unreplied_share"),
        ("defense_threshold = -0.1", "connections.defense_threshold"),
        ("drop_entry = 3", "connections.drop_entry"),
        ("secure_tcp = \"on\"", "connections.secure_tcp"),
        ("secure_tcp_timeout = 0", "connections.secure_tcp_timeout"),
    ] {
        let err = error(&format!("{HEAD}[connections]\n{text}\n"));
        assert!(err.contains("t.toml") && err.contains(key), "{text}: {err}");
    }
}
