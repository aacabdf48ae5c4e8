//! Gradchecks of `torch.matmul`'s broadcasting and vector cases, and of `max_axis` /
//! `min_axis` (values and indices) and `amax_axis`.

use crate::common::*;

#[test]
fn matmul_broadcast_batches_and_vectors() {
    let a = rand_param(70, &[2, 1, 3, 4]);
    let b = rand_param(71, &[3, 4, 2]);
    check(&[&a, &b], |t| t[0].matmul(&t[1]));
    let bt = rand_param(72, &[3, 2, 4]);
    check(&[&a, &bt], |t| t[0].matmul_t(&t[1], false, true));
    let v = rand_param(73, &[4]);
    check(&[&a, &v], |t| t[0].matmul(&t[1]));
    let w = rand_param(74, &[3]);
    check(&[&w, &a], |t| t[0].matmul(&t[1]));
    let u = rand_param(75, &[4]);
    check(&[&v, &u], |t| t[0].matmul(&t[1]));
    let m = rand_param(76, &[3, 4]);
    check(&[&m, &v], |t| t[0].matmul(&t[1]));
}

#[test]
fn max_axis_sends_the_gradient_to_the_index() {
    // distinct values, so finite differences see one winner per row
    let x = param(
        &[
            0.1, 0.9, -0.4, 0.5, -0.8, 0.3, 0.7, 0.2, -0.1, 0.6, 0.0, -0.5,
        ],
        &[3, 4],
    );
    check(&[&x], |t| Ok(t[0].max_axis(1, false)?.0));
    check(&[&x], |t| Ok(t[0].min_axis(0, true)?.0));
    check(&[&x], |t| t[0].amax_axis(1, false));
    // ties: max_axis gives the first index all of the gradient, amax splits it
    let tie = param(&[1.0, 3.0, 3.0, 2.0], &[4]);
    let (v, i) = tie.max_axis(0, false).unwrap();
    assert_eq!(i.to_vec::<u32>().unwrap(), vec![1]);
    v.backward().unwrap();
    assert_eq!(read(&tie.grad().unwrap()), vec![0.0, 1.0, 0.0, 0.0]);
    tie.zero_grad();
    tie.amax_axis(0, false).unwrap().backward().unwrap();
    assert_eq!(read(&tie.grad().unwrap()), vec![0.0, 0.5, 0.5, 0.0]);
}
