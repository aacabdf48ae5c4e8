//! Classical unsupervised learning on Fashion-MNIST, every heavy step on the GPU: PCA
//! (eigen-images and the explained-variance curve), k-means (centroid images), a Gaussian
//! mixture on the PCA projection (cluster purity against the true labels) and probabilistic
//! PCA (samples as images).
//!
//! `cargo run --release --example unsupervised -- [--limit 10000] [--k 10] [--components 50]
//!  [--n-init 5] [--gmm-iter 30] [--data /usr/share/datasets/fashion-mnist] [--out out/unsupervised]`
//!
//! Images are the first `--limit` training images scaled to [0, 1] (at most about 40,000:
//! the data must fit one 128 MiB binding on lavapipe). Progress goes to stderr and stdout;
//! the last stdout line is one JSON object with the metrics and the fit times.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use cinder::models::classical::{GaussianMixture, KMeans, Pca, ProbabilisticPca};
use cinder::prelude::*;

struct Args {
    limit: usize,
    k: usize,
    components: usize,
    n_init: usize,
    gmm_iter: usize,
    data: PathBuf,
    out: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        limit: 10_000,
        k: 10,
        components: 50,
        n_init: 5,
        gmm_iter: 30,
        data: PathBuf::from("/usr/share/datasets/fashion-mnist"),
        out: PathBuf::from("out/unsupervised"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv
            .get(i + 1)
            .with_context(|| format!("{} needs a value", argv[i]))?;
        let num = || -> anyhow::Result<usize> {
            v.parse()
                .with_context(|| format!("{}: not a number: {v}", argv[i]))
        };
        match argv[i].as_str() {
            "--limit" => a.limit = num()?,
            "--k" => a.k = num()?,
            "--components" => a.components = num()?,
            "--n-init" => a.n_init = num()?,
            "--gmm-iter" => a.gmm_iter = num()?,
            "--data" => a.data = PathBuf::from(v),
            "--out" => a.out = PathBuf::from(v),
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    Ok(a)
}

/// Reads a gzip-compressed IDX file: (dimensions, bytes), checking the magic number
/// (unsigned bytes) and the length.
fn read_idx(path: &Path, limit: usize) -> anyhow::Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut raw)
        .with_context(|| format!("{}: not gzip", path.display()))?;
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 || raw[2] != 0x08 {
        bail!("{}: bad IDX magic at offset 0", path.display());
    }
    let rank = raw[3] as usize;
    let header = 4 + 4 * rank;
    if raw.len() < header {
        bail!("{}: truncated IDX header", path.display());
    }
    let mut dims: Vec<usize> = (0..rank)
        .map(|r| u32::from_be_bytes(raw[4 + 4 * r..8 + 4 * r].try_into().unwrap()) as usize)
        .collect();
    let total: usize = dims.iter().product();
    if raw.len() != header + total {
        bail!(
            "{}: expected {} data bytes after the header, found {}",
            path.display(),
            total,
            raw.len() - header
        );
    }
    dims[0] = dims[0].min(limit);
    let keep: usize = dims.iter().product();
    Ok((dims, raw[header..header + keep].to_vec()))
}

/// CRC-32 (PNG's polynomial).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Writes an 8-bit grayscale PNG (via a temporary file renamed into place).
fn write_png(path: &Path, w: usize, h: usize, pixels: &[u8]) -> anyhow::Result<()> {
    let mut raw = Vec::with_capacity(h * (w + 1));
    for row in pixels.chunks(w) {
        raw.push(0u8); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &idat);
    chunk(b"IEND", &[]);
    let tmp = path.with_extension("png.tmp");
    std::fs::write(&tmp, &png).with_context(|| format!("{}", tmp.display()))?;
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

/// Cumulative explained-variance curve as a 400x240 PNG (black line, grey 10% grid).
fn variance_curve(path: &Path, ratios: &[f32]) -> anyhow::Result<()> {
    let (w, h, m) = (400usize, 240usize, 10usize);
    let mut px = vec![255u8; w * h];
    for g in 0..=10 {
        let y = m + (h - 2 * m) * g / 10;
        for x in m..w - m {
            px[y * w + x] = 200;
        }
    }
    let mut cum = 0.0f32;
    let n = ratios.len().max(1);
    let mut last: Option<(usize, usize)> = None;
    for (i, r) in ratios.iter().enumerate() {
        cum += r;
        let x = m + (w - 2 * m - 1) * (i + 1) / n;
        let y = m + ((h - 2 * m - 1) as f32 * (1.0 - cum.clamp(0.0, 1.0))) as usize;
        let (x0, y0) = last.unwrap_or((m, h - m - 1));
        let steps = x.abs_diff(x0).max(y.abs_diff(y0)).max(1);
        for s in 0..=steps {
            let xx = x0 as f32 + (x as f32 - x0 as f32) * s as f32 / steps as f32;
            let yy = y0 as f32 + (y as f32 - y0 as f32) * s as f32 / steps as f32;
            px[yy.round() as usize * w + xx.round() as usize] = 0;
        }
        last = Some((x, y));
    }
    write_png(path, w, h, &px)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let dev = Device::default()?;
    println!(
        "adapter: {} ({:?})",
        dev.adapter_info().name,
        dev.adapter_info().backend
    );

    let (dims, pixels) = read_idx(&args.data.join("train-images-idx3-ubyte.gz"), args.limit)?;
    let (_, labels) = read_idx(&args.data.join("train-labels-idx1-ubyte.gz"), args.limit)?;
    let (n, d) = (dims[0], dims[1] * dims[2]);
    let xs: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let x = DeviceTensor::from_slice(&dev, &xs, &[n, d])?;
    println!("data: {n} images of {d} pixels, scaled to [0, 1]");

    // PCA.
    let t = Instant::now();
    let mut pca = Pca::new(args.components);
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
        &args.out.join("pca_eigen_images.png"),
        &comps[..comps.len().min(16 * d)],
        true,
    )?;
    variance_curve(&args.out.join("pca_explained_variance.png"), &ratios)?;

    // k-means.
    let t = Instant::now();
    let mut km = KMeans::new(args.k).with_n_init(args.n_init);
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
        &args.out.join("kmeans_centroids.png"),
        &km.centers()?.to_vec::<f32>()?,
        false,
    )?;

    // GMM on the PCA projection.
    let z = pca.transform(&x)?;
    let t = Instant::now();
    let mut gmm = GaussianMixture::new(args.k).with_max_iter(args.gmm_iter);
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

    // Probabilistic PCA.
    let t = Instant::now();
    let mut ppca = ProbabilisticPca::new(args.components);
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
        &args.out.join("ppca_samples.png"),
        &ppca.sample(16, 1)?.to_vec::<f32>()?,
        false,
    )?;
    println!("pictures in {}", args.out.display());

    let name = dev.adapter_info().name.replace(['"', '\\'], "");
    println!(
        "{{\"adapter\":\"{name}\",\"n\":{n},\"k\":{},\"components\":{},\
         \"pca_explained_variance_ratio\":{pca_total},\"pca_fit_seconds\":{pca_s:.3},\
         \"kmeans_inertia\":{},\"kmeans_n_init\":{},\"kmeans_fit_seconds\":{km_s:.3},\
         \"gmm_mean_log_likelihood\":{gmm_ll},\"gmm_purity\":{purity:.4},\
         \"gmm_iterations\":{},\"gmm_fit_seconds\":{gmm_s:.3},\
         \"ppca_noise_variance\":{sigma2},\"ppca_mean_log_likelihood\":{ppca_ll},\
         \"ppca_fit_seconds\":{ppca_s:.3}}}",
        args.k,
        args.components,
        km.inertia(),
        args.n_init,
        gmm.n_iter()?
    );
    Ok(())
}
