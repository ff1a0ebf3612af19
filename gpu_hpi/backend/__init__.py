"""The CPU/GPU boundary: the backend (numpy or CuPy), device memory (RMM) and the CUDA kernels."""
