//! Errors found by kernels: the device's error word and the checks that write to it.
//!
//! A kernel cannot return an error and no op reads back, so kernels that can meet bad input
//! report it in the device's error word, and the next readback or [`crate::Device::sync`] of
//! the thread that dispatched them returns the error (as CUDA's device-side asserts surface at
//! the next synchronization). The word has one slot per host thread ([`error_slot`]) of four
//! u32 words:
//!
//! - word 0 ORs a bit per kind of failure: bit `i < 5` for the index op
//!   [`INDEX_ERROR_OPS`]`[i]` meeting an out-of-range index, [`VALUE_CHECK_BIT`] for a failed
//!   value check;
//! - word 1 keeps the largest out-of-range index;
//! - word 2 keeps `u32::MAX - seq` of the earliest failed value check (its largest value), so
//!   0 means none; `seq` numbers the thread's value checks since its last readback, and the
//!   host keeps what each one checked.
//!
//! Value checks ([`crate::DeviceTensor::check_range`], [`crate::DeviceTensor::check_finite`])
//! are how losses reject inputs outside their domain and how anomaly detection names the
//! first op whose output is not finite, without reading anything back in the step.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::Error;

/// Error slots in a device's error word (host threads beyond this share slots).
pub const ERROR_SLOTS: u32 = 64;
/// u32 words per slot.
pub const WORDS_PER_SLOT: u32 = 4;
/// Bytes of the device's error word.
pub const ERROR_WORD_BYTES: u64 = ERROR_SLOTS as u64 * WORDS_PER_SLOT as u64 * 4;

/// The ops whose kernels report bad indices, by bit of word 0 (bit `i` is entry `i`;
/// `shaders/index.wgsl` writes the same bits).
pub const INDEX_ERROR_OPS: [&str; 5] = [
    "gather",
    "index_select",
    "scatter_add",
    "index_select_backward",
    "one_hot",
];

/// The bit of word 0 a failed value check sets (`shaders/check.wgsl`).
pub const VALUE_CHECK_BIT: u32 = 1 << 5;

/// The error slot of the calling thread: what the checking kernels it dispatches write to,
/// and what its readbacks read, so that an error is reported to the thread whose op met it.
pub fn error_slot() -> u32 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    thread_local! {
        static SLOT: Cell<Option<u32>> = const { Cell::new(None) };
    }
    SLOT.with(|s| match s.get() {
        Some(slot) => slot,
        None => {
            let slot = NEXT.fetch_add(1, Ordering::Relaxed) % ERROR_SLOTS;
            s.set(Some(slot));
            slot
        }
    })
}

/// What a value check looked for, kept on the host until the thread's next readback.
#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// A loss or op input outside its domain: the op and what was expected.
    Domain { op: &'static str, expected: String },
    /// Anomaly detection: the op whose output was checked for NaN and infinity.
    Finite { op: String },
}

thread_local! {
    /// This thread's value checks since its last readback, by device.
    static CHECKS: RefCell<HashMap<usize, Vec<Check>>> = RefCell::new(HashMap::new());
}

/// Records a value check about to be dispatched on device `device` and returns its sequence
/// number, or `None` when the thread has recorded `u32::MAX - 1` of them there since its last
/// readback (a later check is then not dispatched: the earliest failures are the ones
/// reported).
pub(crate) fn register(device: usize, check: Check) -> Option<u32> {
    CHECKS.with(|c| {
        let mut c = c.borrow_mut();
        let list = c.entry(device).or_default();
        let seq = u32::try_from(list.len())
            .ok()
            .filter(|&s| s < u32::MAX - 1)?;
        list.push(check);
        Some(seq)
    })
}

/// The error a slot's words describe, if any, and forgets the thread's recorded checks on
/// `device` (every check dispatched before the readback has run by then).
pub(crate) fn decode(device: usize, words: &[u32]) -> Option<Error> {
    let recorded = CHECKS.with(|c| c.borrow_mut().remove(&device).unwrap_or_default());
    let bits = words[0];
    if bits == 0 {
        return None;
    }
    let ops: Vec<&'static str> = INDEX_ERROR_OPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if !ops.is_empty() {
        return Some(Error::IndexOutOfRange {
            ops,
            index: words[1],
        });
    }
    let seq = u32::MAX - words[2];
    Some(match recorded.get(seq as usize) {
        Some(Check::Domain { op, expected }) => Error::OutOfDomain {
            op,
            expected: expected.clone(),
        },
        Some(Check::Finite { op }) => Error::NonFinite { op: op.clone() },
        None => Error::OutOfDomain {
            op: "value check",
            expected: format!("check {seq} failed, but it was not recorded on this thread"),
        },
    })
}
