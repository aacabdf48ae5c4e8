// Prepended by the host to every shader family (kernel::Kernel::source): helpers that WGSL,
// having no includes, would otherwise repeat in every file.

// Linear invocation index of a 1-D kernel dispatched with kernel::grid_1d, which folds more
// than 65535 workgroups into a 2-D grid; `wg` is the workgroup size. Callers guard the
// overhang.
fn grid_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg + lid;
}

// Elements each invocation of a 1-D elementwise-style kernel handles, at a stride of the
// whole grid (so neighbouring invocations touch neighbouring elements on every pass). Must
// equal kernel::ELEMS_PER_INVOCATION. On lavapipe the cost is mostly per invocation: 8
// elements each made add_scalar over 1.25M elements 3.3x faster than 1.
const EPT: u32 = 8u;

// NaN tests and NaN-propagating extrema (PyTorch's semantics), decided on the bits so that
// no compiler assumption of NaN-free floats can fold them away. WGSL's own max/min and
// ordered comparisons drop NaN.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_inf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn max_nan(a: f32, b: f32) -> f32 {
    return select(max(a, b), a + b, is_nan(a) || is_nan(b));
}

fn min_nan(a: f32, b: f32) -> f32 {
    return select(min(a, b), a + b, is_nan(a) || is_nan(b));
}

// min(max(x, lo), hi), NaN when any of the three is NaN.
fn clamp_nan(x: f32, lo: f32, hi: f32) -> f32 {
    return select(min(max(x, lo), hi), x + lo + hi, is_nan(x) || is_nan(lo) || is_nan(hi));
}

// Sigmoid and tanh that stay finite for any finite input (exp of a non-positive number
// only), shared by the elementwise ops and the recurrent gates.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}
