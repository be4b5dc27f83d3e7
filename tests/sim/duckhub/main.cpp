// duckhub-sim: the DuckHub Orders API simulator as a program, for tests and demos that start it
// as a child process. The command line and control API are documented in README.md.

#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include "DuckHubServer.h"

namespace {

using ferry::sim::duckhub::DuckHubServer;
using ferry::sim::duckhub::ServerOptions;

constexpr const char* kUsage =
    "usage: duckhub-sim [--port N] [--port-file FILE] [--seed N] [--venues N] [--orders N]\n"
    "                   [--start ISO] [--live-rate R] [--no-rate-limit] [--cache]\n"
    "                   [--keys-file FILE] [--free-venue] [--max-threads N] [--quiet]\n";

// Writes through a temporary file and a rename, so that a reader polling for the file never sees
// it half written.
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

}  // namespace

int main(int argc, char** argv) {
  ServerOptions options;
  options.store.start_ms = *ferry::sim::duckhub::parseIsoUs("2026-07-05T12:00:00.000Z") / 1000;
  options.log_requests = true;
  std::string port_file, keys_file;
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
      } else if (arg == "--venues") {
        options.store.venues = static_cast<int>(toInteger(arg, next(), 0, 1000));
      } else if (arg == "--orders") {
        options.store.orders_per_venue = static_cast<int>(toInteger(arg, next(), 0, 10000000));
      } else if (arg == "--start") {
        const std::string text = next();
        auto us = ferry::sim::duckhub::parseIsoUs(text);
        if (!us) throw std::invalid_argument("--start needs an ISO timestamp with Z or ±hh:mm");
        options.store.start_ms = *us / 1000;
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
      } else if (arg == "--no-rate-limit") {
        options.rate_limit = false;
      } else if (arg == "--cache") {
        options.cache = true;
      } else if (arg == "--keys-file") {
        keys_file = next();
      } else if (arg == "--free-venue") {
        options.store.free_venue = true;
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
    std::cerr << "duckhub-sim: " << e.what() << '\n' << kUsage;
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
    DuckHubServer server(options);
    server.start();
    if (!keys_file.empty()) writeFileAtomically(keys_file, server.keysJson() + "\n");
    if (!port_file.empty()) writeFileAtomically(port_file, std::to_string(server.port()) + "\n");
    std::cout << "duckhub-sim listening on 127.0.0.1:" << server.port() << std::endl;
    int received = 0;
    sigwait(&stop_signals, &received);
    server.stop();
  } catch (const std::exception& e) {
    std::cerr << "duckhub-sim: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
