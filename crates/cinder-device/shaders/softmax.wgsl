// Softmax and log-softmax along one axis, and their backward passes, for a contiguous f32
// tensor viewed as [outer, len, inner]. Row r (r = outer_index * inner + inner_index) is the
// `len` elements at (r / inner) * len * inner + k * inner + r % inner, k = 0..len.
//
// Entry points (the variant is a runtime parameter, p.mode):
//   softmax_rows / softmax_wg          forward: mode 0 softmax, mode 1 log-softmax
//   softmax_bwd_rows / softmax_bwd_wg  backward from the incoming gradient g and the forward
//                                      output y: mode 0 softmax (y * (g - sum(g * y))),
//                                      mode 1 log-softmax (g - exp(y) * sum(g))
// *_rows: one invocation per row (many short rows). *_wg: one workgroup per row (long rows),
// the row's statistics combined in workgroup memory; rows fold into a 2-D grid.
//
// Forward is stable: a running maximum m and s = sum(exp(x - m)) are kept together (online
// softmax), so softmax([1000, 0]) = [1, 0] and log_softmax([1000, 0]) = [0, -1000].

const WG: u32 = 256u;
const NEG_BIG: f32 = -3.4028234e38;

struct P {
    len: u32,
    inner: u32,
    rows: u32,
    mode: u32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;        // forward input / gradient g
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // forward output
@group(0) @binding(1) var<storage, read> yin: array<f32>;      // backward: forward output y
@group(0) @binding(2) var<storage, read_write> dx: array<f32>; // backward output

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;

fn row_base(r: u32) -> u32 {
    return (r / p.inner) * p.len * p.inner + r % p.inner;
}

// Folds v into the running (max, sum of exp(x - max)). A +inf maximum makes the sum NaN,
// as exp(inf - inf) does in PyTorch's softmax (every output of that row is NaN).
fn online(ms: vec2<f32>, v: f32) -> vec2<f32> {
    if (v > ms.x) {
        let one = select(1.0, bitcast<f32>(0x7fc00000u), v == bitcast<f32>(0x7f800000u));
        return vec2<f32>(v, ms.y * exp(ms.x - v) + one);
    }
    return vec2<f32>(ms.x, ms.y + exp(v - ms.x));
}

fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// Forward output of element value v given the row's (max, sum).
fn forward(v: f32, ms: vec2<f32>) -> f32 {
    if (p.mode == 0u) {
        return exp(v - ms.x) / ms.y;
    }
    return (v - ms.x) - log(ms.y);
}

// Per-element term of the backward row sum.
fn bwd_term(g: f32, yv: f32) -> f32 {
    return select(g, g * yv, p.mode == 0u);
}

fn backward(g: f32, yv: f32, s: f32) -> f32 {
    if (p.mode == 0u) {
        return yv * (g - s);
    }
    return g - exp(yv) * s;
}

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = (wid.y * nwg.x + wid.x) * WG + lid;
    if (r >= p.rows) {
        return;
    }
    let base = row_base(r);
    var ms = vec2<f32>(NEG_BIG, 0.0);
    for (var k = 0u; k < p.len; k++) {
        ms = online(ms, x[base + k * p.inner]);
    }
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.inner;
        y[i] = forward(x[i], ms);
    }
}

@compute @workgroup_size(WG)
fn softmax_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let r = wid.y * nwg.x + wid.x;
    let n = select(0u, p.len, r < p.rows); // overhang workgroups do nothing but the barriers
    let base = row_base(r);
    var ms = vec2<f32>(NEG_BIG, 0.0);
    for (var k = lid; k < n; k += WG) {
        ms = online(ms, x[base + k * p.inner]);
    }
    sh_m[lid] = ms.x;
    sh_s[lid] = ms.y;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (lid < w) {
            let m = merge(vec2<f32>(sh_m[lid], sh_s[lid]), vec2<f32>(sh_m[lid + w], sh_s[lid + w]));
            sh_m[lid] = m.x;
            sh_s[lid] = m.y;
        }
        workgroupBarrier();
    }
    let row = vec2<f32>(sh_m[0], sh_s[0]);
    for (var k = lid; k < n; k += WG) {
        let i = base + k * p.inner;
        y[i] = forward(x[i], row);
    }
}

@compute @workgroup_size(WG)
fn softmax_bwd_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let r = (wid.y * nwg.x + wid.x) * WG + lid;
    if (r >= p.rows) {
        return;
    }
    let base = row_base(r);
    var s = 0.0;
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.inner;
        s += bwd_term(x[i], yin[i]);
    }
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.inner;
        dx[i] = backward(x[i], yin[i], s);
    }
}

@compute @workgroup_size(WG)
fn softmax_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let r = wid.y * nwg.x + wid.x;
    let n = select(0u, p.len, r < p.rows);
    let base = row_base(r);
    var s = 0.0;
    for (var k = lid; k < n; k += WG) {
        let i = base + k * p.inner;
        s += bwd_term(x[i], yin[i]);
    }
    sh_s[lid] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (lid < w) {
            sh_s[lid] = sh_s[lid] + sh_s[lid + w];
        }
        workgroupBarrier();
    }
    let total = sh_s[0];
    for (var k = lid; k < n; k += WG) {
        let i = base + k * p.inner;
        dx[i] = backward(x[i], yin[i], total);
    }
}
