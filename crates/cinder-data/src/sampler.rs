//! [`DistributedSampler`]: the share of a dataset one rank of a data-parallel job reads each
//! epoch, as PyTorch's `torch.utils.data.DistributedSampler`.
//!
//! Every rank computes the same global order for an epoch (the loader's seeded shuffle, or
//! dataset order without a seed), makes its length a multiple of the number of ranks, and
//! takes every `num_replicas`-th index from its rank on. Rank `r`'s `k`-th batch of `B` and
//! the other ranks' `k`-th batches together are then exactly the `k`-th batch of `B x
//! num_replicas` that one process would read in the same global order, which is what makes
//! a data-parallel run equal a single-process run with the whole batch.
//!
//! `drop_last` is PyTorch's: with `false` (the default) the order is padded with its own
//! first indices until its length divides evenly, so every example is read and up to
//! `num_replicas - 1` are read twice per epoch; with `true` the tail past the largest
//! multiple of `num_replicas` is left out, so shards are disjoint and up to
//! `num_replicas - 1` examples are skipped that epoch (a different few each epoch when
//! shuffling). Either way every rank gets the same number of examples, so every rank runs
//! the same number of steps. Unlike PyTorch the permutation is not `torch.randperm`: the
//! same seed gives another order than PyTorch's, but the same order on every rank, every
//! run, for the same seed, epoch and dataset length.

use cinder_device::{Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Which share of a dataset of `len` examples rank `rank` of `num_replicas` reads each
/// epoch (see the module documentation for the order and `drop_last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributedSampler {
    len: usize,
    num_replicas: usize,
    rank: usize,
    shuffle: Option<u64>,
    drop_last: bool,
}

/// The order of `len` examples in `epoch`: `0..len`, or with a seed a permutation drawn
/// from the seed and the epoch (the [`crate::DataLoader`]'s shuffle).
pub(crate) fn epoch_order(len: usize, shuffle: Option<u64>, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if let Some(seed) = shuffle {
        let s = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        idx.shuffle(&mut StdRng::seed_from_u64(s));
    }
    idx
}

impl DistributedSampler {
    /// Rank `rank`'s share of `len` examples split over `num_replicas` ranks, in dataset
    /// order, padded (`drop_last` false). Returns `Err(InvalidArgument)` naming the values
    /// when `num_replicas` is 0 or `rank >= num_replicas`.
    pub fn new(len: usize, num_replicas: usize, rank: usize) -> Result<DistributedSampler> {
        if num_replicas == 0 || rank >= num_replicas {
            return Err(Error::invalid(
                "DistributedSampler",
                format!(
                    "rank {rank} of {num_replicas} replicas: need num_replicas >= 1 and rank < \
                     num_replicas"
                ),
                &[len],
            ));
        }
        Ok(DistributedSampler {
            len,
            num_replicas,
            rank,
            shuffle: None,
            drop_last: false,
        })
    }

    /// Shuffles every epoch from `seed` and the epoch number (the same permutation on every
    /// rank).
    pub fn shuffle(mut self, seed: u64) -> DistributedSampler {
        self.shuffle = Some(seed);
        self
    }

    /// Leaves out the tail that does not divide evenly instead of padding it (see the module
    /// documentation).
    pub fn drop_last(mut self, drop: bool) -> DistributedSampler {
        self.drop_last = drop;
        self
    }

    /// This rank's index.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn num_replicas(&self) -> usize {
        self.num_replicas
    }

    /// The dataset length the sampler splits.
    pub fn dataset_len(&self) -> usize {
        self.len
    }

    /// The shuffle seed, if any.
    pub fn seed(&self) -> Option<u64> {
        self.shuffle
    }

    /// Examples this rank reads per epoch (the same on every rank): `ceil(len /
    /// num_replicas)`, or `floor` with `drop_last`.
    pub fn num_samples(&self) -> usize {
        if self.drop_last {
            self.len / self.num_replicas
        } else {
            self.len.div_ceil(self.num_replicas)
        }
    }

    /// The dataset indices this rank reads in `epoch`, in order ([`Self::num_samples`] of
    /// them; empty for an empty dataset).
    pub fn indices(&self, epoch: u64) -> Vec<usize> {
        let mut order = epoch_order(self.len, self.shuffle, epoch);
        let total = self.num_samples() * self.num_replicas;
        if order.is_empty() {
            return Vec::new();
        }
        if total > order.len() {
            // Pad with the order's own head, repeated as often as needed (PyTorch's rule).
            let mut k = 0;
            while order.len() < total {
                order.push(order[k % self.len]);
                k += 1;
            }
        } else {
            order.truncate(total);
        }
        order
            .into_iter()
            .skip(self.rank)
            .step_by(self.num_replicas)
            .collect()
    }
}
