//! Manifold learning on Fashion-MNIST, every heavy step on the GPU: exact t-SNE on the PCA
//! projection (KL divergence and trustworthiness), Isomap and standard LLE on the raw pixels
//! (reconstruction errors), each embedding drawn as a scatter plot coloured by class.
//!
//! `cargo run --release --example manifold -- [--limit 2000] [--method all]
//!  [--neighbors 10] [--perplexity 30] [--tsne-iter 1000] [--pca 50] [--seed 0] [--data DIR]
//!  [--out out/manifold]` (`--help` lists them).
//!
//! Images are the first `--limit` training images scaled to [0, 1] (at most 5,792 on
//! lavapipe: the exact methods hold `n x n` matrices, each one 128 MiB binding). Writes
//! `tsne.png`, `isomap.png`, `lle.png` (those of the methods run) and `metrics.json` under
//! `--out`; the last stdout line is one JSON object with the figures and the fit times.

mod common;

use std::time::Instant;

use cinder::data::mnist::{self, Split};
use cinder::models::classical::{Isomap, LocallyLinearEmbedding, Pca, Tsne, trustworthiness};
use cinder::prelude::*;
use common::generative::class_names;
use common::plot::scatter;
use common::{cli, ensure_dir, finish, progress};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let args: cli::Manifold = cli::parse("manifold");
    let seed = args.common.seed;
    let out = &args.common.out;
    ensure_dir(out)?;
    let dev = Device::default()?;
    println!(
        "adapter: {} ({:?})",
        dev.adapter_info().name,
        dev.adapter_info().backend
    );

    let dir = mnist::data_dir(args.common.data.as_deref());
    let train = mnist::load(&dir, Split::Train)?.take(args.limit());
    let labels = train.labels().to_vec();
    let (n, d) = (train.len(), train.image_len());
    if n < 2 {
        anyhow::bail!("manifold needs at least 2 images (got {n})");
    }
    let xs: Vec<f32> = train.images().iter().map(|&p| p as f32 / 255.0).collect();
    let x = Tensor::from_slice(&dev, &xs, &[n, d])?;
    println!("data: {n} images of {d} pixels, scaled to [0, 1]");
    let classes = class_names();
    let mut metrics = json!({
        "adapter": dev.adapter_info().name,
        "n": n,
        "method": args.method,
        "neighbors": args.neighbors,
        "seed": seed,
    });
    let m = metrics.as_object_mut().expect("an object");
    let plot = |file: &str, title: String, emb: &Tensor| -> anyhow::Result<()> {
        let xy = emb.to_vec::<f32>()?;
        scatter(
            &out.join(file),
            &title,
            ("dimension 1", "dimension 2"),
            &xy,
            &labels,
            &classes,
            640,
        )
    };

    if args.runs("tsne") {
        // Checked before the fit, not after minutes of it: trustworthiness needs
        // n_neighbors < n / 2 (as scikit-learn's).
        if args.neighbors as f64 >= n as f64 / 2.0 {
            anyhow::bail!(
                "--neighbors {} must be below half the images ({n}) for t-SNE's trustworthiness",
                args.neighbors
            );
        }
        let t = Instant::now();
        let p = args.pca.min(d).min(n);
        let mut pca = Pca::new(p).with_seed(seed);
        pca.fit(&x)?;
        let z = pca.transform(&x)?;
        let pb = progress(args.tsne_iter, "t-SNE".into());
        let mut tsne = Tsne::new(2)
            .with_perplexity(args.perplexity)
            .with_max_iter(args.tsne_iter)
            .with_seed(seed);
        let emb = tsne.fit_transform_with(&z, |c| {
            pb.set_position(c.iteration as u64 + 1);
            pb.set_message(format!(
                "KL {:.4}, gradient norm {:.2e}",
                c.kl_divergence, c.grad_norm
            ));
        })?;
        dev.sync()?;
        pb.finish_and_clear();
        let fit_s = t.elapsed().as_secs_f64();
        let kl = tsne.kl_divergence()?;
        let trust = trustworthiness(&z, &emb, args.neighbors)?;
        println!(
            "tsne: PCA-{p}, perplexity {}: KL divergence {kl:.4}, trustworthiness (k = {}) {trust:.4} after {} iterations ({fit_s:.1} s)",
            args.perplexity,
            args.neighbors,
            tsne.n_iter()? + 1
        );
        plot(
            "tsne.png",
            format!(
                "t-SNE of {n} images (PCA-{p}, perplexity {})",
                args.perplexity
            ),
            &emb,
        )?;
        m.insert(
            "tsne".into(),
            json!({
                "kl_divergence": kl,
                "trustworthiness": trust,
                "n_iter": tsne.n_iter()?,
                "pca": p,
                "perplexity": args.perplexity,
                "fit_seconds": fit_s,
            }),
        );
    }

    if args.runs("isomap") {
        let pb = progress(1, "Isomap".into());
        let t = Instant::now();
        let mut iso = Isomap::new(args.neighbors, 2).with_seed(seed);
        let emb = iso.fit_transform(&x)?;
        dev.sync()?;
        pb.finish_and_clear();
        let fit_s = t.elapsed().as_secs_f64();
        let err = iso.reconstruction_error()?;
        println!(
            "isomap: k = {}: reconstruction error {err:.4} ({fit_s:.1} s)",
            args.neighbors
        );
        plot(
            "isomap.png",
            format!("Isomap of {n} images (k = {})", args.neighbors),
            &emb,
        )?;
        m.insert(
            "isomap".into(),
            json!({"reconstruction_error": err, "fit_seconds": fit_s}),
        );
    }

    if args.runs("lle") {
        let pb = progress(1, "LLE".into());
        let t = Instant::now();
        let mut lle = LocallyLinearEmbedding::new(args.neighbors, 2).with_seed(seed);
        let emb = lle.fit_transform(&x)?;
        dev.sync()?;
        pb.finish_and_clear();
        let fit_s = t.elapsed().as_secs_f64();
        let err = lle.reconstruction_error()?;
        println!(
            "lle: k = {}: reconstruction error {err:.4e} ({fit_s:.1} s)",
            args.neighbors
        );
        plot(
            "lle.png",
            format!("LLE of {n} images (k = {})", args.neighbors),
            &emb,
        )?;
        m.insert(
            "lle".into(),
            json!({"reconstruction_error": err, "fit_seconds": fit_s}),
        );
    }
    println!("pictures in {}", out.display());
    finish(out, metrics, &[])?;
    Ok(())
}
