//! Batched matmul with `torch.matmul`'s semantics (broadcast batches, 1-D operands as
//! vectors) and transpose flags, and its backward rule: each gradient is another matmul with
//! transpose flags (no transposed copy), summed over the batch dimensions an operand was
//! broadcast along.

use cinder_device::{BiasAxis, Epilogue, MatmulKernel, Result};

use crate::tensor::Tensor;

/// The gradient of an operand of shape `shape` from a batched product's gradient, summed
/// over the batch dimensions it was broadcast along.
fn unbatch(g: Tensor, shape: &[usize]) -> Result<Tensor> {
    let gs = g.shape();
    if gs == shape {
        return Ok(g);
    }
    let n = gs.len();
    let r = shape.len();
    // Batch dimensions of `shape` (all but its last two), right-aligned against g's.
    let mut kept: Vec<usize> = vec![1; n - 2];
    let off = (n - 2) - (r - 2);
    kept[off..].copy_from_slice(&shape[..r - 2]);
    kept.extend_from_slice(&gs[n - 2..]);
    g.sum_to_shape(&kept)?.reshape(shape)
}

impl Tensor {
    /// `torch.matmul`: `[..., M, K] @ [..., K, N]` with broadcast batches, 1-D operands as
    /// vectors. Errors as [`cinder_device::DeviceTensor::matmul`].
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) @ op(rhs)`, `op` transposing the last two dimensions when its flag is set.
    /// Errors as [`cinder_device::DeviceTensor::matmul_t`].
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        self.matmul_with(rhs, trans_a, trans_b, MatmulKernel::Auto)
    }

    /// [`Tensor::matmul_t`] with an explicit kernel for the forward product (kept inside the
    /// crate: the kernel choice is the device crate's business). Errors as
    /// [`cinder_device::DeviceTensor::matmul_with`].
    pub(crate) fn matmul_with(
        &self,
        rhs: &Tensor,
        trans_a: bool,
        trans_b: bool,
        kernel: MatmulKernel,
    ) -> Result<Tensor> {
        // 1-D operands: as row / column vectors through a differentiable reshape.
        if self.rank() == 1 || rhs.rank() == 1 {
            let (sa, sb) = (self.shape(), rhs.shape());
            if sa.is_empty() || sb.is_empty() {
                return Err(cinder_device::Error::shapes("matmul", &sa, &sb));
            }
            let a = if sa.len() == 1 {
                self.reshape(&if trans_a { [sa[0], 1] } else { [1, sa[0]] })?
            } else {
                self.clone()
            };
            let b = if sb.len() == 1 {
                rhs.reshape(&if trans_b { [1, sb[0]] } else { [sb[0], 1] })?
            } else {
                rhs.clone()
            };
            let y = a.matmul_with(&b, trans_a, trans_b, kernel)?;
            let mut shape = y.shape();
            let r = shape.len();
            if sb.len() == 1 {
                shape.remove(r - 1);
            }
            if sa.len() == 1 {
                shape.remove(r - 2);
            }
            return y.reshape(&shape);
        }
        let y = self
            .raw()
            .matmul_with(&rhs.raw(), trans_a, trans_b, kernel)?;
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

/// `self @ weight^T + bias`, then ReLU when `relu`, as one product with a fused epilogue
/// (see [`cinder_device::Epilogue`]). The gradient of the ReLU is taken from the output
/// (`y > 0` exactly where the pre-activation is, NaN passing as in the relu op).
fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    let op = if relu { "linear_relu" } else { "linear" };
    let s = x.shape();
    let ws = weight.shape();
    if ws.len() != 2 || s.is_empty() || s[s.len() - 1] != ws[1] {
        return Err(cinder_device::Error::shapes(op, &s, &ws));
    }
    if let Some(b) = bias
        && b.shape() != [ws[0]]
    {
        return Err(cinder_device::Error::shapes(op, &b.shape(), &[ws[0]]));
    }
    let rows = cinder_device::shape::checked_product(op, &s, &s[..s.len() - 1])?;
    let x2 = x.reshape(&[rows, ws[1]])?;
    let braw = bias.map(|b| b.raw());
    let y = x2.raw().matmul_fused(
        &weight.raw(),
        false,
        true,
        MatmulKernel::Auto,
        Epilogue {
            bias: braw.as_ref().map(|b| (b, BiasAxis::Cols)),
            relu,
        },
    )?;
    let mut inputs = vec![&x2, weight];
    inputs.extend(bias);
    let y = Tensor::from_op(op, y, &inputs, move |c| {
        let g = if relu {
            c.grad.relu_backward(c.output)?
        } else {
            c.grad.clone()
        };
        let (x, w) = (c.input(0), c.input(1));
        let dx = x.requires_grad().then(|| g.matmul(w)).transpose()?;
        let dw = w
            .requires_grad()
            .then(|| g.matmul_t(x, true, false))
            .transpose()?;
        let mut grads = vec![dx, dw];
        if c.inputs.len() > 2 {
            let db = c.inputs[2]
                .requires_grad()
                .then(|| g.sum_axis(0, false))
                .transpose()?;
            grads.push(db);
        }
        Ok(grads)
    });
    let mut out = s[..s.len() - 1].to_vec();
    out.push(ws[0]);
    y.reshape(&out)
}

impl Tensor {
    /// PyTorch's `torch.nn.functional.linear`: `self @ weight^T + bias` for `self`
    /// `[..., in]`, `weight` `[out, in]` and `bias` `[out]`, giving `[..., out]`, as one
    /// product with the bias add fused into its store. Returns `Err` naming the shapes when
    /// `weight` is not 2-D, `self` is rank 0 or its last dimension is not `in`, or `bias` is
    /// not `[out]`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        linear(self, weight, bias, false)
    }

    /// `relu(linear(self, weight, bias))` with the bias add and the ReLU fused into the
    /// product's store (one kernel forward; the backward masks the gradient once, from the
    /// output). Errors as [`Tensor::linear`].
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        linear(self, weight, bias, true)
    }
}
