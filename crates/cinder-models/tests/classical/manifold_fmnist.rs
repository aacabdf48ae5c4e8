//! The recorded comparison with scikit-learn (`scripts/sklearn_compare/manifold.py`):
//! Isomap and standard LLE on the first `N` Fashion-MNIST training images / 255, no PCA.
//! Ignored (needs the data set and minutes on lavapipe); run in release:
//! `MANIFOLD_N=2000 MANIFOLD_K=10 cargo test --release -p cinder-models --test classical
//! manifold_fmnist -- --ignored --nocapture`. Prints one JSON line.

use super::common::*;
use cinder_data::mnist;
use cinder_models::classical::{Isomap, LocallyLinearEmbedding};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore]
fn manifold_fmnist() {
    let n = env("MANIFOLD_N", 2000);
    let k = env("MANIFOLD_K", 10);
    let p = env("MANIFOLD_COMPONENTS", 2);
    let ds = mnist::load(&mnist::data_dir(None), mnist::Split::Train)
        .expect("Fashion-MNIST")
        .take(n);
    let x: Vec<f32> = ds.images().iter().map(|&b| b as f32 / 255.0).collect();
    let d = ds.image_len();
    let t = tensor(&x, &[n, d]);
    let dv = dev();
    let sync = || dv.sync().expect("sync");
    sync();

    let s = Instant::now();
    let mut iso = Isomap::new(k, p);
    let emb = iso.fit_transform(&t).unwrap();
    let iso_emb = read(&emb);
    let iso_s = s.elapsed().as_secs_f64();
    let iso_err = iso.reconstruction_error().unwrap();
    let iso_ev = read(iso.eigenvalues().unwrap());

    let s = Instant::now();
    let mut lle = LocallyLinearEmbedding::new(k, p);
    let emb = lle.fit_transform(&t).unwrap();
    let lle_emb = read(&emb);
    let lle_s = s.elapsed().as_secs_f64();
    // The embeddings as raw little-endian f32 `[n, p]`, for the script to compare.
    if let Some(dir) = std::env::var_os("MANIFOLD_OUT") {
        let dir = std::path::PathBuf::from(dir);
        for (name, e) in [("isomap.f32", &iso_emb), ("lle.f32", &lle_emb)] {
            let bytes: Vec<u8> = e.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(name), bytes).expect("write embedding");
        }
    }
    println!(
        "{{\"n\": {n}, \"k\": {k}, \"n_components\": {p}, \"isomap_fit_s\": {iso_s:.3}, \
         \"isomap_reconstruction_error\": {iso_err}, \"isomap_eigenvalues\": {iso_ev:?}, \
         \"isomap_n_iter\": {}, \"graph_components\": {}, \"lle_fit_s\": {lle_s:.3}, \"lle_reconstruction_error\": {:e}, \
         \"lle_eigenvalues\": {:?}, \"lle_n_iter\": {}, \"lle_shift\": {:e}}}",
        iso.n_iter().unwrap(),
        iso.n_graph_components().unwrap(),
        lle.reconstruction_error().unwrap(),
        lle.eigenvalues().unwrap(),
        lle.n_iter().unwrap(),
        lle.shift_used().unwrap(),
    );
}
