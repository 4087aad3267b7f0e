//! popt's tokenizer, as ipvsadm uses it: short options bundled (`-Ln`),
//! an argument in the rest of the word or the next one, `--opt=value` or
//! `--opt value`, an optional argument taken unless the next word starts
//! with `-`, and `--` ending the options.

use super::invocation::AdmError;
use super::options::{Arg, TABLE, Tag};

/// One option with its argument, as popt hands them out.
pub(super) struct Item {
    pub(super) tag: Tag,
    /// As written, for messages.
    pub(super) spelled: String,
    pub(super) arg: Option<String>,
}

/// popt's tokenizer: options with their arguments, and the leftover
/// arguments.
pub(super) fn tokenize(args: &[String]) -> Result<(Vec<Item>, Vec<String>), AdmError> {
    let unknown = |spelled: &str| AdmError {
        message: format!("{spelled}: unknown option"),
        status: 255,
    };
    let missing = |spelled: &str| AdmError {
        message: format!("{spelled}: missing argument"),
        status: 255,
    };
    let mut items = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    // The next word as an optional argument: popt takes it unless it
    // starts with '-'.
    let optional_next = |i: &mut usize| -> Option<String> {
        let next = args.get(*i + 1)?;
        if next.starts_with('-') {
            return None;
        }
        *i += 1;
        Some(next.clone())
    };
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            rest.extend(args[i + 1..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, _, kind, tag)) = TABLE.iter().find(|e| e.0 == name) else {
                return Err(unknown(a));
            };
            let spelled = format!("--{name}");
            let arg = match (kind, inline) {
                (Arg::None, Some(_)) => return Err(unknown(a)),
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    i += 1;
                    Some(args.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                }
                (Arg::Optional, None) => optional_next(&mut i),
            };
            items.push(Item { tag, spelled, arg });
        } else if a.len() > 1 && a.starts_with('-') {
            // Bundled short options; one that takes an argument takes the
            // rest of the word, or the next word.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let spelled = format!("-{c}");
                let Some(&(_, _, kind, tag)) = TABLE.iter().find(|e| e.1 == Some(c)) else {
                    return Err(unknown(&spelled));
                };
                let tail: String = chars[j + 1..].iter().collect();
                let arg = match kind {
                    Arg::None => None,
                    _ if !tail.is_empty() => {
                        j = chars.len();
                        Some(tail)
                    }
                    Arg::Required => {
                        i += 1;
                        Some(args.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                    }
                    Arg::Optional => optional_next(&mut i),
                };
                items.push(Item { tag, spelled, arg });
                j += 1;
            }
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    Ok((items, rest))
}
