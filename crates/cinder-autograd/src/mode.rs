//! Thread-local modes: whether ops record a graph ([`no_grad`], [`enable_grad`]), and
//! whether every op's output is checked for NaN and infinity ([`set_detect_anomaly`]).

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static ANOMALY: Cell<bool> = const { Cell::new(false) };
    /// The op whose backward rule is running on this thread, if any.
    static BACKWARD_OF: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// True when ops on this thread record the graph (the default). Inside [`no_grad`] it is
/// false; backward rules run with it set to `create_graph`.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped, so a `?` or a panic inside the closure
/// cannot leave recording switched off.
struct ModeGuard(bool);

impl Drop for ModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.0));
    }
}

/// Runs `f` with grad mode set to `enabled` on this thread and restores the previous mode.
pub fn with_grad_mode<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let _guard = ModeGuard(GRAD_ENABLED.with(|g| g.replace(enabled)));
    f()
}

/// Runs `f` without recording a graph on this thread, as `with torch.no_grad():`. Tensors
/// made inside do not require grad. Never fails; returns `f`'s value.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    with_grad_mode(false, f)
}

/// Runs `f` with recording switched back on (inside a [`no_grad`] block), as
/// `torch.enable_grad()`. Returns `f`'s value.
pub fn enable_grad<R>(f: impl FnOnce() -> R) -> R {
    with_grad_mode(true, f)
}

/// Switches anomaly detection on or off for this thread (PyTorch's
/// `torch.autograd.set_detect_anomaly`). While on, every op's f32 output, in forward passes
/// and inside backward rules, is checked on the device for NaN and infinity; the thread's
/// next readback or `sync()` then returns `Error::NonFinite` naming the first op that
/// produced one ("mul (in the backward of sigmoid)" inside a rule). The checks read nothing
/// back, but cost one small dispatch per op: switch it on to find where a NaN comes from,
/// not for every run. `CINDER_DETECT_ANOMALY=1` switches it on for every thread.
pub fn set_detect_anomaly(on: bool) {
    ANOMALY.with(|a| a.set(on));
}

/// True when anomaly detection is on for this thread (see [`set_detect_anomaly`]).
pub fn is_anomaly_enabled() -> bool {
    static FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    ANOMALY.with(|a| a.get())
        || *FROM_ENV.get_or_init(|| std::env::var("CINDER_DETECT_ANOMALY").is_ok_and(|v| v == "1"))
}

/// Runs `f` with anomaly detection on (PyTorch's `with torch.autograd.detect_anomaly():`)
/// and restores the previous setting. Returns `f`'s value.
pub fn detect_anomaly<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ANOMALY.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ANOMALY.with(|a| a.replace(true)));
    f()
}

/// Runs `f` as the backward rule of `op` (so anomaly reports can name it).
pub(crate) fn in_backward_of<R>(op: &'static str, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<&'static str>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BACKWARD_OF.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BACKWARD_OF.with(|b| b.replace(Some(op))));
    f()
}

/// Checks `data` for NaN and infinity on the device when anomaly detection is on, naming
/// `op` (and the backward rule running, if any).
pub(crate) fn check_anomaly(op: &'static str, data: &cinder_device::DeviceTensor) {
    if !is_anomaly_enabled() || data.dtype() != cinder_device::DType::F32 {
        return;
    }
    let name = match BACKWARD_OF.with(|b| b.get()) {
        Some(rule) => format!("{op} (in the backward of {rule})"),
        None => op.to_string(),
    };
    // Errs only for a u32 tensor (excluded above); a failed dispatch surfaces at the
    // next readback like any other device error.
    let _ = data.check_finite(name);
}
