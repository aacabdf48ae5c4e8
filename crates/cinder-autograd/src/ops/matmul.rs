//! Batched matmul with transpose flags and its backward rule: each gradient is another
//! matmul with transpose flags (no transposed copy), summed over the batch when an operand
//! was shared by every batch.

use cinder_device::{MatmulKernel, Result};

use crate::tensor::Tensor;

/// Sums a batched gradient `[..., r, c]` down to `shape` when the operand was broadcast
/// over the batch (its batch dimensions all 1, or absent).
fn unbatch(g: Tensor, shape: &[usize]) -> Result<Tensor> {
    let gs = g.shape();
    if gs == shape {
        return Ok(g);
    }
    let n = gs.len();
    let (r, c) = (gs[n - 2], gs[n - 1]);
    let batch: usize = gs[..n - 2].iter().product();
    g.reshape(&[batch, r, c])?
        .sum_axis(0, false)?
        .reshape(shape)
}

impl Tensor {
    /// `self @ rhs` for `[..., M, K]` and `[..., K, N]`. Errors as
    /// [`cinder_device::DeviceTensor::matmul`].
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) @ op(rhs)`, `op` transposing the last two dimensions when its flag is set.
    /// Errors as [`cinder_device::DeviceTensor::matmul_t`].
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        self.matmul_with(rhs, trans_a, trans_b, MatmulKernel::Auto)
    }

    /// [`Tensor::matmul_t`] with an explicit kernel for the forward product. Errors as
    /// [`cinder_device::DeviceTensor::matmul_with`].
    pub fn matmul_with(
        &self,
        rhs: &Tensor,
        trans_a: bool,
        trans_b: bool,
        kernel: MatmulKernel,
    ) -> Result<Tensor> {
        let y = self
            .data()
            .matmul_with(&rhs.data(), trans_a, trans_b, kernel)?;
        Ok(Tensor::from_op("matmul", y, &[self, rhs], move |c| {
            let (g, a, b) = (c.grad, c.input(0), c.input(1));
            // C = op(A) op(B): dA and dB for each combination of flags.
            let ga = a
                .requires_grad()
                .then(|| match (trans_a, trans_b) {
                    (false, false) => g.matmul_t(b, false, true),
                    (false, true) => g.matmul_t(b, false, false),
                    (true, false) => b.matmul_t(g, false, true),
                    (true, true) => b.matmul_t(g, true, true),
                })
                .transpose()?;
            let gb = b
                .requires_grad()
                .then(|| match (trans_a, trans_b) {
                    (false, false) => a.matmul_t(g, true, false),
                    (false, true) => g.matmul_t(a, true, false),
                    (true, false) => a.matmul_t(g, false, false),
                    (true, true) => g.matmul_t(a, true, true),
                })
                .transpose()?;
            Ok(vec![
                ga.map(|t| unbatch(t, &a.shape())).transpose()?,
                gb.map(|t| unbatch(t, &b.shape())).transpose()?,
            ])
        }))
    }
}
