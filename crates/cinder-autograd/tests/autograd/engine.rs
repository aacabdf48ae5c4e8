//! Engine semantics: accumulation, freeing, modes, detach, errors, grad() vs backward().

use cinder_autograd::{BackwardOptions, Tensor, grad, no_grad};
use cinder_device::Error;

use crate::common::*;

#[test]
fn tensor_used_twice_accumulates() {
    // y = sum(x * x + x) -> dy/dx = 2x + 1
    let x = param(&[1.0, -2.0, 3.0], &[3]);
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(read(&x.grad().unwrap()), vec![3.0, -3.0, 7.0]);
}

#[test]
fn backward_accumulates_across_calls_until_zero_grad() {
    let x = param(&[2.0], &[1]);
    for _ in 0..2 {
        x.mul_scalar(3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    }
    assert_eq!(read(&x.grad().unwrap()), vec![6.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn broadcasting_is_summed_back() {
    // [2, 3] + [3] and * [2, 1]: gradients have the operands' shapes.
    let a = param(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = param(&[1.0, 1.0, 1.0], &[3]);
    let c = param(&[2.0, 3.0], &[2, 1]);
    let y = a.add(&b).unwrap().mul(&c).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(b.grad().unwrap().shape(), vec![3]);
    assert_eq!(read(&b.grad().unwrap()), vec![5.0, 5.0, 5.0]);
    // dc = sum over the row of (a + b)
    assert_eq!(read(&c.grad().unwrap()), vec![9.0, 18.0]);
    assert_eq!(read(&a.grad().unwrap()), vec![2.0, 2.0, 2.0, 3.0, 3.0, 3.0]);
}

#[test]
fn graph_is_freed_after_backward_unless_retained() {
    let x = param(&[1.0, 2.0], &[2]);
    let y = x.square().unwrap().sum_all().unwrap();
    assert_eq!(y.op_name(), Some("sum_all"));
    y.backward().unwrap();
    assert_eq!(y.op_name(), None, "the node is dropped");
    let e = y.backward().unwrap_err();
    assert!(e.to_string().contains("freed"), "{e}");

    let y = x.square().unwrap().sum_all().unwrap();
    let keep = BackwardOptions {
        retain_graph: true,
        create_graph: false,
    };
    y.backward_with(None, keep).unwrap();
    y.backward_with(None, keep).unwrap();
    // 2x from the first test's run, then twice more
    assert_eq!(read(&x.grad().unwrap()), vec![6.0, 12.0]);
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let x = param(&[1.0, 2.0], &[2]);
    let y = no_grad(|| x.mul_scalar(2.0).unwrap());
    assert!(!y.requires_grad() && y.is_leaf());
    let z = x.mul_scalar(2.0).unwrap().detach();
    assert!(!z.requires_grad());
    // A graph through a detached tensor does not reach x.
    let w = z.mul(&x).unwrap().sum_all().unwrap();
    w.backward().unwrap();
    assert_eq!(read(&x.grad().unwrap()), vec![2.0, 4.0]);
    // Constants and comparisons do not require grad.
    assert!(!x.gt_scalar(1.5).unwrap().requires_grad());
    assert!(!x.argmax_axis(0, false).unwrap().requires_grad());
}

#[test]
fn grad_leaves_dot_grad_alone_and_zero_fills_unused_inputs() {
    let x = param(&[1.0, 2.0], &[2]);
    let unused = param(&[5.0], &[1]);
    let y = x.powf(2.0).unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[&x, &unused], false).unwrap();
    assert_close(&read(&g[0]), &[2.0, 4.0], 1e-6, 1e-6);
    assert_eq!(read(&g[1]), vec![0.0]);
    assert!(x.grad().is_none());
    assert!(!g[0].requires_grad(), "no graph without create_graph");
}

#[test]
fn gradient_of_an_intermediate_tensor() {
    // grad() with respect to a non-leaf: d sum(h^2) / dh = 2h with h = 3x
    let x = param(&[1.0, -1.0], &[2]);
    let h = x.mul_scalar(3.0).unwrap();
    let y = h.square().unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[&h], false).unwrap();
    assert_eq!(read(&g[0]), vec![6.0, -6.0]);
}

#[test]
fn misuse_is_an_error() {
    let x = param(&[1.0, 2.0], &[2]);
    let v = x.mul_scalar(2.0).unwrap();
    // non-scalar output without a gradient
    assert!(matches!(
        v.backward(),
        Err(Error::InvalidArgument { op: "backward", .. })
    ));
    // an explicit gradient of the wrong shape
    let bad = constant(&[1.0], &[1]);
    assert!(matches!(
        v.backward_with(Some(&bad), BackwardOptions::default()),
        Err(Error::ShapeMismatch { .. })
    ));
    // a tensor that does not require grad
    let c = constant(&[1.0], &[1]);
    assert!(c.sum_all().unwrap().backward().is_err());
    // requires_grad on u32, and switching it off on a non-leaf
    assert!(index(&[1, 2], &[2]).requires_grad_(true).is_err());
    assert!(v.clone().requires_grad_(false).is_err());
    // set_data with another shape, or on a non-leaf
    assert!(x.set_data(&constant(&[1.0], &[1])).is_err());
    assert!(v.set_data(&constant(&[1.0, 2.0], &[2])).is_err());
    // grad() with an input that does not require grad
    let y = x.sum_all().unwrap();
    assert!(grad(&[&y], &[&c], false).is_err());
    // Shape errors keep the device op's name.
    let e = x.add(&constant(&[1.0, 2.0, 3.0], &[3])).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "add", .. }), "{e}");
}

#[test]
fn operators_match_methods() {
    let a = param(&[1.0, 2.0], &[2]);
    let b = constant(&[3.0, 5.0], &[2]);
    let y = ((&(&a * &b).unwrap() + 1.0).unwrap() - &(2.0 / &a).unwrap()).unwrap();
    let y = (&(-&y).unwrap() / 2.0).unwrap();
    // y = -(a b + 1 - 2/a) / 2
    assert_close(
        &read(&y),
        &[-(3.0 + 1.0 - 2.0) / 2.0, -(10.0 + 1.0 - 1.0) / 2.0],
        1e-6,
        1e-6,
    );
    y.sum_all().unwrap().backward().unwrap();
    // dy/da = -(b + 2/a^2) / 2
    assert_close(&read(&a.grad().unwrap()), &[-2.5, -2.75], 1e-6, 1e-6);
}

#[test]
fn set_data_updates_a_parameter_between_steps() {
    let w = param(&[1.0, 2.0], &[2]);
    let loss = w.square().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    let g = w.grad().unwrap();
    w.set_data(&w.detach().sub(&g.mul_scalar(0.25).unwrap()).unwrap())
        .unwrap();
    assert_eq!(read(&w), vec![0.5, 1.0]);
}

#[test]
fn from_op_defines_a_custom_op() {
    // A user-defined op: y = 2x with its own rule.
    let x = param(&[1.0, 2.0], &[2]);
    let y = Tensor::from_op("double", x.raw().mul_scalar(2.0).unwrap(), &[&x], |c| {
        Ok(vec![Some(c.grad.mul_scalar(2.0)?)])
    });
    assert_eq!(y.op_name(), Some("double"));
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(read(&x.grad().unwrap()), vec![2.0, 2.0]);
}

#[test]
fn gradcheck_catches_a_wrong_rule() {
    // y = x^2 with the rule 3x instead of 2x: gradcheck must report it.
    let x = rand_param(5, &[4]);
    let wrong = |t: &[Tensor]| {
        let y = t[0].raw().square()?;
        Ok(Tensor::from_op("bad_square", y, &[&t[0]], |c| {
            Ok(vec![Some(c.grad.mul(&c.input(0).mul_scalar(3.0)?)?)])
        }))
    };
    let e = cinder_autograd::gradcheck(std::slice::from_ref(&x), wrong, &Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("4 elements disagree"), "{e}");
    // and the right rule passes
    check(&[&x], |t| t[0].square());
}

/// Anomaly detection names the first op whose output is not finite, forward or inside a
/// backward rule, at the next readback; without it nothing is checked.
#[test]
fn anomaly_detection_names_the_first_non_finite_op() {
    use cinder_autograd::detect_anomaly;
    use cinder_device::Error;
    let x = param(&[1.0, 0.0, 2.0], &[3]);
    // log(0) = -inf in the forward pass: reported as "log"
    let r = detect_anomaly(|| {
        let y = x.log()?.mul_scalar(2.0)?.sum_all()?;
        y.item()
    });
    match r {
        Err(Error::NonFinite { op }) => assert_eq!(op, "log"),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    // sqrt(0) is finite, its gradient 1 / (2 sqrt(0)) is not: found inside sqrt's rule
    let r = detect_anomaly(|| {
        x.sqrt()?.sum_all()?.backward()?;
        x.grad().unwrap().to_vec::<f32>()
    });
    match r {
        Err(Error::NonFinite { op }) => assert!(op.contains("in the backward of sqrt"), "{op}"),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    // off: the same computation reads back its infinities without an error
    x.zero_grad();
    let v = x.log().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(v[1], f32::NEG_INFINITY);
}
