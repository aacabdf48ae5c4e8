//! Trains a GAN on Fashion-MNIST: `--arch mlp|dcgan|infogan|infogan-mlp`, `--loss minimax|
//! nonsaturating|wgan|wgan-gp|lsgan|hinge|dragan|began` (5 critic steps per generator step
//! for the two WGANs, 1 otherwise) and `--conditional` (a label embedding concatenated to z
//! and to D's input).
//!
//! `cargo run --release --example gan -- --epochs 10 --arch dcgan --loss nonsaturating
//!  --conditional --lr 2e-4 [--classifier out/lenet_mnist/best.safetensors]`. With a LeNet-5
//! checkpoint from the `lenet_mnist` example, 100 samples per class are labelled by it:
//! the share labelled as the class they were conditioned on (mean over classes) and the
//! number of classes the samples cover are reported.
//!
//! - `--loss began`: the discriminator is an autoencoder (BEGAN); the balance `k_t` and the
//!   convergence measure `M` are logged per epoch (`--gamma`, `--lambda-k`).
//! - `--loss dragan`: the non-saturating loss with DRAGAN's gradient penalty around
//!   perturbed real data (lambda 10, c 0.5).
//! - `--arch infogan`: the DCGAN with a 10-way categorical code and two continuous codes
//!   (`--latent` is the noise width), a Q head on the discriminator and the mutual-
//!   information term (`infogan-mlp`: the same on the MLP GAN). It reports the purity of the categorical code against the true
//!   labels on real test images inferred by Q, and, with `--classifier`, on generated
//!   images labelled by LeNet-5.
//!
//! Writes under `--out` (default `out/gan`): `samples_epoch{E}.png` (the same z every epoch;
//! when conditional, row r is class r, named; for InfoGAN row r is categorical code r),
//! for InfoGAN `infogan_c1.png` and `infogan_c2.png` (rows: categorical code, columns: one
//! continuous code from -2 to 2, the rest fixed), `curves.png` (the losses per epoch, and
//! BEGAN's `M` and `k_t` or InfoGAN's categorical cross-entropy), `metrics.json`; the last
//! stdout line is a JSON object of final metrics.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use cinder::models::LeNet5;
use cinder::models::gan::dcgan_init;
use cinder::models::train::{check_finite_state, ensure_finite};
use cinder::models::{
    BeganDiscriminator, BeganTrainer, Discriminator, GanArch, GanConfig, GanTrainer, Generator,
    InfoGanConfig, InfoGanTrainer, Objective, QHead, Regularizer, purity,
};
use cinder::nn::VarStore;
use cinder::nn::optim::{Adam, AdamConfig};
use cinder::nn::{Module, loss::GanLoss};
use cinder::prelude::*;
use common::classify::channel_stats;
use common::generative::{class_names, load, loader, save_grid};
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish, progress};
use serde_json::json;

/// The discriminator side and its trainer.
enum Critic {
    Plain(GanTrainer, Discriminator),
    Began(BeganTrainer, BeganDiscriminator),
    Info(InfoGanTrainer, Discriminator, QHead),
}

/// The device values of one step that the epoch averages (read every 10th step).
struct Logged {
    d: Tensor,
    g: Option<Tensor>,
    extra: Vec<(&'static str, Tensor)>,
}

fn main() -> anyhow::Result<()> {
    let args: cli::Gan = cli::parse("gan");
    let (out, seed, epochs) = (&args.common.out, args.common.seed, args.train.epochs());
    ensure_dir(out)?;
    let dev = Device::default()?;
    let infogan = args.arch.starts_with("infogan");
    let began = args.loss == "began";
    if !began && (args.gamma.is_some() || args.lambda_k.is_some()) {
        anyhow::bail!("--gamma and --lambda-k are BEGAN's: they need --loss began");
    }
    if infogan && args.conditional {
        anyhow::bail!(
            "--arch infogan and infogan-mlp are unconditional: its categorical code takes the labels' place"
        );
    }
    if infogan && !["minimax", "nonsaturating", "lsgan", "hinge"].contains(&args.loss.as_str()) {
        anyhow::bail!(
            "--arch infogan and infogan-mlp take --loss minimax, nonsaturating, lsgan or hinge, not {}",
            args.loss
        );
    }
    // the test set only for InfoGAN's purity on real images
    let (train, test) = load(&args.common, None)?;
    let (mean, std) = channel_stats(&train);
    let image = train.image_shape();
    let arch = match args.arch.as_str() {
        "mlp" | "infogan-mlp" => GanArch::Mlp { hidden: 256 },
        "dcgan" | "infogan" => GanArch::Dcgan { width: 32 },
        a => anyhow::bail!("unknown --arch {a} (mlp, dcgan, infogan or infogan-mlp)"),
    };
    let info_cfg = InfoGanConfig {
        noise: args.latent,
        ..Default::default()
    };
    let latent = if infogan {
        info_cfg.latent()
    } else {
        args.latent
    };
    let objective = if began {
        None
    } else {
        Some(Objective::parse(&args.loss)?)
    };
    let n_critic = match objective {
        Some(o) if o.loss == GanLoss::Wgan => 5,
        _ => 1,
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
    let trainer_seed = seed ^ 0x6A;
    let mut critic = if began {
        let d = BeganDiscriminator::new(&dvs.root(), cfg.clone(), 64)?;
        Critic::Began(
            BeganTrainer::new(
                &dev,
                args.gamma.unwrap_or(0.5),
                args.lambda_k.unwrap_or(0.001),
                trainer_seed,
            )?,
            d,
        )
    } else if infogan {
        let d = Discriminator::new(&dvs.root(), cfg.clone())?;
        let q = QHead::new(&dvs.root().pp("q"), d.feature_width(), 128, info_cfg)?;
        let t = InfoGanTrainer {
            loss: objective.expect("not BEGAN").loss,
            config: info_cfg,
            seed: trainer_seed,
        };
        Critic::Info(t, d, q)
    } else {
        let t = GanTrainer {
            objective: objective.expect("not BEGAN"),
            n_critic,
            seed: trainer_seed,
        };
        Critic::Plain(t, Discriminator::new(&dvs.root(), cfg.clone())?)
    };
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
    // fixed z for the per-epoch grids: 10 x 10, row r = class r when conditional, or
    // categorical code r for InfoGAN (its columns then hold 10 fixed noise vectors, the
    // continuous codes at 0)
    let z_fixed = if infogan {
        let noise = Tensor::rand_normal(&dev, &[10, args.latent], 0.0, 1.0, 4242, 0)?;
        let noise = noise.to_vec::<f32>()?;
        let cells: Vec<(usize, usize, [f32; 2])> =
            (0..100).map(|i| (i / 10, i % 10, [0.0; 2])).collect();
        info_latents(&dev, &info_cfg, &noise, &cells)?
    } else {
        Tensor::rand_normal(&dev, &[100, latent], 0.0, 1.0, 4242, 0)?
    };
    let row_labels: Vec<u32> = (0..100).map(|i| i / 10).collect();
    let row_labels = Tensor::from_slice(&dev, &row_labels, &[100])?;
    let fixed_labels = args.conditional.then_some(&row_labels);
    let rows = if args.conditional {
        class_names()
    } else if infogan {
        (0..10).map(|r| format!("code {r}")).collect()
    } else {
        vec![]
    };
    let mut history = vec![];
    let mut last_means: BTreeMap<&'static str, f32> = BTreeMap::new();
    let t0 = Instant::now();
    let mut step = 0u64;
    let mut curves_of: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for epoch in 0..epochs {
        let start = Instant::now();
        let pb = progress(tl.num_batches(), format!("epoch {}/{epochs}", epoch + 1));
        // sums and counts per logged value, every 10th step and the last
        let mut sums: BTreeMap<&'static str, (f32, usize)> = BTreeMap::new();
        let last = tl.num_batches().saturating_sub(1);
        for (i, batch) in tl.epoch(epoch as u64).enumerate() {
            let b = batch?;
            let x = b.images;
            let y = b.labels;
            let labels = args.conditional.then_some(&y);
            let s = match &mut critic {
                Critic::Plain(t, d) => {
                    let s = t.step(&g, d, &mut g_opt, &mut d_opt, &x, labels, step)?;
                    let mut extra = vec![];
                    if let Some(p) = s.penalty {
                        extra.push(("gradient penalty", p));
                    }
                    Logged {
                        d: s.d_loss,
                        g: s.g_loss,
                        extra,
                    }
                }
                Critic::Began(t, d) => {
                    let s = t.step(&g, d, &mut g_opt, &mut d_opt, &x, labels, step)?;
                    Logged {
                        d: s.d_loss,
                        g: Some(s.g_loss),
                        extra: vec![("M", s.convergence), ("k", s.k), ("L(x)", s.real_loss)],
                    }
                }
                Critic::Info(t, d, q) => {
                    let s = t.step(&g, d, q, &mut g_opt, &mut d_opt, &x, step)?;
                    Logged {
                        d: s.d_loss,
                        g: Some(s.g_loss),
                        extra: vec![("Q categorical CE", s.categorical_ce)],
                    }
                }
            };
            step += 1;
            pb.inc(1);
            if step.is_multiple_of(10) || i == last {
                let at = |who: &str| format!("the {who} at step {} of epoch {}", i + 1, epoch + 1);
                let mut add = |name: &'static str, t: &Tensor| -> anyhow::Result<()> {
                    let v = ensure_finite(&at(name), t.item()?)?;
                    let e = sums.entry(name).or_insert((0.0, 0));
                    e.0 += v;
                    e.1 += 1;
                    Ok(())
                };
                add("discriminator loss", &s.d)?;
                if let Some(l) = &s.g {
                    add("generator loss", l)?;
                }
                for (name, t) in &s.extra {
                    add(name, t)?;
                }
                let m = |k: &str| sums.get(k).map_or(f32::NAN, |&(s, n)| s / n as f32);
                pb.set_message(format!(
                    "D {:.3} G {:.3}",
                    m("discriminator loss"),
                    m("generator loss")
                ));
            }
        }
        pb.finish_and_clear();
        check_finite_state(&gvs)?;
        check_finite_state(&dvs)?;
        // the epoch's values, averaged over every 10th step and its last (NaN, written as
        // null, when none was sampled, e.g. no generator step)
        last_means = sums.iter().map(|(&k, &(s, n))| (k, s / n as f32)).collect();
        let m = |k: &str| last_means.get(k).copied().unwrap_or(f32::NAN);
        let grid = no_grad(|| g.forward(&z_fixed, fixed_labels, true))?;
        let title = if args.conditional {
            format!("samples, epoch {} (row: the class asked for)", epoch + 1)
        } else if infogan {
            format!("samples, epoch {} (row: the categorical code)", epoch + 1)
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
        let extras: String = last_means
            .iter()
            .filter(|(k, _)| !k.ends_with(" loss"))
            .map(|(k, v)| format!(", {k} {v:.4}"))
            .collect();
        println!(
            "epoch {:>2}: D loss {:.4}, G loss {:.4}{extras} (every 10th and the last step) | {secs:.1} s",
            epoch + 1,
            m("discriminator loss"),
            m("generator loss"),
        );
        let mut h = json!({"epoch": epoch + 1, "seconds": secs});
        for (k, v) in &last_means {
            h[json_key(k)] = json!(v);
            curves_of.entry(k).or_default().push(*v as f64);
        }
        history.push(h);
        save_curves(&out.join("curves.png"), &args.loss, &curves_of)?;
    }

    // the classifier's labels of generated samples (LeNet-5, on [0, 1] images normalized
    // as in its training)
    let lenet = match &args.classifier {
        Some(path) => {
            let cvs = VarStore::new(&dev, 0);
            let lenet = LeNet5::new(&cvs.root(), 1, 10)?;
            cvs.load(path)?;
            Some((cvs, lenet))
        }
        None => None,
    };
    let classify = |x: &Tensor| -> anyhow::Result<Vec<u32>> {
        let (_, lenet) = lenet.as_ref().expect("a classifier");
        no_grad(|| -> anyhow::Result<Vec<u32>> {
            let x = x
                .add_scalar(1.0)?
                .mul_scalar(0.5)?
                .sub_scalar(mean[0])?
                .div_scalar(std[0])?;
            Ok(lenet.forward(&x)?.argmax_axis(1, false)?.to_vec::<u32>()?)
        })
    };
    let per = 100usize;
    let mut class_metrics = serde_json::Value::Null;
    let mut info_metrics = serde_json::Value::Null;
    if let Critic::Info(_, d, q) = &critic {
        // real test images -> D's trunk -> Q's most likely code, against the true labels
        let el = loader(&dev, test, 500, None, true)?;
        let (mut codes, mut truth) = (vec![], vec![]);
        for batch in el.epoch(0) {
            let b = batch?;
            let f = no_grad(|| d.features(&b.images, None, false))?;
            codes.extend(q.infer(&f)?.to_vec::<u32>()?);
            truth.extend(b.labels.to_vec::<u32>()?);
        }
        let real_purity = purity(&codes, &truth, 10, 10)?;
        let mut sizes = [0usize; 10];
        for &c in &codes {
            sizes[c as usize] += 1;
        }
        println!(
            "InfoGAN: purity of Q's categorical code on {} real test images: {real_purity:.4} (cluster sizes {sizes:?})",
            codes.len()
        );
        // generated: 100 samples per categorical code, labelled by the classifier
        let mut generated_purity = serde_json::Value::Null;
        if lenet.is_some() {
            let cells: Vec<u32> = (0..10 * per as u32).map(|i| i / per as u32).collect();
            let cat = Tensor::from_slice(&dev, &cells, &[10 * per])?;
            let noise = Tensor::rand_normal(&dev, &[10 * per, args.latent], 0.0, 1.0, 31337, 0)?;
            let cont = Tensor::rand_uniform(&dev, &[10 * per, 2], -1.0, 1.0, 31337, 1)?;
            let z = info_cfg.input(&noise, &cat, &cont)?;
            let x = no_grad(|| g.forward(&z, None, true))?;
            let preds = classify(&x)?;
            let p = purity(&cells, &preds, 10, 10)?;
            println!(
                "InfoGAN: purity of the categorical code on {} generated images labelled by LeNet-5: {p:.4}",
                10 * per
            );
            generated_purity = json!(p);
        }
        // the code grids: rows categorical code, columns one continuous code in [-2, 2]
        let noise =
            Tensor::rand_normal(&dev, &[10, args.latent], 0.0, 1.0, 4243, 0)?.to_vec::<f32>()?;
        for j in 0..2 {
            let cells: Vec<(usize, usize, [f32; 2])> = (0..100)
                .map(|i| {
                    let mut c = [0.0f32; 2];
                    c[j] = -2.0 + 4.0 * (i % 10) as f32 / 9.0;
                    (i / 10, 0, c)
                })
                .collect();
            let z = info_latents(&dev, &info_cfg, &noise, &cells)?;
            let x = no_grad(|| g.forward(&z, None, true))?;
            save_grid(
                &x,
                10,
                (-1.0, 1.0),
                &format!(
                    "InfoGAN: row = categorical code, column = c{} from -2 to 2",
                    j + 1
                ),
                &rows,
                &out.join(format!("infogan_c{}.png", j + 1)),
            )?;
        }
        info_metrics = json!({
            "purity_real_q": real_purity,
            "purity_generated_lenet": generated_purity,
            "q_cluster_sizes": sizes,
            "grids": [out.join("infogan_c1.png").display().to_string(), out.join("infogan_c2.png").display().to_string()],
        });
    } else if lenet.is_some() {
        let labels: Vec<u32> = (0..10 * per as u32).map(|i| i / per as u32).collect();
        let lab = Tensor::from_slice(&dev, &labels, &[10 * per])?;
        let z = Tensor::rand_normal(&dev, &[10 * per, latent], 0.0, 1.0, 31337, 0)?;
        let x = no_grad(|| g.forward(&z, args.conditional.then_some(&lab), true))?;
        let preds = classify(&x)?;
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
    let m = |k: &str| last_means.get(k).copied().unwrap_or(f32::NAN);
    let model = if began {
        format!("began-{}", args.arch)
    } else {
        format!("gan-{}", args.arch)
    };
    let mut metrics = json!({
        "model": model,
        "loss": args.loss,
        "n_critic": n_critic,
        "conditional": args.conditional,
        "epochs": epochs,
        "train_images": tl.dataset().len(),
        "d_loss": m("discriminator loss"),
        "g_loss": m("generator loss"),
        "classifier": class_metrics,
        "seconds": t0.elapsed().as_secs_f64(),
        "curves_png": out.join("curves.png").display().to_string(),
        "history": history,
    });
    if began {
        metrics["convergence_m"] = json!(m("M"));
        metrics["k"] = json!(m("k"));
    }
    if infogan {
        metrics["infogan"] = info_metrics;
    }
    if let Some(Objective {
        reg: Regularizer::Dragan { .. } | Regularizer::GradientPenalty(_),
        ..
    }) = objective
    {
        metrics["gradient_penalty"] = json!(m("gradient penalty"));
    }
    finish(out, metrics, &["history"])?;
    Ok(())
}

/// InfoGAN inputs for grid cells `(categorical code, noise row, continuous codes)`, with
/// `noise` holding rows of `cfg.noise` values.
fn info_latents(
    dev: &Device,
    cfg: &InfoGanConfig,
    noise: &[f32],
    cells: &[(usize, usize, [f32; 2])],
) -> anyhow::Result<Tensor> {
    let n = cells.len();
    let (mut nz, mut cat, mut cont) = (vec![], vec![], vec![]);
    for &(c, r, v) in cells {
        nz.extend_from_slice(&noise[r * cfg.noise..(r + 1) * cfg.noise]);
        cat.push(c as u32);
        cont.extend_from_slice(&v[..cfg.continuous]);
    }
    Ok(cfg.input(
        &Tensor::from_slice(dev, &nz, &[n, cfg.noise])?,
        &Tensor::from_slice(dev, &cat, &[n])?,
        &Tensor::from_slice(dev, &cont, &[n, cfg.continuous])?,
    )?)
}

/// A logged value's name as a JSON key (`discriminator loss` -> `d_loss`).
fn json_key(name: &str) -> String {
    match name {
        "discriminator loss" => "d_loss".into(),
        "generator loss" => "g_loss".into(),
        "M" => "convergence_m".into(),
        "L(x)" => "real_reconstruction".into(),
        other => other.replace(' ', "_").to_lowercase(),
    }
}

/// The losses per epoch (means over every 10th step and the last), and in a second panel
/// the other logged values (BEGAN's `M`, `k_t` and `L(x)`, InfoGAN's categorical CE, the
/// gradient penalty).
fn save_curves(
    path: &std::path::Path,
    loss: &str,
    values: &BTreeMap<&'static str, Vec<f64>>,
) -> anyhow::Result<()> {
    let (losses, others): (Vec<_>, Vec<_>) = values.iter().partition(|(k, _)| k.ends_with(" loss"));
    let series = |v: Vec<(&&'static str, &Vec<f64>)>| {
        v.into_iter()
            .map(|(k, s)| Series::per_epoch(k, s.iter().copied()))
            .collect::<Vec<_>>()
    };
    let mut panels = vec![Panel {
        title: format!("gan: {loss} losses"),
        y_label: "loss (mean of every 10th step)".into(),
        series: series(losses),
    }];
    if !others.is_empty() {
        panels.push(Panel {
            title: "other logged values".into(),
            y_label: "mean of every 10th step".into(),
            series: series(others),
        });
    }
    curves(path, "epoch", &panels)
}
