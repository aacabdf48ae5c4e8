//! K-means clustering: greedy k-means++ initialization and Lloyd iterations on the GPU, with
//! `n_init` restarts keeping the lowest inertia (scikit-learn's `KMeans`, `algorithm="lloyd"`).

use super::rows::{Blocks, Rows};
use super::{Stream, check_features, sample_log_weights, sq_dists};

/// The training data laid out for distance computations, per row block: `x^T` (`[d, n_b]`,
/// materialized once per fit, so the distance matmul `c x^T` reads it with unit stride: 5x
/// faster on lavapipe than `x c^T` with a transpose flag for k = 10, n = 10,000, d = 784)
/// and the squared row norms as a `[1, n_b]` row.
struct Data {
    x: Blocks,
    xt: Vec<DeviceTensor>,
    x_sq: Vec<DeviceTensor>,
}

impl Data {
    fn new(x: Blocks) -> Result<Data> {
        let mut xt = Vec::with_capacity(x.parts.len());
        let mut x_sq = Vec::with_capacity(x.parts.len());
        for p in &x.parts {
            xt.push(p.t()?);
            x_sq.push(
                p.square()?
                    .sum_axis(1, false)?
                    .reshape(&[1, p.shape()[0]])?,
            );
        }
        Ok(Data { x, xt, x_sq })
    }

    /// Squared distances `[k, n]` from the rows of `c` (`[k, d]`) to every sample, clamped
    /// at 0.
    fn dists(&self, c: &DeviceTensor) -> Result<DeviceTensor> {
        let c_sq = c.square()?.sum_axis(1, true)?; // [k, 1]
        let parts = self
            .xt
            .iter()
            .zip(&self.x_sq)
            .map(|(xt, x_sq)| {
                let cx = c.matmul(xt)?; // [k, n_b]
                c_sq.add(x_sq)?
                    .sub(&cx.mul_scalar(2.0)?)?
                    .maximum_scalar(0.0)
            })
            .collect::<Result<Vec<_>>>()?;
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one block"));
        }
        DeviceTensor::concat(&parts.iter().collect::<Vec<_>>(), 1)
    }

    /// Mean over features of the per-feature (biased) variance.
    fn mean_var(&self) -> Result<f32> {
        let parts = &self.x.parts;
        if parts.len() == 1 {
            return parts[0].var_axis(0, false, false)?.mean_all()?.to_scalar();
        }
        let n = self.x.n as f32;
        let mean = self.x.col_mean()?; // [1, d]
        let mut ss = parts[0].sub(&mean)?.square()?.sum_all()?;
        for p in &parts[1..] {
            ss = ss.add(&p.sub(&mean)?.square()?.sum_all()?)?;
        }
        ss.div_scalar(n * self.x.d as f32)?.to_scalar()
    }
}
use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};

/// K-means clustering. Configure with the builder methods, then [`KMeans::fit`].
///
/// One Lloyd iteration is a handful of dispatches: squared distances by one matmul with the
/// `|x|^2 - 2 x.c + |c|^2` expansion, `argmin` for the labels, per-cluster sums as
/// `one_hot(labels)^T x` (another matmul), and the centroid shift, the only value read back.
/// Clusters that end an iteration empty are moved to the samples farthest from their
/// centroids, each to a different one: the `j`-th empty cluster (in index order) to the
/// `j`-th farthest sample, as scikit-learn's `_relocate_empty_clusters_dense`, except that
/// the chosen samples are not also taken out of the clusters they were assigned to (those
/// keep their mean for this iteration; the next assignment step settles it).
#[derive(Clone, Debug)]
pub struct KMeans {
    /// Number of clusters `k`.
    pub n_clusters: usize,
    /// Independent k-means++ initializations; the fit with the lowest inertia is kept.
    pub n_init: usize,
    /// Lloyd iterations at most per initialization.
    pub max_iter: usize,
    /// Relative tolerance: iterations stop when the squared centroid shift falls to
    /// `tol * mean feature variance` (scikit-learn's rule).
    pub tol: f32,
    /// Seed of the Philox stream used by the initializations.
    pub seed: u64,
    init: Option<DeviceTensor>,
    centers: Option<DeviceTensor>,
    labels: Option<DeviceTensor>,
    inertia: f32,
    n_iter: usize,
}

impl KMeans {
    /// `k` clusters with scikit-learn's defaults: `n_init = 1`, `max_iter = 300`,
    /// `tol = 1e-4`, seed 0. Nothing is checked until [`KMeans::fit`].
    pub fn new(n_clusters: usize) -> Self {
        KMeans {
            n_clusters,
            n_init: 1,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
            init: None,
            centers: None,
            labels: None,
            inertia: f32::NAN,
            n_iter: 0,
        }
    }

    /// Sets the number of initializations (at least 1, checked by `fit`).
    pub fn with_n_init(mut self, n_init: usize) -> Self {
        self.n_init = n_init;
        self
    }

    /// Sets the iteration cap per initialization (at least 1, checked by `fit`).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the relative tolerance (finite and non-negative, checked by `fit`).
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Starts from the given centroids (`[k, d]`, f32) instead of k-means++, as
    /// scikit-learn's `init=array`; one run is made whatever `n_init` says. The shape and
    /// values are checked by `fit` (`Err` on a mismatch or non-finite values).
    pub fn with_init(mut self, centers: Tensor) -> Self {
        self.init = Some(centers.raw());
        self
    }

    /// Sets the random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the centroids to `x` (`[n, d]`, f32). Returns `Err` when `x` is not a finite
    /// f32 matrix, when `k` is 0 or larger than `n`, when `n_init`/`max_iter` is 0 or
    /// `tol` is negative or not finite, or when the centroids given to
    /// [`KMeans::with_init`] are not a finite `[k, d]` f32 matrix. Use
    /// [`KMeans::fit_with`] to observe the iterations. `x` may be [`super::RowBlocks`]
    /// (data past one binding): distances, sums and draws run block by block, with the
    /// same result as on one tensor.
    pub fn fit(&mut self, x: &(impl Rows + ?Sized)) -> Result<&mut Self> {
        self.fit_with(x, |_, _, _| {})
    }

    /// [`KMeans::fit`] calling `progress(init, iteration, center_shift)` after every Lloyd
    /// iteration (the shift is the value already read back for the convergence test).
    /// Errors as [`KMeans::fit`].
    pub fn fit_with(
        &mut self,
        x: &(impl Rows + ?Sized),
        mut progress: impl FnMut(usize, usize, f32),
    ) -> Result<&mut Self> {
        let op = "KMeans::fit";
        let x = Blocks::new(op, x, 1)?;
        let k = self.n_clusters;
        if k == 0
            || self.n_init == 0
            || self.max_iter == 0
            || self.tol < 0.0
            || !self.tol.is_finite()
        {
            return Err(Error::invalid(
                op,
                format!(
                    "need n_clusters, n_init, max_iter >= 1 and a finite tol >= 0 (got {k}, {}, {}, {})",
                    self.n_init, self.max_iter, self.tol
                ),
                &x.shape(),
            ));
        }
        let (n, d) = (x.n, x.d);
        if k > n {
            return Err(Error::invalid(
                op,
                format!("n_clusters = {k} is larger than n_samples = {n}"),
                &x.shape(),
            ));
        }
        let data = Data::new(x)?;
        let tol = self.tol * data.mean_var()?;
        let mut stream = Stream::new(self.seed);
        if let Some(c) = &self.init {
            c.expect_dtype(op, DType::F32)?;
            if c.shape() != [k, d] {
                return Err(Error::shapes(op, c.shape(), &[k, d]));
            }
            super::check_finite(op, c)?;
        }
        let runs = if self.init.is_some() { 1 } else { self.n_init };
        let mut best: Option<(f32, DeviceTensor, DeviceTensor, usize)> = None;
        for init in 0..runs {
            let c0 = match &self.init {
                Some(c) => c.clone(),
                None => kmeans_plus_plus(&data, k, &mut stream)?,
            };
            let (c, iters) = lloyd(&data, c0, self.max_iter, tol, |it, s| progress(init, it, s))?;
            // Final assignment with the final centroids (as scikit-learn).
            let d = data.dists(&c)?;
            let labels = d.argmin_axis(0, false)?;
            let inertia = d.amin_axis(0, false)?.sum_all()?.to_scalar()?;
            if best.as_ref().is_none_or(|b| inertia < b.0) {
                best = Some((inertia, c, labels, iters));
            }
        }
        let (inertia, c, labels, iters) = best.expect("n_init >= 1");
        self.inertia = inertia;
        self.centers = Some(c);
        self.labels = Some(labels);
        self.n_iter = iters;
        Ok(self)
    }

    fn fitted(&self, op: &'static str) -> Result<&DeviceTensor> {
        self.centers
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// The centroids, `[k, d]`. Returns `Err` before `fit`.
    pub fn centers(&self) -> Result<Tensor> {
        let t = { self.fitted("KMeans::centers") };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The cluster of every training sample (u32 `[n]`). Returns `Err` before `fit`.
    pub fn labels(&self) -> Result<Tensor> {
        let t = {
            self.labels
                .as_ref()
                .ok_or_else(|| Error::invalid("KMeans::labels", "the model is not fitted", &[]))
        };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Sum of squared distances of the training samples to their closest centroid (NaN
    /// before `fit`).
    pub fn inertia(&self) -> f32 {
        self.inertia
    }

    /// Lloyd iterations run by the kept initialization (0 before `fit`).
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// The closest centroid of each row of `x` (`[m, d]`), as u32 `[m]`. Returns `Err`
    /// before `fit` or when `x` is not an f32 matrix with the fitted feature count.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let c = self.fitted("KMeans::predict")?;
            check_features("KMeans::predict", x, c.shape()[1])?;
            let x_sq = x.square()?.sum_axis(1, true)?;
            sq_dists(x, &x_sq, c)?.argmin_axis(1, false)
        };
        out.map(Tensor::from_raw)
    }

    /// Euclidean distances of each row of `x` to every centroid, `[m, k]`. Errors as
    /// [`KMeans::predict`].
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let c = self.fitted("KMeans::transform")?;
            check_features("KMeans::transform", x, c.shape()[1])?;
            let x_sq = x.square()?.sum_axis(1, true)?;
            sq_dists(x, &x_sq, c)?.sqrt()
        };
        out.map(Tensor::from_raw)
    }

    /// Minus the inertia of `x` against the fitted centroids (scikit-learn's `score`),
    /// read back. Errors as [`KMeans::predict`].
    pub fn score(&self, x: &Tensor) -> Result<f32> {
        let x = &x.raw();
        let c = self.fitted("KMeans::score")?;
        check_features("KMeans::score", x, c.shape()[1])?;
        let x_sq = x.square()?.sum_axis(1, true)?;
        Ok(-sq_dists(x, &x_sq, c)?
            .amin_axis(1, false)?
            .sum_all()?
            .to_scalar()?)
    }
}

/// Greedy k-means++ (scikit-learn's): the first centroid uniformly at random, then each next
/// one the best (lowest resulting potential) of `2 + ln k` candidates drawn with probability
/// proportional to the squared distance to the closest centroid so far. Candidates are drawn
/// on the GPU by the Gumbel-max trick; nothing is read back.
fn kmeans_plus_plus(data: &Data, k: usize, s: &mut Stream) -> Result<DeviceTensor> {
    let x = data.x.first();
    let n = data.x.n;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = s
        .uniform(x, &[1])?
        .mul_scalar(n as f32)?
        .minimum_scalar((n - 1) as f32)?
        .to_dtype(DType::U32)?;
    let mut centers = vec![data.x.gather(&first)?];
    // Squared distance of every sample to its closest centroid, [1, n].
    let mut closest = data.dists(&centers[0])?;
    for _ in 1..k {
        let logw = closest
            .add_scalar(1e-30)?
            .log()?
            .broadcast_to(&[trials, n])?;
        let cand = sample_log_weights(s, &logw)?; // [trials] u32
        let cx = data.x.gather(&cand)?; // [trials, d]
        let pot_each = data.dists(&cx)?.minimum(&closest)?; // [trials, n]
        let best = pot_each.sum_axis(1, false)?.argmin_axis(0, true)?; // [1]
        centers.push(cx.index_select(0, &best)?);
        closest = pot_each.index_select(0, &best)?;
    }
    let refs: Vec<&DeviceTensor> = centers.iter().collect();
    DeviceTensor::concat(&refs, 0)
}

/// Lloyd iterations from `c`; returns the final centroids and the number of iterations.
fn lloyd(
    data: &Data,
    mut c: DeviceTensor,
    max_iter: usize,
    tol: f32,
    mut progress: impl FnMut(usize, f32),
) -> Result<(DeviceTensor, usize)> {
    let x = data.x.first();
    let (n, k) = (data.x.n, c.shape()[0]);
    // Strictly lower triangular ones: `tri x empty` ranks each empty cluster among the empty
    // ones (an exclusive prefix sum), so the j-th empty cluster takes the j-th farthest sample.
    let tri: Vec<f32> = (0..k * k)
        .map(|i| if i % k < i / k { 1.0 } else { 0.0 })
        .collect();
    let tri = DeviceTensor::from_slice(x.device(), &tri, &[k, k])?;
    let mut iters = 0;
    for it in 0..max_iter {
        let d = data.dists(&c)?; // [k, n]
        let labels = d.argmin_axis(0, false)?;
        let oh = labels.one_hot(k)?; // [n, k]
        let sums = data.x.t_matmul(&oh)?; // [k, d]
        let counts = oh.sum_axis(0, false)?.reshape(&[k, 1])?;
        let mean = sums.div(&counts.maximum_scalar(1.0)?)?;
        let empty = counts.eq_scalar(0.0)?; // [k, 1]
        // The k farthest samples (k <= n), farthest first, and each cluster's rank among
        // the empty ones.
        let (far, _) = d
            .amin_axis(0, false)?
            .reshape(&[1, n])?
            .neg()?
            .knn_select(k, false)?;
        let rank = tri.matmul(&empty)?.reshape(&[k])?.to_dtype(DType::U32)?;
        let far_x = data.x.gather(&far.reshape(&[k])?.index_select(0, &rank)?)?; // [k, d]
        let newc = DeviceTensor::where_cond(&empty, &far_x, &mean)?;
        let shift = newc.sub(&c)?.square()?.sum_all()?.to_scalar()?;
        c = newc;
        iters = it + 1;
        progress(it, shift);
        if shift <= tol {
            break;
        }
    }
    Ok((c, iters))
}
