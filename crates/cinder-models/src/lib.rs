//! Models built on Cinder: MLP, LeNet-5, VGG, ResNet, generative models and classical GPU pipelines.
#![warn(missing_docs)]

pub mod classical;
