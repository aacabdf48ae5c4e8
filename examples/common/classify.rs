//! The supervised examples' program: data, training with validation and early stopping,
//! checkpoints (best model; last state for --resume), test evaluation, a picture of
//! misclassified test images, and the final JSON line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cinder::data::mnist::{self, Split};
use cinder::data::{DataLoader, Dataset, Transform, cifar};
use cinder::device::Device;
use cinder::models::train::{Stats, evaluate, train_epoch};
use cinder::nn::checkpoint::{self, take_prefix, with_prefix};
use cinder::nn::optim::Optimizer;
use cinder::nn::schedule::LrScheduler;
use cinder::nn::{ModuleT, VarStore};
use serde_json::json;

use super::picture::grid;
use super::{Args, ensure_dir, finish, optimizer, progress, schedule};

/// The datasets an example trains on.
pub struct Data {
    /// Training split (after --limit and the validation hold-out).
    pub train: Dataset,
    /// Validation split.
    pub val: Dataset,
    /// Test set (after --test-limit).
    pub test: Dataset,
    /// Class names for the picture's legend.
    pub classes: Vec<String>,
}

impl Data {
    /// Applies `--limit` and `--test-limit` and holds out `--val-fraction` of the training
    /// images (a seeded split).
    pub fn new(
        args: &Args,
        train: Dataset,
        test: Dataset,
        classes: &[&str],
    ) -> anyhow::Result<Data> {
        let train = match args.limit {
            Some(n) => train.take(n),
            None => train,
        };
        let test = match args.test_limit {
            Some(n) => test.take(n),
            None => test,
        };
        let (train, val) = train.split(args.val_fraction, args.seed)?;
        Ok(Data {
            train,
            val,
            test,
            classes: classes.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Fashion-MNIST (or MNIST) from `--data`, `$CINDER_DATA` or Debian's package.
    pub fn mnist(args: &Args) -> anyhow::Result<Data> {
        let dir = mnist::data_dir(args.data.as_deref());
        let train = mnist::load(&dir, Split::Train)?;
        let test = mnist::load(&dir, Split::Test)?;
        Data::new(args, train, test, &mnist::FASHION_CLASSES)
    }

    /// CIFAR-10's binary files from `--data`, then `$CINDER_DATA`, then
    /// `data/cifar-10-batches-bin`.
    pub fn cifar(args: &Args) -> anyhow::Result<Data> {
        let dir = args
            .data
            .clone()
            .or_else(|| std::env::var_os("CINDER_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("data/cifar-10-batches-bin"));
        let train = cifar::load(&dir, Split::Train)?;
        let test = cifar::load(&dir, Split::Test)?;
        Data::new(args, train, test, &cifar::CLASSES)
    }
}

/// Per-channel mean and standard deviation of a dataset's pixels in [0, 1].
pub fn channel_stats(d: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let [c, h, w] = d.image_shape();
    let mut sum = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for i in 0..d.len() {
        for (k, &p) in d.image(i).iter().enumerate() {
            let v = p as f64 / 255.0;
            sum[k / (h * w)] += v;
            sq[k / (h * w)] += v * v;
        }
    }
    let n = (d.len() * h * w).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, &m)| ((q / n - (m as f64).powi(2)).max(1e-12)).sqrt() as f32)
        .collect();
    (mean, std)
}

/// The training state saved after every epoch for --resume: the model (`model.*`), the
/// optimizer (`optim.*`) and the loop's counters as metadata.
fn save_last(
    path: &Path,
    vs: &VarStore,
    opt: &dyn Optimizer,
    meta: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let model: Vec<_> = vs.state().into_iter().map(|(n, t)| (n, t.data())).collect();
    let mut all = with_prefix("model.", &model);
    all.extend(with_prefix("optim.", &opt.state()));
    checkpoint::save(path, &all, meta)?;
    Ok(())
}

fn load_last(
    path: &Path,
    dev: &Device,
    vs: &VarStore,
    opt: &mut dyn Optimizer,
) -> anyhow::Result<BTreeMap<String, String>> {
    let (tensors, meta) = checkpoint::load_with_metadata(path, dev)?;
    let (model, rest) = take_prefix("model.", tensors);
    let (optim, _) = take_prefix("optim.", rest);
    vs.load_state(&model, true)?;
    opt.load_state(&optim)?;
    Ok(meta)
}

/// Trains `model` (built in `vs`) on `data` as `args` say, prints progress, writes the
/// checkpoints and pictures under `--out`, and prints the final JSON line.
pub fn run(
    name: &str,
    args: &Args,
    dev: &Device,
    vs: &VarStore,
    model: &dyn ModuleT,
    data: Data,
    augment: Vec<Transform>,
) -> anyhow::Result<()> {
    ensure_dir(&args.out)?;
    let (mean, std) = channel_stats(&data.train);
    let norm = Transform::Normalize {
        mean: mean.clone(),
        std: std.clone(),
    };
    let mut train_tf = augment;
    train_tf.push(norm.clone());
    let train = DataLoader::new(dev, Arc::new(data.train), args.batch_size)?
        .shuffle(args.seed)
        .transforms(train_tf);
    let eval_bs = 256;
    let val = DataLoader::new(dev, Arc::new(data.val), eval_bs)?.transforms(vec![norm.clone()]);
    let test = DataLoader::new(dev, Arc::new(data.test), eval_bs)?.transforms(vec![norm]);
    println!(
        "{name}: {} train, {} validation, {} test images; {} parameters; adapter {}",
        train.dataset().len(),
        val.dataset().len(),
        test.dataset().len(),
        vs.num_parameters(),
        dev.adapter_info().name
    );

    let mut opt = optimizer(args, vs)?;
    let best_path = args.out.join("best.safetensors");
    let last_path = args.out.join("last.safetensors");
    let (mut start, mut best_acc, mut bad) = (0usize, -1f32, 0usize);
    if args.resume {
        let meta = load_last(&last_path, dev, vs, opt.as_mut())
            .with_context(|| format!("--resume: reading {}", last_path.display()))?;
        let get = |k: &str| {
            meta.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        start = get("epochs_done") as usize;
        best_acc = get("best_val_accuracy") as f32;
        bad = get("bad_epochs") as usize;
        println!("resumed after epoch {start} (best validation accuracy {best_acc:.4})");
    }

    let mut schedule = schedule(
        args,
        opt.as_mut(),
        args.epochs * train.num_batches(),
        start * train.num_batches(),
    )?;
    let mut history = Vec::new();
    let mut last_train = Stats::default();
    let mut epochs_run = start;
    for epoch in start..args.epochs {
        let pb = progress(
            train.num_batches(),
            format!("epoch {}/{}", epoch + 1, args.epochs),
        );
        let mut sched_err = None;
        let t = train_epoch(model, opt.as_mut(), &train, epoch as u64, 20, |o, s| {
            if let Some(sched) = schedule.as_mut()
                && let Err(e) = sched.step_optimizer(o)
            {
                sched_err.get_or_insert(e);
            }
            pb.inc(1);
            if let Some(l) = s.loss {
                let rate = s.seen as f64 / pb.elapsed().as_secs_f64().max(1e-9);
                pb.set_message(format!("loss {l:.4}, {rate:.0} img/s"));
            }
        })?;
        if let Some(e) = sched_err {
            return Err(e.into());
        }
        pb.finish_and_clear();
        let (v, _) = evaluate(model, &val)?;
        epochs_run = epoch + 1;
        println!(
            "epoch {:>2}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.1} s, {:.0} img/s",
            epoch + 1,
            t.loss,
            t.accuracy,
            v.loss,
            v.accuracy,
            t.seconds,
            t.images_per_second()
        );
        history.push(
            json!({"epoch": epoch + 1, "train_loss": t.loss, "train_accuracy": t.accuracy,
            "val_loss": v.loss, "val_accuracy": v.accuracy, "seconds": t.seconds}),
        );
        last_train = t;
        if v.accuracy > best_acc {
            best_acc = v.accuracy;
            bad = 0;
            vs.save(&best_path)?;
        } else {
            bad += 1;
        }
        let meta = BTreeMap::from([
            ("epochs_done".to_string(), (epoch + 1).to_string()),
            ("best_val_accuracy".to_string(), best_acc.to_string()),
            ("bad_epochs".to_string(), bad.to_string()),
        ]);
        save_last(&last_path, vs, opt.as_ref(), &meta)?;
        if bad >= args.patience {
            println!("early stop: no better validation accuracy for {bad} epochs");
            break;
        }
    }

    if best_path.exists() {
        vs.load(&best_path)?;
    }
    let (ts, preds) = evaluate(model, &test)?;
    let wrong: Vec<usize> = (0..preds.len())
        .filter(|&i| preds[i] != test.dataset().labels()[i] as u32)
        .collect();
    let show: Vec<usize> = wrong.iter().copied().take(64).collect();
    let shape = test.dataset().image_shape();
    let mut pixels = Vec::new();
    let mut caps = Vec::new();
    for &i in &show {
        pixels.extend(test.dataset().image(i).iter().map(|&p| p as f32 / 255.0));
        caps.push(vec![
            (test.dataset().labels()[i] as usize, [80, 220, 80]),
            (preds[i] as usize, [240, 80, 80]),
        ]);
    }
    let pic = args.out.join("misclassified.png");
    if !show.is_empty() {
        grid(&pixels, shape, 8, (0.0, 1.0), 3, Some(&caps)).save(&pic)?;
    }
    let metrics = json!({
        "model": name,
        "test_accuracy": ts.accuracy,
        "test_loss": ts.loss,
        "best_val_accuracy": best_acc,
        "epochs": epochs_run,
        "train_loss": last_train.loss,
        "train_accuracy": last_train.accuracy,
        "images_per_second": last_train.images_per_second(),
        "seconds_per_epoch": last_train.seconds,
        "train_images": train.dataset().len(),
        "test_images": test.dataset().len(),
        "misclassified_png": if show.is_empty() { serde_json::Value::Null } else { json!(pic.display().to_string()) },
        "classes": data.classes,
        "history": history,
    });
    println!(
        "test: loss {:.4}, accuracy {:.4}; misclassified images (green: label, red: prediction) in {}",
        ts.loss,
        ts.accuracy,
        pic.display()
    );
    finish(args, metrics, &["history", "classes"])?;
    Ok(())
}
