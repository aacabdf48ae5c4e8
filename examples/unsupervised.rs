//! Classical unsupervised learning on Fashion-MNIST, every heavy step on the GPU: PCA
//! (eigen-images and the explained-variance curve), k-means (centroid images), a Gaussian
//! mixture on the PCA projection (cluster purity against the true labels), probabilistic
//! PCA (samples as images), FastICA (independent components as images) and NMF
//! (non-negative parts as images, Frobenius or Kullback-Leibler).
//!
//! `cargo run --release --example unsupervised -- [--limit 10000] [--k 10] [--components 50]
//!  [--n-init 5] [--gmm-iter 30] [--gmm-n-init 1] [--ica-k 16] [--ica-iter 200] [--ica-algorithm parallel]
//!  [--nmf-k 16] [--nmf-iter 200] [--nmf-tol 1e-4] [--nmf-loss frobenius] [--nmf-init FILE]
//!  [--methods pca,kmeans,gmm,ppca,ica,nmf] [--seed 0] [--data DIR] [--out out/unsupervised]`
//! (`--help` lists them).
//!
//! Images are the first `--limit` training images scaled to [0, 1], all 60,000 included:
//! they are held as row blocks (`RowBlocks`) that each fit one storage binding (128 MiB on
//! lavapipe), which PCA, k-means, PPCA, FastICA and NMF fit block by block (the GMM fits
//! the PCA projection). Writes under `--out`:
//! `pca_eigen_images.png`, `pca_explained_variance.png`, `kmeans_centroids.png`,
//! `ppca_samples.png`, `ica_components.png`, `nmf_components.png` (those of the methods
//! run) and `metrics.json`; the last stdout line is one JSON object with the metrics and the
//! fit times.

mod common;

use std::path::Path;
use std::time::Instant;

use cinder::data::mnist::{self, Split};
use cinder::models::classical::{
    BetaLoss, FastIca, GaussianMixture, IcaAlgorithm, KMeans, Nmf, NmfInit, Pca, ProbabilisticPca,
    RowBlocks,
};
use cinder::prelude::*;
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish};
use serde_json::json;

/// Writes an 8-bit grayscale PNG (via a temporary file renamed into place).
fn write_png(path: &Path, w: usize, h: usize, pixels: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("png.tmp");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut enc = png::Encoder::new(f, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(pixels)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A grid of 28x28 images (rows of `images`, 784 values each), each min-max scaled when
/// `normalize` or clamped from [0, 1] otherwise; 2-pixel gaps.
fn image_grid(path: &Path, images: &[f32], normalize: bool) -> anyhow::Result<()> {
    let n = images.len() / 784;
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * 30 + 2, rows * 30 + 2);
    let mut px = vec![255u8; w * h];
    for (t, img) in images.chunks(784).enumerate() {
        let (lo, hi) = if normalize {
            let lo = img.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = img.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            (lo, (hi - lo).max(1e-12))
        } else {
            (0.0, 1.0)
        };
        let (r0, c0) = ((t / cols) * 30 + 2, (t % cols) * 30 + 2);
        for y in 0..28 {
            for x in 0..28 {
                let v = ((img[y * 28 + x] - lo) / hi).clamp(0.0, 1.0);
                // Dark ink on white paper, as the dataset is usually shown.
                px[(r0 + y) * w + c0 + x] = (255.0 * (1.0 - v)).round() as u8;
            }
        }
    }
    write_png(path, w, h, &px)
}

/// The cumulative explained-variance ratio against the number of components.
fn variance_curve(path: &Path, ratios: &[f32]) -> anyhow::Result<()> {
    let cum = ratios.iter().scan(0f64, |c, &r| {
        *c += r as f64;
        Some(*c)
    });
    curves(
        path,
        "components",
        &[Panel {
            title: format!(
                "PCA: explained variance of the first {} components",
                ratios.len()
            ),
            y_label: "cumulative explained variance ratio".into(),
            series: vec![Series::per_epoch("", cum)],
        }],
    )
}

fn main() -> anyhow::Result<()> {
    let args: cli::Unsupervised = cli::parse("unsupervised");
    let (out, seed) = (&args.common.out, args.common.seed);
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
    let xs: Vec<f32> = train.images().iter().map(|&p| p as f32 / 255.0).collect();
    let x = RowBlocks::from_slice(&dev, &xs, n, d, None)?;
    println!(
        "data: {n} images of {d} pixels, scaled to [0, 1] ({} row block{})",
        x.blocks().len(),
        if x.blocks().len() == 1 { "" } else { "s" }
    );
    let mut metrics = json!({
        "adapter": dev.adapter_info().name,
        "n": n,
        "k": args.k,
        "components": args.components,
        "seed": seed,
    });
    let m = metrics.as_object_mut().expect("an object");

    // PCA (also the projection the GMM is fitted on).
    let pca = if args.runs("pca") || args.runs("gmm") {
        let t = Instant::now();
        let mut pca = Pca::new(args.components).with_seed(seed);
        pca.fit_with(&x, |it, tr| {
            println!("pca: subspace iteration {it}: trace {tr:.6}")
        })?;
        dev.sync()?;
        let pca_s = t.elapsed().as_secs_f64();
        let ratios = pca.explained_variance_ratio()?.to_vec::<f32>()?;
        let pca_total: f32 = ratios.iter().sum();
        println!(
            "pca: {} components explain {:.5} of the variance ({} subspace iterations, {:.2} s)",
            args.components,
            pca_total,
            pca.n_iter()?,
            pca_s
        );
        let comps = pca.components()?.to_vec::<f32>()?;
        image_grid(
            &out.join("pca_eigen_images.png"),
            &comps[..comps.len().min(16 * d)],
            true,
        )?;
        variance_curve(&out.join("pca_explained_variance.png"), &ratios)?;
        m.insert("pca_explained_variance_ratio".into(), json!(pca_total));
        m.insert("pca_fit_seconds".into(), json!(pca_s));
        Some(pca)
    } else {
        None
    };

    // k-means.
    if args.runs("kmeans") {
        let t = Instant::now();
        let mut km = KMeans::new(args.k).with_n_init(args.n_init).with_seed(seed);
        km.fit_with(&x, |init, it, shift| {
            println!("kmeans: init {init} iteration {it}: center shift {shift:.4e}")
        })?;
        let km_s = t.elapsed().as_secs_f64();
        println!(
            "kmeans: k = {}, n_init = {}: inertia {:.1} ({:.2} s)",
            args.k,
            args.n_init,
            km.inertia(),
            km_s
        );
        image_grid(
            &out.join("kmeans_centroids.png"),
            &km.centers()?.to_vec::<f32>()?,
            false,
        )?;
        m.insert("kmeans_inertia".into(), json!(km.inertia()));
        m.insert("kmeans_n_init".into(), json!(args.n_init));
        m.insert("kmeans_fit_seconds".into(), json!(km_s));
    }

    // GMM on the PCA projection.
    if let (true, Some(pca)) = (args.runs("gmm"), &pca) {
        let z = pca.transform(&x)?;
        let t = Instant::now();
        let mut gmm = GaussianMixture::new(args.k)
            .with_max_iter(args.gmm_iter)
            .with_n_init(args.gmm_n_init)
            .with_seed(seed);
        gmm.fit_with(&z, |it, ll| {
            println!("gmm: iteration {it}: mean log-likelihood {ll:.5}")
        })?;
        let gmm_s = t.elapsed().as_secs_f64();
        let gmm_ll = gmm.score(&z)?;
        let pred = gmm.predict(&z)?.to_vec::<u32>()?;
        let mut counts = vec![[0usize; 256]; args.k];
        for (p, &l) in pred.iter().zip(&labels) {
            counts[*p as usize][l as usize] += 1;
        }
        let purity = counts
            .iter()
            .map(|c| *c.iter().max().unwrap())
            .sum::<usize>() as f64
            / n as f64;
        println!(
            "gmm: {} full components on PCA-{}: mean log-likelihood {:.5}, purity {:.4} ({} iterations, {:.2} s)",
            args.k,
            args.components,
            gmm_ll,
            purity,
            gmm.n_iter()?,
            gmm_s
        );
        m.insert("gmm_mean_log_likelihood".into(), json!(gmm_ll));
        m.insert("gmm_purity".into(), json!(purity));
        m.insert("gmm_iterations".into(), json!(gmm.n_iter()?));
        m.insert("gmm_n_init".into(), json!(args.gmm_n_init));
        m.insert("gmm_fit_seconds".into(), json!(gmm_s));
    }

    // Probabilistic PCA.
    if args.runs("ppca") {
        let t = Instant::now();
        let mut ppca = ProbabilisticPca::new(args.components).with_seed(seed);
        ppca.fit(&x)?;
        dev.sync()?;
        let ppca_s = t.elapsed().as_secs_f64();
        let sigma2 = ppca.noise_variance()?;
        let ppca_ll = ppca.score(&x)?;
        println!(
            "ppca: q = {}: noise variance {:.5}, mean log-likelihood {:.2} ({:.2} s)",
            args.components, sigma2, ppca_ll, ppca_s
        );
        image_grid(
            &out.join("ppca_samples.png"),
            &ppca.sample(16, seed + 1)?.to_vec::<f32>()?,
            false,
        )?;
        m.insert("ppca_noise_variance".into(), json!(sigma2));
        m.insert("ppca_mean_log_likelihood".into(), json!(ppca_ll));
        m.insert("ppca_fit_seconds".into(), json!(ppca_s));
    }

    // FastICA on the data whitened by its own PCA step.
    if args.runs("ica") {
        let alg = match args.ica_algorithm.as_str() {
            "deflation" => IcaAlgorithm::Deflation,
            _ => IcaAlgorithm::Parallel,
        };
        let t = Instant::now();
        let mut ica = FastIca::new(args.ica_k)
            .with_algorithm(alg)
            .with_max_iter(args.ica_iter)
            .with_seed(seed);
        ica.fit(&x)?;
        dev.sync()?;
        let ica_s = t.elapsed().as_secs_f64();
        // Each component's sign made so that its largest-magnitude pixel is positive.
        let mut comps = ica.components()?.to_vec::<f32>()?;
        for c in comps.chunks_mut(d) {
            let big = c
                .iter()
                .cloned()
                .fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
            if big < 0.0 {
                c.iter_mut().for_each(|v| *v = -*v);
            }
        }
        image_grid(&out.join("ica_components.png"), &comps, true)?;
        println!(
            "ica: {} {} components: {} iterations ({:.2} s)",
            args.ica_k,
            args.ica_algorithm,
            ica.n_iter()?,
            ica_s
        );
        m.insert("ica_components".into(), json!(args.ica_k));
        m.insert("ica_algorithm".into(), json!(args.ica_algorithm));
        m.insert("ica_iterations".into(), json!(ica.n_iter()?));
        m.insert("ica_fit_seconds".into(), json!(ica_s));
    }

    // NMF.
    if args.runs("nmf") {
        let loss = match args.nmf_loss.as_str() {
            "kl" => BetaLoss::KullbackLeibler,
            _ => BetaLoss::Frobenius,
        };
        let mut nmf = Nmf::new(args.nmf_k)
            .with_beta_loss(loss)
            .with_max_iter(args.nmf_iter)
            .with_tol(args.nmf_tol)
            .with_seed(seed);
        if let Some(path) = &args.nmf_init {
            let file = cinder::nn::checkpoint::CheckpointFile::open(path)?;
            let w = file.load_tensor("W", &dev)?;
            let h = file.load_tensor("H", &dev)?;
            nmf = nmf.with_init(NmfInit::Custom(w, h));
        }
        let t = Instant::now();
        nmf.fit(&x)?;
        dev.sync()?;
        let nmf_s = t.elapsed().as_secs_f64();
        let err = nmf.reconstruction_err()?;
        println!(
            "nmf: k = {}, {} loss: reconstruction error {:.4} after {} iterations ({:.2} s)",
            args.nmf_k,
            args.nmf_loss,
            err,
            nmf.n_iter()?,
            nmf_s
        );
        image_grid(
            &out.join("nmf_components.png"),
            &nmf.components()?.to_vec::<f32>()?,
            true,
        )?;
        m.insert("nmf_k".into(), json!(args.nmf_k));
        m.insert("nmf_loss".into(), json!(args.nmf_loss));
        m.insert("nmf_reconstruction_err".into(), json!(err));
        m.insert("nmf_iterations".into(), json!(nmf.n_iter()?));
        m.insert("nmf_fit_seconds".into(), json!(nmf_s));
    }
    println!("pictures in {}", out.display());
    finish(out, metrics, &[])?;
    Ok(())
}
