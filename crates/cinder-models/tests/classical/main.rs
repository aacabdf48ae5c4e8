//! The classical pipelines against plain CPU references on small synthetic data.

mod common;
mod gmm;
mod ica;
mod kmeans;
mod linear;
mod nmf;
mod pca;
mod ppca;
mod rows;
mod topics;
