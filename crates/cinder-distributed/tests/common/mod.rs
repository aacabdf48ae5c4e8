//! What the single-process and the MPI tests share: a few steps of LeNet-5 on the first
//! Fashion-MNIST images, whole-batch or sharded.

use std::rc::Rc;
use std::sync::Arc;

use cinder_data::mnist::{self, Split};
use cinder_data::{DataLoader, Dataset, DistributedSampler, Transform};
use cinder_device::{Device, Result};
use cinder_distributed::{Communicator, DistributedDataParallel};
use cinder_models::LeNet5;
use cinder_models::train::train_epoch;
use cinder_nn::VarStore;
use cinder_nn::optim::{Optimizer, Sgd, SgdConfig};

/// Steps of every run.
pub const STEPS: usize = 6;
/// The per-rank batch of a two-rank run (the single-process run takes twice as many).
pub const BATCH: usize = 16;

/// The first `STEPS * 2 * BATCH` training images.
pub fn data() -> Dataset {
    let dir = mnist::data_dir(None);
    mnist::load(&dir, Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh installs it)")
        .take(STEPS * 2 * BATCH)
}

fn sgd(vs: &VarStore) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(Sgd::new(
        vs.parameters(),
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..Default::default()
        },
    )?))
}

fn loader(dev: &Device, data: Dataset, batch: usize) -> Result<DataLoader> {
    Ok(DataLoader::new(dev, Arc::new(data), batch)?
        .shuffle(3)
        .transforms(vec![Transform::Normalize {
            mean: vec![0.286],
            std: vec![0.353],
        }]))
}

/// Every parameter of `vs`, concatenated.
pub fn flat_parameters(vs: &VarStore) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    for p in vs.parameters() {
        v.extend(p.to_vec::<f32>()?);
    }
    Ok(v)
}

/// One process, batch `2 * BATCH`, seed 0: the parameters after `STEPS` steps.
pub fn single_process(dev: &Device) -> Result<Vec<f32>> {
    let vs = VarStore::new(dev, 0);
    let model = LeNet5::new(&vs.root(), 1, 10)?;
    let mut opt = sgd(&vs)?;
    let dl = loader(dev, data(), 2 * BATCH)?;
    assert_eq!(dl.num_batches(), STEPS);
    train_epoch(&model, opt.as_mut(), &dl, 0, 0, |_, _| {})?;
    flat_parameters(&vs)
}

/// This rank of `comm`, batch `2 * BATCH / size` (`BATCH` on two ranks), initialized from the seed `rank` (rank 0's
/// parameters must reach the others through the broadcast): the parameters after `STEPS`
/// steps and the allreduce count.
pub fn data_parallel(dev: &Device, comm: Rc<dyn Communicator>) -> Result<(Vec<f32>, usize)> {
    let vs = VarStore::new(dev, comm.rank() as u64);
    let model = LeNet5::new(&vs.root(), 1, 10)?;
    let ddp = DistributedDataParallel::with_bucket_bytes(comm.clone(), &vs, 64 << 10)?;
    let mut opt = ddp.wrap(sgd(&vs)?);
    let d = data();
    let sampler = DistributedSampler::new(d.len(), comm.size(), comm.rank())?.shuffle(3);
    let dl = loader(dev, d, 2 * BATCH / comm.size())?.sampler(sampler)?;
    assert_eq!(dl.num_batches(), STEPS);
    train_epoch(&model, &mut opt, &dl, 0, 0, |_, _| {})?;
    Ok((flat_parameters(&vs)?, opt.ddp().stats().allreduces))
}
