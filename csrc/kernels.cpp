// Multi-threaded CPU kernels for the work between the convolutions, as MLX primitives with their gradients:
//
//   norm_act      BatchNorm with batch statistics (training), the activation after it (none, PReLU with a
//                 slope per channel, LeakyReLU) and an optional residual added last, in two passes over the
//                 data (statistics, then the output); its gradient in two more.
//   activation    PReLU/LeakyReLU/ReLU, optionally followed by pixel shuffle (the generator's upsampling):
//                 one pass forward, one backward.
//   max_pool2     2x2 max pooling with stride 2 (VGG19), forward and backward.
//   adam_step     Adam's update of one array (parameter, first and second moments).
//
// MLX runs its own element-wise kernels and reductions on the stream's one thread; these run on OpenMP's
// threads (the same libgomp pool as oneDNN's convolutions). Layouts are MLX's: NHWC, channels last and
// contiguous. Everything is float32; statistics are accumulated in double.

#include "kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"

namespace srgan {
namespace {

enum class Act : int { none = 0, prelu = 1, leaky = 2 };


// The element loops below are compiled for AVX-512, AVX2 and plain x86-64; the processor picks at load time.
#if defined(__x86_64__) && defined(__GNUC__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

constexpr int64_t ROW_BLOCK = 16;

// body(first_row, end_row) over blocks of rows, in parallel.
template <typename Body>
void for_rows(int64_t rows, Body body) {
  const int64_t blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    body(b * ROW_BLOCK, std::min(rows, (b + 1) * ROW_BLOCK));
  }
}

// Per-channel sums over rows, in double. The rows are cut into a fixed number of consecutive chunks (not one
// per thread), each chunk summed in order, and the chunks' sums added in order: the result is the same whatever
// the number of threads and their timing, so runs repeat bit for bit on any machine (a resumed run equals an
// uninterrupted one; data-parallel ranks equal one process). ``terms(first_row, end_row, acc)`` adds K values
// per channel to acc[k * C + c].
constexpr int64_t SUM_CHUNKS = 64;

template <int K, typename Terms>
std::vector<double> channel_sums(int64_t rows, int64_t channels, Terms terms) {
  const int64_t chunks = std::min(rows, SUM_CHUNKS);
  std::vector<double> partial(chunks * K * channels, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    terms(rows * chunk / chunks, rows * (chunk + 1) / chunks, partial.data() + chunk * K * channels);
  }
  std::vector<double> total(K * channels, 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t i = 0; i < K * channels; ++i) {
      total[i] += partial[chunk * K * channels + i];
    }
  }
  return total;
}

// ---- element loops over rows [0, rows) of C channels (pointers already offset to the first row)

// Sums of (x - shift) and of its square per channel (shift: a value of the channel, against cancellation in
// E[x^2] - E[x]^2). Each group of ROW_BLOCK rows is summed in float (vectorised), the groups in double.
MULTIVERSION void stats_rows(const float* __restrict x, int64_t rows, int64_t C, const float* __restrict shift,
                             double* __restrict sum, double* __restrict sumsq) {
  std::vector<float> s(C), ss(C);
  for (int64_t r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    std::fill(s.begin(), s.end(), 0.0f);
    std::fill(ss.begin(), ss.end(), 0.0f);
    float* __restrict sp = s.data();
    float* __restrict ssp = ss.data();
    for (int64_t r = r0; r < std::min(rows, r0 + ROW_BLOCK); ++r) {
      const float* __restrict xr = x + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float v = xr[c] - shift[c];
        sp[c] += v;
        ssp[c] += v * v;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      sum[c] += sp[c];
      sumsq[c] += ssp[c];
    }
  }
}

// y = act(x * scale + shift) (+ residual); act(z) = max(z, 0) + a min(z, 0), MLX's PReLU (a = 1: no activation).
// The loops are branch-free (every load unconditional, selects), so that they vectorise.
MULTIVERSION void norm_apply_rows(const float* __restrict x, const float* __restrict res, int64_t rows, int64_t C, const float* __restrict scale,
                                  const float* __restrict shift, const float* __restrict a, float* __restrict y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float z = xr[c] * scale[c] + shift[c];
      yr[c] = std::max(z, 0.0f) + a[c] * std::min(z, 0.0f);
    }
    if (res) {
      const float* rr = res + r * C;
      for (int64_t c = 0; c < C; ++c) {
        yr[c] += rr[c];
      }
    }
  }
}

// sums of g = dy * act'(z), of g * xhat, and of dy * z where z <= 0 (the PReLU slope's gradient); each group of
// ROW_BLOCK rows in float (vectorised), the groups in double
MULTIVERSION void norm_grad_sums_rows(const float* __restrict x, const float* __restrict dy, int64_t rows, int64_t C,
                                      const float* __restrict scale, const float* __restrict shift,
                                      const float* __restrict a, const float* __restrict mean,
                                      const float* __restrict invstd, double* __restrict sg, double* __restrict sgx,
                                      double* __restrict sds) {
  std::vector<float> acc(3 * C);
  for (int64_t r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    float* __restrict g_sum = acc.data();
    float* __restrict gx_sum = acc.data() + C;
    float* __restrict ds_sum = acc.data() + 2 * C;
    for (int64_t r = r0; r < std::min(rows, r0 + ROW_BLOCK); ++r) {
      const float* __restrict xr = x + r * C;
      const float* __restrict dr = dy + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float z = xr[c] * scale[c] + shift[c], d = dr[c], slope = a[c];
        const bool positive = z > 0.0f;
        const float g = d * (positive ? 1.0f : slope);
        g_sum[c] += g;
        gx_sum[c] += g * ((xr[c] - mean[c]) * invstd[c]);
        ds_sum[c] += positive ? 0.0f : d * z;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      sg[c] += g_sum[c];
      sgx[c] += gx_sum[c];
      sds[c] += ds_sum[c];
    }
  }
}

// dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), with scale = gamma * invstd
MULTIVERSION void norm_grad_apply_rows(const float* __restrict x, const float* __restrict dy, int64_t rows, int64_t C, const float* __restrict scale,
                                       const float* __restrict shift, const float* __restrict a, const float* __restrict mean, const float* __restrict invstd,
                                       const float* __restrict mean_g, const float* __restrict mean_gx, float* __restrict dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float* dr = dy + r * C;
    float* out = dx + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float z = xr[c] * scale[c] + shift[c], slope = a[c];
      const float g = dr[c] * (z > 0.0f ? 1.0f : slope);
      const float xhat = (xr[c] - mean[c]) * invstd[c];
      out[c] = scale[c] * (g - mean_g[c] - xhat * mean_gx[c]);
    }
  }
}

// One input row of w pixels of c_out * R * R channels to its R output rows (each w * R pixels of c_out channels):
// y = act(x) with x's channel c * R * R + i * R + j going to output row i, pixel ix * R + j, channel c (PyTorch's
// pixel-shuffle order); act(v) = max(v, 0) + a[c] min(v, 0). With R = 1, the activation alone. R is a template
// parameter, so that the strided reads vectorise.
template <int R>
MULTIVERSION void act_shuffle_row(const float* __restrict x, int64_t w, int64_t c_out, const float* __restrict a,
                                  float* __restrict y) {
  constexpr int64_t rr = R * R;
  const int64_t out_row = w * R * c_out;
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t ix = 0; ix < w; ++ix) {
      for (int64_t j = 0; j < R; ++j) {
        const float* __restrict xp = x + ix * c_out * rr + i * R + j;
        float* __restrict yp = y + i * out_row + (ix * R + j) * c_out;
        for (int64_t c = 0; c < c_out; ++c) {
          const float v = xp[c * rr];
          yp[c] = std::max(v, 0.0f) + a[c] * std::min(v, 0.0f);
        }
      }
    }
  }
}

// The gradient of act_shuffle_row: dx from dy (the R output rows), and sum(dy * v) where v <= 0 into ds[c].
template <int R>
MULTIVERSION void act_shuffle_grad_row(const float* __restrict x, const float* __restrict dy, int64_t w,
                                       int64_t c_out, const float* __restrict a, float* __restrict dx,
                                       double* __restrict ds) {
  constexpr int64_t rr = R * R;
  const int64_t out_row = w * R * c_out;
  std::vector<float> row_sum(c_out, 0.0f);  // this row's part, in float (vectorised), added to ds in double
  float* __restrict sum = row_sum.data();
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t ix = 0; ix < w; ++ix) {
      for (int64_t j = 0; j < R; ++j) {
        const int64_t at = ix * c_out * rr + i * R + j;
        const float* __restrict gp = dy + i * out_row + (ix * R + j) * c_out;
        for (int64_t c = 0; c < c_out; ++c) {
          const float v = x[at + c * rr], g = gp[c], slope = a[c];
          const bool positive = v > 0.0f;
          dx[at + c * rr] = g * (positive ? 1.0f : slope);
          sum[c] += positive ? 0.0f : g * v;
        }
      }
    }
  }
  for (int64_t c = 0; c < c_out; ++c) {
    ds[c] += sum[c];
  }
}

MULTIVERSION void adam_elements(const float* __restrict p, const float* __restrict g, const float* __restrict m,
                                const float* __restrict v, int64_t count, float b1, float a1, float b2, float a2,
                                float c1, float c2, float eps, float* __restrict p_out, float* __restrict m_out,
                                float* __restrict v_out) {
  for (int64_t i = 0; i < count; ++i) {
    const float m_new = b1 * m[i] + a1 * g[i];
    const float v_new = b2 * v[i] + a2 * (g[i] * g[i]);
    m_out[i] = m_new;
    v_out[i] = v_new;
    p_out[i] = p[i] - (c1 * m_new) / (std::sqrt(v_new) * c2 + eps);
  }
}

// The slope of each channel where z <= 0: PReLU's per-channel slopes, LeakyReLU's one slope, 1 without.
std::vector<float> slopes(Act act, const float* slope, float alpha, int64_t channels) {
  std::vector<float> a(channels, act == Act::none ? 1.0f : alpha);
  if (act == Act::prelu) {
    std::copy(slope, slope + channels, a.begin());
  }
  return a;
}

void alloc(mx::array& a) {
  a.set_data(mx::allocator::malloc(a.nbytes()));
}

mx::array weak(const mx::array& a) {
  return mx::array::unsafe_weak_copy(a);
}

// Shapes: x is (rows, C) once its leading axes are flattened.
int64_t channels_of(const mx::array& x) {
  return x.shape(-1);
}
int64_t rows_of(const mx::array& x) {
  return x.size() / x.shape(-1);
}

// ---------------------------------------------------------------- norm_act

struct NormActConfig {
  Act act;
  float alpha;  // LeakyReLU slope
  float eps;
  bool residual;
  bool operator==(const NormActConfig& o) const {
    return act == o.act && alpha == o.alpha && eps == o.eps && residual == o.residual;
  }
};

// The per-channel affine map of the normalisation: z = x * scale + shift.
void affine(const float* gamma, const float* beta, const float* mean, const float* var, float eps, int64_t channels,
            std::vector<float>& scale, std::vector<float>& shift, std::vector<float>& invstd) {
  scale.resize(channels);
  shift.resize(channels);
  invstd.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    invstd[c] = 1.0f / std::sqrt(var[c] + eps);
    scale[c] = gamma[c] * invstd[c];
    shift[c] = beta[c] - mean[c] * scale[c];
  }
}

class NormActGrad : public mx::Primitive {
 public:
  NormActGrad(mx::Stream s, NormActConfig config) : mx::Primitive(s), config_(config) {}

  // inputs: x, gamma, beta, slope, mean, var, dy; outputs: dx, dgamma, dbeta, dslope
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (auto& o : out) {
      alloc(o);
    }
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), gamma = weak(in[1]), beta = weak(in[2]), slope = weak(in[3]),
                      mean = weak(in[4]), var = weak(in[5]), dy = weak(in[6]), dx = weak(out[0]),
                      dgamma = weak(out[1]), dbeta = weak(out[2]), dslope = weak(out[3]), config = config_]() mutable {
      const int64_t rows = rows_of(x), channels = channels_of(x);
      std::vector<float> scale, shift, invstd;
      affine(gamma.data<float>(), beta.data<float>(), mean.data<float>(), var.data<float>(), config.eps, channels,
             scale, shift, invstd);
      const float *xp = x.data<float>(), *dyp = dy.data<float>(), *mp = mean.data<float>();
      const auto a = slopes(config.act, slope.data<float>(), config.alpha, channels);
      auto sums = channel_sums<3>(rows, channels, [&](int64_t first, int64_t end, double* acc) {
        norm_grad_sums_rows(xp + first * channels, dyp + first * channels, end - first, channels, scale.data(),
                            shift.data(), a.data(), mp, invstd.data(), acc, acc + channels, acc + 2 * channels);
      });
      std::vector<float> mean_g(channels), mean_gx(channels);
      const double n = double(rows);
      for (int64_t c = 0; c < channels; ++c) {
        dbeta.data<float>()[c] = float(sums[c]);
        dgamma.data<float>()[c] = float(sums[channels + c]);
        mean_g[c] = float(sums[c] / n);
        mean_gx[c] = float(sums[channels + c] / n);
      }
      if (config.act == Act::prelu) {
        for (int64_t c = 0; c < channels; ++c) {
          dslope.data<float>()[c] = float(sums[2 * channels + c]);
        }
      } else {
        dslope.data<float>()[0] = 0.0f;
      }
      float* dxp = dx.data<float>();
      for_rows(rows, [&](int64_t first, int64_t end) {
        norm_grad_apply_rows(xp + first * channels, dyp + first * channels, end - first, channels, scale.data(),
                             shift.data(), a.data(), mp, invstd.data(), mean_g.data(), mean_gx.data(),
                             dxp + first * channels);
      });
    });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  const char* name() const override {
    return "NormActGrad";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return config_ == static_cast<const NormActGrad&>(other).config_;
  }

 private:
  NormActConfig config_;
};

class NormAct : public mx::Primitive {
 public:
  NormAct(mx::Stream s, NormActConfig config) : mx::Primitive(s), config_(config) {}

  // inputs: x, gamma, beta, slope[, residual]; outputs: y, mean, var (biased)
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (auto& o : out) {
      alloc(o);
    }
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), gamma = weak(in[1]), beta = weak(in[2]), slope = weak(in[3]),
                      residual = weak(in[config_.residual ? 4 : 0]), y = weak(out[0]), mean = weak(out[1]),
                      var = weak(out[2]), config = config_]() mutable {
      const int64_t rows = rows_of(x), channels = channels_of(x);
      const float* res_ptr = config.residual ? residual.data<float>() : nullptr;
      const float* xp = x.data<float>();
      const float* first_row = xp;  // each channel's shift against cancellation
      auto sums = channel_sums<2>(rows, channels, [&](int64_t first, int64_t end, double* acc) {
        stats_rows(xp + first * channels, end - first, channels, first_row, acc, acc + channels);
      });
      float *mp = mean.data<float>(), *vp = var.data<float>();
      for (int64_t c = 0; c < channels; ++c) {
        const double m = sums[c] / rows;  // of x - shift
        mp[c] = float(first_row[c] + m);
        vp[c] = float(std::max(sums[channels + c] / rows - m * m, 0.0));
      }
      std::vector<float> scale, shift, invstd;
      affine(gamma.data<float>(), beta.data<float>(), mp, vp, config.eps, channels, scale, shift, invstd);
      const auto a = slopes(config.act, slope.data<float>(), config.alpha, channels);
      float* yp = y.data<float>();
      for_rows(rows, [&](int64_t first, int64_t end) {
        norm_apply_rows(xp + first * channels, res_ptr ? res_ptr + first * channels : nullptr, end - first,
                        channels, scale.data(), shift.data(), a.data(), yp + first * channels);
      });
    });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override {
    // The statistics' cotangents are taken as zero: they feed the running estimates only.
    auto s = stream();
    auto grads = mx::array::make_arrays(
        {primals[0].shape(), primals[1].shape(), primals[2].shape(), primals[3].shape()},
        {mx::float32, mx::float32, mx::float32, mx::float32}, std::make_shared<NormActGrad>(s, config_),
        {primals[0], primals[1], primals[2], primals[3], outputs[1], outputs[2],
         mx::contiguous(cotangents[0], false, s)});
    std::vector<mx::array> result;
    for (int arg : argnums) {
      result.push_back(arg < 4 ? grads[arg] : cotangents[0]);  // the residual's gradient is the output's
    }
    return result;
  }

  const char* name() const override {
    return "NormAct";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return config_ == static_cast<const NormAct&>(other).config_;
  }

 private:
  NormActConfig config_;
};

// ---------------------------------------------------------------- activation (+ pixel shuffle)

struct ActivationConfig {
  Act act;
  float alpha;
  int r;  // pixel-shuffle factor; 1: none
  bool operator==(const ActivationConfig& o) const {
    return act == o.act && alpha == o.alpha && r == o.r;
  }
};

class ActivationGrad : public mx::Primitive {
 public:
  ActivationGrad(mx::Stream s, ActivationConfig config) : mx::Primitive(s), config_(config) {}

  // inputs: x, slope, dy; outputs: dx, dslope
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (auto& o : out) {
      alloc(o);
    }
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), slope = weak(in[1]), dy = weak(in[2]), dx = weak(out[0]),
                      dslope = weak(out[1]), config = config_]() mutable {
      const mx::Shape& xs = x.shape();
      const int64_t rows = xs[0] * xs[1], w = xs[2], r = config.r, c_out = xs[3] / (r * r);
      const float *xp = x.data<float>(), *dyp = dy.data<float>();
      float* dxp = dx.data<float>();
      const auto a = slopes(config.act, slope.data<float>(), config.alpha, c_out);
      auto total = channel_sums<1>(rows, c_out, [&](int64_t first, int64_t end, double* acc) {
        for (int64_t row = first; row < end; ++row) {  // an input row and its r output rows
          const float* x_row = xp + row * w * xs[3];
          const float* dy_rows = dyp + row * r * w * r * c_out;
          float* dx_row = dxp + row * w * xs[3];
          if (r == 1) {
            act_shuffle_grad_row<1>(x_row, dy_rows, w, c_out, a.data(), dx_row, acc);
          } else {
            act_shuffle_grad_row<2>(x_row, dy_rows, w, c_out, a.data(), dx_row, acc);
          }
        }
      });
      if (config.act == Act::prelu) {
        for (int64_t c = 0; c < c_out; ++c) {
          dslope.data<float>()[c] = float(total[c]);
        }
      } else {
        dslope.data<float>()[0] = 0.0f;
      }
    });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  const char* name() const override {
    return "ActivationGrad";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return config_ == static_cast<const ActivationGrad&>(other).config_;
  }

 private:
  ActivationConfig config_;
};

class Activation : public mx::UnaryPrimitive {
 public:
  Activation(mx::Stream s, ActivationConfig config) : mx::UnaryPrimitive(s), config_(config) {}

  // inputs: x, slope
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc(out);
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), slope = weak(in[1]), y = weak(out), config = config_]() mutable {
      const mx::Shape& xs = x.shape();
      const int64_t rows = xs[0] * xs[1], w = xs[2], r = config.r, c_out = xs[3] / (r * r);
      const float* xp = x.data<float>();
      float* yp = y.data<float>();
      const auto a = slopes(config.act, slope.data<float>(), config.alpha, c_out);
      for_rows(rows, [&](int64_t first, int64_t end) {
        for (int64_t row = first; row < end; ++row) {
          const float* x_row = xp + row * w * xs[3];
          float* y_rows = yp + row * r * w * r * c_out;
          if (r == 1) {
            act_shuffle_row<1>(x_row, w, c_out, a.data(), y_rows);
          } else {
            act_shuffle_row<2>(x_row, w, c_out, a.data(), y_rows);
          }
        }
      });
    });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    auto s = stream();
    auto grads = mx::array::make_arrays({primals[0].shape(), primals[1].shape()}, {mx::float32, mx::float32},
                                        std::make_shared<ActivationGrad>(s, config_),
                                        {primals[0], primals[1], mx::contiguous(cotangents[0], false, s)});
    std::vector<mx::array> result;
    for (int arg : argnums) {
      result.push_back(grads[arg]);
    }
    return result;
  }

  const char* name() const override {
    return "Activation";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return config_ == static_cast<const Activation&>(other).config_;
  }

 private:
  ActivationConfig config_;
};

// ---------------------------------------------------------------- 2x2 max pooling

class MaxPool2Grad : public mx::UnaryPrimitive {
 public:
  explicit MaxPool2Grad(mx::Stream s) : mx::UnaryPrimitive(s) {}

  // inputs: x, dy; the gradient goes to the first maximum of each window (row-major)
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc(out);
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), dy = weak(in[1]), dx = weak(out)]() mutable {
      const int64_t n = x.shape(0), h = x.shape(1), w = x.shape(2), c = x.shape(3), oh = h / 2, ow = w / 2;
      const float *xp = x.data<float>(), *dyp = dy.data<float>();
      float* dxp = dx.data<float>();
      for_rows(n * oh, [&](int64_t first, int64_t end) {
       for (int64_t row = first; row < end; ++row) {
        const int64_t img = row / oh, oy = row % oh;
        for (int dyi = 0; dyi < 2; ++dyi) {  // rows an odd height leaves out get zeros below
          std::memset(dxp + ((img * h + 2 * oy + dyi) * w) * c, 0, sizeof(float) * w * c);
        }
        for (int64_t ox = 0; ox < ow; ++ox) {
          const float* g = dyp + ((img * oh + oy) * ow + ox) * c;
          int64_t at[4];
          for (int k = 0; k < 4; ++k) {
            at[k] = ((img * h + 2 * oy + k / 2) * w + 2 * ox + k % 2) * c;
          }
          for (int64_t ch = 0; ch < c; ++ch) {
            int best = 0;
            for (int k = 1; k < 4; ++k) {
              if (xp[at[k] + ch] > xp[at[best] + ch]) {
                best = k;
              }
            }
            dxp[at[best] + ch] = g[ch];
          }
        }
       }
      });
      for (int64_t img = 0; img < n && h % 2; ++img) {
        std::memset(dxp + ((img * h + h - 1) * w) * c, 0, sizeof(float) * w * c);
      }
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  const char* name() const override {
    return "MaxPool2Grad";
  }
  bool is_equivalent(const mx::Primitive&) const override {
    return true;
  }
};

class MaxPool2 : public mx::UnaryPrimitive {
 public:
  explicit MaxPool2(mx::Stream s) : mx::UnaryPrimitive(s) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc(out);
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), y = weak(out)]() mutable {
      const int64_t n = x.shape(0), h = x.shape(1), w = x.shape(2), c = x.shape(3), oh = h / 2, ow = w / 2;
      const float* xp = x.data<float>();
      float* yp = y.data<float>();
      for_rows(n * oh, [&](int64_t first, int64_t end) {
       for (int64_t row = first; row < end; ++row) {
        const int64_t img = row / oh, oy = row % oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
          const float* a = xp + ((img * h + 2 * oy) * w + 2 * ox) * c;
          const float* b = a + w * c;
          float* out_px = yp + (row * ow + ox) * c;
          for (int64_t ch = 0; ch < c; ++ch) {
            out_px[ch] = std::max(std::max(a[ch], a[c + ch]), std::max(b[ch], b[c + ch]));
          }
        }
       }
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>&, const std::vector<mx::array>&) override {
    auto s = stream();
    return {mx::array(primals[0].shape(), mx::float32, std::make_shared<MaxPool2Grad>(s),
                      {primals[0], mx::contiguous(cotangents[0], false, s)})};
  }
  const char* name() const override {
    return "MaxPool2";
  }
  bool is_equivalent(const mx::Primitive&) const override {
    return true;
  }
};

// ---------------------------------------------------------------- Adam

struct AdamConfig {
  float beta1, beta2, eps;
  bool bias_correction;
  bool operator==(const AdamConfig& o) const {
    return beta1 == o.beta1 && beta2 == o.beta2 && eps == o.eps && bias_correction == o.bias_correction;
  }
};

class AdamStep : public mx::Primitive {
 public:
  AdamStep(mx::Stream s, AdamConfig config) : mx::Primitive(s), config_(config) {}

  // inputs: parameter, gradient, m, v, lr, step; outputs: parameter, m, v. As MLX's optimizers.Adam:
  // m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, then p - lr m / (sqrt(v) + eps), or with bias
  // correction p - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (auto& o : out) {
      alloc(o);
    }
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([p = weak(in[0]), g = weak(in[1]), m = weak(in[2]), v = weak(in[3]), lr_a = weak(in[4]),
                      step = weak(in[5]), p_out = weak(out[0]), m_out = weak(out[1]), v_out = weak(out[2]),
                      config = config_]() mutable {
      const float lr = lr_a.data<float>()[0];
      float c1 = lr, c2 = 1.0f;  // without bias correction: p - lr m / (sqrt(v) * 1 + eps), as MLX computes it
      if (config.bias_correction) {
        const double t = double(step.data<uint64_t>()[0]);
        c1 = float(lr / (1.0 - std::pow(double(config.beta1), t)));
        c2 = float(1.0 / std::sqrt(1.0 - std::pow(double(config.beta2), t)));
      }
      const float a1 = float(1.0 - double(config.beta1)), a2 = float(1.0 - double(config.beta2));
      constexpr int64_t block = 1 << 14;
      const int64_t size = p.size(), blocks = (size + block - 1) / block;
#pragma omp parallel for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * block, count = std::min(block, size - first);
        adam_elements(p.data<float>() + first, g.data<float>() + first, m.data<float>() + first,
                      v.data<float>() + first, count, config.beta1, a1, config.beta2, a2, c1, c2, config.eps,
                      p_out.data<float>() + first, m_out.data<float>() + first, v_out.data<float>() + first);
      }
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  const char* name() const override {
    return "AdamStep";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return config_ == static_cast<const AdamStep&>(other).config_;
  }

 private:
  AdamConfig config_;
};

// ---------------------------------------------------------------- per-channel sum (a convolution's bias gradient)

class ChannelSum : public mx::UnaryPrimitive {
 public:
  explicit ChannelSum(mx::Stream s) : mx::UnaryPrimitive(s) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc(out);
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.dispatch([x = weak(in[0]), y = weak(out)]() mutable {
      const int64_t rows = rows_of(x), channels = channels_of(x);
      const float* xp = x.data<float>();
      const std::vector<float> zero(channels, 0.0f);
      auto sums = channel_sums<2>(rows, channels, [&](int64_t first, int64_t end, double* acc) {
        stats_rows(xp + first * channels, end - first, channels, zero.data(), acc, acc + channels);
      });
      for (int64_t c = 0; c < channels; ++c) {
        y.data<float>()[c] = float(sums[c]);
      }
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("srgan_mlx native kernels run on the CPU only");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>&, const std::vector<mx::array>&) override {
    return {mx::broadcast_to(cotangents[0], primals[0].shape(), stream())};
  }
  const char* name() const override {
    return "ChannelSum";
  }
  bool is_equivalent(const mx::Primitive&) const override {
    return true;
  }
};

// ---------------------------------------------------------------- Python-facing functions

mx::Stream cpu_stream(mx::StreamOrDevice s) {
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) {
    throw std::invalid_argument("srgan_mlx native kernels run on the CPU only");
  }
  return stream;
}

void require(bool ok, const std::string& message) {
  if (!ok) {
    throw std::invalid_argument("srgan_mlx native kernels: " + message);
  }
}

Act act_of(const std::string& name) {
  if (name == "none") return Act::none;
  if (name == "prelu") return Act::prelu;
  if (name == "leaky") return Act::leaky;
  throw std::invalid_argument("srgan_mlx native kernels: activation must be none, prelu or leaky, got " + name);
}

// The slope operand: the PReLU slopes (C,), else a placeholder of one element.
mx::array slope_operand(Act act, const std::optional<mx::array>& slope, int64_t channels, mx::Stream s) {
  if (act == Act::prelu) {
    require(slope && slope->ndim() == 1 && slope->shape(0) == channels && slope->dtype() == mx::float32,
            "prelu needs float32 slopes of shape (channels,)");
    return mx::contiguous(*slope, false, s);
  }
  return mx::zeros({1}, mx::float32, s);
}

std::vector<mx::array> norm_act(const mx::array& x, const mx::array& gamma, const mx::array& beta,
                                const std::string& activation, const std::optional<mx::array>& slope, float alpha,
                                float eps, const std::optional<mx::array>& residual, mx::StreamOrDevice sd) {
  auto s = cpu_stream(sd);
  require(x.dtype() == mx::float32 && x.ndim() >= 2, "x must be float32 with channels last");
  const int64_t channels = x.shape(-1);
  require(gamma.shape() == mx::Shape{int(channels)} && beta.shape() == mx::Shape{int(channels)},
          "gamma and beta must have shape (channels,)");
  Act act = act_of(activation);
  std::vector<mx::array> inputs = {mx::contiguous(x, false, s), mx::contiguous(gamma, false, s),
                                   mx::contiguous(beta, false, s), slope_operand(act, slope, channels, s)};
  if (residual) {
    require(residual->shape() == x.shape() && residual->dtype() == mx::float32, "residual must match x");
    inputs.push_back(mx::contiguous(*residual, false, s));
  }
  NormActConfig config{act, alpha, eps, residual.has_value()};
  return mx::array::make_arrays({x.shape(), {int(channels)}, {int(channels)}}, {mx::float32, mx::float32, mx::float32},
                                std::make_shared<NormAct>(s, config), inputs);
}

mx::array activation(const mx::array& x, const std::string& activation, const std::optional<mx::array>& slope,
                     float alpha, int shuffle, mx::StreamOrDevice sd) {
  auto s = cpu_stream(sd);
  require(x.dtype() == mx::float32, "x must be float32");
  require((shuffle == 1 || shuffle == 2) && (shuffle == 1 || x.ndim() == 4),
          "pixel shuffle by 2 (the generator's upsampling stages), on NHWC input");
  Act act = act_of(activation);
  require(act != Act::none, "activation none is the identity");
  mx::array flat = x.ndim() == 4 ? x : mx::reshape(x, {int(x.size() / x.shape(-1)), 1, 1, x.shape(-1)}, s);
  const int64_t crr = flat.shape(3);
  require(crr % (shuffle * shuffle) == 0, "channels must be a multiple of shuffle^2");
  const int64_t channels = crr / (shuffle * shuffle);
  mx::Shape out_shape = {flat.shape(0), flat.shape(1) * shuffle, flat.shape(2) * shuffle, int(channels)};
  auto y = mx::array(out_shape, mx::float32, std::make_shared<Activation>(s, ActivationConfig{act, alpha, shuffle}),
                     {mx::contiguous(flat, false, s), slope_operand(act, slope, channels, s)});
  return x.ndim() == 4 ? y : mx::reshape(y, x.shape(), s);
}

mx::array max_pool2(const mx::array& x, mx::StreamOrDevice sd) {
  auto s = cpu_stream(sd);
  require(x.dtype() == mx::float32 && x.ndim() == 4, "x must be float32 NHWC");
  mx::Shape out_shape = {x.shape(0), x.shape(1) / 2, x.shape(2) / 2, x.shape(3)};
  return mx::array(out_shape, mx::float32, std::make_shared<MaxPool2>(s), {mx::contiguous(x, false, s)});
}

std::vector<mx::array> adam_step(const mx::array& param, const mx::array& grad, const mx::array& m,
                                 const mx::array& v, const mx::array& lr, const mx::array& step, float beta1,
                                 float beta2, float eps, bool bias_correction, mx::StreamOrDevice sd) {
  auto s = cpu_stream(sd);
  std::vector<mx::array> inputs;
  for (const auto* a : {&param, &grad, &m, &v}) {
    require(a->dtype() == mx::float32 && a->shape() == param.shape(), "float32 arrays of the parameter's shape");
    inputs.push_back(mx::contiguous(*a, false, s));
  }
  inputs.push_back(mx::astype(lr, mx::float32, s));
  inputs.push_back(mx::astype(step, mx::uint64, s));
  return mx::array::make_arrays({param.shape(), param.shape(), param.shape()}, {mx::float32, mx::float32, mx::float32},
                                std::make_shared<AdamStep>(s, AdamConfig{beta1, beta2, eps, bias_correction}), inputs);
}

}  // namespace

mx::array channel_sum(const mx::array& x, mx::StreamOrDevice sd) {
  auto s = cpu_stream(sd);
  require(x.dtype() == mx::float32 && x.ndim() >= 1, "x must be float32 with channels last");
  return mx::array({x.shape(-1)}, mx::float32, std::make_shared<ChannelSum>(s), {mx::contiguous(x, false, s)});
}

void register_kernels(nb::module_& m) {
  m.def("channel_sum", &channel_sum, "x"_a, nb::kw_only(), "stream"_a = nb::none(),
        "The sum over every axis but the last, in a fixed order (a convolution's bias gradient); differentiable.");
  m.def("threads", [] { return omp_get_max_threads(); }, "The OpenMP threads the kernels and convolutions use.");
  m.def("norm_act", &norm_act, "x"_a, "gamma"_a, "beta"_a, "activation"_a = "none", "slope"_a = nb::none(),
        "alpha"_a = 0.0f, "eps"_a = 1e-5f, "residual"_a = nb::none(), nb::kw_only(), "stream"_a = nb::none(),
        "BatchNorm with batch statistics, then the activation (none, prelu with per-channel ``slope``, leaky "
        "with ``alpha``), then ``+ residual``: returns (y, mean, biased variance). Differentiable in x, gamma, "
        "beta, slope and residual.");
  m.def("activation", &activation, "x"_a, "activation"_a, "slope"_a = nb::none(), "alpha"_a = 0.0f,
        "shuffle"_a = 1, nb::kw_only(), "stream"_a = nb::none(),
        "PReLU (per-channel ``slope``) or LeakyReLU (``alpha``; 0 is ReLU), then pixel shuffle by ``shuffle`` "
        "(PyTorch's channel order, slopes per output channel); differentiable.");
  m.def("max_pool2", &max_pool2, "x"_a, nb::kw_only(), "stream"_a = nb::none(),
        "2x2 max pooling with stride 2, NHWC; differentiable (the gradient goes to each window's first maximum).");
  m.def("adam_step", &adam_step, "param"_a, "grad"_a, "m"_a, "v"_a, "lr"_a, "step"_a, "beta1"_a, "beta2"_a, "eps"_a,
        "bias_correction"_a, nb::kw_only(), "stream"_a = nb::none(),
        "One Adam update of one array: returns (parameter, m, v).");
}

}  // namespace srgan
