#include "gateway/gateway_server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "gateway/gateway_context.h"
#include "gateway/http_error.h"
#include "gateway/http_handlers.h"

namespace tpserve::gateway {
namespace {

// Streaming requests hold a thread each for their whole life, so the pool
// must cover the concurrency we promise (256 streaming clients and more).
constexpr int kHttpThreads = 512;
// Longest a graceful shutdown waits for in-flight generations.
constexpr auto kDrainTimeout = std::chrono::seconds(30);

// cpp-httplib's compiled-in listen backlog is 5: a burst of new clients
// overflows it and their SYNs are dropped and retried after seconds. Calling
// listen() again on the bound socket raises the backlog (Linux).
class HttpServer : public httplib::Server {
 public:
  void RaiseListenBacklog(int backlog) { ::listen(svr_sock_, backlog); }
};

constexpr int kListenBacklog = 1024;

}  // namespace

class GatewayServer::Impl {
 public:
  GatewayContext ctx;
  HttpServer http;
  std::thread listener;
  int port = 0;
  std::mutex mu;       // guards shut_down
  std::mutex join_mu;  // serialises Wait() callers
  bool shut_down = false;

  void Route(const char* method, const std::string& path, bool open,
             std::function<void(const httplib::Request&, httplib::Response&)> fn) {
    auto wrapped = [this, path, open, fn = std::move(fn)](const httplib::Request& req,
                                                           httplib::Response& res) {
      if (!open) {
        absl::Status auth = ctx.api_keys.Check(req.get_header_value("Authorization"));
        if (!auth.ok()) {
          WriteError(auth, res);
          ctx.metrics->CountHttp(path, res.status);
          return;
        }
      }
      try {
        fn(req, res);
      } catch (const std::exception& e) {
        // Handlers return statuses; this is the last line against a library
        // throwing (e.g. nlohmann on a type surprise).
        spdlog::error("{} {}: unexpected exception: {}", req.method, path, e.what());
        WriteError(absl::InternalError(absl::StrCat("internal error: ", e.what())), res);
      }
      ctx.metrics->CountHttp(path, res.status < 0 ? 200 : res.status);
    };
    if (std::string(method) == "GET") {
      http.Get(path, wrapped);
    } else {
      http.Post(path, wrapped);
    }
  }
};

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const ServerConfig& config) {
  auto impl = std::make_unique<Impl>();
  GatewayContext& ctx = impl->ctx;
  ctx.config = config;
  ctx.model_dir = !config.tokenizer.empty() ? config.tokenizer : config.model;
  if (ctx.model_dir.empty()) {
    return absl::InvalidArgumentError("the gateway needs --model (or --tokenizer) to find the "
                                      "tokenizer and chat template");
  }
  std::string name = !config.served_model_name.empty() ? config.served_model_name : config.model;
  if (name.empty()) name = ctx.model_dir;
  ctx.served_model_names = {name};
  TP_ASSIGN_OR_RETURN(ctx.text, TextService::Load(ctx.model_dir, config.chat_template));
  TP_ASSIGN_OR_RETURN(ctx.api_keys, ApiKeys::Load(config.api_keys, config.api_key_file));
  RouterPoolOptions pool_options;
  TP_ASSIGN_OR_RETURN(pool_options.tls, LoadInternalTls(config));
  TP_ASSIGN_OR_RETURN(ctx.routers, RouterPool::Create(config.routers, pool_options));
  TP_ASSIGN_OR_RETURN(ctx.metrics, GatewayMetrics::Create());
  ctx.watcher = std::make_unique<DisconnectWatcher>();

  httplib::Server& http = impl->http;
  http.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  http.set_payload_max_length(static_cast<size_t>(config.max_request_body_bytes));
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);
  Impl* p = impl.get();
  p->Route("POST", "/v1/chat/completions", false, [p](const auto& q, auto& r) {
    HandleGenerate(p->ctx, true, q, r);
  });
  p->Route("POST", "/v1/completions", false, [p](const auto& q, auto& r) {
    HandleGenerate(p->ctx, false, q, r);
  });
  p->Route("GET", "/v1/models", false, [p](const auto& q, auto& r) { HandleModels(p->ctx, q, r); });
  // Like vLLM, only the API routes need a key: probes and Prometheus scrape
  // /health, /metrics and /version without one.
  p->Route("GET", "/health", true, [p](const auto& q, auto& r) { HandleHealth(p->ctx, q, r); });
  p->Route("GET", "/metrics", true, [p](const auto& q, auto& r) { HandleMetrics(p->ctx, q, r); });
  p->Route("GET", "/version", true, [p](const auto& q, auto& r) { HandleVersion(p->ctx, q, r); });
  p->Route("POST", "/tokenize", false, [p](const auto& q, auto& r) { HandleTokenize(p->ctx, q, r); });
  p->Route("POST", "/detokenize", false,
           [p](const auto& q, auto& r) { HandleDetokenize(p->ctx, q, r); });
  // httplib answers unknown paths (404) and oversized bodies (413) itself,
  // with an empty body; give clients an OpenAI error object instead.
  int64_t max_body = config.max_request_body_bytes;
  http.set_error_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message =
        res.status == 413
            ? absl::StrCat("request body exceeds the limit of ", max_body, " bytes")
            : absl::StrCat("no route for ", req.method, " ", req.path);
    int status = res.status;
    res.set_content(ErrorBodyForHttpStatus(status, message), "application/json");
  });

  int port = config.port == 0 ? http.bind_to_any_port(config.host)
                              : (http.bind_to_port(config.host, config.port) ? config.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("gateway: cannot listen on ", config.host, ":", config.port));
  }
  impl->http.RaiseListenBacklog(kListenBacklog);
  impl->port = port;
  impl->listener = std::thread([p] { p->http.listen_after_bind(); });
  spdlog::info("gateway serving model '{}' on {}:{} ({} router(s), API keys {})", name,
               config.host, port, config.routers.size(),
               ctx.api_keys.open() ? "off" : "on");
  return std::unique_ptr<GatewayServer>(new GatewayServer(std::move(impl)));
}

GatewayServer::GatewayServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GatewayServer::~GatewayServer() {
  Shutdown();
  Wait();
}

int GatewayServer::port() const { return impl_->port; }

void GatewayServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  impl_->ctx.draining.store(true);
  auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
  while (impl_->ctx.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (impl_->ctx.in_flight.load() > 0) {
    spdlog::warn("gateway: {} request(s) still running after the drain timeout",
                 impl_->ctx.in_flight.load());
  }
  impl_->http.stop();
}

void GatewayServer::Wait() {
  // A mutex of its own: holding `mu` here would block Shutdown (called from
  // another thread while this one waits) and the server would never stop.
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace tpserve::gateway
