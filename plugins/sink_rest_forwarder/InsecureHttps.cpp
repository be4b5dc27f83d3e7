#include "InsecureHttps.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <istream>

namespace ferry::rest {
namespace {

int64_t retryAfterMs(const std::string& value) {
  if (value.empty()) return -1;
  if (value.find_first_not_of("0123456789") == std::string::npos)
    return value.size() > 8 ? int64_t{365} * 86400 * 1000 : std::stoll(value) * 1000;
  Poco::DateTime when;
  int tzd = 0;
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, value, when, tzd))
    return -1;
  const int64_t delta_us = when.timestamp() - Poco::Timestamp();
  return std::max<int64_t>(0, delta_us / 1000);
}

}  // namespace

InsecureHttps::InsecureHttps(std::string host, uint16_t port)
    : host_(std::move(host)), port_(port) {
  Poco::Net::initializeSSL();
  using Poco::Net::Context;
  context_ = new Context(Context::TLS_CLIENT_USE, "", Context::VERIFY_NONE, 9, false);
  context_->requireMinimumProtocol(Context::PROTO_TLSV1_2);
}

InsecureHttps::~InsecureHttps() {
  session_.reset();
  context_.reset();
  Poco::Net::uninitializeSSL();
}

Reply InsecureHttps::post(const std::string& path_and_query,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& body, int64_t timeout_ms) {
  Reply reply;
  const std::string where = "POST https://" + host_ + ":" + std::to_string(port_) +
                            path_and_query.substr(0, path_and_query.find('?')) + ": ";
  try {
    if (!session_) {
      session_ = std::make_unique<Poco::Net::HTTPSClientSession>(host_, port_, context_);
      session_->setKeepAlive(true);
    }
    // Per socket operation, not one deadline for the exchange as the host's client has: enough
    // for a webhook receiver that answers or hangs.
    const Poco::Timespan span(timeout_ms * 1000);
    session_->setTimeout(span, span, span);
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, path_and_query,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    session_->sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session_->receiveResponse(response);
    reply.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    reply.status = static_cast<int>(response.getStatus());
    reply.transient = reply.status == 408 || reply.status == 425 || reply.status == 429 ||
                      (reply.status >= 500 && reply.status <= 599);
    reply.retry_after_ms = retryAfterMs(response.get("Retry-After", ""));
    reply.location = response.get("Location", "");
  } catch (const Poco::TimeoutException&) {
    session_.reset();
    reply.transient = true;
    reply.error = where + "timed out after " + std::to_string(timeout_ms) + " ms";
  } catch (const Poco::Exception& e) {
    session_.reset();
    reply.transient = true;
    reply.error = where + e.displayText();
  } catch (const std::exception& e) {
    session_.reset();
    reply.transient = true;
    reply.error = where + e.what();
  }
  return reply;
}

}  // namespace ferry::rest
