// LibTorch's own distributed runtime (c10d), which the tch crate does not bind: a TCPStore for
// the rendezvous torchrun sets up, a Gloo process group for the collectives, and for CUDA tensors
// an NCCL one where this build has it (nccl.cpp): the classes PyTorch's `init_process_group`
// builds ("cpu:gloo,cuda:nccl"). Tensors cross as tch's handles (`at::Tensor*`);
// a failure returns its message (free it with mednist_free_error, in kernels.cpp), so no C++
// exception crosses into Rust.

#define USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

using tensor = at::Tensor *;

struct mednist_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> gloo;
  // For CUDA tensors, when the group was made for a GPU and NCCL is built in.
  c10::intrusive_ptr<c10d::Backend> nccl;
  int size;

  c10d::Backend &for_tensor(const at::Tensor &tensor) {
    return tensor.is_cuda() && nccl ? *nccl : *gloo;
  }
};

c10::intrusive_ptr<c10d::Backend> mednist_make_nccl(const c10::intrusive_ptr<c10d::Store> &store,
                                                    int rank, int size,
                                                    std::chrono::milliseconds timeout, int device);

namespace {

// c10's errors carry a C++ backtrace in what(): the message alone is what a user can act on.
char *error_message(const std::exception &error) {
  if (auto c10 = dynamic_cast<const c10::Error *>(&error)) {
    return strdup(c10->what_without_backtrace());
  }
  return strdup(error.what());
}

// Gloo binds to GLOO_SOCKET_IFNAME when it is set (as PyTorch does), else to the address the
// host name resolves to, else to the loopback.
std::shared_ptr<gloo::transport::Device> gloo_device() {
  const char *interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface != nullptr && *interface != '\0') {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

} // namespace

extern "C" {

// Joins the store at host:port (hosting it when `host_store`, as rank 0 does without torchrun's
// agent) under `prefix`, then the Gloo group of `size` processes as `rank`, and an NCCL group on
// CUDA device `nccl_device` unless it is negative. Every store wait and collective fails after
// `timeout_ms`.
char *mednist_dist_connect(const char *host, int port, int rank, int size, int host_store,
                           const char *prefix, int64_t timeout_ms, int nccl_device,
                           mednist_group **group) {
  try {
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = host_store != 0;
    // Every rank counts itself in (as PyTorch's clients do); the host waits for all of them.
    options.numWorkers = size;
    options.waitWorkers = true;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(host, options);
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    auto options_gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    options_gloo->devices.push_back(gloo_device());
    options_gloo->threads = 2;
    auto gloo_store = c10::make_intrusive<c10d::PrefixStore>("gloo/", store);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(gloo_store, rank, size, options_gloo);
    c10::intrusive_ptr<c10d::Backend> nccl;
    if (nccl_device >= 0) {
      auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl/", store);
      nccl = mednist_make_nccl(nccl_store, rank, size, timeout, nccl_device);
    }
    *group = new mednist_group{store, gloo, nccl, size};
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

void mednist_dist_free(mednist_group *group) { delete group; }

// Sets `key` in the group's store to `length` bytes.
char *mednist_dist_store_set(mednist_group *group, const char *key, const uint8_t *data,
                             int64_t length) {
  try {
    group->store->set(key, std::vector<uint8_t>(data, data + length));
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

// Waits for `key` in the group's store; its bytes are malloc'd for the caller to free
// (mednist_dist_free_bytes).
char *mednist_dist_store_get(mednist_group *group, const char *key, uint8_t **data, int64_t *length) {
  try {
    auto value = group->store->get(key);
    *length = static_cast<int64_t>(value.size());
    *data = static_cast<uint8_t *>(malloc(value.size() == 0 ? 1 : value.size()));
    std::memcpy(*data, value.data(), value.size());
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

void mednist_dist_free_bytes(uint8_t *data) { free(data); }

// Sums `count` tensors over the ranks in place (divided by the group's size when `average`).
// Tensors of one kind are packed into flat buckets of about `bucket_bytes` (a collective per
// tensor would pay Gloo's latency per layer); each bucket's collective is started before the next
// is packed, so packing, reducing and unpacking overlap.
char *mednist_dist_allreduce(mednist_group *group, const tensor *tensors, int64_t count,
                             int64_t bucket_bytes, int average) {
  try {
    struct Bucket {
      std::vector<at::Tensor> members;
      at::Tensor flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    c10d::AllreduceOptions options;
    std::vector<Bucket> buckets;
    auto launch = [&](std::vector<at::Tensor> members) {
      std::vector<at::Tensor> flat_members;
      flat_members.reserve(members.size());
      for (auto &member : members) {
        flat_members.push_back(member.reshape({-1}));
      }
      auto flat = at::cat(flat_members);
      std::vector<at::Tensor> operands{flat};
      auto work = group->for_tensor(flat).allreduce(operands, options);
      buckets.push_back(Bucket{std::move(members), flat, work});
    };
    std::vector<at::Tensor> pending;
    int64_t pending_bytes = 0;
    for (int64_t i = 0; i < count; ++i) {
      const at::Tensor &next = *tensors[i];
      bool fits = pending.empty() || (pending.front().scalar_type() == next.scalar_type() &&
                                      pending.front().device() == next.device() &&
                                      pending_bytes + static_cast<int64_t>(next.nbytes()) <= bucket_bytes);
      if (!fits) {
        launch(std::move(pending));
        pending.clear();
        pending_bytes = 0;
      }
      pending.push_back(next);
      pending_bytes += static_cast<int64_t>(next.nbytes());
    }
    if (!pending.empty()) {
      launch(std::move(pending));
    }
    for (auto &bucket : buckets) {
      bucket.work->wait();
      if (average) {
        bucket.flat.div_(group->size);
      }
      int64_t offset = 0;
      for (auto &member : bucket.members) {
        auto numel = member.numel();
        member.copy_(bucket.flat.narrow(0, offset, numel).view_as(member));
        offset += numel;
      }
    }
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

// Replaces `target` on every rank with rank `root`'s.
char *mednist_dist_broadcast(mednist_group *group, tensor target, int root) {
  try {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    std::vector<at::Tensor> operands{*target};
    group->for_tensor(*target).broadcast(operands, options)->wait();
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

} // extern "C"
