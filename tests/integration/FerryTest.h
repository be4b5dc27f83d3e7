// The fixture of the end-to-end tests: a temporary directory with a config, and shortcuts for
// the commands a user types (`ferry run --once`, `ferry status --json`, `ferry dead-letters`).
#pragma once

#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "Harness.h"

namespace ferry::it {

// "exit 3; stderr: …" for assertion messages.
inline std::string describe(const RunResult& r) {
  std::string err = r.err.size() > 4000 ? "…" + r.err.substr(r.err.size() - 4000) : r.err;
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (killed after deadline)" : "") +
         "\n--- stdout:\n" + r.out.substr(0, 4000) + "\n--- stderr:\n" + err;
}

inline int64_t num(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  return o->getValue<int64_t>(key);
}
inline std::string str(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  return o->optValue<std::string>(key, "");
}

class FerryTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      dir_.keep();
      std::cerr << "[ kept     ] " << dir_.path() << "\n";
    }
  }

  // Writes the config: the [host] section, then `sections`.
  void writeConfig(const std::string& sections) {
    writeFile(config_, hostSection(dir_) + sections);
  }

  // A [source.<name>] section over `data`, polling fast; `extra` ("key = value" lines) adds keys
  // or overrides the defaults.
  static std::string sourceSection(const std::string& name, const std::string& data,
                                   const std::string& extra = "") {
    return section("source." + name,
                   {{"plugin", "test_source"},
                    {"interval", "200ms"},
                    {"lookback", "0s"},
                    {"start_from", "2000-01-01T00:00:00Z"},
                    {"page_size", "10"},
                    {"data", data}},
                   extra);
  }
  static std::string sinkSection(const std::string& name, const std::string& out,
                                 const std::string& extra = "") {
    return section(
        "sink." + name,
        {{"plugin", "test_sink"}, {"batch_size", "50"}, {"batch_delay", "50ms"}, {"out", out}},
        extra);
  }
  static std::string section(const std::string& title,
                             const std::vector<std::pair<std::string, std::string>>& defaults,
                             const std::string& extra) {
    std::string text = "[" + title + "]\n";
    for (const auto& [key, value] : defaults) {
      bool overridden = extra.rfind(key + " ", 0) == 0 || extra.rfind(key + "=", 0) == 0 ||
                        extra.find("\n" + key + " ") != std::string::npos ||
                        extra.find("\n" + key + "=") != std::string::npos;
      if (!overridden) text += key + " = " + value + "\n";
    }
    return text + extra + "\n";
  }

  RunResult ferry(const std::vector<std::string>& args, std::chrono::seconds deadline = 120s) {
    return runFerry(args, dir_.path(), deadline);
  }
  RunResult runOnce() { return ferry({"run", "--config", config_, "--once"}); }

  // `ferry status --config … --json`, parsed; null (with a test failure) when it fails.
  Poco::JSON::Object::Ptr status() {
    RunResult r = ferry({"status", "--config", config_, "--json"}, 60s);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "ferry status failed: " << describe(r);
      return {};
    }
    try {
      return parseObject(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "ferry status --json printed no JSON object: " << describe(r);
      return {};
    }
  }

  // The same without failing the test: for polling while `ferry run` starts up.
  Poco::JSON::Object::Ptr tryStatus() {
    RunResult r = ferry({"status", "--config", config_, "--json"}, 60s);
    if (r.exit_code != 0) return {};
    try {
      return parseObject(r.out);
    } catch (const std::exception&) {
      return {};
    }
  }

  // The named source or sink of a status answer; null when absent.
  static Poco::JSON::Object::Ptr instance(const Poco::JSON::Object::Ptr& status,
                                          const std::string& list, const std::string& name) {
    if (status.isNull()) return {};
    return findNamed(status->getArray(list), name);
  }

  // Waits until `ferry status` shows the named source or sink ("sources"/"sinks") in `state`;
  // returns that instance, or null when it did not get there within a minute.
  Poco::JSON::Object::Ptr waitForState(const std::string& list, const std::string& name,
                                       const std::string& state) {
    Poco::JSON::Object::Ptr found;
    waitUntil([&] {
      found = instance(tryStatus(), list, name);
      return !found.isNull() && str(found, "state") == state;
    });
    return !found.isNull() && str(found, "state") == state ? found : nullptr;
  }

  // `ferry dead-letters list --json [--sink NAME]`, parsed; null (with a failure) when it fails.
  Poco::JSON::Array::Ptr deadLetters(const std::string& sink = "") {
    std::vector<std::string> args{"dead-letters", "list", "--config", config_};
    if (!sink.empty()) args.insert(args.end(), {"--sink", sink});
    args.push_back("--json");
    RunResult r = ferry(args, 60s);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "ferry dead-letters list failed: " << describe(r);
      return {};
    }
    try {
      return parseArray(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "ferry dead-letters list --json printed no JSON array: " << describe(r);
      return {};
    }
  }

  TempDir dir_;
  std::string config_ = dir_.file("ferry.ini");
};

}  // namespace ferry::it
