// 2-D pooling over [N, C, H, W] (planes = N * C): max (with argmax indices h * W + w, as
// PyTorch) and average, and their backward passes written owner-computes: each input cell
// sums the gradients of the windows that contain it.

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
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;

@group(0) @binding(0) var<storage, read> gy: array<f32>;
@group(0) @binding(1) var<storage, read> garg: array<u32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;
@group(0) @binding(1) var<storage, read_write> gx1: array<f32>;

fn max_pool_at(i: u32) {
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    var best = -3.4028234663852886e38;
    var best_i = 0u;
    var found = false;
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
            let v = x[base + at];
            if (!found || v > best) {
                best = v;
                best_i = at;
                found = true;
            }
        }
    }
    y[i] = best;
    arg[i] = best_i;
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
        gx[(i / plane_out) * plane_in + garg[i]] = gy[i];
    }
}

// PyTorch's divisor for output cell (oy, ox).
fn avg_divisor(oy: u32, ox: u32) -> f32 {
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
