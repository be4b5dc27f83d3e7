#include "runtime/Instance.h"

#include <algorithm>
#include <cstddef>

namespace ferry::core {
namespace {

Status statusOf(ferry_status s) {
  switch (s) {
    case FERRY_OK: return Status::Ok;
    case FERRY_RETRY: return Status::Retry;
    case FERRY_FATAL: return Status::Fatal;
    case FERRY_AUTH: return Status::Auth;
    case FERRY_STOP: return Status::Stop;
  }
  // A value the ABI does not define: treat it as transient, never as success.
  return Status::Retry;
}

// The ABI's view of a journalled event; `id` must outlive it.
ferry_event rawEvent(const JournalEvent& e, const std::string& id) {
  return ferry_event{sizeof(ferry_event), e.sequence,         e.source.c_str(),
                     e.entity.c_str(),    e.key.c_str(),      e.version.c_str(),
                     e.previous.c_str(),  e.body.c_str(),     e.body.size(),
                     e.echo ? 1 : 0,      id.c_str()};
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
  for (const auto& def : plugin->options) {
    const char* value = nullptr;
    for (const auto& [k, v] : resolved)
      if (k == def.name && v) value = v->c_str();
    values.push_back(ferry_option_value{sizeof(ferry_option_value), def.name, value});
  }
  ferry_host_ctx* ctx = self->ctx_.get();
  self->instance_ = PluginInstance::create(std::move(plugin), where, hostApi(), ctx, values,
                                           [ctx] { return ctx->last_error; });
  return self;
}

Instance::~Instance() {
  instance_.reset();
  ctx_.reset();
}

Outcome Instance::outcomeOf(int status) const {
  Outcome o;
  o.status = statusOf(static_cast<ferry_status>(status));
  if (!o.ok()) {
    o.message = ctx_->last_error.empty() ? std::string("plugin answered ") +
                                               statusName(o.status) + " without a message"
                                         : ctx_->last_error;
    o.retry_after_ms = ctx_->retry_after_ms;
  }
  return o;
}

Outcome Instance::fetch(const std::string& since, int64_t since_ms, uint32_t offset,
                        uint32_t limit, std::vector<FetchedItem>& items) {
  ctx_->clearError();
  ctx_->emit_error.clear();
  ctx_->page = &items;
  const size_t before = items.size();
  ferry_fetch_request raw{sizeof(ferry_fetch_request), since.c_str(), since_ms, offset, limit};
  ferry_fetch_result result{sizeof(ferry_fetch_result), UINT32_MAX};
  const ferry_status s = instance_->source()->fetch(instance_->handle(), &raw, &result);
  ctx_->page = nullptr;
  Outcome o;
  if (s == FERRY_OK && !ctx_->emit_error.empty()) {
    // The plugin ignored a refused emit: the page is incomplete, so it must not count.
    o.status = Status::Fatal;
    o.message = "emit refused: " + ctx_->emit_error;
  } else if (s != FERRY_OK) {
    if (!ctx_->emit_error.empty())
      ctx_->last_error = ctx_->last_error.empty()
                             ? ctx_->emit_error
                             : ctx_->last_error + " (" + ctx_->emit_error + ")";
    o = outcomeOf(s);
  }
  if (!o.ok()) {
    items.resize(before);
    return o;
  }
  o.done = result.received == UINT32_MAX ? items.size() - before : result.received;
  return o;
}

bool Instance::wantsDelivered() const {
  const ferry_source_api* api = instance_->source();
  if (api->delivered == nullptr) return false;
  // wants_delivered was appended to the table: only read it when the plugin's table has it.
  if (api->struct_size >= offsetof(ferry_source_api, wants_delivered) +
                             sizeof(api->wants_delivered) &&
      api->wants_delivered != nullptr)
    return api->wants_delivered(instance_->handle()) != 0;
  return true;
}

Outcome Instance::delivered(const JournalEvent& event) {
  const std::string id = event.idempotencyKey();
  const ferry_event raw = rawEvent(event, id);
  ctx_->clearError();
  const uint64_t requests_before = ctx_->http_requests;
  Outcome o = outcomeOf(instance_->source()->delivered(instance_->handle(), &raw));
  o.reached_remote = ctx_->http_requests != requests_before;
  return o;
}

Outcome Instance::write(const std::vector<const JournalEvent*>& events) {
  std::vector<std::string> ids;
  std::vector<ferry_event> raw;
  ids.reserve(events.size());
  raw.reserve(events.size());
  for (const JournalEvent* e : events) {
    ids.push_back(e->idempotencyKey());
    raw.push_back(rawEvent(*e, ids.back()));
  }
  ctx_->clearError();
  ferry_write_result result{sizeof(ferry_write_result), 0};
  const ferry_status s =
      instance_->sink()->write(instance_->handle(), raw.data(), raw.size(), &result);
  Outcome o = outcomeOf(s);
  o.done = o.ok() ? events.size() : std::min(result.done, events.size());
  if (o.status == Status::Fatal && o.done >= events.size()) {
    // FATAL must name an event inside the batch; treat the nonsense as transient.
    o.status = Status::Retry;
    o.message = "plugin answered FATAL without naming an event in the batch: " + o.message;
  }
  return o;
}

Outcome Instance::check() {
  auto fn = ctx_->kind == "source" ? instance_->source()->check : instance_->sink()->check;
  if (fn == nullptr) return Outcome{};
  ctx_->clearError();
  return outcomeOf(fn(instance_->handle()));
}

}  // namespace ferry::core
