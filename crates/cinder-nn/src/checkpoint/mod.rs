//! Safetensors checkpoints: a model's parameters and buffers (by their PyTorch-style
//! names), an optimizer's state, or any named tensors.
//!
//! The format is the one of the reference `safetensors` library, whose Rust crate does the
//! parsing and the validation here: 8 bytes holding the header length `N` (little-endian
//! u64), `N` bytes of JSON header (padded with spaces to a multiple of 8)
//! `{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ..}`,
//! then the data section, each tensor's bytes little-endian and row-major at
//! `[b, e)` relative to the start of the data section. Files written by
//! `safetensors.torch.save_file(model.state_dict(), path)` load by name.
//!
//! Reads map the file ([`CheckpointFile::open`]) rather than read it: the header is
//! validated (by the `safetensors` crate, plus Cinder's stricter checks: no duplicate or
//! empty names, no unknown fields, only the dtypes Cinder converts), then each tensor is
//! converted and uploaded on its own, straight from the mapping, so a checkpoint larger
//! than the host's free memory loads. Every problem is an [`Error::Format`] naming the
//! file and the offset or field; nothing panics and nothing is allocated from a header
//! value before it has been checked against the file's real length.
//!
//! Writes are atomic: [`save`] writes a temp file `.NAME.tmp-PID-SEQ` in the target's
//! directory, fsyncs it, and renames it over the target, so a crash at any point leaves
//! either the previous checkpoint or the new one, never a torn file. The temp file is
//! removed when anything fails, and the temp files of writers that were killed are removed
//! at the next save of the same target ([`remove_stale_temp_files`]). The bytes are the
//! reference writer's (tensors sorted by dtype, widest first, then by name).
//!
//! Saving refuses NaN and infinite values (an error naming the first tensor that holds
//! one), so a diverged run cannot overwrite a good checkpoint with a useless one;
//! [`SaveOptions::allow_non_finite`] with [`save_with`] (or `VarStore::save_with_options`)
//! writes them.
//!
//! A full training checkpoint is either two files (`VarStore::save` for the model and
//! [`save`] of the optimizer's `state()` for the optimizer), or one file holding both
//! under prefixed names: `save(path, &[with_prefix("model.", &model), with_prefix("optim.",
//! &optim)].concat(), ..)`, read back with [`load`] and split with [`take_prefix`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path as FsPath;

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, Error, Result};

mod read;
mod store;
mod write;

pub use read::{CheckpointFile, TensorEntry, load, load_with_metadata, read};
pub use store::LoadReport;
pub(crate) use write::check_file_dtype;
pub use write::{
    PendingSave, SaveOptions, prepare_save, prepare_save_as, prepare_save_with,
    remove_stale_temp_files, save, save_as, save_with,
};

/// Named tensors, as [`save`] takes them and [`load`] returns them.
pub type NamedTensors = Vec<(String, Tensor)>;

/// Largest header accepted or written (the reference implementation's limit: 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The element type a tensor had in the file. F32 and U32 are Cinder's own; the others
/// appear in PyTorch exports and are converted on load (see [`read`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileDType {
    /// 32-bit float (loaded as is).
    F32,
    /// 32-bit unsigned integer (loaded as is).
    U32,
    /// IEEE half: loaded as f32, exactly.
    F16,
    /// bfloat16: loaded as f32, exactly.
    BF16,
    /// 64-bit float: loaded as f32 rounded to nearest; a finite value outside f32's range
    /// is an error.
    F64,
    /// 64-bit signed integer (e.g. BatchNorm's `num_batches_tracked`): loaded as u32; a
    /// value outside `0..=u32::MAX` is an error.
    I64,
    /// 32-bit signed integer: loaded as u32; a negative value is an error.
    I32,
}

impl FileDType {
    /// The dtype string used in the header (`"F32"`, `"BF16"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FileDType::F32 => "F32",
            FileDType::U32 => "U32",
            FileDType::F16 => "F16",
            FileDType::BF16 => "BF16",
            FileDType::F64 => "F64",
            FileDType::I64 => "I64",
            FileDType::I32 => "I32",
        }
    }

    /// Parses a header dtype string; `None` for dtypes Cinder does not load (BOOL, U8, I8,
    /// I16, U16, U64, F8_*, ...).
    pub fn parse(s: &str) -> Option<FileDType> {
        Some(match s {
            "F32" => FileDType::F32,
            "U32" => FileDType::U32,
            "F16" => FileDType::F16,
            "BF16" => FileDType::BF16,
            "F64" => FileDType::F64,
            "I64" => FileDType::I64,
            "I32" => FileDType::I32,
            _ => return None,
        })
    }

    /// Bytes per element in the file.
    pub fn size(self) -> usize {
        match self {
            FileDType::F16 | FileDType::BF16 => 2,
            FileDType::F32 | FileDType::U32 | FileDType::I32 => 4,
            FileDType::F64 | FileDType::I64 => 8,
        }
    }

    /// The file dtype a Cinder tensor of `dtype` is written as by default (its own).
    pub fn of(dtype: DType) -> FileDType {
        match dtype {
            DType::F32 => FileDType::F32,
            DType::U32 => FileDType::U32,
        }
    }

    /// The Cinder dtype a tensor of this file dtype is loaded as.
    pub fn loaded_as(self) -> DType {
        match self {
            FileDType::F32 | FileDType::F16 | FileDType::BF16 | FileDType::F64 => DType::F32,
            FileDType::U32 | FileDType::I64 | FileDType::I32 => DType::U32,
        }
    }

    /// The `safetensors` crate's name for this dtype.
    pub(crate) fn to_st(self) -> safetensors::Dtype {
        use safetensors::Dtype as D;
        match self {
            FileDType::F32 => D::F32,
            FileDType::U32 => D::U32,
            FileDType::F16 => D::F16,
            FileDType::BF16 => D::BF16,
            FileDType::F64 => D::F64,
            FileDType::I64 => D::I64,
            FileDType::I32 => D::I32,
        }
    }
}

impl fmt::Display for FileDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Host-side tensor data, after conversion to a Cinder dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// f32 elements (compare with `to_bits` for bit-exactness: `PartialEq` is IEEE's).
    F32(Vec<f32>),
    /// u32 elements.
    U32(Vec<u32>),
}

impl HostData {
    /// The Cinder dtype of the data.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::U32(_) => DType::U32,
        }
    }
}

/// One tensor read from a file, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The tensor's name (`encoder.conv1.weight`).
    pub name: String,
    /// Its shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The dtype it had in the file.
    pub file_dtype: FileDType,
    /// Its elements, converted to F32 or U32.
    pub data: HostData,
}

impl HostTensor {
    /// Uploads the tensor to `device`. Returns `Err` when the device cannot hold it.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match &self.data {
            HostData::F32(v) => Tensor::from_slice(device, v, &self.shape),
            HostData::U32(v) => Tensor::from_slice(device, v, &self.shape),
        }
    }
}

/// The contents of a checkpoint file on the host: tensors sorted by name, and the
/// `__metadata__` string map (empty when the file has none).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The tensors, sorted by name.
    pub tensors: Vec<HostTensor>,
    /// The `__metadata__` entries.
    pub metadata: BTreeMap<String, String>,
}

/// `tensors` with `prefix` prepended to every name (`with_prefix("optim.", &state)`), to
/// store a model and an optimizer in one file.
pub fn with_prefix(prefix: &str, tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors
        .iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
        .collect()
}

/// Splits `tensors` into those whose name starts with `prefix` (returned first, with the
/// prefix removed) and the rest (returned second, unchanged). Never fails.
pub fn take_prefix(prefix: &str, tensors: Vec<(String, Tensor)>) -> (NamedTensors, NamedTensors) {
    let mut matched = Vec::new();
    let mut rest = Vec::new();
    for (n, t) in tensors {
        match n.strip_prefix(prefix) {
            Some(s) => matched.push((s.to_string(), t)),
            None => rest.push((n, t)),
        }
    }
    (matched, rest)
}

fn format_err(path: &FsPath, at: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        at: at.into(),
        msg: msg.into(),
    }
}

fn io_err(path: &FsPath, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
