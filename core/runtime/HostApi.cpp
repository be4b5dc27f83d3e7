#include "runtime/HostApi.h"

#include <Poco/Logger.h>

#include <cstddef>
#include <cstring>

#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

namespace {

// Every function of the table: plugins are C, so nothing may throw out of here.

void hostLog(ferry_host_ctx* ctx, ferry_log_level level, const char* message) {
  try {
    std::string text = ctx->name + ": " + printable(redact(message ? message : "", ctx->secrets));
    auto& log = ctx->services.logger;
    switch (level) {
      case FERRY_LOG_DEBUG: log.debug(text); break;
      case FERRY_LOG_INFO: log.information(text); break;
      case FERRY_LOG_WARNING: log.warning(text); break;
      default: log.error(text); break;
    }
  } catch (...) {
  }
}

void hostSetError(ferry_host_ctx* ctx, const char* message) {
  try {
    ctx->last_error = printable(redact(message ? message : "", ctx->secrets));
  } catch (...) {
  }
}

void hostSetRetryAfter(ferry_host_ctx* ctx, int64_t delay_ms) { ctx->retry_after_ms = delay_ms; }

ferry_status hostEmit(ferry_host_ctx* ctx, const ferry_item* item) {
  try {
    if (ctx->page == nullptr) {
      ctx->emit_error = "emit() called outside fetch()";
      return FERRY_FATAL;
    }
    if (item == nullptr || item->struct_size < sizeof(ferry_item)) {
      ctx->emit_error = "emit() got a short or NULL item";
      return FERRY_FATAL;
    }
    if (item->key == nullptr || item->key[0] == '\0' || item->entity == nullptr ||
        item->entity[0] == '\0') {
      ctx->emit_error = "emitted an item without entity or key";
      return FERRY_FATAL;
    }
    const char* version = item->version ? item->version : "";
    auto ns = parseInstantNs(version);
    if (!ns) {
      // The key and version are the remote's text: made printable like every plugin message.
      ctx->emit_error = printable(std::string("item '") + item->key + "' has version '" +
                                  version + "', which is not an ISO-8601 instant with a zone");
      return FERRY_FATAL;
    }
    FetchedItem f;
    f.entity = item->entity;
    f.key = item->key;
    f.version = version;
    f.version_ns = *ns;
    if (item->body != nullptr) f.body.assign(item->body, item->body_len);
    f.echo = item->echo != 0;
    ctx->page->push_back(std::move(f));
    return FERRY_OK;
  } catch (const std::exception& e) {
    ctx->emit_error = e.what();
    return FERRY_FATAL;
  }
}

struct OwnedResponse {
  ferry_http_response raw{};
  HttpResult result;
  std::vector<ferry_header> headers;
};

ferry_status hostHttpRequest(ferry_host_ctx* ctx, const ferry_http_request* request,
                             ferry_http_response** response) {
  auto* owned = new (std::nothrow) OwnedResponse;
  if (owned == nullptr) {
    *response = nullptr;
    return FERRY_RETRY;
  }
  ferry_status status = FERRY_OK;
  try {
    // Plugins built before skip_tls_verify was appended pass a shorter struct: still valid.
    if (request == nullptr ||
        request->struct_size < offsetof(ferry_http_request, skip_tls_verify) ||
        request->url == nullptr || request->method == nullptr) {
      owned->result.malformed = true;
      owned->result.error = "short or incomplete ferry_http_request";
    } else {
      if (request->rate_key != nullptr &&
          !ctx->services.rate_limiters.acquire(request->rate_key, ctx->services.stopping)) {
        owned->result.transient = true;
        owned->result.error = "host is stopping";
      } else {
        HttpCall call;
        call.method = request->method;
        call.url = request->url;
        for (size_t i = 0; i < request->header_count; ++i)
          call.headers.emplace_back(request->headers[i].name, request->headers[i].value);
        if (request->body != nullptr) call.body.assign(request->body, request->body_len);
        call.timeout_ms = request->timeout_ms;
        // A request that asks not to verify the certificate gets a client of its own, so that
        // the instance's verified connections are never reused for it, nor it for them.
        const bool unverified =
            request->struct_size >= offsetof(ferry_http_request, skip_tls_verify) + sizeof(int) &&
            request->skip_tls_verify != 0;
        auto& client = unverified ? ctx->http_unverified : ctx->http;
        if (!client) {
          HttpSettings settings = ctx->services.http_settings;
          if (unverified) settings.tls_verify = false;
          client = std::make_unique<HttpClient>(settings);
        }
        ++ctx->http_requests;
        owned->result = client->perform(call);
        ctx->services.metrics.add("http_requests_total", ctx->name, 1);
        if (owned->result.status == 0 || owned->result.transient)
          ctx->services.metrics.add("http_transient_failures_total", ctx->name, 1);
      }
    }
    if (owned->result.malformed) status = FERRY_FATAL;
    else if (owned->result.status == 0) status = FERRY_RETRY;
    owned->result.error = redact(owned->result.error, ctx->secrets);
  } catch (const std::exception& e) {
    owned->result.status = 0;
    owned->result.transient = true;
    owned->result.error = e.what();
    status = FERRY_RETRY;
  }
  for (const auto& [n, v] : owned->result.headers) owned->headers.push_back({n.c_str(), v.c_str()});
  auto& r = owned->raw;
  r.struct_size = sizeof(ferry_http_response);
  r.status = owned->result.status;
  r.headers = owned->headers.data();
  r.header_count = owned->headers.size();
  r.body = owned->result.body.c_str();
  r.body_len = owned->result.body.size();
  r.transient = owned->result.transient ? 1 : 0;
  r.retry_after_ms = owned->result.retry_after_ms;
  r.error = owned->result.error.c_str();
  *response = &owned->raw;
  return status;
}

void hostHttpFree(ferry_host_ctx*, ferry_http_response* response) {
  // raw is the first member, so the response pointer is the OwnedResponse.
  delete reinterpret_cast<OwnedResponse*>(response);
}

void hostRateLimitDefine(ferry_host_ctx* ctx, const char* key, const ferry_rate_rule* rules,
                         size_t count) {
  try {
    std::vector<RateRule> r;
    for (size_t i = 0; i < count; ++i) r.push_back(RateRule{rules[i].count, rules[i].per_ms});
    if (!ctx->services.rate_limiters.define(key, r))
      ctx->services.logger.warning(ctx->name + ": rate limit '" + key +
                                   "' is already defined with other rules; keeping the first");
  } catch (...) {
  }
}

ferry_status hostRateAcquire(ferry_host_ctx* ctx, const char* key) {
  try {
    return ctx->services.rate_limiters.acquire(key, ctx->services.stopping) ? FERRY_OK
                                                                            : FERRY_RETRY;
  } catch (...) {
    return FERRY_RETRY;
  }
}

ferry_status hostStateGet(ferry_host_ctx* ctx, const char* key, ferry_bytes_fn receive,
                          void* user) {
  try {
    auto v = ctx->services.instance_state.stateGet(ctx->name, key);
    if (!v) return FERRY_FATAL;
    receive(user, v->data(), v->size());
    return FERRY_OK;
  } catch (const std::exception& e) {
    ctx->last_error = std::string("state_get: ") + e.what();
    return FERRY_RETRY;
  }
}

ferry_status hostStateSet(ferry_host_ctx* ctx, const char* key, const char* value, size_t len) {
  try {
    ctx->services.instance_state.stateSet(
        ctx->name, key, value ? std::optional<std::string>(std::string(value, len)) : std::nullopt);
    return FERRY_OK;
  } catch (const std::exception& e) {
    ctx->last_error = std::string("state_set: ") + e.what();
    return FERRY_RETRY;
  }
}

ferry_status hostSharedGet(ferry_host_ctx* ctx, const char* scope, const char* key,
                           ferry_bytes_fn receive, void* user) {
  try {
    auto s = ctx->services.scope(scope);
    std::string copy;
    {
      std::lock_guard lock(s->data_mutex);
      auto it = s->values.find(key);
      if (it == s->values.end()) return FERRY_FATAL;
      copy = it->second;
    }
    receive(user, copy.data(), copy.size());
    return FERRY_OK;
  } catch (...) {
    return FERRY_RETRY;
  }
}

ferry_status hostSharedSet(ferry_host_ctx* ctx, const char* scope, const char* key,
                           const char* value, size_t len) {
  try {
    auto s = ctx->services.scope(scope);
    std::lock_guard lock(s->data_mutex);
    if (value == nullptr) s->values.erase(key);
    else s->values[key].assign(value, len);
    return FERRY_OK;
  } catch (...) {
    return FERRY_RETRY;
  }
}

void hostSharedLock(ferry_host_ctx* ctx, const char* scope) {
  ctx->services.scope(scope)->mutex.lock();
}

void hostSharedUnlock(ferry_host_ctx* ctx, const char* scope) {
  ctx->services.scope(scope)->mutex.unlock();
}

void hostCounterAdd(ferry_host_ctx* ctx, const char* name, double delta) {
  try {
    ctx->services.metrics.add(name, ctx->name, delta);
  } catch (...) {
  }
}

void hostGaugeSet(ferry_host_ctx* ctx, const char* name, double value) {
  try {
    ctx->services.metrics.set(name, ctx->name, value);
  } catch (...) {
  }
}

int hostStopping(ferry_host_ctx* ctx) { return ctx->services.stopping.load() ? 1 : 0; }

const ferry_host_api kApi{
    FERRY_ABI_VERSION, sizeof(ferry_host_api), &hostLog,         &hostSetError,
    &hostSetRetryAfter, &hostEmit,            &hostHttpRequest,  &hostHttpFree,
    &hostRateLimitDefine, &hostRateAcquire,   &hostStateGet,     &hostStateSet,
    &hostSharedGet,     &hostSharedSet,       &hostSharedLock,   &hostSharedUnlock,
    &hostCounterAdd,    &hostGaugeSet,        &hostStopping};

}  // namespace

const ferry_host_api* hostApi() { return &kApi; }

}  // namespace ferry::core

ferry_host_ctx::ferry_host_ctx(ferry::core::PluginServices& services, std::string name,
                               std::string kind, std::vector<std::string> secrets)
    : services(services), name(std::move(name)), kind(std::move(kind)),
      secrets(std::move(secrets)) {}
