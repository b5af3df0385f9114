#include "server/server.h"

#include <httplib.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/api_response.h"
#include "server/generation.h"
#include "server/server_state.h"

namespace strata::server {
namespace {

using Json = nlohmann::ordered_json;

// How long shutdown waits for cancelled streams to end before closing the listener anyway.
constexpr std::chrono::seconds kDrainTimeout{5};

void send_json(httplib::Response& res, const Json& j, int status = 200) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e), "application/json");
}

// The error for a status httplib set itself (unknown route, body too large, bad HTTP).
ApiError http_error(const httplib::Request& req, int status) {
  switch (status) {
    case 404:
      return {404, "invalid_request_error", fmt::format("no route {} {}", req.method, req.path), "", "not_found"};
    case 413:
      return {413, "invalid_request_error", "the request body is too large", "", "request_too_large"};
    case 400:
      return {400, "invalid_request_error", "the HTTP request is malformed", "", ""};
    default:
      return {status, status >= 500 ? "server_error" : "invalid_request_error", fmt::format("HTTP status {}", status),
              "", ""};
  }
}

bool authorized(const std::string& key, const httplib::Request& req) {
  if (key.empty() || req.path == "/health") return true;
  return req.get_header_value("Authorization") == "Bearer " + key;
}

}  // namespace

struct Server::Impl {
  Impl(Engine& engine, ServedModel model, ServerOptions options)
      : state(engine, std::move(model), std::move(options)) {}

  ServerState state;
  httplib::Server http;
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> listen_done{false};

  // Closes the listener; run() may not have started listening yet (stop() only stops a
  // running server).
  void stop_listening() {
    while (!http.is_running() && !listen_done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    http.stop();
  }
  void add_routes();
  void route(const char* method, const char* path, std::function<void(const httplib::Request&, httplib::Response&)> fn);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
};

void Server::Impl::route(const char* method, const char* path,
                         std::function<void(const httplib::Request&, httplib::Response&)> fn) {
  auto handler = [fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "server_error", e.what()));
    }
  };
  if (std::string_view(method) == "GET") {
    http.Get(path, handler);
  } else {
    http.Post(path, handler);
  }
}

void Server::Impl::tokenize(const httplib::Request& req, httplib::Response& res) {
  const TokenizeRequest r = parse_tokenize_request(req.body);
  const Tokenizer& tok = *state.model().tokenizer;
  const std::vector<TokenId> ids = tok.encode(r.content, r.add_special, r.parse_special);
  Json tokens = Json::array();
  for (const TokenId id : ids) {
    if (!r.with_pieces) {
      tokens.push_back(id);
      continue;
    }
    tokens.push_back({{"id", id}, {"piece", tok.token_to_piece(id)}});
  }
  send_json(res, {{"tokens", tokens}});
}

void Server::Impl::detokenize(const httplib::Request& req, httplib::Response& res) {
  const std::vector<TokenId> ids = parse_detokenize_request(req.body);
  const Tokenizer& tok = *state.model().tokenizer;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tok.n_tokens()) {
      bad_request(fmt::format("tokens[{}] is {}, outside the vocabulary of {} tokens", i, ids[i], tok.n_tokens()),
                  fmt::format("tokens[{}]", i));
    }
  }
  send_json(res, {{"content", tok.decode(ids, {.skip_special = false, .strip_space_prefix = false})}});
}

void Server::Impl::add_routes() {
  route("POST", "/v1/chat/completions",
        [this](const auto& req, auto& res) { serve_generation(state, req, res, ApiKind::chat); });
  route("POST", "/chat/completions",
        [this](const auto& req, auto& res) { serve_generation(state, req, res, ApiKind::chat); });
  route("POST", "/v1/completions",
        [this](const auto& req, auto& res) { serve_generation(state, req, res, ApiKind::completion); });
  route("POST", "/completions",
        [this](const auto& req, auto& res) { serve_generation(state, req, res, ApiKind::completion); });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    const ServedModel& m = state.model();
    send_json(res, {{"object", "list"},
                    {"data",
                     {{{"id", m.id},
                       {"object", "model"},
                       {"created", state.started()},
                       {"owned_by", "strata"},
                       {"meta", {{"n_ctx", m.n_ctx}, {"n_vocab", m.n_vocab}}}}}}});
  };
  route("GET", "/v1/models", models);
  route("GET", "/models", models);
  route("GET", "/health", [this](const httplib::Request&, httplib::Response& res) {
    if (state.draining()) {
      send_json(res, {{"status", "shutting down"}}, 503);
    } else {
      send_json(res, {{"status", "ok"}});
    }
  });
  route("GET", "/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(state.engine().stats(), state.counters().snapshot()), "text/plain; version=0.0.4");
  });
  route("POST", "/tokenize", [this](const auto& req, auto& res) { tokenize(req, res); });
  route("POST", "/detokenize", [this](const auto& req, auto& res) { detokenize(req, res); });
  route("POST", "/apply-template", [this](const httplib::Request& req, httplib::Response& res) {
    send_json(res, {{"prompt", format_chat(state.model(), parse_template_request(req.body))}});
  });
}

Server::Server(Engine& engine, ServedModel model, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(model), std::move(options))) {
  Impl& s = *impl_;
  const ServerOptions& o = s.state.options();
  const EngineOptions& eo = engine.options();
  // Every request in flight holds a connection's thread: the running and queued ones, and some
  // for the short routes.
  const size_t threads = o.http_threads > 0 ? size_t(o.http_threads) : size_t(eo.n_parallel + eo.max_queued + 16);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(o.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port.
  s.http.set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.http.set_default_headers({{"Access-Control-Allow-Origin", "*"}});
  s.http.Options(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.status = 204;
  });
  s.http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "OPTIONS" || authorized(s.state.options().api_key, req)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, ApiError(401, "authentication_error", "a valid API key is needed: Authorization: Bearer KEY", "",
                             "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  s.http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours, already JSON
        send_error(res, http_error(req, res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.http.set_logger(
      [&s](const httplib::Request&, const httplib::Response& res) { s.state.counters().response(res.status); });
  s.add_routes();
}

Server::~Server() = default;

int Server::bind() {
  const ServerOptions& o = impl_->state.options();
  const int port =
      o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) fail("cannot listen on {}:{} (the address is in use or not this machine's)", o.host, o.port);
  return port;
}

bool Server::run() {
  Impl& s = *impl_;
  std::atomic<bool> stop_engine{false};
  std::thread engine_thread([&s, &stop_engine] {
    try {
      s.state.engine().run(stop_engine);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: the engine stopped: %s\n", e.what());
      s.state.set_engine_failed();
      s.stop_requested = true;
      s.stop_listening();
    }
  });
  if (!s.stop_requested) s.http.listen_after_bind();
  s.listen_done = true;
  stop_engine = true;
  engine_thread.join();
  return !s.state.engine_failed();
}

void Server::shutdown() {
  Impl& s = *impl_;
  if (s.stop_requested.exchange(true)) return;
  s.state.drain();
  s.state.wait_idle(kDrainTimeout);
  s.stop_listening();
}

}  // namespace strata::server
