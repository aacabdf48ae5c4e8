//! Batched matrix multiply with transpose flags. Kernels in `shaders/matmul.wgsl`.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params};
use crate::shape::{broadcast_shapes, numel};
use crate::tensor::{DType, DeviceTensor};

/// Which matmul kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// The blocked kernel on CPU adapters, the tiled one on GPUs.
    Auto,
    /// One output per invocation (the reference).
    Naive,
    /// 8 x 16 outputs per invocation from global memory, no barriers (best on lavapipe).
    Blocked,
    /// 64 x 64 workgroup-memory tiles (best on GPUs).
    Tiled,
}

const LOAD_B_VEC4: &str = "let q0 = (b0 + kk * p.n) / 4u;
        let qmax = p.n / 4u - 1u;
        let qc = col0 / 4u;
        bq[0] = b4[q0 + min(qc, qmax)];
        bq[1] = b4[q0 + min(qc + 1u, qmax)];
        bq[2] = b4[q0 + min(qc + 2u, qmax)];
        bq[3] = b4[q0 + min(qc + 3u, qmax)];";

const LOAD_B_SCALAR: &str = "let r0 = b0 + kk * p.n;
        let last = p.n - 1u;
        for (var j = 0u; j < 4u; j++) {
            let cc = col0 + j * 4u;
            bq[j] = vec4<f32>(b[r0 + min(cc, last)], b[r0 + min(cc + 1u, last)],
                              b[r0 + min(cc + 2u, last)], b[r0 + min(cc + 3u, last)]);
        }";

/// The blocked kernel's load of 16 columns of row `kk` of a transposed B (`[N, K]`): 16
/// strided scalars, so that `x @ w^T` needs no transposed copy of `w`.
const LOAD_B_TRANS: &str = "let last = p.n - 1u;
        for (var j = 0u; j < 4u; j++) {
            let cc = col0 + j * 4u;
            bq[j] = vec4<f32>(b[b0 + min(cc, last) * p.k + kk], b[b0 + min(cc + 1u, last) * p.k + kk],
                              b[b0 + min(cc + 2u, last) * p.k + kk], b[b0 + min(cc + 3u, last) * p.k + kk]);
        }";

/// Products of at most this many rows read a transposed B in place; larger ones copy it.
const TRANS_B_IN_PLACE_ROWS: usize = 16;

/// How the blocked kernel loads B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadB {
    /// Untransposed, `N % 4 == 0`: four `vec4`.
    Vec4,
    /// Untransposed, any `N`: scalars.
    Scalar,
    /// Transposed (`[N, K]`): strided scalars.
    Trans,
}

/// Rows and columns of C one invocation of the blocked kernel computes (`BLOCK_ROWS`,
/// `BLOCK_COLS` in matmul.wgsl).
pub(crate) const BLOCK_ROWS: u32 = 8;
pub(crate) const BLOCK_COLS: u32 = 16;
/// Rows and columns of C one workgroup of the tiled kernel computes (`TILE` in matmul.wgsl).
pub(crate) const TILE: u32 = 64;

/// Which axis of the product a fused bias runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasAxis {
    /// One value per column (`[N]`): a linear layer's bias.
    Cols,
    /// One value per row (`[M]`): a convolution's bias, the rows being output channels.
    Rows,
}

/// What a product does to each output as it stores it, fused into the matmul kernels: an
/// optional bias along one axis, then an optional ReLU. The default stores the product.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// A bias `[N]` ([`BiasAxis::Cols`]) or `[M]` ([`BiasAxis::Rows`]), shared by the batch.
    pub bias: Option<(&'a DeviceTensor, BiasAxis)>,
    /// Whether the stored value is `relu(product + bias)`.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The kernels' `(EPI, ACT)` override constants.
    fn codes(&self) -> (u32, u32) {
        let epi = match self.bias {
            None => 0,
            Some((_, BiasAxis::Cols)) => 1,
            Some((_, BiasAxis::Rows)) => 2,
        };
        (epi, self.relu as u32)
    }
}

fn with_epilogue(k: Kernel, (epi, act): (u32, u32)) -> Kernel {
    k.with_constant("EPI", epi as f64)
        .with_constant("ACT", act as f64)
}

fn naive(e: (u32, u32)) -> Kernel {
    with_epilogue(
        Kernel::new("matmul", "matmul_naive", 3, 1)
            .with_subst("BLOCKED_LOAD_B", "")
            .with_workgroup((16, 16, 1)),
        e,
    )
}

fn blocked(ta: bool, load: LoadB, e: (u32, u32)) -> Kernel {
    let text = match load {
        LoadB::Vec4 => LOAD_B_VEC4,
        LoadB::Scalar => LOAD_B_SCALAR,
        LoadB::Trans => LOAD_B_TRANS,
    };
    with_epilogue(
        Kernel::new("matmul", "matmul_blocked", 3, 1)
            .with_subst("BLOCKED_LOAD_B", text)
            .with_constant("TA", ta as u32 as f64)
            .with_workgroup((8, 4, 1)),
        e,
    )
}

fn tiled(ta: bool, tb: bool, e: (u32, u32)) -> Kernel {
    with_epilogue(
        Kernel::new("matmul", "matmul_tiled", 3, 1)
            .with_subst("BLOCKED_LOAD_B", "")
            .with_constant("TA", ta as u32 as f64)
            .with_constant("TB", tb as u32 as f64)
            .with_workgroup((16, 16, 1)),
        e,
    )
}

/// Every epilogue the kernels are specialized for: `(EPI, ACT)`.
const EPILOGUES: [(u32, u32); 6] = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)];

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    for e in EPILOGUES {
        v.push(naive(e));
        for ta in [false, true] {
            for x in [false, true] {
                v.push(tiled(ta, x, e));
            }
            for load in [LoadB::Vec4, LoadB::Scalar, LoadB::Trans] {
                v.push(blocked(ta, load, e));
            }
        }
    }
    v
}

fn groups_ok(g: (u32, u32, u32)) -> bool {
    let max = crate::kernel::MAX_GROUPS_PER_DIM;
    g.0 <= max && g.1 <= max && g.2 <= max
}

impl DeviceTensor {
    /// Matrix product with `torch.matmul`'s semantics: `[..., M, K] @ [..., K, N]` gives
    /// `[..., M, N]` with the batch dimensions broadcast (`[2, 1, 4, 5] @ [3, 5, 6]` is
    /// `[2, 3, 4, 6]`; a side whose batch is all 1 is reused without a copy, others are
    /// expanded); a 1-D left operand is a row vector and a 1-D right operand a column vector,
    /// whose dimension is removed from the result (vector @ vector is a scalar `[]`). Returns
    /// `Err` naming both shapes when the inner dimensions differ or the batches do not
    /// broadcast, for a rank-0 operand, or for `u32` operands.
    pub fn matmul(&self, rhs: &DeviceTensor) -> Result<DeviceTensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) @ op(rhs)` where `op` transposes the last two dimensions when its flag is
    /// set, without materializing the transpose: `self` is `[..., M, K]` (`[..., K, M]` if
    /// `trans_a`), `rhs` is `[..., K, N]` (`[..., N, K]` if `trans_b`); batches broadcast and
    /// 1-D operands are vectors as in [`DeviceTensor::matmul`] (a flag on a 1-D operand
    /// changes nothing). Errors as [`DeviceTensor::matmul`].
    pub fn matmul_t(
        &self,
        rhs: &DeviceTensor,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<DeviceTensor> {
        self.matmul_with(rhs, trans_a, trans_b, MatmulKernel::Auto)
    }

    /// [`DeviceTensor::matmul_t`] with an explicit kernel choice (for tests and benches).
    /// Errors as [`DeviceTensor::matmul`].
    pub fn matmul_with(
        &self,
        rhs: &DeviceTensor,
        trans_a: bool,
        trans_b: bool,
        kernel: MatmulKernel,
    ) -> Result<DeviceTensor> {
        self.matmul_fused(rhs, trans_a, trans_b, kernel, Epilogue::default())
    }

    /// [`DeviceTensor::matmul_with`] with an [`Epilogue`] fused into the store: a bias along
    /// the columns or rows of each product and an optional ReLU, so `relu(x w^T + b)` is one
    /// kernel. Returns `Err` as [`DeviceTensor::matmul_with`], and when the bias is not f32,
    /// not 1-D, not as long as the axis it runs along, or on another device.
    pub fn matmul_fused(
        &self,
        rhs: &DeviceTensor,
        trans_a: bool,
        trans_b: bool,
        kernel: MatmulKernel,
        epilogue: Epilogue,
    ) -> Result<DeviceTensor> {
        let op = "matmul";
        self.expect_dtype(op, DType::F32)?;
        rhs.expect_dtype(op, DType::F32)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::shapes(op, self.shape(), rhs.shape()));
        }
        // 1-D operands become a row (left) or a column (right) vector, removed at the end.
        let (a_vec, b_vec) = (self.rank() == 1, rhs.rank() == 1);
        let a = if a_vec {
            let k = self.numel();
            self.reshape(&if trans_a { [k, 1] } else { [1, k] })?
        } else {
            self.clone()
        };
        let b = if b_vec {
            let k = rhs.numel();
            rhs.reshape(&if trans_b { [1, k] } else { [k, 1] })?
        } else {
            rhs.clone()
        };
        let out = a.matmul_batched(
            &b,
            trans_a,
            trans_b,
            kernel,
            (self.shape(), rhs.shape()),
            epilogue,
        )?;
        if !a_vec && !b_vec {
            return Ok(out);
        }
        let mut shape = out.shape().to_vec();
        let r = shape.len();
        if b_vec {
            shape.remove(r - 1);
        }
        if a_vec {
            shape.remove(r - 2);
        }
        out.reshape(&shape)
    }

    /// The product of operands of rank 2 or more, batches broadcast. `orig` are the shapes
    /// the caller gave, for errors.
    fn matmul_batched(
        &self,
        rhs: &DeviceTensor,
        trans_a: bool,
        trans_b: bool,
        kernel: MatmulKernel,
        orig: (&[usize], &[usize]),
        epilogue: Epilogue,
    ) -> Result<DeviceTensor> {
        let op = "matmul";
        let (sa, sb) = (self.shape(), rhs.shape());
        let (ra, rb) = (sa.len(), sb.len());
        let (m, ka) = if trans_a {
            (sa[ra - 1], sa[ra - 2])
        } else {
            (sa[ra - 2], sa[ra - 1])
        };
        let (kb, n) = if trans_b {
            (sb[rb - 1], sb[rb - 2])
        } else {
            (sb[rb - 2], sb[rb - 1])
        };
        if ka != kb {
            return Err(Error::shapes(op, orig.0, orig.1));
        }
        if let Some((bias, axis)) = epilogue.bias {
            bias.expect_dtype(op, DType::F32)?;
            let len = if axis == BiasAxis::Cols { n } else { m };
            if bias.shape() != [len] {
                return Err(Error::shapes("matmul bias", bias.shape(), &[len]));
            }
            if !bias.device().same(self.device()) {
                return Err(Error::invalid(
                    op,
                    "bias lives on another device",
                    bias.shape(),
                ));
            }
        }
        let codes = epilogue.codes();
        let (ba, bb) = (&sa[..ra - 2], &sb[..rb - 2]);
        let batch_shape =
            broadcast_shapes(op, ba, bb).map_err(|_| Error::shapes(op, orig.0, orig.1))?;
        // A side whose batch is all 1 is reused by every batch (stride 0); a side with a
        // real batch of another shape is expanded to the full batch.
        let expand = |t: &DeviceTensor, own: &[usize]| -> Result<DeviceTensor> {
            if numel(own) == 1 || own == batch_shape.as_slice() {
                return Ok(t.clone());
            }
            let r = t.rank();
            let mut s = batch_shape.clone();
            s.extend_from_slice(&t.shape()[r - 2..]);
            t.broadcast_to(&s)
        };
        let (a_full, b_full) = (expand(self, ba)?, expand(rhs, bb)?);
        let (ba, bb) = (
            &a_full.shape()[..a_full.rank() - 2],
            &b_full.shape()[..b_full.rank() - 2],
        );
        let (lhs, rhs) = (&a_full, &b_full);
        let bias = epilogue.bias.map_or(lhs, |(b, _)| b);
        let batch = numel(&batch_shape);
        let mut out_shape = batch_shape;
        out_shape.extend([m, n]);
        let out = DeviceTensor::uninit_for(op, self.device(), &out_shape, DType::F32)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        if ka == 0 {
            // An empty sum is 0: the epilogue of zeros.
            let mut y = DeviceTensor::zeros(self.device(), &out_shape)?;
            match epilogue.bias {
                Some((b, BiasAxis::Cols)) => y = y.add(b)?,
                Some((b, BiasAxis::Rows)) => y = y.add(&b.reshape(&[m, 1])?)?,
                None => {}
            }
            return if epilogue.relu { y.relu() } else { Ok(y) };
        }
        if batch > crate::kernel::MAX_GROUPS_PER_DIM as usize {
            return Err(Error::invalid(
                op,
                "more than 65535 batched matrices",
                &out_shape,
            ));
        }
        let a_stride = if numel(ba) == 1 { 0 } else { m * ka };
        let b_stride = if numel(bb) == 1 { 0 } else { ka * n };
        let params = |tb: bool| {
            Params::new()
                .usize(m)
                .usize(n)
                .usize(ka)
                .usize(batch)
                .usize(a_stride)
                .usize(b_stride)
                .u32(trans_a as u32)
                .u32(tb as u32)
        };
        let kernel = match kernel {
            MatmulKernel::Auto if self.device().is_cpu() => MatmulKernel::Blocked,
            MatmulKernel::Auto => MatmulKernel::Tiled,
            k => k,
        };
        let too_big = || Error::invalid(op, "matrix too large for one dispatch", &out_shape);
        match kernel {
            MatmulKernel::Blocked => {
                // A transposed B is copied once and read as vec4 rows, except for products
                // of a few rows, which read it in place (strided): per kernel on lavapipe,
                // the MLP's 128 x 784 x 256 product took 3.96 ms in place against 0.48 ms of
                // copy and 2.8 ms of product (docs/performance.md).
                let in_place = trans_b && m <= TRANS_B_IN_PLACE_ROWS;
                let load = if in_place {
                    LoadB::Trans
                } else if n % 4 == 0 {
                    LoadB::Vec4
                } else {
                    LoadB::Scalar
                };
                let b = if trans_b && !in_place {
                    rhs.transpose(-1, -2)?
                } else {
                    rhs.clone()
                };
                let k = blocked(trans_a, load, codes);
                let wg = k.workgroup;
                let g = (
                    (n.div_ceil(BLOCK_COLS as usize).div_ceil(wg.0 as usize)) as u32,
                    (m.div_ceil(BLOCK_ROWS as usize).div_ceil(wg.1 as usize)) as u32,
                    batch as u32,
                );
                if !groups_ok(g) {
                    return Err(too_big());
                }
                self.device()
                    .dispatch(&k, &[lhs, &b, bias], &[&out], &params(false), g)?;
            }
            MatmulKernel::Tiled => {
                let t = TILE as usize;
                let g = (n.div_ceil(t) as u32, m.div_ceil(t) as u32, batch as u32);
                if !groups_ok(g) {
                    return Err(too_big());
                }
                self.device().dispatch(
                    &tiled(trans_a, trans_b, codes),
                    &[lhs, rhs, bias],
                    &[&out],
                    &params(trans_b),
                    g,
                )?;
            }
            _ => {
                let k = naive(codes);
                let wg = k.workgroup;
                let g = (
                    n.div_ceil(wg.0 as usize) as u32,
                    m.div_ceil(wg.1 as usize) as u32,
                    batch as u32,
                );
                if !groups_ok(g) {
                    return Err(too_big());
                }
                self.device()
                    .dispatch(&k, &[lhs, rhs, bias], &[&out], &params(trans_b), g)?;
            }
        }
        Ok(out)
    }
}
