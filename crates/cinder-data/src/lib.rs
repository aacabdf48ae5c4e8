//! Data for Cinder: the IDX format of MNIST and Fashion-MNIST (raw or gzip), the CIFAR-10
//! binary format, an in-memory [`Dataset`] of `u8` images with labels, seeded splits, CPU
//! transforms, and a [`DataLoader`] whose prefetch thread prepares the next batch while the
//! GPU works.
#![warn(missing_docs)]

pub mod bow;
pub mod cifar;
pub mod dataset;
pub mod idx;
pub mod loader;
pub mod mnist;
pub mod sampler;
pub mod shift;
pub mod text;
pub mod transform;

pub use dataset::Dataset;
pub use loader::{Batch, DataLoader};
pub use sampler::DistributedSampler;
pub use transform::Transform;
