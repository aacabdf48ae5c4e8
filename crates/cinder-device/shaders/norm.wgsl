// Per-channel affine maps over a tensor viewed as rows [N * C] of L elements (channel axis
// 1, L the product of the axes after it): the fused elementwise passes of batch norm.
//
// channel_affine: y = a[c] * x + d[c]; with TWO, y = a[c] * x + b[c] * z + d[c]; with
// SQUARE, the result is squared. Unused bindings are bound to another input by the host.
// Grid: x over chunks of 256 elements of a row, y (and z, folded past 65535) over rows; each
// invocation handles 4 elements 64 apart, so neighbouring invocations touch neighbours.

override TWO: bool = false;
override SQUARE: bool = false;

struct P {
    l: u32,     // elements per row
    c: u32,     // channels
    rows: u32,  // N * C
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> d: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn channel_affine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.z * nwg.y + wid.y;
    if (row >= p.rows) {
        return;
    }
    let ch = row % p.c;
    let sa = a[ch];
    let sd = d[ch];
    var sb = 0.0;
    if (TWO) {
        sb = b[ch];
    }
    let base = row * p.l;
    for (var e = 0u; e < 4u; e++) {
        let q = wid.x * 256u + e * 64u + lid;
        if (q < p.l) {
            let i = base + q;
            var v = fma(x[i], sa, sd);
            if (TWO) {
                v = fma(z[i], sb, v);
            }
            if (SQUARE) {
                v = v * v;
            }
            y[i] = v;
        }
    }
}
