// Index kernels: gather, index_select, scatter_add and index_select's backward (both written
// owner-computes: each output element sums what maps to it, no float atomics), and one_hot.
// Tensors are viewed as [outer, len, inner] around the indexed axis. Data moves as raw
// 32-bit words where no arithmetic is done, so gather/index_select serve f32 and u32.
// An out-of-range index reads 0 (gather, index_select) or contributes nothing (scatter), and
// sets the dispatching thread's slot of the device's error word (bound after the outputs:
// errN at binding N; slot s is words 4s to 4s + 3, see checks.rs): word 4s ORs the op's bit
// (checks::INDEX_ERROR_OPS: gather 1, index_select 2, scatter_add 4, index_select_backward 8,
// one_hot 16), word 4s + 1 keeps the largest bad index. The host reports it at that thread's
// next readback or sync.

override WG: u32 = 256u;

struct P {
    n: u32,        // output elements
    outer: u32,
    len_in: u32,   // size of the indexed axis in the source / base
    len_idx: u32,  // size of the indexed axis in the index (and output for gathers)
    inner: u32,
    classes: u32,
    slot: u32,     // the dispatching thread's slot of the error word (checks::error_slot)
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

// The error-word bits of the ops (checks::INDEX_ERROR_OPS, checked by the naga test).
const BIT_GATHER: u32 = 1u;
const BIT_INDEX_SELECT: u32 = 2u;
const BIT_SCATTER_ADD: u32 = 4u;
const BIT_INDEX_SELECT_BACKWARD: u32 = 8u;
const BIT_ONE_HOT: u32 = 16u;

@group(0) @binding(2) var<storage, read_write> err2: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> err3: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> err4: array<atomic<u32>>;

// out[o, j, i] = src[o, idx[o, j, i], i]   (torch.gather; out has the index's shape)
fn gather_at(i: u32) {
    let inner = i % p.inner;
    let o = i / (p.inner * p.len_idx);
    let l = idx[i];
    if (l >= p.len_in) {
        atomicOr(&err3[4u * p.slot], BIT_GATHER);
        atomicMax(&err3[4u * p.slot + 1u], l);
        dst[i] = 0u;
        return;
    }
    dst[i] = src[(o * p.len_in + l) * p.inner + inner];
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
    if (l >= p.len_in) {
        atomicOr(&err3[4u * p.slot], BIT_INDEX_SELECT);
        atomicMax(&err3[4u * p.slot + 1u], l);
        dst[i] = 0u;
        return;
    }
    dst[i] = src[(o * p.len_in + l) * p.inner + inner];
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
        let t = idx[at];
        if (t == l) {
            acc += src_f[at];
        }
        // each index is seen by every output of its column: the row-0 output reports it
        if (l == 0u && t >= p.len_in) {
            atomicOr(&err4[4u * p.slot], BIT_SCATTER_ADD);
            atomicMax(&err4[4u * p.slot + 1u], t);
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
        let t = idx[j];
        if (t == l) {
            acc += grad_f[(o * p.len_idx + j) * p.inner + inner];
        }
        if (i == 0u && t >= p.len_in) {
            atomicOr(&err3[4u * p.slot], BIT_INDEX_SELECT_BACKWARD);
            atomicMax(&err3[4u * p.slot + 1u], t);
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
    let label = labels[i / p.classes];
    let c = i % p.classes;
    if (c == 0u && label >= p.classes) {
        atomicOr(&err2[4u * p.slot], BIT_ONE_HOT);
        atomicMax(&err2[4u * p.slot + 1u], label);
    }
    onehot[i] = select(0.0, 1.0, label == c);
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
