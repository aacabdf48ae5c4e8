//! Recurrent layers against `tests/fixtures/rnn.safetensors`: nn.RNN, nn.LSTM and nn.GRU
//! (layers, directions, batch_first, initial states, ragged lengths) and the three cells,
//! each built with the case's options, loading the PyTorch module's `state_dict` strictly by
//! name, and reproducing the outputs, final states and every gradient.

use cinder::nn::{Gru, GruCell, Lstm, LstmCell, Rnn, RnnCell, RnnConfig, VarStore};
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn relu(case: &Case) -> Result<bool> {
    Ok(match case.args.get("nonlinearity") {
        Some(_) => case.str("nonlinearity")? == "relu",
        None => false,
    })
}

/// `sum(y * cot)` over the pairs, backpropagated.
fn backward(pairs: &[(&Tensor, Tensor)]) -> Result<()> {
    let mut loss: Option<Tensor> = None;
    for (y, cot) in pairs {
        let l = y.mul(cot)?.sum_all()?;
        loss = Some(match loss {
            Some(s) => s.add(&l)?,
            None => l,
        });
    }
    loss.expect("a term").backward()
}

/// The gradients of the input, the given initial states and every parameter of the store.
fn grads(
    case: &Case,
    vs: &VarStore,
    x: &Tensor,
    h0: &Option<Tensor>,
    c0: &Option<Tensor>,
) -> Produced {
    let mut got = vec![("expect.grad.x".to_string(), x.grad().expect("x's gradient"))];
    for (k, t) in [("h0", h0), ("c0", c0)] {
        if let Some(t) = t {
            got.push((
                format!("expect.grad.{k}"),
                t.grad().expect("a state's gradient"),
            ));
        }
    }
    got.extend(case.param_grads(vs, "m."));
    got
}

fn sequence_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let path = vs.pp("m");
    let cfg = RnnConfig {
        num_layers: case
            .args
            .get("num_layers")
            .map(|_| case.usize("num_layers"))
            .transpose()?
            .unwrap_or(1),
        bias: case.bool_or("bias", true)?,
        batch_first: case.bool_or("batch_first", false)?,
        bidirectional: case.bool_or("bidirectional", false)?,
        ..Default::default()
    };
    let (f, h) = (case.usize("input_size")?, case.usize("hidden_size")?);
    let x = case.param("x")?;
    let state = case.bool_or("state", false)?;
    let h0 = state.then(|| case.param("h0")).transpose()?;
    let c0 = (state && case.op == "LSTM")
        .then(|| case.param("c0"))
        .transpose()?;
    let lengths = case
        .args
        .get("lengths")
        .map(|_| case.usizes("lengths"))
        .transpose()?;
    let lens = lengths.as_deref();
    let (out, h_n, c_n) = match case.op.as_str() {
        "RNN" => {
            let m = Rnn::new(&path, f, h, relu(case)?, cfg)?;
            case.load_state(&vs)?;
            let (y, hn) = m.forward(&x, h0.as_ref(), lens, true)?;
            (y, hn, None)
        }
        "GRU" => {
            let m = Gru::new(&path, f, h, cfg)?;
            case.load_state(&vs)?;
            let (y, hn) = m.forward(&x, h0.as_ref(), lens, true)?;
            (y, hn, None)
        }
        "LSTM" => {
            let m = Lstm::new(&path, f, h, cfg)?;
            case.load_state(&vs)?;
            let (y, (hn, cn)) = m.forward(&x, h0.as_ref().zip(c0.as_ref()), lens, true)?;
            (y, hn, Some(cn))
        }
        _ => return Err(unknown(case)),
    };
    let mut terms = vec![(&out, case.tensor("cot")?), (&h_n, case.tensor("cot_h")?)];
    if let Some(c) = &c_n {
        terms.push((c, case.tensor("cot_c")?));
    }
    backward(&terms)?;
    let mut got = vec![
        ("expect.out".to_string(), out.clone()),
        ("expect.h_n".to_string(), h_n.clone()),
    ];
    if let Some(c) = &c_n {
        got.push(("expect.c_n".to_string(), c.clone()));
    }
    got.extend(grads(case, &vs, &x, &h0, &c0));
    Ok(got)
}

fn cell_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let path = vs.pp("m");
    let (f, h) = (case.usize("input_size")?, case.usize("hidden_size")?);
    let bias = case.bool_or("bias", true)?;
    let x = case.param("x")?;
    let state = case.bool_or("state", false)?;
    let h0 = state.then(|| case.param("h0")).transpose()?;
    let c0 = (state && case.op == "LSTMCell")
        .then(|| case.param("c0"))
        .transpose()?;
    let (hy, cy) = match case.op.as_str() {
        "RNNCell" => {
            let m = RnnCell::new(&path, f, h, bias, relu(case)?)?;
            case.load_state(&vs)?;
            (m.forward(&x, h0.as_ref())?, None)
        }
        "GRUCell" => {
            let m = GruCell::new(&path, f, h, bias)?;
            case.load_state(&vs)?;
            (m.forward(&x, h0.as_ref())?, None)
        }
        "LSTMCell" => {
            let m = LstmCell::new(&path, f, h, bias)?;
            case.load_state(&vs)?;
            let (hy, cy) = m.forward(&x, h0.as_ref().zip(c0.as_ref()))?;
            (hy, Some(cy))
        }
        _ => return Err(unknown(case)),
    };
    let mut terms = vec![(&hy, case.tensor("cot_h")?)];
    if let Some(c) = &cy {
        terms.push((c, case.tensor("cot_c")?));
    }
    backward(&terms)?;
    let mut got = vec![("expect.h".to_string(), hy.clone())];
    if let Some(c) = &cy {
        got.push(("expect.c".to_string(), c.clone()));
    }
    got.extend(grads(case, &vs, &x, &h0, &c0));
    Ok(got)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "RNN" | "LSTM" | "GRU" => sequence_case(case),
        "RNNCell" | "LSTMCell" | "GRUCell" => cell_case(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn rnn() {
    run_family("rnn", run);
}
