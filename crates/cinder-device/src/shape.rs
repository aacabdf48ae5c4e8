//! Shape arithmetic shared by the ops: element counts, strides, broadcasting, axis
//! normalization. Every product of dimensions here is checked: a shape whose size does not
//! fit is an `Err` (or, for the infallible helpers, a value no check accepts), never a
//! wrapped number or a debug-build panic.

use crate::error::{Error, Result};

/// Most dimensions a strided kernel (broadcasting, permute) handles after adjacent
/// dimensions are merged.
pub const MAX_DIMS: usize = 8;

/// Most elements a tensor may have: the kernels index elements (and pass sizes and
/// strides) as 32-bit integers.
pub const MAX_ELEMENTS: usize = u32::MAX as usize;

/// Number of elements of a shape (1 for a scalar `[]`). Never panics: a product that
/// overflows `usize` gives `usize::MAX`, which no tensor can have (see [`checked_numel`]);
/// a shape with a zero dimension gives 0.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

/// The product of `dims` with checked arithmetic, or [`Error::TooLarge`] naming `op` and
/// `shape` (the shape the sizes come from) when it overflows `usize`.
pub fn checked_product(op: &'static str, shape: &[usize], dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| overflow(op, shape))
}

/// `a + b`, or [`Error::TooLarge`] naming `op` and `shape` when it overflows `usize`.
pub fn checked_sum(op: &'static str, shape: &[usize], a: usize, b: usize) -> Result<usize> {
    a.checked_add(b).ok_or_else(|| overflow(op, shape))
}

/// The error of a size that overflows: [`Error::TooLarge`] with `bytes = u64::MAX`.
fn overflow(op: &'static str, shape: &[usize]) -> Error {
    Error::TooLarge {
        op,
        shape: shape.to_vec(),
        bytes: u64::MAX,
        limit: MAX_ELEMENTS as u64 * 4,
    }
}

/// The number of elements of `shape` when it is a valid tensor shape, else
/// [`Error::TooLarge`] naming `op`. Valid means that the product of its *non-zero*
/// dimensions is at most [`MAX_ELEMENTS`], so the element count, every dimension and every
/// contiguous stride fit the kernels' 32-bit integers, even for an empty tensor (`[0, 2^40]`
/// is refused: its stride 2^40 would not fit). Every [`crate::DeviceTensor`] has a valid
/// shape.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| overflow(op, shape))?;
    if nonzero > MAX_ELEMENTS {
        return Err(Error::TooLarge {
            op,
            shape: shape.to_vec(),
            bytes: (nonzero as u64).saturating_mul(4),
            limit: MAX_ELEMENTS as u64 * 4,
        });
    }
    Ok(numel(shape))
}

/// Row-major contiguous strides of a shape, in elements. Exact for every valid tensor shape
/// ([`checked_numel`]); never panics (a stride that would overflow saturates at
/// `usize::MAX`).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

/// The numpy broadcast of two shapes, or [`Error::ShapeMismatch`] naming `op`.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::shapes(op, a, b));
        };
    }
    Ok(out)
}

/// Strides (in elements) for reading a contiguous tensor of shape `src` as if broadcast to
/// `out` (a broadcast dimension gets stride 0). Returns [`Error::ShapeMismatch`] naming `op`
/// when `src` does not broadcast to `out`.
pub fn broadcast_strides(op: &'static str, src: &[usize], out: &[usize]) -> Result<Vec<usize>> {
    let off = out
        .len()
        .checked_sub(src.len())
        .ok_or_else(|| Error::shapes(op, src, out))?;
    if src.iter().zip(&out[off..]).any(|(&s, &o)| s != o && s != 1) {
        return Err(Error::shapes(op, src, out));
    }
    let s = strides(src);
    Ok((0..out.len())
        .map(|i| {
            if i < off || src[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect())
}

/// Merges adjacent dimensions that every operand walks contiguously, so strided kernels see
/// as few dimensions as possible. `operands` are stride vectors over `shape`. Returns the
/// merged shape and strides (at least one dimension), or [`Error::InvalidArgument`] naming
/// `op` when an operand's stride count is not the rank, and [`Error::TooLarge`] when a
/// merged size overflows.
pub fn coalesce(
    op: &'static str,
    shape: &[usize],
    operands: &[Vec<usize>],
) -> Result<(Vec<usize>, Vec<Vec<usize>>)> {
    if let Some(bad) = operands.iter().find(|s| s.len() != shape.len()) {
        return Err(Error::invalid(
            op,
            format!("{} strides for a shape of rank {}", bad.len(), shape.len()),
            shape,
        ));
    }
    let mut sh: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); operands.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !sh.is_empty()
            && operands
                .iter()
                .enumerate()
                .all(|(k, s)| s[d].checked_mul(shape[d]) == Some(st[k][st[k].len() - 1]));
        if mergeable {
            let last = sh.len() - 1;
            sh[last] = checked_product(op, shape, &[sh[last], shape[d]])?;
            for (k, s) in operands.iter().enumerate() {
                let last = st[k].len() - 1;
                st[k][last] = s[d];
            }
        } else {
            sh.push(shape[d]);
            for (k, s) in operands.iter().enumerate() {
                st[k].push(s[d]);
            }
        }
    }
    if sh.is_empty() {
        sh.push(1);
        for s in st.iter_mut() {
            s.push(0);
        }
    }
    Ok((sh, st))
}

/// Turns a possibly negative axis into an index below `rank`, or [`Error::AxisOutOfRange`].
pub fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let rank = shape.len() as isize;
    let a = if axis < 0 { axis + rank } else { axis };
    if a < 0 || a >= rank.max(0) {
        return Err(Error::AxisOutOfRange {
            op,
            axis,
            shape: shape.to_vec(),
        });
    }
    Ok(a as usize)
}

/// Splits a shape around `axis` into (outer, len, inner) element counts (as [`numel`]).
/// `axis` should be below the rank; a larger one reads as a trailing dimension of size 1
/// (never a panic).
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let a = axis.min(shape.len());
    (
        numel(&shape[..a]),
        shape.get(a).copied().unwrap_or(1),
        numel(shape.get(a + 1..).unwrap_or(&[])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_coalesce() {
        assert_eq!(
            broadcast_shapes("t", &[3, 1, 5], &[4, 1]).unwrap(),
            vec![3, 4, 5]
        );
        assert!(broadcast_shapes("t", &[3, 2], &[4, 2]).is_err());
        assert_eq!(
            broadcast_strides("t", &[4, 1], &[3, 4, 5]).unwrap(),
            vec![0, 1, 0]
        );
        assert!(broadcast_strides("t", &[4, 2], &[3, 4, 5]).is_err());
        assert!(broadcast_strides("t", &[1, 4, 1], &[4, 5]).is_err());
        let (sh, st) =
            coalesce("t", &[2, 3, 4], &[strides(&[2, 3, 4]), strides(&[2, 3, 4])]).unwrap();
        assert_eq!(sh, vec![24]);
        assert_eq!(st, vec![vec![1], vec![1]]);
        assert!(coalesce("t", &[2, 3, 4], &[vec![1]]).is_err());
        let (sh, st) = coalesce("t", &[2, 3, 4], &[strides(&[2, 3, 4]), vec![0, 4, 1]]).unwrap();
        assert_eq!(sh, vec![2, 12]);
        assert_eq!(st, vec![vec![12, 1], vec![0, 1]]);
        assert_eq!(normalize_axis("t", -1, &[2, 3]).unwrap(), 1);
        assert!(normalize_axis("t", 2, &[2, 3]).is_err());
        assert!(normalize_axis("t", isize::MIN, &[2, 3]).is_err());
        assert_eq!(split_at_axis(&[2, 3, 4], 1), (2, 3, 4));
        assert_eq!(split_at_axis(&[2, 3], 5), (6, 1, 1));
    }

    #[test]
    fn sizes_are_checked() {
        let huge = [(1usize << 62) + 1, 4];
        assert_eq!(numel(&huge), usize::MAX);
        assert_eq!(numel(&[usize::MAX, usize::MAX, 0]), 0);
        assert!(checked_numel("t", &huge).is_err());
        assert!(checked_numel("t", &[1 << 16, 1 << 16]).is_err());
        assert!(checked_numel("t", &[0, 1 << 40]).is_err());
        assert_eq!(checked_numel("t", &[0, 1 << 20]).unwrap(), 0);
        assert_eq!(
            checked_numel("t", &[u32::MAX as usize]).unwrap(),
            MAX_ELEMENTS
        );
        assert_eq!(checked_numel("t", &[]).unwrap(), 1);
        assert_eq!(strides(&[0, usize::MAX, 2]), vec![usize::MAX, 2, 1]);
        assert!(checked_product("t", &[], &[usize::MAX, 2]).is_err());
        assert_eq!(checked_product("t", &[], &[3, 5]).unwrap(), 15);
        assert!(checked_sum("t", &[], usize::MAX, 1).is_err());
    }
}
