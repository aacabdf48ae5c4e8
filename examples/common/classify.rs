//! The supervised examples' program: data, training with validation and early stopping,
//! checkpoints (best model; last state for --resume), loss and accuracy curves, test
//! evaluation, a picture of misclassified test images, and the final JSON line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cinder::data::mnist::{self, Split};
use cinder::data::{DataLoader, Dataset, DistributedSampler, Transform, cifar};
use cinder::device::Device;
use cinder::models::train::{check_finite_state, evaluate, train_epoch};
use cinder::nn::checkpoint::{self, take_prefix, with_prefix};
use cinder::nn::optim::Optimizer;
use cinder::nn::schedule::LrScheduler;
use cinder::nn::{ModuleT, VarStore};
use serde_json::json;

use super::cli::Classifier as Args;
use super::dist::{Dist, Opt};
use super::picture::{Caption, Grid};
use super::plot::{Panel, Series, curves};
use super::{ensure_dir, finish, optimizer, progress, schedule};

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
        let train = match args.common.limit {
            Some(n) => train.take(n),
            None => train,
        };
        let test = match args.test.test_limit {
            Some(n) => test.take(n),
            None => test,
        };
        let (train, val) = train.split(args.val_fraction, args.common.seed)?;
        if train.is_empty() || val.is_empty() || test.is_empty() {
            anyhow::bail!(
                "{} training, {} validation and {} test images: every split needs at least one \
                 (raise --limit, --test-limit, or move --val-fraction {} away from 0 and 1)",
                train.len(),
                val.len(),
                test.len(),
                args.val_fraction
            );
        }
        Ok(Data {
            train,
            val,
            test,
            classes: classes.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Fashion-MNIST (or MNIST) from `--data`, `$CINDER_DATA` or Debian's package.
    pub fn mnist(args: &Args) -> anyhow::Result<Data> {
        let dir = mnist::data_dir(args.common.data.as_deref());
        let train = mnist::load(&dir, Split::Train)?;
        let test = mnist::load(&dir, Split::Test)?;
        Data::new(args, train, test, &mnist::FASHION_CLASSES)
    }

    /// CIFAR-10's binary files from `--data`, then `$CINDER_DATA`, then
    /// `data/cifar-10-batches-bin`.
    pub fn cifar(args: &Args) -> anyhow::Result<Data> {
        let dir = args
            .common
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

/// The crash tests' hook: with `CINDER_PAUSE_BEFORE_COMMIT=FILE:EPOCH` (e.g.
/// `last.safetensors:2`), the save of `FILE` after epoch `EPOCH` (counted from 1) stops
/// after its temp file is written and fsynced, before the rename, prints a line saying so
/// on stderr and waits to be killed. Any other value, or none, changes nothing.
fn pause_before_commit(pending: &checkpoint::PendingSave, epoch: usize) {
    let Ok(want) = std::env::var("CINDER_PAUSE_BEFORE_COMMIT") else {
        return;
    };
    let file = pending.target().file_name().map(|f| f.to_string_lossy());
    if file.is_some_and(|f| want == format!("{f}:{epoch}")) {
        eprintln!(
            "paused before renaming {} over {} (CINDER_PAUSE_BEFORE_COMMIT={want})",
            pending.temp_path().display(),
            pending.target().display()
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Saves `tensors` atomically (refusing NaN and infinities), pausing for the crash tests
/// as [`pause_before_commit`] says.
fn save_checkpoint(
    path: &Path,
    tensors: &[(String, cinder::Tensor)],
    file_dtypes: &BTreeMap<String, checkpoint::FileDType>,
    meta: &BTreeMap<String, String>,
    epoch: usize,
) -> anyhow::Result<()> {
    let pending = checkpoint::prepare_save_as(path, tensors, file_dtypes, meta)?;
    pause_before_commit(&pending, epoch);
    pending.commit()?;
    Ok(())
}

/// The training state saved after every epoch for --resume: the model (`model.*`), the
/// optimizer (`optim.*`) and the loop's counters, the run's settings and its history as
/// metadata.
fn save_last(
    path: &Path,
    vs: &VarStore,
    opt: &dyn Optimizer,
    meta: &BTreeMap<String, String>,
    epoch: usize,
) -> anyhow::Result<()> {
    let mut all = with_prefix("model.", &vs.state());
    all.extend(with_prefix("optim.", &opt.state()));
    save_checkpoint(path, &all, &BTreeMap::new(), meta, epoch)
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

/// The settings a resumed run must share with the run that wrote its checkpoint (flag, value
/// as stored), besides `--epochs`: they define the data, the optimizer and the schedule.
fn run_settings(
    args: &Args,
    train_images: usize,
    val_images: usize,
    steps_per_epoch: usize,
) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("schedule", "--schedule", args.optim.schedule.clone()),
        ("optimizer", "--optimizer", args.optim.optimizer.clone()),
        ("lr", "--lr", args.train.lr.to_string()),
        (
            "batch_size",
            "--batch-size",
            args.train.batch_size.to_string(),
        ),
        ("seed", "--seed", args.common.seed.to_string()),
        (
            "train_images",
            "--limit / --val-fraction (training images)",
            train_images.to_string(),
        ),
        (
            "val_images",
            "--limit / --val-fraction (validation images)",
            val_images.to_string(),
        ),
        (
            "steps_per_epoch",
            "--batch-size / --limit (steps per epoch)",
            steps_per_epoch.to_string(),
        ),
    ]
}

/// Where a resumed run starts: the counters, the schedule's length and the history.
struct Resumed {
    epochs_done: usize,
    epochs: usize,
    best_acc: f32,
    bad: usize,
    history: Vec<serde_json::Value>,
}

/// Reads the loop's state from a checkpoint's metadata and checks the run's settings
/// against it. Returns `Err` naming the flag when a setting differs, or when `--epochs` is
/// given and differs from the stored schedule's length (a resumed run continues the stored
/// schedule; it is not stretched or cut).
fn resume_from(
    meta: &BTreeMap<String, String>,
    args: &Args,
    settings: &[(&'static str, &'static str, String)],
    last_path: &Path,
) -> anyhow::Result<Resumed> {
    let num = |k: &str| -> anyhow::Result<Option<f64>> {
        meta.get(k)
            .map(|v| {
                v.parse::<f64>()
                    .with_context(|| format!("metadata `{k}` = {v:?} is not a number"))
            })
            .transpose()
    };
    let epochs_done = num("epochs_done")?.context("metadata `epochs_done` is missing")? as usize;
    for (key, flag, now) in settings {
        if let Some(then) = meta.get(*key)
            && then != now
        {
            anyhow::bail!(
                "{flag} is {now} but the checkpoint {} was written with {then}; resume with \
                 the same settings, or train anew (without --resume, or with another --out)",
                last_path.display()
            );
        }
    }
    let epochs = match (num("epochs")?.map(|e| e as usize), args.train.epochs) {
        (Some(stored), Some(given)) if stored != given => anyhow::bail!(
            "--epochs {given}, but the checkpoint {} belongs to a run of {stored} epochs (its \
             schedule is {stored} epochs long; {epochs_done} are done). A resumed run \
             continues the stored schedule: pass --epochs {stored} or leave --epochs out; to \
             train for another length, train anew (without --resume, or with another --out)",
            last_path.display()
        ),
        (Some(stored), _) => stored,
        (None, _) => {
            say!(
                "the checkpoint does not record its run's length; using --epochs {}",
                args.train.epochs()
            );
            args.train.epochs()
        }
    };
    let history = match meta.get("history") {
        Some(h) => serde_json::from_str::<Vec<serde_json::Value>>(h)
            .context("metadata `history` is not a JSON array")?,
        None => {
            say!(
                "the checkpoint has no history: metrics.json will list the epochs from {} on",
                epochs_done + 1
            );
            Vec::new()
        }
    };
    Ok(Resumed {
        epochs_done,
        epochs,
        best_acc: num("best_val_accuracy")?.unwrap_or(-1.0) as f32,
        bad: num("bad_epochs")?.unwrap_or(0.0) as usize,
        history,
    })
}

/// True when early stopping ends the run after `bad` epochs without improvement
/// (`--patience 0` never stops early).
fn patience_spent(args: &Args, bad: usize) -> bool {
    args.patience > 0 && bad >= args.patience
}

/// Trains `model` (built in `vs`) on `data` as `args` say, prints progress, writes the
/// checkpoints and pictures under `--out`, and prints the final JSON line.
///
/// With `--resume`, the loop continues from `last.safetensors`: the model, the optimizer,
/// the counters and the history come back, the run's settings must match the stored ones,
/// and the schedule is the stored one (see [`resume_from`]). Training stops with an error,
/// before any checkpoint of that epoch is written, when the loss or a parameter stops being
/// finite.
pub fn run(
    name: &str,
    args: &Args,
    dev: &Device,
    vs: &VarStore,
    model: &dyn ModuleT,
    data: Data,
    augment: Vec<Transform>,
) -> anyhow::Result<()> {
    run_with(name, args, dev, vs, model, data, augment, None)
}

/// What an example adds after the test evaluation (the best model loaded): it gets the test
/// loader (normalized, in order) and `--out`, writes its own pictures and returns the keys it
/// adds to the final metrics.
pub type Extra<'a> =
    dyn Fn(&DataLoader, &Path) -> anyhow::Result<Vec<(&'static str, serde_json::Value)>> + 'a;

/// [`run`] with an [`Extra`] step before the final JSON line.
///
/// With `--distributed`, every rank of the MPI job runs it: each trains on its shard of the
/// training set (a [`DistributedSampler`] seeded by `--seed`, padded as PyTorch's) with
/// `--batch-size` per rank and gradients averaged after every backward; every rank
/// evaluates the whole validation and test sets with rank 0's batch-norm statistics, so all
/// reach the same early-stopping decisions; rank 0 alone prints, shows progress and writes
/// files. A rank whose run fails prints its error and aborts the whole job.
#[allow(clippy::too_many_arguments)]
pub fn run_with(
    name: &str,
    args: &Args,
    dev: &Device,
    vs: &VarStore,
    model: &dyn ModuleT,
    data: Data,
    augment: Vec<Transform>,
    extra: Option<&Extra>,
) -> anyhow::Result<()> {
    if !args.distributed {
        return train_and_test(name, args, dev, vs, model, data, augment, extra, None);
    }
    let dist = Dist::join()?;
    let comm = dist.comm.clone();
    cinder::distributed::exit_on_error(comm.as_ref(), || {
        train_and_test(
            name,
            args,
            dev,
            vs,
            model,
            data,
            augment,
            extra,
            Some(&dist),
        )
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train_and_test(
    name: &str,
    args: &Args,
    dev: &Device,
    vs: &VarStore,
    model: &dyn ModuleT,
    data: Data,
    augment: Vec<Transform>,
    extra: Option<&Extra>,
    dist: Option<&Dist>,
) -> anyhow::Result<()> {
    let root = dist.is_none_or(|d| d.is_root());
    let out = &args.common.out;
    if root {
        ensure_dir(out)?;
    }
    let (mean, std) = channel_stats(&data.train);
    let norm = Transform::Normalize {
        mean: mean.clone(),
        std: std.clone(),
    };
    let mut train_tf = augment;
    train_tf.push(norm.clone());
    let mut train = DataLoader::new(dev, Arc::new(data.train), args.train.batch_size)?
        .shuffle(args.common.seed)
        .transforms(train_tf);
    if let Some(d) = dist {
        let n = train.dataset().len();
        let s = DistributedSampler::new(n, d.comm.size(), d.comm.rank())?.shuffle(args.common.seed);
        train = train.sampler(s)?;
    }
    let eval_bs = 256;
    let val = DataLoader::new(dev, Arc::new(data.val), eval_bs)?.transforms(vec![norm.clone()]);
    let test = DataLoader::new(dev, Arc::new(data.test), eval_bs)?.transforms(vec![norm]);
    say!(
        "{name}: {} train, {} validation, {} test images; {} parameters; adapter {}",
        train.dataset().len(),
        val.dataset().len(),
        test.dataset().len(),
        vs.num_parameters(),
        dev.adapter_info().name
    );
    if let Some(d) = dist {
        say!(
            "data-parallel over {} ranks: {} training images and {} steps per rank and epoch, \
             batch {} per rank ({} in all)",
            d.comm.size(),
            train.order(0).len(),
            train.num_batches(),
            args.train.batch_size,
            args.train.batch_size * d.comm.size()
        );
    }

    let mut opt = optimizer(&args.optim, args.train.lr, vs)?;
    let best_path = out.join("best.safetensors");
    let last_path = out.join("last.safetensors");
    let curves_path = out.join("curves.png");
    let steps = train.num_batches();
    let settings = run_settings(args, train.dataset().len(), val.dataset().len(), steps);
    let (mut start, mut epochs, mut best_acc, mut bad) =
        (0usize, args.train.epochs(), -1f32, 0usize);
    let mut history = Vec::new();
    if args.resume {
        let r = load_last(&last_path, dev, vs, opt.as_mut())
            .and_then(|meta| resume_from(&meta, args, &settings, &last_path))
            .with_context(|| format!("--resume from {}", last_path.display()))?;
        (start, epochs, best_acc, bad, history) =
            (r.epochs_done, r.epochs, r.best_acc, r.bad, r.history);
        say!(
            "resumed after epoch {start} of {epochs} (best validation accuracy {best_acc:.4}); \
             continuing the stored {} schedule over {} steps, {} done",
            args.optim.schedule,
            epochs * steps,
            start * steps
        );
    }

    // Replicated after --resume loaded the state: rank 0's model goes to every rank.
    let mut opt = Opt::new(opt, dist, vs)?;
    let mut schedule = schedule(&args.optim, opt.get(), epochs * steps, start * steps)?;
    let mut epochs_run = start;
    if start >= epochs {
        say!("the run has done its {epochs} epochs: nothing left to train");
    }
    for epoch in start..epochs {
        if patience_spent(args, bad) {
            say!("early stop: no better validation accuracy for {bad} epochs");
            break;
        }
        let pb = progress(steps, format!("epoch {}/{epochs}", epoch + 1));
        let mut sched_err = None;
        let t = train_epoch(model, opt.get(), &train, epoch as u64, 20, |o, s| {
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
        });
        pb.finish_and_clear();
        let mut t = t.with_context(|| format!("epoch {}: training stopped", epoch + 1))?;
        if let Some(d) = dist {
            // One set of training figures: the ranks' sums; rank 0's wall time.
            let ex = t.examples as f64;
            let mut sums = [t.loss as f64 * ex, t.accuracy as f64 * ex, ex];
            d.sum(&mut sums)?;
            t.loss = (sums[0] / sums[2]) as f32;
            t.accuracy = (sums[1] / sums[2]) as f32;
            t.examples = sums[2] as usize;
        }
        opt.broadcast_buffers()?;
        if let Some(e) = sched_err {
            return Err(e.into());
        }
        check_finite_state(vs).with_context(|| {
            format!(
                "epoch {}: training stopped; the checkpoints of epoch {epoch} are kept",
                epoch + 1
            )
        })?;
        let (v, _) = evaluate(model, &val)?;
        epochs_run = epoch + 1;
        say!(
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
            "val_loss": v.loss, "val_accuracy": v.accuracy, "seconds": t.seconds,
            "images_per_second": t.images_per_second()}),
        );
        if v.accuracy > best_acc {
            best_acc = v.accuracy;
            bad = 0;
            let state = vs.state();
            let meta = BTreeMap::from([
                ("epoch".to_string(), (epoch + 1).to_string()),
                ("val_accuracy".to_string(), best_acc.to_string()),
            ]);
            if root {
                save_checkpoint(&best_path, &state, &vs.file_dtypes(), &meta, epoch + 1)?;
            }
        } else {
            bad += 1;
        }
        let mut meta = BTreeMap::from([
            ("epochs_done".to_string(), (epoch + 1).to_string()),
            ("epochs".to_string(), epochs.to_string()),
            ("best_val_accuracy".to_string(), best_acc.to_string()),
            ("bad_epochs".to_string(), bad.to_string()),
            ("history".to_string(), serde_json::to_string(&history)?),
        ]);
        for (key, _, value) in &settings {
            meta.insert(key.to_string(), value.clone());
        }
        if root {
            save_last(&last_path, vs, opt.get_ref(), &meta, epoch + 1)?;
            save_curves(&curves_path, name, &history)?;
        }
        if patience_spent(args, bad) && epoch + 1 < epochs {
            say!("early stop: no better validation accuracy for {bad} epochs");
            break;
        }
    }

    if root {
        if !best_path.exists() {
            anyhow::bail!(
                "{} is missing: the best model of this run (validation accuracy {best_acc:.4}) \
                 cannot be evaluated",
                best_path.display()
            );
        }
        vs.load(&best_path)?;
    }
    if let Some(d) = dist {
        // Rank 0's best model to every rank, with no file shared between the machines.
        cinder::distributed::DistributedDataParallel::new(d.comm.clone(), vs)?;
    }
    let (ts, preds) = evaluate(model, &test)?;
    let wrong: Vec<usize> = (0..preds.len())
        .filter(|&i| preds[i] != test.dataset().labels()[i] as u32)
        .collect();
    let show: Vec<usize> = wrong.iter().copied().take(64).collect();
    let pic = out.join("misclassified.png");
    if !show.is_empty() && root {
        let title = format!(
            "{name}: {} of {} test images misclassified (the first {} shown); under each: \
             true class (green), predicted class (red)",
            wrong.len(),
            preds.len(),
            show.len()
        );
        misclassified(&pic, &title, test.dataset(), &show, &preds, &data.classes)?;
    }
    if root {
        save_curves(&curves_path, name, &history)?;
    }
    // The last epoch's training figures, from the history (null when it has none: a
    // checkpoint written before the history was kept).
    let last = history.last().cloned().unwrap_or(serde_json::Value::Null);
    let mut metrics = json!({
        "model": name,
        "test_accuracy": ts.accuracy,
        "test_loss": ts.loss,
        "best_val_accuracy": best_acc,
        "epochs": epochs_run,
        "schedule_epochs": epochs,
        "train_loss": last["train_loss"],
        "train_accuracy": last["train_accuracy"],
        "images_per_second": last["images_per_second"],
        "seconds_per_epoch": last["seconds"],
        "train_images": train.dataset().len(),
        "test_images": test.dataset().len(),
        "misclassified_png": if show.is_empty() { serde_json::Value::Null } else { json!(pic.display().to_string()) },
        "curves_png": curves_path.display().to_string(),
        "classes": data.classes,
        "history": history,
    });
    if let Some(d) = dist {
        let s = opt.ddp_stats().unwrap_or_default();
        metrics["world_size"] = json!(d.comm.size());
        metrics["batch_size_per_rank"] = json!(args.train.batch_size);
        metrics["allreduce_seconds"] = json!(s.allreduce_seconds);
        metrics["gradient_transfer_seconds"] = json!(s.transfer_seconds);
        metrics["backward_wait_seconds"] = json!(s.wait_seconds);
        metrics["allreduces"] = json!(s.allreduces);
        metrics["allreduce_bytes"] = json!(s.bytes);
    }
    if let Some(extra) = extra
        && root
    {
        for (k, v) in extra(&test, out)? {
            metrics[k] = v;
        }
    }
    say!(
        "test: loss {:.4}, accuracy {:.4}; misclassified images in {}, curves in {}",
        ts.loss,
        ts.accuracy,
        pic.display(),
        curves_path.display()
    );
    finish(out, metrics, &["history", "classes"])?;
    Ok(())
}

/// A grid of the test images `show` (8 per row), each captioned with its true class
/// (green) and the predicted one (red), by name, under `title`.
fn misclassified(
    path: &Path,
    title: &str,
    test: &Dataset,
    show: &[usize],
    preds: &[u32],
    classes: &[String],
) -> anyhow::Result<()> {
    let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut pixels = Vec::new();
    let mut caps: Vec<Caption> = Vec::new();
    for &i in show {
        pixels.extend(test.image(i).iter().map(|&p| p as f32 / 255.0));
        caps.push(vec![
            (name(test.labels()[i] as usize), [110, 230, 110]),
            (name(preds[i] as usize), [255, 120, 120]),
        ]);
    }
    Grid::new(&pixels, test.image_shape(), 8)
        .scale(3)
        .title(title)
        .captions(&caps)
        .draw()
        .save(path)
}

/// The loss and accuracy curves of `history` (training and validation, per epoch).
fn save_curves(path: &Path, name: &str, history: &[serde_json::Value]) -> anyhow::Result<()> {
    let get = |key: &str| -> Vec<f64> {
        history
            .iter()
            .map(|h| h[key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let panel = |what: &str, key: &str| Panel {
        title: format!("{name}: {what}"),
        y_label: what.to_string(),
        series: vec![
            Series::per_epoch("training", get(&format!("train_{key}"))),
            Series::per_epoch("validation", get(&format!("val_{key}"))),
        ],
    };
    curves(
        path,
        "epoch",
        &[
            panel("cross-entropy loss", "loss"),
            panel("accuracy", "accuracy"),
        ],
    )
}
