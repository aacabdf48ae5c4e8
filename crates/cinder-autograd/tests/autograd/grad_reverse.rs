//! The gradient-reversal op: identity forward, `-lambda` times the gradient backward, at
//! first and second order, against finite differences of the same function without it.

use cinder_autograd::{Tensor, grad};

use crate::common::*;

/// `sum(w * tanh(x)^2)` with `x` first passed through `pre`.
fn f(x: &Tensor, w: &Tensor, pre: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let h = pre(x).tanh().unwrap();
    h.mul(&h).unwrap().mul(w).unwrap().sum_all().unwrap()
}

#[test]
fn forward_is_the_identity_and_shares_the_buffer() {
    let x = rand_param(700, &[3, 4]);
    let y = x.grad_reverse(0.7).unwrap();
    assert_eq!(y.shape(), vec![3, 4]);
    assert_eq!(read(&y), read(&x));
    assert!(y.requires_grad());
}

#[test]
fn lambda_minus_one_passes_a_finite_difference_gradcheck() {
    // with lambda = -1 the backward is the identity's, so finite differences apply as is
    let x = rand_param(701, &[2, 5]);
    let w = constant(&uniform(702, 10, -1.0, 1.0), &[2, 5]);
    check(&[&x], |t| {
        Ok(f(&t[0], &w, |x| x.grad_reverse(-1.0).unwrap()))
    });
}

#[test]
fn gradient_is_minus_lambda_times_the_plain_one_at_first_and_second_order() {
    let xs = uniform(703, 12, -1.0, 1.0);
    let w = constant(&uniform(704, 12, -1.0, 1.0), &[3, 4]);
    // the plain function's gradient, itself checked against finite differences
    let x = param(&xs, &[3, 4]);
    check(&[&x], |t| Ok(f(&t[0], &w, |x| x.clone())));
    let g_plain = grad(&[&f(&x, &w, |x| x.clone())], &[&x], true).unwrap();
    let gg_plain = grad(&[&g_plain[0].sum_all().unwrap()], &[&x], false).unwrap();
    for lambda in [1.0f32, 0.3, 0.0, 2.5] {
        let x = param(&xs, &[3, 4]);
        let y = f(&x, &w, |x| x.grad_reverse(lambda).unwrap());
        let g = grad(&[&y], &[&x], true).unwrap();
        let want: Vec<f32> = read(&g_plain[0]).iter().map(|v| -lambda * v).collect();
        assert_close(&read(&g[0]), &want, 1e-6, 1e-5);
        // d/dx of sum(g): the reversal sits inside the first gradient, so the second
        // derivative is scaled by lambda^2 (one -lambda from each pass through it)
        let gg = grad(&[&g[0].sum_all().unwrap()], &[&x], false).unwrap();
        let want2: Vec<f32> = read(&gg_plain[0])
            .iter()
            .map(|v| lambda * lambda * v)
            .collect();
        assert_close(&read(&gg[0]), &want2, 1e-5, 1e-4);
    }
}

#[test]
fn bad_lambda_and_u32_input_are_errors() {
    let x = rand_param(705, &[2]);
    assert!(x.grad_reverse(f32::NAN).is_err());
    assert!(x.grad_reverse(f32::INFINITY).is_err());
    assert!(index(&[1, 2], &[2]).grad_reverse(1.0).is_err());
}
