//! Graph ops for the manifold learners: k-nearest-neighbour selection from a dense distance
//! matrix, a dense matrix built from per-row `(index, value)` lists, and all-pairs shortest
//! paths by Floyd-Warshall. Kernels in `shaders/graph.wgsl`.
//!
//! Graphs are dense `[n, n]` f32 adjacency matrices (edge weights, `f32::INFINITY` where
//! there is no edge), so one graph is one binding: at most 128 MiB on lavapipe, `n <= 5792`.

use crate::error::{Error, Result};
use crate::kernel::{ELEMS_PER_INVOCATION, Kernel, Params, grid_1d};
use crate::tensor::{DType, DeviceTensor};

/// Invocations per workgroup (`WG` in the shader).
const WG: u32 = 64;
/// Pivots per round of the blocked Floyd-Warshall (`T` in the shader).
pub const TILE: usize = 32;
/// Rows and columns of the tile one invocation of the min-plus phase computes.
pub const RB: usize = 4;
/// See [`RB`].
pub const CB: usize = 4;
/// The finite stand-in for an unreachable pair inside the shortest-path kernels (`BIG`).
pub const BIG: f32 = 1e30;

fn kernel(entry: &'static str, reads: u32, writes: u32) -> Kernel {
    Kernel::new("graph", entry, reads, writes).with_workgroup((WG, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        kernel("knn_select", 1, 2),
        kernel("knn_dense", 2, 1),
        kernel("fw_in", 0, 1),
        kernel("fw_out", 0, 1),
        kernel("fw_pivot", 0, 1),
        kernel("fw_diag", 0, 1),
        kernel("fw_panel", 0, 1),
        kernel("fw_rest", 0, 1),
    ]
}

/// The host constants `graph.wgsl` repeats.
pub(crate) fn contracts() -> Vec<super::Contract> {
    let c = |name, value: u64| super::Contract {
        family: "graph",
        name,
        value,
    };
    vec![c("T", TILE as u64), c("RB", RB as u64), c("CB", CB as u64)]
}

/// Parameters in the order of `struct P` in `graph.wgsl`.
fn params(n: usize, m: usize, k: usize, step: usize, flag: bool, fill: f32, diag: f32) -> Params {
    Params::new()
        .usize(n)
        .usize(m)
        .usize(k)
        .usize(step)
        .u32(flag as u32)
        .f32(fill)
        .f32(diag)
}

fn matrix(op: &'static str, t: &DeviceTensor) -> Result<(usize, usize)> {
    t.expect_dtype(op, DType::F32)?;
    if t.rank() != 2 {
        return Err(Error::invalid(op, "expected an [n, m] matrix", t.shape()));
    }
    Ok((t.shape()[0], t.shape()[1]))
}

fn square(op: &'static str, t: &DeviceTensor) -> Result<usize> {
    let (n, m) = matrix(op, t)?;
    if n != m {
        return Err(Error::invalid(
            op,
            "expected a square [n, n] matrix",
            t.shape(),
        ));
    }
    Ok(n)
}

impl DeviceTensor {
    /// The `k` smallest entries of every row of the f32 matrix `self` (`[n, m]`), in
    /// increasing order with ties broken by the lower column: returns `(idx, val)`, u32 and
    /// f32 `[n, k]`. With `skip_self` (a square matrix of distances between the same
    /// points) column `i` of row `i` is never chosen. One invocation per row, `k` passes over
    /// it: meant for small `k`. Returns `Err` for a non-f32 or non-2-D input, a non-square
    /// one with `skip_self`, or `k` of 0 or above the candidates of a row (`m`, or `m - 1`
    /// with `skip_self`).
    pub fn knn_select(&self, k: usize, skip_self: bool) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "knn_select";
        let (n, m) = matrix(op, self)?;
        if skip_self && n != m {
            return Err(Error::invalid(
                op,
                "skip_self needs a square matrix",
                self.shape(),
            ));
        }
        let cand = if skip_self { m.saturating_sub(1) } else { m };
        if k == 0 || k > cand {
            return Err(Error::invalid(
                op,
                format!("k = {k} must be in 1..={cand} (the candidates of a row)"),
                self.shape(),
            ));
        }
        let dev = self.device();
        let idx = DeviceTensor::uninit_for(op, dev, &[n, k], DType::U32)?;
        let val = DeviceTensor::uninit_for(op, dev, &[n, k], DType::F32)?;
        if n == 0 {
            return Ok((idx, val));
        }
        dev.dispatch(
            &kernel("knn_select", 1, 2),
            &[self],
            &[&idx, &val],
            &params(n, m, k, 0, skip_self, 0.0, 0.0),
            grid_1d(n, WG)?,
        )?;
        Ok((idx, val))
    }

    /// A dense `[n, m]` f32 matrix from per-row lists: `fill` everywhere, `val[i, t]` at
    /// `(i, idx[i, t])` (a later duplicate of a column wins; an index `>= m` is skipped), and
    /// then `diag` on the diagonal when `diag` is `Some`. `self` is the u32 index `[n, k]`,
    /// `val` f32 `[n, k]`. Returns `Err` on a dtype or shape mismatch.
    pub fn scatter_rows(
        &self,
        val: &DeviceTensor,
        m: usize,
        fill: f32,
        diag: Option<f32>,
    ) -> Result<DeviceTensor> {
        let op = "scatter_rows";
        self.expect_dtype(op, DType::U32)?;
        val.expect_dtype(op, DType::F32)?;
        if self.rank() != 2 || val.shape() != self.shape() {
            return Err(Error::shapes(op, self.shape(), val.shape()));
        }
        let (n, k) = (self.shape()[0], self.shape()[1]);
        let dev = self.device();
        let out = DeviceTensor::uninit_for(op, dev, &[n, m], DType::F32)?;
        if n * m == 0 {
            return Ok(out);
        }
        dev.dispatch(
            &kernel("knn_dense", 2, 1),
            &[self, val],
            &[&out],
            &params(n, m, k, 0, diag.is_some(), fill, diag.unwrap_or(0.0)),
            grid_1d(n, WG)?,
        )?;
        Ok(out)
    }

    /// All-pairs shortest path lengths of the graph whose `[n, n]` adjacency matrix is
    /// `self` (entry `(i, j)`: the weight of the edge i -> j, `f32::INFINITY` for none; the
    /// diagonal is taken as 0), by blocked Floyd-Warshall: rounds of [`TILE`] pivots, each
    /// three dispatches (the diagonal block, the two panels, then a min-plus product for the
    /// rest), all recorded without a readback, so they go to the device in few submits.
    /// Returns `[n, n]` with `f32::INFINITY` for unreachable pairs. Weights are expected
    /// to be >= 0 and path lengths below 1e30 (not checked: a negative cycle gives
    /// meaningless values). Returns `Err` for a non-f32 or non-square input, or one over
    /// the device's binding limit.
    pub fn shortest_paths(&self) -> Result<DeviceTensor> {
        let op = "shortest_paths";
        let n = square(op, self)?;
        let d = self.deep_clone()?;
        if n == 0 {
            return Ok(d);
        }
        let dev = self.device();
        self.fw_edges(&d, n, "fw_in")?;
        let rounds = n.div_ceil(TILE);
        let tiles = n.div_ceil(RB) * n.div_ceil(CB);
        for r in 0..rounds {
            let p = params(n, n, 0, r, false, 0.0, 0.0);
            dev.dispatch(&kernel("fw_diag", 0, 1), &[], &[&d], &p, (1, 1, 1))?;
            dev.dispatch(
                &kernel("fw_panel", 0, 1),
                &[],
                &[&d],
                &p,
                grid_1d(2 * n, WG)?,
            )?;
            dev.dispatch(
                &kernel("fw_rest", 0, 1),
                &[],
                &[&d],
                &p,
                grid_1d(tiles, WG)?,
            )?;
        }
        self.fw_edges(&d, n, "fw_out")?;
        Ok(d)
    }

    /// [`DeviceTensor::shortest_paths`] by plain Floyd-Warshall, one dispatch per pivot
    /// (`n` dispatches over all `n^2` entries; slower, kept as a reference for the blocked
    /// form). Same input, output and errors.
    pub fn shortest_paths_per_pivot(&self) -> Result<DeviceTensor> {
        let op = "shortest_paths_per_pivot";
        let n = square(op, self)?;
        let d = self.deep_clone()?;
        if n == 0 {
            return Ok(d);
        }
        let dev = self.device();
        self.fw_edges(&d, n, "fw_in")?;
        let groups = grid_1d((n * n).div_ceil(ELEMS_PER_INVOCATION), WG)?;
        for k in 0..n {
            let p = params(n, n, 0, k, false, 0.0, 0.0);
            dev.dispatch(&kernel("fw_pivot", 0, 1), &[], &[&d], &p, groups)?;
        }
        self.fw_edges(&d, n, "fw_out")?;
        Ok(d)
    }

    /// Runs `fw_in` or `fw_out` over `d` in place.
    fn fw_edges(&self, d: &DeviceTensor, n: usize, entry: &'static str) -> Result<()> {
        let groups = grid_1d((n * n).div_ceil(ELEMS_PER_INVOCATION), WG)?;
        let p = params(n, n, 0, 0, false, 0.0, 0.0);
        self.device()
            .dispatch(&kernel(entry, 0, 1), &[], &[d], &p, groups)
    }
}
