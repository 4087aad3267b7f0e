//! The fuzz targets' harnesses, one module per target; `fuzz_targets/`
//! holds one-line libFuzzer entry points that call `MODULE::run`. Every
//! harness is deterministic (no clock, no randomness, no I/O) and checks
//! its invariants with `assert!`: a failed one is a crash to libFuzzer.
//!
//! `cargo test` here replays the committed corpora (`corpus/TARGET/`)
//! through the same functions, without libFuzzer or a sanitizer.

pub mod adm;
pub mod config;
pub mod ctrl;
pub mod ftp;
pub mod icmp;
pub mod pipeline;

/// A target's entry point: one input.
pub type Target = fn(&[u8]);

/// The targets, by name, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("pipeline", pipeline::run),
    ("icmp", icmp::run),
    ("ftp", ftp::run),
    ("ctrl", ctrl::run),
    ("adm", adm::run),
    ("config", config::run),
];

#[cfg(test)]
mod tests;
