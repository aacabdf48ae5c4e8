// Convolution helpers: im2col and col2im. conv2d, conv_transpose2d and their backward passes
// are these plus batched matmuls (see ops/conv.rs).
//
// Geometry: an image [N, C, H, W] and a grid of OH x OW kernel positions; position (oh, ow)
// and tap (kh, kw) touch image cell (oh * sh - ph + kh * dh, ow * sw - pw + kw * dw).
// Columns are [N, C * KH * KW, OH * OW].

override WG: u32 = 256u;

struct P {
    n: u32,     // elements to produce
    c: u32,
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
    n0: u32,    // first image of this chunk (im2col reads images n0..)
    pad0: u32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

// dst = columns of images n0.. of src; one invocation per column element.
@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let q = p.oh * p.ow;
    let kk = p.kh * p.kw;
    let col = i % q;
    let row = (i / q) % (p.c * kk);
    let b = i / (q * p.c * kk);
    let ch = row / kk;
    let tap_h = (row % kk) / p.kw;
    let tap_w = row % p.kw;
    let y = i32((col / p.ow) * p.sh + tap_h * p.dh) - i32(p.ph);
    let x = i32((col % p.ow) * p.sw + tap_w * p.dw) - i32(p.pw);
    var v = 0.0;
    if (y >= 0 && y < i32(p.h) && x >= 0 && x < i32(p.w)) {
        v = src[(((p.n0 + b) * p.c + ch) * p.h + u32(y)) * p.w + u32(x)];
    }
    dst[i] = v;
}

// dst = image gathered from columns src: each image cell sums the taps that touch it.
@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let ch = (i / (p.w * p.h)) % p.c;
    let b = i / (p.w * p.h * p.c);
    let q = p.oh * p.ow;
    let kk = p.kh * p.kw;
    var acc = 0.0;
    for (var th = 0u; th < p.kh; th++) {
        let ty = i32(y + p.ph) - i32(th * p.dh);
        if (ty < 0 || (u32(ty) % p.sh) != 0u) {
            continue;
        }
        let oy = u32(ty) / p.sh;
        if (oy >= p.oh) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let tx = i32(x + p.pw) - i32(tw * p.dw);
            if (tx < 0 || (u32(tx) % p.sw) != 0u) {
                continue;
            }
            let ox = u32(tx) / p.sw;
            if (ox >= p.ow) {
                continue;
            }
            let row = ch * kk + th * p.kw + tw;
            acc += src[(b * p.c * kk + row) * q + oy * p.ow + ox];
        }
    }
    dst[i] = acc;
}
