//! Models built on Cinder: MLP, LeNet-5, VGG, ResNet, generative models and classical GPU pipelines.
#![warn(missing_docs)]

pub mod classical;
pub mod lenet;
pub mod mlp;
pub mod resnet;
pub mod train;
pub mod vgg;

pub use lenet::LeNet5;
pub use mlp::{Activation, Mlp};
pub use resnet::{BasicBlock, ResNet};
pub use vgg::{VGG11, VGG16, Vgg, VggItem};
