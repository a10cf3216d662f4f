// The multi-threaded kernels of kernels.cpp, registered on the extension module by onednn_conv.cpp.
#pragma once

#include <optional>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "mlx/mlx.h"

namespace nb = nanobind;
namespace mx = mlx::core;
using namespace nb::literals;

namespace srgan {
void register_kernels(nb::module_& m);
// The sum over every axis but the last (channels), multi-threaded, in a fixed order.
mx::array channel_sum(const mx::array& x, mx::StreamOrDevice s = {});
}
