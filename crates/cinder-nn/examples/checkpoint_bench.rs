//! Times the save and the load of a checkpoint of about `MB` megabytes of f32 (default
//! 100), one phase per process so that `/usr/bin/time -v` gives each phase's peak RSS:
//!
//! ```sh
//! cargo build -p cinder-nn --example checkpoint_bench
//! /usr/bin/time -v target/debug/examples/checkpoint_bench save /tmp/b.safetensors 100
//! /usr/bin/time -v target/debug/examples/checkpoint_bench load /tmp/b.safetensors
//! ```
//!
//! The checkpoint is 25 f32 tensors `[1000, MB * 10]` (4 MB each for MB = 100) and an
//! I64 scalar, as a model's `state_dict` with a BatchNorm counter. The figures are in
//! docs/checkpoints.md.

use std::collections::BTreeMap;
use std::time::Instant;

use cinder_device::{Device, DeviceTensor, Result};
use cinder_nn::checkpoint::{self, FileDType};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: checkpoint_bench save PATH [MB] | load PATH";
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
                tensors.push((name, DeviceTensor::from_slice(&dev, &v, &[1000, cols])?));
            }
            let counter = "bn.num_batches_tracked".to_string();
            tensors.push((
                counter.clone(),
                DeviceTensor::from_slice(&dev, &[12u32], &[])?,
            ));
            dev.sync()?;
            let dtypes = BTreeMap::from([(counter, FileDType::I64)]);
            let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
            let start = Instant::now();
            checkpoint::save_as(path, &tensors, &dtypes, &meta)?;
            let secs = start.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!("save: {bytes} bytes in {secs:.3} s");
        }
        "load" => {
            let start = Instant::now();
            let tensors = checkpoint::load(path, &dev)?;
            dev.sync()?;
            let secs = start.elapsed().as_secs_f64();
            let n: usize = tensors.iter().map(|(_, t)| t.numel()).sum();
            println!(
                "load: {} tensors, {n} elements in {secs:.3} s",
                tensors.len()
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    Ok(())
}
