// Backends by name, as the command line names them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "backend/cpu/isa.h"

namespace strata {

// Settings of the fast CPU backend, from the command line (--cpu-isa, --cpu-f32-act, --cpu-q8-act).
struct CpuOptions {
  std::string isa;               // an ISA path name (cpu::isa_name); "" = the best this CPU has
  bool f32_activations = false;  // matmul multiplies f32 activations, not 8-bit ones
  bool one_term_q8 = false;      // one 8-bit term per activation instead of two (faster, less exact)
};

// "cpu" (the fast CPU backend, backend/cpu/cpu_backend.h), "cpu_ref" (the f32 reference),
// "cpu_ref64" (the reference accumulating in f64), "cuda" (GPU 0; only in builds with nvcc)
// and "auto" (cuda when a usable GPU is present, else cpu). `threads` 0 = the physical cores.
// `tensor_parallel` > 1: the model split over that many parts (backend/tensor_parallel/): GPUs
// 0..N-1 over NCCL for cuda (an error naming how many are present when fewer), else N
// in-process parts of the named CPU backend (the CPU simulation); < 1 is an error.
std::unique_ptr<Backend> make_backend(std::string_view name, int threads = 0, const CpuOptions& cpu = {},
                                      int tensor_parallel = 1);

// The ISA path `name` names ("" = `detected`); fails for an unknown name or a path above
// `detected`, naming the paths this CPU has.
cpu::Isa cpu_isa_from_option(std::string_view name, cpu::Isa detected = cpu::detected_isa());

// The backend and its settings for the model line: "cpu (avx512-vnni, 2 threads)", "cuda",
// "2 x cpu_ref (tensor parallel, in-process)".
std::string describe_backend(const Backend& backend);

// How a tensor-parallel backend split the weights, for the load log ("tensor parallel: 2 parts,
// weights per part: 310.2 MiB split + 62.5 MiB whole"); "" for other backends.
std::string describe_split(const Backend& backend);

}  // namespace strata
