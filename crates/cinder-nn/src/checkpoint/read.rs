//! Reading: the file is mapped (`memmap2`), its header validated by the `safetensors`
//! crate and by Cinder's stricter checks, then each tensor is converted and uploaded on
//! its own, straight from the mapping.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, Error, Result};
use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::{Metadata, SafeTensorError, TensorInfo};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{Checkpoint, FileDType, HostData, HostTensor, NamedTensors, format_err, io_err};

/// A safetensors file, mapped into memory and validated, whose tensors are converted one
/// at a time on request: [`CheckpointFile::read_tensor`] to the host,
/// [`CheckpointFile::load_tensor`] to a device. Opening reads only the header; the data
/// are paged in from the file as tensors are converted (and released after each one), so
/// a file larger than the host's free memory can be opened and loaded tensor by tensor.
///
/// The file must not be modified in place while it is open (Cinder's own writers never
/// do: they rename a new file over the old one); truncating a mapped file makes the
/// process fail on access, as for any memory-mapped file.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    map: Mmap,
    tensors: Vec<TensorEntry>,
    metadata: BTreeMap<String, String>,
}

/// One tensor of a [`CheckpointFile`], as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name (`encoder.conv1.weight`).
    pub name: String,
    /// Its shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The dtype it has in the file.
    pub file_dtype: FileDType,
    /// Where its bytes are in the file.
    bytes: Range<usize>,
}

impl TensorEntry {
    /// The Cinder dtype the tensor is loaded as ([`FileDType::loaded_as`]).
    pub fn dtype(&self) -> DType {
        self.file_dtype.loaded_as()
    }

    /// Its number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Where its bytes are in the file, as byte offsets from the start of the file.
    pub fn byte_range(&self) -> Range<u64> {
        self.bytes.start as u64..self.bytes.end as u64
    }
}

impl CheckpointFile {
    /// Opens and maps the safetensors file at `path` and validates its header against the
    /// file's length; no tensor data is read.
    ///
    /// Returns [`Error::Io`] when the file cannot be opened or mapped, and
    /// [`Error::Format`] naming the file and the byte offset or header field for anything
    /// malformed: a file shorter than 8 bytes; a header length past the end of the file or
    /// over [`super::MAX_HEADER_BYTES`]; a header that is not a UTF-8 JSON object; a
    /// duplicate or empty name; a missing, unknown or ill-typed field; a dtype Cinder does
    /// not convert; a shape whose byte count overflows or disagrees with its
    /// `data_offsets`; byte ranges that overlap, leave a gap, or do not end exactly at the
    /// end of the file (a truncated file or trailing bytes). Never panics.
    pub fn open(path: impl AsRef<FsPath>) -> Result<CheckpointFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let len = file.metadata().map_err(|e| io_err(path, e))?.len();
        if len < 8 {
            return Err(short_file(path, len));
        }
        // SAFETY: the mapping is read-only and lives as long as `self`; its contents
        // change only if the file is modified in place meanwhile, which Cinder never does
        // (its writers rename a new file over the old) and which the type's documentation
        // rules out for other writers.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
        let (data_start, meta) = validate(path, &map)?;
        let mut tensors = Vec::with_capacity(meta.tensors().len());
        for (name, info) in meta.tensors() {
            let file_dtype = from_st(info.dtype).ok_or_else(|| {
                format_err(
                    path,
                    format!("header field `{name}`.dtype"),
                    unsupported(&info.dtype.to_string()),
                )
            })?;
            let (begin, end) = info.data_offsets;
            tensors.push(TensorEntry {
                shape: info.shape.clone(),
                file_dtype,
                // In bounds: the crate checked that the ranges end at the end of the file.
                bytes: data_start + begin..data_start + end,
                name,
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let metadata = meta
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(CheckpointFile {
            path: path.to_path_buf(),
            map,
            tensors,
            metadata,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &FsPath {
        &self.path
    }

    /// The `__metadata__` entries (empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Every tensor of the file, sorted by name.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The tensor named `name`, if the file has one.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }

    fn entry(&self, op: &'static str, name: &str) -> Result<&TensorEntry> {
        self.get(name).ok_or_else(|| {
            Error::invalid(
                op,
                format!("{} has no tensor `{name}`", self.path.display()),
                &[],
            )
        })
    }

    /// Reads the tensor `name` into host memory, converted as [`read`] describes. Returns
    /// `Err(InvalidArgument)` when the file has no such tensor, [`Error::Format`] naming the
    /// tensor and element for a value that does not convert, and [`Error::Io`] naming the
    /// file when host memory for it cannot be allocated.
    pub fn read_tensor(&self, name: &str) -> Result<HostTensor> {
        let entry = self.entry("CheckpointFile::read_tensor", name)?;
        let data = convert(&self.path, entry, &self.map[entry.bytes.clone()]);
        self.release(entry);
        Ok(HostTensor {
            name: entry.name.clone(),
            shape: entry.shape.clone(),
            file_dtype: entry.file_dtype,
            data: data?,
        })
    }

    /// Converts the tensor `name` and uploads it to `device`. F32 and U32 data go to the
    /// device straight from the mapping (no host copy); other dtypes are converted into one
    /// host buffer of the tensor's size first. Returns the errors of
    /// [`CheckpointFile::read_tensor`], and the device's when it cannot hold the tensor.
    pub fn load_tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let entry = self.entry("CheckpointFile::load_tensor", name)?;
        let out = self.upload(entry, device);
        self.release(entry);
        out
    }

    fn upload(&self, entry: &TensorEntry, device: &Device) -> Result<Tensor> {
        let bytes = &self.map[entry.bytes.clone()];
        if cfg!(target_endian = "little") {
            // Aligned little-endian F32/U32 data need no conversion.
            match entry.file_dtype {
                FileDType::F32 => {
                    if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
                        return Tensor::from_slice(device, v, &entry.shape);
                    }
                }
                FileDType::U32 => {
                    if let Ok(v) = bytemuck::try_cast_slice::<u8, u32>(bytes) {
                        return Tensor::from_slice(device, v, &entry.shape);
                    }
                }
                _ => {}
            }
        }
        match convert(&self.path, entry, bytes)? {
            HostData::F32(v) => Tensor::from_slice(device, &v, &entry.shape),
            HostData::U32(v) => Tensor::from_slice(device, &v, &entry.shape),
        }
    }

    /// Drops the mapping's pages of a tensor that has been converted, so that loading a
    /// file does not keep it resident (the pages are read from the file again if needed).
    fn release(&self, entry: &TensorEntry) {
        #[cfg(unix)]
        if !entry.bytes.is_empty() {
            // SAFETY: the mapping is a shared read-only mapping of a file, and nothing
            // borrows these bytes any more: MADV_DONTNEED only drops this process's page
            // table entries, and a later access reads the same bytes from the file again
            // (unlike for a private or anonymous mapping, whose contents it would zero).
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    entry.bytes.start,
                    entry.bytes.len(),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = entry;
    }
}

fn short_file(path: &FsPath, len: u64) -> Error {
    format_err(
        path,
        "byte 0",
        format!("file is {len} bytes, shorter than the 8-byte header length"),
    )
}

fn unsupported(dtype: &str) -> String {
    format!(
        "unsupported dtype {dtype:?} (Cinder loads F32, U32, and converts F16, BF16, F64, I64, \
         I32)"
    )
}

fn from_st(d: safetensors::Dtype) -> Option<FileDType> {
    FileDType::parse(&d.to_string())
}

/// A JSON error in the header, located by header byte and file offset.
fn json_err(path: &FsPath, e: &serde_json::Error) -> Error {
    // Headers are normally one line; the column then gives the file offset.
    let at = if e.line() == 1 {
        // serde_json's column counts the bytes read: the last one is where it stopped.
        let k = e.column().saturating_sub(1);
        format!("header byte {k} (file offset {})", 8 + k)
    } else {
        format!("header line {} column {}", e.line(), e.column())
    };
    format_err(path, at, format!("invalid JSON header: {e}"))
}

/// Validates the file's bytes: the `safetensors` crate's checks (header length, UTF-8,
/// JSON, dtypes, shapes against byte ranges, ranges tiling the data section up to the end
/// of the file) and Cinder's stricter ones ([`walk`]). Returns where the data section
/// starts and the crate's parsed header.
fn validate(path: &FsPath, map: &[u8]) -> Result<(usize, Metadata)> {
    let file_len = map.len();
    // Checked by `open` before mapping, again here: the file may have shrunk meanwhile.
    let Some(&len_bytes) = map.first_chunk::<8>() else {
        return Err(short_file(path, file_len as u64));
    };
    let n = u64::from_le_bytes(len_bytes);
    let parsed = SafeTensors::read_metadata(map);
    match &parsed {
        Err(SafeTensorError::HeaderTooLarge) => {
            return Err(format_err(
                path,
                "byte 0 (header length)",
                format!(
                    "header length {n} is over the limit of {} bytes",
                    super::MAX_HEADER_BYTES
                ),
            ));
        }
        Err(SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength) => {
            return Err(format_err(
                path,
                "byte 0 (header length)",
                format!(
                    "header length {n} runs past the end of the file ({} bytes follow it)",
                    file_len - 8
                ),
            ));
        }
        Err(SafeTensorError::InvalidHeader(e)) => {
            let k = e.valid_up_to();
            return Err(format_err(
                path,
                format!("header byte {k} (file offset {})", 8 + k),
                format!("the header is not UTF-8: {e}"),
            ));
        }
        _ => {}
    }
    // The crate has checked that the header lies within the file.
    let data_start = 8 + n as usize;
    let header = map
        .get(8..data_start)
        .ok_or_else(|| format_err(path, "byte 0 (header length)", "header length past the end"))?;
    let infos = walk(path, header)?;
    let (_, meta) = parsed.map_err(|e| {
        let data_len = (file_len - data_start) as u64;
        invalid_layout(path, e, &infos, data_start as u64, data_len)
    })?;
    Ok((data_start, meta))
}

/// The header's top-level object as an ordered list, so that duplicate names are seen
/// (the crate, reading it as a JSON map, keeps the last).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
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

/// Cinder's checks of the header, beyond the crate's: no duplicate or empty names, no
/// fields but `dtype`, `shape` and `data_offsets`, only the dtypes Cinder converts, and
/// metadata values that are strings. Each error names the field. Returns every tensor's
/// entry, in header order, to locate the crate's own errors.
fn walk(path: &FsPath, header: &[u8]) -> Result<Vec<(String, TensorInfo)>> {
    let entries: Entries = serde_json::from_slice(header).map_err(|e| json_err(path, &e))?;
    let mut names = HashSet::with_capacity(entries.0.len());
    let mut infos = Vec::with_capacity(entries.0.len());
    for (name, v) in &entries.0 {
        let at = |field: &str| format!("header field `{name}`{field}");
        if !names.insert(name.as_str()) {
            return Err(format_err(path, at(""), "duplicate name"));
        }
        if name == "__metadata__" {
            let obj = v.as_object().ok_or_else(|| {
                format_err(path, at(""), format!("expected an object, found {v}"))
            })?;
            if let Some((k, v)) = obj.iter().find(|(_, v)| !v.is_string()) {
                return Err(format_err(
                    path,
                    at(&format!(".{k}")),
                    format!("expected a string, found {v}"),
                ));
            }
            continue;
        }
        if name.is_empty() {
            return Err(format_err(path, at(""), "empty tensor name"));
        }
        let obj = v
            .as_object()
            .ok_or_else(|| format_err(path, at(""), format!("expected an object, found {v}")))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
        {
            return Err(format_err(
                path,
                at(&format!(".{k}")),
                "unknown field (expected dtype, shape, data_offsets)",
            ));
        }
        let field = |f: &str| {
            obj.get(f)
                .ok_or_else(|| format_err(path, at(&format!(".{f}")), "missing"))
        };
        let typed =
            |f: &str, e: serde_json::Error| format_err(path, at(&format!(".{f}")), e.to_string());
        let dtype = field("dtype")?;
        let dtype = match dtype.as_str() {
            Some(s) => {
                FileDType::parse(s).ok_or_else(|| format_err(path, at(".dtype"), unsupported(s)))?
            }
            None => {
                return Err(format_err(
                    path,
                    at(".dtype"),
                    format!("expected a string, found {dtype}"),
                ));
            }
        };
        let shape = Vec::<usize>::deserialize(field("shape")?).map_err(|e| typed("shape", e))?;
        let data_offsets = <(usize, usize)>::deserialize(field("data_offsets")?)
            .map_err(|e| typed("data_offsets", e))?;
        infos.push((
            name.clone(),
            TensorInfo {
                dtype: dtype.to_st(),
                shape,
                data_offsets,
            },
        ));
    }
    Ok(infos)
}

/// The crate's refusal of a header that [`walk`] accepted (byte ranges that do not tile
/// the data section, shapes that disagree with them), as an [`Error::Format`] naming the
/// tensor where the crate does not.
fn invalid_layout(
    path: &FsPath,
    e: SafeTensorError,
    infos: &[(String, TensorInfo)],
    data_start: u64,
    data_len: u64,
) -> Error {
    let describe = |info: &TensorInfo| {
        let (b, e) = info.data_offsets;
        format!(
            "shape {:?} of {} in data_offsets [{b}, {e}]",
            info.shape, info.dtype
        )
    };
    match e {
        SafeTensorError::InvalidOffset(name) => {
            let what = infos
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, i)| describe(i))
                .unwrap_or_default();
            format_err(
                path,
                format!("header field `{name}`.data_offsets"),
                format!(
                    "{what}: the byte ranges must tile the data section from 0 in order, \
                     without gaps or overlaps, each with begin <= end"
                ),
            )
        }
        SafeTensorError::TensorInvalidInfo
        | SafeTensorError::ValidationOverflow
        | SafeTensorError::MisalignedSlice => {
            // The crate names no tensor: ask it about each one alone.
            let field = if matches!(e, SafeTensorError::ValidationOverflow) {
                "shape"
            } else {
                "data_offsets"
            };
            let bad = infos.iter().find(|(n, i)| {
                let (b, e) = i.data_offsets;
                let alone = TensorInfo {
                    data_offsets: (0, e.saturating_sub(b)),
                    ..i.clone()
                };
                Metadata::new(None, vec![(n.clone(), alone)]).is_err()
            });
            match bad {
                Some((n, i)) => format_err(
                    path,
                    format!("header field `{n}`.{field}"),
                    format!("{e}: {}", describe(i)),
                ),
                None => format_err(path, "header", e.to_string()),
            }
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            let covered = infos
                .iter()
                .map(|(_, i)| i.data_offsets.1 as u64)
                .max()
                .unwrap_or(0);
            format_err(
                path,
                format!("byte {}", data_start + covered.min(data_len)),
                format!(
                    "the data section is {data_len} bytes but the tensors cover {covered} bytes \
                     (file truncated or with trailing bytes)"
                ),
            )
        }
        SafeTensorError::InvalidHeaderDeserialization(e) | SafeTensorError::JsonError(e) => {
            json_err(path, &e)
        }
        other => format_err(path, "header", other.to_string()),
    }
}

/// A host vector for `entry`'s elements, or [`Error::Io`] when the host cannot allocate it.
fn host_vec<T>(path: &FsPath, entry: &TensorEntry) -> Result<Vec<T>> {
    let n = entry.numel();
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        io_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!(
                    "tensor `{}`: cannot allocate {} bytes of host memory for it",
                    entry.name,
                    n.saturating_mul(size_of::<T>())
                ),
            ),
        )
    })?;
    Ok(v)
}

/// Converts a tensor's bytes (validated against its shape and dtype) to Cinder's dtypes.
fn convert(path: &FsPath, entry: &TensorEntry, bytes: &[u8]) -> Result<HostData> {
    let at = |i: usize| format!("tensor `{}` element {i}", entry.name);
    let b2 = |c: &[u8]| [c[0], c[1]];
    let b4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let b8 = |c: &[u8]| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
    Ok(match entry.file_dtype {
        FileDType::F32 => {
            let mut v = host_vec(path, entry)?;
            v.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(b4(c))));
            HostData::F32(v)
        }
        FileDType::U32 => {
            let mut v = host_vec(path, entry)?;
            v.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes(b4(c))));
            HostData::U32(v)
        }
        FileDType::F16 => {
            let mut v = host_vec(path, entry)?;
            v.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes(b2(c)).to_f32()),
            );
            HostData::F32(v)
        }
        FileDType::BF16 => {
            let mut v = host_vec(path, entry)?;
            v.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes(b2(c)).to_f32()),
            );
            HostData::F32(v)
        }
        FileDType::F64 => {
            let mut v = host_vec(path, entry)?;
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let d = f64::from_le_bytes(b8(c));
                let f = d as f32;
                if d.is_finite() && !f.is_finite() {
                    return Err(format_err(
                        path,
                        at(i),
                        format!("F64 value {d} is outside the f32 range"),
                    ));
                }
                v.push(f);
            }
            HostData::F32(v)
        }
        FileDType::I64 => {
            let mut v = host_vec(path, entry)?;
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let x = i64::from_le_bytes(b8(c));
                v.push(u32::try_from(x).map_err(|_| {
                    format_err(path, at(i), format!("I64 value {x} does not fit in u32"))
                })?);
            }
            HostData::U32(v)
        }
        FileDType::I32 => {
            let mut v = host_vec(path, entry)?;
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                let x = i32::from_le_bytes(b4(c));
                v.push(
                    u32::try_from(x).map_err(|_| {
                        format_err(path, at(i), format!("I32 value {x} is negative"))
                    })?,
                );
            }
            HostData::U32(v)
        }
    })
}

/// Reads and validates a safetensors file into host memory: tensors sorted by name, F32
/// and U32 as they are, F16 and BF16 converted to f32 exactly, F64 rounded to the nearest
/// f32, I64 and I32 converted to u32. The whole file ends up in host memory; to load a
/// large file tensor by tensor, use [`CheckpointFile`] (or [`load`], or `VarStore::load`).
///
/// Returns the errors of [`CheckpointFile::open`] for a missing or malformed file, and
/// those of [`CheckpointFile::read_tensor`]: [`Error::Format`] naming the tensor and the
/// element for a value that does not convert (a finite F64 outside f32's range, a
/// negative or too large integer), [`Error::Io`] when host memory runs out. Never panics.
pub fn read(path: impl AsRef<FsPath>) -> Result<Checkpoint> {
    let file = CheckpointFile::open(path)?;
    let tensors = file
        .tensors()
        .iter()
        .map(|t| file.read_tensor(&t.name))
        .collect::<Result<Vec<_>>>()?;
    Ok(Checkpoint {
        tensors,
        metadata: file.metadata,
    })
}

/// Loads every tensor of a safetensors file onto `device`, sorted by name, converted as
/// [`read`] describes, one tensor at a time from the mapped file
/// ([`CheckpointFile::load_tensor`]). Returns the errors of [`read`], or `Err` when the
/// device cannot hold a tensor.
pub fn load(path: impl AsRef<FsPath>, device: &Device) -> Result<NamedTensors> {
    Ok(load_with_metadata(path, device)?.0)
}

/// [`load`], also returning the file's `__metadata__` (empty when it has none). Errors as
/// [`load`].
pub fn load_with_metadata(
    path: impl AsRef<FsPath>,
    device: &Device,
) -> Result<(NamedTensors, BTreeMap<String, String>)> {
    let file = CheckpointFile::open(path)?;
    let tensors = file
        .tensors()
        .iter()
        .map(|t| {
            let data = file.upload(t, device);
            file.release(t);
            Ok((t.name.clone(), data?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((tensors, file.metadata))
}
