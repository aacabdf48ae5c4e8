//! Shape arithmetic shared by the ops: strides, broadcasting, axis normalization.

use crate::error::{Error, Result};

/// Most dimensions a strided kernel (broadcasting, permute) handles after adjacent
/// dimensions are merged.
pub const MAX_DIMS: usize = 8;

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major contiguous strides of a shape, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
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
/// `out` (a broadcast dimension gets stride 0). `src` must broadcast to `out`.
pub fn broadcast_strides(src: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(src);
    let off = out.len() - src.len();
    (0..out.len())
        .map(|i| {
            if i < off || src[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// Merges adjacent dimensions that every operand walks contiguously, so strided kernels see
/// as few dimensions as possible. `operands` are stride vectors over `shape`. Returns the
/// merged shape and strides (at least one dimension).
pub fn coalesce(shape: &[usize], operands: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
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
                .all(|(k, s)| st[k][st[k].len() - 1] == s[d] * shape[d]);
        if mergeable {
            *sh.last_mut().expect("non-empty") *= shape[d];
            for (k, s) in operands.iter().enumerate() {
                *st[k].last_mut().expect("non-empty") = s[d];
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
    (sh, st)
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

/// Splits a shape around `axis` into (outer, len, inner) element counts.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
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
        assert_eq!(broadcast_strides(&[4, 1], &[3, 4, 5]), vec![0, 1, 0]);
        let (sh, st) = coalesce(&[2, 3, 4], &[strides(&[2, 3, 4]), strides(&[2, 3, 4])]);
        assert_eq!(sh, vec![24]);
        assert_eq!(st, vec![vec![1], vec![1]]);
        let (sh, st) = coalesce(&[2, 3, 4], &[strides(&[2, 3, 4]), vec![0, 4, 1]]);
        assert_eq!(sh, vec![2, 12]);
        assert_eq!(st, vec![vec![12, 1], vec![0, 1]]);
        assert_eq!(normalize_axis("t", -1, &[2, 3]).unwrap(), 1);
        assert!(normalize_axis("t", 2, &[2, 3]).is_err());
    }
}
