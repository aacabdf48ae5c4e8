//! Prints the adapter Cinder picked, its limits, and a quick matmul check with GFLOP/s.
//!
//! `cargo run --release --example device_info [-- --n 512]`; the last stdout line is a JSON
//! object of the adapter and the figures.

mod common;

use std::time::Instant;

use cinder::prelude::*;
use common::cli;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let n = cli::parse::<cli::DeviceInfo>("device_info").n;
    let dev = Device::default()?;
    let info = dev.adapter_info();
    let lim = dev.limits();
    println!(
        "adapter:  {} ({:?}, {:?})",
        info.name, info.device_type, info.backend
    );
    println!("driver:   {} {}", info.driver, info.driver_info);
    println!(
        "max storage binding: {} MiB",
        lim.max_storage_buffer_binding_size >> 20
    );
    println!("max buffer:          {} MiB", lim.max_buffer_size >> 20);
    println!(
        "workgroups/dim: {}, invocations/workgroup: {}, workgroup memory: {} KiB, immediates: {} B",
        lim.max_compute_workgroups_per_dimension,
        lim.max_compute_invocations_per_workgroup,
        lim.max_compute_workgroup_storage_size >> 10,
        lim.max_immediate_size
    );

    // Correctness: a small product against the CPU.
    let (m, k, p) = (37usize, 29usize, 41usize);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let b: Vec<f32> = (0..k * p)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let c =
        Tensor::from_slice(&dev, &a, &[m, k])?.matmul(&Tensor::from_slice(&dev, &b, &[k, p])?)?;
    let got = c.to_vec::<f32>()?;
    let mut max_err = 0f32;
    for i in 0..m {
        for j in 0..p {
            let want: f32 = (0..k).map(|t| a[i * k + t] * b[t * p + j]).sum();
            max_err = max_err.max((got[i * p + j] - want).abs());
        }
    }
    println!("matmul check {m}x{k}x{p}: max abs error {max_err:.2e}");
    anyhow::ensure!(max_err < 1e-3, "matmul disagrees with the CPU");

    // Speed: n x n x n, a warm-up then timed runs.
    let x = Tensor::full(&dev, &[n, n], 0.5)?;
    let y = Tensor::full(&dev, &[n, n], 0.25)?;
    x.matmul(&y)?;
    dev.sync()?;
    let reps = 5;
    let t0 = Instant::now();
    for _ in 0..reps {
        x.matmul(&y)?;
    }
    dev.sync()?;
    let secs = t0.elapsed().as_secs_f64() / reps as f64;
    let gflops = 2.0 * (n as f64).powi(3) / secs / 1e9;
    println!(
        "matmul {n}x{n}x{n}: {:.2} ms, {gflops:.2} GFLOP/s",
        secs * 1e3
    );
    println!(
        "{}",
        json!({"adapter": info.name, "matmul_n": n, "matmul_gflops": gflops,
            "matmul_max_abs_error": max_err})
    );
    Ok(())
}
