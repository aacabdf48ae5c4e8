//! The IDX format (MNIST, Fashion-MNIST): a 4-byte magic number `0 0 type ndims`, `ndims`
//! big-endian u32 dimensions, then the data. Files may be gzip-compressed (`.gz`).

use std::io::Read;
use std::path::Path;

use cinder_device::{Error, Result};

/// An IDX array of unsigned bytes (type code 0x08, the only one MNIST-format files use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

fn format(path: &Path, at: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        at: at.into(),
        msg: msg.into(),
    }
}

/// Reads a whole file, decompressing it when it starts with the gzip magic (whatever its
/// name). A gzip file may hold several members one after another (as `cat a.gz b.gz`
/// makes, or `pigz`/`bgzip` write); their contents are concatenated, as `gunzip` does.
///
/// Returns [`Error::Io`] naming the file when it cannot be read, and [`Error::Format`]
/// naming the file and the member's byte offset for corrupt or truncated gzip data, and
/// for bytes after the last member that do not start another member (trailing garbage,
/// which `gunzip` only warns about).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.starts_with(&GZIP_MAGIC) {
        gunzip(path, &raw)
    } else {
        Ok(raw)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses every gzip member of `raw` (read from `path`, named in errors).
fn gunzip(path: &Path, raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    let mut member = 0usize;
    while !rest.is_empty() {
        let offset = raw.len() - rest.len();
        if !rest.starts_with(&GZIP_MAGIC) {
            return Err(format(
                path,
                format!("offset {offset}"),
                format!(
                    "{} bytes of trailing data after the last gzip member (member {} ended \
                     here); the file is not a clean gzip stream",
                    rest.len(),
                    member - 1
                ),
            ));
        }
        // The bufread decoder consumes exactly one member: header, deflate data, trailer.
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        dec.read_to_end(&mut out).map_err(|e| {
            format(
                path,
                format!("offset {offset} (gzip member {member})"),
                format!("corrupt or truncated gzip data: {e}"),
            )
        })?;
        let left = dec.into_inner();
        if left.len() == rest.len() {
            // Nothing consumed: cannot happen after a successful read, but never loop.
            return Err(format(
                path,
                format!("offset {offset} (gzip member {member})"),
                "empty gzip member",
            ));
        }
        rest = left;
        member += 1;
    }
    Ok(out)
}

/// Parses IDX bytes read from `path` (named in errors). Returns [`Error::Format`] for a bad
/// magic number, a type other than unsigned byte, or a length that disagrees with the
/// dimensions (naming the expected and actual byte counts).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(format(
            path,
            "offset 0",
            format!("{} bytes, too short for the IDX magic number", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format(
            path,
            "offset 0",
            format!(
                "magic {:02x?} does not start with two zero bytes: not an IDX file",
                &bytes[..4]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format(
            path,
            "offset 2",
            format!(
                "data type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        return Err(format(path, "offset 3", "zero dimensions"));
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        return Err(format(
            path,
            "offset 4",
            format!(
                "{nd} dimensions need a {header}-byte header, the file has {} bytes",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format(path, "dimensions", format!("{dims:?} overflow")))?;
    let got = bytes.len() - header;
    if got != want {
        return Err(format(
            path,
            format!("offset {header}"),
            format!("dimensions {dims:?} need {want} data bytes, the file has {got}"),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file, raw or gzip. Errors as [`read_maybe_gz`] and [`parse`].
pub fn read(path: &Path) -> Result<IdxArray> {
    parse(path, &read_maybe_gz(path)?)
}

/// Encodes `data` with `dims` as IDX bytes (unsigned byte type), for tests and tools.
/// Returns `Err` when the data length disagrees with the dimensions or there are more than
/// 255 dimensions.
pub fn encode(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    if dims.iter().product::<usize>() != data.len() || dims.len() > 255 || dims.is_empty() {
        return Err(Error::invalid(
            "idx::encode",
            "data length disagrees with the dimensions",
            dims,
        ));
    }
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}
