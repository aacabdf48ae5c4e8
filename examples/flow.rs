//! Trains a RealNVP normalizing flow (affine couplings with checkerboard and channel masks,
//! squeezes and a multi-scale split; `docs/flow.md`) on uniformly dequantized,
//! logit-transformed Fashion-MNIST and reports, per epoch, the training and test bits per
//! dimension of the 8-bit images.
//!
//! `cargo run --release --example flow -- --epochs 3 --limit 10000 --test-limit 2000
//!  [--hidden 16] [--blocks 1] [--couplings 3] [--scales 2]`. The test bits/dim uses a fixed
//! dequantization noise (seed 777), so epochs are compared on the same points. After
//! training, every evaluated test image goes through `x -> z -> x` and the largest error is
//! reported, in pixel space (`[0, 1]`, the dequantized pixels) and in logit space. Writes
//! under `--out` (default `out/flow`): `samples_t1.0.png` and `samples_t0.7.png` (64
//! samples at temperature 1 and 0.7, the same z every epoch, rewritten after each epoch),
//! `curves.png` (training and test bits/dim per epoch), `metrics.json`; the last stdout
//! line is a JSON object of final metrics. The run fails (after writing them) when the
//! inversion error exceeds 1e-4 in pixel space.

mod common;

use std::time::Instant;

use cinder::models::train::check_finite_state;
use cinder::models::{RealNvp, RealNvpConfig};
use cinder::nn::VarStore;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;
use common::generative::{load, loader, save_grid, train_epoch};
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish, optimizer, schedule};
use serde_json::json;

/// The dequantization noise of the test images: one fixed stream, batch `i` at offset `i`.
const TEST_SEED: u64 = 777;
/// The bound the inversion check holds the flow to, in pixel space.
const INVERSION_TOL: f64 = 1e-4;
const TEMPERATURES: [f32; 2] = [1.0, 0.7];

fn main() -> anyhow::Result<()> {
    let args: cli::Flow = cli::parse("flow");
    let (out, seed, epochs) = (&args.common.out, args.common.seed, args.train.epochs());
    ensure_dir(out)?;
    let dev = Device::default()?;
    let (train, test) = load(&args.common, args.test.test_limit)?;
    let cfg = RealNvpConfig {
        image: train.image_shape(),
        scales: args.scales as usize,
        couplings: args.couplings,
        hidden: args.hidden,
        blocks: args.blocks,
        alpha: 0.05,
    };
    let vs = VarStore::new(&dev, seed);
    let flow = RealNvp::new(&vs.root(), cfg.clone())?;
    let tl = loader(&dev, train, args.train.batch_size, Some(seed), false)?;
    let el = loader(&dev, test, 250, None, false)?;
    println!(
        "flow (RealNVP, {} scales, {} couplings of each kind per scale, hidden {}, {} residual blocks, alpha {}): {} train, {} test images; {} parameters; adapter {}",
        cfg.scales,
        cfg.couplings,
        cfg.hidden,
        cfg.blocks,
        cfg.alpha,
        tl.dataset().len(),
        el.dataset().len(),
        vs.num_parameters(),
        dev.adapter_info().name
    );
    let mut opt = optimizer(&args.optim, args.train.lr, &vs)?;
    let mut sched = schedule(&args.optim, opt.as_mut(), epochs * tl.num_batches(), 0)?;
    let mut history = vec![];
    let (mut train_bpd, mut test_bpd) = (f64::NAN, f64::NAN);
    let mut curve: [Vec<f64>; 2] = Default::default();
    let t0 = Instant::now();
    let mut step = 0u64;
    for epoch in 0..epochs {
        let start = Instant::now();
        train_bpd = train_epoch(
            &tl,
            epoch,
            epochs,
            opt.as_mut(),
            sched.as_mut().map(|s| s as &mut dyn LrScheduler),
            &mut step,
            "bits/dim",
            |x, step| {
                let b = flow.bits_per_dim(x, seed ^ 0xF10, step)?.mean_all()?;
                Ok((b.clone(), b))
            },
        )?;
        let train_secs = start.elapsed().as_secs_f64();
        check_finite_state(&vs)?;
        let mut tot = 0f64;
        no_grad(|| -> anyhow::Result<()> {
            for (i, batch) in el.epoch(0).enumerate() {
                let x = batch?.images;
                tot += flow
                    .bits_per_dim(&x, TEST_SEED, i as u64)?
                    .sum_all()?
                    .item()? as f64;
            }
            Ok(())
        })?;
        test_bpd = tot / el.dataset().len() as f64;
        save_samples(&flow, out, seed, epoch + 1)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}: train {train_bpd:.4} bits/dim | test {test_bpd:.4} bits/dim | train {train_secs:.1} s, total {secs:.1} s",
            epoch + 1
        );
        history.push(
            json!({"epoch": epoch + 1, "train_bpd": train_bpd, "test_bpd": test_bpd,
            "train_seconds": train_secs, "seconds": secs}),
        );
        curve[0].push(train_bpd);
        curve[1].push(test_bpd);
        save_curves(&out.join("curves.png"), &curve)?;
    }
    let fell = curve[1].windows(2).all(|w| w[1] < w[0]);

    // x -> z -> x over every evaluated test image, with the test dequantization noise
    let (mut err_pixel, mut err_logit) = (0f64, 0f64);
    no_grad(|| -> anyhow::Result<()> {
        for (i, batch) in el.epoch(0).enumerate() {
            let x = flow.dequantize(&batch?.images, TEST_SEED, i as u64)?;
            let (y, _) = flow.logit(&x)?;
            let (z, _) = flow.forward(&y)?;
            let back = flow.inverse(&z)?;
            let e = back.sub(&y)?.abs()?.max_all()?.item()? as f64;
            err_logit = err_logit.max(e);
            let e = flow.to_pixels(&back)?.sub(&x)?.abs()?.max_all()?.item()? as f64;
            err_pixel = err_pixel.max(e);
        }
        Ok(())
    })?;
    println!(
        "inverse: max |x - f^-1(f(x))| over {} test images = {err_pixel:.3e} in pixel space, {err_logit:.3e} in logit space",
        el.dataset().len()
    );
    let metrics = json!({
        "model": "realnvp",
        "scales": cfg.scales,
        "couplings": cfg.couplings,
        "hidden": cfg.hidden,
        "blocks": cfg.blocks,
        "alpha": cfg.alpha,
        "parameters": vs.num_parameters(),
        "epochs": epochs,
        "train_images": tl.dataset().len(),
        "test_images": el.dataset().len(),
        "train_bpd": train_bpd,
        "test_bpd": test_bpd,
        "test_bpd_fell_every_epoch": fell,
        "inverse_max_error_pixel": err_pixel,
        "inverse_max_error_logit": err_logit,
        "seconds": t0.elapsed().as_secs_f64(),
        "adapter": dev.adapter_info().name,
        "samples_png": TEMPERATURES.map(|t| out.join(sample_name(t)).display().to_string()),
        "curves_png": out.join("curves.png").display().to_string(),
        "history": history,
    });
    finish(out, metrics, &["history"])?;
    anyhow::ensure!(
        err_pixel <= INVERSION_TOL,
        "the flow does not invert: max pixel error {err_pixel:.3e} > {INVERSION_TOL:e}"
    );
    Ok(())
}

fn sample_name(t: f32) -> String {
    format!("samples_t{t:.1}.png")
}

/// 64 samples at each temperature, from the same z (seed) every epoch.
fn save_samples(
    flow: &RealNvp,
    out: &std::path::Path,
    seed: u64,
    epoch: usize,
) -> anyhow::Result<()> {
    no_grad(|| {
        for t in TEMPERATURES {
            save_grid(
                &flow.sample(64, t, seed ^ 0x5A3)?,
                8,
                (0.0, 1.0),
                &format!("RealNVP samples, temperature {t:.1}, epoch {epoch}"),
                &[],
                &out.join(sample_name(t)),
            )?;
        }
        Ok(())
    })
}

/// The training and test bits per dimension, per epoch.
fn save_curves(path: &std::path::Path, c: &[Vec<f64>; 2]) -> anyhow::Result<()> {
    curves(
        path,
        "epoch",
        &[Panel {
            title: "flow: bits per dimension of the 8-bit images".into(),
            y_label: "bits/dim".into(),
            series: vec![
                Series::per_epoch(
                    "training (mean over the epoch's batches)",
                    c[0].iter().copied(),
                ),
                Series::per_epoch("test (fixed dequantization noise)", c[1].iter().copied()),
            ],
        }],
    )
}
