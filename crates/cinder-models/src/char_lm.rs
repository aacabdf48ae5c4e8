//! Character-level language models: an embedding, then an LSTM or a causal Transformer
//! encoder, then logits over the vocabulary at every position (predicting the next
//! character).

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{
    Activation, Embedding, EncoderMasks, LayerNorm, LayerNormConfig, LearnedPositionalEmbedding,
    Linear, Lstm, Module, ModuleT, Path, RnnConfig, TransformerEncoder,
    TransformerEncoderLayerConfig,
};

/// The body of a [`CharLm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharArch {
    /// A stacked LSTM.
    Lstm,
    /// A pre-norm causal Transformer encoder with learned positions.
    Transformer,
}

/// The shape of a [`CharLm`].
#[derive(Clone, Copy, Debug)]
pub struct CharLmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// The body.
    pub arch: CharArch,
    /// Embedding width (the Transformer's model width).
    pub dim: usize,
    /// LSTM hidden units (the Transformer's feed-forward width).
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads (Transformer only).
    pub heads: usize,
    /// The longest context (the Transformer's position table).
    pub context: usize,
    /// Dropout between layers.
    pub dropout: f32,
    /// Seed of the dropout masks.
    pub seed: u64,
}

enum Body {
    Lstm(Lstm),
    Transformer {
        pos: LearnedPositionalEmbedding,
        encoder: TransformerEncoder,
        norm: LayerNorm,
    },
}

/// `embed`, then `lstm` or `pos` + `encoder` + `norm`, then `head` (width to vocabulary).
pub struct CharLm {
    /// The character embedding.
    pub embed: Embedding,
    body: Body,
    /// The output projection.
    pub head: Linear,
    cfg: CharLmConfig,
}

impl CharLm {
    /// Creates the model under `path`. Returns `Err` for a zero size, heads that do not
    /// divide the width, or a name taken.
    pub fn new(path: &Path, cfg: CharLmConfig) -> Result<CharLm> {
        let body = match cfg.arch {
            CharArch::Lstm => Body::Lstm(Lstm::new(
                &path.pp("lstm"),
                cfg.dim,
                cfg.hidden,
                RnnConfig {
                    num_layers: cfg.layers,
                    batch_first: true,
                    dropout: cfg.dropout,
                    seed: cfg.seed,
                    ..Default::default()
                },
            )?),
            CharArch::Transformer => {
                let mut lc = TransformerEncoderLayerConfig::new(cfg.dim, cfg.heads);
                lc.dim_feedforward = cfg.hidden;
                lc.dropout = cfg.dropout;
                lc.activation = Activation::Gelu;
                lc.batch_first = true;
                lc.norm_first = true;
                lc.seed = cfg.seed;
                Body::Transformer {
                    pos: LearnedPositionalEmbedding::new(
                        &path.pp("pos"),
                        cfg.context,
                        cfg.dim,
                        0.02,
                    )?,
                    encoder: TransformerEncoder::new(&path.pp("encoder"), lc, cfg.layers, false)?,
                    norm: LayerNorm::new(&path.pp("norm"), &[cfg.dim], LayerNormConfig::default())?,
                }
            }
        };
        let width = match cfg.arch {
            CharArch::Lstm => cfg.hidden,
            CharArch::Transformer => cfg.dim,
        };
        Ok(CharLm {
            embed: Embedding::new(&path.pp("embed"), cfg.vocab, cfg.dim)?,
            body,
            head: Linear::new(&path.pp("head"), width, cfg.vocab, true)?,
            cfg,
        })
    }

    /// The options it was built with.
    pub fn config(&self) -> CharLmConfig {
        self.cfg
    }
}

impl ModuleT for CharLm {
    /// `[B, T]` u32 character indices to `[B, T, vocab]` next-character logits (position `t`
    /// sees characters `0..=t` only). Returns `Err` for another shape or dtype, or (for the
    /// Transformer) `T` past the context.
    fn forward_t(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        let s = ids.shape();
        if s.len() != 2 {
            return Err(Error::invalid("CharLm", "expects [B, T] indices", &s));
        }
        let x = self.embed.forward(ids)?;
        let h = match &self.body {
            Body::Lstm(l) => l.forward(&x, None, None, train)?.0,
            Body::Transformer { pos, encoder, norm } => {
                let masks = EncoderMasks {
                    is_causal: true,
                    ..Default::default()
                };
                norm.forward(&encoder.forward(&pos.forward(&x)?, masks, train)?)?
            }
        };
        self.head.forward(&h)
    }
}
