// The `ferry` command line: run, check, plugins, status, dead-letters.
#pragma once

#include <Poco/Util/Application.h>
#ifdef _WIN32
#include <Poco/Util/ServerApplication.h>
#endif

#include <optional>
#include <string>
#include <vector>

namespace ferry::core {

struct Config;

// On Windows a ServerApplication: it runs as the Windows service (`ferry run` with the
// service's command line) and registers or unregisters it (--registerService,
// --unregisterService). Elsewhere a plain Application: systemd runs `ferry run`.
#ifdef _WIN32
using AppBase = Poco::Util::ServerApplication;
#else
using AppBase = Poco::Util::Application;
#endif

class App : public AppBase {
 public:
  App();

  // Exit codes beyond Poco's: a source or sink ended stopped (run --once); everything was
  // delivered but new dead letters were left (run --once).
  static constexpr int kExitStopped = 1;
  static constexpr int kExitDeadLetters = 2;

 protected:
  void defineOptions(Poco::Util::OptionSet& options) override;
  void handleOption(const std::string& name, const std::string& value) override;
  int main(const std::vector<std::string>& args) override;

 private:
  int commandRun();
#ifdef _WIN32
  int serviceMain();
#endif
  int commandCheck();
  int commandPlugins();
  int commandStatus();
  int commandPositions();
  int commandSources(const std::vector<std::string>& args);
  int commandSinks(const std::vector<std::string>& args);
  int commandDeadLetters(const std::vector<std::string>& args);
  int submit(const Config& config, const std::string& action, const std::string& target,
             const std::string& argument, const std::string& command);
  int commandTrace(const std::vector<std::string>& args);
  void printHelp();
  void setUpLogging(const std::string& level, const std::string& file,
                    const std::string& format = "text");
  std::string configPath() const;
  std::string pluginDir(const std::string& from_config) const;

  bool help_ = false;
  bool version_ = false;
  bool once_ = false;
  bool json_ = false;
  bool connect_ = false;
  std::string config_;
  std::string plugin_dir_;
  std::string sink_;
  std::string source_;
  std::vector<std::string> ids_;  // --id values: N (a sink's dead letter) or sN (a source's)
  std::string from_;
  bool redeliver_ = false;
  std::string to_;
  std::optional<int64_t> to_sequence_;
};

}  // namespace ferry::core
