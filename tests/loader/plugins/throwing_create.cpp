// A well-formed source whose constructor fails the way a real one does when its remote is down:
// the SDK turns the exception into FERRY_CREATE_REFUSED with the message, and the host must show it.
#include <ferry/plugin.hpp>

namespace {

class ThrowingSource : public ferry::Source {
 public:
  ThrowingSource(ferry::Host host, const ferry::Options&) : ferry::Source(host) {
    throw ferry::Fatal("cannot reach https://api.example.test: connection refused");
  }
  uint32_t fetch(const ferry::FetchRequest&) override { return 0; }
};

constexpr ferry_option_def kOptions[] = {
    ferry::Option("base_url").defaultsTo("https://api.example.test").help("API base URL"),
};

}  // namespace

FERRY_SOURCE_PLUGIN(ThrowingSource, "throwing_source", "1.0.0", "fails in its constructor",
                    kOptions)
