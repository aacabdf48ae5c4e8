//! The layer settings the convolutional autoencoder, VAE and DCGAN share: 4x4 kernels with
//! stride 2 and padding 1, so that a convolution halves each side and a transposed
//! convolution doubles it (hence image sides divisible by 4 for two of each).

use cinder_nn::{Conv2dConfig, ConvTranspose2dConfig};

/// A 4x4 convolution's settings that halve each (even) side.
pub(crate) fn down() -> Conv2dConfig {
    Conv2dConfig::default().stride(2).padding(1)
}

/// A 4x4 transposed convolution's settings that double each side.
pub(crate) fn up() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig::default().stride(2).padding(1)
}
