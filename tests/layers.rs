//! The layout's rules, checked over the source: no import cycle between
//! top-level modules or between files, and no import from a lower layer
//! to a higher one. Run `cargo test --test layers -- --nocapture` to see
//! the layers and each module's imports.
//!
//! An import is any path in a file's code that starts with `crate::`,
//! `super::`, `self::` or the name of a child module (in `use` items and
//! in expressions and types),
//! resolved to the file that defines the longest module prefix of it.
//! `mod` declarations are structure, not imports; code under
//! `#[cfg(test)]` and `tests.rs` files are left out (tests may reach
//! anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, bottom up: a module may import its own layer (without a
/// cycle) and those below.
const LAYERS: &[&[&str]] = &[
    &["wire", "mem", "netlink", "log"],
    &["frame", "stats"],
    &["dest", "conn", "sched"],
    &["config"],
    &["service"],
    &["xmit", "app"],
    &["pipeline"],
    &["worker", "xsk"],
    &["ctrl", "health", "sync"],
    &["daemon", "adm"],
];

/// A source file and the module path it defines (`["pipeline", "parse"]`).
struct File {
    path: PathBuf,
    module: Vec<String>,
}

fn files(root: &Path) -> Vec<File> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src/") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs")
                || p.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            // A test module's own folder (`foo/tests/…`).
            if module.iter().any(|m| m == "tests") {
                continue;
            }
            out.push(File { path: p, module });
        }
    }
    out.sort_by(|a, b| a.module.cmp(&b.module));
    out
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test")))
            || a.path().is_ident("test")
    })
}

/// Every `crate::`/`super::`/`self::` path of a file's non-test code.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn tree(&mut self, prefix: &mut Vec<String>, t: &syn::UseTree) {
        match t {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut v = prefix.clone();
                if n.ident != "self" {
                    v.push(n.ident.to_string());
                }
                self.0.push(v);
            }
            syn::UseTree::Rename(r) => {
                let mut v = prefix.clone();
                v.push(r.ident.to_string());
                self.0.push(v);
            }
            syn::UseTree::Glob(_) => self.0.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.tree(prefix, t);
                }
            }
        }
    }
}

impl<'a> Visit<'a> for Paths {
    fn visit_item(&mut self, i: &'a syn::Item) {
        let attrs = match i {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    /// `pub(super)` and `pub(in crate::x)` name a scope, not an import.
    fn visit_visibility(&mut self, _: &'a syn::Visibility) {}

    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        self.tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'a syn::Path) {
        self.0
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// The module a path names, as the longest known module prefix, from the
/// file whose module is `from`.
fn resolve(path: &[String], from: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut abs: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => from.to_vec(),
        Some("super") => {
            let mut m = from.to_vec();
            m.pop();
            m
        }
        // A child module of this file's module (`use parse::Parsed;` in
        // a `mod.rs`).
        Some(first) => {
            let mut m = from.to_vec();
            m.push(first.to_owned());
            if !known.contains(&m) {
                return None;
            }
            from.to_vec()
        }
        None => return None,
    };
    let skip = usize::from(matches!(path[0].as_str(), "crate" | "self" | "super"));
    let mut rest = &path[skip..];
    while rest.first().is_some_and(|s| s == "super") {
        abs.pop();
        rest = &rest[1..];
    }
    abs.extend(rest.iter().cloned());
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|m| known.contains(m))
}

struct Graph {
    /// File module → the file modules it imports.
    files: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let fs = files(&root);
    let known: BTreeSet<Vec<String>> = fs.iter().map(|f| f.module.clone()).collect();
    let mut files = BTreeMap::new();
    for f in &fs {
        let text = std::fs::read_to_string(&f.path).expect("read source");
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
        let mut paths = Paths::default();
        paths.visit_file(&ast);
        let deps: BTreeSet<Vec<String>> = paths
            .0
            .iter()
            .filter_map(|p| resolve(p, &f.module, &known))
            .filter(|m| *m != f.module && !m.is_empty())
            .collect();
        files.insert(f.module.clone(), deps);
    }
    Graph { files }
}

/// The cycles of a directed graph (one per strongly connected component
/// of more than one node).
fn cycles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    // Tarjan's algorithm, iterative enough for a source tree.
    struct T<'a, N: Ord> {
        edges: &'a BTreeMap<N, BTreeSet<N>>,
        index: BTreeMap<&'a N, usize>,
        low: BTreeMap<&'a N, usize>,
        stack: Vec<&'a N>,
        on: BTreeSet<&'a N>,
        out: Vec<Vec<N>>,
    }
    fn go<'a, N: Ord + Clone>(t: &mut T<'a, N>, v: &'a N) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = t.edges.get_key_value(w) else {
                continue;
            };
            if !t.index.contains_key(w) {
                go(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            go(&mut t, v);
        }
    }
    t.out
}

fn top_level(g: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, deps) in &g.files {
        let Some(a) = from.first() else { continue };
        let e = top.entry(a.clone()).or_default();
        for d in deps {
            if d[0] != *a {
                e.insert(d[0].clone());
            }
        }
    }
    top
}

fn layer(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

#[test]
fn no_cycle_between_top_level_modules() {
    let top = top_level(&graph());
    for (m, deps) in &top {
        println!(
            "{m:>9} -> {}",
            Vec::from_iter(deps.iter().cloned()).join(" ")
        );
    }
    let c = cycles(&top);
    assert!(c.is_empty(), "cycles between top-level modules: {c:?}");
}

#[test]
fn no_cycle_between_files() {
    let g = graph();
    for (m, deps) in &g.files {
        let deps: Vec<String> = deps.iter().map(|d| d.join("::")).collect();
        println!("{} -> {}", m.join("::"), deps.join(" "));
    }
    let c = cycles(&g.files);
    let named: Vec<Vec<String>> = c
        .iter()
        .map(|scc| scc.iter().map(|m| m.join("::")).collect())
        .collect();
    assert!(named.is_empty(), "cycles between files: {named:?}");
}

#[test]
fn imports_go_down_the_layers() {
    let top = top_level(&graph());
    let mut wrong = Vec::new();
    for (m, deps) in &top {
        let Some(lm) = layer(m) else {
            wrong.push(format!("{m} is in no layer (add it to LAYERS)"));
            continue;
        };
        for d in deps {
            match layer(d) {
                Some(ld) if ld <= lm => {}
                Some(_) => wrong.push(format!("{m} imports {d}, a higher layer")),
                None => wrong.push(format!("{d} is in no layer (add it to LAYERS)")),
            }
        }
    }
    for (i, l) in LAYERS.iter().enumerate() {
        println!("layer {i}: {}", l.join(", "));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut e: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    e.insert("a", ["b"].into());
    e.insert("b", ["c"].into());
    e.insert("c", ["a"].into());
    e.insert("d", ["a"].into());
    let c = cycles(&e);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].len(), 3);
    let known: BTreeSet<Vec<String>> =
        [vec![], vec!["x".into()], vec!["x".into(), "y".into()]].into();
    let p = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(resolve(&p("super::Z"), &p("x::y"), &known), Some(p("x")));
    assert_eq!(
        resolve(&p("crate::x::y::Z"), &p("x"), &known),
        Some(p("x::y"))
    );
    assert_eq!(resolve(&p("std::io"), &p("x"), &known), None);
    assert_eq!(resolve(&p("y::f"), &p("x"), &known), Some(p("x::y")));
}
