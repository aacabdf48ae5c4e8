//! What the generative examples share: data with --limit/--test-limit, host copies of
//! images, image grids from tensors, and a training epoch.

use std::path::Path;
use std::sync::Arc;

use cinder::data::mnist::{self, Split};
use cinder::data::{DataLoader, Dataset, Transform};
use cinder::device::Device;
use cinder::models::train::ensure_finite;
use cinder::nn::schedule::LrScheduler;
use cinder::prelude::*;

use super::cli::Common;
use super::picture::Grid;

/// Fashion-MNIST's training set from `--data` (or `$CINDER_DATA`, or Debian's package),
/// cut by `--limit`.
pub fn load_train(args: &Common) -> anyhow::Result<Dataset> {
    let dir = mnist::data_dir(args.data.as_deref());
    let train = mnist::load(&dir, Split::Train)?;
    Ok(match args.limit {
        Some(n) => train.take(n),
        None => train,
    })
}

/// The training and test sets of Fashion-MNIST, cut by `--limit` and `test_limit`.
pub fn load(args: &Common, test_limit: Option<usize>) -> anyhow::Result<(Dataset, Dataset)> {
    let train = load_train(args)?;
    let dir = mnist::data_dir(args.data.as_deref());
    let test = mnist::load(&dir, Split::Test)?;
    let test = match test_limit {
        Some(n) => test.take(n),
        None => test,
    };
    Ok((train, test))
}

/// Fashion-MNIST's class names, by label.
pub fn class_names() -> Vec<String> {
    mnist::FASHION_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect()
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

/// Writes the images of `t` (`[N, C, H, W]`, values in `range`) as a grid, `cols` per row,
/// with `title` above it and `rows` (when not empty) left of its rows.
pub fn save_grid(
    t: &Tensor,
    cols: usize,
    range: (f32, f32),
    title: &str,
    rows: &[String],
    path: &Path,
) -> anyhow::Result<()> {
    let s = t.shape();
    let v = t.to_vec::<f32>()?;
    let mut g = Grid::new(&v, [s[1], s[2], s[3]], cols)
        .range(range.0, range.1)
        .title(title);
    if !rows.is_empty() {
        g = g.row_labels(rows);
    }
    g.draw().save(path)
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
        let x = batch?.images;
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
