// The field mapping language of the table-shaped sinks (sink_erp_csv, sink_sql, and any outsider's
// sink that links Ferry::mapping): a spec, parsed once when the sink is created, that turns one event's JSON body into rows of
// string cells. The syntax is described in sdk/README.md ("The mapping library"); in short
//
//   rows    = /items                  (optional: one row per element of that array)
//   columns = order=^/orderNumber; product=/productName; total=amount(/totalPrice)
//
// Threading: a Mapping is immutable and may be shared; a Mapper owns a JSON parser and must be
// used by one thread at a time (a sink instance is never called concurrently).
#pragma once

#include <ferry/plugin.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::mapping {

using ferry::Event;

// A mistake in a mapping spec. what() names the column (number and header) and the 1-based
// character position in the option's text, e.g.
//   "columns, column 3 ('total'), position 41: unknown function 'amout'; functions: …"
// Sinks turn it into a configuration error at create().
class MappingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a cell holds. Sinks may treat kinds differently: the CSV sink neutralises formulas only
// in Text cells, a SQL sink may bind Number cells as numbers and Empty cells as NULL.
enum class CellKind : uint8_t {
  kEmpty,    // null or missing
  kText,     // a JSON string, a date, fixed text, an event field, an object/array as JSON text
  kNumber,   // a JSON number, amount(), count(), $sequence, $row
  kBoolean,  // true / false
};

struct Cell {
  CellKind kind = CellKind::kEmpty;
  std::string text;
};

namespace detail {
struct Program;
}

// A parsed spec: the columns in the user's order and where the rows come from.
class Mapping {
 public:
  // Parses `columns` ("Header=expression; …") and `rows` ("" for one row per entity, or a JSON
  // Pointer to an array, optionally with '^'). Throws MappingError.
  static Mapping parse(std::string_view columns, std::string_view rows = {});

  // A built-in layout ("duckhub_order", "duckhub_order_lines", "tradecloud_order_lines",
  // "tradecloud_shipment_lines"). Throws MappingError for an unknown name, listing the known ones.
  static Mapping layout(std::string_view name);
  // The names layout() knows, in a stable order.
  static std::vector<std::string> layoutNames();
  // The columns/rows text of a built-in layout (for documentation and tests); empty if unknown.
  static std::pair<std::string, std::string> layoutSpec(std::string_view name);
  // The JSON Pointer (into a row element) of the change time of one row of a built-in layout
  // (tradecloud_order_lines: "/lastUpdatedAt"); empty when the layout has none.
  static std::string layoutRowChangedAt(std::string_view name);
  // The columns of a built-in layout that the source's documented shape fills, each with the
  // body fields it reads ("/a", or "/a or /b" for first()): a file in which such a column is empty
  // in every row suggests that the source does not send those fields (sink_erp_csv logs it).
  // Left out: columns that are never empty (count(), fixed(), event fields such as $previous) and
  // those often empty by nature (in_progress_status, confirmed_*, status_reason, …). Empty for an
  // unknown name.
  static std::vector<std::pair<std::string, std::string>> layoutExpectedColumns(
      std::string_view name);

  size_t columnCount() const;
  const std::vector<std::string>& headers() const;
  // True when the column's expression is wrapped in raw(...): the sink must write the cell
  // exactly as mapped (no formula neutralisation).
  bool raw(size_t column) const;
  // True when rows come from an array (`rows` was given).
  bool perElement() const;

 private:
  friend class Mapper;
  explicit Mapping(std::shared_ptr<const detail::Program> program);
  std::shared_ptr<const detail::Program> program_;
};

// Rows of cells, column-major order within a row; the storage (and the strings' capacity) is
// reused across clear(), so that mapping a steady stream of events does not allocate per cell.
class Rows {
 public:
  explicit Rows(size_t columns = 0) : columns_(columns) {}
  size_t size() const { return rows_; }
  size_t columns() const { return columns_; }
  const Cell& at(size_t row, size_t column) const { return cells_[row * columns_ + column]; }
  void clear() { rows_ = 0; }
  // Used by Mapper: appends a row (its cells keep stale content until assigned) / drops rows.
  Cell* appendRow();
  void truncate(size_t rows) { rows_ = rows < rows_ ? rows : rows_; }

 private:
  size_t columns_;
  size_t rows_ = 0;
  std::vector<Cell> cells_;
};

// Which rows of a per-element mapping (one with `rows`) are written. Every part is optional.
struct RowFilter {
  // A JSON Pointer into the row element that holds the row's change time (an instant). When set,
  // a row is written only if that instant is after the event's `previous` version; every row of
  // a key never seen before (empty `previous`), and a row without a readable change time, is
  // written.
  std::string changed_at;
  // A JSON Pointer into the row element; rows whose value there is a string equal to one of
  // `skip_values` are left out.
  std::string skip_at;
  std::vector<std::string> skip_values;
  // Rows whose element position (0-based, in the `rows` array) the event's metadata lists in
  // "own_lines" (the lines that are this integration's own open requests, see ferry_item.meta)
  // are left out. An event without metadata or without own_lines keeps every row; own_lines that
  // is not an array of positions fails the event. For the array the source means by its lines
  // (Tradecloud orders: rows = /lines).
  bool skip_own_lines = false;
};

// Applies a Mapping to events. Owns the JSON parser (reused from event to event).
class Mapper {
 public:
  explicit Mapper(Mapping mapping);
  ~Mapper();
  Mapper(const Mapper&) = delete;
  Mapper& operator=(const Mapper&) = delete;

  const Mapping& mapping() const { return mapping_; }

  // Keeps only some rows from now on (see RowFilter). Throws MappingError for a pointer that does
  // not parse, or when the mapping has no `rows` (one row per event cannot be filtered).
  void setRowFilter(const RowFilter& filter);

  // Parses the event's body once (and its metadata once, when a column reads $meta/… or the
  // row filter skips own lines) and appends its rows to `out` (which must have
  // mapping().columnCount() columns). Returns true on success; on failure (the body or the
  // metadata read is not JSON, `rows` names something that is not an array, amount() of a
  // non-integer, date() of text that is no instant) appends nothing, sets `error` and returns
  // false.
  bool map(const Event& event, Rows& out, std::string& error);
  // The same, but the row filter's change time is compared with `changed_after_ms` instead of
  // the event's `previous` (e.g. the version this sink last wrote); nullopt keeps every row.
  bool map(const Event& event, std::optional<int64_t> changed_after_ms, Rows& out,
           std::string& error);
  // The same for a bare JSON text with no event around it ($key etc. are empty): for tests and
  // previews.
  bool mapBody(std::string_view body, Rows& out, std::string& error);

 private:
  struct Impl;
  Mapping mapping_;
  std::unique_ptr<Impl> impl_;
};

// Helpers the formatters use, exposed for the sinks and tests.

// Minor units to a decimal with '.' and `digits` decimals: (1234, 2) → "12.34", (-5, 2) →
// "-0.05", (1234, 0) → "1234".
std::string formatMinorUnits(int64_t minor, int digits);
// The ISO 4217 minor-unit digits of a currency code (JPY 0, EUR 2, KWD 3); 2 when unknown.
int currencyDigits(std::string_view code);
// "YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)" to milliseconds since the epoch; false when
// the text is not such an instant.
bool parseInstantMs(std::string_view text, int64_t& ms);

}  // namespace ferry::mapping
