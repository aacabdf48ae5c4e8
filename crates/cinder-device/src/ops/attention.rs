//! Attention's masked, scaled softmax in one kernel (`shaders/attention.wgsl`): the scale,
//! an additive or boolean mask and the causal rule are applied as the row is read, and a row
//! with every key dropped is zeros (as `F.scaled_dot_product_attention` gives).

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_1d};
use crate::tensor::{DType, DeviceTensor};

/// How [`DeviceTensor::masked_softmax`] reads a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnMask {
    /// An f32 mask added to the scaled scores (`-inf` drops a key).
    Additive,
    /// A u32 mask, nonzero where a key takes part (the boolean mask of
    /// `F.scaled_dot_product_attention`).
    Keep,
    /// A u32 mask, nonzero where a key is dropped (the boolean `attn_mask` and
    /// `key_padding_mask` of `nn.MultiheadAttention`).
    Drop,
}

impl AttnMask {
    fn code(self) -> u32 {
        match self {
            AttnMask::Additive => 1,
            AttnMask::Keep => 2,
            AttnMask::Drop => 3,
        }
    }

    fn dtype(self) -> DType {
        match self {
            AttnMask::Additive => DType::F32,
            AttnMask::Keep | AttnMask::Drop => DType::U32,
        }
    }
}

fn kernel(mask: u32, causal: bool) -> Kernel {
    Kernel::new("attention", "masked_softmax", 2, 1)
        .with_constant("MASK", mask as f64)
        .with_constant("CAUSAL", causal as u32 as f64)
        .with_workgroup((64, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    (0..4)
        .flat_map(|m| [kernel(m, false), kernel(m, true)])
        .collect()
}

impl DeviceTensor {
    /// `softmax(scale * self + mask, -1)` for attention scores `[..., Lq, Lk]`, in one
    /// pass: `mask` (read as [`AttnMask`] says) broadcasts to the scores' shape, `causal`
    /// drops key `k` of query `q` when `k > q`. Dropped keys get 0; a row with every key
    /// dropped is all zeros. Returns `Err` for a scalar, a mask of the wrong dtype or of a
    /// shape that does not broadcast, a tensor on another device, or a grid too large.
    pub fn masked_softmax(
        &self,
        mask: Option<(&DeviceTensor, AttnMask)>,
        causal: bool,
        scale: f32,
    ) -> Result<DeviceTensor> {
        let op = "masked_softmax";
        let s = self.shape();
        if s.is_empty() {
            return Err(Error::invalid(op, "expects scores of rank 1 or more", s));
        }
        self.expect_dtype(op, DType::F32)?;
        let len = s[s.len() - 1];
        let lq = if s.len() >= 2 { s[s.len() - 2] } else { 1 };
        let out = DeviceTensor::uninit_for(op, self.device(), s, DType::F32)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        let rows = self.numel() / len;
        let (m, code, mask_rows, mask_div) = match mask {
            None => (self.clone(), 0, 1, 1),
            Some((m, kind)) => {
                m.expect_dtype(op, kind.dtype())?;
                if !m.device().same(self.device()) {
                    return Err(Error::invalid(
                        op,
                        "mask lives on another device",
                        m.shape(),
                    ));
                }
                let bad = || Error::shapes(op, s, m.shape());
                let ms = m.shape();
                if ms.len() > s.len() && ms[..ms.len() - s.len()].iter().any(|&d| d != 1) {
                    return Err(bad());
                }
                // The mask's row dimensions aligned to the scores' (missing ones are 1).
                let r = s.len() - 1;
                let mut md = vec![1usize; r];
                for (i, &d) in ms.iter().rev().skip(1).enumerate() {
                    if i < r {
                        md[r - 1 - i] = d;
                    }
                }
                if ms.is_empty() || ms[ms.len() - 1] != len {
                    return Err(bad());
                }
                if md.iter().zip(&s[..r]).any(|(&a, &b)| a != 1 && a != b) {
                    return Err(bad());
                }
                let kept: Vec<usize> = (0..r).filter(|&i| md[i] != 1).collect();
                let consecutive = kept.windows(2).all(|w| w[1] == w[0] + 1);
                if consecutive {
                    let (i0, i1) = kept
                        .first()
                        .map_or((r, r), |&a| (a, kept[kept.len() - 1] + 1));
                    let rows_kept: usize = md[i0..i1].iter().product();
                    let div: usize = s[i1..r].iter().product();
                    (m.clone(), kind.code(), rows_kept.max(1), div.max(1))
                } else {
                    // Scattered broadcast dimensions: copied to the scores' shape first.
                    let full = if kind.dtype() == DType::U32 {
                        m.to_dtype(DType::F32)?
                            .broadcast_to(s)?
                            .to_dtype(DType::U32)?
                    } else {
                        m.broadcast_to(s)?
                    };
                    (full, kind.code(), rows, 1)
                }
            }
        };
        let params = Params::new()
            .usize(len)
            .usize(lq)
            .usize(rows)
            .usize(mask_rows)
            .usize(mask_div)
            .f32(scale);
        self.device().dispatch(
            &kernel(code, causal),
            &[self, &m],
            &[&out],
            &params,
            grid_1d(rows, 64)?,
        )?;
        Ok(out)
    }
}
