// The instruction-set paths of the fast CPU backend, chosen at run time (cpuid), never at
// build time: the shipped binary runs on any x86-64 and takes the best path the CPU has.
// Each level includes the ones before it.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace strata::cpu {

enum class Isa {
  portable,     // plain C++ (any CPU; the fallback every other path is tested against)
  avx2,         // AVX2 + FMA + F16C
  avx512,       // AVX-512 F + BW + VL + DQ (and the avx2 level)
  avx512_vnni,  // avx512 + AVX-512 VNNI (int8 dot products)
};

// The best level this CPU (and OS) supports.
Isa detected_isa();
// Every level this CPU can run, portable first: the paths the tests cover.
std::vector<Isa> available_isas();
// "portable", "avx2", "avx512", "avx512-vnni".
std::string_view isa_name(Isa isa);
// The level named `name` (as isa_name spells it); nullopt for an unknown name.
std::optional<Isa> isa_from_name(std::string_view name);

}  // namespace strata::cpu
