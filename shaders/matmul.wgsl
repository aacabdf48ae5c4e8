// Batched matrix multiply C[b] = op(A[b]) * op(B[b]), op = optional transpose.
// A is [M, K] (or [K, M] when ta), B is [K, N] (or [N, K] when tb), C is [M, N], row-major.

struct P {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    ta: u32,
    tb: u32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

// One output element per invocation; the reference path.
@compute @workgroup_size(16, 16, 1)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    let bi = gid.z;
    if (col >= p.n || row >= p.m || bi >= p.batch) {
        return;
    }
    let a0 = bi * p.a_batch_stride;
    let b0 = bi * p.b_batch_stride;
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        let av = select(a[a0 + row * p.k + kk], a[a0 + kk * p.m + row], p.ta != 0u);
        let bv = select(b[b0 + kk * p.n + col], b[b0 + col * p.k + kk], p.tb != 0u);
        acc = fma(av, bv, acc);
    }
    c[bi * p.m * p.n + row * p.n + col] = acc;
}
