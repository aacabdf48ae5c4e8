//! Trains a variational autoencoder on Fashion-MNIST (the 784-400-20 MLP with a Bernoulli
//! decoder by default, or `--arch conv`) and reports, per epoch, the test negative ELBO
//! and the K = 100 importance-weighted estimate of -log p(x).
//!
//! `cargo run --release --example vae -- --epochs 10 [--latent 20] [--arch conv]
//!  [--test-limit N]`. The IWAE estimate runs on the first 1,000 test images (fewer with
//! --test-limit). Writes under `--out` (default `out/vae`): `samples_epoch{E}.png` (64 samples
//! from the prior, the same z every epoch), `reconstructions.png` (rows of inputs, then
//! reconstructions), `interpolation.png` (each row decodes 10 points between two test
//! images' posterior means), `latent_scatter.png` (the first two latent dimensions of the
//! test images' posterior means, coloured by class with a legend of class names),
//! `curves.png` (training and test -ELBO and the IWAE estimate per epoch), `metrics.json`;
//! the last stdout line is a JSON object of final metrics.

mod common;

use std::time::Instant;

use cinder::models::train::check_finite_state;
use cinder::models::{Likelihood, Vae, VaeArch, VaeConfig};
use cinder::nn::VarStore;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;
use common::generative::{class_names, first_images, load, loader, save_grid, train_epoch};
use common::plot::{Panel, Series, curves, scatter};
use common::{cli, ensure_dir, finish, optimizer, schedule};
use serde_json::json;

const K: usize = 100;
const IWAE_IMAGES: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args: cli::Vae = cli::parse("vae");
    let (out, seed, epochs) = (&args.common.out, args.common.seed, args.train.epochs());
    ensure_dir(out)?;
    let dev = Device::default()?;
    let (train, test) = load(&args.common, args.test.test_limit)?;
    let image = train.image_shape();
    let latent = args.latent;
    let arch = match args.arch.as_str() {
        "mlp" => VaeArch::Mlp { hidden: 400 },
        "conv" => VaeArch::Conv { width: 16 },
        a => anyhow::bail!("unknown --arch {a} (mlp or conv)"),
    };
    let vs = VarStore::new(&dev, seed);
    let vae = Vae::new(
        &vs.root(),
        VaeConfig {
            arch,
            image,
            latent,
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
        },
    )?;
    let tl = loader(&dev, train, args.train.batch_size, Some(seed), false)?;
    let el = loader(&dev, test, 500, None, false)?;
    let iw_n = el.dataset().len().min(IWAE_IMAGES);
    println!(
        "vae ({}, latent {latent}, Bernoulli): {} train, {} test images (IWAE K={K} on {iw_n}); {} parameters; adapter {}",
        args.arch,
        tl.dataset().len(),
        el.dataset().len(),
        vs.num_parameters(),
        dev.adapter_info().name
    );
    let mut opt = optimizer(&args.optim, args.train.lr, &vs)?;
    let mut sched = schedule(&args.optim, opt.as_mut(), epochs * tl.num_batches(), 0)?;
    let iw_x = first_images(&dev, el.dataset(), iw_n)?;
    let mut history = vec![];
    let (mut train_nelbo, mut test_nelbo, mut test_iwae) = (f64::NAN, f64::NAN, f64::NAN);
    let t0 = Instant::now();
    let mut step = 0u64;
    let mut curve: [Vec<f64>; 3] = Default::default();
    for epoch in 0..epochs {
        let start = Instant::now();
        let train_nelbo_epoch = train_epoch(
            &tl,
            epoch,
            epochs,
            opt.as_mut(),
            sched.as_mut().map(|s| s as &mut dyn LrScheduler),
            &mut step,
            "-elbo",
            |x, step| {
                let e = vae.elbo(x, seed ^ 0x5AE, step)?;
                Ok((e.loss.clone(), e.loss))
            },
        )?;
        let train_secs = start.elapsed().as_secs_f64();
        train_nelbo = train_nelbo_epoch;
        check_finite_state(&vs)?;
        // test negative ELBO (one z per image, fixed stream) and IWAE on the first iw_n
        let (mut tot, mut iw) = (0f64, 0f64);
        no_grad(|| -> anyhow::Result<()> {
            for (i, batch) in el.epoch(0).enumerate() {
                let b = batch?;
                let n = b.indices.len();
                let x = b.images;
                tot += vae.elbo(&x, 777, i as u64)?.loss.item()? as f64 * n as f64;
            }
            let chunk = 20;
            for (j, s) in (0..iw_n).step_by(chunk).enumerate() {
                let n = chunk.min(iw_n - s);
                let lp = vae.iwae_log_px(&iw_x.narrow(0, s, n)?, K, 999, j as u64)?;
                iw -= lp.sum_all()?.item()? as f64;
            }
            Ok(())
        })?;
        test_nelbo = tot / el.dataset().len() as f64;
        test_iwae = iw / iw_n as f64;
        no_grad(|| {
            save_grid(
                &vae.sample(64, 2024, 0)?,
                8,
                (0.0, 1.0),
                &format!("samples from the prior, epoch {}", epoch + 1),
                &[],
                &out.join(format!("samples_epoch{}.png", epoch + 1)),
            )
        })?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}: train -ELBO {train_nelbo:.2} | test -ELBO {test_nelbo:.2}, IWAE(K={K}) -log p(x) {test_iwae:.2} nats | train {train_secs:.1} s, total {secs:.1} s",
            epoch + 1
        );
        history.push(
            json!({"epoch": epoch + 1, "train_neg_elbo": train_nelbo, "test_neg_elbo": test_nelbo,
            "test_iwae_neg_log_px": test_iwae, "train_seconds": train_secs, "seconds": secs}),
        );
        for (c, v) in curve.iter_mut().zip([train_nelbo, test_nelbo, test_iwae]) {
            c.push(v);
        }
        save_curves(&out.join("curves.png"), &curve, iw_n)?;
    }

    no_grad(|| -> anyhow::Result<()> {
        let x = first_images(&dev, el.dataset(), 16)?;
        let y = vae.reconstruct(&x)?;
        let rows = Tensor::concat(
            &[
                &x.narrow(0, 0, 8)?,
                &y.narrow(0, 0, 8)?,
                &x.narrow(0, 8, 8)?,
                &y.narrow(0, 8, 8)?,
            ],
            0,
        )?;
        let labels = ["input", "output", "input", "output"].map(String::from);
        save_grid(
            &rows,
            8,
            (0.0, 1.0),
            "test images and their reconstructions",
            &labels,
            &out.join("reconstructions.png"),
        )?;
        let mut strips = vec![];
        for (a, b) in [(0, 1), (2, 3), (4, 5), (6, 7)] {
            strips.push(vae.interpolate(&x.narrow(0, a, 1)?, &x.narrow(0, b, 1)?, 10)?);
        }
        let refs: Vec<&Tensor> = strips.iter().collect();
        save_grid(
            &Tensor::concat(&refs, 0)?,
            10,
            (0.0, 1.0),
            "decoded from 10 points between two test images' posterior means",
            &[],
            &out.join("interpolation.png"),
        )?;
        // first two latent dimensions of the posterior means
        let mut xy = vec![];
        let mut labels = vec![];
        for batch in el.epoch(0) {
            let b = batch?;
            let (mu, _) = vae.encode(&b.images, false)?;
            let mu = mu.narrow(1, 0, 2.min(latent))?;
            xy.extend(mu.to_vec::<f32>()?);
            labels.extend(b.indices.iter().map(|&i| el.dataset().labels()[i]));
        }
        if latent >= 2 {
            scatter(
                &out.join("latent_scatter.png"),
                "test images' posterior means",
                ("z1", "z2"),
                &xy,
                &labels,
                &class_names(),
                520,
            )?;
        }
        Ok(())
    })?;
    let metrics = json!({
        "model": format!("vae-{}", args.arch),
        "latent": latent,
        "epochs": epochs,
        "train_images": tl.dataset().len(),
        "test_images": el.dataset().len(),
        "iwae_images": iw_n,
        "iwae_k": K,
        "train_neg_elbo": train_nelbo,
        "test_neg_elbo": test_nelbo,
        "test_iwae_neg_log_px": test_iwae,
        "seconds": t0.elapsed().as_secs_f64(),
        "curves_png": out.join("curves.png").display().to_string(),
        "history": history,
    });
    finish(out, metrics, &["history"])?;
    Ok(())
}

/// The training and test negative ELBO and the test IWAE estimate of -log p(x) (on the
/// first `iw_n` test images), per epoch.
fn save_curves(path: &std::path::Path, c: &[Vec<f64>; 3], iw_n: usize) -> anyhow::Result<()> {
    curves(
        path,
        "epoch",
        &[Panel {
            title: "vae: negative ELBO and IWAE bound".into(),
            y_label: "nats per image".into(),
            series: vec![
                Series::per_epoch("training -ELBO", c[0].iter().copied()),
                Series::per_epoch("test -ELBO", c[1].iter().copied()),
                Series::per_epoch(
                    &format!("test IWAE -log p(x), K={K}, {iw_n} images"),
                    c[2].iter().copied(),
                ),
            ],
        }],
    )
}
