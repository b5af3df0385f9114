// StreamDecoder: whole UTF-8 characters only, however the tokens cut them.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamDecoder::push(TokenId id) {
  tokenizer_->append_decoded(id, options_, first_, pending_);
  // Everything but an unfinished character at the end can go out now.
  const size_t keep = unicode::incomplete_tail(pending_);
  const std::string_view ready = std::string_view(pending_).substr(0, pending_.size() - keep);
  std::string out = unicode::sanitize(ready);
  pending_.erase(0, ready.size());
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = unicode::sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace strata
