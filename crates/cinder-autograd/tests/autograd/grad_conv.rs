//! Gradchecks of matmul (each transpose flag, batched, shared operand), conv2d and
//! conv-transpose2d (stride, padding, dilation, bias, groups; direct, grouped-direct and
//! GEMM paths), their backward ops (through grad with create_graph), and the poolings
//! (max, average, adaptive) with theirs.

use cinder_autograd::{Tensor, grad};
use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::ops::pool::Pool2dParams;

use crate::common::*;

#[test]
fn matmul_with_each_transpose_flag() {
    let (m, k, n) = (3, 4, 2);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let sa: Vec<usize> = if ta { vec![k, m] } else { vec![m, k] };
        let sb: Vec<usize> = if tb { vec![n, k] } else { vec![k, n] };
        let a = rand_param(40, &sa);
        let b = rand_param(41, &sb);
        check(&[&a, &b], |t| t[0].matmul_t(&t[1], ta, tb));
    }
}

#[test]
fn batched_matmul_and_shared_operand() {
    let a = rand_param(42, &[2, 3, 4]);
    let b = rand_param(43, &[2, 4, 2]);
    check(&[&a, &b], |t| t[0].matmul(&t[1]));
    // a weight shared by every batch ([K, N] against [B, M, K]) gets the batch summed
    let w = rand_param(44, &[4, 5]);
    check(&[&a, &w], |t| t[0].matmul(&t[1]));
    let w1 = rand_param(45, &[1, 5, 4]);
    check(&[&a, &w1], |t| t[0].matmul_t(&t[1], false, true));
}

#[test]
fn linear_and_linear_relu_with_and_without_bias() {
    // [2, 3, 4] inputs: the leading dimensions fold into the product's rows.
    let x = rand_param(46, &[2, 3, 4]);
    let w = rand_param(47, &[5, 4]);
    let b = rand_param(48, &[5]);
    check(&[&x, &w, &b], |t| t[0].linear(&t[1], Some(&t[2])));
    check(&[&x, &w], |t| t[0].linear(&t[1], None));
    check(&[&x, &w, &b], |t| t[0].linear_relu(&t[1], Some(&t[2])));
    check(&[&x, &w], |t| t[0].linear_relu(&t[1], None));
    // Fused and unfused give the same values.
    let fused = x
        .linear_relu(&w, Some(&b))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let plain = x
        .matmul_t(&w, false, true)
        .unwrap()
        .add(&b)
        .unwrap()
        .relu()
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for (f, p) in fused.iter().zip(&plain) {
        assert!((f - p).abs() <= 1e-5, "{f} vs {p}");
    }
    assert!(x.linear(&b, None).is_err());
    assert!(x.linear(&w, Some(&w)).is_err());
}

#[test]
fn linear_second_order_through_create_graph() {
    // d/dx of sum((dL/dw)^2) where L = sum(relu(linear(x)))^2: the backward's own ops are
    // differentiated.
    let x = rand_param(49, &[3, 4]);
    let w = rand_param(50, &[2, 4]);
    let b = rand_param(51, &[2]);
    check(&[&x, &w, &b], |t| {
        let y = t[0].linear(&t[1], Some(&t[2]))?;
        let l = y.mul(&y)?.sum_all()?;
        let g = grad(&[&l], &[&t[1]], true)?;
        g[0].mul(&g[0])?.sum_all()
    });
}

fn conv_cases() -> Vec<(Vec<usize>, Vec<usize>, Conv2dParams)> {
    let p = |s: usize, pad: usize, d: usize| Conv2dParams {
        stride: (s, s),
        padding: (pad, pad),
        dilation: (d, d),
        groups: 1,
    };
    vec![
        // direct kernel (C*KH*KW <= 32)
        (vec![2, 2, 5, 5], vec![3, 2, 3, 3], p(1, 0, 1)),
        (vec![1, 1, 6, 5], vec![2, 1, 3, 2], p(2, 1, 1)),
        // GEMM path (C*KH*KW > 32), stride, padding, dilation
        (vec![2, 4, 6, 6], vec![2, 4, 3, 3], p(2, 1, 1)),
        (vec![1, 4, 7, 7], vec![2, 4, 3, 3], p(1, 2, 2)),
        // grouped: depthwise and a channel multiplier (grouped direct kernels) ...
        (
            vec![2, 3, 5, 4],
            vec![3, 1, 3, 3],
            Conv2dParams {
                groups: 3,
                ..p(1, 1, 1)
            },
        ),
        (
            vec![1, 2, 6, 5],
            vec![4, 1, 2, 3],
            Conv2dParams {
                groups: 2,
                ..p(2, 1, 1)
            },
        ),
        // ... and the matmul batched over the groups
        (
            vec![2, 4, 5, 5],
            vec![18, 2, 3, 3],
            Conv2dParams {
                groups: 2,
                ..p(1, 1, 2)
            },
        ),
    ]
}

#[test]
fn conv2d_input_weight_and_bias() {
    for (i, (xs, ws, p)) in conv_cases().into_iter().enumerate() {
        let x = rand_param(50 + i as u64, &xs);
        let w = rand_param(60 + i as u64, &ws);
        let b = rand_param(70 + i as u64, &[ws[0]]);
        check(&[&x, &w, &b], |t| t[0].conv2d(&t[1], Some(&t[2]), &p));
    }
}

#[test]
fn conv2d_backward_ops_are_differentiable() {
    // dense GEMM, depthwise (grouped direct) and grouped GEMM
    for (i, case) in [2, 4, 6].into_iter().enumerate() {
        conv2d_backward_ops(conv_cases().remove(case), 80 + 3 * i as u64);
    }
}

fn conv2d_backward_ops((xs, ws, p): (Vec<usize>, Vec<usize>, Conv2dParams), seed: u64) {
    let x = rand_param(seed, &xs);
    let w = rand_param(seed + 1, &ws);
    let g0 = x.raw().conv2d(&w.raw(), None, &p).unwrap();
    let g = rand_param(seed + 2, g0.shape());
    // The input gradient as a function of (cotangent, weight), and the weight gradient as
    // one of (cotangent, input), through grad() with create_graph: their own backward
    // rules are what gradcheck differentiates.
    check(&[&g, &w], |t| {
        let l = x.conv2d(&t[1], None, &p)?.mul(&t[0])?.sum_all()?;
        Ok(grad(&[&l], &[&x], true)?.remove(0))
    });
    check(&[&g, &x], |t| {
        let l = t[1].conv2d(&w, None, &p)?.mul(&t[0])?.sum_all()?;
        Ok(grad(&[&l], &[&w], true)?.remove(0))
    });
}

fn convt_cases() -> Vec<(Vec<usize>, Vec<usize>, ConvTranspose2dParams)> {
    vec![
        (
            vec![2, 2, 3, 3],
            vec![2, 3, 3, 3],
            ConvTranspose2dParams::default(),
        ),
        (
            vec![1, 3, 3, 4],
            vec![3, 2, 3, 3],
            ConvTranspose2dParams {
                stride: (2, 2),
                padding: (1, 1),
                output_padding: (1, 0),
                dilation: (1, 1),
                groups: 1,
            },
        ),
        (
            vec![1, 2, 3, 3],
            vec![2, 2, 2, 3],
            ConvTranspose2dParams {
                stride: (1, 2),
                padding: (0, 1),
                output_padding: (0, 0),
                dilation: (2, 1),
                groups: 1,
            },
        ),
        // grouped: depthwise with a multiplier (grouped direct kernels), then the matmul
        // batched over the groups
        (
            vec![1, 2, 3, 3],
            vec![2, 2, 3, 3],
            ConvTranspose2dParams {
                stride: (2, 1),
                padding: (1, 0),
                output_padding: (1, 0),
                dilation: (1, 1),
                groups: 2,
            },
        ),
        (
            vec![2, 6, 2, 3],
            vec![6, 6, 2, 2],
            ConvTranspose2dParams {
                stride: (1, 2),
                padding: (0, 1),
                output_padding: (0, 1),
                dilation: (1, 1),
                groups: 2,
            },
        ),
    ]
}

#[test]
fn conv_transpose2d_input_weight_and_bias() {
    for (i, (xs, ws, p)) in convt_cases().into_iter().enumerate() {
        let x = rand_param(90 + i as u64, &xs);
        let w = rand_param(100 + i as u64, &ws);
        let b = rand_param(110 + i as u64, &[ws[1] * p.groups]);
        check(&[&x, &w, &b], |t| {
            t[0].conv_transpose2d(&t[1], Some(&t[2]), &p)
        });
    }
}

#[test]
fn conv_transpose2d_backward_ops_are_differentiable() {
    for (i, case) in [1, 3, 4].into_iter().enumerate() {
        conv_transpose2d_backward_ops(convt_cases().remove(case), 120 + 3 * i as u64);
    }
}

fn conv_transpose2d_backward_ops(
    (xs, ws, p): (Vec<usize>, Vec<usize>, ConvTranspose2dParams),
    seed: u64,
) {
    let x = rand_param(seed, &xs);
    let w = rand_param(seed + 1, &ws);
    let g0 = x.raw().conv_transpose2d(&w.raw(), None, &p).unwrap();
    let g = rand_param(seed + 2, g0.shape());
    check(&[&g, &w], |t| {
        let l = x.conv_transpose2d(&t[1], None, &p)?.mul(&t[0])?.sum_all()?;
        Ok(grad(&[&l], &[&x], true)?.remove(0))
    });
    check(&[&g, &x], |t| {
        let l = t[1].conv_transpose2d(&w, None, &p)?.mul(&t[0])?.sum_all()?;
        Ok(grad(&[&l], &[&w], true)?.remove(0))
    });
}

/// Distinct values 0.05 apart in a shuffled order, so no max moves under the eps step.
fn distinct(n: usize, seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    let mut r = rng(seed);
    for i in (1..n).rev() {
        let j = rand::RngExt::random_range(&mut r, 0..=i);
        v.swap(i, j);
    }
    v
}

#[test]
fn max_pool2d() {
    let x = param(&distinct(2 * 2 * 5 * 5, 130), &[2, 2, 5, 5]);
    check(&[&x], |t| Ok(t[0].max_pool2d(&Pool2dParams::square(2))?.0));
    // overlapping windows with padding and a stride of 1
    let p = Pool2dParams {
        kernel: (3, 3),
        stride: (1, 2),
        padding: (1, 1),
        dilation: (1, 1),
        ceil_mode: false,
    };
    check(&[&x], |t| Ok(t[0].max_pool2d(&p)?.0));
    // and its backward, linear in the cotangent (through grad with create_graph)
    let (y, _) = x.max_pool2d(&p).unwrap();
    let g = rand_param(131, &y.shape());
    check(&[&g], |t| {
        input_grad(&x, |x| Ok(x.max_pool2d(&p)?.0), &t[0])
    });
}

#[test]
fn avg_pool2d() {
    let x = rand_param(140, &[2, 2, 5, 5]);
    check(&[&x], |t| {
        t[0].avg_pool2d(&Pool2dParams::square(2), true, None)
    });
    check(&[&x], |t| {
        t[0].avg_pool2d(&Pool2dParams::square(2), false, Some(3))
    });
    let p = Pool2dParams {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        dilation: (1, 1),
        ceil_mode: true,
    };
    for cip in [true, false] {
        check(&[&x], |t| t[0].avg_pool2d(&p, cip, None));
        let y = x.avg_pool2d(&p, cip, None).unwrap();
        let g = rand_param(141, &y.shape());
        check(&[&g], |t| {
            input_grad(&x, |x| x.avg_pool2d(&p, cip, None), &t[0])
        });
    }
}

#[test]
fn adaptive_avg_pool2d() {
    let x = rand_param(150, &[2, 2, 5, 7]);
    // windows that do not divide, a larger output, global pooling
    for out in [(3, 4), (7, 9), (1, 1)] {
        check(&[&x], |t| t[0].adaptive_avg_pool2d(out));
        let y = x.adaptive_avg_pool2d(out).unwrap();
        let g = rand_param(151, &y.shape());
        check(&[&g], |t| {
            input_grad(&x, |x| x.adaptive_avg_pool2d(out), &t[0])
        });
    }
}

#[test]
fn adaptive_max_pool2d() {
    let x = param(&distinct(2 * 2 * 5 * 7, 160), &[2, 2, 5, 7]);
    for out in [(3, 4), (7, 9), (1, 1)] {
        check(&[&x], |t| Ok(t[0].adaptive_max_pool2d(out)?.0));
        let (y, _) = x.adaptive_max_pool2d(out).unwrap();
        let g = rand_param(161, &y.shape());
        check(&[&g], |t| {
            input_grad(&x, |x| Ok(x.adaptive_max_pool2d(out)?.0), &t[0])
        });
    }
}

/// `d sum(f(x) * g) / dx` as a function of the cotangent `g`, recorded (create_graph), so a
/// gradcheck in `g` checks the backward op's own rule.
fn input_grad(
    x: &Tensor,
    f: impl Fn(&Tensor) -> cinder_device::Result<Tensor>,
    g: &Tensor,
) -> cinder_device::Result<Tensor> {
    let l = f(x)?.mul(g)?.sum_all()?;
    Ok(grad(&[&l], &[x], true)?.remove(0))
}
