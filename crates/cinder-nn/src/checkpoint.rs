//! Safetensors checkpoints: a model's parameters and buffers (by their PyTorch-style
//! names), an optimizer's state, or any named tensors.
//!
//! The format is the one of the reference `safetensors` library: 8 bytes holding the
//! header length `N` (little-endian u64), `N` bytes of JSON header (padded with spaces to
//! a multiple of 8)
//! `{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ..}`,
//! then the data section, each tensor's bytes little-endian and row-major at
//! `[b, e)` relative to the start of the data section. Files written by
//! `safetensors.torch.save_file(model.state_dict(), path)` load by name.
//!
//! Writes are atomic: [`save`] writes a temp file `.NAME.tmp-PID-SEQ` in the target's
//! directory, fsyncs it, and renames it over the target, so a crash at any point leaves
//! either the previous checkpoint or the new one, never a torn file. The temp file is
//! removed when anything fails, and the temp files of writers that were killed are removed
//! at the next save of the same target ([`remove_stale_temp_files`]).
//!
//! Saving refuses NaN and infinite values (an error naming the first tensor that holds
//! one), so a diverged run cannot overwrite a good checkpoint with a useless one;
//! [`SaveOptions::allow_non_finite`] with [`save_with`] (or `VarStore::save_with_options`)
//! writes them.
//!
//! Reads validate the whole header before touching the data: the header length against
//! the file length, every field, that shapes and byte ranges agree (with checked
//! arithmetic), and that the byte ranges tile the data section exactly (no gap, no
//! overlap, no trailing bytes). Every problem is an [`Error::Format`] naming the file and
//! the offset or field; nothing panics and nothing is allocated from a header value before
//! it has been checked against the file's real length.
//!
//! A full training checkpoint is either two files (`VarStore::save` for the model and
//! [`save`] of the optimizer's `state()` for the optimizer), or one file holding both
//! under prefixed names: `save(path, &[with_prefix("model.", &model), with_prefix("optim.",
//! &optim)].concat(), ..)`, read back with [`load`] and split with [`take_prefix`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, DeviceTensor, Error, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::var_store::VarStore;

/// Named tensors, as [`save`] takes them and [`load`] returns them.
pub type NamedTensors = Vec<(String, DeviceTensor)>;

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
    pub fn to_device(&self, device: &Device) -> Result<DeviceTensor> {
        match &self.data {
            HostData::F32(v) => DeviceTensor::from_slice(device, v, &self.shape),
            HostData::U32(v) => DeviceTensor::from_slice(device, v, &self.shape),
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

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// The header's top-level object as an ordered list, so duplicate names can be rejected
/// (a plain JSON map would silently keep the last).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct Info {
    name: String,
    dtype: FileDType,
    shape: Vec<usize>,
    begin: u64,
    end: u64,
}

fn parse_u64(path: &FsPath, at: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| {
        format_err(
            path,
            at,
            format!("expected a non-negative integer, found {v}"),
        )
    })
}

fn parse_info(path: &FsPath, name: &str, v: &Value) -> Result<Info> {
    let at = |field: &str| format!("header field `{name}`{field}");
    let obj = v
        .as_object()
        .ok_or_else(|| format_err(path, at(""), format!("expected an object, found {v}")))?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "dtype" | "shape" | "data_offsets") {
            return Err(format_err(
                path,
                at(&format!(".{key}")),
                "unknown field (expected dtype, shape, data_offsets)",
            ));
        }
    }
    let dtype_v = obj
        .get("dtype")
        .ok_or_else(|| format_err(path, at(".dtype"), "missing"))?;
    let dtype_s = dtype_v.as_str().ok_or_else(|| {
        format_err(
            path,
            at(".dtype"),
            format!("expected a string, found {dtype_v}"),
        )
    })?;
    let dtype = FileDType::parse(dtype_s).ok_or_else(|| {
        format_err(
            path,
            at(".dtype"),
            format!(
                "unsupported dtype {dtype_s:?} (Cinder loads F32, U32, and converts F16, BF16, \
                 F64, I64, I32)"
            ),
        )
    })?;
    let shape_v = obj
        .get("shape")
        .ok_or_else(|| format_err(path, at(".shape"), "missing"))?;
    let dims = shape_v.as_array().ok_or_else(|| {
        format_err(
            path,
            at(".shape"),
            format!("expected an array, found {shape_v}"),
        )
    })?;
    let mut shape = Vec::with_capacity(dims.len().min(64));
    for (i, d) in dims.iter().enumerate() {
        let d = parse_u64(path, &at(&format!(".shape[{i}]")), d)?;
        let d = usize::try_from(d).map_err(|_| {
            format_err(
                path,
                at(&format!(".shape[{i}]")),
                format!("dimension {d} too large"),
            )
        })?;
        shape.push(d);
    }
    let offs_v = obj
        .get("data_offsets")
        .ok_or_else(|| format_err(path, at(".data_offsets"), "missing"))?;
    let offs = offs_v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
        format_err(
            path,
            at(".data_offsets"),
            format!("expected [begin, end], found {offs_v}"),
        )
    })?;
    let begin = parse_u64(path, &at(".data_offsets[0]"), &offs[0])?;
    let end = parse_u64(path, &at(".data_offsets[1]"), &offs[1])?;
    if begin > end {
        return Err(format_err(
            path,
            at(".data_offsets"),
            format!("begin {begin} is after end {end}"),
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| {
            format_err(
                path,
                at(".shape"),
                format!("{shape:?} of {dtype} overflows a byte count"),
            )
        })?;
    if end - begin != bytes {
        return Err(format_err(
            path,
            at(".data_offsets"),
            format!(
                "[{begin}, {end}] spans {} bytes but shape {shape:?} of {dtype} needs {bytes}",
                end - begin
            ),
        ));
    }
    Ok(Info {
        name: name.to_string(),
        dtype,
        shape,
        begin,
        end,
    })
}

fn parse_metadata(path: &FsPath, v: &Value) -> Result<BTreeMap<String, String>> {
    let obj = v.as_object().ok_or_else(|| {
        format_err(
            path,
            "header field `__metadata__`",
            format!("expected an object, found {v}"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let s = v.as_str().ok_or_else(|| {
            format_err(
                path,
                format!("header field `__metadata__`.{k}"),
                format!("expected a string, found {v}"),
            )
        })?;
        out.insert(k.clone(), s.to_string());
    }
    Ok(out)
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    match exp {
        // Zero or subnormal: mant * 2^-24, exact in f32.
        0 => {
            let mag = mant as f32 * f32::from_bits(0x3380_0000); // 2^-24
            f32::from_bits(mag.to_bits() | sign)
        }
        // Infinity or NaN (payload kept in the top mantissa bits).
        31 => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        _ => f32::from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13)),
    }
}

fn convert(path: &FsPath, info: &Info, bytes: &[u8]) -> Result<HostData> {
    let at = |i: usize| format!("tensor `{}` element {i}", info.name);
    Ok(match info.dtype {
        FileDType::F32 => HostData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        FileDType::U32 => HostData::U32(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        FileDType::F16 => HostData::F32(
            bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        FileDType::BF16 => HostData::F32(
            bytes
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
        ),
        FileDType::F64 => {
            let mut out = Vec::with_capacity(bytes.len() / 8);
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
                let f = v as f32;
                if v.is_finite() && !f.is_finite() {
                    return Err(format_err(
                        path,
                        at(i),
                        format!("F64 value {v} is outside the f32 range"),
                    ));
                }
                out.push(f);
            }
            HostData::F32(out)
        }
        FileDType::I64 => {
            let mut out = Vec::with_capacity(bytes.len() / 8);
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let v = i64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
                out.push(u32::try_from(v).map_err(|_| {
                    format_err(path, at(i), format!("I64 value {v} does not fit in u32"))
                })?);
            }
            HostData::U32(out)
        }
        FileDType::I32 => {
            let mut out = Vec::with_capacity(bytes.len() / 4);
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                out.push(
                    u32::try_from(v).map_err(|_| {
                        format_err(path, at(i), format!("I32 value {v} is negative"))
                    })?,
                );
            }
            HostData::U32(out)
        }
    })
}

/// Reads and validates a safetensors file into host memory: tensors sorted by name, F32
/// and U32 as they are, F16 and BF16 converted to f32 exactly, F64 rounded to the nearest
/// f32, I64 and I32 converted to u32.
///
/// Returns [`Error::Io`] when the file cannot be opened or read, and [`Error::Format`]
/// naming the file and the byte offset or header field for anything malformed: a file
/// shorter than 8 bytes, a header length past the end of the file or over
/// [`MAX_HEADER_BYTES`], a header that is not a UTF-8 JSON object, a duplicate or empty
/// name, a missing/unknown/ill-typed field, an unsupported dtype, a shape whose byte count
/// overflows or disagrees with its `data_offsets`, byte ranges that overlap, leave a gap,
/// or do not end exactly at the end of the file, and values that do not convert (a finite
/// F64 outside f32's range, a negative or too large integer). Never panics, and allocates
/// nothing sized by a header value until it has been checked against the file's length.
pub fn read(path: impl AsRef<FsPath>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if file_len < 8 {
        return Err(format_err(
            path,
            "byte 0",
            format!("file is {file_len} bytes, shorter than the 8-byte header length"),
        ));
    }
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|e| io_err(path, e))?;
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_BYTES {
        return Err(format_err(
            path,
            "byte 0 (header length)",
            format!("header length {n} is over the limit of {MAX_HEADER_BYTES} bytes"),
        ));
    }
    if n > file_len - 8 {
        return Err(format_err(
            path,
            "byte 0 (header length)",
            format!(
                "header length {n} runs past the end of the file ({} bytes follow it)",
                file_len - 8
            ),
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| io_err(path, e))?;
    if header.first() != Some(&b'{') {
        return Err(format_err(
            path,
            "byte 8 (header)",
            "the header does not start with `{`",
        ));
    }
    let entries: Entries = serde_json::from_slice(&header).map_err(|e| {
        // Headers are normally one line; the column then gives the file offset.
        let at = if e.line() == 1 {
            format!(
                "header byte {} (file offset {})",
                e.column(),
                8 + e.column().saturating_sub(1)
            )
        } else {
            format!("header line {} column {}", e.line(), e.column())
        };
        format_err(path, at, format!("invalid JSON header: {e}"))
    })?;
    let data_start = 8 + n;
    let data_len = file_len - data_start;

    let mut metadata = BTreeMap::new();
    let mut names = HashSet::new();
    let mut infos = Vec::new();
    for (name, v) in &entries.0 {
        if !names.insert(name.as_str()) {
            return Err(format_err(
                path,
                format!("header field `{name}`"),
                "duplicate name",
            ));
        }
        if name == "__metadata__" {
            metadata = parse_metadata(path, v)?;
            continue;
        }
        if name.is_empty() {
            return Err(format_err(path, "header field ``", "empty tensor name"));
        }
        infos.push(parse_info(path, name, v)?);
    }

    // The byte ranges must tile the data section exactly.
    let mut order: Vec<usize> = (0..infos.len()).collect();
    order.sort_by_key(|&i| (infos[i].begin, infos[i].end));
    let mut expected = 0u64;
    for &i in &order {
        let t = &infos[i];
        if t.begin != expected {
            let what = if t.begin < expected {
                "overlaps the previous tensor's data"
            } else {
                "leaves a gap after the previous tensor's data"
            };
            return Err(format_err(
                path,
                format!("header field `{}`.data_offsets", t.name),
                format!(
                    "[{}, {}] {what} (expected begin {expected})",
                    t.begin, t.end
                ),
            ));
        }
        expected = t.end;
    }
    if expected != data_len {
        return Err(format_err(
            path,
            format!("byte {}", data_start + expected.min(data_len)),
            format!(
                "the data section is {data_len} bytes but the tensors cover {expected} bytes \
                 (file truncated or with trailing bytes)"
            ),
        ));
    }

    let mut tensors = Vec::with_capacity(infos.len());
    for &i in &order {
        let info = &infos[i];
        // Bounded by the file length, checked above.
        let mut bytes = vec![0u8; (info.end - info.begin) as usize];
        file.seek(SeekFrom::Start(data_start + info.begin))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| io_err(path, e))?;
        let data = convert(path, info, &bytes)?;
        tensors.push(HostTensor {
            name: info.name.clone(),
            shape: info.shape.clone(),
            file_dtype: info.dtype,
            data,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Checkpoint { tensors, metadata })
}

/// Loads every tensor of a safetensors file onto `device`, sorted by name, converted as
/// [`read`] describes. Returns the errors of [`read`], or `Err` when the device cannot
/// hold a tensor.
pub fn load(path: impl AsRef<FsPath>, device: &Device) -> Result<NamedTensors> {
    Ok(load_with_metadata(path, device)?.0)
}

/// [`load`], also returning the file's `__metadata__` (empty when it has none). Errors as
/// [`load`].
pub fn load_with_metadata(
    path: impl AsRef<FsPath>,
    device: &Device,
) -> Result<(NamedTensors, BTreeMap<String, String>)> {
    let ck = read(path)?;
    let tensors = ck
        .tensors
        .iter()
        .map(|t| Ok((t.name.clone(), t.to_device(device)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((tensors, ck.metadata))
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// `Err` unless a tensor of `dtype` can be written as `file`: its own dtype, or U32 as I64
/// (PyTorch's integer dtype; exact, every u32 is an i64).
pub(crate) fn check_file_dtype(
    op: &'static str,
    name: &str,
    dtype: DType,
    file: FileDType,
) -> Result<()> {
    let ok = file == FileDType::of(dtype) || (dtype == DType::U32 && file == FileDType::I64);
    if !ok {
        return Err(Error::invalid(
            op,
            format!("tensor `{name}` of dtype {dtype:?} cannot be written as {file}"),
            &[],
        ));
    }
    Ok(())
}

/// Serializes named host tensors (raw little-endian bytes) to the safetensors byte layout:
/// header with `__metadata__` first, then the tensors sorted by name, each at the next
/// offset, header padded with spaces to a multiple of 8.
fn encode_header(
    tensors: &[(&str, FileDType, &[usize], u64)],
    metadata: &BTreeMap<String, String>,
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string always serializes");
    let mut h = String::from("{");
    let mut first = true;
    if !metadata.is_empty() {
        h.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                h.push(',');
            }
            h.push_str(&format!("{}:{}", q(k), q(v)));
        }
        h.push('}');
        first = false;
    }
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        if !first {
            h.push(',');
        }
        first = false;
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        h.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            q(name),
            dtype.as_str(),
            dims.join(","),
            offset,
            offset + bytes
        ));
        offset += bytes;
    }
    h.push('}');
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    h
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A checkpoint written to its temp file and fsynced, not yet renamed into place (the
/// first half of [`save`]). [`PendingSave::commit`] renames it; dropping it uncommitted
/// removes the temp file. A process killed while holding one leaves the temp file behind
/// and the target untouched.
#[derive(Debug)]
pub struct PendingSave {
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl PendingSave {
    /// The temp file (`.NAME.tmp-PID-SEQ` next to the target).
    pub fn temp_path(&self) -> &FsPath {
        &self.temp
    }

    /// The file the checkpoint will be renamed to.
    pub fn target(&self) -> &FsPath {
        &self.target
    }

    /// Renames the temp file over the target (atomic on POSIX file systems), then fsyncs
    /// the directory where the platform allows it. Returns [`Error::Io`] naming the target
    /// when the rename fails; the temp file is then removed and the target is unchanged.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.temp, &self.target).map_err(|e| io_err(&self.target, e))?;
        self.done = true;
        // Make the rename itself durable. Best effort: some file systems refuse to fsync
        // a directory, and the checkpoint is already complete and in place.
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                FsPath::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PendingSave {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn check_names<'a>(op: &'static str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for n in names {
        if n.is_empty() || n == "__metadata__" {
            return Err(Error::invalid(
                op,
                format!("`{n}` cannot be a tensor name in a safetensors file"),
                &[],
            ));
        }
        if !seen.insert(n) {
            return Err(Error::invalid(
                op,
                format!("duplicate tensor name `{n}`"),
                &[],
            ));
        }
    }
    Ok(())
}

/// How [`save_with`] and [`prepare_save_with`] write a checkpoint. The default is what
/// [`save`] does: every tensor in its own dtype, and NaN or infinite values refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Per-name file dtypes, as [`save_as`] takes them (U32 as I64 is the one conversion).
    pub file_dtypes: BTreeMap<String, FileDType>,
    /// Write NaN and infinite f32 values as they are (bit for bit) instead of refusing
    /// them. Off by default: a parameter that is not finite almost always means training
    /// diverged, and saving it would overwrite the last good checkpoint with a useless one.
    pub allow_non_finite: bool,
}

impl SaveOptions {
    /// The default options with NaN and infinities allowed (for tensors that hold them on
    /// purpose: masks of `-inf`, test data).
    pub fn allow_non_finite() -> SaveOptions {
        SaveOptions {
            allow_non_finite: true,
            ..SaveOptions::default()
        }
    }
}

/// Writes `tensors` (read back from the device) with `metadata` to a temp file next to
/// `path` and fsyncs it, without renaming: the first half of [`save`]. Returns
/// `Err(InvalidArgument)` for an empty, duplicate or `__metadata__` name (before creating
/// any file), `Err(InvalidArgument)` naming the first tensor (in the order given) that
/// holds a NaN or an infinity (before creating any file; see [`SaveOptions`] to write them
/// anyway), the device's error when a read-back fails (before creating any file),
/// `Err(Format)` when the header would exceed [`MAX_HEADER_BYTES`], and `Err(Io)` naming
/// the temp file when it cannot be written (the temp file is then removed). Stale temp
/// files of dead writers of the same target are removed first
/// ([`remove_stale_temp_files`]).
pub fn prepare_save(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<PendingSave> {
    prepare_save_with(path, tensors, metadata, &SaveOptions::default())
}

/// [`prepare_save`] with a file dtype for some tensors: each name in `file_dtypes` is
/// written as that dtype instead of its own. The one conversion is U32 as I64 (exact), how
/// `VarStore::save` writes BatchNorm's `num_batches_tracked` so that PyTorch reads its own
/// `int64` counter; [`read`] converts it back. Returns the errors of [`prepare_save`], and
/// `Err(InvalidArgument)` (before creating any file) for a name in `file_dtypes` that
/// `tensors` does not have or a conversion other than U32 as I64.
pub fn prepare_save_as(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    file_dtypes: &BTreeMap<String, FileDType>,
    metadata: &BTreeMap<String, String>,
) -> Result<PendingSave> {
    let opts = SaveOptions {
        file_dtypes: file_dtypes.clone(),
        ..SaveOptions::default()
    };
    prepare_save_with(path, tensors, metadata, &opts)
}

/// The error for a tensor holding `bad` non-finite values, the first at element `first`.
fn non_finite_error(
    op: &'static str,
    path: &FsPath,
    name: &str,
    shape: &[usize],
    (bad, first, value): (usize, usize, f32),
) -> Error {
    let n: usize = shape.iter().product();
    Error::invalid(
        op,
        format!(
            "tensor `{name}` holds {bad} NaN or infinite value(s) of {n} (the first, element \
             {first}, is {value}); refusing to write {}. Training has probably diverged: \
             cinder_autograd::set_detect_anomaly(true) (or CINDER_DETECT_ANOMALY=1) names the \
             op that made the first NaN; to write such values anyway, save with \
             SaveOptions {{ allow_non_finite: true, .. }}",
            path.display()
        ),
        shape,
    )
}

/// [`prepare_save`] with [`SaveOptions`]: per-name file dtypes (as [`prepare_save_as`])
/// and whether NaN and infinities may be written. Returns the errors of
/// [`prepare_save_as`]; a non-finite value is an error only when
/// `opts.allow_non_finite` is false.
pub fn prepare_save_with(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    metadata: &BTreeMap<String, String>,
    opts: &SaveOptions,
) -> Result<PendingSave> {
    let path = path.as_ref();
    let op = "checkpoint::save";
    let file_dtypes = &opts.file_dtypes;
    check_names(op, tensors.iter().map(|(n, _)| n.as_str()))?;
    for name in file_dtypes.keys() {
        if !tensors.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                op,
                format!("a file dtype is given for `{name}`, which is not among the tensors"),
                &[],
            ));
        }
    }
    let file_name = path.file_name().ok_or_else(|| {
        Error::invalid(op, format!("{} does not name a file", path.display()), &[])
    })?;
    let fds = tensors
        .iter()
        .map(|(n, t)| {
            let fd = file_dtypes
                .get(n)
                .copied()
                .unwrap_or(FileDType::of(t.dtype()));
            check_file_dtype(op, n, t.dtype(), fd)?;
            Ok(fd)
        })
        .collect::<Result<Vec<_>>>()?;
    // Read everything back, in the order given, before creating the file, so a device
    // error or a refused value leaves nothing.
    let mut blobs = Vec::with_capacity(tensors.len());
    for ((name, t), fd) in tensors.iter().zip(&fds) {
        let bytes: Vec<u8> = match (t.dtype(), fd) {
            (DType::F32, _) => {
                let v = t.to_vec::<f32>()?;
                if !opts.allow_non_finite
                    && let Some(first) = v.iter().position(|x| !x.is_finite())
                {
                    let bad = v.iter().filter(|x| !x.is_finite()).count();
                    return Err(non_finite_error(
                        op,
                        path,
                        name,
                        t.shape(),
                        (bad, first, v[first]),
                    ));
                }
                v.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            (DType::U32, FileDType::I64) => t
                .to_vec::<u32>()?
                .iter()
                .flat_map(|&v| i64::from(v).to_le_bytes())
                .collect(),
            (DType::U32, _) => t
                .to_vec::<u32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        blobs.push(bytes);
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let entries: Vec<(&str, FileDType, &[usize], u64)> = order
        .iter()
        .map(|&i| {
            let (n, t) = &tensors[i];
            (n.as_str(), fds[i], t.shape(), blobs[i].len() as u64)
        })
        .collect();
    let header = encode_header(&entries, metadata);
    if header.len() as u64 > MAX_HEADER_BYTES {
        return Err(format_err(
            path,
            "header",
            format!(
                "the header would be {} bytes, over the limit of {MAX_HEADER_BYTES}",
                header.len()
            ),
        ));
    }

    // Best effort: a failure to list the directory shows up below as the temp file's Io.
    let _ = remove_stale_temp_files(path);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| io_err(&temp, e))?;
    // From here on, dropping `pending` removes the temp file.
    let pending = PendingSave {
        temp: temp.clone(),
        target: path.to_path_buf(),
        done: false,
    };
    let mut w = BufWriter::new(file);
    let write = |w: &mut BufWriter<File>| -> std::io::Result<()> {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        for &i in &order {
            w.write_all(&blobs[i])?;
        }
        w.flush()
    };
    write(&mut w).map_err(|e| io_err(&temp, e))?;
    let file = w.into_inner().map_err(|e| io_err(&temp, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(&temp, e))?;
    Ok(pending)
}

/// Whether process `pid` may still be running on this machine: `Some(true)` when it is
/// (or its id has been reused), `Some(false)` when no such process exists or it is a
/// zombie (it has exited and can write nothing more), `None` when this cannot be told (no
/// `/proc`: not Linux, or not mounted).
fn process_alive(pid: u32) -> Option<bool> {
    let proc = FsPath::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    let dir = proc.join(pid.to_string());
    if !dir.exists() {
        return Some(false);
    }
    // `/proc/PID/stat` is `PID (COMM) STATE ...`; COMM may hold spaces and parentheses.
    let state = fs::read_to_string(dir.join("stat")).ok().and_then(|st| {
        st.rfind(')')
            .and_then(|i| st[i + 1..].trim_start().chars().next())
    });
    Some(!matches!(state, Some('Z' | 'X')))
}

/// The writer's process id of `.NAME.tmp-PID-SEQ`, when `file` is a temp file of the
/// target `name`.
fn temp_writer_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix(".tmp-")?;
    let (pid, seq) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(seq) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temp files `.NAME.tmp-PID-SEQ` that writers of `path` (`NAME` being its
/// file name) left behind when they were killed between writing and renaming, and returns
/// the paths removed. A file is removed only when its writer is known to be dead: its
/// `PID` is not this process and no process with that id exists on this machine, or it is
/// a zombie (checked in `/proc`). Files of live writers, of this process, of other names, and every file on
/// a system without `/proc` (macOS, Windows) are left alone; so are the files of writers
/// on other machines whose `PID` happens to be alive here. (Writers on several machines or
/// in separate PID namespaces must not share a checkpoint directory and name: a live
/// writer there looks dead here.) Returns [`Error::Io`] naming the directory when it
/// cannot be listed; a file that cannot be removed (already renamed, no permission) is
/// skipped.
pub fn remove_stale_temp_files(path: impl AsRef<FsPath>) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => FsPath::new("."),
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let Ok(entry) = entry else { continue };
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| temp_writer_pid(f, name)) else {
            continue;
        };
        if pid == own || pid == 0 || process_alive(pid) != Some(false) {
            continue;
        }
        let p = dir.join(&file);
        if fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Saves named tensors (F32 or U32, any shape including `[]` and empty ones) and string
/// `metadata` as a safetensors file at `path`, atomically: [`prepare_save`] then
/// [`PendingSave::commit`]. Tensors are stored sorted by name, bit-exact (negative zero and
/// subnormals kept). A NaN or an infinity in any f32 tensor is refused with an
/// `Err(InvalidArgument)` naming the first such tensor; [`save_with`] and
/// [`SaveOptions::allow_non_finite`] write them bit for bit (NaN payloads kept). Use it for
/// an optimizer's `state()` as for a model. On any `Err` (see [`prepare_save`] and
/// [`PendingSave::commit`]) the previous file at `path`, if any, is unchanged and no temp
/// file remains.
pub fn save(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    prepare_save(path, tensors, metadata)?.commit()
}

/// [`save`] with a file dtype for some tensors, as [`prepare_save_as`] (whose errors it
/// returns, with those of [`PendingSave::commit`]). `VarStore::save` calls it with
/// [`VarStore::file_dtypes`]; so can a combined model + optimizer checkpoint, with the
/// names prefixed as the tensors are.
pub fn save_as(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    file_dtypes: &BTreeMap<String, FileDType>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    prepare_save_as(path, tensors, file_dtypes, metadata)?.commit()
}

/// [`save`] with [`SaveOptions`] (file dtypes, NaN and infinities allowed or not), as
/// [`prepare_save_with`] then [`PendingSave::commit`], whose errors it returns.
pub fn save_with(
    path: impl AsRef<FsPath>,
    tensors: &[(String, DeviceTensor)],
    metadata: &BTreeMap<String, String>,
    opts: &SaveOptions,
) -> Result<()> {
    prepare_save_with(path, tensors, metadata, opts)?.commit()
}

/// `tensors` with `prefix` prepended to every name (`with_prefix("optim.", &state)`), to
/// store a model and an optimizer in one file.
pub fn with_prefix(
    prefix: &str,
    tensors: &[(String, DeviceTensor)],
) -> Vec<(String, DeviceTensor)> {
    tensors
        .iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
        .collect()
}

/// Splits `tensors` into those whose name starts with `prefix` (returned first, with the
/// prefix removed) and the rest (returned second, unchanged). Never fails.
pub fn take_prefix(
    prefix: &str,
    tensors: Vec<(String, DeviceTensor)>,
) -> (NamedTensors, NamedTensors) {
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

// ---------------------------------------------------------------------------------------
// VarStore
// ---------------------------------------------------------------------------------------

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
    /// safetensors file at `path`, atomically (see [`save`], whose errors it returns: a
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
        let state: Vec<(String, DeviceTensor)> = self
            .state()
            .into_iter()
            .map(|(n, t)| (n, t.data()))
            .collect();
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
    /// Returns the errors of [`read`] for a bad file, and `Err(InvalidArgument)` naming the
    /// file and the first mismatch: store variables in state order (missing name, shape,
    /// dtype), then file tensors in name order (unexpected name).
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
        let ck = read(path)?;
        let origin = path.display().to_string();
        let source: Vec<(&str, &[usize], DType)> = ck
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.dtype()))
            .collect();
        let (pairs, report) = plan(self, &origin, &source, strict)?;
        let uploads = pairs
            .iter()
            .map(|(_, i)| ck.tensors[*i].to_device(self.device()))
            .collect::<Result<Vec<_>>>()?;
        for ((var, _), data) in pairs.iter().zip(uploads) {
            var.set_data(data)?;
        }
        Ok(report)
    }

    /// Sets variables from named device tensors (e.g. the `model.` part of a combined
    /// checkpoint, split with [`take_prefix`]), strictly or not as [`VarStore::load`] /
    /// [`VarStore::load_partial`]. The variables get copies (later writes to `tensors` do
    /// not reach the store). Returns `Err(InvalidArgument)` for a duplicate name, the first
    /// mismatch, or a tensor on another device, and the device's error when a copy cannot
    /// be allocated; on `Err` the store is unchanged.
    pub fn load_state(
        &self,
        tensors: &[(String, DeviceTensor)],
        strict: bool,
    ) -> Result<LoadReport> {
        for (n, t) in tensors {
            if !t.device().same(self.device()) {
                return Err(mismatch(
                    "tensors",
                    format!("tensor `{n}` is on another device than the store"),
                    t.shape(),
                ));
            }
        }
        let source: Vec<(&str, &[usize], DType)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.shape(), t.dtype()))
            .collect();
        let (pairs, report) = plan(self, "tensors", &source, strict)?;
        let copies = pairs
            .iter()
            .map(|(_, i)| tensors[*i].1.deep_clone())
            .collect::<Result<Vec<_>>>()?;
        for ((var, _), data) in pairs.iter().zip(copies) {
            var.set_data(data)?;
        }
        Ok(report)
    }
}
