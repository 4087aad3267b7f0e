//! One test per construct: keepalived text in, the TOML's tables and the
//! notes out.

use std::path::Path;

use toml::Value;

use super::{Import, import_str};

fn import(text: &str) -> Import {
    import_str(
        text,
        Path::new("/nonexistent/k.conf"),
        &["eth1".to_owned()],
        None,
    )
}

/// The printed TOML, read back.
fn doc(i: &Import) -> toml::Table {
    i.toml.parse().unwrap_or_else(|e| panic!("{e}\n{}", i.toml))
}

fn services(i: &Import) -> Vec<toml::Table> {
    doc(i)
        .get("services")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s.as_table().unwrap().clone()).collect())
        .unwrap_or_default()
}

fn reals(s: &toml::Table) -> Vec<toml::Table> {
    s["reals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_table().unwrap().clone())
        .collect()
}

fn checks(r: &toml::Table) -> Vec<toml::Table> {
    r.get("checks")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|c| c.as_table().unwrap().clone()).collect())
        .unwrap_or_default()
}

/// The note at `line` (there must be exactly one).
fn note(i: &Import, line: u32) -> String {
    let at: Vec<&super::Note> = i.notes.iter().filter(|n| n.at.line == line).collect();
    assert_eq!(at.len(), 1, "notes at line {line}: {:?}", i.notes);
    at[0].to_string()
}

fn vs(body: &str) -> String {
    format!("virtual_server 198.18.1.1 80 {{\n{body}\n}}\n")
}

#[test]
fn a_virtual_server_and_its_settings() {
    let i = import(&vs(
        "  delay_loop 6\n  lb_algo sh\n  lb_kind DR\n  protocol UDP\n  \
         persistence_timeout 50\n  persistence_granularity 255.255.255.0\n  sh-port\n  \
         alpha\n  virtualhost www.example.com\n  inhibit_on_failure\n  quorum 2\n  \
         hysteresis 1\n  quorum_up \"/bin/up arg\"\n  quorum_down /bin/down\n  \
         real_server 198.18.2.11 80 {\n    weight 3\n    uthreshold 100\n    lthreshold 50\n  }",
    ));
    assert!(i.notes.is_empty(), "{:?}", i.notes);
    let d = doc(&i);
    assert_eq!(
        d["dataplane"]["interfaces"].as_array().unwrap()[0].as_str(),
        Some("eth1")
    );
    let s = &services(&i)[0];
    assert_eq!(s["proto"].as_str(), Some("udp"));
    assert_eq!(s["vip"].as_str(), Some("198.18.1.1:80"));
    assert_eq!(s["scheduler"].as_str(), Some("sh"));
    assert_eq!(s["persistence_timeout"].as_integer(), Some(50));
    assert_eq!(s["persistence_netmask"].as_str(), Some("255.255.255.0"));
    assert_eq!(
        s["scheduler_flags"].as_array().unwrap()[0].as_str(),
        Some("sh-port")
    );
    assert_eq!(s["delay_loop"].as_integer(), Some(6));
    assert_eq!(s["alpha"].as_bool(), Some(true));
    assert_eq!(s["virtualhost"].as_str(), Some("www.example.com"));
    assert_eq!(s["inhibit_on_failure"].as_bool(), Some(true));
    assert_eq!(s["quorum"].as_integer(), Some(2));
    assert_eq!(s["hysteresis"].as_integer(), Some(1));
    assert_eq!(s["quorum_up"].as_str(), Some("/bin/up arg"));
    assert_eq!(s["quorum_down"].as_str(), Some("/bin/down"));
    let r = &reals(s)[0];
    assert_eq!(r["addr"].as_str(), Some("198.18.2.11:80"));
    assert_eq!(r["forward"].as_str(), Some("dr"));
    assert_eq!(r["weight"].as_integer(), Some(3));
    assert_eq!(r["upper_threshold"].as_integer(), Some(100));
    assert_eq!(r["lower_threshold"].as_integer(), Some(50));
    assert_eq!((i.services, i.reals), (1, 1));
}

#[test]
fn defaults_are_keepalived_s() {
    // NAT, TCP, wlc; a real server without a port takes the VIP's.
    let i = import(&vs(
        "  real_server 198.18.2.11 {\n  }\n  persistence_timeout",
    ));
    let s = &services(&i)[0];
    assert_eq!(s["proto"].as_str(), Some("tcp"));
    assert_eq!(s["scheduler"].as_str(), Some("wlc"));
    assert_eq!(s["persistence_timeout"].as_integer(), Some(360));
    let r = &reals(s)[0];
    assert_eq!(r["forward"].as_str(), Some("nat"));
    assert_eq!(r["addr"].as_str(), Some("198.18.2.11:80"));
    assert_eq!(r["weight"].as_integer(), Some(1));
}

#[test]
fn per_real_forwarding_and_tunnel_types() {
    let i = import(&vs(
        "  lb_kind TUN type gue port 6080\n  real_server 198.18.2.11 80 {\n  }\n  \
         real_server 198.18.2.12 80 {\n    lvs_method DR\n  }",
    ));
    let rs = reals(&services(&i)[0]);
    assert_eq!(rs[0]["forward"].as_str(), Some("tun"));
    assert_eq!(rs[1]["forward"].as_str(), Some("dr"));
    assert!(note(&i, 2).contains("IPIP only"), "{:?}", i.notes);
}

#[test]
fn dr_cannot_change_the_port_so_the_checks_keep_it() {
    let i = import(&vs(
        "  lb_kind DR\n  real_server 198.18.2.11 8080 {\n    TCP_CHECK {\n    }\n  }",
    ));
    let r = &reals(&services(&i)[0])[0];
    assert_eq!(r["addr"].as_str(), Some("198.18.2.11:80"));
    assert_eq!(checks(r)[0]["connect_port"].as_integer(), Some(8080));
    assert!(note(&i, 3).contains("does not change the port"));
}

#[test]
fn unknown_scheduler_and_protocol_are_named() {
    let i = import(&vs(
        "  lb_algo fo\n  protocol SCTP\n  real_server 198.18.2.11 80 {\n  }",
    ));
    let s = &services(&i)[0];
    assert_eq!(s["scheduler"].as_str(), Some("wlc"));
    assert!(note(&i, 2).contains("no \"fo\" scheduler"), "{:?}", i.notes);
    assert!(note(&i, 3).contains("TCP and UDP only"));
}

#[test]
fn unsupported_keys_are_named_one_by_one() {
    let i = import(&vs(
        "  ha_suspend\n  frobnicate 3\n  real_server 198.18.2.11 80 {\n    \
         smtp_alert yes\n    bogus\n    notify_up /bin/up nobody\n  }",
    ));
    for line in [2, 3, 5, 6, 7] {
        let n = note(&i, line);
        assert!(n.starts_with("/nonexistent/k.conf:"), "{n}");
    }
    assert!(note(&i, 3).contains("frobnicate 3: unknown"));
    assert!(note(&i, 7).contains("user (and group) per script"));
    let r = &reals(&services(&i)[0])[0];
    assert_eq!(r["notify_up"].as_str(), Some("/bin/up"));
}

#[test]
fn non_lvs_blocks_are_one_line_each() {
    let i = import(
        "global_defs {\n  router_id x\n  notification_email {\n    a@b\n  }\n}\n\
         vrrp_instance VI_1 {\n  state MASTER\n}\nstatic_routes {\n  198.18.0.0/24 dev x\n}\n",
    );
    assert_eq!(i.notes.len(), 3, "{:?}", i.notes);
    for line in [1, 7, 10] {
        assert!(note(&i, line).contains("not a virtual server (ignored)"));
    }
    assert_eq!(i.services, 0);
}

#[test]
fn fwmark_services_are_refused() {
    let i = import("virtual_server fwmark 1 {\n  real_server 198.18.2.11 80 {\n  }\n}\n");
    assert_eq!(i.services, 0);
    assert!(note(&i, 1).contains("fwmark services are not supported"));
}

#[test]
fn a_group_is_one_service_per_member() {
    let i = import(
        "virtual_server_group G {\n  198.18.1.1-3 80\n  198.18.1.9 443\n  fwmark 7\n}\n\
         virtual_server group G {\n  real_server 198.18.2.11 80 {\n  }\n}\n",
    );
    let vips: Vec<String> = services(&i)
        .iter()
        .map(|s| s["vip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        vips,
        [
            "198.18.1.1:80",
            "198.18.1.2:80",
            "198.18.1.3:80",
            "198.18.1.9:443"
        ]
    );
    assert!(note(&i, 4).contains("fwmark members"));
    let missing = import("virtual_server group H {\n  real_server 198.18.2.11 80 {\n  }\n}\n");
    assert!(note(&missing, 1).contains("no virtual_server_group"));
}

#[test]
fn sorry_server_takes_the_service_s_forwarding() {
    let i = import(&vs(
        "  lb_kind DR\n  sorry_server 198.18.2.99 80\n  sorry_server_inhibit\n  \
         real_server 198.18.2.11 80 {\n  }",
    ));
    let s = &services(&i)[0];
    let sorry = s["sorry_server"].as_table().unwrap();
    assert_eq!(sorry["addr"].as_str(), Some("198.18.2.99:80"));
    assert_eq!(sorry["forward"].as_str(), Some("dr"));
    assert_eq!(sorry["weight"].as_integer(), Some(1));
    assert_eq!(s["sorry_server_inhibit"].as_bool(), Some(true));
    let nat = import(&vs(
        "  sorry_server 198.18.2.99 8080\n  sorry_server_lvs_method NAT\n  \
         real_server 198.18.2.11 80 {\n  }",
    ));
    let sorry = services(&nat)[0]["sorry_server"]
        .as_table()
        .unwrap()
        .clone();
    assert_eq!(sorry["addr"].as_str(), Some("198.18.2.99:8080"));
    assert_eq!(sorry["forward"].as_str(), Some("nat"));
}

#[test]
fn tcp_check_with_the_cascade() {
    let i = import(&vs("  delay_loop 10\n  retry 4\n  connect_timeout 7\n  \
         real_server 198.18.2.11 80 {\n    delay_before_retry 2\n    inhibit_on_failure\n    \
         TCP_CHECK {\n      connect_ip 198.18.2.21\n      connect_port 81\n      bindto 198.18.2.2\n      \
         bind_port 5000\n      delay_loop 3\n      alpha\n    }\n  }"));
    assert!(i.notes.is_empty(), "{:?}", i.notes);
    let r = &reals(&services(&i)[0])[0];
    assert_eq!(r["inhibit_on_failure"].as_bool(), Some(true));
    let c = &checks(r)[0];
    assert_eq!(c["kind"].as_str(), Some("tcp"));
    assert_eq!(c["connect_ip"].as_str(), Some("198.18.2.21"));
    assert_eq!(c["connect_port"].as_integer(), Some(81));
    assert_eq!(c["bindto"].as_str(), Some("198.18.2.2"));
    assert_eq!(c["bind_port"].as_integer(), Some(5000));
    assert_eq!(c["interval"].as_integer(), Some(3));
    assert_eq!(c["retry"].as_integer(), Some(4));
    assert_eq!(c["connect_timeout"].as_integer(), Some(7));
    assert_eq!(c["delay_before_retry"].as_integer(), Some(2));
    assert_eq!(c["alpha"].as_bool(), Some(true));
}

#[test]
fn http_and_ssl_get() {
    let i = import(&vs(
        "  real_server 198.18.2.11 80 {\n    virtualhost rs.example\n    \
         HTTP_GET {\n      url {\n        path /health\n        digest 640205B7B0FC66C1EA91C463FAC6334D\n        \
         status_code 200 300-399\n        regex \"OK\"\n      }\n      nb_get_retry 2\n    }\n    \
         SSL_GET {\n      enable_sni\n      url {\n        path /\n        virtualhost tls.example\n      }\n    }\n  }",
    ));
    assert!(i.notes.is_empty(), "{:?}", i.notes);
    let cs = checks(&reals(&services(&i)[0])[0]);
    let http = &cs[0];
    assert_eq!(http["kind"].as_str(), Some("http"));
    assert_eq!(http["retry"].as_integer(), Some(2));
    assert_eq!(http["delay_before_retry"].as_integer(), Some(3));
    assert_eq!(http["virtualhost"].as_str(), Some("rs.example"));
    let url = http["urls"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(url["path"].as_str(), Some("/health"));
    assert_eq!(
        url["digest"].as_str(),
        Some("640205b7b0fc66c1ea91c463fac6334d")
    );
    let status = url["status"].as_array().unwrap();
    assert_eq!(status[0].as_integer(), Some(200));
    assert_eq!(status[1].as_str(), Some("300-399"));
    assert_eq!(url["regex"].as_str(), Some("OK"));
    let https = &cs[1];
    assert_eq!(https["kind"].as_str(), Some("https"));
    assert_eq!(https["sni"].as_bool(), Some(true));
    let plain = import(&vs(
        "  real_server 198.18.2.11 80 {\n    SSL_GET {\n      url {\n        path /\n      }\n    }\n  }",
    ));
    let c = &checks(&reals(&services(&plain)[0])[0])[0];
    assert_eq!(
        c["sni"].as_bool(),
        Some(false),
        "keepalived sends no SNI by default"
    );
    assert_eq!(https["virtualhost"].as_str(), Some("tls.example"));
}

#[test]
fn misc_check() {
    let i = import(&vs(
        "  delay_loop 20\n  real_server 198.18.2.11 80 {\n    MISC_CHECK {\n      \
         misc_path \"/bin/check 'a b' c\"\n      misc_timeout 4\n      misc_dynamic\n      user nobody\n    }\n    \
         MISC_CHECK {\n      misc_path /bin/true\n    }\n    MISC_CHECK {\n    }\n  }",
    ));
    let cs = checks(&reals(&services(&i)[0])[0]);
    assert_eq!(cs.len(), 2, "the check without misc_path is refused");
    assert_eq!(cs[0]["kind"].as_str(), Some("script"));
    assert_eq!(cs[0]["command"].as_str(), Some("/bin/check 'a b' c"));
    assert_eq!(cs[0]["timeout"].as_integer(), Some(4));
    assert_eq!(cs[0]["dynamic"].as_bool(), Some(true));
    assert_eq!(cs[0]["user"].as_str(), Some("nobody"));
    assert_eq!(
        cs[0]["retry"].as_integer(),
        Some(0),
        "MISC_CHECK retries 0 times"
    );
    assert_eq!(
        cs[1]["timeout"].as_integer(),
        Some(20),
        "keepalived's timeout is delay_loop"
    );
    assert!(note(&i, 13).contains("misc_path is missing"));
}

#[test]
fn udp_and_dns_checks() {
    let i = import(
        "virtual_server 198.18.1.1 53 {\n  protocol UDP\n  delay_loop 5\n  \
         real_server 198.18.2.11 53 {\n    UDP_CHECK {\n      payload 68 656c6c6f\n      require_reply\n    }\n    \
         DNS_CHECK {\n      type a\n      name example.com\n    }\n    DNS_CHECK {\n    }\n  }\n}\n",
    );
    assert!(i.notes.is_empty(), "{:?}", i.notes);
    let cs = checks(&reals(&services(&i)[0])[0]);
    assert_eq!(cs[0]["kind"].as_str(), Some("udp"));
    assert_eq!(cs[0]["payload"].as_str(), Some("68656c6c6f"));
    assert_eq!(cs[0]["require_reply"].as_bool(), Some(true));
    assert_eq!(cs[1]["kind"].as_str(), Some("dns"));
    assert_eq!(cs[1]["query_type"].as_str(), Some("A"));
    assert_eq!(cs[1]["query_name"].as_str(), Some("example.com"));
    assert_eq!(cs[1]["rcode"].as_str(), Some("NOERROR"));
    assert_eq!(
        cs[1]["retry"].as_integer(),
        Some(3),
        "DNS_CHECK retries 3 times"
    );
    assert_eq!(
        cs[1]["delay_before_retry"].as_integer(),
        Some(5),
        "and waits delay_loop"
    );
    assert_eq!(cs[2]["query_type"].as_str(), Some("SOA"));
    assert_eq!(cs[2]["query_name"].as_str(), Some("."));
}

#[test]
fn checkers_xdpvs_lacks_are_named() {
    let i = import(&vs(
        "  real_server 198.18.2.11 80 {\n    SMTP_CHECK {\n      helo_name x\n    }\n    \
         PING_CHECK {\n    }\n    TCP_CHECK {\n      warmup 3\n    }\n  }",
    ));
    assert!(note(&i, 3).contains("no SMTP_CHECK checker"));
    assert!(note(&i, 6).contains("no PING_CHECK checker"));
    assert!(note(&i, 9).contains("warmup 3: no random start delay"));
    assert_eq!(checks(&reals(&services(&i)[0])[0]).len(), 1);
}

#[test]
fn fractional_timers_round_up_and_say_so() {
    let i = import(&vs("  delay_loop 2.5\n  real_server 198.18.2.11 80 {\n  }"));
    assert_eq!(services(&i)[0]["delay_loop"].as_integer(), Some(3));
    assert!(note(&i, 2).contains("whole seconds: 3 used"));
}

#[test]
fn a_service_without_real_servers_is_not_printed() {
    let i = import(&vs("  delay_loop 6"));
    assert_eq!(i.services, 0);
    assert!(note(&i, 1).contains("no real server that converts"));
    // A real server of the wrong family is refused by the shared rules.
    let i = import(&vs("  real_server 2001:db8::11 80 {\n  }"));
    assert_eq!(i.services, 0);
    assert!(note(&i, 2).contains("VIP's family"), "{:?}", i.notes);
}

#[test]
fn a_repeated_service_is_named_at_its_second_definition() {
    let one = vs("  real_server 198.18.2.11 80 {\n  }");
    let i = import(&format!("{one}{one}"));
    assert_eq!(i.services, 1);
    assert!(note(&i, 5).contains("already defined at /nonexistent/k.conf:1"));
}

#[test]
fn output_is_a_config_without_health_keys() {
    // The keys this branch's config already knows parse as a Config; the
    // health keys are added by the checker engine's work.
    let i = import(&vs(
        "  lb_kind DR\n  real_server 198.18.2.11 80 {\n    weight 2\n  }",
    ));
    let cfg = crate::config::Config::from_str_named(&i.toml, "converted").expect("parses");
    assert_eq!(cfg.dataplane.interfaces, ["eth1"]);
    assert_eq!(cfg.services[0].reals[0].weight, 2);
}

#[test]
fn parameter_definitions_are_named() {
    let i =
        import("$RS=198.18.2.11\nvirtual_server 198.18.1.1 80 {\n  real_server $RS 80 {\n  }\n}\n");
    assert!(note(&i, 1).contains("parameter definitions are not supported"));
    assert!(note(&i, 3).contains("\"$RS\" is not an IP address"));
    assert_eq!(i.services, 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any text, however broken: notes, never a panic, and whatever is
    /// printed is TOML.
    #[test]
    fn any_text_converts_without_panicking(
        words in proptest::collection::vec(
            proptest::sample::select(vec![
                "virtual_server", "real_server", "virtual_server_group", "group", "fwmark",
                "198.18.1.1", "198.18.2.11", "198.18.1.1-300", "2001:db8::1", "80", "0", "x",
                "{", "}", "\n", "\"", "'", "#", "!", "\\", "@a", "TCP_CHECK", "HTTP_GET", "url",
                "path", "/", "status_code", "200-100", "lb_kind", "DR", "TUN", "lb_algo", "mh",
                "persistence_timeout", "persistence_granularity", "255.0.255.0", "sorry_server",
                "delay_loop", "2.5", "-1", "MISC_CHECK", "misc_path", "UDP_CHECK", "payload",
                "zz", "include", "*", "DNS_CHECK", "type", "quorum", "weight", "99999999999",
            ]),
            0..80,
        )
    ) {
        let text = words.join(" ");
        let i = import(&text);
        let _: toml::Table = i.toml.parse().expect("TOML");
    }
}
