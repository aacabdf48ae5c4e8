//! 2-D convolution (NCHW) and its transpose, with the kernels their backward passes need.
//!
//! Dense convolutions (`groups = 1`) are im2col / col2im (`shaders/conv2d.wgsl`) around the
//! batched matmul:
//! - forward: `y[n] = W[O, C*KH*KW] @ cols(x)[n]`, which is already NCHW (a direct kernel
//!   instead when `C*KH*KW` is at most 32, as in a first layer on 1- or 3-channel images);
//! - grad of input: `col2im(W^T @ dy[n])` (a gather: each input cell sums the taps that
//!   touch it, no atomics);
//! - grad of weight: `sum_n dy[n] @ cols(x)[n]^T`, with the columns written transposed in
//!   the first place so the matmul reads them untransposed.
//!
//! The transpose convolution swaps the roles. The column buffer is chunked over the batch so
//! that no bound buffer exceeds the device's binding limit.
//!
//! Grouped convolutions take one of two paths:
//! - few channels per group (`(grid channels / groups) * (image channels / groups)` at most
//!   [`DIRECT_GROUP_MAX`], which covers depthwise convolutions with a channel multiplier up
//!   to 16): three direct kernels, image to grid, grid to image and the weight gradient,
//!   each output element gathered by one invocation (no columns, no matmul);
//! - otherwise a matmul batched over the groups: the columns are written group by group with
//!   the batch inside each group's rows (`[G, Kg, nb * L]`), so that
//!   `W[G, Og, Kg] @ cols[G, Kg, nb * L]` is one batched product; its `[O, nb, L]` result is
//!   permuted to `[nb, O, L]`.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_GROUPS_PER_DIM, Params, WORKGROUP_1D};
use crate::ops::matmul::{BiasAxis, Epilogue, MatmulKernel};
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
    /// Channel groups: input and output channels split into this many blocks, each output
    /// block seeing only its input block (the weight is `[O, C / groups, KH, KW]`). `C` and
    /// `O` must be multiples of it; 0 is an `Err`.
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
    /// Channel groups (the weight is `[C_in, C_out / groups, KH, KW]`). `C_in` must be a
    /// multiple of it; 0 is an `Err`.
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
    vec![
        k("im2col"),
        k("col2im"),
        direct(false),
        direct(true),
        implicit_gemm(false),
        implicit_gemm(true),
        flip(),
        grouped("conv_direct_grouped"),
        grouped("conv_direct_grouped_t"),
        grouped("conv_direct_grouped_weight"),
    ]
}

/// The direct kernel, with the bias add fused into its store when `bias`.
fn direct(bias: bool) -> Kernel {
    Kernel::new("conv2d", "conv_direct", 3, 1).with_constant("HAS_BIAS", bias as u32 as f64)
}

/// The implicit-GEMM kernel (groups 1), with the bias add fused into its store when `bias`.
fn implicit_gemm(bias: bool) -> Kernel {
    Kernel::new("conv2d", "conv_gemm", 3, 1)
        .with_constant("HAS_BIAS", bias as u32 as f64)
        .with_workgroup((8, 4, 1))
}

/// Whether the convolution computes its columns inside the product (`conv_gemm`) rather
/// than writing them out (im2col + matmul): on CPU adapters, for at most 32 output channels,
/// where each column element is loaded by at most 4 blocks of 8 channels. Measured on
/// lavapipe (docs/performance.md): 1.1-1.7x faster for LeNet-5 C2 and ResNet-20's 16- and
/// 32-channel stages, 1.1-1.2x slower for 64 channels. GPUs keep im2col + the tiled matmul
/// until the kernel is measured on one (`scripts/gpu-bundle.sh` runs both).
/// `CINDER_CONV=im2col` or `CINDER_CONV=implicit` forces one path on any adapter (for
/// measuring; read once per process).
fn use_implicit(dev: &crate::Device, g: &Geom) -> bool {
    static FORCED: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let forced = FORCED.get_or_init(|| match std::env::var("CINDER_CONV").as_deref() {
        Ok("im2col") => Some(false),
        Ok("implicit") => Some(true),
        _ => None,
    });
    forced.unwrap_or(dev.is_cpu() && g.o <= 32)
}

/// `conv_gemm` over every image: `[N, O, OH, OW]` with the bias added when given.
fn conv_implicit(
    op: &'static str,
    x: &DeviceTensor,
    w: &DeviceTensor,
    bias: Option<&DeviceTensor>,
    g: &Geom,
    out_shape: &[usize],
) -> Result<DeviceTensor> {
    let y = DeviceTensor::uninit_for(op, x.device(), out_shape, DType::F32)?;
    let k = implicit_gemm(bias.is_some());
    let cols = g.cols();
    if cols >= 1 << 24 {
        return Err(Error::invalid(
            op,
            "2^24 or more output positions",
            out_shape,
        ));
    }
    // 16 positions x 8 channels per invocation, workgroups of 8 x 4 invocations.
    let grid = groups_within_limit(
        op,
        (
            cols.div_ceil(16).div_ceil(8),
            g.o.div_ceil(8).div_ceil(4),
            out_shape[0],
        ),
        out_shape,
    )?;
    x.device().dispatch(
        &k,
        &[x, w, bias.unwrap_or(x)],
        &[&y],
        &g.params(out_shape[0], 0, [0; 4]),
        grid,
    )?;
    Ok(y)
}

fn flip() -> Kernel {
    Kernel::new("conv2d", "flip_weight", 1, 1)
}

/// The input gradient of a stride-1 "same" convolution (`2 * padding = dilation * (K - 1)`,
/// groups 1) as the implicit-GEMM convolution of the grid with the channel-swapped, flipped
/// weight, when the image has 8 to 32 channels (the outputs of that convolution); `None`
/// when the layer is not such a one (or `CINDER_CONV=im2col` forces the columns).
fn input_grad_implicit(
    op: &'static str,
    grad_out: &DeviceTensor,
    weight: &DeviceTensor,
    g: &Geom,
    xs: &[usize; 4],
) -> Result<Option<DeviceTensor>> {
    let same = |k: usize, pad: usize, d: usize| 2 * pad == d * (k - 1);
    // Fewer than 8 image channels would leave most of the kernel's 8-channel block idle
    // (LeNet-5 C1's input gradient ran 1.7x slower that way than through the columns).
    if g.groups != 1
        || g.c < 8
        || g.stride != (1, 1)
        || !same(g.kh, g.padding.0, g.dilation.0)
        || !same(g.kw, g.padding.1, g.dilation.1)
    {
        return Ok(None);
    }
    let gg = Geom {
        c: g.o,
        o: g.c,
        h: g.oh,
        w: g.ow,
        oh: xs[2],
        ow: xs[3],
        ..*g
    };
    if !use_implicit(weight.device(), &gg) {
        return Ok(None);
    }
    let n = weight.numel();
    let wf = DeviceTensor::uninit_for(op, weight.device(), &[g.c, g.o, g.kh, g.kw], DType::F32)?;
    let groups = grid_3d(op, n, 1, 1, weight.shape())?;
    weight
        .device()
        .dispatch(&flip(), &[weight], &[&wf], &g.params(n, 0, [0; 4]), groups)?;
    conv_implicit(op, grad_out, &wf, None, &gg, xs).map(Some)
}

fn grouped(entry: &'static str) -> Kernel {
    Kernel::new("conv2d", entry, 2, 1)
}

/// Longest reduction (C * KH * KW) the direct kernel takes; longer ones go through
/// im2col + matmul, whose register blocking reuses each load.
const DIRECT_MAX_REDUCTION: usize = 32;

/// Largest `(grid channels per group) * (image channels per group)` of a grouped
/// convolution that takes the grouped direct kernels instead of a matmul batched over the
/// groups: per group the matmul would be at most 16 x (16 * KH * KW), too small to reuse its
/// loads.
pub const DIRECT_GROUP_MAX: usize = 16;

/// The constants conv2d.wgsl repeats (see [`super::Contract`]).
pub(crate) fn contracts() -> Vec<super::Contract> {
    [("IM2COL_ROWS", IM2COL_ROWS), ("DPOS", DPOS)]
        .map(|(name, v)| super::Contract {
            family: "conv2d",
            name,
            value: v as u64,
        })
        .to_vec()
}

/// Rows of columns each im2col invocation writes (`IM2COL_ROWS` in conv2d.wgsl).
const IM2COL_ROWS: usize = 8;

/// Positions each invocation of the grouped direct kernels computes (`DPOS` in conv2d.wgsl).
const DPOS: usize = 4;

/// Image/grid geometry shared by the kernels: the image `[N, c, h, w]`, the grid of kernel
/// positions `[N, o, oh, ow]` and the channel groups.
#[derive(Clone, Copy, Debug)]
struct Geom {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
}

/// Layout of a column buffer: where element (image b, row r = g * Kg + rg, position q) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cols {
    /// `[nb, C*KH*KW, L]` (for groups, `[nb, G, Kg, L]`).
    Std,
    /// `[nb, G, L, Kg]` (`[nb, L, C*KH*KW]` for one group).
    ImageT,
    /// `[G, Kg, nb * L]`: the batch inside each group's rows.
    Inner,
    /// `[G, nb * L, Kg]`.
    InnerT,
}

impl Geom {
    /// Column rows `C * KH * KW` (checked when the geometry was built).
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Rows per group.
    fn kg(&self) -> usize {
        self.rows() / self.groups
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
    /// Image channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Grid channels per group.
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Whether a grouped convolution takes the grouped direct kernels.
    fn direct_grouped(&self) -> bool {
        self.groups > 1 && self.cg() * self.og() <= DIRECT_GROUP_MAX
    }
    /// Strides `(sb, sq, sg, sr)` of a layout for a chunk of `nb` images.
    fn strides(&self, layout: Cols, nb: usize) -> [usize; 4] {
        let (l, kg) = (self.cols(), self.kg());
        match layout {
            Cols::Std => [self.rows() * l, 1, kg * l, l],
            Cols::ImageT => [self.rows() * l, kg, l * kg, 1],
            Cols::Inner => [l, 1, kg * nb * l, nb * l],
            Cols::InnerT => [l * kg, kg, nb * l * kg, 1],
        }
    }
    fn shape(&self, layout: Cols, nb: usize) -> Vec<usize> {
        let (l, kg, g) = (self.cols(), self.kg(), self.groups);
        match layout {
            Cols::Std => vec![nb, self.rows(), l],
            Cols::ImageT => vec![nb, g, l, kg],
            Cols::Inner => vec![g, kg, nb * l],
            Cols::InnerT => vec![g, nb * l, kg],
        }
    }
    fn params(&self, n: usize, n0: usize, strides: [usize; 4]) -> Params {
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
            .usize(self.o)
            .usize(self.groups)
            .usize(strides[0])
            .usize(strides[1])
            .usize(strides[2])
            .usize(strides[3])
    }
}

/// Checked product of sizes, or `Err(TooLarge)` naming the op and `shape`.
fn mul(op: &'static str, shape: &[usize], dims: &[usize]) -> Result<usize> {
    crate::shape::checked_product(op, shape, dims)
}

/// Most `size + 2 * padding + dilation * (kernel - 1) + 1 + stride` along one axis of the
/// image: the kernels compute positions in i32 and divide them through f32 (`udiv` in
/// conv2d.wgsl), which is exact below 2^24.
const POSITION_LIMIT: usize = 1 << 24;

/// PyTorch's output size of a convolution along one dimension (`k >= 1`, `s >= 1`), or
/// `Err` naming what is wrong: a dilated kernel larger than the padded input, or sizes
/// that overflow.
fn conv_out(
    op: &'static str,
    shape: &[usize],
    (size, k, s, p, d): (usize, usize, usize, usize, usize),
) -> Result<usize> {
    let span = d
        .checked_mul(k.saturating_sub(1))
        .and_then(|v| v.checked_add(1));
    let padded = p.checked_mul(2).and_then(|v| v.checked_add(size));
    let (Some(span), Some(padded)) = (span, padded) else {
        return Err(Error::invalid(
            op,
            format!(
                "kernel {k} with dilation {d} on size {size} with padding {p}: the sizes overflow"
            ),
            shape,
        ));
    };
    match padded.checked_sub(span) {
        Some(r) => Ok(r / s + 1),
        None => Err(Error::invalid(
            op,
            format!(
                "kernel {k} dilated by {d} spans {span}, larger than the padded input size \
                 {padded}"
            ),
            shape,
        )),
    }
}

/// `Err` unless, along each axis of the image, the sum `size + 2 * padding + dilation *
/// (kernel - 1) + 1 + stride` is below [`POSITION_LIMIT`] (so every position, parameter and
/// quotient the kernels compute is exact).
fn check_positions(op: &'static str, shape: &[usize], g: &Geom) -> Result<()> {
    let axes = [
        (g.h, g.kh, g.stride.0, g.padding.0, g.dilation.0),
        (g.w, g.kw, g.stride.1, g.padding.1, g.dilation.1),
    ];
    for (size, k, s, p, d) in axes {
        let total = p
            .checked_mul(2)
            .and_then(|v| v.checked_add(size))
            .and_then(|v| v.checked_add(d.checked_mul(k.saturating_sub(1))?))
            .and_then(|v| v.checked_add(1))
            .and_then(|v| v.checked_add(s));
        if total.is_none_or(|t| t >= POSITION_LIMIT) {
            return Err(Error::invalid(
                op,
                format!(
                    "size {size}, kernel {k}, stride {s}, padding {p} and dilation {d} reach \
                     past 2^24 (size + 2 * padding + dilation * (kernel - 1) + 1 + stride must \
                     stay below it)"
                ),
                shape,
            ));
        }
    }
    Ok(())
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
    if groups == 0 {
        return Err(Error::invalid(op, "groups must be positive", shape));
    }
    Ok(())
}

fn rank4(op: &'static str, t: &DeviceTensor, other: &DeviceTensor) -> Result<[usize; 4]> {
    t.expect_dtype(op, DType::F32)?;
    <[usize; 4]>::try_from(t.shape()).map_err(|_| Error::shapes(op, t.shape(), other.shape()))
}

/// Checks a convolution's channels against its groups: the input `x` `[N, C, H, W]` and
/// weight `[O, C / groups, KH, KW]` (for a transposed convolution, `x` is its output
/// gradient's image side and `w` is read as `[C_in, C_out / groups, ..]` by the caller).
fn check_groups(op: &'static str, xs: &[usize], ws: &[usize], groups: usize) -> Result<()> {
    if !ws[0].is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!(
                "weight {ws:?}: {} output channels are not divisible by groups = {groups}",
                ws[0]
            ),
            xs,
        ));
    }
    if ws[1].checked_mul(groups) != Some(xs[1]) {
        // The input's channels must be the weight's times the groups.
        return Err(Error::shapes(op, xs, ws));
    }
    Ok(())
}

/// `Err` unless every value is below 2^24: the kernels divide channel and row indices
/// through f32 (`udiv` in conv2d.wgsl), exact only below that.
fn within_udiv(op: &'static str, shape: &[usize], values: &[usize]) -> Result<()> {
    if values.iter().any(|&v| v >= 1 << 24) {
        return Err(Error::invalid(
            op,
            "2^24 or more channels or channel-taps (C * KH * KW)",
            shape,
        ));
    }
    Ok(())
}

/// Images per chunk so the column buffer of one chunk stays under the binding limit.
fn chunk(op: &'static str, dev_limit: u64, g: &Geom, n: usize) -> Result<usize> {
    let per = mul(op, &[g.rows(), g.cols()], &[g.rows(), g.cols(), 4])? as u64;
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
    groups_within_limit(op, (x.div_ceil(WORKGROUP_1D as usize), y, z), shape)
}

/// `g` as a dispatch grid, or `Err` naming `shape` when a dimension passes 65535 workgroups.
fn groups_within_limit(
    op: &'static str,
    g: (usize, usize, usize),
    shape: &[usize],
) -> Result<(u32, u32, u32)> {
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

/// Columns of images `n0..n0 + nb` of `x` in `layout` (see [`Cols`]).
fn im2col(
    op: &'static str,
    x: &DeviceTensor,
    g: &Geom,
    n0: usize,
    nb: usize,
    layout: Cols,
) -> Result<DeviceTensor> {
    let cols = DeviceTensor::uninit_for(op, x.device(), &g.shape(layout, nb), DType::F32)?;
    let groups = grid_3d(op, g.cols(), g.rows().div_ceil(IM2COL_ROWS), nb, x.shape())?;
    let params = g.params(cols.numel(), n0, g.strides(layout, nb));
    x.device()
        .dispatch(&k("im2col"), &[x], &[&cols], &params, groups)?;
    Ok(cols)
}

/// Image `[nb, C, H, W]` summed from columns of `nb` images in `layout`.
fn col2im(
    op: &'static str,
    cols: &DeviceTensor,
    g: &Geom,
    nb: usize,
    layout: Cols,
) -> Result<DeviceTensor> {
    let img = DeviceTensor::uninit_for(op, cols.device(), &[nb, g.c, g.h, g.w], DType::F32)?;
    let groups = grid_3d(op, g.h * g.w, g.c, nb, cols.shape())?;
    let params = g.params(img.numel(), 0, g.strides(layout, nb));
    cols.device()
        .dispatch(&k("col2im"), &[cols], &[&img], &params, groups)?;
    Ok(img)
}

/// The grouped direct kernel from image `img` `[N, c, h, w]` to the grid `[N, o, oh, ow]`.
fn direct_to_grid(
    op: &'static str,
    img: &DeviceTensor,
    w: &DeviceTensor,
    g: &Geom,
) -> Result<DeviceTensor> {
    let n = img.shape()[0];
    let y = DeviceTensor::uninit_for(op, img.device(), &[n, g.o, g.oh, g.ow], DType::F32)?;
    let x = mul(op, img.shape(), &[g.oh, g.ow.div_ceil(DPOS)])?;
    let groups = grid_3d(op, x, g.o, n, img.shape())?;
    img.device().dispatch(
        &grouped("conv_direct_grouped"),
        &[img, w],
        &[&y],
        &g.params(y.numel(), 0, [0; 4]),
        groups,
    )?;
    Ok(y)
}

/// The grouped direct kernel from the grid `grid` `[N, o, oh, ow]` to the image
/// `[N, c, h, w]` (the adjoint of [`direct_to_grid`]).
fn direct_to_image(
    op: &'static str,
    grid: &DeviceTensor,
    w: &DeviceTensor,
    g: &Geom,
) -> Result<DeviceTensor> {
    let n = grid.shape()[0];
    let y = DeviceTensor::uninit_for(op, grid.device(), &[n, g.c, g.h, g.w], DType::F32)?;
    let x = mul(op, grid.shape(), &[g.h, g.w.div_ceil(DPOS)])?;
    let groups = grid_3d(op, x, g.c, n, grid.shape())?;
    grid.device().dispatch(
        &grouped("conv_direct_grouped_t"),
        &[grid, w],
        &[&y],
        &g.params(y.numel(), 0, [0; 4]),
        groups,
    )?;
    Ok(y)
}

/// The weight gradient `[o, c / groups, kh, kw]` (flat) of the grouped direct kernels:
/// per image, then summed over the images.
fn direct_weight(
    op: &'static str,
    grid: &DeviceTensor,
    img: &DeviceTensor,
    g: &Geom,
) -> Result<DeviceTensor> {
    let n = grid.shape()[0];
    let per = mul(op, grid.shape(), &[g.o, g.cg(), g.kh, g.kw])?;
    let parts = DeviceTensor::uninit_for(op, grid.device(), &[n, per], DType::F32)?;
    let groups = grid_3d(op, per, 1, n, grid.shape())?;
    grid.device().dispatch(
        &grouped("conv_direct_grouped_weight"),
        &[grid, img],
        &[&parts],
        &g.params(parts.numel(), 0, [0; 4]),
        groups,
    )?;
    if n == 1 {
        parts.reshape(&[per])
    } else {
        parts.sum_axis(0, false)
    }
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

/// Images `n0..n0 + nb` of `t` along `axis` (no copy when that is all of them).
fn images(t: &DeviceTensor, axis: isize, n: usize, n0: usize, nb: usize) -> Result<DeviceTensor> {
    if nb == n {
        Ok(t.clone())
    } else {
        t.narrow(axis, n0, nb)
    }
}

/// `[N, R, L]` as `[R, N, L]` (a copy unless N = 1).
fn batch_inner(t: &DeviceTensor) -> Result<DeviceTensor> {
    let s = t.shape();
    if s[0] == 1 {
        t.reshape(&[s[1], 1, s[2]])
    } else {
        t.permute(&[1, 0, 2])
    }
}

/// `[R, nb, L]` as `[nb, R, L]` (a copy unless nb = 1).
fn batch_outer(t: &DeviceTensor) -> Result<DeviceTensor> {
    let s = t.shape();
    if s[1] == 1 {
        t.reshape(&[1, s[0], s[2]])
    } else {
        t.permute(&[1, 0, 2])
    }
}

/// Images `n0..n0 + nb` of the batch-inner `a_t` `[R, N, L]` as `[G, R / G, nb * L]`: the
/// rows of each group with the chunk's images side by side.
fn grouped_rows(
    a_t: &DeviceTensor,
    n: usize,
    n0: usize,
    nb: usize,
    gr: usize,
) -> Result<DeviceTensor> {
    let s = a_t.shape();
    let part = images(a_t, 1, n, n0, nb)?;
    part.reshape(&[gr, s[0] / gr, nb * s[2]])
}

/// Largest `N * R * Kg` for which [`weight_product`] multiplies image by image.
const PER_IMAGE_MAX: usize = 1 << 22;

/// The weight gradient's product: the sum over images of `a[n]` `[R, L]` times the
/// transposed columns of `src`'s image `n` (`[L, C*KH*KW]`, `L` = the grid's positions),
/// group by group, giving `[G, R / G, Kg]`.
///
/// Small products run one matmul per image (and group), batched, then a sum over the images:
/// no transpose copy, and enough invocations even when `[R, Kg]` is a tile or two (LeNet-5
/// C1: 6 x 25, where folding 64 images into the inner dimension left 2 invocations each
/// running 50,176 steps, 11 ms with its transpose copy against 4.5 ms). Larger ones fold the
/// batch into the inner dimension, `[G, R/G, nb * L] x [G, nb * L, Kg]`, so that no per-image
/// partials are materialized (for 512-channel layers those alone passed the binding limit).
fn weight_product(
    op: &'static str,
    a: &DeviceTensor,
    src: &DeviceTensor,
    g: &Geom,
) -> Result<DeviceTensor> {
    let (n, r, l) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    let gr = g.groups;
    let per = chunk(op, src.device().max_binding_bytes(), g, n)?;
    if mul(op, a.shape(), &[n, r, g.kg()])? <= PER_IMAGE_MAX {
        let a4 = a.reshape(&[n, gr, r / gr, l])?;
        return chunked_sum(n, per, |n0, nb| {
            let rows = im2col(op, src, g, n0, nb, Cols::ImageT)?; // [nb, G, L, Kg]
            images(&a4, 0, n, n0, nb)?.matmul(&rows)?.sum_axis(0, false)
        });
    }
    let a_t = batch_inner(a)?;
    chunked_sum(n, per, |n0, nb| {
        let rows = im2col(op, src, g, n0, nb, Cols::InnerT)?; // [G, nb * L, Kg]
        grouped_rows(&a_t, n, n0, nb, gr)?.matmul(&rows)
    })
}

/// Sums chunked partial results (for weight gradients).
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

/// Geometry of a convolution of `x` `[N, C, H, W]` by `w` `[O, C / groups, KH, KW]`, after
/// checking every size.
fn conv_geom(op: &'static str, x: [usize; 4], w: [usize; 4], p: &Conv2dParams) -> Result<Geom> {
    check_params(op, &x, p.stride, p.dilation, p.groups)?;
    check_groups(op, &x, &w, p.groups)?;
    if w[2] == 0 || w[3] == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel {:?} has a zero size", &w[2..]),
            &x,
        ));
    }
    let oh = conv_out(op, &x, (x[2], w[2], p.stride.0, p.padding.0, p.dilation.0))?;
    let ow = conv_out(op, &x, (x[3], w[3], p.stride.1, p.padding.1, p.dilation.1))?;
    // Every size a kernel multiplies must fit (the tensors themselves are checked when
    // allocated).
    mul(op, &x, &[x[1], w[2], w[3]])?;
    mul(op, &x, &[oh, ow])?;
    within_udiv(op, &x, &[mul(op, &x, &[x[1], w[2], w[3]])?, w[0]])?;
    let g = Geom {
        c: x[1],
        h: x[2],
        w: x[3],
        o: w[0],
        oh,
        ow,
        kh: w[2],
        kw: w[3],
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        groups: p.groups,
    };
    check_positions(op, &x, &g)?;
    Ok(g)
}

impl DeviceTensor {
    /// 2-D convolution of `self` `[N, C, H, W]` with `weight` `[O, C / groups, KH, KW]` and an
    /// optional `bias` `[O]`, giving `[N, O, OH, OW]` with PyTorch's output size. Returns
    /// `Err` on rank, channel or dtype mismatch, `C` or `O` not divisible by `groups`, a
    /// kernel larger than the padded input, zero stride, dilation, groups or kernel size, or
    /// sizes that overflow or pass the kernels' index range (along each axis, `H + 2 *
    /// padding + dilation * (KH - 1) + 1 + stride` below 2^24; 2^24 channel-taps).
    pub fn conv2d(
        &self,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        p: &Conv2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv2d";
        let xs = rank4(op, self, weight)?;
        let ws = rank4(op, weight, self)?;
        let g = conv_geom(op, xs, ws, p)?;
        if let Some(b) = bias {
            if b.shape() != [ws[0]] {
                return Err(Error::shapes(op, b.shape(), &[ws[0]]));
            }
            b.expect_dtype(op, DType::F32)?;
        }
        let out_shape = [xs[0], ws[0], g.oh, g.ow];
        // Whether the bias was added by the kernel that computed the product.
        let mut fused = false;
        let y = if xs[0] == 0 || ws[0] == 0 {
            DeviceTensor::zeros(self.device(), &out_shape)?
        } else if g.groups == 1 && g.rows() <= DIRECT_MAX_REDUCTION {
            let y = DeviceTensor::uninit_for(op, self.device(), &out_shape, DType::F32)?;
            let groups = grid_3d(op, g.cols(), ws[0].div_ceil(8), xs[0], &xs)?;
            let params = g.params(y.numel(), 0, [0; 4]);
            let b = bias.unwrap_or(self);
            self.device().dispatch(
                &direct(bias.is_some()),
                &[self, weight, b],
                &[&y],
                &params,
                groups,
            )?;
            fused = true;
            y
        } else if g.direct_grouped() {
            direct_to_grid(op, self, weight, &g)?
        } else if g.groups == 1 && use_implicit(self.device(), &g) {
            fused = true;
            conv_implicit(op, self, weight, bias, &g, &out_shape)?
        } else {
            let per = chunk(op, self.device().max_binding_bytes(), &g, xs[0])?;
            let y = if g.groups == 1 {
                let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
                let epilogue = Epilogue {
                    bias: bias.map(|b| (b, BiasAxis::Rows)),
                    relu: false,
                };
                fused = true;
                chunked(xs[0], per, |n0, nb| {
                    let cols = im2col(op, self, &g, n0, nb, Cols::Std)?;
                    w2.matmul_fused(&cols, false, false, MatmulKernel::Auto, epilogue)
                })?
            } else {
                let w3 = weight.reshape(&[g.groups, g.og(), g.kg()])?;
                chunked(xs[0], per, |n0, nb| {
                    let cols = im2col(op, self, &g, n0, nb, Cols::Inner)?; // [G, Kg, nb*L]
                    let y = w3.matmul(&cols)?.reshape(&[ws[0], nb, g.cols()])?;
                    batch_outer(&y)
                })?
            };
            y.reshape(&out_shape)?
        };
        match bias {
            Some(b) if !fused => y.add(&b.reshape(&[ws[0], 1, 1])?),
            _ => Ok(y),
        }
    }

    /// Gradient of [`DeviceTensor::conv2d`] with respect to its input: `grad_out`
    /// `[N, O, OH, OW]` and `weight` `[O, C / groups, KH, KW]` give `[N, C, H, W]` =
    /// `input_shape`. Returns `Err` when the shapes are inconsistent, as
    /// [`DeviceTensor::conv2d`] would.
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
        let g = conv_geom(op, xs, ws, p)?;
        if gs != [xs[0], ws[0], g.oh, g.ow] {
            return Err(Error::shapes(op, &gs, &[xs[0], ws[0], g.oh, g.ow]));
        }
        if xs[0] == 0 || ws[0] == 0 || xs[1] == 0 {
            return DeviceTensor::zeros(grad_out.device(), &xs);
        }
        if g.direct_grouped() {
            return direct_to_image(op, grad_out, weight, &g);
        }
        if let Some(gx) = input_grad_implicit(op, grad_out, weight, &g, &xs)? {
            return Ok(gx);
        }
        let gy = grad_out.reshape(&[gs[0], gs[1], g.cols()])?;
        let per = chunk(op, grad_out.device().max_binding_bytes(), &g, xs[0])?;
        if g.groups == 1 {
            let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
            return chunked(xs[0], per, |n0, nb| {
                let cols = w2.matmul_t(&images(&gy, 0, xs[0], n0, nb)?, true, false)?;
                col2im(op, &cols, &g, nb, Cols::Std)
            });
        }
        let w3 = weight.reshape(&[g.groups, g.og(), g.kg()])?;
        let gy_t = batch_inner(&gy)?; // [O, N, L]
        chunked(xs[0], per, |n0, nb| {
            let part = grouped_rows(&gy_t, xs[0], n0, nb, g.groups)?; // [G, Og, nb*L]
            let cols = w3.matmul_t(&part, true, false)?; // [G, Kg, nb*L]
            col2im(op, &cols, &g, nb, Cols::Inner)
        })
    }

    /// Gradient of [`DeviceTensor::conv2d`] with respect to its weight: `grad_out`
    /// `[N, O, OH, OW]` and `input` `[N, C, H, W]` give `[O, C / groups, KH, KW]` =
    /// `weight_shape`. Returns `Err` when the shapes are inconsistent, as
    /// [`DeviceTensor::conv2d`] would.
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
        let g = conv_geom(op, xs, ws, p)?;
        if gs != [xs[0], ws[0], g.oh, g.ow] {
            return Err(Error::shapes(op, &gs, &[xs[0], ws[0], g.oh, g.ow]));
        }
        if xs[0] == 0 || ws.contains(&0) {
            return DeviceTensor::zeros(grad_out.device(), &ws);
        }
        // Short dense reductions (LeNet C1) also skip the columns: per-image partial sums.
        if g.direct_grouped()
            || (g.groups == 1 && g.rows() <= DIRECT_MAX_REDUCTION && g.c * g.o <= DIRECT_GROUP_MAX)
        {
            return direct_weight(op, grad_out, input, &g)?.reshape(&ws);
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
    /// `[C_in, C_out / groups, KH, KW]` (PyTorch's layout) and an optional `bias` `[C_out]`,
    /// giving `[N, C_out, OH, OW]` with `OH = (H - 1) * stride - 2 * padding + dilation *
    /// (KH - 1) + output_padding + 1`. Returns `Err` on shape or dtype mismatch, `C_in` not
    /// divisible by `groups`, a non-positive output size, `output_padding` not below stride
    /// or dilation, zero stride, dilation, groups or kernel size, or sizes that overflow or
    /// pass the kernels' index range (as [`DeviceTensor::conv2d`], on the output's axes).
    pub fn conv_transpose2d(
        &self,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        p: &ConvTranspose2dParams,
    ) -> Result<DeviceTensor> {
        let op = "conv_transpose2d";
        let xs = rank4(op, self, weight)?;
        let ws = rank4(op, weight, self)?;
        let (g, out_shape) = transpose_geom(op, xs, ws, p)?;
        if let Some(b) = bias
            && b.shape() != [out_shape[1]]
        {
            return Err(Error::shapes(op, b.shape(), &[out_shape[1]]));
        }
        let y = if out_shape[0] == 0 || out_shape[1] == 0 || xs[1] == 0 {
            DeviceTensor::zeros(self.device(), &out_shape)?
        } else if g.direct_grouped() {
            direct_to_image(op, self, weight, &g)?
        } else {
            let x3 = self.reshape(&[xs[0], xs[1], xs[2] * xs[3]])?;
            let per = chunk(op, self.device().max_binding_bytes(), &g, xs[0])?;
            if g.groups == 1 {
                let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
                chunked(xs[0], per, |n0, nb| {
                    let cols = w2.matmul_t(&images(&x3, 0, xs[0], n0, nb)?, true, false)?;
                    col2im(op, &cols, &g, nb, Cols::Std) // cols: [nb, C_out*KK, H*W]
                })?
            } else {
                let w3 = weight.reshape(&[g.groups, g.og(), g.kg()])?;
                let x_t = batch_inner(&x3)?; // [C_in, N, HW]
                chunked(xs[0], per, |n0, nb| {
                    let part = grouped_rows(&x_t, xs[0], n0, nb, g.groups)?;
                    let cols = w3.matmul_t(&part, true, false)?; // [G, Kg, nb*HW]
                    col2im(op, &cols, &g, nb, Cols::Inner)
                })?
            }
        };
        match bias {
            None => Ok(y),
            Some(b) => y.add(&b.reshape(&[out_shape[1], 1, 1])?),
        }
    }

    /// Gradient of [`DeviceTensor::conv_transpose2d`] with respect to its input: a forward
    /// convolution of `grad_out` `[N, C_out, OH, OW]` with `weight`
    /// `[C_in, C_out / groups, KH, KW]`, giving `input_shape` `[N, C_in, H, W]`. Returns
    /// `Err` when the shapes are inconsistent, as [`DeviceTensor::conv_transpose2d`] would.
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
        if gs != out_shape {
            return Err(Error::shapes(op, &gs, &out_shape));
        }
        if xs[0] == 0 || xs[1] == 0 || out_shape[1] == 0 {
            return DeviceTensor::zeros(grad_out.device(), &xs);
        }
        if g.direct_grouped() {
            return direct_to_grid(op, grad_out, weight, &g)?.reshape(&xs);
        }
        let per = chunk(op, grad_out.device().max_binding_bytes(), &g, xs[0])?;
        let gx = if g.groups == 1 {
            let w2 = weight.reshape(&[1, ws[0], g.rows()])?;
            chunked(xs[0], per, |n0, nb| {
                let cols = im2col(op, grad_out, &g, n0, nb, Cols::Std)?; // [nb, C_out*KK, H*W]
                w2.matmul(&cols)
            })?
        } else {
            let w3 = weight.reshape(&[g.groups, g.og(), g.kg()])?;
            chunked(xs[0], per, |n0, nb| {
                let cols = im2col(op, grad_out, &g, n0, nb, Cols::Inner)?; // [G, Kg, nb*HW]
                let y = w3.matmul(&cols)?.reshape(&[xs[1], nb, g.cols()])?;
                batch_outer(&y)
            })?
        };
        gx.reshape(&xs)
    }

    /// Gradient of [`DeviceTensor::conv_transpose2d`] with respect to its weight: `grad_out`
    /// `[N, C_out, OH, OW]` and `input` `[N, C_in, H, W]` give `weight_shape`
    /// `[C_in, C_out / groups, KH, KW]`. Returns `Err` when the shapes are inconsistent, as
    /// [`DeviceTensor::conv_transpose2d`] would.
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
        if gs != out_shape {
            return Err(Error::shapes(op, &gs, &out_shape));
        }
        if xs[0] == 0 || ws.contains(&0) {
            return DeviceTensor::zeros(grad_out.device(), &ws);
        }
        if g.direct_grouped() {
            return direct_weight(op, input, grad_out, &g)?.reshape(&ws);
        }
        // [C_in, HW] x [HW, C_out*KK] per image (and group), summed: the roles of conv2d's
        // weight gradient with the input and the output gradient swapped.
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
    if xs[1] != ws[0] {
        return Err(Error::shapes(op, &xs, &ws));
    }
    if !ws[0].is_multiple_of(p.groups) {
        return Err(Error::invalid(
            op,
            format!(
                "{} input channels are not divisible by groups = {}",
                ws[0], p.groups
            ),
            &xs,
        ));
    }
    let c_out = mul(op, &ws, &[ws[1], p.groups])?;
    if ws[2] == 0 || ws[3] == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel {:?} has a zero size", &ws[2..]),
            &xs,
        ));
    }
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
        h.checked_sub(1)?
            .checked_mul(s)?
            .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
            .checked_add(op_)?
            .checked_add(1)?
            .checked_sub(pd.checked_mul(2)?)
            .filter(|&v| v > 0)
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
            "output size would be zero or negative, or overflows",
            &xs,
        ));
    };
    mul(op, &xs, &[oh, ow])?;
    mul(op, &xs, &[xs[2], xs[3]])?;
    within_udiv(op, &xs, &[mul(op, &xs, &[c_out, ws[2], ws[3]])?, xs[1]])?;
    let g = Geom {
        c: c_out,
        h: oh,
        w: ow,
        o: xs[1],
        oh: xs[2],
        ow: xs[3],
        kh: ws[2],
        kw: ws[3],
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        groups: p.groups,
    };
    check_positions(op, &xs, &g)?;
    Ok((g, [xs[0], c_out, oh, ow]))
}
