//! pool ops (not written yet).

use crate::Kernel;

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    Vec::new()
}
