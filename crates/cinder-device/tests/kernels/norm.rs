//! The per-channel affine kernel (batch norm's passes) against a CPU loop: one and two
//! operands, squared, `[N, C]` and `[N, C, H, W]`, more rows than one grid dimension holds,
//! NaN passing through, and the shapes it refuses.

use super::common::*;
use cinder_device::DeviceTensor;

fn cpu(
    x: &[f32],
    z: Option<(&[f32], &[f32])>,
    a: &[f32],
    d: &[f32],
    c: usize,
    l: usize,
    square: bool,
) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let ch = (i / l) % c;
            let mut v = x[i] * a[ch] + d[ch];
            if let Some((z, b)) = z {
                v += z[i] * b[ch];
            }
            if square { v * v } else { v }
        })
        .collect()
}

#[test]
fn channel_affine_matches_cpu() {
    let mut r = rng(70);
    // [70000, 1]: 70,000 rows of one element, past 65535 rows per grid dimension.
    for shape in [
        vec![3, 4, 5, 7],
        vec![6, 3],
        vec![2, 5, 300],
        vec![70000, 1],
    ] {
        let c = shape[1];
        let l: usize = shape[2..].iter().product();
        let (x, mut xv) = rand_tensor(&mut r, &shape);
        xv[0] = f32::NAN;
        let x = DeviceTensor::from_slice(x.device(), &xv, &shape).unwrap();
        let (z, zv) = rand_tensor(&mut r, &shape);
        let (a, av) = rand_tensor(&mut r, &[c]);
        let (d, dv) = rand_tensor(&mut r, &[c]);
        let (b, bv) = rand_tensor(&mut r, &[c]);
        for square in [false, true] {
            for two in [false, true] {
                let second = two.then_some((&z, &b));
                let got = read(&x.channel_affine(&a, &d, second, square).unwrap());
                let want = cpu(
                    &xv,
                    two.then_some((&zv[..], &bv[..])),
                    &av,
                    &dv,
                    c,
                    l,
                    square,
                );
                assert!(got[0].is_nan(), "{shape:?}: NaN must pass");
                assert_close(&got[1..], &want[1..], 1e-5, 1e-5);
            }
        }
    }
}

#[test]
fn channel_affine_refuses_bad_shapes() {
    let mut r = rng(71);
    let (x, _) = rand_tensor(&mut r, &[2, 3, 4]);
    let (v3, _) = rand_tensor(&mut r, &[3]);
    let (v4, _) = rand_tensor(&mut r, &[4]);
    let (z, _) = rand_tensor(&mut r, &[2, 3, 5]);
    let (flat, _) = rand_tensor(&mut r, &[3]);
    assert!(x.channel_affine(&v4, &v3, None, false).is_err());
    assert!(x.channel_affine(&v3, &v4, None, false).is_err());
    assert!(x.channel_affine(&v3, &v3, Some((&z, &v3)), false).is_err());
    assert!(x.channel_affine(&v3, &v3, Some((&x, &v4)), false).is_err());
    assert!(flat.channel_affine(&v3, &v3, None, false).is_err());
    // empty batch: an empty result
    let (e, _) = rand_tensor(&mut r, &[0, 3, 2]);
    assert_eq!(
        e.channel_affine(&v3, &v3, None, false).unwrap().shape(),
        &[0, 3, 2]
    );
}
