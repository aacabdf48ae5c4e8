//! What the generative examples share: data with --limit/--test-limit, host copies of
//! images, a 2-D scatter plot coloured by class, and image grids from tensors.

use std::path::Path;
use std::sync::Arc;

use cinder::data::mnist::{self, Split};
use cinder::data::{DataLoader, Dataset, Transform};
use cinder::device::Device;
use cinder::models::train::ensure_finite;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;

use super::Args;
use super::picture::{Canvas, grid};

/// Ten distinguishable colours, one per class.
pub const COLORS: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [67, 99, 216],
    [245, 130, 49],
    [145, 30, 180],
    [66, 212, 244],
    [240, 50, 230],
    [191, 239, 69],
    [250, 190, 212],
];

/// The training and test sets of Fashion-MNIST (or --data), cut by --limit and
/// --test-limit.
pub fn load(args: &Args) -> anyhow::Result<(Dataset, Dataset)> {
    let dir = mnist::data_dir(args.data.as_deref());
    let mut train = mnist::load(&dir, Split::Train)?;
    let mut test = mnist::load(&dir, Split::Test)?;
    if let Some(n) = args.limit {
        train = train.take(n);
    }
    if let Some(n) = args.test_limit {
        test = test.take(n);
    }
    Ok((train, test))
}

/// Batches of `d` in `[0, 1]` (or `[-1, 1]` when `signed`), shuffled when `seed` is given.
pub fn loader(
    dev: &Device,
    d: Dataset,
    batch: usize,
    seed: Option<u64>,
    signed: bool,
) -> anyhow::Result<DataLoader> {
    let mut l = DataLoader::new(dev, Arc::new(d), batch)?;
    if let Some(s) = seed {
        l = l.shuffle(s);
    }
    if signed {
        l = l.transforms(vec![Transform::Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        }]);
    }
    Ok(l)
}

/// The first `n` images of `d` as a `[n, C, H, W]` tensor in `[0, 1]`.
pub fn first_images(dev: &Device, d: &Dataset, n: usize) -> anyhow::Result<Tensor> {
    let n = n.min(d.len());
    let [c, h, w] = d.image_shape();
    let px: Vec<f32> = d.images()[..n * c * h * w]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    Ok(Tensor::from_slice(dev, &px, &[n, c, h, w])?)
}

/// Writes the images of `t` (`[N, C, H, W]`, values in `range`) as a grid, `cols` per row.
pub fn save_grid(t: &Tensor, cols: usize, range: (f32, f32), path: &Path) -> anyhow::Result<()> {
    let s = t.shape();
    let v = t.to_vec::<f32>()?;
    grid(&v, [s[1], s[2], s[3]], cols, range, 2, None).save(path)
}

/// A `size` x `size` scatter plot of 2-D points (`xy` flat, two per point) coloured by
/// `labels`, with the class legend (digit in its colour) along the top.
pub fn scatter(xy: &[f32], labels: &[u8], size: usize, path: &Path) -> anyhow::Result<()> {
    let mut c = Canvas::new(size, size + 14, [255, 255, 255]);
    for (k, &color) in COLORS.iter().enumerate() {
        c.number(4 + k * 14, 2, k, color, 2);
    }
    let (xs, ys): (Vec<f32>, Vec<f32>) = xy.chunks(2).map(|p| (p[0], p[1])).unzip();
    // robust bounds: 1st and 99th percentiles
    let bounds = |v: &[f32]| {
        let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f32::total_cmp);
        if s.is_empty() {
            return (0.0, 1.0);
        }
        let lo = s[s.len() / 100];
        let hi = s[(s.len() * 99 / 100).min(s.len() - 1)];
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let ((x0, x1), (y0, y1)) = (bounds(&xs), bounds(&ys));
    let m = 6.0;
    let span = size as f32 - 2.0 * m;
    for ((x, y), &l) in xs.iter().zip(&ys).zip(labels) {
        let px = m + (x - x0) / (x1 - x0) * span;
        let py = m + (1.0 - (y - y0) / (y1 - y0)) * span + 14.0;
        if !(px.is_finite() && py.is_finite()) {
            continue;
        }
        let (px, py) = (px.round() as i64, py.round() as i64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (xx, yy) = (px + dx, py + dy);
                if xx >= 0 && yy >= 0 {
                    c.set(xx as usize, yy as usize, COLORS[l as usize % 10]);
                }
            }
        }
    }
    c.save(path)
}

/// Seconds since `start`, formatted for the epoch lines.
pub fn secs(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// One training epoch of an unsupervised model. `loss(x, step)` returns the tensor to
/// minimize and the one to report (they differ when a penalty is added); the optimizer
/// steps, `schedule` (when given) advances every step, and the bar shows the running mean
/// of the reported value, read back every 20 steps. Returns the epoch's mean of the
/// reported value, or the first error: a loader's, a step's, or (from
/// [`ensure_finite`]) a running or final mean that is NaN or infinite, so that a diverged
/// run stops instead of training on.
#[allow(clippy::too_many_arguments)]
pub fn train_epoch(
    loader: &DataLoader,
    epoch: usize,
    epochs: usize,
    opt: &mut dyn Optimizer,
    mut schedule: Option<&mut dyn LrScheduler>,
    step: &mut u64,
    label: &str,
    mut loss: impl FnMut(&Tensor, u64) -> cinder::Result<(Tensor, Tensor)>,
) -> anyhow::Result<f64> {
    let pb = super::progress(
        loader.num_batches(),
        format!("epoch {}/{epochs}", epoch + 1),
    );
    let mut sum: Option<Tensor> = None;
    for batch in loader.epoch(epoch as u64) {
        let x = Tensor::from_data(batch?.images);
        let (minimize, report) = loss(&x, *step)?;
        opt.zero_grad();
        minimize.backward()?;
        opt.step()?;
        if let Some(s) = schedule.as_deref_mut() {
            s.step_optimizer(opt)?;
        }
        let r = report.detach();
        sum = Some(match sum {
            Some(s) => s.add(&r)?,
            None => r,
        });
        *step += 1;
        pb.inc(1);
        if step.is_multiple_of(20) {
            let mean = sum.as_ref().map_or(Ok(0.0), |s| s.item())? / pb.position() as f32;
            let what = format!(
                "the mean training {label} after batch {} of epoch {}",
                pb.position(),
                epoch + 1
            );
            pb.set_message(format!("{label} {:.5}", ensure_finite(&what, mean)?));
        }
    }
    pb.finish_and_clear();
    let total = sum.map_or(Ok(0.0), |s| s.item())?;
    let mean = total as f64 / loader.num_batches().max(1) as f64;
    let what = format!("the mean training {label} of epoch {}", epoch + 1);
    ensure_finite(&what, mean as f32)?;
    Ok(mean)
}
