//! The health-check keys: a service's defaults (`delay_loop`, `alpha`,
//! `virtualhost`, `inhibit_on_failure`), a real server's
//! (`inhibit_on_failure`, `notify_up`, `notify_down`) and its
//! `[[services.reals.checks]]`. Every default is resolved here, so a
//! [`CheckConfig`] is complete: the service's settings fill in what a check
//! leaves out, the real server's address and port what `connect_ip` and
//! `connect_port` leave out. A key that belongs to another kind of check
//! (`urls` on a TCP check) is an error naming the key and the kind.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::{Spanned, Value};

use super::error::Problem;
use super::raw::{Leaf, RawCheck, RawReal, RawService, RawUrl};
use super::read::{Result, Source, is_unicast, one_of};
use super::types::{
    CheckConfig, CheckKind, CommandLine, DNS_RCODES, DNS_TYPES, DnsCheck, HttpCheck, RealHealth,
    ScriptCheck, ServiceHealth, UdpCheck, UrlCheck, Via,
};

/// The keys each kind accepts beyond the common ones.
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("tcp", &[]),
    ("http", &["urls", "virtualhost"]),
    (
        "https",
        &[
            "urls",
            "virtualhost",
            "sni",
            "verify_certificate",
            "ca_file",
        ],
    ),
    ("script", &["command", "timeout", "dynamic", "user"]),
    ("udp", &["payload", "require_reply"]),
    ("dns", &["query_name", "query_type", "rcode"]),
];

impl Source<'_> {
    /// A duration in seconds, an integer or a decimal (`0.5`), in
    /// `min..=ServiceHealth::MAX_SECONDS`.
    pub(super) fn seconds(&self, leaf: &Leaf, key: &str, min: f64) -> Result<Option<Duration>> {
        let max = f64::from(ServiceHealth::MAX_SECONDS);
        leaf.as_ref()
            .map(|value| {
                let v = value.get_ref();
                v.as_float()
                    .or_else(|| v.as_integer().map(|n| n as f64))
                    .filter(|s| s.is_finite() && *s >= min && *s <= max && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .filter(|d| min == 0.0 || !d.is_zero())
                    .ok_or_else(|| {
                        let lo = if min == 0.0 { "0" } else { "above 0" };
                        self.expected(value, key, format!("seconds, {lo} up to {max}"))
                    })
            })
            .transpose()
    }

    fn command_line(&self, leaf: &Leaf, key: &str) -> Result<Option<CommandLine>> {
        self.string(
            leaf,
            key,
            "a command line (words, quotes group words; no shell)",
            CommandLine::parse,
        )
    }

    fn nonempty(&self, leaf: &Leaf, key: &str, expected: &str) -> Result<Option<String>> {
        self.string(leaf, key, expected, |s| {
            (!s.is_empty() && !s.chars().any(char::is_control)).then(|| s.to_owned())
        })
    }

    /// The service's health keys.
    pub(super) fn service_health(&self, raw: &RawService, key: &str) -> Result<ServiceHealth> {
        let k = |name: &str| format!("{key}.{name}");
        let defaults = ServiceHealth::default();
        Ok(ServiceHealth {
            delay_loop: self
                .seconds(&raw.delay_loop, &k("delay_loop"), 0.001)?
                .unwrap_or(defaults.delay_loop),
            alpha: self.boolean(&raw.alpha, &k("alpha"))?.unwrap_or(false),
            virtualhost: self.nonempty(&raw.virtualhost, &k("virtualhost"), "a host name")?,
            inhibit_on_failure: self
                .boolean(&raw.inhibit_on_failure, &k("inhibit_on_failure"))?
                .unwrap_or(false),
        })
    }

    /// The real server's health keys and checks.
    pub(super) fn real_health(
        &self,
        raw: &RawReal,
        key: &str,
        service: &ServiceHealth,
        addr: SocketAddr,
    ) -> Result<RealHealth> {
        let k = |name: &str| format!("{key}.{name}");
        let mut checks = Vec::new();
        for (i, check) in raw.checks.as_deref().unwrap_or(&[]).iter().enumerate() {
            checks.push(self.check(check, &format!("{key}.checks[{i}]"), service, addr)?);
        }
        Ok(RealHealth {
            inhibit_on_failure: self
                .boolean(&raw.inhibit_on_failure, &k("inhibit_on_failure"))?
                .unwrap_or(service.inhibit_on_failure),
            notify_up: self.command_line(&raw.notify_up, &k("notify_up"))?,
            notify_down: self.command_line(&raw.notify_down, &k("notify_down"))?,
            checks,
        })
    }

    fn check(
        &self,
        table: &Spanned<RawCheck>,
        key: &str,
        service: &ServiceHealth,
        addr: SocketAddr,
    ) -> Result<CheckConfig> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let kinds: Vec<(&str, &str)> = KIND_KEYS.iter().map(|&(n, _)| (n, n)).collect();
        let kind = self.choice(&raw.kind, &k("kind"), &kinds)?.ok_or_else(|| {
            let expected = one_of(KIND_KEYS.iter().map(|(n, _)| n));
            self.missing(Some(table.span()), &k("kind"), &expected)
        })?;
        self.kind_keys(raw, key, kind)?;

        let defaults = CheckConfig::new(CheckKind::Tcp, addr);
        let interval = self.seconds(&raw.interval, &k("interval"), 0.001)?;
        let connect_timeout = self.seconds(&raw.connect_timeout, &k("connect_timeout"), 0.001)?;
        let max_retry = CheckConfig::MAX_RETRY;
        let retry = self.int(&raw.retry, &k("retry"), 0, max_retry)?;
        let delay = self.seconds(&raw.delay_before_retry, &k("delay_before_retry"), 0.0)?;
        let max_rf = CheckConfig::MAX_RISE_FALL;
        let rise = self.int(&raw.rise, &k("rise"), 1, max_rf)?;
        let fall = self.int(&raw.fall, &k("fall"), 1, max_rf)?;
        let alpha = self.boolean(&raw.alpha, &k("alpha"))?;
        let bindto = self.string(
            &raw.bindto,
            &k("bindto"),
            "a unicast address, e.g. \"198.18.2.2\"",
            |s| s.parse::<IpAddr>().ok().filter(|ip| is_unicast(*ip)),
        )?;
        if let (Some(ip), Some(leaf)) = (bindto, &raw.bindto)
            && ip.is_ipv4() != addr.is_ipv4()
        {
            let problem = Problem::AddressFamily {
                vip: addr.ip(),
                real: ip,
            };
            return Err(self.invalid(Some(leaf.span()), &k("bindto"), problem));
        }
        let bind_port = self.int(&raw.bind_port, &k("bind_port"), 1u16, u16::MAX)?;
        let connect_ip = self.nonempty(
            &raw.connect_ip,
            &k("connect_ip"),
            "an address or a host name",
        )?;
        let connect_port = self.int(&raw.connect_port, &k("connect_port"), 1u16, u16::MAX)?;
        if connect_port.is_none() && addr.port() == 0 && kind != "script" {
            let expected = "a port (the real server's is 0)";
            return Err(self.missing(Some(table.span()), &k("connect_port"), expected));
        }
        let via = self
            .choice(
                &raw.via,
                &k("via"),
                &[("direct", Via::Direct), ("forwarding", Via::Forwarding)],
            )?
            .unwrap_or_default();
        // The forwarding path's probe is a SYN (health::via): TCP only.
        if let (Via::Forwarding, Some(leaf)) = (via, &raw.via)
            && kind != "tcp"
        {
            let problem = Problem::KindOnly {
                what: "via = \"forwarding\"",
                kinds: "tcp",
                actual: kind,
            };
            return Err(self.invalid(Some(leaf.span()), &k("via"), problem));
        }

        let kind = match kind {
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::Http(self.http(raw, key, service)?),
            "https" => CheckKind::Https(self.http(raw, key, service)?),
            "script" => CheckKind::Script(self.script(table, key)?),
            "udp" => CheckKind::Udp(self.udp(raw, key)?),
            _ => CheckKind::Dns(self.dns(table, key)?),
        };
        Ok(CheckConfig {
            kind,
            interval: interval.unwrap_or(service.delay_loop),
            connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
            retry: retry.unwrap_or(defaults.retry),
            delay_before_retry: delay.unwrap_or(defaults.delay_before_retry),
            rise: rise.unwrap_or(1),
            fall: fall.unwrap_or(1),
            alpha: alpha.unwrap_or(service.alpha),
            bindto,
            bind_port,
            connect_ip: connect_ip.unwrap_or(defaults.connect_ip),
            connect_port: connect_port.unwrap_or(defaults.connect_port),
            via,
        })
    }

    /// Rejects a key that belongs to another kind of check.
    fn kind_keys(&self, raw: &RawCheck, key: &str, kind: &'static str) -> Result<()> {
        let present: [(&str, Option<std::ops::Range<usize>>); 14] = [
            ("urls", raw.urls.as_ref().map(Spanned::span)),
            ("virtualhost", span(&raw.virtualhost)),
            ("sni", span(&raw.sni)),
            ("verify_certificate", span(&raw.verify_certificate)),
            ("ca_file", span(&raw.ca_file)),
            ("command", span(&raw.command)),
            ("timeout", span(&raw.timeout)),
            ("dynamic", span(&raw.dynamic)),
            ("user", span(&raw.user)),
            ("payload", span(&raw.payload)),
            ("require_reply", span(&raw.require_reply)),
            ("query_name", span(&raw.query_name)),
            ("query_type", span(&raw.query_type)),
            ("rcode", span(&raw.rcode)),
        ];
        let allowed = KIND_KEYS
            .iter()
            .find(|(n, _)| *n == kind)
            .map_or(&[][..], |(_, keys)| keys);
        for (name, at) in present {
            if let Some(at) = at
                && !allowed.contains(&name)
            {
                let kinds = match name {
                    "urls" | "virtualhost" => "http\" or \"https",
                    "sni" | "verify_certificate" | "ca_file" => "https",
                    "command" | "timeout" | "dynamic" | "user" => "script",
                    "payload" | "require_reply" => "udp",
                    _ => "dns",
                };
                let problem = Problem::KindOnly {
                    what: name,
                    kinds,
                    actual: kind,
                };
                return Err(self.invalid(Some(at), &format!("{key}.{name}"), problem));
            }
        }
        Ok(())
    }

    fn http(&self, raw: &RawCheck, key: &str, service: &ServiceHealth) -> Result<HttpCheck> {
        let k = |name: &str| format!("{key}.{name}");
        let mut urls = Vec::new();
        match &raw.urls {
            Some(list) if !list.get_ref().is_empty() => {
                for (i, url) in list.get_ref().iter().enumerate() {
                    urls.push(self.url(url.get_ref(), url, &format!("{key}.urls[{i}]"))?);
                }
            }
            Some(list) => {
                let problem = Problem::Expected {
                    expected: "at least one URL, e.g. [{ path = \"/\" }]".to_owned(),
                    got: "an empty list".to_owned(),
                };
                return Err(self.invalid(Some(list.span()), &k("urls"), problem));
            }
            None => urls.push(UrlCheck {
                path: "/".to_owned(),
                status: vec![(200, 299)],
                digest: None,
                regex: None,
            }),
        }
        let virtualhost = self.nonempty(&raw.virtualhost, &k("virtualhost"), "a host name")?;
        let sni = self.boolean(&raw.sni, &k("sni"))?;
        let verify_certificate = self.boolean(&raw.verify_certificate, &k("verify_certificate"))?;
        let ca_file = self.nonempty(&raw.ca_file, &k("ca_file"), "a file name")?;
        Ok(HttpCheck {
            urls,
            virtualhost: virtualhost.or_else(|| service.virtualhost.clone()),
            sni: sni.unwrap_or(true),
            verify_certificate: verify_certificate.unwrap_or(false),
            ca_file: ca_file.map(PathBuf::from),
        })
    }

    fn url(&self, raw: &RawUrl, table: &Spanned<RawUrl>, key: &str) -> Result<UrlCheck> {
        let k = |name: &str| format!("{key}.{name}");
        let path = self
            .string(
                &raw.path,
                &k("path"),
                "a path starting with \"/\"",
                |s: &str| {
                    (s.starts_with('/') && !s.chars().any(|c| c.is_control() || c == ' '))
                        .then(|| s.to_owned())
                },
            )?
            .ok_or_else(|| self.missing(Some(table.span()), &k("path"), "a path, e.g. \"/\""))?;
        let expected = "a status code 100..=599 or a range \"A-B\"";
        let mut status = Vec::new();
        for (i, item) in raw
            .status
            .as_ref()
            .map_or(&[][..], |l| l.get_ref())
            .iter()
            .enumerate()
        {
            let key = format!("{key}.status[{i}]");
            let range = match item.get_ref() {
                Value::Integer(n) => u16::try_from(*n)
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .map(|c| (c, c)),
                Value::String(s) => s.split_once('-').and_then(|(a, b)| {
                    let a = a.trim().parse::<u16>().ok()?;
                    let b = b.trim().parse::<u16>().ok()?;
                    ((100..=599).contains(&a) && (a..=599).contains(&b)).then_some((a, b))
                }),
                _ => None,
            };
            status.push(range.ok_or_else(|| self.expected(item, &key, expected))?);
        }
        if status.is_empty() {
            status.push((200, 299));
        }
        let digest = self.string(
            &raw.digest,
            &k("digest"),
            "an MD5 digest, 32 hex digits",
            |s| {
                let bytes = hex(s)?;
                <[u8; 16]>::try_from(bytes).ok()
            },
        )?;
        let regex = self.string(
            &raw.regex,
            &k("regex"),
            "a regular expression (Rust regex syntax)",
            |s| regex::bytes::Regex::new(s).ok().map(|_| s.to_owned()),
        )?;
        Ok(UrlCheck {
            path,
            status,
            digest,
            regex,
        })
    }

    fn script(&self, table: &Spanned<RawCheck>, key: &str) -> Result<ScriptCheck> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let command = self
            .command_line(&raw.command, &k("command"))?
            .ok_or_else(|| {
                let expected = "the command to run, e.g. \"/usr/local/bin/check arg\"";
                self.missing(Some(table.span()), &k("command"), expected)
            })?;
        Ok(ScriptCheck {
            command,
            timeout: self
                .seconds(&raw.timeout, &k("timeout"), 0.001)?
                .unwrap_or(CheckConfig::DEFAULT_CONNECT_TIMEOUT),
            dynamic: self.boolean(&raw.dynamic, &k("dynamic"))?.unwrap_or(false),
            user: self.nonempty(&raw.user, &k("user"), "a user name")?,
        })
    }

    fn udp(&self, raw: &RawCheck, key: &str) -> Result<UdpCheck> {
        let k = |name: &str| format!("{key}.{name}");
        let payload = self.string(
            &raw.payload,
            &k("payload"),
            "hex digits (an even number, at most 1400 bytes)",
            |s| hex(s).filter(|b| b.len() <= 1400),
        )?;
        Ok(UdpCheck {
            payload: payload.unwrap_or_default(),
            require_reply: self
                .boolean(&raw.require_reply, &k("require_reply"))?
                .unwrap_or(false),
        })
    }

    fn dns(&self, table: &Spanned<RawCheck>, key: &str) -> Result<DnsCheck> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let query_name = self
            .string(
                &raw.query_name,
                &k("query_name"),
                "a domain name, e.g. \"example.com\"",
                |s| valid_domain(s).then(|| s.to_owned()),
            )?
            .ok_or_else(|| self.missing(Some(table.span()), &k("query_name"), "a domain name"))?;
        let query_type = self
            .choice(&raw.query_type, &k("query_type"), DNS_TYPES)?
            .unwrap_or(1);
        let rcode = self
            .choice(&raw.rcode, &k("rcode"), DNS_RCODES)?
            .unwrap_or(0);
        Ok(DnsCheck {
            query_name,
            query_type,
            rcode,
        })
    }
}

fn span(leaf: &Leaf) -> Option<std::ops::Range<usize>> {
    leaf.as_ref().map(Spanned::span)
}

/// Bytes of an even number of hex digits.
fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Labels of 1..=63 letters, digits, `-` or `_`, at most 253 characters;
/// a final dot allowed.
fn valid_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
