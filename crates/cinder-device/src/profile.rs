//! Per-kernel GPU time, switched on with `CINDER_PROFILE=1`.
//!
//! With the switch on, every dispatch runs in its own compute pass. Where the adapter has
//! timestamp queries (`wgpu::Features::TIMESTAMP_QUERY`: lavapipe and most native GPUs), each
//! pass writes a timestamp at its start and end and the device resolves them at every
//! submit, so a kernel's time is the device's own. Where it has none, the device submits and
//! waits after every dispatch and a kernel's time is that wall time (which includes the
//! submit's fixed cost). Either way the pipelining that a normal run has is lost: profile
//! to see where time goes, never to measure throughput.
//!
//! Figures accumulate per kernel label ([`label`]: family, entry point and template text)
//! over every device of the process. [`report`] returns them, [`table`] formats them, and
//! with the switch on the table is printed to stderr when the process exits.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::kernel::Kernel;

/// Time and calls of one kernel label.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's [`label`].
    pub label: String,
    /// Dispatches recorded.
    pub calls: u64,
    /// Device time (or wall time, see the module docs) in seconds, summed over the calls.
    pub seconds: f64,
}

/// How the figures were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamp queries written by the device at the start and end of each dispatch.
    Timestamps,
    /// Wall time of a submit and wait per dispatch (the adapter has no timestamp queries).
    WallPerSubmit,
}

struct Table {
    entries: HashMap<String, (u64, f64)>,
    clock: Option<Clock>,
}

fn table_lock() -> std::sync::MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            Mutex::new(Table {
                entries: HashMap::new(),
                clock: None,
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Whether `CINDER_PROFILE=1` was set when this was first asked (read once per process).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("CINDER_PROFILE").is_ok_and(|v| v == "1"))
}

/// The label figures are kept under: `family::entry`, then the template texts (an
/// elementwise kernel's expression, for example; the first line of a longer text) and the
/// override constants, cut to 48 characters.
pub fn label(kernel: &Kernel) -> String {
    let mut s = format!("{}::{}", kernel.family, kernel.entry);
    let mut texts: Vec<String> = kernel
        .subst
        .iter()
        .map(|(_, v)| v.lines().next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty() && v != "x" && v != "a")
        .collect();
    texts.extend(kernel.constants.iter().map(|(k, v)| format!("{k}={v}")));
    if !texts.is_empty() {
        let mut t = texts.join(" ");
        if t.chars().count() > 48 {
            t = t.chars().take(47).collect::<String>() + "~";
        }
        s.push_str(&format!(" [{t}]"));
    }
    s
}

pub(crate) fn record(clock: Clock, label: &str, seconds: f64) {
    let mut t = table_lock();
    t.clock = Some(clock);
    let e = t.entries.entry(label.to_string()).or_insert((0, 0.0));
    e.0 += 1;
    e.1 += seconds;
}

/// Every kernel's figures so far, the longest total time first, and how they were taken
/// (`None` when nothing was recorded: the switch is off or nothing ran).
pub fn report() -> (Vec<KernelTime>, Option<Clock>) {
    let t = table_lock();
    let mut v: Vec<KernelTime> = t
        .entries
        .iter()
        .map(|(k, (c, s))| KernelTime {
            label: k.clone(),
            calls: *c,
            seconds: *s,
        })
        .collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.label.cmp(&b.label)));
    (v, t.clock)
}

/// Forgets every figure recorded so far (a bench calls it after its warm-up).
pub fn reset() {
    table_lock().entries.clear();
}

/// The figures as a Markdown table: kernel, calls, total ms, us per call and share of the
/// total. Says so when nothing was recorded.
pub fn table() -> String {
    let (rows, clock) = report();
    if rows.is_empty() {
        return "cinder profile: no dispatch recorded\n".into();
    }
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    let how = match clock {
        Some(Clock::Timestamps) => "device timestamps",
        _ => "wall time of a submit and wait per dispatch",
    };
    let calls: u64 = rows.iter().map(|r| r.calls).sum();
    let mut s = format!(
        "cinder profile ({how}): {calls} dispatches, {:.3} ms in all\n\n| kernel | calls | total ms | us/call | share |\n|---|---|---|---|---|\n",
        total * 1e3
    );
    for r in &rows {
        s.push_str(&format!(
            "| `{}` | {} | {:.3} | {:.1} | {:.1}% |\n",
            r.label.replace('|', "\\|"),
            r.calls,
            r.seconds * 1e3,
            r.seconds * 1e6 / r.calls as f64,
            100.0 * r.seconds / total.max(f64::MIN_POSITIVE)
        ));
    }
    s
}

extern "C" fn print_at_exit() {
    eprint!("{}", table());
}

/// Registers the exit-time print once (called when a profiling device is created).
pub(crate) fn print_at_exit_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: atexit only stores the function pointer; the handler takes a lock that no
        // thread holds across an exit and prints to stderr.
        unsafe {
            libc::atexit(print_at_exit);
        }
    });
}
