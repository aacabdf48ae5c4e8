//! Topic models on the fortunes Debian ships, every heavy step on the GPU: pLSA by EM and
//! LDA by batch variational Bayes (scikit-learn's `learning_method="batch"`).
//!
//! `cargo run --release --example topics -- [--k 10] [--iter 10] [--vocab 1000]
//!  [--method plsa|lda|both] [--limit N] [--seed 0] [--data DIR] [--out out/topics]`
//! (`--help` lists them).
//!
//! Documents are single fortunes (`cinder::data::bow`); every 10th is held out. The
//! vocabulary is `CountVectorizer(stop_words="english", min_df=2, max_df=0.5,
//! max_features=--vocab)` on the training documents. Prints each topic's top 10 words,
//! the held-out perplexity of each method and the fit times. Writes under `--out`:
//! `counts.safetensors` (`train` and `held_out`, f32 `[docs, vocab]`), `vocabulary.json`
//! (so `scripts/sklearn_compare/topics.py` fits the identical data) and `metrics.json`;
//! the last stdout line is one JSON object with the metrics.

mod common;

use std::path::Path;
use std::time::Instant;

use cinder::data::bow::{self, CountVectorizer, DocFreq};
use cinder::data::text::fortunes_dir;
use cinder::models::classical::{LatentDirichletAllocation, Plsa};
use cinder::prelude::*;
use common::{cli, ensure_dir, finish, progress};
use serde_json::json;

/// Writes f32 matrices as a safetensors file (header by hand: 8-byte length, JSON, data).
fn write_safetensors(path: &Path, tensors: &[(&str, &[f32], [usize; 2])]) -> anyhow::Result<()> {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, data, shape) in tensors {
        let nb = data.len() * 4;
        header.insert(
            name.to_string(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + nb]}),
        );
        off += nb;
    }
    let mut h = serde_json::to_vec(&header)?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + h.len() + off);
    bytes.extend_from_slice(&(h.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&h);
    for (_, data, _) in tensors {
        for v in data.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The `top` highest-weighted words of every row of a `[k, V]` matrix.
fn top_words(w: &[f32], k: usize, vocab: &[String], top: usize) -> Vec<Vec<String>> {
    let v = vocab.len();
    (0..k)
        .map(|t| {
            let row = &w[t * v..(t + 1) * v];
            let mut idx: Vec<usize> = (0..v).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            idx[..top.min(v)]
                .iter()
                .map(|&i| vocab[i].clone())
                .collect()
        })
        .collect()
}

fn print_topics(name: &str, topics: &[Vec<String>]) {
    for (t, words) in topics.iter().enumerate() {
        println!("{name} topic {t:2}: {}", words.join(" "));
    }
}

fn main() -> anyhow::Result<()> {
    let args: cli::Topics = cli::parse("topics");
    let seed = args.common.seed;
    let out = &args.common.out;
    ensure_dir(out)?;
    let dev = Device::default()?;

    let dir = fortunes_dir(args.common.data.as_deref());
    let mut docs = bow::read_fortune_documents(&dir)?;
    if let Some(limit) = args.common.limit
        && docs.len() > limit
    {
        let step = docs.len().div_ceil(limit);
        docs = docs.into_iter().step_by(step).take(limit).collect();
    }
    let texts: Vec<String> = docs.into_iter().map(|d| d.text).collect();
    let (train, held) = bow::split_every(texts, 10)?;
    let mut vec = CountVectorizer::new()
        .with_stop_words(true)
        .with_min_df(DocFreq::Count(2))
        .with_max_df(DocFreq::Fraction(0.5))
        .with_max_features(Some(args.vocab));
    let x = vec.fit_transform(&dev, &train)?;
    let xh = vec.transform(&dev, &held)?;
    let vocab = vec.vocabulary().to_vec();
    let v = vocab.len();
    println!(
        "{} fortunes from {}: {} training, {} held out, vocabulary {v}",
        train.len() + held.len(),
        dir.display(),
        train.len(),
        held.len()
    );
    write_safetensors(
        &out.join("counts.safetensors"),
        &[
            ("train", &x.to_vec::<f32>()?, [train.len(), v]),
            ("held_out", &xh.to_vec::<f32>()?, [held.len(), v]),
        ],
    )?;
    std::fs::write(
        out.join("vocabulary.json"),
        serde_json::to_string(&json!({"vocabulary": vocab, "k": args.k, "iter": args.iter}))?,
    )?;

    let mut metrics = json!({
        "adapter": dev.adapter_info().name,
        "train_docs": train.len(),
        "held_out_docs": held.len(),
        "vocabulary": v,
        "k": args.k,
        "iter": args.iter,
        "seed": seed,
    });
    if args.method != "lda" {
        let t = Instant::now();
        let pb = progress(args.iter, "plsa".into());
        let mut plsa = Plsa::new(args.k)
            .with_max_iter(args.iter)
            .with_tol(0.0)
            .with_seed(seed);
        plsa.fit_with(&x, |_, ll| {
            pb.set_message(format!("log-likelihood {ll:.4e}"));
            pb.inc(1);
        })?;
        dev.sync()?;
        pb.finish_and_clear();
        let fit_s = t.elapsed().as_secs_f64();
        let ppl = plsa.perplexity(&xh)?;
        let train_ppl = plsa.perplexity(&x)?;
        let topics = top_words(&plsa.components()?.to_vec::<f32>()?, args.k, &vocab, 10);
        print_topics("plsa", &topics);
        println!("plsa: held-out perplexity {ppl:.1} (training {train_ppl:.1}), fit {fit_s:.2} s");
        metrics["plsa_held_out_perplexity"] = json!(ppl);
        metrics["plsa_train_perplexity"] = json!(train_ppl);
        metrics["plsa_fit_seconds"] = json!(fit_s);
        metrics["plsa_top_words"] = json!(topics);
    }
    if args.method != "plsa" {
        let t = Instant::now();
        let pb = progress(args.iter, "lda".into());
        let mut lda = LatentDirichletAllocation::new(args.k)
            .with_max_iter(args.iter)
            .with_seed(seed);
        lda.fit_with(&x, |_| pb.inc(1))?;
        dev.sync()?;
        pb.finish_and_clear();
        let fit_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ppl = lda.perplexity(&xh)?;
        let ppl_s = t.elapsed().as_secs_f64();
        let topics = top_words(&lda.components()?.to_vec::<f32>()?, args.k, &vocab, 10);
        print_topics("lda", &topics);
        println!("lda: held-out perplexity {ppl:.1}, fit {fit_s:.2} s (perplexity {ppl_s:.2} s)");
        metrics["lda_held_out_perplexity"] = json!(ppl);
        metrics["lda_fit_seconds"] = json!(fit_s);
        metrics["lda_top_words"] = json!(topics);
    }
    finish(out, metrics, &["plsa_top_words", "lda_top_words"])?;
    Ok(())
}
