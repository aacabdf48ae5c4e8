//! Recurrent layers: the sequence op's forward against a CPU reference of every recurrence
//! (ragged rows, both directions), its backward against finite differences, padded steps
//! changing nothing, the refusal of double backward, and bad input as `Err`.

use cinder_autograd::{GradcheckOptions, Tensor, gradcheck};
use cinder_device::{DeviceTensor, RnnMode};
use cinder_nn::{Gru, GruCell, Lstm, LstmCell, Rnn, RnnConfig, VarStore};

use crate::common::{dev, read, t, uniform};

const MODES: [RnnMode; 4] = [RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru];

fn sig(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The CPU reference of `rnn_sequence`: `[T + 1 (+1), B, H]`.
#[allow(clippy::too_many_arguments)]
fn reference(
    mode: RnnMode,
    xw: &[f32],
    w_hh: &[f32],
    b_hh: &[f32],
    h0: &[f32],
    c0: &[f32],
    lens: &[u32],
    (t, b, h): (usize, usize, usize),
    reverse: bool,
) -> Vec<f32> {
    let g = mode.gates();
    let mut out = vec![0f32; mode.state_rows(t) * b * h];
    let (mut hs, mut cs) = (h0.to_vec(), c0.to_vec());
    for i in 0..t {
        let tt = if reverse { t - 1 - i } else { i };
        for r in 0..b {
            // hh = h W_hh^T + b_hh
            let hh: Vec<f32> = (0..g * h)
                .map(|q| b_hh[q] + (0..h).map(|k| hs[r * h + k] * w_hh[q * h + k]).sum::<f32>())
                .collect();
            let x = &xw[(tt * b + r) * g * h..(tt * b + r + 1) * g * h];
            let mut hn = vec![0f32; h];
            let mut cn = vec![0f32; h];
            for j in 0..h {
                match mode {
                    RnnMode::Tanh => hn[j] = (x[j] + hh[j]).tanh(),
                    RnnMode::Relu => hn[j] = (x[j] + hh[j]).max(0.0),
                    RnnMode::Lstm => {
                        let ig = sig(x[j] + hh[j]);
                        let fg = sig(x[h + j] + hh[h + j]);
                        let gg = (x[2 * h + j] + hh[2 * h + j]).tanh();
                        let og = sig(x[3 * h + j] + hh[3 * h + j]);
                        cn[j] = fg * cs[r * h + j] + ig * gg;
                        hn[j] = og * cn[j].tanh();
                    }
                    RnnMode::Gru => {
                        let rg = sig(x[j] + hh[j]);
                        let zg = sig(x[h + j] + hh[h + j]);
                        let ng = (x[2 * h + j] + rg * hh[2 * h + j]).tanh();
                        hn[j] = (1.0 - zg) * ng + zg * hs[r * h + j];
                    }
                }
            }
            if (tt as u32) < lens[r] {
                hs[r * h..(r + 1) * h].copy_from_slice(&hn);
                out[(tt * b + r) * h..(tt * b + r + 1) * h].copy_from_slice(&hn);
                if mode == RnnMode::Lstm {
                    cs[r * h..(r + 1) * h].copy_from_slice(&cn);
                }
            }
        }
    }
    out[t * b * h..(t + 1) * b * h].copy_from_slice(&hs);
    if mode == RnnMode::Lstm {
        out[(t + 1) * b * h..].copy_from_slice(&cs);
    }
    out
}

struct Inputs {
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    lens: DeviceTensor,
}

fn inputs(mode: RnnMode, (t_, b, h): (usize, usize, usize), lens: &[u32], seed: u64) -> Inputs {
    let g = mode.gates();
    let p = |v: Vec<f32>, s: &[usize]| t(&v, s).requires_grad_(true).unwrap();
    Inputs {
        xw: p(uniform(seed, t_ * b * g * h, -1.0, 1.0), &[t_, b, g * h]),
        w_hh: p(uniform(seed + 1, g * h * h, -0.6, 0.6), &[g * h, h]),
        b_hh: p(uniform(seed + 2, g * h, -0.3, 0.3), &[g * h]),
        h0: p(uniform(seed + 3, b * h, -0.5, 0.5), &[b, h]),
        c0: p(uniform(seed + 4, b * h, -0.5, 0.5), &[b, h]),
        lens: DeviceTensor::from_slice(&dev(), lens, &[b]).unwrap(),
    }
}

fn run(
    mode: RnnMode,
    v: &[Tensor],
    lens: &DeviceTensor,
    reverse: bool,
) -> cinder_device::Result<Tensor> {
    // v: xw, w_hh, b_hh, h0 (, c0)
    let c0 = (mode == RnnMode::Lstm).then(|| &v[4]);
    v[0].rnn_sequence(mode, &v[1], Some(&v[2]), &v[3], c0, lens, reverse)
}

#[test]
fn sequence_matches_cpu_reference() {
    let dims = (6, 3, 5);
    let lens = [6u32, 2, 4];
    for mode in MODES {
        for reverse in [false, true] {
            let i = inputs(mode, dims, &lens, 11);
            let v = [
                i.xw.clone(),
                i.w_hh.clone(),
                i.b_hh.clone(),
                i.h0.clone(),
                i.c0.clone(),
            ];
            let got = read(&run(mode, &v, &i.lens, reverse).unwrap());
            let want = reference(
                mode,
                &read(&i.xw),
                &read(&i.w_hh),
                &read(&i.b_hh),
                &read(&i.h0),
                &read(&i.c0),
                &lens,
                dims,
                reverse,
            );
            assert_eq!(got.len(), want.len());
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                    "{mode:?} reverse {reverse} [{k}]: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn sequence_backward_matches_finite_differences() {
    let dims = (4, 3, 3);
    let lens = [4u32, 1, 3];
    let opts = GradcheckOptions {
        eps: 1e-2,
        atol: 3e-3,
        rtol: 2e-2,
        seed: 5,
    };
    for mode in MODES {
        for reverse in [false, true] {
            let i = inputs(mode, dims, &lens, 21);
            let mut v = vec![i.xw, i.w_hh, i.b_hh, i.h0];
            if mode == RnnMode::Lstm {
                v.push(i.c0);
            }
            let lens = i.lens.clone();
            gradcheck(&v, |v| run(mode, v, &lens, reverse), &opts)
                .unwrap_or_else(|e| panic!("{mode:?} reverse {reverse}: {e}"));
        }
    }
}

#[test]
fn double_backward_through_a_sequence_is_refused() {
    let i = inputs(RnnMode::Lstm, (3, 2, 2), &[3, 3], 31);
    let v = [i.xw.clone(), i.w_hh, i.b_hh, i.h0, i.c0];
    let y = run(RnnMode::Lstm, &v, &i.lens, false)
        .unwrap()
        .square()
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(cinder_autograd::grad(&[&y], &[&i.xw], true).is_err());
    // without create_graph the same backward works
    let y = run(RnnMode::Lstm, &v, &i.lens, false)
        .unwrap()
        .square()
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(cinder_autograd::grad(&[&y], &[&i.xw], false).is_ok());
}

#[test]
fn padded_steps_change_nothing() {
    let vs = VarStore::new(&dev(), 3);
    let cfg = RnnConfig {
        bidirectional: true,
        num_layers: 2,
        ..Default::default()
    };
    let lstm = Lstm::new(&vs.pp("lstm"), 3, 4, cfg).unwrap();
    let gru = Gru::new(&vs.pp("gru"), 3, 4, cfg).unwrap();
    let (tt, b, f) = (5, 2, 3);
    let lens = [5usize, 2];
    let base = uniform(41, tt * b * f, -1.0, 1.0);
    let mut noisy = base.clone();
    for s in 2..tt {
        for k in 0..f {
            noisy[(s * b + 1) * f + k] = 100.0 + s as f32; // row 1's padding
        }
    }
    let run_lstm = |x: &[f32]| {
        let (y, (h, c)) = lstm
            .forward(&t(x, &[tt, b, f]), None, Some(&lens), false)
            .unwrap();
        (read(&y), read(&h), read(&c))
    };
    assert_eq!(run_lstm(&base), run_lstm(&noisy));
    let run_gru = |x: &[f32]| {
        let (y, h) = gru
            .forward(&t(x, &[tt, b, f]), None, Some(&lens), false)
            .unwrap();
        (read(&y), read(&h))
    };
    let (y, _) = run_gru(&noisy);
    assert_eq!(run_gru(&base), run_gru(&noisy));
    // the padded outputs are zeros, in both directions' halves
    for s in 2..tt {
        assert!(
            y[(s * b + 1) * 8..(s * b + 2) * 8]
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}

#[test]
fn bad_input_is_refused() {
    let vs = VarStore::new(&dev(), 4);
    let lstm = Lstm::new(&vs.pp("l"), 3, 4, RnnConfig::default()).unwrap();
    let x = t(&uniform(51, 4 * 2 * 3, -1.0, 1.0), &[4, 2, 3]);
    assert!(lstm.forward(&x, None, Some(&[4, 0]), false).is_err());
    assert!(lstm.forward(&x, None, Some(&[5, 1]), false).is_err());
    assert!(lstm.forward(&x, None, Some(&[4]), false).is_err());
    let wrong = t(&uniform(52, 4 * 2 * 2, -1.0, 1.0), &[4, 2, 2]);
    assert!(lstm.forward(&wrong, None, None, false).is_err());
    let h0 = t(&[0.0; 8], &[1, 2, 4]);
    let bad_c = t(&[0.0; 4], &[1, 1, 4]);
    assert!(lstm.forward(&x, Some((&h0, &bad_c)), None, false).is_err());
    assert!(lstm.forward(&x, Some((&h0, &h0)), None, false).is_ok());
    let empty = Tensor::zeros(&dev(), &[0, 2, 3]).unwrap();
    assert!(lstm.forward(&empty, None, None, false).is_err());
    assert!(Rnn::new(&vs.pp("r"), 0, 4, false, RnnConfig::default()).is_err());
    let cfg = RnnConfig {
        dropout: 1.5,
        ..Default::default()
    };
    assert!(Gru::new(&vs.pp("g"), 3, 4, cfg).is_err());
    let cell = LstmCell::new(&vs.pp("c"), 3, 4, true).unwrap();
    assert!(
        cell.forward(
            &wrong.narrow(0, 0, 1).unwrap().reshape(&[2, 2]).unwrap(),
            None
        )
        .is_err()
    );
    let gcell = GruCell::new(&vs.pp("gc"), 3, 4, true).unwrap();
    let h_bad = t(&[0.0; 3], &[1, 3]);
    assert!(gcell.forward(&t(&[0.0; 3], &[1, 3]), Some(&h_bad)).is_err());
}

#[test]
fn cells_are_twice_differentiable() {
    let vs = VarStore::new(&dev(), 6);
    let cell = LstmCell::new(&vs.pp("c"), 3, 2, true).unwrap();
    let x = t(&uniform(61, 2 * 3, -1.0, 1.0), &[2, 3])
        .requires_grad_(true)
        .unwrap();
    let (h, c) = cell.forward(&x, None).unwrap();
    let y = h.add(&c).unwrap().square().unwrap().sum_all().unwrap();
    let g = cinder_autograd::grad(&[&y], &[&x], true).unwrap();
    let gg =
        cinder_autograd::grad(&[&g[0].square().unwrap().sum_all().unwrap()], &[&x], false).unwrap();
    assert!(read(&gg[0]).iter().all(|v| v.is_finite()));
    assert!(read(&gg[0]).iter().any(|&v| v != 0.0));
}
