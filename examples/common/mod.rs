//! What the examples share: the command line, progress bars, PNG pictures, the final JSON
//! line, and checkpoint files.
#![allow(dead_code)]

pub mod classify;
pub mod generative;
pub mod picture;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cinder::nn::VarStore;
use cinder::nn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use cinder::nn::schedule::{CosineAnnealingLr, LrScheduler};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// The command line every example takes (each uses the options that apply to it).
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Data directory (default: $CINDER_DATA, then /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training epochs, at least 1 [default: 10; with --resume, the checkpoint's].
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Examples per batch, at least 1.
    #[arg(long = "batch-size", default_value_t = 64, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Learning rate, a finite number >= 0 (each example has its own default).
    #[arg(long, value_parser = learning_rate)]
    pub lr: Option<f32>,
    /// Learning-rate schedule: cosine (decay to 0 over the run, per step) or constant.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Optimizer: adam, adamw (decoupled weight decay 1e-2) or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Seed of initialization, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only the first N training images (N at least 1).
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Use only the first N test images (N at least 1).
    #[arg(long = "test-limit", value_parser = at_least_one)]
    pub test_limit: Option<usize>,
    /// Fraction of the training images held out for validation, strictly between 0 and 1.
    #[arg(long = "val-fraction", default_value_t = 0.1, value_parser = open_fraction)]
    pub val_fraction: f32,
    /// Stop after this many epochs in a row without a better validation accuracy (0: never
    /// stop early).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Output directory: checkpoint, metrics.json, pictures.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Architecture of the generative examples: mlp, or conv (autoencoder, vae) / dcgan (gan).
    #[arg(long, default_value = "mlp")]
    pub arch: String,
    /// GAN loss: minimax, nonsaturating, wgan (weight clipping), wgan-gp, lsgan or hinge.
    #[arg(long, default_value = "nonsaturating")]
    pub loss: String,
    /// Conditional GAN (label embedding concatenated to z and to D's input).
    #[arg(long)]
    pub conditional: bool,
    /// Width of the code / latent / embedding, at least 1 (generative examples; default per
    /// example).
    #[arg(long, value_parser = at_least_one)]
    pub latent: Option<usize>,
    /// Denoising autoencoder: standard deviation of the Gaussian input noise (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub noise: f32,
    /// Denoising autoencoder: probability of zeroing each input pixel (masking noise; 0 =
    /// off). Exclusive with `--noise`.
    #[arg(long, default_value_t = 0.0)]
    pub mask: f32,
    /// Sparse autoencoder: weight of the L1 penalty on the code (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub sparsity: f32,
    /// Autoencoder: tie the decoder's weights to the encoder's.
    #[arg(long)]
    pub tied: bool,
    /// GAN: a LeNet-5 checkpoint (lenet_mnist's best.safetensors) that labels generated
    /// samples, for the conditional GAN's class accuracy.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
}

/// Parses a count that must be at least 1 (`--epochs`, `--limit`, `--batch-size`, ...): 0
/// would train or measure nothing and report 0.0 as if it had been measured.
fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e| format!("`{s}` is not a whole number: {e}"))?;
    if n == 0 {
        return Err("must be at least 1 (0 would train or measure nothing)".into());
    }
    Ok(n)
}

/// Parses `--val-fraction`: a number strictly between 0 and 1 (0 leaves no validation
/// images to select the best model on, 1 no training images).
fn open_fraction(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(f > 0.0 && f < 1.0) {
        return Err(
            "must be strictly between 0 and 1 (0 leaves no validation images, 1 no training \
             images)"
                .into(),
        );
    }
    Ok(f)
}

/// Parses `--lr`: a finite number, at least 0.
fn learning_rate(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(f.is_finite() && f >= 0.0) {
        return Err("must be a finite number, at least 0".into());
    }
    Ok(f)
}

/// The default of `--epochs`.
pub const DEFAULT_EPOCHS: usize = 10;

impl Args {
    /// The number of epochs: `--epochs`, or [`DEFAULT_EPOCHS`].
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(DEFAULT_EPOCHS)
    }

    /// `Err` when `--resume` was given to an example that cannot resume (`name` trains
    /// from scratch every time), rather than silently starting over.
    pub fn refuse_resume(&self, name: &str) -> anyhow::Result<()> {
        if self.resume {
            anyhow::bail!(
                "--resume: {name} does not save a training state to resume from (the \
                 classifier examples mlp_mnist, lenet_mnist, vgg_cifar and resnet_cifar do); \
                 run it without --resume to train from scratch"
            );
        }
        Ok(())
    }

    /// Sets the learning rate when `--lr` was not given.
    pub fn default_lr(mut self, lr: f32) -> Args {
        self.lr.get_or_insert(lr);
        self
    }

    /// The learning rate (1e-3 when neither `--lr` nor the example set one).
    pub fn learning_rate(&self) -> f32 {
        self.lr.unwrap_or(1e-3)
    }
}

/// A progress bar over `len` batches with a message slot for loss and throughput.
pub fn progress(len: usize, prefix: String) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb.enable_steady_tick(Duration::from_millis(500));
    pb
}

/// Creates `dir` (and parents).
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}

/// Writes `value` as pretty JSON to `path` through a temp file (`.NAME.tmp-PID-0`, fsynced)
/// and a rename, so `path` holds either the previous file or the new one; the temp files
/// of killed writers are removed first, as a checkpoint save does. Returns `Err` naming the
/// file when it cannot be written (the temp file is then removed).
pub fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} does not name a file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-0", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = cinder::nn::checkpoint::remove_stale_temp_files(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("{}: {e}", path.display())
    })
}

/// The optimizer `--optimizer` names, over `vs`'s parameters at the learning rate: Adam,
/// AdamW (PyTorch's defaults: decoupled weight decay 1e-2 on every parameter, as
/// `torch.optim.AdamW(model.parameters())`) or SGD with momentum 0.9. Returns `Err` for
/// another name.
pub fn optimizer(args: &Args, vs: &VarStore) -> anyhow::Result<Box<dyn Optimizer>> {
    let lr = args.learning_rate();
    Ok(match args.optimizer.as_str() {
        "adam" => Box::new(Adam::new(
            vs.parameters(),
            AdamConfig {
                lr,
                ..Default::default()
            },
        )?),
        "adamw" => Box::new(AdamW::new(
            vs.parameters(),
            AdamWConfig {
                lr,
                ..Default::default()
            },
        )?),
        "sgd" => Box::new(Sgd::new(
            vs.parameters(),
            SgdConfig {
                lr,
                momentum: 0.9,
                ..Default::default()
            },
        )?),
        other => anyhow::bail!("unknown --optimizer {other} (adam, adamw or sgd)"),
    })
}

/// The `--schedule` over a run of `total` steps, `done` of them already taken (a resumed
/// run): cosine decay from each parameter group's initial rate to 0, stepped every batch
/// as PyTorch's CosineAnnealingLR, with `opt`'s rates set to the current values; or `None`
/// for a constant rate. Returns `Err` for another name.
pub fn schedule(
    args: &Args,
    opt: &mut dyn Optimizer,
    total: usize,
    done: usize,
) -> anyhow::Result<Option<CosineAnnealingLr>> {
    match args.schedule.as_str() {
        "cosine" => {
            let mut s = CosineAnnealingLr::new(total.max(1), 0.0)?;
            s.set_epoch(done);
            s.apply(opt)?;
            Ok(Some(s))
        }
        "constant" => Ok(None),
        other => anyhow::bail!("unknown --schedule {other} (cosine or constant)"),
    }
}

/// Writes `metrics` to `metrics.json` under `--out`, then prints it without the keys in
/// `brief_without` (per-epoch history and the like) as the example's last stdout line.
/// Returns `Err` when the file cannot be written.
pub fn finish(
    args: &Args,
    metrics: serde_json::Value,
    brief_without: &[&str],
) -> anyhow::Result<()> {
    write_json(&args.out.join("metrics.json"), &metrics)?;
    let mut last = metrics;
    if let Some(o) = last.as_object_mut() {
        for k in brief_without {
            o.remove(*k);
        }
    }
    println!("{last}");
    Ok(())
}
