// What torch/csrc/distributed/c10d/ProcessGroupGloo.hpp needs of Gloo, whose headers PyPI's torch
// wheel does not ship. The header names Gloo's types only through pointers (the contexts, the
// devices, the buffers; the one call, setTimeout, is in an inline virtual function whose vtable
// LibTorch emits), so declaring them is enough to construct the process group, whose own
// layout is all in that header; Gloo itself is compiled into libtorch_cpu. The rendezvous store's
// virtual functions are those GlooStore overrides in that header; it is never made here.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {

class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport

namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string &key, const std::vector<char> &data) = 0;
  virtual std::vector<char> get(const std::string &key) = 0;
  virtual void wait(const std::vector<std::string> &keys) = 0;
  virtual void wait(const std::vector<std::string> &keys, const std::chrono::milliseconds &timeout) = 0;
};
} // namespace rendezvous

} // namespace gloo
