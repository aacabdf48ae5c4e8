//! Learning with raw Tensors and plain SGD: two interleaved spirals, least squares against
//! the closed form, and flat device memory over 200 steps.

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{Device, DeviceTensor, Result};

use crate::common::*;

/// Two interleaved spirals of `n` points each (1.25 turns), labels 0/1.
fn spirals(n: usize) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    let noise = uniform(300, 4 * n, -0.02, 0.02);
    for class in 0..2u32 {
        for i in 0..n {
            let t = 0.25 + 0.75 * i as f32 / n as f32;
            let angle = t * 2.5 * std::f32::consts::PI + class as f32 * std::f32::consts::PI;
            let k = 2 * (class as usize * n + i);
            x.push(t * angle.cos() + noise[k]);
            x.push(t * angle.sin() + noise[k + 1]);
            y.push(class);
        }
    }
    (x, y)
}

/// A 2-layer MLP (2 -> hidden -> 2, tanh) as raw tensors.
struct Mlp {
    params: Vec<Tensor>,
}

impl Mlp {
    fn new(dev: &Device, hidden: usize, seed: u64) -> Mlp {
        let init = |shape: &[usize], fan_in: usize, s: u64| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n = shape.iter().product();
            Tensor::parameter(
                DeviceTensor::from_slice(dev, &uniform(s, n, -bound, bound), shape).unwrap(),
            )
            .unwrap()
        };
        Mlp {
            params: vec![
                init(&[2, hidden], 2, seed),
                init(&[hidden], 2, seed + 1),
                init(&[hidden, 2], hidden, seed + 2),
                init(&[2], hidden, seed + 3),
            ],
        }
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let p = &self.params;
        x.matmul(&p[0])?
            .add(&p[1])?
            .tanh()?
            .matmul(&p[2])?
            .add(&p[3])
    }

    /// Mean cross-entropy of the logits against one-hot targets.
    fn loss(&self, x: &Tensor, onehot: &Tensor) -> Result<Tensor> {
        let n = x.shape()[0] as f32;
        self.logits(x)?
            .log_softmax(1)?
            .mul(onehot)?
            .sum_all()?
            .mul_scalar(-1.0 / n)
    }

    /// One SGD step: backward, then `p -= lr * grad` with no graph, grads cleared.
    fn sgd_step(&self, loss: &Tensor, lr: f32) -> Result<()> {
        loss.backward()?;
        no_grad(|| {
            for p in &self.params {
                let g = p.grad().expect("every parameter gets a gradient");
                p.set_data(&p.detach().sub(&g.mul_scalar(lr)?)?)?;
                p.zero_grad();
            }
            Ok(())
        })
    }
}

#[test]
fn mlp_separates_two_spirals() {
    let dev = dev();
    let n = 100;
    let (xs, ys) = spirals(n);
    let x = Tensor::from_slice(&dev, &xs, &[2 * n, 2]).unwrap();
    let labels = Tensor::from_slice(&dev, &ys, &[2 * n]).unwrap();
    let onehot = labels.one_hot(2).unwrap();
    let mlp = Mlp::new(&dev, 64, 310);
    let first = mlp.loss(&x, &onehot).unwrap().item().unwrap();
    for _ in 0..1500 {
        let loss = mlp.loss(&x, &onehot).unwrap();
        mlp.sgd_step(&loss, 0.5).unwrap();
    }
    let last = mlp.loss(&x, &onehot).unwrap().item().unwrap();
    let pred = mlp
        .logits(&x)
        .unwrap()
        .argmax_axis(1, false)
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    let correct = pred.iter().zip(&ys).filter(|(a, b)| a == b).count();
    let acc = correct as f32 / ys.len() as f32;
    println!("spirals: train accuracy {acc}, loss {first} -> {last}");
    assert!(acc >= 0.95, "train accuracy {acc} (loss {first} -> {last})");
}

/// Solves the normal equations (W^T W) theta = W^T y in f64 on the host.
fn closed_form(w: &[f32], y: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut a = vec![vec![0f64; d + 1]; d];
    for i in 0..d {
        for j in 0..d {
            a[i][j] = (0..n)
                .map(|r| w[r * d + i] as f64 * w[r * d + j] as f64)
                .sum();
        }
        a[i][d] = (0..n).map(|r| w[r * d + i] as f64 * y[r] as f64).sum();
    }
    for c in 0..d {
        let piv = (c..d)
            .max_by(|&p, &q| a[p][c].abs().total_cmp(&a[q][c].abs()))
            .unwrap();
        a.swap(c, piv);
        for r in 0..d {
            if r != c {
                let f = a[r][c] / a[c][c];
                let pivot_row = a[c].clone();
                for (x, p) in a[r].iter_mut().zip(&pivot_row).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    (0..d).map(|i| a[i][d] / a[i][i]).collect()
}

#[test]
fn least_squares_by_gradient_descent_reaches_the_closed_form() {
    let dev = dev();
    let (n, d) = (64, 4);
    let w = uniform(320, n * d, -1.0, 1.0);
    let truth = [1.0f32, -2.0, 0.5, 3.0];
    let noise = uniform(321, n, -0.1, 0.1);
    let y: Vec<f32> = (0..n)
        .map(|r| (0..d).map(|c| w[r * d + c] * truth[c]).sum::<f32>() + noise[r])
        .collect();
    let wt = Tensor::from_slice(&dev, &w, &[n, d]).unwrap();
    let yt = Tensor::from_slice(&dev, &y, &[n, 1]).unwrap();
    let theta = Tensor::parameter(DeviceTensor::zeros(&dev, &[d, 1]).unwrap()).unwrap();
    for _ in 0..300 {
        let loss = wt
            .matmul(&theta)
            .unwrap()
            .sub(&yt)
            .unwrap()
            .square()
            .unwrap();
        loss.mean_all().unwrap().backward().unwrap();
        let g = theta.grad().unwrap();
        theta
            .set_data(&theta.detach().sub(&g.mul_scalar(1.0).unwrap()).unwrap())
            .unwrap();
        theta.zero_grad();
    }
    let got = read(&theta);
    let want = closed_form(&w, &y, n, d);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (*g as f64 - w).abs() < 1e-3,
            "got {got:?}, closed form {want:?}"
        );
    }
}

#[test]
fn training_steps_keep_device_memory_flat() {
    // A private device, so other tests' tensors do not move its counters.
    let dev = Device::new().expect("a wgpu adapter");
    let n = 50;
    let (xs, ys) = spirals(n);
    let x = Tensor::from_slice(&dev, &xs, &[2 * n, 2]).unwrap();
    let onehot = Tensor::from_slice(&dev, &ys, &[2 * n])
        .unwrap()
        .one_hot(2)
        .unwrap();
    let mlp = Mlp::new(&dev, 32, 330);
    let mut live = Vec::new();
    for _ in 0..200 {
        let loss = mlp.loss(&x, &onehot).unwrap();
        mlp.sgd_step(&loss, 0.1).unwrap();
        drop(loss);
        live.push(dev.memory());
    }
    let after_warmup = live[5];
    for (step, m) in live.iter().enumerate().skip(5) {
        assert_eq!(
            m.live_bytes, after_warmup.live_bytes,
            "live bytes moved at step {step}: {m:?} vs {after_warmup:?}"
        );
        assert!(
            m.pooled_bytes <= after_warmup.pooled_bytes.max(1 << 20) * 2,
            "pool grows at step {step}: {m:?}"
        );
    }
}
