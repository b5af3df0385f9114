// POST /v1/chat/completions and /v1/completions: parse, submit to the engine, answer with the
// whole object or as server-sent events. Both are written as the outputs arrive (chunked), so a
// client that goes away is noticed while it waits, and its generation is cancelled.
#pragma once

#include <httplib.h>

#include "server/api_request.h"
#include "server/server_state.h"

namespace strata::server {

// Throws ApiError for what is wrong with the request (nothing is submitted then).
void serve_generation(ServerState& state, const httplib::Request& req, httplib::Response& res, ApiKind kind);

}  // namespace strata::server
