//! Batched matrix multiply with transpose flags. Kernels in `shaders/matmul.wgsl`.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params};
use crate::shape::numel;
use crate::tensor::{DType, DeviceTensor};

fn naive() -> Kernel {
    Kernel::new("matmul", "matmul_naive", 2, 1)
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![naive()]
}

impl DeviceTensor {
    /// Matrix product `self @ rhs` of `[..., M, K]` and `[..., K, N]` tensors, giving
    /// `[..., M, N]`. Batch dimensions must be equal, or one side's must all be 1 (it is
    /// reused for every batch). Returns `Err` naming both shapes on mismatch, for rank < 2,
    /// or for `u32` operands.
    pub fn matmul(&self, rhs: &DeviceTensor) -> Result<DeviceTensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) @ op(rhs)` where `op` transposes the last two dimensions when its flag is
    /// set, without materializing the transpose: `self` is `[..., M, K]` (`[..., K, M]` if
    /// `trans_a`), `rhs` is `[..., K, N]` (`[..., N, K]` if `trans_b`). Errors as
    /// [`DeviceTensor::matmul`].
    pub fn matmul_t(
        &self,
        rhs: &DeviceTensor,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<DeviceTensor> {
        let op = "matmul";
        self.expect_dtype(op, DType::F32)?;
        rhs.expect_dtype(op, DType::F32)?;
        let (sa, sb) = (self.shape(), rhs.shape());
        if sa.len() < 2 || sb.len() < 2 {
            return Err(Error::shapes(op, sa, sb));
        }
        let (ra, rb) = (sa.len(), sb.len());
        let (m, ka) = if trans_a {
            (sa[ra - 1], sa[ra - 2])
        } else {
            (sa[ra - 2], sa[ra - 1])
        };
        let (kb, n) = if trans_b {
            (sb[rb - 1], sb[rb - 2])
        } else {
            (sb[rb - 2], sb[rb - 1])
        };
        if ka != kb {
            return Err(Error::shapes(op, sa, sb));
        }
        let (ba, bb) = (&sa[..ra - 2], &sb[..rb - 2]);
        let batch_shape: Vec<usize> = if numel(ba) == 1 && numel(bb) != 1 {
            bb.to_vec()
        } else if numel(bb) == 1 || ba == bb {
            ba.to_vec()
        } else {
            return Err(Error::shapes(op, sa, sb));
        };
        let batch = numel(&batch_shape);
        let mut out_shape = batch_shape;
        out_shape.extend([m, n]);
        let out = DeviceTensor::uninit_for(op, self.device(), &out_shape, DType::F32)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        if ka == 0 {
            return DeviceTensor::zeros(self.device(), &out_shape);
        }
        if batch > crate::kernel::MAX_GROUPS_PER_DIM as usize {
            return Err(Error::invalid(
                op,
                "more than 65535 batched matrices",
                &out_shape,
            ));
        }
        let a_stride = if numel(ba) == 1 { 0 } else { m * ka };
        let b_stride = if numel(bb) == 1 { 0 } else { ka * n };
        let params = Params::new()
            .usize(m)
            .usize(n)
            .usize(ka)
            .usize(batch)
            .usize(a_stride)
            .usize(b_stride)
            .u32(trans_a as u32)
            .u32(trans_b as u32);
        let groups = (n.div_ceil(16) as u32, m.div_ceil(16) as u32, batch as u32);
        if groups.0 > crate::kernel::MAX_GROUPS_PER_DIM
            || groups.1 > crate::kernel::MAX_GROUPS_PER_DIM
        {
            return Err(Error::invalid(
                op,
                "matrix too large for one dispatch",
                &out_shape,
            ));
        }
        self.device()
            .dispatch(&naive(), &[self, rhs], &[&out], &params, groups)?;
        Ok(out)
    }
}
