//! The classical pipelines against plain CPU references on small synthetic data.

mod common;
mod gmm;
mod kmeans;
mod linear;
mod pca;
mod ppca;
mod topics;
