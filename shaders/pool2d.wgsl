// pool2d kernels: not written yet.
