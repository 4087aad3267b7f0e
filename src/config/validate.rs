//! From the raw tables to a typed, consistent [`Config`], or the first error.
//!
//! Checks run in document order and stop at the first failure. Each check
//! reports at the position of the value it rejects; a missing key is reported
//! at the header of the table it is missing from.
//!
//! This file holds the entry points, toml's own errors (syntax and shape)
//! and the walk over the document's tables; `read` holds the [`Source`]
//! being validated, its positions and the typed value readers; `dataplane`
//! and `services` hold the checks of their sections, as further
//! `impl Source` blocks. The section files import `read`, never this file;
//! this file calls their checks as methods, without naming their files.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Problem};
use super::raw::RawConfig;
use super::read::{Result, Source};
use super::types::{Config, Connections, Control, Daemon, Log, Metrics};

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn from_file(path: &Path) -> Result<Config> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        Config::from_str_named(&text, &name)
    }

    /// Parses and validates `text`; `name` stands for the file in messages.
    ///
    /// ```
    /// use xdpvs::config::Config;
    ///
    /// let text = "[dataplane]\ninterfaces = [\"eth1\"]\n";
    /// let config = Config::from_str_named(text, "inline").unwrap();
    /// assert_eq!(config.dataplane.batch_size, 64);
    ///
    /// let text = "[dataplane]\ninterfaces = [\"eth1\"]\nmtu = 100\n";
    /// let error = Config::from_str_named(text, "x.toml").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "x.toml:3: dataplane.mtu: expected an integer 576..=9000, got 100"
    /// );
    /// ```
    pub fn from_str_named(text: &str, name: &str) -> Result<Config> {
        parse(text, name)
    }
}

fn parse(text: &str, name: &str) -> Result<Config> {
    let src = Source { name, text };
    // The syntax is checked on its own first so that syntax errors keep
    // toml's message; the parsed tree then maps serde's error spans to keys.
    let doc = DeTable::parse(text).map_err(|e| src.syntax(&e))?;
    let raw: RawConfig = toml::from_str(text).map_err(|e| src.shape(&e, doc.get_ref()))?;
    src.config(raw)
}

impl Source<'_> {
    // ---- errors from toml ------------------------------------------------

    fn syntax(&self, error: &toml::de::Error) -> ConfigError {
        ConfigError::Syntax {
            at: self.location(error.span()),
            message: error.message().trim_end().to_owned(),
        }
    }

    /// An error from serde: wrong shape or an unknown key.
    fn shape(&self, error: &toml::de::Error, doc: &DeTable<'_>) -> ConfigError {
        let span = error.span();
        let key = span
            .as_ref()
            .and_then(|span| key_at(doc, span.start))
            .unwrap_or_else(|| "(top level)".to_owned());
        ConfigError::Invalid {
            at: self.location(span),
            key,
            problem: Problem::Shape {
                message: error.message().trim_end().to_owned(),
            },
        }
    }

    // ---- tables ------------------------------------------------------------

    fn config(&self, raw: RawConfig) -> Result<Config> {
        let dataplane = self.dataplane(raw.dataplane.as_ref())?;
        let connections = match &raw.connections {
            Some(table) => self.connections(table.get_ref())?,
            None => Connections::default(),
        };
        let control = match &raw.control {
            Some(table) => self.control(table.get_ref())?,
            None => Control::default(),
        };
        let log = match &raw.log {
            Some(table) => self.log(table.get_ref())?,
            None => Log::default(),
        };
        let daemon = match &raw.daemon {
            Some(table) => self.daemon(table.get_ref())?,
            None => Daemon::default(),
        };
        let metrics = match &raw.metrics {
            Some(table) => self.metrics(table.get_ref())?,
            None => Metrics::default(),
        };
        let services = self.services(raw.services.as_deref().unwrap_or(&[]))?;
        Ok(Config {
            dataplane,
            connections,
            control,
            log,
            daemon,
            metrics,
            services,
        })
    }
}

/// The key path of the smallest key or value in `doc` whose span holds `pos`.
///
/// Spans of tables written as `[header]` cover only the header, so the walk
/// cannot prune by containment; configuration files are small.
fn key_at(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    fn consider(span: Range<usize>, path: &str, pos: usize, best: &mut Option<(usize, String)>) {
        let holds = span.contains(&pos) || (span.is_empty() && span.start == pos);
        if holds && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
            *best = Some((span.len(), path.to_owned()));
        }
    }
    fn walk_value(
        value: &Spanned<DeValue<'_>>,
        path: &str,
        pos: usize,
        best: &mut Option<(usize, String)>,
    ) {
        consider(value.span(), path, pos, best);
        match value.get_ref() {
            DeValue::Table(table) => walk_table(table, path, pos, best),
            DeValue::Array(array) => {
                for (i, item) in array.iter().enumerate() {
                    walk_value(item, &format!("{path}[{i}]"), pos, best);
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        table: &DeTable<'_>,
        prefix: &str,
        pos: usize,
        best: &mut Option<(usize, String)>,
    ) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            consider(key.span(), &path, pos, best);
            walk_value(value, &path, pos, best);
        }
    }
    let mut best = None;
    walk_table(doc, "", pos, &mut best);
    best.map(|(_, path)| path)
}
