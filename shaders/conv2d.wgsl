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
    o: u32,     // output channels (conv_direct)
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

// a / b for a < 2^24 through an f32 division, corrected to the exact quotient. CPU adapters
// vectorize float division but not integer division, which dominated these kernels there.
// The host keeps every dividend below 2^24.
fn udiv(a: u32, b: u32) -> u32 {
    var q = u32(f32(a) / f32(b));
    q -= select(0u, 1u, q * b > a);
    q += select(0u, 1u, (q + 1u) * b <= a);
    return q;
}

@group(0) @binding(0) var<storage, read> dx: array<f32>;
@group(0) @binding(1) var<storage, read> dw: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;

// Direct convolution for short reductions (C * KH * KW small): out[n, o, oy, ox] sums
// x * w over channels and taps. Each invocation computes 8 output channels of one position
// (lavapipe's cost is per invocation, so each one should do more than a few FMAs). Grid: x
// over output positions, y over blocks of 8 output channels, z over images.
@compute @workgroup_size(WG)
fn conv_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let o0 = gid.y * 8u;
    let b = gid.z;
    let npos = p.oh * p.ow;
    if (q >= npos) {
        return;
    }
    let oy = udiv(q, p.ow);
    let ox = q - oy * p.ow;
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let red = p.c * p.kh * p.kw;
    // Clamped channel rows: reads stay in bounds, extra channels are not stored.
    var wrow: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
        wrow[j] = min(o0 + j, p.o - 1u) * red;
    }
    var acc: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        acc[j] = 0.0;
    }
    for (var ch = 0u; ch < p.c; ch++) {
        let plane = (b * p.c + ch) * p.h;
        for (var th = 0u; th < p.kh; th++) {
            let y = y0 + i32(th * p.dh);
            if (y < 0 || y >= i32(p.h)) {
                continue;
            }
            let row = (plane + u32(y)) * p.w;
            let tap0 = (ch * p.kh + th) * p.kw;
            for (var tw = 0u; tw < p.kw; tw++) {
                let x = x0 + i32(tw * p.dw);
                if (x >= 0 && x < i32(p.w)) {
                    let v = dx[row + u32(x)];
                    for (var j = 0u; j < 8u; j++) {
                        acc[j] = fma(v, dw[wrow[j] + tap0 + tw], acc[j]);
                    }
                }
            }
        }
    }
    for (var j = 0u; j < 8u; j++) {
        let o = o0 + j;
        if (o < p.o) {
            dy[(b * p.o + o) * npos + q] = acc[j];
        }
    }
}

// Write the columns transposed, [N, OH * OW, C * KH * KW], for products that contract over
// the positions (weight gradients): the blocked matmul then reads them untransposed.
override TRANSPOSED: bool = false;

// Rows (channel-tap pairs) each im2col invocation writes: lavapipe's cost is mostly per
// invocation, and one element each made the LeNet-5 C2 columns (1M elements) cost 7 ms.
// Must equal IM2COL_ROWS in ops/conv.rs.
const IM2COL_ROWS: u32 = 8u;

// dst = columns of images n0.. of src. Grid: x over column (output position), y over blocks
// of IM2COL_ROWS rows (channel and tap), z over the images of the chunk; neighbouring
// invocations take neighbouring positions, and taps advance without a division.
@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let b = gid.z;
    let npos = p.oh * p.ow;
    if (q >= npos) {
        return;
    }
    let kk = p.kh * p.kw;
    let rows = p.c * kk;
    let r0 = gid.y * IM2COL_ROWS;
    var ch = udiv(r0, kk);
    let tap = r0 - ch * kk;
    var tap_h = udiv(tap, p.kw);
    var tap_w = tap - tap_h * p.kw;
    let oy = udiv(q, p.ow);
    let ox = q - oy * p.ow;
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let img = (p.n0 + b) * p.c;
    for (var j = 0u; j < IM2COL_ROWS; j++) {
        let row = r0 + j;
        if (row >= rows) {
            break;
        }
        let y = y0 + i32(tap_h * p.dh);
        let x = x0 + i32(tap_w * p.dw);
        var v = 0.0;
        if (y >= 0 && y < i32(p.h) && x >= 0 && x < i32(p.w)) {
            v = src[((img + ch) * p.h + u32(y)) * p.w + u32(x)];
        }
        if (TRANSPOSED) {
            dst[(b * npos + q) * rows + row] = v;
        } else {
            dst[(b * rows + row) * npos + q] = v;
        }
        tap_w += 1u;
        if (tap_w == p.kw) {
            tap_w = 0u;
            tap_h += 1u;
            if (tap_h == p.kh) {
                tap_h = 0u;
                ch += 1u;
            }
        }
    }
}

// Output position along one axis reached by image coordinate `t` (already shifted by the
// padding and the tap), or -1 when none: t must be a non-negative multiple of the stride.
fn grid_pos(t: i32, stride: u32, size: u32) -> i32 {
    if (t < 0) {
        return -1;
    }
    var o = u32(t);
    if (stride != 1u) {
        let d = udiv(o, stride);
        if (d * stride != o) {
            return -1;
        }
        o = d;
    }
    return select(-1, i32(o), o < size);
}

// dst = image gathered from columns src: each image cell sums the taps that touch it.
// Grid: x over the cells of a plane, y over channels, z over images.
@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let cell = gid.x;
    let ch = gid.y;
    let b = gid.z;
    if (cell >= p.h * p.w) {
        return;
    }
    let y = udiv(cell, p.w);
    let x = cell - y * p.w;
    let q = p.oh * p.ow;
    let kk = p.kh * p.kw;
    var acc = 0.0;
    for (var th = 0u; th < p.kh; th++) {
        let oy = grid_pos(i32(y + p.ph) - i32(th * p.dh), p.sh, p.oh);
        if (oy < 0) {
            continue;
        }
        for (var tw = 0u; tw < p.kw; tw++) {
            let ox = grid_pos(i32(x + p.pw) - i32(tw * p.dw), p.sw, p.ow);
            if (ox < 0) {
                continue;
            }
            let row = ch * kk + th * p.kw + tw;
            acc += src[(b * p.c * kk + row) * q + u32(oy) * p.ow + u32(ox)];
        }
    }
    dst[((b * p.c + ch) * p.h + y) * p.w + x] = acc;
}
