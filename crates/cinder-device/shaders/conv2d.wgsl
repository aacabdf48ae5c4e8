// Convolution kernels: im2col and col2im (around batched matmuls, see ops/conv.rs), and
// direct kernels for short reductions and for depthwise-like grouped convolutions.
//
// Geometry: an image [N, C, H, W] and a grid [N, O, OH, OW] of kernel positions; position
// (oh, ow) and tap (kh, kw) touch image cell (oh * sh - ph + kh * dh, ow * sw - pw + kw * dw).
// With groups, image channels and grid channels are split into `groups` equal, contiguous
// blocks; grid channel o sees only the image channels of its block. Weights are
// [O, C / groups, KH, KW] (for a transposed convolution, whose grid is its input, PyTorch's
// [C_in, C_out / groups, KH, KW] is the same thing).
//
// Column element (image b, row r, position q), where r = (channel * KH + kh) * KW + kw and
// r = g * Kg + rg within group g (Kg = C / groups * KH * KW), lives at
// b * sb + q * sq + g * sg + rg * sr: the host picks the strides for the layout it needs
// ([N, C*KH*KW, OH*OW], transposed, or with the batch inside each group's rows).

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
    o: u32,     // grid channels (direct kernels)
    groups: u32,
    sb: u32,    // column strides: image, position, group, row within the group
    sq: u32,
    sg: u32,
    sr: u32,
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
// conv_direct's bias and output: it reads three buffers (the bias is x again when the layer
// has none, HAS_BIAS false) and fuses the bias add into its store.
@group(0) @binding(2) var<storage, read> dbias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dyb: array<f32>;
override HAS_BIAS: bool = false;

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
            var v = acc[j];
            if (HAS_BIAS) {
                v += dbias[o];
            }
            dyb[(b * p.o + o) * npos + q] = v;
        }
    }
}

// Rows (channel-tap pairs) each im2col invocation writes: lavapipe's cost is mostly per
// invocation, and one element each made the LeNet-5 C2 columns (1M elements) cost 7 ms.
// Must equal IM2COL_ROWS in ops/conv.rs.
const IM2COL_ROWS: u32 = 8u;

// dst = columns of images n0.. of src, at the strides of p. Grid: x over column (output
// position), y over blocks of IM2COL_ROWS rows (channel and tap), z over the images of the
// chunk; neighbouring invocations take neighbouring positions, and taps advance without a
// division.
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
    let kg = udiv(rows, p.groups);
    let r0 = gid.y * IM2COL_ROWS;
    var ch = udiv(r0, kk);
    let tap = r0 - ch * kk;
    var tap_h = udiv(tap, p.kw);
    var tap_w = tap - tap_h * p.kw;
    var g = udiv(r0, kg);
    var rg = r0 - g * kg;
    let oy = udiv(q, p.ow);
    let ox = q - oy * p.ow;
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let img = (p.n0 + b) * p.c;
    let base = b * p.sb + q * p.sq;
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
        dst[base + g * p.sg + rg * p.sr] = v;
        tap_w += 1u;
        if (tap_w == p.kw) {
            tap_w = 0u;
            tap_h += 1u;
            if (tap_h == p.kh) {
                tap_h = 0u;
                ch += 1u;
            }
        }
        rg += 1u;
        if (rg == kg) {
            rg = 0u;
            g += 1u;
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

// dst = image gathered from columns src (at the strides of p): each image cell sums the
// taps that touch it. Grid: x over the cells of a plane, y over channels, z over images.
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
    let kk = p.kh * p.kw;
    let cg = udiv(p.c, p.groups);
    let g = udiv(ch, cg);
    let base = b * p.sb + g * p.sg + (ch - g * cg) * kk * p.sr;
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
            let q = u32(oy) * p.ow + u32(ox);
            acc += src[base + (th * p.kw + tw) * p.sr + q * p.sq];
        }
    }
    dst[((b * p.c + ch) * p.h + y) * p.w + x] = acc;
}

// Positions each invocation of the grouped direct kernels computes, along a row.
const DPOS: u32 = 4u;

// Grouped direct convolution (depthwise and other groups with few channels each), image to
// grid: dy[b, o, oy, ox] = sum over the cg image channels of o's group and the taps of
// dx[b, g * cg + cl, y, x] * dw[o, cl, kh, kw]. Each invocation computes DPOS neighbouring
// positions of one row, reusing each weight. Grid: x over OH * ceil(OW / DPOS), y over grid
// channels, z over images.
@compute @workgroup_size(WG)
fn conv_direct_grouped(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blocks = (p.ow + DPOS - 1u) / DPOS;
    let t = gid.x;
    if (t >= p.oh * blocks) {
        return;
    }
    let oy = udiv(t, blocks);
    let ox0 = (t - oy * blocks) * DPOS;
    let o = gid.y;
    let b = gid.z;
    let cg = udiv(p.c, p.groups);
    let g = udiv(o, udiv(p.o, p.groups));
    let kk = p.kh * p.kw;
    let y0 = i32(oy * p.sh) - i32(p.ph);
    var acc = vec4<f32>(0.0);
    for (var cl = 0u; cl < cg; cl++) {
        let plane = (b * p.c + g * cg + cl) * p.h;
        let wbase = (o * cg + cl) * kk;
        for (var th = 0u; th < p.kh; th++) {
            let y = y0 + i32(th * p.dh);
            if (y < 0 || y >= i32(p.h)) {
                continue;
            }
            let row = (plane + u32(y)) * p.w;
            for (var tw = 0u; tw < p.kw; tw++) {
                let wv = dw[wbase + th * p.kw + tw];
                let xb = i32(ox0 * p.sw + tw * p.dw) - i32(p.pw);
                for (var j = 0u; j < DPOS; j++) {
                    let x = xb + i32(j * p.sw);
                    if (x >= 0 && x < i32(p.w)) {
                        acc[j] = fma(dx[row + u32(x)], wv, acc[j]);
                    }
                }
            }
        }
    }
    let out = ((b * p.o + o) * p.oh + oy) * p.ow;
    for (var j = 0u; j < DPOS; j++) {
        if (ox0 + j < p.ow) {
            dy[out + ox0 + j] = acc[j];
        }
    }
}

// The adjoint of conv_direct_grouped, grid to image: dy[b, c, y, x] = sum over the grid
// channels o of c's group and the taps whose position (oy, ox) lands on (y, x) of
// dx[b, o, oy, ox] * dw[o, cl, kh, kw] (cl = c's index in its group). It is the input
// gradient of a grouped convolution and the forward of a grouped transposed one. Each
// invocation computes DPOS neighbouring cells of one row. Grid: x over H * ceil(W / DPOS),
// y over image channels, z over images.
@compute @workgroup_size(WG)
fn conv_direct_grouped_t(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blocks = (p.w + DPOS - 1u) / DPOS;
    let t = gid.x;
    if (t >= p.h * blocks) {
        return;
    }
    let y = udiv(t, blocks);
    let x0 = (t - y * blocks) * DPOS;
    let ch = gid.y;
    let b = gid.z;
    let cg = udiv(p.c, p.groups);
    let og = udiv(p.o, p.groups);
    let g = udiv(ch, cg);
    let cl = ch - g * cg;
    let kk = p.kh * p.kw;
    var acc = vec4<f32>(0.0);
    for (var ol = 0u; ol < og; ol++) {
        let o = g * og + ol;
        let wbase = (o * cg + cl) * kk;
        let plane = (b * p.o + o) * p.oh;
        for (var th = 0u; th < p.kh; th++) {
            let oy = grid_pos(i32(y + p.ph) - i32(th * p.dh), p.sh, p.oh);
            if (oy < 0) {
                continue;
            }
            let row = (plane + u32(oy)) * p.ow;
            for (var tw = 0u; tw < p.kw; tw++) {
                let wv = dw[wbase + th * p.kw + tw];
                let xb = i32(x0 + p.pw) - i32(tw * p.dw);
                for (var j = 0u; j < DPOS; j++) {
                    let ox = grid_pos(xb + i32(j), p.sw, p.ow);
                    if (ox >= 0) {
                        acc[j] = fma(dx[row + u32(ox)], wv, acc[j]);
                    }
                }
            }
        }
    }
    let out = ((b * p.c + ch) * p.h + y) * p.w;
    for (var j = 0u; j < DPOS; j++) {
        if (x0 + j < p.w) {
            dy[out + x0 + j] = acc[j];
        }
    }
}

// Weight gradient of the grouped direct kernels, per image: dy[b, (o * cg + cl) * KK + tap]
// = sum over positions of dx[b, o, oy, ox] * dw[b, g * cg + cl, y, x], where dx is the grid
// tensor (an output gradient, or a transposed convolution's input) and dw the image. The
// host sums over the images. Grid: x over the weight's elements, z over images.
@compute @workgroup_size(WG)
fn conv_direct_grouped_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    let b = gid.z;
    let cg = udiv(p.c, p.groups);
    let og = udiv(p.o, p.groups);
    let kk = p.kh * p.kw;
    let total = p.o * cg * kk;
    if (e >= total) {
        return;
    }
    let ocl = udiv(e, kk);
    let tap = e - ocl * kk;
    let th = udiv(tap, p.kw);
    let tw = tap - th * p.kw;
    let o = udiv(ocl, cg);
    let cl = ocl - o * cg;
    let g = udiv(o, og);
    let iplane = (b * p.c + g * cg + cl) * p.h;
    let gplane = (b * p.o + o) * p.oh;
    // Positions ox whose tap lands inside the row: 0 <= ox * sw + tw * dw - pw < w.
    let shift = i32(tw * p.dw) - i32(p.pw);
    var lo = 0u;
    if (shift < 0) {
        lo = (u32(-shift) + p.sw - 1u) / p.sw;
    }
    var hi = 0u;
    if (i32(p.w) - shift > 0) {
        hi = min(p.ow, (u32(i32(p.w) - shift) + p.sw - 1u) / p.sw);
    }
    var acc = 0.0;
    for (var oy = 0u; oy < p.oh; oy++) {
        let y = i32(oy * p.sh + th * p.dh) - i32(p.ph);
        if (y < 0 || y >= i32(p.h)) {
            continue;
        }
        let irow = i32((iplane + u32(y)) * p.w) + shift;
        let grow = (gplane + oy) * p.ow;
        for (var ox = lo; ox < hi; ox++) {
            acc = fma(dx[grow + ox], dw[u32(irow + i32(ox * p.sw))], acc);
        }
    }
    dy[b * total + e] = acc;
}

// Implicit-GEMM convolution (groups 1): the product W [O, C*KH*KW] x cols [C*KH*KW, OH*OW]
// of one image, with each column element computed from the image as it is loaded (no
// column buffer). Each invocation computes 8 output channels x 16 positions, as
// matmul_blocked does; the taps are walked channel by channel, row by row, so no index is
// divided inside the reduction. Out-of-range channels and positions are clamped on load and
// skipped on store; taps outside the image read as 0. Grid: x over blocks of 16 positions
// (workgroups of 8), y over blocks of 8 channels (workgroups of 4), z over images. The bias
// add is fused into the store (HAS_BIAS, bindings as conv_direct).
@compute @workgroup_size(8, 4, 1)
fn conv_gemm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let npos = p.oh * p.ow;
    let col0 = gid.x * 16u;
    let o0 = gid.y * 8u;
    let b = gid.z;
    if (col0 >= npos || o0 >= p.o || b >= p.n) {
        return;
    }
    let red = p.c * p.kh * p.kw;
    var wrow: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        wrow[i] = min(o0 + i, p.o - 1u) * red;
    }
    var iy0: array<i32, 16>;
    var ix0: array<i32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let q = min(col0 + j, npos - 1u);
        let oy = udiv(q, p.ow);
        let ox = q - oy * p.ow;
        iy0[j] = i32(oy * p.sh) - i32(p.ph);
        ix0[j] = i32(ox * p.sw) - i32(p.pw);
    }
    var acc: array<vec4<f32>, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    let h = i32(p.h);
    let w = i32(p.w);
    var kk = 0u;
    for (var ch = 0u; ch < p.c; ch++) {
        let plane = i32((b * p.c + ch) * p.h);
        for (var th = 0u; th < p.kh; th++) {
            let dyo = i32(th * p.dh);
            for (var tw = 0u; tw < p.kw; tw++) {
                let dxo = i32(tw * p.dw);
                var bv: array<f32, 16>;
                for (var j = 0u; j < 16u; j++) {
                    let y = iy0[j] + dyo;
                    let x = ix0[j] + dxo;
                    let ok = y >= 0 && y < h && x >= 0 && x < w;
                    let v = dx[select(0u, u32((plane + y) * w + x), ok)];
                    bv[j] = select(0.0, v, ok);
                }
                let b0 = vec4<f32>(bv[0], bv[1], bv[2], bv[3]);
                let b1 = vec4<f32>(bv[4], bv[5], bv[6], bv[7]);
                let b2 = vec4<f32>(bv[8], bv[9], bv[10], bv[11]);
                let b3 = vec4<f32>(bv[12], bv[13], bv[14], bv[15]);
                for (var i = 0u; i < 8u; i++) {
                    let av = vec4<f32>(dw[wrow[i] + kk]);
                    acc[i * 4u] = fma(av, b0, acc[i * 4u]);
                    acc[i * 4u + 1u] = fma(av, b1, acc[i * 4u + 1u]);
                    acc[i * 4u + 2u] = fma(av, b2, acc[i * 4u + 2u]);
                    acc[i * 4u + 3u] = fma(av, b3, acc[i * 4u + 3u]);
                }
                kk++;
            }
        }
    }
    for (var i = 0u; i < 8u; i++) {
        let o = o0 + i;
        if (o >= p.o) {
            break;
        }
        var bias = 0.0;
        if (HAS_BIAS) {
            bias = dbias[o];
        }
        let out = (b * p.o + o) * npos;
        for (var j = 0u; j < 16u; j++) {
            let q = col0 + j;
            if (q < npos) {
                dyb[out + q] = acc[i * 4u + j / 4u][j % 4u] + bias;
            }
        }
    }
}

// The weight of the input gradient of a stride-1 convolution as a convolution of the grid:
// dst[c, o, kh, kw] = src[o, c, KH - 1 - kh, KW - 1 - kw] (channels swapped, taps flipped).
// One element per invocation (weights are small); p.o and p.c are the forward's channels.
@compute @workgroup_size(WG)
fn flip_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.n) {
        return;
    }
    let kk = p.kh * p.kw;
    let tap = i % kk;
    let co = i / kk; // c * O + o
    let o = co % p.o;
    let c = co / p.o;
    let th = tap / p.kw;
    let tw = tap % p.kw;
    let flipped = (p.kh - 1u - th) * p.kw + (p.kw - 1u - tw);
    dst[i] = src[(o * p.c + c) * kk + flipped];
}
