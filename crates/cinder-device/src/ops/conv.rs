//! 2-D convolution (NCHW) and its transpose, with the kernels their backward passes need.
//!
//! Everything is im2col / col2im (`shaders/conv2d.wgsl`) around the batched matmul:
//! - forward: `y[n] = W[O, C*KH*KW] @ cols(x)[n]`, which is already NCHW (a direct kernel
//!   instead when `C*KH*KW` is at most 32, as in a first layer on 1- or 3-channel images);
//! - grad of input: `col2im(W^T @ dy[n])` (a gather: each input cell sums the taps that
//!   touch it, no atomics);
//! - grad of weight: `sum_n dy[n] @ cols(x)[n]^T`, with the columns written transposed in
//!   the first place so the matmul reads them untransposed.
//!
//! The transpose convolution swaps the roles. The column buffer is chunked over the batch so
//! that no bound buffer exceeds the device's binding limit.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_GROUPS_PER_DIM, Params, WORKGROUP_1D};
use crate::tensor::{DType, DeviceTensor};

/// Stride, padding, dilation and groups of a 2-D convolution, as (height, width) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between kernel positions.
    pub stride: (usize, usize),
    /// Zero padding on each side.
    pub padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups; only 1 is supported so far (others return `Err`).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Parameters of a 2-D transposed convolution (PyTorch's `ConvTranspose2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Step between kernel positions (of the equivalent forward convolution).
    pub stride: (usize, usize),
    /// Padding of the equivalent forward convolution (removed from the output).
    pub padding: (usize, usize),
    /// Extra rows/columns added to one side of the output; must be below stride or dilation.
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups; only 1 is supported so far (others return `Err`).
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new("conv2d", entry, 1, 1)
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![k("im2col"), im2row(), k("col2im"), direct()]
}

fn im2row() -> Kernel {
    k("im2col").with_constant("TRANSPOSED", 1.0)
}

fn direct() -> Kernel {
    Kernel::new("conv2d", "conv_direct", 2, 1)
}

/// Longest reduction (C * KH * KW) the direct kernel takes; longer ones go through
/// im2col + matmul, whose register blocking reuses each load.
const DIRECT_MAX_REDUCTION: usize = 32;

/// Rows of columns each im2col invocation writes (`IM2COL_ROWS` in conv2d.wgsl).
const IM2COL_ROWS: usize = 8;

/// Image/grid geometry shared by im2col and col2im.
#[derive(Clone, Copy, Debug)]
struct Geom {
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
}

impl Geom {
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
    fn params(&self, n: usize, n0: usize) -> Params {
        self.params_o(n, n0, 0)
    }
    fn params_o(&self, n: usize, n0: usize, o: usize) -> Params {
        Params::new()
            .usize(n)
            .usize(self.c)
            .usize(self.h)
            .usize(self.w)
            .usize(self.oh)
            .usize(self.ow)
            .usize(self.kh)
            .usize(self.kw)
            .usize(self.stride.0)
            .usize(self.stride.1)
            .usize(self.padding.0)
            .usize(self.padding.1)
            .usize(self.dilation.0)
            .usize(self.dilation.1)
            .usize(n0)
            .usize(o)
    }
}

/// PyTorch's output size of a convolution along one dimension, or `None` when the dilated
/// kernel does not fit in the padded input.
fn conv_out(size: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (size + 2 * p).checked_sub(span).map(|r| r / s + 1)
}

fn check_params(
    op: &'static str,
    shape: &[usize],
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
        return Err(Error::invalid(
            op,
            "stride and dilation must be positive",
            shape,
        ));
    }
    if groups != 1 {
        return Err(Error::invalid(
            op,
            format!("groups = {groups}: only groups = 1 is supported so far"),
            shape,
        ));
    }
    Ok(())
}

fn rank4(op: &'static str, t: &DeviceTensor, other: &DeviceTensor) -> Result<[usize; 4]> {
    t.expect_dtype(op, DType::F32)?;
    <[usize; 4]>::try_from(t.shape()).map_err(|_| Error::shapes(op, t.shape(), other.shape()))
}

/// Images per chunk so the column buffer of one chunk stays under the binding limit.
fn chunk(op: &'static str, dev_limit: u64, g: &Geom, n: usize) -> Result<usize> {
    let per = (g.rows() * g.cols() * 4) as u64;
    if per > dev_limit {
        return Err(Error::TooLarge {
            op,
            shape: vec![1, g.rows(), g.cols()],
            bytes: per,
            limit: dev_limit,
        });
    }
    // The chunk's images are the grid's z dimension: at most 65535 of them.
    Ok(((dev_limit / per.max(1)) as usize)
        .clamp(1, n.max(1))
        .min(MAX_GROUPS_PER_DIM as usize))
}

/// Workgroups for a grid of `x` invocations (in groups of 256) by `y` by `z`, or `Err`
/// when a dimension passes the 65535 limit.
fn grid_3d(
    op: &'static str,
    x: usize,
    y: usize,
    z: usize,
    shape: &[usize],
) -> Result<(u32, u32, u32)> {
    // The kernels divide indices below 2^24 exactly through f32 (`udiv` in conv2d.wgsl).
    if x >= 1 << 24 || y >= 1 << 24 {
        return Err(Error::invalid(
            op,
            "a plane or a column count of 2^24 or more",
            shape,
        ));
    }
    let g = (x.div_ceil(WORKGROUP_1D as usize), y, z);
    let max = MAX_GROUPS_PER_DIM as usize;
    if g.0 > max || g.1 > max || g.2 > max {
        return Err(Error::invalid(
            op,
            "more than 65535 workgroups along one grid dimension",
            shape,
        ));
    }
    Ok((g.0 as u32, g.1 as u32, g.2 as u32))
}

/// Columns of images `n0..n0 + nb` of `x`: `[nb, C*KH*KW, OH*OW]`, or transposed
/// (`[nb, OH*OW, C*KH*KW]`) when `transposed`.
fn im2col(
    op: &'static str,
    x: &DeviceTensor,
    g: &Geom,
    n0: usize,
    nb: usize,
    transposed: bool,
) -> Result<DeviceTensor> {
    let shape = if transposed {
        [nb, g.cols(), g.rows()]
    } else {
        [nb, g.rows(), g.cols()]
    };
    let cols = DeviceTensor::uninit_for(op, x.device(), &shape, DType::F32)?;
    let groups = grid_3d(op, g.cols(), g.rows().div_ceil(IM2COL_ROWS), nb, x.shape())?;
    let kernel = if transposed { im2row() } else { k("im2col") };
    x.device()
        .dispatch(&kernel, &[x], &[&cols], &g.params(cols.numel(), n0), groups)?;
    Ok(cols)
}

/// Image `[nb, C, H, W]` summed from columns `[nb, C*KH*KW, OH*OW]`.
fn col2im(op: &'static str, cols: &DeviceTensor, g: &Geom, nb: usize) -> Result<DeviceTensor> {
    let img = DeviceTensor::uninit_for(op, cols.device(), &[nb, g.c, g.h, g.w], DType::F32)?;
    let groups = grid_3d(op, g.h * g.w, g.c, nb, cols.shape())?;
    cols.device().dispatch(
        &k("col2im"),
        &[cols],
        &[&img],
        &g.params(img.numel(), 0),
        groups,
    )?;
    Ok(img)
}

/// Runs `f(n0, nb)` over batch chunks and concatenates the results along axis 0.
fn chunked(
    n: usize,
    per_chunk: usize,
    mut f: impl FnMut(usize, usize) -> Result<DeviceTensor>,
) -> Result<DeviceTensor> {
    if per_chunk >= n {
        return f(0, n);
    }
    let mut parts = Vec::new();
    let mut n0 = 0;
    while n0 < n {
        let nb = per_chunk.min(n - n0);
        parts.push(f(n0, nb)?);
        n0 += nb;
    }
    let refs: Vec<&DeviceTensor> = parts.iter().collect();
    DeviceTensor::concat(&refs, 0)
}

/// Largest `N * R * C*KH*KW` for which [`weight_product`] multiplies image by image.
const PER_IMAGE_MAX: usize = 1 << 22;

/// The weight gradient's product: the sum over images of `a[n]` `[R, L]` times the
/// transposed columns of `src`'s image `n` (`[L, C*KH*KW]`, `L` = the grid's positions),
/// giving `[R, C*KH*KW]`.
///
/// Small products run one matmul per image, batched, then a sum over the images: no
/// transpose copy, and enough invocations even when `[R, C*KH*KW]` is a tile or two (LeNet-5
/// C1: 6 x 25, where folding 64 images into the inner dimension left 2 invocations each
/// running 50,176 steps, 11 ms with its transpose copy against 4.5 ms). Larger ones fold the
/// batch into the inner dimension, `[R, nb * L] x [nb * L, C*KH*KW]`, so that no per-image
/// partials are materialized (for 512-channel layers those alone passed the binding limit).
fn weight_product(
    op: &'static str,
    a: &DeviceTensor,
    src: &DeviceTensor,
    g: &Geom,
) -> Result<DeviceTensor> {
    let (n, r) = (a.shape()[0], a.shape()[1]);
    let per = chunk(op, src.device().max_binding_bytes(), g, n)?;
    if n * r * g.rows() <= PER_IMAGE_MAX {
        return chunked_sum(n, per, |n0, nb| {
            let rows = im2col(op, src, g, n0, nb, true)?; // [nb, L, CKK]
            let part = if nb == n {
                a.clone()
            } else {
                a.narrow(0, n0, nb)?
            };
            part.matmul(&rows)?.sum_axis(0, false)
        });
    }
    let a = batch_inner(a.clone())?;
    chunked_sum(n, per, |n0, nb| {
        let rows = im2col(op, src, g, n0, nb, true)?;
        let rows = rows.reshape(&[nb * g.cols(), g.rows()])?;
        chunk_rows(&a, n, n0, nb)?.matmul(&rows)
    })
}

/// Sums chunked partial results (for weight gradients).
/// `[N, R, L]` as `[R, N, L]` (a copy unless N = 1), so that a chunk of images is a
/// contiguous `[R, nb * L]` block after [`chunk_rows`].
fn batch_inner(t: DeviceTensor) -> Result<DeviceTensor> {
    if t.shape()[0] == 1 {
        Ok(t)
    } else {
        t.permute(&[1, 0, 2])
    }
}

/// Images `n0..n0 + nb` of a `[R, N, L]` tensor as `[R, nb * L]`.
fn chunk_rows(t: &DeviceTensor, n: usize, n0: usize, nb: usize) -> Result<DeviceTensor> {
    let (r, l) = if t.shape()[0] == 1 && n == 1 {
        (t.shape()[1], t.shape()[2])
    } else {
        (t.shape()[0], t.shape()[2])
    };
    let part = if nb == n {
        t.clone()
    } else {
        t.narrow(1, n0, nb)?
    };
    part.reshape(&[r, nb * l])
}

fn chunked_sum(
    n: usize,
    per_chunk: usize,
    mut f: impl FnMut(usize, usize) -> Result<DeviceTensor>,
) -> Result<DeviceTensor> {
    let mut acc: Option<DeviceTensor> = None;
    let mut n0 = 0;
    while n0 < n {
        let nb = per_chunk.min(n - n0);
        let part = f(n0, nb)?;
        acc = Some(match acc {
            None => part,
            Some(a) => a.add(&part)?,
        });
        n0 += nb;
    }
    acc.ok_or_else(|| Error::invalid("conv2d", "empty batch", &[]))
}

fn conv_geom(op: &'static str, x: [usize; 4], w: [usize; 4], p: &Conv2dParams) -> Result<Geom> {
    let oh = conv_out(x[2], w[2], p.stride.0, p.padding.0, p.dilation.0);
    let ow = conv_out(x[3], w[3], p.stride.1, p.padding.1, p.dilation.1);
    match (oh, ow) {
        (Some(oh), Some(ow)) if w[2] > 0 && w[3] > 0 => Ok(Geom {
            c: x[1],
            h: x[2],
            w: x[3],
            oh,
            ow,
            kh: w[2],
            kw: w[3],
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
        }),
        _ => Err(Error::invalid(
            op,
            format!("kernel {:?} larger than the padded input", &w[2..]),
            &x,
        )),
    }
}

impl DeviceTensor {
    /// 2-D convolution of `self` `[N, C, H, W]` with `weight` `[O, C, KH, KW]` and an optional
    /// `bias` `[O]`, giving `[N, O, OH, OW]` with PyTorch's output size. Returns `Err` on rank,
    /// channel or dtype mismatch, a kernel larger than the padded input, zero stride or
    /// dilation, or groups other than 1.
    pub fn conv2d(
        &self,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        p: &Conv2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv2d";
        let xs = rank4(op, self, weight)?;
        let ws = rank4(op, weight, self)?;
        check_params(op, &xs, p.stride, p.dilation, p.groups)?;
        if xs[1] != ws[1] {
            return Err(Error::shapes(op, &xs, &ws));
        }
        let g = conv_geom(op, xs, ws, p)?;
        let y = if g.rows() <= DIRECT_MAX_REDUCTION {
            let y = DeviceTensor::uninit_for(
                op,
                self.device(),
                &[xs[0], ws[0], g.oh, g.ow],
                DType::F32,
            )?;
            let groups = grid_3d(op, g.cols(), ws[0].div_ceil(8), xs[0], &xs)?;
            let params = g.params_o(y.numel(), 0, ws[0]);
            self.device()
                .dispatch(&direct(), &[self, weight], &[&y], &params, groups)?;
            y
        } else {
            let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
            let per = chunk(op, self.device().max_binding_bytes(), &g, xs[0])?;
            let y = chunked(xs[0], per, |n0, nb| {
                let cols = im2col(op, self, &g, n0, nb, false)?;
                w2.matmul(&cols)
            })?;
            y.reshape(&[xs[0], ws[0], g.oh, g.ow])?
        };
        match bias {
            None => Ok(y),
            Some(b) => {
                if b.shape() != [ws[0]] {
                    return Err(Error::shapes(op, b.shape(), &[ws[0]]));
                }
                y.add(&b.reshape(&[ws[0], 1, 1])?)
            }
        }
    }

    /// Gradient of [`DeviceTensor::conv2d`] with respect to its input: `grad_out`
    /// `[N, O, OH, OW]` and `weight` `[O, C, KH, KW]` give `[N, C, H, W]` = `input_shape`.
    /// Returns `Err` when the shapes are inconsistent.
    pub fn conv2d_backward_input(
        grad_out: &DeviceTensor,
        weight: &DeviceTensor,
        input_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv2d_backward_input";
        let gs = rank4(op, grad_out, weight)?;
        let ws = rank4(op, weight, grad_out)?;
        let xs =
            <[usize; 4]>::try_from(input_shape).map_err(|_| Error::shapes(op, input_shape, &ws))?;
        check_params(op, &xs, p.stride, p.dilation, p.groups)?;
        let g = conv_geom(op, xs, ws, p)?;
        if xs[1] != ws[1] || gs != [xs[0], ws[0], g.oh, g.ow] {
            return Err(Error::shapes(op, &gs, &[xs[0], ws[0], g.oh, g.ow]));
        }
        let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
        let gy = grad_out.reshape(&[gs[0], gs[1], g.cols()])?;
        let per = chunk(op, grad_out.device().max_binding_bytes(), &g, xs[0])?;
        chunked(xs[0], per, |n0, nb| {
            let gyc = if nb == xs[0] {
                gy.clone()
            } else {
                gy.narrow(0, n0, nb)?
            };
            let cols = w2.matmul_t(&gyc, true, false)?;
            col2im(op, &cols, &g, nb)
        })
    }

    /// Gradient of [`DeviceTensor::conv2d`] with respect to its weight: `grad_out`
    /// `[N, O, OH, OW]` and `input` `[N, C, H, W]` give `[O, C, KH, KW]` = `weight_shape`.
    /// Returns `Err` when the shapes are inconsistent.
    pub fn conv2d_backward_weight(
        grad_out: &DeviceTensor,
        input: &DeviceTensor,
        weight_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv2d_backward_weight";
        let gs = rank4(op, grad_out, input)?;
        let xs = rank4(op, input, grad_out)?;
        let ws = <[usize; 4]>::try_from(weight_shape)
            .map_err(|_| Error::shapes(op, weight_shape, &xs))?;
        check_params(op, &xs, p.stride, p.dilation, p.groups)?;
        let g = conv_geom(op, xs, ws, p)?;
        if xs[1] != ws[1] || gs != [xs[0], ws[0], g.oh, g.ow] {
            return Err(Error::shapes(op, &gs, &[xs[0], ws[0], g.oh, g.ow]));
        }
        let gy = grad_out.reshape(&[gs[0], gs[1], g.cols()])?;
        weight_product(op, &gy, input, &g)?.reshape(&ws)
    }

    /// Gradient of a convolution's bias: `grad_out` `[N, O, OH, OW]` summed to `[O]`.
    /// Returns `Err` for a tensor that is not rank 4.
    pub fn conv2d_backward_bias(grad_out: &DeviceTensor) -> Result<DeviceTensor> {
        if grad_out.rank() != 4 {
            return Err(Error::invalid(
                "conv2d_backward_bias",
                "grad_out must be [N, O, OH, OW]",
                grad_out.shape(),
            ));
        }
        grad_out.sum_axes(&[0, 2, 3], false)
    }

    /// 2-D transposed convolution of `self` `[N, C_in, H, W]` with `weight`
    /// `[C_in, C_out, KH, KW]` (PyTorch's layout) and an optional `bias` `[C_out]`, giving
    /// `[N, C_out, OH, OW]` with `OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) +
    /// output_padding + 1`. Returns `Err` on shape or dtype mismatch, a non-positive output
    /// size, `output_padding` not below stride or dilation, or groups other than 1.
    pub fn conv_transpose2d(
        &self,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        p: &ConvTranspose2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv_transpose2d";
        let xs = rank4(op, self, weight)?;
        let ws = rank4(op, weight, self)?;
        if xs[1] != ws[0] {
            return Err(Error::shapes(op, &xs, &ws));
        }
        let (g, out_shape) = transpose_geom(op, xs, ws, p)?;
        let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
        let x3 = self.reshape(&[xs[0], xs[1], xs[2] * xs[3]])?;
        let per = chunk(op, self.device().max_binding_bytes(), &g, xs[0])?;
        let y = chunked(xs[0], per, |n0, nb| {
            let xc = if nb == xs[0] {
                x3.clone()
            } else {
                x3.narrow(0, n0, nb)?
            };
            let cols = w2.matmul_t(&xc, true, false)?; // [nb, C_out*KK, H*W]
            col2im(op, &cols, &g, nb)
        })?;
        match bias {
            None => Ok(y),
            Some(b) => {
                if b.shape() != [out_shape[1]] {
                    return Err(Error::shapes(op, b.shape(), &[out_shape[1]]));
                }
                y.add(&b.reshape(&[out_shape[1], 1, 1])?)
            }
        }
    }

    /// Gradient of [`DeviceTensor::conv_transpose2d`] with respect to its input: a forward
    /// convolution of `grad_out` `[N, C_out, OH, OW]` with `weight` `[C_in, C_out, KH, KW]`,
    /// giving `input_shape` `[N, C_in, H, W]`. Returns `Err` when the shapes are inconsistent.
    pub fn conv_transpose2d_backward_input(
        grad_out: &DeviceTensor,
        weight: &DeviceTensor,
        input_shape: &[usize],
        p: &ConvTranspose2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv_transpose2d_backward_input";
        let gs = rank4(op, grad_out, weight)?;
        let ws = rank4(op, weight, grad_out)?;
        let xs =
            <[usize; 4]>::try_from(input_shape).map_err(|_| Error::shapes(op, input_shape, &ws))?;
        let (g, out_shape) = transpose_geom(op, xs, ws, p)?;
        if gs != out_shape || xs[1] != ws[0] {
            return Err(Error::shapes(op, &gs, &out_shape));
        }
        let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
        let per = chunk(op, grad_out.device().max_binding_bytes(), &g, xs[0])?;
        let gx = chunked(xs[0], per, |n0, nb| {
            let cols = im2col(op, grad_out, &g, n0, nb, false)?; // [nb, C_out*KK, H*W]
            w2.matmul(&cols)
        })?;
        gx.reshape(&xs)
    }

    /// Gradient of [`DeviceTensor::conv_transpose2d`] with respect to its weight: `grad_out`
    /// `[N, C_out, OH, OW]` and `input` `[N, C_in, H, W]` give `weight_shape`
    /// `[C_in, C_out, KH, KW]`. Returns `Err` when the shapes are inconsistent.
    pub fn conv_transpose2d_backward_weight(
        grad_out: &DeviceTensor,
        input: &DeviceTensor,
        weight_shape: &[usize],
        p: &ConvTranspose2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv_transpose2d_backward_weight";
        let gs = rank4(op, grad_out, input)?;
        let xs = rank4(op, input, grad_out)?;
        let ws = <[usize; 4]>::try_from(weight_shape)
            .map_err(|_| Error::shapes(op, weight_shape, &xs))?;
        let (g, out_shape) = transpose_geom(op, xs, ws, p)?;
        if gs != out_shape || xs[1] != ws[0] {
            return Err(Error::shapes(op, &gs, &out_shape));
        }
        // [C_in, HW] x [HW, C_out*KK] per image, summed: the roles of conv2d's weight
        // gradient with the input and the output gradient swapped.
        let x3 = input.reshape(&[xs[0], xs[1], xs[2] * xs[3]])?;
        weight_product(op, &x3, grad_out, &g)?.reshape(&ws)
    }
}

/// Geometry of a transposed convolution: the *output* is the image and the input positions
/// are the grid. Returns it with the output shape.
fn transpose_geom(
    op: &'static str,
    xs: [usize; 4],
    ws: [usize; 4],
    p: &ConvTranspose2dParams,
) -> Result<(Geom, [usize; 4])> {
    check_params(op, &xs, p.stride, p.dilation, p.groups)?;
    let bad_op = |o: usize, s: usize, d: usize| o >= s && o >= d;
    if bad_op(p.output_padding.0, p.stride.0, p.dilation.0)
        || bad_op(p.output_padding.1, p.stride.1, p.dilation.1)
    {
        return Err(Error::invalid(
            op,
            "output_padding must be smaller than stride or dilation",
            &xs,
        ));
    }
    let size = |h: usize, k: usize, s: usize, pd: usize, d: usize, op_: usize| -> Option<usize> {
        ((h.checked_sub(1)? * s + d * (k.checked_sub(1)?) + op_ + 1) as isize - 2 * pd as isize)
            .try_into()
            .ok()
            .filter(|&v: &usize| v > 0)
    };
    let oh = size(
        xs[2],
        ws[2],
        p.stride.0,
        p.padding.0,
        p.dilation.0,
        p.output_padding.0,
    );
    let ow = size(
        xs[3],
        ws[3],
        p.stride.1,
        p.padding.1,
        p.dilation.1,
        p.output_padding.1,
    );
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(Error::invalid(
            op,
            "output size would be zero or negative",
            &xs,
        ));
    };
    let g = Geom {
        c: ws[1],
        h: oh,
        w: ow,
        oh: xs[2],
        ow: xs[3],
        kh: ws[2],
        kw: ws[3],
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
    };
    Ok((g, [xs[0], ws[1], oh, ow]))
}
