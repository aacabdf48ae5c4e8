//! A recurrent layer over a whole sequence as one recorded op (as cuDNN's RNN is one call):
//! the forward and backward time loops run as fused step kernels on the device
//! (`cinder_device::ops::rnn`), and the weight gradients of all steps are one matmul each.
//!
//! Its backward is not itself recorded: a second-order gradient through it returns `Err`
//! (PyTorch's cuDNN RNN refuses double backward too). `LstmCell`, `GruCell` and `RnnCell`,
//! built from ordinary ops, are twice differentiable.

use cinder_device::{DeviceTensor, Error, Result, RnnMode};

use crate::mode::is_grad_enabled;
use crate::tensor::Tensor;

impl Tensor {
    /// Runs a recurrent layer over a sequence, `self` being the input projection
    /// `x W_ih^T + b_ih` of every step, `[T, B, G*H]` (`G` = [`RnnMode::gates`]): `w_hh`
    /// `[G*H, H]`, `b_hh` `[G*H]`, `h0` (and for LSTM `c0`) `[B, H]`, `lens` `[B]` u32 (the
    /// valid steps of each row: later steps leave its state alone and output 0), `reverse`
    /// for the backward direction of a bidirectional layer. Returns `[T + 1, B, H]` (LSTM
    /// `[T + 2, B, H]`): the `T` outputs, then the final h (and c). Differentiable in every
    /// tensor argument but `lens`, once. Errors as
    /// [`cinder_device::DeviceTensor::rnn_forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn rnn_sequence(
        &self,
        mode: RnnMode,
        w_hh: &Tensor,
        b_hh: Option<&Tensor>,
        h0: &Tensor,
        c0: Option<&Tensor>,
        lens: &DeviceTensor,
        reverse: bool,
    ) -> Result<Tensor> {
        let w_raw = w_hh.raw();
        let b_raw = b_hh.map(|b| b.raw());
        let fwd = self.raw().rnn_forward(
            mode,
            &w_raw,
            b_raw.as_ref(),
            &h0.raw(),
            c0.map(|c| c.raw()).as_ref(),
            lens,
            reverse,
        )?;
        let mut inputs = vec![self, w_hh, h0];
        inputs.extend(c0);
        inputs.extend(b_hh);
        let has_c = c0.is_some();
        let has_b = b_hh.is_some();
        let saved = fwd.saved;
        let lens = lens.clone();
        Ok(Tensor::from_op(
            "rnn_sequence",
            fwd.states,
            &inputs,
            move |c| {
                if is_grad_enabled() {
                    return Err(Error::invalid(
                        "rnn_sequence",
                        "the backward of a recurrent layer is not differentiable (use the cells for higher-order gradients)",
                        &c.grad.shape(),
                    ));
                }
                let g = c
                    .grad
                    .raw()
                    .rnn_backward(mode, &saved, &w_raw, &lens, reverse)?;
                let want = |i: usize| c.input(i).requires_grad();
                let mut out = vec![
                    want(0).then(|| Tensor::from_raw(g.xw.clone())),
                    want(1)
                        .then(|| g.hh.matmul_t(&g.h_prev, true, false).map(Tensor::from_raw))
                        .transpose()?,
                    want(2).then(|| Tensor::from_raw(g.h0.clone())),
                ];
                let mut next = 3;
                if has_c {
                    out.push(want(next).then(|| Tensor::from_raw(g.c0.clone())));
                    next += 1;
                }
                if has_b {
                    out.push(
                        want(next)
                            .then(|| g.hh.sum_axis(0, false).map(Tensor::from_raw))
                            .transpose()?,
                    );
                }
                Ok(out)
            },
        ))
    }
}
