//! The classical pipelines against plain CPU references on small synthetic data.

mod common;
mod gmm;
mod ica;
mod isomap;
mod kmeans;
mod linear;
mod lle;
mod manifold_fmnist;
mod nmf;
mod pca;
mod ppca;
mod rows;
mod topics;
mod tsne;
