// Ferry's fake host: unit-test a plugin in-process, without running ferry (header-only, target
// Ferry::testing). It builds a ferry_host_api table and one context per instance, and plays the
// host's part of the ABI:
//
//   ferry::testing::FakeHost host;
//   auto plugin = ferry::testing::Plugin::load("build/sink_json_lines.so");  // or Plugin(&entry)
//   auto sink = host.create(plugin, {{"path", "/tmp/x/out.jsonl"}});
//   ferry::WriteOutcome o = sink.write({{.key = "1", .version = "2026-01-01T00:00:00Z",
//                                        .body = R"({"id":"1"})"}});
//
// - Options are resolved like the host does: defaults applied, `required`, `choices` and the
//   types checked, bool/duration/instant/list values normalised (durations to milliseconds,
//   "now" to the current instant). An undeclared option is an error (the real host also accepts
//   its own settings such as `interval`; declare them to receive them).
// - HTTP goes to a handler the test sets with onHttp() (request -> CannedResponse); every request
//   is recorded (requests()). Without a handler no response arrives (status 0, transient).
// - Durable state lives per instance name in the FakeHost and outlives the instance: create the
//   instance again under the same name to see what a restart sees. Shared state lives per scope.
// - Log lines, counters and gauges are captured; rate limits are recorded but never wait.
// - Calls run on the test's thread, one at a time; the host API is thread-safe (a plugin may call
//   it from threads of its own).
#pragma once

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <dlfcn.h>
#endif
#include <ferry/abi.h>
#include <ferry/instant.hpp>
#include <ferry/plugin.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The first header of that name (case-insensitive), or nullopt.
inline std::optional<std::string> findHeader(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      return v;
  }
  return std::nullopt;
}

// A request as the plugin sent it.
struct HttpCall {
  std::string instance;  // the name of the instance that sent it
  std::string method;
  std::string url;
  Headers headers;
  std::string body;
  int64_t timeout_ms = 0;
  std::string rate_key;  // empty: none
  bool tls_verify = true;
  std::optional<std::string> header(std::string_view name) const {
    return findHeader(headers, name);
  }
};

// The answer a test's handler gives. `status` 0 means that no response arrived (`error` says
// why). `transient` and `retry_after_ms` are derived as the host does: 0, 408, 425, 429 and 5xx
// are transient; Retry-After in seconds is honoured (an HTTP date is not: -1).
struct CannedResponse {
  int status = 200;
  Headers headers;
  std::string body;
  std::string error;

  static CannedResponse json(int status, std::string body) {
    return {status, {{"Content-Type", "application/json"}}, std::move(body), {}};
  }
  static CannedResponse noResponse(std::string error) { return {0, {}, {}, std::move(error)}; }
};

struct LogLine {
  std::string instance;
  ferry_log_level level;
  std::string message;
};

// An item a source emitted, copied.
struct EmittedItem {
  std::string entity;
  std::string key;
  std::string version;
  std::string body;
  bool echo = false;
  std::string meta;
};

// An item a source handed over as unreadable (set_aside(), or an emit the host refused), copied.
// The fake host keeps each one; the real host first fetches the page `set_aside_after` times.
struct SetAsideRecord {
  std::string raw;  // the item's text (for a refused emit: its body)
  std::string reason;
  std::string key;  // a refused emit's key, "" for set_aside()
};

// What fetch() answered. On a non-OK status the host would keep none of `items`.
struct FetchOutcome {
  ferry_fetch_status status = FERRY_FETCH_OK;
  std::string message;
  int64_t retry_after_ms = -1;
  // What the plugin reported (the number emitted and set aside when it left it unset).
  uint32_t received = 0;
  std::vector<EmittedItem> items;
  std::vector<SetAsideRecord> set_aside;
};

// What check() (a ferry_check_status) and delivered() (a ferry_hook_status) answered; every
// kind of call answers 0 for OK.
struct CallOutcome {
  int status = 0;
  std::string message;
  int64_t retry_after_ms = -1;
  bool ok() const { return status == 0; }
};

// A journalled event as a test describes it; the fake host fills the rest like the journal does.
// Written with designated initializers: {.key = "1", .version = "…Z", .body = "{…}"}.
struct TestEvent {
  std::string key{};
  std::string version{};
  std::string body{};
  std::string previous{};         // "" for a key never seen before
  std::string entity = "order";
  std::string source = "source";  // the source instance's name
  bool echo = false;
  int64_t sequence = 0;           // 0: the next number (strictly increasing per FakeHost)
  std::string idempotency_key{};  // empty: "source/entity/key/version"
  std::string meta{};             // the source's metadata object, "" for none
  int64_t fetched_at_ms = 0;
};

// The ABI view of a TestEvent (which must outlive it).
inline ferry_event rawEvent(const TestEvent& e) {
  auto lend = [](const std::string& t) { return ferry_host_str{t.data(), t.size()}; };
  return {sizeof(ferry_event), e.echo ? FERRY_EVENT_ECHO : 0u, e.sequence, e.fetched_at_ms,
          lend(e.source), lend(e.entity), lend(e.key), lend(e.version), lend(e.previous),
          lend(e.body), lend(e.meta), lend(e.idempotency_key)};
}

// A TestEvent as a sink receives it, for code that takes a ferry::Event (a mapping, a helper of
// the plugin): `ferry::testing::EventView e({.key = "1", …}); mapper.map(e.event(), …)`.
class EventView {
 public:
  explicit EventView(TestEvent e) : e_(std::move(e)) {
    if (e_.idempotency_key.empty())
      e_.idempotency_key = e_.source + "/" + e_.entity + "/" + e_.key + "/" + e_.version;
    raw_ = rawEvent(e_);
  }
  EventView(const EventView&) = delete;
  EventView& operator=(const EventView&) = delete;
  ferry::Event event() const { return ferry::Event(raw_); }

 private:
  TestEvent e_;
  ferry_event raw_;
};

// create() failed: the message the plugin gave (or the option the fake host refused).
class CreateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A plugin's descriptor: from the entry symbol of a plugin compiled into the test
// (Plugin(&ferry_plugin_entry)) or from a library loaded with dlopen (Plugin::load(path)). The
// descriptor is checked like the host checks it. Copies share the library, which is closed when
// the last copy (and every instance made from it) is gone.
class Plugin {
 public:
  explicit Plugin(ferry_entry_fn entry) : Plugin(nullptr, entry, "the linked plugin") {}

  static Plugin load(const std::string& path) {
#ifdef _WIN32
    HMODULE handle = ::LoadLibraryA(path.c_str());
    if (handle == nullptr)
      throw std::runtime_error("cannot load plugin " + path + ": Windows error " +
                               std::to_string(::GetLastError()));
    std::shared_ptr<void> owned(handle, [](void* h) { ::FreeLibrary(static_cast<HMODULE>(h)); });
    void* symbol = reinterpret_cast<void*>(::GetProcAddress(handle, FERRY_ENTRY_SYMBOL_NAME));
#else
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) throw std::runtime_error("cannot load plugin " + path + ": " + ::dlerror());
    std::shared_ptr<void> owned(handle, [](void* h) { ::dlclose(h); });
    void* symbol = ::dlsym(handle, FERRY_ENTRY_SYMBOL_NAME);
#endif
    if (symbol == nullptr)
      throw std::runtime_error("plugin " + path + " has no entry symbol " FERRY_ENTRY_SYMBOL_NAME);
    return Plugin(std::move(owned), reinterpret_cast<ferry_entry_fn>(symbol), path);
  }

  const ferry_plugin_descriptor& descriptor() const { return *descriptor_; }
  std::string_view name() const { return descriptor_->name; }

 private:
  Plugin(std::shared_ptr<void> library, ferry_entry_fn entry, const std::string& what)
      : library_(std::move(library)), descriptor_(entry()) {
    const auto* d = descriptor_;
    if (d == nullptr) throw std::runtime_error(what + ": the entry symbol returned no descriptor");
    if (d->abi_major != FERRY_ABI_MAJOR || d->abi_minor > FERRY_ABI_MINOR)
      throw std::runtime_error(what + " needs plugin ABI " + std::to_string(d->abi_major) +
                               (d->abi_major == FERRY_ABI_MAJOR ? "." + std::to_string(d->abi_minor)
                                                                : std::string()) +
                               ", these headers provide " + std::to_string(FERRY_ABI_MAJOR) + "." +
                               std::to_string(FERRY_ABI_MINOR));
    if (d->struct_size < sizeof(ferry_plugin_descriptor) || d->name == nullptr ||
        d->create == nullptr || d->destroy == nullptr ||
        (d->kind == FERRY_KIND_SOURCE) != (d->source != nullptr && d->source->fetch != nullptr) ||
        (d->kind == FERRY_KIND_SINK) != (d->sink != nullptr && d->sink->write != nullptr))
      throw std::runtime_error(what + ": malformed descriptor");
  }

  std::shared_ptr<void> library_;
  const ferry_plugin_descriptor* descriptor_;
};

class FakeHost;

namespace detail {

// What the host keeps per instance; its address is the instance's ferry_host_ctx*.
struct Context {
  FakeHost* host;
  std::string name;
  std::string error;
  int64_t retry_after_ms = -1;
  std::vector<EmittedItem>* items = nullptr;  // set during fetch()
  std::vector<SetAsideRecord>* set_aside = nullptr;
};

inline Context& context(ferry_host_ctx* ctx) { return *reinterpret_cast<Context*>(ctx); }

// A response owned by the fake host, released by http_release().
struct OwnedResponse {
  ferry_host_http_response raw{};
  CannedResponse canned;
  std::vector<ferry_host_header> headers;
};

inline std::string text(ferry_plugin_str s) {
  return s.len == 0 ? std::string() : std::string(s.ptr, s.len);
}
inline ferry_host_str lend(const std::string& s) { return {s.data(), s.size()}; }

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// A duration as the host reads it ("250ms", "20s", "5m", "1h", "2d", bare seconds) in ms.
inline std::optional<int64_t> durationMs(std::string_view text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) return std::nullopt;
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  if (unit == "ms") return n;
  if (unit.empty() || unit == "s") return n * 1000;
  if (unit == "m") return n * 60'000;
  if (unit == "h") return n * 3'600'000;
  if (unit == "d") return n * 86'400'000;
  return std::nullopt;
}

// One option's value resolved the host's way, or an error message.
inline std::string resolve(const ferry_option_def& def, const std::string& text) {
  auto bad = [&](const std::string& what) {
    return CreateError("option '" + std::string(def.name) + "' = '" +
                       ((def.flags & FERRY_OPTION_SECRET) != 0 ? "***" : text) + "': " + what);
  };
  if (def.choices != nullptr) {
    std::string_view all = def.choices;
    bool found = false;
    for (size_t start = 0; start <= all.size();) {
      size_t bar = std::min(all.find('|', start), all.size());
      if (all.substr(start, bar - start) == text) found = true;
      start = bar + 1;
    }
    if (!found) throw bad(std::string("not one of ") + def.choices);
  }
  switch (def.type) {
    case FERRY_OPT_INT: {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size()) throw bad("not an integer");
      return text;
    }
    case FERRY_OPT_BOOL: {
      std::string v = lower(text);
      if (v == "true" || v == "yes" || v == "on" || v == "1") return "true";
      if (v == "false" || v == "no" || v == "off" || v == "0") return "false";
      throw bad("not a boolean (true/false, yes/no, on/off, 1/0)");
    }
    case FERRY_OPT_DOUBLE: {
      size_t used = 0;
      try {
        (void)std::stod(text, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != text.size()) throw bad("not a number");
      return text;
    }
    case FERRY_OPT_DURATION: {
      auto ms = durationMs(text);
      if (!ms) throw bad("not a duration (250ms, 20s, 5m, 1h, 2d or seconds)");
      return std::to_string(*ms);
    }
    case FERRY_OPT_INSTANT: {
      if (text == "now") return ferry::instant::nowText();
      auto ns = ferry::instant::parseNs(text);
      if (!ns) throw bad("not an instant with a zone (2025-04-23T10:01:53.812Z) or 'now'");
      return ferry::instant::formatMs(*ns);
    }
    case FERRY_OPT_LIST: {
      std::string out;
      for (size_t start = 0; start <= text.size();) {
        size_t comma = std::min(text.find(',', start), text.size());
        std::string item = trim(std::string_view(text).substr(start, comma - start));
        if (!item.empty()) out += (out.empty() ? "" : ",") + item;
        start = comma + 1;
      }
      return out;
    }
    default:
      return text;
  }
}

}  // namespace detail

// One plugin instance, made by FakeHost::create(); destroyed (descriptor's destroy()) with it.
// Move-only. The FakeHost must outlive it.
class Instance {
 public:
  Instance(Instance&& o) noexcept
      : plugin_(std::move(o.plugin_)), ctx_(std::move(o.ctx_)), self_(std::exchange(o.self_, nullptr)) {}
  Instance& operator=(Instance&&) = delete;
  ~Instance() {
    if (self_ != nullptr) plugin_.descriptor().destroy(self_);
  }

  const std::string& name() const { return ctx_->name; }
  ferry_plugin_instance* raw() const { return self_; }

  // Sources: fetches one page ("items at or after `since`, skipping `offset`, at most `limit`")
  // and collects what the plugin emits.
  FetchOutcome fetch(const std::string& since = "1970-01-01T00:00:00.000Z", uint32_t offset = 0,
                     uint32_t limit = 100) {
    const auto* api = source();
    auto ns = ferry::instant::parseNs(since);
    if (!ns) throw std::invalid_argument("fetch(): since is not an instant: " + since);
    std::string since_text = ferry::instant::formatMs(*ns);
    ferry_fetch_request request{sizeof(ferry_fetch_request), offset, limit,
                                ferry::instant::detail::floorDiv(*ns, 1'000'000),
                                detail::lend(since_text)};
    ferry_fetch_result result{sizeof(ferry_fetch_result), UINT32_MAX};
    FetchOutcome out;
    begin();
    ctx_->items = &out.items;
    ctx_->set_aside = &out.set_aside;
    out.status = api->fetch(self_, &request, &result);
    ctx_->items = nullptr;
    ctx_->set_aside = nullptr;
    out.received = result.received == UINT32_MAX
                       ? static_cast<uint32_t>(out.items.size() + out.set_aside.size())
                       : result.received;
    finish(out.status, out.message, out.retry_after_ms);
    return out;
  }

  // Sources: whether the plugin has a delivered() hook and, as configured, wants it.
  bool wantsDelivered() const {
    const auto* api = source();
    if (api->delivered == nullptr) return false;
    return api->wants_delivered == nullptr || api->wants_delivered(self_) != 0;
  }

  // Sources: the delivered() hook for one event (an error when the plugin has none).
  CallOutcome delivered(const TestEvent& event) {
    const auto* api = source();
    if (api->delivered == nullptr) throw std::logic_error(name() + " has no delivered() hook");
    auto events = journal({event});
    auto raw = view(events);
    begin();
    CallOutcome out;
    out.status = api->delivered(self_, &raw[0]);
    finish(out.status, out.message, out.retry_after_ms);
    return out;
  }

  // Sinks: writes a batch. On OK `done` is the batch's size.
  ferry::WriteOutcome write(const std::vector<TestEvent>& batch) {
    const auto* d = &plugin_.descriptor();
    if (d->sink == nullptr) throw std::logic_error(name() + " is not a sink");
    auto events = journal(batch);
    auto raw = view(events);
    std::vector<const ferry_event*> pointers;
    for (const auto& e : raw) pointers.push_back(&e);
    ferry_write_result result{sizeof(ferry_write_result), 0};
    begin();
    ferry::WriteOutcome out;
    out.status = d->sink->write(self_, pointers.data(), pointers.size(), &result);
    out.done = out.status == FERRY_WRITE_OK ? raw.size() : result.done;
    finish(out.status, out.message, out.retry_after_ms);
    return out;
  }

  // `ferry check --connect`: the plugin's check(), OK when it has none.
  CallOutcome check() {
    const auto* d = &plugin_.descriptor();
    auto fn = d->source != nullptr ? d->source->check : d->sink->check;
    CallOutcome out;
    if (fn == nullptr) return out;
    begin();
    out.status = fn(self_);
    finish(out.status, out.message, out.retry_after_ms);
    return out;
  }

 private:
  friend class FakeHost;
  Instance(Plugin plugin, std::unique_ptr<detail::Context> ctx, ferry_plugin_instance* self)
      : plugin_(std::move(plugin)), ctx_(std::move(ctx)), self_(self) {}

  const ferry_source_api* source() const {
    const auto* api = plugin_.descriptor().source;
    if (api == nullptr) throw std::logic_error(name() + " is not a source");
    return api;
  }
  void begin() {
    ctx_->error.clear();
    ctx_->retry_after_ms = -1;
  }
  void finish(int status, std::string& message, int64_t& retry_after_ms) const {
    if (status != 0) message = ctx_->error;
    retry_after_ms = ctx_->retry_after_ms;
  }
  std::vector<TestEvent> journal(const std::vector<TestEvent>& batch) const;
  static std::vector<ferry_event> view(const std::vector<TestEvent>& events) {
    std::vector<ferry_event> raw;
    raw.reserve(events.size());
    for (const auto& e : events) raw.push_back(rawEvent(e));
    return raw;
  }

  Plugin plugin_;
  std::unique_ptr<detail::Context> ctx_;
  ferry_plugin_instance* self_;
};

class FakeHost {
 public:
  using HttpHandler = std::function<CannedResponse(const HttpCall&)>;

  FakeHost() = default;
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // Creates an instance named `name` with these options (config syntax, before resolution).
  // Throws CreateError for an option the host would refuse and for a create() that fails.
  Instance create(const Plugin& plugin, const std::map<std::string, std::string>& options = {},
                  const std::string& name = "test") {
    const auto& d = plugin.descriptor();
    for (const auto& [key, value] : options) {
      bool declared = false;
      for (size_t i = 0; i < d.option_count; ++i) declared |= key == d.options[i].name;
      if (!declared)
        throw CreateError("plugin '" + std::string(d.name) + "' has no option '" + key + "'");
    }
    std::vector<std::string> names, values;
    std::vector<bool> set;
    for (size_t i = 0; i < d.option_count; ++i) {
      const auto& def = d.options[i];
      auto given = options.find(def.name);
      names.emplace_back(def.name);
      if (given != options.end()) {
        values.push_back(detail::resolve(def, given->second));
        set.push_back(true);
      } else if ((def.flags & FERRY_OPTION_REQUIRED) != 0) {
        throw CreateError("plugin '" + std::string(d.name) + "': option '" + def.name +
                          "' is required");
      } else if (def.default_value != nullptr) {
        values.push_back(detail::resolve(def, def.default_value));
        set.push_back(true);
      } else {
        values.emplace_back();
        set.push_back(false);
      }
    }
    std::vector<ferry_option_value> resolved;
    std::vector<const ferry_option_value*> pointers;
    for (size_t i = 0; i < names.size(); ++i)
      resolved.push_back({sizeof(ferry_option_value), detail::lend(names[i]),
                          detail::lend(values[i]), set[i] ? 1 : 0});
    for (const auto& v : resolved) pointers.push_back(&v);

    auto ctx = std::make_unique<detail::Context>();
    ctx->host = this;
    ctx->name = name;
    ferry_plugin_instance* self = nullptr;
    const ferry_create_status s = d.create(&api_, reinterpret_cast<ferry_host_ctx*>(ctx.get()),
                                           pointers.data(), pointers.size(), &self);
    if (s != FERRY_CREATE_OK) throw CreateError(ctx->error);
    return Instance(plugin, std::move(ctx), self);
  }

  // The handler every HTTP request goes to (replaces the previous one).
  void onHttp(HttpHandler handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
  }
  // Every request sent so far, in order.
  std::vector<HttpCall> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  // An instance's durable state (by instance name); the test may seed or inspect it.
  std::map<std::string, std::string>& state(const std::string& instance = "test") {
    std::lock_guard lock(mutex_);
    return state_[instance];
  }
  // The shared state of a scope.
  std::map<std::string, std::string>& shared(const std::string& scope) {
    std::lock_guard lock(mutex_);
    return shared_[scope].values;
  }

  std::vector<LogLine> logs() const {
    std::lock_guard lock(mutex_);
    return logs_;
  }
  // Whether a captured log line contains `text`.
  bool logged(std::string_view text) const {
    std::lock_guard lock(mutex_);
    return std::any_of(logs_.begin(), logs_.end(), [&](const LogLine& l) {
      return l.message.find(text) != std::string::npos;
    });
  }

  // Counters and gauges by "instance/name".
  double counter(const std::string& name, const std::string& instance = "test") const {
    std::lock_guard lock(mutex_);
    auto it = counters_.find(instance + "/" + name);
    return it == counters_.end() ? 0 : it->second;
  }
  std::optional<double> gauge(const std::string& name, const std::string& instance = "test") const {
    std::lock_guard lock(mutex_);
    auto it = gauges_.find(instance + "/" + name);
    return it == gauges_.end() ? std::nullopt : std::optional<double>(it->second);
  }

  // Rate limits as first defined, and how many tokens each key granted.
  std::optional<std::vector<ferry_rate_rule>> rateLimit(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = limits_.find(key);
    return it == limits_.end() ? std::nullopt : std::optional(it->second);
  }
  int acquired(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = acquired_.find(key);
    return it == acquired_.end() ? 0 : it->second;
  }

  // What journal_id() answers (default "20260101T000000Z-0000000000000001"): a new id is what a
  // sink sees after the journal was replaced.
  void setJournalId(std::string id) {
    std::lock_guard lock(mutex_);
    journal_id_ = std::move(id);
  }

  // Makes state_set/state_erase answer FAILED, as the host does when its journal fails.
  void setStateFailing(bool failing) {
    std::lock_guard lock(mutex_);
    failing_state_ = failing;
  }

  // What stopping() answers (and rate_acquire() then refuses).
  void setStopping(bool stopping) {
    std::lock_guard lock(mutex_);
    stopping_ = stopping;
  }

  const ferry_host_api* api() const { return &api_; }

 private:
  friend class Instance;

  struct Scope {
    std::map<std::string, std::string> values;
    std::recursive_mutex lock;
  };

  static FakeHost& of(ferry_host_ctx* ctx) { return *detail::context(ctx).host; }

  static void log(ferry_host_ctx* ctx, ferry_log_level level, ferry_plugin_str message) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    c.host->logs_.push_back({c.name, level, detail::text(message)});
  }
  static void setError(ferry_host_ctx* ctx, ferry_plugin_str message) {
    detail::context(ctx).error = detail::text(message);
  }
  static void setRetryAfter(ferry_host_ctx* ctx, int64_t ms) {
    detail::context(ctx).retry_after_ms = ms;
  }
  static ferry_emit_status emit(ferry_host_ctx* ctx, const ferry_item* item) {
    auto& c = detail::context(ctx);
    std::string problem;
    if (c.items == nullptr) {
      problem = "emit() outside fetch()";
    } else if (!FERRY_HAS_FIELD(ferry_item, item, meta) || item->key.len == 0) {
      problem = "an item without key";
    } else if (item->entity.len == 0) {
      problem = "item '" + detail::text(item->key) + "' without entity";
    } else if (!ferry::instant::parseNs(detail::text(item->version))) {
      problem = "item '" + detail::text(item->key) + "': version '" +
                detail::text(item->version) + "' is not an instant with a zone";
    } else {
      for (char ch : detail::text(item->key))
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
          problem = "item '" + detail::text(item->key) + "' has a control character in its key";
    }
    if (!problem.empty() && c.items != nullptr && FERRY_HAS_FIELD(ferry_item, item, meta)) {
      // As the host does for a plugin of ABI 2.1: handed over as unreadable, the page goes on.
      c.set_aside->push_back({detail::text(item->body), problem, detail::text(item->key)});
      return FERRY_EMIT_SET_ASIDE;
    }
    if (!problem.empty()) {
      log(ctx, FERRY_LOG_ERROR, lend(problem));
      return FERRY_EMIT_REFUSED;
    }
    c.items->push_back({detail::text(item->entity), detail::text(item->key),
                        detail::text(item->version), detail::text(item->body),
                        (item->flags & FERRY_ITEM_ECHO) != 0, detail::text(item->meta)});
    return FERRY_EMIT_OK;
  }
  static ferry_emit_status setAside(ferry_host_ctx* ctx, ferry_plugin_str raw,
                                    ferry_plugin_str reason) {
    auto& c = detail::context(ctx);
    if (c.set_aside == nullptr) {
      log(ctx, FERRY_LOG_ERROR, lend("set_aside() outside fetch()"));
      return FERRY_EMIT_REFUSED;
    }
    c.set_aside->push_back({detail::text(raw), detail::text(reason), ""});
    return FERRY_EMIT_OK;
  }
  static ferry_http_status http(ferry_host_ctx* ctx, const ferry_http_request* request,
                                ferry_host_http_response** response) {
    auto& c = detail::context(ctx);
    HttpCall call{c.name,
                  detail::text(request->method),
                  detail::text(request->url),
                  {},
                  detail::text(request->body),
                  request->timeout_ms,
                  detail::text(request->rate_key),
                  (request->flags & FERRY_HTTP_SKIP_TLS_VERIFY) == 0};
    for (size_t i = 0; i < request->header_count; ++i)
      call.headers.emplace_back(detail::text(request->headers[i].name),
                                detail::text(request->headers[i].value));
    auto* owned = new detail::OwnedResponse;
    *response = &owned->raw;
    if (call.url.rfind("http://", 0) != 0 && call.url.rfind("https://", 0) != 0) {
      owned->canned = CannedResponse::noResponse("bad URL '" + call.url + "'");
      fill(*owned);
      return FERRY_HTTP_BAD_REQUEST;
    }
    HttpHandler handler;
    {
      std::lock_guard lock(c.host->mutex_);
      c.host->requests_.push_back(call);
      handler = c.host->handler_;
    }
    owned->canned = handler ? handler(call)
                            : CannedResponse::noResponse("the fake host has no HTTP handler");
    fill(*owned);
    return owned->raw.status == 0 ? FERRY_HTTP_NO_RESPONSE : FERRY_HTTP_RESPONSE;
  }
  static void fill(detail::OwnedResponse& o) {
    const auto& r = o.canned;
    for (const auto& [n, v] : r.headers) o.headers.push_back({detail::lend(n), detail::lend(v)});
    int64_t retry_after = -1;
    if (auto v = findHeader(r.headers, "Retry-After")) {
      int64_t s = 0;
      auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), s);
      if (ec == std::errc() && end == v->data() + v->size()) retry_after = s * 1000;
    }
    bool transient = r.status == 0 || r.status == 408 || r.status == 425 || r.status == 429 ||
                     r.status >= 500;
    o.raw = {sizeof(ferry_host_http_response),
             transient ? FERRY_HTTP_TRANSIENT : 0u,
             r.status,
             o.headers.data(),
             o.headers.size(),
             detail::lend(r.body),
             retry_after,
             r.status == 0 ? detail::lend(r.error) : ferry_host_str{"", 0}};
  }
  static void httpRelease(ferry_host_ctx*, ferry_host_http_response* response) {
    // raw is the first member: the response is the OwnedResponse.
    delete reinterpret_cast<detail::OwnedResponse*>(response);
  }
  static void defineLimit(ferry_host_ctx* ctx, ferry_plugin_str key, const ferry_rate_rule* rules,
                          size_t count) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    h.limits_.try_emplace(detail::text(key), rules, rules + count);
  }
  static ferry_acquire_status acquire(ferry_host_ctx* ctx, ferry_plugin_str key) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    if (h.stopping_) return FERRY_ACQUIRE_STOPPING;
    ++h.acquired_[detail::text(key)];
    return FERRY_ACQUIRE_OK;
  }
  static ferry_state_status get(const std::map<std::string, std::string>& values,
                                ferry_plugin_str key, ferry_receive_fn receive, void* user) {
    auto it = values.find(detail::text(key));
    if (it == values.end()) return FERRY_STATE_ABSENT;
    receive(user, detail::lend(it->second));
    return FERRY_STATE_OK;
  }
  static ferry_state_status stateGet(ferry_host_ctx* ctx, ferry_plugin_str key,
                                     ferry_receive_fn receive, void* user) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    return get(c.host->state_[c.name], key, receive, user);
  }
  static ferry_state_status stateSet(ferry_host_ctx* ctx, ferry_plugin_str key,
                                     ferry_plugin_str value) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    if (c.host->failing_state_) return FERRY_STATE_FAILED;
    c.host->state_[c.name][detail::text(key)] = detail::text(value);
    return FERRY_STATE_OK;
  }
  static ferry_state_status stateErase(ferry_host_ctx* ctx, ferry_plugin_str key) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    if (c.host->failing_state_) return FERRY_STATE_FAILED;
    c.host->state_[c.name].erase(detail::text(key));
    return FERRY_STATE_OK;
  }
  static ferry_state_status sharedGet(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                      ferry_plugin_str key, ferry_receive_fn receive, void* user) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    return get(h.shared_[detail::text(scope)].values, key, receive, user);
  }
  static ferry_state_status sharedSet(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                      ferry_plugin_str key, ferry_plugin_str value) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    h.shared_[detail::text(scope)].values[detail::text(key)] = detail::text(value);
    return FERRY_STATE_OK;
  }
  std::recursive_mutex& scopeLock(const std::string& scope) {
    std::lock_guard lock(mutex_);
    return shared_[scope].lock;  // std::map nodes never move
  }
  static void sharedLock(ferry_host_ctx* ctx, ferry_plugin_str scope) {
    of(ctx).scopeLock(detail::text(scope)).lock();
  }
  static void sharedUnlock(ferry_host_ctx* ctx, ferry_plugin_str scope) {
    of(ctx).scopeLock(detail::text(scope)).unlock();
  }
  static void counterAdd(ferry_host_ctx* ctx, ferry_plugin_str name, double delta) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    c.host->counters_[c.name + "/" + detail::text(name)] += delta;
  }
  static void gaugeSet(ferry_host_ctx* ctx, ferry_plugin_str name, double value) {
    auto& c = detail::context(ctx);
    std::lock_guard lock(c.host->mutex_);
    c.host->gauges_[c.name + "/" + detail::text(name)] = value;
  }
  static ferry_host_str journalId(ferry_host_ctx* ctx) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    return detail::lend(h.journal_id_);
  }
  static int isStopping(ferry_host_ctx* ctx) {
    auto& h = of(ctx);
    std::lock_guard lock(h.mutex_);
    return h.stopping_ ? 1 : 0;
  }

  const ferry_host_api api_{FERRY_ABI_MAJOR, FERRY_ABI_MINOR, sizeof(ferry_host_api),
                            &log,            &setError,       &setRetryAfter,
                            &emit,           &http,           &httpRelease,
                            &defineLimit,    &acquire,        &stateGet,
                            &stateSet,       &stateErase,     &sharedGet,
                            &sharedSet,      &sharedLock,     &sharedUnlock,
                            &counterAdd,     &gaugeSet,       &isStopping,
                            &journalId,      &setAside};
  mutable std::mutex mutex_;
  HttpHandler handler_;
  std::vector<HttpCall> requests_;
  std::map<std::string, std::map<std::string, std::string>> state_;
  std::map<std::string, Scope> shared_;
  std::vector<LogLine> logs_;
  std::map<std::string, double> counters_;
  std::map<std::string, double> gauges_;
  std::map<std::string, std::vector<ferry_rate_rule>> limits_;
  std::map<std::string, int> acquired_;
  bool stopping_ = false;
  bool failing_state_ = false;
  std::string journal_id_ = "20260101T000000Z-0000000000000001";
  int64_t next_sequence_ = 1;
};

// The batch as the journal hands it over: sequences assigned, idempotency keys filled in.
inline std::vector<TestEvent> Instance::journal(const std::vector<TestEvent>& batch) const {
  std::vector<TestEvent> events = batch;
  auto& host = *ctx_->host;
  std::lock_guard lock(host.mutex_);
  for (auto& e : events) {
    if (e.sequence == 0) e.sequence = host.next_sequence_;
    host.next_sequence_ = std::max(host.next_sequence_, e.sequence + 1);
    if (e.idempotency_key.empty())
      e.idempotency_key = e.source + "/" + e.entity + "/" + e.key + "/" + e.version;
  }
  return events;
}

}  // namespace ferry::testing
