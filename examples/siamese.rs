//! Trains a Siamese network on Fashion-MNIST pairs with the contrastive loss and reports the
//! k-nearest-neighbour accuracy (k = 5) of the test images in the learned embedding, with the
//! training images as reference.
//!
//! `cargo run --release --example siamese -- --epochs 5 [--latent 2]`. Each epoch draws as
//! many pairs as there are training images, 1:1 similar:dissimilar, margin 1. Writes under
//! `--out`: `embedding.png` (with `--latent 2`, the test images' embedding coloured by class;
//! otherwise its first two dimensions), `metrics.json`; the last stdout line is a JSON object
//! of final metrics.

mod common;

use std::time::Instant;

use cinder::data::Dataset;
use cinder::models::siamese::Pair;
use cinder::models::train::{check_finite_state, ensure_finite};
use cinder::models::{PairSampler, Siamese, knn_accuracy};
use cinder::nn::schedule::LrScheduler;
use cinder::nn::{Module, VarStore};
use cinder::prelude::*;
use clap::Parser;
use common::generative::{load, loader, scatter};
use common::{Args, ensure_dir, finish, optimizer, progress, schedule};
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
            out.extend(
                net.forward(&Tensor::from_data(b?.images))?
                    .to_vec::<f32>()?,
            );
        }
        Ok(())
    })?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.refuse_resume("siamese")?;
    ensure_dir(&args.out)?;
    let dev = Device::default()?;
    let (train, test) = load(&args)?;
    let dim = args.latent.unwrap_or(2);
    let vs = VarStore::new(&dev, args.seed);
    let net = Siamese::new(&vs.root(), train.image_shape(), 16, dim)?;
    let mut sampler = PairSampler::new(train.labels(), 1, 1, args.seed)?;
    let steps = train.len().div_ceil(args.batch_size);
    println!(
        "siamese (embedding {dim}, margin {MARGIN}): {} train, {} test images, {steps} pair batches of {} per epoch; {} parameters; adapter {}",
        train.len(),
        test.len(),
        args.batch_size,
        vs.num_parameters(),
        dev.adapter_info().name
    );
    let mut opt = optimizer(&args, &vs)?;
    let mut sched = schedule(&args, opt.as_mut(), args.epochs() * steps, 0)?;
    let mut history = vec![];
    let (mut loss, mut acc) = (f32::NAN, f32::NAN);
    let t0 = Instant::now();
    for epoch in 0..args.epochs() {
        let start = Instant::now();
        let pb = progress(steps, format!("epoch {}/{}", epoch + 1, args.epochs()));
        let mut sum: Option<Tensor> = None;
        for i in 0..steps {
            let (a, b, y) = pair_batch(&dev, &train, &sampler.sample(args.batch_size))?;
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
        scatter(&xy, test.labels(), 480, &args.out.join("embedding.png"))?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}: train contrastive loss {loss:.4} | test {K}-NN accuracy {acc:.4} | train {train_secs:.1} s, total {secs:.1} s",
            epoch + 1
        );
        history.push(json!({"epoch": epoch + 1, "train_loss": loss, "test_knn_accuracy": acc, "seconds": secs}));
    }
    let metrics = json!({
        "model": "siamese",
        "embedding": dim,
        "margin": MARGIN,
        "k": K,
        "epochs": args.epochs(),
        "train_images": train.len(),
        "test_images": test.len(),
        "train_loss": loss,
        "test_knn_accuracy": acc,
        "seconds": t0.elapsed().as_secs_f64(),
        "history": history,
    });
    finish(&args, metrics, &["history"])?;
    Ok(())
}
