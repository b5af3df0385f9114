// A loaded model: the mapped GGUF file, its hyperparameters and its weights on a backend.
#pragma once

#include <memory>
#include <string>

#include "gguf/reader.h"
#include "model/config.h"
#include "model/weights.h"

namespace strata {

class Model {
public:
  // Maps `path`, reads the config and makes the weights available to `backend`.
  static std::unique_ptr<Model> load(const std::string& path, Backend& backend, const LoadProgress& progress = {});

  const gguf::File& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

private:
  Model() = default;
  std::shared_ptr<const gguf::File> file_;  // also keeps the mapping alive for the weight views
  ModelConfig config_;
  ModelWeights weights_;
};

}  // namespace strata
