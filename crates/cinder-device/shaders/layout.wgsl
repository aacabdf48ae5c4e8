// Layout kernels: strided copies (permute, narrow, concat, broadcast), constant padding,
// arange, eye and dtype casts. Copies move raw 32-bit words, so they serve f32 and u32
// tensors alike, bit for bit.

override WG: u32 = 256u;
// Dimensions of the strided view, fixed per pipeline so the index loop unrolls and the
// shape and strides are read at constant positions.
override RANK: u32 = 8u;

// A strided view: out (or in, for `strided_write`) is walked in row-major order over `shape`,
// the other side at `base + sum(coord[d] * strides[d])`.
struct PS {
    shape: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
    n: u32,
    rank: u32,
    base: u32,
    pad0: u32,
}

struct PPad {
    out_shape: array<vec4<u32>, 2>,
    before: array<vec4<u32>, 2>,
    in_shape: array<vec4<u32>, 2>,
    n: u32,
    rank: u32,
    value: u32,
    pad0: u32,
}

struct P1 {
    n: u32,
    a: f32,
    b: f32,
    cols: u32,
}

var<immediate> ps: PS;
var<immediate> pp: PPad;
var<immediate> p1: P1;

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(0) var<storage, read> src_f: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst_f: array<f32>;
@group(0) @binding(0) var<storage, read_write> out_f: array<f32>;
@group(0) @binding(0) var<storage, read_write> out_u: array<u32>;

fn at(a: array<vec4<u32>, 2>, d: u32) -> u32 {
    return a[d / 4u][d % 4u];
}

// Offset of row-major element i of `shape` in a view with `strides`.
fn strided_offset(i: u32) -> u32 {
    var rem = i;
    var off = ps.base;
    for (var k = i32(RANK) - 1; k >= 0; k--) {
        let d = u32(k);
        let dim = at(ps.shape, d);
        off += (rem % dim) * at(ps.strides, d);
        rem = rem / dim;
    }
    return off;
}

// dst[i] = src[view(i)]: permute, narrow, broadcast.
fn strided_read_at(i: u32) {
    dst[i] = src[strided_offset(i)];
}

@compute @workgroup_size(WG)
fn strided_read(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= ps.n) {
            break;
        }
        strided_read_at(i);
    }
}

// dst[view(i)] = src[i]: one part of a concat.
fn strided_write_at(i: u32) {
    dst[strided_offset(i)] = src[i];
}

@compute @workgroup_size(WG)
fn strided_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= ps.n) {
            break;
        }
        strided_write_at(i);
    }
}

fn pad_constant_at(i: u32) {
    var rem = i;
    var off = 0u;
    var stride = 1u;
    var inside = true;
    for (var k = i32(pp.rank) - 1; k >= 0; k--) {
        let d = u32(k);
        let dim = at(pp.out_shape, d);
        let c = rem % dim;
        rem = rem / dim;
        let b = at(pp.before, d);
        let n_in = at(pp.in_shape, d);
        // c - b in [0, n_in) without going negative
        inside = inside && c >= b && c - b < n_in;
        off += select(0u, (c - b) * stride, c >= b);
        stride *= n_in;
    }
    dst[i] = select(pp.value, src[off], inside);
}

@compute @workgroup_size(WG)
fn pad_constant(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= pp.n) {
            break;
        }
        pad_constant_at(i);
    }
}

fn arange_f32_at(i: u32) {
    out_f[i] = p1.a + f32(i) * p1.b;
}

@compute @workgroup_size(WG)
fn arange_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        arange_f32_at(i);
    }
}

fn arange_u32_at(i: u32) {
    out_u[i] = i;
}

@compute @workgroup_size(WG)
fn arange_u32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        arange_u32_at(i);
    }
}

fn eye_at(i: u32) {
    out_f[i] = select(0.0, 1.0, i / p1.cols == i % p1.cols);
}

@compute @workgroup_size(WG)
fn eye(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        eye_at(i);
    }
}

// f32 -> u32, truncating toward zero; negatives and NaN give 0, values past u32::MAX saturate.
fn cast_f32_u32_at(i: u32) {
    let x = src_f[i];
    dst[i] = select(0u, select(u32(x), 0xffffffffu, x >= 4294967040.0), x >= 1.0);
}

@compute @workgroup_size(WG)
fn cast_f32_u32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        cast_f32_u32_at(i);
    }
}

fn cast_u32_f32_at(i: u32) {
    dst_f[i] = f32(src[i]);
}

@compute @workgroup_size(WG)
fn cast_u32_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        cast_u32_f32_at(i);
    }
}

struct PT {
    rows: u32,
    cols: u32,
    batch: u32,
    pad0: u32,
}

var<immediate> pt: PT;

// dst[b, j, i] = src[b, i, j] for src [batch, rows, cols]: a 3-D grid (x over rows, y over
// cols, z over batch) in 16 x 16 blocks, so no index needs a division and neighbouring
// invocations share cache lines on both sides.
@compute @workgroup_size(16, 16, 1)
fn transpose2d(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let j = gid.y;
    let b = gid.z;
    if (i >= pt.rows || j >= pt.cols || b >= pt.batch) {
        return;
    }
    let plane = pt.rows * pt.cols;
    dst[b * plane + j * pt.rows + i] = src[b * plane + i * pt.cols + j];
}
