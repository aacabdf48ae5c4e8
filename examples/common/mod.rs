//! What the examples share: the command line, progress bars, pictures and curves, the
//! final JSON line, and checkpoint files.
#![allow(dead_code)]

/// `println!` on rank 0 only (every line in a single-process run; see [`set_rank_zero_only`]).
macro_rules! say {
    ($($t:tt)*) => {
        if $crate::common::speaks() {
            println!($($t)*);
        }
    };
}

pub mod classify;
pub mod cli;
pub mod dist;
pub mod generative;
pub mod picture;
pub mod plot;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cinder::nn::VarStore;
use cinder::nn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use cinder::nn::schedule::{CosineAnnealingLr, LrScheduler};
use indicatif::{ProgressBar, ProgressStyle};

use cli::Optim;

static QUIET: AtomicBool = AtomicBool::new(false);

/// In a data-parallel run, silences this process unless it is rank 0: progress bars are
/// hidden, `say!` prints nothing and [`finish`] neither prints nor writes.
pub fn set_rank_zero_only(is_root: bool) {
    QUIET.store(!is_root, Ordering::Relaxed);
}

/// False on the ranks other than 0 of a data-parallel run (see [`set_rank_zero_only`]).
pub fn speaks() -> bool {
    !QUIET.load(Ordering::Relaxed)
}

/// A progress bar over `len` batches with a message slot for loss and throughput (hidden on
/// the ranks other than 0 of a data-parallel run).
pub fn progress(len: usize, prefix: String) -> ProgressBar {
    if !speaks() {
        return ProgressBar::hidden();
    }
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

/// The optimizer `--optimizer` names, over `vs`'s parameters at the learning rate `lr`:
/// Adam, AdamW (PyTorch's defaults: decoupled weight decay 1e-2 on every parameter, as
/// `torch.optim.AdamW(model.parameters())`) or SGD with momentum 0.9. Returns `Err` for
/// another name.
pub fn optimizer(args: &Optim, lr: f32, vs: &VarStore) -> anyhow::Result<Box<dyn Optimizer>> {
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
    args: &Optim,
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

/// Writes `metrics` to `metrics.json` in `out` (the `--out` directory), then prints it
/// without the keys in `brief_without` (per-epoch history and the like) as the example's
/// last stdout line. Returns `Err` when the file cannot be written. Does nothing on the ranks
/// other than 0 of a data-parallel run.
pub fn finish(
    out: &Path,
    metrics: serde_json::Value,
    brief_without: &[&str],
) -> anyhow::Result<()> {
    if !speaks() {
        return Ok(());
    }
    write_json(&out.join("metrics.json"), &metrics)?;
    let mut last = metrics;
    if let Some(o) = last.as_object_mut() {
        for k in brief_without {
            o.remove(*k);
        }
    }
    println!("{last}");
    Ok(())
}
