#include "app/App.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/Logger.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>
#include <signal.h>
#ifdef _WIN32
#include <windows.h>
#include <shellapi.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "app/Capacity.h"
#include "app/JournalOwner.h"
#include "app/LeaseKeeper.h"
#include "app/Operator.h"
#include "config/Config.h"
#include "delivery/Delivery.h"
#include "journal/Journal.h"
#include "loader/Loader.h"
#include "ops/AdminServer.h"
#include "pipeline/Pipeline.h"
#include "services/Logging.h"
#include "services/Platform.h"
#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;
using Poco::Util::Option;

#ifndef _WIN32
constexpr int kReloadSignal = SIGHUP;
constexpr const char* kStopName = "SIGTERM";

// SIGINT/SIGTERM/SIGHUP are blocked in every thread and taken by one watcher thread, so that no
// runner is interrupted in the middle of a journal transaction or a plugin call.
class SignalWatcher {
 public:
  template <class F>
  explicit SignalWatcher(F on_signal) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this, on_signal] {
      timespec slice{0, 200 * 1000 * 1000};
      while (!done_.load()) {
        int sig = sigtimedwait(&set_, nullptr, &slice);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
          if (sig != SIGHUP) received_ = sig;
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
#else
// Windows has no signals: Poco's ServerApplication turns the service's stop (and, in a console,
// Ctrl+C, Ctrl+Break and closing the console) into a termination request; one watcher thread
// waits for it (`wait`) and hands it on as SIGTERM. `release` ends the wait when ferry stops by
// itself (run --once). There is no reload request on Windows: restart the service.
constexpr int kReloadSignal = -1;
constexpr const char* kStopName = "a stop request (service stop, Ctrl+C or console close)";

class SignalWatcher {
 public:
  template <class F>
  SignalWatcher(std::function<void()> wait, std::function<void()> release, F on_signal)
      : release_(std::move(release)) {
    thread_ = std::thread([this, wait, on_signal] {
      wait();
      if (done_.load()) return;
      received_ = SIGTERM;
      on_signal(SIGTERM);
    });
  }
  ~SignalWatcher() {
    done_ = true;
    if (received_.load() == 0) release_();
    thread_.join();
  }
  int received() const { return received_.load(); }

 private:
  std::function<void()> release_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::atomic<int> received_{0};
};
#endif

// A fresh directory under $TMPDIR (or /tmp), removed with its content on destruction.
struct ScratchDir {
  ScratchDir() : path(platform::makeScratchDir("ferry-check")) {}
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path;
};

// The journal of a command that reads it: never created here (NoJournal when missing).
std::unique_ptr<Journal> openExistingJournal(const HostSettings& host) {
  requireJournal(host.journal);
  return openJournal(host.journal, host.host_id);
}

int64_t number(const std::string& option, const std::string& value) {
  try {
    size_t used = 0;
    const int64_t n = std::stoll(value, &used);
    if (used == value.size()) return n;
  } catch (...) {
  }
  throw Poco::InvalidArgumentException(option + " needs a number, got '" + value + "'");
}

// {"ids": [...]}
std::string idsArgument(const std::vector<int64_t>& ids) {
  Poco::JSON::Object args;
  Poco::JSON::Array list;
  for (int64_t id : ids) list.add(id);
  args.set("ids", list);
  std::ostringstream out;
  args.stringify(out);
  return out.str();
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
#ifdef _WIN32
  AppBase::defineOptions(options);  // --registerService, --unregisterService, --displayName, ...
#endif
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
  options.addOption(Option("source", "", "dead-letters: the source").argument("NAME"));
  options.addOption(Option("id", "", "dead-letters replay: one dead letter (repeatable)")
                        .argument("N")
                        .repeatable(true));
  options.addOption(Option("from", "", "sources backfill: the instant to fetch from").argument("INSTANT"));
  options.addOption(Option("redeliver", "", "sources backfill: deliver versions already seen again"));
  options.addOption(Option("to", "", "sinks rewind: write again what was fetched from this instant")
                        .argument("INSTANT"));
  options.addOption(
      Option("to-sequence", "", "sinks rewind: write again what follows this sequence").argument("N"));
}

void App::handleOption(const std::string& name, const std::string& value) {
#ifdef _WIN32
  AppBase::handleOption(name, value);  // the service options' callbacks
#endif
  if (name == "help") help_ = true;
  else if (name == "version") version_ = true;
  else if (name == "config") config_ = value;
  else if (name == "plugin-dir") plugin_dir_ = value;
  else if (name == "once") once_ = true;
  else if (name == "json") json_ = true;
  else if (name == "connect") connect_ = true;
  else if (name == "sink") sink_ = value;
  else if (name == "source") source_ = value;
  else if (name == "id") ids_.push_back(value);
  else if (name == "from") from_ = value;
  else if (name == "redeliver") redeliver_ = true;
  else if (name == "to") to_ = value;
  else if (name == "to-sequence") to_sequence_ = number("--to-sequence", value);
}

namespace {

// `ferry help COMMAND` and `ferry COMMAND --help`.
const std::map<std::string, std::string>& commandHelp() {
  static const std::map<std::string, std::string> help = {
      {"run",
       "ferry run [--once] [-c FILE]\n\n"
       "Runs every enabled source and sink until SIGTERM/SIGINT. Owns the journal while it runs\n"
       "(a second `run` exits 75 naming the PID) and carries out the position and dead-letter\n"
       "commands given meanwhile. Reports sources whose start_from changed since their first run.\n\n"
       "  --once   catch up once, deliver everything, exit: 0 all delivered, 1 a source or sink\n"
       "           stopped, 2 all done but new dead letters were left (ferry dead-letters list)\n"},
      {"check",
       "ferry check [--connect] [-c FILE]\n\n"
       "Validates the config and loads the plugins; reports sources whose start_from changed\n"
       "since their first run. --connect also creates each instance and tests its connection\n"
       "and credentials (exit 69 when one fails).\n"},
      {"plugins", "ferry plugins [-c FILE | --plugin-dir DIR]\n\n"
                  "Lists the plugins with their option tables.\n"},
      {"status",
       "ferry status [--json] [-c FILE]\n\n"
       "Whether a ferry runs (its PID); per source its state, cursor, last poll, last success,\n"
       "events and the progress of a catch-up; per sink its state (paused, disabled, no longer\n"
       "configured: each holds retention), offset, backlog, last write, last success, events and\n"
       "dead letters. Needs no secrets, creates nothing.\n"},
      {"positions",
       "ferry positions [--json] [-c FILE]\n\n"
       "Each source's cursor and each sink's offset (with the journal's retained range), the\n"
       "positions the commands below move. Needs no secrets, creates nothing.\n"},
      {"sources",
       "ferry sources backfill NAME --from INSTANT [--redeliver] [-c FILE]\n\n"
       "Moves the source's cursor to INSTANT (earlier: a backfill; later: skips ahead). Without\n"
       "--redeliver only versions never seen before are delivered; with it, every version fetched\n"
       "from INSTANT on is delivered again (same idempotency keys). Progress shows in `ferry\n"
       "status` and the log. `reset` is the same command.\n"},
      {"sinks",
       "ferry sinks rewind NAME (--to-sequence N | --to INSTANT) [-c FILE]\n"
       "ferry sinks pause NAME | resume NAME | forget NAME [-c FILE]\n\n"
       "rewind   writes again the events after sequence N, or those fetched from INSTANT on;\n"
       "         refused (exit 65) when retention already removed some of them\n"
       "pause    stops writing to the sink, durably (it stays paused across restarts); its\n"
       "         events stay in the journal, however old, until it is resumed\n"
       "resume   writes again from where it paused\n"
       "forget   a disabled or removed sink stops holding retention (it keeps its events until\n"
       "         then, so that enabling it again loses nothing)\n"},
      {"dead-letters",
       "ferry dead-letters list [--sink NAME | --source NAME] [--json] [-c FILE]\n"
       "ferry dead-letters show ID [-c FILE]\n"
       "ferry dead-letters replay --sink NAME [--id N ...] [-c FILE]\n"
       "ferry dead-letters replay --source NAME [--id sN ...] [-c FILE]\n"
       "ferry dead-letters drop ID [ID ...] [-c FILE]\n\n"
       "A sink's dead letter (ID N) is an event its sink refused; a source's (ID sN) is an item\n"
       "the source could not read (not an object, an id of the wrong type, a key with a control\n"
       "character), set aside after [source.*] set_aside_after fetches so that the source goes\n"
       "on without it.\n\n"
       "list     dead letters with their reasons\n"
       "show     one dead letter with its event's body, or the item's text as received\n"
       "replay   a sink writes them again (all of the sink, or the ids given), ahead of the live\n"
       "         feed; a source reads them again from where they were (once the cause is fixed:\n"
       "         read well they become events, still unreadable they are set aside again)\n"
       "drop     removes them for good\n"},
      {"trace",
       "ferry trace KEY|NUMBER [--json] [-c FILE]\n\n"
       "Every journalled version of a record, found by its key or by a business number its\n"
       "source names (DuckHub order number, Tradecloud purchase-order or shipment number): when\n"
       "it was fetched, which sinks got it (a replayed dead letter shows as a delivery), when and\n"
       "how. Exit 65 when no event has that key or number.\n"},
  };
  return help;
}

}  // namespace

void App::printHelp() {
  std::cout << "ferry " FERRY_VERSION " — moves every order and shipment change from the platforms\n"
               "you use into your ERP's CSV folder, SQL database or REST endpoint.\n\n"
               "Usage: ferry [options] <command>      ferry help <command>   (or <command> --help)\n\n"
               "Commands:\n"
               "  run                      run every enabled source and sink until SIGTERM/SIGINT\n"
               "                           (--once: catch up, deliver everything, exit)\n"
               "  check                    validate the config and load the plugins\n"
               "                           (--connect: also test each connection)\n"
               "  plugins                  list the plugins with their option tables\n"
               "  status                   whether a ferry runs, per source and sink its state,\n"
               "                           position, last poll/write, last success, counts (--json)\n"
               "  positions                sources' cursors and sinks' offsets (--json)\n"
               "  sources backfill NAME    move a source's cursor: --from INSTANT [--redeliver]\n"
               "  sinks rewind NAME        write again: --to-sequence N or --to INSTANT\n"
               "  sinks pause|resume NAME  stop or restart writing to a sink, durably\n"
               "  sinks forget NAME        a disabled or removed sink stops holding retention\n"
               "  dead-letters list        dead letters of sinks (N) and sources (sN) with their\n"
               "                           reasons (--sink, --source, --json)\n"
               "  dead-letters show ID     one dead letter with its body or raw item\n"
               "  dead-letters replay      write again: --sink NAME [--id N ...]; read again:\n"
               "                           --source NAME [--id sN ...]\n"
               "  dead-letters drop ID...  remove dead letters for good\n"
               "  trace KEY|NUMBER         every journalled version of a record, by key or order,\n"
               "                           PO or shipment number: when it was fetched, which\n"
               "                           sinks got it, when and how (--json)\n\n"
               "Options:\n"
               "  -c, --config FILE        configuration (default /etc/ferry/ferry.ini, or $FERRY_CONFIG)\n"
               "      --plugin-dir DIR     plugin directory (overrides [host] plugin_dir)\n"
               "  -V, --version            print the version\n"
               "  -h, --help               this help, or a command's\n\n"
               "One ferry per journal: `run` owns the journal while it runs (lock file\n"
               "<journal>.lock). The commands that move positions or dead letters (sources, sinks,\n"
               "dead-letters replay/drop) are carried out by the running ferry within a second, or\n"
               "by the command itself when none runs. status, positions, trace, dead-letters\n"
               "list/show and check work beside it, need no secrets and never create a journal.\n\n"
               "Exit codes: 0 ok, 1 a source or sink stopped (run --once), 2 run --once left new\n"
               "dead letters, 64 usage, 65 nothing found (trace, dead-letters show) or a request\n"
               "refused (e.g. a rewind beyond retention), 66 no journal yet, 69 a connection test\n"
               "failed (check --connect), 74 journal error, 75 another ferry runs on the journal\n"
               "(run), or it did not answer a request in time, 77 root on a journal of another\n"
               "user (use sudo -u <user> ferry ...), 78 configuration or plugin error.\n";
}

std::string App::configPath() const {
  if (!config_.empty()) return config_;
  if (const char* env = std::getenv("FERRY_CONFIG"); env != nullptr && *env != '\0') return env;
  return platform::defaultConfigPath();
}

std::string App::pluginDir(const std::string& from_config) const {
  if (!plugin_dir_.empty()) return fs::absolute(plugin_dir_).string();
  if (!from_config.empty()) return from_config;
  if (const char* env = std::getenv("FERRY_PLUGIN_DIR"); env != nullptr && *env != '\0')
    return fs::absolute(env).string();
  return platform::defaultPluginDir();
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
#ifdef _WIN32
  if (args.empty() && config().getBool("application.runAsService", false)) return serviceMain();
#endif
  if (version_) {
    std::cout << "ferry " FERRY_VERSION " (plugin ABI " << hostAbi() << ")\n";
    return EXIT_OK;
  }
  // `ferry help [COMMAND]`, `ferry COMMAND --help`
  if (!args.empty() && (help_ || args[0] == "help")) {
    const std::string topic = args[0] == "help" ? (args.size() > 1 ? args[1] : "") : args[0];
    if (topic.empty()) {
      printHelp();
      return EXIT_OK;
    }
    auto it = commandHelp().find(topic);
    if (it == commandHelp().end()) {
      std::cerr << "ferry: no command '" << topic << "' (see ferry help)\n";
      return EXIT_USAGE;
    }
    std::cout << it->second;
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
    if (command == "positions") return commandPositions();
    if (command == "sources") return commandSources(args);
    if (command == "sinks") return commandSinks(args);
    if (command == "dead-letters") return commandDeadLetters(args);
    if (command == "trace") return commandTrace(args);
    std::cerr << "ferry: unknown command '" << command
              << "'; commands: run, check, plugins, status, positions, sources, sinks, "
                 "dead-letters, trace (see ferry help)\n";
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

namespace {

// The [host] settings a reload cannot apply (they shape the journal, the plugins, the admin
// endpoint, the log or runners already running), by key; log_level, retention and
// unhealthy_after are applied.
std::vector<std::string> hostChangesNeedingRestart(const HostSettings& a, const HostSettings& b) {
  std::vector<std::string> keys;
  auto check = [&](bool same, const char* key) {
    if (!same) keys.emplace_back(key);
  };
  check(a.journal == b.journal, "journal");
  check(a.host_id == b.host_id, "host_id");
  check(a.plugin_dir == b.plugin_dir, "plugin_dir");
  check(a.log_file == b.log_file, "log_file");
  check(a.log_format == b.log_format, "log_format");
  check(a.retry_initial_ms == b.retry_initial_ms, "retry_initial");
  check(a.retry_max_ms == b.retry_max_ms, "retry_max");
  check(a.commit_pages == b.commit_pages, "commit_pages");
  check(a.commit_interval_ms == b.commit_interval_ms, "commit_interval");
  check(a.admin_listen == b.admin_listen, "admin_listen");
  check(a.workers == b.workers, "workers");
  check(a.lease_time_ms == b.lease_time_ms, "lease_time");
  return keys;
}

// SIGHUP: reads the config file again. An invalid one (or one changing a [host] setting that
// needs a restart) is logged and the running configuration goes on; a valid one restarts only
// the instances that were added, removed or changed.
void reload(Pipeline& pipeline, LiveConfig& live, const PluginRegistry& plugins) {
  Poco::Logger& log = Poco::Logger::get("ferry");
  try {
    reopenLogFile();
  } catch (const std::exception& e) {
    log.error(std::string("log file not reopened, still writing the old one: ") + e.what());
  }
  const Config& current = live.get();
  try {
    Config next = loadConfig(current.file);
    validate(next, plugins);
    const auto keys = hostChangesNeedingRestart(current.host, next.host);
    if (!keys.empty()) {
      std::string list;
      for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(current.file + ": [host] " + list +
                        " changed: restart ferry to apply (a reload cannot)");
    }
    const std::string level = next.host.log_level;
    const auto lines = pipeline.reload(std::move(next));
    Poco::Logger::get("ferry").setLevel(level == "info" ? std::string("information") : level);
    std::string what;
    for (const auto& l : lines) what += (what.empty() ? "" : "; ") + l;
    log.information("reloaded " + current.file + ": " +
                    (what.empty() ? "no source or sink changed" : what));
  } catch (const std::exception& e) {
    log.error(std::string("reload refused, the running configuration goes on: ") + e.what());
  }
}

}  // namespace

int App::commandRun() {
  Config config = loadConfig(configPath());
  // Before anything writes (the log file included): one ferry per journal, never as root on the
  // service user's journal.
  JournalLock owner(config.host.journal, "run --config " + config.file + (once_ ? " --once" : ""),
                    config.host.host_id);
  setUpLogging(config.host.log_level, config.host.log_file, config.host.log_format);
  Poco::Logger& log = Poco::Logger::get("ferry");
  PluginRegistry plugins = PluginRegistry::loadDirectory(pluginDir(config.host.plugin_dir));
  validate(config, plugins);
  auto journal = owner.open();
  for (const auto& change : startFromChanges(config, *journal, true)) log.warning(change);
  const int64_t started_ms = nowMs();
  int code = EXIT_OK;
  LiveConfig live(config);
  // Declared before the pipeline: work it hands to the runners refers to it.
  Operator requests(live, *journal, nullptr, log);
  // Several hosts on a PostgreSQL journal (made below; declared before the pipeline, whose
  // runners ask it whether their lease holds).
  std::unique_ptr<LeaseKeeper> keeper;
  {
    Pipeline pipeline(live, plugins, *journal, log);
    std::atomic<bool> reload_requested{false};
    auto on_signal = [this, &pipeline, &log, &reload_requested](int sig) {
      if (sig == kReloadSignal) {
        log.information(once_ ? "received SIGHUP: ignored by run --once"
                              : "received SIGHUP: reloading the configuration");
        reload_requested = !once_;
        return;
      }
      log.information(std::string("received ") + (sig == SIGTERM ? kStopName : "SIGINT") +
                      ", stopping: batches in flight finish, nothing is half-committed");
      pipeline.requestStop();
    };
#ifdef _WIN32
    SignalWatcher signals([this] { waitForTerminationRequest(); },
                          [] { Poco::Util::ServerApplication::terminate(); }, on_signal);
#else
    SignalWatcher signals(on_signal);
#endif
    // A PostgreSQL journal: this host runs the sources and sinks whose leases it holds
    // (LeaseKeeper.h); --once takes every lease, waiting for a predecessor's to run out.
#if FERRY_POSTGRES_JOURNAL
    auto* shared = dynamic_cast<PostgresJournal*>(journal.get());
#else
    PostgresJournal* shared = nullptr;  // no PostgreSQL journal in this build
#endif
    struct StopKeeper {  // its thread ends before the pipeline goes, however this block is left
      std::unique_ptr<LeaseKeeper>& keeper;
      ~StopKeeper() {
        if (keeper) keeper->stop();
      }
    } stop_keeper{keeper};
    if (shared != nullptr) {
      keeper = std::make_unique<LeaseKeeper>(*shared, config, log, pipeline.services().metrics,
                                             once_);
      pipeline.services().handoff.disable();
      pipeline.services().lease_valid = [k = keeper.get()](const std::string& name) {
        return k->valid(name);
      };
      requests.onlyFor(
          [k = keeper.get()](const std::string& target) { return k->answers(target); });
      keeper->start();
      if (once_) keeper->awaitAll(pipeline.services().stopping);
      else pipeline.runOnly({});
    }
    pipeline.create();
    std::unique_ptr<AdminServer> admin;
    if (!config.host.admin_listen.empty()) {
      admin = std::make_unique<AdminServer>(live, pipeline.services(), config.host.admin_listen);
      log.information("admin endpoint on http://" + config.host.admin_listen.substr(
                          0, config.host.admin_listen.rfind(':')) + ":" +
                      std::to_string(admin->port()) + "/healthz and /metrics");
    }
    log.information("ferry " FERRY_VERSION " running with " + config.file + ", journal " +
                    journalDisplayName(config.host.journal));
    // Requests left while no ferry ran are carried out before anything moves.
    requests.applyPending();
    requests.setPipeline(&pipeline);
    if (once_) {
      code = pipeline.runOnce([&requests] { requests.applyPending(); });
      // Stopped while the journal failed (a full disk, an I/O error): 74, as for a journal that
      // cannot be opened, so that a scheduler tells it from a remote's failure.
      for (const auto& v : pipeline.services().health.judge(nowMs(), INT64_MAX)) {
        if (v.state == "retrying" && v.message.rfind("journal: ", 0) == 0) {
          log.error(v.kind + " " + v.name + " ended on a journal failure: " + v.message);
          code = EXIT_IOERR;
        }
      }
    } else {
      pipeline.start();
      std::set<std::string> running;  // what the leases said to run, last time
      auto next_retention = std::chrono::steady_clock::now();
      while (!pipeline.services().stopping.load()) {
        bool reloaded = false;
        if (reload_requested.exchange(false)) {
          reload(pipeline, live, plugins);
          reloaded = true;
        }
        if (keeper) {
          // Runners follow the leases: started for the groups won, stopped for those lost or
          // handed over (whose leases are released once their runners stopped).
          const LeaseKeeper::Plan plan = keeper->plan();
          if (reloaded || plan.run != running || !plan.handing.empty()) {
            for (const auto& line : pipeline.adjust(plan.run)) log.information("leases: " + line);
            running = plan.run;
          }
          keeper->handedOver(plan);
        }
        requests.applyPending();
        // Several hosts: the retention is applied by one of them (it answers for no instance).
        if (std::chrono::steady_clock::now() >= next_retention &&
            (!keeper || keeper->answers(""))) {
          try {
            pipeline.applyRetention();
            pipeline.logScheduling();
          } catch (const std::exception& e) {
            log.warning(std::string("retention postponed: ") + e.what());
          }
          next_retention = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      pipeline.stop();
    }
    // Every runner stopped: the leases are released, the other hosts take them over at once.
    if (keeper) keeper->releaseAll();
    requests.setPipeline(nullptr);
    log.information("stopped cleanly");
  }
  if (once_ && code == EXIT_OK) {
    int64_t fresh = 0;
    for (const auto& d : journal->ledger().deadLetters(std::nullopt))
      fresh += d.failed_at_ms >= started_ms ? 1 : 0;
    for (const auto& d : journal->events().sourceDeadLetters(std::nullopt))
      fresh += d.set_aside_at_ms >= started_ms ? 1 : 0;
    if (fresh > 0) {
      log.warning(std::to_string(fresh) +
                  " new dead letter(s) in this run: see ferry dead-letters list");
      code = kExitDeadLetters;
    }
  }
  return code;
}

#ifdef _WIN32
// The service manager hands ServiceMain only the arguments of `sc start`, not those of the
// service's command line ("ferry.exe" run --config FILE): those are read here. Only `run` is a
// service; without --config it uses the default config (%ProgramData%\Ferry\ferry.ini).
int App::serviceMain() {
  int argc = 0;
  wchar_t** argv = ::CommandLineToArgvW(::GetCommandLineW(), &argc);
  std::vector<std::string> line;
  for (int i = 1; argv != nullptr && i < argc; ++i) line.push_back(fs::path(argv[i]).string());
  if (argv != nullptr) ::LocalFree(argv);
  for (size_t i = 0; i < line.size(); ++i) {
    if ((line[i] == "--config" || line[i] == "-c") && i + 1 < line.size()) config_ = line[++i];
    else if (line[i].rfind("--config=", 0) == 0) config_ = line[i].substr(9);
  }
  try {
    return commandRun();
  } catch (const std::exception& e) {
    Poco::Logger::get("ferry").fatal(std::string("the service stops: ") + e.what());
    return EXIT_SOFTWARE;
  }
}
#endif

// Stores the request and waits for the journal's owner to answer it; with no owner, becomes the
// owner and carries it out here (Operator.h). Prints the answer.
int App::submit(const Config& config, const std::string& action, const std::string& target,
                const std::string& argument, const std::string& command) {
  const std::string& path = config.host.journal;
  requireJournal(path);
  refuseRootOnOthersJournal(path, command);
  Poco::Logger& log = Poco::Logger::get("ferry");
  auto print = [](const CommandRequest& r) {
    (r.state == "done" ? std::cout : std::cerr) << (r.state == "done" ? "" : "ferry: refused: ")
                                                << r.result << "\n";
    return r.state == "done" ? EXIT_OK : EXIT_DATAERR;
  };
  int64_t id = 0;
  for (;;) {
    if (auto pid = journalOwner(path)) {
      auto journal = openJournal(path, config.host.host_id);
      if (id == 0) id = journal->controls().submitCommand(action, target, argument);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (std::chrono::steady_clock::now() < until) {
        auto r = journal->controls().command(id);
        if (r && r->state != "pending") return print(*r);
        if (!journalOwner(path)) break;  // it stopped before answering: carry it out here
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (journalOwner(path)) {
        std::cerr << "ferry: request #" << id << " is waiting for the running ferry (PID " << *pid
                  << "), which carries it out at its next safe point (a batch or poll in flight "
                     "ends first); see ferry status\n";
        return EXIT_TEMPFAIL;
      }
      continue;
    }
    try {
      JournalLock owner(path, command, config.host.host_id);
      setUpLogging("warning", "");
      auto journal = owner.open();
      if (id == 0) id = journal->controls().submitCommand(action, target, argument);
      LiveConfig live(config);
      // A PostgreSQL journal: the command holds the lease of its target while it writes, fenced
      // like a host (a host starting meanwhile waits for it, or refuses its late writes).
      Metrics metrics;
      std::unique_ptr<LeaseKeeper> keeper;
      Operator requests(live, *journal, nullptr, log);
#if FERRY_POSTGRES_JOURNAL
      auto* shared = dynamic_cast<PostgresJournal*>(journal.get());
#else
      PostgresJournal* shared = nullptr;
#endif
      if (shared != nullptr) {
        keeper = std::make_unique<LeaseKeeper>(*shared, config, log, metrics);
        try {
          keeper->holdFor(target);
        } catch (const JournalBusy& e) {  // not the host lock's refusal: leave the loop
          std::cerr << "ferry: " << e.what() << "; request #" << id
                    << " stays pending for the host that runs it\n";
          return EXIT_TEMPFAIL;
        }
        requests.onlyFor([&target](const std::string& t) { return t == target; });
      }
      requests.applyPending();
      if (keeper) keeper->releaseAll();
      auto r = journal->controls().command(id);
      if (!r || r->state == "pending")
        throw JournalError("journal " + journalDisplayName(path) + ": request #" +
                           std::to_string(id) +
                           " could not be carried out (see the messages above)");
      return print(*r);
    } catch (const JournalBusy&) {
      // A ferry started meanwhile: it carries the request out.
    }
  }
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
  for (const auto& w : budgetWarnings(config)) std::cout << "warning: " << w << "\n";
  // Read-only: never creates the journal.
  if (journalExists(config.host.journal)) {
    auto journal = openJournal(config.host.journal, config.host.host_id);
    for (const auto& change : startFromChanges(config, *journal, false))
      std::cout << "note: " << change << "\n";
  }
  if (!connect_) return EXIT_OK;

  // --connect: create every instance (option errors a plugin finds itself show here) and ask
  // each to test its connection, without polling or writing anything.
  setUpLogging("warning", "");
  // Before the first run, the plugins get a scratch journal: check must not create the real one
  // (run as root, it would belong to root and lock the service out).
  std::optional<ScratchDir> scratch;
  if (!journalExists(config.host.journal)) scratch.emplace();
  auto journal = openJournal(scratch ? scratch->path + "/journal.db" : config.host.journal,
                             config.host.host_id);
  LiveConfig live(config);
  Pipeline pipeline(live, plugins, *journal, Poco::Logger::get("ferry"));
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
  auto printTable = [](const std::vector<OptionSpec>& options) {
    size_t w = 4;
    for (const auto& o : options) w = std::max(w, std::string(o.name).size());
    for (const auto& o : options) {
      std::string def = o.required ? "(required)"
                        : o.default_value ? std::string("= ") + o.default_value
                                          : "(optional)";
      std::cout << "    " << padRight(o.name, w + 2) << padRight(optionTypeName(o.type), 10)
                << padRight(def, 28) << (o.secret ? "[secret] " : "") << o.help;
      if (o.choices) std::cout << " (one of: " << o.choices << ")";
      std::cout << "\n";
    }
  };
  std::cout << "Plugins in " << plugins.directory().string() << ":\n";
  for (const auto& p : plugins.all()) {
    std::cout << "\n" << p->name() << " (" << (p->isSource() ? "source" : "sink") << ", version "
              << p->version() << ", ABI " << p->abi() << ") — " << p->description()
              << "\n  file " << p->file.string() << "\n  options:\n";
    printTable(p->options);
  }
  std::cout << "\nHost settings, allowed in every [source.<name>] section:\n";
  printTable(hostSourceOptions());
  std::cout << "Host settings, allowed in every [sink.<name>] section:\n";
  printTable(hostSinkOptions());
  return EXIT_OK;
}

namespace {

// "2025-04-01T10:00:00.000Z", or "never" for 0.
std::string whenText(int64_t ms) { return ms > 0 ? formatInstantMs(ms * 1000000) : "never"; }

Poco::Dynamic::Var whenJson(int64_t ms) {
  return ms > 0 ? Poco::Dynamic::Var(formatInstantMs(ms * 1000000)) : Poco::Dynamic::Var();
}

// What `status` and `positions` show of each source and sink: the configured ones in config
// order, then the sinks the journal still knows (they hold retention) though the config has them
// no more.
struct PositionRow {
  std::string name, state, message;
  std::optional<Cursor> cursor;  // sources
  std::string origin;            // sources: the start_from it began with
  int64_t offset = 0, backlog = 0, dead_letters = 0;  // sinks; sources: items set aside
  bool paused = false;
  std::string held, fix;  // sinks holding retention without writing: why, and the command
  InstanceActivity activity;
};

struct Positions {
  int64_t last = 0, oldest = 0;
  std::vector<PositionRow> sources, sinks;
};

Positions gatherPositions(const Config& config, Journal& journal) {
  EventLog& log = journal.events();
  SinkLedger& ledger = journal.ledger();
  Controls& controls = journal.controls();
  Positions p;
  p.last = log.lastSequence();
  p.oldest = controls.oldestSequence();
  std::map<std::string, Cursor> cursors;
  for (auto& [name, c] : log.cursors()) cursors[name] = c;
  std::map<std::string, InstanceStatus> statuses;
  for (auto& s : journal.state().statuses()) statuses[s.kind + "/" + s.name] = s;
  std::map<std::string, InstanceActivity> activities;
  for (auto& a : controls.activities()) activities[a.kind + "/" + a.name] = a;
  std::map<std::string, int64_t> dead;
  for (const auto& d : ledger.deadLetters(std::nullopt)) ++dead["sink/" + d.sink];
  for (const auto& d : log.sourceDeadLetters(std::nullopt)) ++dead["source/" + d.source];
  std::map<std::string, HeldSink> held;
  for (auto& h : heldSinks(config, controls)) held[h.name] = h;

  auto row = [&](const std::string& kind, const InstanceConfig& i) {
    PositionRow r;
    r.name = i.name;
    r.state = "never run";
    if (!i.enabled) {
      r.state = "disabled";
    } else if (auto it = statuses.find(kind + "/" + i.name); it != statuses.end()) {
      r.state = it->second.state;
      r.message = it->second.message;
    }
    if (auto it = activities.find(kind + "/" + i.name); it != activities.end())
      r.activity = it->second;
    return r;
  };
  for (const auto& s : config.sources) {
    PositionRow r = row("source", s);
    if (auto it = cursors.find(s.name); it != cursors.end()) r.cursor = it->second;
    r.origin = controls.sourceOrigin(s.name).value_or(s.start_from);
    r.dead_letters = dead["source/" + s.name];
    p.sources.push_back(r);
  }
  std::vector<InstanceConfig> sinks = config.sinks;
  for (const auto& name : controls.knownSinks()) {
    if (std::none_of(sinks.begin(), sinks.end(),
                     [&](const InstanceConfig& s) { return s.name == name; })) {
      InstanceConfig gone;
      gone.name = name;
      gone.enabled = false;
      sinks.push_back(gone);
    }
  }
  for (const auto& s : sinks) {
    PositionRow r = row("sink", s);
    r.offset = ledger.sinkOffset(s.name);
    r.backlog = backlog(log, ledger, s);
    r.dead_letters = dead["sink/" + s.name];
    r.paused = controls.sinkPaused(s.name);
    if (auto it = held.find(s.name); it != held.end()) {
      r.held = it->second.why;
      r.fix = it->second.fix;
      if (r.held != "disabled") r.state = r.held == "paused" ? "paused" : "not configured";
    }
    p.sinks.push_back(r);
  }
  return p;
}

std::string cursorText(const std::optional<Cursor>& c) {
  if (!c) return "(none yet)";
  return c->since + (c->offset ? " +" + std::to_string(c->offset) : "");
}

Poco::JSON::Object::Ptr cursorJson(const std::optional<Cursor>& c) {
  if (!c) return nullptr;
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
  o->set("since", c->since);
  o->set("offset", c->offset);
  return o;
}

}  // namespace

int App::commandStatus() {
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto journal = openExistingJournal(config.host);
  const std::optional<pid_t> owner = journalOwner(config.host.journal);
  const Positions p = gatherPositions(config, *journal);
  // Several hosts (PostgreSQL): who runs each instance, until when, and the hosts alive.
  struct LeaseOf {
    std::string host;
    int64_t expires_at_ms = 0;
  };
  std::map<std::string, LeaseOf> leases;
  std::vector<HostRow> hosts;
  int64_t db_now = 0;
#if FERRY_POSTGRES_JOURNAL
  auto* shared = dynamic_cast<PostgresJournal*>(journal.get());
  if (shared != nullptr) {
    for (const auto& l : shared->leases(&db_now))
      for (const auto& m : l.members)
        leases[m] = LeaseOf{l.owner, l.owner.empty() ? 0 : l.expires_at_ms};
    hosts = shared->hosts();
  }
#else
  const void* shared = nullptr;  // no PostgreSQL journal in this build
#endif
  auto leaseJson = [&](Poco::JSON::Object::Ptr& o, const std::string& name) {
    if (shared == nullptr) return;
    auto it = leases.find(name);
    const bool held = it != leases.end() && !it->second.host.empty();
    o->set("host", held ? Poco::Dynamic::Var(it->second.host) : Poco::Dynamic::Var());
    o->set("lease_expires_in_ms", held ? Poco::Dynamic::Var(it->second.expires_at_ms - db_now)
                                       : Poco::Dynamic::Var());
  };
  auto leaseText = [&](const std::string& name) -> std::string {
    if (shared == nullptr) return "";
    auto it = leases.find(name);
    if (it == leases.end() || it->second.host.empty()) return "    run by no host (lease free)\n";
    const int64_t left = it->second.expires_at_ms - db_now;
    return "    run by host " + it->second.host +
           (left >= 0 ? ", lease renewed until " + std::to_string((left + 999) / 1000) +
                            " s from now"
                      : ", lease expired " + std::to_string(-left / 1000) +
                            " s ago (another host takes it over)") +
           "\n";
  };
  // A source's lag: how long ago its last successful poll was.
  auto lagMs = [](const InstanceActivity& a) -> int64_t {
    return a.last_success_ms > 0 ? std::max<int64_t>(0, nowMs() - a.last_success_ms) : -1;
  };

  if (json_) {
    Poco::JSON::Object::Ptr root = new Poco::JSON::Object;
    root->set("journal", journalDisplayName(config.host.journal));
    if (shared != nullptr) {
      Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
      for (const auto& h : hosts) {
        Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
        o->set("host_id", h.host_id);
        o->set("live", h.expires_at_ms > db_now);
        o->set("last_heartbeat_ms_ago", db_now - h.heartbeat_at_ms);
        list->add(o);
      }
      root->set("hosts", list);
    }
    root->set("running", owner.has_value());
    root->set("pid",
              owner ? Poco::Dynamic::Var(static_cast<int64_t>(*owner)) : Poco::Dynamic::Var());
    root->set("last_sequence", p.last);
    Poco::JSON::Array::Ptr src = new Poco::JSON::Array, snk = new Poco::JSON::Array;
    for (const auto& r : p.sources) {
      Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
      o->set("name", r.name);
      o->set("state", r.state);
      o->set("message", r.message);
      auto c = cursorJson(r.cursor);
      o->set("cursor", c ? Poco::Dynamic::Var(c) : Poco::Dynamic::Var());
      o->set("last_poll", whenJson(r.activity.last_attempt_ms));
      o->set("last_success", whenJson(r.activity.last_success_ms));
      o->set("events", r.activity.events_total);
      o->set("progress", r.activity.progress);
      o->set("dead_letters", r.dead_letters);
      const int64_t lag = lagMs(r.activity);
      o->set("lag_ms", lag >= 0 ? Poco::Dynamic::Var(lag) : Poco::Dynamic::Var());
      leaseJson(o, r.name);
      src->add(o);
    }
    for (const auto& r : p.sinks) {
      Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
      o->set("name", r.name);
      o->set("state", r.state);
      o->set("message", r.message);
      o->set("offset", r.offset);
      o->set("backlog", r.backlog);
      o->set("dead_letters", r.dead_letters);
      o->set("paused", r.paused);
      o->set("holds_retention", r.held);
      o->set("last_write", whenJson(r.activity.last_attempt_ms));
      o->set("last_success", whenJson(r.activity.last_success_ms));
      o->set("events", r.activity.events_total);
      leaseJson(o, r.name);
      snk->add(o);
    }
    root->set("sources", src);
    root->set("sinks", snk);
    root->stringify(std::cout);
    std::cout << "\n";
    return EXIT_OK;
  }
  std::cout << "journal " << journalDisplayName(config.host.journal) << ", last sequence "
            << p.last << "\nferry "
            << (owner ? "running (PID " + std::to_string(*owner) + ")"
                      : "not running (the states below are where the last run left them)")
            << "\n";
  if (shared != nullptr) {
    std::cout << "hosts:";
    for (const auto& h : hosts)
      std::cout << " " << h.host_id
                << (h.expires_at_ms > db_now
                        ? " (live)"
                        : " (silent for " + std::to_string((db_now - h.heartbeat_at_ms) / 1000) +
                              " s)");
    std::cout << (hosts.empty() ? " none\n" : "\n");
  }
  std::cout << "\nSOURCES\n";
  for (const auto& r : p.sources) {
    std::cout << "  " << padRight(r.name, 20) << padRight(r.state, 11) << "cursor "
              << cursorText(r.cursor) << "\n    last poll " << whenText(r.activity.last_attempt_ms)
              << ", last success " << whenText(r.activity.last_success_ms) << ", "
              << r.activity.events_total << " event(s)"
              << (r.dead_letters > 0 ? ", " + std::to_string(r.dead_letters) +
                                           " item(s) set aside (ferry dead-letters list)"
                                     : "")
              << "\n";
    if (!r.activity.progress.empty()) std::cout << "    " << r.activity.progress << "\n";
    if (!r.message.empty()) std::cout << "    " << r.message << "\n";
    std::cout << leaseText(r.name);
  }
  std::cout << "\nSINKS\n";
  for (const auto& r : p.sinks) {
    std::cout << "  " << padRight(r.name, 20) << padRight(r.state, 11) << "offset " << r.offset
              << ", backlog " << r.backlog << ", dead letters " << r.dead_letters
              << "\n    last write " << whenText(r.activity.last_attempt_ms) << ", last success "
              << whenText(r.activity.last_success_ms) << ", " << r.activity.events_total
              << " event(s) written\n";
    if (!r.held.empty()) std::cout << "    " << r.held << ": " << r.fix << "\n";
    if (!r.message.empty()) std::cout << "    " << r.message << "\n";
    std::cout << leaseText(r.name);
  }
  return EXIT_OK;
}

int App::commandPositions() {
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto journal = openExistingJournal(config.host);
  const Positions p = gatherPositions(config, *journal);
  if (json_) {
    Poco::JSON::Object root;
    root.set("last_sequence", p.last);
    root.set("oldest_sequence", p.oldest);
    Poco::JSON::Array src, snk;
    for (const auto& r : p.sources) {
      Poco::JSON::Object o;
      o.set("name", r.name);
      auto c = cursorJson(r.cursor);
      o.set("cursor", c ? Poco::Dynamic::Var(c) : Poco::Dynamic::Var());
      o.set("start_from", r.origin);
      src.add(o);
    }
    for (const auto& r : p.sinks) {
      Poco::JSON::Object o;
      o.set("name", r.name);
      o.set("offset", r.offset);
      o.set("backlog", r.backlog);
      o.set("paused", r.paused);
      o.set("holds_retention", r.held);
      snk.add(o);
    }
    root.set("sources", src);
    root.set("sinks", snk);
    root.stringify(std::cout);
    std::cout << "\n";
    return EXIT_OK;
  }
  std::cout << "journal " << journalDisplayName(config.host.journal) << ": last sequence "
            << p.last << ", "
            << (p.oldest == 0 ? std::string("no event retained")
                              : "events " + std::to_string(p.oldest) + "-" +
                                    std::to_string(p.last) + " retained")
            << "\n\nSOURCES (cursor; started from)\n";
  for (const auto& r : p.sources)
    std::cout << "  " << padRight(r.name, 20) << padRight(cursorText(r.cursor), 30) << r.origin
              << "\n";
  std::cout << "\nSINKS (offset: the last sequence written)\n";
  for (const auto& r : p.sinks)
    std::cout << "  " << padRight(r.name, 20) << "offset " << r.offset << ", backlog "
              << r.backlog << (r.held.empty() ? "" : "; " + r.held + ", " + r.fix) << "\n";
  return EXIT_OK;
}

int App::commandSources(const std::vector<std::string>& args) {
  const std::string action = args.size() > 1 ? args[1] : "";
  if ((action != "backfill" && action != "reset") || args.size() != 3 || from_.empty()) {
    std::cerr << "ferry: usage: ferry sources backfill NAME --from INSTANT [--redeliver] (see "
                 "ferry help sources)\n";
    return EXIT_USAGE;
  }
  const std::string& name = args[2];
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  if (std::none_of(config.sources.begin(), config.sources.end(),
                   [&](const InstanceConfig& s) { return s.name == name; })) {
    std::cerr << "ferry: no source '" << name << "' in " << config.file << "\n";
    return EXIT_USAGE;
  }
  if (!parseInstantNs(from_)) {
    std::cerr << "ferry: --from '" << from_
              << "' is not an instant; write it like 2025-04-01T00:00:00Z\n";
    return EXIT_USAGE;
  }
  Poco::JSON::Object argument;
  argument.set("from", from_);
  argument.set("redeliver", redeliver_);
  std::ostringstream text;
  argument.stringify(text);
  return submit(config, action::kBackfill, name, text.str(),
                "sources backfill " + name + " --from " + from_ +
                    (redeliver_ ? " --redeliver" : "") + " --config " + config.file);
}

int App::commandSinks(const std::vector<std::string>& args) {
  const std::string action = args.size() > 1 ? args[1] : "";
  const bool rewind = action == "rewind";
  if ((!rewind && action != "pause" && action != "resume" && action != "forget") ||
      args.size() != 3 || (rewind && to_.empty() == !to_sequence_.has_value())) {
    std::cerr << "ferry: usage: ferry sinks rewind NAME (--to-sequence N | --to INSTANT), "
                 "ferry sinks pause|resume|forget NAME (see ferry help sinks)\n";
    return EXIT_USAGE;
  }
  const std::string& name = args[2];
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  const bool configured = std::any_of(config.sinks.begin(), config.sinks.end(),
                                      [&](const InstanceConfig& s) { return s.name == name; });
  if (!configured && action != "forget") {
    std::cerr << "ferry: no sink '" << name << "' in " << config.file << "\n";
    return EXIT_USAGE;
  }
  Poco::JSON::Object argument;
  std::string command = "sinks " + action + " " + name;
  if (rewind && to_sequence_) {
    argument.set("sequence", *to_sequence_);
    command += " --to-sequence " + std::to_string(*to_sequence_);
  } else if (rewind) {
    if (!parseInstantNs(to_)) {
      std::cerr << "ferry: --to '" << to_ << "' is not an instant; write it like "
                   "2025-04-01T00:00:00Z\n";
      return EXIT_USAGE;
    }
    argument.set("instant", to_);
    command += " --to " + to_;
  }
  std::ostringstream text;
  argument.stringify(text);
  const char* kind = rewind              ? action::kRewind
                     : action == "pause"  ? action::kPause
                     : action == "resume" ? action::kResume
                                          : action::kForget;
  return submit(config, kind, name, text.str(), command + " --config " + config.file);
}

int App::commandTrace(const std::vector<std::string>& args) {
  if (args.size() != 2) {
    std::cerr << "ferry: trace needs exactly one key or business number, e.g. ferry trace "
                 "cm3x0k2a --config FILE, or ferry trace 1007 (an order number)\n";
    return EXIT_USAGE;
  }
  const std::string& key = args[1];
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto journal = openExistingJournal(config.host);
  SinkLedger& ledger = journal->ledger();
  // By key, or by a business number the source named (DuckHub order number, PO number, …).
  auto events = traceEvents(journal->events(), key);
  std::vector<DeadLetter> dead;
  for (auto& d : ledger.deadLetters(std::nullopt)) {
    const bool of_an_event = std::any_of(events.begin(), events.end(), [&](const JournalEvent& e) {
      return e.sequence == d.event.sequence;
    });
    if (of_an_event || traceMatches(d.event, key)) dead.push_back(std::move(d));
  }

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
      o.set("key", e.key);
      Poco::JSON::Array numbers;
      for (const auto& n : businessNumbers(e.meta)) numbers.add(printable(n));
      o.set("numbers", numbers);
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
    std::cout << "no event with key or number '" << key << "' in "
              << journalDisplayName(config.host.journal)
              << " (never fetched, or older than the retention)\n";
    for (const auto& d : dead)
      std::cout << "dead letter #" << d.id << " of sink " << d.sink << ": "
                << d.event.idempotencyKey() << ": " << d.reason << "\n";
    return EXIT_DATAERR;
  }
  for (const auto& e : events) {
    std::string numbers;
    for (const auto& n : businessNumbers(e.meta))
      numbers += (numbers.empty() ? "" : " ") + printable(n);
    std::cout << e.idempotencyKey() << "  (sequence " << e.sequence << ", fetched "
              << formatInstantMs(e.fetched_at_ms * 1000000)
              << (e.previous.empty() ? ", new" : ", previous " + e.previous)
              << (e.echo ? ", echo" : "") << (numbers.empty() ? "" : ", numbers " + numbers)
              << ")\n";
    for (const auto& step : stepsOf(e)) {
      std::cout << "    " << padRight(step.sink, 20) << padRight(step.outcome, 12)
                << (step.at.empty() ? "" : step.at + "  ") << step.detail << "\n";
    }
  }
  return EXIT_OK;
}

namespace {

// A dead letter's id as the user writes it: N for a sink's, sN for a source's.
struct LetterId {
  int64_t id = 0;
  bool source = false;
};

LetterId letterId(const std::string& option, const std::string& text) {
  const bool source = !text.empty() && (text[0] == 's' || text[0] == 'S');
  return {number(option, source ? text.substr(1) : text), source};
}

void printSourceLetter(const SourceDeadLetter& d) {
  std::cout << "#s" << d.id << "  source " << d.source << "  "
            << (d.item.key.empty() ? std::string("(no key)")
                                   : d.item.entity + " '" + printable(d.item.key) + "'")
            << "  (set aside " << formatInstantMs(d.set_aside_at_ms * 1000000) << ")\n    "
            << d.item.reason << "\n";
}

}  // namespace

int App::commandDeadLetters(const std::vector<std::string>& args) {
  const std::string action = args.size() > 1 ? args[1] : "";
  if (action != "list" && action != "replay" && action != "show" && action != "drop") {
    std::cerr << "ferry: dead-letters needs 'list', 'show ID', 'replay' or 'drop ID...' (see "
                 "ferry help dead-letters)\n";
    return EXIT_USAGE;
  }
  if (!sink_.empty() && !source_.empty()) {
    std::cerr << "ferry: dead-letters takes --sink or --source, not both\n";
    return EXIT_USAGE;
  }
  // No action needs the secrets: the instances' options are not used.
  Config config = loadConfig(configPath(), EnvReferences::kMayBeUnset);
  auto named = [](const std::vector<InstanceConfig>& list, const std::string& name) {
    return name.empty() || std::any_of(list.begin(), list.end(),
                                       [&](const InstanceConfig& i) { return i.name == name; });
  };
  if (!named(config.sinks, sink_) || !named(config.sources, source_)) {
    std::cerr << "ferry: " << (sink_.empty() ? "--source " + source_ : "--sink " + sink_)
              << ": no such " << (sink_.empty() ? "source" : "sink") << " in " << config.file
              << "\n";
    return EXIT_USAGE;
  }
  std::vector<LetterId> ids;
  for (const auto& text : ids_) ids.push_back(letterId("--id", text));
  for (size_t i = 2; i < args.size(); ++i) ids.push_back(letterId("dead-letters " + action, args[i]));
  auto only = [&](bool source) {
    std::vector<int64_t> out;
    for (const auto& id : ids)
      if (id.source == source) out.push_back(id.id);
    return out;
  };
  if (action == "replay") {
    if (sink_.empty() == source_.empty()) {
      std::cerr << "ferry: dead-letters replay needs --sink NAME or --source NAME (and "
                   "optionally --id ...)\n";
      return EXIT_USAGE;
    }
    const bool source = !source_.empty();
    if (only(!source).size() > 0) {
      std::cerr << "ferry: dead-letters replay --" << (source ? "source" : "sink") << " takes "
                << (source ? "source dead letters (--id sN)" : "a sink's dead letters (--id N)")
                << "\n";
      return EXIT_USAGE;
    }
    const std::string& target = source ? source_ : sink_;
    return submit(config, source ? action::kReplaySetAside : action::kReplay, target,
                  idsArgument(only(source)),
                  "dead-letters replay --config " + config.file +
                      (source ? " --source " : " --sink ") + target);
  }
  if ((action == "show" && ids.size() != 1) || (action == "drop" && ids.empty())) {
    std::cerr << "ferry: dead-letters " << action << " needs " << (action == "show" ? "one" : "")
              << " ID (see ferry dead-letters list)\n";
    return EXIT_USAGE;
  }
  if (action == "drop") {
    std::string text;
    for (const auto& id : ids) text += (id.source ? " s" : " ") + std::to_string(id.id);
    Poco::JSON::Object arguments;
    Poco::JSON::Array sink_ids, source_ids;
    for (int64_t id : only(false)) sink_ids.add(id);
    for (int64_t id : only(true)) source_ids.add(id);
    arguments.set("ids", sink_ids);
    arguments.set("source_ids", source_ids);
    std::ostringstream out;
    arguments.stringify(out);
    return submit(config, action::kDrop, "", out.str(),
                  "dead-letters drop" + text + " --config " + config.file);
  }
  auto journal = openExistingJournal(config.host);
  if (action == "show") {
    if (ids[0].source) {
      for (const auto& d : journal->events().sourceDeadLetters(std::nullopt)) {
        if (d.id != ids[0].id) continue;
        std::cout << "dead letter #s" << d.id << " of source " << d.source << "\n";
        if (!d.item.key.empty())
          std::cout << "item      " << d.item.entity << " '" << printable(d.item.key)
                    << "', version '" << printable(d.item.version) << "'\n";
        std::cout << "set aside " << formatInstantMs(d.set_aside_at_ms * 1000000)
                  << " from the page asked from " << formatInstantMs(d.item.since_ms * 1000000)
                  << "\n"
                  << "reason    " << d.item.reason << "\n"
                  << "raw (control characters escaped)\n"
                  << printable(d.item.raw) << "\n";
        return EXIT_OK;
      }
    } else {
      for (const auto& d : journal->ledger().deadLetters(std::nullopt)) {
        if (d.id != ids[0].id) continue;
        std::cout << "dead letter #" << d.id << " of sink " << d.sink << "\n"
                  << "event     " << d.event.idempotencyKey() << " (sequence " << d.event.sequence
                  << ", fetched " << formatInstantMs(d.event.fetched_at_ms * 1000000) << ")\n"
                  << "failed    " << formatInstantMs(d.failed_at_ms * 1000000)
                  << (d.replay_requested ? " (replay requested)" : "") << "\n"
                  << "reason    " << d.reason << "\n"
                  << "body\n" << d.event.body << "\n";
        return EXIT_OK;
      }
    }
    std::cerr << "ferry: no dead letter #" << (ids[0].source ? "s" : "") << ids[0].id
              << " (see ferry dead-letters list)\n";
    return EXIT_DATAERR;
  }
  std::vector<DeadLetter> letters;
  std::vector<SourceDeadLetter> set_aside;
  if (source_.empty())
    letters = journal->ledger().deadLetters(sink_.empty() ? std::nullopt : std::optional(sink_));
  if (sink_.empty())
    set_aside =
        journal->events().sourceDeadLetters(source_.empty() ? std::nullopt : std::optional(source_));
  if (json_) {
    Poco::JSON::Array out;
    for (const auto& d : letters) {
      Poco::JSON::Object o;
      o.set("kind", "sink");
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
    for (const auto& d : set_aside) {
      // The remote's bytes as received may not be UTF-8: printable() keeps the JSON valid.
      Poco::JSON::Object o;
      o.set("kind", "source");
      o.set("id", "s" + std::to_string(d.id));
      o.set("source", d.source);
      o.set("entity", printable(d.item.entity));
      o.set("key", printable(d.item.key));
      o.set("version", printable(d.item.version));
      o.set("reason", d.item.reason);
      o.set("set_aside_at", formatInstantMs(d.set_aside_at_ms * 1000000));
      o.set("page_since", formatInstantMs(d.item.since_ms * 1000000));
      o.set("raw", printable(d.item.raw));
      out.add(o);
    }
    out.stringify(std::cout);
    std::cout << "\n";
    return EXIT_OK;
  }
  if (letters.empty() && set_aside.empty()) std::cout << "no dead letters\n";
  for (const auto& d : letters) {
    std::cout << "#" << d.id << "  sink " << d.sink << "  " << d.event.idempotencyKey() << "  (seq "
              << d.event.sequence << ", failed " << formatInstantMs(d.failed_at_ms * 1000000)
              << (d.replay_requested ? ", replay requested" : "") << ")\n    " << d.reason << "\n";
  }
  for (const auto& d : set_aside) printSourceLetter(d);
  return EXIT_OK;
}

}  // namespace ferry::core
