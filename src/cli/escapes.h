// Escape sequences in command-line text (`run -e`), as llama.cpp's -e reads them.
#pragma once

#include <string>
#include <string_view>

namespace strata::cli {

// \n \r \t \v \f \a \b \\ \' \" \? and \xHH (one or two hex digits) become the characters they
// name; any other backslash sequence is kept as it is.
std::string process_escapes(std::string_view text);

}  // namespace strata::cli
