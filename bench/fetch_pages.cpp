// The raw fetch rate of a DuckHub API: pages every order by keyset (updatedSince = the newest
// updatedAt of the previous page, page 1, limit 100) over one keep-alive connection, without
// parsing more than needed to find the next cursor. The ceiling an end-to-end backfill is
// measured against. The cursor is percent-encoded as ferry's source (and the guide's
// URLSearchParams) encode it, so that this asks for byte-identical query strings: the pages a
// simulator with --cache memoised for one client are the pages the other reads.
//
//   fetch_pages <base_url> <api_key> <start ISO>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <cctype>
#include <chrono>
#include <iostream>
#include <set>
#include <string>

namespace {

// Every byte but letters, digits and -._~ as %XX (a timestamp's ':' becomes %3A, '+' %2B).
std::string encoded(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: fetch_pages <base_url> <api_key> <start ISO>\n";
    return 64;
  }
  Poco::URI base(argv[1]);
  const std::string key = argv[2];
  std::string since = argv[3];
  Poco::Net::HTTPClientSession session(base.getHost(), base.getPort());
  session.setKeepAlive(true);
  std::set<std::string> ids_at_since;  // repeats of the inclusive window
  long pages = 0, orders = 0;
  auto start = std::chrono::steady_clock::now();
  while (true) {
    std::string uri =
        base.getPath() + "/orders?updatedSince=" + encoded(since) + "&limit=100&page=1";
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, uri,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Authorization", "Bearer " + key);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::string body;
    Poco::StreamCopier::copyToString(in, body);
    if (response.getStatus() != 200) {
      std::cerr << "HTTP " << response.getStatus() << ": " << body.substr(0, 200) << "\n";
      return 1;
    }
    ++pages;
    // Only the updatedAt and id of each item are located, by text search: no JSON parsing.
    std::string newest = since;
    long items = 0, fresh = 0;
    std::set<std::string> ids_at_newest;
    for (size_t pos = body.find("\"id\":\""); pos != std::string::npos;
         pos = body.find("\"id\":\"", pos + 1)) {
      size_t id_end = body.find('"', pos + 6);
      std::string id = body.substr(pos + 6, id_end - pos - 6);
      size_t u = body.find("\"updatedAt\":\"", id_end);
      if (u == std::string::npos) break;
      std::string updated = body.substr(u + 13, 24);
      ++items;
      if (updated != since || !ids_at_since.count(id)) ++fresh;
      if (updated > newest) {
        newest = updated;
        ids_at_newest.clear();
      }
      if (updated == newest) ids_at_newest.insert(id);
      pos = u;
    }
    orders += fresh;
    if (items < 100) break;
    if (newest == since) {
      std::cerr << "more than a page of orders share " << since << ": not handled here\n";
      return 1;
    }
    since = newest;
    ids_at_since = ids_at_newest;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "raw fetch: " << orders << " orders in " << pages << " pages, " << s << " s, "
            << static_cast<long>(orders / s) << " orders/s, " << static_cast<long>(pages / s)
            << " pages/s\n";
  return 0;
}
