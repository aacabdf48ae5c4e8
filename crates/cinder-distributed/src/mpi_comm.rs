//! [`MpiCommunicator`]: the [`Communicator`] on MPI's world communicator (feature `mpi`).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};

use cinder_device::{Error, Result};

use crate::comm::Communicator;

/// MPI's world: the processes `mpirun -np N` started (or a world of one when the program
/// runs without `mpirun`). Holds MPI's environment: MPI is finalized when it is dropped,
/// which waits for every rank; a failing rank should end the job with
/// [`crate::exit_on_error`] instead.
pub struct MpiCommunicator {
    world: SimpleCommunicator,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl MpiCommunicator {
    /// Initializes MPI and takes its world communicator. Returns
    /// `Err(Communication)` when MPI was already initialized in this process (MPI can be
    /// initialized once).
    pub fn init() -> Result<MpiCommunicator> {
        let universe = mpi::initialize().ok_or_else(|| Error::Communication {
            op: "MpiCommunicator::init",
            rank: 0,
            world: 0,
            msg: "MPI is already initialized in this process (it can be initialized once)".into(),
        })?;
        let world = universe.world();
        Ok(MpiCommunicator {
            world,
            _universe: universe,
        })
    }

    /// The MPI library's version string (`Open MPI v4.1.4, ...`).
    pub fn library_version() -> String {
        mpi::environment::library_version().unwrap_or_else(|_| "unknown".into())
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn broadcast(&self, buf: &mut [u32], root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(Error::Communication {
                op: "broadcast",
                rank: self.rank(),
                world: self.size(),
                msg: format!("root {root} is not a rank"),
            });
        }
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }

    fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
