//! The Transformer encoder with PyTorch's names and semantics: `TransformerEncoderLayer`
//! (post-norm or `norm_first`, relu or gelu) and `TransformerEncoder` (a stack, with an
//! optional final norm), and positional embeddings, learned and sinusoidal.
//!
//! One deliberate difference: PyTorch's `TransformerEncoder` deep-copies one layer, so all
//! its layers start with the same weights; here each layer is initialized on its own (with
//! the same distributions). Loading a PyTorch `state_dict` gives identical models either way.

use cinder_autograd::Tensor;
use cinder_device::{Device, Error, Result};

use crate::init::Init;
use crate::layers::{
    AttentionArgs, Dropout, LayerNorm, LayerNormConfig, Linear, MultiheadAttention,
    MultiheadAttentionConfig,
};
use crate::module::ModuleT;
use crate::var_store::Path;

/// The feed-forward activation of a Transformer layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// ReLU (PyTorch's default).
    #[default]
    Relu,
    /// The exact (erf) GELU.
    Gelu,
}

/// The options of [`TransformerEncoderLayer::new`], PyTorch's defaults by
/// [`TransformerEncoderLayerConfig::new`].
#[derive(Clone, Copy, Debug)]
pub struct TransformerEncoderLayerConfig {
    /// The model width.
    pub d_model: usize,
    /// Attention heads.
    pub nhead: usize,
    /// The feed-forward width (default 2048).
    pub dim_feedforward: usize,
    /// Dropout after attention, inside and after the feed-forward block (default 0.1).
    pub dropout: f32,
    /// The feed-forward activation (default ReLU).
    pub activation: Activation,
    /// The layer norms' eps (default 1e-5).
    pub layer_norm_eps: f32,
    /// `[B, T, E]` instead of `[T, B, E]` (default false).
    pub batch_first: bool,
    /// Normalize before attention and feed-forward (pre-norm) instead of after (default
    /// false).
    pub norm_first: bool,
    /// Biases in the linear layers and the norms (default true).
    pub bias: bool,
    /// The seed of the dropout masks.
    pub seed: u64,
}

impl TransformerEncoderLayerConfig {
    /// PyTorch's defaults for `d_model` and `nhead`.
    pub fn new(d_model: usize, nhead: usize) -> Self {
        TransformerEncoderLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: Activation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
            seed: 0,
        }
    }
}

/// The masks of an encoder's forward, as PyTorch's `src_mask`, `src_key_padding_mask` and
/// `is_causal` (see [`AttentionArgs`] for their dtypes).
#[derive(Clone, Copy, Default)]
pub struct EncoderMasks<'a> {
    /// `[T, T]` or `[B * heads, T, T]`.
    pub mask: Option<&'a Tensor>,
    /// `[B, T]`, nonzero where a position is padding.
    pub src_key_padding_mask: Option<&'a Tensor>,
    /// The causal rule.
    pub is_causal: bool,
}

/// PyTorch's `nn.TransformerEncoderLayer`: `self_attn`, `linear1`, `linear2`, `norm1`,
/// `norm2`.
pub struct TransformerEncoderLayer {
    /// The self-attention block.
    pub self_attn: MultiheadAttention,
    /// `d_model -> dim_feedforward`.
    pub linear1: Linear,
    /// `dim_feedforward -> d_model`.
    pub linear2: Linear,
    /// The norm of the attention block.
    pub norm1: LayerNorm,
    /// The norm of the feed-forward block.
    pub norm2: LayerNorm,
    dropout: Dropout,
    dropout1: Dropout,
    dropout2: Dropout,
    cfg: TransformerEncoderLayerConfig,
}

impl TransformerEncoderLayer {
    /// Creates the layer under `path`. Returns `Err` for a width not divisible by the heads,
    /// a zero size, a dropout outside `[0, 1]`, or a name taken.
    pub fn new(path: &Path, cfg: TransformerEncoderLayerConfig) -> Result<Self> {
        let mha = MultiheadAttentionConfig {
            dropout: cfg.dropout,
            bias: cfg.bias,
            batch_first: true,
            seed: cfg.seed,
        };
        let ln = LayerNormConfig {
            eps: cfg.layer_norm_eps,
            elementwise_affine: true,
            bias: cfg.bias,
        };
        let (d, f) = (cfg.d_model, cfg.dim_feedforward);
        Ok(TransformerEncoderLayer {
            self_attn: MultiheadAttention::new(&path.pp("self_attn"), d, cfg.nhead, mha)?,
            linear1: Linear::new(&path.pp("linear1"), d, f, cfg.bias)?,
            linear2: Linear::new(&path.pp("linear2"), f, d, cfg.bias)?,
            norm1: LayerNorm::new(&path.pp("norm1"), &[d], ln)?,
            norm2: LayerNorm::new(&path.pp("norm2"), &[d], ln)?,
            dropout: Dropout::new(cfg.dropout, cfg.seed.wrapping_add(1))?,
            dropout1: Dropout::new(cfg.dropout, cfg.seed.wrapping_add(2))?,
            dropout2: Dropout::new(cfg.dropout, cfg.seed.wrapping_add(3))?,
            cfg,
        })
    }

    /// The options it was built with.
    pub fn config(&self) -> TransformerEncoderLayerConfig {
        self.cfg
    }

    fn attention_block(&self, x: &Tensor, masks: EncoderMasks, train: bool) -> Result<Tensor> {
        let args = AttentionArgs {
            key_padding_mask: masks.src_key_padding_mask,
            attn_mask: masks.mask,
            is_causal: masks.is_causal,
            ..Default::default()
        };
        let (y, _) = self.self_attn.forward(x, x, x, args, train)?;
        self.dropout1.forward_t(&y, train)
    }

    fn feed_forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = match self.cfg.activation {
            Activation::Relu => self.linear1.forward_relu(x)?,
            Activation::Gelu => crate::module::Module::forward(&self.linear1, x)?.gelu()?,
        };
        let h = self.dropout.forward_t(&h, train)?;
        let y = crate::module::Module::forward(&self.linear2, &h)?;
        self.dropout2.forward_t(&y, train)
    }

    /// `src` `[T, B, E]` (`[B, T, E]` batch_first) through the layer with `masks`; `train`
    /// turns dropout on. Returns `Err` for shapes that do not match the layer.
    pub fn forward(&self, src: &Tensor, masks: EncoderMasks, train: bool) -> Result<Tensor> {
        use crate::module::Module;
        let s = src.shape();
        if s.len() != 3 || s[2] != self.cfg.d_model {
            return Err(Error::shapes(
                "TransformerEncoderLayer",
                &s,
                &[self.cfg.d_model],
            ));
        }
        let x = if self.cfg.batch_first {
            src.clone()
        } else {
            src.transpose(0, 1)?
        };
        let x = if self.cfg.norm_first {
            let x = x.add(&self.attention_block(&self.norm1.forward(&x)?, masks, train)?)?;
            x.add(&self.feed_forward(&self.norm2.forward(&x)?, train)?)?
        } else {
            let x = self
                .norm1
                .forward(&x.add(&self.attention_block(&x, masks, train)?)?)?;
            self.norm2
                .forward(&x.add(&self.feed_forward(&x, train)?)?)?
        };
        if self.cfg.batch_first {
            Ok(x)
        } else {
            x.transpose(0, 1)
        }
    }
}

impl ModuleT for TransformerEncoderLayer {
    /// The layer without masks. Errors as [`TransformerEncoderLayer::forward`].
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(x, EncoderMasks::default(), train)
    }
}

/// PyTorch's `nn.TransformerEncoder`: `layers.{i}` and, optionally, a final `norm`.
pub struct TransformerEncoder {
    /// The stacked layers.
    pub layers: Vec<TransformerEncoderLayer>,
    /// The final layer norm, when there is one.
    pub norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `num_layers` layers of `cfg` under `path.layers.{i}`, and with `final_norm` a
    /// LayerNorm under `path.norm`. Returns `Err` as [`TransformerEncoderLayer::new`], or for
    /// zero layers.
    pub fn new(
        path: &Path,
        cfg: TransformerEncoderLayerConfig,
        num_layers: usize,
        final_norm: bool,
    ) -> Result<Self> {
        if num_layers == 0 {
            return Err(Error::invalid("TransformerEncoder", "zero layers", &[]));
        }
        let layers = (0..num_layers)
            .map(|i| {
                let c = TransformerEncoderLayerConfig {
                    seed: cfg.seed.wrapping_add(16 * i as u64),
                    ..cfg
                };
                TransformerEncoderLayer::new(&path.pp("layers").pp(&i.to_string()), c)
            })
            .collect::<Result<Vec<_>>>()?;
        let ln = LayerNormConfig {
            eps: cfg.layer_norm_eps,
            elementwise_affine: true,
            bias: cfg.bias,
        };
        let norm = final_norm
            .then(|| LayerNorm::new(&path.pp("norm"), &[cfg.d_model], ln))
            .transpose()?;
        Ok(TransformerEncoder { layers, norm })
    }

    /// `src` through every layer with the same `masks`, then the final norm. Errors as
    /// [`TransformerEncoderLayer::forward`].
    pub fn forward(&self, src: &Tensor, masks: EncoderMasks, train: bool) -> Result<Tensor> {
        let mut x = src.clone();
        for l in &self.layers {
            x = l.forward(&x, masks, train)?;
        }
        match &self.norm {
            Some(n) => crate::module::Module::forward(n, &x),
            None => Ok(x),
        }
    }
}

impl ModuleT for TransformerEncoder {
    /// The encoder without masks. Errors as [`TransformerEncoder::forward`].
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(x, EncoderMasks::default(), train)
    }
}

/// A learned positional embedding: `weight [max_len, dim]` (normal with std `std`), added to
/// `[B, T, dim]` inputs for positions `0..T`.
pub struct LearnedPositionalEmbedding {
    /// `[max_len, dim]`.
    pub weight: Tensor,
}

impl LearnedPositionalEmbedding {
    /// The table under `path` as `weight`. Returns `Err` for a zero size or a name taken.
    pub fn new(path: &Path, max_len: usize, dim: usize, std: f32) -> Result<Self> {
        if max_len == 0 || dim == 0 {
            return Err(Error::invalid(
                "LearnedPositionalEmbedding",
                "zero size",
                &[max_len, dim],
            ));
        }
        Ok(LearnedPositionalEmbedding {
            weight: path.var("weight", &[max_len, dim], Init::Normal { mean: 0.0, std })?,
        })
    }

    /// `x + weight[..T]` for `x` `[B, T, dim]`. Returns `Err` when `T` exceeds `max_len` or
    /// the width differs.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let w = self.weight.shape();
        if s.len() != 3 || s[1] > w[0] || s[2] != w[1] {
            return Err(Error::shapes("LearnedPositionalEmbedding", &s, &w));
        }
        x.add(&self.weight.narrow(0, 0, s[1])?)
    }
}

/// The sinusoidal encoding of "Attention Is All You Need", `[len, dim]`: `sin(pos /
/// 10000^(2i/dim))` at column `2i`, `cos` of the same at `2i + 1`, computed on the device.
/// Returns `Err` for a zero or odd `dim` or a zero `len`.
pub fn sinusoidal_positions(device: &Device, len: usize, dim: usize) -> Result<Tensor> {
    if len == 0 || dim == 0 || !dim.is_multiple_of(2) {
        return Err(Error::invalid(
            "sinusoidal_positions",
            "len must be positive and dim positive and even",
            &[len, dim],
        ));
    }
    let half = dim / 2;
    let pos = Tensor::arange(device, 0.0, len as f32, 1.0)?.reshape(&[len, 1])?;
    // 10000^(-2i/dim) = exp(-ln(10000) * 2i / dim)
    let freq = Tensor::arange(device, 0.0, half as f32, 1.0)?
        .mul_scalar(-2.0 * 10000f32.ln() / dim as f32)?
        .exp()?
        .reshape(&[1, half])?;
    let angle = pos.mul(&freq)?.reshape(&[len, half, 1])?;
    Tensor::concat(&[&angle.sin()?, &angle.cos()?], 2)?.reshape(&[len, dim])
}
