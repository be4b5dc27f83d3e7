#include "app/App.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/Logger.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <thread>

#include "app/JournalOwner.h"
#include "config/Config.h"
#include "delivery/Delivery.h"
#include "journal/Journal.h"
#include "loader/Loader.h"
#include "ops/AdminServer.h"
#include "pipeline/Pipeline.h"
#include "services/Logging.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;
using Poco::Util::Option;

constexpr const char* kDefaultConfig = "/etc/ferry/ferry.ini";

// SIGINT/SIGTERM are blocked in every thread and taken by one watcher thread, so that no
// runner is interrupted in the middle of a journal transaction or a plugin call.
class SignalWatcher {
 public:
  template <class F>
  explicit SignalWatcher(F on_signal) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this, on_signal] {
      timespec slice{0, 200 * 1000 * 1000};
      while (!done_.load()) {
        int sig = sigtimedwait(&set_, nullptr, &slice);
        if (sig == SIGINT || sig == SIGTERM) {
          received_ = sig;
          on_signal(sig);
        }
      }
    });
  }
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }
  int received() const { return received_.load(); }

 private:
  sigset_t set_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::atomic<int> received_{0};
};

std::string executableDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

// A fresh directory under $TMPDIR (or /tmp), removed with its content on destruction.
struct ScratchDir {
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/ferry-check.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a temporary directory " + pattern + ": " +
                               std::strerror(errno));
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path;
};

// The journal of a command that reads it: never created here (NoJournal when missing).
std::unique_ptr<Journal> openExistingJournal(const std::string& path) {
  requireJournal(path);
  return openSqliteJournal(path);
}

// Pads to `width`, and always leaves one blank so that a long name never runs into the next
// column.
std::string padRight(std::string s, size_t width) {
  s.append(s.size() < width ? width - s.size() : 1, ' ');
  return s;
}

}  // namespace

App::App() { setUnixOptions(true); }

void App::defineOptions(Poco::Util::OptionSet& options) {
  // Poco's own defaults (config files beside the binary) are not ours: options only.
  options.addOption(Option("help", "h", "show this help"));
  options.addOption(Option("version", "V", "print the version"));
  options.addOption(Option("config", "c", "configuration file (default /etc/ferry/ferry.ini)")
                        .argument("FILE"));
  options.addOption(
      Option("plugin-dir", "", "plugin directory (overrides [host] plugin_dir)").argument("DIR"));
  options.addOption(Option("once", "", "run: catch up once, deliver, and exit"));
  options.addOption(Option("json", "", "status, dead-letters list: print JSON"));
  options.addOption(
      Option("connect", "", "check: also create every instance and test its connection"));
  options.addOption(Option("sink", "", "dead-letters: the sink").argument("NAME"));
  options.addOption(
      Option("id", "", "dead-letters replay: one dead letter (repeatable)").argument("N").repeatable(true));
}

void App::handleOption(const std::string& name, const std::string& value) {
  if (name == "help") help_ = true;
  else if (name == "version") version_ = true;
  else if (name == "config") config_ = value;
  else if (name == "plugin-dir") plugin_dir_ = value;
  else if (name == "once") once_ = true;
  else if (name == "json") json_ = true;
  else if (name == "connect") connect_ = true;
  else if (name == "sink") sink_ = value;
  else if (name == "id") {
    try {
      ids_.push_back(std::stoll(value));
    } catch (...) {
      throw Poco::InvalidArgumentException("--id needs a number, got '" + value + "'");
    }
  }
}

void App::printHelp() {
  std::cout << "ferry " FERRY_VERSION " — moves every order and shipment change from the platforms\n"
               "you use into your ERP's CSV folder, SQL database or REST endpoint.\n\n"
               "Usage: ferry [options] <command>\n\n"
               "Commands:\n"
               "  run                      run every enabled source and sink until SIGTERM/SIGINT\n"
               "                           (--once: catch up, deliver everything, exit)\n"
               "  check                    validate the config and load the plugins\n"
               "                           (--connect: also start each instance and test its\n"
               "                           connection and credentials)\n"
               "  plugins                  list the plugins with their option tables\n"
               "  status                   whether a ferry runs (its PID), cursors, sink offsets\n"
               "                           and backlog, dead letters (--json)\n"
               "  dead-letters list        dead letters with their reasons (--sink, --json)\n"
               "  dead-letters replay      write dead letters again: --sink NAME [--id N ...]\n"
               "  trace KEY                every journalled version of a record: when it was\n"
               "                           fetched, which sinks got it, when and how (--json)\n\n"
               "Options:\n"
               "  -c, --config FILE        configuration (default /etc/ferry/ferry.ini, or $FERRY_CONFIG)\n"
               "      --plugin-dir DIR     plugin directory (overrides [host] plugin_dir)\n"
               "      --once, --json, --connect, --sink NAME, --id N\n"
               "  -V, --version            print the version\n"
               "  -h, --help               this help\n\n"
               "One ferry per journal: `run` and `dead-letters replay` own the journal while\n"
               "they run (lock file <journal>.lock). status, trace, dead-letters list and check\n"
               "work beside them and never create a journal; the first three need no secrets.\n\n"
               "Exit codes: 0 ok, 1 a source or sink stopped (run --once), 64 usage,\n"
               "65 trace found no event of that key, 66 no journal yet (status, trace,\n"
               "dead-letters), 69 a connection test failed (check --connect), 74 journal error,\n"
               "75 another ferry runs on the journal (run, dead-letters replay), 77 root on a\n"
               "journal of another user (run, dead-letters replay: use sudo -u <user> ferry ...),\n"
               "78 configuration or plugin error.\n";
}

std::string App::configPath() const {
  if (!config_.empty()) return config_;
  if (const char* env = std::getenv("FERRY_CONFIG"); env != nullptr && *env != '\0') return env;
  return kDefaultConfig;
}

std::string App::pluginDir(const std::string& from_config) const {
  if (!plugin_dir_.empty()) return fs::absolute(plugin_dir_).string();
  if (!from_config.empty()) return from_config;
  if (const char* env = std::getenv("FERRY_PLUGIN_DIR"); env != nullptr && *env != '\0')
    return fs::absolute(env).string();
  return (fs::path(executableDir()) / ".." / "lib" / "ferry" / "plugins").lexically_normal().string();
}

void App::setUpLogging(const std::string& level, const std::string& file,
                       const std::string& format) {
  try {
    configureLogging(LogSettings{level, file, format});
  } catch (const std::runtime_error& e) {
    throw ConfigError(configPath() + ": [host] log_file: " + e.what());
  }
}

int App::main(const std::vector<std::string>& args) {
  if (version_) {
    std::cout << "ferry " FERRY_VERSION " (plugin ABI " << FERRY_ABI_VERSION << ")\n";
    return EXIT_OK;
  }
  if (help_ || args.empty()) {
    printHelp();
    return args.empty() && !help_ ? EXIT_USAGE : EXIT_OK;
  }
  const std::string& command = args[0];
  try {
    if (command == "run") return commandRun();
    if (command == "check") return commandCheck();
    if (command == "plugins") return commandPlugins();
    if (command == "status") return commandStatus();
    if (command == "dead-letters") return commandDeadLetters(args);
    if (command == "trace") return commandTrace(args);
    std::cerr << "ferry: unknown command '" << command
              << "'; commands: run, check, plugins, status, dead-letters, trace (see ferry --help)\n";
    return EXIT_USAGE;
  } catch (const ConfigError& e) {
    std::cerr << "ferry: configuration error: " << e.what() << "\n";
    return EXIT_CONFIG;
  } catch (const LoadError& e) {
    std::cerr << "ferry: plugin error: " << e.what() << "\n";
    return EXIT_CONFIG;
  } catch (const JournalError& e) {
    std::cerr << "ferry: journal error: " << e.what() << "\n";
    return EXIT_IOERR;
  } catch (const NoJournal& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return EXIT_NOINPUT;
  } catch (const JournalBusy& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return EXIT_TEMPFAIL;
  } catch (const JournalNotOurs& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return EXIT_NOPERM;
  } catch (const std::exception& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return EXIT_SOFTWARE;
  }
}

int App::commandRun() {
  Config config = loadConfig(configPath());
  // Before anything writes (the log file included): one ferry per journal, never as root on the
  // service user's journal.
  JournalLock owner(config.host.journal, "run --config " + config.file + (once_ ? " --once" : ""));
  setUpLogging(config.host.log_level, config.host.log_file, config.host.log_format);
  Poco::Logger& log = Poco::Logger::get("ferry");
  PluginRegistry plugins = PluginRegistry::loadDirectory(pluginDir(config.host.plugin_dir));
  validate(config, plugins);
  auto journal = openSqliteJournal(config.host.journal);
  int code = EXIT_OK;
  {
    Pipeline pipeline(config, plugins, *journal, log);
    SignalWatcher signals([&pipeline, &log](int sig) {
      log.information(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                      ", stopping: batches in flight finish, nothing is half-committed");
      pipeline.requestStop();
    });
    pipeline.create();
    std::unique_ptr<AdminServer> admin;
    if (!config.host.admin_listen.empty()) {
      admin = std::make_unique<AdminServer>(config, pipeline.services(), config.host.admin_listen);
      log.information("admin endpoint on http://" + config.host.admin_listen.substr(
                          0, config.host.admin_listen.rfind(':')) + ":" +
                      std::to_string(admin->port()) + "/healthz and /metrics");
    }
    log.information("ferry " FERRY_VERSION " running with " + config.file + ", journal " +
                    config.host.journal);
    if (once_) {
      code = pipeline.runOnce();
    } else {
      pipeline.start();
      auto next_retention = std::chrono::steady_clock::now();
      while (!pipeline.services().stopping.load()) {
        if (std::chrono::steady_clock::now() >= next_retention) {
          try {
            pipeline.applyRetention();
          } catch (const std::exception& e) {
            log.warning(std::string("retention postponed: ") + e.what());
          }
          next_retention = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      pipeline.stop();
    }
    log.information("stopped cleanly");
  }
  return code;
}

int App::commandCheck() {
  Config config = loadConfig(configPath());
  PluginRegistry plugins = PluginRegistry::loadDirectory(pluginDir(config.host.plugin_dir));
  validate(config, plugins);
  auto count = [](const std::vector<InstanceConfig>& v) {
    size_t n = 0;
    for (const auto& i : v) n += i.enabled ? 1 : 0;
    return n;
  };
  std::cout << config.file << ": OK — " << count(config.sources) << " source(s) and "
            << count(config.sinks) << " sink(s) enabled, " << plugins.all().size()
            << " plugin(s) loaded from " << plugins.directory().string() << "\n";
  for (const auto& list : {&config.sources, &config.sinks})
    for (const auto& i : *list)
      std::cout << "  [" << i.section << "] plugin " << i.plugin
                << (i.enabled ? "" : " (disabled)") << "\n";
  if (!connect_) return EXIT_OK;

  // --connect: create every instance (option errors a plugin finds itself show here) and ask
  // each to test its connection, without polling or writing anything.
  setUpLogging("warning", "");
  // Before the first run, the plugins get a scratch journal: check must not create the real one
  // (run as root, it would belong to root and lock the service out).
  std::optional<ScratchDir> scratch;
  if (!fs::exists(config.host.journal)) scratch.emplace();
  auto journal = openSqliteJournal(scratch ? scratch->path + "/journal.db" : config.host.journal);
  Pipeline pipeline(config, plugins, *journal, Poco::Logger::get("ferry"));
  pipeline.create();
  int failures = 0;
  std::cout << "connections:\n";
  for (const auto& [section, problem] : pipeline.checkAll()) {
    std::cout << "  " << section << " " << (problem.empty() ? "OK" : "FAILED: " + problem) << "\n";
    failures += problem.empty() ? 0 : 1;
  }
  return failures == 0 ? EXIT_OK : EXIT_UNAVAILABLE;
}

int App::commandPlugins() {
  std::string dir;
  if (plugin_dir_.empty() && (!config_.empty() || std::getenv("FERRY_CONFIG") != nullptr)) {
    dir = pluginDir(loadConfig(configPath()).host.plugin_dir);
  } else {
    dir = pluginDir("");
  }
  PluginRegistry plugins = PluginRegistry::loadDirectory(dir);
  auto printTable = [](const std::vector<ferry_option_def>& options) {
    size_t w = 4;
    for (const auto& o : options) w = std::max(w, std::string(o.name).size());
    for (const auto& o : options) {
      std::string def = o.required ? "(required)"
                        : o.default_value ? std::string("= ") + o.default_value
                                          : "(optional)";
      std::cout << "    " << padRight(o.name, w + 2) << padRight(optionTypeName(o.type), 10)
                << padRight(def, 28) << (o.secret ? "[secret] " : "") << (o.help ? o.help : "");
      if (o.choices) std::cout << " (one of: " << o.choices << ")";
      std::cout << "\n";
    }
  };
  std::cout << "Plugins in " << plugins.directory().string() << ":\n";
  for (const auto& p : plugins.all()) {
    const auto* d = p->descriptor;
    std::cout << "\n" << d->name << " (" << (p->isSource() ? "source" : "sink") << ", version "
              << d->version << ") — " << (d->description ? d->description : "") << "\n  file "
              << p->file.string() << "\n  options:\n";
    printTable(p->options);
  }
  std::cout << "\nHost settings, allowed in every [source.<name>] section:\n";
  printTable(hostSourceOptions());
  std::cout << "Host settings, allowed in every [sink.<name>] section:\n";
  printTable(hostSinkOptions());
  return EXIT_OK;
}

int App::commandStatus() {
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto journal = openExistingJournal(config.host.journal);
  const std::optional<pid_t> owner = journalOwner(config.host.journal);
  EventLog& log = journal->events();
  SinkLedger& ledger = journal->ledger();
  const int64_t last = log.lastSequence();
  std::map<std::string, Cursor> cursors;
  for (auto& [name, c] : log.cursors()) cursors[name] = c;
  std::map<std::string, InstanceStatus> statuses;
  for (auto& s : journal->state().statuses()) statuses[s.kind + "/" + s.name] = s;
  std::map<std::string, int64_t> dead;
  for (const auto& d : ledger.deadLetters(std::nullopt)) ++dead[d.sink];

  struct Row {
    std::string name, state, message, cursor;
    std::optional<Cursor> source_cursor;
    int64_t offset = 0, backlog = 0, dead_letters = 0;
  };
  auto row = [&](const std::string& kind, const InstanceConfig& i) {
    Row r;
    r.name = i.name;
    r.state = "never run";
    if (!i.enabled) {
      r.state = "disabled";
    } else if (auto it = statuses.find(kind + "/" + i.name); it != statuses.end()) {
      r.state = it->second.state;
      r.message = it->second.message;
    }
    return r;
  };
  std::vector<Row> sources, sinks;
  for (const auto& s : config.sources) {
    Row r = row("source", s);
    if (auto it = cursors.find(s.name); it != cursors.end()) r.source_cursor = it->second;
    sources.push_back(r);
  }
  for (const auto& s : config.sinks) {
    Row r = row("sink", s);
    r.offset = ledger.sinkOffset(s.name);
    r.backlog = backlog(log, ledger, s);
    r.dead_letters = dead[s.name];
    sinks.push_back(r);
  }

  if (json_) {
    Poco::JSON::Object::Ptr root = new Poco::JSON::Object;
    root->set("journal", config.host.journal);
    root->set("running", owner.has_value());
    root->set("pid",
              owner ? Poco::Dynamic::Var(static_cast<int64_t>(*owner)) : Poco::Dynamic::Var());
    root->set("last_sequence", last);
    Poco::JSON::Array::Ptr src = new Poco::JSON::Array, snk = new Poco::JSON::Array;
    for (const auto& r : sources) {
      Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
      o->set("name", r.name);
      o->set("state", r.state);
      o->set("message", r.message);
      if (r.source_cursor) {
        Poco::JSON::Object::Ptr c = new Poco::JSON::Object;
        c->set("since", r.source_cursor->since);
        c->set("offset", r.source_cursor->offset);
        o->set("cursor", c);
      } else {
        o->set("cursor", Poco::Dynamic::Var());
      }
      src->add(o);
    }
    for (const auto& r : sinks) {
      Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
      o->set("name", r.name);
      o->set("state", r.state);
      o->set("message", r.message);
      o->set("offset", r.offset);
      o->set("backlog", r.backlog);
      o->set("dead_letters", r.dead_letters);
      snk->add(o);
    }
    root->set("sources", src);
    root->set("sinks", snk);
    root->stringify(std::cout);
    std::cout << "\n";
    return EXIT_OK;
  }
  std::cout << "journal " << config.host.journal << ", last sequence " << last << "\nferry "
            << (owner ? "running (PID " + std::to_string(*owner) + ")"
                      : "not running (the states below are where the last run left them)")
            << "\n\nSOURCES\n";
  for (const auto& r : sources) {
    std::string cursor = "(none yet)";
    if (r.source_cursor)
      cursor = r.source_cursor->since +
               (r.source_cursor->offset ? " +" + std::to_string(r.source_cursor->offset) : "");
    std::cout << "  " << padRight(r.name, 20) << padRight(r.state, 11) << "cursor " << cursor << "\n";
    if (!r.message.empty()) std::cout << "    " << r.message << "\n";
  }
  std::cout << "\nSINKS\n";
  for (const auto& r : sinks) {
    std::cout << "  " << padRight(r.name, 20) << padRight(r.state, 11) << "offset " << r.offset
              << ", backlog " << r.backlog << ", dead letters " << r.dead_letters << "\n";
    if (!r.message.empty()) std::cout << "    " << r.message << "\n";
  }
  return EXIT_OK;
}

int App::commandTrace(const std::vector<std::string>& args) {
  if (args.size() != 2) {
    std::cerr << "ferry: trace needs exactly one key, e.g. ferry trace cm3x0k2a --config FILE\n";
    return EXIT_USAGE;
  }
  const std::string& key = args[1];
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto journal = openExistingJournal(config.host.journal);
  SinkLedger& ledger = journal->ledger();
  auto events = journal->events().eventsOfKey(key);
  std::vector<DeadLetter> dead;
  for (auto& d : ledger.deadLetters(std::nullopt))
    if (d.event.key == key) dead.push_back(std::move(d));

  // What each configured sink did with one event: delivered (when, what it said), dead-lettered
  // (why), skipped (an echo it does not take, or a source it is not routed from), or pending.
  struct Step {
    std::string sink, outcome, at, detail;
  };
  auto stepsOf = [&](const JournalEvent& e) {
    std::vector<Step> steps;
    auto deliveries = ledger.deliveriesOf(e.sequence);
    for (const auto& sink : config.sinks) {
      TraceStep t = traceStep(ledger, sink, e, deliveries, dead);
      steps.push_back(
          Step{t.sink, t.outcome, t.at_ms > 0 ? formatInstantMs(t.at_ms * 1000000) : "", t.detail});
    }
    return steps;
  };

  if (json_) {
    Poco::JSON::Array out;
    for (const auto& e : events) {
      Poco::JSON::Object o;
      o.set("sequence", e.sequence);
      o.set("id", e.idempotencyKey());
      o.set("source", e.source);
      o.set("entity", e.entity);
      o.set("version", e.version);
      o.set("previous", e.previous);
      o.set("echo", e.echo);
      o.set("fetched_at", formatInstantMs(e.fetched_at_ms * 1000000));
      Poco::JSON::Array sinks;
      for (const auto& step : stepsOf(e)) {
        Poco::JSON::Object s;
        s.set("sink", step.sink);
        s.set("outcome", step.outcome);
        s.set("at", step.at);
        s.set("detail", step.detail);
        sinks.add(s);
      }
      o.set("sinks", sinks);
      out.add(o);
    }
    out.stringify(std::cout);
    std::cout << "\n";
    return events.empty() ? EXIT_DATAERR : EXIT_OK;
  }
  if (events.empty()) {
    std::cout << "no event with key '" << key << "' in " << config.host.journal
              << " (never fetched, or older than the retention)\n";
    for (const auto& d : dead)
      std::cout << "dead letter #" << d.id << " of sink " << d.sink << ": "
                << d.event.idempotencyKey() << ": " << d.reason << "\n";
    return EXIT_DATAERR;
  }
  for (const auto& e : events) {
    std::cout << e.idempotencyKey() << "  (sequence " << e.sequence << ", fetched "
              << formatInstantMs(e.fetched_at_ms * 1000000)
              << (e.previous.empty() ? ", new" : ", previous " + e.previous)
              << (e.echo ? ", echo" : "") << ")\n";
    for (const auto& step : stepsOf(e)) {
      std::cout << "    " << padRight(step.sink, 20) << padRight(step.outcome, 12)
                << (step.at.empty() ? "" : step.at + "  ") << step.detail << "\n";
    }
  }
  return EXIT_OK;
}

int App::commandDeadLetters(const std::vector<std::string>& args) {
  const std::string action = args.size() > 1 ? args[1] : "";
  if (action != "list" && action != "replay") {
    std::cerr << "ferry: dead-letters needs 'list' or 'replay' (see ferry --help)\n";
    return EXIT_USAGE;
  }
  // Neither action needs the secrets: the sinks' options are not used.
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  bool known = sink_.empty();
  for (const auto& s : config.sinks) known = known || s.name == sink_;
  if (!known) {
    std::cerr << "ferry: --sink " << sink_ << ": no such sink in " << config.file << "\n";
    return EXIT_USAGE;
  }
  if (action == "replay") {
    if (sink_.empty()) {
      std::cerr << "ferry: dead-letters replay needs --sink NAME (and optionally --id N ...)\n";
      return EXIT_USAGE;
    }
    requireJournal(config.host.journal);
    // A write: not beside a running ferry (it would be a second writer), not as root.
    JournalLock owner(config.host.journal,
                      "dead-letters replay --config " + config.file + " --sink " + sink_);
    auto journal = openSqliteJournal(config.host.journal);
    int64_t n = journal->ledger().requestReplay(sink_, ids_);
    std::cout << n << " dead letter(s) of sink " << sink_
              << " marked for replay: the next `ferry run` writes them first, ahead of the live "
                 "feed.\n";
    return n == 0 && !ids_.empty() ? EXIT_USAGE : EXIT_OK;
  }
  auto journal = openExistingJournal(config.host.journal);
  auto letters = journal->ledger().deadLetters(sink_.empty() ? std::nullopt : std::optional(sink_));
  if (json_) {
    Poco::JSON::Array out;
    for (const auto& d : letters) {
      Poco::JSON::Object o;
      o.set("id", d.id);
      o.set("sink", d.sink);
      o.set("sequence", d.event.sequence);
      o.set("source", d.event.source);
      o.set("entity", d.event.entity);
      o.set("key", d.event.key);
      o.set("version", d.event.version);
      o.set("reason", d.reason);
      o.set("failed_at", formatInstantMs(d.failed_at_ms * 1000000));
      o.set("replay_requested", d.replay_requested);
      out.add(o);
    }
    out.stringify(std::cout);
    std::cout << "\n";
    return EXIT_OK;
  }
  if (letters.empty()) std::cout << "no dead letters\n";
  for (const auto& d : letters) {
    std::cout << "#" << d.id << "  sink " << d.sink << "  " << d.event.idempotencyKey() << "  (seq "
              << d.event.sequence << ", failed " << formatInstantMs(d.failed_at_ms * 1000000)
              << (d.replay_requested ? ", replay requested" : "") << ")\n    " << d.reason << "\n";
  }
  return EXIT_OK;
}

}  // namespace ferry::core
