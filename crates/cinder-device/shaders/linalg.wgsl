// Small dense linear algebra for the classical pipelines (k-means, GMM, PCA, least squares):
// batched Cholesky, batched triangular solve and a batched symmetric eigen-decomposition by
// cyclic Jacobi. Every matrix is a contiguous row-major f32 block of a [batch, n, n] tensor.
//
// These run one invocation per matrix (cholesky, sym_eig) or per right-hand-side column
// (tri_solve): the matrices are small (the covariance of one GMM component, the Gram matrix
// of a PCA block, a regression's normal equations), and on lavapipe a serial loop beats
// anything with barriers. They work straight from global memory (no workgroup arrays), so
// there is no size limit beyond time.
//
// Entry points:
//   cholesky   a [B, n, n] -> l [B, n, n] (lower factor, upper triangle zeroed),
//              info [B] u32 (0, or j + 1 when the leading minor of order j + 1 is not
//              positive definite; l's columns from j on are then zero)
//   tri_solve  t [Bt, n, n], rhs [B, n, m] -> x [B, n, m] solving op(T) x = rhs, with
//              op(T) = T or T^T; `lower` says which triangle of T holds the matrix (the other
//              is never read). Bt is B or 1 (broadcast).
//   sym_eig    a [B, n, n] symmetric -> w [B, n] eigenvalues in descending order,
//              v [B, n, n] eigenvectors in columns, work [B, n, n] scratch (the rotated a).
//   gs_step    z [B, n, m] in place: one step `step = j` of modified Gram-Schmidt,
//              z_k -= (z_j . z_k / z_j . z_j) z_j for every column k > j (one invocation per
//              column; column j is only read). A column with z_j . z_j <= DEAD is skipped.
//   gs_normalize  z [B, n, m] in place: every column scaled to unit norm; with step = 1,
//              zeroed when its squared norm is <= DEAD (numerically dependent on the earlier
//              columns, which only makes sense after a normalize and projections).

const WG: u32 = 64u;

struct P {
    n: u32,
    m: u32,
    batch: u32,
    t_stride: u32,
    lower: u32,
    trans: u32,
    max_sweeps: u32,
    step: u32,
}

// Squared column norm under which Gram-Schmidt treats a column (normalized beforehand) as
// dependent on the earlier ones: a residual norm of 1e-4, well above f32 rounding noise.
const DEAD: f32 = 1e-8;

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> l: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(WG)
fn cholesky(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let b = grid_index(wid, nwg, lid, WG);
    if (b >= p.batch) {
        return;
    }
    let n = p.n;
    let base = b * n * n;
    for (var i = 0u; i < n * n; i++) {
        l[base + i] = 0.0;
    }
    var bad = 0u;
    for (var j = 0u; j < n; j++) {
        var s = a[base + j * n + j];
        for (var k = 0u; k < j; k++) {
            let v = l[base + j * n + k];
            s -= v * v;
        }
        // `!(s > 0)` also catches NaN on adapters that keep it.
        if (!(s > 0.0)) {
            bad = j + 1u;
            break;
        }
        let d = sqrt(s);
        l[base + j * n + j] = d;
        let inv = 1.0 / d;
        for (var i = j + 1u; i < n; i++) {
            var t = a[base + i * n + j];
            for (var k = 0u; k < j; k++) {
                t -= l[base + i * n + k] * l[base + j * n + k];
            }
            l[base + i * n + j] = t * inv;
        }
    }
    // On failure, columns from the failing one on stay zero, as the first loop left them.
    info[b] = bad;
}

// tri_solve bindings: t at 0 (as `a`), rhs at 1, x at 2.
@group(0) @binding(1) var<storage, read> rhs: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

// Element (i, k) of op(T) in matrix `tb`.
fn op_t(tb: u32, i: u32, k: u32) -> f32 {
    if (p.trans != 0u) {
        return a[tb + k * p.n + i];
    }
    return a[tb + i * p.n + k];
}

@compute @workgroup_size(WG)
fn tri_solve(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    if (g >= p.batch * p.m) {
        return;
    }
    let n = p.n;
    let m = p.m;
    let b = g / m;
    let c = g % m;
    let tb = b * p.t_stride;
    let xb = b * n * m + c;
    // op(T) is lower triangular when T is lower and not transposed, or upper and transposed.
    let eff_lower = (p.lower != 0u) != (p.trans != 0u);
    if (eff_lower) {
        for (var i = 0u; i < n; i++) {
            var s = rhs[xb + i * m];
            for (var k = 0u; k < i; k++) {
                s -= op_t(tb, i, k) * x[xb + k * m];
            }
            x[xb + i * m] = s / op_t(tb, i, i);
        }
    } else {
        for (var ii = 0u; ii < n; ii++) {
            let i = n - 1u - ii;
            var s = rhs[xb + i * m];
            for (var k = i + 1u; k < n; k++) {
                s -= op_t(tb, i, k) * x[xb + k * m];
            }
            x[xb + i * m] = s / op_t(tb, i, i);
        }
    }
}

// sym_eig bindings: a at 0, w at 1, v at 2, work at 3.
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> wk: array<f32>;

@compute @workgroup_size(WG)
fn sym_eig(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let b = grid_index(wid, nwg, lid, WG);
    if (b >= p.batch) {
        return;
    }
    let n = p.n;
    let base = b * n * n;
    var fro = 0.0;
    for (var i = 0u; i < n; i++) {
        for (var j = 0u; j < n; j++) {
            // Symmetrize: the average of the two triangles.
            let s = 0.5 * (a[base + i * n + j] + a[base + j * n + i]);
            wk[base + i * n + j] = s;
            v[base + i * n + j] = select(0.0, 1.0, i == j);
            fro += s * s;
        }
    }
    for (var sweep = 0u; sweep < p.max_sweeps; sweep++) {
        var off = 0.0;
        for (var i = 0u; i < n; i++) {
            for (var j = i + 1u; j < n; j++) {
                let s = wk[base + i * n + j];
                off += s * s;
            }
        }
        // Off-diagonal mass below (f32 epsilon)^2 of the total: converged.
        if (off <= 1e-15 * fro) {
            break;
        }
        for (var pp = 0u; pp + 1u < n; pp++) {
            for (var q = pp + 1u; q < n; q++) {
                let apq = wk[base + pp * n + q];
                if (apq == 0.0) {
                    continue;
                }
                let app = wk[base + pp * n + pp];
                let aqq = wk[base + q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                var t = 1.0 / (abs(theta) + sqrt(theta * theta + 1.0));
                if (theta < 0.0) {
                    t = -t;
                }
                let c = 1.0 / sqrt(t * t + 1.0);
                let s = t * c;
                // A <- A J (columns p, q), then A <- J^T A (rows p, q), V <- V J.
                for (var k = 0u; k < n; k++) {
                    let akp = wk[base + k * n + pp];
                    let akq = wk[base + k * n + q];
                    wk[base + k * n + pp] = c * akp - s * akq;
                    wk[base + k * n + q] = s * akp + c * akq;
                }
                for (var k = 0u; k < n; k++) {
                    let apk = wk[base + pp * n + k];
                    let aqk = wk[base + q * n + k];
                    wk[base + pp * n + k] = c * apk - s * aqk;
                    wk[base + q * n + k] = s * apk + c * aqk;
                }
                wk[base + pp * n + q] = 0.0;
                wk[base + q * n + pp] = 0.0;
                for (var k = 0u; k < n; k++) {
                    let vkp = v[base + k * n + pp];
                    let vkq = v[base + k * n + q];
                    v[base + k * n + pp] = c * vkp - s * vkq;
                    v[base + k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let wb = b * n;
    for (var i = 0u; i < n; i++) {
        w[wb + i] = wk[base + i * n + i];
    }
    // Selection sort, descending, moving eigenvector columns along.
    for (var i = 0u; i + 1u < n; i++) {
        var best = i;
        for (var j = i + 1u; j < n; j++) {
            if (w[wb + j] > w[wb + best]) {
                best = j;
            }
        }
        if (best != i) {
            let tw = w[wb + i];
            w[wb + i] = w[wb + best];
            w[wb + best] = tw;
            for (var k = 0u; k < n; k++) {
                let tv = v[base + k * n + i];
                v[base + k * n + i] = v[base + k * n + best];
                v[base + k * n + best] = tv;
            }
        }
    }
}

// Gram-Schmidt bindings: z at 0, read-write (no inputs).
@group(0) @binding(0) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(WG)
fn gs_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    if (g >= p.batch * p.m) {
        return;
    }
    let n = p.n;
    let m = p.m;
    let b = g / m;
    let k = g % m;
    let j = p.step;
    if (k <= j) {
        return;
    }
    let zb = b * n * m;
    var jj = 0.0;
    var jk = 0.0;
    for (var i = 0u; i < n; i++) {
        let zj = z[zb + i * m + j];
        jj += zj * zj;
        jk += zj * z[zb + i * m + k];
    }
    if (jj <= DEAD) {
        return;
    }
    let r = jk / jj;
    for (var i = 0u; i < n; i++) {
        z[zb + i * m + k] -= r * z[zb + i * m + j];
    }
}

@compute @workgroup_size(WG)
fn gs_normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    if (g >= p.batch * p.m) {
        return;
    }
    let n = p.n;
    let m = p.m;
    let b = g / m;
    let k = g % m;
    let zb = b * n * m + k;
    var s = 0.0;
    for (var i = 0u; i < n; i++) {
        let v = z[zb + i * m];
        s += v * v;
    }
    // step = 1: drop dependent columns (after projections); step = 0: only exact zeros.
    let thresh = select(0.0, DEAD, p.step != 0u);
    let f = select(0.0, inverseSqrt(s), s > thresh);
    for (var i = 0u; i < n; i++) {
        z[zb + i * m] *= f;
    }
}

// nonfinite_mask: a (n = p.n elements) -> l[i] = 1 when a[i] is NaN or +-Inf, else 0, tested
// on the bits (exponent all ones), so no compiler's fast-math assumption can fold it away.
// 1-D grid, EPT elements per invocation at a stride of the grid.
@compute @workgroup_size(WG)
fn nonfinite_mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        let bits = bitcast<u32>(a[i]);
        l[i] = select(0.0, 1.0, (bits & 0x7f800000u) == 0x7f800000u);
    }
}
