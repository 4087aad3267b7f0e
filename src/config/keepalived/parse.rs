//! keepalived.conf's syntax, as keepalived's own parser reads it
//! (`lib/parser.c`): one statement per line, `{` … `}` blocks (the brace
//! on the keyword's line or on the next), comments from `#` or `!` to the
//! end of the line outside quotes (`\#` and `\!` escape them), a trailing
//! `\` joining the next line, quoted strings with `"` or `'` keeping their
//! spaces and shell-like escapes, `include GLOB` with the pattern relative
//! to the including file's directory, and conditional lines: `@ID line`
//! is read only when keepalived runs with `--config-id ID`, `@^ID line`
//! only when it does not.
//!
//! The result is a tree of [`Node`]s, each with the file and line it came
//! from, so that everything the converter names points at its source.
//! What the reader itself cannot use (an unmatched `}`, an include that
//! matches nothing) becomes a [`Note`]; only an unreadable top-level file
//! is an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Includes nested deeper than this are refused (keepalived's include
/// loops would never end).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A place in the configuration: file and line (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct At {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Something in the file that was not converted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: At,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// One statement: its words (the keyword first) and, for a block, the
/// statements inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub at: At,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The keyword (the first word).
    pub fn key(&self) -> &str {
        &self.words[0]
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }

    /// The statements of a block (none for a plain statement).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A file's statements and what could not be read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub nodes: Vec<Node>,
    pub notes: Vec<Note>,
}

/// Reads `path` and its includes. `config_id` selects `@ID` lines.
pub fn parse_file(path: &Path, config_id: Option<&str>) -> std::io::Result<Parsed> {
    let text = std::fs::read_to_string(path)?;
    let mut reader = Reader {
        config_id,
        lines: Vec::new(),
        notes: Vec::new(),
    };
    reader.read(&text, path, 0);
    Ok(reader.finish())
}

/// Reads `text` as if it were the file `name` (includes are relative to
/// `name`'s directory).
pub fn parse_str(text: &str, name: &Path, config_id: Option<&str>) -> Parsed {
    let mut reader = Reader {
        config_id,
        lines: Vec::new(),
        notes: Vec::new(),
    };
    reader.read(text, name, 0);
    reader.finish()
}

/// A token of a logical line.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
}

struct Reader<'a> {
    config_id: Option<&'a str>,
    /// Every logical line of every file, in reading order, tokenised.
    lines: Vec<(At, Vec<Token>)>,
    notes: Vec<Note>,
}

impl Reader<'_> {
    fn note(&mut self, at: &At, message: impl Into<String>) {
        self.notes.push(Note {
            at: at.clone(),
            message: message.into(),
        });
    }

    fn read(&mut self, text: &str, path: &Path, depth: usize) {
        let file: Arc<str> = path.display().to_string().into();
        let mut pending = String::new();
        let mut first_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if pending.is_empty() {
                first_line = line;
            }
            let at = At {
                file: file.clone(),
                line: first_line,
            };
            let (clean, unterminated) = decomment(raw);
            if unterminated {
                self.note(&at, "unterminated quote (read to the end of the line)");
            }
            if let Some(joined) = clean.strip_suffix('\\') {
                pending.push_str(joined);
                pending.push(' ');
                continue;
            }
            pending.push_str(&clean);
            let logical = std::mem::take(&mut pending);
            let Some(logical) = self.condition(&logical, &at) else {
                continue;
            };
            let tokens = tokenize(logical);
            match tokens.as_slice() {
                [] => {}
                [Token::Word(k), rest @ ..] if k == "include" => {
                    let patterns: Vec<&str> = rest
                        .iter()
                        .filter_map(|t| match t {
                            Token::Word(w) => Some(w.as_str()),
                            _ => None,
                        })
                        .collect();
                    if patterns.len() != 1 {
                        self.note(&at, "include: expected one file name or pattern (ignored)");
                        continue;
                    }
                    self.include(patterns[0], path, &at, depth);
                }
                _ => self.lines.push((at, tokens)),
            }
        }
    }

    /// A line's conditional prefix: the rest of the line when it applies,
    /// `None` when it does not.
    fn condition<'l>(&mut self, line: &'l str, at: &At) -> Option<&'l str> {
        let Some(cond) = line.strip_prefix('@') else {
            return Some(line);
        };
        let (id, rest) = cond.split_once([' ', '\t']).unwrap_or((cond, ""));
        let (negated, id) = match id.strip_prefix('^') {
            Some(id) => (true, id),
            None => (false, id),
        };
        let selected = (self.config_id == Some(id)) != negated;
        if selected {
            return Some(rest);
        }
        if !rest.trim().is_empty() {
            let why = if negated {
                format!("line for every config id but {id:?}")
            } else {
                format!("line for config id {id:?} only")
            };
            let how = match self.config_id {
                Some(own) => format!("converting for config id {own:?}"),
                None => "converting without --config-id".to_owned(),
            };
            self.note(at, format!("{}: {why}, {how} (skipped)", line.trim()));
        }
        None
    }

    fn include(&mut self, pattern: &str, from: &Path, at: &At, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.note(
                at,
                format!("include {pattern}: nested more than {MAX_INCLUDE_DEPTH} deep (ignored)"),
            );
            return;
        }
        let base = from.parent().unwrap_or(Path::new(""));
        let full: PathBuf = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let matches = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => {
                let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                v.sort();
                v
            }
            Err(e) => {
                self.note(at, format!("include {pattern}: bad pattern: {e} (ignored)"));
                return;
            }
        };
        if matches.is_empty() {
            self.note(at, format!("include {pattern}: no file matches (ignored)"));
        }
        for path in matches.iter().filter(|p| p.is_file()) {
            match std::fs::read_to_string(path) {
                Ok(text) => self.read(&text, path, depth + 1),
                Err(e) => {
                    let message = format!("include {}: {e} (ignored)", path.display());
                    self.note(at, message);
                }
            }
        }
    }

    /// The lines as a tree.
    fn finish(mut self) -> Parsed {
        // The stack of open blocks: their statements so far, and the
        // statement that opened each.
        let mut stack: Vec<(Vec<Node>, Option<Node>)> = vec![(Vec::new(), None)];
        let lines = std::mem::take(&mut self.lines);
        for (at, tokens) in lines {
            let mut words = Vec::new();
            for token in tokens {
                match token {
                    Token::Word(w) => words.push(w),
                    Token::Open => {
                        let head = if words.is_empty() {
                            // `{` on a line of its own opens the block of
                            // the statement above.
                            let level = &mut stack.last_mut().expect("root").0;
                            match level.pop() {
                                Some(node) if node.block.is_none() => node,
                                other => {
                                    level.extend(other);
                                    self.note(&at, "'{' without a statement before it");
                                    Node {
                                        at: at.clone(),
                                        words: vec!["{".to_owned()],
                                        block: None,
                                    }
                                }
                            }
                        } else {
                            Node {
                                at: at.clone(),
                                words: std::mem::take(&mut words),
                                block: None,
                            }
                        };
                        stack.push((Vec::new(), Some(head)));
                    }
                    Token::Close => {
                        let level = &mut stack.last_mut().expect("root").0;
                        if !words.is_empty() {
                            level.push(Node {
                                at: at.clone(),
                                words: std::mem::take(&mut words),
                                block: None,
                            });
                        }
                        if stack.len() == 1 {
                            self.note(&at, "'}' closes no block (ignored)");
                            continue;
                        }
                        close(&mut stack);
                    }
                }
            }
            if !words.is_empty() {
                stack.last_mut().expect("root").0.push(Node {
                    at: at.clone(),
                    words,
                    block: None,
                });
            }
        }
        while stack.len() > 1 {
            if let Some(head) = &stack.last().expect("open").1 {
                let message = format!("{}: block not closed before the end", head.key());
                let at = head.at.clone();
                self.note(&at, message);
            }
            close(&mut stack);
        }
        let (nodes, _) = stack.pop().expect("root");
        Parsed {
            nodes,
            notes: self.notes,
        }
    }
}

/// Closes the innermost open block into its parent.
fn close(stack: &mut Vec<(Vec<Node>, Option<Node>)>) {
    let (children, head) = stack.pop().expect("an open block");
    let mut head = head.expect("a block has a head");
    head.block = Some(children);
    stack.last_mut().expect("a parent").0.push(head);
}

/// The line without its comment and surrounding blanks, as keepalived's
/// `decomment`: `#` and `!` outside `"` quotes start a comment, `\#` and
/// `\!` are the characters. Also whether a `"` was left open.
fn decomment(line: &str) -> (String, bool) {
    let mut out = String::with_capacity(line.len());
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some(n @ ('#' | '!')) if !quote => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    (out.trim().to_owned(), quote)
}

/// A logical line's words: blanks separate them; `"…"` and `'…'` keep
/// blanks (and braces) and may be joined to unquoted text (`a"b c"` is one
/// word); escapes as in keepalived's quoted strings; `{` and `}` outside
/// quotes are tokens of their own.
fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            match c {
                _ if c == q => quote = None,
                '\\' => escape(&mut chars, &mut word),
                _ => word.push(c),
            }
            continue;
        }
        match c {
            ' ' | '\t' => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            '{' | '}' => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
                tokens.push(if c == '{' { Token::Open } else { Token::Close });
            }
            '"' | '\'' => {
                quote = Some(c);
                in_word = true;
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        tokens.push(Token::Word(word));
    }
    tokens
}

/// One escape inside quotes: `\n`, `\t`, … `\nnn` (octal), `\xXX`,
/// `\cC` (control), `\C` for any other C.
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let Some(c) = chars.next() else {
        out.push('\\');
        return;
    };
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'E' => Some('\x1b'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(s) = simple {
        out.push(s);
        return;
    }
    let mut number = |radix: u32, max: usize, first: Option<char>| {
        let mut digits: String = first.into_iter().collect();
        while digits.len() < max {
            match chars.peek() {
                Some(d) if d.is_digit(radix) => digits.push(chars.next().expect("peeked")),
                _ => break,
            }
        }
        u32::from_str_radix(&digits, radix)
            .ok()
            .and_then(char::from_u32)
    };
    match c {
        '0'..='7' => out.extend(number(8, 3, Some(c))),
        'x' => match number(16, 2, None) {
            Some(ch) => out.push(ch),
            None => out.push('x'),
        },
        'c' => match chars.next() {
            Some(k) => out.push(char::from(k.to_ascii_uppercase() as u8 ^ 0x40)),
            None => out.push('c'),
        },
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_str(text, Path::new("/nonexistent/k.conf"), None)
    }

    fn words(n: &Node) -> Vec<&str> {
        n.words.iter().map(String::as_str).collect()
    }

    #[test]
    fn blocks_keep_their_lines() {
        let p = parse(
            "! top\nvirtual_server 198.18.1.1 80 {\n  delay_loop 6\n\n  real_server 198.18.2.11 80\n  {\n    weight 2\n  }\n}\n",
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert_eq!(p.nodes.len(), 1);
        let vs = &p.nodes[0];
        assert_eq!(words(vs), ["virtual_server", "198.18.1.1", "80"]);
        assert_eq!(vs.at.line, 2);
        let kids = vs.children();
        assert_eq!(words(&kids[0]), ["delay_loop", "6"]);
        assert_eq!(kids[0].at.line, 3);
        assert_eq!(words(&kids[1]), ["real_server", "198.18.2.11", "80"]);
        assert_eq!(kids[1].at.line, 5);
        assert_eq!(words(&kids[1].children()[0]), ["weight", "2"]);
        assert_eq!(kids[1].children()[0].at.line, 7);
    }

    #[test]
    fn one_line_blocks_and_comments_anywhere() {
        let p = parse("url { path /a } # comment\nx 1 ! also a comment\ny \"a # b\" \\# c\n");
        assert_eq!(words(&p.nodes[0]), ["url"]);
        assert_eq!(words(&p.nodes[0].children()[0]), ["path", "/a"]);
        assert_eq!(words(&p.nodes[1]), ["x", "1"]);
        assert_eq!(words(&p.nodes[2]), ["y", "a # b", "#", "c"]);
    }

    #[test]
    fn quotes_keep_blanks_and_join_words() {
        let p = parse("misc_path \"/bin/check a  b\" x'y z' \"t\\tab\\x41\\101\"\n");
        assert_eq!(
            words(&p.nodes[0]),
            ["misc_path", "/bin/check a  b", "xy z", "t\tabAA"]
        );
    }

    #[test]
    fn continuation_lines_join() {
        let p = parse("notify_up /bin/x \\\n   arg\nnext 1\n");
        assert_eq!(words(&p.nodes[0]), ["notify_up", "/bin/x", "arg"]);
        assert_eq!(p.nodes[0].at.line, 1);
        assert_eq!(p.nodes[1].at.line, 3);
    }

    #[test]
    fn unbalanced_braces_are_named() {
        let p = parse("}\na {\n b 1\n");
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert_eq!(p.notes[0].at.line, 1);
        assert!(p.notes[0].message.contains("closes no block"));
        assert_eq!(p.notes[1].at.line, 2);
        assert!(p.notes[1].message.contains("not closed"));
        assert_eq!(words(&p.nodes[0].children()[0]), ["b", "1"]);
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@high a 1\n@^high b 2\nc 3\n";
        let none = parse_str(text, Path::new("k.conf"), None);
        let keys: Vec<&str> = none.nodes.iter().map(Node::key).collect();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(none.notes.len(), 1);
        assert_eq!(none.notes[0].at.line, 1);
        let high = parse_str(text, Path::new("k.conf"), Some("high"));
        let keys: Vec<&str> = high.nodes.iter().map(Node::key).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(high.notes.len(), 1);
        assert_eq!(high.notes[0].at.line, 2);
    }

    #[test]
    fn includes_are_relative_globs_in_order() {
        let dir = std::env::temp_dir().join(format!("xdpvs-ka-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b 2\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1 {\n x 1\n}\n").unwrap();
        std::fs::write(dir.join("conf.d/loop.inc"), "include loop.inc\n").unwrap();
        let main = dir.join("k.conf");
        std::fs::write(
            &main,
            "first 0\ninclude conf.d/*.conf\ninclude missing/*.conf\ninclude conf.d/loop.inc\nlast 3\n",
        )
        .unwrap();
        let p = parse_file(&main, None).unwrap();
        let keys: Vec<&str> = p.nodes.iter().map(Node::key).collect();
        assert_eq!(keys, ["first", "a", "b", "last"]);
        let a = &p.nodes[1];
        assert!(a.at.file.ends_with("conf.d/a.conf"), "{}", a.at);
        assert_eq!(a.children()[0].at.line, 2);
        assert_eq!(p.nodes[3].at.line, 5);
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert!(p.notes[0].message.contains("no file matches"));
        assert_eq!(p.notes[0].at.line, 3);
        assert!(p.notes[1].message.contains("nested more than"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_file_is_an_error() {
        assert!(parse_file(Path::new("/nonexistent/keepalived.conf"), None).is_err());
    }
}
