// Reductions along one axis of a contiguous f32 tensor viewed as [outer, len, inner]; output o
// (o = outer_index * inner + inner_index) reduces the `len` elements
// x[(o / inner) * len * inner + k * inner + o % inner], k = 0..len.
//
// The op is the override OP when set (the host specializes the hot ops, sum and mean: a
// runtime switch costs about 1.8x on lavapipe), else the runtime parameter p.op. Entry points:
//   reduce_rows        one invocation per output, looping over len (many outputs, short axes)
//   reduce_partial_in  workgroup (c, o) reduces chunk c of output o's axis into a state
//   reduce_partial_st  workgroup (c, o) combines chunk c of output o's states into a state
//   reduce_final_in    as reduce_partial_in with one chunk, writing the final value
//   reduce_final_st    as reduce_partial_st with one chunk, writing the final value
// The host chains partial passes (a tree) until one chunk is left, never reading back.
//
// A state S carries what every op needs to be combined associatively:
//   sum, mean:        a = running sum
//   max/min, arg*:    a = best value, i = its index along the axis (EMPTY: no element yet;
//                     ties keep the smaller index and NaN beats every number, so the
//                     result is the first NaN when there is one, as PyTorch)
//   logsumexp:        a = running max m, b = sum of exp(x - m)  (stable), c = 1 once a NaN
//                     was seen
//   var:              a = mean, b = sum of squared deviations (M2), i = count
//                     (Welford per element, Chan et al. to combine)
// Final values are written as u32 words: f32 results bit-cast, arg results as indices.

const WG: u32 = 256u;
const EMPTY: u32 = 0xffffffffu;
const NEG_BIG: f32 = -3.4028234e38;

const OP_SUM: u32 = 0u;
const OP_MEAN: u32 = 1u;
const OP_MAX: u32 = 2u;
const OP_MIN: u32 = 3u;
const OP_ARGMAX: u32 = 4u;
const OP_ARGMIN: u32 = 5u;
const OP_LSE: u32 = 6u;
const OP_VAR: u32 = 7u;

struct S {
    a: f32,
    b: f32,
    c: f32,
    i: u32,
}

struct P {
    len: u32,       // elements (or states) per output along the reduced axis
    inner: u32,     // stride between consecutive axis elements of the input (1 for states)
    n_out: u32,     // number of outputs (outer * inner)
    chunk: u32,     // elements (or states) per workgroup in the chunked passes
    op: u32,        // OP_* above
    corr: f32,      // variance correction (1 unbiased, 0 biased)
    total_len: u32, // the original axis length (mean's divisor)
}

var<immediate> p: P;

// OP_* to specialize the kernel for one op; OP_DYN reads the op from p.op.
const OP_DYN: u32 = 255u;
override OP: u32 = OP_DYN;

fn op() -> u32 {
    if (OP == OP_DYN) {
        return p.op;
    }
    return OP;
}

@group(0) @binding(0) var<storage, read> x_in: array<f32>;
@group(0) @binding(0) var<storage, read> s_in: array<S>;
@group(0) @binding(1) var<storage, read_write> y_out: array<u32>;
@group(0) @binding(1) var<storage, read_write> s_out: array<S>;

var<workgroup> sh: array<S, WG>;

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn init() -> S {
    switch op() {
        case OP_LSE: {
            return S(NEG_BIG, 0.0, 0.0, 0u);
        }
        case OP_VAR: {
            return S(0.0, 0.0, 0.0, 0u);
        }
        default: {
            return S(0.0, 0.0, 0.0, EMPTY);
        }
    }
}

// Folds element x (at axis index k) into state s.
fn accum(s: S, x: f32, k: u32) -> S {
    var r = s;
    switch op() {
        case OP_SUM, OP_MEAN: {
            r.a = s.a + x;
        }
        case OP_MAX, OP_ARGMAX: {
            if (s.i == EMPTY || (!is_nan(s.a) && (x > s.a || is_nan(x)))) {
                r.a = x;
                r.i = k;
            }
        }
        case OP_MIN, OP_ARGMIN: {
            if (s.i == EMPTY || (!is_nan(s.a) && (x < s.a || is_nan(x)))) {
                r.a = x;
                r.i = k;
            }
        }
        case OP_LSE: {
            if (is_nan(x)) {
                r.c = 1.0;
            } else if (x > s.a) {
                r.b = s.b * exp(s.a - x) + 1.0;
                r.a = x;
            } else if (x == s.a) {
                r.b = s.b + 1.0; // also for equal infinities, where exp(x - a) is NaN
            } else {
                r.b = s.b + exp(x - s.a);
            }
        }
        default: {
            r.i = s.i + 1u;
            let d = x - s.a;
            r.a = s.a + d / f32(r.i);
            r.b = s.b + d * (x - r.a);
        }
    }
    return r;
}

// The better of two max (or min) states: NaN beats any number (the first NaN wins, as
// PyTorch), then the larger (smaller) value, then on ties the smaller index.
fn pick_extremum(s: S, t: S, larger: bool) -> S {
    if (t.i == EMPTY) {
        return s;
    }
    if (s.i == EMPTY) {
        return t;
    }
    let sn = is_nan(s.a);
    let tn = is_nan(t.a);
    if (sn != tn) {
        if (tn) {
            return t;
        }
        return s;
    }
    let better = select((t.a < s.a), (t.a > s.a), larger);
    if ((!sn && better) || ((sn || t.a == s.a) && t.i < s.i)) {
        return t;
    }
    return s;
}

// Combines two states (associative; for arg ops the smaller index wins ties).
fn combine(s: S, t: S) -> S {
    switch op() {
        case OP_SUM, OP_MEAN: {
            return S(s.a + t.a, 0.0, 0.0, 0u);
        }
        case OP_MAX, OP_ARGMAX: {
            return pick_extremum(s, t, true);
        }
        case OP_MIN, OP_ARGMIN: {
            return pick_extremum(s, t, false);
        }
        case OP_LSE: {
            let m = max(s.a, t.a);
            // a side at the maximum contributes its sum as it is (no exp(inf - inf))
            let bs = select(s.b * exp(s.a - m), s.b, s.a == m);
            let bt = select(t.b * exp(t.a - m), t.b, t.a == m);
            return S(m, bs + bt, max(s.c, t.c), 0u);
        }
        default: {
            if (t.i == 0u) {
                return s;
            }
            if (s.i == 0u) {
                return t;
            }
            let n = s.i + t.i;
            let d = t.a - s.a;
            let w = f32(t.i) / f32(n);
            return S(s.a + d * w, s.b + t.b + d * d * f32(s.i) * w, 0.0, n);
        }
    }
}

// The final value of a state, as a u32 word.
fn finish(s: S) -> u32 {
    switch op() {
        case OP_SUM, OP_MAX, OP_MIN: {
            return bitcast<u32>(s.a);
        }
        case OP_MEAN: {
            return bitcast<u32>(select(nan(), s.a / f32(p.total_len), p.total_len > 0u));
        }
        case OP_ARGMAX, OP_ARGMIN: {
            return s.i;
        }
        case OP_LSE: {
            // NaN when an element was NaN; a +inf maximum gives +inf, as PyTorch
            return bitcast<u32>(select(s.a + log(s.b), nan(), s.c != 0.0));
        }
        default: {
            let den = f32(s.i) - p.corr;
            return bitcast<u32>(select(nan(), s.b / den, den > 0.0));
        }
    }
}

// Offset of output o's first element.
fn base_of(o: u32) -> u32 {
    return (o / p.inner) * p.len * p.inner + o % p.inner;
}

// Tree-combines one state per invocation; every invocation gets the workgroup's result.
fn tree(lid: u32, s: S) -> S {
    sh[lid] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (lid < w) {
            sh[lid] = combine(sh[lid], sh[lid + w]);
        }
        workgroupBarrier();
    }
    return sh[0];
}

// Chunk wid.x of output wid.y, from the input.
fn chunk_from_input(wid: vec3<u32>, lid: u32) -> S {
    let o = wid.y;
    let base = base_of(o);
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.len);
    var s = init();
    for (var k = start + lid; k < end; k += WG) {
        s = accum(s, x_in[base + k * p.inner], k);
    }
    return tree(lid, s);
}

// Chunk wid.x of output wid.y, from states laid out [n_out, len].
fn chunk_from_states(wid: vec3<u32>, lid: u32) -> S {
    let o = wid.y;
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.len);
    var s = init();
    for (var j = start + lid; j < end; j += WG) {
        s = combine(s, s_in[o * p.len + j]);
    }
    return tree(lid, s);
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let o = (wid.y * nwg.x + wid.x) * WG + lid;
    if (o >= p.n_out) {
        return;
    }
    let base = base_of(o);
    var s = init();
    for (var k = 0u; k < p.len; k++) {
        s = accum(s, x_in[base + k * p.inner], k);
    }
    y_out[o] = finish(s);
}

@compute @workgroup_size(WG)
fn reduce_partial_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let s = chunk_from_input(wid, lid);
    if (lid == 0u) {
        s_out[wid.y * nwg.x + wid.x] = s;
    }
}

@compute @workgroup_size(WG)
fn reduce_partial_st(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let s = chunk_from_states(wid, lid);
    if (lid == 0u) {
        s_out[wid.y * nwg.x + wid.x] = s;
    }
}

@compute @workgroup_size(WG)
fn reduce_final_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = chunk_from_input(wid, lid);
    if (lid == 0u) {
        y_out[wid.y] = finish(s);
    }
}

@compute @workgroup_size(WG)
fn reduce_final_st(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = chunk_from_states(wid, lid);
    if (lid == 0u) {
        y_out[wid.y] = finish(s);
    }
}
