//! [`DistributedDataParallel`]: one model replicated on every rank, kept equal by a
//! broadcast at the start and a bucketed gradient allreduce after every backward.

use std::rc::Rc;
use std::time::Instant;

use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};
use cinder_nn::VarStore;
use cinder_nn::optim::Optimizer;

use crate::comm::Communicator;

/// PyTorch's default `bucket_cap_mb`: 25 MiB of gradients per allreduce.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// Time and volume of the gradient averaging so far (see
/// [`DistributedDataParallel::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DdpStats {
    /// Gradient averagings done ([`DistributedDataParallel::sync_gradients`] calls in a
    /// world of more than one rank).
    pub syncs: usize,
    /// Allreduce calls (buckets) over all syncs.
    pub allreduces: usize,
    /// Bytes allreduced per rank over all syncs (gradients and their presence flags).
    pub bytes: u64,
    /// Seconds waiting, at the start of each sync, for the device to finish the work queued
    /// before it (the backward pass: ops only record work, so this is most of backward's
    /// time, not communication).
    pub wait_seconds: f64,
    /// Seconds inside the allreduce calls.
    pub allreduce_seconds: f64,
    /// Seconds moving gradients between the device and the host: flattening and reading
    /// each bucket back, then uploading the averages.
    pub transfer_seconds: f64,
}

/// A model's [`VarStore`] replicated over the ranks of a [`Communicator`], as PyTorch's
/// `DistributedDataParallel`: [`DistributedDataParallel::new`] broadcasts every parameter
/// and buffer from rank 0, and [`DistributedDataParallel::sync_gradients`], called after
/// backward and before the optimizer step (or through [`DdpOptimizer`]), replaces every
/// parameter's gradient with the mean over the ranks.
///
/// Gradients travel in buckets of about [`DEFAULT_BUCKET_BYTES`], parameters taken in
/// reverse creation order (roughly the order backward produces their gradients, as
/// PyTorch's buckets): one flatten on the device, one readback, one allreduce and one
/// upload per bucket. A parameter without a gradient on some rank counts as zero there, and
/// keeps no gradient only if no rank has one (so the optimizer skips it on every rank
/// alike). Buffers (batch-norm running statistics) are not averaged: each rank keeps its
/// own, normalizing with its own batch's statistics; [`DistributedDataParallel::broadcast_buffers`]
/// copies rank 0's, as PyTorch's `broadcast_buffers=True` does before each forward.
pub struct DistributedDataParallel {
    comm: Rc<dyn Communicator>,
    vs: VarStore,
    params: Vec<(String, Tensor)>,
    buckets: Vec<Vec<usize>>,
    stats: DdpStats,
}

fn comm_error(comm: &dyn Communicator, op: &'static str, msg: String) -> Error {
    Error::Communication {
        op,
        rank: comm.rank(),
        world: comm.size(),
        msg,
    }
}

/// Groups parameter indices in reverse order into buckets of at most `cap` bytes (a larger
/// parameter gets a bucket of its own).
fn make_buckets(numels: &[usize], cap: usize) -> Vec<Vec<usize>> {
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0usize;
    for i in (0..numels.len()).rev() {
        let b = numels[i] * 4;
        match buckets.last_mut() {
            Some(last) if bytes + b <= cap => {
                last.push(i);
                bytes += b;
            }
            _ => {
                buckets.push(vec![i]);
                bytes = b;
            }
        }
    }
    buckets
}

impl DistributedDataParallel {
    /// Replicates `vs` over `comm`'s ranks with [`DEFAULT_BUCKET_BYTES`] buckets: checks that
    /// every rank holds the same variables (names, shapes and dtypes), then broadcasts every
    /// parameter and buffer from rank 0. Every rank must call it. Returns
    /// `Err(Communication)` on every rank when the ranks' stores differ (different models or
    /// settings), and the device's error when a readback fails.
    pub fn new(comm: Rc<dyn Communicator>, vs: &VarStore) -> Result<DistributedDataParallel> {
        Self::with_bucket_bytes(comm, vs, DEFAULT_BUCKET_BYTES)
    }

    /// [`DistributedDataParallel::new`] with buckets of at most `bucket_bytes` (at least 4).
    /// Returns `Err(InvalidArgument)` for a smaller cap.
    pub fn with_bucket_bytes(
        comm: Rc<dyn Communicator>,
        vs: &VarStore,
        bucket_bytes: usize,
    ) -> Result<DistributedDataParallel> {
        if bucket_bytes < 4 {
            return Err(Error::invalid(
                "DistributedDataParallel",
                format!("bucket of {bucket_bytes} bytes: at least one f32 (4 bytes) is needed"),
                &[],
            ));
        }
        let params = vs.named_parameters();
        for (name, p) in &params {
            if p.dtype() != DType::F32 {
                return Err(Error::invalid(
                    "DistributedDataParallel",
                    format!(
                        "parameter `{name}` is {:?}; gradients are averaged in f32",
                        p.dtype()
                    ),
                    p.shape().as_slice(),
                ));
            }
        }
        let numels: Vec<usize> = params.iter().map(|(_, p)| p.numel()).collect();
        let ddp = DistributedDataParallel {
            buckets: make_buckets(&numels, bucket_bytes),
            comm,
            vs: vs.clone(),
            params,
            stats: DdpStats::default(),
        };
        ddp.check_same_store()?;
        ddp.broadcast_state()?;
        Ok(ddp)
    }

    /// Every rank must hold the same variables: compares a signature of the store (how many
    /// variables, how many elements, a hash of the names, shapes and dtypes) across ranks
    /// with one allreduce of its values and their squares.
    fn check_same_store(&self) -> Result<()> {
        let comm = self.comm.as_ref();
        if comm.size() == 1 {
            return Ok(());
        }
        let state = self.vs.state();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (name, t) in &state {
            feed(name.as_bytes());
            for d in t.shape() {
                feed(&(d as u64).to_le_bytes());
            }
            feed(&[t.dtype() as u8]);
        }
        let total: usize = state.iter().map(|(_, t)| t.numel()).sum();
        // Values kept below 2^26 so that squares and their sums stay exact in f64.
        let sig = [
            state.len() as f64,
            (total % (1 << 26)) as f64,
            (h & 0x3ff_ffff) as f64,
            ((h >> 26) & 0x3ff_ffff) as f64,
        ];
        let mut buf: Vec<f64> = sig
            .iter()
            .chain(sig.iter().map(|v| v * v).collect::<Vec<_>>().iter())
            .copied()
            .collect();
        comm.allreduce_sum_f64(&mut buf)?;
        let w = comm.size() as f64;
        let same = (0..sig.len()).all(|j| buf[sig.len() + j] * w == buf[j] * buf[j]);
        if !same {
            return Err(comm_error(
                comm,
                "DistributedDataParallel::new",
                format!(
                    "the ranks hold different models: this rank has {} variables of {} \
                     elements in all, another rank has others (build the same model with the \
                     same settings on every rank)",
                    state.len(),
                    total
                ),
            ));
        }
        Ok(())
    }

    /// Copies every parameter and buffer of rank 0 to every other rank (one broadcast; one
    /// readback per variable). Every rank must call it. Returns the device's error when a
    /// readback fails, or the communicator's.
    pub fn broadcast_state(&self) -> Result<()> {
        self.broadcast_vars(&self.vs.state())
    }

    /// Copies rank 0's buffers (batch-norm running statistics) to every other rank, as
    /// PyTorch's `broadcast_buffers=True` does before each forward. Every rank must call it;
    /// the same errors as [`DistributedDataParallel::broadcast_state`].
    pub fn broadcast_buffers(&self) -> Result<()> {
        self.broadcast_vars(&self.vs.named_buffers())
    }

    fn broadcast_vars(&self, vars: &[(String, Tensor)]) -> Result<()> {
        let comm = self.comm.as_ref();
        if comm.size() == 1 || vars.is_empty() {
            return Ok(());
        }
        let mut words: Vec<u32> = Vec::new();
        for (_, t) in vars {
            let raw = t.raw();
            match raw.dtype() {
                DType::F32 => words.extend(raw.to_vec::<f32>()?.iter().map(|v| v.to_bits())),
                DType::U32 => words.extend(raw.to_vec::<u32>()?),
            }
        }
        comm.broadcast(&mut words, 0)?;
        if comm.rank() != 0 {
            let mut at = 0;
            for (_, t) in vars {
                let raw = t.raw();
                let part = &words[at..at + raw.numel()];
                match raw.dtype() {
                    DType::F32 => {
                        let v: Vec<f32> = part.iter().map(|&w| f32::from_bits(w)).collect();
                        raw.write(&v)?;
                    }
                    DType::U32 => raw.write(part)?,
                }
                at += raw.numel();
            }
        }
        Ok(())
    }

    /// Replaces every parameter's gradient with its mean over the ranks (see the type's
    /// documentation for buckets and missing gradients). Every rank must call it after
    /// backward, before the optimizer step. A world of one returns at once (nothing is read
    /// back). Returns the device's error when a readback or upload fails, or the
    /// communicator's; the gradients are then partly averaged, so stop training.
    pub fn sync_gradients(&mut self) -> Result<()> {
        let comm = self.comm.clone();
        let world = comm.size();
        if world == 1 {
            return Ok(());
        }
        let device = self.vs.device().clone();
        let scale = 1.0 / world as f32;
        let t = Instant::now();
        device.sync()?;
        self.stats.wait_seconds += t.elapsed().as_secs_f64();
        for bucket in &self.buckets {
            let t0 = Instant::now();
            let mut flat: Vec<DeviceTensor> = Vec::with_capacity(bucket.len());
            for &i in bucket {
                let p = &self.params[i].1;
                flat.push(match p.grad() {
                    Some(g) => g.raw().reshape(&[p.numel()])?,
                    None => DeviceTensor::zeros(&device, &[p.numel()])?,
                });
            }
            let refs: Vec<&DeviceTensor> = flat.iter().collect();
            let mut host = if refs.len() == 1 {
                refs[0].to_vec::<f32>()?
            } else {
                DeviceTensor::concat(&refs, 0)?.to_vec::<f32>()?
            };
            let n_grad = host.len();
            host.extend(bucket.iter().map(|&i| {
                if self.params[i].1.grad().is_some() {
                    1.0
                } else {
                    0.0
                }
            }));
            let t1 = Instant::now();
            comm.allreduce_sum(&mut host)?;
            let t2 = Instant::now();
            let mut at = 0;
            for (k, &i) in bucket.iter().enumerate() {
                let p = &self.params[i].1;
                let n = p.numel();
                if host[n_grad + k] > 0.0 {
                    let mean: Vec<f32> = host[at..at + n].iter().map(|v| v * scale).collect();
                    let g = DeviceTensor::from_slice(&device, &mean, p.shape().as_slice())?;
                    p.set_grad(Some(Tensor::from_raw(g)));
                }
                at += n;
            }
            self.stats.allreduces += 1;
            self.stats.bytes += 4 * host.len() as u64;
            self.stats.allreduce_seconds += (t2 - t1).as_secs_f64();
            self.stats.transfer_seconds += (t1 - t0).as_secs_f64() + t2.elapsed().as_secs_f64();
        }
        self.stats.syncs += 1;
        Ok(())
    }

    /// The communicator.
    pub fn comm(&self) -> &Rc<dyn Communicator> {
        &self.comm
    }

    /// The replicated store.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// The buckets: parameter names per allreduce, in the order they are sent.
    pub fn buckets(&self) -> Vec<Vec<String>> {
        self.buckets
            .iter()
            .map(|b| b.iter().map(|&i| self.params[i].0.clone()).collect())
            .collect()
    }

    /// Time and volume of the averaging so far.
    pub fn stats(&self) -> DdpStats {
        self.stats
    }

    /// Wraps `opt` so that its [`Optimizer::step`] first averages the gradients: a training
    /// loop written for one process then trains data-parallel unchanged.
    pub fn wrap(self, opt: Box<dyn Optimizer>) -> DdpOptimizer {
        DdpOptimizer {
            ddp: self,
            inner: opt,
        }
    }
}

/// An optimizer whose step averages the gradients over the ranks first
/// ([`DistributedDataParallel::wrap`]); everything else is the inner optimizer's.
pub struct DdpOptimizer {
    ddp: DistributedDataParallel,
    inner: Box<dyn Optimizer>,
}

impl DdpOptimizer {
    /// The replication.
    pub fn ddp(&self) -> &DistributedDataParallel {
        &self.ddp
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }
}

impl Optimizer for DdpOptimizer {
    /// Averages the gradients ([`DistributedDataParallel::sync_gradients`]), then steps the
    /// inner optimizer; returns the first error of either.
    fn step(&mut self) -> Result<()> {
        self.ddp.sync_gradients()?;
        self.inner.step()
    }

    fn zero_grad(&self) {
        self.inner.zero_grad()
    }

    fn num_groups(&self) -> usize {
        self.inner.num_groups()
    }

    fn group_parameters(&self, group: usize) -> Option<&[Tensor]> {
        self.inner.group_parameters(group)
    }

    fn lr(&self) -> f32 {
        self.inner.lr()
    }

    fn lrs(&self) -> Vec<f32> {
        self.inner.lrs()
    }

    fn set_lr(&mut self, lr: f32) {
        self.inner.set_lr(lr)
    }

    fn set_group_lr(&mut self, group: usize, lr: f32) -> Result<()> {
        self.inner.set_group_lr(group, lr)
    }

    fn initial_lrs(&self) -> Vec<f32> {
        self.inner.initial_lrs()
    }

    fn momentum(&self, group: usize) -> Option<f32> {
        self.inner.momentum(group)
    }

    fn set_group_momentum(&mut self, group: usize, momentum: f32) -> Result<()> {
        self.inner.set_group_momentum(group, momentum)
    }

    fn parameters(&self) -> &[Tensor] {
        self.inner.parameters()
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.inner.state()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.inner.load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::make_buckets;

    #[test]
    fn buckets_take_parameters_in_reverse_up_to_the_cap() {
        // 4-byte elements: caps of 40 bytes hold 10 elements.
        assert_eq!(
            make_buckets(&[3, 4, 5, 20, 2], 40),
            vec![vec![4], vec![3], vec![2, 1], vec![0]]
        );
        assert_eq!(make_buckets(&[1, 1, 1], 1 << 20), vec![vec![2, 1, 0]]);
        assert!(make_buckets(&[], 40).is_empty());
    }
}
