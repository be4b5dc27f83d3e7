// A source that redeclares the host setting `interval` (a duration) as an int: a plugin bug the
// config validation must name.
#include <ferry/plugin.hpp>

namespace {

class RedeclareSource : public ferry::Source {
 public:
  RedeclareSource(ferry::Host host, const ferry::Options&) : ferry::Source(host) {}
  uint32_t fetch(const ferry::FetchRequest&) override { return 0; }
};

constexpr ferry_option_def kOptions[] = {
    ferry::Option("interval", FERRY_OPT_INT).defaultsTo("60").help("seconds between polls"),
};

}  // namespace

FERRY_SOURCE_PLUGIN(RedeclareSource, "redeclare_source", "1.0.0",
                    "redeclares a host setting with another type", kOptions)
