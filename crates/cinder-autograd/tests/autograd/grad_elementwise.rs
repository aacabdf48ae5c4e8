//! Gradchecks of the elementwise family: every differentiable unary op, binary ops with
//! broadcasting, scalar variants, where, broadcast_to and the fused backward helpers.

use cinder_autograd::Tensor;
use cinder_device::UnaryOp;

use crate::common::*;

/// Input values suited to each unary op (positive where the op needs it, away from kinks).
fn domain(op: UnaryOp, seed: u64, n: usize) -> Vec<f32> {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Powf => uniform(seed, n, 0.5, 2.0),
        UnaryOp::SigmoidGradFromOutput => uniform(seed, n, 0.05, 0.95),
        // every piece of the hard activations, away from the kinks at -3 and 3
        UnaryOp::Hardsigmoid | UnaryOp::Hardswish => {
            let v = [
                -5.0, -3.4, -2.6, -1.0, -0.3, 0.2, 0.9, 2.5, 3.3, 4.0, 6.0, 1.7,
            ];
            v[..n.min(v.len())].to_vec()
        }
        _ => away_from_zero(seed, n),
    }
}

#[test]
fn unary_ops() {
    let skip = [
        UnaryOp::Sign,
        UnaryOp::ReluMask,
        UnaryOp::LeakyReluGrad,
        UnaryOp::IsNan,
    ];
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        if skip.contains(&op) {
            continue;
        }
        let (a, b) = match op {
            UnaryOp::Clamp => (-0.5, 0.6),
            UnaryOp::Powf => (2.5, 0.0),
            UnaryOp::LeakyRelu => (0.1, 0.0),
            UnaryOp::Elu | UnaryOp::EluGrad => (0.7, 0.0),
            UnaryOp::Affine => (-1.5, 0.3),
            _ => (0.0, 0.0),
        };
        let mut x = domain(op, i as u64, 12);
        if op == UnaryOp::Clamp {
            // keep clear of the bounds by more than eps
            for v in &mut x {
                if (*v - a).abs() < 0.05 || (*v - b).abs() < 0.05 {
                    *v += 0.1;
                }
            }
        }
        let x = param(&x, &[3, 4]);
        let r = cinder_autograd::gradcheck(&[x], |t| t[0].unary(op, a, b), &Default::default());
        assert!(r.is_ok(), "{op:?}: {}", r.unwrap_err());
    }
}

#[test]
fn zero_derivative_ops_do_not_require_grad() {
    let x = rand_param(1, &[4]);
    assert!(!x.sign().unwrap().requires_grad());
    assert!(!x.relu_mask().unwrap().requires_grad());
    assert!(!x.leaky_relu_grad(0.1).unwrap().requires_grad());
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
    check(&[&x], |t| {
        t[0].binary_scalar(cinder_device::BinaryOp::Pow, 1.3, true)
    });
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

#[test]
fn fused_backward_helpers_are_differentiable() {
    // relu_backward in its gradient argument; sigmoid/tanh_backward in both arguments.
    let g = rand_param(9, &[2, 4]);
    let x = param(&away_from_zero(10, 8), &[2, 4]);
    let y = param(&uniform(11, 8, 0.1, 0.9), &[2, 4]);
    check(&[&g], |t| t[0].relu_backward(&x));
    check(&[&g, &y], |t| t[0].sigmoid_backward(&t[1]));
    check(&[&g, &y], |t| t[0].tanh_backward(&t[1]));
}
