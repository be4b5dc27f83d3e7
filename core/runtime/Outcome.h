// How a call into a plugin ended: one value for every kind of call, so that the runners never see
// the C ABI's status codes, out-parameters or error channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ferry::core {

enum class Status {
  Ok,     // done
  Retry,  // transient: back off (at least retry_after_ms when set) and try again
  Fatal,  // can never succeed as asked (a sink: the event at `done`; a source: stop)
  Auth,   // authentication refused: stop the instance
  Stop    // another condition only an operator can fix: stop the instance
};

// "OK", "RETRY", "FATAL", "AUTH", "STOP".
const char* statusName(Status status);

struct Outcome {
  Status status = Status::Ok;
  // A write: how many events of the batch are durable (all of them when Ok). A fetch: how many
  // items the remote's page held (repeats and skipped ones included).
  size_t done = 0;
  std::string message;  // why, when not Ok (secrets already removed)
  int64_t retry_after_ms = -1;
  // The call sent at least one request to the remote (the delivered hook changed something).
  bool reached_remote = false;

  bool ok() const { return status == Status::Ok; }
};

}  // namespace ferry::core
