"""Recurrent layers: nn.RNN (tanh, relu), nn.LSTM, nn.GRU over whole sequences (several
layers, bidirectional, batch_first, an initial state given or not, rows of different
lengths through pack_padded_sequence / pad_packed_sequence), and nn.RNNCell, nn.LSTMCell,
nn.GRUCell. Custom cases: the runner builds the Cinder layer, loads the PyTorch module's
state_dict strictly by name ("state.m.*"), runs it and must reproduce the output, the final
states and the gradients of the input, the initial states and every parameter for the loss
sum(out * cot) + sum(h_n * cot_h) (+ sum(c_n * cot_c))."""

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# Sums over a few dozen products per gate and step, through tanh and sigmoid, in f32.
TOL = dict(atol=2e-5, rtol=2e-4)

KINDS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNNCell": nn.RNNCell, "LSTMCell": nn.LSTMCell, "GRUCell": nn.GRUCell}


def _state(tensors, module):
    for k, v in module.state_dict().items():
        tensors[f"state.m.{k}"] = v.clone()


def sequence_case(fam, name, kind, T, B, F, H, lengths=None, state=False, unbatched=False,
                  **kw):
    torch.manual_seed(len(fam.meta) + 1)
    m = KINDS[kind](F, H, **kw)
    batch_first = kw.get("batch_first", False)
    L = kw.get("num_layers", 1)
    D = 2 if kw.get("bidirectional", False) else 1
    if unbatched:
        x = fam.randn(T, F)
    else:
        x = fam.randn(B, T, F) if batch_first else fam.randn(T, B, F)
    x.requires_grad_(True)
    sshape = (L * D, H) if unbatched else (L * D, B, H)
    tensors = {}
    hx = None
    if state:
        h0 = fam.randn(*sshape, scale=0.5).requires_grad_(True)
        c0 = fam.randn(*sshape, scale=0.5).requires_grad_(True)
        hx = (h0, c0) if kind == "LSTM" else h0
    if lengths is not None:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out, hn = m(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        out, hn = m(x, hx)
    h_n, c_n = hn if kind == "LSTM" else (hn, None)
    cot = fam.randn(*out.shape)
    cot_h = fam.randn(*h_n.shape)
    loss = (out * cot).sum() + (h_n * cot_h).sum()
    if c_n is not None:
        cot_c = fam.randn(*c_n.shape)
        loss = loss + (c_n * cot_c).sum()
        tensors.update({"cot_c": cot_c, "expect.c_n": c_n.detach()})
    loss.backward()
    _state(tensors, m)
    tensors.update({"x": x.detach(), "cot": cot, "cot_h": cot_h, "expect.out": out.detach(),
                    "expect.h_n": h_n.detach(), "expect.grad.x": x.grad})
    if state:
        tensors.update({"h0": h0.detach(), "expect.grad.h0": h0.grad})
        if kind == "LSTM":
            tensors.update({"c0": c0.detach(), "expect.grad.c0": c0.grad})
    for k, p in m.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    args = {"input_size": F, "hidden_size": H, "state": state}
    args.update({k: v for k, v in kw.items()})
    if lengths is not None:
        args["lengths"] = list(lengths)
    fam.custom(name, kind, tensors, args=args, **TOL)


def cell_case(fam, name, kind, B, F, H, state=True, unbatched=False, **kw):
    torch.manual_seed(len(fam.meta) + 1)
    m = CELLS[kind](F, H, **kw)
    x = (fam.randn(F) if unbatched else fam.randn(B, F)).requires_grad_(True)
    sshape = (H,) if unbatched else (B, H)
    tensors = {}
    hx = None
    if state:
        h0 = fam.randn(*sshape, scale=0.5).requires_grad_(True)
        c0 = fam.randn(*sshape, scale=0.5).requires_grad_(True)
        hx = (h0, c0) if kind == "LSTMCell" else h0
    out = m(x, hx)
    h, c = out if kind == "LSTMCell" else (out, None)
    cot_h = fam.randn(*h.shape)
    loss = (h * cot_h).sum()
    if c is not None:
        cot_c = fam.randn(*c.shape)
        loss = loss + (c * cot_c).sum()
        tensors.update({"cot_c": cot_c, "expect.c": c.detach()})
    loss.backward()
    _state(tensors, m)
    tensors.update({"x": x.detach(), "cot_h": cot_h, "expect.h": h.detach(),
                    "expect.grad.x": x.grad})
    if state:
        tensors.update({"h0": h0.detach(), "expect.grad.h0": h0.grad})
        if kind == "LSTMCell":
            tensors.update({"c0": c0.detach(), "expect.grad.c0": c0.grad})
    for k, p in m.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    args = {"input_size": F, "hidden_size": H, "state": state}
    args.update(kw)
    fam.custom(name, kind, tensors, args=args, **TOL)


def build(fam):
    s = sequence_case
    s(fam, "rnn_tanh", "RNN", 5, 3, 4, 6)
    s(fam, "rnn_relu_two_layers_state", "RNN", 4, 2, 3, 5, num_layers=2,
      nonlinearity="relu", state=True)
    s(fam, "rnn_bidirectional_ragged", "RNN", 6, 3, 4, 5, bidirectional=True,
      lengths=[6, 2, 4])
    s(fam, "lstm_one_layer", "LSTM", 5, 3, 4, 6)
    s(fam, "lstm_state", "LSTM", 4, 2, 5, 3, state=True)
    s(fam, "lstm_two_layers_bidirectional_batch_first", "LSTM", 5, 3, 4, 6, num_layers=2,
      bidirectional=True, batch_first=True, state=True)
    s(fam, "lstm_ragged_bidirectional", "LSTM", 7, 4, 3, 5, bidirectional=True,
      lengths=[7, 3, 1, 5], state=True)
    s(fam, "lstm_ragged_two_layers_batch_first", "LSTM", 6, 3, 4, 4, num_layers=2,
      batch_first=True, lengths=[2, 6, 5])
    s(fam, "lstm_no_bias", "LSTM", 4, 2, 3, 4, bias=False)
    s(fam, "lstm_unbatched", "LSTM", 5, 1, 3, 4, unbatched=True, state=True)
    s(fam, "gru_one_layer", "GRU", 5, 3, 4, 6)
    s(fam, "gru_two_layers_bidirectional_state", "GRU", 5, 2, 3, 4, num_layers=2,
      bidirectional=True, state=True)
    s(fam, "gru_ragged", "GRU", 6, 3, 4, 5, lengths=[3, 6, 1], state=True)
    s(fam, "gru_no_bias_batch_first", "GRU", 4, 3, 2, 3, bias=False, batch_first=True)
    c = cell_case
    c(fam, "rnn_cell_tanh", "RNNCell", 3, 4, 5)
    c(fam, "rnn_cell_relu_no_state", "RNNCell", 3, 4, 5, state=False, nonlinearity="relu")
    c(fam, "lstm_cell", "LSTMCell", 3, 4, 5)
    c(fam, "lstm_cell_no_state_no_bias", "LSTMCell", 2, 3, 4, state=False, bias=False)
    c(fam, "lstm_cell_unbatched", "LSTMCell", 1, 3, 4, unbatched=True)
    c(fam, "gru_cell", "GRUCell", 3, 4, 5)
    c(fam, "gru_cell_no_state", "GRUCell", 2, 3, 4, state=False)
