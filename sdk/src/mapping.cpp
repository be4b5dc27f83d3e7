#include <ferry/mapping.hpp>
#include <ferry/instant.hpp>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

namespace ferry::mapping {

// ------------------------------------------------------------------------------------------------
// The compiled program
// ------------------------------------------------------------------------------------------------

namespace detail {

// A JSON Pointer split into decoded reference tokens once, at parse time, so that evaluating it
// per row is a walk over object keys and array indices with no string work.
struct Pointer {
  bool parent = false;  // '^': resolve against the entity, not the row element
  struct Token {
    std::string key;
    int64_t index = -1;  // the token as an array index, -1 when it is not one
  };
  std::vector<Token> tokens;
  std::string text;  // as written, for messages
};

enum class Op { kPointer, kCount, kAmount, kDate, kLocal, kFixed, kEvent, kFirst };
enum class Field {
  kKey,
  kVersion,
  kPrevious,
  kEcho,
  kSource,
  kEntity,
  kSequence,
  kIdemKey,
  kMeta,
  kMetaAt,  // $meta/pointer: `ptr` into the metadata object
  kRow
};

struct Expr {
  Op op = Op::kPointer;
  Pointer ptr;
  int digits = -1;     // amount(): fixed digits, -1 = from the currency
  Pointer currency;    // amount(): where the ISO 4217 code is
  int offset_min = 0;  // date()/local(): fixed UTC offset in minutes
  std::string text;    // fixed()
  Field field = Field::kKey;
  std::vector<Expr> alternatives;  // first()
};

struct Column {
  std::string header;
  std::string source;  // the expression as written, for messages
  Expr expr;
  bool raw = false;
};

struct Program {
  std::vector<Column> columns;
  std::vector<std::string> headers;
  bool per_element = false;
  Pointer rows;
  bool reads_meta = false;  // a column reads into the metadata ($meta/…): parse it per event
};

}  // namespace detail

using detail::Column;
using detail::Expr;
using detail::Field;
using detail::Op;
using detail::Pointer;
using detail::Program;

// ------------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------------

namespace {

constexpr std::string_view kFunctions = "amount, date, local, count, fixed, first, raw";
constexpr std::string_view kFields =
    "$key, $version, $previous, $echo, $source, $entity, $sequence, $idempotency_key, $meta, "
    "$meta/pointer, $row";

void appendPadded(std::string& out, int64_t v, int width) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v < 0 ? -v : v);
  (void)ec;
  if (v < 0) out += '-';
  for (int n = static_cast<int>(end - buf); n < width; ++n) out += '0';
  out.append(buf, end);
}

// The local calendar date (and time) of `ms` at a fixed offset.
void formatLocal(int64_t ms, int offset_min, bool with_time, std::string& out) {
  const int64_t local_ms = ms + static_cast<int64_t>(offset_min) * 60000;
  int64_t days = local_ms / 86400000;
  int64_t rem = local_ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    --days;
  }
  int64_t y;
  unsigned m, d;
  ferry::instant::civilFromDays(days, y, m, d);
  out.clear();
  appendPadded(out, y, 4);
  out += '-';
  appendPadded(out, m, 2);
  out += '-';
  appendPadded(out, d, 2);
  if (!with_time) return;
  const int64_t s = rem / 1000;
  out += ' ';
  appendPadded(out, s / 3600, 2);
  out += ':';
  appendPadded(out, s / 60 % 60, 2);
  out += ':';
  appendPadded(out, s % 60, 2);
}

void assignInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.assign(buf, end);
}

bool isBlank(char c) { return c == ' ' || c == '\t'; }

// "Z", "UTC", "+hh:mm", "-hh:mm", "+hhmm", "+hh" to minutes east of UTC.
bool parseOffset(std::string_view t, int& minutes) {
  if (t == "Z" || t == "UTC" || t == "utc") {
    minutes = 0;
    return true;
  }
  if (t.size() < 3 || (t[0] != '+' && t[0] != '-')) return false;
  auto two = [&](size_t pos, int& v) {
    if (pos + 2 > t.size() || t[pos] < '0' || t[pos] > '9' || t[pos + 1] < '0' || t[pos + 1] > '9')
      return false;
    v = (t[pos] - '0') * 10 + (t[pos + 1] - '0');
    return true;
  };
  int h = 0, m = 0;
  if (!two(1, h)) return false;
  if (t.size() == 3) {
    m = 0;
  } else if (t.size() == 6 && t[3] == ':') {
    if (!two(4, m)) return false;
  } else if (t.size() == 5) {
    if (!two(3, m)) return false;
  } else {
    return false;
  }
  if (h > 23 || m > 59) return false;
  minutes = (h * 60 + m) * (t[0] == '-' ? -1 : 1);
  return true;
}

}  // namespace

std::string formatMinorUnits(int64_t minor, int digits) {
  // Work on the magnitude as unsigned: -INT64_MIN does not fit an int64_t.
  const bool negative = minor < 0;
  uint64_t magnitude =
      negative ? uint64_t{0} - static_cast<uint64_t>(minor) : static_cast<uint64_t>(minor);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, magnitude);
  (void)ec;
  std::string digits_text(buf, end);
  if (digits > 0 && digits_text.size() <= static_cast<size_t>(digits))
    digits_text.insert(0, static_cast<size_t>(digits) + 1 - digits_text.size(), '0');
  std::string out;
  if (negative && magnitude != 0) out += '-';
  if (digits <= 0) return out + digits_text;
  out.append(digits_text, 0, digits_text.size() - static_cast<size_t>(digits));
  out += '.';
  out.append(digits_text, digits_text.size() - static_cast<size_t>(digits));
  return out;
}

int currencyDigits(std::string_view code) {
  // ISO 4217 currencies whose minor unit is not 2 (list of 2024); every other code has 2.
  static constexpr std::array<std::pair<std::string_view, int>, 26> kExceptions{{
      {"BHD", 3}, {"BIF", 0}, {"CLF", 4}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"IQD", 3},
      {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0}, {"KWD", 3}, {"LYD", 3},
      {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0}, {"UYI", 0}, {"UYW", 4},
      {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0},
  }};
  if (code.size() != 3) return 2;
  char upper[3];
  for (int i = 0; i < 3; ++i) {
    char c = code[static_cast<size_t>(i)];
    upper[i] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  }
  std::string_view u(upper, 3);
  for (const auto& [c, d] : kExceptions)
    if (c == u) return d;
  return 2;
}

bool parseInstantMs(std::string_view t, int64_t& ms) {
  // The host's rule (<ferry/instant.hpp>), floored to the millisecond.
  auto ns = ferry::instant::parseNs(t);
  if (!ns) return false;
  ms = *ns / 1000000 - (*ns % 1000000 < 0 ? 1 : 0);
  return true;
}

// ------------------------------------------------------------------------------------------------
// Parser
// ------------------------------------------------------------------------------------------------

namespace {

// One character of the spec after backslash unescaping, with where it came from. Escaped
// characters never act as syntax (';', '=', ',', '(', ')', blanks).
struct Ch {
  char c;
  bool escaped;
  size_t pos;  // 1-based position in the option's text
};
using Text = std::vector<Ch>;

bool is(const Ch& ch, char c) { return !ch.escaped && ch.c == c; }

std::string plain(const Text& t, size_t from, size_t to) {
  std::string s;
  s.reserve(to - from);
  for (size_t i = from; i < to; ++i) s += t[i].c;
  return s;
}

class Parser {
 public:
  Parser(std::string option, size_t column, std::string header)
      : option_(std::move(option)), column_(column), header_(std::move(header)) {}

  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    std::string where = option_;
    if (column_ > 0) where += ", column " + std::to_string(column_);
    if (!header_.empty()) where += " ('" + header_ + "')";
    throw MappingError(where + ", position " + std::to_string(pos) + ": " + what);
  }

  // Trims unescaped blanks from [from, to).
  static void trim(const Text& t, size_t& from, size_t& to) {
    while (from < to && !t[from].escaped && isBlank(t[from].c)) ++from;
    while (to > from && !t[to - 1].escaped && isBlank(t[to - 1].c)) --to;
  }

  size_t posAt(const Text& t, size_t i) const {
    if (i < t.size()) return t[i].pos;
    return t.empty() ? 1 : t.back().pos + 1;
  }

  Pointer pointer(const Text& t, size_t from, size_t to) {
    trim(t, from, to);
    Pointer p;
    p.text = plain(t, from, to);
    size_t i = from;
    if (i < to && is(t[i], '^')) {
      p.parent = true;
      ++i;
    }
    if (i == to) {
      if (p.parent) return p;  // '^' alone: the entity itself
      fail(posAt(t, from), "expected a JSON Pointer such as /name or ^/name");
    }
    if (t[i].c != '/')
      fail(t[i].pos, "a JSON Pointer starts with '/' (or '^/' for the entity's fields), not '" +
                         std::string(1, t[i].c) + "'");
    // RFC 6901: tokens separated by '/', "~1" is '/', "~0" is '~'.
    while (i < to) {
      ++i;  // the '/'
      Pointer::Token token;
      while (i < to && t[i].c != '/') {
        if (t[i].c == '~') {
          if (i + 1 >= to || (t[i + 1].c != '0' && t[i + 1].c != '1'))
            fail(t[i].pos, "'~' in a JSON Pointer must be followed by 0 (for ~) or 1 (for /)");
          token.key += t[i + 1].c == '0' ? '~' : '/';
          i += 2;
          continue;
        }
        token.key += t[i].c;
        ++i;
      }
      const std::string& k = token.key;
      if (!k.empty() && k.size() < 19 &&
          std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
          (k.size() == 1 || k[0] != '0'))
        token.index = std::stoll(k);
      p.tokens.push_back(std::move(token));
    }
    return p;
  }

  // An expression in [from, to); sets `raw` when it is wrapped in raw(...).
  Expr expression(const Text& t, size_t from, size_t to, bool& raw) {
    trim(t, from, to);
    if (from == to)
      fail(posAt(t, from), "empty expression; write a JSON Pointer (/name), a function (" +
                               std::string(kFunctions) + ") or an event field");
    Expr e;
    const Ch& first = t[from];
    if (is(first, '$')) {
      std::string name = plain(t, from + 1, to);
      if (const size_t slash = name.find('/'); slash != std::string::npos) {
        // $meta/numbers/0: a JSON Pointer into the source's metadata object. No other field is
        // JSON.
        if (name.substr(0, slash) != "meta")
          fail(first.pos, "'$" + name + "': only $meta takes a JSON Pointer ($meta/numbers/0); " +
                              "fields: " + std::string(kFields));
        e.op = Op::kEvent;
        e.field = Field::kMetaAt;
        e.ptr = pointer(t, from + 1 + slash, to);
        return e;
      }
      static const std::pair<std::string_view, Field> kNames[] = {
          {"key", Field::kKey},
          {"version", Field::kVersion},
          {"previous", Field::kPrevious},
          {"echo", Field::kEcho},
          {"source", Field::kSource},
          {"entity", Field::kEntity},
          {"sequence", Field::kSequence},
          {"idempotency_key", Field::kIdemKey},
          {"meta", Field::kMeta},
          {"row", Field::kRow}};
      for (const auto& [n, f] : kNames) {
        if (n == name) {
          e.op = Op::kEvent;
          e.field = f;
          return e;
        }
      }
      fail(first.pos, "unknown event field '$" + name + "'; fields: " + std::string(kFields));
    }
    if (is(first, '/') || is(first, '^')) {
      e.op = Op::kPointer;
      e.ptr = pointer(t, from, to);
      return e;
    }
    // name '(' args ')'
    size_t i = from;
    while (i < to && !t[i].escaped &&
           (std::isalnum(static_cast<unsigned char>(t[i].c)) || t[i].c == '_'))
      ++i;
    std::string name = plain(t, from, i);
    size_t open = i;
    while (open < to && !t[open].escaped && isBlank(t[open].c)) ++open;
    if (name.empty() || open == to || !is(t[open], '(')) {
      std::string text = plain(t, from, to);
      fail(first.pos, "'" + text + "' is not an expression: a JSON Pointer starts with '/' (/" +
                          text +
                          "), an event field with '$' ($key), a function call looks like "
                          "amount(/field) (functions: " +
                          std::string(kFunctions) + ")");
    }
    // The matching ')': escaped parentheses do not count.
    size_t depth = 0, close = to;
    for (size_t k = open; k < to; ++k) {
      if (is(t[k], '(')) ++depth;
      if (is(t[k], ')') && --depth == 0) {
        close = k;
        break;
      }
    }
    if (close == to) fail(t[open].pos, "'(' of " + name + "() is never closed; add ')'");
    for (size_t k = close + 1; k < to; ++k)
      if (!(!t[k].escaped && isBlank(t[k].c)))
        fail(t[k].pos, "unexpected text after " + name + "(…); separate columns with ';'");

    if (name == "raw") {
      bool inner_raw = false;
      e = expression(t, open + 1, close, inner_raw);
      raw = true;
      return e;
    }
    // Arguments: split at unescaped commas outside nested parentheses.
    std::vector<std::pair<size_t, size_t>> args;
    size_t start = open + 1;
    size_t nested = 0;
    for (size_t k = open + 1; k <= close; ++k) {
      if (k < close && is(t[k], '(')) ++nested;
      if (k < close && is(t[k], ')')) --nested;
      if (k == close || (nested == 0 && is(t[k], ','))) {
        size_t a = start, b = k;
        trim(t, a, b);
        args.emplace_back(a, b);
        start = k + 1;
      }
    }
    if (args.size() == 1 && args[0].first == args[0].second) args.clear();
    auto arity = [&](size_t min, size_t max, const char* usage) {
      if (args.size() < min || args.size() > max)
        fail(t[open].pos, name + "() takes " + usage + ", got " + std::to_string(args.size()) +
                              " argument(s)" +
                              (name == "fixed" ? "; write \\, for a comma in the text" : ""));
    };
    auto argText = [&](size_t n) { return plain(t, args[n].first, args[n].second); };
    auto argPos = [&](size_t n) { return posAt(t, args[n].first); };

    if (name == "fixed") {
      arity(0, 1, "one text");
      e.op = Op::kFixed;
      if (!args.empty()) e.text = argText(0);
      return e;
    }
    if (name == "first") {
      if (args.size() < 2)
        fail(t[open].pos, "first() takes two or more expressions, got " +
                              std::to_string(args.size()) + " argument(s)");
      e.op = Op::kFirst;
      for (const auto& [from, to] : args) {
        bool inner_raw = false;
        e.alternatives.push_back(expression(t, from, to, inner_raw));
        raw = raw || inner_raw;
      }
      return e;
    }
    if (name == "count") {
      arity(1, 1, "one JSON Pointer");
      e.op = Op::kCount;
      e.ptr = pointer(t, args[0].first, args[0].second);
      return e;
    }
    if (name == "amount") {
      arity(1, 2, "a JSON Pointer and optionally the digits (0-9) or a pointer to the currency");
      e.op = Op::kAmount;
      e.ptr = pointer(t, args[0].first, args[0].second);
      e.currency.parent = true;
      e.currency.tokens.push_back({"currency", -1});
      e.currency.text = "^/currency";
      if (args.size() == 2) {
        std::string a = argText(1);
        if (a.size() == 1 && a[0] >= '0' && a[0] <= '9') {
          e.digits = a[0] - '0';
        } else if (!a.empty() && (a[0] == '/' || a[0] == '^')) {
          e.currency = pointer(t, args[1].first, args[1].second);
        } else {
          fail(argPos(1),
               "amount()'s second argument is the number of decimals (0-9) or a "
               "pointer to the ISO 4217 currency code, not '" +
                   a + "'");
        }
      }
      return e;
    }
    if (name == "date" || name == "local") {
      arity(1, 2, "a JSON Pointer and optionally a UTC offset (+02:00)");
      e.op = name == "date" ? Op::kDate : Op::kLocal;
      e.ptr = pointer(t, args[0].first, args[0].second);
      if (args.size() == 2) {
        std::string zone = argText(1);
        if (!parseOffset(zone, e.offset_min))
          fail(argPos(1), "'" + zone +
                              "' is not a fixed UTC offset; write +02:00, -05:30 or Z "
                              "(time zone names such as Europe/Berlin are not supported: their "
                              "offset changes with daylight saving time)");
      }
      return e;
    }
    fail(first.pos, "unknown function '" + name + "'; functions: " + std::string(kFunctions));
  }

 private:
  std::string option_;
  size_t column_;
  std::string header_;
};

// Whether an expression reads into the event's metadata ($meta/…).
bool readsMeta(const Expr& e) {
  if (e.op == Op::kFirst) return std::any_of(e.alternatives.begin(), e.alternatives.end(), readsMeta);
  return e.op == Op::kEvent && e.field == Field::kMetaAt;
}

// Unescapes `\x` into characters that are marked as escaped.
Text lex(std::string_view text, const std::string& option) {
  Text out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      if (i + 1 == text.size())
        throw MappingError(option + ", position " + std::to_string(i + 1) +
                           ": a lone '\\' at the end; write \\\\ for a backslash");
      out.push_back({text[i + 1], true, i + 1});
      ++i;
      continue;
    }
    out.push_back({text[i], false, i + 1});
  }
  return out;
}

}  // namespace

Mapping::Mapping(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

Mapping Mapping::parse(std::string_view columns, std::string_view rows) {
  auto program = std::make_shared<Program>();
  Text t = lex(columns, "columns");
  size_t start = 0, number = 0;
  for (size_t i = 0; i <= t.size(); ++i) {
    if (i < t.size() && !is(t[i], ';')) continue;
    size_t from = start, to = i;
    start = i + 1;
    Parser::trim(t, from, to);
    if (from == to) continue;  // empty column, e.g. after a trailing ';'
    ++number;
    size_t eq = from;
    while (eq < to && !is(t[eq], '=')) ++eq;
    if (eq == to)
      Parser("columns", number, "")
          .fail(t[from].pos, "expected Header=expression, found no '=' in '" + plain(t, from, to) +
                                 "' (write \\= for a '=' in a header)");
    size_t hf = from, ht = eq;
    Parser::trim(t, hf, ht);
    if (hf == ht) Parser("columns", number, "").fail(t[eq].pos, "the header before '=' is empty");
    Column c;
    c.header = plain(t, hf, ht);
    for (const auto& other : program->columns)
      if (other.header == c.header)
        Parser("columns", number, c.header)
            .fail(t[hf].pos, "header '" + c.header + "' is used twice; headers must be unique");
    size_t ef = eq + 1, et = to;
    Parser::trim(t, ef, et);
    c.source = plain(t, ef, et);
    Parser p("columns", number, c.header);
    c.expr = p.expression(t, eq + 1, to, c.raw);
    program->headers.push_back(c.header);
    program->reads_meta = program->reads_meta || readsMeta(c.expr);
    program->columns.push_back(std::move(c));
  }
  if (program->columns.empty())
    throw MappingError("columns: no column given; write Header=expression; Header=expression …");

  Text r = lex(rows, "rows");
  size_t rf = 0, rt = r.size();
  Parser::trim(r, rf, rt);
  if (rf != rt) {
    program->per_element = true;
    program->rows = Parser("rows", 0, "").pointer(r, rf, rt);
  }
  return Mapping(std::move(program));
}

namespace {

struct Layout {
  std::string_view name;
  std::string_view rows;
  std::string_view columns;
  std::string_view row_changed_at = {};  // the row element's change time, for RowFilter
  // Columns that are often empty in every row of a file with no fault of the source (a status
  // reason only rejected documents have, …): not in layoutExpectedColumns(). Space-separated.
  std::string_view sparse = {};
};

// The built-in layouts are written in the mapping language itself: what a user copies to start
// a custom one.
constexpr Layout kLayouts[] = {
    {"duckhub_order", "",
     "order_id=/id; order_number=/orderNumber; status=/status; type=/type; "
     "customer_name=/customerName; currency=/currency; subtotal=amount(/subtotalAmount); "
     "delivery_fee=amount(/deliveryFee); discount=amount(/discountAmount); "
     "total=amount(/totalAmount); created_date=date(/createdAt); updated_at=/updatedAt; "
     "confirmed_at=/confirmedAt; completed_at=/completedAt; item_count=count(/items); "
     "previous_version=$previous",
     "", "customer_name confirmed_at completed_at"},
    {"duckhub_order_lines", "/items",
     "order_id=^/id; order_number=^/orderNumber; status=^/status; type=^/type; "
     "customer_name=^/customerName; currency=^/currency; order_total=amount(^/totalAmount); "
     "created_date=date(^/createdAt); updated_at=^/updatedAt; line=$row; "
     "product_id=/productExternalId; product_name=/productName; quantity=/quantity; "
     "unit_price=amount(/unitPrice); line_total=amount(/totalPrice); previous_version=$previous",
     "", "customer_name"},
    // Tradecloud purchase order lines (source_tradecloud_orders), both variants: the default
    // poll's lines carry deliverySchedule[] and prices, the single-delivery poll's lines
    // statusLine{scheduledDelivery, prices} instead (one delivery line each). Quantity and date
    // are the first delivery line's; with several deliveries per line use the source's variant =
    // single-delivery, which makes each delivery line a line of its own.
    {"tradecloud_order_lines", "/lines",
     "order_id=^/id; purchase_order_number=^/buyerOrder/purchaseOrderNumber; "
     "supplier_account_number=^/buyerOrder/supplierAccountNumber; line_id=/id; "
     "line_position=/buyerLine/position; item_number=/buyerLine/item/number; "
     "item_name=/buyerLine/item/name; "
     "quantity=first(/deliverySchedule/0/quantity, /statusLine/scheduledDelivery/quantity); "
     "unit=/buyerLine/item/purchaseUnitOfMeasureIso; "
     "delivery_date=first(/deliverySchedule/0/date, /statusLine/scheduledDelivery/date); "
     "deliveries=first(count(/deliverySchedule), fixed(1)); "
     "net_price=first(/prices/netPrice/priceInTransactionCurrency/value, "
     "/statusLine/prices/netPrice/priceInTransactionCurrency/value); "
     "currency=first(/prices/netPrice/priceInTransactionCurrency/currencyIso, "
     "/statusLine/prices/netPrice/priceInTransactionCurrency/currencyIso); "
     "price_unit_quantity=first(/prices/priceUnitQuantity, /statusLine/prices/priceUnitQuantity); "
     "process_status=/status/processStatus; "
     "in_progress_status=/status/inProgressStatus; logistics_status=/status/logisticsStatus; "
     "confirmed_quantity=/confirmedLine/deliverySchedule/0/quantity; "
     "confirmed_delivery_date=/confirmedLine/deliverySchedule/0/date; "
     "confirmed_net_price=/confirmedLine/prices/netPrice/priceInTransactionCurrency/value; "
     "line_updated_at=/lastUpdatedAt; order_updated_at=^/lastUpdatedAt; "
     "previous_version=$previous",
     "/lastUpdatedAt",
     "in_progress_status confirmed_quantity confirmed_delivery_date confirmed_net_price"},
    // Tradecloud shipment lines (source_tradecloud_shipments). etd is the departure's; eta (and
    // its window: eta_time, eta_end, eta_end_time) the FIRST destination's, the next stop of the
    // goods; `destinations` says how many there are.
    {"tradecloud_shipment_lines", "/lines",
     "shipment_id=^/id; shipment_number=^/supplierShipment/shipmentNumber; "
     "despatch_advice_number=/supplierLine/despatchAdviceNumber; "
     "purchase_order_number=/purchaseOrderNumber; line_position=/purchaseOrderLinePosition; "
     "item_number=/item/number; item_name=/item/name; "
     "despatch_quantity=/supplierLine/despatchQuantity; "
     "etd=^/locations/departure/etdDate; eta=^/locations/destinations/0/etaStartDate; "
     "eta_time=^/locations/destinations/0/etaStartTime; "
     "eta_end=^/locations/destinations/0/etaEndDate; "
     "eta_end_time=^/locations/destinations/0/etaEndTime; "
     "destinations=count(^/locations/destinations); "
     "status=^/status/processStatus; status_reason=^/status/processStatusReason; "
     "line_updated_at=/meta/lastUpdatedAt; shipment_updated_at=^/meta/lastUpdatedAt; "
     "previous_version=$previous",
     "/meta/lastUpdatedAt", "eta_time eta_end eta_end_time status_reason"},
};

}  // namespace

Mapping Mapping::layout(std::string_view name) {
  for (const auto& l : kLayouts)
    if (l.name == name) return parse(l.columns, l.rows);
  std::string names;
  for (const auto& n : layoutNames()) names += (names.empty() ? "" : ", ") + n;
  throw MappingError("unknown layout '" + std::string(name) + "'; layouts: " + names);
}

std::vector<std::string> Mapping::layoutNames() {
  std::vector<std::string> out;
  for (const auto& l : kLayouts) out.emplace_back(l.name);
  return out;
}

std::pair<std::string, std::string> Mapping::layoutSpec(std::string_view name) {
  for (const auto& l : kLayouts)
    if (l.name == name) return {std::string(l.columns), std::string(l.rows)};
  return {};
}

std::string Mapping::layoutRowChangedAt(std::string_view name) {
  for (const auto& l : kLayouts)
    if (l.name == name) return std::string(l.row_changed_at);
  return {};
}

namespace {

// Whether an expression's cell can be empty: count(), fixed() and event fields never are (an
// event field is no field of the body either).
bool canBeEmpty(const Expr& e) {
  switch (e.op) {
    case Op::kCount:
    case Op::kFixed:
    case Op::kEvent:
      return false;
    case Op::kFirst:
      return std::all_of(e.alternatives.begin(), e.alternatives.end(), canBeEmpty);
    default:
      return true;
  }
}

// The body fields an expression reads, as written: "/a" or "/a or /b" for first().
std::string fieldsRead(const Expr& e) {
  if (e.op != Op::kFirst) return e.ptr.text;
  std::string out;
  for (const Expr& a : e.alternatives) out += (out.empty() ? "" : " or ") + fieldsRead(a);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> Mapping::layoutExpectedColumns(
    std::string_view name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& l : kLayouts) {
    if (l.name != name) continue;
    const std::string sparse = " " + std::string(l.sparse) + " ";
    const Mapping m = parse(l.columns, l.rows);
    for (const Column& c : m.program_->columns)
      if (canBeEmpty(c.expr) && sparse.find(" " + c.header + " ") == std::string::npos)
        out.emplace_back(c.header, fieldsRead(c.expr));
  }
  return out;
}

size_t Mapping::columnCount() const { return program_->columns.size(); }
const std::vector<std::string>& Mapping::headers() const { return program_->headers; }
bool Mapping::raw(size_t column) const { return program_->columns.at(column).raw; }
bool Mapping::perElement() const { return program_->per_element; }

Cell* Rows::appendRow() {
  const size_t need = (rows_ + 1) * columns_;
  if (cells_.size() < need) cells_.resize(need);
  ++rows_;
  return cells_.data() + (rows_ - 1) * columns_;
}

// ------------------------------------------------------------------------------------------------
// Evaluation
// ------------------------------------------------------------------------------------------------

using simdjson::dom::element;
using simdjson::dom::element_type;

// A RowFilter with its pointers compiled.
struct CompiledFilter {
  bool changed = false;
  Pointer changed_at;
  bool skip = false;
  Pointer skip_at;
  std::vector<std::string> skip_values;
  bool skip_own = false;  // RowFilter::skip_own_lines
  bool any() const { return changed || skip || skip_own; }
};

// What mapOne() reuses from event to event.
struct Work {
  simdjson::dom::parser parser;       // the body
  simdjson::dom::parser meta_parser;  // the metadata, whose DOM lives beside the body's
  std::vector<uint64_t> own_lines;    // the event's own_lines, sorted
};

struct Mapper::Impl {
  Work work;
  CompiledFilter filter;
};

Mapper::Mapper(Mapping mapping) : mapping_(std::move(mapping)), impl_(std::make_unique<Impl>()) {}
Mapper::~Mapper() = default;

namespace {

// Walks a compiled pointer; false when any step is missing.
bool resolve(const Pointer& p, element entity, element row, element& out) {
  element cur = p.parent ? entity : row;
  for (const auto& token : p.tokens) {
    switch (cur.type()) {
      case element_type::OBJECT: {
        auto r = cur.get_object().value_unsafe().at_key(token.key);
        if (r.error()) return false;
        cur = r.value_unsafe();
        break;
      }
      case element_type::ARRAY: {
        if (token.index < 0) return false;
        auto r = cur.get_array().value_unsafe().at(static_cast<size_t>(token.index));
        if (r.error()) return false;
        cur = r.value_unsafe();
        break;
      }
      default:
        return false;
    }
  }
  out = cur;
  return true;
}

void valueCell(element v, Cell& cell) {
  switch (v.type()) {
    case element_type::NULL_VALUE:
      cell.kind = CellKind::kEmpty;
      cell.text.clear();
      return;
    case element_type::STRING: {
      std::string_view s = v.get_string().value_unsafe();
      cell.kind = CellKind::kText;
      cell.text.assign(s.data(), s.size());
      return;
    }
    case element_type::INT64:
      cell.kind = CellKind::kNumber;
      assignInt(cell.text, v.get_int64().value_unsafe());
      return;
    case element_type::UINT64: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_uint64().value_unsafe());
      (void)ec;
      cell.kind = CellKind::kNumber;
      cell.text.assign(buf, end);
      return;
    }
    case element_type::DOUBLE: {
      // The DOM keeps the value, not its text: the shortest form that reads back the same.
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_double().value_unsafe());
      (void)ec;
      cell.kind = CellKind::kNumber;
      cell.text.assign(buf, end);
      return;
    }
    case element_type::BOOL:
      cell.kind = CellKind::kBoolean;
      cell.text = v.get_bool().value_unsafe() ? "true" : "false";
      return;
    default:
      cell.kind = CellKind::kText;
      cell.text = simdjson::minify(v);
      return;
  }
}

void textCell(Cell& cell, std::string_view text) {
  cell.kind = text.empty() ? CellKind::kEmpty : CellKind::kText;
  cell.text.assign(text.data(), text.size());
}

std::string describe(element v) {
  std::string s = simdjson::minify(v);
  return s.size() > 60 ? s.substr(0, 60) + "…" : s;
}

// What the expressions of one row see.
struct Scope {
  element entity;
  element row;
  size_t row_index = 0;
  const Event* event = nullptr;   // null for mapBody()
  const element* meta = nullptr;  // the event's metadata, parsed; null when absent or not read
};

// $meta/pointer: false when the event has no metadata or the pointer leads nowhere.
bool resolveMeta(const Pointer& p, const Scope& s, element& out) {
  return s.meta != nullptr && resolve(p, *s.meta, *s.meta, out);
}

// Whether `e` reads a value for first(): its pointer (also into the metadata) leads to something
// that is not null; fixed() and the other event fields always do.
bool readsValue(const Expr& e, const Scope& s) {
  element v;
  switch (e.op) {
    case Op::kFixed:
      return true;
    case Op::kEvent:
      return e.field != Field::kMetaAt || (resolveMeta(e.ptr, s, v) && !v.is_null());
    case Op::kFirst:
      return std::any_of(e.alternatives.begin(), e.alternatives.end(),
                         [&](const Expr& a) { return readsValue(a, s); });
    default:
      return resolve(e.ptr, s.entity, s.row, v) && !v.is_null();
  }
}

// Evaluates expression `e` of column `c` for one row.
bool evaluate(const Column& c, const Expr& e, const Scope& s, Cell& cell, std::string& error) {
  const element entity = s.entity;
  const element row = s.row;
  const Event* event = s.event;
  auto failWith = [&](const std::string& what) {
    error = "column '" + c.header + "' (" + c.source + "): " + what;
    return false;
  };
  element v;
  switch (e.op) {
    case Op::kPointer:
      if (resolve(e.ptr, entity, row, v)) {
        valueCell(v, cell);
      } else {
        cell.kind = CellKind::kEmpty;
        cell.text.clear();
      }
      return true;
    case Op::kFixed:
      textCell(cell, e.text);
      return true;
    case Op::kFirst:
      for (const Expr& a : e.alternatives)
        if (readsValue(a, s)) return evaluate(c, a, s, cell, error);
      cell.kind = CellKind::kEmpty;
      cell.text.clear();
      return true;
    case Op::kCount: {
      int64_t n = 0;
      if (resolve(e.ptr, entity, row, v)) {
        if (v.is_array()) {
          n = static_cast<int64_t>(v.get_array().value_unsafe().size());
        } else if (v.is_object()) {
          n = static_cast<int64_t>(v.get_object().value_unsafe().size());
        } else if (!v.is_null()) {
          return failWith(e.ptr.text + " is " + describe(v) + ", not an array to count");
        }
      }
      cell.kind = CellKind::kNumber;
      assignInt(cell.text, n);
      return true;
    }
    case Op::kAmount: {
      if (!resolve(e.ptr, entity, row, v) || v.is_null()) {
        cell.kind = CellKind::kEmpty;
        cell.text.clear();
        return true;
      }
      int64_t minor = 0;
      bool ok = false;
      if (v.is_int64()) {
        minor = v.get_int64().value_unsafe();
        ok = true;
      } else if (v.is_double()) {
        // 1234.0 from a serializer that writes every number as a double.
        double d = v.get_double().value_unsafe();
        if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.0e15) {
          minor = static_cast<int64_t>(d);
          ok = true;
        }
      } else if (v.is_string()) {
        std::string_view s = v.get_string().value_unsafe();
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), minor);
        ok = ec == std::errc() && end == s.data() + s.size() && !s.empty();
      }
      if (!ok) return failWith(describe(v) + " is not an integer amount in minor units");
      int digits = e.digits;
      if (digits < 0) {
        digits = 2;
        element code;
        if (resolve(e.currency, entity, row, code) && code.is_string())
          digits = currencyDigits(code.get_string().value_unsafe());
      }
      cell.kind = CellKind::kNumber;
      cell.text = formatMinorUnits(minor, digits);
      return true;
    }
    case Op::kDate:
    case Op::kLocal: {
      if (!resolve(e.ptr, entity, row, v) || v.is_null()) {
        cell.kind = CellKind::kEmpty;
        cell.text.clear();
        return true;
      }
      int64_t ms = 0;
      if (!v.is_string() || !parseInstantMs(v.get_string().value_unsafe(), ms))
        return failWith(describe(v) +
                        " is not an instant (YYYY-MM-DDThh:mm:ss with Z or an "
                        "offset)");
      cell.kind = CellKind::kText;
      formatLocal(ms, e.offset_min, e.op == Op::kLocal, cell.text);
      return true;
    }
    case Op::kEvent: {
      if (e.field == Field::kRow) {
        cell.kind = CellKind::kNumber;
        assignInt(cell.text, static_cast<int64_t>(s.row_index + 1));
        return true;
      }
      if (e.field == Field::kMetaAt) {
        if (resolveMeta(e.ptr, s, v)) {
          valueCell(v, cell);
        } else {
          cell.kind = CellKind::kEmpty;
          cell.text.clear();
        }
        return true;
      }
      if (event == nullptr) {
        cell.kind = CellKind::kEmpty;
        cell.text.clear();
        return true;
      }
      switch (e.field) {
        case Field::kKey:
          textCell(cell, event->key());
          break;
        case Field::kVersion:
          textCell(cell, event->version());
          break;
        case Field::kPrevious:
          textCell(cell, event->previous());
          break;
        case Field::kSource:
          textCell(cell, event->source());
          break;
        case Field::kEntity:
          textCell(cell, event->entity());
          break;
        case Field::kIdemKey:
          textCell(cell, event->idempotencyKey());
          break;
        case Field::kMeta:
          textCell(cell, event->meta());
          break;
        case Field::kEcho:
          cell.kind = CellKind::kBoolean;
          cell.text = event->echo() ? "true" : "false";
          break;
        case Field::kSequence:
          cell.kind = CellKind::kNumber;
          assignInt(cell.text, event->sequence());
          break;
        case Field::kMetaAt:
        case Field::kRow:
          break;
      }
      return true;
    }
  }
  return true;
}

// Whether the row element passes the filter (RowFilter's rules).
bool keepRow(const CompiledFilter& f, bool have_previous, int64_t previous_ms, element entity,
             element item) {
  element v;
  if (f.skip && resolve(f.skip_at, entity, item, v) && v.is_string()) {
    std::string_view s = v.get_string().value_unsafe();
    for (const auto& skip : f.skip_values)
      if (s == skip) return false;
  }
  if (f.changed && have_previous && resolve(f.changed_at, entity, item, v) && v.is_string()) {
    int64_t ms = 0;
    if (parseInstantMs(v.get_string().value_unsafe(), ms) && ms <= previous_ms) return false;
  }
  return true;
}

// Reads the metadata's "own_lines" (absent: none) into `lines`, sorted; false with `error` when it
// is there but not an array of line positions.
bool ownLines(element meta, std::vector<uint64_t>& lines, std::string& error) {
  lines.clear();
  element list;
  if (!meta.is_object() || meta.get_object().value_unsafe().at_key("own_lines").get(list) ||
      list.is_null())
    return true;
  auto fail = [&] {
    lines.clear();
    error = "meta: own_lines is " + describe(list) +
            ", not an array of line positions (0, 1, …) as the source must write it";
    return false;
  };
  simdjson::dom::array positions;
  if (list.get(positions)) return fail();
  for (element position : positions) {
    uint64_t n = 0;
    if (position.get(n)) return fail();
    lines.push_back(n);
  }
  std::sort(lines.begin(), lines.end());
  return true;
}

// `changed_after`: the instant (ms) a row must have changed after to be written; nullopt writes
// every row.
bool mapOne(const Program& program, const CompiledFilter& filter, Work& work,
            std::string_view body, const Event* event, std::optional<int64_t> changed_after,
            Rows& out, std::string& error) {
  if (out.columns() != program.columns.size()) {
    error = "internal: Rows has " + std::to_string(out.columns()) + " columns, the mapping " +
            std::to_string(program.columns.size());
    return false;
  }
  // The metadata, parsed only when something reads it.
  element meta;
  bool have_meta = false;
  const bool skip_own = filter.skip_own && program.per_element;
  if ((program.reads_meta || skip_own) && event != nullptr && !event->meta().empty()) {
    const std::string_view text = event->meta();
    auto parsed = work.meta_parser.parse(text.data(), text.size());
    if (parsed.error()) {
      error = std::string("meta (the source's metadata) is not valid JSON: ") +
              simdjson::error_message(parsed.error());
      return false;
    }
    meta = parsed.value_unsafe();
    have_meta = true;
  }
  work.own_lines.clear();
  if (skip_own && have_meta && !ownLines(meta, work.own_lines, error)) return false;

  auto parsed = work.parser.parse(body.data(), body.size());
  if (parsed.error()) {
    error = std::string("body is not valid JSON: ") + simdjson::error_message(parsed.error());
    return false;
  }
  const element root = parsed.value_unsafe();
  const size_t before = out.size();
  auto row = [&](element r, size_t index) {
    Cell* cells = out.appendRow();
    const Scope scope{root, r, index, event, have_meta ? &meta : nullptr};
    for (size_t i = 0; i < program.columns.size(); ++i) {
      const Column& c = program.columns[i];
      if (!evaluate(c, c.expr, scope, cells[i], error)) {
        out.truncate(before);
        return false;
      }
    }
    return true;
  };
  if (!program.per_element) return row(root, 0);
  element list;
  if (!resolve(program.rows, root, root, list) || list.is_null()) return true;  // no rows
  if (!list.is_array()) {
    error = "rows: " + program.rows.text + " is " + describe(list) + ", not an array";
    return false;
  }
  const bool have_previous = changed_after.has_value();
  const int64_t previous_ms = changed_after.value_or(0);
  size_t index = 0;
  // A named copy: value_unsafe() of a temporary result would dangle in a range-for.
  const simdjson::dom::array items = list.get_array().value_unsafe();
  for (element item : items) {
    const size_t at = index++;
    if (!work.own_lines.empty() &&
        std::binary_search(work.own_lines.begin(), work.own_lines.end(), uint64_t{at}))
      continue;
    if ((filter.changed || filter.skip) && !keepRow(filter, have_previous, previous_ms, root, item))
      continue;
    if (!row(item, at)) return false;
  }
  return true;
}

}  // namespace

void Mapper::setRowFilter(const RowFilter& filter) {
  CompiledFilter f;
  auto compile = [](const std::string& option, const std::string& text) {
    Text t = lex(text, option);
    return Parser(option, 0, "").pointer(t, 0, t.size());
  };
  if (!filter.changed_at.empty()) {
    f.changed = true;
    f.changed_at = compile("row change time", filter.changed_at);
  }
  if (!filter.skip_at.empty() && !filter.skip_values.empty()) {
    f.skip = true;
    f.skip_at = compile("row skip field", filter.skip_at);
    f.skip_values = filter.skip_values;
  }
  f.skip_own = filter.skip_own_lines;
  if (f.any() && !mapping_.perElement())
    throw MappingError(
        "rows: a row filter needs one row per element (rows = /lines); this mapping writes one "
        "row per event");
  impl_->filter = std::move(f);
}

bool Mapper::map(const Event& event, Rows& out, std::string& error) {
  int64_t previous_ms = 0;
  std::optional<int64_t> changed_after;
  if (!event.previous().empty() && parseInstantMs(event.previous(), previous_ms))
    changed_after = previous_ms;
  return map(event, changed_after, out, error);
}

bool Mapper::map(const Event& event, std::optional<int64_t> changed_after_ms, Rows& out,
                 std::string& error) {
  return mapOne(*mapping_.program_, impl_->filter, impl_->work, event.body(), &event,
                changed_after_ms, out, error);
}

bool Mapper::mapBody(std::string_view body, Rows& out, std::string& error) {
  return mapOne(*mapping_.program_, impl_->filter, impl_->work, body, nullptr, std::nullopt, out,
                error);
}

}  // namespace ferry::mapping
