//! Per-channel affine maps, the elementwise passes of batch norm fused into one kernel each.
//! Kernels in `shaders/norm.wgsl`.
//!
//! A tensor of rank 2 or more is viewed as `N * C` rows of `L` elements (channel axis 1, `L`
//! the product of the axes after it). `channel_affine` computes `a[c] * x + d[c]`,
//! optionally plus `b[c] * z` for a second tensor `z` of the same shape, optionally squared:
//! batch norm's normalization (`x * (w / std) + (b - mean * w / std)`), its centered square
//! for the variance, and its input gradient (`alpha * g + beta * x + gamma`) are each one
//! pass.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_GROUPS_PER_DIM, Params};
use crate::tensor::{DType, DeviceTensor};

/// Elements of a row one workgroup covers (64 invocations x 4; `256u` in the shader).
const ROW_CHUNK: usize = 256;

fn kernel(two: bool, square: bool) -> Kernel {
    Kernel::new("norm", "channel_affine", 5, 1)
        .with_constant("TWO", two as u32 as f64)
        .with_constant("SQUARE", square as u32 as f64)
        .with_workgroup((64, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    for two in [false, true] {
        for square in [false, true] {
            v.push(kernel(two, square));
        }
    }
    v
}

/// The second operand of [`DeviceTensor::channel_affine`]: `scale[c] * tensor` is added.
pub type Second<'a> = (&'a DeviceTensor, &'a DeviceTensor);

impl DeviceTensor {
    /// `scale[c] * self + shift[c]` along channel axis 1 (`self` of rank 2 or more, `scale`
    /// and `shift` `[C]`); with `second = Some((z, zscale))`, `zscale[c] * z` is added too
    /// (`z` of `self`'s shape); with `square`, the result is squared. One pass. Returns `Err`
    /// for rank below 2, a `u32` operand, vectors not `[C]`, `z` of another shape, a tensor
    /// on another device, or more rows than the grid can hold.
    pub fn channel_affine(
        &self,
        scale: &DeviceTensor,
        shift: &DeviceTensor,
        second: Option<Second>,
        square: bool,
    ) -> Result<DeviceTensor> {
        let op = "channel_affine";
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::invalid(op, "expects rank 2 or more (N, C, ...)", s));
        }
        let c = s[1];
        let mut all = vec![self, scale, shift];
        if let Some((z, zs)) = second {
            if z.shape() != s {
                return Err(Error::shapes(op, s, z.shape()));
            }
            all.extend([z, zs]);
        }
        for t in &all {
            t.expect_dtype(op, DType::F32)?;
            if !t.device().same(self.device()) {
                return Err(Error::invalid(
                    op,
                    "tensor lives on another device",
                    t.shape(),
                ));
            }
        }
        for v in [Some(scale), Some(shift), second.map(|(_, zs)| zs)]
            .into_iter()
            .flatten()
        {
            if v.shape() != [c] {
                return Err(Error::shapes(op, v.shape(), &[c]));
            }
        }
        let out = DeviceTensor::uninit_for(op, self.device(), s, DType::F32)?;
        let rows = s[0] * c;
        let l: usize = s[2..].iter().product();
        if out.numel() == 0 {
            return Ok(out);
        }
        let max = MAX_GROUPS_PER_DIM as usize;
        let (gy, gz) = if rows <= max {
            (rows, 1)
        } else {
            (max, rows.div_ceil(max))
        };
        let gx = l.div_ceil(ROW_CHUNK);
        if gx > max || gz > max {
            return Err(Error::invalid(op, "too many rows or elements per row", s));
        }
        let (z, zs) = second.unwrap_or((self, scale));
        let params = Params::new().usize(l).usize(c).usize(rows);
        self.device().dispatch(
            &kernel(second.is_some(), square),
            &[self, z, scale, zs, shift],
            &[&out],
            &params,
            (gx as u32, gy as u32, gz as u32),
        )?;
        Ok(out)
    }
}
