#include "runtime/Instance.h"

#include <algorithm>
#include <cstddef>

namespace ferry::core {
namespace {

// Each call's status as an Outcome's. A value the ABI does not define (a plugin built against a
// later minor that the host would have refused, or garbage) is transient, never success.
Status statusOf(ferry_fetch_status s) {
  switch (s) {
    case FERRY_FETCH_OK: return Status::Ok;
    case FERRY_FETCH_RETRY: return Status::Retry;
    case FERRY_FETCH_AUTH: return Status::Auth;
    case FERRY_FETCH_STOP: return Status::Stop;
  }
  return Status::Retry;
}

Status statusOf(ferry_hook_status s) {
  switch (s) {
    case FERRY_HOOK_OK: return Status::Ok;
    case FERRY_HOOK_RETRY: return Status::Retry;
    case FERRY_HOOK_AUTH: return Status::Auth;
    case FERRY_HOOK_STOP: return Status::Stop;
  }
  return Status::Retry;
}

Status statusOf(ferry_write_status s) {
  switch (s) {
    case FERRY_WRITE_OK: return Status::Ok;
    case FERRY_WRITE_RETRY: return Status::Retry;
    case FERRY_WRITE_REFUSED: return Status::Fatal;
    case FERRY_WRITE_AUTH: return Status::Auth;
    case FERRY_WRITE_STOP: return Status::Stop;
  }
  return Status::Retry;
}

// A check: unreachable is transient, a failed check can never pass as configured.
Status statusOf(ferry_check_status s) {
  switch (s) {
    case FERRY_CHECK_OK: return Status::Ok;
    case FERRY_CHECK_UNREACHABLE: return Status::Retry;
    case FERRY_CHECK_AUTH: return Status::Auth;
    case FERRY_CHECK_FAILED: return Status::Fatal;
  }
  return Status::Retry;
}

// The ABI's view of a journalled event; `id` must outlive it.
ferry_event rawEvent(const JournalEvent& e, const std::string& id) {
  return ferry_event{sizeof(ferry_event),
                     e.echo ? FERRY_EVENT_ECHO : 0u,
                     e.sequence,
                     e.fetched_at_ms,
                     lend(e.source),
                     lend(e.entity),
                     lend(e.key),
                     lend(e.version),
                     lend(e.previous),
                     lend(e.body),
                     lend(e.meta),
                     lend(id)};
}

}  // namespace

const char* statusName(Status status) {
  switch (status) {
    case Status::Ok: return "OK";
    case Status::Retry: return "RETRY";
    case Status::Fatal: return "FATAL";
    case Status::Auth: return "AUTH";
    case Status::Stop: return "STOP";
  }
  return "unknown status";
}

std::unique_ptr<Instance> Instance::create(
    std::shared_ptr<const Plugin> plugin, const std::string& where, PluginServices& services,
    const std::string& name, const std::string& kind, std::vector<std::string> secrets,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& resolved) {
  std::unique_ptr<Instance> self(new Instance);
  self->ctx_ = std::make_unique<ferry_host_ctx>(services, name, kind, std::move(secrets));
  // Only the plugin's own options are handed over (host settings it did not redeclare stay
  // with the host), in declaration order.
  std::vector<ferry_option_value> values;
  std::vector<const ferry_option_value*> pointers;
  values.reserve(plugin->options.size());
  for (const auto& def : plugin->options) {
    ferry_option_value& v = values.emplace_back(
        ferry_option_value{sizeof(ferry_option_value), lend(def.name), {}, 0});
    for (const auto& [k, value] : resolved)
      if (k == def.name && value) v = {sizeof(ferry_option_value), lend(def.name), lend(*value), 1};
    pointers.push_back(&v);
  }
  ferry_host_ctx* ctx = self->ctx_.get();
  ctx->plugin_minor = plugin->descriptor->abi_minor;
  self->instance_ = PluginInstance::create(std::move(plugin), where, hostApi(), ctx, pointers,
                                           [ctx] { return ctx->last_error; });
  return self;
}

Instance::~Instance() {
  instance_.reset();
  ctx_.reset();
}

Outcome Instance::outcomeOf(Status status) const {
  Outcome o;
  o.status = status;
  if (!o.ok()) {
    o.message = ctx_->last_error.empty() ? std::string("plugin answered ") +
                                               statusName(o.status) + " without a message"
                                         : ctx_->last_error;
    o.retry_after_ms = ctx_->retry_after_ms;
  }
  return o;
}

Outcome Instance::fetch(const std::string& since, int64_t since_ms, uint32_t offset,
                        uint32_t limit, std::vector<FetchedItem>& items,
                        std::vector<SetAsideItem>& set_aside) {
  ctx_->clearError();
  ctx_->emit_error.clear();
  ctx_->set_aside_wait.clear();
  ctx_->unreadable = 0;
  ctx_->page = &items;
  ctx_->set_aside = &set_aside;
  const size_t before = items.size(), set_aside_before = set_aside.size();
  const ferry_fetch_request raw{sizeof(ferry_fetch_request), offset, limit, since_ms, lend(since)};
  ferry_fetch_result result{sizeof(ferry_fetch_result), UINT32_MAX};
  const Status s = statusOf(instance_->source()->fetch(instance_->handle(), &raw, &result));
  ctx_->page = nullptr;
  ctx_->set_aside = nullptr;
  Outcome o;
  if (!ctx_->emit_error.empty() || !ctx_->set_aside_wait.empty()) {
    // An item the host could not take (an ABI 2.0 plugin fails the page on it; a later one goes
    // on, and the page fails here): fetched again until the item's tries are used up and it is
    // set aside. Transient whatever the plugin answered, so one bad item never stops a source.
    o.status = Status::Retry;
    o.message = !ctx_->set_aside_wait.empty() ? ctx_->set_aside_wait
                                              : "emit refused: " + ctx_->emit_error;
  } else if (s != Status::Ok) {
    o = outcomeOf(s);
  }
  if (!o.ok()) {
    items.resize(before);
    set_aside.resize(set_aside_before);
    return o;
  }
  o.done = result.received == UINT32_MAX ? items.size() - before + ctx_->unreadable
                                         : result.received;
  return o;
}

void Instance::setSetAsideRule(int64_t after_tries,
                               std::function<bool(const std::string&)> known) {
  ctx_->set_aside_rule.after_tries = std::max<int64_t>(1, after_tries);
  ctx_->set_aside_rule.known = std::move(known);
}

void Instance::forgetSetAsideTries() { ctx_->set_aside_rule.tries.clear(); }

bool Instance::wantsDelivered() const {
  const ferry_source_api* api = instance_->source();
  if (api->delivered == nullptr) return false;
  return api->wants_delivered == nullptr || api->wants_delivered(instance_->handle()) != 0;
}

Outcome Instance::delivered(const JournalEvent& event) {
  const std::string id = event.idempotencyKey();
  const ferry_event raw = rawEvent(event, id);
  ctx_->clearError();
  const uint64_t requests_before = ctx_->http_requests;
  Outcome o = outcomeOf(statusOf(instance_->source()->delivered(instance_->handle(), &raw)));
  o.reached_remote = ctx_->http_requests != requests_before;
  return o;
}

Outcome Instance::write(const std::vector<const JournalEvent*>& events) {
  std::vector<std::string> ids;
  std::vector<ferry_event> raw;
  std::vector<const ferry_event*> pointers;
  ids.reserve(events.size());
  raw.reserve(events.size());
  pointers.reserve(events.size());
  for (const JournalEvent* e : events) {
    ids.push_back(e->idempotencyKey());
    pointers.push_back(&raw.emplace_back(rawEvent(*e, ids.back())));
  }
  ctx_->clearError();
  ferry_write_result result{sizeof(ferry_write_result), 0};
  Outcome o = outcomeOf(statusOf(
      instance_->sink()->write(instance_->handle(), pointers.data(), pointers.size(), &result)));
  o.done = o.ok() ? events.size() : std::min(result.done, events.size());
  if (o.status == Status::Fatal && o.done >= events.size()) {
    // REFUSED must name an event inside the batch; treat the nonsense as transient.
    o.status = Status::Retry;
    o.message = "plugin answered REFUSED without naming an event in the batch: " + o.message;
  }
  return o;
}

Outcome Instance::check() {
  auto fn = ctx_->kind == "source" ? instance_->source()->check : instance_->sink()->check;
  if (fn == nullptr) return Outcome{};
  ctx_->clearError();
  return outcomeOf(statusOf(fn(instance_->handle())));
}

}  // namespace ferry::core
