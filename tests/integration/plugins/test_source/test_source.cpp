// test_source: a source plugin for the end-to-end tests. It plays a remote API whose current
// state is a JSON Lines file, so that the host's cursor algorithm runs against real paging:
// items sorted by version (as an instant) then key, "version >= since" (or, for an exclusive
// API, "version > since - 1 ms"), skip `offset`, take `limit`. Tests change the remote by
// appending lines to the file while the host runs, and script failures through a control file.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ferry/plugin.hpp>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <vector>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("data").required().help(
        "JSON Lines dataset, the remote's current state: {entity,key,version,body} per line, the "
        "last line of a key wins; re-read at every fetch"),
    ferry::Option("window")
        .defaultsTo("inclusive")
        .choices("inclusive|exclusive")
        .help("simulated API window: inclusive (version >= T) or exclusive (version > T, asked "
              "from one millisecond earlier)"),
    ferry::Option("fail_file")
        .help("control file read at every fetch: retry | retry_message <text> | "
              "retry_after <ms> | auth | fatal"),
    ferry::Option("fail_first", FERRY_OPT_INT)
        .defaultsTo("0")
        .help("the first N fetches of the process answer RETRY"),
    ferry::Option("echo_keys", FERRY_OPT_LIST).help("keys emitted with echo = true"),
    ferry::Option("delivered_log")
        .help("file to which delivered() appends each event's idempotency key, one per line"),
    ferry::Option("slow_ms", FERRY_OPT_INT).defaultsTo("0").help("sleep this long in each fetch"),
};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)" to nanoseconds since the epoch. The plugin
// keeps its own small parser: a plugin links nothing of the host.
std::optional<int64_t> parseInstantNs(const std::string& t) {
  auto digits = [&](size_t pos, size_t n) -> std::optional<int> {
    if (pos + n > t.size()) return std::nullopt;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2), hour = digits(11, 2),
       minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != ' ') || t[13] != ':' || t[16] != ':')
    return std::nullopt;
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int64_t scale = 100000000;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      frac_ns += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
  }
  int64_t offset_s = 0;
  if (pos < t.size() && t[pos] == 'Z') {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || t[pos + 3] != ':') return std::nullopt;
    offset_s = (*oh * 3600 + *om * 60) * (t[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  const int64_t days =
      daysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  const int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_s;
  return seconds * 1000000000 + frac_ns;
}

struct Record {
  std::string entity;
  std::string key;
  std::string version;
  int64_t version_ns = 0;
  std::string body;
};

std::string firstLine(const std::string& path, bool* exists) {
  std::ifstream in(path);
  *exists = static_cast<bool>(in);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

class TestSource : public ferry::Source {
 public:
  TestSource(ferry::Host host, const ferry::Options& options)
      : ferry::Source(host),
        data_(options.string("data")),
        exclusive_(options.string("window", "inclusive") == "exclusive"),
        fail_file_(options.string("fail_file")),
        fail_first_(options.integer("fail_first")),
        delivered_log_(options.string("delivered_log")),
        slow_ms_(options.integer("slow_ms")) {
    for (const auto& k : options.list("echo_keys")) echo_keys_.insert(k);
  }

  uint32_t fetch(const ferry::FetchRequest& request) override {
    if (slow_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms_));
    if (fetches_++ < fail_first_) throw ferry::Retry("scripted start-up outage");
    applyFailFile();

    std::vector<Record> records = load();
    std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
      return std::tie(a.version_ns, a.key) < std::tie(b.version_ns, b.key);
    });
    // An exclusive API answers "version > T"; per the design the plugin asks T = since - 1 ms.
    const int64_t since_ns = request.since_ms * 1000000;
    const int64_t exclusive_after_ns = (request.since_ms - 1) * 1000000;
    uint32_t skipped = 0, served = 0;
    for (const Record& r : records) {
      const bool in_window =
          exclusive_ ? r.version_ns > exclusive_after_ns : r.version_ns >= since_ns;
      if (!in_window) continue;
      if (skipped < request.offset) {
        ++skipped;
        continue;
      }
      if (served >= request.limit) break;
      host().emit(ferry::Item{r.entity, r.key, r.version, r.body, echo_keys_.count(r.key) > 0});
      ++served;
    }
    return served;
  }

  void delivered(const ferry::Event& event) override {
    if (delivered_log_.empty()) return;
    std::FILE* f = std::fopen(delivered_log_.c_str(), "a");
    if (f == nullptr) throw ferry::Retry("cannot open " + delivered_log_);
    std::string line(event.idempotencyKey());
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), f);
    std::fflush(f);
    std::fclose(f);
  }

 private:
  void applyFailFile() const {
    if (fail_file_.empty()) return;
    bool exists = false;
    std::istringstream words(firstLine(fail_file_, &exists));
    if (!exists) return;
    std::string word;
    words >> word;
    if (word == "retry") throw ferry::Retry("scripted outage");
    if (word == "retry_message") {
      std::string rest;
      std::getline(words, rest);
      throw ferry::Retry(rest);
    }
    if (word == "retry_after") {
      int64_t ms = 0;
      words >> ms;
      throw ferry::Retry("scripted 429", ms);
    }
    if (word == "auth") throw ferry::AuthError("scripted: invalid credentials");
    if (word == "fatal") throw ferry::Fatal("scripted fatal");
  }

  // The remote's current state: the last line of each (entity, key) wins. A line that does not
  // parse (a test writing it right now) is ignored.
  std::vector<Record> load() const {
    std::ifstream in(data_, std::ios::binary);
    if (!in) throw ferry::Retry("dataset " + data_ + " cannot be read");
    std::map<std::pair<std::string, std::string>, Record> latest;
    std::string line;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        Poco::JSON::Parser parser;
        auto object = parser.parse(line).extract<Poco::JSON::Object::Ptr>();
        Record r;
        r.entity = object->getValue<std::string>("entity");
        r.key = object->getValue<std::string>("key");
        r.version = object->getValue<std::string>("version");
        auto ns = parseInstantNs(r.version);
        if (!ns) continue;
        r.version_ns = *ns;
        std::ostringstream body;
        Poco::JSON::Stringifier::stringify(object->get("body"), body, 0);
        r.body = body.str();
        latest[{r.entity, r.key}] = std::move(r);
      } catch (const std::exception&) {
        continue;  // partially written or malformed line
      }
    }
    std::vector<Record> out;
    out.reserve(latest.size());
    for (auto& [k, r] : latest) out.push_back(std::move(r));
    return out;
  }

  std::string data_;
  bool exclusive_;
  std::string fail_file_;
  int64_t fail_first_;
  std::string delivered_log_;
  int64_t slow_ms_;
  std::unordered_set<std::string> echo_keys_;
  int64_t fetches_ = 0;
};

}  // namespace

FERRY_SOURCE_PLUGIN(TestSource, "test_source", "1.0.0",
                    "test source: a paged remote simulated over a JSON Lines dataset", kOptions)
