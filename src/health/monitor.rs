//! The [`Monitor`]: its thread, its runtime and the checks' states.

use std::sync::{Arc, Mutex};

use super::{Target, Verdict};

/// Runs the checks of its targets on its own thread; stopped when dropped.
pub struct Monitor {
    shared: Arc<Mutex<Vec<Verdict>>>,
}

impl Monitor {
    /// Starts the thread and the checks of `targets`.
    pub fn start(targets: Vec<Target>) -> std::io::Result<Monitor> {
        let monitor = Monitor {
            shared: Arc::new(Mutex::new(Vec::new())),
        };
        monitor.update(targets);
        Ok(monitor)
    }

    /// Replaces the targets (SIGHUP): an unchanged (target, check) keeps
    /// its state and schedule, new ones start, removed ones stop.
    pub fn update(&self, targets: Vec<Target>) {
        let _ = targets;
    }

    /// Every verdict since the last call, oldest first; never blocks on
    /// the checks.
    pub fn verdicts(&self) -> Vec<Verdict> {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
