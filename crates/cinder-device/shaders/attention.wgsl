// Attention's masked, scaled softmax as one kernel: y = softmax(scale * x + mask) along the
// last axis of scores viewed as rows of `len` keys, with the mask and the causal rule
// applied on the fly (no masked copy of the scores is written).
//
// MASK: 0 none; 1 additive f32 (bit patterns in the u32 binding); 2 a u32 mask where nonzero
// keeps a key (F.scaled_dot_product_attention's boolean mask); 3 a u32 mask where nonzero
// drops a key (nn.MultiheadAttention's boolean masks). The mask is `mask_rows` rows of `len`,
// row r of the scores reading mask row (r / mask_div) % mask_rows: any mask whose
// non-broadcast row dimensions are consecutive (a [L, S] mask, a [B, 1, 1, S] key padding
// mask against [B, heads, L, S] scores) is read in place. CAUSAL drops key k of query row q (q = r % lq)
// when k > q (PyTorch's is_causal: the top-left-aligned lower triangle).
//
// A key whose masked score is -inf counts as dropped. A row with every key dropped is all
// zeros, as F.scaled_dot_product_attention gives. NaN scores propagate to their row.

override MASK: u32 = 0u;
override CAUSAL: bool = false;

const NEG_BIG: f32 = -3.4028234e38;

struct P {
    len: u32,
    lq: u32,
    rows: u32,
    mask_rows: u32,
    mask_div: u32,
    scale: f32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// The masked, scaled score of key k in row r, and whether the key takes part.
fn score(r: u32, k: u32) -> vec2<f32> {
    var v = x[r * p.len + k] * p.scale;
    var keep = true;
    if (CAUSAL && k > r % p.lq) {
        keep = false;
    }
    let mi = ((r / p.mask_div) % p.mask_rows) * p.len + k;
    if (MASK == 1u) {
        v = v + bitcast<f32>(mask[mi]);
    } else if (MASK == 2u) {
        keep = keep && mask[mi] != 0u;
    } else if (MASK == 3u) {
        keep = keep && mask[mi] == 0u;
    }
    if (v == bitcast<f32>(0xff800000u)) {
        keep = false;
    }
    return vec2<f32>(v, select(0.0, 1.0, keep));
}

@compute @workgroup_size(64)
fn masked_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = grid_index(wid, nwg, lid, 64u);
    if (r >= p.rows) {
        return;
    }
    // Online maximum and sum of exp(v - max) over the kept keys.
    var m = NEG_BIG;
    var s = 0.0;
    var any = false;
    for (var k = 0u; k < p.len; k++) {
        let sv = score(r, k);
        if (sv.y == 0.0) {
            continue;
        }
        any = true;
        let v = sv.x;
        if (v > m) {
            let one = select(1.0, bitcast<f32>(0x7fc00000u), v == bitcast<f32>(0x7f800000u));
            s = s * exp(m - v) + one;
            m = v;
        } else {
            s = s + exp(v - m);
        }
    }
    for (var k = 0u; k < p.len; k++) {
        let sv = score(r, k);
        var out = 0.0;
        if (any && sv.y != 0.0) {
            out = exp(sv.x - m) / s;
        }
        y[r * p.len + k] = out;
    }
}
