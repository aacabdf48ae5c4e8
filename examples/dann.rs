//! Domain adaptation by gradient reversal (DANN, Ganin and Lempitsky) from Fashion-MNIST to
//! a shifted domain derived from it (`--target`): `texture`, MNIST-M's construction in
//! grey (every pixel `|x - b|` with `b` a random patch of a fixed value-noise texture), or
//! `inverted` (`255 - x` plus Gaussian noise of `--noise`). The target's labels are used
//! only to measure accuracy.
//!
//! `cargo run --release --example dann -- --epochs 10`. The training images are split in
//! two halves: the first is the labelled source; the second, shifted, is the unlabelled
//! target (so no image is seen in both domains). The test set, shifted with another seed,
//! is the target test set. Two runs with the same network, seed, optimizer and number of
//! steps: source-only (cross-entropy on the source) and DANN (plus the domain loss behind
//! `grad_reverse`, whose lambda rises as `2 / (1 + exp(-10 p)) - 1` over the run's progress
//! `p`). Writes under `--out` (default `out/dann`): `features_source_only.png` and
//! `features_dann.png` (the two principal components of the features of 1,000 source and
//! 1,000 target test images, coloured by domain), `target_examples.png`, `curves.png`
//! (target test accuracy per epoch, both runs) and `metrics.json`; the last stdout line is
//! a JSON object of final metrics.

mod common;

use std::time::Instant;

use cinder::data::{DataLoader, Dataset, Transform, shift};
use cinder::models::classical::Pca;
use cinder::models::train::{check_finite_state, ensure_finite, evaluate};
use cinder::models::{Dann, dann_lambda};
use cinder::nn::VarStore;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;
use common::classify::channel_stats;
use common::generative::{first_images, load, loader, save_grid};
use common::plot::{Panel, Series, curves, scatter};
use common::{cli, ensure_dir, finish, optimizer, progress, schedule};
use serde_json::json;

/// The seed offsets of the two shifted sets' noise.
const TRAIN_SHIFT_SEED: u64 = 1_000;
const TEST_SHIFT_SEED: u64 = 2_000;
/// Test images per domain in the feature pictures.
const PICTURE_IMAGES: usize = 1_000;
/// The lambda schedule's gamma (the paper's 10).
const GAMMA: f64 = 10.0;

struct Domains {
    source: Dataset,
    target: Dataset,
    source_test: Dataset,
    target_test: Dataset,
    /// Mean and standard deviation of the source and the target training images: each
    /// domain is standardized by its own (the target's from its unlabelled images), in
    /// both runs.
    source_stats: (f32, f32),
    target_stats: (f32, f32),
}

/// The mean and standard deviation of `d`'s pixels in `[0, 1]` (one channel).
fn stats(d: &Dataset) -> (f32, f32) {
    let (m, s) = channel_stats(d);
    (m[0], s[0])
}

/// Batches of `d` standardized by `(mean, std)`, shuffled when `seed` is given.
fn batches(
    dev: &Device,
    d: &Dataset,
    (mean, std): (f32, f32),
    batch: usize,
    seed: Option<u64>,
) -> anyhow::Result<DataLoader> {
    let l = loader(dev, d.clone(), batch, seed, false)?;
    Ok(l.transforms(vec![Transform::Normalize {
        mean: vec![mean],
        std: vec![std],
    }]))
}

/// One run's outcome.
struct Run {
    target_accuracy: f32,
    source_accuracy: f32,
    label_loss: f64,
    domain_loss: f64,
    curve: Vec<f64>,
    history: Vec<serde_json::Value>,
    seconds: f64,
    /// The 2-D feature projection of the picture's images (source first).
    projection: Vec<f32>,
}

fn accuracy(net: &Dann, dev: &Device, d: &Dataset, norm: (f32, f32)) -> anyhow::Result<f32> {
    Ok(evaluate(net, &batches(dev, d, norm, 500, None)?)?
        .0
        .accuracy)
}

/// The two principal components of the features of the first [`PICTURE_IMAGES`] source and
/// target test images (source rows first), flat `[x0, y0, x1, y1, ...]`.
fn projection(net: &Dann, dev: &Device, dom: &Domains, seed: u64) -> anyhow::Result<Vec<f32>> {
    let f = no_grad(|| -> anyhow::Result<Tensor> {
        let mut parts = vec![];
        for (d, (m, sd)) in [
            (&dom.source_test, dom.source_stats),
            (&dom.target_test, dom.target_stats),
        ] {
            let n = d.len().min(PICTURE_IMAGES);
            let x = first_images(dev, d, n)?.affine(1.0 / sd, -m / sd)?;
            // in batches of 250: the first convolution of 2,000 images is past lavapipe's
            // 128 MiB binding
            for s in (0..n).step_by(250) {
                parts.push(net.features(&x.narrow(0, s, 250.min(n - s))?)?);
            }
        }
        Ok(Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0)?)
    })?;
    let mut pca = Pca::new(2).with_seed(seed);
    pca.fit(&f)?;
    Ok(pca.transform(&f)?.to_vec::<f32>()?)
}

/// Trains a fresh network for `epochs` with the domain term (`adapt`) or on the source
/// alone, evaluating on both test sets after every epoch.
fn train(args: &cli::Dann, dev: &Device, dom: &Domains, adapt: bool) -> anyhow::Result<Run> {
    let (seed, epochs, batch) = (args.common.seed, args.train.epochs(), args.train.batch_size);
    let name = if adapt { "dann" } else { "source-only" };
    let vs = VarStore::new(dev, seed);
    let net = Dann::new(&vs.root(), dom.source.image_shape(), dom.source.classes())?;
    let src = batches(dev, &dom.source, dom.source_stats, batch, Some(seed))?;
    let tgt = batches(dev, &dom.target, dom.target_stats, batch, Some(seed + 1))?;
    let steps = src.num_batches();
    let total = (epochs * steps) as f64;
    let mut opt = optimizer(&args.optim, args.train.lr, &vs)?;
    let mut sched = schedule(&args.optim, opt.as_mut(), epochs * steps, 0)?;
    let (mut curve, mut history) = (vec![], vec![]);
    let (mut label_loss, mut domain_loss) = (f64::NAN, f64::NAN);
    let (mut target_accuracy, mut source_accuracy) = (f32::NAN, f32::NAN);
    let mut target_epoch = 0u64;
    let mut target_batches = tgt.epoch(target_epoch);
    let t0 = Instant::now();
    let mut step = 0usize;
    for epoch in 0..epochs {
        let start = Instant::now();
        let pb = progress(steps, format!("{name} epoch {}/{epochs}", epoch + 1));
        let (mut lsum, mut dsum): (Option<Tensor>, Option<Tensor>) = (None, None);
        let mut lambda = 0.0;
        for (i, b) in src.epoch(epoch as u64).enumerate() {
            let b = b?;
            let t = match target_batches.next() {
                Some(t) => t?,
                None => {
                    target_epoch += 1;
                    target_batches = tgt.epoch(target_epoch);
                    target_batches
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("the target set has no batch"))??
                }
            };
            lambda = dann_lambda(step as f64 / total, GAMMA);
            let l = net.loss(&b.images, &b.labels, &t.images, adapt.then_some(lambda))?;
            opt.zero_grad();
            l.total.backward()?;
            opt.step()?;
            if let Some(s) = sched.as_mut() {
                s.step_optimizer(opt.as_mut())?;
            }
            let add = |s: Option<Tensor>, v: &Tensor| -> cinder::Result<Option<Tensor>> {
                Ok(Some(match s {
                    Some(s) => s.add(&v.detach())?,
                    None => v.detach(),
                }))
            };
            lsum = add(lsum, &l.label)?;
            dsum = add(dsum, &l.domain)?;
            step += 1;
            pb.inc(1);
            if (i + 1).is_multiple_of(20) {
                let m = lsum.as_ref().map_or(Ok(0.0), |s| s.item())? / (i + 1) as f32;
                let what = format!(
                    "the mean label loss after batch {} of epoch {}",
                    i + 1,
                    epoch + 1
                );
                let dm = dsum.as_ref().map_or(Ok(0.0), |s| s.item())? / (i + 1) as f32;
                pb.set_message(format!(
                    "label {:.4} domain {dm:.4} lambda {lambda:.3}",
                    ensure_finite(&what, m)?
                ));
            }
        }
        pb.finish_and_clear();
        label_loss = lsum.map_or(Ok(0.0), |s| s.item())? as f64 / steps as f64;
        domain_loss = dsum.map_or(Ok(0.0), |s| s.item())? as f64 / steps as f64;
        ensure_finite(
            &format!("the mean loss of epoch {}", epoch + 1),
            label_loss as f32,
        )?;
        check_finite_state(&vs)?;
        target_accuracy = accuracy(&net, dev, &dom.target_test, dom.target_stats)?;
        source_accuracy = accuracy(&net, dev, &dom.source_test, dom.source_stats)?;
        let secs = start.elapsed().as_secs_f64();
        let domain = if adapt {
            format!(" domain loss {domain_loss:.4} (lambda {lambda:.3}) |")
        } else {
            String::new()
        };
        println!(
            "{name} epoch {:>2}: label loss {label_loss:.4} |{domain} test accuracy: target {target_accuracy:.4}, source {source_accuracy:.4} | {secs:.1} s",
            epoch + 1
        );
        history.push(json!({
            "epoch": epoch + 1, "label_loss": label_loss, "domain_loss": domain_loss,
            "lambda": lambda, "target_test_accuracy": target_accuracy,
            "source_test_accuracy": source_accuracy, "seconds": secs,
        }));
        curve.push(target_accuracy as f64);
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Run {
        target_accuracy,
        source_accuracy,
        label_loss,
        domain_loss,
        curve,
        history,
        seconds,
        projection: projection(&net, dev, dom, seed)?,
    })
}

fn main() -> anyhow::Result<()> {
    let args: cli::Dann = cli::parse("dann");
    let (out, seed) = (&args.common.out, args.common.seed);
    ensure_dir(out)?;
    let dev = Device::default()?;
    let (train_set, test) = load(&args.common, args.test.test_limit)?;
    if train_set.len() < 2 {
        anyhow::bail!(
            "dann needs at least 2 training images (one per domain), got {}",
            train_set.len()
        );
    }
    let half = train_set.len() / 2;
    let idx: Vec<usize> = (0..train_set.len()).collect();
    let target_part = train_set.subset(&idx[half..])?;
    let (target, target_test, what) = match args.target.as_str() {
        "background" => {
            let tex = shift::texture(seed);
            (
                shift::over_texture(&target_part, &tex, args.contrast, seed + TRAIN_SHIFT_SEED)?,
                shift::over_texture(&test, &tex, args.contrast, seed + TEST_SHIFT_SEED)?,
                format!("image over {} x texture patch", args.contrast),
            )
        }
        "inverted" => (
            shift::inverted_with_noise(&target_part, args.noise, seed + TRAIN_SHIFT_SEED)?,
            shift::inverted_with_noise(&test, args.noise, seed + TEST_SHIFT_SEED)?,
            format!("inverted, noise {}", args.noise),
        ),
        _ => {
            let tex = shift::texture(seed);
            (
                shift::blended_with_texture(&target_part, &tex, seed + TRAIN_SHIFT_SEED)?,
                shift::blended_with_texture(&test, &tex, seed + TEST_SHIFT_SEED)?,
                "|image - texture patch|".to_string(),
            )
        }
    };
    let source = train_set.subset(&idx[..half])?;
    let dom = Domains {
        source_stats: stats(&source),
        target_stats: stats(&target),
        source,
        target,
        target_test,
        source_test: test,
    };
    println!(
        "dann: source {} labelled images, target {} unlabelled ({what}), {} test images per domain; {} epochs of {} steps; adapter {}",
        dom.source.len(),
        dom.target.len(),
        dom.source_test.len(),
        args.train.epochs(),
        dom.source.len().div_ceil(args.train.batch_size),
        dev.adapter_info().name
    );
    let shown = 12.min(dom.source_test.len());
    let pair = Tensor::concat(
        &[
            &first_images(&dev, &dom.source_test, shown)?,
            &first_images(&dev, &dom.target_test, shown)?,
        ],
        0,
    )?;
    save_grid(
        &pair,
        shown,
        (0.0, 1.0),
        "test images: source (top) and target domain (bottom)",
        &["source".into(), "target".into()],
        &out.join("target_examples.png"),
    )?;
    let base = train(&args, &dev, &dom, false)?;
    let dann = train(&args, &dev, &dom, true)?;
    let domains = [
        "source (Fashion-MNIST)".to_string(),
        format!("target ({})", args.target),
    ];
    let n_pic = dom.source_test.len().min(PICTURE_IMAGES);
    let colours: Vec<u8> = (0..2 * n_pic).map(|i| (i >= n_pic) as u8).collect();
    for (run, file, what) in [
        (&base, "features_source_only.png", "source-only"),
        (&dann, "features_dann.png", "DANN"),
    ] {
        scatter(
            &out.join(file),
            &format!("{what} features of test images (2 principal components)"),
            ("PC 1", "PC 2"),
            &run.projection,
            &colours,
            &domains,
            520,
        )?;
    }
    curves(
        &out.join("curves.png"),
        "epoch",
        &[Panel {
            title: "target-domain test accuracy".into(),
            y_label: "accuracy".into(),
            series: vec![
                Series::per_epoch("source-only", base.curve.iter().copied()),
                Series::per_epoch("DANN", dann.curve.iter().copied()),
            ],
        }],
    )?;
    println!(
        "target test accuracy: source-only {:.4}, DANN {:.4} ({:+.2} points)",
        base.target_accuracy,
        dann.target_accuracy,
        100.0 * (dann.target_accuracy - base.target_accuracy)
    );
    let run_json = |r: &Run| {
        json!({
            "target_test_accuracy": r.target_accuracy,
            "source_test_accuracy": r.source_accuracy,
            "label_loss": r.label_loss,
            "domain_loss": r.domain_loss,
            "seconds": r.seconds,
            "history": r.history,
        })
    };
    let metrics = json!({
        "model": "dann",
        "target_domain": args.target,
        "noise": if args.target == "inverted" { json!(args.noise) } else { json!(null) },
        "contrast": if args.target == "background" { json!(args.contrast) } else { json!(null) },
        "epochs": args.train.epochs(),
        "source_images": dom.source.len(),
        "target_images": dom.target.len(),
        "test_images": dom.source_test.len(),
        "source_only_target_accuracy": base.target_accuracy,
        "dann_target_accuracy": dann.target_accuracy,
        "gain_points": 100.0 * (dann.target_accuracy - base.target_accuracy),
        "source_only": run_json(&base),
        "dann": run_json(&dann),
    });
    finish(out, metrics, &["source_only", "dann"])?;
    Ok(())
}
