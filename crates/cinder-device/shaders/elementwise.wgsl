// Elementwise kernels: unary maps, binary ops (same shape, broadcast, scalar), where, fill.
// Template placeholders (written in double braces, see kernel::Kernel::source), filled per
// op by the host: the unary expression in x, a, b, and the binary expression in a, b. Every
// entry point writes every output element.

override WG: u32 = 256u;

// Unary, scalar-binary and fill parameters.
struct P1 {
    n: u32,
    a: f32,
    b: f32,
    swap: u32,
}

// Broadcast-binary parameters: output shape and per-operand strides, outermost first.
struct PB {
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
    n: u32,
    rank: u32,
}

var<immediate> p1: P1;
var<immediate> pb: PB;

@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read_write> out1: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(0) var<storage, read_write> out0: array<f32>;

const SQRT_2: f32 = 1.4142135623730951;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf_approx(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
    return sign(x) * y;
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x / SQRT_2));
}

fn gelu_grad(x: f32) -> f32 {
    return 0.5 * (1.0 + erf_approx(x / SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}

// log(1 + y), accurate for small y (Goldberg's trick: the rounding of 1 + y cancels).
fn log1p(y: f32) -> f32 {
    let u = 1.0 + y;
    return select(log(u) * (y / (u - 1.0)), y, u == 1.0);
}

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log1p(exp(-abs(x)));
}

// x^e with PyTorch's (C's) meaning for negative bases, integer exponents and the special
// values: x^0 = 1 and 1^e = 1 even for NaN, (-1)^+-inf = 1, (-inf)^e = +-inf or +-0.
fn powf(x: f32, e: f32) -> f32 {
    if (e == 0.0 || x == 1.0) {
        return 1.0;
    }
    // NaN explicitly (bit test): lavapipe's pow of a NaN base gave 0 on an AVX-512 Xeon.
    if (is_nan(x) || is_nan(e)) {
        return bitcast<f32>(0x7fc00000u);
    }
    let odd = floor(e) == e && (abs(e) % 2.0) == 1.0;
    if (x == 0.0) {
        return select(0.0, bitcast<f32>(0x7f800000u), e < 0.0); // 0^-e = inf
    }
    if (x == -1.0 && is_inf(e)) {
        return 1.0;
    }
    if (is_inf(x) && x < 0.0) {
        let m = select(0.0, bitcast<f32>(0x7f800000u), e > 0.0);
        return select(m, -m, odd);
    }
    let r = pow(abs(x), e);
    if (x > 0.0) {
        return r;
    }
    if (floor(e) != e && !is_inf(e)) {
        return bitcast<f32>(0x7fc00000u); // NaN, as PyTorch
    }
    return select(r, -r, odd);
}

// GELU with PyTorch's tanh approximation (approximate="tanh").
fn gelu_tanh(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + tanh_stable(inner));
}

// sign with sign(NaN) = 0, as PyTorch.
fn sign_nan(x: f32) -> f32 {
    return select(sign(x), 0.0, is_nan(x));
}

const PI: f32 = 3.14159265358979;
fn pos_inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

fn qnan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// log|Gamma(x)| for x >= 0.5, finite: the recurrence up to x >= 10 (as one product, at most
// 10 factors below 2e10), then Stirling's series.
fn lgamma_pos(x0: f32) -> f32 {
    var x = x0;
    var prod = 1.0;
    for (var i = 0u; i < 10u && x < 10.0; i++) {
        prod *= x;
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let series = (1.0 / 12.0 - z * (1.0 / 360.0 - z * (1.0 / 1260.0))) / x;
    return (x - 0.5) * log(x) - x + 0.91893853320467274 + series - log(prod);
}

// log|Gamma(x)| as torch.lgamma: +inf at the poles (0, negative integers) and at +-inf;
// reflection below 0.5 (for x < 0 only: small positive x go through the recurrence).
fn lgamma(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    if (is_inf(x) || (x <= 0.0 && x == trunc(x))) {
        return pos_inf();
    }
    if (x < 0.0) {
        let s = abs(sin(PI * (x - trunc(x))));
        return log(PI / s) - lgamma_pos(1.0 - x);
    }
    if (x < 0.5) {
        return lgamma_pos(x + 1.0) - log(x);
    }
    return lgamma_pos(x);
}

// digamma for finite x > 0 (PyTorch's calc_digamma: the recurrence up to x >= 10, then
// the asymptotic series).
fn digamma_pos(x0: f32) -> f32 {
    var x = x0;
    var r = 0.0;
    for (var i = 0u; i < 10u && x < 10.0; i++) {
        r -= 1.0 / x;
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let tail = z * (1.0 / 12.0 - z * (1.0 / 120.0 - z * (1.0 / 252.0 - z * (1.0 / 240.0))));
    return r + log(x) - 0.5 / x - tail;
}

// digamma as torch.digamma: -inf at +0, +inf at -0, NaN at negative integers and -inf,
// +inf at +inf; reflection psi(x) = psi(1 - x) - pi / tan(pi x) below 0.
fn digamma(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    if (x == 0.0) {
        return select(-pos_inf(), pos_inf(), (bitcast<u32>(x) & 0x80000000u) != 0u);
    }
    if (is_inf(x)) {
        return select(qnan(), pos_inf(), x > 0.0);
    }
    if (x < 0.0) {
        if (x == trunc(x)) {
            return qnan();
        }
        return digamma_pos(1.0 - x) - PI / tan(PI * (x - trunc(x)));
    }
    return digamma_pos(x);
}

// trigamma for finite x >= 0.5.
fn trigamma_pos(x0: f32) -> f32 {
    var x = x0;
    var r = 0.0;
    for (var i = 0u; i < 10u && x < 10.0; i++) {
        r += 1.0 / (x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    return r + (1.0 + 0.5 / x + z * (1.0 / 6.0 - z * (1.0 / 30.0 - z * (1.0 / 42.0)))) / x;
}

// trigamma as torch.polygamma(1, x): +inf at 0 and the negative integers, 0 at +inf, NaN at
// -inf; reflection psi'(x) = pi^2 / sin^2(pi x) - psi'(1 - x) below 0.5.
fn trigamma(x: f32) -> f32 {
    if (is_nan(x) || (is_inf(x) && x < 0.0)) {
        return qnan();
    }
    if (is_inf(x)) {
        return 0.0;
    }
    if (x <= 0.0 && x == trunc(x)) {
        return pos_inf();
    }
    if (x < 0.5) {
        if (x > 0.0) {
            return trigamma_pos(x + 1.0) + 1.0 / (x * x);
        }
        let s = sin(PI * (x - trunc(x)));
        return PI * PI / (s * s) - trigamma_pos(1.0 - x);
    }
    return trigamma_pos(x);
}

fn b2f(c: bool) -> f32 {
    return select(0.0, 1.0, c);
}

fn unary_at(i: u32) {
    let x = in0[i];
    let a = p1.a;
    let b = p1.b;
    out1[i] = {{UNARY_OP}};
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        unary_at(i);
    }
}

fn binary_at(i: u32) {
    let a = in0[i];
    let b = in1[i];
    out2[i] = {{BINARY_OP}};
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        binary_at(i);
    }
}

fn binary_scalar_at(i: u32) {
    let x = in0[i];
    let s = p1.a;
    let swap = p1.swap != 0u;
    let a = select(x, s, swap);
    let b = select(s, x, swap);
    out1[i] = {{BINARY_OP}};
}

@compute @workgroup_size(WG)
fn binary_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        binary_scalar_at(i);
    }
}

fn binary_bcast_at(i: u32) {
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var k = i32(pb.rank) - 1; k >= 0; k--) {
        let d = u32(k);
        let dim = pb.shape[d / 4u][d % 4u];
        let c = rem % dim;
        rem = rem / dim;
        ia += c * pb.sa[d / 4u][d % 4u];
        ib += c * pb.sb[d / 4u][d % 4u];
    }
    let a = in0[ia];
    let b = in1[ib];
    out2[i] = {{BINARY_OP}};
}

@compute @workgroup_size(WG)
fn binary_bcast(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= pb.n) {
            break;
        }
        binary_bcast_at(i);
    }
}

// out = cond != 0 ? a : b, all three contiguous and of one shape.
fn where_select_at(i: u32) {
    out3[i] = select(in2[i], in1[i], (bitcast<u32>(in0[i]) & 0x7fffffffu) != 0u); // NaN counts as true
}

@compute @workgroup_size(WG)
fn where_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        where_select_at(i);
    }
}

fn fill_at(i: u32) {
    out0[i] = p1.a;
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p1.n) {
            break;
        }
        fill_at(i);
    }
}
