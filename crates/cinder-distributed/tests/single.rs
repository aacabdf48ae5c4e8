//! DistributedDataParallel in a world of one: nothing is read back or changed, and the run
//! is the plain one.

mod common;

use std::rc::Rc;

use cinder_device::Device;
use cinder_distributed::{DistributedDataParallel, SingleProcess};
use cinder_nn::VarStore;

#[test]
fn a_world_of_one_does_no_work_and_trains_as_a_plain_run() {
    let dev = Device::default().unwrap();
    let vs = VarStore::new(&dev, 0);
    let _model = cinder_models::LeNet5::new(&vs.root(), 1, 10).unwrap();
    let mut ddp = DistributedDataParallel::new(Rc::new(SingleProcess), &vs).unwrap();
    assert_eq!(ddp.buckets().concat().len(), vs.parameters().len());
    assert_eq!(ddp.buckets()[0][0], "fc3.bias", "reverse creation order");
    let before = dev.dispatch_stats();
    ddp.sync_gradients().unwrap();
    assert_eq!(ddp.stats().syncs, 0);
    assert_eq!(dev.dispatch_stats(), before, "no work in a world of one");

    let want = common::single_process(&dev).unwrap();
    let (got, allreduces) = common::data_parallel(&dev, Rc::new(SingleProcess)).unwrap();
    assert_eq!(allreduces, 0);
    assert_eq!(got, want);
}

#[test]
fn a_bucket_smaller_than_one_f32_is_an_error() {
    let dev = Device::default().unwrap();
    let vs = VarStore::new(&dev, 0);
    let e = DistributedDataParallel::with_bucket_bytes(Rc::new(SingleProcess), &vs, 3)
        .err()
        .unwrap();
    assert!(e.to_string().contains("3 bytes"), "{e}");
}
