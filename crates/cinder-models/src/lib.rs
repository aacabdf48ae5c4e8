//! Models built on Cinder: MLP, LeNet-5, VGG, ResNet, generative models and classical GPU pipelines.
#![warn(missing_docs)]

pub mod alexnet;
pub mod autoencoder;
pub mod began;
pub mod char_lm;
pub mod classical;
pub mod dann;
pub mod flow;
pub mod gan;
mod halving;
pub mod infogan;
pub mod lenet;
pub mod mlp;
pub mod resnet;
pub mod sequence;
pub mod siamese;
pub mod style;
pub mod train;
pub mod vae;
pub mod vgg;
pub mod vit;

pub use alexnet::{AlexNet, AlexNetConfig, AlexNetVariant};
pub use autoencoder::{AeArch, AeConfig, Autoencoder, Noise};
pub use began::{BeganDiscriminator, BeganStep, BeganTrainer};
pub use char_lm::{CharArch, CharLm, CharLmConfig};
pub use dann::{Dann, DannLoss, dann_lambda};
pub use flow::{RealNvp, RealNvpConfig};
pub use gan::{Discriminator, GanArch, GanConfig, GanTrainer, Generator, Objective, Regularizer};
pub use infogan::{Codes, InfoGanConfig, InfoGanStep, InfoGanTrainer, QHead, purity};
pub use lenet::LeNet5;
pub use mlp::{Activation, Mlp};
pub use resnet::{BasicBlock, ResNet};
pub use sequence::RowLstm;
pub use siamese::{PairSampler, Siamese, knn_accuracy};
pub use style::{StyleConfig, StyleLosses, StyleTransfer};
pub use vae::{Likelihood, Vae, VaeArch, VaeConfig};
pub use vgg::{VGG11, VGG16, Vgg, VggItem};
pub use vit::{VisionTransformer, VitConfig};
