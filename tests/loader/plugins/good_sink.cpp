// A well-formed sink built with the SDK; its write() accepts every batch.
#include <ferry/plugin.hpp>
#include <string>

namespace {

class GoodSink : public ferry::Sink {
 public:
  GoodSink(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host), target_(options.string("target")) {}

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    host().info("wrote " + std::to_string(batch.size()) + " events to " + target_);
    return ferry::WriteOutcome::ok();
  }

 private:
  std::string target_;
};

constexpr ferry_option_def kOptions[] = {
    ferry::Option("target").required().help("where to write"),
    ferry::Option("format").choices("csv|tsv").defaultsTo("csv").help("file format"),
    ferry::Option("tags", FERRY_OPT_LIST).help("labels added to every row"),
};

}  // namespace

FERRY_SINK_PLUGIN(GoodSink, "good_sink", "0.9.0", "a sink for the loader tests", kOptions)
