// Exact t-SNE (scikit-learn's `TSNE(method="exact")`): the per-point perplexity calibration,
// the symmetrized joint probabilities, and the KL gradient's per-row sums, without any
// n x n temporary beyond P itself.
//
// Every n x n matrix here is symmetric (the squared distances, P), so invocation i reads
// column i (`m[j * n + i]`) instead of row i: neighbouring invocations then read neighbouring
// addresses, which vectorizes on lavapipe and coalesces on a GPU.
//
// Entry points (one invocation per row i, WG per workgroup):
//   perplexity  d [n, n] squared distances (symmetric; the diagonal is never read),
//               -> ct [n, n] the transposed conditional probabilities (ct[j, i] = p_{j|i},
//               ct[i, i] = 0), beta [n] the precisions found. Binary search on beta as
//               sklearn's `_binary_search_perplexity`: beta = 1 to start, at most `steps`
//               evaluations, stop when |H - log(perplexity)| <= tol (H in nats), doubling or
//               halving until bracketed, then bisecting. The distances are shifted by the
//               row's smallest off-diagonal distance before exp (the same probabilities and
//               entropy in exact arithmetic; no underflow to a zero sum in f32).
//   symmetrize  c [n, n] (either the conditional matrix or its transpose), total [1] = sum(c)
//               -> p [n, n] = max((c + c^T) / max(2 total, tiny), eps), diagonal 0.
//   grad        p [n, n] joint probabilities (symmetric), y [n, k] embedding
//               -> a [n, k] = sum_j x p_ij num_ij (y_i - y_j),
//                  b [n, k] = sum_j num_ij^2 (y_i - y_j),
//                  stats [n, 4] = (z_i = sum_j num_ij,
//                                  sum_j x p_ij (log(x p_ij) - log num_ij)  (with_error only, else 0),
//                                  sum_j x p_ij, 0),
//               with x the exaggeration, num_ij = (1 + |y_i - y_j|^2 / dof)^(-(dof + 1) / 2)
//               and j != i. Then grad_i = c (a_i - b_i / Z) with Z = sum_i z_i, and
//               KL = sum_i stats_i1 + (sum_i stats_i2) log Z.
//   update      a, b [n, k], tot [4] (tot[0] = Z) -> y, upd, gains [n, k] updated in place,
//               stats [n, 4] column 3 = sum_k g^2 of the gain-scaled gradient: sklearn's
//               `_gradient_descent` step (gains + 0.2 where upd * grad < 0, * 0.8 elsewhere,
//               at least min_gain; grad *= gains; upd = momentum upd - lr grad; y += upd).

const WG: u32 = 64u;

struct P {
    n: u32,
    k: u32,
    steps: u32,
    with_error: u32,
    // perplexity: log(perplexity) and tol; grad: dof and exaggeration; update: c and lr.
    f0: f32,
    f1: f32,
    // update: momentum and min_gain; symmetrize: eps.
    f2: f32,
    f3: f32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> d: array<f32>;
@group(0) @binding(1) var<storage, read_write> ct: array<f32>;
@group(0) @binding(2) var<storage, read_write> beta_out: array<f32>;

@compute @workgroup_size(WG)
fn perplexity(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let n = p.n;
    let target_h = p.f0;
    let tol = p.f1;
    var dmin = 3.4e38;
    for (var j = 0u; j < n; j++) {
        if (j != i) {
            dmin = min(dmin, d[j * n + i]);
        }
    }
    var beta = 1.0;
    var beta_min = -1.0; // < 0: unbounded below (-inf in sklearn)
    var beta_max = -1.0; // < 0: unbounded above (+inf)
    var used = 1.0;
    for (var s = 0u; s < p.steps; s++) {
        used = beta;
        var sum_p = 0.0;
        var sum_dp = 0.0;
        for (var j = 0u; j < n; j++) {
            if (j != i) {
                let dj = d[j * n + i] - dmin;
                let e = exp(-dj * beta);
                sum_p += e;
                sum_dp += dj * e;
            }
        }
        // With the shift, the nearest point contributes exp(0) = 1, so sum_p >= 1.
        let h = log(sum_p) + beta * sum_dp / sum_p;
        let diff = h - target_h;
        if (abs(diff) <= tol) {
            break;
        }
        if (diff > 0.0) {
            beta_min = beta;
            if (beta_max < 0.0) {
                beta *= 2.0;
            } else {
                beta = (beta + beta_max) / 2.0;
            }
        } else {
            beta_max = beta;
            if (beta_min < 0.0) {
                beta /= 2.0;
            } else {
                beta = (beta + beta_min) / 2.0;
            }
        }
    }
    var sum_p = 0.0;
    for (var j = 0u; j < n; j++) {
        if (j != i) {
            sum_p += exp(-(d[j * n + i] - dmin) * used);
        }
    }
    let inv = 1.0 / sum_p;
    for (var j = 0u; j < n; j++) {
        var v = 0.0;
        if (j != i) {
            v = exp(-(d[j * n + i] - dmin) * used) * inv;
        }
        ct[j * n + i] = v;
    }
    beta_out[i] = used;
}

@group(0) @binding(0) var<storage, read> c_in: array<f32>;
@group(0) @binding(1) var<storage, read> c_total: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_out: array<f32>;

@compute @workgroup_size(WG)
fn symmetrize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let idx = grid_index(wid, nwg, lid, WG);
    let n = p.n;
    if (idx >= n * n) {
        return;
    }
    let i = idx / n;
    let j = idx % n;
    let inv = 1.0 / max(2.0 * c_total[0], 1.0e-30);
    var v = 0.0;
    if (i != j) {
        v = max((c_in[idx] + c_in[j * n + i]) * inv, p.f3);
    }
    p_out[idx] = v;
}

@group(0) @binding(0) var<storage, read> pm: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

// Largest embedding width the gradient kernel accumulates in registers.
const MAX_K: u32 = 4u;

@compute @workgroup_size(WG)
fn grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let n = p.n;
    let k = p.k;
    let dof = p.f0;
    let ex = p.f1;
    let expo = -(dof + 1.0) / 2.0;
    let cauchy = dof == 1.0;
    var yi = array<f32, MAX_K>(0.0, 0.0, 0.0, 0.0);
    for (var c = 0u; c < k; c++) {
        yi[c] = y[i * k + c];
    }
    var a = array<f32, MAX_K>(0.0, 0.0, 0.0, 0.0);
    var b = array<f32, MAX_K>(0.0, 0.0, 0.0, 0.0);
    var z = 0.0;
    var s_kl = 0.0;
    var s_p = 0.0;
    for (var j = 0u; j < n; j++) {
        if (j == i) {
            continue;
        }
        var diff = array<f32, MAX_K>(0.0, 0.0, 0.0, 0.0);
        var dist = 0.0;
        for (var c = 0u; c < k; c++) {
            let t = yi[c] - y[j * k + c];
            diff[c] = t;
            dist += t * t;
        }
        let base = 1.0 + dist / dof;
        var num = 0.0;
        if (cauchy) {
            num = 1.0 / base;
        } else {
            num = exp(expo * log(base));
        }
        let pij = ex * pm[j * n + i];
        let w1 = pij * num;
        let w2 = num * num;
        for (var c = 0u; c < k; c++) {
            a[c] += w1 * diff[c];
            b[c] += w2 * diff[c];
        }
        z += num;
        s_p += pij;
        if (p.with_error != 0u) {
            s_kl += pij * (log(pij) - expo * log(base));
        }
    }
    for (var c = 0u; c < k; c++) {
        acc_a[i * k + c] = a[c];
        acc_b[i * k + c] = b[c];
    }
    stats[i * 4u] = z;
    stats[i * 4u + 1u] = s_kl;
    stats[i * 4u + 2u] = s_p;
    stats[i * 4u + 3u] = 0.0;
}

@group(0) @binding(0) var<storage, read> ua: array<f32>;
@group(0) @binding(1) var<storage, read> ub: array<f32>;
@group(0) @binding(2) var<storage, read> tot: array<f32>;
@group(0) @binding(3) var<storage, read_write> uy: array<f32>;
@group(0) @binding(4) var<storage, read_write> upd: array<f32>;
@group(0) @binding(5) var<storage, read_write> gains: array<f32>;
@group(0) @binding(6) var<storage, read_write> ustats: array<f32>;

@compute @workgroup_size(WG)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let k = p.k;
    let coef = p.f0;
    let lr = p.f1;
    let momentum = p.f2;
    let min_gain = p.f3;
    let inv_z = 1.0 / tot[0];
    var g2 = 0.0;
    for (var c = 0u; c < k; c++) {
        let e = i * k + c;
        var g = coef * (ua[e] - ub[e] * inv_z);
        let u = upd[e];
        var gain = gains[e];
        if (u * g < 0.0) {
            gain += 0.2;
        } else {
            gain *= 0.8;
        }
        gain = max(gain, min_gain);
        g *= gain;
        let un = momentum * u - lr * g;
        gains[e] = gain;
        upd[e] = un;
        uy[e] += un;
        g2 += g * g;
    }
    ustats[i * 4u + 3u] = g2;
}
