// Several hosts on one PostgreSQL journal: which host runs which source and sink.
//
// The sources and sinks of the config fall into lease groups (leaseGroups()): the sources that
// draw on one request budget (one Tradecloud account, one DuckHub API host: Capacity.h) form one
// group, so that one budget lives on one host; every other source, and every sink, is a group of
// its own (a sink is run by one host at a time, which keeps its per-key order). Each group has one
// lease row in the journal (PostgresJournal: owner host, fencing token, expiry on PostgreSQL's
// clock).
//
// Every host (`ferry run` with the same config and its own [host] host_id) runs one LeaseKeeper.
// Its thread records the host's heartbeat, renews the leases it holds every third of
// `[host] lease_time`, and claims free or expired groups up to its fair share, ceil(groups / live
// hosts); with more hosts than before it hands its surplus over. A claim increments the group's
// token; every write the host makes for an instance checks, in the write's own transaction, that
// the group is still held with that token (PostgresJournal::fence()), so a host that was frozen or
// cut off past its lease writes nothing once another took it. Before writing outside the journal
// (a sink's file, table or request; a source's delivered hook), a runner asks valid(): whether
// the lease was renewed less than lease_time minus a margin ago by this host's monotonic clock.
//
// The main loop of `ferry run` asks plan() what to run, starts and stops the runners
// (Pipeline::adjust()), and then calls handedOver() so that the leases given up are released only
// once their instances stopped. A graceful stop stops every runner, then releaseAll().
#pragma once

#include <Poco/Logger.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/Config.h"
#include "journal/PostgresJournal.h"
#include "services/Metrics.h"

namespace ferry::core {

// The lease groups of the enabled sources and sinks of `config`: group name -> instance names.
// "budget <budget>" (Capacity.h budgetOf()), "source <name>", "sink <name>".
std::map<std::string, std::vector<std::string>> leaseGroups(const Config& config);

class LeaseKeeper {
 public:
  // With `all` (run --once), the keeper claims every group, not a fair share.
  LeaseKeeper(PostgresJournal& journal, const Config& config, Poco::Logger& logger,
              Metrics& metrics, bool all = false);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Records the groups and the heartbeat, claims a first share, and starts the thread.
  void start();
  // Ends the thread (the leases stay until releaseAll() or their expiry).
  void stop();
  // Waits until every group is held (all), at most the lease time and a few seconds; throws
  // JournalBusy naming the hosts that hold the others (another host runs them).
  void awaitAll(const std::atomic<bool>& stopping);

  // For a command carried out with no ferry running (Operator.h): takes the lease of `target`'s
  // group (waiting at most the lease time and a few seconds for a killed host's to run out; then
  // JournalBusy), so that its writes are fenced like a host's. No thread; releaseAll() after.
  // Nothing to take for a target in no group.
  void holdFor(const std::string& target);

  struct Plan {
    std::set<std::string> run;               // the instances this host should run now
    std::map<std::string, int64_t> handing;  // groups to give up (-> token) once stopped
  };
  Plan plan();
  // The runners of `plan.handing` stopped: their leases are released at once.
  void handedOver(const Plan& plan);
  // After every runner stopped: releases every lease and the heartbeat (others take over at once).
  void releaseAll();

  // Whether `instance` may write outside the journal now (see above).
  bool valid(const std::string& instance);
  // Whether this host answers operators' requests about `target`: it holds the target's group;
  // for a target in no group (a removed sink, none), the host holding the first group.
  bool answers(const std::string& target);
  // The groups held now (for metrics and the log).
  size_t held();

 private:
  struct Held {
    int64_t token = 0;
    int64_t valid_until_ms = 0;  // steady clock
  };
  void loop();
  void tick(bool renew_now);
  void renew();
  void lost(const std::string& group, const std::string& why);
  void publishFences();  // under mutex_

  PostgresJournal& journal_;
  Poco::Logger& logger_;
  Metrics& metrics_;
  const std::string host_id_;
  const int64_t lease_ms_;
  const int64_t margin_ms_;
  const bool all_;
  const std::map<std::string, std::vector<std::string>> groups_;
  std::map<std::string, std::string> group_of_;  // instance -> group

  std::mutex mutex_;
  std::map<std::string, Held> held_;
  std::set<std::string> handing_;  // held groups being given up
  int64_t next_renew_ms_ = 0;      // steady clock
  std::string first_group_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ferry::core
