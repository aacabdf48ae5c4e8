// Index kernels: gather, index_select, scatter_add and index_select's backward (both written
// owner-computes: each output element sums what maps to it, no atomics), and one_hot.
// Tensors are viewed as [outer, len, inner] around the indexed axis. Data moves as raw
// 32-bit words where no arithmetic is done, so gather/index_select serve f32 and u32.
// An out-of-range index reads 0 (gather, index_select) or contributes nothing (scatter).

override WG: u32 = 256u;

struct P {
    n: u32,        // output elements
    outer: u32,
    len_in: u32,   // size of the indexed axis in the source / base
    len_idx: u32,  // size of the indexed axis in the index (and output for gathers)
    inner: u32,
    classes: u32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@group(0) @binding(0) var<storage, read> base_f: array<f32>;
@group(0) @binding(2) var<storage, read> src_f: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_f3: array<f32>;

@group(0) @binding(0) var<storage, read> grad_f: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_f2: array<f32>;

@group(0) @binding(0) var<storage, read> labels: array<u32>;
@group(0) @binding(1) var<storage, read_write> onehot: array<f32>;

// out[o, j, i] = src[o, idx[o, j, i], i]   (torch.gather; out has the index's shape)
fn gather_at(i: u32) {
    let inner = i % p.inner;
    let o = i / (p.inner * p.len_idx);
    let l = idx[i];
    dst[i] = select(0u, src[(o * p.len_in + l) * p.inner + inner], l < p.len_in);
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        gather_at(i);
    }
}

// out[o, j, i] = src[o, idx[j], i]   (index_select with a 1-D index)
fn index_select_at(i: u32) {
    let inner = i % p.inner;
    let j = (i / p.inner) % p.len_idx;
    let o = i / (p.inner * p.len_idx);
    let l = idx[j];
    dst[i] = select(0u, src[(o * p.len_in + l) * p.inner + inner], l < p.len_in);
}

@compute @workgroup_size(WG)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        index_select_at(i);
    }
}

// out[o, l, i] = base[o, l, i] + sum_j [idx[o, j, i] == l] src[o, j, i]   (torch.scatter_add)
fn scatter_add_at(i: u32) {
    let inner = i % p.inner;
    let l = (i / p.inner) % p.len_in;
    let o = i / (p.inner * p.len_in);
    var acc = base_f[i];
    for (var j = 0u; j < p.len_idx; j++) {
        let at = (o * p.len_idx + j) * p.inner + inner;
        if (idx[at] == l) {
            acc += src_f[at];
        }
    }
    out_f3[i] = acc;
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        scatter_add_at(i);
    }
}

// out[o, l, i] = sum_j [idx[j] == l] grad[o, j, i]   (backward of index_select)
fn index_select_backward_at(i: u32) {
    let inner = i % p.inner;
    let l = (i / p.inner) % p.len_in;
    let o = i / (p.inner * p.len_in);
    var acc = 0.0;
    for (var j = 0u; j < p.len_idx; j++) {
        if (idx[j] == l) {
            acc += grad_f[(o * p.len_idx + j) * p.inner + inner];
        }
    }
    out_f2[i] = acc;
}

@compute @workgroup_size(WG)
fn index_select_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        index_select_backward_at(i);
    }
}

// out[r, c] = labels[r] == c
fn one_hot_at(i: u32) {
    onehot[i] = select(0.0, 1.0, labels[i / p.classes] == i % p.classes);
}

@compute @workgroup_size(WG)
fn one_hot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        one_hot_at(i);
    }
}
