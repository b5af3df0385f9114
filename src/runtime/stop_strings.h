// Stop strings (`strata run --stop STR`): generation ends where the generated text first
// contains one of them. Text that may be the start of one is held back, so that no part of a
// stop string is ever shown; the text before the match is.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace strata {

class StopStrings {
public:
  // Empty strings are ignored; with none left, push() passes text through.
  explicit StopStrings(std::vector<std::string> stops);

  // Appends generated text; returns what can be shown now. Once a stop string is found,
  // found() is true and the text from its start on is dropped.
  std::string push(std::string_view text);
  // What is held back at the end of generation (when no stop string was found).
  std::string finish();
  bool found() const { return found_; }
  bool empty() const { return stops_.empty(); }

private:
  std::vector<std::string> stops_;
  std::string held_;
  bool found_ = false;
};

}  // namespace strata
