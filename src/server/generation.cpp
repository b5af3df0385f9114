#include "server/generation.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "server/api_response.h"
#include "server/output_channel.h"

namespace strata::server {
namespace {

// How often a request waiting for outputs checks that its client is still there.
constexpr std::chrono::milliseconds kPoll{100};

// One request in flight: the engine's outputs and the response being written.
struct Job {
  Job(ResponseMeta meta, const Tokenizer& tokenizer) : completion(std::move(meta), tokenizer) {}
  OutputChannel channel;
  Completion completion;
  RequestId id = 0;
  bool started = false;  // streaming: the first events were written
  std::chrono::steady_clock::time_point checked = std::chrono::steady_clock::now();  // client last seen
  std::atomic<bool> released{false};  // the response is done with (see release())
  std::vector<EngineOutput> batch;
};

// Ends a request's life in the server (once, whatever happened): a generation still running
// is cancelled (its client went away or the write failed).
void release(ServerState& state, Job& job) {
  if (job.released.exchange(true)) return;
  if (!job.channel.finished()) {
    state.counters().disconnect();
    state.engine().cancel(job.id);
  }
  state.finished(job.id);
}

// Waits for outputs; false when the client has gone (or the engine died) and the request
// must end. On true, job.batch holds the new outputs (possibly none). The client is looked at
// every kPoll even while outputs keep coming (a whole response writes nothing until the end).
bool next_outputs(ServerState& state, Job& job, httplib::DataSink& sink) {
  const bool got = job.channel.wait_pop(job.batch, kPoll);
  const auto now = std::chrono::steady_clock::now();
  if (got && now - job.checked < kPoll) return true;
  job.checked = now;
  return sink.is_writable() && !state.engine_failed();
}

bool write(httplib::DataSink& sink, const std::string& bytes) {
  return bytes.empty() || sink.write(bytes.data(), bytes.size());
}

bool provide_stream(ServerState& state, Job& job, httplib::DataSink& sink) {
  if (!job.started) {
    job.started = true;
    if (!write(sink, job.completion.stream_start())) return false;
  }
  if (!next_outputs(state, job, sink)) return false;
  std::string events;
  for (const EngineOutput& out : job.batch) events += job.completion.stream_events(out);
  if (!write(sink, events)) return false;
  if (job.completion.finished()) sink.done();
  return true;
}

bool provide_whole(ServerState& state, Job& job, httplib::DataSink& sink) {
  if (!next_outputs(state, job, sink)) return false;
  for (const EngineOutput& out : job.batch) job.completion.add(out);
  if (!job.completion.finished()) return true;
  if (!write(sink, dump_json(job.completion.response()))) return false;
  sink.done();
  return true;
}

}  // namespace

void serve_generation(ServerState& state, const httplib::Request& req, httplib::Response& res, ApiKind kind) {
  const ServedModel& model = state.model();
  ApiRequest request = parse_api_request(req.body, kind, state.options().defaults);
  if (!request.seed_given && state.options().seed_fixed) request.seed_given = true;
  check_model_name(model, request.model);
  std::vector<TokenId> prompt = prompt_tokens(request, model);

  ResponseMeta meta{
      .kind = kind,
      .id = state.new_id(kind == ApiKind::chat ? "chatcmpl" : "cmpl"),
      .created =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
      .model = model.id,
      .logprobs = request.logprobs,
      .include_usage = request.include_usage};
  auto job = std::make_shared<Job>(std::move(meta), *model.tokenizer);
  job->id = state.submit(make_engine_request(request, std::move(prompt), state.random()),
                         [job](const EngineOutput& out) { job->channel.push(out); });

  auto releaser = [&state, job](bool) { release(state, *job); };
  if (request.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&state, job](size_t, httplib::DataSink& sink) { return provide_stream(state, *job, sink); }, releaser);
  } else {
    res.set_chunked_content_provider(
        "application/json", [&state, job](size_t, httplib::DataSink& sink) { return provide_whole(state, *job, sink); },
        releaser);
  }
}

}  // namespace strata::server
