// The float mode of every thread torch computes on. Flush-to-zero (FTZ) and denormals-are-zero
// (DAZ) live in each thread's own control register (x86 MXCSR, ARM FPCR), and
// torch.set_flush_denormal sets the calling thread's alone; torch's intra-op workers (OpenMP, which
// MKL and oneDNN share) keep theirs. Here each of them sets its own, in one parallel region with
// one iteration per thread.
#include "native.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

bool set_flush_denormal(bool on) {
  bool supported = at::globalContext().setFlushDenormal(on);
  at::parallel_for(0, at::get_num_threads(), 1, [on](int64_t, int64_t) { at::globalContext().setFlushDenormal(on); });
  return supported;
}
