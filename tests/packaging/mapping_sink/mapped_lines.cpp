// sink_mapped_lines: each event's rows, mapped with the SDK's mapping language, appended to a file
// as cells separated by '|' (the headers first, when the file is new).
#include <ferry/mapping.hpp>
#include <ferry/plugin.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("path").required().help("file the rows are appended to"),
    ferry::Option("layout").defaultsTo("custom").help("a built-in layout, or custom"),
    ferry::Option("columns").help("layout = custom: Header=expression; …"),
    ferry::Option("rows").help("layout = custom: JSON Pointer to an array"),
};

ferry::mapping::Mapping mappingFrom(const ferry::Options& o) {
  try {
    if (o.string("layout") != "custom") return ferry::mapping::Mapping::layout(o.string("layout"));
    return ferry::mapping::Mapping::parse(o.string("columns"), o.string("rows"));
  } catch (const ferry::mapping::MappingError& e) {
    throw ferry::Fatal(e.what());
  }
}

class MappedLines : public ferry::Sink {
 public:
  MappedLines(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host), path_(options.string("path")), mapper_(mappingFrom(options)) {}

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    std::string text;
    std::error_code ec;
    if (std::filesystem::file_size(path_, ec) == 0 || ec) {
      for (const auto& h : mapper_.mapping().headers()) text += (text.empty() ? "" : "|") + h;
      text += "\n";
    }
    ferry::mapping::Rows rows(mapper_.mapping().columnCount());
    std::string error;
    for (size_t i = 0; i < batch.size(); ++i) {
      rows.clear();  // map() appends
      if (!mapper_.map(batch[i], rows, error)) return ferry::WriteOutcome::refuse(i, error);
      for (size_t r = 0; r < rows.size(); ++r) {
        for (size_t c = 0; c < rows.columns(); ++c) text += (c ? "|" : "") + rows.at(r, c).text;
        text += "\n";
      }
    }
    std::ofstream out(path_, std::ios::app | std::ios::binary);
    out << text;
    out.flush();
    if (!out) return ferry::WriteOutcome::retry(0, "cannot write " + path_);
    return ferry::WriteOutcome::ok();
  }

 private:
  std::string path_;
  ferry::mapping::Mapper mapper_;
};

}  // namespace

FERRY_SINK_PLUGIN(MappedLines, "sink_mapped_lines", "1.0.0", "mapped rows, '|'-separated", kOptions)
