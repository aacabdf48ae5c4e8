// conv2d kernels: not written yet.
