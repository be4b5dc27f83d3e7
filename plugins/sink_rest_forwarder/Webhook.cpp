#include "Webhook.h"

#include <ferry/json.hpp>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/DigestEngine.h>
#include <Poco/Exception.h>
#include <Poco/HMACEngine.h>
#include <Poco/SHA2Engine.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <sstream>

namespace ferry::rest {
namespace {

// Poco 1.11's SHA2Engine lacks the BLOCK_SIZE/DIGEST_SIZE constants HMACEngine needs.
class Sha256Engine : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine() : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256) {}
};

std::string base64(const std::string& bytes) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);  // one line: the value goes into a header
  encoder << bytes;
  encoder.close();
  return out.str();
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f ||
        std::string_view("\"(),/:;<=>?@[\\]{}").find(static_cast<char>(c)) !=
            std::string_view::npos)
      return false;
  }
  return true;
}

}  // namespace

void appendEnvelope(std::string& out, const ferry::Event& e) {
  out += "{\"id\":";
  out += ferry::json::quote(e.idempotencyKey());
  out += ",\"source\":";
  out += ferry::json::quote(e.source());
  out += ",\"entity\":";
  out += ferry::json::quote(e.entity());
  out += ",\"key\":";
  out += ferry::json::quote(e.key());
  out += ",\"version\":";
  out += ferry::json::quote(e.version());
  out += ",\"previous\":";
  out += e.previous().empty() ? std::string("null") : ferry::json::quote(e.previous());
  out += ",\"echo\":";
  out += e.echo() ? "true" : "false";
  out += ",\"sequence\":";
  out += std::to_string(e.sequence());
  out += ",\"body\":";
  out += e.body();
  out += '}';
}

bool isValidJson(std::string_view text) {
  // One parser per thread: it keeps its buffers between calls, and an instance may move between
  // the host's threads.
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  return parser.parse(padded).get(root) == simdjson::SUCCESS;
}

std::string batchKey(std::string_view first_id, std::string_view last_id) {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(first_id.data(), first_id.size());
  sha.update("\n", 1);
  sha.update(last_id.data(), last_id.size());
  return "batch_" + Poco::DigestEngine::digestToHex(sha.digest()).substr(0, 32);
}

std::string signingKey(const std::string& secret) {
  static constexpr std::string_view kPrefix = "whsec_";
  if (secret.rfind(kPrefix, 0) != 0) {
    if (secret.empty()) throw ferry::Fatal("option 'secret' is empty");
    return secret;
  }
  const std::string encoded = secret.substr(kPrefix.size());
  // Poco's decoder skips characters outside the alphabet silently; a typo must not sign with a
  // different key than the receiver's.
  const bool alphabet = std::all_of(encoded.begin(), encoded.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '+' || c == '/' || c == '=';
  });
  std::string key;
  if (alphabet && !encoded.empty() && encoded.size() % 4 == 0) {
    try {
      std::istringstream in(encoded);
      Poco::Base64Decoder decoder(in);
      key.assign(std::istreambuf_iterator<char>(decoder), std::istreambuf_iterator<char>());
    } catch (const Poco::Exception&) {
      key.clear();
    }
  }
  if (key.empty())
    throw ferry::Fatal(
        "option 'secret': the part after 'whsec_' is not valid base64 (Standard Webhooks "
        "secrets are 'whsec_' followed by the base64 of the key; copy it unchanged)");
  return key;
}

std::string signature(const std::string& key, std::string_view id, int64_t timestamp_s,
                      std::string_view body) {
  Poco::HMACEngine<Sha256Engine> hmac(key.data(), key.size());
  const std::string ts = std::to_string(timestamp_s);
  hmac.update(id.data(), id.size());
  hmac.update(".", 1);
  hmac.update(ts.data(), ts.size());
  hmac.update(".", 1);
  hmac.update(body.data(), body.size());
  const Poco::DigestEngine::Digest& digest = hmac.digest();
  return "v1," + base64(std::string(digest.begin(), digest.end()));
}

std::vector<std::pair<std::string, std::string>> parseHeaders(const std::string& text) {
  // The sink owns these: a second value would break the signature, the idempotency contract or
  // the HTTP framing.
  static const std::array<std::string_view, 8> kReserved = {
      "content-type",    "content-length", "transfer-encoding", "host",
      "idempotency-key", "webhook-id",     "webhook-timestamp", "webhook-signature"};
  std::vector<std::string> entries(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == ';' || text[i + 1] == '\\')) {
      entries.back().push_back(text[++i]);
    } else if (text[i] == ';') {
      entries.emplace_back();
    } else {
      entries.back().push_back(text[i]);
    }
  }
  std::vector<std::pair<std::string, std::string>> headers;
  for (size_t n = 0; n < entries.size(); ++n) {
    const std::string entry = trim(entries[n]);
    if (entry.empty()) continue;
    const size_t colon = entry.find(':');
    const std::string name = trim(entry.substr(0, colon));
    if (colon == std::string::npos || !isToken(name))
      throw ferry::Fatal("option 'headers': entry " + std::to_string(n + 1) +
                         " is not 'Name: value' (entries are separated by ';', write '\\;' for "
                         "a ';' inside a value)");
    const std::string value = trim(entry.substr(colon + 1));
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw ferry::Fatal("option 'headers': the value of '" + name +
                         "' contains a line break or NUL");
    if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end())
      throw ferry::Fatal("option 'headers': '" + name +
                         "' is set by the sink itself and cannot be overridden");
    headers.emplace_back(name, value);
  }
  return headers;
}

std::string excerpt(std::string_view body, size_t max_bytes) {
  size_t n = std::min(body.size(), max_bytes);
  // Do not cut a multi-byte character: back up over continuation bytes to its lead byte.
  if (n < body.size()) {
    while (n > 0 && (static_cast<unsigned char>(body[n]) & 0xC0) == 0x80) --n;
  }
  std::string out(body.substr(0, n));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return trim(out);
}

}  // namespace ferry::rest
