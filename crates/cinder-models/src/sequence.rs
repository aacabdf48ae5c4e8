//! A recurrent image classifier: an image read row by row, one row per time step, by a
//! stacked LSTM whose last state feeds a linear head (the course's "sequential MNIST").

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{Linear, Lstm, Module, ModuleT, Path, RnnConfig};

/// `[N, 1, rows, cols]` images as sequences of `rows` steps of `cols` pixels through an LSTM
/// (`lstm`, batch_first), its top layer's final hidden state through `head`.
pub struct RowLstm {
    /// The recurrent layers.
    pub lstm: Lstm,
    /// `hidden -> classes`.
    pub head: Linear,
    layers: usize,
}

impl RowLstm {
    /// `lstm` (`cols -> hidden`, `layers` layers, dropout between them) and `head` under
    /// `path`. Returns `Err` for a zero size or a name taken.
    pub fn new(
        path: &Path,
        cols: usize,
        hidden: usize,
        layers: usize,
        dropout: f32,
        classes: usize,
        seed: u64,
    ) -> Result<RowLstm> {
        let cfg = RnnConfig {
            num_layers: layers,
            batch_first: true,
            dropout,
            seed,
            ..Default::default()
        };
        Ok(RowLstm {
            lstm: Lstm::new(&path.pp("lstm"), cols, hidden, cfg)?,
            head: Linear::new(&path.pp("head"), hidden, classes, true)?,
            layers,
        })
    }
}

impl ModuleT for RowLstm {
    /// `[N, 1, rows, cols]` (or `[N, rows, cols]`) to `[N, classes]` logits. Returns `Err`
    /// for another shape.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = x.shape();
        let seq = match s.len() {
            4 if s[1] == 1 => x.reshape(&[s[0], s[2], s[3]])?,
            3 => x.clone(),
            _ => return Err(Error::invalid("RowLstm", "expects [N, 1, rows, cols]", &s)),
        };
        let (_, (h, _)) = self.lstm.forward(&seq, None, None, train)?;
        let b = h.shape()[1];
        let top = h
            .narrow(0, self.layers - 1, 1)?
            .reshape(&[b, self.lstm.hidden_size()])?;
        self.head.forward(&top)
    }
}
