//! Trains a character-level language model on the fortunes Debian ships (`fortunes`
//! package, installed by scripts/setup.sh): an LSTM (`--arch lstm`, default) or a causal
//! Transformer (`--arch transformer`) predicting the next character.
//!
//! The fortune files are split by file, not by line: in name order every 8th file is
//! validation text, so no validation fortune is seen in training. Each epoch trains on
//! `--steps-per-epoch` batches of random windows of `--context` characters, then scores
//! `--val-chars` validation characters in bits per character, beside the validation text's
//! own unigram entropy (what character frequencies alone would score). After training, the
//! best model prints samples at temperatures 0.5 and 1.0.
//!
//! `scripts/setup.sh && cargo run --release --example char_lm -- --epochs 10`
//! (`--epochs 1 --steps-per-epoch 20` for a quick run). Writes under `--out` (default
//! `out/char_lm`): `best.safetensors`, `last.safetensors` (for `--resume`), `metrics.json`,
//! `curves.png` (bits per character per epoch, training and validation, with the unigram
//! entropy) and `samples.txt`; the last stdout line is a JSON object of final metrics.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use cinder::data::text::{self, CharVocab};
use cinder::models::{CharArch, CharLm, CharLmConfig};
use cinder::nn::checkpoint::{self, take_prefix, with_prefix};
use cinder::nn::loss::{CrossEntropy, Reduction, cross_entropy};
use cinder::nn::schedule::LrScheduler;
use cinder::nn::{ModuleT, VarStore};
use cinder::prelude::*;
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish, optimizer, progress, schedule};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

/// In name order, every this-many-th fortune file is validation text.
const VAL_EVERY: usize = 8;
const TEMPERATURES: [f32; 2] = [0.5, 1.0];
const LN2: f64 = std::f64::consts::LN_2;

fn model_config(args: &cli::CharLm, vocab: usize) -> CharLmConfig {
    match args.arch.as_str() {
        "transformer" => CharLmConfig {
            vocab,
            arch: CharArch::Transformer,
            dim: 128,
            hidden: 512,
            layers: 4,
            heads: 4,
            context: args.context,
            dropout: 0.0,
            seed: args.common.seed,
        },
        _ => CharLmConfig {
            vocab,
            arch: CharArch::Lstm,
            dim: 64,
            hidden: 256,
            layers: 1,
            heads: 1,
            context: args.context,
            dropout: 0.0,
            seed: args.common.seed,
        },
    }
}

/// `[rows, len]` u32 indices uploaded.
fn upload(dev: &Device, ids: &[u32], rows: usize, len: usize) -> Result<Tensor> {
    Tensor::from_slice(dev, ids, &[rows, len])
}

/// Summed cross-entropy (nats) of the next-character predictions over `ids`, in windows of
/// `t + 1` characters at a stride of `t`, `b` windows per batch; and the count of scored
/// characters. One readback at the end.
fn score(model: &CharLm, dev: &Device, ids: &[u32], t: usize, b: usize) -> anyhow::Result<f64> {
    let starts: Vec<usize> = (0..ids.len().saturating_sub(t + 1) + 1)
        .step_by(t)
        .filter(|&s| s + t < ids.len())
        .collect();
    anyhow::ensure!(
        !starts.is_empty(),
        "the validation text is shorter than --context + 1"
    );
    let sum = cinder::no_grad(|| -> anyhow::Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for chunk in starts.chunks(b) {
            let (x, y) = windows(ids, chunk, t);
            let logits = model.forward_t(&upload(dev, &x, chunk.len(), t)?, false)?;
            let v = logits.shape()[2];
            let opts = CrossEntropy {
                reduction: Reduction::Sum,
                ..Default::default()
            };
            let l = cross_entropy(
                &logits.reshape(&[chunk.len() * t, v])?,
                &upload(dev, &y, chunk.len() * t, 1)?.reshape(&[chunk.len() * t])?,
                &opts,
            )?;
            total = Some(match total {
                Some(s) => s.add(&l)?,
                None => l,
            });
        }
        Ok(total.expect("one batch"))
    })?;
    let nats = sum.item()? as f64;
    Ok(nats / (starts.len() * t) as f64 / LN2)
}

/// The inputs and targets of the windows starting at `starts`.
fn windows(ids: &[u32], starts: &[usize], t: usize) -> (Vec<u32>, Vec<u32>) {
    let mut x = Vec::with_capacity(starts.len() * t);
    let mut y = Vec::with_capacity(starts.len() * t);
    for &s in starts {
        x.extend_from_slice(&ids[s..s + t]);
        y.extend_from_slice(&ids[s + 1..s + t + 1]);
    }
    (x, y)
}

/// `len` characters after `prompt`, each drawn from the softmax of the last position's
/// logits divided by `temp` (the context cut to the last `context` characters).
#[allow(clippy::too_many_arguments)]
fn sample(
    model: &CharLm,
    dev: &Device,
    vocab: &CharVocab,
    prompt: &str,
    len: usize,
    temp: f32,
    context: usize,
    seed: u64,
) -> anyhow::Result<String> {
    let mut ids = vocab.encode(prompt);
    let mut rng = StdRng::seed_from_u64(seed);
    cinder::no_grad(|| -> anyhow::Result<()> {
        for _ in 0..len {
            let ctx = &ids[ids.len().saturating_sub(context)..];
            let logits = model.forward_t(&upload(dev, ctx, 1, ctx.len())?, false)?;
            let v = logits.shape()[2];
            let last = logits.narrow(1, ctx.len() - 1, 1)?.to_vec::<f32>()?;
            let m = last.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f64> = last[..v]
                .iter()
                .map(|&l| (((l - m) / temp) as f64).exp())
                .collect();
            let total: f64 = w.iter().sum();
            let mut u = rng.random_range(0.0..total);
            let mut pick = v - 1;
            for (i, &wi) in w.iter().enumerate() {
                if u < wi {
                    pick = i;
                    break;
                }
                u -= wi;
            }
            ids.push(pick as u32);
        }
        Ok(())
    })?;
    Ok(vocab.decode(&ids[ids.len() - len..]))
}

/// The settings a resumed run must share with the checkpoint's (key, flag, value).
fn settings(args: &cli::CharLm, train_chars: usize) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("arch", "--arch", args.arch.clone()),
        ("context", "--context", args.context.to_string()),
        (
            "batch_size",
            "--batch-size",
            args.train.batch_size.to_string(),
        ),
        ("lr", "--lr", args.train.lr.to_string()),
        ("seed", "--seed", args.common.seed.to_string()),
        ("optimizer", "--optimizer", args.optim.optimizer.clone()),
        ("schedule", "--schedule", args.optim.schedule.clone()),
        (
            "steps_per_epoch",
            "--steps-per-epoch",
            args.steps_per_epoch.to_string(),
        ),
        (
            "train_chars",
            "--limit / --data (training characters)",
            train_chars.to_string(),
        ),
    ]
}

fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    meta: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    checkpoint::prepare_save_as(path, tensors, &BTreeMap::new(), meta)?.commit()?;
    Ok(())
}

fn save_curves(
    path: &Path,
    arch: &str,
    history: &[serde_json::Value],
    unigram: f64,
) -> anyhow::Result<()> {
    let get = |k: &str| {
        history
            .iter()
            .map(|h| h[k].as_f64().unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    };
    let panel = Panel {
        title: format!("char_lm ({arch}): bits per character"),
        y_label: "bits per character".into(),
        series: vec![
            Series::per_epoch("training", get("train_bpc")),
            Series::per_epoch("validation", get("val_bpc")),
            Series::per_epoch("validation unigram entropy", vec![unigram; history.len()]),
        ],
    };
    curves(path, "epoch", &[panel])
}

fn main() -> anyhow::Result<()> {
    let args: cli::CharLm = cli::parse("char_lm");
    let dev = Device::default()?;
    let out = &args.common.out;
    ensure_dir(out)?;
    let dir = text::fortunes_dir(args.common.data.as_deref());
    let (train_files, val_files) = text::split_by_file(text::read_fortunes(&dir)?, VAL_EVERY)?;
    let mut train_text = text::join(&train_files);
    if let Some(n) = args.common.limit {
        train_text = train_text.chars().take(n).collect();
    }
    let vocab = CharVocab::new(&train_text, 1);
    let train_ids = vocab.encode(&train_text);
    let val_all = vocab.encode(&text::join(&val_files));
    let val_ids = &val_all[..val_all.len().min(args.val_chars)];
    let t = args.context;
    anyhow::ensure!(
        train_ids.len() > t + 1 && val_ids.len() > t + 1,
        "{} training and {} validation characters: both need more than --context + 1 = {}",
        train_ids.len(),
        val_ids.len(),
        t + 1
    );
    let unigram = text::unigram_entropy_bits(val_ids);
    let val_names: Vec<&str> = val_files.iter().map(|f| f.name.as_str()).collect();
    println!(
        "char_lm: {} training characters from {} files, {} validation characters from {} files \
         ({}); {} characters in the vocabulary; validation unigram entropy {unigram:.3} bits",
        train_ids.len(),
        train_files.len(),
        val_ids.len(),
        val_files.len(),
        val_names.join(", "),
        vocab.len()
    );

    let vs = VarStore::new(&dev, args.common.seed);
    let model = CharLm::new(&vs.root(), model_config(&args, vocab.len()))?;
    println!(
        "{} parameters, arch {}; adapter {}",
        vs.num_parameters(),
        args.arch,
        dev.adapter_info().name
    );
    let mut opt = optimizer(&args.optim, args.train.lr, &vs)?;
    let (best_path, last_path) = (out.join("best.safetensors"), out.join("last.safetensors"));
    let curves_path = out.join("curves.png");
    let steps = args.steps_per_epoch;
    let run_settings = settings(&args, train_ids.len());
    let vocab_json = serde_json::to_string(
        &vocab
            .chars()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
    )?;
    let (mut start, mut epochs, mut best) = (0usize, args.train.epochs(), f64::INFINITY);
    let mut history: Vec<serde_json::Value> = Vec::new();
    if args.resume {
        let (tensors, meta) = checkpoint::load_with_metadata(&last_path, &dev)
            .with_context(|| format!("--resume from {}", last_path.display()))?;
        for (key, flag, now) in
            run_settings
                .iter()
                .chain(std::iter::once(&("vocab", "--data", vocab_json.clone())))
        {
            if let Some(then) = meta.get(*key)
                && then != now
            {
                anyhow::bail!(
                    "{flag} gives {key} = {now} but {} was written with {then}; resume with the \
                     same settings, or train anew",
                    last_path.display()
                );
            }
        }
        let (m, rest) = take_prefix("model.", tensors);
        let (o, _) = take_prefix("optim.", rest);
        vs.load_state(&m, true)?;
        opt.load_state(&o)?;
        let get = |k: &str| {
            meta.get(k)
                .with_context(|| format!("{}: no `{k}`", last_path.display()))
        };
        start = get("epochs_done")?.parse()?;
        let stored: usize = get("epochs")?.parse()?;
        if let Some(given) = args.train.epochs
            && given != stored
        {
            anyhow::bail!(
                "--epochs {given}, but the checkpoint's run is {stored} epochs long: pass --epochs {stored} or leave it out"
            );
        }
        epochs = stored;
        best = get("best_val_bpc")?.parse()?;
        history = serde_json::from_str(get("history")?)?;
        println!(
            "resumed after epoch {start} of {epochs} (best validation {best:.4} bits per character)"
        );
    }
    let mut sched = schedule(&args.optim, opt.as_mut(), epochs * steps, start * steps)?;
    let b = args.train.batch_size;
    let loss_opts = CrossEntropy::default();
    for epoch in start..epochs {
        let pb = progress(steps, format!("epoch {}/{epochs}", epoch + 1));
        let clock = Instant::now();
        let mut total: Option<Tensor> = None;
        for s in 0..steps {
            // Seeded by (seed, epoch, step), so a resumed run draws the same windows.
            let mut rng = StdRng::seed_from_u64(
                args.common.seed ^ ((epoch as u64) << 32) ^ (s as u64).wrapping_mul(0x9E37_79B9),
            );
            let starts: Vec<usize> = (0..b)
                .map(|_| rng.random_range(0..train_ids.len() - t))
                .collect();
            let (x, y) = windows(&train_ids, &starts, t);
            let logits = model.forward_t(&upload(&dev, &x, b, t)?, true)?;
            let v = logits.shape()[2];
            let loss = cross_entropy(
                &logits.reshape(&[b * t, v])?,
                &upload(&dev, &y, b * t, 1)?.reshape(&[b * t])?,
                &loss_opts,
            )?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            if let Some(sc) = sched.as_mut() {
                sc.step_optimizer(opt.as_mut())?;
            }
            let l = loss.detach();
            total = Some(match total {
                Some(sum) => sum.add(&l)?,
                None => l,
            });
            pb.inc(1);
        }
        pb.finish_and_clear();
        let train_bpc = total.expect("one step").item()? as f64 / steps as f64 / LN2;
        let seconds = clock.elapsed().as_secs_f64();
        anyhow::ensure!(
            train_bpc.is_finite(),
            "epoch {}: the training loss is not finite",
            epoch + 1
        );
        let val_bpc = score(&model, &dev, val_ids, t, b.max(32))?;
        let cps = (steps * b * t) as f64 / seconds;
        println!(
            "epoch {:>2}: train {train_bpc:.4} | validation {val_bpc:.4} bits per character \
             (unigram {unigram:.3}: {:.3} below) | {seconds:.1} s, {cps:.0} chars/s",
            epoch + 1,
            unigram - val_bpc
        );
        history.push(
            json!({"epoch": epoch + 1, "train_bpc": train_bpc, "val_bpc": val_bpc,
            "seconds": seconds, "chars_per_second": cps}),
        );
        if val_bpc < best {
            best = val_bpc;
            save(
                &best_path,
                &vs.state(),
                &BTreeMap::from([("val_bpc".to_string(), val_bpc.to_string())]),
            )?;
        }
        let mut meta = BTreeMap::from([
            ("epochs_done".to_string(), (epoch + 1).to_string()),
            ("epochs".to_string(), epochs.to_string()),
            ("best_val_bpc".to_string(), best.to_string()),
            ("history".to_string(), serde_json::to_string(&history)?),
            ("vocab".to_string(), vocab_json.clone()),
        ]);
        for (k, _, v) in &run_settings {
            meta.insert(k.to_string(), v.clone());
        }
        let mut all = with_prefix("model.", &vs.state());
        all.extend(with_prefix("optim.", &opt.state()));
        save(&last_path, &all, &meta)?;
        save_curves(&curves_path, &args.arch, &history, unigram)?;
    }
    anyhow::ensure!(
        best_path.exists(),
        "{} is missing: nothing was trained",
        best_path.display()
    );
    vs.load(&best_path)?;
    let mut samples = Vec::new();
    let mut txt = String::new();
    for (i, &temp) in TEMPERATURES.iter().enumerate() {
        let s = sample(
            &model,
            &dev,
            &vocab,
            "\n\n",
            args.sample_len,
            temp,
            t,
            args.common.seed + i as u64,
        )?;
        println!("--- sample at temperature {temp} ---\n{s}\n---");
        txt.push_str(&format!("--- temperature {temp} ---\n{s}\n\n"));
        samples.push(json!({"temperature": temp, "text": s}));
    }
    let samples_path = out.join("samples.txt");
    std::fs::write(&samples_path, txt).with_context(|| samples_path.display().to_string())?;
    let last = history.last().cloned().unwrap_or(serde_json::Value::Null);
    let metrics = json!({
        "model": format!("char_lm_{}", args.arch),
        "val_bpc": best,
        "unigram_entropy_bits": unigram,
        "bits_below_unigram": unigram - best,
        "epochs": history.len(),
        "steps_per_epoch": steps,
        "seconds_per_epoch": last["seconds"],
        "chars_per_second": last["chars_per_second"],
        "train_chars": train_ids.len(),
        "val_chars": val_ids.len(),
        "vocab": vocab.len(),
        "val_files": val_names,
        "curves_png": curves_path.display().to_string(),
        "samples_txt": samples_path.display().to_string(),
        "samples": samples,
        "history": history,
    });
    finish(out, metrics, &["history", "samples", "val_files"])
}
