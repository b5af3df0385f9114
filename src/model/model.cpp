#include "model/model.h"

namespace strata {

std::unique_ptr<Model> Model::load(const std::string& path, Backend& backend, const LoadProgress& progress) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::make_shared<const gguf::File>(gguf::File::open(path));
  m->config_ = read_model_config(*m->file_);
  m->weights_ = load_weights(*m->file_, m->file_, m->config_, backend, progress);
  return m;
}

}  // namespace strata
