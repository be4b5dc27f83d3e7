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

// A host string as a view, and a view lent to the host.
inline std::string_view view(ferry_host_str s) {
  return s.len == 0 ? std::string_view() : std::string_view(s.ptr, s.len);
}
inline ferry_plugin_str lend(std::string_view s) { return ferry_plugin_str{s.data(), s.size()}; }

// ------------------------------------------------------------------------------------------------
// Errors. Throw them from any plugin method; the wrapper maps them to the status of the call:
//
//                create()   fetch()   delivered()  write()            check()
//   Retry        REFUSED    RETRY     RETRY        RETRY              UNREACHABLE
//   Fatal        REFUSED    STOP      STOP         REFUSED (event 0)  FAILED
//   AuthError    REFUSED    AUTH      AUTH         AUTH               AUTH
//   Stop         REFUSED    STOP      STOP         STOP               FAILED
//   other        REFUSED    RETRY     RETRY        RETRY              FAILED
// ------------------------------------------------------------------------------------------------

// Base of the SDK's exceptions.
class Error : public std::runtime_error {
 public:
  enum class Kind { Retry, Fatal, Auth, Stop };
  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

// Transient failure: the host backs off and tries again. `retry_after_ms` >= 0 asks the host to
// wait at least that long (e.g. a Retry-After header).
class Retry : public Error {
 public:
  explicit Retry(const std::string& message, int64_t retry_after_ms = -1)
      : Error(Kind::Retry, message), retry_after_ms_(retry_after_ms) {}
  int64_t retryAfterMs() const noexcept { return retry_after_ms_; }

 private:
  int64_t retry_after_ms_;
};

// Permanent failure: retrying cannot help (a bad option, a rejected record).
class Fatal : public Error {
 public:
  explicit Fatal(const std::string& message) : Error(Kind::Fatal, message) {}
};

// Credentials refused: the host stops the instance with this message as its status.
class AuthError : public Error {
 public:
  explicit AuthError(const std::string& message) : Error(Kind::Auth, message) {}
};

// The instance cannot go on until an operator acts (an endpoint retired, a certificate not
// trusted): the host stops it with this message as its status.
class Stop : public Error {
 public:
  explicit Stop(const std::string& message) : Error(Kind::Stop, message) {}
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
      : def{sizeof(ferry_option_def), type, name, nullptr, "", nullptr, 0} {}
  constexpr Option defaultsTo(const char* value) const {
    Option o = *this;
    o.def.default_value = value;
    return o;
  }
  constexpr Option required() const {
    Option o = *this;
    o.def.flags |= FERRY_OPTION_REQUIRED;
    return o;
  }
  constexpr Option secret() const {
    Option o = *this;
    o.def.flags |= FERRY_OPTION_SECRET;
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
// unset option without default (ferry::Fatal).
class Options {
 public:
  Options() = default;
  Options(const ferry_option_value* const* values, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const ferry_option_value& v = *values[i];
      entries_.emplace_back(std::string(view(v.name)),
                            v.is_set ? std::optional<std::string>(view(v.value)) : std::nullopt);
    }
  }
  // For tests: name → value.
  explicit Options(std::vector<std::pair<std::string, std::optional<std::string>>> entries)
      : entries_(std::move(entries)) {}

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

// A read-only view of a journalled event (lent for the duration of the call).
class Event {
 public:
  explicit Event(const ferry_event& e) : e_(&e) {}
  int64_t sequence() const { return e_->sequence; }
  int64_t fetchedAtMs() const { return e_->fetched_at_ms; }
  std::string_view source() const { return view(e_->source); }
  std::string_view entity() const { return view(e_->entity); }
  std::string_view key() const { return view(e_->key); }
  std::string_view version() const { return view(e_->version); }
  std::string_view previous() const { return view(e_->previous); }  // "" for a key never seen
  std::string_view body() const { return view(e_->body); }
  // The source's metadata object (see ferry_item.meta), "" when it attached none.
  std::string_view meta() const { return view(e_->meta); }
  bool echo() const { return (e_->flags & FERRY_EVENT_ECHO) != 0; }
  std::string_view idempotencyKey() const { return view(e_->idempotency_key); }
  const ferry_event& raw() const { return *e_; }

 private:
  const ferry_event* e_;
};

// The events of one write(), in journal order: a view over the host's array of pointers.
class Batch {
 public:
  Batch(const ferry_event* const* events, size_t count) : events_(events), count_(count) {}
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  Event operator[](size_t i) const { return Event(*events_[i]); }
  Event front() const { return (*this)[0]; }
  Event back() const { return (*this)[count_ - 1]; }
  // Events [first, first + count) (clamped to the batch).
  Batch slice(size_t first, size_t count = SIZE_MAX) const {
    first = first < count_ ? first : count_;
    return Batch(events_ + first, count < count_ - first ? count : count_ - first);
  }

  class iterator {
   public:
    using value_type = Event;
    using difference_type = std::ptrdiff_t;
    explicit iterator(const ferry_event* const* p = nullptr) : p_(p) {}
    Event operator*() const { return Event(**p_); }
    iterator& operator++() {
      ++p_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++p_;
      return old;
    }
    bool operator==(const iterator& o) const { return p_ == o.p_; }

   private:
    const ferry_event* const* p_;
  };
  iterator begin() const { return iterator(events_); }
  iterator end() const { return iterator(events_ + count_); }

 private:
  const ferry_event* const* events_;
  size_t count_;
};

// What a source emits for one item of a page. The views must stay valid during emit() only.
struct Item {
  std::string_view entity;
  std::string_view key;
  std::string_view version;  // exactly as received
  std::string_view body;     // exactly as received
  bool echo = false;
  std::string_view meta;     // "" or a JSON object (see ferry_item.meta)
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
  HttpResponse(const ferry_host_api* api, ferry_host_ctx* ctx, ferry_host_http_response* r)
      : api_(api), ctx_(ctx), r_(r) {}
  HttpResponse(HttpResponse&& o) noexcept
      : api_(o.api_), ctx_(o.ctx_), r_(std::exchange(o.r_, nullptr)) {}
  HttpResponse& operator=(HttpResponse&&) = delete;
  HttpResponse(const HttpResponse&) = delete;
  ~HttpResponse() {
    if (r_ != nullptr) api_->http_release(ctx_, r_);
  }

  int status() const { return r_->status; }  // 0 when no response arrived
  bool ok() const { return r_->status >= 200 && r_->status < 300; }
  bool transient() const { return (r_->flags & FERRY_HTTP_TRANSIENT) != 0; }
  int64_t retryAfterMs() const { return r_->retry_after_ms; }
  std::string_view body() const { return view(r_->body); }
  std::string_view error() const { return view(r_->error); }
  // The first header of that name (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const {
    for (size_t i = 0; i < r_->header_count; ++i) {
      std::string_view n = view(r_->headers[i].name);
      if (n.size() == name.size() && equalsIgnoreCase(n, name)) return view(r_->headers[i].value);
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
  ferry_host_http_response* r_;
};

// ------------------------------------------------------------------------------------------------
// The host, as a plugin sees it
// ------------------------------------------------------------------------------------------------

class Host {
 public:
  Host(const ferry_host_api* api, ferry_host_ctx* ctx) : api_(api), ctx_(ctx) {}

  void debug(std::string_view m) const { api_->log(ctx_, FERRY_LOG_DEBUG, lend(m)); }
  void info(std::string_view m) const { api_->log(ctx_, FERRY_LOG_INFO, lend(m)); }
  void warning(std::string_view m) const { api_->log(ctx_, FERRY_LOG_WARNING, lend(m)); }
  void error(std::string_view m) const { api_->log(ctx_, FERRY_LOG_ERROR, lend(m)); }

  // Sources, inside fetch(): hands one item to the host (nothing is copied on the way). An item
  // the host cannot take (a key with a control character, a version that is no instant) is
  // handed over as unreadable, as setAside() does, and the page goes on. Throws Retry when an
  // older host refuses it (the page is fetched again).
  void emit(const Item& item) const {
    const ferry_item raw{sizeof(ferry_item),  item.echo ? FERRY_ITEM_ECHO : 0u,
                         lend(item.entity),   lend(item.key),
                         lend(item.version),  lend(item.body),
                         lend(item.meta)};
    const ferry_emit_status status = api_->emit(ctx_, &raw);
    if (status != FERRY_EMIT_OK && status != FERRY_EMIT_SET_ASIDE)
      throw Retry("the host refused an item (" + std::string(item.entity) + ")");
  }

  // Sources, inside fetch(): hands over an item of the page that cannot be read (not an object,
  // an id of the wrong type, no change time) with its raw text and what is wrong with it; skip
  // the item and go on with the page. The host fetches the page a few times more before it sets
  // the item aside as a source dead letter (ferry_host_api.set_aside). Throws Retry with
  // `reason` on a host older than ABI 2.1, which cannot set items aside.
  void setAside(std::string_view raw, std::string_view reason) const {
    if (!FERRY_HAS_FIELD(ferry_host_api, api_, set_aside) ||
        api_->set_aside(ctx_, lend(raw), lend(reason)) != FERRY_EMIT_OK)
      throw Retry(std::string(reason));
  }

  // Sends a request and returns the response, whatever its status. A response that never
  // arrived has status() == 0, error() says why, and transient() whether trying again may help
  // (a timeout, a refused or dropped connection: yes; an untrusted certificate: no). Throws
  // Fatal for a malformed request.
  HttpResponse http(const HttpRequest& request) const {
    std::vector<ferry_plugin_header> headers;
    headers.reserve(request.headers.size());
    for (const auto& [n, v] : request.headers) headers.push_back({lend(n), lend(v)});
    const ferry_http_request raw{sizeof(ferry_http_request),
                                 request.tls_verify ? 0u : FERRY_HTTP_SKIP_TLS_VERIFY,
                                 lend(request.method),
                                 lend(request.url),
                                 headers.data(),
                                 headers.size(),
                                 lend(request.body),
                                 request.timeout_ms,
                                 lend(request.rate_key)};
    ferry_host_http_response* response = nullptr;
    const ferry_http_status s = api_->http_request(ctx_, &raw, &response);
    if (response == nullptr) throw Retry("the host could not take the request to " + request.url);
    HttpResponse owned(api_, ctx_, response);
    if (s == FERRY_HTTP_BAD_REQUEST) throw Fatal("bad HTTP request: " + std::string(owned.error()));
    return owned;
  }

  // Defines a shared rate limiter: rules like {{10, 1000}, {50, 10000}}.
  void defineRateLimit(std::string_view key, std::span<const ferry_rate_rule> rules) const {
    api_->rate_limit_define(ctx_, lend(key), rules.data(), rules.size());
  }
  // Blocks for one token of `key`; throws Retry when the host is stopping.
  void acquire(std::string_view key) const {
    if (api_->rate_acquire(ctx_, lend(key)) != FERRY_ACQUIRE_OK) throw Retry("host is stopping");
  }

  // Durable private state (kept in the journal). Throws Retry when the journal fails.
  std::optional<std::string> state(std::string_view key) const {
    std::string out;
    return answer(api_->state_get(ctx_, lend(key), &assign, &out), "read", key, out);
  }
  void setState(std::string_view key, std::string_view value) const {
    check(api_->state_set(ctx_, lend(key), lend(value)), "write", key);
  }
  void eraseState(std::string_view key) const {
    check(api_->state_erase(ctx_, lend(key)), "erase", key);
  }

  // In-memory state shared by every instance naming `scope`.
  std::optional<std::string> shared(std::string_view scope, std::string_view key) const {
    std::string out;
    return answer(api_->shared_get(ctx_, lend(scope), lend(key), &assign, &out), "read", key, out);
  }
  void setShared(std::string_view scope, std::string_view key, std::string_view value) const {
    check(api_->shared_set(ctx_, lend(scope), lend(key), lend(value)), "write", key);
  }
  // RAII guard over the scope's mutex: `auto lock = host.lockShared("tradecloud:acct");`
  class SharedLock {
   public:
    SharedLock(const Host& h, std::string scope) : h_(h), scope_(std::move(scope)) {
      h_.api_->shared_lock(h_.ctx_, lend(scope_));
    }
    ~SharedLock() { h_.api_->shared_unlock(h_.ctx_, lend(scope_)); }
    SharedLock(const SharedLock&) = delete;
    SharedLock& operator=(const SharedLock&) = delete;

   private:
    const Host& h_;
    std::string scope_;
  };
  SharedLock lockShared(std::string scope) const { return SharedLock(*this, std::move(scope)); }

  void count(std::string_view name, double delta = 1) const {
    api_->counter_add(ctx_, lend(name), delta);
  }
  void gauge(std::string_view name, double value) const {
    api_->gauge_set(ctx_, lend(name), value);
  }
  bool stopping() const { return api_->stopping(ctx_) != 0; }
  // The identity of the journal the events come from (see ferry_host_api.journal_id): tie
  // positions and file names kept by sequence to it.
  std::string_view journalId() const { return view(api_->journal_id(ctx_)); }

  const ferry_host_api* api() const { return api_; }
  ferry_host_ctx* ctx() const { return ctx_; }

 private:
  static void assign(void* user, ferry_host_str value) {
    static_cast<std::string*>(user)->assign(view(value));
  }
  static std::optional<std::string> answer(ferry_state_status s, const char* what,
                                           std::string_view key, std::string& out) {
    if (s == FERRY_STATE_ABSENT) return std::nullopt;
    check(s, what, key);
    return std::move(out);
  }
  static void check(ferry_state_status s, const char* what, std::string_view key) {
    if (s != FERRY_STATE_OK)
      throw Retry(std::string("could not ") + what + " the state '" + std::string(key) +
                  "' (the host logged why)");
  }
  const ferry_host_api* api_;
  ferry_host_ctx* ctx_;
};

// ------------------------------------------------------------------------------------------------
// Plugin base classes
// ------------------------------------------------------------------------------------------------

struct FetchRequest {
  std::string_view since;  // UTC "YYYY-MM-DDThh:mm:ss.sssZ"
  int64_t since_ms;
  uint32_t offset;
  uint32_t limit;
};

// A source: translate one FetchRequest into the remote's API and emit the page's items through
// host().emit(), in the remote's order. Return the number of items the remote returned (it
// differs from the number emitted when items are filtered). Throw Retry/Fatal/AuthError/Stop on
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
  ferry_write_status status = FERRY_WRITE_OK;
  size_t done = 0;  // any status but OK: events [0, done) are durable
  std::string message;
  int64_t retry_after_ms = -1;

  static WriteOutcome ok() { return {}; }
  // Events [0, done) are durable; the rest should be written again later.
  static WriteOutcome retry(size_t done, std::string message, int64_t retry_after_ms = -1) {
    return {FERRY_WRITE_RETRY, done, std::move(message), retry_after_ms};
  }
  // Events [0, index) are durable; event `index` can never be written (it goes to the dead
  // letters with `message`).
  static WriteOutcome refuse(size_t index, std::string message) {
    return {FERRY_WRITE_REFUSED, index, std::move(message), -1};
  }
  // The target refused our credentials: the sink is stopped; events [0, done) are durable.
  static WriteOutcome auth(std::string message, size_t done = 0) {
    return {FERRY_WRITE_AUTH, done, std::move(message), -1};
  }
  // The sink cannot go on until an operator acts (see ferry::Stop); events [0, done) are durable.
  static WriteOutcome stop(std::string message, size_t done = 0) {
    return {FERRY_WRITE_STOP, done, std::move(message), -1};
  }
};

// A sink: make the batch durable at the target, in order, and say how far it got.
class Sink {
 public:
  explicit Sink(Host host) : host_(host) {}
  virtual ~Sink() = default;
  virtual WriteOutcome write(const Batch& batch) = 0;
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

template <class T>
Instance<T>* self(ferry_plugin_instance* p) {
  return reinterpret_cast<Instance<T>*>(p);
}

// The kind of the exception being handled, after its message went to the host.
inline Error::Kind report(const ferry_host_api* api, ferry_host_ctx* ctx, Error::Kind fallback) {
  try {
    throw;
  } catch (const Retry& e) {
    api->set_error(ctx, lend(e.what()));
    if (e.retryAfterMs() >= 0) api->set_retry_after(ctx, e.retryAfterMs());
    return Error::Kind::Retry;
  } catch (const Error& e) {
    api->set_error(ctx, lend(e.what()));
    return e.kind();
  } catch (const std::exception& e) {
    api->set_error(ctx, lend(e.what()));
    return fallback;
  } catch (...) {
    api->set_error(ctx, lend("unknown exception"));
    return fallback;
  }
}

template <class T>
ferry_create_status create(const ferry_host_api* api, ferry_host_ctx* ctx,
                           const ferry_option_value* const* v, size_t n,
                           ferry_plugin_instance** out) {
  try {
    auto* inst = new Instance<T>{api, ctx, nullptr};
    try {
      inst->object = new T(Host(api, ctx), Options(v, n));
    } catch (...) {
      delete inst;
      throw;
    }
    *out = reinterpret_cast<ferry_plugin_instance*>(inst);
    return FERRY_CREATE_OK;
  } catch (...) {
    report(api, ctx, Error::Kind::Fatal);
    return FERRY_CREATE_REFUSED;
  }
}

template <class T>
void destroy(ferry_plugin_instance* p) {
  auto* inst = self<T>(p);
  try {
    delete inst->object;
  } catch (...) {
  }
  delete inst;
}

template <class T>
ferry_fetch_status fetch(ferry_plugin_instance* p, const ferry_fetch_request* req,
                         ferry_fetch_result* result) {
  auto* inst = self<T>(p);
  try {
    result->received =
        inst->object->fetch(FetchRequest{view(req->since), req->since_ms, req->offset, req->limit});
    return FERRY_FETCH_OK;
  } catch (...) {
    switch (report(inst->api, inst->ctx, Error::Kind::Retry)) {
      case Error::Kind::Retry: return FERRY_FETCH_RETRY;
      case Error::Kind::Auth: return FERRY_FETCH_AUTH;
      default: return FERRY_FETCH_STOP;
    }
  }
}

template <class T>
ferry_hook_status delivered(ferry_plugin_instance* p, const ferry_event* event) {
  auto* inst = self<T>(p);
  try {
    inst->object->delivered(Event(*event));
    return FERRY_HOOK_OK;
  } catch (...) {
    switch (report(inst->api, inst->ctx, Error::Kind::Retry)) {
      case Error::Kind::Retry: return FERRY_HOOK_RETRY;
      case Error::Kind::Auth: return FERRY_HOOK_AUTH;
      default: return FERRY_HOOK_STOP;
    }
  }
}

template <class T>
int wantsDelivered(ferry_plugin_instance* p) {
  try {
    return self<T>(p)->object->wantsDelivered() ? 1 : 0;
  } catch (...) {
    return 1;
  }
}

template <class T>
ferry_check_status check(ferry_plugin_instance* p) {
  auto* inst = self<T>(p);
  try {
    inst->object->check();
    return FERRY_CHECK_OK;
  } catch (...) {
    switch (report(inst->api, inst->ctx, Error::Kind::Fatal)) {
      case Error::Kind::Retry: return FERRY_CHECK_UNREACHABLE;
      case Error::Kind::Auth: return FERRY_CHECK_AUTH;
      default: return FERRY_CHECK_FAILED;
    }
  }
}

template <class T>
ferry_write_status write(ferry_plugin_instance* p, const ferry_event* const* events, size_t count,
                         ferry_write_result* result) {
  auto* inst = self<T>(p);
  try {
    WriteOutcome o = inst->object->write(Batch(events, count));
    result->done = o.done;
    if (o.status != FERRY_WRITE_OK) inst->api->set_error(inst->ctx, lend(o.message));
    if (o.retry_after_ms >= 0) inst->api->set_retry_after(inst->ctx, o.retry_after_ms);
    return o.status;
  } catch (...) {
    result->done = 0;
    switch (report(inst->api, inst->ctx, Error::Kind::Retry)) {
      case Error::Kind::Retry: return FERRY_WRITE_RETRY;
      case Error::Kind::Fatal: return FERRY_WRITE_REFUSED;
      case Error::Kind::Auth: return FERRY_WRITE_AUTH;
      default: return FERRY_WRITE_STOP;
    }
  }
}

// A source overriding delivered() gets the optional hook; one that does not leaves it NULL so
// that the host does not track deliveries for it.
template <class T>
constexpr bool overridesDelivered() {
  return !std::is_same_v<decltype(&T::delivered), decltype(&Source::delivered)>;
}

// The minor a plugin declares: the header's, unless the plugin defines FERRY_PLUGIN_ABI_MINOR
// lower to run on older hosts (it then checks FERRY_HAS_FIELD before using anything newer).
#ifndef FERRY_PLUGIN_ABI_MINOR
#define FERRY_PLUGIN_ABI_MINOR FERRY_ABI_MINOR
#endif

template <class T>
const ferry_plugin_descriptor* sourceDescriptor(const char* name, const char* version,
                                                const char* description,
                                                const ferry_option_def* options, size_t n) {
  static const ferry_source_api api{sizeof(ferry_source_api), &fetch<T>,
                                    overridesDelivered<T>() ? &delivered<T> : nullptr,
                                    &wantsDelivered<T>, &check<T>};
  static const ferry_plugin_descriptor d{
      FERRY_ABI_MAJOR, FERRY_PLUGIN_ABI_MINOR, sizeof(ferry_plugin_descriptor),
      FERRY_KIND_SOURCE, name, version, description, options, n, &create<T>, &destroy<T>, &api,
      nullptr};
  return &d;
}

template <class T>
const ferry_plugin_descriptor* sinkDescriptor(const char* name, const char* version,
                                              const char* description,
                                              const ferry_option_def* options, size_t n) {
  static const ferry_sink_api api{sizeof(ferry_sink_api), &write<T>, &check<T>};
  static const ferry_plugin_descriptor d{
      FERRY_ABI_MAJOR, FERRY_PLUGIN_ABI_MINOR, sizeof(ferry_plugin_descriptor),
      FERRY_KIND_SINK, name, version, description, options, n, &create<T>, &destroy<T>, nullptr,
      &api};
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
