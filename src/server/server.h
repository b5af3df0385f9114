// `strata serve`: an OpenAI-compatible HTTP server over one Engine.
//
//   POST /v1/chat/completions, /v1/completions   generation (stream: server-sent events)
//   GET  /v1/models, /health, /metrics           the model, liveness, Prometheus counters
//   POST /tokenize, /detokenize, /apply-template llama-server's shapes
//
// Errors are JSON in OpenAI's shape with 4xx statuses and the server keeps serving. A client
// that disconnects cancels its generation. shutdown() (from a signal, say) stops accepting,
// cancels what is in flight, lets the streams end and makes run() return.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/engine.h"
#include "sampling/params.h"
#include "server/engine_request.h"

namespace strata::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                          // 0: any free port (bind() says which)
  std::string api_key;                      // "": no key needed; else `Authorization: Bearer KEY`
  size_t max_body_bytes = size_t(8) << 20;  // larger request bodies get 413
  int http_threads = 0;                     // connections served at once; 0: from the engine's limits
  SamplingParams defaults;                  // what a request does not set
  bool seed_fixed = false;                  // defaults.seed is the seed of requests that give none
};

class Server {
public:
  // `engine` and what `model` points to must outlive the server.
  Server(Engine& engine, ServedModel model, ServerOptions options);
  ~Server();

  // Binds the listening socket; returns the port. Throws strata::Error when it cannot.
  int bind();
  // Serves until shutdown(), driving the engine on a thread of its own. Returns false when the
  // engine failed (the error was logged on stderr).
  bool run();
  // Any thread, any time after construction, more than once: see the file comment.
  void shutdown();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::server
