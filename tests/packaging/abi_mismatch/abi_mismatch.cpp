// A sink whose descriptor names plugin ABI 99: what a plugin built against a future SDK looks
// like to this host. <ferry/abi.h> defines FERRY_ABI_VERSION unconditionally, so the override
// happens between the two includes, before the wrapper's descriptor templates read it.
#include <ferry/abi.h>
#undef FERRY_ABI_VERSION
#define FERRY_ABI_VERSION 99u
#include <ferry/plugin.hpp>

namespace {
constexpr ferry_option_def kOptions[] = {
    ferry::Option("path").help("unused"),
};

class Nothing : public ferry::Sink {
 public:
  Nothing(ferry::Host host, const ferry::Options&) : ferry::Sink(host) {}
  ferry::WriteOutcome write(std::span<const ferry_event>) override {
    return ferry::WriteOutcome::ok();
  }
};
}  // namespace

FERRY_SINK_PLUGIN(Nothing, "sink_abi_mismatch", "0.0.1", "claims plugin ABI 99", kOptions)
