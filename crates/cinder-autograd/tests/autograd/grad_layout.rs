//! Gradchecks of gather / scatter-add / index-select and of the layout ops.

use cinder_autograd::Tensor;

use crate::common::*;

#[test]
fn gather_and_scatter_add() {
    let x = rand_param(150, &[3, 4]);
    // repeated indices: the gradient accumulates
    let idx = index(&[0, 2, 2, 1, 3, 3], &[3, 2]);
    check(&[&x], |t| t[0].gather(1, &idx));
    let idx0 = index(&[2, 0, 1, 2, 1, 1, 0, 0], &[2, 4]);
    check(&[&x], |t| t[0].gather(0, &idx0));
    let src = rand_param(151, &[3, 2]);
    check(&[&x, &src], |t| t[0].scatter_add(1, &idx, &t[1]));
}

#[test]
fn index_select_and_its_backward() {
    let x = rand_param(152, &[4, 3]);
    let idx = index(&[3, 0, 3, 1, 3], &[5]);
    check(&[&x], |t| t[0].index_select(0, &idx));
    let idx1 = index(&[2, 2, 0], &[3]);
    check(&[&x], |t| t[0].index_select(1, &idx1));
    let g = rand_param(153, &[5, 3]);
    check(&[&g], |t| t[0].index_select_backward(0, &idx, 4));
}

#[test]
fn layout_ops() {
    let x = rand_param(160, &[2, 3, 4]);
    check(&[&x], |t| t[0].permute(&[2, 0, 1]));
    check(&[&x], |t| t[0].transpose(0, 2));
    check(&[&x], |t| t[0].t());
    check(&[&x], |t| t[0].reshape(&[6, 4]));
    check(&[&x], |t| t[0].flatten_from(1));
    check(&[&x], |t| t[0].narrow(1, 1, 2));
    check(&[&x], |t| t[0].slice(2, 1, 3));
    check(&[&x], |t| t[0].deep_clone());
    check(&[&x], |t| t[0].pad(&[(1, 0), (2, 1)], 0.5));
    check(&[&x], |t| t[0].pad(&[(1, 1), (0, 0), (0, 2)], 0.0));
    let y = rand_param(161, &[2, 1, 4]);
    let z = rand_param(162, &[2, 2, 4]);
    check(&[&x, &y, &z], |t| Tensor::concat(&[&t[0], &t[1], &t[2]], 1));
}
