//! Trains a Siamese network on Fashion-MNIST pairs with the contrastive loss and reports the
//! k-nearest-neighbour accuracy (k = 5) of the test images in the learned embedding, with the
//! training images as reference.
//!
//! `cargo run --release --example siamese -- --epochs 5 [--latent 2]`. Each epoch draws as
//! many pairs as there are training images, 1:1 similar:dissimilar, margin 1. Writes under
//! `--out` (default `out/siamese`): `embedding.png` (the test images' embedding, or its
//! first two dimensions, coloured by class with a legend of class names), `curves.png`
//! (training loss and test k-NN accuracy per epoch), `metrics.json`; the last stdout line
//! is a JSON object of final metrics.

mod common;

use std::time::Instant;

use cinder::data::Dataset;
use cinder::models::siamese::Pair;
use cinder::models::train::{check_finite_state, ensure_finite};
use cinder::models::{PairSampler, Siamese, knn_accuracy};
use cinder::nn::schedule::LrScheduler;
use cinder::nn::{Module, VarStore};
use cinder::prelude::*;
use common::generative::{class_names, load, loader};
use common::plot::{Panel, Series, curves, scatter};
use common::{cli, ensure_dir, finish, optimizer, progress, schedule};
use serde_json::json;

const MARGIN: f32 = 1.0;
const K: usize = 5;

fn pair_batch(
    dev: &Device,
    d: &Dataset,
    pairs: &[Pair],
) -> anyhow::Result<(Tensor, Tensor, Tensor)> {
    let [c, h, w] = d.image_shape();
    let pick = |f: fn(&Pair) -> usize| -> anyhow::Result<Tensor> {
        let v: Vec<f32> = pairs
            .iter()
            .flat_map(|p| d.image(f(p)).iter().map(|&x| x as f32 / 255.0))
            .collect();
        Ok(Tensor::from_slice(dev, &v, &[pairs.len(), c, h, w])?)
    };
    let y: Vec<f32> = pairs
        .iter()
        .map(|p| if p.similar { 1.0 } else { 0.0 })
        .collect();
    Ok((
        pick(|p| p.a)?,
        pick(|p| p.b)?,
        Tensor::from_slice(dev, &y, &[pairs.len()])?,
    ))
}

fn embed(net: &Siamese, dev: &Device, d: &Dataset) -> anyhow::Result<Vec<f32>> {
    let l = loader(dev, d.clone(), 500, None, false)?;
    let mut out = vec![];
    no_grad(|| -> anyhow::Result<()> {
        for b in l.epoch(0) {
            out.extend(net.forward(&b?.images)?.to_vec::<f32>()?);
        }
        Ok(())
    })?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args: cli::Siamese = cli::parse("siamese");
    let (out, seed, epochs) = (&args.common.out, args.common.seed, args.train.epochs());
    let batch_size = args.train.batch_size;
    ensure_dir(out)?;
    let dev = Device::default()?;
    let (train, test) = load(&args.common, args.test.test_limit)?;
    let dim = args.latent;
    let vs = VarStore::new(&dev, seed);
    let net = Siamese::new(&vs.root(), train.image_shape(), 16, dim)?;
    let mut sampler = PairSampler::new(train.labels(), 1, 1, seed)?;
    let steps = train.len().div_ceil(batch_size);
    println!(
        "siamese (embedding {dim}, margin {MARGIN}): {} train, {} test images, {steps} pair batches of {} per epoch; {} parameters; adapter {}",
        train.len(),
        test.len(),
        batch_size,
        vs.num_parameters(),
        dev.adapter_info().name
    );
    let mut opt = optimizer(&args.optim, args.train.lr, &vs)?;
    let mut sched = schedule(&args.optim, opt.as_mut(), epochs * steps, 0)?;
    let mut history = vec![];
    let (mut loss, mut acc) = (f32::NAN, f32::NAN);
    let t0 = Instant::now();
    let (mut loss_curve, mut acc_curve) = (vec![], vec![]);
    let names = class_names();
    for epoch in 0..epochs {
        let start = Instant::now();
        let pb = progress(steps, format!("epoch {}/{epochs}", epoch + 1));
        let mut sum: Option<Tensor> = None;
        for i in 0..steps {
            let (a, b, y) = pair_batch(&dev, &train, &sampler.sample(batch_size))?;
            let l = net.pair_loss(&a, &b, &y, MARGIN, true)?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
            if let Some(s) = sched.as_mut() {
                s.step_optimizer(opt.as_mut())?;
            }
            let l = l.detach();
            sum = Some(match sum {
                Some(s) => s.add(&l)?,
                None => l,
            });
            pb.inc(1);
            if (i + 1).is_multiple_of(20) {
                let mean = sum.as_ref().map_or(Ok(0.0), |s| s.item())? / (i + 1) as f32;
                let what = format!(
                    "the mean contrastive loss after batch {} of epoch {}",
                    i + 1,
                    epoch + 1
                );
                pb.set_message(format!("loss {:.4}", ensure_finite(&what, mean)?));
            }
        }
        pb.finish_and_clear();
        loss = sum.map_or(Ok(0.0), |s| s.item())? / steps as f32;
        ensure_finite(
            &format!("the mean contrastive loss of epoch {}", epoch + 1),
            loss,
        )?;
        check_finite_state(&vs)?;
        let train_secs = start.elapsed().as_secs_f64();
        let (er, et) = (embed(&net, &dev, &train)?, embed(&net, &dev, &test)?);
        acc = knn_accuracy(&er, train.labels(), &et, test.labels(), dim, K)?;
        let xy: Vec<f32> = et
            .chunks(dim)
            .flat_map(|r| [r[0], r[1.min(dim - 1)]])
            .collect();
        let title = if dim <= 2 {
            format!("test images' embedding, epoch {}", epoch + 1)
        } else {
            format!(
                "test images' embedding (first 2 of {dim} dims), epoch {}",
                epoch + 1
            )
        };
        scatter(
            &out.join("embedding.png"),
            &title,
            ("e1", if dim >= 2 { "e2" } else { "e1" }),
            &xy,
            test.labels(),
            &names,
            520,
        )?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}: train contrastive loss {loss:.4} | test {K}-NN accuracy {acc:.4} | train {train_secs:.1} s, total {secs:.1} s",
            epoch + 1
        );
        history.push(json!({"epoch": epoch + 1, "train_loss": loss, "test_knn_accuracy": acc, "seconds": secs}));
        loss_curve.push(loss as f64);
        acc_curve.push(acc as f64);
        save_curves(&out.join("curves.png"), &loss_curve, &acc_curve)?;
    }
    let metrics = json!({
        "model": "siamese",
        "embedding": dim,
        "margin": MARGIN,
        "k": K,
        "epochs": epochs,
        "train_images": train.len(),
        "test_images": test.len(),
        "train_loss": loss,
        "test_knn_accuracy": acc,
        "seconds": t0.elapsed().as_secs_f64(),
        "curves_png": out.join("curves.png").display().to_string(),
        "history": history,
    });
    finish(out, metrics, &["history"])?;
    Ok(())
}

/// The training contrastive loss and the test k-NN accuracy, per epoch.
fn save_curves(path: &std::path::Path, loss: &[f64], acc: &[f64]) -> anyhow::Result<()> {
    curves(
        path,
        "epoch",
        &[
            Panel {
                title: "siamese: contrastive loss".into(),
                y_label: format!("contrastive loss (margin {MARGIN})"),
                series: vec![Series::per_epoch("training pairs", loss.iter().copied())],
            },
            Panel {
                title: format!("siamese: {K}-NN accuracy in the embedding"),
                y_label: "accuracy".into(),
                series: vec![Series::per_epoch(
                    "test images (training images as neighbours)",
                    acc.iter().copied(),
                )],
            },
        ],
    )
}
