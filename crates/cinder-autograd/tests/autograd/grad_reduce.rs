//! Gradchecks of reductions along each axis and over everything, and of softmax /
//! log-softmax and their backward helpers.

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
