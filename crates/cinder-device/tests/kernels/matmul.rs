//! matmul kernels against CPU references (not written yet).
