//! Supervised classification: one training epoch and an evaluation pass, with the loss and
//! accuracy accumulated on the device (no readback inside a step; the running loss is read
//! every `report_every` batches for progress).
//!
//! Training stops with an `Err` instead of training on when the loss stops being finite:
//! the running loss is checked each time it is read (every `report_every` batches and at
//! the end of the epoch), and [`check_finite_state`] checks every parameter and buffer of
//! a store with one readback (what the examples run once per epoch, before saving).

use std::time::Instant;

use cinder_autograd::{Tensor, no_grad};
use cinder_data::DataLoader;
use cinder_device::{DType, DeviceTensor, Error, Result};
use cinder_nn::loss::{CrossEntropy, cross_entropy};
use cinder_nn::optim::Optimizer;
use cinder_nn::{ModuleT, VarStore};

/// Mean loss and accuracy over an epoch or an evaluation pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Mean cross-entropy per example.
    pub loss: f32,
    /// Fraction of examples whose arg-max logit is the label.
    pub accuracy: f32,
    /// Examples seen.
    pub examples: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Stats {
    /// Examples per second.
    pub fn images_per_second(&self) -> f64 {
        self.examples as f64 / self.seconds.max(1e-9)
    }
}

/// Device-side running sums of loss and correct predictions.
struct Totals {
    loss: Option<DeviceTensor>,
    correct: Option<DeviceTensor>,
    examples: usize,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            loss: None,
            correct: None,
            examples: 0,
        }
    }

    /// Adds a batch: its mean loss and logits against u32 labels.
    fn add(&mut self, loss: &Tensor, logits: &Tensor, labels: &Tensor) -> Result<()> {
        let b = labels.numel();
        let l = loss.raw().mul_scalar(b as f32)?;
        let pred = logits.raw().argmax_axis(1, false)?.to_dtype(DType::F32)?;
        let hit = pred.eq(&labels.raw().to_dtype(DType::F32)?)?.sum_all()?;
        self.loss = Some(match self.loss.take() {
            Some(t) => t.add(&l)?,
            None => l,
        });
        self.correct = Some(match self.correct.take() {
            Some(t) => t.add(&hit)?,
            None => hit,
        });
        self.examples += b;
        Ok(())
    }

    /// Reads the sums back.
    fn finish(&self, start: Instant) -> Result<Stats> {
        let n = self.examples.max(1) as f32;
        let read = |t: &Option<DeviceTensor>| t.as_ref().map_or(Ok(0.0), |t| t.to_scalar());
        Ok(Stats {
            loss: read(&self.loss)? / n,
            accuracy: read(&self.correct)? / n,
            examples: self.examples,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// After each training step: the batch index, examples so far, and the running mean loss
/// when it was read back this batch (every `report_every` batches).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Batch index within the epoch.
    pub batch: usize,
    /// Examples seen so far this epoch.
    pub seen: usize,
    /// Running mean loss, when read back this batch.
    pub loss: Option<f32>,
}

/// How a diverged run is told: `what` (e.g. "the mean training loss after batch 20 of
/// epoch 3") was `value`, not a finite number.
fn diverged(what: &str, value: f32) -> Error {
    Error::Diverged {
        what: format!("{what} is {value}"),
    }
}

/// Returns `value` when it is finite, else [`Error::Diverged`], whose message says that
/// `what` (a loss, as "the mean training loss of epoch 3") is NaN or infinite, that
/// training stops, and how to find the op that made it. For loops that
/// read their loss themselves (the examples' GAN, VAE, autoencoder, Siamese loops).
pub fn ensure_finite(what: &str, value: f32) -> Result<f32> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(diverged(what, value))
    }
}

/// Checks that every f32 parameter and buffer of `vs` is finite, with one readback (the
/// count of NaN and infinite elements over all of them, from
/// [`DeviceTensor::nonfinite_mask`]). Returns `Ok` for a finite store (and an empty one);
/// [`Error::Diverged`] naming the first variable (parameters first,
/// in creation order) that holds a NaN or an infinity, and how many, when one does (a few
/// more readbacks find it); and the device's error when a readback fails. Run it once per
/// epoch, before saving a checkpoint.
pub fn check_finite_state(vs: &VarStore) -> Result<()> {
    let state: Vec<(String, DeviceTensor)> = vs
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.raw()))
        .filter(|(_, t)| t.dtype() == DType::F32 && t.numel() > 0)
        .collect();
    let mut total: Option<DeviceTensor> = None;
    for (_, t) in &state {
        let c = t.nonfinite_mask()?.sum_all()?;
        total = Some(match total {
            Some(s) => s.add(&c)?,
            None => c,
        });
    }
    let Some(total) = total else { return Ok(()) };
    if total.to_scalar()? == 0.0 {
        return Ok(());
    }
    for (name, t) in &state {
        let bad = t.nonfinite_mask()?.sum_all()?.to_scalar()?;
        if bad != 0.0 {
            return Err(Error::Diverged {
                what: format!(
                    "parameter or buffer `{name}` {:?} holds {bad} NaN or infinite value(s) of {}",
                    t.shape(),
                    t.numel()
                ),
            });
        }
    }
    // The sum saw a non-finite count that no single tensor shows: not expected, but never
    // report a bad store as good.
    Err(Error::Diverged {
        what: "the parameters hold NaN or infinite values".into(),
    })
}

/// Trains `model` for one epoch of `loader` with cross-entropy and `opt`. `after_step` is
/// called after every optimizer step with the optimizer (to set a per-step learning rate)
/// and the [`Step`]. Returns the epoch's mean loss and training accuracy, or the first
/// error: the loader's, the model's, the optimizer's, or (see [`ensure_finite`]) when the running mean loss, read every `report_every` batches and at
/// the end, is NaN or infinite ([`Error::Diverged`]; its message counts batches and epochs from 1, as the
/// examples' progress lines do).
pub fn train_epoch(
    model: &dyn ModuleT,
    opt: &mut dyn Optimizer,
    loader: &DataLoader,
    epoch: u64,
    report_every: usize,
    mut after_step: impl FnMut(&mut dyn Optimizer, Step),
) -> Result<Stats> {
    let start = Instant::now();
    let mut totals = Totals::new();
    let ce = CrossEntropy::default();
    for (i, batch) in loader.epoch(epoch).enumerate() {
        let batch = batch?;
        let (x, y) = (&batch.images, &batch.labels);
        let logits = model.forward_t(x, true)?;
        let loss = cross_entropy(&logits, y, &ce)?;
        opt.zero_grad();
        loss.backward()?;
        opt.step()?;
        no_grad(|| totals.add(&loss, &logits, y))?;
        let running = if report_every > 0 && (i + 1) % report_every == 0 {
            let l =
                totals.loss.as_ref().map_or(Ok(0.0), |t| t.to_scalar())? / totals.examples as f32;
            Some(ensure_finite(
                &format!(
                    "the mean training loss after batch {} of epoch {}",
                    i + 1,
                    epoch + 1
                ),
                l,
            )?)
        } else {
            None
        };
        after_step(
            opt,
            Step {
                batch: i,
                seen: totals.examples,
                loss: running,
            },
        );
    }
    let stats = totals.finish(start)?;
    ensure_finite(
        &format!("the mean training loss of epoch {}", epoch + 1),
        stats.loss,
    )?;
    Ok(stats)
}

/// Evaluates `model` (evaluation mode, no graph) on every batch of `loader`. Returns the
/// mean loss and accuracy and, per example in loader order, the predicted class; or the
/// first error of the loader, the model or a readback.
pub fn evaluate(model: &dyn ModuleT, loader: &DataLoader) -> Result<(Stats, Vec<u32>)> {
    let start = Instant::now();
    let mut totals = Totals::new();
    let mut preds = Vec::with_capacity(loader.dataset().len());
    let ce = CrossEntropy::default();
    let mut pending = Vec::new();
    no_grad(|| -> Result<()> {
        for batch in loader.epoch(0) {
            let batch = batch?;
            let (x, y) = (&batch.images, &batch.labels);
            let logits = model.forward_t(x, false)?;
            let loss = cross_entropy(&logits, y, &ce)?;
            totals.add(&loss, &logits, y)?;
            pending.push(logits.raw().argmax_axis(1, false)?);
        }
        Ok(())
    })?;
    for p in pending {
        preds.extend(p.to_vec::<u32>()?);
    }
    Ok((totals.finish(start)?, preds))
}
