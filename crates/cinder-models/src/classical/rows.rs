//! Data matrices larger than one storage binding, held as row blocks.
//!
//! A device tensor is one buffer binding, and adapters cap a binding's size (128 MiB under
//! lavapipe: 42,799 rows of 784 f32, so not all 60,000 Fashion-MNIST training images).
//! [`RowBlocks`] keeps such a matrix as consecutive blocks of rows, each one tensor; the
//! pipelines whose work is a sum over samples ([`super::Pca`], [`super::ProbabilisticPca`],
//! [`super::KMeans`], [`super::FastIca`] with whitening) fit it block by block and give the
//! same result as on one tensor. They take any [`Rows`]: a plain [`Tensor`] is one block.

use super::check_data;
use cinder_autograd::Tensor;
use cinder_device::{DType, Device, DeviceTensor, Error, Result};

/// Row data a pipeline can fit: a [`Tensor`] (one block) or [`RowBlocks`].
pub trait Rows {
    /// The blocks of rows, in order. Each is checked by the pipeline (an f32 matrix, all
    /// with the same column count, finite values).
    fn row_blocks(&self) -> Vec<Tensor>;
}

impl Rows for Tensor {
    fn row_blocks(&self) -> Vec<Tensor> {
        vec![self.clone()]
    }
}

impl Rows for RowBlocks {
    fn row_blocks(&self) -> Vec<Tensor> {
        self.blocks.clone()
    }
}

/// An `[n, d]` f32 matrix held as consecutive blocks of rows, each a device tensor that fits
/// one storage binding.
#[derive(Clone, Debug)]
pub struct RowBlocks {
    blocks: Vec<Tensor>,
    n: usize,
    d: usize,
}

impl RowBlocks {
    /// Uploads the row-major `[n, d]` matrix `data` in blocks of at most `max_rows` rows
    /// (`None`: as many as fit the device's largest binding). Returns `Err` when `data.len()` is
    /// not `n * d`, when `n`, `d` or `max_rows` is 0, when one row does not fit a binding,
    /// or when an upload fails.
    pub fn from_slice(
        device: &Device,
        data: &[f32],
        n: usize,
        d: usize,
        max_rows: Option<usize>,
    ) -> Result<RowBlocks> {
        let op = "RowBlocks::from_slice";
        if n == 0 || d == 0 || data.len() != n * d || max_rows == Some(0) {
            return Err(Error::invalid(
                op,
                format!(
                    "need n, d >= 1, data.len() = n * d and max_rows >= 1 (got {} values, max_rows {max_rows:?})",
                    data.len()
                ),
                &[n, d],
            ));
        }
        let fit = (device.max_binding_bytes() / (4 * d as u64)) as usize;
        let rows = max_rows.unwrap_or(fit).min(n);
        if rows == 0 {
            return Err(Error::invalid(
                op,
                "one row does not fit the largest binding",
                &[n, d],
            ));
        }
        let blocks = data
            .chunks(rows * d)
            .map(|c| Tensor::from_slice(device, c, &[c.len() / d, d]))
            .collect::<Result<Vec<_>>>()?;
        Ok(RowBlocks { blocks, n, d })
    }

    /// Wraps existing blocks. Returns `Err` when there are none, or a block is not a 2-D
    /// f32 tensor with the first block's column count.
    pub fn from_blocks(blocks: Vec<Tensor>) -> Result<RowBlocks> {
        let op = "RowBlocks::from_blocks";
        let Some(first) = blocks.first() else {
            return Err(Error::invalid(op, "no blocks", &[0]));
        };
        let d = first.shape().get(1).copied().unwrap_or(0);
        let mut n = 0;
        for b in &blocks {
            if b.dtype() != DType::F32 || b.shape().len() != 2 || b.shape()[1] != d {
                return Err(Error::shapes(op, &b.shape(), &[b.shape()[0], d]));
            }
            n += b.shape()[0];
        }
        Ok(RowBlocks { blocks, n, d })
    }

    /// Total rows `n`.
    pub fn n_rows(&self) -> usize {
        self.n
    }

    /// Columns `d`.
    pub fn n_cols(&self) -> usize {
        self.d
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Tensor] {
        &self.blocks
    }
}

/// The checked blocks of a [`Rows`] as device tensors, with their row offsets.
pub(crate) struct Blocks {
    pub parts: Vec<DeviceTensor>,
    /// First global row of each block.
    pub starts: Vec<usize>,
    pub n: usize,
    pub d: usize,
}

impl Blocks {
    /// Checks every block as [`check_data`] does (f32 matrices, finite, one column count)
    /// and that there are at least `min_rows` rows in all.
    pub fn new(op: &'static str, x: &(impl Rows + ?Sized), min_rows: usize) -> Result<Blocks> {
        let parts: Vec<DeviceTensor> = x.row_blocks().iter().map(Tensor::raw).collect();
        if parts.is_empty() {
            return Err(Error::invalid(op, "no data blocks", &[0]));
        }
        let mut starts = Vec::with_capacity(parts.len());
        let (mut n, mut d) = (0, None);
        for p in &parts {
            let (nb, db) = check_data(op, p, 1)?;
            if *d.get_or_insert(db) != db {
                return Err(Error::shapes(op, p.shape(), &[nb, d.unwrap_or(db)]));
            }
            starts.push(n);
            n += nb;
        }
        let d = d.unwrap_or(0);
        if n < min_rows {
            return Err(Error::invalid(
                op,
                format!("need at least {min_rows} samples"),
                &[n, d],
            ));
        }
        Ok(Blocks {
            parts,
            starts,
            n,
            d,
        })
    }

    /// The shape of the whole matrix, for error messages.
    pub fn shape(&self) -> [usize; 2] {
        [self.n, self.d]
    }

    /// The first block (any block serves as the device and dtype reference).
    pub fn first(&self) -> &DeviceTensor {
        &self.parts[0]
    }

    /// `f(block)` for every block, concatenated along the rows.
    pub fn map_rows(
        &self,
        mut f: impl FnMut(&DeviceTensor) -> Result<DeviceTensor>,
    ) -> Result<DeviceTensor> {
        if self.parts.len() == 1 {
            return f(&self.parts[0]);
        }
        let outs = self.parts.iter().map(&mut f).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&DeviceTensor> = outs.iter().collect();
        DeviceTensor::concat(&refs, 0)
    }

    /// `sum over blocks of f(block, a's slice of the block)`, where `a`'s `axis` (0: `a` is
    /// `[n, ...]`; 1: `a` is `[k, n]`) is split as the blocks' rows.
    pub fn sum_split(
        &self,
        a: &DeviceTensor,
        axis: isize,
        mut f: impl FnMut(&DeviceTensor, &DeviceTensor) -> Result<DeviceTensor>,
    ) -> Result<DeviceTensor> {
        if self.parts.len() == 1 {
            return f(&self.parts[0], a);
        }
        let mut acc: Option<DeviceTensor> = None;
        for (p, &s) in self.parts.iter().zip(&self.starts) {
            let v = f(p, &a.narrow(axis, s, p.shape()[0])?)?;
            acc = Some(match acc {
                Some(t) => t.add(&v)?,
                None => v,
            });
        }
        Ok(acc.expect("at least one block"))
    }

    /// `f(block index, a's columns of the block)` for every block, concatenated along the
    /// columns: a `[k, n]` result from per-block `[k, n_b]` ones, `a` being `[k, n]`.
    pub fn map_cols(
        &self,
        a: &DeviceTensor,
        mut f: impl FnMut(usize, &DeviceTensor) -> Result<DeviceTensor>,
    ) -> Result<DeviceTensor> {
        if self.parts.len() == 1 {
            return f(0, a);
        }
        let mut outs = Vec::with_capacity(self.parts.len());
        for (b, (p, &s)) in self.parts.iter().zip(&self.starts).enumerate() {
            outs.push(f(b, &a.narrow(1, s, p.shape()[0])?)?);
        }
        DeviceTensor::concat(&outs.iter().collect::<Vec<_>>(), 1)
    }

    /// `a^T x` (`[k, d]`) for `a` `[n, k]`.
    pub fn t_matmul(&self, a: &DeviceTensor) -> Result<DeviceTensor> {
        self.sum_split(a, 0, |x, ab| ab.matmul_t(x, true, false))
    }

    /// The rows `idx` (u32 `[m]`, global row numbers below `n`), `[m, d]`.
    pub fn gather(&self, idx: &DeviceTensor) -> Result<DeviceTensor> {
        if self.parts.len() == 1 {
            return self.parts[0].index_select(0, idx);
        }
        // Row numbers below 2^24 are exact in f32; past that the blocks would not fit
        // a device anyway.
        let fi = idx.to_dtype(DType::F32)?;
        let mut acc: Option<DeviceTensor> = None;
        for (p, &s) in self.parts.iter().zip(&self.starts) {
            let nb = p.shape()[0];
            let local = fi.sub_scalar(s as f32)?;
            let inside = local
                .ge_scalar(0.0)?
                .mul(&local.lt_scalar(nb as f32)?)?
                .reshape(&[idx.shape()[0], 1])?;
            let rows = p.index_select(
                0,
                &local
                    .maximum_scalar(0.0)?
                    .minimum_scalar((nb - 1) as f32)?
                    .to_dtype(DType::U32)?,
            )?;
            acc = Some(match acc {
                Some(t) => DeviceTensor::where_cond(&inside, &rows, &t)?,
                None => rows,
            });
        }
        Ok(acc.expect("at least one block"))
    }

    /// The column means, `[1, d]`: the blocks' column sums added, divided by `n`.
    pub fn col_mean(&self) -> Result<DeviceTensor> {
        let mut sum = self.parts[0].sum_axis(0, true)?;
        for p in &self.parts[1..] {
            sum = sum.add(&p.sum_axis(0, true)?)?;
        }
        sum.div_scalar(self.n as f32)
    }

    /// The mean (`[1, d]`) and the covariance (`[d, d]`, `n - 1` normalization) of the rows,
    /// as [`super::pca::covariance`] on one tensor.
    pub fn covariance(&self) -> Result<(DeviceTensor, DeviceTensor)> {
        if self.parts.len() == 1 {
            return super::pca::covariance(&self.parts[0]);
        }
        let mean = self.col_mean()?;
        let mut cov: Option<DeviceTensor> = None;
        for p in &self.parts {
            let xc = p.sub(&mean)?;
            let c = xc.matmul_t(&xc, true, false)?;
            cov = Some(match cov {
                Some(t) => t.add(&c)?,
                None => c,
            });
        }
        let cov = cov
            .expect("blocks")
            .div_scalar((self.n.max(2) - 1) as f32)?;
        Ok((mean, cov))
    }
}
