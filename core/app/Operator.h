// The commands that move positions or dead letters (`ferry sources backfill`, `ferry sinks rewind
// | pause | resume | forget`, `ferry dead-letters replay | drop`), carried out by the journal's
// owner only: one writer per journal (JournalOwner.h).
//
// A command run beside a running ferry stores a request in the journal (Controls.h) and waits
// for the answer; the running ferry picks the request up within a second (Operator::applyPending
// in its main loop) and hands it to the runner concerned, which carries it out between two poll
// cycles or two batches and answers. With no ferry running, the command takes the ownership and
// carries out its request itself, through the same code.
#pragma once

#include <Poco/Logger.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/Config.h"
#include "journal/Journal.h"

namespace ferry::core {

class Pipeline;

// The actions, as stored in a request.
namespace action {
constexpr const char* kBackfill = "source.backfill";      // {"from": instant, "redeliver": bool}
constexpr const char* kRewind = "sink.rewind";            // {"sequence": n} or {"instant": text}
constexpr const char* kPause = "sink.pause";              // {}
constexpr const char* kResume = "sink.resume";            // {}
constexpr const char* kForget = "sink.forget";            // {}
constexpr const char* kReplay = "dead-letters.replay";    // {"ids": [n, …]} ([] = all of the sink)
constexpr const char* kDrop = "dead-letters.drop";  // {"ids": [n, …], "source_ids": [n, …]}
// A source's dead letters (set-aside items): {"ids": [n, …]} ([] = all of the source)
constexpr const char* kReplaySetAside = "dead-letters.replay-source";
}  // namespace action

class Operator {
 public:
  // `pipeline`: the running pipeline whose runners carry out the requests about them; null when
  // nothing runs (the requests are carried out here and now).
  // `config` is read afresh for each request (a reload may replace it).
  Operator(const LiveConfig& config, Journal& journal, Pipeline* pipeline, Poco::Logger& logger);

  // The pipeline once it runs (null again before it stops). The Operator must outlive the
  // pipeline's runners: work handed to them refers to it.
  void setPipeline(Pipeline* pipeline);
  // Several hosts on one journal: only the requests whose target `answers` says yes to are
  // carried out here (the host holding the target's lease, LeaseKeeper::answers()); the others
  // are left to the host that does. Unset: every request.
  void onlyFor(std::function<bool(const std::string& target)> answers) {
    answers_ = std::move(answers);
  }

  // Carries out (or hands to a runner) every pending request not handed over yet. Never throws:
  // a request that cannot be carried out is answered as failed, a journal error postpones it.
  void applyPending();

 private:
  bool handOver(int64_t id);  // false when it already was
  void takeBack(int64_t id);
  // Carries out `work` for the request now, or on the runner's thread when `post` took it; the
  // answer is written either way.
  void answer(const CommandRequest& request, const std::function<std::string()>& work);
  std::string backfill(const CommandRequest& request);
  std::string rewind(const CommandRequest& request);
  std::string pause(const CommandRequest& request, bool paused);
  std::string forget(const CommandRequest& request);
  std::string replay(const CommandRequest& request);
  std::string drop(const CommandRequest& request);
  std::string replaySetAside(const CommandRequest& request);
  const InstanceConfig* sink(const std::string& name) const;
  const InstanceConfig* source(const std::string& name) const;

  const LiveConfig& config_;
  Journal& journal_;
  Pipeline* pipeline_;
  Poco::Logger& logger_;
  std::mutex mutex_;  // handed_over_: runners take requests back on their threads
  std::set<int64_t> handed_over_;
  std::function<bool(const std::string& target)> answers_;
};

// The lines `check` and `run` print for sources whose start_from changed since their first run
// (it applies only to a source's first cursor), each naming the backfill command. With `record`
// (run), the start_from of sources without a cursor yet is remembered.
std::vector<std::string> startFromChanges(const Config& config, Journal& journal, bool record);

}  // namespace ferry::core
