//! keepalived's own sample configurations (`doc/samples`, copied into
//! tests/data/keepalived/, see its README) through `xdpvs
//! import-keepalived`: each converts, or each statement it does not
//! convert is named with its file, line and a reason; what is printed is
//! an xdpvs configuration. `cargo test --test keepalived -- --nocapture`
//! prints the table of results.

use std::path::{Path, PathBuf};

use xdpvs::config::Config;
use xdpvs::config::keepalived::{Import, UNREAD, import_file};
use xdpvs::daemon::DaemonError;
use xdpvs::service::ServiceError;

/// Every sample, sorted.
fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keepalived");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/keepalived")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf."))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing: {files:?}");
    files
}

fn convert(path: &Path) -> Import {
    import_file(path, &["eth1".to_owned()], None).expect("readable")
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The expected result of each sample: services, real servers, and the
/// reasons of the statements not converted (one line each, in file order:
/// the note's text after `FILE:LINE: `, shortened to what identifies it).
const EXPECTED: &[(&str, usize, usize, &[&str])] = &[
    (
        "keepalived.conf.HTTP_GET.port",
        1,
        1,
        &["3: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.IPv6",
        1,
        1,
        &[
            "3: global_defs: not a virtual server",
            "24: SMTP_CHECK: xdpvs has no SMTP_CHECK checker",
        ],
    ),
    (
        "keepalived.conf.PING_CHECK",
        1,
        1,
        &[
            "4: global_defs: not a virtual server",
            "23: PING_CHECK: xdpvs has no PING_CHECK checker",
        ],
    ),
    (
        "keepalived.conf.SMTP_CHECK",
        1,
        3,
        &[
            "15: global_defs: not a virtual server",
            "39: SMTP_CHECK: xdpvs has no SMTP_CHECK checker",
            "58: SMTP_CHECK: xdpvs has no SMTP_CHECK checker",
            "89: SMTP_CHECK: xdpvs has no SMTP_CHECK checker",
        ],
    ),
    (
        "keepalived.conf.SSL_GET",
        2,
        2,
        &[
            "3: global_defs: not a virtual server",
            "13: vrrp_instance VI_1: not a virtual server",
        ],
    ),
    (
        "keepalived.conf.UDP_CHECK",
        1,
        1,
        &["4: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.conditional_conf",
        0,
        0,
        &[
            "3: @high",
            "4: @low",
            "6: vrrp_script check_VI_0: not a virtual server",
            "7: @high",
            "8: @low",
            "15: vrrp_instance VI_0: not a virtual server",
            "19: @high",
            "20: @low",
        ],
    ),
    (
        "keepalived.conf.fwmark",
        0,
        0,
        &[
            "3: global_defs: not a virtual server",
            "7: virtual_server fwmark 1: fwmark services are not supported",
        ],
    ),
    (
        "keepalived.conf.inhibit",
        1,
        1,
        &["3: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.misc_check",
        1,
        1,
        &["4: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.misc_check_arg",
        1,
        1,
        &["3: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.quorum",
        1,
        10,
        &["30: omega: notify scripts are not run at shutdown"],
    ),
    (
        "keepalived.conf.sample",
        1,
        1,
        &[
            "3: global_defs: not a virtual server",
            "13: vrrp_instance VI_1: not a virtual server",
        ],
    ),
    (
        "keepalived.conf.status_code",
        1,
        1,
        &["4: global_defs: not a virtual server"],
    ),
    (
        "keepalived.conf.track_interface",
        0,
        0,
        &[
            "3: global_defs: not a virtual server",
            "7: static_routes: not a virtual server",
            "14: vrrp_instance VI_1: not a virtual server",
        ],
    ),
    (
        "keepalived.conf.virtual_server_group",
        11,
        22,
        &[
            "3: global_defs: not a virtual server",
            "18: fwmark 1: fwmark members are not supported",
            "19: fwmark 2: fwmark members are not supported",
        ],
    ),
    (
        "keepalived.conf.virtualhost",
        1,
        1,
        &["3: global_defs: not a virtual server"],
    ),
];

/// The VRRP-only samples: nothing to convert, every block named.
const VRRP_ONLY: &[&str] = &[
    "keepalived.conf.vrrp",
    "keepalived.conf.vrrp.localcheck",
    "keepalived.conf.vrrp.routes",
    "keepalived.conf.vrrp.rules",
    "keepalived.conf.vrrp.scripts",
    "keepalived.conf.vrrp.static_ipaddress",
    "keepalived.conf.vrrp.sync",
];

#[test]
fn every_sample_converts_or_names_what_it_refuses() {
    println!(
        "{:<42} {:>8} {:>5}  not converted (line: reason)",
        "sample", "services", "reals"
    );
    let mut wrong = Vec::new();
    for path in corpus() {
        let i = convert(&path);
        let file = name(&path);
        let notes: Vec<String> = i
            .notes
            .iter()
            .map(|n| format!("{}: {}", n.at.line, n.message))
            .collect();
        println!(
            "{file:<42} {:>8} {:>5}  {}",
            i.services,
            i.reals,
            notes.len()
        );
        for n in &notes {
            println!("{:<58}{n}", "");
        }
        for n in &i.notes {
            assert!(
                !n.message.contains(UNREAD),
                "{n}: the converter has no rule for this"
            );
            assert!(n.at.file.ends_with(&file), "{n}: names another file");
            assert!(n.message.contains(": "), "{n}: no reason given");
        }
        if let Some((_, services, reals, expected)) = EXPECTED.iter().find(|e| e.0 == file) {
            let ok = (i.services, i.reals) == (*services, *reals)
                && notes.len() == expected.len()
                && notes.iter().zip(*expected).all(|(n, e)| n.starts_with(e));
            if !ok {
                wrong.push(format!(
                    "{file}: got {} services, {} reals, notes {notes:#?}",
                    i.services, i.reals
                ));
            }
        } else if VRRP_ONLY.contains(&file.as_str()) {
            let ok = i.services == 0
                && !notes.is_empty()
                && i.notes
                    .iter()
                    .all(|n| n.message.contains("not a virtual server (ignored)"));
            if !ok {
                wrong.push(format!("{file}: expected only VRRP blocks, got {notes:#?}"));
            }
        } else if file != "keepalived.conf.vrrp.lvs_syncd" {
            wrong.push(format!("{file}: not in the expected table"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn lvs_syncd_sample_converts_its_virtual_server() {
    // keepalived.conf.vrrp.lvs_syncd holds VRRP and one virtual server.
    let path = corpus()
        .into_iter()
        .find(|p| name(p) == "keepalived.conf.vrrp.lvs_syncd")
        .expect("sample");
    let i = convert(&path);
    assert_eq!((i.services, i.reals), (1, 1));
    assert!(
        i.notes
            .iter()
            .all(|n| n.message.contains("not a virtual server (ignored)")),
        "{:?}",
        i.notes
    );
}

/// The health keys (delay_loop, checks, sorry_server, ...) removed: what
/// this crate's configuration knows without the checker engine.
fn without_health_keys(text: &str) -> String {
    const SERVICE: &[&str] = &[
        "delay_loop",
        "alpha",
        "virtualhost",
        "inhibit_on_failure",
        "sorry_server",
        "sorry_server_inhibit",
        "quorum",
        "hysteresis",
        "quorum_up",
        "quorum_down",
        "notify_up",
        "notify_down",
    ];
    let mut out = String::new();
    let mut in_check = false;
    for line in text.lines() {
        if line.starts_with("[[") {
            in_check = line == "[[services.reals.checks]]";
        }
        let key = line.split(" = ").next().unwrap_or("");
        if in_check || SERVICE.contains(&key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn converted_samples_parse_as_a_configuration() {
    for path in corpus() {
        let i = convert(&path);
        if i.services == 0 {
            continue;
        }
        let text = without_health_keys(&i.toml);
        let cfg = Config::from_str_named(&text, &name(&path))
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", name(&path)));
        assert_eq!(cfg.services.len(), i.services, "{}", name(&path));
        let reals: usize = cfg.services.iter().map(|s| s.reals.len()).sum();
        assert_eq!(reals, i.reals, "{}", name(&path));
    }
}

/// The whole output, health keys included, through `xdpvs --check`'s
/// code. Needs the configuration keys of the checker engine (issue 14,
/// branches health-a and health-b).
#[test]
fn converted_samples_pass_xdpvs_check() {
    let dir = std::env::temp_dir().join(format!("xdpvs-keepalived-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failed = Vec::new();
    for path in corpus() {
        let i = convert(&path);
        if i.services == 0 {
            continue;
        }
        let file = dir.join(format!("{}.toml", name(&path)));
        std::fs::write(&file, &i.toml).unwrap();
        match xdpvs::daemon::check(&file) {
            Ok((services, reals)) => {
                assert_eq!((services, reals), (i.services, i.reals), "{}", name(&path));
            }
            // A valid configuration that the service table cannot hold
            // yet (IPv6 services): the file itself must still be valid.
            Err(DaemonError::Services {
                error: ServiceError::NotImplemented(what),
                ..
            }) => {
                println!("{}: valid; the daemon lacks {what}", name(&path));
                if let Err(e) = Config::from_file(&file) {
                    failed.push(format!("{}: {e}", name(&path)));
                }
            }
            Err(e) => failed.push(format!("{}: {e}", name(&path))),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The command itself: the TOML on stdout, the notes on stderr, and the
/// exit status (0 when printed, even with notes; 1 when nothing converts
/// or the file cannot be read).
#[test]
fn the_command_prints_and_exits_as_documented() {
    let run = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xdpvs"))
            .arg("import-keepalived")
            .arg(file)
            .args(["--interface", "eth1", "--interface", "eth2"])
            .output()
            .expect("runs xdpvs")
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keepalived");
    let ok = run(&dir.join("keepalived.conf.sample"));
    assert_eq!(ok.status.code(), Some(0));
    let stdout = String::from_utf8(ok.stdout).unwrap();
    let stderr = String::from_utf8(ok.stderr).unwrap();
    let doc: toml::Table = stdout.parse().expect("TOML on stdout");
    assert_eq!(
        doc["dataplane"]["interfaces"],
        toml::Value::Array(vec!["eth1".into(), "eth2".into()])
    );
    assert!(
        stderr.contains("keepalived.conf.sample:13: vrrp_instance VI_1: not a virtual server"),
        "{stderr}"
    );
    let none = run(&dir.join("keepalived.conf.vrrp"));
    assert_eq!(none.status.code(), Some(1));
    assert!(
        none.stdout.is_empty(),
        "nothing printed when nothing converts"
    );
    let missing = run(&dir.join("no-such-file.conf"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.conf"));
}
