//! The health-check keys: defaults resolved from the service and the real
//! server, every kind's keys, and errors that name the key.

use std::time::Duration;

use super::*;

const HEAD: &str = "[dataplane]\ninterfaces = [\"eth1\"]\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_named(text, "t.toml")
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// A service (lines 3-6: `service` keys on line 6), a real server
/// (lines 7-8) and one check (from line 10) with `check`.
fn doc(service: &str, check: &str) -> String {
    format!(
        "{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\n{service}\n\
         [[services.reals]]\naddr = \"198.18.2.11:80\"\n[[services.reals.checks]]\n{check}\n"
    )
}

fn first_check(text: &str) -> CheckConfig {
    let config = parse(text).unwrap();
    config.services[0].reals[0].health.checks[0].clone()
}

#[test]
fn defaults_come_from_the_service_and_the_real() {
    let check = first_check(&doc(
        "delay_loop = 3\nalpha = true\nvirtualhost = \"www.example.test\"",
        "kind = \"http\"",
    ));
    assert_eq!(check.interval, Duration::from_secs(3));
    assert!(check.alpha);
    assert_eq!(check.connect_ip, "198.18.2.11");
    assert_eq!(check.connect_port, 80);
    assert_eq!(check.connect_timeout, Duration::from_secs(5));
    assert_eq!((check.retry, check.rise, check.fall), (1, 1, 1));
    assert_eq!(check.delay_before_retry, Duration::from_secs(1));
    assert_eq!(check.via, Via::Direct);
    let CheckKind::Http(http) = check.kind else {
        panic!("not http")
    };
    assert_eq!(http.virtualhost.as_deref(), Some("www.example.test"));
    assert_eq!(http.urls.len(), 1);
    assert_eq!(http.urls[0].path, "/");
    assert_eq!(http.urls[0].status, [(200, 299)]);
    assert!(http.sni && !http.verify_certificate);

    // Without any key: keepalived's delay_loop, no alpha.
    let check = first_check(&doc("", "kind = \"tcp\""));
    assert_eq!(check.interval, Duration::from_secs(60));
    assert!(!check.alpha);
    assert_eq!(check.kind, CheckKind::Tcp);
}

#[test]
fn every_check_key() {
    let check = first_check(&doc(
        "",
        "kind = \"https\"\ninterval = 0.5\nconnect_timeout = 2\nretry = 3\n\
         delay_before_retry = 0\nrise = 2\nfall = 4\nalpha = true\nbindto = \"198.18.2.2\"\n\
         bind_port = 40000\nconnect_ip = \"rs1.example.test\"\nconnect_port = 8443\n\
         via = \"direct\"\n\
         urls = [ { path = \"/h\", status = [200, \"300-399\"], \
         digest = \"0123456789abcdef0123456789ABCDEF\", regex = \"O[K]\" }, { path = \"/b\" } ]\n\
         virtualhost = \"v.test\"\nsni = false\nverify_certificate = true\nca_file = \"/etc/ca.pem\"",
    ));
    assert_eq!(check.interval, Duration::from_millis(500));
    assert_eq!(check.connect_timeout, Duration::from_secs(2));
    assert_eq!((check.retry, check.rise, check.fall), (3, 2, 4));
    assert_eq!(check.delay_before_retry, Duration::ZERO);
    assert!(check.alpha);
    assert_eq!(check.bindto, Some("198.18.2.2".parse().unwrap()));
    assert_eq!(check.bind_port, Some(40000));
    assert_eq!(check.connect_ip, "rs1.example.test");
    assert_eq!(check.connect_port, 8443);
    assert_eq!(check.via, Via::Direct);
    let CheckKind::Https(http) = check.kind else {
        panic!("not https")
    };
    assert_eq!(http.urls[0].status, [(200, 200), (300, 399)]);
    assert_eq!(
        http.urls[0].digest,
        Some([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef
        ])
    );
    assert_eq!(http.urls[0].regex.as_deref(), Some("O[K]"));
    assert_eq!(http.urls[1].status, [(200, 299)]);
    assert_eq!(http.virtualhost.as_deref(), Some("v.test"));
    assert!(!http.sni && http.verify_certificate);
    assert_eq!(
        http.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );

    let check = first_check(&doc(
        "",
        "kind = \"script\"\ncommand = \"/usr/bin/check a 'b c'\"\ntimeout = 3\ndynamic = true\n\
         user = \"nobody\"",
    ));
    let CheckKind::Script(script) = check.kind else {
        panic!("not a script")
    };
    assert_eq!(script.command.argv, ["/usr/bin/check", "a", "b c"]);
    assert_eq!(script.timeout, Duration::from_secs(3));
    assert!(script.dynamic);
    assert_eq!(script.user.as_deref(), Some("nobody"));

    let check = first_check(&doc(
        "",
        "kind = \"udp\"\npayload = \"68656c6c6f\"\nrequire_reply = true",
    ));
    assert_eq!(
        check.kind,
        CheckKind::Udp(UdpCheck {
            payload: b"hello".to_vec(),
            require_reply: true
        })
    );

    let check = first_check(&doc(
        "",
        "kind = \"dns\"\nquery_name = \"example.com\"\nquery_type = \"AAAA\"\nrcode = \"NXDOMAIN\"",
    ));
    assert_eq!(
        check.kind,
        CheckKind::Dns(DnsCheck {
            query_name: "example.com".to_owned(),
            query_type: 28,
            rcode: 3
        })
    );
}

#[test]
fn real_server_keys() {
    let text = format!(
        "{HEAD}[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\ninhibit_on_failure = true\n\
         [[services.reals]]\naddr = \"198.18.2.11:80\"\nnotify_up = \"/bin/up 'x y'\"\n\
         notify_down = \"/bin/down\"\n\
         [[services.reals]]\naddr = \"198.18.2.12:80\"\ninhibit_on_failure = false\n"
    );
    let config = parse(&text).unwrap();
    let reals = &config.services[0].reals;
    assert!(reals[0].health.inhibit_on_failure);
    assert_eq!(
        reals[0].health.notify_up.as_ref().unwrap().argv,
        ["/bin/up", "x y"]
    );
    assert_eq!(
        reals[0].health.notify_down.as_ref().unwrap().text,
        "/bin/down"
    );
    assert!(reals[0].health.checks.is_empty());
    assert!(!reals[1].health.inhibit_on_failure);
    assert!(config.services[0].health.inhibit_on_failure);
}

#[test]
fn errors_name_the_key() {
    let at = "t.toml:10: services[0].reals[0].checks[0]";
    assert_eq!(
        error(&doc("", "kind = \"ping\"")),
        format!(
            "{at}.kind: expected one of \"tcp\", \"http\", \"https\", \"script\", \"udp\", \"dns\", got \"ping\""
        )
    );
    assert_eq!(
        error(&doc("", "kind = \"tcp\"\nurls = [{ path = \"/\" }]")),
        "t.toml:11: services[0].reals[0].checks[0].urls: urls is only valid with kind = \
         \"http\" or \"https\", not \"tcp\""
    );
    assert_eq!(
        error(&doc("", "kind = \"http\"\nvia = \"forwarding\"")),
        "t.toml:11: services[0].reals[0].checks[0].via: via = \"forwarding\" is only valid \
         with kind = \"tcp\", not \"http\""
    );
    assert_eq!(
        error(&doc("", "kind = \"tcp\"\nfall = 0")),
        format!(
            "t.toml:11: services[0].reals[0].checks[0].fall: expected an integer 1..=1000, got 0"
        )
    );
    assert_eq!(
        error(&doc("", "kind = \"tcp\"\ninterval = 0")),
        "t.toml:11: services[0].reals[0].checks[0].interval: expected seconds, above 0 up to 86400, got 0"
    );
    assert!(
        error(&doc("", "kind = \"script\"")).contains("checks[0].command: required key is missing")
    );
    assert!(
        error(&doc("", "kind = \"script\"\ncommand = \"/bin/x 'open\"")).starts_with(
            "t.toml:11: services[0].reals[0].checks[0].command: expected a command line"
        )
    );
    assert!(
        error(&doc(
            "",
            "kind = \"http\"\nurls = [{ path = \"/\", status = [\"300-200\"] }]"
        ))
        .contains("checks[0].urls[0].status[0]: expected a status code")
    );
    assert!(
        error(&doc(
            "",
            "kind = \"http\"\nurls = [{ path = \"/\", digest = \"abc\" }]"
        ))
        .contains("urls[0].digest: expected an MD5 digest")
    );
    assert!(
        error(&doc(
            "",
            "kind = \"http\"\nurls = [{ path = \"/\", regex = \"(\" }]"
        ))
        .contains("urls[0].regex: expected a regular expression")
    );
    assert!(
        error(&doc("", "kind = \"http\"\nurls = [{ status = [200] }]")).contains("urls[0].path")
    );
    assert!(
        error(&doc("", "kind = \"udp\"\npayload = \"6\""))
            .contains("checks[0].payload: expected hex")
    );
    assert!(error(&doc("", "kind = \"dns\"")).contains("checks[0].query_name: required key"));
    assert!(
        error(&doc("", "kind = \"dns\"\nquery_name = \"a..b\"")).contains("checks[0].query_name")
    );
    assert!(
        error(&doc("", "kind = \"tcp\"\nbindto = \"2001:db8::1\""))
            .contains("checks[0].bindto: expected an address of the VIP's family")
    );
    assert!(error(&doc("", "kind = \"tcp\"\nvia = \"tunnel\"")).contains("checks[0].via"));
    assert!(error(&doc("", "kind = \"tcp\"\nprot = 1")).contains("unknown field `prot`"));
    assert!(error(&doc("delay_loop = -1", "kind = \"tcp\"")).contains("services[0].delay_loop"));
    assert!(error(&doc("", "")).contains("checks[0].kind: required key is missing"));
}
