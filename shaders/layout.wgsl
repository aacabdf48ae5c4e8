// layout kernels: not written yet.
