// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11) in 32-bit arithmetic.
// Element e of a request with (seed, offset) uses counter (offset + e) as a 64-bit value in
// the first two counter words and the seed as the key, so its value depends only on
// (seed, offset + e), never on how a tensor is split into requests.

override WG: u32 = 256u;

struct P {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    off_lo: u32,
    off_hi: u32,
    a: f32,
    b: f32,
    pad0: u32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read_write> out_f: array<f32>;
@group(0) @binding(0) var<storage, read_write> out_u: array<u32>;

// (high, low) words of the 64-bit product a * b, from 16-bit halves.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh; // < 2^32
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (ll & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

fn draw(i: u32) -> vec4<u32> {
    let lo = p.off_lo + i;
    let hi = p.off_hi + select(0u, 1u, lo < i);
    return philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(p.key_lo, p.key_hi));
}

// 24 random bits as a float in [0, 1).
fn unit(x: u32) -> f32 {
    return f32(x >> 8u) * (1.0 / 16777216.0);
}

fn random_bits_at(i: u32) {
    out_u[i] = draw(i).x;
}

@compute @workgroup_size(WG)
fn random_bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        random_bits_at(i);
    }
}

// lo + (hi - lo) * u, u in [0, 1)
fn uniform_at(i: u32) {
    out_f[i] = p.a + (p.b - p.a) * unit(draw(i).x);
}

@compute @workgroup_size(WG)
fn uniform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        uniform_at(i);
    }
}

// mean + std * z, z standard normal by Box-Muller.
fn normal_at(i: u32) {
    let r = draw(i);
    let u1 = f32((r.x >> 8u) + 1u) * (1.0 / 16777216.0); // (0, 1]: log is finite
    let u2 = unit(r.y);
    let z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    out_f[i] = p.a + p.b * z;
}

@compute @workgroup_size(WG)
fn normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        normal_at(i);
    }
}

// 1 with probability p.a, else 0.
fn bernoulli_at(i: u32) {
    out_f[i] = select(0.0, 1.0, unit(draw(i).x) < p.a);
}

@compute @workgroup_size(WG)
fn bernoulli(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        bernoulli_at(i);
    }
}
