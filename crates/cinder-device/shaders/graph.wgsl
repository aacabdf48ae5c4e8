// Graph kernels for the manifold learners (Isomap, LLE): k-nearest-neighbour selection from a
// dense distance matrix, a dense matrix from per-row (index, value) lists, and all-pairs
// shortest paths by Floyd-Warshall (blocked, plus the plain one-dispatch-per-pivot form).
//
// Unreachable pairs are held inside the shortest-path kernels as BIG, a large finite value
// (WGSL compilers may assume there are no infinities): `fw_in` turns every infinity (found on
// the bits) or value >= BIG into BIG, `fw_out` turns every value >= BIG into +inf (written as
// bits). Path lengths must stay below BIG (1e30); weights are expected to be >= 0.
//
// Entry points (one invocation per row unless said otherwise):
//   knn_select  d [n, m] -> idx [n, k] u32, val [n, k]: the k smallest entries of each row
//               in increasing order (ties by column index), skipping column i of row i when
//               p.flag = 1 (self-distances of a square matrix). k passes over the row, each
//               taking the smallest (value, column) pair above the previous one.
//   knn_dense   idx [n, k] u32, val [n, k] -> out [n, m]: p.fill everywhere, val[i, t] at
//               (i, idx[i, t]), and p.diag at (i, i) when p.flag = 1.
//   fw_in       d [n * n] in place (EPT elements per invocation): infinities and values
//               >= BIG become BIG, the diagonal 0.
//   fw_out      d [n * n] in place: values >= BIG become +inf.
//   fw_pivot    d [n, n] in place, pivot k = p.step: d[i, j] = min(d[i, j], d[i, k] + d[k, j])
//               (EPT elements per invocation). Row and column k do not change at pivot k, so
//               updating in place is race-free.
//   fw_diag     blocked Floyd-Warshall, round r = p.step, phase 1: the T x T diagonal block
//               closed over its own pivots, serially by one invocation.
//   fw_panel    phase 2: 2n invocations; invocation j < n owns column j of the block's rows
//               (the row panel), n + i owns row i of the block's columns (the column panel);
//               each runs the round's T pivots in order against the closed diagonal block.
//   fw_rest     phase 3: every (i, j) outside the block's rows and columns, relaxed by all T
//               pivots at once (a min-plus product of the two panels); each invocation
//               computes a RB x CB tile.

const WG: u32 = 64u;
// Pivots per round of the blocked Floyd-Warshall (host: ops::graph::TILE).
const T: u32 = 32u;
// Rows and columns of fw_rest's tile per invocation (host: ops::graph::RB, CB).
const RB: u32 = 4u;
const CB: u32 = 4u;
// Stand-in for +inf inside the shortest-path kernels (host: ops::graph::BIG).
const BIG: f32 = 1e30;

struct P {
    n: u32,
    m: u32,
    k: u32,
    step: u32,
    flag: u32,
    fill: f32,
    diag: f32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> d_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> val_out: array<f32>;

@compute @workgroup_size(WG)
fn knn_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let m = p.m;
    let row = i * m;
    var prev_v = -3.0e38;
    var prev_j = 0xffffffffu;
    for (var t = 0u; t < p.k; t++) {
        var best_v = 3.4e38;
        var best_j = 0xffffffffu;
        for (var j = 0u; j < m; j++) {
            if (p.flag != 0u && j == i) {
                continue;
            }
            let v = d_in[row + j];
            // Strictly after (prev_v, prev_j) in (value, column) order ...
            let after = v > prev_v || (v == prev_v && (prev_j == 0xffffffffu || j > prev_j));
            // ... and strictly before the best so far.
            let before = v < best_v || (v == best_v && j < best_j);
            if (after && before) {
                best_v = v;
                best_j = j;
            }
        }
        // Fewer candidates than k (the host refuses that): pad with the row's own index.
        if (best_j == 0xffffffffu) {
            best_j = i;
            best_v = 0.0;
        }
        idx_out[i * p.k + t] = best_j;
        val_out[i * p.k + t] = best_v;
        prev_v = best_v;
        prev_j = best_j;
    }
}

@group(0) @binding(0) var<storage, read> idx_in: array<u32>;
@group(0) @binding(1) var<storage, read> val_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> dense: array<f32>;

@compute @workgroup_size(WG)
fn knn_dense(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wid, nwg, lid, WG);
    if (i >= p.n) {
        return;
    }
    let m = p.m;
    let row = i * m;
    for (var j = 0u; j < m; j++) {
        dense[row + j] = p.fill;
    }
    for (var t = 0u; t < p.k; t++) {
        let j = idx_in[i * p.k + t];
        if (j < m) {
            dense[row + j] = val_in[i * p.k + t];
        }
    }
    if (p.flag != 0u && i < m) {
        dense[row + i] = p.diag;
    }
}

@group(0) @binding(0) var<storage, read_write> d: array<f32>;

@compute @workgroup_size(WG)
fn fw_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    let total = p.n * p.n;
    for (var e = 0u; e < EPT; e++) {
        let q = t + e * stride;
        if (q >= total) {
            break;
        }
        let v = d[q];
        var o = select(v, BIG, is_inf(v) || v >= BIG);
        if (q / p.n == q % p.n) {
            o = 0.0;
        }
        d[q] = o;
    }
}

@compute @workgroup_size(WG)
fn fw_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    let total = p.n * p.n;
    for (var e = 0u; e < EPT; e++) {
        let q = t + e * stride;
        if (q >= total) {
            break;
        }
        if (d[q] >= BIG) {
            d[q] = bitcast<f32>(0x7f800000u);
        }
    }
}

@compute @workgroup_size(WG)
fn fw_pivot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    let n = p.n;
    let k = p.step;
    let total = n * n;
    for (var e = 0u; e < EPT; e++) {
        let q = t + e * stride;
        if (q >= total) {
            break;
        }
        let i = q / n;
        let j = q % n;
        let via = d[i * n + k] + d[k * n + j];
        if (via < d[q]) {
            d[q] = via;
        }
    }
}

@compute @workgroup_size(WG)
fn fw_diag(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    if (g != 0u) {
        return;
    }
    let n = p.n;
    let b0 = p.step * T;
    let b1 = min(n, b0 + T);
    for (var k = b0; k < b1; k++) {
        for (var i = b0; i < b1; i++) {
            let dik = d[i * n + k];
            for (var j = b0; j < b1; j++) {
                let via = dik + d[k * n + j];
                if (via < d[i * n + j]) {
                    d[i * n + j] = via;
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn fw_panel(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    let n = p.n;
    if (g >= 2u * n) {
        return;
    }
    let b0 = p.step * T;
    let b1 = min(n, b0 + T);
    if (g < n) {
        // Row panel, column j: d[i, j] for i in the block.
        let j = g;
        if (j >= b0 && j < b1) {
            return;
        }
        for (var k = b0; k < b1; k++) {
            let dkj = d[k * n + j];
            for (var i = b0; i < b1; i++) {
                let via = d[i * n + k] + dkj;
                if (via < d[i * n + j]) {
                    d[i * n + j] = via;
                }
            }
        }
    } else {
        // Column panel, row i: d[i, j] for j in the block.
        let i = g - n;
        if (i >= b0 && i < b1) {
            return;
        }
        for (var k = b0; k < b1; k++) {
            let dik = d[i * n + k];
            for (var j = b0; j < b1; j++) {
                let via = dik + d[k * n + j];
                if (via < d[i * n + j]) {
                    d[i * n + j] = via;
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn fw_rest(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let g = grid_index(wid, nwg, lid, WG);
    let n = p.n;
    let tiles_c = (n + CB - 1u) / CB;
    let tiles_r = (n + RB - 1u) / RB;
    if (g >= tiles_r * tiles_c) {
        return;
    }
    let i0 = (g / tiles_c) * RB;
    let j0 = (g % tiles_c) * CB;
    let b0 = p.step * T;
    let b1 = min(n, b0 + T);
    var acc: array<f32, 16>;
    for (var q = 0u; q < RB * CB; q++) {
        acc[q] = BIG;
    }
    for (var k = b0; k < b1; k++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var r = 0u; r < RB; r++) {
            a[r] = select(BIG, d[min(i0 + r, n - 1u) * n + k], i0 + r < n);
        }
        for (var c = 0u; c < CB; c++) {
            b[c] = select(BIG, d[k * n + min(j0 + c, n - 1u)], j0 + c < n);
        }
        for (var r = 0u; r < RB; r++) {
            for (var c = 0u; c < CB; c++) {
                acc[r * CB + c] = min(acc[r * CB + c], a[r] + b[c]);
            }
        }
    }
    for (var r = 0u; r < RB; r++) {
        let i = i0 + r;
        if (i >= n || (i >= b0 && i < b1)) {
            continue;
        }
        for (var c = 0u; c < CB; c++) {
            let j = j0 + c;
            if (j >= n || (j >= b0 && j < b1)) {
                continue;
            }
            let q = i * n + j;
            if (acc[r * CB + c] < d[q]) {
                d[q] = acc[r * CB + c];
            }
        }
    }
}
