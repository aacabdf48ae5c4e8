//! Loads a fixture family written by `scripts/torch_fixtures/main.py`, runs each case through
//! its family's runner and compares every value with PyTorch's.
//!
//! A case of kind "op" uploads its inputs (those named in `grad` as parameters), calls the
//! runner's op, compares the outputs `out{i}`, then backpropagates `sum_i <out_i, cot_i>`
//! and compares `grad.<input>`. A case of kind "custom" (modules, optimizers, schedules) is
//! run by hand and returns `(key, tensor)` pairs, each compared with the fixture's tensor of
//! that key; every fixture tensor named `expect.*` must be produced. A case with
//! `expect_error` passes when the op (or the readback of its outputs) returns `Err`, as
//! PyTorch raised. An op name a runner does not know is a failure, never a skip.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use cinder::device::DeviceTensor;
use cinder::nn::checkpoint::{self, HostData, HostTensor};
use cinder::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

/// The shared device.
pub fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// One case of a fixture file.
pub struct Case {
    /// The case's name (unique in its family).
    pub name: String,
    /// The op (or module, optimizer, schedule) it exercises.
    pub op: String,
    /// The arguments, as PyTorch was called with them.
    pub args: Value,
    /// The whole description.
    pub meta: Value,
    /// The case's tensors by key.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Absolute tolerance of the comparisons.
    pub atol: f32,
    /// Relative tolerance of the comparisons.
    pub rtol: f32,
}

fn bad(case: &str, msg: impl Into<String>) -> Error {
    Error::invalid("conformance", format!("case {case}: {}", msg.into()), &[])
}

impl Case {
    /// The fixture tensor `key`, on the host.
    pub fn host(&self, key: &str) -> Result<&HostTensor> {
        self.tensors
            .get(key)
            .ok_or_else(|| bad(&self.name, format!("no tensor {key:?}")))
    }

    /// The fixture tensor `key` as f32 host values.
    pub fn values(&self, key: &str) -> Result<Vec<f32>> {
        match &self.host(key)?.data {
            HostData::F32(v) => Ok(v.clone()),
            HostData::U32(v) => Ok(v.iter().map(|&x| x as f32).collect()),
        }
    }

    /// The fixture tensor `key` uploaded as a constant (no grad).
    pub fn tensor(&self, key: &str) -> Result<Tensor> {
        self.host(key)?.to_device(&dev())
    }

    /// The fixture tensor `key` uploaded as a parameter (requires grad).
    pub fn param(&self, key: &str) -> Result<Tensor> {
        self.host(key)?.to_device(&dev())?.requires_grad_(true)
    }

    /// Loads the case's `state.*` tensors into `vs` strictly (every name, shape and dtype
    /// must match PyTorch's `state_dict`, the layer having been built in `vs` first).
    pub fn load_state(&self, vs: &cinder::nn::VarStore) -> Result<()> {
        let state = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix("state.").map(|n| (n.to_string(), t)))
            .map(|(n, t)| Ok((n, t.to_device(&dev())?)))
            .collect::<Result<Vec<(String, Tensor)>>>()?;
        vs.load_state(&state, true).map(|_| ())
    }

    /// `(expect.grad.<name>, gradient)` for every parameter of `vs` (its name without
    /// `prefix`) the case has an expected gradient for. Panics on a parameter without a
    /// gradient: a backward that did not reach it.
    pub fn param_grads(&self, vs: &cinder::nn::VarStore, prefix: &str) -> Produced {
        vs.named_parameters()
            .into_iter()
            .filter_map(|(name, p)| {
                let key = format!("expect.grad.{}", name.strip_prefix(prefix).unwrap_or(&name));
                self.has(&key).then(|| {
                    (
                        key,
                        p.grad().unwrap_or_else(|| panic!("{name} has no gradient")),
                    )
                })
            })
            .collect()
    }

    /// True when the case has a tensor `key`.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// Argument `name`, or `Err` naming the case when it is missing.
    pub fn arg(&self, name: &str) -> Result<&Value> {
        self.args
            .get(name)
            .ok_or_else(|| bad(&self.name, format!("no argument {name:?}")))
    }

    /// Argument `name` as an f32 (JSON numbers, or the strings "inf", "-inf", "nan").
    pub fn f32(&self, name: &str) -> Result<f32> {
        let v = self.arg(name)?;
        match v {
            Value::Number(n) => n.as_f64().map(|x| x as f32),
            Value::String(s) => match s.as_str() {
                "inf" => Some(f32::INFINITY),
                "-inf" => Some(f32::NEG_INFINITY),
                "nan" => Some(f32::NAN),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| bad(&self.name, format!("argument {name} = {v} is not a number")))
    }

    /// Argument `name` as an f32, or `default` when absent.
    pub fn f32_or(&self, name: &str, default: f32) -> Result<f32> {
        if self.args.get(name).is_some() {
            self.f32(name)
        } else {
            Ok(default)
        }
    }

    /// Argument `name` as an integer.
    pub fn i64(&self, name: &str) -> Result<i64> {
        let v = self.arg(name)?;
        v.as_i64().ok_or_else(|| {
            bad(
                &self.name,
                format!("argument {name} = {v} is not an integer"),
            )
        })
    }

    /// Argument `name` as an integer, or `default` when absent.
    pub fn i64_or(&self, name: &str, default: i64) -> Result<i64> {
        if self.args.get(name).is_some() {
            self.i64(name)
        } else {
            Ok(default)
        }
    }

    /// Argument `name` as a non-negative integer.
    pub fn usize(&self, name: &str) -> Result<usize> {
        let v = self.i64(name)?;
        usize::try_from(v).map_err(|_| bad(&self.name, format!("argument {name} = {v} < 0")))
    }

    /// Argument `name` as a bool, or `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.args.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad(&self.name, format!("argument {name} = {v} is not a bool"))),
        }
    }

    /// Argument `name` as a string.
    pub fn str(&self, name: &str) -> Result<&str> {
        let v = self.arg(name)?;
        v.as_str()
            .ok_or_else(|| bad(&self.name, format!("argument {name} = {v} is not a string")))
    }

    /// Argument `name` as a list of integers.
    pub fn i64s(&self, name: &str) -> Result<Vec<i64>> {
        let v = self.arg(name)?;
        v.as_array()
            .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad(&self.name, format!("argument {name} = {v} is not a list")))
    }

    /// Argument `name` as a list of non-negative integers.
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>> {
        self.i64s(name)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| bad(&self.name, format!("{name}: {v} < 0"))))
            .collect()
    }

    /// Argument `name` as an `(h, w)` pair: an integer `k` is `(k, k)`.
    pub fn pair(&self, name: &str) -> Result<(usize, usize)> {
        let v = self.arg(name)?;
        if v.is_i64() {
            let k = self.usize(name)?;
            return Ok((k, k));
        }
        match self.usizes(name)?.as_slice() {
            [a, b] => Ok((*a, *b)),
            other => Err(bad(&self.name, format!("{name}: {other:?} is not a pair"))),
        }
    }

    /// The names of the inputs, in the order the op takes them.
    pub fn input_names(&self) -> Vec<String> {
        strings(&self.meta["inputs"])
    }

    fn grad_names(&self) -> Vec<String> {
        strings(&self.meta["grad"])
    }

    fn expect_error(&self) -> bool {
        self.meta["expect_error"].as_bool().unwrap_or(false)
    }

    /// Runs an "op" case: uploads the inputs (parameters where a gradient is compared),
    /// calls `f`, and returns the outputs and the gradients by key for the harness to
    /// compare.
    pub fn op_outputs(&self, f: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>) -> Result<Produced> {
        let grads = self.grad_names();
        let inputs = self
            .input_names()
            .iter()
            .map(|k| {
                if grads.contains(k) {
                    self.param(k)
                } else {
                    self.tensor(k)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let outs = f(&inputs)?;
        let mut produced: Vec<(String, Tensor)> = outs
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("out{i}"), t.clone()))
            .collect();
        if grads.is_empty() {
            return Ok(produced);
        }
        let mut total: Option<Tensor> = None;
        for (i, o) in outs.iter().enumerate() {
            let key = format!("cot{i}");
            if !self.has(&key) || !o.requires_grad() {
                continue;
            }
            let term = o.mul(&self.tensor(&key)?)?.sum_all()?;
            total = Some(match total {
                None => term,
                Some(t) => t.add(&term)?,
            });
        }
        if let Some(t) = total {
            t.backward()?;
        }
        let names = self.input_names();
        for g in grads {
            let i = names
                .iter()
                .position(|n| *n == g)
                .ok_or_else(|| bad(&self.name, format!("grad of unknown input {g}")))?;
            let grad = match inputs[i].grad() {
                Some(t) => t,
                None => inputs[i].zeros_like()?,
            };
            produced.push((format!("grad.{g}"), grad));
        }
        Ok(produced)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `tests/fixtures/<family>.safetensors` into its cases, in name order.
pub fn load(family: &str) -> Vec<Case> {
    let path = fixture_path(family);
    let ck = checkpoint::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut by_case: BTreeMap<String, BTreeMap<String, HostTensor>> = BTreeMap::new();
    for t in ck.tensors {
        let (case, key) = t
            .name
            .split_once('/')
            .unwrap_or_else(|| panic!("{}: tensor {} has no case prefix", path.display(), t.name));
        let (case, key) = (case.to_string(), key.to_string());
        by_case.entry(case).or_default().insert(key, t);
    }
    ck.metadata
        .iter()
        .map(|(name, json)| {
            let meta: Value = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("{}: case {name}: {e}", path.display()));
            let num = |k: &str, d: f64| meta[k].as_f64().unwrap_or(d) as f32;
            Case {
                name: name.clone(),
                op: meta["op"].as_str().unwrap_or("").to_string(),
                args: meta["args"].clone(),
                atol: num("atol", 1e-6),
                rtol: num("rtol", 1e-5),
                tensors: by_case.remove(name).unwrap_or_default(),
                meta,
            }
        })
        .collect()
}

/// The path of a family's fixture file.
pub fn fixture_path(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("{family}.safetensors"))
}

/// Values a runner produced, by fixture key.
pub type Produced = Vec<(String, Tensor)>;

/// A family's runner: the values of one case.
pub type Runner = fn(&Case) -> Result<Produced>;

/// What a comparison found wrong, if anything.
fn compare(case: &Case, key: &str, got: &Tensor) -> std::result::Result<(), String> {
    let want = case.host(key).map_err(|e| e.to_string())?;
    if got.shape() != want.shape {
        return Err(format!(
            "{key}: shape {:?}, PyTorch {:?}",
            got.shape(),
            want.shape
        ));
    }
    match &want.data {
        HostData::U32(w) => {
            let g: Vec<u32> = match got.dtype() {
                DType::U32 => got.to_vec::<u32>().map_err(|e| format!("{key}: {e}"))?,
                DType::F32 => {
                    return Err(format!("{key}: f32 output where PyTorch gives integers"));
                }
            };
            if let Some(i) = (0..w.len()).find(|&i| g[i] != w[i]) {
                return Err(format!("{key}[{i}]: {}, PyTorch {}", g[i], w[i]));
            }
        }
        HostData::F32(w) => {
            let g = got.to_vec::<f32>().map_err(|e| format!("{key}: {e}"))?;
            for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
                let ok = if w.is_nan() {
                    g.is_nan()
                } else if w.is_infinite() {
                    g == w
                } else {
                    (g - w).abs() <= case.atol + case.rtol * w.abs()
                };
                if !ok {
                    return Err(format!(
                        "{key}[{i}]: {g}, PyTorch {w} (atol {}, rtol {})",
                        case.atol, case.rtol
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `Ok` when `result` is an error, or holds an output whose readback is one.
fn expect_err(result: Result<Produced>) -> std::result::Result<(), String> {
    let outs = match result {
        Err(_) => return Ok(()),
        Ok(outs) => outs,
    };
    // An error found on the device surfaces at the readback.
    for (_, t) in &outs {
        let read = match t.dtype() {
            DType::F32 => t.to_vec::<f32>().map(|_| ()),
            DType::U32 => t.to_vec::<u32>().map(|_| ()),
        };
        if read.is_err() {
            return Ok(());
        }
    }
    if dev().sync().is_err() {
        return Ok(());
    }
    Err("PyTorch raises, Cinder returned a result".into())
}

/// Runs one case; `Err` describes the first disagreement.
fn run_case(case: &Case, runner: Runner) -> std::result::Result<(), String> {
    let result = runner(case);
    if case.expect_error() {
        let verdict = expect_err(result);
        // Clear whatever the failed op left on the device before the next case.
        let _ = dev().sync();
        return verdict;
    }
    let produced = result.map_err(|e| format!("error: {e}"))?;
    for (key, t) in &produced {
        if !case.has(key) {
            return Err(format!("produced {key}, which the fixture does not have"));
        }
        compare(case, key, t)?;
    }
    let wanted = case
        .tensors
        .keys()
        .filter(|k| k.starts_with("out") || k.starts_with("grad.") || k.starts_with("expect."));
    for k in wanted {
        if !produced.iter().any(|(p, _)| p == k) {
            return Err(format!("{k} is in the fixture but was not produced"));
        }
    }
    Ok(())
}

/// Runs every case of `family` with `runner` and panics listing every failure; returns the
/// number of cases.
pub fn run_family(family: &str, runner: Runner) -> usize {
    let cases = load(family);
    assert!(!cases.is_empty(), "{family}: no cases");
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(msg) = run_case(case, runner) {
            failures.push(format!("{family}/{} ({}): {msg}", case.name, case.op));
        }
    }
    // An error a case left on the device must not leak into the next family.
    let _ = dev().sync();
    println!("{family}: {} cases, {} failed", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} {family} cases differ from PyTorch:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

/// The error a runner returns for an op it does not know.
pub fn unknown(case: &Case) -> Error {
    bad(&case.name, format!("no runner for op {:?}", case.op))
}

/// Uploads host f32 data as a constant tensor.
pub fn constant(data: &[f32], shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_raw(DeviceTensor::from_slice(
        &dev(),
        data,
        shape,
    )?))
}
