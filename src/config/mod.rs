//! The configuration file: its TOML format, its defaults and its validation.
//!
//! `config/xdpvs.toml` is the reference; every key is explained there. Reading
//! happens in two steps:
//!
//! 1. `raw`: serde reads the TOML into loosely typed tables whose leaves are
//!    `toml::Spanned<toml::Value>`. serde only enforces the shape (tables,
//!    lists, no unknown keys: a typo must not be silently ignored).
//! 2. `validate`: every leaf is converted, range-checked and cross-checked
//!    (duplicates, ports, address families) into the typed [`Config`]
//!    (`types`), judged by the [`rules`] it shares with the control socket.
//!    `validate` holds the entry points and the walk over the tables,
//!    `read` the typed value readers with their positions, `dataplane`
//!    and `services` the checks of their sections, `checks` the health
//!    keys of services, real servers and `[[services.reals.checks]]`.
//!
//! The files build on each other in one direction: `types` and `error` at
//! the bottom, `rules` on them, `raw` on its own, `read` on `raw` and
//! `error`, `dataplane` and `services` on `read` and the files below it,
//! `validate` on `read` and the files below it (it calls the section
//! checks as methods of the validator, without naming their files); this
//! file only declares them and re-exports what others use.
//!
//! Every error names the file, the line, the key path
//! (`services[1].reals[0].weight`, indices from 0) and what was expected, so
//! `xdpvs --config FILE --check` can be acted on without reading source code.
//! Validation stops at the first error, in document order.
//!
//! A [`Config`] that this module returns is internally consistent; what it
//! cannot know (does `eth1` exist, is core 3 online) is checked when the data
//! plane starts.

mod checks;
mod dataplane;
mod error;
mod raw;
mod read;
pub mod rules;
mod services;
mod types;
mod validate;

#[cfg(test)]
mod checks_tests;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, Location, Problem};
pub use types::{
    CheckConfig, CheckKind, CommandLine, DNS_RCODES, DNS_TYPES, DnsCheck, HttpCheck, RealHealth,
    ScriptCheck, ServiceHealth, UdpCheck, UrlCheck, Via,
};
pub use types::{
    CompleteChecksums, Config, Connections, Control, DEFAULT_SCHEDULER, DEFAULT_SOCKET, Daemon,
    Dataplane, Idle, Log, Metrics, Protocol, RealConfig, SCHEDULERS, ServiceConfig, Tuning,
    VIRTUAL_DRIVERS, XdpMode, ZeroCopy,
};

// Defined with the real server and the schedulers; re-exported for the
// file's users.
pub use crate::dest::Forward;
pub use crate::sched::SchedFlags;
