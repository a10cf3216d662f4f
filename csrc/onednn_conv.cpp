// 2-D convolution for MLX's CPU backend through oneDNN (the library inside TensorFlow's CPU
// convolutions): one MLX primitive per pass (forward, backward-data, backward-weights), whose
// vjps are the other passes, so mx.grad and mx.compile work as with mx.conv2d.
//
// Layouts are MLX's: input NHWC, weight (O, kh, kw, I), output NHWC, float32, groups 1, no
// dilation, symmetric zero padding, the same integer stride on both axes. Activations stay
// NHWC (oneDNN's nhwc kernels); weights are reordered to the layout oneDNN picks
// (format_tag::any: plain ohwi would select a reference kernel ~100x slower). oneDNN picks
// the kernels for the processor at run time (AVX-512, AVX2, ...). One oneDNN primitive, with
// its reorders, is cached per pass and shape.

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"
#include "mlx/utils.h"

namespace nb = nanobind;
namespace mx = mlx::core;
using namespace nb::literals;
using tag = dnnl::memory::format_tag;

namespace {

// forward_prelu and forward_sum are inference passes (no gradient): the forward pass with bias, then PReLU with
// per-channel slopes, or plus a residual, fused as oneDNN post-ops (the generator's eval-mode blocks).
enum class Pass : int {
  forward = 0, backward_data = 1, backward_weights = 2, forward_bias = 3, forward_prelu = 4, forward_sum = 5
};

bool fused_inference(Pass pass) {
  return pass == Pass::forward_prelu || pass == Pass::forward_sum;
}

// The convolution, in oneDNN's logical (N, C, H, W) order.
struct Geometry {
  int64_t n, in_ch, h, w, out_ch, k, out_h, out_w, stride, pad;
  bool bf16;  // inputs rounded to bfloat16 for the multiplications (outputs and sums stay float32)

  auto key() const {
    return std::make_tuple(n, in_ch, h, w, out_ch, k, stride, pad, bf16);
  }
  dnnl::memory::dims src() const { return {n, in_ch, h, w}; }
  dnnl::memory::dims weights() const { return {out_ch, in_ch, k, k}; }
  dnnl::memory::dims dst() const { return {n, out_ch, out_h, out_w}; }
  dnnl::memory::dims strides() const { return {stride, stride}; }
  dnnl::memory::dims pad_lo() const { return {pad, pad}; }
  dnnl::memory::dims pad_hi() const {
    // mx.conv2d ignores rows/columns a stride does not reach; oneDNN wants them in the padding
    return {(out_h - 1) * stride + k - h - pad, (out_w - 1) * stride + k - w - pad};
  }
};

Geometry make_geometry(const mx::Shape& x, const mx::Shape& wt, int stride, int pad, bool bf16) {
  int64_t k = wt[1];
  int64_t out_h = (x[1] + 2 * pad - k) / stride + 1;
  int64_t out_w = (x[2] + 2 * pad - k) / stride + 1;
  return {x[0], x[3], x[1], x[2], wt[0], k, out_h, out_w, stride, pad, bf16};
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One operand of a oneDNN primitive: MLX's layout, the primitive's layout, and the reorder
// between them when they differ (into a buffer that lives for one run).
struct Operand {
  int arg;
  dnnl::memory::desc user, wanted;
  dnnl::reorder convert;  // empty when the primitive takes the user layout

  Operand(int arg_, const dnnl::memory::desc& user_, const dnnl::memory::desc& wanted_, bool is_output)
      : arg(arg_), user(user_), wanted(wanted_) {
    if (wanted != user) {
      auto& e = cpu_engine();
      convert = dnnl::reorder(is_output ? dnnl::reorder::primitive_desc(e, wanted, e, user)
                                        : dnnl::reorder::primitive_desc(e, user, e, wanted));
    }
  }
};

// Scratch memory of the primitives, which run one at a time: user-managed, because oneDNN's own (thread-local) scratchpad is sized in the thread
// that creates a primitive, and here MLX's eval thread creates what its stream thread runs.
std::mutex running;
std::unique_ptr<char, decltype(&std::free)> scratch(nullptr, &std::free);
std::atomic<size_t> scratch_size{0};

// Grow the shared scratch memory to ``size`` bytes; called in the eval thread (where bad_alloc is a
// Python MemoryError), between runs, before the pass that needs it is queued. It only grows, so the
// eval thread waits for a running pass only the few times it must grow.
void reserve_scratch(size_t size) {
  if (size <= scratch_size.load()) {
    return;
  }
  std::lock_guard<std::mutex> lock(running);
  if (size > scratch_size) {
    size_t rounded = (size + 4095) / 4096 * 4096;
    char* grown = static_cast<char*>(std::aligned_alloc(4096, rounded));
    if (!grown) {
      throw std::bad_alloc();  // the passes already queued keep the buffer they were sized for
    }
    scratch.reset(grown);
    scratch_size = rounded;
  }
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A ready-to-run pass: two inputs (three with a bias) and one output in MLX layouts.
struct Plan {
  dnnl::primitive primitive;
  Operand a, b, out;
  std::string implementation;
  dnnl::memory::desc scratchpad;
  std::optional<Operand> bias;
  Pass post = Pass::forward;  // forward_prelu / forward_sum: the post-op's operand is ``extra``

  void run(const float* a_ptr, const float* b_ptr, float* out_ptr, const float* bias_ptr,
           const float* extra = nullptr) {
    std::lock_guard<std::mutex> lock(running);
    dnnl::stream stream(cpu_engine());
    std::unordered_map<int, dnnl::memory> args;
    args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(scratchpad, cpu_engine(), scratch.get());
    std::vector<std::pair<Operand*, const float*>> inputs = {{&a, a_ptr}, {&b, b_ptr}};
    if (bias) {
      inputs.emplace_back(&*bias, bias_ptr);
    }
    for (auto [operand, ptr] : inputs) {
      dnnl::memory user(operand->user, cpu_engine(), const_cast<float*>(ptr));
      if (operand->convert) {
        dnnl::memory inner(operand->wanted, cpu_engine());
        operand->convert.execute(stream, user, inner);
        args[operand->arg] = inner;
      } else {
        args[operand->arg] = user;
      }
    }
    dnnl::memory user_out(out.user, cpu_engine(), out_ptr);
    dnnl::memory inner_out = out.convert ? dnnl::memory(out.wanted, cpu_engine()) : user_out;
    args[out.arg] = inner_out;
    if (post == Pass::forward_prelu) {
      const int64_t channels = out.user.get_dims()[1];
      dnnl::memory slopes(dnnl::memory::desc({1, channels, 1, 1}, dnnl::memory::data_type::f32, tag::abcd),
                          cpu_engine(), const_cast<float*>(extra));
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_WEIGHTS] = slopes;
    } else if (post == Pass::forward_sum) {
      const int64_t count = int64_t(out.user.get_size() / sizeof(float)), block = 1 << 16;
#pragma omp parallel for schedule(static)
      for (int64_t first = 0; first < count; first += block) {  // the sum post-op adds to what dst holds
        std::memcpy(out_ptr + first, extra + first, sizeof(float) * std::min(block, count - first));
      }
    }
    primitive.execute(stream, args);
    if (out.convert) {
      out.convert.execute(stream, inner_out, user_out);
    }
    stream.wait();
  }
};

dnnl::memory::desc plain(const dnnl::memory::dims& dims, tag layout) {
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, layout);
}
dnnl::memory::desc any(const dnnl::memory::dims& dims, dnnl::memory::data_type type = dnnl::memory::data_type::f32) {
  return dnnl::memory::desc(dims, type, tag::any);
}

// The type the primitives multiply in: float32, or bfloat16 (the inputs' reorders round them).
dnnl::memory::data_type input_type(const Geometry& g) {
  return g.bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& g, dnnl::prop_kind kind, bool with_bias,
                                                       const dnnl::primitive_attr& attr = user_scratchpad()) {
  auto src = dnnl::memory::desc(g.src(), input_type(g), tag::nhwc), dst = plain(g.dst(), tag::nhwc);
  auto wei = any(g.weights(), input_type(g));
  if (with_bias) {
    return dnnl::convolution_forward::primitive_desc(cpu_engine(), kind, dnnl::algorithm::convolution_direct, src,
                                                     wei, plain({g.out_ch}, tag::a), dst, g.strides(), g.pad_lo(),
                                                     g.pad_hi(), attr);
  }
  return dnnl::convolution_forward::primitive_desc(cpu_engine(), kind, dnnl::algorithm::convolution_direct, src,
                                                   wei, dst, g.strides(), g.pad_lo(), g.pad_hi(), attr);
}

std::unique_ptr<Plan> make_plan(Pass pass, const Geometry& g) {
  auto src = plain(g.src(), tag::nhwc), dst = plain(g.dst(), tag::nhwc), wei = plain(g.weights(), tag::ohwi);
  auto src_in = dnnl::memory::desc(g.src(), input_type(g), tag::nhwc);
  auto dst_in = dnnl::memory::desc(g.dst(), input_type(g), tag::nhwc);
  auto hint = forward_desc(g, dnnl::prop_kind::forward_training, false);
  switch (pass) {
    case Pass::forward_prelu:
    case Pass::forward_sum: {
      auto attr = user_scratchpad();
      dnnl::post_ops post;
      if (pass == Pass::forward_prelu) {
        post.append_prelu(1 << 1);  // one slope per output channel (dimension 1 of N, C, H, W)
      } else {
        post.append_sum(1.0f);  // dst (holding the residual when the pass runs) + convolution
      }
      attr.set_post_ops(post);
      auto pd = forward_desc(g, dnnl::prop_kind::forward_inference, true, attr);
      std::optional<Operand> bias;
      bias.emplace(DNNL_ARG_BIAS, plain({g.out_ch}, tag::a), pd.bias_desc(), false);
      auto plan = std::unique_ptr<Plan>(new Plan{
          dnnl::convolution_forward(pd), Operand(DNNL_ARG_SRC, src, pd.src_desc(), false),
          Operand(DNNL_ARG_WEIGHTS, wei, pd.weights_desc(), false),
          Operand(DNNL_ARG_DST, dst, pd.dst_desc(), true), pd.impl_info_str(), pd.scratchpad_desc(),
          std::move(bias)});
      if (plan->out.convert) {
        throw std::runtime_error("srgan_mlx._onednn: a fused inference convolution needs an NHWC destination");
      }
      plan->post = pass;
      return plan;
    }
    case Pass::forward:
    case Pass::forward_bias: {
      bool with_bias = pass == Pass::forward_bias;
      auto pd = forward_desc(g, dnnl::prop_kind::forward_training, with_bias);
      std::optional<Operand> bias;
      if (with_bias) {
        bias.emplace(DNNL_ARG_BIAS, plain({g.out_ch}, tag::a), pd.bias_desc(), false);
      }
      return std::unique_ptr<Plan>(new Plan{
          dnnl::convolution_forward(pd), Operand(DNNL_ARG_SRC, src, pd.src_desc(), false),
          Operand(DNNL_ARG_WEIGHTS, wei, pd.weights_desc(), false),
          Operand(DNNL_ARG_DST, dst, pd.dst_desc(), true), pd.impl_info_str(), pd.scratchpad_desc(),
          std::move(bias)});
    }
    case Pass::backward_data: {
      auto pd = dnnl::convolution_backward_data::primitive_desc(
          cpu_engine(), dnnl::algorithm::convolution_direct, src, any(g.weights(), input_type(g)), dst_in,
          g.strides(), g.pad_lo(), g.pad_hi(), hint, user_scratchpad());
      return std::unique_ptr<Plan>(new Plan{
          dnnl::convolution_backward_data(pd), Operand(DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false),
          Operand(DNNL_ARG_WEIGHTS, wei, pd.weights_desc(), false),
          Operand(DNNL_ARG_DIFF_SRC, src, pd.diff_src_desc(), true), pd.impl_info_str(), pd.scratchpad_desc()});
    }
    case Pass::backward_weights: {
      auto pd = dnnl::convolution_backward_weights::primitive_desc(
          cpu_engine(), dnnl::algorithm::convolution_direct, src_in, any(g.weights()), dst_in, g.strides(),
          g.pad_lo(), g.pad_hi(), hint, user_scratchpad());
      return std::unique_ptr<Plan>(new Plan{
          dnnl::convolution_backward_weights(pd), Operand(DNNL_ARG_SRC, src, pd.src_desc(), false),
          Operand(DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false),
          Operand(DNNL_ARG_DIFF_WEIGHTS, wei, pd.diff_weights_desc(), true), pd.impl_info_str(),
          pd.scratchpad_desc()});
    }
  }
  throw std::logic_error("unknown convolution pass");
}

// Plans are made on first use of a pass and shape and kept (map nodes never move).
std::mutex plans_mutex;
std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>,
         std::unique_ptr<Plan>>
    plans;

Plan& plan_for(Pass pass, const Geometry& g) {
  std::lock_guard<std::mutex> lock(plans_mutex);
  auto key = std::tuple_cat(std::make_tuple(static_cast<int>(pass)), g.key());
  auto found = plans.find(key);
  if (found == plans.end()) {
    std::unique_ptr<Plan> plan;
    try {
      plan = make_plan(pass, g);
    } catch (const dnnl::error&) {
      if (!g.bf16) {
        throw;
      }
      Geometry f32 = g;  // no bfloat16 kernels on this processor (e.g. AVX2 only): float32
      f32.bf16 = false;
      plan = make_plan(pass, f32);
    }
    found = plans.emplace(key, std::move(plan)).first;
  }
  return *found->second;
}

mx::array conv_op(Pass pass, const mx::array& a, const mx::array& b, const mx::Shape& x_shape,
                  const mx::Shape& w_shape, int stride, int pad, bool bf16, mx::StreamOrDevice s,
                  const std::optional<mx::array>& bias = std::nullopt,
                  const std::optional<mx::array>& extra = std::nullopt);

class OneDNNConv : public mx::UnaryPrimitive {
 public:
  OneDNNConv(mx::Stream stream, Pass pass, mx::Shape x_shape, mx::Shape w_shape, int stride, int pad, bool bf16)
      : mx::UnaryPrimitive(stream),
        pass_(pass),
        x_shape_(std::move(x_shape)),
        w_shape_(std::move(w_shape)),
        stride_(stride),
        pad_(pad),
        bf16_(bf16) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    // Made here, in the thread that called eval, so that a oneDNN error is a Python exception.
    Plan* plan = &plan_for(pass_, make_geometry(x_shape_, w_shape_, stride_, pad_, bf16_));
    reserve_scratch(plan->scratchpad.get_size());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& encoder = mx::cpu::get_command_encoder(stream());
    for (const auto& input : inputs) {
      encoder.set_input_array(input);
    }
    encoder.set_output_array(out);
    const float* bias = inputs.size() > 2 ? inputs[2].data<float>() : nullptr;
    const float* extra = inputs.size() > 3 ? inputs[3].data<float>() : nullptr;  // slopes or residual
    encoder.dispatch([a = mx::array::unsafe_weak_copy(inputs[0]), b = mx::array::unsafe_weak_copy(inputs[1]),
                      out = mx::array::unsafe_weak_copy(out), plan, bias, extra]() mutable {
      plan->run(a.data<float>(), b.data<float>(), out.data<float>(), bias, extra);
    });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("srgan_mlx._onednn: the oneDNN convolution runs on the CPU only");
  }

  // Each pass is bilinear in its two inputs, so each input's cotangent is another pass:
  // forward (x, w[, b]) -> y:  dx = backward_data(c, w),   dw = backward_weights(x, c),  db = sum of c
  // backward_data (gy, w) -> dx: d gy = forward(c, w),     dw = backward_weights(c, gy)
  // backward_weights (x, gy) -> dw: dx = backward_data(gy, c), d gy = forward(x, c)
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    if (fused_inference(pass_)) {
      throw std::invalid_argument("srgan_mlx._onednn: a convolution with fused PReLU or residual is for inference "
                                  "and has no gradient");
    }
    const auto& c = cotangents[0];
    const auto& a = primals[0];
    const auto& b = primals[1];
    auto op = [&](Pass p, const mx::array& first, const mx::array& second) {
      return conv_op(p, first, second, x_shape_, w_shape_, stride_, pad_, bf16_, stream());
    };
    std::vector<mx::array> grads;
    for (int arg : argnums) {
      switch (pass_) {
        case Pass::forward:
        case Pass::forward_bias:
          grads.push_back(arg == 0   ? op(Pass::backward_data, c, b)
                          : arg == 1 ? op(Pass::backward_weights, a, c)
                                     : srgan::channel_sum(c, stream()));
          break;
        case Pass::backward_data:
          grads.push_back(arg == 0 ? op(Pass::forward, c, b) : op(Pass::backward_weights, c, a));
          break;
        case Pass::backward_weights:
          grads.push_back(arg == 0 ? op(Pass::backward_data, b, c) : op(Pass::forward, a, c));
          break;
      }
    }
    return grads;
  }

  const char* name() const override {
    return "OneDNNConv";
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    const auto& o = static_cast<const OneDNNConv&>(other);
    return pass_ == o.pass_ && x_shape_ == o.x_shape_ && w_shape_ == o.w_shape_ && stride_ == o.stride_ &&
           bf16_ == o.bf16_ &&
           pad_ == o.pad_;
  }

 private:
  Pass pass_;
  mx::Shape x_shape_, w_shape_;
  int stride_, pad_;
  bool bf16_;
};

mx::array conv_op(Pass pass, const mx::array& a, const mx::array& b, const mx::Shape& x_shape,
                  const mx::Shape& w_shape, int stride, int pad, bool bf16, mx::StreamOrDevice s,
                  const std::optional<mx::array>& bias, const std::optional<mx::array>& extra) {
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) {
    throw std::invalid_argument("srgan_mlx._onednn: the oneDNN convolution runs on the CPU only");
  }
  auto g = make_geometry(x_shape, w_shape, stride, pad, bf16);
  mx::Shape y_shape = {static_cast<int>(g.n), static_cast<int>(g.out_h), static_cast<int>(g.out_w),
                       static_cast<int>(g.out_ch)};
  const mx::Shape& result = pass == Pass::backward_data ? x_shape : pass == Pass::backward_weights ? w_shape : y_shape;
  std::vector<mx::array> inputs = {mx::contiguous(a, false, stream), mx::contiguous(b, false, stream)};
  if (bias) {
    inputs.push_back(mx::contiguous(*bias, false, stream));
  }
  if (extra) {
    inputs.push_back(mx::contiguous(*extra, false, stream));
  }
  return mx::array(result, mx::float32, std::make_shared<OneDNNConv>(stream, pass, x_shape, w_shape, stride, pad, bf16),
                   std::move(inputs));
}

void check(bool ok, const std::string& message) {
  if (!ok) {
    throw std::invalid_argument("srgan_mlx._onednn.conv2d: " + message);
  }
}

mx::array conv2d(const mx::array& x, const mx::array& weight, int stride, int padding,
                 const std::optional<mx::array>& bias, bool bf16, mx::StreamOrDevice s) {
  check(x.ndim() == 4 && weight.ndim() == 4, "input (N, H, W, C) and weight (O, k, k, C) must be 4-D");
  check(x.dtype() == mx::float32 && weight.dtype() == mx::float32, "float32 only");
  check(weight.shape(1) == weight.shape(2), "square kernels only");
  check(x.shape(3) == weight.shape(3), "input channels differ from the weight's");
  check(stride >= 1 && padding >= 0, "stride >= 1 and padding >= 0");
  check(x.shape(1) + 2 * padding >= weight.shape(1) && x.shape(2) + 2 * padding >= weight.shape(1),
        "kernel larger than the padded input");
  if (bias) {
    check(bias->ndim() == 1 && bias->shape(0) == weight.shape(0) && bias->dtype() == mx::float32,
          "bias must be float32 of shape (out channels,)");
  }
  return conv_op(bias ? Pass::forward_bias : Pass::forward, x, weight, x.shape(), weight.shape(), stride, padding,
                 bf16, s, bias);
}

// Inference: conv + bias, then PReLU with per-channel ``slope`` or + ``residual``, fused (no gradient).
mx::array conv2d_fused(const mx::array& x, const mx::array& weight, int stride, int padding, const mx::array& bias,
                       const std::optional<mx::array>& slope, const std::optional<mx::array>& residual,
                       mx::StreamOrDevice s) {
  check(slope.has_value() != residual.has_value(), "give exactly one of slope and residual");
  check(x.ndim() == 4 && weight.ndim() == 4 && x.dtype() == mx::float32 && weight.dtype() == mx::float32 &&
            weight.shape(1) == weight.shape(2) && x.shape(3) == weight.shape(3),
        "NHWC float32 input and a square (O, k, k, C) float32 weight");
  check(bias.ndim() == 1 && bias.shape(0) == weight.shape(0) && bias.dtype() == mx::float32,
        "bias must be float32 of shape (out channels,)");
  if (slope) {
    check(slope->ndim() == 1 && slope->shape(0) == weight.shape(0) && slope->dtype() == mx::float32,
          "slope must be float32 of shape (out channels,)");
  } else {
    auto g = make_geometry(x.shape(), weight.shape(), stride, padding, false);
    check(residual->dtype() == mx::float32 &&
              residual->shape() == mx::Shape({int(g.n), int(g.out_h), int(g.out_w), int(g.out_ch)}),
          "residual must be float32 with the output's shape");
  }
  return conv_op(slope ? Pass::forward_prelu : Pass::forward_sum, x, weight, x.shape(), weight.shape(), stride,
                 padding, false, s, bias, slope ? slope : residual);
}

// The name oneDNN's verbose mode gives a data type (f32, bf16, ...).
const char* type_name(dnnl::memory::data_type type) {
  switch (type) {
    case dnnl::memory::data_type::f32:
      return "f32";
    case dnnl::memory::data_type::bf16:
      return "bf16";
    case dnnl::memory::data_type::f16:
      return "f16";
    default:
      return "other";
  }
}

std::string implementations() {
  std::lock_guard<std::mutex> lock(plans_mutex);
  std::ostringstream text;
  const char* names[] = {"forward", "backward_data", "backward_weights", "forward+bias", "forward+bias+prelu",
                         "forward+bias+sum"};
  for (const auto& [key, plan] : plans) {
    auto [pass, n, c, h, w, o, k, stride, pad, bf16] = key;
    text << names[pass] << " n" << n << " " << h << "x" << w << " " << c << "->" << o << " k" << k << " s"
         << stride << " p" << pad << (bf16 ? " bf16" : "") << ": " << plan->implementation << " ["
         << type_name(plan->a.wanted.get_data_type()) << " x " << type_name(plan->b.wanted.get_data_type()) << "]\n";
  }
  return text.str();
}

}  // namespace

NB_MODULE(_ext, m) {
  m.doc() = "srgan-mlx's native CPU code: oneDNN convolutions and multi-threaded kernels, as MLX primitives.";
  m.def("conv2d", &conv2d, "x"_a, "weight"_a, "stride"_a = 1, "padding"_a = 0, "bias"_a = nb::none(),
        nb::kw_only(), "bf16"_a = false, "stream"_a = nb::none(),
        "Convolve NHWC float32 ``x`` with an (O, k, k, I) ``weight`` and add the optional (O,) ``bias``, "
        "like ``mx.conv2d`` with a square kernel, symmetric padding and no dilation or groups; "
        "differentiable. ``bf16``: multiply in bfloat16 (inputs rounded, sums and results float32) "
        "where the processor has bfloat16 kernels (2x the speed on AVX512-BF16), else float32.");
  m.def("conv2d_fused", &conv2d_fused, "x"_a, "weight"_a, "stride"_a, "padding"_a, "bias"_a, nb::kw_only(),
        "slope"_a = nb::none(), "residual"_a = nb::none(), "stream"_a = nb::none(),
        "Inference only (no gradient): the convolution with ``bias``, then PReLU with per-channel ``slope`` or "
        "``+ residual``, as one oneDNN primitive with a post-op.");
  m.def("implementations", &implementations,
        "One line per cached oneDNN primitive: pass, shape (``bf16``: bfloat16 asked for), the kernel oneDNN "
        "chose and, in brackets, the data types of the two operands it multiplies as its primitive descriptor "
        "gives them (``[bf16 x bf16]`` where bfloat16 kernels ran, ``[f32 x f32]`` otherwise).");
  srgan::register_kernels(m);
  const dnnl_version_t* v = dnnl_version();
  m.attr("onednn_version") = std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                             std::to_string(v->patch);
  m.attr("mlx_version") = std::to_string(MLX_VERSION_MAJOR) + "." + std::to_string(MLX_VERSION_MINOR) + "." +
                          std::to_string(MLX_VERSION_PATCH);
}
