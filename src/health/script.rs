//! MISC_CHECK: a program run without a shell, in its own process group,
//! judged by its exit code. At its `timeout` (or when the check stops)
//! the whole group gets SIGKILL, so a script's children die with it.

use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, User};

use super::check::{Outcome, io_reason, seconds};
use crate::config::ScriptCheck;

/// Kills the process group when dropped, unless disarmed.
struct Group(Option<Pid>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Runs the script once.
pub async fn run(script: &ScriptCheck) -> Result<Outcome, String> {
    let argv = &script.command.argv;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(name) = &script.user {
        let user = User::from_name(name)
            .map_err(|e| format!("user {name}: {e}"))?
            .ok_or_else(|| format!("user {name}: no such user"))?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| io_reason(&format!("run {}", argv[0]), &e))?;
    let mut group = Group(child.id().map(|id| Pid::from_raw(id as i32)));
    match tokio::time::timeout(script.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            group.0 = None; // exited: what it left running is its business
            let Some(code) = status.code() else {
                return Err(format!("killed by a signal ({status})"));
            };
            judge(script.dynamic, code)
        }
        Ok(Err(e)) => Err(io_reason("wait", &e)),
        Err(_) => {
            drop(group); // SIGKILL to the group
            let _ = child.wait().await; // reaped, no zombie
            Err(format!(
                "timed out after {}, killed",
                seconds(script.timeout)
            ))
        }
    }
}

/// keepalived's reading of the exit code.
fn judge(dynamic: bool, code: i32) -> Result<Outcome, String> {
    match (dynamic, code) {
        (_, 0) => Ok(Outcome::pass("exit 0")),
        (true, 2..=255) => Ok(Outcome {
            weight: Some((code - 2) as u32),
            detail: format!("exit {code}: weight {}", code - 2),
        }),
        (_, code) => Err(format!("exit status {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn exit_codes() {
        assert!(judge(false, 0).is_ok());
        assert!(judge(false, 2).is_err());
        assert!(judge(true, 1).is_err());
        assert_eq!(judge(true, 12).unwrap().weight, Some(10));
        assert_eq!(judge(true, 0).unwrap().weight, None);
    }
}
