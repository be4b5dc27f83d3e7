// sink_rest_forwarder: POSTs every change to a user's HTTP endpoint the way careful webhook senders
// do (Standard Webhooks): a JSON envelope per event, an Idempotency-Key, an HMAC signature, and
// an answer for every status so that nothing is dropped silently. The host owns retries,
// backoff, Retry-After and the dead letters; this sink only says how far it got.
#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <algorithm>
#include <chrono>
#include <ferry/plugin.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "Webhook.h"

namespace {

// What came back from one request.
struct Reply {
  int status = 0;               // 0: no response arrived
  bool transient = false;       // 408/425/429/5xx, timeouts, refused or dropped connections
  int64_t retry_after_ms = -1;  // Retry-After, -1 when absent
  std::string body;
  std::string location;         // Location header (for the message of a redirect)
  std::string error;            // transport error when status == 0
};

constexpr ferry_option_def kOptions[] = {
    ferry::Option("url").required().help(
        "the endpoint every change is POSTed to (http:// or https://)"),
    ferry::Option("batch", FERRY_OPT_INT)
        .defaultsTo("1")
        .help("events per request: 1 sends one JSON object per request, N > 1 a JSON array of up "
              "to N (never more than batch_size)"),
    ferry::Option("timeout", FERRY_OPT_DURATION)
        .defaultsTo("15s")
        .help("longest wait for the endpoint's answer; a timeout is retried"),
    ferry::Option("headers").secret().help(
        "extra request headers, 'Name: value; Name2: value2' ('\\;' for a ';' in a value)"),
    ferry::Option("secret").secret().help(
        "signing key for the Standard Webhooks signature: 'whsec_<base64>' or plain text; unset: "
        "requests are not signed"),
    ferry::Option("tls_verify", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("verify the endpoint's TLS certificate; false is logged as a warning"),
    // Redeclared only to read it: a request never spans two writes, so `batch` above it is
    // pointless and worth a warning.
    ferry::Option("batch_size", FERRY_OPT_INT)
        .defaultsTo("100")
        .help("host setting: most events per write (committed together); requests within a write "
              "carry `batch` events each"),
};

constexpr int64_t kMaxBatch = 1000;

enum class Verdict { kOk, kRetry, kFatal, kAuth, kStop };

struct Answer {
  Verdict verdict = Verdict::kOk;
  std::string message;
  int64_t retry_after_ms = -1;
};

class RestForwarder : public ferry::Sink {
 public:
  RestForwarder(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host),
        url_(options.string("url")),
        batch_(options.integer("batch")),
        timeout_ms_(options.durationMs("timeout")) {
    parseUrl();
    if (batch_ < 1 || batch_ > kMaxBatch)
      throw ferry::Fatal("option 'batch' must be between 1 and " + std::to_string(kMaxBatch));
    if (timeout_ms_ <= 0) throw ferry::Fatal("option 'timeout' must be longer than 0");
    if (options.has("headers")) extra_headers_ = ferry::rest::parseHeaders(options.string("headers"));
    if (options.has("secret")) key_ = ferry::rest::signingKey(options.string("secret"));

    const int64_t batch_size = options.has("batch_size") ? options.integer("batch_size") : 100;
    if (batch_ > batch_size)
      host.warning("batch = " + std::to_string(batch_) + " is larger than batch_size = " +
                   std::to_string(batch_size) + ": a request never carries more than one write's " +
                   std::to_string(batch_size) + " events; raise batch_size");
    if (!options.boolean("tls_verify")) {
      if (https_) {
        tls_verify_ = false;
        host.warning("tls_verify = false: the certificate of " + display_ +
                     " is NOT verified; anyone on the path can read and alter these requests");
      } else {
        host.warning("tls_verify = false has no effect: " + display_ + " is plain http");
      }
    }
    host.info("forwarding to " + display_ + ", " + std::to_string(batch_) +
              " event(s) per request, " + (key_ ? "signed" : "NOT signed (no secret)"));
  }

  // `ferry check --connect`: the endpoint answers at all, over TLS the host trusts (unless
  // tls_verify = false). A HEAD request, which no receiver takes for a delivery; any HTTP status
  // counts as reachable, since many webhook receivers answer HEAD with 404 or 405.
  void check() override {
    ferry::HttpRequest request;
    request.method = "HEAD";
    request.url = url_;
    request.headers = extra_headers_;
    request.timeout_ms = timeout_ms_;
    request.tls_verify = tls_verify_;
    ferry::HttpResponse r = host().http(request);
    if (r.status() != 0) return;
    const std::string why = "cannot reach " + display_ + ": " + std::string(r.error());
    if (r.transient()) throw ferry::Retry(why);
    throw ferry::Stop(why);
  }

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    size_t i = 0;
    while (i < batch.size()) {
      size_t end = std::min(batch.size(), i + static_cast<size_t>(batch_));
      // A body that is not JSON would corrupt the whole envelope: send the events before it,
      // then dead-letter it on its own.
      for (size_t k = i; k < end; ++k) {
        if (!ferry::rest::isValidJson(batch[k].body())) {
          if (k == i)
            return ferry::WriteOutcome::refuse(i, "the event body is not valid JSON; it cannot be "
                                                  "embedded in the envelope");
          end = k;
          break;
        }
      }
      Answer a = send(batch.slice(i, end - i));
      if (a.verdict == Verdict::kFatal && end - i > 1) {
        // The endpoint refused the request but did not say which event: send them one by one so
        // that only the event it really refuses goes to the dead letters.
        for (size_t k = i; k < end; ++k) {
          Answer one = send(batch.slice(k, 1));
          if (one.verdict != Verdict::kOk) return outcome(one, k);
        }
        i = end;
        continue;
      }
      if (a.verdict != Verdict::kOk) return outcome(a, i);
      i = end;
    }
    return ferry::WriteOutcome::ok();
  }

 private:
  // [0, index) are delivered; `a` is the answer for the request starting at `index`.
  static ferry::WriteOutcome outcome(const Answer& a, size_t index) {
    switch (a.verdict) {
      case Verdict::kOk:
        return ferry::WriteOutcome::ok();
      case Verdict::kRetry:
        return ferry::WriteOutcome::retry(index, a.message, a.retry_after_ms);
      case Verdict::kFatal:
        return ferry::WriteOutcome::refuse(index, a.message);
      case Verdict::kStop:
        return ferry::WriteOutcome::stop(a.message, index);
      case Verdict::kAuth:
        return ferry::WriteOutcome::auth(a.message, index);
    }
    return ferry::WriteOutcome::retry(index, a.message);
  }

  void parseUrl() {
    Poco::URI uri;
    try {
      uri = Poco::URI(url_);
    } catch (const Poco::Exception& e) {
      throw ferry::Fatal("option 'url': cannot parse '" + url_ + "': " + e.message());
    }
    const std::string scheme = uri.getScheme();
    if ((scheme != "http" && scheme != "https") || uri.getHost().empty())
      throw ferry::Fatal("option 'url' must be an absolute http:// or https:// URL with a host");
    https_ = scheme == "https";
    host_ = uri.getHost();
    port_ = uri.getPort();
    path_ = uri.getPathEtc();
    if (path_.empty() || path_.front() != '/') path_.insert(0, "/");
    // Without query or user info: messages end up in logs, status and dead letters, and some
    // endpoints take a token in the query string.
    display_ = scheme + "://" + uri.getAuthority().substr(uri.getUserInfo().empty()
                                                              ? 0
                                                              : uri.getUserInfo().size() + 1) +
               uri.getPath();
  }

  Answer send(const ferry::Batch& events) {
    std::string body;
    const bool array = batch_ > 1;
    if (array) body.push_back('[');
    for (size_t k = 0; k < events.size(); ++k) {
      if (k > 0) body.push_back(',');
      ferry::rest::appendEnvelope(body, events[k]);
    }
    if (array) body.push_back(']');

    const std::string id = events.size() == 1
                               ? std::string(events.front().idempotencyKey())
                               : ferry::rest::batchKey(events.front().idempotencyKey(),
                                                       events.back().idempotencyKey());
    std::vector<std::pair<std::string, std::string>> headers{
        {"Content-Type", "application/json"},
        {"User-Agent", "ferry/" FERRY_SDK_VERSION},
        {"Idempotency-Key", id},
    };
    if (key_) {
      // Signed at send time: a retry carries a fresh timestamp, which receivers check against
      // their clock to refuse replays of old requests.
      const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
      headers.emplace_back("webhook-id", id);
      headers.emplace_back("webhook-timestamp", std::to_string(now_s));
      headers.emplace_back("webhook-signature", ferry::rest::signature(*key_, id, now_s, body));
    }
    // Extra headers last: a user's User-Agent replaces ours.
    for (const auto& h : extra_headers_) {
      auto same = [&](const auto& e) { return equalsIgnoreCase(e.first, h.first); };
      headers.erase(std::remove_if(headers.begin(), headers.end(), same), headers.end());
      headers.push_back(h);
    }

    ferry::HttpRequest request;
    request.method = "POST";
    request.url = url_;
    request.headers = std::move(headers);
    request.body = std::move(body);
    request.timeout_ms = timeout_ms_;
    request.tls_verify = tls_verify_;
    std::optional<ferry::HttpResponse> answer;
    try {
      answer.emplace(host().http(request));
    } catch (const ferry::Fatal& e) {
      // The host refused to send it (the URL and `headers` were checked at start, so it is these
      // events: an id with a line break cannot go into Idempotency-Key). Nothing was sent; the
      // events are refused like a 4xx, so that only the one at fault is dead-lettered.
      return {Verdict::kFatal, "the request was not sent: " + std::string(e.what()), -1};
    }
    const ferry::HttpResponse& r = *answer;
    Reply reply;
    reply.status = r.status();
    reply.transient = r.transient();
    reply.retry_after_ms = r.retryAfterMs();
    reply.body = std::string(r.body().substr(0, 4096));
    reply.location = std::string(r.header("Location").value_or(""));
    reply.error = std::string(r.error());
    return classify(reply);
  }

  Answer classify(const Reply& r) const {
    const std::string what = "HTTP " + std::to_string(r.status) + " from " + display_;
    const std::string text = ferry::rest::excerpt(r.body);
    const std::string detail = text.empty() ? "" : ": " + text;
    if (r.status == 0) {
      // No answer. Timeouts, refusals and drops are transient; what is not (a certificate the
      // host does not trust) needs the operator, and would fail for every event alike.
      if (r.transient) return {Verdict::kRetry, r.error, -1};
      return {Verdict::kStop, r.error, -1};
    }
    if (r.status >= 200 && r.status <= 299) return {};
    if (r.status == 410)
      return {Verdict::kStop,
              "endpoint retired: " + what + " (410 Gone); point url at its replacement or "
              "disable the sink, then restart" + detail,
              -1};
    if (r.status == 401 || r.status == 403)
      return {Verdict::kAuth, what + " (credentials refused; check headers/secret)" + detail, -1};
    if (r.transient) return {Verdict::kRetry, what + detail, r.retry_after_ms};
    if (r.status >= 300 && r.status <= 399)
      return {Verdict::kStop,
              what + " redirects to '" + r.location +
                  "'; webhooks are not redirected: set url to the final address",
              -1};
    if (r.status >= 400 && r.status <= 499) return {Verdict::kFatal, what + detail, -1};
    return {Verdict::kRetry, "unexpected " + what + detail, r.retry_after_ms};
  }

  static bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  }

  std::string url_;
  int64_t batch_;
  int64_t timeout_ms_;
  bool https_ = false;
  std::string host_;
  uint16_t port_ = 0;
  std::string path_;
  std::string display_;
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  std::optional<std::string> key_;
  bool tls_verify_ = true;
};

}  // namespace

FERRY_SINK_PLUGIN(RestForwarder, "sink_rest_forwarder", "1.0.0",
                  "POSTs each change to an HTTP endpoint: signed (Standard Webhooks), with an "
                  "Idempotency-Key",
                  kOptions)
