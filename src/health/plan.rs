//! What the Monitor checks ([`Target`]), what it reports ([`Verdict`]),
//! and [`plan`], which reads the targets out of a configuration.

use std::net::SocketAddr;

use crate::config::{CheckConfig, Config, Forward, Protocol};

/// A real server to check, with its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub proto: Protocol,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub forward: Forward,
    /// At least one; all must pass for the real server to be up.
    pub checks: Vec<CheckConfig>,
    /// The `[dataplane]` settings a `via = "forwarding"` check follows.
    pub dataplane: super::via::Path,
}

/// A change of a target's state (or its initial state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub proto: Protocol,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    /// The real server's new state (all its checks).
    pub up: bool,
    /// misc_dynamic's weight while up; `None`: the configured weight.
    pub weight: Option<u32>,
    /// The check that made the change, e.g. "HTTP_GET 198.18.2.11:80/health".
    pub check: String,
    /// Why, e.g. "status 500 not in 200-299", "connect: Connection refused".
    pub reason: String,
}

/// Every real server of `cfg` with at least one check, in file order.
pub fn plan(cfg: &Config) -> Vec<Target> {
    cfg.services
        .iter()
        .flat_map(|service| {
            service
                .reals
                .iter()
                .filter(|real| !real.health.checks.is_empty())
                .map(|real| Target {
                    proto: service.proto,
                    vip: service.vip,
                    real: real.addr,
                    forward: real.forward,
                    checks: real.health.checks.clone(),
                    dataplane: super::via::Path::from(&cfg.dataplane),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_with_a_check_is_a_target() {
        let text = "[dataplane]\ninterfaces = [\"eth1\"]\n\
            [[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:80\"\ndelay_loop = 2\n\
            [[services.reals]]\naddr = \"198.18.2.11:80\"\n\
            [[services.reals.checks]]\nkind = \"tcp\"\n\
            [[services.reals.checks]]\nkind = \"http\"\n\
            [[services.reals]]\naddr = \"198.18.2.12:80\"\nforward = \"nat\"\n";
        let cfg = Config::from_str_named(text, "t.toml").unwrap();
        let targets = plan(&cfg);
        assert_eq!(targets.len(), 1);
        let t = &targets[0];
        assert_eq!(t.real, "198.18.2.11:80".parse().unwrap());
        assert_eq!((t.proto, t.forward), (Protocol::Tcp, Forward::Dr));
        assert_eq!(t.checks.len(), 2);
        assert!(t.checks.iter().all(|c| c.interval.as_secs() == 2));
    }
}
