// The NCCL process group for CUDA tensors, built only where the CUDA and NCCL headers are at hand
// (the torch wheel's nvidia-* packages, with nvcc's and CCCL's headers that
// scripts/setup-libtorch.sh adds); elsewhere creating one fails with a message saying why, and
// the collectives stay on Gloo.

#include <torch/csrc/distributed/c10d/Backend.hpp>

#include <chrono>
#include <stdexcept>

#ifdef MEDNIST_NCCL
#define USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

// Whether this build can make NCCL groups.
extern "C" int mednist_dist_nccl_built() {
#ifdef MEDNIST_NCCL
  return 1;
#else
  return 0;
#endif
}

// An NCCL group of `size` ranks over `store`, on CUDA device `device` (made this process's
// current device first, as PyTorch's torch.cuda.set_device(LOCAL_RANK) does).
c10::intrusive_ptr<c10d::Backend> mednist_make_nccl(const c10::intrusive_ptr<c10d::Store> &store,
                                                    int rank, int size,
                                                    std::chrono::milliseconds timeout, int device) {
#ifdef MEDNIST_NCCL
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)device;
  throw std::runtime_error(
      "this mednist was built without NCCL (the CUDA and NCCL headers were not found beside "
      "LibTorch at build time: rerun scripts/setup-libtorch.sh and rebuild)");
#endif
}
