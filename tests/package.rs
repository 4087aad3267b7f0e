//! The Debian package (issue 17, item 5), built by `scripts/package.sh`
//! and checked without installing it: `dpkg-deb -c` lists every path it
//! must ship, the conffile is declared, `lintian` reports no error (its
//! warnings are printed), and the unpacked manual pages and completions
//! cover the command lines and the configuration keys.
//!
//! The package is built once for all the tests here, into
//! `target/package-test/`, from the release build when there is one (an
//! incremental `cargo build --release`, seconds) and from the dev profile
//! otherwise (test.sh's debug build is reused: no release build of its
//! own, which takes minutes); `XDPVS_PACKAGE_PROFILE=NAME` chooses. It
//! needs cargo-deb and lintian
//! (`scripts/setup.sh`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every path the package must hold (without the leading `.`).
const REQUIRED: &[&str] = &[
    "/usr/sbin/xdpvs",
    "/usr/sbin/xdpvsadm",
    "/etc/xdpvs/xdpvs.toml",
    "/lib/systemd/system/xdpvs.service",
    "/usr/share/man/man8/xdpvs.8.gz",
    "/usr/share/man/man8/xdpvsadm.8.gz",
    "/usr/share/man/man5/xdpvs.toml.5.gz",
    "/usr/share/bash-completion/completions/xdpvs",
    "/usr/share/bash-completion/completions/xdpvsadm",
    "/usr/share/zsh/vendor-completions/_xdpvs",
    "/usr/share/zsh/vendor-completions/_xdpvsadm",
    "/usr/share/doc/xdpvs/changelog.Debian.gz",
    "/usr/share/doc/xdpvs/copyright",
];

/// The cargo target directory (the parent of the profile directory
/// holding this test's binaries).
fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_xdpvs"));
    exe.parent()
        .and_then(Path::parent)
        .expect("CARGO_BIN_EXE_xdpvs is TARGET/PROFILE/xdpvs")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The package and the directory it was unpacked into (`dpkg-deb -x`:
/// files only, no installation), built once.
fn package() -> &'static (PathBuf, PathBuf) {
    static PACKAGE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let target = target_dir();
        let release = ["xdpvs", "xdpvsadm"]
            .iter()
            .all(|b| target.join("release").join(b).is_file());
        let profile = match std::env::var("XDPVS_PACKAGE_PROFILE") {
            Ok(p) => p,
            Err(_) if release => "release".to_owned(),
            Err(_) => "dev".to_owned(),
        };
        let out = target.join("package-test");
        let _ = std::fs::remove_dir_all(&out);
        let started = std::time::Instant::now();
        let stdout = run(Command::new(Path::new(ROOT).join("scripts/package.sh"))
            .args(["--profile", &profile, "--output"])
            .arg(&out)
            .current_dir(ROOT));
        let deb = PathBuf::from(stdout.lines().last().expect("package.sh prints the .deb"));
        let deb = if deb.is_absolute() {
            deb
        } else {
            Path::new(ROOT).join(deb)
        };
        assert!(deb.is_file(), "{} is not a file", deb.display());
        eprintln!(
            "package: built {} from the {profile} profile in {:.1}s",
            deb.display(),
            started.elapsed().as_secs_f64()
        );
        let tree = out.join("tree");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
        (deb, tree)
    })
}

/// `dpkg-deb -c`: path → mode string, without the leading `.`.
fn contents(deb: &Path) -> Vec<(String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|l| {
            let mode = l.split_whitespace().next().expect("mode").to_owned();
            let path = l.split_whitespace().nth(5).expect("path");
            (path.trim_start_matches('.').to_owned(), mode)
        })
        .collect()
}

fn gunzip(path: &Path) -> String {
    run(Command::new("gzip").arg("-dc").arg(path))
}

#[test]
fn contents_list_every_path() {
    let (deb, _) = package();
    let listed = contents(deb);
    let paths: BTreeSet<&str> = listed.iter().map(|(p, _)| p.as_str()).collect();
    let missing: Vec<&&str> = REQUIRED.iter().filter(|p| !paths.contains(**p)).collect();
    assert!(
        missing.is_empty(),
        "missing from the package: {missing:?}\n{paths:#?}"
    );
    for (path, mode) in &listed {
        if path.starts_with("/usr/sbin/") && !path.ends_with('/') {
            assert_eq!(mode, "-rwxr-xr-x", "{path}");
        } else if path.ends_with('/') {
            assert_eq!(mode, "drwxr-xr-x", "{path}");
        } else {
            assert_eq!(mode, "-rw-r--r--", "{path}");
        }
    }
}

#[test]
fn configuration_is_a_conffile_and_the_reference() {
    let (deb, tree) = package();
    let conffiles = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"));
    assert!(
        conffiles.lines().any(|l| l == "/etc/xdpvs/xdpvs.toml"),
        "conffiles: {conffiles:?}"
    );
    let shipped = std::fs::read(tree.join("etc/xdpvs/xdpvs.toml")).expect("unpacked config");
    let reference = std::fs::read(Path::new(ROOT).join("config/xdpvs.toml")).expect("reference");
    assert!(
        shipped == reference,
        "/etc/xdpvs/xdpvs.toml is not config/xdpvs.toml"
    );
    let unit = std::fs::read_to_string(tree.join("lib/systemd/system/xdpvs.service"))
        .expect("unpacked unit");
    assert!(
        unit.contains("/usr/sbin/xdpvs"),
        "the unit starts /usr/sbin/xdpvs:\n{unit}"
    );
}

#[test]
fn lintian_reports_no_errors() {
    let (deb, _) = package();
    // lintian exits non-zero on errors (its default --fail-on error); the
    // tags are read rather than the status, to name them.
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .expect("cannot run lintian (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines().filter(|l| l.starts_with("W: ")) {
        eprintln!("lintian warning: {l}");
    }
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        out.status.success(),
        "lintian failed ({}): {text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How roff writes `--name` (clap_mangen escapes each `-`).
fn roff_option(long: &str) -> String {
    format!("\\-\\-{}", long.replace('-', "\\-"))
}

#[test]
fn manual_pages_cover_the_command_lines() {
    let (_, tree) = package();
    let man8 = tree.join("usr/share/man/man8");
    for (page, cmd) in [
        ("xdpvs.8.gz", xdpvs::daemon::cli::command()),
        ("xdpvsadm.8.gz", xdpvs::adm::cli::command()),
    ] {
        let text = gunzip(&man8.join(page));
        assert!(text.contains(".TH "), "{page} has no title");
        let mut longs = 0;
        for a in cmd.get_arguments() {
            if let Some(long) = a.get_long() {
                longs += 1;
                assert!(text.contains(&roff_option(long)), "{page} lacks --{long}");
            }
        }
        assert!(longs >= 2, "{page}: {longs} options");
    }
    let adm = gunzip(&man8.join("xdpvsadm.8.gz"));
    for section in ["SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT STATUS", "SEE ALSO"] {
        assert!(
            adm.lines()
                .any(|l| l == format!(".SH {section}") || l == format!(".SH \"{section}\"")),
            "xdpvsadm.8 lacks {section}"
        );
    }
}

#[test]
fn configuration_page_has_every_key() {
    let (_, tree) = package();
    let page = gunzip(&tree.join("usr/share/man/man5/xdpvs.toml.5.gz"));
    assert!(page.contains(".TH XDPVS.TOML 5"), "title");
    let reference = std::fs::read_to_string(Path::new(ROOT).join("config/xdpvs.toml"))
        .expect("config/xdpvs.toml");
    // Keys of the reference file: `name = value` lines, set or commented
    // out (`# name = value`, not indented: indented ones are examples).
    let mut keys = BTreeSet::new();
    for line in reference.lines() {
        let l = line.strip_prefix("# ").unwrap_or(line);
        if let Some((name, _)) = l.split_once(" = ")
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            keys.insert(name.to_owned());
        }
    }
    assert!(keys.len() > 30, "only {} keys found", keys.len());
    for key in &keys {
        let escaped = key.replace('-', "\\-");
        assert!(
            page.contains(&format!("\\fB{escaped} = ")),
            "xdpvs.toml(5) does not document {key}"
        );
    }
    for table in [
        "[dataplane]",
        "[connections]",
        "[control]",
        "[[services]]",
        "[[services.reals]]",
    ] {
        assert!(page.contains(&format!(".SS {table}")), "no section {table}");
    }
}

#[test]
fn completions_name_every_option() {
    let (_, tree) = package();
    for (name, cmd) in [
        ("xdpvs", xdpvs::daemon::cli::command()),
        ("xdpvsadm", xdpvs::adm::cli::command()),
    ] {
        let bash = tree
            .join("usr/share/bash-completion/completions")
            .join(name);
        run(Command::new("bash").arg("-n").arg(&bash));
        let bash = std::fs::read_to_string(&bash).expect("bash completion");
        let zsh = std::fs::read_to_string(
            tree.join("usr/share/zsh/vendor-completions")
                .join(format!("_{name}")),
        )
        .expect("zsh completion");
        assert!(zsh.starts_with(&format!("#compdef {name}")), "_{name}");
        for a in cmd.get_arguments() {
            if let Some(long) = a.get_long() {
                let opt = format!("--{long}");
                assert!(bash.contains(&opt), "bash completion of {name} lacks {opt}");
                assert!(zsh.contains(&opt), "zsh completion of {name} lacks {opt}");
            }
        }
    }
    let zsh = std::fs::read_to_string(tree.join("usr/share/zsh/vendor-completions/_xdpvsadm"))
        .expect("zsh completion");
    for s in xdpvs::config::SCHEDULERS {
        assert!(zsh.contains(s), "zsh completes -s {s}");
    }
}
