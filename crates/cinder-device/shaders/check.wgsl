// Value checks: a failed check sets the dispatching thread's slot of the device's error word
// (see crates/cinder-device/src/checks.rs): word 4s ORs VALUE_CHECK_BIT and word 4s + 2
// keeps u32::MAX - seq of the earliest failed check, so the host can say which one failed.
// The host reports it at that thread's next readback or sync; nothing is written otherwise.

override WG: u32 = 256u;

const VALUE_CHECK_BIT: u32 = 32u;

struct P {
    n: u32,
    lo: f32,     // the element must satisfy lo <= x <= hi
    hi: f32,
    slot: u32,
    seq: u32,
    nan_ok: u32, // 1: NaN passes; 0: NaN fails
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> err: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn check_range(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    var bad = false;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        let v = x[i];
        bad = bad || select(is_nan(v), false, p.nan_ok != 0u) || v < p.lo || v > p.hi;
    }
    if (bad) {
        atomicOr(&err[4u * p.slot], VALUE_CHECK_BIT);
        atomicMax(&err[4u * p.slot + 2u], 0xffffffffu - p.seq);
    }
}
