// A sink that declares it needs plugin ABI 2.99: what a plugin built against a future SDK looks
// like to this host. FERRY_PLUGIN_ABI_MINOR sets the minor the descriptor declares.
#define FERRY_PLUGIN_ABI_MINOR 99u
#include <ferry/plugin.hpp>

namespace {
constexpr ferry_option_def kOptions[] = {
    ferry::Option("path").help("unused"),
};

class Nothing : public ferry::Sink {
 public:
  Nothing(ferry::Host host, const ferry::Options&) : ferry::Sink(host) {}
  ferry::WriteOutcome write(const ferry::Batch&) override { return ferry::WriteOutcome::ok(); }
};
}  // namespace

FERRY_SINK_PLUGIN(Nothing, "sink_abi_mismatch", "0.0.1", "needs plugin ABI 2.99", kOptions)
