//! Small dense linear algebra: batched Cholesky factorization, batched triangular solve and
//! a batched symmetric eigen-decomposition (cyclic Jacobi), plus the compositions the
//! classical pipelines use (`cholesky_solve`, `tri_inverse`), and a NaN/Inf mask for input
//! validation. Kernels in
//! `shaders/linalg.wgsl`.
//!
//! Matrices are the last two dimensions of a contiguous f32 tensor (`[..., n, n]`); the
//! leading dimensions are a batch. The kernels run one invocation per matrix (or per
//! right-hand-side column for the solve), serially from global memory: they are meant for
//! matrices up to a few hundred rows (a GMM component's covariance, a PCA block's Gram
//! matrix, a regression's normal equations), where a serial loop beats anything with
//! barriers on lavapipe. A failed factorization is reported through an info tensor, so
//! nothing is read back unless the caller asks ([`DeviceTensor::cholesky_checked`] does).

use crate::error::{Error, Result};
use crate::kernel::{ELEMS_PER_INVOCATION, Kernel, Params, grid_1d};
use crate::shape::numel;
use crate::tensor::{DType, DeviceTensor};

/// Invocations per workgroup (`WG` in the shader).
const WG: u32 = 64;

/// Jacobi sweeps at most (each sweep rotates every off-diagonal pair once; f32 converges in
/// well under 15 for the sizes used here).
const MAX_SWEEPS: u32 = 30;

fn kernel(entry: &'static str, reads: u32, writes: u32) -> Kernel {
    Kernel::new("linalg", entry, reads, writes).with_workgroup((WG, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        kernel("cholesky", 1, 2),
        kernel("tri_solve", 2, 1),
        kernel("sym_eig", 1, 3),
        kernel("gs_step", 0, 1),
        kernel("gs_normalize", 0, 1),
        kernel("nonfinite_mask", 1, 1),
    ]
}

/// Parameters in the order of `struct P` in `linalg.wgsl`.
#[allow(clippy::too_many_arguments)]
fn params(
    n: usize,
    m: usize,
    batch: usize,
    t_stride: usize,
    lower: bool,
    trans: bool,
    max_sweeps: u32,
    step: usize,
) -> Params {
    Params::new()
        .usize(n)
        .usize(m)
        .usize(batch)
        .usize(t_stride)
        .u32(lower as u32)
        .u32(trans as u32)
        .u32(max_sweeps)
        .usize(step)
}

/// Checks that `t` is an f32 batch of square matrices; returns (batch shape, n).
fn square(op: &'static str, t: &DeviceTensor) -> Result<(Vec<usize>, usize)> {
    t.expect_dtype(op, DType::F32)?;
    let s = t.shape();
    if s.len() < 2 || s[s.len() - 1] != s[s.len() - 2] {
        return Err(Error::invalid(
            op,
            "expected square matrices [..., n, n]",
            s,
        ));
    }
    Ok((s[..s.len() - 2].to_vec(), s[s.len() - 1]))
}

impl DeviceTensor {
    /// Cholesky factorization of a batch of symmetric positive-definite matrices
    /// `[..., n, n]` (only the lower triangle is read): returns `(l, info)` with `l` lower
    /// triangular (`a = l l^T`, upper triangle zero) and `info` a u32 tensor of the batch
    /// shape holding 0 for a successful factorization, or `j + 1` when the leading minor of
    /// order `j + 1` is not positive definite (columns `j..` of that `l` are then zero).
    /// Nothing is read back. Returns `Err` for u32 input or a non-square shape.
    pub fn cholesky(&self) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "cholesky";
        let (batch_shape, n) = square(op, self)?;
        let batch = numel(&batch_shape);
        let dev = self.device();
        let l = DeviceTensor::uninit_for(op, dev, self.shape(), DType::F32)?;
        let info = DeviceTensor::uninit_for(op, dev, &batch_shape, DType::U32)?;
        if batch == 0 {
            return Ok((l, info));
        }
        dev.dispatch(
            &kernel("cholesky", 1, 2),
            &[self],
            &[&l, &info],
            &params(n, 0, batch, 0, true, false, 0, 0),
            grid_1d(batch, WG)?,
        )?;
        Ok((l, info))
    }

    /// [`DeviceTensor::cholesky`] that reads the info tensor back (one submit and wait) and
    /// returns [`Error::InvalidArgument`] naming the first matrix that is not positive
    /// definite and the failing minor. Otherwise errors as [`DeviceTensor::cholesky`].
    pub fn cholesky_checked(&self) -> Result<DeviceTensor> {
        let (l, info) = self.cholesky()?;
        let flags = info.to_vec::<u32>()?;
        if let Some((b, &j)) = flags.iter().enumerate().find(|(_, j)| **j != 0) {
            return Err(Error::invalid(
                "cholesky",
                format!(
                    "matrix {b} of the batch is not positive definite (leading minor of order {j})"
                ),
                self.shape(),
            ));
        }
        Ok(l)
    }

    /// Solves `op(T) x = rhs` for `x`, where `self` is the triangular `T` (`[..., n, n]`,
    /// `lower` says which triangle holds it; the other is never read) and `op(T)` is `T`
    /// or, with `transpose`, `T^T`. `rhs` is `[..., n, m]`; `T`'s batch must equal `rhs`'s or
    /// have one matrix (used for the whole batch); a 2-D `T` with a 3-D `rhs` is allowed.
    /// A zero on the diagonal gives infinities or NaN (the kernel does not check; factor
    /// with [`DeviceTensor::cholesky`] and look at its info first). Returns `Err` on a dtype
    /// or shape mismatch.
    pub fn tri_solve(
        &self,
        rhs: &DeviceTensor,
        lower: bool,
        transpose: bool,
    ) -> Result<DeviceTensor> {
        let op = "tri_solve";
        let (tb, n) = square(op, self)?;
        rhs.expect_dtype(op, DType::F32)?;
        let rs = rhs.shape();
        if rs.len() < 2 || rs[rs.len() - 2] != n {
            return Err(Error::shapes(op, self.shape(), rs));
        }
        let m = rs[rs.len() - 1];
        let rb = &rs[..rs.len() - 2];
        let batch = numel(rb);
        let t_stride = if numel(&tb) == 1 {
            0
        } else if tb == rb {
            n * n
        } else {
            return Err(Error::shapes(op, self.shape(), rs));
        };
        let dev = self.device();
        let out = DeviceTensor::uninit_for(op, dev, rs, DType::F32)?;
        if batch * m == 0 || n == 0 {
            return Ok(out);
        }
        dev.dispatch(
            &kernel("tri_solve", 2, 1),
            &[self, rhs],
            &[&out],
            &params(n, m, batch, t_stride, lower, transpose, 0, 0),
            grid_1d(batch * m, WG)?,
        )?;
        Ok(out)
    }

    /// The inverse of a batch of triangular matrices (`lower` as in
    /// [`DeviceTensor::tri_solve`]), by solving against the identity. Errors as
    /// [`DeviceTensor::tri_solve`].
    pub fn tri_inverse(&self, lower: bool) -> Result<DeviceTensor> {
        let (_, n) = square("tri_inverse", self)?;
        let eye = DeviceTensor::eye(self.device(), n, n)?;
        let rhs = eye.broadcast_to(self.shape())?;
        self.tri_solve(&rhs, lower, false)
    }

    /// Solves `a x = rhs` given `self = l`, the lower Cholesky factor of `a` (two triangular
    /// solves: `l y = rhs`, then `l^T x = y`). Shapes and errors as
    /// [`DeviceTensor::tri_solve`].
    pub fn cholesky_solve(&self, rhs: &DeviceTensor) -> Result<DeviceTensor> {
        let y = self.tri_solve(rhs, true, false)?;
        self.tri_solve(&y, true, true)
    }

    /// Eigen-decomposition of a batch of symmetric matrices `[..., n, n]` by cyclic Jacobi
    /// rotations: returns `(w, v)` with `w` `[..., n]` the eigenvalues in descending order
    /// and `v` `[..., n, n]` the matching orthonormal eigenvectors in columns
    /// (`a v = v diag(w)`). The input is symmetrized (`(a + a^T) / 2`) first. Signs of the
    /// eigenvectors are not normalized. Returns `Err` for u32 input or a non-square shape.
    pub fn sym_eig(&self) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "sym_eig";
        let (batch_shape, n) = square(op, self)?;
        let batch = numel(&batch_shape);
        let dev = self.device();
        let mut w_shape = batch_shape.clone();
        w_shape.push(n);
        let w = DeviceTensor::uninit_for(op, dev, &w_shape, DType::F32)?;
        let v = DeviceTensor::uninit_for(op, dev, self.shape(), DType::F32)?;
        if batch == 0 || n == 0 {
            return Ok((w, v));
        }
        let work = DeviceTensor::uninit_for(op, dev, self.shape(), DType::F32)?;
        dev.dispatch(
            &kernel("sym_eig", 1, 3),
            &[self],
            &[&w, &v, &work],
            &params(n, 0, batch, 0, false, false, MAX_SWEEPS, 0),
            grid_1d(batch, WG)?,
        )?;
        Ok((w, v))
    }

    /// Orthonormalizes the columns of a batch of `[..., n, m]` matrices by modified
    /// Gram-Schmidt, twice over (columns normalized, `m - 1` projection steps, normalized,
    /// projections again, normalized), which keeps them orthonormal to f32 precision. A
    /// column that is numerically dependent on the earlier ones (residual norm under 1e-4 of
    /// its own norm) comes back as zeros, so the result has `rank` non-zero orthonormal
    /// columns spanning the input's column space. Runs `2 m + 1` small dispatches; nothing is
    /// read back.
    /// Returns `Err` for u32 input or rank below 2.
    pub fn orthonormalize(&self) -> Result<DeviceTensor> {
        let op = "orthonormalize";
        self.expect_dtype(op, DType::F32)?;
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::invalid(op, "expected matrices [..., n, m]", s));
        }
        let (n, m) = (s[s.len() - 2], s[s.len() - 1]);
        let batch = numel(&s[..s.len() - 2]);
        let z = self.deep_clone()?;
        if batch * m * n == 0 {
            return Ok(z);
        }
        let dev = self.device();
        let groups = grid_1d(batch * m, WG)?;
        let norm = |drop: usize| -> Result<()> {
            let p = params(n, m, batch, 0, false, false, 0, drop);
            dev.dispatch(&kernel("gs_normalize", 0, 1), &[], &[&z], &p, groups)
        };
        norm(0)?;
        for _ in 0..2 {
            for j in 0..m.saturating_sub(1) {
                let p = params(n, m, batch, 0, false, false, 0, j);
                dev.dispatch(&kernel("gs_step", 0, 1), &[], &[&z], &p, groups)?;
            }
            norm(1)?;
        }
        Ok(z)
    }

    /// 1.0 where an element is NaN or infinite, 0.0 elsewhere (same shape, f32). The test
    /// looks at the bits, so it holds on drivers whose compilers assume finite floats.
    /// Returns `Err` for u32 input.
    pub fn nonfinite_mask(&self) -> Result<DeviceTensor> {
        let op = "nonfinite_mask";
        self.expect_dtype(op, DType::F32)?;
        let dev = self.device();
        let out = DeviceTensor::uninit_for(op, dev, self.shape(), DType::F32)?;
        let n = self.numel();
        if n == 0 {
            return Ok(out);
        }
        dev.dispatch(
            &kernel("nonfinite_mask", 1, 1),
            &[self],
            &[&out],
            &params(n, 0, 0, 0, false, false, 0, 0),
            grid_1d(n.div_ceil(ELEMS_PER_INVOCATION), WG)?,
        )?;
        Ok(out)
    }

    /// The diagonals of a batch of square matrices `[..., n, n]`, as `[..., n]`. Returns
    /// `Err` for u32 input or a non-square shape.
    pub fn diagonal(&self) -> Result<DeviceTensor> {
        let (_, n) = square("diagonal", self)?;
        let eye = DeviceTensor::eye(self.device(), n, n)?;
        self.mul(&eye)?.sum_axis(-1, false)
    }
}
