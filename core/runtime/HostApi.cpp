#include "runtime/HostApi.h"

#include <Poco/Logger.h>

#include <cstddef>
#include <cstring>

#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {

namespace {

// Every function of the table: plugins are C, so nothing may throw out of here.

std::string_view view(ferry_plugin_str s) {
  return s.len == 0 ? std::string_view() : std::string_view(s.ptr, s.len);
}
std::string text(ferry_plugin_str s) { return std::string(view(s)); }

// The position of the first control character (C0 or DEL) of `s`, npos when none.
size_t firstControl(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return i;
  }
  return std::string_view::npos;
}

constexpr size_t kMaxMetaBytes = 64 * 1024;

void hostLog(ferry_host_ctx* ctx, ferry_log_level level, ferry_plugin_str message) {
  try {
    std::string line = ctx->name + ": " + printable(redact(text(message), ctx->secrets));
    auto& log = ctx->services.logger;
    switch (level) {
      case FERRY_LOG_DEBUG: log.debug(line); break;
      case FERRY_LOG_INFO: log.information(line); break;
      case FERRY_LOG_WARNING: log.warning(line); break;
      default: log.error(line); break;
    }
  } catch (...) {
  }
}

void hostSetError(ferry_host_ctx* ctx, ferry_plugin_str message) {
  try {
    ctx->last_error = printable(redact(text(message), ctx->secrets));
  } catch (...) {
  }
}

void hostSetRetryAfter(ferry_host_ctx* ctx, int64_t delay_ms) { ctx->retry_after_ms = delay_ms; }

// Why `item` cannot be journalled, or "" when it can.
std::string refusal(const ferry_item* item) {
  if (!FERRY_HAS_FIELD(ferry_item, item, meta)) return "emit() got a short or NULL item";
  const std::string_view entity = view(item->entity), key = view(item->key);
  if (entity.empty() || key.empty()) return "emitted an item without entity or key";
  // The key is the remote's text: every message quoting it is made printable.
  if (size_t at = firstControl(key); at != std::string_view::npos)
    return "item '" + std::string(key) + "' has a control character in its key (byte " +
           std::to_string(at + 1) + "); a key is never cut or changed";
  if (firstControl(entity) != std::string_view::npos)
    return "item '" + std::string(key) + "' has a control character in its entity";
  const std::string_view meta = view(item->meta);
  if (meta.size() > kMaxMetaBytes)
    return "item '" + std::string(key) + "' carries " + std::to_string(meta.size()) +
           " bytes of metadata, more than the " + std::to_string(kMaxMetaBytes) + " allowed";
  if (!meta.empty() && (meta.front() != '{' || meta.back() != '}'))
    return "item '" + std::string(key) + "' carries metadata that is not a JSON object";
  return {};
}

// An unreadable item handed over during fetch(): set aside when its tries are used up (or it is
// already kept), else the page is marked to be fetched again. True when it is set aside (now or
// before): the plugin skips it either way.
bool considerUnreadable(ferry_host_ctx* ctx, SetAsideItem item) {
  ++ctx->unreadable;
  SetAsideRule& rule = ctx->set_aside_rule;
  if (rule.known && rule.known(item.fingerprint)) return true;
  const int64_t tries = ++rule.tries[item.fingerprint];
  if (tries >= rule.after_tries) {
    ctx->set_aside->push_back(std::move(item));
    return true;
  }
  if (ctx->set_aside_wait.empty())
    ctx->set_aside_wait = item.reason + " (fetch " + std::to_string(tries) + " of " +
                          std::to_string(rule.after_tries) + " before it is set aside)";
  return false;
}

ferry_emit_status hostEmit(ferry_host_ctx* ctx, const ferry_item* item) {
  try {
    if (ctx->page == nullptr) {
      ctx->emit_error = "emit() called outside fetch()";
      return FERRY_EMIT_REFUSED;
    }
    std::string why = refusal(item);
    const std::string_view version =
        FERRY_HAS_FIELD(ferry_item, item, meta) ? view(item->version) : std::string_view();
    auto ns = parseInstantNs(version);
    if (why.empty() && !ns)
      why = "item '" + text(item->key) + "' has version '" + std::string(version) +
            "', which is not an ISO-8601 instant with a zone";
    if (!why.empty()) {
      if (!FERRY_HAS_FIELD(ferry_item, item, meta)) {
        ctx->emit_error = why;
        return FERRY_EMIT_REFUSED;
      }
      // The key, version and body are kept byte for byte: the reason alone is made printable.
      SetAsideItem unreadable;
      unreadable.entity = view(item->entity);
      unreadable.key = view(item->key);
      unreadable.version = version;
      unreadable.raw = view(item->body);
      unreadable.reason = printable(why);
      unreadable.fingerprint = setAsideFingerprint(unreadable.entity, unreadable.key,
                                                   unreadable.version, unreadable.raw);
      const bool set_aside = considerUnreadable(ctx, std::move(unreadable));
      if (ctx->plugin_minor >= 1) return FERRY_EMIT_SET_ASIDE;
      // A plugin of ABI 2.0 knows only OK (go on) and REFUSED (fail the page).
      if (set_aside) return FERRY_EMIT_OK;
      ctx->emit_error = printable(why);
      return FERRY_EMIT_REFUSED;
    }
    FetchedItem& f = ctx->page->emplace_back();
    f.entity = view(item->entity);
    f.key = view(item->key);
    f.version = version;
    f.version_ns = *ns;
    f.body = view(item->body);
    f.meta = view(item->meta);
    f.echo = (item->flags & FERRY_ITEM_ECHO) != 0;
    return FERRY_EMIT_OK;
  } catch (const std::exception& e) {
    ctx->emit_error = e.what();
    return FERRY_EMIT_REFUSED;
  }
}

ferry_emit_status hostSetAside(ferry_host_ctx* ctx, ferry_plugin_str raw, ferry_plugin_str reason) {
  try {
    if (ctx->set_aside == nullptr) {
      ctx->emit_error = "set_aside() called outside fetch()";
      return FERRY_EMIT_REFUSED;
    }
    SetAsideItem item;
    item.raw = view(raw);
    item.reason = printable(redact(text(reason), ctx->secrets));
    if (item.reason.empty()) item.reason = "unreadable item (the plugin gave no reason)";
    item.fingerprint = setAsideFingerprint("", "", "", item.raw);
    considerUnreadable(ctx, std::move(item));
    return FERRY_EMIT_OK;
  } catch (const std::exception& e) {
    ctx->emit_error = e.what();
    return FERRY_EMIT_REFUSED;
  }
}

// A response and everything its ABI view points into.
struct OwnedResponse {
  ferry_host_http_response raw{};
  HttpResult result;
  std::vector<ferry_host_header> headers;
};

// One grant of the shared rate limit `key` for this instance: the one its runner reserved before
// the call (SourceRunner: a waiting source holds no worker), else a wait for the next. The key
// is remembered, so that the runner can reserve the grant for the next cycle.
bool acquireRate(ferry_host_ctx* ctx, const std::string& key) {
  ctx->rate_key = key;
  if (!ctx->prepaid_rate_key.empty() && ctx->prepaid_rate_key == key) {
    ctx->prepaid_rate_key.clear();
    return !ctx->services.stopping.load();
  }
  return ctx->services.rate_limiters.acquire(key, ctx->services.stopping);
}

HttpCall callOf(const ferry_http_request& request) {
  HttpCall call;
  call.method = text(request.method);
  call.url = text(request.url);
  for (size_t i = 0; i < request.header_count; ++i)
    call.headers.emplace_back(text(request.headers[i].name), text(request.headers[i].value));
  call.body = view(request.body);
  call.timeout_ms = request.timeout_ms;
  return call;
}

ferry_http_status hostHttpRequest(ferry_host_ctx* ctx, const ferry_http_request* request,
                                  ferry_host_http_response** response) {
  auto* owned = new (std::nothrow) OwnedResponse;
  *response = owned == nullptr ? nullptr : &owned->raw;
  if (owned == nullptr) return FERRY_HTTP_NO_RESPONSE;
  try {
    if (!FERRY_HAS_FIELD(ferry_http_request, request, rate_key) || request->url.len == 0 ||
        request->method.len == 0 || (request->header_count > 0 && request->headers == nullptr)) {
      owned->result.malformed = true;
      owned->result.error = "short or incomplete ferry_http_request";
    } else if (request->rate_key.len > 0 && !acquireRate(ctx, text(request->rate_key))) {
      owned->result.transient = true;
      owned->result.error = "host is stopping";
    } else if (!ctx->services.mayWrite(ctx->name)) {
      // Several hosts: this host's lease of the instance may have run out (it was paused, or cut
      // off from PostgreSQL), so another host may run it now: nothing is sent.
      owned->result.transient = true;
      owned->result.error = "not sent: the lease of " + ctx->name +
                            " was not renewed in time (this host was paused, or cut off from "
                            "PostgreSQL)";
    } else {
      // The host's connections are pooled per origin and shared by every instance. A request
      // that asks not to verify the certificate goes through a client (and pool) of its own, so
      // that verified connections are never reused for it, nor it for them.
      const bool unverified = (request->flags & FERRY_HTTP_SKIP_TLS_VERIFY) != 0;
      ++ctx->http_requests;
      owned->result = ctx->services.httpClient(!unverified).perform(callOf(*request));
      ctx->services.metrics.add("http_requests_total", ctx->name, 1);
      if (owned->result.status == 0 || owned->result.transient)
        ctx->services.metrics.add("http_transient_failures_total", ctx->name, 1);
    }
    owned->result.error = redact(owned->result.error, ctx->secrets);
  } catch (const std::exception& e) {
    owned->result.status = 0;
    owned->result.transient = true;
    owned->result.error = e.what();
  }
  HttpResult& r = owned->result;
  for (const auto& [n, v] : r.headers) owned->headers.push_back({lend(n), lend(v)});
  owned->raw = ferry_host_http_response{sizeof(ferry_host_http_response),
                                        r.transient ? FERRY_HTTP_TRANSIENT : 0u,
                                        r.status,
                                        owned->headers.data(),
                                        owned->headers.size(),
                                        lend(r.body),
                                        r.retry_after_ms,
                                        lend(r.error)};
  if (r.malformed) return FERRY_HTTP_BAD_REQUEST;
  return r.status == 0 ? FERRY_HTTP_NO_RESPONSE : FERRY_HTTP_RESPONSE;
}

void hostHttpRelease(ferry_host_ctx*, ferry_host_http_response* response) {
  // raw is the first member, so the response pointer is the OwnedResponse.
  delete reinterpret_cast<OwnedResponse*>(response);
}

void hostRateLimitDefine(ferry_host_ctx* ctx, ferry_plugin_str key, const ferry_rate_rule* rules,
                         size_t count) {
  try {
    std::vector<RateRule> r;
    for (size_t i = 0; i < count; ++i) r.push_back(RateRule{rules[i].count, rules[i].per_ms});
    if (!ctx->services.rate_limiters.define(text(key), r))
      ctx->services.logger.warning(ctx->name + ": rate limit '" + printable(view(key)) +
                                   "' is already defined with other rules; keeping the first");
  } catch (...) {
  }
}

ferry_acquire_status hostRateAcquire(ferry_host_ctx* ctx, ferry_plugin_str key) {
  try {
    return acquireRate(ctx, text(key)) ? FERRY_ACQUIRE_OK
               : FERRY_ACQUIRE_STOPPING;
  } catch (...) {
    return FERRY_ACQUIRE_STOPPING;
  }
}

// A failed state call: the reason goes to the log (the plugin's own message will say that the
// state could not be kept) and the call answers FAILED.
ferry_state_status stateFailed(ferry_host_ctx* ctx, const char* call, const std::exception& e) {
  try {
    ctx->services.logger.error(ctx->name + ": " + call + ": " + printable(e.what()));
  } catch (...) {
  }
  return FERRY_STATE_FAILED;
}

ferry_state_status hostStateGet(ferry_host_ctx* ctx, ferry_plugin_str key,
                                ferry_receive_fn receive, void* user) {
  try {
    auto v = ctx->services.instance_state.stateGet(ctx->name, text(key));
    if (!v) return FERRY_STATE_ABSENT;
    receive(user, lend(*v));
    return FERRY_STATE_OK;
  } catch (const std::exception& e) {
    return stateFailed(ctx, "state_get", e);
  }
}

ferry_state_status hostStateSet(ferry_host_ctx* ctx, ferry_plugin_str key,
                                ferry_plugin_str value) {
  try {
    ctx->services.instance_state.stateSet(ctx->name, text(key), text(value));
    return FERRY_STATE_OK;
  } catch (const std::exception& e) {
    return stateFailed(ctx, "state_set", e);
  }
}

ferry_state_status hostStateErase(ferry_host_ctx* ctx, ferry_plugin_str key) {
  try {
    ctx->services.instance_state.stateSet(ctx->name, text(key), std::nullopt);
    return FERRY_STATE_OK;
  } catch (const std::exception& e) {
    return stateFailed(ctx, "state_erase", e);
  }
}

ferry_state_status hostSharedGet(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                 ferry_plugin_str key, ferry_receive_fn receive, void* user) {
  try {
    auto s = ctx->services.scope(text(scope));
    std::string copy;
    {
      std::lock_guard lock(s->data_mutex);
      auto it = s->values.find(text(key));
      if (it == s->values.end()) return FERRY_STATE_ABSENT;
      copy = it->second;
    }
    receive(user, lend(copy));
    return FERRY_STATE_OK;
  } catch (const std::exception& e) {
    return stateFailed(ctx, "shared_get", e);
  }
}

ferry_state_status hostSharedSet(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                 ferry_plugin_str key, ferry_plugin_str value) {
  try {
    auto s = ctx->services.scope(text(scope));
    std::lock_guard lock(s->data_mutex);
    s->values[text(key)] = text(value);
    return FERRY_STATE_OK;
  } catch (const std::exception& e) {
    return stateFailed(ctx, "shared_set", e);
  }
}

void hostSharedLock(ferry_host_ctx* ctx, ferry_plugin_str scope) {
  ctx->services.scope(text(scope))->mutex.lock();
}

void hostSharedUnlock(ferry_host_ctx* ctx, ferry_plugin_str scope) {
  ctx->services.scope(text(scope))->mutex.unlock();
}

void hostCounterAdd(ferry_host_ctx* ctx, ferry_plugin_str name, double delta) {
  try {
    ctx->services.metrics.add(text(name), ctx->name, delta);
  } catch (...) {
  }
}

void hostGaugeSet(ferry_host_ctx* ctx, ferry_plugin_str name, double value) {
  try {
    ctx->services.metrics.set(text(name), ctx->name, value);
  } catch (...) {
  }
}

int hostStopping(ferry_host_ctx* ctx) { return ctx->services.stopping.load() ? 1 : 0; }

ferry_host_str hostJournalId(ferry_host_ctx* ctx) { return lend(ctx->services.journal_id); }

const ferry_host_api kApi{FERRY_ABI_MAJOR,      FERRY_ABI_MINOR,  sizeof(ferry_host_api),
                          &hostLog,             &hostSetError,    &hostSetRetryAfter,
                          &hostEmit,            &hostHttpRequest, &hostHttpRelease,
                          &hostRateLimitDefine, &hostRateAcquire, &hostStateGet,
                          &hostStateSet,        &hostStateErase,  &hostSharedGet,
                          &hostSharedSet,       &hostSharedLock,  &hostSharedUnlock,
                          &hostCounterAdd,      &hostGaugeSet,    &hostStopping,
                          &hostJournalId,       &hostSetAside};

}  // namespace

const ferry_host_api* hostApi() { return &kApi; }

}  // namespace ferry::core

ferry_host_ctx::ferry_host_ctx(ferry::core::PluginServices& services, std::string name,
                               std::string kind, std::vector<std::string> secrets)
    : services(services), name(std::move(name)), kind(std::move(kind)),
      secrets(std::move(secrets)) {}
