//! Neural style transfer with Gram matrices (Gatys, Ecker and Bethge): the pixels of an
//! image are the parameters, optimized with Adam so that a CNN's features match those of a
//! content image and the Gram matrices of its features match those of a style image.
//!
//! `cargo run --release --example style_transfer -- [--weights FILE] [--content PNG]
//! [--style PNG] [--size 64] [--steps 300]`.
//!
//! The network: with `--weights`, a torchvision VGG-16 saved as safetensors
//! (`safetensors.torch.save_file(torchvision.models.vgg16(weights=...).state_dict(), F)`;
//! only `features.*` is read), content `relu4_2`, style `relu1_1 .. relu5_1`, ImageNet
//! normalization, colour images. Without one (nothing can be downloaded here), a VGG-11
//! (quarter widths, one input channel) that this example first trains on Fashion-MNIST for
//! `--pretrain-steps` batches, saved as `fashion_vgg11.safetensors` under `--out` (pass it
//! back as `--weights` to skip the training), content `relu3_2`, style `relu1_1 ..
//! relu4_1`, grey images. Gram statistics of any bank of varied convolution filters
//! describe texture (random filters already do, as the tests show); filters trained on
//! garments respond to edges, stripes and fabric-like patterns, so their statistics carry
//! a style.
//!
//! Images: `--content` and `--style` PNG files, resized to `--size` pixels square; by
//! default the first Fashion-MNIST test image (an ankle boot) and a generated pattern of
//! diagonal stripes. Writes under `--out` (default `out/style_transfer`): `content.png`,
//! `style.png`, `result.png`, `curves.png` (content and style loss per step) and
//! `metrics.json`; the last stdout line is a JSON object of final metrics.

mod common;

use std::path::Path;
use std::time::Instant;

use cinder::models::train::ensure_finite;
use cinder::models::{StyleConfig, StyleTransfer, VGG11, VGG16, Vgg};
use cinder::nn::loss::{CrossEntropy, cross_entropy};
use cinder::nn::optim::{Adam, AdamConfig};
use cinder::nn::{ModuleT, VarStore};
use cinder::prelude::*;
use common::generative::{load, loader};
use common::picture::Grid;
use common::plot::{Panel, Series, curves};
use common::{cli, ensure_dir, finish, progress};
use serde_json::json;

/// A network to transfer style with, and how.
struct Net {
    vgg: Vgg,
    _vs: VarStore,
    cfg: StyleConfig,
    channels: usize,
    what: String,
}

/// Reads a PNG as `channels` planes in `[0, 1]` (grey from colour by the Rec. 601 weights,
/// colour from grey by repetition), resized to `size` x `size`.
fn read_png(path: &Path, channels: usize, size: usize) -> anyhow::Result<Vec<f32>> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let f = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| err(&e))?;
    let mut buf = vec![
        0;
        r.output_buffer_size()
            .ok_or_else(|| err(&"image too large"))?
    ];
    let info = r.next_frame(&mut buf).map_err(|e| err(&e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let src_c = info.color_type.samples();
    let mut out = Vec::with_capacity(channels * size * size);
    for c in 0..channels {
        let plane: Vec<f32> = buf[..w * h * src_c]
            .chunks_exact(src_c)
            .map(|p| {
                let v = match (src_c, channels) {
                    (1 | 2, _) => p[0] as u32,
                    (_, 1) => (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000,
                    _ => p[c.min(2)] as u32,
                };
                v as f32 / 255.0
            })
            .collect();
        out.extend(resize(&plane, h, w, size));
    }
    Ok(out)
}

/// One `[h, w]` plane resized bilinearly (pixel centres aligned) to `size` x `size`.
fn resize(img: &[f32], h: usize, w: usize, size: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let fy = ((y as f32 + 0.5) * h as f32 / size as f32 - 0.5).clamp(0.0, (h - 1) as f32);
            let fx = ((x as f32 + 0.5) * w as f32 / size as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (y0, x0) = (fy as usize, fx as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
            let at = |yy: usize, xx: usize| img[yy * w + xx];
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
            let bot = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
            out.push(top * (1.0 - ty) + bot * ty);
        }
    }
    out
}

/// Diagonal stripes, period 8 pixels, with a finer cross-hatch: the default style.
fn stripes(channels: usize, size: usize) -> Vec<f32> {
    let tau = std::f32::consts::TAU;
    let one: Vec<f32> = (0..size * size)
        .map(|i| {
            let (y, x) = ((i / size) as f32, (i % size) as f32);
            let a = (tau * (x + y) / 8.0).sin();
            let b = (tau * (x - y) / 3.0).sin();
            (0.5 + 0.35 * a + 0.12 * b).clamp(0.0, 1.0)
        })
        .collect();
    one.repeat(channels)
}

/// torchvision's VGG-16 from `path` (only `features.*`), or Err naming what is missing.
fn torchvision_vgg16(dev: &Device, path: &Path) -> anyhow::Result<Net> {
    let vs = VarStore::new(dev, 0);
    let vgg = Vgg::new(&vs.root(), VGG16, 3, 1, false, 1)?;
    let report = vs.load_partial(path)?;
    let missing: Vec<&String> = report
        .missing
        .iter()
        .filter(|n| n.starts_with("features."))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: not a torchvision VGG-16 state dict (missing {missing:?})",
            path.display()
        );
    }
    Ok(Net {
        vgg,
        _vs: vs,
        cfg: StyleConfig::vgg16(),
        channels: 3,
        what: format!("torchvision VGG-16 from {}", path.display()),
    })
}

/// The grey VGG-11 at quarter widths this example trains on Fashion-MNIST.
fn fashion_vgg(vs: &VarStore) -> anyhow::Result<Vgg> {
    Ok(Vgg::new(&vs.root(), VGG11, 1, 10, false, 4)?)
}

fn fashion_config() -> StyleConfig {
    // VGG-11's ReLUs: relu1_1 = 1, relu2_1 = 4, relu3_1 = 7, relu3_2 = 9, relu4_1 = 12
    StyleConfig {
        content_layers: vec![9],
        style_layers: vec![1, 4, 7, 12],
        content_weight: 1.0,
        style_weight: 1e5,
        normalize: None,
    }
}

/// Trains [`fashion_vgg`] on Fashion-MNIST (padded to 32x32) for `steps` batches of 64 and
/// saves it; returns it and its test accuracy on 1,000 images.
fn pretrain(args: &cli::StyleTransfer, dev: &Device, file: &Path) -> anyhow::Result<(Net, f32)> {
    let vs = VarStore::new(dev, args.common.seed);
    let vgg = fashion_vgg(&vs)?;
    let (train, test) = load(&args.common, Some(1000))?;
    let l = loader(dev, train, 64, Some(args.common.seed), false)?;
    let mut opt = Adam::new(
        vs.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    let ce = CrossEntropy::default();
    let pb = progress(
        args.pretrain_steps,
        "pretraining VGG-11/4 on Fashion-MNIST".into(),
    );
    let pad = |x: &Tensor| x.pad(&[(2, 2), (2, 2)], 0.0);
    let mut step = 0;
    'outer: for epoch in 0.. {
        for b in l.epoch(epoch) {
            if step == args.pretrain_steps {
                break 'outer;
            }
            let b = b?;
            let loss = cross_entropy(&vgg.forward_t(&pad(&b.images)?, true)?, &b.labels, &ce)?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            step += 1;
            pb.inc(1);
            if step % 50 == 0 {
                let v = ensure_finite("the pretraining loss", loss.item()?)?;
                pb.set_message(format!("loss {v:.4}"));
            }
        }
    }
    pb.finish_and_clear();
    let (mut right, mut n) = (0usize, 0usize);
    no_grad(|| -> anyhow::Result<()> {
        for b in loader(dev, test, 250, None, false)?.epoch(0) {
            let b = b?;
            let p = vgg
                .forward_t(&pad(&b.images)?, false)?
                .raw()
                .argmax_axis(1, false)?;
            let (p, y) = (p.to_vec::<u32>()?, b.labels.to_vec::<u32>()?);
            right += p.iter().zip(&y).filter(|(a, b)| a == b).count();
            n += y.len();
        }
        Ok(())
    })?;
    vs.save(file)?;
    let acc = right as f32 / n.max(1) as f32;
    println!(
        "pretrained VGG-11/4 on Fashion-MNIST: {} steps of 64, test accuracy {acc:.4} (1,000 images); saved {}",
        args.pretrain_steps,
        file.display()
    );
    Ok((
        Net {
            vgg,
            _vs: vs,
            cfg: fashion_config(),
            channels: 1,
            what: format!(
                "VGG-11/4 trained here on Fashion-MNIST ({} steps)",
                args.pretrain_steps
            ),
        },
        acc,
    ))
}

/// The network `--weights` names: torchvision's VGG-16 or this example's Fashion VGG.
fn from_weights(dev: &Device, path: &Path) -> anyhow::Result<Net> {
    let file = cinder::nn::checkpoint::CheckpointFile::open(path)?;
    let first = file.get("features.0.weight").map(|t| t.shape.clone());
    drop(file);
    match first.as_deref() {
        Some([64, 3, 3, 3]) => torchvision_vgg16(dev, path),
        Some([16, 1, 3, 3]) => {
            let vs = VarStore::new(dev, 0);
            let vgg = fashion_vgg(&vs)?;
            vs.load(path)?;
            Ok(Net {
                vgg,
                _vs: vs,
                cfg: fashion_config(),
                channels: 1,
                what: format!("VGG-11/4 trained on Fashion-MNIST, from {}", path.display()),
            })
        }
        other => anyhow::bail!(
            "{}: features.0.weight is {other:?}; expected a torchvision VGG-16 ([64, 3, 3, 3]) or this example's fashion_vgg11.safetensors ([16, 1, 3, 3])",
            path.display()
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let args: cli::StyleTransfer = cli::parse("style_transfer");
    let (out, size) = (&args.common.out, args.size);
    ensure_dir(out)?;
    let dev = Device::default()?;
    let t0 = Instant::now();
    let (net, pretrain_acc) = match &args.weights {
        Some(p) => (from_weights(&dev, p)?, None),
        None => {
            let (n, a) = pretrain(&args, &dev, &out.join("fashion_vgg11.safetensors"))?;
            (n, Some(a))
        }
    };
    let c = net.channels;
    let content = match &args.content {
        Some(p) => read_png(p, c, size)?,
        None => {
            let (_, test) = load(&args.common, Some(1))?;
            let img: Vec<f32> = test.image(0).iter().map(|&p| p as f32 / 255.0).collect();
            resize(&img, 28, 28, size).repeat(c)
        }
    };
    let style = match &args.style {
        Some(p) => read_png(p, c, size)?,
        None => stripes(c, size),
    };
    let content = Tensor::from_slice(&dev, &content, &[1, c, size, size])?;
    let style = Tensor::from_slice(&dev, &style, &[1, c, size, size])?;
    let mut cfg = net.cfg.clone();
    if let Some(w) = args.style_weight {
        cfg.style_weight = w;
    }
    let style_weight = cfg.style_weight;
    let st = StyleTransfer::new(&net.vgg, &content, &style, cfg)?;
    let mut opt = Adam::new(
        vec![st.image().clone()],
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    )?;
    println!(
        "style transfer: {}; {size}x{size}, {} channel(s), {} Adam steps at lr {}, style weight {style_weight}; adapter {}",
        net.what,
        c,
        args.steps,
        args.lr,
        dev.adapter_info().name
    );
    let (mut content_curve, mut style_curve) = (vec![], vec![]);
    let start = Instant::now();
    let pb = progress(args.steps, "optimizing the image".into());
    let first = st.losses()?;
    let (c0, s0) = (first.content.item()?, first.style.item()?);
    for step in 0..args.steps {
        let l = st.losses()?;
        opt.zero_grad();
        l.total.backward()?;
        opt.step()?;
        st.clamp_image()?;
        pb.inc(1);
        if step % 10 == 0 || step + 1 == args.steps {
            let (cv, sv) = (l.content.item()?, l.style.item()?);
            ensure_finite("the style loss", sv)?;
            content_curve.push(cv as f64);
            style_curve.push(sv as f64);
            pb.set_message(format!("content {cv:.4e} style {sv:.4e}"));
        }
    }
    pb.finish_and_clear();
    let last = st.losses()?;
    let (c1, s1) = (last.content.item()?, last.style.item()?);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "style loss {s0:.4e} -> {s1:.4e} ({:.1}x lower), content loss {c0:.4e} -> {c1:.4e}, {secs:.1} s ({:.2} s per step)",
        s0 / s1.max(f32::MIN_POSITIVE),
        secs / args.steps as f64
    );
    for (t, name, title) in [
        (&content, "content.png", "content"),
        (&style, "style.png", "style"),
        (st.image(), "result.png", "result"),
    ] {
        // small images are drawn 4x (up to 256 pixels a side) so that a person can see them
        let scale = (256 / size).clamp(1, 4);
        let v = t.detach().to_vec::<f32>()?;
        Grid::new(&v, [c, size, size], 1)
            .range(0.0, 1.0)
            .scale(scale)
            .title(title)
            .draw()
            .save(&out.join(name))?;
    }
    let per10 = |v: &[f64]| Series::per_epoch("", v.iter().copied());
    curves(
        &out.join("curves.png"),
        "step / 10",
        &[
            Panel {
                title: "content loss".into(),
                y_label: "feature MSE".into(),
                series: vec![per10(&content_curve)],
            },
            Panel {
                title: "style loss".into(),
                y_label: "Gram MSE, summed over layers".into(),
                series: vec![per10(&style_curve)],
            },
        ],
    )?;
    let metrics = json!({
        "model": "style_transfer",
        "network": net.what,
        "pretrain_test_accuracy": pretrain_acc,
        "size": size,
        "steps": args.steps,
        "lr": args.lr,
        "style_weight": style_weight,
        "content_loss_start": c0,
        "content_loss_end": c1,
        "style_loss_start": s0,
        "style_loss_end": s1,
        "style_loss_reduction": s0 / s1.max(f32::MIN_POSITIVE),
        "seconds_per_step": secs / args.steps as f64,
        "seconds": t0.elapsed().as_secs_f64(),
        "result_png": out.join("result.png").display().to_string(),
    });
    finish(out, metrics, &[])?;
    Ok(())
}
