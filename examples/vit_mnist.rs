//! Trains a small Vision Transformer on Fashion-MNIST: 7x7 patches (16 per image), a class
//! token, learned positions, 4 pre-norm encoder layers of width 64 with 4 heads, with a
//! validation split and early stopping; reports test accuracy and draws where the class
//! token looks.
//!
//! `scripts/setup.sh && cargo run --release --example vit_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes under `--out` (default
//! `out/vit_mnist`) what the other classifier examples write (`best.safetensors`,
//! `last.safetensors` for `--resume`, `metrics.json`, `curves.png`, `misclassified.png`)
//! and `attention.png`: test images beside the class token's attention over their 16
//! patches in the last layer (averaged over heads, brighter = more attention). The last
//! stdout line is a JSON object of final metrics.

mod common;

use std::path::Path;

use cinder::data::DataLoader;
use cinder::models::{VisionTransformer, VitConfig};
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::picture::{Caption, Grid};
use common::{classify, cli};
use serde_json::json;

/// How many test images the attention picture shows.
const SHOWN: usize = 16;

/// `attention.png`: each test image, then its class-token attention as a 4x4 map blown up
/// to the image's size (scaled to the image's own maximum), captioned with the class.
fn attention_picture(
    model: &VisionTransformer,
    test: &DataLoader,
    out: &Path,
) -> anyhow::Result<Vec<(&'static str, serde_json::Value)>> {
    let batch = test
        .epoch(0)
        .next()
        .ok_or_else(|| anyhow::anyhow!("the test set is empty"))??;
    let n = SHOWN.min(batch.indices.len());
    let x = batch.images.narrow(0, 0, n)?;
    let att = model.class_attention(&x)?.to_vec::<f32>()?; // [n, 16]
    let ds = test.dataset();
    let mut pixels = Vec::new();
    let mut caps: Vec<Caption> = Vec::new();
    let classes = cinder::data::mnist::FASHION_CLASSES;
    for i in 0..n {
        let idx = batch.indices[i];
        pixels.extend(ds.image(idx).iter().map(|&p| p as f32 / 255.0));
        let a = &att[i * 16..(i + 1) * 16];
        let top = a.iter().cloned().fold(f32::MIN_POSITIVE, f32::max);
        for r in 0..28 {
            for c in 0..28 {
                pixels.push(a[(r / 7) * 4 + c / 7] / top);
            }
        }
        let name = classes[ds.labels()[idx] as usize].to_string();
        caps.push(vec![(name, [230, 230, 230])]);
        caps.push(vec![("attention".to_string(), [255, 200, 90])]);
    }
    let path = out.join("attention.png");
    Grid::new(&pixels, [1, 28, 28], 8)
        .scale(4)
        .title(
            "vit: test images and the class token's attention over their 7x7 patches \
             (last layer, mean of 4 heads; brighter = more)",
        )
        .captions(&caps)
        .draw()
        .save(&path)?;
    println!("attention maps of {n} test images in {}", path.display());
    Ok(vec![("attention_png", json!(path.display().to_string()))])
}

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("vit_mnist");
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let cfg = VitConfig {
        seed: args.common.seed,
        ..VitConfig::mnist()
    };
    let model = VisionTransformer::new(&vs.root(), cfg)?;
    let extra = |test: &DataLoader, out: &Path| attention_picture(&model, test, out);
    classify::run_with("vit", &args, &dev, &vs, &model, data, vec![], Some(&extra))
}
