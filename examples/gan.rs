//! Trains a GAN on Fashion-MNIST: `--arch mlp|dcgan`, `--loss minimax|nonsaturating|wgan|
//! wgan-gp|lsgan|hinge` (5 critic steps per generator step for the two WGANs, 1 otherwise)
//! and `--conditional` (a label embedding concatenated to z and to D's input).
//!
//! `cargo run --release --example gan -- --epochs 10 --arch dcgan --loss nonsaturating
//!  --conditional --lr 2e-4 [--classifier out/lenet_mnist/best.safetensors]`. With a LeNet-5
//! checkpoint from the `lenet_mnist` example, 100 samples per class are labelled by it:
//! the share labelled as the class they were conditioned on (mean over classes) and the
//! number of classes the samples cover are reported. Writes under `--out` (default `out/gan`):
//! `samples_epoch{E}.png` (the same z every epoch; when conditional, row r is class r,
//! named), `curves.png` (the discriminator's and generator's losses per epoch),
//! `metrics.json`; the last stdout line is a JSON object of final metrics.

mod common;

use std::time::Instant;

use cinder::models::LeNet5;
use cinder::models::gan::dcgan_init;
use cinder::models::train::{check_finite_state, ensure_finite};
use cinder::models::{Discriminator, GanArch, GanConfig, GanTrainer, Generator, Objective};
use cinder::nn::VarStore;
use cinder::nn::optim::{Adam, AdamConfig};
use cinder::nn::{Module, loss::GanLoss};
use cinder::prelude::*;
use common::classify::channel_stats;
use common::generative::{class_names, load_train, loader, save_grid};
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish, progress};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let args: cli::Gan = cli::parse("gan");
    let (out, seed, epochs) = (&args.common.out, args.common.seed, args.train.epochs());
    ensure_dir(out)?;
    let dev = Device::default()?;
    let train = load_train(&args.common)?;
    let (mean, std) = channel_stats(&train);
    let image = train.image_shape();
    let latent = args.latent;
    let arch = match args.arch.as_str() {
        "mlp" => GanArch::Mlp { hidden: 256 },
        "dcgan" => GanArch::Dcgan { width: 32 },
        a => anyhow::bail!("unknown --arch {a} (mlp or dcgan)"),
    };
    let objective = Objective::parse(&args.loss)?;
    let n_critic = if objective.loss == GanLoss::Wgan {
        5
    } else {
        1
    };
    let cfg = GanConfig {
        arch,
        image,
        latent,
        classes: args.conditional.then_some(10),
        embed: 16,
    };
    let (gvs, dvs) = (VarStore::new(&dev, seed), VarStore::new(&dev, seed + 1));
    let g = Generator::new(&gvs.root(), cfg.clone())?;
    let d = Discriminator::new(&dvs.root(), cfg.clone())?;
    if let GanArch::Dcgan { .. } = arch {
        dcgan_init(&gvs, seed + 2)?;
        dcgan_init(&dvs, seed + 3)?;
    }
    let batch_size = args.train.batch_size;
    let tl = loader(&dev, train, batch_size, Some(seed), true)?.drop_last(true);
    if tl.num_batches() == 0 {
        anyhow::bail!(
            "{} training images make no full batch of --batch-size {} (the GAN drops a last, \
             smaller batch): raise --limit or lower --batch-size",
            tl.dataset().len(),
            batch_size
        );
    }
    println!(
        "gan ({}, loss {}, n_critic {n_critic}, conditional {}): {} train images; G {} / D {} parameters; adapter {}",
        args.arch,
        args.loss,
        args.conditional,
        tl.dataset().len(),
        gvs.num_parameters(),
        dvs.num_parameters(),
        dev.adapter_info().name
    );
    let adam = |vs: &VarStore| {
        Adam::new(
            vs.parameters(),
            AdamConfig {
                lr: args.train.lr,
                betas: (0.5, 0.999),
                ..Default::default()
            },
        )
    };
    let (mut g_opt, mut d_opt) = (adam(&gvs)?, adam(&dvs)?);
    let trainer = GanTrainer {
        objective,
        n_critic,
        seed: seed ^ 0x6A,
    };
    // fixed z for the per-epoch grids: 10 x 10, row r = class r when conditional
    let z_fixed = Tensor::rand_normal(&dev, &[100, latent], 0.0, 1.0, 4242, 0)?;
    let row_labels: Vec<u32> = (0..100).map(|i| i / 10).collect();
    let row_labels = Tensor::from_slice(&dev, &row_labels, &[100])?;
    let fixed_labels = args.conditional.then_some(&row_labels);
    let rows = if args.conditional {
        class_names()
    } else {
        vec![]
    };
    let mut history = vec![];
    let (mut dl, mut gl) = (f32::NAN, f32::NAN);
    let t0 = Instant::now();
    let mut step = 0u64;
    let (mut d_curve, mut g_curve) = (vec![], vec![]);
    for epoch in 0..epochs {
        let start = Instant::now();
        let pb = progress(tl.num_batches(), format!("epoch {}/{epochs}", epoch + 1));
        let (mut dsum, mut dn, mut gsum, mut gn) = (0f32, 0usize, 0f32, 0usize);
        let last = tl.num_batches().saturating_sub(1);
        for (i, batch) in tl.epoch(epoch as u64).enumerate() {
            let b = batch?;
            let x = b.images;
            let y = b.labels;
            let labels = args.conditional.then_some(&y);
            let s = trainer.step(&g, &d, &mut g_opt, &mut d_opt, &x, labels, step)?;
            step += 1;
            pb.inc(1);
            if step.is_multiple_of(10) || i == last {
                let at =
                    |who: &str| format!("the {who} loss at step {} of epoch {}", i + 1, epoch + 1);
                dsum += ensure_finite(&at("discriminator"), s.d_loss.item()?)?;
                dn += 1;
                if let Some(l) = &s.g_loss {
                    gsum += ensure_finite(&at("generator"), l.item()?)?;
                    gn += 1;
                }
                pb.set_message(format!(
                    "D {:.3} G {:.3}",
                    dsum / dn as f32,
                    gsum / gn.max(1) as f32
                ));
            }
        }
        pb.finish_and_clear();
        check_finite_state(&gvs)?;
        check_finite_state(&dvs)?;
        // the epoch's losses, averaged over every 10th step and its last (NaN, written as
        // null, when no generator step was sampled)
        let mean = |sum: f32, n: usize| if n == 0 { f32::NAN } else { sum / n as f32 };
        dl = mean(dsum, dn);
        gl = mean(gsum, gn);
        let grid = no_grad(|| g.forward(&z_fixed, fixed_labels, true))?;
        let title = if args.conditional {
            format!("samples, epoch {} (row: the class asked for)", epoch + 1)
        } else {
            format!("samples, epoch {}", epoch + 1)
        };
        save_grid(
            &grid,
            10,
            (-1.0, 1.0),
            &title,
            &rows,
            &out.join(format!("samples_epoch{}.png", epoch + 1)),
        )?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}: D loss {dl:.4}, G loss {gl:.4} (every 10th and the last step) | {secs:.1} s",
            epoch + 1
        );
        history.push(json!({"epoch": epoch + 1, "d_loss": dl, "g_loss": gl, "seconds": secs}));
        d_curve.push(dl as f64);
        g_curve.push(gl as f64);
        save_curves(&out.join("curves.png"), &args.loss, &d_curve, &g_curve)?;
    }

    // class accuracy of generated samples by a LeNet-5 classifier
    let mut class_metrics = serde_json::Value::Null;
    if let Some(path) = &args.classifier {
        let cvs = VarStore::new(&dev, 0);
        let lenet = LeNet5::new(&cvs.root(), 1, 10)?;
        cvs.load(path)?;
        let per = 100usize;
        let labels: Vec<u32> = (0..10 * per as u32).map(|i| i / per as u32).collect();
        let lab = Tensor::from_slice(&dev, &labels, &[10 * per])?;
        let z = Tensor::rand_normal(&dev, &[10 * per, latent], 0.0, 1.0, 31337, 0)?;
        let preds: Vec<u32> = no_grad(|| -> anyhow::Result<Vec<u32>> {
            let x = g.forward(&z, args.conditional.then_some(&lab), true)?;
            // [-1, 1] -> [0, 1] -> the classifier's normalization
            let x = x
                .add_scalar(1.0)?
                .mul_scalar(0.5)?
                .sub_scalar(mean[0])?
                .div_scalar(std[0])?;
            Ok(lenet.forward(&x)?.argmax_axis(1, false)?.to_vec::<u32>()?)
        })?;
        let mut counts = [0usize; 10];
        for &p in &preds {
            counts[p as usize] += 1;
        }
        let covered = counts.iter().filter(|&&c| c > 0).count();
        let per_class: Vec<f32> = (0..10)
            .map(|c| {
                (0..per).filter(|&i| preds[c * per + i] == c as u32).count() as f32 / per as f32
            })
            .collect();
        let acc = per_class.iter().sum::<f32>() / 10.0;
        println!(
            "classifier on {} samples: {} of 10 classes covered (counts {counts:?}){}",
            10 * per,
            covered,
            if args.conditional {
                format!("; conditioned class recognized {acc:.3} (per class {per_class:?})")
            } else {
                String::new()
            }
        );
        class_metrics = json!({"classes_covered": covered, "class_counts": counts,
            "conditional_accuracy": if args.conditional { json!(acc) } else { serde_json::Value::Null },
            "per_class_accuracy": if args.conditional { json!(per_class) } else { serde_json::Value::Null }});
    }
    let metrics = json!({
        "model": format!("gan-{}", args.arch),
        "loss": args.loss,
        "n_critic": n_critic,
        "conditional": args.conditional,
        "epochs": epochs,
        "train_images": tl.dataset().len(),
        "d_loss": dl,
        "g_loss": gl,
        "classifier": class_metrics,
        "seconds": t0.elapsed().as_secs_f64(),
        "curves_png": out.join("curves.png").display().to_string(),
        "history": history,
    });
    finish(out, metrics, &["history"])?;
    Ok(())
}

/// The discriminator's and the generator's losses per epoch (means over every 10th step
/// and the last).
fn save_curves(path: &std::path::Path, loss: &str, d: &[f64], g: &[f64]) -> anyhow::Result<()> {
    curves(
        path,
        "epoch",
        &[Panel {
            title: format!("gan: {loss} losses"),
            y_label: "loss (mean of every 10th step)".into(),
            series: vec![
                Series::per_epoch("discriminator", d.iter().copied()),
                Series::per_epoch("generator", g.iter().copied()),
            ],
        }],
    )
}
