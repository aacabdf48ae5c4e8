// Batched matrix multiply C[b] = op(A[b]) * op(B[b]), op = optional transpose.
// A is [M, K] (or [K, M] when ta), B is [K, N] (or [N, K] when tb), C is [M, N], row-major.
// Three kernels, chosen by the host:
// - matmul_naive: one output per invocation; the reference path.
// - matmul_blocked: 8 x 16 outputs per invocation straight from global memory, no workgroup
//   memory and no barriers. Fastest on CPU adapters (lavapipe), where barriers are emulated.
//   B must be untransposed; the host substitutes the load of a row of 16 as four vec4 (N % 4 == 0) or
//   as scalars. Out-of-range rows and columns are clamped on load and skipped on store, so
//   the inner loop has no branches.
// - matmul_tiled: 64 x 64 tiles through workgroup memory, 4 x 4 outputs per invocation; the
//   right kernel on real GPUs.

override TA: bool = false;
override TB: bool = false;

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

// The epilogue every kernel applies as it stores an output (fused, so a bias add or a ReLU
// after a product costs no pass of its own): EPI 0 adds nothing, 1 adds bias[col] (a linear
// layer's [N] bias), 2 adds bias[row] (a convolution's [O] bias, rows being channels);
// ACT 0 stores the sum, 1 its ReLU (NaN kept, as the relu op). Without a bias the host binds
// A again at binding 2; the override constants remove the unused branches.
override EPI: u32 = 0u;
override ACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn epilogue(v: f32, row: u32, col: u32) -> f32 {
    var y = v;
    if (EPI == 1u) {
        y = y + bias[col];
    } else if (EPI == 2u) {
        y = y + bias[row];
    }
    if (ACT == 1u) {
        y = select(max(y, 0.0), y, is_nan(y));
    }
    return y;
}

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
    c[bi * p.m * p.n + row * p.n + col] = epilogue(acc, row, col);
}

fn load_a(a0: u32, row: u32, kk: u32) -> f32 {
    if (TA) {
        return a[a0 + kk * p.m + row];
    }
    return a[a0 + row * p.k + kk];
}

// Outputs per invocation of matmul_blocked (the loops below are written for these values;
// the host's grid reads the same constants, checked by the naga test).
const BLOCK_ROWS: u32 = 8u;
const BLOCK_COLS: u32 = 16u;

@compute @workgroup_size(8, 4, 1)
fn matmul_blocked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * BLOCK_COLS;
    let row0 = gid.y * BLOCK_ROWS;
    let bi = gid.z;
    if (col0 >= p.n || row0 >= p.m || bi >= p.batch) {
        return;
    }
    let a0 = bi * p.a_batch_stride;
    let b0 = bi * p.b_batch_stride;
    var rows: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        rows[i] = min(row0 + i, p.m - 1u);
    }
    var acc: array<vec4<f32>, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kk = 0u; kk < p.k; kk++) {
        var bq: array<vec4<f32>, 4>;
        {{BLOCKED_LOAD_B}}
        for (var i = 0u; i < 8u; i++) {
            let av = vec4<f32>(load_a(a0, rows[i], kk));
            acc[i * 4u] = fma(av, bq[0], acc[i * 4u]);
            acc[i * 4u + 1u] = fma(av, bq[1], acc[i * 4u + 1u]);
            acc[i * 4u + 2u] = fma(av, bq[2], acc[i * 4u + 2u]);
            acc[i * 4u + 3u] = fma(av, bq[3], acc[i * 4u + 3u]);
        }
    }
    let c0 = bi * p.m * p.n;
    for (var i = 0u; i < 8u; i++) {
        let row = row0 + i;
        if (row >= p.m) {
            break;
        }
        for (var j = 0u; j < 16u; j++) {
            let col = col0 + j;
            if (col < p.n) {
                c[c0 + row * p.n + col] = epilogue(acc[i * 4u + j / 4u][j % 4u], row, col);
            }
        }
    }
}

const TILE: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> ta_s: array<f32, 1024>; // [KT][TILE]: A tile, k-major
var<workgroup> tb_s: array<f32, 1024>; // [KT][TILE]: B tile, k-major

fn a_at(a0: u32, row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (TA) {
        return a[a0 + kk * p.m + row];
    }
    return a[a0 + row * p.k + kk];
}

fn b_at(b0: u32, kk: u32, col: u32) -> f32 {
    if (col >= p.n || kk >= p.k) {
        return 0.0;
    }
    if (TB) {
        return b[b0 + col * p.k + kk];
    }
    return b[b0 + kk * p.n + col];
}

@compute @workgroup_size(16, 16, 1)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bi = wid.z;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let a0 = bi * p.a_batch_stride;
    let b0 = bi * p.b_batch_stride;
    let t = lid.y * 16u + lid.x; // 0..255
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    let ktiles = (p.k + KT - 1u) / KT;
    for (var kt = 0u; kt < ktiles; kt++) {
        let k0 = kt * KT;
        // 1024 elements per tile, 4 per invocation.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            let kk = idx / TILE;
            let mm = idx % TILE;
            ta_s[idx] = a_at(a0, row0 + mm, k0 + kk);
            tb_s[idx] = b_at(b0, k0 + kk, col0 + mm);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = ta_s[kk * TILE + lid.y * 4u + i];
                bv[i] = tb_s[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    if (bi >= p.batch) {
        return;
    }
    let c0 = bi * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if (row < p.m && col < p.n) {
                c[c0 + row * p.n + col] = epilogue(acc[i * 4u + j], row, col);
            }
        }
    }
}
