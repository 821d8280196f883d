#include "gateway/gateway_server.h"

#include <httplib.h>

#include <chrono>
#include <iterator>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "gateway/gateway_context.h"
#include "gateway/http_error.h"
#include "gateway/http_handlers.h"
#include "gateway/http_server.h"
#include "gateway/tls_context.h"

namespace tpserve::gateway {
namespace {

// What a route asks of a request before its body is read.
struct RouteRules {
  // No API key needed (probes, Prometheus).
  bool open = false;
  // The body is JSON: Content-Type must say so.
  bool json_body = false;
};

// "application/json", optionally with parameters ("; charset=utf-8"). Any
// other type is refused: text/plain and form posts are what a browser sends
// cross-origin without a preflight, so accepting them would let any web page
// drive a gateway without API keys on localhost.
bool IsJsonContentType(const std::string& value) {
  absl::string_view media(value);
  media = media.substr(0, media.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), "application/json");
}

// The adapter between the handlers' plain structs (http_types.h) and
// cpp-httplib: the only place that writes an httplib::Response.
void Send(HttpResponse r, httplib::Response& res) {
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  if (r.stream) {
    res.set_chunked_content_provider(
        r.content_type,
        [stream = std::move(r.stream)](size_t, httplib::DataSink& sink) {
          const bool whole = stream([&sink](std::string_view part) { return sink.write(part.data(), part.size()); });
          if (whole) sink.done();
          return whole;
        },
        [done = std::move(r.on_done)](bool) {
          if (done) done();
        });
  } else if (!r.content_type.empty()) {
    res.set_content(r.body, r.content_type);
  }
}

HttpServerOptions ServerOptions(const ServerConfig& config, TlsContext tls) {
  HttpServerOptions options;
  options.max_connections = config.max_connections;
  options.header_timeout = std::chrono::milliseconds(config.http_header_timeout_ms);
  options.limits.body_timeout = std::chrono::milliseconds(config.http_body_timeout_ms);
  options.limits.max_body_bytes = config.max_request_body_bytes;
  options.tls = std::move(tls);
  return options;
}

}  // namespace

class GatewayServer::Impl {
 public:
  // Declared before ctx so that it is destroyed after ctx's disconnect
  // watcher, which calls into it.
  std::unique_ptr<HttpServer> http;
  GatewayContext ctx;
  std::map<std::string, RouteRules> routes;
  std::thread listener;
  int port = 0;
  std::mutex mu;       // guards shut_down
  std::mutex join_mu;  // serialises Wait() callers
  bool shut_down = false;

  // The checks that need no body: API key, Content-Type. Runs before the
  // body is read, so unauthenticated clients cannot upload anything.
  absl::Status CheckHead(const RouteRules& rules, const httplib::Request& req) const {
    if (!rules.open) {
      // The header exactly as sent (HttpConnection::OnHead undoes httplib's
      // percent-decoding); read from the map, since httplib's getters stop
      // at a NUL byte.
      auto [first, last] = req.headers.equal_range("Authorization");
      if (first != last && std::next(first) != last) {
        return absl::UnauthenticatedError("send a single Authorization header");
      }
      TP_RETURN_IF_ERROR(ctx.api_keys.Check(first == last ? std::string() : first->second));
    }
    if (rules.json_body && !IsJsonContentType(req.get_header_value("Content-Type"))) {
      std::string got = req.get_header_value("Content-Type");
      return UnsupportedMediaType(absl::StrCat(
          "Content-Type must be application/json (got '", got.empty() ? "none" : got, "')"));
    }
    return absl::OkStatus();
  }

  bool Admit(const httplib::Request& req, httplib::Response& res) {
    auto it = routes.find(req.path);
    if (it == routes.end()) return true;  // httplib answers 404
    absl::Status status = CheckHead(it->second, req);
    if (status.ok()) return true;
    HttpResponse error;
    WriteError(status, error);
    Send(std::move(error), res);
    ctx.metrics->CountHttp(req.path, res.status);
    return false;
  }

  void Route(const char* method, const std::string& path, bool open,
             std::function<void(const HttpRequest&, HttpResponse&)> fn) {
    const bool post = std::string(method) == "POST";
    routes[path] = RouteRules{open, post};
    auto wrapped = [this, path, fn = std::move(fn)](const httplib::Request& req,
                                                     httplib::Response& res) {
      const HttpRequest request{req.body, req.remote_addr, req.remote_port, req.local_port};
      HttpResponse response;
      try {
        fn(request, response);
      } catch (const std::exception& e) {
        // Handlers return statuses; this is the last line against a library
        // throwing (e.g. nlohmann on a type surprise).
        spdlog::error("{} {}: unexpected exception: {}", req.method, path, e.what());
        response = HttpResponse();
        WriteError(absl::InternalError(absl::StrCat("internal error: ", e.what())), response);
      }
      Send(std::move(response), res);
      ctx.metrics->CountHttp(path, res.status);
    };
    if (post) {
      http->Post(path, wrapped);
    } else {
      http->Get(path, wrapped);
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
  TlsContext tls;
  if (!config.ssl_certfile.empty() || !config.ssl_keyfile.empty() || !config.ssl_ca_certs.empty()) {
    TP_ASSIGN_OR_RETURN(tls, CreateServerTlsContext(config.ssl_certfile, config.ssl_keyfile,
                                                    config.ssl_ca_certs));
  }
  TP_ASSIGN_OR_RETURN(ctx.text, TextService::Load(ctx.model_dir, config.chat_template));
  TP_ASSIGN_OR_RETURN(ctx.api_keys, ApiKeys::Load(config.api_keys, config.api_key_file));
  RouterPoolOptions pool_options;
  TP_ASSIGN_OR_RETURN(pool_options.tls, LoadInternalTls(config));
  TP_ASSIGN_OR_RETURN(ctx.routers, RouterPool::Create(config.routers, pool_options));
  TP_ASSIGN_OR_RETURN(ctx.metrics, GatewayMetrics::Create());

  Impl* p = impl.get();
  impl->http = std::make_unique<HttpServer>(
      ServerOptions(config, std::move(tls)),
      [p](const httplib::Request& req, httplib::Response& res) { return p->Admit(req, res); });
  HttpServer* http = impl->http.get();
  // A client that half-closes after its request still gets the answer; the
  // connection tells whether it is still there (HttpConnection).
  ctx.watcher = std::make_unique<DisconnectWatcher>(
      [http](int fd) { return http->ProbeHalfClosed(fd); });
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

  TP_ASSIGN_OR_RETURN(impl->port, http->Bind(config.host, config.port));
  impl->listener = std::thread([http] { http->Serve(); });
  spdlog::info("gateway serving model '{}' on {}://{}:{} ({} router(s), API keys {}, at most {} "
               "connections)",
               name, config.ssl_certfile.empty() ? "http" : "https", config.host, impl->port,
               config.routers.size(), ctx.api_keys.open() ? "off" : "on",
               http->max_connections());
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
  DrainGenerations(impl_->ctx, std::chrono::milliseconds(impl_->ctx.config.drain_timeout_ms));
  impl_->http->Stop();
}

void GatewayServer::Wait() {
  // A mutex of its own: holding `mu` here would block Shutdown (called from
  // another thread while this one waits) and the server would never stop.
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace tpserve::gateway
