//! The [`Monitor`]: its thread, its runtime and the checks' states.
//!
//! One thread runs a current-thread tokio runtime; each check is a task
//! that loops (attempts, record, sleep to the next start). The states live
//! in one [`Shared`] behind a mutex that the tasks hold only to record a
//! result, and [`Monitor::update`] / [`Monitor::verdicts`] only to swap
//! tables or take the verdicts, so neither caller waits on a check.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::check;
use super::net::Outcome;
use super::plan::{Target, Verdict};
use crate::config::{CheckConfig, CheckKind, Forward, Protocol};

type Key = (Protocol, SocketAddr, SocketAddr);

/// The state machine of one check (HAProxy's rise/fall over keepalived's
/// retries).
#[derive(Debug, Clone)]
struct CheckState {
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
    weight: Option<u32>,
}

struct Slot {
    id: u64,
    cfg: CheckConfig,
    name: String,
    state: CheckState,
    abort: AbortHandle,
}

struct TargetState {
    forward: Forward,
    slots: Vec<Slot>,
    up: bool,
    weight: Option<u32>,
}

#[derive(Default)]
struct Shared {
    targets: HashMap<Key, TargetState>,
    verdicts: Vec<Verdict>,
    next_id: u64,
}

/// Runs the checks of its targets on its own thread; stops them (and
/// kills their scripts) when dropped.
pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The checker thread's name (`/proc/self/task/*/comm`).
pub const THREAD_NAME: &str = "xdpvs-health";

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic in a task must not stop the others from recording.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Monitor {
    /// Starts the thread and the checks of `targets`.
    pub fn start(targets: Vec<Target>) -> std::io::Result<Monitor> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(8)
                    .thread_name("xdpvs-health-blk")
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stop_rx.await;
                        });
                        // Dropping the runtime drops every task: scripts
                        // are killed by their guards.
                        rt.shutdown_timeout(Duration::from_secs(1));
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the health thread died at start"))??;
        let monitor = Monitor {
            shared: Arc::new(Mutex::new(Shared::default())),
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        monitor.update(targets);
        Ok(monitor)
    }

    /// Replaces the targets (SIGHUP): an unchanged (target, check) keeps
    /// its state and schedule, new ones start, removed ones stop. A new
    /// target gets its initial verdict; a kept one whose set of checks
    /// changed gets a verdict only if its state changes.
    pub fn update(&self, targets: Vec<Target>) {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        let mut old = std::mem::take(&mut shared.targets);
        for target in targets {
            let key = (target.proto, target.vip, target.real);
            if shared.targets.contains_key(&key) {
                continue; // the same real server twice: the first wins
            }
            let mut previous = old.remove(&key);
            let mut slots = Vec::with_capacity(target.checks.len());
            for cfg in target.checks {
                let kept = previous.as_mut().and_then(|p| {
                    let i = p.slots.iter().position(|s| s.cfg == cfg)?;
                    Some(p.slots.remove(i))
                });
                let slot = match kept {
                    Some(slot) => slot,
                    None => {
                        shared.next_id += 1;
                        let id = shared.next_id;
                        let name = check::name(&cfg);
                        let state = CheckState {
                            up: !cfg.alpha,
                            streak: 0,
                            weight: None,
                        };
                        let fwd =
                            check::Forwarding::of(&target.dataplane, key, target.forward, &cfg);
                        let task = run(self.shared.clone(), key, id, cfg.clone(), fwd);
                        let abort = self.handle.spawn(task).abort_handle();
                        Slot {
                            id,
                            cfg,
                            name,
                            state,
                            abort,
                        }
                    }
                };
                slots.push(slot);
            }
            let (up, weight) = aggregate(&slots);
            let verdict = |check: String, reason: String| Verdict {
                proto: key.0,
                vip: key.1,
                real: key.2,
                up,
                weight,
                check,
                reason,
            };
            match &previous {
                None => {
                    let alpha = slots.iter().find(|s| s.cfg.alpha);
                    let (check, reason) = match alpha {
                        Some(s) => (s.name.clone(), "initial state (alpha)".to_owned()),
                        None => ("initial".to_owned(), "initial state".to_owned()),
                    };
                    shared.verdicts.push(verdict(check, reason));
                }
                Some(p) if (p.up, p.weight) != (up, weight) => {
                    let reason = "its checks changed (reload)".to_owned();
                    shared.verdicts.push(verdict("reload".to_owned(), reason));
                }
                Some(_) => {}
            }
            if let Some(p) = previous {
                for slot in p.slots {
                    slot.abort.abort();
                }
            }
            let forward = target.forward;
            let state = TargetState {
                forward,
                slots,
                up,
                weight,
            };
            shared.targets.insert(key, state);
        }
        for (_, gone) in old {
            for slot in gone.slots {
                slot.abort.abort();
            }
        }
    }

    /// Every verdict since the last call, oldest first; never waits on a
    /// check.
    pub fn verdicts(&self) -> Vec<Verdict> {
        std::mem::take(&mut lock(&self.shared).verdicts)
    }

    /// Whether `real` of the service is up now, `None` if it is not a target.
    pub fn is_up(&self, proto: Protocol, vip: SocketAddr, real: SocketAddr) -> Option<bool> {
        lock(&self.shared)
            .targets
            .get(&(proto, vip, real))
            .map(|t| t.up)
    }

    /// The forwarding method the target was planned with.
    pub fn forward(&self, proto: Protocol, vip: SocketAddr, real: SocketAddr) -> Option<Forward> {
        lock(&self.shared)
            .targets
            .get(&(proto, vip, real))
            .map(|t| t.forward)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Up iff every check is up; the weight of the first dynamic script that
/// set one.
fn aggregate(slots: &[Slot]) -> (bool, Option<u32>) {
    let up = slots.iter().all(|s| s.state.up);
    let weight = slots
        .iter()
        .filter(|s| matches!(&s.cfg.kind, CheckKind::Script(sc) if sc.dynamic))
        .find_map(|s| s.state.weight);
    (up, weight.filter(|_| up))
}

/// The first start of a check is spread over its interval (at most 1 s
/// late), so thousands of checks loaded at once do not all fire together.
fn first_delay(id: u64, interval: Duration) -> Duration {
    let span = interval.min(Duration::from_secs(1)).as_micros() as u64;
    let spread = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    Duration::from_micros(if span == 0 { 0 } else { spread % span })
}

async fn run(
    shared: Arc<Mutex<Shared>>,
    key: Key,
    id: u64,
    cfg: CheckConfig,
    forwarding: Option<check::Forwarding>,
) {
    let ctx = match check::Context::new(&cfg) {
        Ok(ctx) => Some(ctx),
        Err(reason) => {
            // A setting that cannot work (a CA file that does not parse):
            // every check fails with the reason.
            record(&shared, key, id, &cfg, Err(reason));
            None
        }
    };
    let mut next = tokio::time::Instant::now() + first_delay(id, cfg.interval);
    loop {
        tokio::time::sleep_until(next).await;
        let (outcome, retried) = match &ctx {
            Some(ctx) => attempts(ctx, forwarding.as_ref(), &cfg).await,
            None => {
                next += cfg.interval;
                continue;
            }
        };
        record(&shared, key, id, &cfg, outcome);
        // After retries the next check comes a whole interval after this
        // one ended, as keepalived schedules it: a pass on the last retry
        // and the next round's must not land together, or `rise` would not
        // be paced by the interval. Otherwise the cadence holds.
        let now = tokio::time::Instant::now();
        next = if retried { now } else { next } + cfg.interval;
        if next < now {
            next = now + cfg.interval; // fell behind: skip, do not burst
        }
    }
}

/// One check: the first attempt and up to `retry` more while they fail;
/// and whether a retry was made.
async fn attempts(
    ctx: &check::Context,
    forwarding: Option<&check::Forwarding>,
    cfg: &CheckConfig,
) -> (Result<Outcome, String>, bool) {
    let mut result = check::attempt(ctx, forwarding, cfg).await;
    let mut retried = false;
    for _ in 0..cfg.retry {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(cfg.delay_before_retry).await;
        retried = true;
        result = check::attempt(ctx, forwarding, cfg).await;
    }
    (result, retried)
}

fn record(
    shared: &Mutex<Shared>,
    key: Key,
    id: u64,
    cfg: &CheckConfig,
    outcome: Result<Outcome, String>,
) {
    let mut guard = lock(shared);
    let shared = &mut *guard;
    let Some(target) = shared.targets.get_mut(&key) else {
        return;
    };
    let Some(slot) = target.slots.iter_mut().find(|s| s.id == id) else {
        return;
    };
    let st = &mut slot.state;
    let reason = match &outcome {
        Ok(o) => {
            st.weight = o.weight;
            if st.up {
                st.streak = 0;
            } else {
                st.streak += 1;
                if st.streak >= cfg.rise {
                    st.up = true;
                    st.streak = 0;
                }
            }
            o.detail.clone()
        }
        Err(reason) => {
            if st.up {
                st.streak += 1;
                if st.streak >= cfg.fall {
                    st.up = false;
                    st.streak = 0;
                }
            } else {
                st.streak = 0;
            }
            reason.clone()
        }
    };
    let name = slot.name.clone();
    let (up, weight) = aggregate(&target.slots);
    if (up, weight) != (target.up, target.weight) {
        target.up = up;
        target.weight = weight;
        shared.verdicts.push(Verdict {
            proto: key.0,
            vip: key.1,
            real: key.2,
            up,
            weight,
            check: name,
            reason,
        });
    }
}
