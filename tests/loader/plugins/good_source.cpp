// A well-formed source built with the SDK exactly as an outsider would. Its option table covers
// every option type, a secret, a required option, choices and a redeclared host setting, so that
// the config tests validate against a real plugin.
#include <ferry/plugin.hpp>
#include <string>

namespace {

class GoodSource : public ferry::Source {
 public:
  GoodSource(ferry::Host host, const ferry::Options& options)
      : ferry::Source(host), account_(options.string("account", "nobody")) {
    host.info("good_source started for " + account_);
  }

  // Emits two items at the requested instant, so a caller can see the call went through.
  uint32_t fetch(const ferry::FetchRequest& request) override {
    for (const char* key : {"order-1", "order-2"}) {
      std::string body = std::string("{\"account\":\"") + account_ + "\",\"id\":\"" + key + "\"}";
      host().emit({"order", key, request.since, body});
    }
    return 2;
  }

 private:
  std::string account_;
};

constexpr ferry_option_def kOptions[] = {
    ferry::Option("account").required().help("the remote account id"),
    ferry::Option("api_key").required().secret().help("API key"),
    ferry::Option("max_pages", FERRY_OPT_INT).defaultsTo("10").help("pages per cycle"),
    ferry::Option("verbose", FERRY_OPT_BOOL).defaultsTo("no").help("log every page"),
    ferry::Option("timeout", FERRY_OPT_DURATION).defaultsTo("30s").help("request timeout"),
    ferry::Option("role").choices("buyer|supplier").defaultsTo("buyer").help("our side"),
    ferry::Option("not_before", FERRY_OPT_INSTANT).help("ignore changes before this instant"),
    ferry::Option("ratio", FERRY_OPT_DOUBLE).defaultsTo("0.5").help("a fraction"),
    ferry::Option("pin", FERRY_OPT_INT).secret().help("a numeric secret"),
    // A host setting redeclared: the remote's pages hold at most 50 items.
    ferry::Option("page_size", FERRY_OPT_INT).defaultsTo("50").help("items per page (max 50)"),
};

}  // namespace

FERRY_SOURCE_PLUGIN(GoodSource, "good_source", "1.2.3", "a source for the loader tests", kOptions)
