// sink_erp_csv: writes each batch of events as RFC 4180 CSV files into the folder an ERP polls.
//
// Effectively-once comes from the file names: a file holds the events of one journal range and is
// named after it (<name>-<journal>-<first seq>-<last seq>.csv, <journal> naming the journal the
// sequences belong to, so that a new journal never writes over an older one's files). The host
// commits the sink's offset only
// after write() answers, so a crash re-delivers the same range starting at the same sequence, and
// the file is rewritten under the same name instead of being added a second time. A file only
// ever appears complete: it is written under a hidden temporary name, fsynced, renamed, and the
// rename is made durable by fsyncing the folder. On Windows the file is flushed with _commit()
// (FlushFileBuffers) and put in place with MoveFileEx(MOVEFILE_REPLACE_EXISTING |
// MOVEFILE_WRITE_THROUGH), which returns once the move is on disk (there is no folder to fsync).
//
// only_changed_lines compares a line's change time with the version of the same document this
// sink last wrote (not the event's `previous`, which may be a version the sink never wrote: an
// echo it skipped, a dead letter). The sink keeps, per document, that version in its durable
// plugin state, recorded once per batch after the files are durable (see Written).
#include <dirent.h>
#include <fcntl.h>
#include <ferry/mapping.hpp>
#include <ferry/common/StateMap.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _WIN32
#include <io.h>
#include <windows.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ferry/plugin.hpp>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("dir").required().help(
        "the ERP's drop folder; files appear there complete (written under a hidden .tmp name, "
        "then renamed); a missing or unwritable folder makes the sink retry"),
    ferry::Option("name").defaultsTo("ferry").help(
        "file name prefix: <name>-<journal>-<first seq>-<last seq>.csv; unique per folder"),
    ferry::Option("layout")
        .defaultsTo("duckhub_order")
        .choices("duckhub_order|duckhub_order_lines|tradecloud_order_lines|"
                 "tradecloud_shipment_lines|custom")
        .help("built-in column layout: one row per DuckHub order, one per order item with the "
              "order's fields repeated, one per Tradecloud order line or shipment line; custom "
              "uses `columns` and `rows`"),
    ferry::Option("columns").help(
        "layout = custom: Header=expression columns separated by ';' (see the README), e.g. "
        "order=^/orderNumber; product=/productName; total=amount(/totalPrice)"),
    ferry::Option("rows").help(
        "layout = custom: a JSON Pointer to an array (e.g. /items) for one row per element; "
        "empty for one row per event"),
    ferry::Option("only_changed_lines", FERRY_OPT_BOOL)
        .defaultsTo("false")
        .help("write only the lines that changed since the version of the document this sink "
              "wrote before (every line of a document it never wrote); tradecloud_* layouts, or "
              "custom with line_changed_at"),
    ferry::Option("line_changed_at").help(
        "layout = custom with only_changed_lines: JSON Pointer into a row element to its change "
        "time, e.g. /lastUpdatedAt"),
    ferry::Option("skip_echo_lines")
        .defaultsTo("off")
        .choices("off|on|in-progress|buyer|supplier")
        .help("on: leave out the lines the source marks as this integration's own open requests "
              "(its metadata's own_lines; buyer and supplier are deprecated spellings of on); "
              "in-progress: leave out lines whose status.processStatus is InProgress; off: keep "
              "every line"),
    ferry::Option("delimiter")
        .defaultsTo(",")
        .choices(",|;|tab")
        .help("field separator: , or ; or tab"),
    ferry::Option("bom", FERRY_OPT_BOOL)
        .defaultsTo("false")
        .help("start each file with a UTF-8 byte-order mark (some ERPs need it to read UTF-8)"),
    ferry::Option("header", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("write the column headers as the first row of each file"),
    ferry::Option("line_ending")
        .defaultsTo("crlf")
        .choices("crlf|lf")
        .help("record separator: crlf (RFC 4180) or lf"),
    ferry::Option("max_rows", FERRY_OPT_INT)
        .defaultsTo("10000")
        .help("most rows per file: a batch with more is split into several files, at event "
              "boundaries "
              "(an event with more rows than this gets a file of its own)"),
    ferry::Option("neutralise_formulas", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("prefix a text cell starting with = + - @ tab or CR with ' so that spreadsheets do "
              "not run it as a formula; numbers are never changed; raw(...) opts a column out"),
    // Host settings, redeclared for their defaults: an ERP wants few, large files.
    ferry::Option("batch_size", FERRY_OPT_INT)
        .defaultsTo("1000")
        .help("most events per batch (one batch is one file, or several with max_rows)"),
    ferry::Option("batch_delay", FERRY_OPT_DURATION)
        .defaultsTo("5s")
        .help("longest a change waits before a partial file is written"),
};

std::string errnoText(int e) { return std::strerror(e); }

// The platform seam: open flags of the file (binary on Windows: `eol` decides the line ends),
// the folder's writability test, flushing a file to disk, the atomic replace of the final name.
#ifdef _WIN32
constexpr int kOpenFlags = O_BINARY | O_NOINHERIT;
constexpr int kWritable = W_OK;
int flushToDisk(int fd) { return ::_commit(fd); }
int replaceFile(const std::string& from, const std::string& to) {
  if (::MoveFileExA(from.c_str(), to.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    return 0;
  switch (::GetLastError()) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND: errno = ENOENT; break;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION: errno = EACCES; break;
    case ERROR_DISK_FULL: errno = ENOSPC; break;
    default: errno = EIO;
  }
  return -1;
}
#else
constexpr int kOpenFlags = O_CLOEXEC;
constexpr int kWritable = W_OK | X_OK;
int flushToDisk(int fd) { return ::fsync(fd); }
int replaceFile(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str());
}
#endif

// only_changed_lines: what the sink wrote of one document (key "source/entity/key"). `seq` and
// `version_ms` are the last event written; `base_ms` is the version written before the batch
// that wrote it (nullopt: none). A range is delivered again after a crash from its first
// sequence: an event then finds a record of its own (seq >= its sequence) and compares with
// `base_ms`, exactly as the first time, so the same file is written again.
struct Written {
  int64_t seq = 0;
  int64_t version_ms = 0;
  std::optional<int64_t> base_ms;

  std::string encode() const {
    return std::to_string(seq) + " " + std::to_string(version_ms) + " " +
           (base_ms ? std::to_string(*base_ms) : "-");
  }
  static std::optional<Written> decode(const std::string& text) {
    Written w;
    char base[32] = {0};
    long long seq = 0, version = 0;
    if (std::sscanf(text.c_str(), "%lld %lld %31s", &seq, &version, base) != 3) return std::nullopt;
    w.seq = seq;
    w.version_ms = version;
    if (base[0] != '-') w.base_ms = std::strtoll(base, nullptr, 10);
    return w;
  }
};

// The journal's part of a file name: its creation time and the first random digits of its
// identity ("20261203T155600Z-1a2b3c…" gives "20261203155600-1a2b3c"); names sort by journal,
// then by sequence.
std::string journalTag(std::string_view id) {
  std::string time, random;
  const size_t dash = id.find('-');
  for (char c : id.substr(0, dash))
    if (c >= '0' && c <= '9') time += c;
  if (dash != std::string_view::npos)
    for (char c : id.substr(dash + 1))
      if (((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) && random.size() < 6) random += c;
  return time + "-" + random;
}

std::string seq12(int64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012lld", static_cast<long long>(seq));
  return buf;
}

bool validName(const std::string& s) {
  if (s.empty() || s[0] == '.') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error close() may carry (NFS reports write errors there).
  int close() {
    int r = ::close(fd_);
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

class ErpCsvSink : public ferry::Sink {
 public:
  ErpCsvSink(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host),
        dir_(options.string("dir")),
        name_(options.string("name", "ferry")),
        mapper_(mappingFrom(options)),
        rows_(mapper_.mapping().columnCount()),
        bom_(options.boolean("bom")),
        header_(options.boolean("header")),
        eol_(options.string("line_ending", "crlf") == "lf" ? "\n" : "\r\n"),
        max_rows_(static_cast<size_t>(options.integer("max_rows"))),
        neutralise_(options.boolean("neutralise_formulas")) {
    const std::string d = options.string("delimiter", ",");
    delimiter_ = d == "tab" ? '\t' : d[0];
    if (dir_.empty()) throw ferry::Fatal("dir: empty; set it to the ERP's drop folder");
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    if (!validName(name_))
      throw ferry::Fatal("name: '" + name_ +
                         "' cannot start a file name; use letters, digits, '_', '-' and '.', not "
                         "starting with '.'");
    if (options.integer("max_rows") < 1) throw ferry::Fatal("max_rows: must be at least 1");
    journal_ = journalTag(host.journalId());
    for (size_t i = 0; i < mapper_.mapping().columnCount(); ++i)
      raw_.push_back(mapper_.mapping().raw(i));
    watchColumns(options.string("layout", "duckhub_order"));
    try {
      mapper_.setRowFilter(rowFilterFrom(options));
    } catch (const ferry::mapping::MappingError& e) {
      throw ferry::Fatal(e.what());
    }
    if (const std::string echo = options.string("skip_echo_lines", "off");
        echo == "buyer" || echo == "supplier")
      host.warning("skip_echo_lines = " + echo +
                   " is a deprecated spelling of skip_echo_lines = on: the lines left out are "
                   "those the source marks as its own open requests, by the source's role and "
                   "echo options");
    if (options.boolean("only_changed_lines")) written_.emplace(host, "written/");
    // A write killed mid-way leaves a hidden .tmp file: remove it at start rather than at the
    // next write, which may be hours away. A missing folder is reported by the first write.
    std::string ignored;
    scanFolder(ignored);
  }

  void check() override {
    if (::access(dir_.c_str(), kWritable) != 0)
      throw ferry::Retry("ERP folder '" + dir_ + "' is not writable: " + errnoText(errno));
  }

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    // 1. Map every event; the first that cannot be mapped ends the batch (it is dead-lettered
    //    after the events before it are written).
    rows_.clear();
    row_end_.clear();
    updates_.clear();
    size_t usable = batch.size();
    std::string map_error;
    std::unordered_map<std::string, Written> in_batch;  // records made by this batch so far
    for (size_t i = 0; i < batch.size(); ++i) {
      bool mapped;
      if (written_) {
        const ferry::Event e = batch[i];
        std::string key =
            std::string(e.source()) + "/" + std::string(e.entity()) + "/" + std::string(e.key());
        std::optional<Written> last;
        if (auto it = in_batch.find(key); it != in_batch.end()) last = it->second;
        else if (const std::string* text = written_->find(key)) last = Written::decode(*text);
        std::optional<int64_t> since;
        if (last) since = last->seq < e.sequence() ? std::optional(last->version_ms) : last->base_ms;
        mapped = mapper_.map(e, since, rows_, map_error);
        int64_t version_ms = 0;
        if (mapped && ferry::mapping::parseInstantMs(e.version(), version_ms)) {
          Written w{e.sequence(), version_ms, std::nullopt};
          if (last) w.base_ms = last->seq < batch[0].sequence() ? std::optional(last->version_ms)
                                                                : last->base_ms;
          in_batch[key] = w;
          updates_.emplace_back(i, std::move(key), w);
        }
      } else {
        mapped = mapper_.map(batch[i], rows_, map_error);
      }
      if (!mapped) {
        usable = i;
        map_error = "event " + std::string(batch[i].idempotencyKey()) + " (sequence " +
                    std::to_string(batch[i].sequence()) + "): " + map_error;
        break;
      }
      row_end_.push_back(rows_.size());
    }

    // 2. Files: slices of whole events holding at most max_rows rows. Greedy from the first
    //    event, so that a re-delivered range that starts at the same sequence is cut at the same
    //    places (only the last slice can grow).
    if (usable > 0) {
      std::string scan_error;
      if (!scanFolder(scan_error)) return ferry::WriteOutcome::retry(0, scan_error);
    }
    size_t first = 0;
    while (first < usable) {
      size_t last = first;  // inclusive
      const size_t row_begin = first == 0 ? 0 : row_end_[first - 1];
      while (last + 1 < usable && row_end_[last + 1] - row_begin <= max_rows_) ++last;
      std::string error;
      if (!writeSlice(batch, first, last, row_begin, row_end_[last], error)) {
        recordWritten(first);
        return ferry::WriteOutcome::retry(first, error);
      }
      first = last + 1;
    }
    recordWritten(usable);
    if (usable < batch.size()) return ferry::WriteOutcome::refuse(usable, map_error);
    return ferry::WriteOutcome::ok();
  }

 private:
  static ferry::mapping::Mapping mappingFrom(const ferry::Options& options) {
    const std::string layout = options.string("layout", "duckhub_order");
    const bool has_columns = !options.string("columns").empty();
    const bool has_rows = !options.string("rows").empty();
    try {
      if (layout == "custom") {
        if (!has_columns)
          throw ferry::Fatal(
              "columns: required with layout = custom; e.g. columns = "
              "order=^/orderNumber; product=/productName; total=amount(/totalPrice)");
        return ferry::mapping::Mapping::parse(options.string("columns"), options.string("rows"));
      }
      if (has_columns || has_rows)
        throw ferry::Fatal(std::string(has_columns ? "columns" : "rows") +
                           ": only used with layout = custom (layout is " + layout +
                           "); set layout = custom or remove it");
      return ferry::mapping::Mapping::layout(layout);
    } catch (const ferry::mapping::MappingError& e) {
      throw ferry::Fatal(e.what());
    }
  }

  // only_changed_lines and skip_echo_lines as a row filter of the mapping.
  static ferry::mapping::RowFilter rowFilterFrom(const ferry::Options& options) {
    ferry::mapping::RowFilter filter;
    const std::string layout = options.string("layout", "duckhub_order");
    const std::string changed_at = options.string("line_changed_at");
    if (!changed_at.empty() && layout != "custom")
      throw ferry::Fatal("line_changed_at: only used with layout = custom (layout " + layout +
                         " knows its lines' change time)");
    if (options.boolean("only_changed_lines")) {
      filter.changed_at =
          layout == "custom" ? changed_at : ferry::mapping::Mapping::layoutRowChangedAt(layout);
      if (filter.changed_at.empty())
        throw ferry::Fatal(
            "only_changed_lines: layout " + layout +
            (layout == "custom" ? " needs line_changed_at (e.g. /lastUpdatedAt)"
                                : " has no line change time; use a tradecloud_* layout"));
    }
    // on (and its old spellings buyer, supplier): the lines the source lists in the event's
    // metadata (own_lines); the source knows its role and echo rule, the sink only reads them.
    const std::string echo = options.string("skip_echo_lines", "off");
    if (echo == "in-progress") {
      filter.skip_at = "/status/processStatus";
      filter.skip_values = {"InProgress"};
    } else if (echo != "off") {
      filter.skip_own_lines = true;
    }
    return filter;
  }

  // Lists the folder once per batch: files of ours by their first sequence (to replace an older
  // file of the same range), and temporary files a crash left behind (removed: the instance
  // never has one open between calls, and `name` is unique per folder).
  bool scanFolder(std::string& error) {
    existing_.clear();
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) {
      error = "cannot open the ERP folder '" + dir_ + "': " + errnoText(errno);
      return false;
    }
    // Files of other journals (or of older versions, without a journal part) are never touched.
    const std::string prefix = name_ + "-" + journal_ + "-";
    const std::string tmp_prefix = "." + name_ + "-";
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(tmp_prefix, 0) == 0 && n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) {
        if (::unlink((dir_ + "/" + n).c_str()) == 0)
          host().info("removed " + n + ", left in " + dir_ + " by an interrupted write");
        continue;
      }
      // <name>-<journal>-<12 digits>-<12 digits>.csv
      if (n.size() != prefix.size() + 12 + 1 + 12 + 4 || n.rfind(prefix, 0) != 0 ||
          n.compare(n.size() - 4, 4, ".csv") != 0)
        continue;
      existing_[n.substr(prefix.size(), 12)].push_back(n);
    }
    ::closedir(d);
    return true;
  }

  void encodeCell(std::string& out, const ferry::mapping::Cell& cell, bool raw) const {
    const std::string& t = cell.text;
    // Spreadsheets run a cell starting with these as a formula (CSV injection). Only text is
    // touched: a number such as -12.50 from amount() must reach the ERP unchanged.
    const bool prefix =
        neutralise_ && !raw && cell.kind == ferry::mapping::CellKind::kText && !t.empty() &&
        (t[0] == '=' || t[0] == '+' || t[0] == '-' || t[0] == '@' || t[0] == '\t' || t[0] == '\r');
    encodeText(out, t, prefix);
  }

  void encodeText(std::string& out, const std::string& t, bool prefix = false) const {
    bool quote = false;
    for (char c : t) {
      if (c == delimiter_ || c == '"' || c == '\r' || c == '\n') {
        quote = true;
        break;
      }
    }
    if (!quote) {
      if (prefix) out += '\'';
      out += t;
      return;
    }
    out += '"';
    if (prefix) out += '\'';
    for (char c : t) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }

  bool writeSlice(const ferry::Batch& batch, size_t first, size_t last, size_t row_begin,
                  size_t row_end, std::string& error) {
    if (row_begin == row_end) return true;  // these events map to no rows: no file
    const auto& mapping = mapper_.mapping();
    buffer_.clear();
    if (bom_) buffer_ += "\xEF\xBB\xBF";
    if (header_) {
      for (size_t c = 0; c < mapping.columnCount(); ++c) {
        if (c > 0) buffer_ += delimiter_;
        encodeText(buffer_, mapping.headers()[c]);
      }
      buffer_ += eol_;
    }
    for (size_t r = row_begin; r < row_end; ++r) {
      for (size_t c = 0; c < rows_.columns(); ++c) {
        if (c > 0) buffer_ += delimiter_;
        encodeCell(buffer_, rows_.at(r, c), raw_[c]);
      }
      buffer_ += eol_;
    }

    const std::string first_seq = seq12(batch[first].sequence());
    const std::string base =
        name_ + "-" + journal_ + "-" + first_seq + "-" + seq12(batch[last].sequence());
    const std::string final_name = base + ".csv";
    const std::string tmp_path = dir_ + "/." + base + ".tmp";
    const std::string final_path = dir_ + "/" + final_name;
    auto fail = [&](const std::string& what, int e) {
      ::unlink(tmp_path.c_str());  // never leave a partial file behind
      error = "cannot write to the ERP folder '" + dir_ + "': " + what + ": " + errnoText(e);
      return false;
    };

    Fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | kOpenFlags, 0644));
    if (fd.get() < 0) {
      int e = errno;
      error = "cannot write to the ERP folder '" + dir_ + "': creating ." + base +
              ".tmp: " + errnoText(e);
      return false;
    }
    const char* p = buffer_.data();
    size_t left = buffer_.size();
    while (left > 0) {
      ssize_t n = ::write(fd.get(), p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("writing ." + base + ".tmp", errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (flushToDisk(fd.get()) != 0) return fail("fsync of ." + base + ".tmp", errno);
    if (fd.close() != 0) return fail("closing ." + base + ".tmp", errno);
    if (replaceFile(tmp_path, final_path) != 0)
      return fail("renaming ." + base + ".tmp to " + final_name, errno);
    if (!syncFolder(error)) return false;

    // An older file of the same first sequence (a batch cut shorter or longer before a crash)
    // is removed only now, after the new one is durable. Ferry is at-least-once underneath:
    // in the other order a crash between the two steps would leave those events in no file at
    // all, relying on the re-delivery to bring them back; in this order the worst a crash
    // leaves is the same rows in two files until the re-delivery (same first sequence, same
    // name) comes and removes the old one. Rows are never missing from the folder.
    auto old = existing_.find(first_seq);
    if (old != existing_.end()) {
      bool removed = false;
      for (const auto& n : old->second) {
        if (n == final_name) continue;
        if (::unlink((dir_ + "/" + n).c_str()) != 0 && errno != ENOENT) {
          int e = errno;
          error = "cannot write to the ERP folder '" + dir_ + "': removing " + n +
                  ", replaced by " + final_name + ": " + errnoText(e);
          return false;
        }
        removed = true;
        host().info("replaced " + n + " by " + final_name + " (re-delivery of the same range)");
      }
      existing_.erase(old);
      if (removed && !syncFolder(error)) return false;
    }
    host().info("wrote " + final_name + " (" + std::to_string(row_end - row_begin) + " rows, " +
                std::to_string(last - first + 1) + " events)");
    reportEmptyColumns(row_begin, row_end, final_name);
    host().count("files_written_total");
    host().count("rows_written_total", static_cast<double>(row_end - row_begin));
    return true;
  }

  // The columns of a built-in layout that the source's documented shape fills (none for custom).
  void watchColumns(const std::string& layout) {
    layout_ = layout;
    const auto& headers = mapper_.mapping().headers();
    for (auto& [header, fields] : ferry::mapping::Mapping::layoutExpectedColumns(layout))
      for (size_t c = 0; c < headers.size(); ++c)
        if (headers[c] == header) watched_.push_back({c, std::move(fields)});
  }

  // A watched column that is empty in every row of the file just written is said once per sink
  // and column: the source probably does not send that field (another API version, a shape the
  // layout does not know), and the ERP gets empty cells.
  void reportEmptyColumns(size_t row_begin, size_t row_end, const std::string& file) {
    for (auto it = watched_.begin(); it != watched_.end();) {
      bool empty = true;
      for (size_t r = row_begin; r < row_end && empty; ++r)
        empty = rows_.at(r, it->column).text.empty();
      if (!empty) {
        ++it;
        continue;
      }
      host().warning("column '" + mapper_.mapping().headers()[it->column] + "' of layout " +
                     layout_ + " was empty in every row of " + file + "; the source may not send " +
                     it->fields);
      it = watched_.erase(it);
    }
  }

  // only_changed_lines: the events [0, done) of the batch are in durable files: remember what
  // was written, in one state write. A crash before it only makes the next change of those
  // documents write some lines again; a crash after it and before the host moved the offset
  // re-delivers the range, which finds its own records and compares as the first time.
  void recordWritten(size_t done) {
    if (!written_) return;
    for (const auto& [index, key, w] : updates_)
      if (index < done) written_->put(key, w.encode());
    written_->flush();
  }

  // A rename is durable only once the folder's entry is: fsync the folder itself.
  bool syncFolder(std::string& error) const {
#ifdef _WIN32
    (void)error;  // MoveFileEx with MOVEFILE_WRITE_THROUGH already made the rename durable
    return true;
#else
    Fd d(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::fsync(d.get()) != 0) {
      int e = errno;
      error = "cannot write to the ERP folder '" + dir_ + "': fsync of the folder: " + errnoText(e);
      return false;
    }
    return true;
#endif
  }

  std::string dir_;
  std::string name_;
  ferry::mapping::Mapper mapper_;
  ferry::mapping::Rows rows_;
  std::vector<size_t> row_end_;  // per mapped event: rows_.size() after it
  std::vector<bool> raw_;
  std::string layout_;
  struct Watched {
    size_t column;
    std::string fields;  // what the column reads, for the message
  };
  std::vector<Watched> watched_;  // not yet reported empty
  char delimiter_ = ',';
  bool bom_;
  bool header_;
  std::string eol_;
  size_t max_rows_;
  bool neutralise_;
  std::string buffer_;
  std::map<std::string, std::vector<std::string>> existing_;  // first seq → our files
  std::string journal_;  // journalTag() of the journal the events come from
  // only_changed_lines: per document, what this sink wrote (Written), and the batch's records.
  std::optional<ferry::common::StateMap> written_;
  std::vector<std::tuple<size_t, std::string, Written>> updates_;  // event index, key, record
};

}  // namespace

FERRY_SINK_PLUGIN(ErpCsvSink, "sink_erp_csv", "1.0.0",
                  "ERP import files: each batch as RFC 4180 CSV in a drop folder, named by its "
                  "journal range",
                  kOptions)
