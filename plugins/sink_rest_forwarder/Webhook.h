// The wire format of sink_rest_forwarder, kept apart from the sink so that each rule reads on its
// own: the JSON envelope of an event, the Standard Webhooks signature, the `headers` option's
// syntax and the `whsec_` secret form. Nothing here does I/O.
#pragma once

#include <ferry/plugin.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::rest {

// Appends the envelope of one event: {"id","source","entity","key","version","previous","echo",
// "sequence","body"}. `previous` is null for a key never delivered before; the body is embedded
// as JSON, byte for byte as journalled (it must be valid JSON, see isValidJson).
void appendEnvelope(std::string& out, const ferry::Event& event);

// True when `text` is one complete JSON value.
bool isValidJson(std::string_view text);

// The Idempotency-Key and webhook-id of a request carrying several events: stable for the same
// first and last event, so that a retried batch is recognised as the same delivery.
std::string batchKey(std::string_view first_id, std::string_view last_id);

// The signing key of the `secret` option: the base64-decoded part of "whsec_<base64>" (the
// Standard Webhooks form), or the text's own bytes. Throws ferry::Fatal with a message that never
// contains the secret.
std::string signingKey(const std::string& secret);

// "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>", the webhook-signature header.
std::string signature(const std::string& key, std::string_view id, int64_t timestamp_s,
                      std::string_view body);

// Parses the `headers` option: "Name: value; Name2: value2", with "\;" for a literal ';' and
// "\\" for a backslash. Throws ferry::Fatal for a malformed entry or a header the sink sets
// itself; messages name the header, never its value (it is usually a credential).
std::vector<std::pair<std::string, std::string>> parseHeaders(const std::string& text);

// At most `max_bytes` of a response body for a message: cut at a UTF-8 character boundary, with
// control characters turned into spaces (the text ends up in logs and JSON output).
std::string excerpt(std::string_view body, size_t max_bytes = 200);

}  // namespace ferry::rest
