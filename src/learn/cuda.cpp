// LibTorch's process-wide CUDA settings and facts, which the tch crate does not bind. Header-only
// interfaces (ATen's Context and CUDA hooks): no CUDA headers are needed to build this, and on a
// machine without a GPU the calls still succeed (the flags are just never consulted).

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <exception>

extern "C" {

// The cuDNN autotuner, cuDNN's deterministic algorithms, and TF32 for cuDNN convolutions and
// cuBLAS matmuls (LibTorch's legacy setters, which also set the newer per-op precision flags).
void mednist_cuda_configure(int benchmark, int deterministic, int allow_tf32) {
  auto &context = at::globalContext();
  context.setBenchmarkCuDNN(benchmark != 0);
  context.setDeterministicCuDNN(deterministic != 0);
  context.setAllowTF32CuDNN(allow_tf32 != 0);
  context.setAllowTF32CuBLAS(allow_tf32 != 0);
}

// The settings as LibTorch holds them.
void mednist_cuda_settings(int *benchmark, int *deterministic, int *tf32_cudnn, int *tf32_cublas) {
  auto &context = at::globalContext();
  *benchmark = context.benchmarkCuDNN();
  *deterministic = context.deterministicCuDNN();
  *tf32_cudnn = context.allowTF32CuDNN();
  *tf32_cublas = context.allowTF32CuBLAS();
}

// The CUDA runtime LibTorch was built with, as 1000 * major + 10 * minor; -1 without LibTorch's
// CUDA library.
long mednist_cuda_runtime_version() {
  try {
    return at::detail::getCUDAHooks().versionCUDART();
  } catch (const std::exception &) {
    return -1;
  }
}

// Whether the current CUDA device computes convolutions in bf16 (compute capability 8.0 and up);
// 0 when it cannot be told.
int mednist_cuda_supports_bf16() {
  try {
    return at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8() ? 1 : 0;
  } catch (const std::exception &) {
    return 0;
  }
}

} // extern "C"
