//! The configuration parser (target `config`).
//!
//! The input is a configuration file's text. Checked: no panic; an error
//! names the file (its message starts with the name given); a valid file
//! builds its service table, and its services come out as configured.

use xdpvs::config::Config;
use xdpvs::service::{Port, ServiceTable};

const NAME: &str = "fuzz.toml";

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str_named(text, NAME) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(NAME), "an error names the file: {msg}");
        }
        Ok(cfg) => {
            let ports = vec![Port {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                complete_checksums: false,
            }];
            // A validated file builds (the daemon would start with it).
            let t = ServiceTable::from_config(&cfg, ports, 1)
                .unwrap_or_else(|e| panic!("a valid configuration does not build: {e}"));
            assert_eq!(t.services().count(), cfg.services.len(), "every service");
        }
    }
}
