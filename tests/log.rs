//! The daemon's log as a supervisor reads it (`xdpvs::log`): a bad level
//! is refused at start in one error line. Nothing here touches a network:
//! the daemon stops before it opens netlink.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("xdpvs-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn xdpvs(name: &str, config: &str, env: Option<&str>) -> (Output, PathBuf, Dir) {
    let dir = Dir::new(name);
    let path = dir.0.join("xdpvs.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdpvs"));
    cmd.arg("--config").arg(&path).env_remove(xdpvs::log::ENV);
    if let Some(v) = env {
        cmd.env(xdpvs::log::ENV, v);
    }
    (cmd.output().expect("run xdpvs"), path, dir)
}

const HEAD: &str = "[dataplane]\ninterfaces = [\"xdpvs-nosuch0\"]\n";

#[test]
fn a_bad_xdpvs_log_is_refused_in_one_error_line() {
    let (out, _, _dir) = xdpvs("env", HEAD, Some("loud"));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "<3>xdpvs: XDPVS_LOG: expected one of error, warning, notice, info, debug, got \"loud\"\n"
    );
}

#[test]
fn a_bad_log_level_key_names_file_and_key() {
    let (out, path, _dir) = xdpvs("key", &format!("{HEAD}[log]\nlevel = \"loud\"\n"), None);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "<3>xdpvs: {}:4: log.level: expected one of \"error\", \"warning\", \"notice\", \"info\", \"debug\", got \"loud\"\n",
            path.display()
        )
    );
    // --check says the same, for a person (no priority prefix).
    let out = Command::new(env!("CARGO_BIN_EXE_xdpvs"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("xdpvs: ") && err.contains("log.level"),
        "{err}"
    );
}
