//! Higher-order gradients: d2/dx2 of x^3 and tanh, a Hessian-vector product against finite
//! differences of the gradient, the WGAN-GP penalty's gradient (dense and convolutional
//! critics), and double-backward gradchecks of the ops whose rules are not linear.

use cinder_autograd::{GradcheckOptions, Tensor, grad};
use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{DeviceTensor, Result};

use crate::common::*;

#[test]
fn second_derivative_of_cube() {
    let xs = [0.5f32, -1.2, 2.0];
    for cube in [
        (|x: &Tensor| x.powf(3.0)) as fn(&Tensor) -> Result<Tensor>,
        |x: &Tensor| x.mul(x)?.mul(x),
    ] {
        let x = param(&xs, &[3]);
        let y = cube(&x).unwrap().sum_all().unwrap();
        let g = &grad(&[&y], &[&x], true).unwrap()[0];
        assert!(g.requires_grad());
        let want1: Vec<f32> = xs.iter().map(|v| 3.0 * v * v).collect();
        assert_close(&read(g), &want1, 1e-5, 1e-5);
        let g2 = &grad(&[&g.sum_all().unwrap()], &[&x], false).unwrap()[0];
        let want2: Vec<f32> = xs.iter().map(|v| 6.0 * v).collect();
        assert_close(&read(g2), &want2, 1e-5, 1e-5);
    }
}

#[test]
fn second_derivative_of_tanh_via_backward() {
    let xs = [0.3f32, -0.8, 1.5];
    let x = param(&xs, &[3]);
    let y = x.tanh().unwrap().sum_all().unwrap();
    let g = &grad(&[&y], &[&x], true).unwrap()[0];
    // backward() through the first gradient fills x.grad with the second derivative
    g.sum_all().unwrap().backward().unwrap();
    let want: Vec<f32> = xs
        .iter()
        .map(|v| {
            let t = v.tanh();
            -2.0 * t * (1.0 - t * t)
        })
        .collect();
    assert_close(&read(&x.grad().unwrap()), &want, 1e-5, 1e-4);
}

/// A small MLP's loss: mean((tanh(X W1 + b1) W2 + b2 - T)^2).
fn mlp_loss(p: &[Tensor], x: &Tensor, t: &Tensor) -> Result<Tensor> {
    let h = x.matmul(&p[0])?.add(&p[1])?.tanh()?;
    let out = h.matmul(&p[2])?.add(&p[3])?;
    out.sub(t)?.square()?.mean_all()
}

#[test]
fn hessian_vector_product_of_mlp_matches_finite_differences() {
    let shapes: [&[usize]; 4] = [&[3, 5], &[5], &[5, 2], &[2]];
    let theta: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| uniform(200 + i as u64, s.iter().product(), -1.0, 1.0))
        .collect();
    let v: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| uniform(210 + i as u64, s.iter().product(), -1.0, 1.0))
        .collect();
    let x = constant(&uniform(220, 6 * 3, -1.0, 1.0), &[6, 3]);
    let t = constant(&uniform(221, 6 * 2, -1.0, 1.0), &[6, 2]);
    let params = |vals: &[Vec<f32>]| -> Vec<Tensor> {
        vals.iter().zip(&shapes).map(|(d, s)| param(d, s)).collect()
    };

    // Hv by double backward: grad of <grad L, v>
    let p = params(&theta);
    let pr: Vec<&Tensor> = p.iter().collect();
    let loss = mlp_loss(&p, &x, &t).unwrap();
    let g = grad(&[&loss], &pr, true).unwrap();
    let mut gv = constant(&[0.0], &[]);
    for (gi, vi) in g.iter().zip(&v) {
        let vt = constant(vi, &gi.shape());
        gv = gv.add(&gi.mul(&vt).unwrap().sum_all().unwrap()).unwrap();
    }
    let hv = grad(&[&gv], &pr, false).unwrap();

    // (grad L(theta + eps v) - grad L(theta - eps v)) / 2 eps
    let eps = 1e-2f32;
    let grad_at = |sign: f32| -> Vec<Vec<f32>> {
        let shifted: Vec<Vec<f32>> = theta
            .iter()
            .zip(&v)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + sign * eps * y).collect())
            .collect();
        let p = params(&shifted);
        let pr: Vec<&Tensor> = p.iter().collect();
        let loss = mlp_loss(&p, &x, &t).unwrap();
        grad(&[&loss], &pr, false)
            .unwrap()
            .iter()
            .map(read)
            .collect()
    };
    let (gp, gm) = (grad_at(1.0), grad_at(-1.0));
    for i in 0..4 {
        let fd: Vec<f32> = gp[i]
            .iter()
            .zip(&gm[i])
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        assert_close(&read(&hv[i]), &fd, 2e-3, 2e-2);
    }
}

/// The WGAN-GP penalty mean((||dD/dx|| - 1)^2) for a critic `d` at inputs `x`.
fn gradient_penalty(x: &DeviceTensor, d: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let x = Tensor::parameter(x.clone())?;
    let out = d(&x)?.sum_all()?;
    let gx = grad(&[&out], &[&x], true)?.remove(0);
    let n = gx.shape()[0];
    let norm = gx
        .reshape(&[n, gx.numel() / n])?
        .square()?
        .sum_axis(1, false)?
        .add_scalar(1e-12)?
        .sqrt()?;
    norm.sub_scalar(1.0)?.square()?.mean_all()
}

#[test]
fn wgan_gp_penalty_gradient_two_layer_critic() {
    let x = DeviceTensor::from_slice(&dev(), &uniform(230, 4 * 3, -1.0, 1.0), &[4, 3]).unwrap();
    let w1 = rand_param(231, &[3, 6]);
    let b1 = rand_param(232, &[6]);
    let w2 = rand_param(233, &[6, 1]);
    check(&[&w1, &b1, &w2], |p| {
        gradient_penalty(&x, |x| x.matmul(&p[0])?.add(&p[1])?.tanh()?.matmul(&p[2]))
    });
}

#[test]
fn wgan_gp_penalty_gradient_conv_critic() {
    let x = DeviceTensor::from_slice(&dev(), &uniform(240, 2 * 4 * 4, -1.0, 1.0), &[2, 1, 4, 4])
        .unwrap();
    let p = Conv2dParams {
        stride: (2, 2),
        padding: (1, 1),
        ..Default::default()
    };
    let wc = rand_param(241, &[2, 1, 3, 3]);
    let bc = rand_param(242, &[2]);
    let wl = rand_param(243, &[8, 1]);
    check(&[&wc, &bc, &wl], |q| {
        gradient_penalty(&x, |x| {
            let h = x.conv2d(&q[0], Some(&q[1]), &p)?.softplus()?;
            h.reshape(&[2, 8])?.matmul(&q[2])
        })
    });
}

/// Gradcheck of x -> d sum(f(x) * w) / dx (the first gradient, recorded), for ops whose
/// backward rules depend on their inputs.
#[track_caller]
fn double_backward(inputs: &[&Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let opts = GradcheckOptions {
        atol: 5e-3,
        rtol: 2e-2,
        ..Default::default()
    };
    check_with(
        inputs,
        |t| {
            let y = f(t)?;
            let w = Tensor::from_raw(DeviceTensor::from_slice(
                &y.device(),
                &uniform(999, y.numel(), -1.0, 1.0),
                &y.shape(),
            )?);
            let refs: Vec<&Tensor> = t.iter().collect();
            let gs = grad(&[&y.mul(&w)?.sum_all()?], &refs, true)?;
            let flat: Vec<Tensor> = gs
                .iter()
                .map(|g| g.reshape(&[g.numel()]))
                .collect::<Result<_>>()?;
            let fr: Vec<&Tensor> = flat.iter().collect();
            Tensor::concat(&fr, 0)
        },
        &opts,
    );
}

#[test]
fn double_backward_of_nonlinear_ops() {
    let x = param(&away_from_zero(250, 6), &[2, 3]);
    let pos = param(&uniform(251, 6, 0.5, 2.0), &[2, 3]);
    double_backward(&[&x], |t| t[0].sigmoid());
    double_backward(&[&x], |t| t[0].tanh());
    double_backward(&[&x], |t| t[0].softplus());
    double_backward(&[&x], |t| t[0].gelu());
    double_backward(&[&x], |t| t[0].gelu_tanh());
    double_backward(&[&x], |t| t[0].silu());
    double_backward(&[&x], |t| t[0].mish());
    let wide = param(&[-4.5, -2.0, -0.7, 0.4, 2.2, 4.1], &[2, 3]);
    double_backward(&[&wide], |t| t[0].hardswish());
    let slope = param(&[0.25, -0.4, 0.1], &[3]);
    double_backward(&[&x, &slope], |t| t[0].prelu(&t[1]));
    double_backward(&[&x], |t| t[0].elu(0.8));
    double_backward(&[&x], |t| t[0].exp());
    double_backward(&[&x], |t| t[0].sin());
    double_backward(&[&pos], |t| t[0].log());
    double_backward(&[&pos], |t| t[0].sqrt());
    double_backward(&[&pos], |t| t[0].rsqrt());
    double_backward(&[&pos], |t| t[0].recip());
    double_backward(&[&pos], |t| t[0].powf(2.5));
    double_backward(&[&x, &pos], |t| t[0].div(&t[1]));
    double_backward(&[&pos, &x], |t| t[0].pow(&t[1]));
    double_backward(&[&x, &pos], |t| t[0].mul(&t[1]));
    double_backward(&[&x], |t| t[0].softmax(1));
    double_backward(&[&x], |t| t[0].log_softmax(0));
    double_backward(&[&x], |t| t[0].logsumexp_axis(1, false));
    double_backward(&[&x], |t| t[0].var_axis(1, true, false));
    let a = rand_param(252, &[2, 3]);
    double_backward(&[&x, &a], |t| t[0].matmul_t(&t[1], true, false));
}

#[test]
fn double_backward_through_conv_and_pool() {
    let x = rand_param(260, &[1, 2, 4, 4]);
    let w = rand_param(261, &[2, 2, 3, 3]);
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    // conv is bilinear: the mixed second derivatives are what the rules must get right
    double_backward(&[&x, &w], |t| t[0].conv2d(&t[1], None, &p)?.square());
    double_backward(&[&x, &w], |t| {
        t[0].conv_transpose2d(&t[1], None, &Default::default())?
            .square()
    });
    double_backward(&[&x], |t| {
        t[0].avg_pool2d(&Pool2dParams::square(2), true, None)?
            .square()
    });
    let xd = param(
        &(0..32)
            .map(|i| ((i * 13) % 32) as f32 * 0.05)
            .collect::<Vec<_>>(),
        &[1, 2, 4, 4],
    );
    double_backward(&[&xd], |t| {
        t[0].max_pool2d(&Pool2dParams::square(2))?.0.square()
    });
    // adaptive pooling with windows that overlap
    double_backward(&[&x], |t| t[0].adaptive_avg_pool2d((3, 3))?.square());
    double_backward(&[&xd], |t| t[0].adaptive_max_pool2d((3, 3))?.0.square());
}

#[test]
fn double_backward_through_grouped_convolutions() {
    let x = rand_param(270, &[1, 4, 4, 4]);
    // depthwise with a channel multiplier of 2 (grouped direct kernels) and two groups of
    // 2 -> 9 channels (the matmul batched over the groups)
    for (ws, groups, seed) in [([8usize, 1, 3, 3], 4usize, 271u64), ([18, 2, 3, 3], 2, 272)] {
        let w = rand_param(seed, &ws);
        let p = Conv2dParams {
            padding: (1, 1),
            groups,
            ..Default::default()
        };
        double_backward(&[&x, &w], |t| t[0].conv2d(&t[1], None, &p)?.square());
    }
    // transposed: depthwise, then two groups of 2 -> 9 channels (batched matmul)
    for (ws, groups, seed) in [([4usize, 1, 3, 3], 4usize, 273u64), ([4, 9, 2, 2], 2, 274)] {
        let w = rand_param(seed, &ws);
        let p = ConvTranspose2dParams {
            stride: (2, 2),
            padding: (1, 1),
            output_padding: (1, 1),
            groups,
            ..Default::default()
        };
        double_backward(&[&x, &w], |t| {
            t[0].conv_transpose2d(&t[1], None, &p)?.square()
        });
    }
}
