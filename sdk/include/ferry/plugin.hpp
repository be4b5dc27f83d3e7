// Ferry plugin SDK — the header-only C++ side of the plugin ABI (<ferry/abi.h>).
//
// A plugin derives from ferry::Source or ferry::Sink, declares its options as a static array of
// ferry::Option, and writes FERRY_SOURCE_PLUGIN(...) or FERRY_SINK_PLUGIN(...) once. The macro
// exports the one entry symbol; the glue below catches every exception at each exported function
// and turns it into a status code with a message, so nothing C++ crosses the boundary.
//
// Threading: the host never calls one instance from two threads at once. ferry::Host is a cheap
// handle that may be copied and used from the instance's calls; its methods are thread-safe.
#pragma once

#include <ferry/abi.h>
#include <ferry/version.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ferry {

// ------------------------------------------------------------------------------------------------
// Errors. Throw them from any plugin method; the wrapper maps them to the status of the call.
// Any other exception is reported as FERRY_RETRY for fetch/write (the host backs off) and as
// FERRY_FATAL for create().
// ------------------------------------------------------------------------------------------------

// Base of the SDK's exceptions: a status and a message.
class Error : public std::runtime_error {
 public:
  Error(ferry_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  ferry_status status() const noexcept { return status_; }

 private:
  ferry_status status_;
};

// Transient failure: the host backs off and tries again. `retry_after_ms` >= 0 asks the host to
// wait at least that long (e.g. a Retry-After header).
class Retry : public Error {
 public:
  explicit Retry(const std::string& message, int64_t retry_after_ms = -1)
      : Error(FERRY_RETRY, message), retry_after_ms_(retry_after_ms) {}
  int64_t retryAfterMs() const noexcept { return retry_after_ms_; }

 private:
  int64_t retry_after_ms_;
};

// Permanent failure: retrying cannot help (bad option, rejected record).
class Fatal : public Error {
 public:
  explicit Fatal(const std::string& message) : Error(FERRY_FATAL, message) {}
};

// Credentials refused: the host stops the instance with this message as its status.
class AuthError : public Error {
 public:
  explicit AuthError(const std::string& message) : Error(FERRY_AUTH, message) {}
};

// The instance cannot go on until an operator acts (an endpoint retired, a certificate not
// trusted): the host stops it with this message as its status.
class Stop : public Error {
 public:
  explicit Stop(const std::string& message) : Error(FERRY_STOP, message) {}
};

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

// A constexpr builder for one entry of a plugin's option table:
//   static constexpr ferry_option_def kOptions[] = {
//       ferry::Option("base_url").help("API base").defaultsTo("https://…"),
//       ferry::Option("api_key").secret().required().help("API key"),
//       ferry::Option("page_size", FERRY_OPT_INT).defaultsTo("100").help("items per page"),
//   };
// The host validates the config against this table; `ferry plugins` prints it.
struct Option {
  ferry_option_def def;

  constexpr explicit Option(const char* name, ferry_option_type type = FERRY_OPT_STRING)
      : def{sizeof(ferry_option_def), name, type, nullptr, 0, 0, "", nullptr} {}
  constexpr Option defaultsTo(const char* value) const {
    Option o = *this;
    o.def.default_value = value;
    return o;
  }
  constexpr Option required() const {
    Option o = *this;
    o.def.required = 1;
    return o;
  }
  constexpr Option secret() const {
    Option o = *this;
    o.def.secret = 1;
    return o;
  }
  constexpr Option help(const char* text) const {
    Option o = *this;
    o.def.help = text;
    return o;
  }
  // Allowed values separated by '|', e.g. "buyer|supplier".
  constexpr Option choices(const char* values) const {
    Option o = *this;
    o.def.choices = values;
    return o;
  }
  constexpr operator ferry_option_def() const { return def; }  // NOLINT: meant to convert
};

// The resolved options handed to a plugin's constructor. Values are already validated by the
// host against the declared types, so the typed getters only fail for an undeclared name or an
// unset option without default (std::out_of_range / ferry::Fatal).
class Options {
 public:
  Options() = default;
  Options(const ferry_option_value* values, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      entries_.emplace_back(values[i].name,
                            values[i].value ? std::optional<std::string>(values[i].value)
                                            : std::nullopt);
    }
  }

  // True when the option has a value (set in the config, or by its default).
  bool has(std::string_view name) const {
    const auto* e = find(name);
    return e != nullptr && e->second.has_value();
  }
  // The value as text; `fallback` when the option has no value.
  std::string string(std::string_view name, std::string fallback = {}) const {
    const auto* e = find(name);
    return e != nullptr && e->second ? *e->second : fallback;
  }
  int64_t integer(std::string_view name) const { return std::stoll(need(name)); }
  bool boolean(std::string_view name) const { return need(name) == "true"; }
  double number(std::string_view name) const { return std::stod(need(name)); }
  // A FERRY_OPT_DURATION option in milliseconds.
  int64_t durationMs(std::string_view name) const { return std::stoll(need(name)); }
  // A FERRY_OPT_LIST option split at commas; empty when unset.
  std::vector<std::string> list(std::string_view name) const {
    std::vector<std::string> out;
    if (!has(name)) return out;
    std::string text = string(name);
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string::npos) comma = text.size();
      if (comma > start) out.push_back(text.substr(start, comma - start));
      start = comma + 1;
    }
    return out;
  }

 private:
  using Entry = std::pair<std::string, std::optional<std::string>>;
  const Entry* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.first == name) return &e;
    return nullptr;
  }
  const std::string& need(std::string_view name) const {
    const auto* e = find(name);
    if (e == nullptr || !e->second) throw Fatal("option '" + std::string(name) + "' has no value");
    return *e->second;
  }
  std::vector<Entry> entries_;
};

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

// A read-only view of a journalled event (borrowed for the duration of the call).
class Event {
 public:
  explicit Event(const ferry_event& e) : e_(&e) {}
  int64_t sequence() const { return e_->sequence; }
  std::string_view source() const { return e_->source; }
  std::string_view entity() const { return e_->entity; }
  std::string_view key() const { return e_->key; }
  std::string_view version() const { return e_->version; }
  std::string_view previous() const { return e_->previous; }  // "" for a key never seen
  std::string_view body() const { return {e_->body, e_->body_len}; }
  bool echo() const { return e_->echo != 0; }
  std::string_view idempotencyKey() const { return e_->idempotency_key; }
  const ferry_event& raw() const { return *e_; }

 private:
  const ferry_event* e_;
};

// What a source emits for one item of a page.
struct Item {
  std::string_view entity;
  std::string_view key;
  std::string_view version;  // exactly as received
  std::string_view body;     // exactly as received
  bool echo = false;
};

// ------------------------------------------------------------------------------------------------
// HTTP through the host
// ------------------------------------------------------------------------------------------------

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int64_t timeout_ms = 0;  // 0: the host default
  std::string rate_key;    // empty: no rate limit
  bool tls_verify = true;  // false only on the user's explicit request (log a warning)
};

// Owns a host response and releases it on destruction. Move-only.
class HttpResponse {
 public:
  HttpResponse(const ferry_host_api* api, ferry_host_ctx* ctx, ferry_http_response* r)
      : api_(api), ctx_(ctx), r_(r) {}
  HttpResponse(HttpResponse&& o) noexcept : api_(o.api_), ctx_(o.ctx_), r_(std::exchange(o.r_, nullptr)) {}
  HttpResponse& operator=(HttpResponse&&) = delete;
  HttpResponse(const HttpResponse&) = delete;
  ~HttpResponse() {
    if (r_ != nullptr) api_->http_free(ctx_, r_);
  }

  int status() const { return r_->status; }  // 0 when no response arrived
  bool ok() const { return r_->status >= 200 && r_->status < 300; }
  bool transient() const { return r_->transient != 0; }
  int64_t retryAfterMs() const { return r_->retry_after_ms; }
  std::string_view body() const { return {r_->body, r_->body_len}; }
  std::string_view error() const { return r_->error != nullptr ? r_->error : ""; }
  // The first header of that name (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const {
    for (size_t i = 0; i < r_->header_count; ++i) {
      std::string_view n = r_->headers[i].name;
      if (n.size() == name.size() && equalsIgnoreCase(n, name)) return r_->headers[i].value;
    }
    return std::nullopt;
  }
  // "HTTP 503: <first 200 bytes of the body>" or the transport error, for messages.
  std::string describe() const {
    if (r_->status == 0) return "no response: " + std::string(error());
    std::string excerpt(body().substr(0, 200));
    return "HTTP " + std::to_string(r_->status) + (excerpt.empty() ? "" : ": " + excerpt);
  }

 private:
  static bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    for (size_t i = 0; i < a.size(); ++i) {
      char x = a[i], y = b[i];
      if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
      if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
      if (x != y) return false;
    }
    return true;
  }
  const ferry_host_api* api_;
  ferry_host_ctx* ctx_;
  ferry_http_response* r_;
};

// ------------------------------------------------------------------------------------------------
// The host, as a plugin sees it
// ------------------------------------------------------------------------------------------------

class Host {
 public:
  Host(const ferry_host_api* api, ferry_host_ctx* ctx) : api_(api), ctx_(ctx) {}

  void debug(const std::string& m) const { api_->log(ctx_, FERRY_LOG_DEBUG, m.c_str()); }
  void info(const std::string& m) const { api_->log(ctx_, FERRY_LOG_INFO, m.c_str()); }
  void warning(const std::string& m) const { api_->log(ctx_, FERRY_LOG_WARNING, m.c_str()); }
  void error(const std::string& m) const { api_->log(ctx_, FERRY_LOG_ERROR, m.c_str()); }

  // Sources, inside fetch(): hands one item to the host. Throws Fatal when the host refuses it
  // (the page then fails with that message).
  void emit(const Item& item) const {
    std::string entity(item.entity), key(item.key), version(item.version);
    ferry_item raw{sizeof(ferry_item), entity.c_str(), key.c_str(),     version.c_str(),
                   item.body.data(),   item.body.size(), item.echo ? 1 : 0};
    if (api_->emit(ctx_, &raw) != FERRY_OK)
      throw Fatal("the host refused item '" + key + "' version '" + version + "'");
  }

  // Sends a request and returns the response, whatever its status. A response that never
  // arrived (timeout, refused, dropped) has status() == 0 and transient() == true. Throws Fatal
  // for a malformed request.
  HttpResponse http(const HttpRequest& request) const {
    std::vector<ferry_header> headers;
    headers.reserve(request.headers.size());
    for (const auto& [n, v] : request.headers) headers.push_back({n.c_str(), v.c_str()});
    ferry_http_request raw{sizeof(ferry_http_request),
                           request.method.c_str(),
                           request.url.c_str(),
                           headers.data(),
                           headers.size(),
                           request.body.data(),
                           request.body.size(),
                           request.timeout_ms,
                           request.rate_key.empty() ? nullptr : request.rate_key.c_str(),
                           request.tls_verify ? 0 : 1};
    ferry_http_response* response = nullptr;
    ferry_status s = api_->http_request(ctx_, &raw, &response);
    if (response == nullptr) throw Fatal("HTTP request to " + request.url + " was refused by the host");
    HttpResponse owned(api_, ctx_, response);
    if (s == FERRY_FATAL) throw Fatal("bad HTTP request: " + std::string(owned.error()));
    return owned;
  }

  // Defines a shared rate limiter: rules like {{10, 1000}, {50, 10000}}.
  void defineRateLimit(const std::string& key, std::span<const ferry_rate_rule> rules) const {
    api_->rate_limit_define(ctx_, key.c_str(), rules.data(), rules.size());
  }
  // Blocks for one token of `key`; throws Retry when the host is stopping.
  void acquire(const std::string& key) const {
    if (api_->rate_acquire(ctx_, key.c_str()) != FERRY_OK) throw Retry("host is stopping");
  }

  // Durable private state (kept in the journal).
  std::optional<std::string> state(const std::string& key) const {
    std::string out;
    if (api_->state_get(ctx_, key.c_str(), &assign, &out) != FERRY_OK) return std::nullopt;
    return out;
  }
  void setState(const std::string& key, std::string_view value) const {
    api_->state_set(ctx_, key.c_str(), value.data(), value.size());
  }
  void eraseState(const std::string& key) const { api_->state_set(ctx_, key.c_str(), nullptr, 0); }

  // In-memory state shared by every instance naming `scope`.
  std::optional<std::string> shared(const std::string& scope, const std::string& key) const {
    std::string out;
    if (api_->shared_get(ctx_, scope.c_str(), key.c_str(), &assign, &out) != FERRY_OK)
      return std::nullopt;
    return out;
  }
  void setShared(const std::string& scope, const std::string& key, std::string_view value) const {
    api_->shared_set(ctx_, scope.c_str(), key.c_str(), value.data(), value.size());
  }
  // RAII guard over the scope's mutex: `auto lock = host.lockShared("tradecloud:acct");`
  class SharedLock {
   public:
    SharedLock(const Host& h, std::string scope) : h_(h), scope_(std::move(scope)) {
      h_.api_->shared_lock(h_.ctx_, scope_.c_str());
    }
    ~SharedLock() { h_.api_->shared_unlock(h_.ctx_, scope_.c_str()); }
    SharedLock(const SharedLock&) = delete;
    SharedLock& operator=(const SharedLock&) = delete;

   private:
    const Host& h_;
    std::string scope_;
  };
  SharedLock lockShared(const std::string& scope) const { return SharedLock(*this, scope); }

  void count(const std::string& name, double delta = 1) const {
    api_->counter_add(ctx_, name.c_str(), delta);
  }
  void gauge(const std::string& name, double value) const {
    api_->gauge_set(ctx_, name.c_str(), value);
  }
  bool stopping() const { return api_->stopping(ctx_) != 0; }

  const ferry_host_api* api() const { return api_; }
  ferry_host_ctx* ctx() const { return ctx_; }

 private:
  static void assign(void* user, const char* data, size_t len) {
    static_cast<std::string*>(user)->assign(data, len);
  }
  const ferry_host_api* api_;
  ferry_host_ctx* ctx_;
};

// ------------------------------------------------------------------------------------------------
// Plugin base classes
// ------------------------------------------------------------------------------------------------

struct FetchRequest {
  std::string since;  // UTC "YYYY-MM-DDThh:mm:ss.sssZ"
  int64_t since_ms;
  uint32_t offset;
  uint32_t limit;
};

// A source: translate one FetchRequest into the remote's API and emit the page's items through
// host().emit(), in the remote's order. Return the number of items the remote returned (it
// differs from the number emitted when items are filtered). Throw Retry/Fatal/AuthError on
// failure: nothing of the page is kept.
class Source {
 public:
  explicit Source(Host host) : host_(host) {}
  virtual ~Source() = default;
  virtual uint32_t fetch(const FetchRequest& request) = 0;
  // Called after every routed sink has the event. Override to act on it (e.g. confirm an order).
  virtual void delivered(const Event& event) { (void)event; }
  // Whether this instance, as configured, needs delivered(). Asked once after construction;
  // override to answer false when the hook has nothing to do (it saves the host a re-read of
  // every event). Only consulted for classes that override delivered().
  virtual bool wantsDelivered() const { return true; }
  // A cheap connectivity test for `ferry check --connect`; throw to report a problem.
  virtual void check() {}
  const Host& host() const { return host_; }

 private:
  Host host_;
};

// The answer of Sink::write.
struct WriteOutcome {
  ferry_status status = FERRY_OK;
  size_t done = 0;  // RETRY/FATAL: events [0, done) are durable
  std::string message;
  int64_t retry_after_ms = -1;

  static WriteOutcome ok() { return {}; }
  // Events [0, done) are durable; the rest should be written again later.
  static WriteOutcome retry(size_t done, std::string message, int64_t retry_after_ms = -1) {
    return {FERRY_RETRY, done, std::move(message), retry_after_ms};
  }
  // Events [0, index) are durable; event `index` can never be written.
  static WriteOutcome fatal(size_t index, std::string message) {
    return {FERRY_FATAL, index, std::move(message), -1};
  }
  // The target refused our credentials: the sink is stopped; events [0, done) are durable.
  static WriteOutcome auth(std::string message, size_t done = 0) {
    return {FERRY_AUTH, done, std::move(message), -1};
  }
  // The sink cannot go on until an operator acts (see ferry::Stop); events [0, done) are durable.
  static WriteOutcome stop(std::string message, size_t done = 0) {
    return {FERRY_STOP, done, std::move(message), -1};
  }
};

// A sink: make the batch durable at the target, in order, and say how far it got.
class Sink {
 public:
  explicit Sink(Host host) : host_(host) {}
  virtual ~Sink() = default;
  virtual WriteOutcome write(std::span<const ferry_event> batch) = 0;
  virtual void check() {}
  const Host& host() const { return host_; }

 private:
  Host host_;
};

// ------------------------------------------------------------------------------------------------
// Glue: what FERRY_*_PLUGIN expands to
// ------------------------------------------------------------------------------------------------

namespace detail {

// The instance as the host holds it: the C++ object plus the handles to report errors.
template <class T>
struct Instance {
  const ferry_host_api* api;
  ferry_host_ctx* ctx;
  T* object;
};

inline ferry_status report(const ferry_host_api* api, ferry_host_ctx* ctx, ferry_status fallback) {
  try {
    throw;
  } catch (const Retry& e) {
    api->set_error(ctx, e.what());
    if (e.retryAfterMs() >= 0) api->set_retry_after(ctx, e.retryAfterMs());
    return FERRY_RETRY;
  } catch (const Error& e) {
    api->set_error(ctx, e.what());
    return e.status();
  } catch (const std::exception& e) {
    api->set_error(ctx, e.what());
    return fallback;
  } catch (...) {
    api->set_error(ctx, "unknown exception");
    return fallback;
  }
}

template <class T>
ferry_status create(const ferry_host_api* api, ferry_host_ctx* ctx, const ferry_option_value* v,
                    size_t n, void** out) {
  try {
    auto* inst = new Instance<T>{api, ctx, nullptr};
    try {
      inst->object = new T(Host(api, ctx), Options(v, n));
    } catch (...) {
      delete inst;
      throw;
    }
    *out = inst;
    return FERRY_OK;
  } catch (...) {
    return report(api, ctx, FERRY_FATAL);
  }
}

template <class T>
void destroy(void* p) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    delete inst->object;
  } catch (...) {
  }
  delete inst;
}

template <class T>
ferry_status fetch(void* p, const ferry_fetch_request* req, ferry_fetch_result* result) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    result->received = inst->object->fetch(
        FetchRequest{req->since, req->since_ms, req->offset, req->limit});
    return FERRY_OK;
  } catch (...) {
    return report(inst->api, inst->ctx, FERRY_RETRY);
  }
}

template <class T>
ferry_status delivered(void* p, const ferry_event* event) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    inst->object->delivered(Event(*event));
    return FERRY_OK;
  } catch (...) {
    return report(inst->api, inst->ctx, FERRY_RETRY);
  }
}

template <class T>
int wantsDelivered(void* p) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    return inst->object->wantsDelivered() ? 1 : 0;
  } catch (...) {
    return 1;
  }
}

template <class T>
ferry_status check(void* p) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    inst->object->check();
    return FERRY_OK;
  } catch (...) {
    return report(inst->api, inst->ctx, FERRY_FATAL);
  }
}

template <class T>
ferry_status write(void* p, const ferry_event* events, size_t count, ferry_write_result* result) {
  auto* inst = static_cast<Instance<T>*>(p);
  try {
    WriteOutcome o = inst->object->write(std::span<const ferry_event>(events, count));
    result->done = o.done;
    if (o.status != FERRY_OK) inst->api->set_error(inst->ctx, o.message.c_str());
    if (o.retry_after_ms >= 0) inst->api->set_retry_after(inst->ctx, o.retry_after_ms);
    return o.status;
  } catch (...) {
    result->done = 0;
    return report(inst->api, inst->ctx, FERRY_RETRY);
  }
}

// A source overriding delivered() gets the optional hook; one that does not leaves it NULL so
// that the host does not track deliveries for it.
template <class T>
constexpr bool overridesDelivered() {
  return !std::is_same_v<decltype(&T::delivered), decltype(&Source::delivered)>;
}

template <class T>
const ferry_plugin_descriptor* sourceDescriptor(const char* name, const char* version,
                                                const char* description,
                                                const ferry_option_def* options, size_t n) {
  static const ferry_source_api api{sizeof(ferry_source_api), &fetch<T>,
                                    overridesDelivered<T>() ? &delivered<T> : nullptr, &check<T>,
                                    &wantsDelivered<T>};
  static const ferry_plugin_descriptor d{FERRY_ABI_VERSION, sizeof(ferry_plugin_descriptor),
                                         FERRY_KIND_SOURCE, name, version, description, options, n,
                                         &create<T>, &destroy<T>, &api, nullptr};
  return &d;
}

template <class T>
const ferry_plugin_descriptor* sinkDescriptor(const char* name, const char* version,
                                              const char* description,
                                              const ferry_option_def* options, size_t n) {
  static const ferry_sink_api api{sizeof(ferry_sink_api), &write<T>, &check<T>};
  static const ferry_plugin_descriptor d{FERRY_ABI_VERSION, sizeof(ferry_plugin_descriptor),
                                         FERRY_KIND_SINK, name, version, description, options, n,
                                         &create<T>, &destroy<T>, nullptr, &api};
  return &d;
}

}  // namespace detail
}  // namespace ferry

// Exports the entry symbol of a source plugin. `Class` derives from ferry::Source and has a
// constructor (ferry::Host, const ferry::Options&); `Options` is a static array of
// ferry_option_def (see ferry::Option). Use once per library.
#define FERRY_SOURCE_PLUGIN(Class, Name, Version, Description, Options)                     \
  extern "C" FERRY_EXPORT const ferry_plugin_descriptor* FERRY_ENTRY_SYMBOL(void) {          \
    return ::ferry::detail::sourceDescriptor<Class>(Name, Version, Description, Options,     \
                                                    sizeof(Options) / sizeof(Options[0]));   \
  }

// Exports the entry symbol of a sink plugin; `Class` derives from ferry::Sink.
#define FERRY_SINK_PLUGIN(Class, Name, Version, Description, Options)                       \
  extern "C" FERRY_EXPORT const ferry_plugin_descriptor* FERRY_ENTRY_SYMBOL(void) {          \
    return ::ferry::detail::sinkDescriptor<Class>(Name, Version, Description, Options,       \
                                                  sizeof(Options) / sizeof(Options[0]));     \
  }
