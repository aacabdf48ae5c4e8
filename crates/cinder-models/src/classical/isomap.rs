//! Isomap (scikit-learn's `Isomap` with Euclidean distances): the k-nearest-neighbour graph,
//! all-pairs shortest paths by blocked Floyd-Warshall on the GPU, then classical MDS (kernel
//! PCA of `-0.5 H D^2 H`) by block subspace iteration.

use super::{check_data, pca::top_eigen};
use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

/// Components of a disconnected neighbour graph that are joined at most (the join holds a
/// table of every pair of components).
const MAX_JOINED: usize = 256;

/// Euclidean distances `[n, n]` between the rows of `x` (`[n, d]`), by the expansion
/// `|a|^2 - 2 a.b + |b|^2` clamped at 0, then a square root. The Gram matrix is `x x^T`
/// against a materialized `x^T` (a transpose flag on the right operand is several times
/// slower on lavapipe).
pub(crate) fn pairwise_dists(x: &DeviceTensor) -> Result<DeviceTensor> {
    let n = x.shape()[0];
    let x_sq = x.square()?.sum_axis(1, true)?;
    let g = x.matmul(&x.t()?)?;
    x_sq.add(&x_sq.reshape(&[1, n])?)?
        .sub(&g.mul_scalar(2.0)?)?
        .maximum_scalar(0.0)?
        .sqrt()
}

/// Checks the sizes shared by Isomap and LLE: `n <= x.device().max_square_side()` (one
/// `[n, n]` f32 matrix is one storage binding), `1 <= k < n`,
/// `1 <= p < n`.
pub(crate) fn check_sizes(
    op: &'static str,
    x: &DeviceTensor,
    n: usize,
    k: usize,
    p: usize,
) -> Result<()> {
    let max = x.device().max_square_side();
    if n > max {
        return Err(Error::invalid(
            op,
            format!(
                "{n} samples: an [n, n] f32 matrix must fit one storage binding of {} MiB (n <= {max})",
                x.device().max_binding_bytes() >> 20
            ),
            x.shape(),
        ));
    }
    if k == 0 || k >= n {
        return Err(Error::invalid(
            op,
            format!("n_neighbors = {k} must be in 1..n_samples ({n})"),
            x.shape(),
        ));
    }
    if p == 0 || p >= n {
        return Err(Error::invalid(
            op,
            format!("n_components = {p} must be in 1..n_samples ({n})"),
            x.shape(),
        ));
    }
    Ok(())
}

/// Isomap embedding (scikit-learn's `Isomap(n_neighbors, n_components)` with the Euclidean
/// metric).
///
/// The graph joins every point to its `n_neighbors` nearest others, weighted by the
/// Euclidean distance, and is taken as undirected (an edge when either end chose the
/// other), as scikit-learn's `shortest_path(..., directed=False)` does. Geodesic distances
/// `D` are its all-pairs shortest paths; the embedding is kernel PCA of the double-centred
/// `K = -0.5 H D^2 H`: the leading eigenvectors scaled by the square roots of their
/// eigenvalues.
#[derive(Clone, Debug)]
pub struct Isomap {
    /// Neighbours of every point in the graph.
    pub n_neighbors: usize,
    /// Dimensions of the embedding.
    pub n_components: usize,
    /// Subspace iterations at most for the eigenvectors (more than 64 points).
    pub max_iter: usize,
    /// Relative change of the block's Rayleigh trace that ends the iterations.
    pub tol: f32,
    /// Seed of the random starting block.
    pub seed: u64,
    fit: Option<IsomapFit>,
}

#[derive(Clone, Debug)]
struct IsomapFit {
    dist: DeviceTensor,
    eigenvalues: DeviceTensor,
    error: f32,
    n_iter: usize,
    n_graph: usize,
}

impl Isomap {
    /// `n_neighbors` neighbours, `n_components` dimensions; `max_iter = 1000`,
    /// `tol = 1e-6`, seed 0. Nothing is checked until [`Isomap::fit_transform`].
    pub fn new(n_neighbors: usize, n_components: usize) -> Self {
        Isomap {
            n_neighbors,
            n_components,
            max_iter: 1000,
            tol: 1e-6,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the seed of the eigen-iteration's starting block.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the cap on subspace iterations (0 is an `Err` at fit time).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the relative change of the Rayleigh trace that ends the subspace iterations.
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Fits the embedding of `x` (`[n, d]`, f32) and returns it, `[n, n_components]`
    /// (the largest-magnitude entry of every column positive, scikit-learn's `svd_flip`).
    ///
    /// Returns `Err` when `x` is not a finite f32 matrix with at least 2 rows, when
    /// `n_neighbors` or `n_components` is 0 or not below `n`, when `n` passes
    /// `Device::max_square_side` (the `[n, n]` distance matrix must fit one storage binding:
    /// 5792 under lavapipe's 128 MiB), when `max_iter` is 0, or when
    /// the neighbour graph has more than 256 connected components.
    ///
    /// A neighbour graph in several components is joined as scikit-learn 1.9 does
    /// (`_fix_connected_components`): for every pair of components, an edge between their
    /// two closest points. That path reads the `[n, n]` distances back once and scans them
    /// on the host; [`Isomap::n_graph_components`] tells how many components there were.
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let op = "Isomap::fit_transform";
        let (n, _) = check_data(op, x, 2)?;
        let (k, p) = (self.n_neighbors, self.n_components);
        check_sizes(op, x, n, k, p)?;
        if self.max_iter == 0 {
            return Err(Error::invalid(op, "max_iter must be at least 1", x.shape()));
        }
        let d = pairwise_dists(x)?;
        let (idx, val) = d.knn_select(k, true)?;
        let a = idx.scatter_rows(&val, n, f32::INFINITY, Some(0.0))?;
        let mut a = a.minimum(&a.t()?)?;
        // Components of the undirected k-NN graph, on the host from the neighbour lists
        // (n * k indices read back once).
        let labels = components(&idx.to_vec::<u32>()?, n, k);
        let n_graph = labels.iter().map(|&l| l + 1).max().unwrap_or(0);
        if n_graph > MAX_JOINED {
            return Err(Error::invalid(
                op,
                format!(
                    "the {k}-nearest-neighbour graph has {n_graph} components (at most {MAX_JOINED} are joined); raise n_neighbors"
                ),
                x.shape(),
            ));
        }
        if n_graph > 1 {
            a = a.minimum(&connecting_edges(&d, &labels, n_graph)?)?;
        }
        drop(d);
        let geo = a.shortest_paths()?;
        let unreachable = geo.nonfinite_mask()?.sum_all()?.to_scalar()?;
        if unreachable != 0.0 {
            return Err(Error::invalid(
                op,
                format!(
                    "{unreachable} pairs unreachable after joining the graph's components (path lengths over 1e30?)"
                ),
                x.shape(),
            ));
        }
        let kc = center_kernel(&geo)?;
        let (w, v, n_iter) = top_eigen(&kc, p, self.max_iter, self.tol, self.seed, |_, _| {})?;
        let w = w.maximum_scalar(0.0)?;
        let emb = v.mul(&w.sqrt()?.reshape(&[1, p])?)?;
        // scikit-learn: sqrt(sum(K^2) - sum(evals^2)) / n.
        let tot = kc.square()?.sum_all()?.to_scalar()?;
        let top = w.square()?.sum_all()?.to_scalar()?;
        let error = (tot - top).max(0.0).sqrt() / n as f32;
        self.fit = Some(IsomapFit {
            dist: geo,
            eigenvalues: w,
            error,
            n_iter,
            n_graph,
        });
        Ok(Tensor::from_raw(emb))
    }

    fn fitted(&self, op: &'static str) -> Result<&IsomapFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// scikit-learn's `reconstruction_error()`: `sqrt(sum(K^2) - sum(lambda^2)) / n` with
    /// `K` the centred kernel and `lambda` the kept eigenvalues. Returns `Err` before a fit.
    pub fn reconstruction_error(&self) -> Result<f32> {
        Ok(self.fitted("Isomap::reconstruction_error")?.error)
    }

    /// The geodesic distances `[n, n]` (scikit-learn's `dist_matrix_`). Returns `Err`
    /// before a fit.
    pub fn dist_matrix(&self) -> Result<Tensor> {
        let f = self.fitted("Isomap::dist_matrix")?;
        Ok(Tensor::from_raw(f.dist.clone()))
    }

    /// The kept eigenvalues of the centred kernel, `[n_components]`, descending. Returns
    /// `Err` before a fit.
    pub fn eigenvalues(&self) -> Result<Tensor> {
        let f = self.fitted("Isomap::eigenvalues")?;
        Ok(Tensor::from_raw(f.eigenvalues.clone()))
    }

    /// Connected components of the k-nearest-neighbour graph before they were joined (1
    /// when it was connected). Returns `Err` before a fit.
    pub fn n_graph_components(&self) -> Result<usize> {
        Ok(self.fitted("Isomap::n_graph_components")?.n_graph)
    }

    /// Subspace iterations the fit ran (0 when the kernel was decomposed directly, for at
    /// most 64 points). Returns `Err` before a fit.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("Isomap::n_iter")?.n_iter)
    }
}

/// Connected-component labels of the undirected graph whose edges are `i -- nbrs[i * k + t]`,
/// numbered in the order of their smallest point (scipy's `connected_components` order).
fn components(nbrs: &[u32], n: usize, k: usize) -> Vec<usize> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..n).collect();
    for i in 0..n {
        for &j in &nbrs[i * k..(i + 1) * k] {
            let (a, b) = (root(&mut parent, i), root(&mut parent, j as usize));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut label = vec![usize::MAX; n];
    let mut next = 0;
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let r = root(&mut parent, i);
        if label[r] == usize::MAX {
            label[r] = next;
            next += 1;
        }
        *o = label[r];
    }
    out
}

/// scikit-learn's `_fix_connected_components` in "distance" mode: for every pair of
/// components `(a, b)` with `a > b`, the closest pair of points (the first in row-major
/// order of the points of `a` by those of `b`) joined both ways with their distance.
/// Returns the `[n, n]` matrix of those edges (`inf` elsewhere). Reads `dist` back.
fn connecting_edges(dist: &DeviceTensor, labels: &[usize], c: usize) -> Result<DeviceTensor> {
    let n = labels.len();
    let dv = dist.to_vec::<f32>()?;
    let mut best = vec![(f32::INFINITY, 0usize, 0usize); c * c];
    for p in 0..n {
        for q in 0..n {
            let (la, lb) = (labels[p], labels[q]);
            if la > lb {
                let e = &mut best[la * c + lb];
                if dv[p * n + q] < e.0 {
                    *e = (dv[p * n + q], p, q);
                }
            }
        }
    }
    let mut lists: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for a in 0..c {
        for b in 0..a {
            let (v, p, q) = best[a * c + b];
            lists[p].push((q as u32, v));
            lists[q].push((p as u32, v));
        }
    }
    let e = lists.iter().map(Vec::len).max().unwrap_or(0).max(1);
    // Rows padded with column n, which `scatter_rows` skips.
    let mut idx = vec![n as u32; n * e];
    let mut val = vec![f32::INFINITY; n * e];
    for (i, l) in lists.iter().enumerate() {
        for (t, &(j, v)) in l.iter().enumerate() {
            idx[i * e + t] = j;
            val[i * e + t] = v;
        }
    }
    let dev = dist.device();
    let idx = DeviceTensor::from_slice(dev, &idx, &[n, e])?;
    let val = DeviceTensor::from_slice(dev, &val, &[n, e])?;
    idx.scatter_rows(&val, n, f32::INFINITY, None)
}

/// `-0.5 H (D * D) H` for a symmetric `D`: the row means of `-0.5 D^2` subtracted from rows
/// and columns, the grand mean added back.
fn center_kernel(d: &DeviceTensor) -> Result<DeviceTensor> {
    let n = d.shape()[0];
    let g = d.square()?.mul_scalar(-0.5)?;
    let r = g.mean_axis(1, true)?; // [n, 1]
    let m = r.mean_all()?;
    g.sub(&r)?.sub(&r.reshape(&[1, n])?)?.add(&m)
}
