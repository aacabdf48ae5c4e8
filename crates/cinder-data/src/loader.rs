//! [`DataLoader`]: seeded shuffling, batching, transforms on a prefetch thread, and upload
//! of each batch into pooled device buffers.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use cinder_device::{Device, DeviceTensor, Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::dataset::Dataset;
use crate::transform::Transform;

/// One batch on the device.
pub struct Batch {
    /// `[B, C, H, W]` f32 images after the transforms.
    pub images: DeviceTensor,
    /// `[B]` u32 labels.
    pub labels: DeviceTensor,
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
    transforms: Arc<Vec<Transform>>,
}

struct HostBatch {
    images: Vec<f32>,
    labels: Vec<u32>,
    indices: Vec<usize>,
}

impl DataLoader {
    /// Batches of `batch_size` in dataset order, no transforms. Returns `Err` for a zero
    /// batch size.
    pub fn new(device: &Device, data: Arc<Dataset>, batch_size: usize) -> Result<DataLoader> {
        if batch_size == 0 {
            return Err(Error::invalid("DataLoader", "batch size 0", &[]));
        }
        Ok(DataLoader {
            device: device.clone(),
            data,
            batch_size,
            shuffle: None,
            drop_last: false,
            transforms: Arc::new(Vec::new()),
        })
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
        let n = self.data.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The example order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if let Some(seed) = self.shuffle {
            let s = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            idx.shuffle(&mut StdRng::seed_from_u64(s));
        }
        idx
    }

    /// Iterates over the batches of `epoch`. A thread prepares batches ahead; dropping the
    /// iterator stops it.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let (tx, rx) = sync_channel::<HostBatch>(2);
        let order = self.order(epoch);
        let (data, transforms) = (self.data.clone(), self.transforms.clone());
        let (bs, nb) = (self.batch_size, self.num_batches());
        let seed = self.shuffle.unwrap_or(0) ^ 0x5DEE_CE66 ^ epoch.rotate_left(32);
        let handle = std::thread::spawn(move || {
            let shape = data.image_shape();
            let per = data.image_len();
            for b in 0..nb {
                let indices: Vec<usize> = order[b * bs..((b + 1) * bs).min(order.len())].to_vec();
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(b as u64));
                let mut images = Vec::with_capacity(indices.len() * per);
                for &i in &indices {
                    let start = images.len();
                    images.extend(data.image(i).iter().map(|&p| p as f32 / 255.0));
                    for t in transforms.iter() {
                        t.apply(&mut images[start..], shape, &mut rng);
                    }
                }
                let labels = indices.iter().map(|&i| data.labels()[i] as u32).collect();
                if tx
                    .send(HostBatch {
                        images,
                        labels,
                        indices,
                    })
                    .is_err()
                {
                    return; // the consumer stopped
                }
            }
        });
        Epoch {
            rx: Some(rx),
            handle: Some(handle),
            device: self.device.clone(),
            shape: self.data.image_shape(),
        }
    }
}

/// The batches of one epoch (an iterator of `Result<Batch>`: an upload can fail).
pub struct Epoch {
    rx: Option<Receiver<HostBatch>>,
    handle: Option<JoinHandle<()>>,
    device: Device,
    shape: [usize; 3],
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let hb = self.rx.as_ref()?.recv().ok()?;
        let [c, h, w] = self.shape;
        let b = hb.labels.len();
        let up = || -> Result<Batch> {
            Ok(Batch {
                images: DeviceTensor::from_slice(&self.device, &hb.images, &[b, c, h, w])?,
                labels: DeviceTensor::from_slice(&self.device, &hb.labels, &[b])?,
                indices: hb.indices.clone(),
            })
        };
        Some(up())
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
