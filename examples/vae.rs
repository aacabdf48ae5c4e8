//! Trains a variational autoencoder on Fashion-MNIST (the 784-400-20 MLP with a Bernoulli
//! decoder by default, or `--arch conv`) and reports, per epoch, the test negative ELBO
//! and the K = 100 importance-weighted estimate of -log p(x).
//!
//! `cargo run --release --example vae -- --epochs 10 [--latent 20] [--arch conv]
//!  [--test-limit N]`. The IWAE estimate runs on the first 1,000 test images (fewer with
//! --test-limit). Writes under `--out`: `samples_epoch{E}.png` (64 samples from the prior,
//! the same z every epoch), `reconstructions.png` (rows of inputs, then reconstructions),
//! `interpolation.png` (each row decodes 10 points between two test images' posterior
//! means), `latent_scatter.png` (the first two latent dimensions of the test images'
//! posterior means, coloured by class), `metrics.json`; the last stdout line is a JSON
//! object of final metrics.

mod common;

use std::time::Instant;

use cinder::models::train::check_finite_state;
use cinder::models::{Likelihood, Vae, VaeArch, VaeConfig};
use cinder::nn::VarStore;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;
use clap::Parser;
use common::generative::{first_images, load, loader, save_grid, scatter, train_epoch};
use common::{Args, ensure_dir, finish, optimizer, schedule};
use serde_json::json;

const K: usize = 100;
const IWAE_IMAGES: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.refuse_resume("vae")?;
    ensure_dir(&args.out)?;
    let dev = Device::default()?;
    let (train, test) = load(&args)?;
    let image = train.image_shape();
    let latent = args.latent.unwrap_or(20);
    let arch = match args.arch.as_str() {
        "mlp" => VaeArch::Mlp { hidden: 400 },
        "conv" => VaeArch::Conv { width: 16 },
        a => anyhow::bail!("unknown --arch {a} (mlp or conv)"),
    };
    let vs = VarStore::new(&dev, args.seed);
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
    let tl = loader(&dev, train, args.batch_size, Some(args.seed), false)?;
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
    let mut opt = optimizer(&args, &vs)?;
    let mut sched = schedule(&args, opt.as_mut(), args.epochs() * tl.num_batches(), 0)?;
    let iw_x = first_images(&dev, el.dataset(), iw_n)?;
    let mut history = vec![];
    let (mut train_nelbo, mut test_nelbo, mut test_iwae) = (f64::NAN, f64::NAN, f64::NAN);
    let t0 = Instant::now();
    let mut step = 0u64;
    for epoch in 0..args.epochs() {
        let start = Instant::now();
        let train_nelbo_epoch = train_epoch(
            &tl,
            epoch,
            args.epochs(),
            opt.as_mut(),
            sched.as_mut().map(|s| s as &mut dyn LrScheduler),
            &mut step,
            "-elbo",
            |x, step| {
                let e = vae.elbo(x, args.seed ^ 0x5AE, step)?;
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
                let x = Tensor::from_data(b.images);
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
                &args.out.join(format!("samples_epoch{}.png", epoch + 1)),
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
        save_grid(&rows, 8, (0.0, 1.0), &args.out.join("reconstructions.png"))?;
        let mut strips = vec![];
        for (a, b) in [(0, 1), (2, 3), (4, 5), (6, 7)] {
            strips.push(vae.interpolate(&x.narrow(0, a, 1)?, &x.narrow(0, b, 1)?, 10)?);
        }
        let refs: Vec<&Tensor> = strips.iter().collect();
        save_grid(
            &Tensor::concat(&refs, 0)?,
            10,
            (0.0, 1.0),
            &args.out.join("interpolation.png"),
        )?;
        // first two latent dimensions of the posterior means
        let mut xy = vec![];
        let mut labels = vec![];
        for batch in el.epoch(0) {
            let b = batch?;
            let (mu, _) = vae.encode(&Tensor::from_data(b.images), false)?;
            let mu = mu.narrow(1, 0, 2.min(latent))?;
            xy.extend(mu.to_vec::<f32>()?);
            labels.extend(b.indices.iter().map(|&i| el.dataset().labels()[i]));
        }
        if latent >= 2 {
            scatter(&xy, &labels, 480, &args.out.join("latent_scatter.png"))?;
        }
        Ok(())
    })?;
    let metrics = json!({
        "model": format!("vae-{}", args.arch),
        "latent": latent,
        "epochs": args.epochs(),
        "train_images": tl.dataset().len(),
        "test_images": el.dataset().len(),
        "iwae_images": iw_n,
        "iwae_k": K,
        "train_neg_elbo": train_nelbo,
        "test_neg_elbo": test_nelbo,
        "test_iwae_neg_log_px": test_iwae,
        "seconds": t0.elapsed().as_secs_f64(),
        "history": history,
    });
    finish(&args, metrics, &["history"])?;
    Ok(())
}
