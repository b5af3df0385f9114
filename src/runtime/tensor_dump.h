// --dump-tensors DIR: every named intermediate of every forward pass written as
// DIR/pass-NNN/<name>.npy, with DIR/pass-NNN/index.txt listing the names in execution order.
#pragma once

#include <memory>
#include <string>

#include "model/transformer.h"

namespace strata {

// A tap that writes dumps; a pass begins at each "inp_embd".
Tap dump_tap(Backend& backend, const std::string& dir);

}  // namespace strata
