//! Gradchecks of reductions along each axis and over everything, of softmax /
//! log-softmax and their backward helpers, and of batch norm (first and second order).

use cinder_autograd::{Tensor, grad};

use crate::common::*;

#[test]
fn reductions_along_each_axis() {
    let shape = [2, 3, 4];
    let x = rand_param(30, &shape);
    for axis in 0..3isize {
        for keep in [false, true] {
            check(&[&x], |t| t[0].sum_axis(axis, keep));
            check(&[&x], |t| t[0].mean_axis(axis, keep));
            check(&[&x], |t| t[0].logsumexp_axis(axis, keep));
            check(&[&x], |t| t[0].var_axis(axis, true, keep));
            check(&[&x], |t| t[0].var_axis(axis, false, keep));
        }
        // max/min need the extremes separated by more than eps: distinct, spread values.
        let mut v: Vec<f32> = (0..24)
            .map(|i| (i as f32 * 7.0 % 24.0) * 0.1 - 1.2)
            .collect();
        v.swap(3, 17);
        let xs = param(&v, &shape);
        check(&[&xs], |t| t[0].amax_axis(axis, false));
        check(&[&xs], |t| t[0].amin_axis(axis, true));
    }
    check(&[&x], |t| t[0].sum_axis(-1, false));
}

#[test]
fn whole_tensor_reductions() {
    let x = rand_param(31, &[3, 4]);
    check(&[&x], |t| t[0].sum_all());
    check(&[&x], |t| t[0].mean_all());
    check(&[&x], |t| t[0].logsumexp_all());
    check(&[&x], |t| t[0].var_all(true));
    check(&[&x], |t| t[0].sum_axes(&[0, 1], false));
    check(&[&x], |t| t[0].sum_to_shape(&[1, 4]));
    let v: Vec<f32> = (0..12).map(|i| ((i * 5) % 12) as f32 * 0.1).collect();
    let xs = param(&v, &[3, 4]);
    check(&[&xs], |t| t[0].max_all());
    check(&[&xs], |t| t[0].min_all());
    let y = rand_param(32, &[2, 3, 4]);
    check(&[&y], |t| t[0].sum_axes(&[0, 2], true));
}

#[test]
fn softmax_and_log_softmax_along_each_axis() {
    let x = rand_param(33, &[2, 3, 4]);
    for axis in [0isize, 1, 2, -1] {
        check(&[&x], |t| t[0].softmax(axis));
        check(&[&x], |t| t[0].log_softmax(axis));
    }
}

#[test]
fn batch_norm_training_and_eval_with_and_without_affine() {
    let x4 = rand_param(70, &[3, 2, 2, 3]);
    let x2 = rand_param(71, &[5, 2]);
    let w = rand_param(72, &[2]);
    let b = rand_param(73, &[2]);
    let rm = Tensor::from_slice(&x2.device(), &[0.1f32, -0.2], &[2]).unwrap();
    let rv = Tensor::from_slice(&x2.device(), &[0.5f32, 2.0], &[2]).unwrap();
    for x in [&x4, &x2] {
        check(&[x, &w, &b], |t| {
            Ok(t[0].batch_norm(None, Some(&t[1]), Some(&t[2]), 1e-5)?.0)
        });
        check(&[x], |t| Ok(t[0].batch_norm(None, None, None, 1e-5)?.0));
        check(&[x, &w, &b], |t| {
            Ok(t[0]
                .batch_norm(Some((&rm, &rv)), Some(&t[1]), Some(&t[2]), 1e-5)?
                .0)
        });
    }
    // The statistics it returns: the mean and the biased variance per channel.
    let (y, stats) = x2.batch_norm(None, None, None, 0.0).unwrap();
    let (mean, var) = stats.expect("training returns its statistics");
    let xv = x2.to_vec::<f32>().unwrap();
    for c in 0..2 {
        let col: Vec<f32> = (0..5).map(|n| xv[n * 2 + c]).collect();
        let m = col.iter().sum::<f32>() / 5.0;
        let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / 5.0;
        assert!((mean.to_vec::<f32>().unwrap()[c] - m).abs() < 1e-5);
        assert!((var.to_vec::<f32>().unwrap()[c] - v).abs() < 1e-5);
        let yv = y.to_vec::<f32>().unwrap();
        assert!((yv[c] - (col[0] - m) / v.sqrt()).abs() < 1e-4);
    }
    assert!(!mean.requires_grad());
    // one value per channel cannot be normalized in training
    let one = rand_param(74, &[1, 2]);
    assert!(one.batch_norm(None, None, None, 1e-5).is_err());
    assert!(
        x2.batch_norm(None, Some(&rm.reshape(&[1, 2]).unwrap()), None, 1e-5)
            .is_err()
    );
}

#[test]
fn batch_norm_second_order_through_create_graph() {
    // A gradient penalty through batch norm: the backward's statistics are recomputed with
    // ops, so the second derivative sees them depend on the input.
    let x = rand_param(75, &[4, 2, 3]);
    let w = rand_param(76, &[2]);
    let b = rand_param(77, &[2]);
    let c = rand_param(78, &[4, 2, 3]);
    check(&[&x, &w, &b], |t| {
        let y = t[0].batch_norm(None, Some(&t[1]), Some(&t[2]), 1e-5)?.0;
        let l = y.mul(&c)?.mul(&y)?.sum_all()?;
        let g = grad(&[&l], &[&t[0]], true)?;
        g[0].mul(&g[0])?.sum_all()
    });
}
