//! Layers with PyTorch's shapes, defaults and default initialization.

mod activation;
mod attention;
mod conv;
mod dropout;
mod embedding;
mod group_norm;
mod layer_norm;
mod linear;
mod norm;
mod pool;
mod rnn;
mod sequential;
mod transformer;

pub use activation::{
    Elu, Flatten, Gelu, Hardsigmoid, Hardswish, Hardtanh, LeakyRelu, Mish, PRelu, Relu, Relu6,
    Sigmoid, Silu, Softplus, Tanh,
};
pub use attention::{
    AttentionArgs, MultiheadAttention, MultiheadAttentionConfig, SdpaOptions,
    scaled_dot_product_attention,
};
pub use conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, IntoPair};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use group_norm::{GroupNorm, GroupNormConfig, group_norm};
pub use layer_norm::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig, layer_norm, rms_norm};
pub use linear::Linear;
pub use norm::{BatchNorm, BatchNormConfig};
pub use pool::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d};
pub use rnn::{Gru, GruCell, Lstm, LstmCell, Rnn, RnnCell, RnnConfig};
pub use sequential::Sequential;
pub use transformer::{
    Activation, EncoderMasks, LearnedPositionalEmbedding, TransformerEncoder,
    TransformerEncoderLayer, TransformerEncoderLayerConfig, sinusoidal_positions,
};
