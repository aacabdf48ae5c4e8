//! Thread-local grad mode: whether ops record a graph ([`no_grad`], [`enable_grad`]).

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
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
