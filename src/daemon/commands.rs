//! The commands health changes run — a real server's `notify_up` /
//! `notify_down`, a service's `quorum_up` / `quorum_down` — in the
//! background, as keepalived runs them: no shell (the words were split
//! when the file was read), stdin from /dev/null, output to the daemon's
//! stderr, each in a process group of its own (so a terminal's Ctrl-C
//! reaches the daemon only). The control thread never waits for one: it
//! starts it and, on every turn of its loop, reaps those that have ended
//! with a non-blocking `try_wait`, logging a failure. At most
//! [`MAX_RUNNING`] run at once; beyond that a command is not started and
//! the log says so, rather than letting a flapping server pile up
//! processes.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::log;

/// Commands running at once, at most.
pub const MAX_RUNNING: usize = 64;

/// The commands started and not yet reaped.
#[derive(Default)]
pub struct Commands {
    running: Vec<(String, Child)>,
}

impl Commands {
    /// Starts `argv` (program and arguments) for `why` (named in the log);
    /// returns at once.
    pub fn spawn(&mut self, why: &str, argv: &[String]) {
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        self.reap();
        if self.running.len() >= MAX_RUNNING {
            log::warning(format_args!(
                "{why}: not run, {MAX_RUNNING} commands still running: {program}"
            ));
            return;
        }
        let started = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn();
        match started {
            Ok(child) => {
                log::info(format_args!("{why}: running {}", argv.join(" ")));
                self.running.push((format!("{why}: {program}"), child));
            }
            Err(e) => log::warning(format_args!("{why}: cannot run {program}: {e}")),
        }
    }

    /// Reaps the commands that have ended (never blocks), logging those
    /// that failed.
    pub fn reap(&mut self) {
        self.running
            .retain_mut(|(what, child)| match child.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    if !status.success() {
                        log::warning(format_args!("{what}: {status}"));
                    }
                    false
                }
                Err(e) => {
                    log::warning(format_args!("{what}: {e}"));
                    false
                }
            });
    }

    /// How many are running (not yet reaped).
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn words(s: &str) -> Vec<String> {
        crate::config::CommandLine::parse(s).unwrap().argv
    }

    /// A command that takes a while does not hold the caller up, and is
    /// reaped once it has ended; one that cannot start is only logged.
    #[test]
    fn commands_run_in_the_background_and_are_reaped() {
        let mark = std::env::temp_dir().join(format!("xdpvs-commands-{}", std::process::id()));
        let _ = std::fs::remove_file(&mark);
        let mut c = Commands::default();
        let t0 = Instant::now();
        c.spawn(
            "test",
            &words(&format!(
                "/bin/sh -c 'sleep 0.3; echo \"$0\" > {}' 'arg one'",
                mark.display()
            )),
        );
        c.spawn("test", &words("/nonexistent/program"));
        assert!(t0.elapsed() < Duration::from_millis(250), "did not wait");
        assert_eq!(c.running(), 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.running() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            c.reap();
        }
        assert_eq!(c.running(), 0, "reaped");
        assert_eq!(std::fs::read_to_string(&mark).unwrap(), "arg one\n");
        std::fs::remove_file(&mark).unwrap();
    }
}
