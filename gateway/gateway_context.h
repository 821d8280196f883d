// State shared by every HTTP handler of one gateway: configuration, text
// service, routers, metrics, keys. Built once by GatewayServer::Start.
#ifndef TPSERVE_GATEWAY_GATEWAY_CONTEXT_H_
#define TPSERVE_GATEWAY_GATEWAY_CONTEXT_H_

#include <atomic>
#include <memory>
#include <string>

#include "common/version.h"
#include <vector>

#include "common/config/config.h"
#include "gateway/api_keys.h"
#include "gateway/disconnect_watcher.h"
#include "gateway/gateway_metrics.h"
#include "gateway/generation.h"
#include "gateway/request_parser.h"
#include "gateway/router_pool.h"
#include "gateway/text_service.h"

namespace tpserve::gateway {

// tpserve's version as /version reports it.
inline constexpr const char* kGatewayVersion = tpserve::kVersion;

// Everything a handler needs; handlers hold a const reference.
struct GatewayContext {
  ServerConfig config;
  // Names accepted in "model" (served_model_name, else the model argument).
  std::vector<std::string> served_model_names;
  // The model folder the text side was loaded from.
  std::string model_dir;
  std::unique_ptr<TextService> text;
  std::unique_ptr<RouterPool> routers;
  std::unique_ptr<GatewayMetrics> metrics;
  ApiKeys api_keys;
  std::unique_ptr<DisconnectWatcher> watcher;
  // Set by Shutdown: new generations are refused.
  std::atomic<bool> draining{false};
  // Generation requests being served.
  std::atomic<int> in_flight{0};
  // Their router calls, for draining (see DrainGenerations).
  GenerationRegistry generations;

  // The deployment's max_model_len: the routers' (once one answered Health),
  // else --max-model-len, else config.json's max_position_embeddings.
  int max_model_len() const {
    if (auto info = routers->model_info(); info.has_value() && info->max_model_len() > 0) {
      return info->max_model_len();
    }
    if (config.max_model_len > 0) return config.max_model_len;
    return text->max_position_embeddings();
  }

  // Limits for the request parser.
  RequestLimits limits() const {
    RequestLimits l;
    l.served_model_names = served_model_names;
    l.max_n = config.max_n;
    l.max_stop_strings = config.max_stop_strings;
    l.max_choices = config.max_choices_per_request;
    l.max_model_len = max_model_len();
    l.vocab_size = text->vocab_size();
    l.generation_defaults = text->generation_config();
    return l;
  }
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_GATEWAY_CONTEXT_H_
