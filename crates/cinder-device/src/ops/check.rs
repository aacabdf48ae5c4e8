//! Value checks on the device: an input outside an op's domain, or an op's output that is
//! not finite, reported at the thread's next readback or sync without reading anything back
//! here (see [`crate::checks`]). Kernel in `shaders/check.wgsl`.

use crate::checks::{Check, VALUE_CHECK_BIT, error_slot, register};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::tensor::{DType, DeviceTensor};

fn kernel() -> Kernel {
    Kernel::new("check", "check_range", 1, 0).with_error_word()
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![kernel()]
}

const _: () = assert!(VALUE_CHECK_BIT == 32, "shaders/check.wgsl writes bit 32");

impl DeviceTensor {
    fn dispatch_check(&self, check: Check, lo: f32, hi: f32, nan_ok: bool) -> Result<()> {
        self.expect_dtype("check_range", DType::F32)?;
        let n = self.numel();
        if n == 0 {
            return Ok(());
        }
        let Some(seq) = register(self.device().id(), check) else {
            return Ok(());
        };
        let p = Params::new()
            .usize(n)
            .f32(lo)
            .f32(hi)
            .u32(error_slot())
            .u32(seq)
            .u32(nan_ok as u32);
        self.device()
            .dispatch(&kernel(), &[self], &[], &p, grid_elems(n)?)
    }

    /// Checks on the device that every element lies in `[lo, hi]` (NaN never does): when
    /// one does not, the thread's next readback or [`crate::Device::sync`] returns
    /// [`Error::OutOfDomain`] naming `op` and `expected` (what the input must satisfy), as
    /// PyTorch raises for such inputs. One dispatch; nothing is read back. Returns `Err` now
    /// only for a `u32` tensor or `lo > hi`.
    pub fn check_range(
        &self,
        op: &'static str,
        expected: impl Into<String>,
        lo: f32,
        hi: f32,
    ) -> Result<()> {
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Err(Error::invalid(
                "check_range",
                format!("bounds [{lo}, {hi}]"),
                self.shape(),
            ));
        }
        let expected = expected.into();
        self.dispatch_check(Check::Domain { op, expected }, lo, hi, false)
    }

    /// Checks on the device that no element is below `lo` (NaN passes, as in PyTorch's
    /// `torch.any(var < 0)` test): otherwise the thread's next readback or sync returns
    /// [`Error::OutOfDomain`] naming `op` and `expected`. One dispatch; nothing is read
    /// back. Returns `Err` now only for a `u32` tensor or a NaN `lo`.
    pub fn check_min(&self, op: &'static str, expected: impl Into<String>, lo: f32) -> Result<()> {
        if lo.is_nan() {
            return Err(Error::invalid("check_min", "a NaN bound", self.shape()));
        }
        let expected = expected.into();
        self.dispatch_check(Check::Domain { op, expected }, lo, f32::INFINITY, true)
    }

    /// Checks on the device that every element is finite: when one is NaN or infinite, the
    /// thread's next readback or [`crate::Device::sync`] returns [`Error::NonFinite`] naming
    /// `op` (the earliest failing check since the previous readback wins). What anomaly
    /// detection runs after each op. Returns `Err` now only for a `u32` tensor.
    pub fn check_finite(&self, op: impl Into<String>) -> Result<()> {
        let op = op.into();
        self.dispatch_check(Check::Finite { op }, -f32::MAX, f32::MAX, false)
    }
}
