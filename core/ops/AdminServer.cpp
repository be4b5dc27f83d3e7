#include "ops/AdminServer.h"

#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketDefs.h>
#ifndef _WIN32
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cerrno>
#include <chrono>
#include <sstream>
#include <thread>
#include <vector>

#include "ops/Pages.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

// A request head larger than this is refused; a connection lives at most this long; beyond this
// many connections the oldest is closed. None of them can hold the single serving thread.
constexpr size_t kHeadLimit = 8192;
constexpr int64_t kConnectionMs = 5000;
constexpr size_t kMaxConnections = 32;
constexpr int kPollMs = 200;

// Winsock and POSIX sockets differ in names only here: the socket type, poll, accept without
// inheritance, the error, the flags.
#ifdef _WIN32
int pollSockets(pollfd* fds, size_t n, int ms) { return ::WSAPoll(fds, static_cast<ULONG>(n), ms); }
int socketError() { return ::WSAGetLastError(); }
poco_socket_t acceptNonBlocking(poco_socket_t listen_fd) {
  poco_socket_t fd = ::accept(listen_fd, nullptr, nullptr);
  u_long on = 1;
  if (fd != POCO_INVALID_SOCKET) ::ioctlsocket(fd, FIONBIO, &on);
  return fd;
}
constexpr int kSendFlags = 0;
constexpr int kShutWrite = SD_SEND;
#else
int pollSockets(pollfd* fds, size_t n, int ms) { return ::poll(fds, n, ms); }
int socketError() { return errno; }
poco_socket_t acceptNonBlocking(poco_socket_t listen_fd) {
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
constexpr int kSendFlags = MSG_NOSIGNAL;
constexpr int kShutWrite = SHUT_WR;
#endif
bool interrupted(int error) { return error == POCO_EINTR; }
bool wouldBlock(int error) { return error == POCO_EAGAIN || error == POCO_EWOULDBLOCK; }

struct Connection {
  poco_socket_t fd = POCO_INVALID_SOCKET;
  int64_t deadline_ms = 0;
  std::string in;
  std::string out;
  size_t sent = 0;
  enum class Phase { kReading, kWriting, kDraining } phase = Phase::kReading;
};

// The whole answer: status line with its reason phrase, headers, body (none for HEAD).
std::string answer(const Page& page, bool head, const std::string& extra_headers = "") {
  const auto status = static_cast<Poco::Net::HTTPResponse::HTTPStatus>(page.status);
  std::ostringstream out;
  out << "HTTP/1.1 " << page.status << " "
      << Poco::Net::HTTPResponse::getReasonForStatus(status) << "\r\n"
      << "Content-Type: " << page.content_type << "\r\n"
      << "Content-Length: " << page.body.size() << "\r\n"
      << "Cache-Control: no-store\r\n"
      << extra_headers << "Connection: close\r\n\r\n";
  if (!head) out << page.body;
  return out.str();
}

Page textPage(int status, const std::string& text) {
  return {status, "text/plain; charset=utf-8", text};
}

}  // namespace

struct AdminServer::Impl {
  Impl(const LiveConfig& config, HostServices& services, Poco::Net::ServerSocket socket)
      : config(config), services(services), listener(std::move(socket)) {}

  void serve();
  void accept();
  void read(Connection& c);
  void write(Connection& c);
  void drain(Connection& c);
  std::string respond(const std::string& head);

  static void close(Connection& c) {
    if (c.fd != POCO_INVALID_SOCKET) poco_closesocket(c.fd);
    c.fd = POCO_INVALID_SOCKET;
  }

  const LiveConfig& config;  // a snapshot per request: a reload may replace it
  HostServices& services;
  Poco::Net::ServerSocket listener;
  std::vector<Connection> connections;
  std::atomic<bool> stop{false};
  std::thread thread;
};

void AdminServer::Impl::serve() {
  const poco_socket_t listen_fd = listener.impl()->sockfd();
  while (!stop.load()) {
    std::vector<pollfd> fds{{listen_fd, POLLIN, 0}};
    for (const auto& c : connections)
      fds.push_back({c.fd, static_cast<short>(c.phase == Connection::Phase::kWriting ? POLLOUT
                                                                                     : POLLIN),
                     0});
    if (pollSockets(fds.data(), fds.size(), kPollMs) < 0 && !interrupted(socketError())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
      continue;
    }
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      if (fds[i + 1].revents == 0) continue;
      switch (c.phase) {
        case Connection::Phase::kReading: read(c); break;
        case Connection::Phase::kWriting: write(c); break;
        case Connection::Phase::kDraining: drain(c); break;
      }
    }
    const int64_t now = steadyMs();
    for (auto& c : connections)
      if (now >= c.deadline_ms) close(c);
    std::erase_if(connections, [](const Connection& c) { return c.fd == POCO_INVALID_SOCKET; });
    if (fds[0].revents & POLLIN) accept();
  }
  for (auto& c : connections) close(c);
}

void AdminServer::Impl::accept() {
  const poco_socket_t listen_fd = listener.impl()->sockfd();
  while (true) {
    const poco_socket_t fd = acceptNonBlocking(listen_fd);
    if (fd == POCO_INVALID_SOCKET) return;  // EAGAIN: no more waiting; anything else: try again on the next poll
    if (connections.size() >= kMaxConnections) {
      close(connections.front());
      connections.erase(connections.begin());
    }
    Connection c;
    c.fd = fd;
    c.deadline_ms = steadyMs() + kConnectionMs;
    connections.push_back(std::move(c));
  }
}

void AdminServer::Impl::read(Connection& c) {
  char buffer[4096];
  while (true) {
    auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n < 0 && interrupted(socketError())) continue;
    if (n < 0 && wouldBlock(socketError())) break;
    if (n <= 0) return close(c);
    c.in.append(buffer, static_cast<size_t>(n));
    if (c.in.size() > kHeadLimit) break;
  }
  size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) end = c.in.find("\n\n");
  if (end == std::string::npos && c.in.size() <= kHeadLimit) return;  // more to come
  c.out = end == std::string::npos
              ? answer(textPage(431, "request head larger than " + std::to_string(kHeadLimit) +
                                         " bytes\n"),
                       false)
              : respond(c.in.substr(0, end));
  c.phase = Connection::Phase::kWriting;
  write(c);
}

void AdminServer::Impl::write(Connection& c) {
  while (c.sent < c.out.size()) {
    auto n = ::send(c.fd, c.out.data() + c.sent, static_cast<int>(c.out.size() - c.sent),
                    kSendFlags);
    if (n < 0 && interrupted(socketError())) continue;
    if (n < 0 && wouldBlock(socketError())) return;
    if (n <= 0) return close(c);
    c.sent += static_cast<size_t>(n);
  }
  // Closing with unread input would reset the connection and could destroy the answer in
  // flight: say we are done, and read until the client closes too (or the deadline).
  ::shutdown(c.fd, kShutWrite);
  c.phase = Connection::Phase::kDraining;
  drain(c);
}

void AdminServer::Impl::drain(Connection& c) {
  char buffer[4096];
  while (true) {
    auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n < 0 && interrupted(socketError())) continue;
    if (n < 0 && wouldBlock(socketError())) return;
    if (n <= 0) return close(c);
  }
}

std::string AdminServer::Impl::respond(const std::string& head) {
  std::string line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream words(line);
  std::string method, target, version, extra;
  words >> method >> target >> version;
  if (method.empty() || target.empty() || version.rfind("HTTP/1.", 0) != 0 || (words >> extra))
    return answer(textPage(400, "malformed request line\n"), false);
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only)
    return answer(textPage(405, "only GET and HEAD are served\n"), false, "Allow: GET, HEAD\r\n");
  const std::string path = target.substr(0, target.find('?'));
  try {
    if (path == "/healthz") return answer(healthPage(config.get(), services), head_only);
    if (path == "/metrics") return answer(metricsPage(config.get(), services), head_only);
    return answer(textPage(404, "not found: try /healthz or /metrics\n"), head_only);
  } catch (const std::exception& e) {
    return answer(textPage(500, std::string("error: ") + e.what() + "\n"), head_only);
  }
}

AdminServer::AdminServer(const LiveConfig& config, HostServices& services,
                         const std::string& listen) {
  try {
    Poco::Net::ServerSocket socket{Poco::Net::SocketAddress(listen)};
    socket.setBlocking(false);
    impl_ = std::make_unique<Impl>(config, services, std::move(socket));
  } catch (const Poco::Exception& e) {
    throw ConfigError(config.get().file + ": [host] admin_listen: cannot listen on '" + listen +
                      "': " + e.displayText());
  }
  impl_->thread = std::thread([this] { impl_->serve(); });
}

AdminServer::~AdminServer() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t AdminServer::port() const { return impl_->listener.address().port(); }

}  // namespace ferry::core
