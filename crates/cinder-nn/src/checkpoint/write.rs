//! Writing: tensors read back from the device, checked, and written with the reference
//! layout to a temp file that is fsynced and renamed over the target.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cinder_autograd::Tensor;
use cinder_device::{DType, Error, Result};
use safetensors::tensor::TensorInfo;
use serde::ser::{SerializeMap, Serializer};

use super::{FileDType, MAX_HEADER_BYTES, format_err, io_err};

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

/// The JSON header as the reference writer lays it out: `__metadata__` first (only when
/// non-empty, its keys sorted, so the same input gives the same bytes), then the tensors in
/// data order, with the `safetensors` crate's own field layout.
struct Header<'a> {
    metadata: &'a BTreeMap<String, String>,
    tensors: &'a [(&'a str, TensorInfo)],
}

impl serde::Serialize for Header<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let with_meta = !self.metadata.is_empty();
        let mut m = s.serialize_map(Some(self.tensors.len() + usize::from(with_meta)))?;
        if with_meta {
            m.serialize_entry("__metadata__", self.metadata)?;
        }
        for (name, info) in self.tensors {
            m.serialize_entry(name, info)?;
        }
        m.end()
    }
}

/// A tensor's elements as read back from the device and written to the file.
enum Blob {
    F32(Vec<f32>),
    U32(Vec<u32>),
    /// A U32 tensor widened to PyTorch's int64.
    I64(Vec<i64>),
}

impl Blob {
    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        match self {
            Blob::F32(v) => w.write_all(&le_bytes(v)),
            Blob::U32(v) => w.write_all(&le_bytes(v)),
            Blob::I64(v) => w.write_all(&le_bytes(v)),
        }
    }
}

/// `v`'s bytes, little-endian: the slice itself on a little-endian host, a swapped copy
/// elsewhere.
fn le_bytes<T: bytemuck::Pod>(v: &[T]) -> Cow<'_, [u8]> {
    let bytes: &[u8] = bytemuck::cast_slice(v);
    if cfg!(target_endian = "little") {
        return Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for e in out.chunks_exact_mut(size_of::<T>()) {
        e.reverse();
    }
    Cow::Owned(out)
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

/// Writes `tensors` with `metadata` to a temp file next to `path` and fsyncs it, without
/// renaming: the first half of [`save`]. The tensors are read back from the device and
/// written one at a time, so the host holds one tensor's data at a time. Returns
/// `Err(InvalidArgument)` for an empty, duplicate or `__metadata__` name (before creating
/// any file), `Err(Format)` when the header would exceed [`MAX_HEADER_BYTES`] (before
/// creating any file), `Err(InvalidArgument)` naming the first tensor (in the order
/// given) that holds a NaN or an infinity (see [`SaveOptions`] to write them anyway), the
/// device's error when a read-back fails, and `Err(Io)` naming the temp file when it
/// cannot be created or written; after any `Err` no temp file remains and the target is
/// untouched. Stale temp files of dead writers of the same target are removed first
/// ([`remove_stale_temp_files`]).
pub fn prepare_save(
    path: impl AsRef<FsPath>,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<PendingSave> {
    prepare_save_with(path, tensors, metadata, &SaveOptions::default())
}

/// [`prepare_save`] with a file dtype for some tensors: each name in `file_dtypes` is
/// written as that dtype instead of its own. The one conversion is U32 as I64 (exact), how
/// `VarStore::save` writes BatchNorm's `num_batches_tracked` so that PyTorch reads its own
/// `int64` counter; [`super::read`] converts it back. Returns the errors of [`prepare_save`], and
/// `Err(InvalidArgument)` (before creating any file) for a name in `file_dtypes` that
/// `tensors` does not have or a conversion other than U32 as I64.
pub fn prepare_save_as(
    path: impl AsRef<FsPath>,
    tensors: &[(String, Tensor)],
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
    tensors: &[(String, Tensor)],
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
    // The reference writer's order: by dtype, widest first (so every tensor is aligned to
    // its element size in a mapped file), then by name.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        (fds[b].to_st().cmp(&fds[a].to_st())).then_with(|| tensors[a].0.cmp(&tensors[b].0))
    });
    let mut offset = 0;
    let entries: Vec<(&str, TensorInfo)> = order
        .iter()
        .map(|&i| {
            let (n, t) = &tensors[i];
            let end = offset + t.numel() * fds[i].size();
            let info = TensorInfo {
                dtype: fds[i].to_st(),
                shape: t.shape().to_vec(),
                data_offsets: (offset, end),
            };
            offset = end;
            (n.as_str(), info)
        })
        .collect();
    let header = Header {
        metadata,
        tensors: &entries,
    };
    let mut header = serde_json::to_vec(&header)
        .map_err(|e| format_err(path, "header", format!("cannot encode the header: {e}")))?;
    header.resize(header.len().next_multiple_of(8), b' ');
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
    let io = |e| io_err(&temp, e);
    w.write_all(&(header.len() as u64).to_le_bytes())
        .and_then(|_| w.write_all(&header))
        .map_err(io)?;
    // One tensor at a time, in file order: read back, checked, written, dropped, so the
    // host holds one tensor's data at a time. A refused tensor stops the writing; the
    // tensors given before it are still checked, to name the first refused one in the
    // order given. Any `Err` drops `pending`, which removes the temp file.
    let mut refused: Option<(usize, Error)> = None;
    for &i in &order {
        if refused.as_ref().is_some_and(|(j, _)| *j < i) {
            continue;
        }
        let (name, t) = &tensors[i];
        let blob = match (t.dtype(), fds[i]) {
            (DType::F32, _) => Blob::F32(t.to_vec::<f32>()?),
            (DType::U32, FileDType::I64) => {
                Blob::I64(t.to_vec::<u32>()?.into_iter().map(i64::from).collect())
            }
            (DType::U32, _) => Blob::U32(t.to_vec::<u32>()?),
        };
        if let Blob::F32(v) = &blob
            && !opts.allow_non_finite
            && let Some(first) = v.iter().position(|x| !x.is_finite())
        {
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            let e = non_finite_error(op, path, name, &t.shape(), (bad, first, v[first]));
            refused = Some((i, e));
            continue;
        }
        if refused.is_none() {
            blob.write_to(&mut w).map_err(io)?;
        }
    }
    if let Some((_, e)) = refused {
        return Err(e);
    }
    w.flush().map_err(io)?;
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
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    prepare_save(path, tensors, metadata)?.commit()
}

/// [`save`] with a file dtype for some tensors, as [`prepare_save_as`] (whose errors it
/// returns, with those of [`PendingSave::commit`]). `VarStore::save` calls it with
/// [`crate::VarStore::file_dtypes`]; so can a combined model + optimizer checkpoint, with the
/// names prefixed as the tensors are.
pub fn save_as(
    path: impl AsRef<FsPath>,
    tensors: &[(String, Tensor)],
    file_dtypes: &BTreeMap<String, FileDType>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    prepare_save_as(path, tensors, file_dtypes, metadata)?.commit()
}

/// [`save`] with [`SaveOptions`] (file dtypes, NaN and infinities allowed or not), as
/// [`prepare_save_with`] then [`PendingSave::commit`], whose errors it returns.
pub fn save_with(
    path: impl AsRef<FsPath>,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
    opts: &SaveOptions,
) -> Result<()> {
    prepare_save_with(path, tensors, metadata, opts)?.commit()
}
