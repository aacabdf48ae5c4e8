//! Fuzz-style robustness test: every public op of the device tensor, the autograd `Tensor`,
//! the layers' constructors and forwards and the losses, called thousands of times with
//! generated malformed arguments (zero, one, huge and near-`usize::MAX` sizes, products that
//! overflow, axes out of range, mismatched ranks and shapes, NaN and infinite parameters,
//! wrong dtypes), each call inside `catch_unwind`.
//!
//! It asserts that
//! - no call panics (in this debug test build, so an unchecked size overflow would panic);
//! - no call whose sizes overflow, or whose result could not be a tensor (more than 2^32 - 1
//!   elements), is accepted;
//! - no call makes the device report a GPU error (host checks let nothing bad through);
//! - a control set of valid calls gives the right values before, during and after.
//!
//! The run is seeded (`CINDER_FUZZ_SEED`, default below) and its length is
//! `CINDER_FUZZ_CASES`; both are printed with the counts, so a failure reproduces with the
//! same two values. The device it uses has a 32 MiB memory limit, so no call allocates much.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use cinder::device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder::device::ops::pool::Pool2dParams;
use cinder::device::{
    AdagradStep, AdamStep, BinaryOp, DeviceOptions, DeviceTensor, MatmulKernel, RmspropStep,
    SgdStep, UnaryOp,
};
use cinder::nn::layers::{
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm, BatchNormConfig, Conv2d,
    Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout, Elu, Embedding, Flatten, Gelu,
    GroupNorm, GroupNormConfig, Hardsigmoid, Hardswish, Hardtanh, LayerNorm, LayerNormConfig,
    LeakyRelu, Linear, MaxPool2d, Mish, PRelu, Relu, Relu6, RmsNorm, RmsNormConfig, Sigmoid, Silu,
    Softplus, Tanh, group_norm, layer_norm, rms_norm,
};
use cinder::nn::loss::{
    self, CrossEntropy, GanLoss, KlReduction, Nll, Penalty, Reduction, TripletMargin,
};
use cinder::prelude::*;

const DEFAULT_SEED: u64 = 0x5EED_C1DE_2024;
const DEFAULT_CASES: usize = 100_000;
/// Control checks also run after every this many fuzz calls.
const CONTROL_EVERY: usize = 10_000;
const MEMORY_LIMIT: u64 = 32 << 20;
/// Failures listed at most, per kind.
const SHOW: usize = 20;

// ---------------------------------------------------------------------------------------
// A seeded generator (SplitMix64) and the values it draws.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// A size: mostly small, sometimes a power-of-two edge, sometimes huge.
    fn size(&mut self) -> usize {
        match self.below(100) {
            0..60 => self.below(6),
            60..75 => self.pick(&[7, 8, 16, 31, 64, 255, 256, 257]),
            _ => self.pick(&[
                65_535,
                65_536,
                1 << 24,
                1 << 31,
                u32::MAX as usize - 1,
                u32::MAX as usize,
                u32::MAX as usize + 1,
                1 << 40,
                1 << 62,
                (1 << 62) + 1,
                usize::MAX / 2,
                usize::MAX - 1,
                usize::MAX,
            ]),
        }
    }
    /// A small size (kernels, windows, counts that loops run over).
    fn small(&mut self) -> usize {
        self.below(6)
    }
    /// An axis: mostly within a few of the ranks used, sometimes extreme.
    fn axis(&mut self) -> isize {
        match self.below(10) {
            0 => self.pick(&[isize::MIN, isize::MIN + 1, isize::MAX, -100, 100]),
            _ => self.below(13) as isize - 6,
        }
    }
    /// A float parameter, edge values included.
    fn f(&mut self) -> f32 {
        self.pick(&[
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            3.0,
            1e-3,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::EPSILON,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ])
    }
    fn shape(&mut self) -> Vec<usize> {
        let rank = match self.below(10) {
            0..8 => self.below(5),
            _ => 5 + self.below(5),
        };
        let s: Vec<usize> = (0..rank).map(|_| self.size()).collect();
        // Keep valid shapes small: a valid shape of more than 2^16 elements would allocate
        // and run for real. Invalid ones (that no tensor can have) stay as drawn.
        if !invalid_shape(&s) && s.iter().map(|&d| d as u128).product::<u128>() > 1 << 16 {
            return (0..rank).map(|_| self.small()).collect();
        }
        s
    }
    fn pair(&mut self) -> (usize, usize) {
        (self.size(), self.size())
    }
    fn seed(&mut self) -> u64 {
        self.pick(&[0, 1, u64::MAX, u64::MAX - 1, 1 << 63]) ^ (self.next() & 0xFF)
    }
}

/// True when no tensor can have `shape`: its non-zero dimensions multiply past 2^32 - 1
/// (so its size, a dimension or a stride does not fit the kernels' 32-bit integers).
fn invalid_shape(shape: &[usize]) -> bool {
    let mut p: u128 = 1;
    for &d in shape.iter().filter(|&&d| d != 0) {
        p = p.saturating_mul(d as u128);
    }
    p > u32::MAX as u128
}

/// Product of sizes in u128 (saturating), for predicting output sizes.
fn prod(xs: &[usize]) -> u128 {
    xs.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128))
}

// ---------------------------------------------------------------------------------------
// Running calls and counting what they did.

#[derive(Default)]
struct Stats {
    calls: usize,
    oks: usize,
    errors: usize,
    panics: Vec<String>,
    gpu_errors: Vec<String>,
    accepted: Vec<String>,
    controls: usize,
    names: std::collections::BTreeSet<&'static str>,
    /// Distinct places where caught panics happened, with the first call that hit each.
    panic_sites: std::collections::BTreeMap<String, (usize, String)>,
    /// Per op: (calls that returned Ok, calls that returned Err).
    outcomes: std::collections::BTreeMap<&'static str, (usize, usize)>,
    /// With `CINDER_FUZZ_TRACE=1`: the device, to print and sync after every call.
    trace: Option<Device>,
}

thread_local! {
    /// Where the last caught panic happened (filled by the panic hook).
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
    /// True while a fuzzed call runs (its panics are caught and counted, not printed).
    static IN_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Stats {
    /// Runs one call. `must_fail`: its arguments cannot be valid (a size that overflows or
    /// passes 2^32 - 1 elements), so `Ok` is a failure of the test. Returns the value.
    fn run<T>(
        &mut self,
        name: &'static str,
        args: String,
        must_fail: bool,
        f: impl FnOnce() -> Result<T>,
    ) -> Option<T> {
        self.calls += 1;
        self.names.insert(name);
        if self.trace.is_some() {
            eprintln!("call {}: {name}({args})", self.calls);
        }
        IN_CALL.with(|c| c.set(true));
        let r = catch_unwind(AssertUnwindSafe(f));
        IN_CALL.with(|c| c.set(false));
        if let Some(dev) = &self.trace {
            let _ = dev.sync();
        }
        match r {
            Ok(Ok(v)) => {
                self.oks += 1;
                self.outcomes.entry(name).or_default().0 += 1;
                if must_fail {
                    self.accepted.push(format!("{name}({args})"));
                }
                Some(v)
            }
            Ok(Err(e)) => {
                self.errors += 1;
                self.outcomes.entry(name).or_default().1 += 1;
                if matches!(e, Error::DeviceLost(_)) {
                    self.gpu_errors.push(format!("{name}({args}): {e}"));
                }
                None
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let at = LAST_PANIC.with(|p| p.borrow().clone());
                let call = format!("{name}({args}): {msg} at {at}");
                let site = self.panic_sites.entry(format!("{at}: {msg}")).or_default();
                site.0 += 1;
                if site.1.is_empty() {
                    site.1 = call.clone();
                }
                self.panics.push(call);
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The inputs: small real tensors of many shapes and both dtypes.

struct Inputs {
    dev: Device,
    f: Vec<DeviceTensor>,
    u: Vec<DeviceTensor>,
    /// The f32 inputs as autograd tensors, every other one requiring grad.
    t: Vec<Tensor>,
    /// The u32 inputs as autograd tensors.
    tu: Vec<Tensor>,
}

const F_SHAPES: &[&[usize]] = &[
    &[],
    &[0],
    &[1],
    &[3],
    &[5],
    &[2, 3],
    &[3, 2],
    &[3, 3],
    &[0, 3],
    &[3, 0],
    &[1, 3],
    &[3, 1],
    &[2, 3, 3],
    &[2, 3, 4],
    &[1, 1, 1, 1],
    &[2, 3, 4, 4],
    &[1, 2, 5, 5],
    &[2, 1, 3, 3],
    &[0, 2, 3, 3],
    &[2, 4, 1, 1],
    &[2, 1, 2, 1, 2, 1, 2, 1, 2],
    &[1, 2, 1, 2, 1, 2, 1, 2, 1],
];

const U_SHAPES: &[&[usize]] = &[
    &[],
    &[0],
    &[1],
    &[3],
    &[6],
    &[2, 1],
    &[2, 3],
    &[1, 3],
    &[2, 3, 4],
];

impl Inputs {
    fn new(dev: &Device, rng: &mut Rng) -> Result<Inputs> {
        let mut f = Vec::new();
        for s in F_SHAPES {
            let n: usize = s.iter().product();
            let vals: Vec<f32> = (0..n)
                .map(|i| match rng.below(20) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => 0.0,
                    _ => ((i as f32) * 0.37).sin() * 2.0,
                })
                .collect();
            f.push(DeviceTensor::from_slice(dev, &vals, s)?);
            // A finite copy too, so that value checks pass and deeper code runs.
            let clean: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.61).cos()).collect();
            f.push(DeviceTensor::from_slice(dev, &clean, s)?);
        }
        let mut u = Vec::new();
        for s in U_SHAPES {
            let n: usize = s.iter().product();
            let vals: Vec<u32> = (0..n)
                .map(|_| match rng.below(12) {
                    0 => u32::MAX,
                    1 => 7,
                    _ => rng.below(3) as u32,
                })
                .collect();
            u.push(DeviceTensor::from_slice(dev, &vals, s)?);
        }
        let t = f
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if i % 2 == 0 {
                    Tensor::parameter(d.clone())
                } else {
                    Ok(Tensor::from_raw(d.clone()))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let tu = u.iter().map(|d| Tensor::from_raw(d.clone())).collect();
        Ok(Inputs {
            dev: dev.clone(),
            f,
            u,
            t,
            tu,
        })
    }
    /// A device tensor: usually f32, sometimes u32 (a wrong dtype for most ops).
    fn any(&self, rng: &mut Rng) -> DeviceTensor {
        if rng.chance(15) {
            self.u[rng.below(self.u.len())].clone()
        } else {
            self.f[rng.below(self.f.len())].clone()
        }
    }
    fn idx(&self, rng: &mut Rng) -> DeviceTensor {
        if rng.chance(10) {
            self.f[rng.below(self.f.len())].clone()
        } else {
            self.u[rng.below(self.u.len())].clone()
        }
    }
    /// A device tensor of `x`'s shape half of the time.
    fn like(&self, rng: &mut Rng, x: &DeviceTensor) -> DeviceTensor {
        if rng.bool() {
            let same: Vec<&DeviceTensor> = self
                .f
                .iter()
                .filter(|t| t.shape() == x.shape() && t.dtype() == x.dtype())
                .collect();
            if !same.is_empty() {
                return same[rng.below(same.len())].clone();
            }
        }
        self.any(rng)
    }
    fn tany(&self, rng: &mut Rng) -> Tensor {
        if rng.chance(15) {
            self.tu[rng.below(self.tu.len())].clone()
        } else {
            self.t[rng.below(self.t.len())].clone()
        }
    }
    fn tidx(&self, rng: &mut Rng) -> Tensor {
        if rng.chance(10) {
            self.t[rng.below(self.t.len())].clone()
        } else {
            self.tu[rng.below(self.tu.len())].clone()
        }
    }
    fn tlike(&self, rng: &mut Rng, x: &Tensor) -> Tensor {
        if rng.bool() {
            let s = x.shape();
            let same: Vec<&Tensor> = self.t.iter().filter(|t| t.shape() == s).collect();
            if !same.is_empty() {
                return same[rng.below(same.len())].clone();
            }
        }
        self.tany(rng)
    }
}

fn conv_params(rng: &mut Rng) -> Conv2dParams {
    let mut p = Conv2dParams::default();
    if rng.chance(70) {
        p.stride = rng.pair();
    }
    if rng.chance(70) {
        p.padding = rng.pair();
    }
    if rng.chance(70) {
        p.dilation = rng.pair();
    }
    if rng.chance(50) {
        p.groups = rng.size();
    }
    p
}

/// A convolution's operands: usually consistent (a rank-4 input, a weight whose channels
/// and groups fit it, small options, one of them sometimes fuzzed), else any inputs and
/// fuzzed options. Returns the input, the weight, the options and an output padding.
fn conv_setup(
    rng: &mut Rng,
    inp: &Inputs,
    transposed: bool,
) -> (DeviceTensor, DeviceTensor, Conv2dParams, (usize, usize)) {
    if rng.chance(30) {
        let p = conv_params(rng);
        let op = if rng.bool() { rng.pair() } else { (0, 0) };
        return (inp.any(rng), inp.any(rng), p, op);
    }
    let rank4: Vec<&DeviceTensor> = inp.f.iter().filter(|t| t.rank() == 4).collect();
    let x = rank4[rng.below(rank4.len())].clone();
    let c = x.shape()[1];
    let g = if rng.chance(50) {
        1
    } else {
        rng.pick(&[c, c.max(1), 2, 3])
    };
    let per = 1 + rng.below(3);
    let k = (1 + rng.below(3), 1 + rng.below(3));
    let shape = if transposed {
        [c, per, k.0, k.1]
    } else {
        [g.max(1) * per, c / g.max(1), k.0, k.1]
    };
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
    let w = DeviceTensor::from_slice(&inp.dev, &vals, &shape).expect("a small weight");
    let mut p = Conv2dParams {
        stride: (1 + rng.below(2), 1 + rng.below(2)),
        padding: (rng.below(3), rng.below(3)),
        dilation: (1 + rng.below(2), 1 + rng.below(2)),
        groups: g,
    };
    match rng.below(8) {
        0 => p.stride = rng.pair(),
        1 => p.padding = rng.pair(),
        2 => p.dilation = rng.pair(),
        3 => p.groups = rng.size(),
        _ => {}
    }
    let op = if rng.chance(80) {
        (0, 0)
    } else {
        (rng.below(3), rng.below(3))
    };
    (x, w, p, op)
}

fn pool_params(rng: &mut Rng) -> Pool2dParams {
    if rng.chance(50) {
        // Sane options (as a layer would use), sometimes one of them fuzzed.
        let k = (1 + rng.below(3), 1 + rng.below(3));
        let mut p = Pool2dParams {
            kernel: k,
            stride: if rng.bool() {
                k
            } else {
                (1 + rng.below(2), 1 + rng.below(2))
            },
            padding: (rng.below(k.0 / 2 + 1), rng.below(k.1 / 2 + 1)),
            dilation: if rng.chance(70) { (1, 1) } else { (2, 1) },
            ceil_mode: rng.bool(),
        };
        match rng.below(8) {
            0 => p.stride = rng.pair(),
            1 => p.dilation = rng.pair(),
            2 => p.padding = (rng.small(), rng.small()),
            _ => {}
        }
        return p;
    }
    let big = rng.chance(20);
    let kernel = if big {
        rng.pair()
    } else {
        (rng.small(), rng.small())
    };
    // A huge window only without padding: over the inputs here (at most 5 wide) it never
    // fits, so no window of billions of cells is ever computed.
    let padding = if big || kernel.0 > 64 || kernel.1 > 64 {
        (0, 0)
    } else {
        (rng.small(), rng.small())
    };
    Pool2dParams {
        kernel,
        stride: if rng.bool() { rng.pair() } else { kernel },
        padding,
        dilation: if rng.chance(30) { rng.pair() } else { (1, 1) },
        ceil_mode: rng.bool(),
    }
}

fn pads(rng: &mut Rng) -> Vec<(usize, usize)> {
    (0..rng.below(6))
        .map(|_| {
            if rng.chance(70) {
                (rng.small(), rng.small())
            } else {
                (rng.size(), rng.size())
            }
        })
        .collect()
}

fn dims(rng: &mut Rng) -> Vec<usize> {
    (0..rng.below(10))
        .map(|_| {
            if rng.chance(90) {
                rng.below(10)
            } else {
                rng.size()
            }
        })
        .collect()
}

type TensorUnary = (&'static str, fn(&Tensor) -> Result<Tensor>);
type TensorBinary = (
    &'static str,
    fn(&Tensor, &Tensor) -> Result<Tensor>,
    fn(&Tensor, f32) -> Result<Tensor>,
);

// Tensor's public elementwise methods, from the op table both tensor types expand.
macro_rules! tensor_unary_table {
    (pub fn { $($(#[$m:meta])* $name:ident => $op:ident),* $(,)? } $bvis:vis fn { $($t:tt)* }) => {
        const TENSOR_UNARY: &[TensorUnary] = &[$((concat!("Tensor::", stringify!($name)), Tensor::$name)),*];
    };
}
cinder::device::unary_op_table!(tensor_unary_table, pub(crate));

macro_rules! tensor_binary_table {
    (pub fn { $($(#[$m:meta])* $name:ident, $sname:ident => $op:ident),* $(,)? } $bvis:vis fn { $($t:tt)* }) => {
        const TENSOR_BINARY: &[TensorBinary] =
            &[$((concat!("Tensor::", stringify!($name)), Tensor::$name, Tensor::$sname)),*];
    };
}
cinder::device::binary_op_table!(tensor_binary_table, pub(crate));

fn unary_op(rng: &mut Rng) -> UnaryOp {
    UnaryOp::ALL[rng.below(UnaryOp::ALL.len())]
}

fn binary_op(rng: &mut Rng) -> BinaryOp {
    BinaryOp::ALL[rng.below(BinaryOp::ALL.len())]
}

/// Output element count of a broadcast of `x` to `shape`-like requests, for `must_fail`.
fn too_big(elems: u128) -> bool {
    elems > u32::MAX as u128
}

// ---------------------------------------------------------------------------------------
// Device tensor ops.

fn device_case(rng: &mut Rng, inp: &Inputs, st: &mut Stats) {
    let dev = &inp.dev;
    let x = inp.any(rng);
    let xs = x.shape().to_vec();
    let ok = |r: Result<DeviceTensor>| r.map(|_| ());
    match rng.below(47) {
        0 => {
            let s = rng.shape();
            let bad = invalid_shape(&s);
            st.run("reshape", format!("{xs:?} -> {s:?}"), bad, || {
                ok(x.reshape(&s))
            });
        }
        1 => {
            let s = rng.shape();
            let v = rng.f();
            let bad = invalid_shape(&s);
            match rng.below(4) {
                0 => st.run("full", format!("{s:?}"), bad, || {
                    ok(DeviceTensor::full(dev, &s, v))
                }),
                1 => st.run("zeros", format!("{s:?}"), bad, || {
                    ok(DeviceTensor::zeros(dev, &s))
                }),
                2 => st.run("ones", format!("{s:?}"), bad, || {
                    ok(DeviceTensor::ones(dev, &s))
                }),
                _ => st.run("uninit", format!("{s:?}"), bad, || {
                    ok(DeviceTensor::uninit(dev, &s, DType::U32))
                }),
            };
        }
        2 => {
            let s = rng.shape();
            let n = if rng.bool() { 6 } else { rng.below(40) };
            let data = vec![1.0f32; n];
            let bad = invalid_shape(&s);
            st.run("from_slice", format!("{n} values as {s:?}"), bad, || {
                ok(DeviceTensor::from_slice(dev, &data, &s))
            });
            let data = vec![1u32; n];
            st.run("write", format!("{n} values into {xs:?}"), false, || {
                x.deep_clone()?.write(&data)
            });
        }
        3 => {
            st.run("to_vec", format!("{xs:?}"), false, || {
                x.to_vec::<f32>().map(|_| ())
            });
            st.run("to_scalar", format!("{xs:?}"), false, || {
                x.to_scalar().map(|_| ())
            });
            st.run(
                "deep_clone",
                format!("{xs:?}"),
                false,
                || ok(x.deep_clone()),
            );
            st.run(
                "zeros_like",
                format!("{xs:?}"),
                false,
                || ok(x.zeros_like()),
            );
            st.run("ones_like", format!("{xs:?}"), false, || ok(x.ones_like()));
        }
        4 => {
            let op = unary_op(rng);
            let (a, b) = (rng.f(), rng.f());
            st.run("unary", format!("{op:?} {xs:?} {a} {b}"), false, || {
                ok(x.unary(op, a, b))
            });
        }
        5 => {
            let op = binary_op(rng);
            let y = inp.like(rng, &x);
            let ys = y.shape().to_vec();
            st.run("binary", format!("{op:?} {xs:?} {ys:?}"), false, || {
                ok(x.binary(op, &y))
            });
        }
        6 => {
            let op = binary_op(rng);
            let s = rng.f();
            let first = rng.bool();
            st.run(
                "binary_scalar",
                format!("{op:?} {xs:?} {s} {first}"),
                false,
                || ok(x.binary_scalar(op, s, first)),
            );
        }
        7 => {
            let s = if rng.bool() {
                let mut s = vec![rng.small(); rng.below(3)];
                s.extend_from_slice(&xs);
                s
            } else {
                rng.shape()
            };
            let bad = invalid_shape(&s);
            st.run("broadcast_to", format!("{xs:?} -> {s:?}"), bad, || {
                ok(x.broadcast_to(&s))
            });
        }
        8 => {
            let (a, b) = (inp.like(rng, &x), inp.any(rng));
            st.run(
                "where_cond",
                format!("{xs:?} {:?} {:?}", a.shape(), b.shape()),
                false,
                || ok(DeviceTensor::where_cond(&x, &a, &b)),
            );
        }
        9 => {
            let (a, b) = (rng.f(), rng.f());
            let y = inp.any(rng);
            let ys = y.shape().to_vec();
            let args = format!("{xs:?} {a} {b} {ys:?}");
            st.run("rsub_scalar", args.clone(), false, || ok(x.rsub_scalar(a)));
            st.run("rdiv_scalar", args.clone(), false, || ok(x.rdiv_scalar(a)));
            st.run("leaky_relu", args.clone(), false, || ok(x.leaky_relu(a)));
            st.run("leaky_relu_grad", args.clone(), false, || {
                ok(x.leaky_relu_grad(a))
            });
            st.run("elu", args.clone(), false, || ok(x.elu(a)));
            st.run("elu_grad", args.clone(), false, || ok(x.elu_grad(a)));
            st.run("clamp", args.clone(), false, || ok(x.clamp(a, b)));
            st.run("powf", args.clone(), false, || ok(x.powf(a)));
            st.run("affine", args.clone(), false, || ok(x.affine(a, b)));
            st.run("relu_backward", args.clone(), false, || {
                ok(x.relu_backward(&y))
            });
            st.run("sigmoid_backward", args.clone(), false, || {
                ok(x.sigmoid_backward(&y))
            });
            st.run("tanh_backward", args, false, || ok(x.tanh_backward(&y)));
        }
        10 => {
            let args = format!("{xs:?}");
            type Op1 = fn(&DeviceTensor) -> Result<DeviceTensor>;
            let calls: [(&'static str, Op1); 12] = [
                ("neg", DeviceTensor::neg),
                ("exp", DeviceTensor::exp),
                ("log", DeviceTensor::log),
                ("rsqrt", DeviceTensor::rsqrt),
                ("relu", DeviceTensor::relu),
                ("gelu", DeviceTensor::gelu),
                ("isnan", DeviceTensor::isnan),
                ("sign", DeviceTensor::sign),
                ("recip", DeviceTensor::recip),
                ("relu_mask", DeviceTensor::relu_mask),
                ("nonfinite_mask", DeviceTensor::nonfinite_mask),
                ("deep_clone", DeviceTensor::deep_clone),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args, false, || ok(f(&x)));
        }
        11 => {
            let y = inp.like(rng, &x);
            let ys = y.shape().to_vec();
            let args = format!("{xs:?} {ys:?}");
            type Op2 = fn(&DeviceTensor, &DeviceTensor) -> Result<DeviceTensor>;
            let calls: [(&'static str, Op2); 8] = [
                ("add", DeviceTensor::add),
                ("sub", DeviceTensor::sub),
                ("mul", DeviceTensor::mul),
                ("div", DeviceTensor::div),
                ("pow", DeviceTensor::pow),
                ("maximum", DeviceTensor::maximum),
                ("ne", DeviceTensor::ne),
                ("ge", DeviceTensor::ge),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args, false, || ok(f(&x, &y)));
        }
        12 => {
            let d = dims(rng);
            st.run("permute", format!("{xs:?} {d:?}"), false, || {
                ok(x.permute(&d))
            });
        }
        13 => {
            let (a, b) = (rng.axis(), rng.axis());
            st.run("transpose", format!("{xs:?} {a} {b}"), false, || {
                ok(x.transpose(a, b))
            });
            st.run("t", format!("{xs:?}"), false, || ok(x.t()));
        }
        14 => {
            let a = rng.axis();
            let (s, l) = (rng.size(), rng.size());
            let bad = s.checked_add(l).is_none();
            st.run("narrow", format!("{xs:?} {a} {s} {l}"), bad, || {
                ok(x.narrow(a, s, l))
            });
            st.run("slice", format!("{xs:?} {a} {s} {l}"), false, || {
                ok(x.slice(a, s, l))
            });
        }
        15 => {
            let n = rng.below(4);
            let ts: Vec<DeviceTensor> = (0..n).map(|_| inp.like(rng, &x)).collect();
            let refs: Vec<&DeviceTensor> = ts.iter().collect();
            let a = rng.axis();
            let shapes: Vec<Vec<usize>> = ts.iter().map(|t| t.shape().to_vec()).collect();
            st.run("concat", format!("{shapes:?} {a}"), false, || {
                ok(DeviceTensor::concat(&refs, a))
            });
        }
        16 => {
            let p = pads(rng);
            let v = rng.f();
            let off = xs.len().saturating_sub(p.len());
            let grown: Vec<usize> = xs
                .iter()
                .enumerate()
                .map(|(d, &n)| {
                    d.checked_sub(off)
                        .and_then(|i| p.get(i))
                        .map_or(Some(n), |&(b, e)| {
                            n.checked_add(b).and_then(|v| v.checked_add(e))
                        })
                        .unwrap_or(usize::MAX)
                })
                .collect();
            let bad = p.len() <= xs.len() && invalid_shape(&grown);
            st.run("pad", format!("{xs:?} {p:?} {v}"), bad, || ok(x.pad(&p, v)));
        }
        17 => {
            let (a, b, c) = (rng.f(), rng.f(), rng.f());
            st.run("arange", format!("{a} {b} {c}"), false, || {
                ok(DeviceTensor::arange(dev, a, b, c))
            });
            let n = rng.size();
            let bad = n > u32::MAX as usize;
            st.run("arange_u32", format!("{n}"), bad, || {
                ok(DeviceTensor::arange_u32(dev, n))
            });
        }
        18 => {
            let (n, m) = (rng.size(), rng.size());
            let bad = invalid_shape(&[n, m]);
            st.run("eye", format!("{n} {m}"), bad, || {
                ok(DeviceTensor::eye(dev, n, m))
            });
        }
        19 => {
            let dt = if rng.bool() { DType::F32 } else { DType::U32 };
            st.run("to_dtype", format!("{xs:?} {dt:?}"), false, || {
                ok(x.to_dtype(dt))
            });
        }
        20 => {
            let (a, i) = (rng.axis(), inp.idx(rng));
            let is = i.shape().to_vec();
            st.run("gather", format!("{xs:?} {a} {is:?}"), false, || {
                ok(x.gather(a, &i))
            });
            st.run("index_select", format!("{xs:?} {a} {is:?}"), false, || {
                ok(x.index_select(a, &i))
            });
        }
        21 => {
            let (a, i) = (rng.axis(), inp.idx(rng));
            let is = i.shape().to_vec();
            let d = rng.size();
            let mut out = xs.clone();
            let bad = match cinder::device::shape::normalize_axis("t", a, &xs) {
                Ok(ax) if x.dtype() == DType::F32 && i.rank() == 1 && i.numel() == xs[ax] => {
                    out[ax] = d;
                    invalid_shape(&out)
                }
                _ => false,
            };
            st.run(
                "index_select_backward",
                format!("{xs:?} {a} {is:?} {d}"),
                bad,
                || ok(x.index_select_backward(a, &i, d)),
            );
        }
        22 => {
            let (a, i, s) = if rng.bool() && x.dtype() == DType::F32 {
                // A consistent index: zeros of x's shape, so only the axis is fuzzed.
                let z = DeviceTensor::zeros(dev, &xs).and_then(|z| z.to_dtype(DType::U32));
                match z {
                    Ok(z) => (rng.axis(), z, x.clone()),
                    Err(_) => return,
                }
            } else {
                (rng.axis(), inp.idx(rng), inp.any(rng))
            };
            let args = format!("{xs:?} {a} {:?} {:?}", i.shape(), s.shape());
            st.run("scatter_add", args, false, || ok(x.scatter_add(a, &i, &s)));
        }
        23 => {
            let c = rng.size();
            let bad = x.dtype() == DType::U32 && c > 0 && too_big(prod(&xs) * c as u128);
            let bad = bad || (x.dtype() == DType::U32 && c > u32::MAX as usize);
            st.run("one_hot", format!("{xs:?} {c}"), bad, || ok(x.one_hot(c)));
        }
        24 => {
            let y = inp.any(rng);
            let (ta, tb) = (rng.bool(), rng.bool());
            let args = format!("{xs:?} {:?} {ta} {tb}", y.shape());
            let k = rng.pick(&[
                MatmulKernel::Auto,
                MatmulKernel::Naive,
                MatmulKernel::Blocked,
                MatmulKernel::Tiled,
            ]);
            st.run("matmul", args.clone(), false, || ok(x.matmul(&y)));
            st.run("matmul_t", args.clone(), false, || {
                ok(x.matmul_t(&y, ta, tb))
            });
            st.run("matmul_with", args, false, || {
                ok(x.matmul_with(&y, ta, tb, k))
            });
        }
        25..=28 => {
            let t = rng.bool();
            let (x, w, p, op) = conv_setup(rng, inp, t);
            let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
            let b = rng.chance(30).then(|| inp.any(rng));
            let args = format!("{xs:?} {ws:?} {p:?} {op:?}");
            let tp = ConvTranspose2dParams {
                stride: p.stride,
                padding: p.padding,
                output_padding: op,
                dilation: p.dilation,
                groups: p.groups,
            };
            let y = if t {
                st.run("conv_transpose2d", args.clone(), false, || {
                    x.conv_transpose2d(&w, b.as_ref(), &tp)
                })
            } else {
                st.run("conv2d", args.clone(), false, || {
                    x.conv2d(&w, b.as_ref(), &p)
                })
            };
            let g = match y {
                Some(y) if rng.chance(80) => y,
                _ => inp.any(rng),
            };
            let is = if rng.chance(80) {
                xs.clone()
            } else {
                rng.shape()
            };
            let wsh = if rng.chance(80) {
                ws.clone()
            } else {
                rng.shape()
            };
            let args = format!("{args} grad {:?} {is:?} {wsh:?}", g.shape());
            if t {
                st.run(
                    "conv_transpose2d_backward_input",
                    args.clone(),
                    false,
                    || {
                        ok(DeviceTensor::conv_transpose2d_backward_input(
                            &g, &w, &is, &tp,
                        ))
                    },
                );
                st.run("conv_transpose2d_backward_weight", args, false, || {
                    ok(DeviceTensor::conv_transpose2d_backward_weight(
                        &g, &x, &wsh, &tp,
                    ))
                });
            } else {
                st.run("conv2d_backward_input", args.clone(), false, || {
                    ok(DeviceTensor::conv2d_backward_input(&g, &w, &is, &p))
                });
                st.run("conv2d_backward_weight", args, false, || {
                    ok(DeviceTensor::conv2d_backward_weight(&g, &x, &wsh, &p))
                });
                st.run(
                    "conv2d_backward_bias",
                    format!("{:?}", g.shape()),
                    false,
                    || ok(DeviceTensor::conv2d_backward_bias(&g)),
                );
            }
        }
        29 => {
            let p = pool_params(rng);
            let args = format!("{xs:?} {p:?}");
            let r = st.run("max_pool2d", args.clone(), false, || x.max_pool2d(&p));
            let (g, i) = match r {
                Some((y, i)) if rng.bool() => (y, i),
                _ => (inp.any(rng), inp.idx(rng)),
            };
            let s = if rng.bool() { xs.clone() } else { rng.shape() };
            st.run(
                "max_pool2d_backward",
                format!("{args} {s:?}"),
                false,
                || ok(DeviceTensor::max_pool2d_backward(&g, &i, &s, &p)),
            );
        }
        30 => {
            let p = pool_params(rng);
            let cip = rng.bool();
            let d = rng.bool().then(|| rng.size());
            let args = format!("{xs:?} {p:?} {cip} {d:?}");
            let r = st.run("avg_pool2d", args.clone(), false, || {
                x.avg_pool2d(&p, cip, d)
            });
            let g = match r {
                Some(y) if rng.bool() => y,
                _ => inp.any(rng),
            };
            let s = if rng.bool() { xs.clone() } else { rng.shape() };
            st.run(
                "avg_pool2d_backward",
                format!("{args} {s:?}"),
                false,
                || ok(DeviceTensor::avg_pool2d_backward(&g, &s, &p, cip, d)),
            );
        }
        31 => {
            let o = if rng.chance(70) {
                (rng.small(), rng.small())
            } else {
                rng.pair()
            };
            let args = format!("{xs:?} {o:?}");
            let r = st.run("adaptive_avg_pool2d", args.clone(), false, || {
                x.adaptive_avg_pool2d(o)
            });
            let g = match r {
                Some(y) if rng.bool() => y,
                _ => inp.any(rng),
            };
            let s = if rng.bool() { xs.clone() } else { rng.shape() };
            st.run(
                "adaptive_avg_pool2d_backward",
                format!("{args} {s:?}"),
                false,
                || ok(DeviceTensor::adaptive_avg_pool2d_backward(&g, &s)),
            );
        }
        32 => {
            let o = if rng.chance(70) {
                (rng.small(), rng.small())
            } else {
                rng.pair()
            };
            let args = format!("{xs:?} {o:?}");
            let r = st.run("adaptive_max_pool2d", args.clone(), false, || {
                x.adaptive_max_pool2d(o)
            });
            let (g, i) = match r {
                Some((y, i)) if rng.bool() => (y, i),
                _ => (inp.any(rng), inp.idx(rng)),
            };
            let s = if rng.bool() { xs.clone() } else { rng.shape() };
            st.run(
                "adaptive_max_pool2d_backward",
                format!("{args} {s:?}"),
                false,
                || ok(DeviceTensor::adaptive_max_pool2d_backward(&g, &i, &s)),
            );
        }
        33 => {
            let s = rng.shape();
            let bad = invalid_shape(&s);
            let (a, b, sd, off) = (rng.f(), rng.f(), rng.seed(), rng.seed());
            let args = format!("{s:?} {a} {b} {sd} {off}");
            match rng.below(4) {
                0 => st.run("random_bits", args, bad, || {
                    ok(DeviceTensor::random_bits(dev, &s, sd, off))
                }),
                1 => st.run("rand_uniform", args, bad, || {
                    ok(DeviceTensor::rand_uniform(dev, &s, a, b, sd, off))
                }),
                2 => st.run("rand_normal", args, bad, || {
                    ok(DeviceTensor::rand_normal(dev, &s, a, b, sd, off))
                }),
                _ => st.run("rand_bernoulli", args, bad, || {
                    ok(DeviceTensor::rand_bernoulli(dev, &s, a, sd, off))
                }),
            };
        }
        34..=36 => {
            let a = rng.axis();
            let k = rng.bool();
            let args = format!("{xs:?} {a} {k}");
            type AxisOp = fn(&DeviceTensor, isize, bool) -> Result<DeviceTensor>;
            let calls: [(&'static str, AxisOp); 8] = [
                ("sum_axis", DeviceTensor::sum_axis),
                ("mean_axis", DeviceTensor::mean_axis),
                ("amax_axis", DeviceTensor::amax_axis),
                ("amin_axis", DeviceTensor::amin_axis),
                ("argmax_axis", DeviceTensor::argmax_axis),
                ("argmin_axis", DeviceTensor::argmin_axis),
                ("logsumexp_axis", DeviceTensor::logsumexp_axis),
                ("var_axis", |x, a, k| x.var_axis(a, true, k)),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args.clone(), false, || ok(f(&x, a, k)));
            st.run("max_axis", args.clone(), false, || {
                x.max_axis(a, k).map(|_| ())
            });
            st.run("min_axis", args, false, || x.min_axis(a, k).map(|_| ()));
        }
        37 => {
            let args = format!("{xs:?}");
            type AllOp = fn(&DeviceTensor) -> Result<DeviceTensor>;
            let calls: [(&'static str, AllOp); 8] = [
                ("sum_all", DeviceTensor::sum_all),
                ("mean_all", DeviceTensor::mean_all),
                ("max_all", DeviceTensor::max_all),
                ("min_all", DeviceTensor::min_all),
                ("argmax_all", DeviceTensor::argmax_all),
                ("argmin_all", DeviceTensor::argmin_all),
                ("logsumexp_all", DeviceTensor::logsumexp_all),
                ("var_all", |x| x.var_all(false)),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args, false, || ok(f(&x)));
        }
        38 => {
            let axes: Vec<isize> = (0..rng.below(5)).map(|_| rng.axis()).collect();
            let k = rng.bool();
            st.run("sum_axes", format!("{xs:?} {axes:?} {k}"), false, || {
                ok(x.sum_axes(&axes, k))
            });
            let s = if rng.bool() {
                xs.iter().map(|&d| if rng.bool() { 1 } else { d }).collect()
            } else {
                rng.shape()
            };
            st.run("sum_to_shape", format!("{xs:?} {s:?}"), false, || {
                ok(x.sum_to_shape(&s))
            });
        }
        39 => {
            let a = rng.axis();
            let y = inp.like(rng, &x);
            let args = format!("{xs:?} {a} {:?}", y.shape());
            st.run("softmax", args.clone(), false, || ok(x.softmax(a)));
            st.run("log_softmax", args.clone(), false, || ok(x.log_softmax(a)));
            st.run("softmax_backward", args.clone(), false, || {
                ok(x.softmax_backward(&y, a))
            });
            st.run("log_softmax_backward", args, false, || {
                ok(x.log_softmax_backward(&y, a))
            });
        }
        40 => {
            let args = format!("{xs:?}");
            st.run("cholesky", args.clone(), false, || x.cholesky().map(|_| ()));
            st.run("cholesky_checked", args.clone(), false, || {
                ok(x.cholesky_checked())
            });
            st.run("sym_eig", args.clone(), false, || x.sym_eig().map(|_| ()));
            st.run("orthonormalize", args.clone(), false, || {
                ok(x.orthonormalize())
            });
            st.run("diagonal", args.clone(), false, || ok(x.diagonal()));
            let lower = rng.bool();
            st.run("tri_inverse", args, false, || ok(x.tri_inverse(lower)));
        }
        41 => {
            let y = inp.any(rng);
            let (l, t) = (rng.bool(), rng.bool());
            let args = format!("{xs:?} {:?} {l} {t}", y.shape());
            st.run("tri_solve", args.clone(), false, || {
                ok(x.tri_solve(&y, l, t))
            });
            st.run("cholesky_solve", args, false, || ok(x.cholesky_solve(&y)));
        }
        42 => {
            let (lo, hi) = (rng.f(), rng.f());
            let args = format!("{xs:?} {lo} {hi}");
            st.run("check_range", args.clone(), false, || {
                x.check_range("fuzz", "in range", lo, hi)
            });
            st.run("check_min", args.clone(), false, || {
                x.check_min("fuzz", "min", lo)
            });
            st.run("check_finite", args, false, || x.check_finite("fuzz"));
        }
        _ => optim_case(rng, inp, st),
    }
}

/// The fused optimizer steps, in place: on fresh copies, so the inputs stay as they are.
fn optim_case(rng: &mut Rng, inp: &Inputs, st: &mut Stats) {
    let p = inp.any(rng);
    let fresh = |t: &DeviceTensor| t.deep_clone();
    let Ok(param) = fresh(&p) else { return };
    // States of the parameter's shape most of the time, so that the step itself runs.
    let state = |rng: &mut Rng| {
        if rng.chance(80) {
            p.zeros_like()
        } else {
            inp.like(rng, &p).deep_clone()
        }
        .ok()
    };
    let g = if rng.chance(80) {
        p.clone()
    } else {
        inp.like(rng, &p)
    };
    let (s1, s2, s3) = (state(rng), state(rng), state(rng));
    let (s1, s2, s3) = (s1.as_ref(), s2.as_ref(), s3.as_ref());
    let step = rng.pick(&[0u64, 1, 2, 1000, u64::MAX]);
    let args = format!("{:?} {:?} step {step}", p.shape(), g.shape());
    // Hyperparameters: each a sane value most of the time, else an edge value.
    let h = |rng: &mut Rng, sane: f32| if rng.chance(75) { sane } else { rng.f() };
    let (a, b, c, d, e) = (
        h(rng, 0.01),
        h(rng, 0.9),
        h(rng, 0.99),
        h(rng, 1e-8),
        h(rng, 0.0),
    );
    match rng.below(5) {
        0 => {
            let h = SgdStep {
                lr: a,
                momentum: if rng.bool() { 0.0 } else { b },
                dampening: c,
                weight_decay: d,
                nesterov: rng.bool(),
                maximize: rng.bool(),
                step,
            };
            st.run("sgd_step_", format!("{args} {h:?}"), false, || {
                param.sgd_step_(&g, if rng.bool() { s1 } else { None }, &h)
            });
        }
        1 => {
            let h = AdamStep {
                lr: a,
                beta1: if rng.bool() { 0.9 } else { b },
                beta2: if rng.bool() { 0.999 } else { c },
                eps: d,
                weight_decay: e,
                decoupled: rng.bool(),
                maximize: rng.bool(),
                step,
            };
            let (m, v) = (s1.cloned(), s2.cloned());
            let (Some(m), Some(v)) = (m, v) else { return };
            st.run("adam_step_", format!("{args} {h:?}"), false, || {
                param.adam_step_(&g, &m, &v, if rng.bool() { s3 } else { None }, &h)
            });
        }
        2 => {
            let h = RmspropStep {
                lr: a,
                alpha: b,
                eps: c,
                weight_decay: d,
                momentum: e,
                maximize: rng.bool(),
                step,
            };
            let Some(v) = s1.cloned() else { return };
            st.run("rmsprop_step_", format!("{args} {h:?}"), false, || {
                param.rmsprop_step_(
                    &g,
                    &v,
                    if rng.bool() { s2 } else { None },
                    if rng.bool() { s3 } else { None },
                    &h,
                )
            });
        }
        3 => {
            let h = AdagradStep {
                lr: a,
                lr_decay: b,
                weight_decay: c,
                initial_accumulator_value: d,
                eps: e,
                maximize: rng.bool(),
                step,
            };
            let Some(sum) = s1.cloned() else { return };
            st.run("adagrad_step_", format!("{args} {h:?}"), false, || {
                param.adagrad_step_(&g, &sum, &h)
            });
        }
        _ => {
            st.run(
                "clip_norm_coef",
                format!("{:?} {a} {b}", p.shape()),
                false,
                || DeviceTensor::clip_norm_coef(&p, a, b).map(|_| ()),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Autograd `Tensor` ops; a result that requires grad is often run backward too.

fn backward(rng: &mut Rng, st: &mut Stats, name: &'static str, y: Option<Tensor>) {
    let Some(y) = y else { return };
    if !y.requires_grad() || !rng.chance(60) {
        return;
    }
    let create = rng.chance(20);
    st.run(name, format!("backward of {:?}", y.shape()), false, || {
        let l = y.sum_all()?;
        if create {
            let ins: Vec<Tensor> = Vec::new();
            let _ = ins;
            l.backward_with(
                None,
                cinder::autograd::BackwardOptions {
                    retain_graph: true,
                    create_graph: true,
                },
            )
        } else {
            l.backward()
        }
    });
}

fn tensor_case(rng: &mut Rng, inp: &Inputs, st: &mut Stats) {
    let dev = &inp.dev;
    let x = inp.tany(rng);
    let xs = x.shape();
    let y = match rng.below(38) {
        0 => {
            let s = rng.shape();
            let bad = invalid_shape(&s);
            st.run("Tensor::reshape", format!("{xs:?} {s:?}"), bad, || {
                x.reshape(&s)
            })
        }
        1 => {
            let a = if rng.chance(80) {
                rng.below(6)
            } else {
                rng.size()
            };
            st.run("Tensor::flatten_from", format!("{xs:?} {a}"), false, || {
                x.flatten_from(a)
            })
        }
        2 => {
            let d = dims(rng);
            st.run("Tensor::permute", format!("{xs:?} {d:?}"), false, || {
                x.permute(&d)
            })
        }
        3 => {
            let (a, b) = (rng.axis(), rng.axis());
            st.run("Tensor::t", format!("{xs:?}"), false, || x.t());
            st.run(
                "Tensor::transpose",
                format!("{xs:?} {a} {b}"),
                false,
                || x.transpose(a, b),
            )
        }
        4 => {
            let a = rng.axis();
            let (s, l) = (rng.size(), rng.size());
            st.run(
                "Tensor::slice",
                format!("{xs:?} {a} {s} {l}"),
                false,
                || x.slice(a, s, l),
            );
            st.run(
                "Tensor::narrow",
                format!("{xs:?} {a} {s} {l}"),
                false,
                || x.narrow(a, s, l),
            )
        }
        5 => {
            let ts: Vec<Tensor> = (0..rng.below(4)).map(|_| inp.tlike(rng, &x)).collect();
            let refs: Vec<&Tensor> = ts.iter().collect();
            let a = rng.axis();
            st.run(
                "Tensor::concat",
                format!("{} tensors {a}", ts.len()),
                false,
                || Tensor::concat(&refs, a),
            )
        }
        6 => {
            let p = pads(rng);
            let v = rng.f();
            st.run("Tensor::pad", format!("{xs:?} {p:?} {v}"), false, || {
                x.pad(&p, v)
            })
        }
        7 => {
            let (a, b, c) = (rng.f(), rng.f(), rng.f());
            st.run("Tensor::arange", format!("{a} {b} {c}"), false, || {
                Tensor::arange(dev, a, b, c)
            });
            let n = rng.size();
            st.run(
                "Tensor::arange_u32",
                format!("{n}"),
                n > u32::MAX as usize,
                || Tensor::arange_u32(dev, n),
            );
            let (n, m) = (rng.size(), rng.size());
            st.run(
                "Tensor::eye",
                format!("{n} {m}"),
                invalid_shape(&[n, m]),
                || Tensor::eye(dev, n, m),
            )
        }
        8 => {
            let s = rng.shape();
            let bad = invalid_shape(&s);
            let v = rng.f();
            st.run("Tensor::full", format!("{s:?}"), bad, || {
                Tensor::full(dev, &s, v)
            });
            st.run("Tensor::zeros", format!("{s:?}"), bad, || {
                Tensor::zeros(dev, &s)
            });
            st.run("Tensor::ones", format!("{s:?}"), bad, || {
                Tensor::ones(dev, &s)
            });
            let data = vec![0.5f32; rng.below(30)];
            st.run("Tensor::from_slice", format!("{s:?}"), bad, || {
                Tensor::from_slice(dev, &data, &s)
            });
            st.run("Tensor::scalar", format!("{v}"), false, || {
                Tensor::scalar(dev, v)
            })
        }
        9 => {
            let dt = if rng.bool() { DType::F32 } else { DType::U32 };
            st.run("Tensor::to_dtype", format!("{xs:?}"), false, || {
                x.to_dtype(dt)
            });
            st.run("Tensor::zeros_like", format!("{xs:?}"), false, || {
                x.zeros_like()
            });
            st.run("Tensor::ones_like", format!("{xs:?}"), false, || {
                x.ones_like()
            });
            st.run("Tensor::item", format!("{xs:?}"), false, || {
                x.item().map(|_| ())
            });
            st.run("Tensor::to_vec", format!("{xs:?}"), false, || {
                x.to_vec::<u32>().map(|_| ())
            });
            st.run("Tensor::deep_clone", format!("{xs:?}"), false, || {
                x.deep_clone()
            })
        }
        10 | 11 => {
            let (name, f) = TENSOR_UNARY[rng.below(TENSOR_UNARY.len())];
            st.run(name, format!("{xs:?}"), false, || f(&x))
        }
        12 | 13 => {
            let (name, f, _) = TENSOR_BINARY[rng.below(TENSOR_BINARY.len())];
            let z = inp.tlike(rng, &x);
            st.run(name, format!("{xs:?} {:?}", z.shape()), false, || f(&x, &z))
        }
        14 => {
            let (name, _, f) = TENSOR_BINARY[rng.below(TENSOR_BINARY.len())];
            let s = rng.f();
            st.run(name, format!("{xs:?} {s} (scalar)"), false, || f(&x, s))
        }
        15 => {
            let s = if rng.bool() {
                let mut s = vec![rng.small()];
                s.extend_from_slice(&xs);
                s
            } else {
                rng.shape()
            };
            st.run(
                "Tensor::broadcast_to",
                format!("{xs:?} {s:?}"),
                invalid_shape(&s),
                || x.broadcast_to(&s),
            );
            let s2: Vec<usize> = xs.iter().map(|&d| if rng.bool() { 1 } else { d }).collect();
            st.run(
                "Tensor::sum_to_shape",
                format!("{xs:?} {s2:?}"),
                false,
                || x.sum_to_shape(&s2),
            )
        }
        16 => {
            let (c, b) = (inp.tlike(rng, &x), inp.tany(rng));
            st.run("Tensor::where_cond", format!("{xs:?}"), false, || {
                Tensor::where_cond(&c, &x, &b)
            })
        }
        17 => {
            let (a, b) = (rng.f(), rng.f());
            let args = format!("{xs:?} {a} {b}");
            type Op2 = fn(&Tensor, f32, f32) -> Result<Tensor>;
            let calls: [(&'static str, Op2); 11] = [
                ("Tensor::clamp", |x, a, b| x.clamp(a, b)),
                ("Tensor::clamp_min", |x, a, _| x.clamp_min(a)),
                ("Tensor::clamp_max", |x, a, _| x.clamp_max(a)),
                ("Tensor::hardtanh", |x, a, b| x.hardtanh(a, b)),
                ("Tensor::leaky_relu", |x, a, _| x.leaky_relu(a)),
                ("Tensor::elu", |x, a, _| x.elu(a)),
                ("Tensor::powf", |x, a, _| x.powf(a)),
                ("Tensor::affine", |x, a, b| x.affine(a, b)),
                ("Tensor::rsub_scalar", |x, a, _| x.rsub_scalar(a)),
                ("Tensor::rdiv_scalar", |x, a, _| x.rdiv_scalar(a)),
                ("Tensor::rpow_scalar", |x, a, _| x.rpow_scalar(a)),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args, false, || f(&x, a, b))
        }
        18 => {
            let z = match rng.below(4) {
                // prelu's weights: one, or one per channel.
                0 => Tensor::ones(dev, &[1]).unwrap_or_else(|_| inp.tany(rng)),
                1 if xs.len() >= 2 => Tensor::ones(dev, &[xs[1]]).unwrap_or_else(|_| inp.tany(rng)),
                _ => inp.tlike(rng, &x),
            };
            let args = format!("{xs:?} {:?}", z.shape());
            type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
            let calls: [(&'static str, Op); 2] = [
                ("Tensor::prelu", Tensor::prelu),
                ("Tensor::matmul", Tensor::matmul),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, args, false, || f(&x, &z))
        }
        19 => {
            let z = inp.tany(rng);
            let (ta, tb) = (rng.bool(), rng.bool());
            st.run(
                "Tensor::matmul_t",
                format!("{xs:?} {:?} {ta} {tb}", z.shape()),
                false,
                || x.matmul_t(&z, ta, tb),
            )
        }
        20 => {
            let (a, i) = (rng.axis(), inp.tidx(rng));
            let args = format!("{xs:?} {a} {:?}", i.shape());
            st.run("Tensor::gather", args.clone(), false, || x.gather(a, &i));
            st.run("Tensor::index_select", args, false, || {
                x.index_select(a, &i)
            })
        }
        21 => {
            let consistent = rng.bool() && x.dtype() == DType::F32;
            let zeros = Tensor::zeros(dev, &xs).and_then(|z| z.to_dtype(DType::U32));
            let (a, i, s) = match zeros {
                Ok(z) if consistent => (rng.axis(), z, x.clone()),
                _ => (rng.axis(), inp.tidx(rng), inp.tany(rng)),
            };
            let d = rng.size();
            let args = format!("{xs:?} {a} {:?} {:?} {d}", i.shape(), s.shape());
            st.run("Tensor::index_select_backward", args.clone(), false, || {
                x.index_select_backward(a, &i, d)
            });
            st.run("Tensor::scatter_add", args, false, || {
                x.scatter_add(a, &i, &s)
            })
        }
        22 => {
            let c = rng.size();
            st.run("Tensor::one_hot", format!("{xs:?} {c}"), false, || {
                x.one_hot(c)
            })
        }
        23 | 24 => {
            let a = rng.axis();
            let k = rng.bool();
            let args = format!("{xs:?} {a} {k}");
            type AxisOp = fn(&Tensor, isize, bool) -> Result<Tensor>;
            let calls: [(&'static str, AxisOp); 9] = [
                ("Tensor::sum_axis", Tensor::sum_axis),
                ("Tensor::mean_axis", Tensor::mean_axis),
                ("Tensor::amax_axis", Tensor::amax_axis),
                ("Tensor::amin_axis", Tensor::amin_axis),
                ("Tensor::argmax_axis", Tensor::argmax_axis),
                ("Tensor::argmin_axis", Tensor::argmin_axis),
                ("Tensor::logsumexp_axis", Tensor::logsumexp_axis),
                ("Tensor::var_axis", |x, a, k| x.var_axis(a, k, k)),
                ("Tensor::max_axis", |x, a, k| Ok(x.max_axis(a, k)?.0)),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run("Tensor::min_axis", args.clone(), false, || {
                Ok(x.min_axis(a, k)?.0)
            });
            st.run(name, args, false, || f(&x, a, k))
        }
        25 => {
            type AllOp = fn(&Tensor) -> Result<Tensor>;
            let calls: [(&'static str, AllOp); 8] = [
                ("Tensor::sum_all", Tensor::sum_all),
                ("Tensor::mean_all", Tensor::mean_all),
                ("Tensor::max_all", Tensor::max_all),
                ("Tensor::min_all", Tensor::min_all),
                ("Tensor::argmax_all", Tensor::argmax_all),
                ("Tensor::argmin_all", Tensor::argmin_all),
                ("Tensor::logsumexp_all", Tensor::logsumexp_all),
                ("Tensor::var_all", |x| x.var_all(true)),
            ];
            let (name, f) = calls[rng.below(calls.len())];
            st.run(name, format!("{xs:?}"), false, || f(&x))
        }
        26 => {
            let axes: Vec<isize> = (0..rng.below(5)).map(|_| rng.axis()).collect();
            let k = rng.bool();
            st.run(
                "Tensor::sum_axes",
                format!("{xs:?} {axes:?}"),
                false,
                || x.sum_axes(&axes, k),
            )
        }
        27 => {
            let a = rng.axis();
            let args = format!("{xs:?} {a}");
            let y = st.run("Tensor::softmax", args.clone(), false, || x.softmax(a));
            backward(rng, st, "backward (softmax)", y);
            st.run("Tensor::log_softmax", args, false, || x.log_softmax(a))
        }
        28 | 29 => {
            let t = rng.bool();
            let (xd, wd, p, op) = conv_setup(rng, inp, t);
            // The input and the weight both require grad, so the backward rules (and
            // their own rules, with create_graph) run too.
            let (x, w) = match (Tensor::parameter(xd.clone()), Tensor::parameter(wd.clone())) {
                (Ok(x), Ok(w)) => (x, w),
                _ => (Tensor::from_raw(xd), Tensor::from_raw(wd)),
            };
            let (xs, ws) = (x.shape(), w.shape());
            let b = rng.chance(30).then(|| inp.tany(rng));
            let tp = ConvTranspose2dParams {
                stride: p.stride,
                padding: p.padding,
                output_padding: op,
                dilation: p.dilation,
                groups: p.groups,
            };
            let args = format!("{xs:?} {ws:?} {p:?} {op:?}");
            let y = if t {
                st.run("Tensor::conv_transpose2d", args.clone(), false, || {
                    x.conv_transpose2d(&w, b.as_ref(), &tp)
                })
            } else {
                st.run("Tensor::conv2d", args.clone(), false, || {
                    x.conv2d(&w, b.as_ref(), &p)
                })
            };
            let g = match &y {
                Some(y) if rng.chance(70) => y.detach().requires_grad_(true).unwrap_or(y.clone()),
                _ => inp.tany(rng),
            };
            // The backward rules through grad() with create_graph, so the gradients are
            // graphs whose own backward runs below.
            let args = format!("{args} grad {:?}", g.shape());
            let grads = y.as_ref().and_then(|y| {
                st.run("grad (conv)", args, false, || {
                    let l = y.mul(&g)?.sum_all()?;
                    grad(&[&l], &[&x, &w], true)
                })
            });
            let (gi, gw) = match grads {
                Some(v) if v.len() == 2 => (Some(v[0].clone()), Some(v[1].clone())),
                _ => (None, None),
            };
            backward(rng, st, "backward (conv input grad)", gi);
            backward(rng, st, "backward (conv weight grad)", gw);
            y
        }
        30 => {
            let p = pool_params(rng);
            let args = format!("{xs:?} {p:?}");
            let r = st.run("Tensor::max_pool2d", args.clone(), false, || {
                x.max_pool2d(&p)
            });
            // The backward op runs through the rule (with create_graph at times).
            r.map(|(y, _)| y)
        }
        31 => {
            let p = pool_params(rng);
            let (cip, d) = (rng.bool(), rng.bool().then(|| rng.size()));
            let args = format!("{xs:?} {p:?} {cip} {d:?}");
            st.run("Tensor::avg_pool2d", args, false, || {
                x.avg_pool2d(&p, cip, d)
            })
        }
        32 => {
            let o = (rng.small(), rng.small());
            let args = format!("{xs:?} {o:?}");
            let ya = st.run("Tensor::adaptive_avg_pool2d", args.clone(), false, || {
                x.adaptive_avg_pool2d(o)
            });
            backward(rng, st, "backward (adaptive_avg_pool2d)", ya);
            st.run("Tensor::adaptive_max_pool2d", args, false, || {
                x.adaptive_max_pool2d(o)
            })
            .map(|(y, _)| y)
        }
        33 => {
            let s = rng.shape();
            let bad = invalid_shape(&s);
            let (a, b, sd, off) = (rng.f(), rng.f(), rng.seed(), rng.seed());
            let args = format!("{s:?} {a} {b}");
            st.run("Tensor::random_bits", args.clone(), bad, || {
                Tensor::random_bits(dev, &s, sd, off)
            });
            st.run("Tensor::rand_uniform", args.clone(), bad, || {
                Tensor::rand_uniform(dev, &s, a, b, sd, off)
            });
            st.run("Tensor::rand_bernoulli", args.clone(), bad, || {
                Tensor::rand_bernoulli(dev, &s, a, sd, off)
            });
            st.run("Tensor::rand_normal", args, bad, || {
                Tensor::rand_normal(dev, &s, a, b, sd, off)
            })
        }
        34 => {
            let z = inp.tany(rng);
            st.run("Tensor::set_data", format!("{xs:?}"), false, || {
                let leaf = Tensor::from_raw(x.raw().deep_clone()?);
                leaf.set_data(&z)?;
                Ok(leaf)
            });
            st.run("Tensor::parameter", format!("{xs:?}"), false, || {
                Tensor::parameter(x.raw())
            });
            let on = rng.bool();
            st.run(
                "Tensor::requires_grad_",
                format!("{xs:?} {on}"),
                false,
                || x.detach().requires_grad_(on),
            )
        }
        35 => {
            let (o, g) = (inp.tany(rng), inp.tany(rng));
            let opts = cinder::autograd::BackwardOptions {
                retain_graph: rng.bool(),
                create_graph: rng.bool(),
            };
            let args = format!("{:?} {:?}", o.shape(), g.shape());
            st.run("Tensor::backward_with", args.clone(), false, || {
                o.backward_with(Some(&g), opts)
            });
            let ins = [inp.tany(rng)];
            st.run("grad", args, false, || {
                let y = x.mul(&x)?.sum_all()?;
                let r = cinder::grad(&[&y], &[&ins[0]], opts.create_graph)?;
                Ok(r.into_iter().next())
            });
            None
        }
        36 => {
            let z = inp.tlike(rng, &x);
            let args = format!("{xs:?} {:?}", z.shape());
            st.run("operators", args, false, || {
                let a = (&x + &z)?;
                let b = (&a - 2.0)?;
                let c = (&b * &z)?;
                let d = (1.0 / &c)?;
                (&d / &x)?.neg()
            })
        }
        _ => {
            // Small inputs only: gradcheck runs the function twice per element.
            let x = if x.numel() <= 6 {
                x
            } else {
                inp.t[rng.below(8)].clone()
            };
            let xs = x.shape();
            st.run("gradcheck", format!("{xs:?}"), false, || {
                let opts = cinder::autograd::GradcheckOptions::default();
                cinder::autograd::gradcheck(
                    std::slice::from_ref(&x),
                    |t| t[0].square()?.sum_all(),
                    &opts,
                )?;
                Ok(x.clone())
            })
        }
    };
    backward(rng, st, "backward", y);
}

// ---------------------------------------------------------------------------------------
// Layers (constructors on a fresh store each, then a forward) and losses.

/// An input for a layer: one that fits it (small batch) or any of the inputs.
fn layer_input(rng: &mut Rng, inp: &Inputs, fits: &[usize]) -> Tensor {
    if rng.chance(60)
        && !invalid_shape(fits)
        && prod(fits) <= 1 << 12
        && let Ok(t) = DeviceTensor::full(&inp.dev, fits, 0.25)
    {
        return Tensor::from_raw(t);
    }
    inp.tany(rng)
}

fn forward(
    rng: &mut Rng,
    inp: &Inputs,
    st: &mut Stats,
    name: &'static str,
    m: &dyn ModuleT,
    fits: &[usize],
) -> Option<Tensor> {
    let x = layer_input(rng, inp, fits);
    let train = rng.bool();
    st.run(
        name,
        format!("forward {:?} train {train}", x.shape()),
        false,
        || m.forward_t(&x, train),
    )
}

fn nn_case(rng: &mut Rng, inp: &Inputs, st: &mut Stats) {
    let dev = &inp.dev;
    let vs = VarStore::new(dev, rng.next());
    let path = vs.pp("layer");
    let n = 1 + rng.below(3);
    let y = match rng.below(24) {
        0 => {
            let (i, o, b) = (rng.size(), rng.size(), rng.bool());
            let bad = invalid_shape(&[o, i]);
            let m = st.run("Linear::new", format!("{i} {o}"), bad, || {
                Linear::new(&path, i, o, b)
            });
            m.and_then(|m| forward(rng, inp, st, "Linear::forward", &m, &[n, i]))
        }
        1 | 2 => {
            let (i, o) = (rng.size(), rng.size());
            let k = if rng.chance(80) {
                (1 + rng.small(), 1 + rng.small())
            } else {
                rng.pair()
            };
            let p = conv_params(rng);
            let cfg = Conv2dConfig {
                stride: p.stride,
                padding: p.padding,
                dilation: p.dilation,
                groups: p.groups,
                bias: rng.bool(),
            };
            let w = [o, i / p.groups.max(1), k.0, k.1];
            let bad = p.groups > 0 && invalid_shape(&w) && !w.contains(&0);
            let args = format!("{i} {o} {k:?} {cfg:?}");
            if rng.bool() {
                let m = st.run("Conv2d::new", args, bad, || {
                    Conv2d::new(&path, i, o, k, cfg)
                });
                m.and_then(|m| forward(rng, inp, st, "Conv2d::forward", &m, &[n, i, 5, 5]))
            } else {
                let cfg = ConvTranspose2dConfig {
                    stride: cfg.stride,
                    padding: cfg.padding,
                    output_padding: if rng.bool() { (0, 0) } else { rng.pair() },
                    dilation: cfg.dilation,
                    groups: cfg.groups,
                    bias: cfg.bias,
                };
                let m = st.run(
                    "ConvTranspose2d::new",
                    format!("{i} {o} {k:?} {cfg:?}"),
                    false,
                    || ConvTranspose2d::new(&path, i, o, k, cfg),
                );
                m.and_then(|m| forward(rng, inp, st, "ConvTranspose2d::forward", &m, &[n, i, 3, 3]))
            }
        }
        3 => {
            let (num, dim) = (rng.size(), rng.size());
            let bad = invalid_shape(&[num, dim]);
            let m = st.run("Embedding::new", format!("{num} {dim}"), bad, || {
                Embedding::new(&path, num, dim)
            });
            m.and_then(|m| {
                let ids = inp.tidx(rng);
                st.run(
                    "Embedding::forward",
                    format!("{:?}", ids.shape()),
                    false,
                    || m.forward(&ids),
                )
            })
        }
        4 => {
            let c = rng.size();
            let cfg = BatchNormConfig {
                eps: rng.f(),
                momentum: if rng.bool() { None } else { Some(rng.f()) },
                affine: rng.bool(),
                track_running_stats: rng.bool(),
            };
            let two = rng.bool();
            let args = format!("{c} {cfg:?} 2d {two}");
            // Without parameters or buffers the layer holds nothing of size c (as PyTorch).
            let bad = c > u32::MAX as usize && (cfg.affine || cfg.track_running_stats);
            let m = st.run("BatchNorm::new", args, bad, || {
                if two {
                    BatchNorm::new_2d(&path, c, cfg)
                } else {
                    BatchNorm::new_1d(&path, c, cfg)
                }
            });
            let fits = if two { vec![n, c, 2, 2] } else { vec![n, c] };
            m.and_then(|m| forward(rng, inp, st, "BatchNorm::forward", &m, &fits))
        }
        5 => {
            let s: Vec<usize> = (0..rng.below(4)).map(|_| rng.size()).collect();
            let cfg = LayerNormConfig {
                eps: rng.f(),
                elementwise_affine: rng.bool(),
                bias: rng.bool(),
            };
            let bad = invalid_shape(&s);
            let m = st.run("LayerNorm::new", format!("{s:?} {cfg:?}"), bad, || {
                LayerNorm::new(&path, &s, cfg)
            });
            let mut fits = vec![n];
            fits.extend_from_slice(&s);
            m.and_then(|m| forward(rng, inp, st, "LayerNorm::forward", &m, &fits))
        }
        6 => {
            let s: Vec<usize> = (0..rng.below(4)).map(|_| rng.size()).collect();
            let cfg = RmsNormConfig {
                eps: if rng.bool() { None } else { Some(rng.f()) },
                elementwise_affine: rng.bool(),
            };
            let bad = invalid_shape(&s);
            let m = st.run("RmsNorm::new", format!("{s:?} {cfg:?}"), bad, || {
                RmsNorm::new(&path, &s, cfg)
            });
            let mut fits = vec![n];
            fits.extend_from_slice(&s);
            m.and_then(|m| forward(rng, inp, st, "RmsNorm::forward", &m, &fits))
        }
        7 => {
            let (g, c) = (rng.size(), rng.size());
            let cfg = GroupNormConfig {
                eps: rng.f(),
                affine: rng.bool(),
            };
            let m = st.run("GroupNorm::new", format!("{g} {c} {cfg:?}"), false, || {
                GroupNorm::new(&path, g, c, cfg)
            });
            m.and_then(|m| forward(rng, inp, st, "GroupNorm::forward", &m, &[n, c, 3]))
        }
        8 => {
            let (c, v) = (rng.size(), rng.f());
            let m = st.run(
                "PRelu::new",
                format!("{c} {v}"),
                c > u32::MAX as usize,
                || PRelu::new(&path, c, v),
            );
            m.and_then(|m| forward(rng, inp, st, "PRelu::forward", &m, &[n, c]))
        }
        9 => {
            let p = rng.f();
            let m = st.run("Dropout::new", format!("{p}"), false, || {
                Dropout::new(p, rng.next())
            });
            m.and_then(|m| forward(rng, inp, st, "Dropout::forward", &m, &[n, 3]))
        }
        10 => {
            let (a, b) = (rng.f(), rng.f());
            let layers: Vec<(&'static str, Box<dyn ModuleT>)> = vec![
                ("Relu", Box::new(Relu)),
                ("LeakyRelu", Box::new(LeakyRelu(a))),
                ("Elu", Box::new(Elu(a))),
                ("Gelu", Box::new(Gelu::tanh())),
                ("Silu", Box::new(Silu)),
                ("Mish", Box::new(Mish)),
                (
                    "Hardtanh",
                    Box::new(Hardtanh {
                        min_val: a,
                        max_val: b,
                    }),
                ),
                ("Relu6", Box::new(Relu6)),
                ("Hardsigmoid", Box::new(Hardsigmoid)),
                ("Hardswish", Box::new(Hardswish)),
                ("Sigmoid", Box::new(Sigmoid)),
                ("Tanh", Box::new(Tanh)),
                ("Softplus", Box::new(Softplus(a))),
                ("Flatten", Box::new(Flatten)),
            ];
            let (name, m) = &layers[rng.below(layers.len())];
            let x = inp.tany(rng);
            st.run(name, format!("{:?} {a} {b}", x.shape()), false, || {
                m.forward_t(&x, false)
            })
        }
        11 => {
            let p = pool_params(rng);
            let (cip, d) = (rng.bool(), rng.bool().then(|| rng.size()));
            let args = format!("{p:?} {cip} {d:?}");
            let m = MaxPool2d::new(p.kernel)
                .stride(p.stride)
                .padding(p.padding)
                .dilation(p.dilation)
                .ceil_mode(p.ceil_mode);
            let a = AvgPool2d::new(p.kernel)
                .stride(p.stride)
                .padding(p.padding)
                .ceil_mode(p.ceil_mode)
                .count_include_pad(cip)
                .divisor_override(d);
            let x = inp.tany(rng);
            st.run(
                "MaxPool2d::forward_with_indices",
                args.clone(),
                false,
                || m.forward_with_indices(&x),
            );
            st.run("AvgPool2d::forward", args, false, || a.forward(&x))
        }
        12 => {
            let o = (
                rng.bool().then(|| rng.small()),
                rng.bool().then(|| rng.small()),
            );
            let x = inp.tany(rng);
            let args = format!("{o:?} {:?}", x.shape());
            let (am, aa) = (
                AdaptiveMaxPool2d::with_sizes(o.0, o.1),
                AdaptiveAvgPool2d::with_sizes(o.0, o.1),
            );
            st.run("AdaptiveMaxPool2d::forward", args.clone(), false, || {
                am.forward(&x)
            });
            st.run("AdaptiveAvgPool2d::forward", args, false, || aa.forward(&x))
        }
        13 => {
            let x = inp.tany(rng);
            let xs = x.shape();
            let s: Vec<usize> = if rng.bool() {
                // The trailing dimensions of the input, with weight and bias to match.
                xs[xs.len() - rng.below(xs.len() + 1)..].to_vec()
            } else {
                (0..rng.below(3)).map(|_| rng.size()).collect()
            };
            let (w, b) = if rng.bool() && !invalid_shape(&s) && prod(&s) <= 4096 {
                match (Tensor::ones(dev, &s), Tensor::zeros(dev, &s)) {
                    (Ok(w), Ok(b)) => (w, b),
                    _ => (inp.tany(rng), inp.tany(rng)),
                }
            } else {
                (inp.tany(rng), inp.tany(rng))
            };
            let (eps, g) = (rng.f(), rng.size());
            let args = format!("{:?} {s:?} {eps} {g}", x.shape());
            st.run("layer_norm", args.clone(), false, || {
                layer_norm(&x, &s, Some(&w), Some(&b), eps)
            });
            st.run("rms_norm", args.clone(), false, || {
                rms_norm(&x, &s, Some(&w), Some(eps))
            });
            st.run("group_norm", args, false, || {
                group_norm(&x, g, rng.bool().then_some(&w), None, eps)
            })
        }
        _ => loss_case(rng, inp, st),
    };
    backward(rng, st, "backward (nn)", y);
}

fn reduction(rng: &mut Rng) -> Reduction {
    rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None])
}

fn loss_case(rng: &mut Rng, inp: &Inputs, st: &mut Stats) -> Option<Tensor> {
    let a = inp.tany(rng);
    let b = inp.tlike(rng, &a);
    let c = inp.tany(rng);
    let r = reduction(rng);
    let (f, g) = (rng.f(), rng.f());
    let args = format!(
        "{:?} {:?} {:?} {r:?} {f} {g}",
        a.shape(),
        b.shape(),
        c.shape()
    );
    match rng.below(10) {
        0 => {
            st.run("mse", args.clone(), false, || loss::mse(&a, &b, r));
            st.run("l1", args.clone(), false, || loss::l1(&a, &b, r));
            st.run("huber", args.clone(), false, || loss::huber(&a, &b, f, r));
            st.run("smooth_l1", args, false, || loss::smooth_l1(&a, &b, f, r))
        }
        1 => {
            st.run("bce", args.clone(), false, || loss::bce(&a, &b, r));
            let pw = rng.bool().then_some(&c);
            st.run("bce_with_logits", args, false, || {
                loss::bce_with_logits(&a, &b, pw, r)
            })
        }
        2 | 3 => {
            let t = if rng.bool() { inp.tidx(rng) } else { b.clone() };
            let opts = CrossEntropy {
                weight: rng.bool().then(|| c.clone()),
                label_smoothing: if rng.bool() { 0.0 } else { f },
                reduction: r,
                ignore_index: rng.bool().then(|| rng.pick(&[0, 1, 255, u32::MAX])),
            };
            let nll = Nll {
                weight: opts.weight.clone(),
                reduction: r,
                ignore_index: opts.ignore_index,
            };
            let args = format!("{args} target {:?} {opts:?}", t.shape());
            st.run("nll", args.clone(), false, || loss::nll(&a, &t, &nll));
            st.run("cross_entropy", args, false, || {
                loss::cross_entropy(&a, &t, &opts)
            })
        }
        4 => {
            let full = rng.bool();
            st.run("gaussian_nll", args.clone(), false, || {
                loss::gaussian_nll(&a, &b, &c, full, f, r)
            });
            let kr = rng.pick(&[
                KlReduction::Mean,
                KlReduction::Sum,
                KlReduction::None,
                KlReduction::BatchMean,
            ]);
            let lt = rng.bool();
            st.run("kl_div", args.clone(), false, || {
                loss::kl_div(&a, &b, kr, lt)
            });
            st.run("kl_div_gaussian", args, false, || {
                loss::kl_div_gaussian(&a, &b, r)
            })
        }
        5 => {
            st.run("contrastive", args.clone(), false, || {
                loss::contrastive(&a, &b, &c, f, r)
            });
            st.run("cosine_embedding", args.clone(), false, || {
                loss::cosine_embedding(&a, &b, &c, f, r)
            });
            st.run("margin_ranking", args, false, || {
                loss::margin_ranking(&a, &b, &c, f, r)
            })
        }
        6 => {
            let opts = TripletMargin {
                margin: f,
                p: rng.pick(&[1.0, 2.0, 3.0, f32::INFINITY, g]),
                eps: g,
                swap: rng.bool(),
                reduction: r,
            };
            let n = inp.tlike(rng, &a);
            st.run("triplet_margin", format!("{args} {opts:?}"), false, || {
                loss::triplet_margin(&a, &b, &n, &opts)
            })
        }
        7 => {
            let k = rng.pick(&[
                GanLoss::Minimax,
                GanLoss::NonSaturating,
                GanLoss::Wgan,
                GanLoss::Hinge,
                GanLoss::Lsgan,
            ]);
            st.run("GanLoss::d_loss", format!("{k:?} {args}"), false, || {
                k.d_loss(&a, &b)
            });
            st.run("GanLoss::g_loss", format!("{k:?} {args}"), false, || {
                k.g_loss(&a)
            })
        }
        _ => {
            let kind = if rng.bool() {
                Penalty::WganGp
            } else {
                Penalty::Dragan { c: f }
            };
            let (sd, off) = (rng.seed(), rng.seed());
            st.run(
                "gradient_penalty",
                format!("{kind:?} {args}"),
                false,
                || {
                    loss::gradient_penalty(
                        |x| x.square()?.sum_axes(&[-1], false),
                        &a,
                        &b,
                        kind,
                        sd,
                        off,
                    )
                },
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shape and dispatch-size helpers, with fuzzed sizes (no device work).

fn helpers_case(rng: &mut Rng, st: &mut Stats) {
    use cinder::device::kernel::{Params, grid_1d, grid_elems};
    use cinder::device::shape;
    let (a, b) = (rng.shape(), rng.shape());
    let args = format!("{a:?} {b:?}");
    let bad = invalid_shape(&a);
    st.run("shape::numel", args.clone(), false, || {
        let n = shape::numel(&a);
        // Exact when it fits, usize::MAX (which no tensor has) when it overflows.
        let exact = prod(&a);
        assert!(n as u128 == exact || (n == usize::MAX && exact >= usize::MAX as u128));
        Ok(())
    });
    st.run("shape::checked_numel", args.clone(), bad, || {
        shape::checked_numel("fuzz", &a)
    });
    st.run("shape::strides", args.clone(), false, || {
        Ok(shape::strides(&a))
    });
    st.run("shape::broadcast_shapes", args.clone(), false, || {
        shape::broadcast_shapes("fuzz", &a, &b)
    });
    st.run("shape::broadcast_strides", args.clone(), false, || {
        shape::broadcast_strides("fuzz", &a, &b)
    });
    let strides = vec![shape::strides(&a), shape::strides(&b)];
    st.run("shape::coalesce", args.clone(), false, || {
        shape::coalesce("fuzz", &a, &strides)
    });
    let axis = rng.axis();
    st.run("shape::normalize_axis", args.clone(), false, || {
        shape::normalize_axis("fuzz", axis, &a)
    });
    let ax = rng.size();
    st.run("shape::split_at_axis", args.clone(), false, || {
        Ok(shape::split_at_axis(&a, ax))
    });
    let dims = b.clone();
    st.run("shape::checked_product", args, false, || {
        shape::checked_product("fuzz", &a, &dims)
    });
    let (n, wg) = (rng.size(), rng.pick(&[0u32, 1, 64, 256, u32::MAX]));
    st.run("grid_1d", format!("{n} {wg}"), false, || grid_1d(n, wg));
    st.run("grid_elems", format!("{n}"), false, || grid_elems(n));
    let v = rng.size();
    let bad = v > u32::MAX as usize;
    st.run("Params::usize", format!("{v}"), bad, || {
        let p = Params::new().u32(1).usize(v).array(&a, 8, 0);
        p.check("fuzz")?;
        Params::new().usize(v).check("fuzz")
    });
}

// ---------------------------------------------------------------------------------------
// The control set: valid calls whose values are known.

fn close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "control {name}: {got:?} != {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "control {name}: {got:?} != {want:?}"
        );
    }
}

/// Runs every control call and checks its values; returns how many calls it checked.
fn control(dev: &Device) -> Result<usize> {
    // Whatever a fuzzed call left for the device to report (a bad index found by a
    // kernel) is reported here, not in a control call.
    let _ = dev.sync();
    let n = std::cell::Cell::new(0);
    let check = |name: &str, got: Vec<f32>, want: &[f32]| {
        close(name, &got, want, 1e-5);
        n.set(n.get() + 1);
    };
    let a = DeviceTensor::from_slice(dev, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    check("from_slice", a.to_vec()?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let r = a.reshape(&[3, 2])?;
    assert_eq!(r.shape(), &[3, 2]);
    check("reshape", r.to_vec()?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = DeviceTensor::from_slice(dev, &[10.0f32, 20.0, 30.0], &[3])?;
    check(
        "add (broadcast)",
        a.add(&b)?.to_vec()?,
        &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0],
    );
    check("matmul", a.matmul(&r)?.to_vec()?, &[22.0, 28.0, 49.0, 64.0]);
    check(
        "matmul_t",
        a.matmul_t(&a, false, true)?.to_vec()?,
        &[14.0, 32.0, 32.0, 77.0],
    );
    check(
        "sum_axis",
        a.sum_axis(0, false)?.to_vec()?,
        &[5.0, 7.0, 9.0],
    );
    check("mean_all", a.mean_all()?.to_vec()?, &[3.5]);
    check("amax_axis", a.amax_axis(1, false)?.to_vec()?, &[3.0, 6.0]);
    let third = DeviceTensor::from_slice(dev, &[0.0f32, 3f32.ln()], &[2])?;
    check("softmax", third.softmax(0)?.to_vec()?, &[0.25, 0.75]);
    check(
        "permute",
        a.permute(&[1, 0])?.to_vec()?,
        &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
    );
    check(
        "narrow",
        a.narrow(1, 1, 2)?.to_vec()?,
        &[2.0, 3.0, 5.0, 6.0],
    );
    check(
        "concat",
        DeviceTensor::concat(&[&b, &b], 0)?.to_vec()?,
        &[10.0, 20.0, 30.0, 10.0, 20.0, 30.0],
    );
    check(
        "pad",
        a.pad(&[(1, 0)], -1.0)?.to_vec()?,
        &[-1.0, 1.0, 2.0, 3.0, -1.0, 4.0, 5.0, 6.0],
    );
    let labels = DeviceTensor::from_slice(dev, &[0u32, 2], &[2])?;
    check(
        "one_hot",
        labels.one_hot(3)?.to_vec()?,
        &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    );
    check(
        "index_select",
        a.index_select(1, &labels)?.to_vec()?,
        &[1.0, 3.0, 4.0, 6.0],
    );
    let x = DeviceTensor::from_slice(
        dev,
        &(1..=9).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 1, 3, 3],
    )?;
    let w = DeviceTensor::ones(dev, &[1, 1, 2, 2])?;
    check(
        "conv2d",
        x.conv2d(&w, None, &Conv2dParams::default())?.to_vec()?,
        &[12.0, 16.0, 24.0, 28.0],
    );
    let (m, i) = x.max_pool2d(&Pool2dParams::square(2))?;
    check("max_pool2d", m.to_vec()?, &[5.0]);
    assert_eq!(i.to_vec::<u32>()?, vec![4]);
    check(
        "avg_pool2d",
        x.avg_pool2d(&Pool2dParams::square(3), true, None)?
            .to_vec()?,
        &[5.0],
    );
    check(
        "adaptive_avg_pool2d",
        x.adaptive_avg_pool2d((1, 1))?.to_vec()?,
        &[5.0],
    );
    check(
        "arange",
        DeviceTensor::arange(dev, 0.0, 5.0, 2.0)?.to_vec()?,
        &[0.0, 2.0, 4.0],
    );
    check(
        "eye",
        DeviceTensor::eye(dev, 2, 3)?.to_vec()?,
        &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    );
    let casts = DeviceTensor::from_slice(dev, &[1.7f32, -1.0, f32::NAN], &[3])?;
    assert_eq!(casts.to_dtype(DType::U32)?.to_vec::<u32>()?, vec![1, 0, 0]);
    let spd = DeviceTensor::from_slice(dev, &[4.0f32, 2.0, 2.0, 3.0], &[2, 2])?;
    check(
        "cholesky",
        spd.cholesky_checked()?.to_vec()?,
        &[2.0, 0.0, 1.0, 2f32.sqrt()],
    );
    let u = DeviceTensor::rand_uniform(dev, &[64], 2.0, 3.0, 7, 0)?.to_vec::<f32>()?;
    assert!(
        u.iter().all(|v| (2.0..3.0).contains(v)),
        "control rand_uniform: {u:?}"
    );
    let again = DeviceTensor::rand_uniform(dev, &[64], 2.0, 3.0, 7, 0)?.to_vec::<f32>()?;
    assert_eq!(u, again, "control rand_uniform: not reproducible");
    n.set(n.get() + 2);

    // Autograd: d/dx sum(x^2) = 2x, through a reshape, a broadcast and a matmul.
    let p = Tensor::parameter(DeviceTensor::from_slice(dev, &[1.0f32, 2.0, 3.0], &[3])?)?;
    p.square()?.sum_all()?.backward()?;
    check(
        "backward",
        p.grad().expect("a gradient").to_vec()?,
        &[2.0, 4.0, 6.0],
    );
    let q = Tensor::parameter(DeviceTensor::from_slice(dev, &[1.0f32, 2.0], &[2, 1])?)?;
    let ones = Tensor::from_raw(DeviceTensor::ones(dev, &[1, 3])?);
    q.mul(&ones)?.matmul(&ones.t()?)?.sum_all()?.backward()?;
    // sum(q ones ones^T) = 3 (q0 + q1)
    check(
        "backward (broadcast, matmul)",
        q.grad().expect("a gradient").to_vec()?,
        &[3.0, 3.0],
    );
    let t = Tensor::from_raw(DeviceTensor::zeros(dev, &[2, 3, 1])?);
    assert_eq!(t.flatten_from(1)?.shape(), vec![2, 3]);
    n.set(n.get() + 1);

    // A layer with known weights, a norm and two losses.
    let vs = VarStore::new(dev, 0);
    let lin = Linear::new(&vs.pp("lin"), 2, 1, true)?;
    lin.weight
        .set_data(&Tensor::from_slice(dev, &[1.0f32, 2.0], &[1, 2])?)?;
    lin.bias
        .as_ref()
        .expect("a bias")
        .set_data(&Tensor::from_slice(dev, &[3.0f32], &[1])?)?;
    let xin = Tensor::from_raw(DeviceTensor::from_slice(dev, &[1.0f32, 1.0], &[1, 2])?);
    check("Linear", lin.forward(&xin)?.to_vec()?, &[6.0]);
    let ln = LayerNorm::new(
        &vs.pp("ln"),
        &[2],
        LayerNormConfig {
            eps: 0.0,
            ..Default::default()
        },
    )?;
    let rows = Tensor::from_raw(DeviceTensor::from_slice(
        dev,
        &[1.0f32, 3.0, -2.0, 0.0],
        &[2, 2],
    )?);
    check(
        "LayerNorm",
        ln.forward(&rows)?.to_vec()?,
        &[-1.0, 1.0, -1.0, 1.0],
    );
    let conv = Conv2d::new(&vs.pp("conv"), 1, 1, 2, Conv2dConfig::default().bias(false))?;
    conv.weight.set_raw(w.clone())?;
    check(
        "Conv2d",
        conv.forward(&Tensor::from_raw(x.clone()))?.to_vec()?,
        &[12.0, 16.0, 24.0, 28.0],
    );
    let pred = Tensor::from_raw(DeviceTensor::from_slice(dev, &[1.0f32, 2.0], &[2])?);
    let target = Tensor::from_raw(DeviceTensor::from_slice(dev, &[3.0f32, 2.0], &[2])?);
    check(
        "mse",
        loss::mse(&pred, &target, Reduction::Mean)?.to_vec()?,
        &[2.0],
    );
    let logits = Tensor::from_raw(DeviceTensor::zeros(dev, &[1, 2])?);
    let class = Tensor::from_raw(DeviceTensor::from_slice(dev, &[1u32], &[1])?);
    check(
        "cross_entropy",
        loss::cross_entropy(&logits, &class, &CrossEntropy::default())?.to_vec()?,
        &[2f32.ln()],
    );
    dev.sync()?;
    Ok(n.get())
}

// ---------------------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn malformed_calls_never_panic_and_valid_calls_stay_right() -> Result<()> {
    let seed: u64 = env_or("CINDER_FUZZ_SEED", DEFAULT_SEED);
    let cases: usize = env_or("CINDER_FUZZ_CASES", DEFAULT_CASES);
    let dev = Device::with_options(&DeviceOptions {
        memory_limit: Some(MEMORY_LIMIT),
        ..DeviceOptions::from_env()
    })?;
    // Panics of fuzzed calls are caught and counted; the hook only notes where each
    // happened. Others (a failed control check) are reported as usual.
    let default_hook = std::sync::Arc::new(std::panic::take_hook());
    let hook = default_hook.clone();
    std::panic::set_hook(Box::new(move |info| {
        if IN_CALL.with(|c| c.get()) {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = at);
        } else {
            hook(info);
        }
    }));

    let start = Instant::now();
    let mut rng = Rng(seed);
    let inp = Inputs::new(&dev, &mut rng)?;
    let mut st = Stats::default();
    if std::env::var("CINDER_FUZZ_TRACE").is_ok_and(|v| v == "1") {
        st.trace = Some(dev.clone());
    }
    st.controls += control(&dev)?;
    for case in 0..cases {
        match rng.below(100) {
            0..2 => helpers_case(&mut rng, &mut st),
            2..45 => device_case(&mut rng, &inp, &mut st),
            45..75 => tensor_case(&mut rng, &inp, &mut st),
            _ => nn_case(&mut rng, &inp, &mut st),
        }
        if case % 97 == 96 {
            // Runs what was recorded, so that a GPU error would surface (as DeviceLost).
            let r = dev.sync();
            if let Err(Error::DeviceLost(e)) = r {
                st.gpu_errors.push(format!("sync after case {case}: {e}"));
            }
        }
        if case % CONTROL_EVERY == CONTROL_EVERY - 1 {
            for p in &inp.t {
                p.zero_grad();
            }
            st.controls += control(&dev)?;
        }
    }
    st.controls += control(&dev)?;
    let _ = std::panic::take_hook();

    println!(
        "fuzz: seed {seed:#x}, {cases} cases: {} calls ({} distinct ops), {} Ok, {} errors, {} \
         panics, {} accepted bad sizes, {} GPU errors; {} control calls right; {:.1} s",
        st.calls,
        st.names.len(),
        st.oks,
        st.errors,
        st.panics.len(),
        st.accepted.len(),
        st.gpu_errors.len(),
        st.controls,
        start.elapsed().as_secs_f64()
    );
    let never = |ok: bool| -> Vec<&str> {
        st.outcomes
            .iter()
            .filter(|(_, (o, e))| if ok { *o == 0 } else { *e == 0 })
            .map(|(n, _)| *n)
            .collect()
    };
    println!("fuzz: ops that never returned Ok: {:?}", never(true));
    println!("fuzz: ops that never returned Err: {:?}", never(false));
    let show = |v: &[String]| {
        v.iter()
            .take(SHOW)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let sites: Vec<String> = st
        .panic_sites
        .iter()
        .map(|(at, (n, first))| format!("{n} x {at}\n      first: {first}"))
        .collect();
    let mut failures = Vec::new();
    if !st.panics.is_empty() {
        failures.push(format!(
            "{} panics at {} places:\n  {}",
            st.panics.len(),
            sites.len(),
            sites.join("\n  ")
        ));
    }
    if !st.accepted.is_empty() {
        failures.push(format!(
            "{} calls accepted with sizes that cannot be valid:\n  {}",
            st.accepted.len(),
            show(&st.accepted)
        ));
    }
    if !st.gpu_errors.is_empty() {
        failures.push(format!(
            "{} GPU errors:\n  {}",
            st.gpu_errors.len(),
            show(&st.gpu_errors)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
