// One time step of a recurrent layer, forward and backward: the gate arithmetic of
// nn.RNN (tanh or relu), nn.LSTM and nn.GRU fused into one kernel per step, beside one
// matmul of the hidden state (the host's loop: ops/rnn.rs).
//
// MODE: 0 RNN tanh, 1 RNN relu, 2 LSTM (gates i, f, g, o), 3 GRU (gates r, z, n), PyTorch's
// gate order. G gates, H hidden units, B batch rows, T steps; one invocation per (row, unit).
//
// Forward inputs: xw [T, B, G*H], the input projection of every step (x W_ih^T + b_ih, one
// matmul for all steps); hh [B, G*H], this step's h W_hh^T + b_hh; lens [B] (u32), the valid
// steps of each row: a step t >= lens[b] leaves the state unchanged and outputs 0, so padded
// steps change nothing (in either direction).
// Forward state and outputs (read_write): h and c [B, H], the running state (c unused but
// bound for RNN and GRU); s [T + 1 (+1 for LSTM), B, H]: rows 0..T the outputs, row T the
// final h, row T+1 the final c; save [T, B, SW]: what backward needs, per step and row: SG*H
// gate values (LSTM: activated i, f, g, o; GRU: activated r, z, n and W_hn h + b_hn; RNN: the
// output h), then the previous h (H), then (LSTM) the previous c (H).
//
// Backward (the host runs t from the last forward step to the first): save, gs (the gradient
// of s), lens, dhmm [B, H] (the previous backward step's dgates @ W_hh, zeros at first);
// read_write: dhc [B, H], the gradient carried to the earlier state past the recurrent matmul
// (the final h's gradient at first; a masked step passes its whole gradient on, GRU's
// z * dh term rides here too), dc [B, H] (LSTM: the cell state's gradient), dg [T, B, DW]
// (the gradients of the gate pre-activations: DW = G*H, GRU 4*H: dr, dz, dn and dn * r),
// dgc [B, G*H] (this step's gradient of hh, the recurrent matmul's input).

override MODE: u32 = 0u;

struct P {
    t: u32,    // this step's time index
    b: u32,    // batch rows
    h: u32,    // hidden units
    steps: u32, // T
    sw: u32,   // save row width
}

var<immediate> p: P;

// Save blocks of gate values before the previous h.
fn save_gates() -> u32 {
    if (MODE >= 2u) {
        return 4u;
    }
    return 1u;
}

fn gates() -> u32 {
    if (MODE == 2u) {
        return 4u;
    } else if (MODE == 3u) {
        return 3u;
    }
    return 1u;
}

@group(0) @binding(0) var<storage, read> xw: array<f32>;
@group(0) @binding(1) var<storage, read> hh: array<f32>;
@group(0) @binding(2) var<storage, read> lens: array<u32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(4) var<storage, read_write> cs: array<f32>;
@group(0) @binding(5) var<storage, read_write> s: array<f32>;
@group(0) @binding(6) var<storage, read_write> save: array<f32>;

@compute @workgroup_size(64)
fn rnn_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = grid_index(wid, nwg, lid, 64u);
    let h = p.h;
    if (idx >= p.b * h) {
        return;
    }
    let row = idx / h;
    let j = idx % h;
    let gh = gates() * h;
    let xo = (p.t * p.b + row) * gh;
    let ho = row * gh;
    let sv = (p.t * p.b + row) * p.sw;
    let sg = save_gates() * h;
    let hp = hs[idx];
    save[sv + sg + j] = hp;
    var hn = 0.0;
    var cn = 0.0;
    if (MODE == 2u) {
        let cp = cs[idx];
        save[sv + sg + h + j] = cp;
        let ig = sigmoid(xw[xo + j] + hh[ho + j]);
        let fg = sigmoid(xw[xo + h + j] + hh[ho + h + j]);
        let gg = tanh_stable(xw[xo + 2u * h + j] + hh[ho + 2u * h + j]);
        let og = sigmoid(xw[xo + 3u * h + j] + hh[ho + 3u * h + j]);
        cn = fg * cp + ig * gg;
        hn = og * tanh_stable(cn);
        save[sv + j] = ig;
        save[sv + h + j] = fg;
        save[sv + 2u * h + j] = gg;
        save[sv + 3u * h + j] = og;
    } else if (MODE == 3u) {
        let rg = sigmoid(xw[xo + j] + hh[ho + j]);
        let zg = sigmoid(xw[xo + h + j] + hh[ho + h + j]);
        let hnn = hh[ho + 2u * h + j];
        let ng = tanh_stable(xw[xo + 2u * h + j] + rg * hnn);
        hn = (1.0 - zg) * ng + zg * hp;
        save[sv + j] = rg;
        save[sv + h + j] = zg;
        save[sv + 2u * h + j] = ng;
        save[sv + 3u * h + j] = hnn;
    } else {
        let pre = xw[xo + j] + hh[ho + j];
        if (MODE == 1u) {
            hn = select(max(pre, 0.0), pre, is_nan(pre));
        } else {
            hn = tanh_stable(pre);
        }
        save[sv + j] = hn;
    }
    let bh = p.b * h;
    if (p.t < lens[row]) {
        hs[idx] = hn;
        s[p.t * bh + idx] = hn;
        if (MODE == 2u) {
            cs[idx] = cn;
        }
    } else {
        s[p.t * bh + idx] = 0.0;
    }
    s[p.steps * bh + idx] = hs[idx];
    if (MODE == 2u) {
        s[(p.steps + 1u) * bh + idx] = cs[idx];
    }
}

@group(0) @binding(0) var<storage, read> bsave: array<f32>;
@group(0) @binding(1) var<storage, read> gs: array<f32>;
@group(0) @binding(2) var<storage, read> blens: array<u32>;
@group(0) @binding(3) var<storage, read> dhmm: array<f32>;
@group(0) @binding(4) var<storage, read_write> dhc: array<f32>;
@group(0) @binding(5) var<storage, read_write> dc: array<f32>;
@group(0) @binding(6) var<storage, read_write> dg: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgc: array<f32>;

@compute @workgroup_size(64)
fn rnn_step_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = grid_index(wid, nwg, lid, 64u);
    let h = p.h;
    if (idx >= p.b * h) {
        return;
    }
    let row = idx / h;
    let j = idx % h;
    let gh = gates() * h;
    var dw = gh;
    if (MODE == 3u) {
        dw = 4u * h;
    }
    let go = (p.t * p.b + row) * dw;
    let co = row * gh;
    let sv = (p.t * p.b + row) * p.sw;
    let sg = save_gates() * h;
    let valid = p.t < blens[row];
    if (!valid) {
        // The state passed through unchanged: its whole gradient goes on to the earlier one.
        dhc[idx] = dhc[idx] + dhmm[idx];
        for (var q = 0u; q < dw / h; q++) {
            dg[go + q * h + j] = 0.0;
        }
        for (var q = 0u; q < gh / h; q++) {
            dgc[co + q * h + j] = 0.0;
        }
        return;
    }
    let dh = gs[p.t * p.b * h + idx] + dhmm[idx] + dhc[idx];
    if (MODE == 2u) {
        let ig = bsave[sv + j];
        let fg = bsave[sv + h + j];
        let gg = bsave[sv + 2u * h + j];
        let og = bsave[sv + 3u * h + j];
        let cp = bsave[sv + sg + h + j];
        let tc = tanh_stable(fg * cp + ig * gg);
        let d_o = dh * tc * og * (1.0 - og);
        let dct = dc[idx] + dh * og * (1.0 - tc * tc);
        let d_i = dct * gg * ig * (1.0 - ig);
        let d_f = dct * cp * fg * (1.0 - fg);
        let d_g = dct * ig * (1.0 - gg * gg);
        dc[idx] = dct * fg;
        dhc[idx] = 0.0;
        dg[go + j] = d_i;
        dg[go + h + j] = d_f;
        dg[go + 2u * h + j] = d_g;
        dg[go + 3u * h + j] = d_o;
        dgc[co + j] = d_i;
        dgc[co + h + j] = d_f;
        dgc[co + 2u * h + j] = d_g;
        dgc[co + 3u * h + j] = d_o;
    } else if (MODE == 3u) {
        let rg = bsave[sv + j];
        let zg = bsave[sv + h + j];
        let ng = bsave[sv + 2u * h + j];
        let hnn = bsave[sv + 3u * h + j];
        let hp = bsave[sv + sg + j];
        let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
        let dz = dh * (hp - ng) * zg * (1.0 - zg);
        let dr = dn * hnn * rg * (1.0 - rg);
        dhc[idx] = dh * zg;
        dg[go + j] = dr;
        dg[go + h + j] = dz;
        dg[go + 2u * h + j] = dn;
        dg[go + 3u * h + j] = dn * rg;
        dgc[co + j] = dr;
        dgc[co + h + j] = dz;
        dgc[co + 2u * h + j] = dn * rg;
    } else {
        let y = bsave[sv + j];
        var d = 0.0;
        if (MODE == 1u) {
            d = select(0.0, dh, y > 0.0);
        } else {
            d = dh * (1.0 - y * y);
        }
        dhc[idx] = 0.0;
        dg[go + j] = d;
        dgc[co + j] = d;
    }
}
