// The compiled loops' Python module (cells/native.py builds it).
#include <torch/csrc/utils/pybind.h>  // pybind11 with torch's tensor casters: the lightest that binds

#include "native.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("set_flush_denormal", &set_flush_denormal);
}
