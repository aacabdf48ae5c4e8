// 2-D pooling over [N, C, H, W] (planes = N * C): max (with argmax indices h * W + w, as
// PyTorch) and average, their adaptive forms (PyTorch's windows: start = floor(i * H / OH),
// end = ceil((i + 1) * H / OH)), and their backward passes written owner-computes: each
// input cell sums the gradients of the windows that contain it.

override WG: u32 = 256u;

struct P {
    n: u32,      // elements to produce
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    count_pad: u32,
    divisor: u32,  // avg_pool's divisor_override, 0 for none
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;

@group(0) @binding(0) var<storage, read> gy: array<f32>;
@group(0) @binding(1) var<storage, read> garg: array<u32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;
@group(0) @binding(1) var<storage, read_write> gx1: array<f32>;

// NaN is tested on the bits (`is_nan` in common.wgsl): a compiler may fold `v != v`.

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

// Index of a window that holds no input cell (only possible with dilation): its value is
// -inf, and the backward kernels route nothing for it.
const NO_INDEX: u32 = 0xffffffffu;

// Running maximum of a window as PyTorch keeps it: a value replaces the best when it is
// greater or NaN, so a window holding NaN gives NaN at its last NaN, and ties keep the
// first maximum.
struct Best {
    v: f32,
    at: u32,
    nan: bool,
}

fn best_new() -> Best {
    return Best(neg_inf(), NO_INDEX, false);
}

fn best_add(b: ptr<function, Best>, v: f32, at: u32) {
    let vn = is_nan(v);
    if ((*b).at == NO_INDEX || vn || (!(*b).nan && v > (*b).v)) {
        (*b).v = v;
        (*b).at = at;
        (*b).nan = vn;
    }
}

fn max_pool_at(i: u32) {
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    var best = best_new();
    for (var th = 0u; th < p.kh; th++) {
        let yy = i32(oy * p.sh + th * p.dh) - i32(p.ph);
        if (yy < 0 || yy >= i32(p.h)) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let xx = i32(ox * p.sw + tw * p.dw) - i32(p.pw);
            if (xx < 0 || xx >= i32(p.w)) {
                continue;
            }
            let at = u32(yy) * p.w + u32(xx);
            best_add(&best, x[base + at], at);
        }
    }
    y[i] = best.v;
    arg[i] = best.at;
}

@compute @workgroup_size(WG)
fn max_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        max_pool_at(i);
    }
}

fn max_pool_backward_at(i: u32) {
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let me = yy * p.w + xx;
    var acc = 0.0;
    for (var th = 0u; th < p.kh; th++) {
        let ty = i32(yy + p.ph) - i32(th * p.dh);
        if (ty < 0 || (u32(ty) % p.sh) != 0u || u32(ty) / p.sh >= p.oh) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let tx = i32(xx + p.pw) - i32(tw * p.dw);
            if (tx < 0 || (u32(tx) % p.sw) != 0u || u32(tx) / p.sw >= p.ow) {
                continue;
            }
            let o = (plane * p.oh + u32(ty) / p.sh) * p.ow + u32(tx) / p.sw;
            if (garg[o] == me) {
                acc += gy[o];
            }
        }
    }
    gx[i] = acc;
}

@compute @workgroup_size(WG)
fn max_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        max_pool_backward_at(i);
    }
}

// Backward for windows that do not overlap (each input cell in at most one window), over
// the output cells: each writes its gradient at its maximum, into gx zero-filled before.
// On lavapipe this is 6x faster than the owner-computes kernel above, whose per-cell window
// search costs integer divisions and modulos.
@compute @workgroup_size(WG)
fn max_pool_backward_scatter(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    let plane_out = p.oh * p.ow;
    let plane_in = p.h * p.w;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        let at = garg[i];
        if (at != NO_INDEX) {
            gx[(i / plane_out) * plane_in + at] = gy[i];
        }
    }
}

// PyTorch's divisor for output cell (oy, ox).
fn avg_divisor(oy: u32, ox: u32) -> f32 {
    if (p.divisor != 0u) {
        return f32(p.divisor);
    }
    let hs = i32(oy * p.sh) - i32(p.ph);
    let ws = i32(ox * p.sw) - i32(p.pw);
    let he = min(hs + i32(p.kh), i32(p.h + p.ph));
    let we = min(ws + i32(p.kw), i32(p.w + p.pw));
    let pool = (he - hs) * (we - ws);
    let valid = (min(he, i32(p.h)) - max(hs, 0)) * (min(we, i32(p.w)) - max(ws, 0));
    return f32(select(valid, pool, p.count_pad != 0u));
}

fn avg_pool_at(i: u32) {
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    var acc = 0.0;
    for (var th = 0u; th < p.kh; th++) {
        let yy = i32(oy * p.sh + th) - i32(p.ph);
        if (yy < 0 || yy >= i32(p.h)) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let xx = i32(ox * p.sw + tw) - i32(p.pw);
            if (xx < 0 || xx >= i32(p.w)) {
                continue;
            }
            acc += x[base + u32(yy) * p.w + u32(xx)];
        }
    }
    gx1[i] = acc / avg_divisor(oy, ox);
}

@compute @workgroup_size(WG)
fn avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        avg_pool_at(i);
    }
}

fn avg_pool_backward_at(i: u32) {
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    var acc = 0.0;
    for (var th = 0u; th < p.kh; th++) {
        let ty = i32(yy + p.ph) - i32(th);
        if (ty < 0 || (u32(ty) % p.sh) != 0u || u32(ty) / p.sh >= p.oh) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let tx = i32(xx + p.pw) - i32(tw);
            if (tx < 0 || (u32(tx) % p.sw) != 0u || u32(tx) / p.sw >= p.ow) {
                continue;
            }
            let oy = u32(ty) / p.sh;
            let ox = u32(tx) / p.sw;
            acc += gy[(plane * p.oh + oy) * p.ow + ox] / avg_divisor(oy, ox);
        }
    }
    gx1[i] = acc;
}

@compute @workgroup_size(WG)
fn avg_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        avg_pool_backward_at(i);
    }
}

// First row (or column) of adaptive window i over `size` cells cut into `out` windows.
fn ad_start(i: u32, size: u32, out: u32) -> u32 {
    return (i * size) / out;
}

// One past the last row of adaptive window i.
fn ad_end(i: u32, size: u32, out: u32) -> u32 {
    return ((i + 1u) * size + out - 1u) / out;
}

fn adaptive_avg_at(i: u32) {
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    let hs = ad_start(oy, p.h, p.oh);
    let he = ad_end(oy, p.h, p.oh);
    let ws = ad_start(ox, p.w, p.ow);
    let we = ad_end(ox, p.w, p.ow);
    var acc = 0.0;
    for (var yy = hs; yy < he; yy++) {
        for (var xx = ws; xx < we; xx++) {
            acc += x[base + yy * p.w + xx];
        }
    }
    gx1[i] = acc / f32(he - hs) / f32(we - ws);
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adaptive_avg_at(i);
    }
}

fn adaptive_max_at(i: u32) {
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    let hs = ad_start(oy, p.h, p.oh);
    let he = ad_end(oy, p.h, p.oh);
    let ws = ad_start(ox, p.w, p.ow);
    let we = ad_end(ox, p.w, p.ow);
    var best = best_new();
    for (var yy = hs; yy < he; yy++) {
        for (var xx = ws; xx < we; xx++) {
            let at = yy * p.w + xx;
            best_add(&best, x[base + at], at);
        }
    }
    y[i] = best.v;
    arg[i] = best.at;
}

@compute @workgroup_size(WG)
fn adaptive_max_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adaptive_max_at(i);
    }
}

// Adaptive windows containing row (or column) c: i from floor(c * out / size) to
// floor(((c + 1) * out - 1) / size), clamped to the windows.
fn ad_first(c: u32, size: u32, out: u32) -> u32 {
    return (c * out) / size;
}

fn ad_last(c: u32, size: u32, out: u32) -> u32 {
    return min(out - 1u, ((c + 1u) * out - 1u) / size);
}

// Adaptive windows (oy0..=oy1) x (ox0..=ox1) that may contain input cell (yy, xx).
struct Span {
    oy0: u32,
    oy1: u32,
    ox0: u32,
    ox1: u32,
}

fn ad_span(yy: u32, xx: u32) -> Span {
    return Span(ad_first(yy, p.h, p.oh), ad_last(yy, p.h, p.oh),
                ad_first(xx, p.w, p.ow), ad_last(xx, p.w, p.ow));
}

// Backward of adaptive average pooling for input cell i: each window containing it gives
// its gradient over the window's size.
fn adaptive_avg_backward_at(i: u32) {
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let s = ad_span(yy, xx);
    var acc = 0.0;
    for (var oy = s.oy0; oy <= s.oy1; oy++) {
        let hs = ad_start(oy, p.h, p.oh);
        let he = ad_end(oy, p.h, p.oh);
        if (yy < hs || yy >= he) {
            continue;
        }
        for (var ox = s.ox0; ox <= s.ox1; ox++) {
            let ws = ad_start(ox, p.w, p.ow);
            let we = ad_end(ox, p.w, p.ow);
            if (xx < ws || xx >= we) {
                continue;
            }
            acc += gy[(plane * p.oh + oy) * p.ow + ox] / f32(he - hs) / f32(we - ws);
        }
    }
    gx1[i] = acc;
}

// Backward of adaptive max pooling for input cell i: the gradients of the windows whose
// recorded maximum it is.
fn adaptive_max_backward_at(i: u32) {
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let me = yy * p.w + xx;
    let s = ad_span(yy, xx);
    var acc = 0.0;
    for (var oy = s.oy0; oy <= s.oy1; oy++) {
        for (var ox = s.ox0; ox <= s.ox1; ox++) {
            let o = (plane * p.oh + oy) * p.ow + ox;
            if (garg[o] == me) {
                acc += gy[o];
            }
        }
    }
    gx[i] = acc;
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool_backward(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adaptive_avg_backward_at(i);
    }
}

@compute @workgroup_size(WG)
fn adaptive_max_pool_backward(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adaptive_max_backward_at(i);
    }
}
