//! Times the save and the load of a checkpoint of about `MB` megabytes of f32 (default
//! 100), one phase per process so that `/usr/bin/time -v` gives each phase's peak RSS:
//!
//! ```sh
//! cargo build -p cinder-nn --example checkpoint_bench
//! /usr/bin/time -v target/debug/examples/checkpoint_bench save /tmp/b.safetensors 100
//! /usr/bin/time -v target/debug/examples/checkpoint_bench load /tmp/b.safetensors
//! target/debug/examples/checkpoint_bench read /tmp/b.safetensors   # to host memory
//! ```
//!
//! The checkpoint is 25 f32 tensors `[1000, MB * 10]` (4 MB each for MB = 100) and an
//! I64 scalar, as a model's `state_dict` with a BatchNorm counter. Each phase prints its
//! wall time and, on Linux, the peak over the phase (sampled every millisecond from
//! `/proc/self/status`) of the host memory (`RssAnon + RssFile`: heap and mapped files)
//! and of the shared memory (`RssShmem`), which on lavapipe is the device's memory. The
//! figures are in docs/checkpoints.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cinder_autograd::Tensor;
use cinder_device::{Device, Result};
use cinder_nn::checkpoint::{self, FileDType};

/// `(RssAnon + RssFile, RssShmem)` of this process in kB, `None` without `/proc`.
fn rss_kb() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((field("RssAnon:") + field("RssFile:"), field("RssShmem:")))
}

/// Runs `f`, sampling the memory every millisecond; prints `what` with the wall time and
/// the peaks, before and during.
fn measure<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = rss_kb();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                if let Some((host, shmem)) = rss_kb() {
                    peak = (peak.0.max(host), peak.1.max(shmem));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        })
    };
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or((0, 0));
    let mb = |kb: u64| kb / 1024;
    match before {
        Some((host, shmem)) => println!(
            "{what}: {secs:.3} s; host memory {} MB before, peak {} MB; shared (device) \
             memory {} MB before, peak {} MB",
            mb(host),
            mb(peak.0.max(host)),
            mb(shmem),
            mb(peak.1.max(shmem))
        ),
        None => println!("{what}: {secs:.3} s"),
    }
    out
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: checkpoint_bench save PATH [MB] | load PATH | read PATH";
    let (Some(phase), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dev = Device::default()?;
    match phase.as_str() {
        "save" => {
            let mb: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
            let cols = mb * 10;
            let mut tensors = Vec::new();
            for t in 0..25 {
                let v: Vec<f32> = (0..1000 * cols)
                    .map(|i| ((i + t * 7919) % 1999) as f32 * 1e-3 - 1.0)
                    .collect();
                let name = format!("layer{t:02}.weight");
                tensors.push((name, Tensor::from_slice(&dev, &v, &[1000, cols])?));
            }
            let counter = "bn.num_batches_tracked".to_string();
            tensors.push((counter.clone(), Tensor::from_slice(&dev, &[12u32], &[])?));
            dev.sync()?;
            let dtypes = BTreeMap::from([(counter, FileDType::I64)]);
            let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            measure(&format!("save ({bytes} bytes before)"), || {
                checkpoint::save_as(path, &tensors, &dtypes, &meta)
            })?;
        }
        "load" => {
            let tensors = measure("load", || {
                let t = checkpoint::load(path, &dev)?;
                dev.sync()?;
                Ok(t)
            })?;
            let n: usize = tensors.iter().map(|(_, t)| t.numel()).sum();
            println!("loaded {} tensors, {n} elements", tensors.len());
        }
        "read" => {
            let ck = measure("read", || checkpoint::read(path))?;
            println!("read {} tensors", ck.tensors.len());
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    Ok(())
}
