// tradecloud-sim: the Tradecloud API v2 simulator as a program, for tests and demos that start it
// as a child process. The command line and control API are documented in README.md.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include "TradecloudServer.h"

namespace {

using namespace ferry::sim::tradecloud;

constexpr const char* kUsage =
    "usage: tradecloud-sim [--port N] [--port-file FILE] [--seed N] [--orders N] [--shipments N]\n"
    "                      [--big-tie N] [--start ISO] [--company-id UUID] [--email E]\n"
    "                      [--password P] [--access-ttl DURATION] [--window exclusive|inclusive]\n"
    "                      [--empty-last-updated absent|null|present]\n"
    "                      [--limit-over-100 reject|clamp] [--rate-limit N] [--basic-delay-ms N]\n"
    "                      [--live-rate R] [--accounts N] [--max-threads N] [--quiet]\n";

// Through a temporary file and a rename, so that a reader polling for the file never sees it half
// written.
void writeFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path);
}

long long toInteger(const std::string& option, const std::string& value, long long min,
                    long long max) {
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || n < min || n > max) {
    throw std::invalid_argument(option + " needs an integer between " + std::to_string(min) +
                                " and " + std::to_string(max) + ", got '" + value + "'");
  }
  return n;
}

std::string oneOf(const std::string& option, const std::string& value,
                  std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (value == a) return value;
  }
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : "|") + std::string(a);
  throw std::invalid_argument(option + " needs " + list + ", got '" + value + "'");
}

}  // namespace

int main(int argc, char** argv) {
  ServerOptions options;
  options.store.start_ms = *parseIsoUs("2025-04-23T10:00:00.000Z") / 1000;
  options.log_requests = true;
  std::string port_file;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      std::string value;
      bool has_inline = false;
      if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
      auto next = [&]() -> std::string {
        if (has_inline) return value;
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--port") {
        options.port = static_cast<std::uint16_t>(toInteger(arg, next(), 0, 65535));
      } else if (arg == "--port-file") {
        port_file = next();
      } else if (arg == "--seed") {
        options.store.seed = static_cast<std::uint64_t>(toInteger(arg, next(), 0, 1LL << 62));
      } else if (arg == "--orders") {
        options.store.orders = static_cast<int>(toInteger(arg, next(), 0, 1000000));
      } else if (arg == "--shipments") {
        options.store.shipments = static_cast<int>(toInteger(arg, next(), 0, 1000000));
      } else if (arg == "--big-tie") {
        options.store.big_tie = static_cast<int>(toInteger(arg, next(), 0, 100000));
      } else if (arg == "--start") {
        auto us = parseIsoUs(next());
        if (!us) throw std::invalid_argument("--start needs an ISO timestamp with Z or ±hh:mm");
        options.store.start_ms = *us / 1000;
      } else if (arg == "--company-id") {
        options.store.company_id = next();
        if (options.store.company_id.size() != 36) {
          throw std::invalid_argument("--company-id needs a uuid (36 characters)");
        }
      } else if (arg == "--email") {
        options.email = next();
      } else if (arg == "--password") {
        options.password = next();
      } else if (arg == "--access-ttl") {
        const std::string text = next();
        auto ms = parseDurationMs(text);
        if (!ms || *ms < 1) throw std::invalid_argument("--access-ttl needs e.g. 500ms, 2s, 10m");
        options.access_ttl_ms = *ms;
      } else if (arg == "--window") {
        options.window = oneOf(arg, next(), {"exclusive", "inclusive"}) == "exclusive"
                             ? Window::kExclusive
                             : Window::kInclusive;
      } else if (arg == "--empty-last-updated") {
        const std::string v = oneOf(arg, next(), {"absent", "null", "present"});
        options.empty_last_updated = v == "absent" ? EmptyLastUpdated::kAbsent
                                     : v == "null" ? EmptyLastUpdated::kNull
                                                   : EmptyLastUpdated::kPresent;
      } else if (arg == "--limit-over-100") {
        options.clamp_limit = oneOf(arg, next(), {"reject", "clamp"}) == "clamp";
      } else if (arg == "--rate-limit") {
        options.rate_limit = static_cast<int>(toInteger(arg, next(), 0, 1000000));
      } else if (arg == "--basic-delay-ms") {
        options.basic_delay_ms = static_cast<int>(toInteger(arg, next(), 0, 600000));
      } else if (arg == "--live-rate") {
        const std::string text = next();
        std::size_t used = 0;
        double rate = -1;
        try {
          rate = std::stod(text, &used);
        } catch (const std::exception&) {
        }
        if (used != text.size() || rate < 0) throw std::invalid_argument("bad --live-rate");
        options.live_rate = rate;
      } else if (arg == "--accounts") {
        options.store.accounts = static_cast<int>(toInteger(arg, next(), 1, 1000000));
      } else if (arg == "--max-threads") {
        options.max_threads = static_cast<int>(toInteger(arg, next(), 2, 4096));
      } else if (arg == "--quiet") {
        options.log_requests = false;
      } else if (arg == "--help" || arg == "-h") {
        std::cout << kUsage;
        return 0;
      } else {
        throw std::invalid_argument("unknown option " + arg);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "tradecloud-sim: " << e.what() << '\n' << kUsage;
    return 2;
  }

  // Block the stop signals before any thread exists, so that every thread inherits the mask and
  // sigwait() below is the only one to receive them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    TradecloudServer server(options);
    server.start();
    if (!port_file.empty()) writeFileAtomically(port_file, std::to_string(server.port()) + "\n");
    std::cout << "tradecloud-sim company-id " << options.store.company_id << " account "
              << options.email << '\n'
              << "tradecloud-sim listening on 127.0.0.1:" << server.port() << std::endl;
    int received = 0;
    sigwait(&stop_signals, &received);
    server.stop();
  } catch (const std::exception& e) {
    std::cerr << "tradecloud-sim: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
