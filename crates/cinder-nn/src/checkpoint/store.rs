//! Loading into and saving a [`VarStore`]: every name, shape and dtype checked before any
//! variable changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path as FsPath;

use cinder_autograd::Tensor;
use cinder_device::{DType, Error, Result};

use super::{CheckpointFile, SaveOptions, save_with};
use crate::var_store::VarStore;

/// What a non-strict load did: which store variables were set, which the source lacked,
/// and which source tensors the store has no variable for. Each list is in the order the
/// names were checked (store order for `loaded`/`missing`, source order for `unexpected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables whose data was replaced.
    pub loaded: Vec<String>,
    /// Variables of the store absent from the source (left unchanged).
    pub missing: Vec<String>,
    /// Source tensors with no variable of that name in the store (ignored).
    pub unexpected: Vec<String>,
}

const LOAD_OP: &str = "VarStore::load";

fn mismatch(origin: &str, msg: String, shape: &[usize]) -> Error {
    Error::invalid(LOAD_OP, format!("{origin}: {msg}"), shape)
}

/// Checks `source` (name, shape, dtype) against the store. Returns, for every store
/// variable in state order, the index of its source tensor (or `None` when missing and not
/// strict), and the report. Changes nothing.
fn plan(
    vs: &VarStore,
    origin: &str,
    source: &[(&str, &[usize], DType)],
    strict: bool,
) -> Result<(Vec<(Tensor, usize)>, LoadReport)> {
    let mut by_name = HashMap::with_capacity(source.len());
    for (i, (n, s, _)) in source.iter().enumerate() {
        if by_name.insert(*n, i).is_some() {
            return Err(mismatch(origin, format!("tensor `{n}` appears twice"), s));
        }
    }
    let state = vs.state();
    let mut report = LoadReport::default();
    let mut pairs = Vec::with_capacity(state.len());
    for (name, var) in &state {
        let var_shape = var.shape();
        let Some(&i) = by_name.get(name.as_str()) else {
            if strict {
                return Err(mismatch(
                    origin,
                    format!("missing tensor `{name}` (shape {var_shape:?}) that the store has"),
                    &var_shape,
                ));
            }
            report.missing.push(name.clone());
            continue;
        };
        let (_, shape, dtype) = source[i];
        if shape != var_shape.as_slice() {
            return Err(mismatch(
                origin,
                format!(
                    "tensor `{name}` has shape {shape:?} in the source but {var_shape:?} in the store"
                ),
                &var_shape,
            ));
        }
        if dtype != var.dtype() {
            return Err(mismatch(
                origin,
                format!(
                    "tensor `{name}` has dtype {dtype:?} in the source but {:?} in the store",
                    var.dtype()
                ),
                &var_shape,
            ));
        }
        pairs.push((var.clone(), i));
        report.loaded.push(name.clone());
    }
    let known: HashSet<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    for (n, s, _) in source {
        if !known.contains(n) {
            if strict {
                return Err(mismatch(
                    origin,
                    format!("unexpected tensor `{n}` that the store does not have"),
                    s,
                ));
            }
            report.unexpected.push(n.to_string());
        }
    }
    Ok((pairs, report))
}

impl VarStore {
    /// Saves every parameter and buffer under its name ([`VarStore::state`]) as a
    /// safetensors file at `path`, atomically (see [`super::save`], whose errors it returns: a
    /// NaN or an infinity in a variable is an `Err(InvalidArgument)` naming the first such
    /// variable, parameters first, in creation order, and the file is not written). Each
    /// variable is written in its [`VarStore::file_dtype`]: BatchNorm's
    /// `num_batches_tracked` as I64, as PyTorch saves it; everything else as is.
    pub fn save(&self, path: impl AsRef<FsPath>) -> Result<()> {
        self.save_with_metadata(path, &BTreeMap::new())
    }

    /// [`VarStore::save`] with a `__metadata__` string map (epoch, config, ...); the same
    /// errors.
    pub fn save_with_metadata(
        &self,
        path: impl AsRef<FsPath>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.save_with_options(path, metadata, &SaveOptions::default())
    }

    /// [`VarStore::save_with_metadata`] with [`SaveOptions`]: `opts.allow_non_finite`
    /// writes NaN and infinities instead of refusing them; `opts.file_dtypes` is added to
    /// the store's own [`VarStore::file_dtypes`] (and wins for a name in both). Returns the
    /// errors of [`save_with`].
    pub fn save_with_options(
        &self,
        path: impl AsRef<FsPath>,
        metadata: &BTreeMap<String, String>,
        opts: &SaveOptions,
    ) -> Result<()> {
        let state = self.state();
        let mut all = opts.clone();
        for (n, d) in self.file_dtypes() {
            all.file_dtypes.entry(n).or_insert(d);
        }
        save_with(path, &state, metadata, &all)
    }

    /// Loads a checkpoint (ours, or PyTorch's `state_dict` saved as safetensors) into the
    /// store by name, strictly: every variable must be in the file with the same shape and
    /// (converted) dtype, and the file must hold nothing else. Everything is checked, and
    /// every tensor uploaded, before any variable changes; on `Err` the store is unchanged.
    /// The file is mapped, not read: the names, shapes and dtypes come from its header, and
    /// the tensors are converted and uploaded one at a time ([`CheckpointFile`]), so the
    /// host never holds more than one tensor's data. Returns the errors of
    /// [`super::read`] for a bad file, and `Err(InvalidArgument)` naming the file and the
    /// first mismatch: store variables in state order (missing name, shape, dtype), then
    /// file tensors in name order (unexpected name).
    pub fn load(&self, path: impl AsRef<FsPath>) -> Result<()> {
        self.load_file(path.as_ref(), true).map(|_| ())
    }

    /// Like [`VarStore::load`] but non-strict: names absent from the file are left
    /// unchanged and extra names in the file are ignored (both listed in the returned
    /// report); shapes and dtypes of the names present in both must still match, else
    /// `Err` with the store unchanged.
    pub fn load_partial(&self, path: impl AsRef<FsPath>) -> Result<LoadReport> {
        self.load_file(path.as_ref(), false)
    }

    fn load_file(&self, path: &FsPath, strict: bool) -> Result<LoadReport> {
        let file = CheckpointFile::open(path)?;
        let origin = path.display().to_string();
        let source: Vec<(&str, &[usize], DType)> = file
            .tensors()
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.dtype()))
            .collect();
        let (pairs, report) = plan(self, &origin, &source, strict)?;
        // One tensor at a time from the mapped file; every upload is done before any
        // variable changes, so an error leaves the store as it was.
        let uploads = pairs
            .iter()
            .map(|(_, i)| file.load_tensor(&file.tensors()[*i].name, self.device()))
            .collect::<Result<Vec<_>>>()?;
        for ((var, _), data) in pairs.iter().zip(uploads) {
            var.set_data(&data)?;
        }
        Ok(report)
    }

    /// Sets variables from named device tensors (e.g. the `model.` part of a combined
    /// checkpoint, split with [`super::take_prefix`]), strictly or not as [`VarStore::load`] /
    /// [`VarStore::load_partial`]. The variables get copies (later writes to `tensors` do
    /// not reach the store). Returns `Err(InvalidArgument)` for a duplicate name, the first
    /// mismatch, or a tensor on another device, and the device's error when a copy cannot
    /// be allocated; on `Err` the store is unchanged.
    pub fn load_state(&self, tensors: &[(String, Tensor)], strict: bool) -> Result<LoadReport> {
        for (n, t) in tensors {
            if !t.device().same(self.device()) {
                return Err(mismatch(
                    "tensors",
                    format!("tensor `{n}` is on another device than the store"),
                    &t.shape(),
                ));
            }
        }
        let shapes: Vec<Vec<usize>> = tensors.iter().map(|(_, t)| t.shape()).collect();
        let source: Vec<(&str, &[usize], DType)> = tensors
            .iter()
            .zip(&shapes)
            .map(|((n, t), s)| (n.as_str(), s.as_slice(), t.dtype()))
            .collect();
        let (pairs, report) = plan(self, "tensors", &source, strict)?;
        let copies = pairs
            .iter()
            .map(|(_, i)| tensors[*i].1.deep_clone())
            .collect::<Result<Vec<_>>>()?;
        for ((var, _), data) in pairs.iter().zip(copies) {
            var.set_data(&data)?;
        }
        Ok(report)
    }
}
