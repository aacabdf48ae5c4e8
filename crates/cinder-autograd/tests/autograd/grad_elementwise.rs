//! Gradchecks of the elementwise family: every differentiable unary op, binary ops with
//! broadcasting, scalar variants, where, broadcast_to and the fused backward helpers.

use cinder_autograd::Tensor;

use crate::common::*;

/// Every public named unary op (the derivative ops are checked inside the crate, in
/// `ops/private_grads.rs`).
#[test]
fn unary_ops() {
    type Op = fn(&Tensor) -> cinder_device::Result<Tensor>;
    let ops: [(&str, Op, f32, f32); 23] = [
        ("neg", Tensor::neg, -1.0, 1.0),
        ("abs", Tensor::abs, -1.0, 1.0),
        ("exp", Tensor::exp, -1.0, 1.0),
        ("log", Tensor::log, 0.5, 2.0),
        ("sqrt", Tensor::sqrt, 0.5, 2.0),
        ("rsqrt", Tensor::rsqrt, 0.5, 2.0),
        ("sin", Tensor::sin, -1.0, 1.0),
        ("cos", Tensor::cos, -1.0, 1.0),
        ("relu", Tensor::relu, -1.0, 1.0),
        ("sigmoid", Tensor::sigmoid, -1.0, 1.0),
        ("tanh", Tensor::tanh, -1.0, 1.0),
        ("gelu", Tensor::gelu, -1.0, 1.0),
        ("gelu_tanh", Tensor::gelu_tanh, -1.0, 1.0),
        ("silu", Tensor::silu, -1.0, 1.0),
        ("mish", Tensor::mish, -1.0, 1.0),
        ("hardsigmoid", Tensor::hardsigmoid, -2.5, 2.5),
        ("hardswish", Tensor::hardswish, -2.5, 2.5),
        ("softplus", Tensor::softplus, -1.0, 1.0),
        ("square", Tensor::square, -1.0, 1.0),
        ("recip", Tensor::recip, 0.5, 2.0),
        ("powf", |x| x.powf(2.5), 0.5, 2.0),
        ("lgamma", Tensor::lgamma, 0.5, 2.0),
        ("digamma", Tensor::digamma, 0.5, 2.0),
    ];
    for (i, (name, f, lo, hi)) in ops.into_iter().enumerate() {
        let v: Vec<f32> = if lo < 0.0 {
            away_from_zero(i as u64, 12)
                .iter()
                .map(|x| x * hi)
                .collect()
        } else {
            uniform(i as u64, 12, lo, hi)
        };
        let x = param(&v, &[3, 4]);
        let r = cinder_autograd::gradcheck(&[x], |t| f(&t[0]), &Default::default());
        assert!(r.is_ok(), "{name}: {}", r.unwrap_err());
    }
    let x = param(&away_from_zero(30, 12), &[3, 4]);
    check(&[&x], |t| t[0].leaky_relu(0.1));
    check(&[&x], |t| t[0].elu(0.7));
    check(&[&x], |t| t[0].affine(-1.5, 0.3));
    // clamp away from its bounds by more than the finite-difference step
    let v: Vec<f32> = away_from_zero(31, 12)
        .into_iter()
        .map(|v| {
            if (v + 0.5).abs() < 0.05 || (v - 0.6).abs() < 0.05 {
                v + 0.1
            } else {
                v
            }
        })
        .collect();
    let x = param(&v, &[3, 4]);
    check(&[&x], |t| t[0].clamp(-0.5, 0.6));
}

#[test]
fn zero_derivative_ops_do_not_require_grad() {
    let x = rand_param(1, &[4]);
    assert!(!x.sign().unwrap().requires_grad());
    assert!(!x.isnan().unwrap().requires_grad());
}

/// clamp and hardtanh take PyTorch's gradients at the exact bounds (0 for both) and at NaN
/// (0 for clamp, passed for hardtanh); relu passes the gradient at NaN; maximum and minimum
/// split ties and hand NaN's gradient to both sides; PReLU's slope gets the gradient of the
/// negative part.
#[test]
fn gradients_at_bounds_ties_and_nan_follow_pytorch() {
    let nan = f32::NAN;
    let x = param(&[-1.0, 0.0, 0.5, 1.0, 2.0, nan], &[6]);
    let g = |y: cinder_autograd::Tensor| {
        x.zero_grad();
        y.sum_all().unwrap().backward().unwrap();
        read(&x.grad().unwrap())
    };
    assert_eq!(
        g(x.clamp(0.0, 1.0).unwrap()),
        vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        g(x.hardtanh(0.0, 1.0).unwrap()),
        vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(g(x.relu().unwrap()), vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(
        g(x.maximum_scalar(1.0).unwrap()),
        vec![0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    );
    let a = param(&[1.0, nan, 2.0, 3.0], &[4]);
    let b = param(&[1.0, 1.0, nan, 1.0], &[4]);
    a.maximum(&b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(read(&a.grad().unwrap()), vec![0.5, 1.0, 1.0, 1.0]);
    assert_eq!(read(&b.grad().unwrap()), vec![0.5, 1.0, 1.0, 0.0]);
    let xs = param(&[-2.0, 3.0, -1.0, 4.0], &[2, 2]);
    let w = param(&[0.25, 0.5], &[2]);
    xs.prelu(&w).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(read(&xs.grad().unwrap()), vec![0.25, 1.0, 0.25, 1.0]);
    assert_eq!(read(&w.grad().unwrap()), vec![-3.0, 0.0]);
}

#[test]
fn binary_ops_with_broadcasting() {
    // (lhs shape, rhs shape): equal, row and column broadcasts, rank difference, scalar.
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1, 4], &[3, 1]),
        (&[1, 3], &[2, 1]),
        (&[2, 3], &[]),
    ];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let a = param(&uniform(10 + k as u64, na, 0.5, 1.5), sa);
        let b = param(&uniform(20 + k as u64, nb, 0.5, 1.5), sb);
        check(&[&a, &b], |t| t[0].add(&t[1]));
        check(&[&a, &b], |t| t[0].sub(&t[1]));
        check(&[&a, &b], |t| t[0].mul(&t[1]));
        check(&[&a, &b], |t| t[0].div(&t[1]));
        check(&[&a, &b], |t| t[0].pow(&t[1]));
    }
    // maximum / minimum with values far apart (no ties within eps)
    let a = param(&away_from_zero(3, 6), &[2, 3]);
    let b = param(
        &away_from_zero(4, 3)
            .iter()
            .map(|v| v * 0.5)
            .collect::<Vec<_>>(),
        &[3],
    );
    check(&[&a, &b], |t| t[0].maximum(&t[1]));
    check(&[&a, &b], |t| t[0].minimum(&t[1]));
}

#[test]
fn maximum_splits_ties() {
    let a = param(&[1.0, 2.0], &[2]);
    let b = param(&[1.0, 0.0], &[2]);
    a.maximum(&b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(read(&a.grad().unwrap()), vec![0.5, 1.0]);
    assert_eq!(read(&b.grad().unwrap()), vec![0.5, 0.0]);
}

#[test]
fn scalar_ops() {
    let x = param(&uniform(5, 6, 0.5, 2.0), &[2, 3]);
    check(&[&x], |t| t[0].add_scalar(1.5));
    check(&[&x], |t| t[0].sub_scalar(1.5));
    check(&[&x], |t| t[0].mul_scalar(-2.5));
    check(&[&x], |t| t[0].div_scalar(3.0));
    check(&[&x], |t| t[0].pow_scalar(1.7));
    check(&[&x], |t| t[0].rsub_scalar(2.0));
    check(&[&x], |t| t[0].rdiv_scalar(2.0));
    check(&[&x], |t| t[0].rpow_scalar(1.3));
    check(&[&x], |t| t[0].maximum_scalar(1.0));
    check(&[&x], |t| t[0].minimum_scalar(1.0));
}

#[test]
fn where_and_broadcast_to() {
    let cond = constant(&[1.0, 0.0, 1.0, 0.0, 0.0, 1.0], &[2, 3]);
    let a = rand_param(6, &[2, 3]);
    let b = rand_param(7, &[3]);
    check(&[&a, &b], |t| Tensor::where_cond(&cond, &t[0], &t[1]));
    let x = rand_param(8, &[3, 1]);
    check(&[&x], |t| t[0].broadcast_to(&[2, 3, 4]));
}
