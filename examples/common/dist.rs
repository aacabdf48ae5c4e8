//! `--distributed`: the classifier examples' data-parallel mode on MPI (`mpirun -np N
//! target/release/examples/NAME --distributed`, built with `--features mpi`).

use std::rc::Rc;

use cinder::distributed::{Communicator, DdpOptimizer, DdpStats, DistributedDataParallel};
use cinder::nn::VarStore;
use cinder::nn::optim::Optimizer;

/// The job this process belongs to.
pub struct Dist {
    /// The communicator (MPI's world).
    pub comm: Rc<dyn Communicator>,
}

impl Dist {
    /// Joins the MPI job that started this process (a world of one without mpirun), and
    /// silences every rank but 0. Returns `Err` when MPI cannot start, or when the example
    /// was built without the `mpi` feature (the message says how to build it).
    #[cfg(feature = "mpi")]
    pub fn join() -> anyhow::Result<Dist> {
        let comm = cinder::distributed::MpiCommunicator::init()?;
        super::set_rank_zero_only(comm.is_root());
        Ok(Dist {
            comm: Rc::new(comm),
        })
    }

    /// Without the `mpi` feature: `Err` saying how to build with it.
    #[cfg(not(feature = "mpi"))]
    pub fn join() -> anyhow::Result<Dist> {
        anyhow::bail!(
            "--distributed needs MPI, and this example was built without it: run \
             scripts/setup.sh --mpi, then cargo build --release --features mpi --example NAME \
             and start it with mpirun -np 2 target/release/examples/NAME --distributed \
             (docs/distributed.md)"
        )
    }

    /// True on rank 0.
    pub fn is_root(&self) -> bool {
        self.comm.is_root()
    }

    /// Sums `values` over the ranks (f64).
    pub fn sum(&self, values: &mut [f64]) -> anyhow::Result<()> {
        self.comm.allreduce_sum_f64(values)?;
        Ok(())
    }
}

/// The optimizer of a run: the plain one, or one that averages gradients over the ranks
/// first.
pub enum Opt {
    /// One process.
    Plain(Box<dyn Optimizer>),
    /// Data-parallel.
    Ddp(Box<DdpOptimizer>),
}

impl Opt {
    /// Wraps `opt` for `dist` (broadcasting `vs` from rank 0), or keeps it for a run of one
    /// process.
    pub fn new(opt: Box<dyn Optimizer>, dist: Option<&Dist>, vs: &VarStore) -> anyhow::Result<Opt> {
        Ok(match dist {
            Some(d) => Opt::Ddp(Box::new(
                DistributedDataParallel::new(d.comm.clone(), vs)?.wrap(opt),
            )),
            None => Opt::Plain(opt),
        })
    }

    /// The optimizer.
    pub fn get(&mut self) -> &mut dyn Optimizer {
        match self {
            Opt::Plain(o) => o.as_mut(),
            Opt::Ddp(o) => o.as_mut(),
        }
    }

    /// The optimizer, shared.
    pub fn get_ref(&self) -> &dyn Optimizer {
        match self {
            Opt::Plain(o) => o.as_ref(),
            Opt::Ddp(o) => o.as_ref(),
        }
    }

    /// The replication's figures, in a data-parallel run.
    pub fn ddp_stats(&self) -> Option<DdpStats> {
        match self {
            Opt::Plain(_) => None,
            Opt::Ddp(o) => Some(o.ddp().stats()),
        }
    }

    /// Copies rank 0's buffers (batch-norm running statistics) to every rank, in a
    /// data-parallel run.
    pub fn broadcast_buffers(&self) -> anyhow::Result<()> {
        if let Opt::Ddp(o) = self {
            o.ddp().broadcast_buffers()?;
        }
        Ok(())
    }
}
