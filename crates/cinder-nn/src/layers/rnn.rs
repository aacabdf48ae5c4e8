//! Recurrent layers with PyTorch's semantics, parameter names and initialization: `Rnn`
//! (tanh or relu), `Lstm` and `Gru` over whole sequences (`num_layers`, `bidirectional`,
//! `batch_first`, dropout between layers, initial state in and final state out, rows of
//! different lengths), and the single-step cells `RnnCell`, `LstmCell`, `GruCell`.
//!
//! A sequence layer runs each layer and direction as one recorded op
//! ([`Tensor::rnn_sequence`]): the input projection of all steps is one matmul, then each
//! step is one matmul of the hidden state and one fused gate kernel, forward and backward.
//! Its backward is differentiable once; the cells, built from ordinary ops, any number of
//! times.
//!
//! Rows shorter than the sequence take `lengths` (PyTorch's `pack_padded_sequence` with
//! `enforce_sorted=False`, then `pad_packed_sequence(total_length=T)`): the outputs at padded
//! steps are 0, the final state is each row's state after its last valid step, and the
//! reverse direction starts at each row's own last step. What the padded inputs hold never
//! changes a result.

use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result, RnnMode};

use crate::init::Init;
use crate::layers::Dropout;
use crate::module::ModuleT;
use crate::var_store::Path;

/// The options of [`Rnn`], [`Lstm`] and [`Gru`], PyTorch's defaults by `Default`.
#[derive(Clone, Copy, Debug)]
pub struct RnnConfig {
    /// Stacked layers (`num_layers`, default 1).
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` and `bias_hh` (default true).
    pub bias: bool,
    /// Input and output as `[B, T, F]` instead of `[T, B, F]` (default false). The states
    /// stay `[layers * directions, B, H]`, as in PyTorch.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in training (default 0).
    pub dropout: f32,
    /// A second layer per level running from the last step to the first (default false).
    pub bidirectional: bool,
    /// The seed of the dropout masks (Cinder's generator, not PyTorch's stream).
    pub seed: u64,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            seed: 0,
        }
    }
}

/// One layer and direction's parameters.
struct Direction {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

/// What the three sequence layers share: the stacked, possibly bidirectional recurrence.
struct Stack {
    op: &'static str,
    mode: RnnMode,
    input_size: usize,
    hidden: usize,
    cfg: RnnConfig,
    dirs: Vec<Direction>,
    dropout: Option<Dropout>,
}

/// PyTorch's init for every recurrent parameter: uniform in `±1/sqrt(hidden)`.
fn uniform(hidden: usize) -> Init {
    let k = 1.0 / (hidden as f32).sqrt();
    Init::Uniform { lo: -k, hi: k }
}

impl Stack {
    fn new(
        op: &'static str,
        path: &Path,
        mode: RnnMode,
        input_size: usize,
        hidden: usize,
        cfg: RnnConfig,
    ) -> Result<Stack> {
        if input_size == 0 || hidden == 0 || cfg.num_layers == 0 {
            return Err(Error::invalid(
                op,
                "input_size, hidden_size and num_layers must be positive",
                &[input_size, hidden, cfg.num_layers],
            ));
        }
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                op,
                format!("dropout = {} is outside [0, 1]", cfg.dropout),
                &[],
            ));
        }
        let nd = 1 + cfg.bidirectional as usize;
        let gh = mode.gates() * hidden;
        let mut dirs = Vec::new();
        for l in 0..cfg.num_layers {
            let inp = if l == 0 { input_size } else { hidden * nd };
            for d in 0..nd {
                let sfx = format!("_l{l}{}", if d == 1 { "_reverse" } else { "" });
                let init = uniform(hidden);
                let w_ih = path.var(&format!("weight_ih{sfx}"), &[gh, inp], init)?;
                let w_hh = path.var(&format!("weight_hh{sfx}"), &[gh, hidden], init)?;
                let (b_ih, b_hh) = if cfg.bias {
                    (
                        Some(path.var(&format!("bias_ih{sfx}"), &[gh], init)?),
                        Some(path.var(&format!("bias_hh{sfx}"), &[gh], init)?),
                    )
                } else {
                    (None, None)
                };
                dirs.push(Direction {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                });
            }
        }
        let dropout = (cfg.dropout > 0.0 && cfg.num_layers > 1)
            .then(|| Dropout::new(cfg.dropout, cfg.seed))
            .transpose()?;
        Ok(Stack {
            op,
            mode,
            input_size,
            hidden,
            cfg,
            dirs,
            dropout,
        })
    }

    fn directions(&self) -> usize {
        1 + self.cfg.bidirectional as usize
    }

    /// The state shape `[layers * directions, B, H]`, checked against `s`.
    fn check_state(&self, s: &Tensor, batch: usize) -> Result<()> {
        let want = [self.cfg.num_layers * self.directions(), batch, self.hidden];
        if s.shape() != want {
            return Err(Error::shapes(self.op, &s.shape(), &want));
        }
        Ok(())
    }

    /// Runs the stack: `x` as the layer takes it, `h0`/`c0` `[L*D, B, H]` (unbatched: `[L*D,
    /// H]`), `lengths` per row. Returns the output and the final h (and c for LSTM).
    fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        train: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let op = self.op;
        let s = x.shape();
        let unbatched = s.len() == 2;
        if !(s.len() == 3 || unbatched) || s[s.len() - 1] != self.input_size {
            return Err(Error::invalid(
                op,
                format!(
                    "expects [T, B, {0}] ([B, T, {0}] batch_first) or unbatched [T, {0}]",
                    self.input_size
                ),
                &s,
            ));
        }
        // To [T, B, F].
        let x = if unbatched {
            x.reshape(&[s[0], 1, s[1]])?
        } else if self.cfg.batch_first {
            x.transpose(0, 1)?
        } else {
            x.clone()
        };
        let xs = x.shape();
        let (t, b) = (xs[0], xs[1]);
        if t == 0 || b == 0 {
            return Err(Error::invalid(op, "an empty sequence or batch", &s));
        }
        let unbatch_state = |st: Option<&Tensor>| -> Result<Option<Tensor>> {
            st.map(|st| {
                if unbatched && st.rank() == 2 {
                    let ss = st.shape();
                    st.reshape(&[ss[0], 1, ss[1]])
                } else {
                    Ok(st.clone())
                }
            })
            .transpose()
        };
        let (h0, c0) = (unbatch_state(h0)?, unbatch_state(c0)?);
        for st in [&h0, &c0].into_iter().flatten() {
            self.check_state(st, b)?;
        }
        let lens = self.lengths(x.device(), lengths, t, b)?;
        let nd = self.directions();
        let h = self.hidden;
        let gh = self.mode.gates() * h;
        let zeros = Tensor::zeros(&x.device(), &[b, h])?;
        let pick = |st: &Option<Tensor>, i: usize| -> Result<Tensor> {
            match st {
                Some(st) => st.narrow(0, i, 1)?.reshape(&[b, h]),
                None => Ok(zeros.clone()),
            }
        };
        let mut inp = x;
        let (mut hn, mut cn) = (Vec::new(), Vec::new());
        for l in 0..self.cfg.num_layers {
            let mut outs = Vec::new();
            for d in 0..nd {
                let i = l * nd + d;
                let w = &self.dirs[i];
                let f = inp.shape()[2];
                let xw = inp
                    .reshape(&[t * b, f])?
                    .linear(&w.w_ih, w.b_ih.as_ref())?
                    .reshape(&[t, b, gh])?;
                let hi = pick(&h0, i)?;
                let ci = (self.mode == RnnMode::Lstm)
                    .then(|| pick(&c0, i))
                    .transpose()?;
                let seq = xw.rnn_sequence(
                    self.mode,
                    &w.w_hh,
                    w.b_hh.as_ref(),
                    &hi,
                    ci.as_ref(),
                    &lens,
                    d == 1,
                )?;
                outs.push(seq.narrow(0, 0, t)?);
                hn.push(seq.narrow(0, t, 1)?);
                if self.mode == RnnMode::Lstm {
                    cn.push(seq.narrow(0, t + 1, 1)?);
                }
            }
            inp = if nd == 2 {
                Tensor::concat(&[&outs[0], &outs[1]], 2)?
            } else {
                outs.pop().expect("one direction")
            };
            if let Some(dp) = &self.dropout
                && l + 1 < self.cfg.num_layers
            {
                inp = dp.forward_t(&inp, train)?;
            }
        }
        let stack = |v: &[Tensor]| -> Result<Tensor> {
            let refs: Vec<&Tensor> = v.iter().collect();
            let s = Tensor::concat(&refs, 0)?;
            if unbatched {
                s.reshape(&[v.len(), h])
            } else {
                Ok(s)
            }
        };
        let out = if unbatched {
            inp.reshape(&[t, nd * h])?
        } else if self.cfg.batch_first {
            inp.transpose(0, 1)?
        } else {
            inp
        };
        let c = (self.mode == RnnMode::Lstm)
            .then(|| stack(&cn))
            .transpose()?;
        Ok((out, stack(&hn)?, c))
    }

    /// The rows' lengths on the device (`T` for every row without `lengths`). Returns `Err`
    /// for a count other than `B` or a length outside `1..=T`.
    fn lengths(
        &self,
        dev: cinder_device::Device,
        lengths: Option<&[usize]>,
        t: usize,
        b: usize,
    ) -> Result<DeviceTensor> {
        let v: Vec<u32> = match lengths {
            None => vec![t as u32; b],
            Some(l) => {
                if l.len() != b {
                    return Err(Error::shapes(self.op, &[l.len()], &[b]));
                }
                if let Some(bad) = l.iter().find(|&&n| n == 0 || n > t) {
                    return Err(Error::invalid(
                        self.op,
                        format!("length {bad} is outside 1..={t}"),
                        &[b, t],
                    ));
                }
                l.iter().map(|&n| n as u32).collect()
            }
        };
        DeviceTensor::from_slice(&dev, &v, &[b])
    }
}

macro_rules! sequence_layer {
    ($name:ident, $torch:literal) => {
        impl $name {
            /// Input features.
            pub fn input_size(&self) -> usize {
                self.0.input_size
            }

            /// Hidden units per direction.
            pub fn hidden_size(&self) -> usize {
                self.0.hidden
            }

            /// The options it was built with.
            pub fn config(&self) -> RnnConfig {
                self.0.cfg
            }

            /// The parameters of layer `layer`, direction `reverse`: `(weight_ih,
            /// weight_hh, bias_ih, bias_hh)`, or `None` past the last layer.
            pub fn parameters(
                &self,
                layer: usize,
                reverse: bool,
            ) -> Option<(&Tensor, &Tensor, Option<&Tensor>, Option<&Tensor>)> {
                if reverse && !self.0.cfg.bidirectional {
                    return None;
                }
                let d = self
                    .0
                    .dirs
                    .get(layer * self.0.directions() + reverse as usize)?;
                Some((&d.w_ih, &d.w_hh, d.b_ih.as_ref(), d.b_hh.as_ref()))
            }
        }

        impl ModuleT for $name {
            #[doc = concat!("The output of `", $torch, "(x)[0]` from a zero initial state.")]
            /// Errors as the layer's `forward`.
            fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
                Ok(self.0.run(x, None, None, None, train)?.0)
            }
        }
    };
}

/// PyTorch's `nn.RNN`: `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)` (or ReLU).
pub struct Rnn(Stack);

/// PyTorch's `nn.LSTM` (no `proj_size`).
pub struct Lstm(Stack);

/// PyTorch's `nn.GRU`.
pub struct Gru(Stack);

sequence_layer!(Rnn, "nn.RNN");
sequence_layer!(Lstm, "nn.LSTM");
sequence_layer!(Gru, "nn.GRU");

impl Rnn {
    /// An Elman RNN with `tanh` (`relu = false`) or ReLU, parameters `weight_ih_l{k}`,
    /// `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}` (and `..._reverse`) under `path`.
    /// Returns `Err` for a zero size, a dropout outside `[0, 1]` or a name taken.
    pub fn new(
        path: &Path,
        input_size: usize,
        hidden_size: usize,
        relu: bool,
        cfg: RnnConfig,
    ) -> Result<Rnn> {
        let mode = if relu { RnnMode::Relu } else { RnnMode::Tanh };
        Ok(Rnn(Stack::new(
            "RNN",
            path,
            mode,
            input_size,
            hidden_size,
            cfg,
        )?))
    }

    /// `(output, h_n)`: `x` `[T, B, F]` (`[B, T, F]` batch_first, or unbatched `[T, F]`),
    /// `h0` `[L*D, B, H]` (zeros when `None`), `lengths` per row (all `T` when `None`);
    /// the output is `[T, B, D*H]`, `h_n` `[L*D, B, H]`. Returns `Err` for shapes that do
    /// not match the layer, an empty sequence, or a length outside `1..=T`.
    pub fn forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (y, h, _) = self.0.run(x, h0, None, lengths, train)?;
        Ok((y, h))
    }
}

impl Gru {
    /// A GRU with the parameter names of [`Rnn::new`] (rows `r, z, n`). Returns `Err` as it.
    pub fn new(path: &Path, input_size: usize, hidden_size: usize, cfg: RnnConfig) -> Result<Gru> {
        Ok(Gru(Stack::new(
            "GRU",
            path,
            RnnMode::Gru,
            input_size,
            hidden_size,
            cfg,
        )?))
    }

    /// `(output, h_n)`, as [`Rnn::forward`].
    pub fn forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (y, h, _) = self.0.run(x, h0, None, lengths, train)?;
        Ok((y, h))
    }
}

impl Lstm {
    /// An LSTM with the parameter names of [`Rnn::new`] (rows `i, f, g, o`). Returns `Err`
    /// as it.
    pub fn new(path: &Path, input_size: usize, hidden_size: usize, cfg: RnnConfig) -> Result<Lstm> {
        Ok(Lstm(Stack::new(
            "LSTM",
            path,
            RnnMode::Lstm,
            input_size,
            hidden_size,
            cfg,
        )?))
    }

    /// `(output, (h_n, c_n))`, as [`Rnn::forward`] with `state = (h0, c0)`.
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        lengths: Option<&[usize]>,
        train: bool,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (h0, c0) = state.unzip();
        let (y, h, c) = self.0.run(x, h0, c0, lengths, train)?;
        Ok((y, (h, c.expect("an LSTM's cell state"))))
    }
}

/// The parameters of a cell: `weight_ih [G*H, in]`, `weight_hh [G*H, H]`, `bias_ih`,
/// `bias_hh [G*H]`.
struct CellParams {
    op: &'static str,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
    input: usize,
    hidden: usize,
}

impl CellParams {
    fn new(
        op: &'static str,
        path: &Path,
        gates: usize,
        input: usize,
        hidden: usize,
        bias: bool,
    ) -> Result<CellParams> {
        if input == 0 || hidden == 0 {
            return Err(Error::invalid(
                op,
                "input_size and hidden_size must be positive",
                &[input, hidden],
            ));
        }
        let init = uniform(hidden);
        let gh = gates * hidden;
        let (b_ih, b_hh) = if bias {
            (
                Some(path.var("bias_ih", &[gh], init)?),
                Some(path.var("bias_hh", &[gh], init)?),
            )
        } else {
            (None, None)
        };
        Ok(CellParams {
            op,
            w_ih: path.var("weight_ih", &[gh, input], init)?,
            w_hh: path.var("weight_hh", &[gh, hidden], init)?,
            b_ih,
            b_hh,
            input,
            hidden,
        })
    }

    /// `x` as `[B, in]` (unbatched `[in]` gains a row), the state as `[B, H]` (zeros when
    /// `None`), and whether the input was unbatched.
    fn prepare(&self, x: &Tensor, h: Option<&Tensor>) -> Result<(Tensor, Tensor, bool)> {
        let s = x.shape();
        let unbatched = s.len() == 1;
        if !(s.len() == 2 || unbatched) || s[s.len() - 1] != self.input {
            return Err(Error::shapes(self.op, &s, &[self.input]));
        }
        let x = if unbatched {
            x.reshape(&[1, s[0]])?
        } else {
            x.clone()
        };
        let b = x.shape()[0];
        let h = self.state(h, b, unbatched, &x)?;
        Ok((x, h, unbatched))
    }

    fn state(&self, h: Option<&Tensor>, b: usize, unbatched: bool, x: &Tensor) -> Result<Tensor> {
        match h {
            None => Tensor::zeros(&x.device(), &[b, self.hidden]),
            Some(h) => {
                let h = if unbatched {
                    h.reshape(&[1, self.hidden])?
                } else {
                    h.clone()
                };
                if h.shape() != [b, self.hidden] {
                    return Err(Error::shapes(self.op, &h.shape(), &[b, self.hidden]));
                }
                Ok(h)
            }
        }
    }

    /// `(x W_ih^T + b_ih, h W_hh^T + b_hh)`.
    fn projections(&self, x: &Tensor, h: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            x.linear(&self.w_ih, self.b_ih.as_ref())?,
            h.linear(&self.w_hh, self.b_hh.as_ref())?,
        ))
    }

    fn finish(&self, y: Tensor, unbatched: bool) -> Result<Tensor> {
        if unbatched {
            y.reshape(&[self.hidden])
        } else {
            Ok(y)
        }
    }
}

macro_rules! cell_accessors {
    ($name:ident) => {
        impl $name {
            /// `weight_ih`, `[G*H, in]`.
            pub fn weight_ih(&self) -> &Tensor {
                &self.0.w_ih
            }
            /// `weight_hh`, `[G*H, H]`.
            pub fn weight_hh(&self) -> &Tensor {
                &self.0.w_hh
            }
            /// `bias_ih`, `[G*H]`, when the cell has biases.
            pub fn bias_ih(&self) -> Option<&Tensor> {
                self.0.b_ih.as_ref()
            }
            /// `bias_hh`, `[G*H]`, when the cell has biases.
            pub fn bias_hh(&self) -> Option<&Tensor> {
                self.0.b_hh.as_ref()
            }
        }
    };
}

/// PyTorch's `nn.RNNCell`: one step of [`Rnn`], from ordinary ops.
pub struct RnnCell(CellParams, bool);

/// PyTorch's `nn.LSTMCell`: one step of [`Lstm`], from ordinary ops.
pub struct LstmCell(CellParams);

/// PyTorch's `nn.GRUCell`: one step of [`Gru`], from ordinary ops.
pub struct GruCell(CellParams);

cell_accessors!(RnnCell);
cell_accessors!(LstmCell);
cell_accessors!(GruCell);

impl RnnCell {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` under `path`; tanh, or ReLU when
    /// `relu`. Returns `Err` for a zero size or a name taken.
    pub fn new(
        path: &Path,
        input: usize,
        hidden: usize,
        bias: bool,
        relu: bool,
    ) -> Result<RnnCell> {
        Ok(RnnCell(
            CellParams::new("RNNCell", path, 1, input, hidden, bias)?,
            relu,
        ))
    }

    /// `h'` from `x` `[B, in]` (or `[in]`) and `h` `[B, H]` (zeros when `None`). Returns
    /// `Err` for shapes that do not match the cell.
    pub fn forward(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        let (x, h, unbatched) = self.0.prepare(x, h)?;
        let (a, b) = self.0.projections(&x, &h)?;
        let pre = a.add(&b)?;
        let y = if self.1 { pre.relu()? } else { pre.tanh()? };
        self.0.finish(y, unbatched)
    }
}

impl LstmCell {
    /// `weight_ih [4H, in]`, `weight_hh [4H, H]`, `bias_ih`, `bias_hh [4H]` under `path`.
    /// Returns `Err` for a zero size or a name taken.
    pub fn new(path: &Path, input: usize, hidden: usize, bias: bool) -> Result<LstmCell> {
        Ok(LstmCell(CellParams::new(
            "LSTMCell", path, 4, input, hidden, bias,
        )?))
    }

    /// `(h', c')` from `x` `[B, in]` (or `[in]`) and `(h, c)` `[B, H]` (zeros when `None`).
    /// Returns `Err` for shapes that do not match the cell.
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let p = &self.0;
        let (h, c) = state.unzip();
        let (x, h, unbatched) = p.prepare(x, h)?;
        let c = p.state(c, x.shape()[0], unbatched, &x)?;
        let (a, b) = p.projections(&x, &h)?;
        let g = a.add(&b)?;
        let hs = p.hidden;
        let i = g.narrow(1, 0, hs)?.sigmoid()?;
        let f = g.narrow(1, hs, hs)?.sigmoid()?;
        let gg = g.narrow(1, 2 * hs, hs)?.tanh()?;
        let o = g.narrow(1, 3 * hs, hs)?.sigmoid()?;
        let c2 = f.mul(&c)?.add(&i.mul(&gg)?)?;
        let h2 = o.mul(&c2.tanh()?)?;
        Ok((p.finish(h2, unbatched)?, p.finish(c2, unbatched)?))
    }
}

impl GruCell {
    /// `weight_ih [3H, in]`, `weight_hh [3H, H]`, `bias_ih`, `bias_hh [3H]` under `path`.
    /// Returns `Err` for a zero size or a name taken.
    pub fn new(path: &Path, input: usize, hidden: usize, bias: bool) -> Result<GruCell> {
        Ok(GruCell(CellParams::new(
            "GRUCell", path, 3, input, hidden, bias,
        )?))
    }

    /// `h'` from `x` `[B, in]` (or `[in]`) and `h` `[B, H]` (zeros when `None`). Returns
    /// `Err` for shapes that do not match the cell.
    pub fn forward(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        let p = &self.0;
        let (x, h, unbatched) = p.prepare(x, h)?;
        let (a, b) = p.projections(&x, &h)?;
        let hs = p.hidden;
        let r = a.narrow(1, 0, hs)?.add(&b.narrow(1, 0, hs)?)?.sigmoid()?;
        let z = a.narrow(1, hs, hs)?.add(&b.narrow(1, hs, hs)?)?.sigmoid()?;
        let n = a
            .narrow(1, 2 * hs, hs)?
            .add(&r.mul(&b.narrow(1, 2 * hs, hs)?)?)?
            .tanh()?;
        // (1 - z) * n + z * h = n + z * (h - n)
        let h2 = n.add(&z.mul(&h.sub(&n)?)?)?;
        p.finish(h2, unbatched)
    }
}
