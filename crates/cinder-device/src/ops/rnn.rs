//! Recurrent layers over a whole sequence: the time loop of nn.RNN, nn.LSTM and nn.GRU, one
//! matmul of the hidden state plus one fused gate kernel per step, forward and backward.
//! Kernels in `shaders/rnn.wgsl`, which documents the buffers.
//!
//! The input projection of every step (`x W_ih^T + b_ih`, `[T, B, G*H]`) is computed by the
//! caller as one matmul; these functions take it as `xw`. Rows of a batch may be shorter than
//! `T` (`lens`): their padded steps leave the state alone and output 0, as PyTorch's packed
//! sequences do.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_1d};
use crate::ops::matmul::{BiasAxis, Epilogue, MatmulKernel};
use crate::tensor::{DType, DeviceTensor};

/// The recurrence of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnMode {
    /// `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)` (nn.RNN's default).
    Tanh,
    /// The same with ReLU (`nonlinearity='relu'`).
    Relu,
    /// nn.LSTM, gates `i, f, g, o` in PyTorch's order.
    Lstm,
    /// nn.GRU, gates `r, z, n` in PyTorch's order (`n` adds `r * (h W_hn^T + b_hn)`).
    Gru,
}

impl RnnMode {
    /// Gates per unit: the factor `G` of the weights' `[G*H, ...]` rows.
    pub fn gates(self) -> usize {
        match self {
            RnnMode::Tanh | RnnMode::Relu => 1,
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
        }
    }

    fn code(self) -> u32 {
        match self {
            RnnMode::Tanh => 0,
            RnnMode::Relu => 1,
            RnnMode::Lstm => 2,
            RnnMode::Gru => 3,
        }
    }

    /// Save blocks of gate values (`save_gates` in the shader).
    fn save_gates(self) -> usize {
        match self {
            RnnMode::Tanh | RnnMode::Relu => 1,
            RnnMode::Lstm | RnnMode::Gru => 4,
        }
    }

    /// Width of a row of the saved activations: gate values, the previous h, (LSTM) the
    /// previous c.
    fn save_width(self, h: usize) -> usize {
        (self.save_gates() + 1 + (self == RnnMode::Lstm) as usize) * h
    }

    /// Width of a row of the gate gradients (GRU keeps `dn * r` as a fourth block).
    fn grad_width(self, h: usize) -> usize {
        match self {
            RnnMode::Gru => 4 * h,
            m => m.gates() * h,
        }
    }

    /// Rows of the sequence output: `T` outputs, the final h, (LSTM) the final c.
    pub fn state_rows(self, steps: usize) -> usize {
        steps + 1 + (self == RnnMode::Lstm) as usize
    }
}

const MODES: [RnnMode; 4] = [RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru];

fn step(mode: RnnMode) -> Kernel {
    Kernel::new("rnn", "rnn_step", 3, 4)
        .with_constant("MODE", mode.code() as f64)
        .with_workgroup((64, 1, 1))
}

fn step_backward(mode: RnnMode) -> Kernel {
    Kernel::new("rnn", "rnn_step_backward", 4, 4)
        .with_constant("MODE", mode.code() as f64)
        .with_workgroup((64, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    MODES
        .iter()
        .flat_map(|&m| [step(m), step_backward(m)])
        .collect()
}

/// What [`DeviceTensor::rnn_forward`] returns: the outputs and final state, and what
/// [`DeviceTensor::rnn_backward`] needs.
pub struct RnnForward {
    /// `[T + 1, B, H]` (LSTM `[T + 2, B, H]`): rows `0..T` the outputs of each step (0 at
    /// padded steps), row `T` the final h, row `T + 1` the final c.
    pub states: DeviceTensor,
    /// The saved activations, `[T, B, W]` (layout in `shaders/rnn.wgsl`).
    pub saved: DeviceTensor,
}

/// The gradients [`DeviceTensor::rnn_backward`] returns.
pub struct RnnGrads {
    /// `[T, B, G*H]`: the gradient of the input projection `xw`.
    pub xw: DeviceTensor,
    /// `[T * B, G*H]`: the gradient of each step's `h W_hh^T + b_hh`.
    pub hh: DeviceTensor,
    /// `[T * B, H]`: the hidden state each step started from (`hh`'s left factor).
    pub h_prev: DeviceTensor,
    /// `[B, H]`: the gradient of the initial h.
    pub h0: DeviceTensor,
    /// `[B, H]`: the gradient of the initial c (zeros but for LSTM).
    pub c0: DeviceTensor,
}

struct Dims {
    t: usize,
    b: usize,
    h: usize,
}

fn check(
    op: &'static str,
    mode: RnnMode,
    xw: &DeviceTensor,
    w_hh: &DeviceTensor,
    lens: &DeviceTensor,
) -> Result<Dims> {
    let s = xw.shape();
    let w = w_hh.shape();
    if s.len() != 3 || w.len() != 2 || w[0] != mode.gates() * w[1] || s[2] != w[0] {
        return Err(Error::shapes(op, s, w));
    }
    let (t, b, h) = (s[0], s[1], w[1]);
    if t == 0 || b == 0 || h == 0 {
        return Err(Error::invalid(op, "an empty sequence, batch or state", s));
    }
    xw.expect_dtype(op, DType::F32)?;
    w_hh.expect_dtype(op, DType::F32)?;
    lens.expect_dtype(op, DType::U32)?;
    if lens.shape() != [b] {
        return Err(Error::shapes(op, lens.shape(), &[b]));
    }
    for x in [w_hh, lens] {
        if !x.device().same(xw.device()) {
            return Err(Error::invalid(
                op,
                "tensor lives on another device",
                x.shape(),
            ));
        }
    }
    Ok(Dims { t, b, h })
}

fn expect_state(op: &'static str, x: &DeviceTensor, d: &Dims, like: &DeviceTensor) -> Result<()> {
    if x.shape() != [d.b, d.h] {
        return Err(Error::shapes(op, x.shape(), &[d.b, d.h]));
    }
    x.expect_dtype(op, DType::F32)?;
    if !x.device().same(like.device()) {
        return Err(Error::invalid(
            op,
            "tensor lives on another device",
            x.shape(),
        ));
    }
    Ok(())
}

fn params(d: &Dims, t: usize, sw: usize) -> Params {
    Params::new()
        .usize(t)
        .usize(d.b)
        .usize(d.h)
        .usize(d.t)
        .usize(sw)
}

/// The time index of loop iteration `i`.
fn time(i: usize, steps: usize, reverse: bool) -> usize {
    if reverse { steps - 1 - i } else { i }
}

impl DeviceTensor {
    /// Runs a recurrent layer over a sequence, `self` being the input projection `xw`
    /// `[T, B, G*H]` of every step: per step, `hh = h W_hh^T + b_hh` (one matmul) and the
    /// fused gate kernel. `w_hh` is `[G*H, H]`, `b_hh` `[G*H]`, `h0` (and for LSTM `c0`)
    /// `[B, H]`, `lens` `[B]` u32 (steps past a row's length leave its state alone and output
    /// 0); `reverse` runs from the last step to the first. Returns `Err` for mismatched
    /// shapes, dtypes or devices, an empty sequence, batch or state, a missing or extra
    /// `c0`, or a grid too large.
    #[allow(clippy::too_many_arguments)]
    pub fn rnn_forward(
        &self,
        mode: RnnMode,
        w_hh: &DeviceTensor,
        b_hh: Option<&DeviceTensor>,
        h0: &DeviceTensor,
        c0: Option<&DeviceTensor>,
        lens: &DeviceTensor,
        reverse: bool,
    ) -> Result<RnnForward> {
        let op = "rnn_forward";
        let d = check(op, mode, self, w_hh, lens)?;
        expect_state(op, h0, &d, self)?;
        if c0.is_some() != (mode == RnnMode::Lstm) {
            return Err(Error::invalid(
                op,
                "an initial cell state is given exactly for LSTM",
                h0.shape(),
            ));
        }
        if let Some(b) = b_hh
            && b.shape() != [w_hh.shape()[0]]
        {
            return Err(Error::shapes(op, b.shape(), &[w_hh.shape()[0]]));
        }
        let dev = self.device();
        let sw = mode.save_width(d.h);
        let states =
            DeviceTensor::uninit_for(op, dev, &[mode.state_rows(d.t), d.b, d.h], DType::F32)?;
        let saved = DeviceTensor::uninit_for(op, dev, &[d.t, d.b, sw], DType::F32)?;
        let h = h0.deep_clone()?;
        let c = match c0 {
            Some(c0) => {
                expect_state(op, c0, &d, self)?;
                c0.deep_clone()?
            }
            None => DeviceTensor::zeros(dev, &[1])?,
        };
        // W_hh^T once, so that no step copies a transpose.
        let w_t = w_hh.transpose(0, 1)?;
        let epilogue = Epilogue {
            bias: b_hh.map(|b| (b, BiasAxis::Cols)),
            relu: false,
        };
        let grid = grid_1d(d.b * d.h, 64)?;
        let k = step(mode);
        for i in 0..d.t {
            let t = time(i, d.t, reverse);
            let hh = h.matmul_fused(&w_t, false, false, MatmulKernel::Auto, epilogue)?;
            dev.dispatch(
                &k,
                &[self, &hh, lens],
                &[&h, &c, &states, &saved],
                &params(&d, t, sw),
                grid,
            )?;
        }
        Ok(RnnForward { states, saved })
    }

    /// The backward of [`DeviceTensor::rnn_forward`], `self` being the gradient of its
    /// `states` (same shape), `saved` its saved activations, `w_hh`, `lens` and `reverse` as
    /// given to it. Per step, one fused gate kernel and one matmul by `W_hh`. Returns `Err`
    /// for mismatched shapes, dtypes or devices.
    pub fn rnn_backward(
        &self,
        mode: RnnMode,
        saved: &DeviceTensor,
        w_hh: &DeviceTensor,
        lens: &DeviceTensor,
        reverse: bool,
    ) -> Result<RnnGrads> {
        let op = "rnn_backward";
        let s = saved.shape();
        let w = w_hh.shape();
        if s.len() != 3 || w.len() != 2 || w[0] != mode.gates() * w[1] {
            return Err(Error::shapes(op, s, w));
        }
        let d = Dims {
            t: s[0],
            b: s[1],
            h: w[1],
        };
        if d.t == 0 || d.b == 0 || d.h == 0 || s[2] != mode.save_width(d.h) {
            return Err(Error::shapes(op, s, w));
        }
        if self.shape() != [mode.state_rows(d.t), d.b, d.h] {
            return Err(Error::shapes(
                op,
                self.shape(),
                &[mode.state_rows(d.t), d.b, d.h],
            ));
        }
        for x in [self, saved, w_hh] {
            x.expect_dtype(op, DType::F32)?;
        }
        lens.expect_dtype(op, DType::U32)?;
        if lens.shape() != [d.b] {
            return Err(Error::shapes(op, lens.shape(), &[d.b]));
        }
        for x in [saved, w_hh, lens] {
            if !x.device().same(self.device()) {
                return Err(Error::invalid(
                    op,
                    "tensor lives on another device",
                    x.shape(),
                ));
            }
        }
        let dev = self.device();
        let gh = mode.gates() * d.h;
        let dw = mode.grad_width(d.h);
        let sw = mode.save_width(d.h);
        // The carried gradients start as those of the final state.
        let dhc = self.narrow(0, d.t, 1)?.reshape(&[d.b, d.h])?;
        let dc = if mode == RnnMode::Lstm {
            self.narrow(0, d.t + 1, 1)?.reshape(&[d.b, d.h])?
        } else {
            DeviceTensor::zeros(dev, &[1])?
        };
        let dg = DeviceTensor::uninit_for(op, dev, &[d.t, d.b, dw], DType::F32)?;
        let mut dhmm = DeviceTensor::zeros(dev, &[d.b, d.h])?;
        let grid = grid_1d(d.b * d.h, 64)?;
        let k = step_backward(mode);
        for i in (0..d.t).rev() {
            let t = time(i, d.t, reverse);
            let dgc = DeviceTensor::uninit_for(op, dev, &[d.b, gh], DType::F32)?;
            dev.dispatch(
                &k,
                &[saved, self, lens, &dhmm],
                &[&dhc, &dc, &dg, &dgc],
                &params(&d, t, sw),
                grid,
            )?;
            dhmm = dgc.matmul(w_hh)?;
        }
        let h0 = dhc.add(&dhmm)?;
        let c0 = if mode == RnnMode::Lstm {
            dc
        } else {
            DeviceTensor::zeros(dev, &[d.b, d.h])?
        };
        let rows = d.t * d.b;
        let dg = dg.reshape(&[rows, dw])?;
        let (xw, hh) = if mode == RnnMode::Gru {
            let xw = dg.narrow(1, 0, gh)?;
            let hh = DeviceTensor::concat(
                &[&dg.narrow(1, 0, 2 * d.h)?, &dg.narrow(1, 3 * d.h, d.h)?],
                1,
            )?;
            (xw, hh)
        } else {
            (dg.clone(), dg)
        };
        let sg = sw - d.h * (1 + (mode == RnnMode::Lstm) as usize);
        let h_prev = saved.reshape(&[rows, sw])?.narrow(1, sg, d.h)?;
        Ok(RnnGrads {
            xw: xw.reshape(&[d.t, d.b, gh])?,
            hh,
            h_prev,
            h0,
            c0,
        })
    }
}
