//! [`DataLoader`]: seeded shuffling, batching, transforms on a prefetch thread, and upload
//! of each batch into pooled device buffers.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use cinder_autograd::Tensor;
use cinder_device::{Device, Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::dataset::Dataset;
use crate::sampler::{DistributedSampler, epoch_order};
use crate::transform::Transform;

/// One batch on the device.
pub struct Batch {
    /// `[B, C, H, W]` f32 images after the transforms.
    pub images: Tensor,
    /// `[B]` u32 labels.
    pub labels: Tensor,
    /// The dataset indices of the examples, in batch order.
    pub indices: Vec<usize>,
}

/// Batches of a [`Dataset`]: with a seed, a new shuffle every epoch (the same for the same
/// seed and epoch); images converted to f32 in `[0, 1]` and transformed on a thread that
/// stays up to two batches ahead of the consumer.
#[derive(Clone)]
pub struct DataLoader {
    device: Device,
    data: Arc<Dataset>,
    batch_size: usize,
    shuffle: Option<u64>,
    drop_last: bool,
    sampler: Option<DistributedSampler>,
    transforms: Arc<Vec<Transform>>,
}

struct HostBatch {
    images: Vec<f32>,
    labels: Vec<u32>,
    indices: Vec<usize>,
}

impl DataLoader {
    /// Batches of `batch_size` in dataset order, no transforms; `data` is a [`Dataset`] or
    /// an `Arc` of one (shared with other loaders). Returns `Err` for a zero batch size.
    pub fn new(
        device: &Device,
        data: impl Into<Arc<Dataset>>,
        batch_size: usize,
    ) -> Result<DataLoader> {
        let data = data.into();
        if batch_size == 0 {
            return Err(Error::invalid("DataLoader", "batch size 0", &[]));
        }
        Ok(DataLoader {
            device: device.clone(),
            data,
            batch_size,
            shuffle: None,
            drop_last: false,
            sampler: None,
            transforms: Arc::new(Vec::new()),
        })
    }

    /// Reads only this rank's share of each epoch, as `sampler` says (PyTorch's
    /// `DataLoader(sampler=DistributedSampler(...))`): the sampler's order replaces the
    /// loader's own ([`DataLoader::shuffle`] then seeds only the transforms, and each rank
    /// draws its own augmentations). Returns `Err(InvalidArgument)` when the sampler was made
    /// for another dataset length.
    pub fn sampler(mut self, sampler: DistributedSampler) -> Result<DataLoader> {
        if sampler.dataset_len() != self.data.len() {
            return Err(Error::invalid(
                "DataLoader::sampler",
                format!(
                    "the sampler splits {} examples but the dataset holds {}",
                    sampler.dataset_len(),
                    self.data.len()
                ),
                &[self.data.len()],
            ));
        }
        self.sampler = Some(sampler);
        Ok(self)
    }

    /// The distributed sampler, if one was set.
    pub fn distributed_sampler(&self) -> Option<&DistributedSampler> {
        self.sampler.as_ref()
    }

    /// Shuffles every epoch from `seed` (and the epoch number).
    pub fn shuffle(mut self, seed: u64) -> DataLoader {
        self.shuffle = Some(seed);
        self
    }

    /// Drops a last, smaller batch.
    pub fn drop_last(mut self, drop: bool) -> DataLoader {
        self.drop_last = drop;
        self
    }

    /// The per-image transforms, applied in order after the conversion to `[0, 1]`.
    pub fn transforms(mut self, t: Vec<Transform>) -> DataLoader {
        self.transforms = Arc::new(t);
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self
            .sampler
            .as_ref()
            .map_or(self.data.len(), |s| s.num_samples());
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The example order of `epoch` (with a [`DataLoader::sampler`], this rank's share).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        match &self.sampler {
            Some(s) => s.indices(epoch),
            None => epoch_order(self.data.len(), self.shuffle, epoch),
        }
    }

    /// Iterates over the batches of `epoch`. A thread prepares batches ahead; dropping the
    /// iterator stops it.
    ///
    /// Every batch is `Ok` until something fails; the iterator then yields one `Err` and
    /// ends. The `Err` is the error a transform returned (unchanged), the device's error
    /// when an upload fails, or `Err(InvalidArgument)` from `DataLoader` when the prefetch
    /// thread panicked (naming the epoch, the batch and the panic's message) or ended
    /// before its last batch. An epoch is never silently short: it yields either all
    /// [`DataLoader::num_batches`] batches or an `Err`.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let (tx, rx) = sync_channel::<Result<HostBatch>>(2);
        let order = self.order(epoch);
        let (data, transforms) = (self.data.clone(), self.transforms.clone());
        let (bs, nb) = (self.batch_size, self.num_batches());
        let rank = self.sampler.map_or(0, |s| s.rank() as u64);
        let seed = self.shuffle.unwrap_or(0)
            ^ 0x5DEE_CE66
            ^ epoch.rotate_left(32)
            ^ rank.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let handle = std::thread::Builder::new()
            .name(format!("cinder-data-loader-epoch-{epoch}"))
            .spawn(move || {
                for b in 0..nb {
                    let indices: Vec<usize> =
                        order[b * bs..((b + 1) * bs).min(order.len())].to_vec();
                    let prepared = catch_unwind(AssertUnwindSafe(|| {
                        host_batch(&data, &transforms, indices, seed.wrapping_add(b as u64))
                    }))
                    .unwrap_or_else(|payload| {
                        Err(Error::invalid(
                            "DataLoader",
                            format!(
                                "the prefetch thread panicked while preparing batch {b} of \
                                 epoch {epoch}: {}",
                                panic_message(payload.as_ref())
                            ),
                            &[],
                        ))
                    });
                    let failed = prepared.is_err();
                    if tx.send(prepared).is_err() || failed {
                        return; // the consumer stopped, or this epoch ends with the error
                    }
                }
            });
        let (rx, handle, spawn_error) = match handle {
            Ok(h) => (Some(rx), Some(h), None),
            Err(e) => (
                None,
                None,
                Some(Error::invalid(
                    "DataLoader",
                    format!("cannot start the prefetch thread: {e}"),
                    &[],
                )),
            ),
        };
        Epoch {
            rx,
            handle,
            device: self.device.clone(),
            shape: self.data.image_shape(),
            epoch,
            expected: nb,
            received: 0,
            pending_error: spawn_error,
        }
    }
}

/// Converts the examples at `indices` to f32 and runs the transforms on each, with a
/// generator seeded by `seed`. Returns the first transform's error.
fn host_batch(
    data: &Dataset,
    transforms: &[Transform],
    indices: Vec<usize>,
    seed: u64,
) -> Result<HostBatch> {
    let shape = data.image_shape();
    let per = data.image_len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(indices.len() * per);
    for &i in &indices {
        let start = images.len();
        images.extend(data.image(i).iter().map(|&p| p as f32 / 255.0));
        for t in transforms {
            t.apply(&mut images[start..], shape, &mut rng)?;
        }
    }
    let labels = indices.iter().map(|&i| data.labels()[i] as u32).collect();
    Ok(HostBatch {
        images,
        labels,
        indices,
    })
}

/// The message of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The batches of one epoch (an iterator of `Result<Batch>`): all of them, or the ones
/// before the first error followed by that error, after which it yields `None`.
pub struct Epoch {
    rx: Option<Receiver<Result<HostBatch>>>,
    handle: Option<JoinHandle<()>>,
    device: Device,
    shape: [usize; 3],
    epoch: u64,
    expected: usize,
    received: usize,
    pending_error: Option<Error>,
}

impl Epoch {
    /// Stops the prefetch thread and ends the iteration.
    fn stop(&mut self) {
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.pending_error.take() {
            self.stop();
            return Some(Err(e));
        }
        let rx = self.rx.as_ref()?;
        let hb = match rx.recv() {
            Ok(Ok(hb)) => hb,
            Ok(Err(e)) => {
                self.stop();
                return Some(Err(e));
            }
            Err(_) => {
                // The thread hung up: fine after the last batch, an error before it.
                self.stop();
                if self.received == self.expected {
                    return None;
                }
                return Some(Err(Error::invalid(
                    "DataLoader",
                    format!(
                        "the prefetch thread of epoch {} ended after {} of {} batches",
                        self.epoch, self.received, self.expected
                    ),
                    &[],
                )));
            }
        };
        self.received += 1;
        let [c, h, w] = self.shape;
        let b = hb.labels.len();
        let up = || -> Result<Batch> {
            Ok(Batch {
                images: Tensor::from_slice(&self.device, &hb.images, &[b, c, h, w])?,
                labels: Tensor::from_slice(&self.device, &hb.labels, &[b])?,
                indices: hb.indices.clone(),
            })
        };
        let batch = up();
        if batch.is_err() {
            self.stop();
        }
        Some(batch)
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop();
    }
}
