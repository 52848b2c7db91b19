// LibTorch kernels the tch crate does not bind: the convolution and batch-normalisation backward
// kernels PyTorch's autograd calls, the gradient unscaling of GradScaler and the fused AdamW step
// of torch.optim. Tensors cross as tch's handles (`at::Tensor*`); results are new handles the
// caller owns. A failure returns its message (free it with mednist_free_error), so no C++
// exception crosses into Rust.

#include <ATen/Functions.h>

#include <cstring>
#include <exception>
#include <vector>

using tensor = at::Tensor *;

namespace {

char *error_message(const std::exception &error) { return strdup(error.what()); }

tensor owned_or_null(bool wanted, at::Tensor &&value) {
  return wanted ? new at::Tensor(std::move(value)) : nullptr;
}

} // namespace

extern "C" {

void mednist_free_error(char *message) { free(message); }

// Gradients of a 2-D convolution (no bias, no transposition) with respect to its input and
// weight; an output is computed only when wanted.
char *mednist_conv2d_backward(tensor grad_output, tensor input, tensor weight, const int64_t *stride,
                              const int64_t *padding, const int64_t *dilation, int64_t groups,
                              int want_input, int want_weight, tensor *grad_input,
                              tensor *grad_weight) {
  try {
    const int64_t output_padding[2] = {0, 0};
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight, std::nullopt, at::IntArrayRef(stride, 2),
        at::IntArrayRef(padding, 2), at::IntArrayRef(dilation, 2), false,
        at::IntArrayRef(output_padding, 2), groups, {want_input != 0, want_weight != 0, false});
    *grad_input = owned_or_null(want_input, std::move(std::get<0>(grads)));
    *grad_weight = owned_or_null(want_weight, std::move(std::get<1>(grads)));
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

// Gradients of a training-mode batch normalisation with respect to its input, weight and bias,
// from the batch mean and inverse standard deviation its forward pass (native_batch_norm) saved.
char *mednist_batch_norm_backward(tensor grad_output, tensor input, tensor weight, tensor save_mean,
                                  tensor save_invstd, double eps, int want_input, int want_weight,
                                  int want_bias, tensor *grad_input, tensor *grad_weight,
                                  tensor *grad_bias) {
  try {
    auto grads = at::native_batch_norm_backward(
        *grad_output, *input, *weight, std::nullopt, std::nullopt, *save_mean, *save_invstd, true,
        eps, {want_input != 0, want_weight != 0, want_bias != 0});
    *grad_input = owned_or_null(want_input, std::move(std::get<0>(grads)));
    *grad_weight = owned_or_null(want_weight, std::move(std::get<1>(grads)));
    *grad_bias = owned_or_null(want_bias, std::move(std::get<2>(grads)));
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

// Multiplies each of `count` gradients by `inv_scale` in place and sets `found_inf` to 1 where one
// holds an inf or a NaN: the fused kernel PyTorch's GradScaler unscales with.
char *mednist_amp_unscale(const tensor *grads, int64_t count, tensor found_inf, tensor inv_scale) {
  try {
    std::vector<at::Tensor> list;
    list.reserve(count);
    for (int64_t i = 0; i < count; ++i) {
      list.push_back(*grads[i]);
    }
    at::_amp_foreach_non_finite_check_and_unscale_(list, *found_inf, *inv_scale);
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

// One AdamW step for one parameter, in place: PyTorch's `AdamW(fused=True)` kernel, a single pass
// over the parameter, its gradient and both moments (which must share one memory layout). `step`
// is the step's number, counting from 1.
char *mednist_fused_adamw(tensor param, tensor grad, tensor exp_avg, tensor exp_avg_sq, double step,
                          double lr, double beta1, double beta2, double weight_decay, double eps) {
  try {
    // The kernel is handed the four as flat arrays (below) and checks none of this: elements pair
    // by their place in memory, which is their logical place only in one shared dense layout.
    const auto &reference = *grad;
    for (const at::Tensor *other : {param, exp_avg, exp_avg_sq}) {
      TORCH_CHECK(other->sizes() == reference.sizes() && other->scalar_type() == reference.scalar_type(),
                  "AdamW: a parameter, its gradient and its moments differ in shape or type");
      for (int64_t dim = 0; dim < reference.dim(); ++dim) {
        TORCH_CHECK(reference.size(dim) <= 1 || other->stride(dim) == reference.stride(dim),
                    "AdamW: a parameter, its gradient and its moments differ in memory layout");
      }
    }
    TORCH_CHECK(reference.is_non_overlapping_and_dense(), "AdamW: the gradient is not dense");
    // A fill on the parameter's device: no copy from the host, so no wait on a GPU's queue.
    auto steps = at::full({}, step, param->options().dtype(at::kFloat));
    // Flat, because PyTorch's CPU kernel copies a gradient that is not contiguous (a channels-last
    // convolution weight's), then walks the original and drops the copy: 3% of a training step.
    auto flat = [](const at::Tensor &tensor) { return tensor.as_strided({tensor.numel()}, {1}); };
    at::_fused_adamw_({flat(*param)}, {flat(*grad)}, {flat(*exp_avg)}, {flat(*exp_avg_sq)}, {}, {steps}, lr,
                      beta1, beta2, weight_decay, eps, false, false);
    return nullptr;
  } catch (const std::exception &error) {
    return error_message(error);
  }
}

} // extern "C"
