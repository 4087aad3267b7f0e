//! The validator's state and its readers: the text with its name, byte
//! offsets turned into file:line:column, the errors that carry them, and
//! the typed readers every table check uses.
//!
//! A reader takes one `toml` value (or a key that may be absent) and
//! returns it converted and range-checked, or an error at that value's
//! position that says what was expected and what was written. The table
//! checks (`dataplane`, `services`) are further `impl Source` blocks that
//! only call these.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use toml::{Spanned, Value};

use super::error::{ConfigError, Location, Problem};
use super::raw::Leaf;

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

/// The text being validated and its name for messages.
pub(super) struct Source<'a> {
    pub(super) name: &'a str,
    pub(super) text: &'a str,
}

impl Source<'_> {
    // ---- positions and errors -------------------------------------------

    pub(super) fn location(&self, span: Option<Range<usize>>) -> Location {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Location {
            file: self.name.to_owned(),
            line,
            column,
        }
    }

    pub(super) fn line(&self, span: Range<usize>) -> u32 {
        line_column(self.text, span.start).0
    }

    pub(super) fn invalid(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        problem: Problem,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.location(span),
            key: key.to_owned(),
            problem,
        }
    }

    pub(super) fn expected(
        &self,
        value: &Spanned<Value>,
        key: &str,
        expected: impl Display,
    ) -> ConfigError {
        let problem = Problem::Expected {
            expected: expected.to_string(),
            got: describe(value.get_ref()),
        };
        self.invalid(Some(value.span()), key, problem)
    }

    pub(super) fn missing(
        &self,
        table: Option<Range<usize>>,
        key: &str,
        expected: &str,
    ) -> ConfigError {
        let problem = Problem::Missing {
            expected: expected.to_owned(),
        };
        self.invalid(table, key, problem)
    }

    // ---- leaves ------------------------------------------------------------

    /// An integer in `lo..=hi`, converted to `T`.
    pub(super) fn int_value<T>(&self, value: &Spanned<Value>, key: &str, lo: T, hi: T) -> Result<T>
    where
        T: Copy + Display + TryFrom<i64> + Into<i64>,
    {
        value
            .get_ref()
            .as_integer()
            .filter(|n| (lo.into()..=hi.into()).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.expected(value, key, format!("an integer {lo}..={hi}")))
    }

    /// [`Self::int_value`] of a key that may be absent.
    pub(super) fn int<T>(&self, leaf: &Leaf, key: &str, lo: T, hi: T) -> Result<Option<T>>
    where
        T: Copy + Display + TryFrom<i64> + Into<i64>,
    {
        leaf.as_ref()
            .map(|value| self.int_value(value, key, lo, hi))
            .transpose()
    }

    /// A fraction in `0..=1` (`0.5`, or `0` and `1` written as integers),
    /// in parts per million; `zero` whether 0 is allowed.
    pub(super) fn fraction(&self, leaf: &Leaf, key: &str, zero: bool) -> Result<Option<u32>> {
        leaf.as_ref()
            .map(|value| {
                let v = value.get_ref();
                v.as_float()
                    .or_else(|| v.as_integer().map(|n| n as f64))
                    .filter(|f| (0.0..=1.0).contains(f) && (zero || *f > 0.0))
                    .map(|f| (f * 1e6).round() as u32)
                    .filter(|&ppm| zero || ppm > 0)
                    .ok_or_else(|| {
                        let lo = if zero { "0" } else { "above 0" };
                        self.expected(value, key, format!("a fraction {lo} up to 1"))
                    })
            })
            .transpose()
    }

    /// A power of two in `lo..=hi` (ring and UMEM sizes).
    pub(super) fn power_of_two(
        &self,
        leaf: &Leaf,
        key: &str,
        lo: u32,
        hi: u32,
    ) -> Result<Option<u32>> {
        leaf.as_ref()
            .map(|value| {
                value
                    .get_ref()
                    .as_integer()
                    .filter(|n| (i64::from(lo)..=i64::from(hi)).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| n.is_power_of_two())
                    .ok_or_else(|| self.expected(value, key, format!("a power of two {lo}..={hi}")))
            })
            .transpose()
    }

    pub(super) fn boolean(&self, leaf: &Leaf, key: &str) -> Result<Option<bool>> {
        leaf.as_ref()
            .map(|value| {
                value
                    .get_ref()
                    .as_bool()
                    .ok_or_else(|| self.expected(value, key, "true or false"))
            })
            .transpose()
    }

    /// A string that `parse` accepts.
    pub(super) fn string_value<'v, T>(
        &self,
        value: &'v Spanned<Value>,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&'v str) -> Option<T>,
    ) -> Result<T> {
        value
            .get_ref()
            .as_str()
            .and_then(parse)
            .ok_or_else(|| self.expected(value, key, expected))
    }

    /// [`Self::string_value`] of a key that may be absent.
    pub(super) fn string<'v, T>(
        &self,
        leaf: &'v Leaf,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&'v str) -> Option<T>,
    ) -> Result<Option<T>> {
        leaf.as_ref()
            .map(|value| self.string_value(value, key, expected, parse))
            .transpose()
    }

    /// One of a fixed set of names; `None` if the key is absent.
    pub(super) fn choice<T: Copy>(
        &self,
        leaf: &Leaf,
        key: &str,
        names: &[(&str, T)],
    ) -> Result<Option<T>> {
        let expected = one_of(names.iter().map(|(name, _)| name));
        self.string(leaf, key, &expected, |s| {
            names.iter().find(|(name, _)| *name == s).map(|&(_, t)| t)
        })
    }

    pub(super) fn socket_addr(&self, leaf: &Leaf, key: &str) -> Result<Option<SocketAddr>> {
        let expected = "a unicast address with port, \"a.b.c.d:port\" or \"[ipv6]:port\"";
        self.string(leaf, key, expected, |s| {
            s.parse::<SocketAddr>().ok().filter(|a| is_unicast(a.ip()))
        })
    }

    /// Converts each element of a list with `item`, rejecting repeats of
    /// the thing `noun` names.
    pub(super) fn unique_list<T: PartialEq + Display>(
        &self,
        list: Option<&Spanned<Vec<Spanned<Value>>>>,
        key: &str,
        noun: &str,
        item: impl Fn(&Spanned<Value>, &str) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out: Vec<(T, u32)> = Vec::new();
        for (i, value) in list.map_or(&[][..], |l| l.get_ref()).iter().enumerate() {
            let key = format!("{key}[{i}]");
            let t = item(value, &key)?;
            if let Some((_, first_line)) = out.iter().find(|(seen, _)| *seen == t) {
                let problem = Problem::Duplicate {
                    what: format!("{noun} {t}"),
                    first_line: *first_line,
                };
                return Err(self.invalid(Some(value.span()), &key, problem));
            }
            out.push((t, self.line(value.span())));
        }
        Ok(out.into_iter().map(|(t, _)| t).collect())
    }
}

// ---- helpers ---------------------------------------------------------------

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_column(text: &str, pos: usize) -> (u32, u32) {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (clamp(line), clamp(column))
}

/// A value as the operator wrote it, for "got ..." in messages.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "a list".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// `one of "a", "b", "c"`.
pub(super) fn one_of<'a>(names: impl Iterator<Item = &'a &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    format!("one of {}", quoted.join(", "))
}

/// Not unspecified, multicast or the IPv4 broadcast address.
pub(super) fn is_unicast(ip: IpAddr) -> bool {
    !ip.is_unspecified()
        && !ip.is_multicast()
        && match ip {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(_) => true,
        }
}
