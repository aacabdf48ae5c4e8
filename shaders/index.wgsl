// index kernels: not written yet.
