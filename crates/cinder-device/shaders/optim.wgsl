// Fused optimizer updates: one dispatch per parameter tensor per step updates the parameter
// and its optimizer state in place (they are bound read_write). Formulas follow PyTorch's
// documentation of torch.optim (SGD, Adam, AdamW, RMSprop, Adagrad). Host-computed scalars
// (learning rate, bias corrections, the step's flags) travel in the immediates, so a step
// creates no pipeline and reads nothing back.
//
// Binding layout: in0 = grad (read); out1 = param; out2.. = state buffers, per entry point.
// When FIRST is set in `flags` the state buffers are not read (they may hold stale pooled
// data) and are taken as their initial values instead.

override WG: u32 = 256u;

const FIRST: u32 = 1u;       // first step: state buffers hold no data yet
const NESTEROV: u32 = 2u;    // SGD: Nesterov momentum
const DECOUPLED: u32 = 4u;   // Adam: AdamW's decoupled weight decay
const MAXIMIZE: u32 = 8u;    // ascend instead of descend (negate the gradient)

// One parameter block for every entry point; the meaning of a..f depends on the optimizer
// (see the entry points).
struct P {
    n: u32,
    flags: u32,
    lr: f32,
    wd: f32,
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
}

var<immediate> p: P;

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> s2: array<f32>;
@group(0) @binding(3) var<storage, read_write> s3: array<f32>;
@group(0) @binding(4) var<storage, read_write> s4: array<f32>;

fn has(f: u32) -> bool {
    return (p.flags & f) != 0u;
}

fn load_grad(i: u32) -> f32 {
    return select(grad[i], -grad[i], has(MAXIMIZE));
}

// g + wd * x, the L2 term; none at all when wd is 0 (as PyTorch, so that an infinite
// parameter does not turn the gradient into NaN through 0 * inf).
fn l2(g: f32, x: f32) -> f32 {
    return select(g + p.wd * x, g, p.wd == 0.0);
}

// ---------------------------------------------------------------------------------------
// SGD. a = momentum, b = dampening.
//   g = grad + wd * p
//   buf = first ? g : momentum * buf + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g

fn sgd_plain_at(i: u32) {
    let x = param[i];
    let g = l2(load_grad(i), x);
    param[i] = x - p.lr * g;
}

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        sgd_plain_at(i);
    }
}

fn sgd_momentum_at(i: u32) {
    let x = param[i];
    var g = l2(load_grad(i), x);
    var buf = g;
    if (!has(FIRST)) {
        buf = p.a * s2[i] + (1.0 - p.b) * g;
    }
    s2[i] = buf;
    g = select(buf, g + p.a * buf, has(NESTEROV));
    param[i] = x - p.lr * g;
}

@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        sgd_momentum_at(i);
    }
}

// ---------------------------------------------------------------------------------------
// Adam / AdamW. a = beta1, b = beta2, c = eps, d = lr / (1 - beta1^t) (step size),
// e = sqrt(1 - beta2^t). s2 = exp_avg, s3 = exp_avg_sq, s4 = max_exp_avg_sq (amsgrad).
//   AdamW: p = p * (1 - lr * wd);  Adam: g = grad + wd * p
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   vmax = max(vmax, v) (amsgrad)
//   p = p - step_size * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)

struct AdamOut {
    x: f32,
    m: f32,
    v: f32,
}

fn adam_core(i: u32, m0: f32, v0: f32) -> AdamOut {
    var x = param[i];
    var g = load_grad(i);
    if (has(DECOUPLED)) {
        x = x * (1.0 - p.lr * p.wd);
    } else {
        g = l2(g, x);
    }
    let m = p.a * m0 + (1.0 - p.a) * g;
    let v = p.b * v0 + (1.0 - p.b) * g * g;
    return AdamOut(x, m, v);
}

fn adam_at(i: u32) {
    var m0 = 0.0;
    var v0 = 0.0;
    if (!has(FIRST)) {
        m0 = s2[i];
        v0 = s3[i];
    }
    let o = adam_core(i, m0, v0);
    s2[i] = o.m;
    s3[i] = o.v;
    param[i] = o.x - p.d * o.m / (sqrt(o.v) / p.e + p.c);
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adam_at(i);
    }
}

fn adam_amsgrad_at(i: u32) {
    var m0 = 0.0;
    var v0 = 0.0;
    var vmax0 = 0.0;
    if (!has(FIRST)) {
        m0 = s2[i];
        v0 = s3[i];
        vmax0 = s4[i];
    }
    let o = adam_core(i, m0, v0);
    let vmax = max(vmax0, o.v);
    s2[i] = o.m;
    s3[i] = o.v;
    s4[i] = vmax;
    param[i] = o.x - p.d * o.m / (sqrt(vmax) / p.e + p.c);
}

@compute @workgroup_size(WG)
fn adam_amsgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adam_amsgrad_at(i);
    }
}

// ---------------------------------------------------------------------------------------
// RMSprop. a = alpha, b = eps, c = momentum. s2 = square_avg, then (per entry point)
// grad_avg (centered) and/or momentum_buffer. State starts at zero (PyTorch).
//   g = grad + wd * p
//   v = alpha v + (1 - alpha) g^2
//   centered: ga = alpha ga + (1 - alpha) g;  denom = sqrt(v - ga^2) + eps
//   else denom = sqrt(v) + eps
//   momentum > 0: buf = momentum buf + g / denom;  p = p - lr buf
//   else p = p - lr g / denom

struct RmsOut {
    x: f32,
    g: f32,
    v: f32,
}

fn rms_core(i: u32, v0: f32) -> RmsOut {
    let x = param[i];
    let g = l2(load_grad(i), x);
    let v = p.a * v0 + (1.0 - p.a) * g * g;
    return RmsOut(x, g, v);
}

fn first_or(v: f32) -> f32 {
    return select(v, 0.0, has(FIRST));
}

fn rmsprop_at(i: u32) {
    let o = rms_core(i, first_or(s2[i]));
    s2[i] = o.v;
    param[i] = o.x - p.lr * o.g / (sqrt(o.v) + p.b);
}

@compute @workgroup_size(WG)
fn rmsprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        rmsprop_at(i);
    }
}

// s3 = momentum_buffer
fn rmsprop_momentum_at(i: u32) {
    let o = rms_core(i, first_or(s2[i]));
    s2[i] = o.v;
    let buf = p.c * first_or(s3[i]) + o.g / (sqrt(o.v) + p.b);
    s3[i] = buf;
    param[i] = o.x - p.lr * buf;
}

@compute @workgroup_size(WG)
fn rmsprop_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        rmsprop_momentum_at(i);
    }
}

// s3 = grad_avg
fn rmsprop_centered_at(i: u32) {
    let o = rms_core(i, first_or(s2[i]));
    s2[i] = o.v;
    let ga = p.a * first_or(s3[i]) + (1.0 - p.a) * o.g;
    s3[i] = ga;
    param[i] = o.x - p.lr * o.g / (sqrt(o.v - ga * ga) + p.b);
}

@compute @workgroup_size(WG)
fn rmsprop_centered(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        rmsprop_centered_at(i);
    }
}

// s3 = grad_avg, s4 = momentum_buffer
fn rmsprop_centered_momentum_at(i: u32) {
    let o = rms_core(i, first_or(s2[i]));
    s2[i] = o.v;
    let ga = p.a * first_or(s3[i]) + (1.0 - p.a) * o.g;
    s3[i] = ga;
    let buf = p.c * first_or(s4[i]) + o.g / (sqrt(o.v - ga * ga) + p.b);
    s4[i] = buf;
    param[i] = o.x - p.lr * buf;
}

@compute @workgroup_size(WG)
fn rmsprop_centered_momentum(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        rmsprop_centered_momentum_at(i);
    }
}

// ---------------------------------------------------------------------------------------
// Adagrad. a = eps, b = initial_accumulator_value; lr is the decayed clr =
// lr / (1 + (t - 1) lr_decay), computed on the host. s2 = sum.
//   g = grad + wd * p;  sum = sum + g^2;  p = p - clr g / (sqrt(sum) + eps)

fn adagrad_at(i: u32) {
    let x = param[i];
    let g = l2(load_grad(i), x);
    let s0 = select(s2[i], p.b, has(FIRST));
    let s = s0 + g * g;
    s2[i] = s;
    param[i] = x - p.lr * g / (sqrt(s) + p.a);
}

@compute @workgroup_size(WG)
fn adagrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = grid_index(wid, nwg, lid, WG);
    let stride = nwg.x * nwg.y * WG;
    for (var k = 0u; k < EPT; k++) {
        let i = t + k * stride;
        if (i >= p.n) {
            break;
        }
        adagrad_at(i);
    }
}

// ---------------------------------------------------------------------------------------
// Gradient clipping by norm (torch.nn.utils.clip_grad_norm_): one invocation turns the
// accumulated gradient norm into the total norm and the clipping coefficient, so nothing
// is read back. Own bindings (input 0, outputs 1-2).
//   c_acc:   sum over every gradient of |g|^p (finite p), or the largest |g| (p = inf); NaN
//            when some gradient holds a NaN (sums and maxima propagate it)
//   c_norm = acc^(1/p) (or acc for p = inf)
//   c_coef = clamp(max_norm / (norm + 1e-6), max = 1), NaN when the norm is NaN (PyTorch's
//            clamp propagates NaN, so every gradient becomes NaN)
// lr = max_norm, a = p, b = 1 / p; flags: CLIP_INF.

const CLIP_INF: u32 = 16u;

@group(0) @binding(0) var<storage, read> c_acc: array<f32>;
@group(0) @binding(1) var<storage, read_write> c_norm: array<f32>;
@group(0) @binding(2) var<storage, read_write> c_coef: array<f32>;

@compute @workgroup_size(1)
fn clip_norm_coef() {
    let acc = c_acc[0];
    var norm = acc;
    if (has(CLIP_INF) || is_nan(acc) || is_inf(acc) || acc == 0.0 || p.a == 1.0) {
        norm = acc;
    } else if (p.a == 2.0) {
        norm = sqrt(acc);
    } else {
        norm = pow(acc, p.b);
    }
    c_norm[0] = norm;
    let coef = p.lr / (norm + 1e-6);
    c_coef[0] = select(min(coef, 1.0), coef, is_nan(coef));
}
