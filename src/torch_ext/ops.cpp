// libtorch operators that tch does not bind (its generator skips `_foreach_*` and `_fused_*`).
//
// Each entry point takes arrays of `at::Tensor*` (tch's `C_tensor`), runs one ATen call over the
// whole list and returns NULL, or a malloc'd error message that the caller frees with
// `td3_ext_free`. No C++ exception crosses into Rust.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_zero.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/stack.h>
#include <c10/core/GradMode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> list(at::Tensor *const *xs, int64_t n) {
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(*xs[i]);
  return out;
}

char *error(const char *what) { return strdup(what ? what : "unknown libtorch error"); }

template <typename F>
char *guarded(F &&f) {
  try {
    c10::NoGradGuard no_grad;
    f();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e.what());
  } catch (...) {
    return error(nullptr);
  }
}

}  // namespace

extern "C" {

void td3_ext_free(char *p) { free(p); }

// torch.optim.Adam(fused=True) for one parameter group: every step count is incremented, then
// one fused kernel updates params, exp_avgs and exp_avg_sqs in place.
char *td3_fused_adam(at::Tensor *const *params, at::Tensor *const *grads, at::Tensor *const *m,
                     at::Tensor *const *v, at::Tensor *const *steps, int64_t n, double lr,
                     double beta1, double beta2, double eps) {
  return guarded([&] {
    auto st = list(steps, n);
    at::_foreach_add_(st, 1);
    at::_fused_adam_(list(params, n), list(grads, n), list(m, n), list(v, n), {}, st, lr, beta1,
                     beta2, /*weight_decay=*/0.0, eps, /*amsgrad=*/false, /*maximize=*/false);
  });
}

// dst[i].lerp_(src[i], weight) for every i.
char *td3_foreach_lerp(at::Tensor *const *dst, at::Tensor *const *src, int64_t n, double weight) {
  return guarded([&] { at::_foreach_lerp_(list(dst, n), list(src, n), weight); });
}

// *out = stack([x.norm() for x in xs]), a new tensor (n >= 1).
char *td3_foreach_norm(at::Tensor *const *xs, int64_t n, at::Tensor **out) {
  return guarded([&] { *out = new at::Tensor(at::stack(at::_foreach_norm(list(xs, n)), 0)); });
}

// xs[i].zero_() for every i.
char *td3_foreach_zero(at::Tensor *const *xs, int64_t n) {
  return guarded([&] { at::_foreach_zero_(list(xs, n)); });
}

// xs[i].mul_(scale) for every i, scale a 0-d tensor on the same device.
char *td3_foreach_mul(at::Tensor *const *xs, int64_t n, const at::Tensor *scale) {
  return guarded([&] { at::_foreach_mul_(list(xs, n), *scale); });
}

}  // extern "C"
