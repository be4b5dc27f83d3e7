// The field mapping language (the SDK's Ferry::mapping, <ferry/mapping.hpp>): what a user writes
// in `columns` and `rows`, and the cells a body turns into.
#include <ferry/mapping.hpp>
#include <ferry/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace ferry::mapping {
namespace {

using Table = std::vector<std::vector<std::string>>;

// Maps `body` with the spec and returns the rows as text; fails the test on a mapping error.
Table mapText(const std::string& columns, const std::string& rows, const std::string& body) {
  Mapper mapper(Mapping::parse(columns, rows));
  Rows out(mapper.mapping().columnCount());
  std::string error;
  EXPECT_TRUE(mapper.mapBody(body, out, error)) << error;
  Table t;
  for (size_t r = 0; r < out.size(); ++r) {
    t.emplace_back();
    for (size_t c = 0; c < out.columns(); ++c) t.back().push_back(out.at(r, c).text);
  }
  return t;
}

std::string one(const std::string& expression, const std::string& body) {
  Table t = mapText("x=" + expression, "", body);
  return t.size() == 1 ? t[0][0] : "<no row>";
}

// The message of the MappingError that parsing throws, or "" when it parses.
std::string parseError(const std::string& columns, const std::string& rows = "") {
  try {
    Mapping::parse(columns, rows);
  } catch (const MappingError& e) {
    return e.what();
  }
  return "";
}

std::string mapError(const std::string& columns, const std::string& rows, const std::string& body) {
  Mapper mapper(Mapping::parse(columns, rows));
  Rows out(mapper.mapping().columnCount());
  std::string error;
  bool ok = mapper.mapBody(body, out, error);
  EXPECT_FALSE(ok) << "expected a mapping failure";
  EXPECT_EQ(out.size(), 0u) << "a failed event must add no rows";
  return error;
}

TEST(MappingPointer, ResolvesNestedKeysAndArrayIndexes) {
  const std::string body = R"({"a":{"b":[10,{"c":"deep"}]},"n":7})";
  EXPECT_EQ(one("/a/b/0", body), "10");
  EXPECT_EQ(one("/a/b/1/c", body), "deep");
  EXPECT_EQ(one("/n", body), "7");
}

TEST(MappingPointer, DecodesTildeEscapesPerRfc6901) {
  const std::string body = R"({"a/b":"slash","m~n":"tilde","~1":"literal tilde-one","":"empty"})";
  EXPECT_EQ(one("/a~1b", body), "slash");
  EXPECT_EQ(one("/m~0n", body), "tilde");
  EXPECT_EQ(one("/~01", body), "literal tilde-one");  // ~0 first, then the 1 stays
  EXPECT_EQ(one("/", body), "empty");                 // "/" is the member named ""
}

TEST(MappingPointer, BackslashEscapesTheSyntaxCharacters) {
  const std::string body = R"({"a;b":"semi","c=d":"eq","x,y":"comma","p)q":"paren"})";
  Table t = mapText(R"(s=/a\;b; e=/c=d; h\=1=/c=d)", "", body);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"semi", "eq", "eq"}));
  Mapping m = Mapping::parse(R"(h\=1=/c=d; h\;2=/a\;b)");
  EXPECT_EQ(m.headers(), (std::vector<std::string>{"h=1", "h;2"}));
  EXPECT_EQ(one(R"(raw(/x\,y))", body), "comma");
  EXPECT_EQ(one(R"(raw(/p\)q))", body), "paren");
}

TEST(MappingValues, StringsNumbersBooleansObjectsAndNulls) {
  const std::string body =
      R"({"s":"text \"q\" é","i":-42,"u":18446744073709551615,"d":1.5,"t":true,"f":false,)"
      R"("z":null,"o":{"k":[1,"x"]}})";
  EXPECT_EQ(one("/s", body), "text \"q\" é");
  EXPECT_EQ(one("/i", body), "-42");
  EXPECT_EQ(one("/u", body), "18446744073709551615");
  EXPECT_EQ(one("/d", body), "1.5");
  EXPECT_EQ(one("/t", body), "true");
  EXPECT_EQ(one("/f", body), "false");
  EXPECT_EQ(one("/z", body), "");
  EXPECT_EQ(one("/o", body), R"({"k":[1,"x"]})");
}

TEST(MappingValues, CellKindsTellTextFromNumbers) {
  Mapper mapper(Mapping::parse("s=/s; n=/n; a=amount(/a); b=/b; z=/z; f=fixed(-1)"));
  Rows out(mapper.mapping().columnCount());
  std::string error;
  ASSERT_TRUE(mapper.mapBody(R"({"s":"-1","n":-1,"a":-150,"b":true,"z":null})", out, error))
      << error;
  EXPECT_EQ(out.at(0, 0).kind, CellKind::kText);
  EXPECT_EQ(out.at(0, 1).kind, CellKind::kNumber);
  EXPECT_EQ(out.at(0, 2).kind, CellKind::kNumber);
  EXPECT_EQ(out.at(0, 2).text, "-1.50");
  EXPECT_EQ(out.at(0, 3).kind, CellKind::kBoolean);
  EXPECT_EQ(out.at(0, 4).kind, CellKind::kEmpty);
  EXPECT_EQ(out.at(0, 5).kind, CellKind::kText);
}

TEST(MappingValues, MissingFieldsAreEmptyCells) {
  const std::string body = R"({"a":{"b":1},"arr":[1,2]})";
  EXPECT_EQ(one("/nope", body), "");
  EXPECT_EQ(one("/a/b/c", body), "");   // through a number
  EXPECT_EQ(one("/arr/5", body), "");   // index out of range
  EXPECT_EQ(one("/arr/01", body), "");  // leading zero is not an index
  EXPECT_EQ(one("/arr/-", body), "");
  EXPECT_EQ(one("amount(/nope)", body), "");
  EXPECT_EQ(one("date(/nope)", body), "");
  EXPECT_EQ(one("^/nope", body), "");
}

TEST(MappingRows, OneRowPerArrayElementWithParentFields) {
  const std::string body =
      R"({"orderNumber":"A-1","currency":"EUR","items":[)"
      R"({"productName":"Duck","unitPrice":1250},{"productName":"Pond","unitPrice":-5}]})";
  Table t =
      mapText("n=^/orderNumber; p=/productName; price=amount(/unitPrice); i=$row", "/items", body);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"A-1", "Duck", "12.50", "1"}));
  EXPECT_EQ(t[1], (std::vector<std::string>{"A-1", "Pond", "-0.05", "2"}));
}

TEST(MappingRows, MissingOrEmptyArrayGivesNoRowsAndNonArrayFails) {
  EXPECT_TRUE(mapText("p=/x", "/items", R"({"items":[]})").empty());
  EXPECT_TRUE(mapText("p=/x", "/items", R"({"other":1})").empty());
  EXPECT_TRUE(mapText("p=/x", "/items", R"({"items":null})").empty());
  std::string e = mapError("p=/x", "/items", R"({"items":"oops"})");
  EXPECT_NE(e.find("rows: /items"), std::string::npos) << e;
  EXPECT_NE(e.find("not an array"), std::string::npos) << e;
}

TEST(MappingRows, PerEntityRowsSeeTheEntityThroughBothForms) {
  Table t = mapText("a=/id; b=^/id", "", R"({"id":"o1"})");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"o1", "o1"}));
}

TEST(MappingAmount, MinorUnitsToDecimals) {
  EXPECT_EQ(one("amount(/a)", R"({"a":1234})"), "12.34");
  EXPECT_EQ(one("amount(/a)", R"({"a":-5})"), "-0.05");
  EXPECT_EQ(one("amount(/a)", R"({"a":-1234})"), "-12.34");
  EXPECT_EQ(one("amount(/a)", R"({"a":0})"), "0.00");
  EXPECT_EQ(one("amount(/a)", R"({"a":7})"), "0.07");
  EXPECT_EQ(one("amount(/a)", R"({"a":"990"})"), "9.90");  // integer as a string
  EXPECT_EQ(one("amount(/a)", R"({"a":1234.0})"), "12.34");
}

TEST(MappingAmount, DigitsFromTheEntityCurrencyOrAnArgument) {
  EXPECT_EQ(one("amount(/a)", R"({"a":1234,"currency":"JPY"})"), "1234");
  EXPECT_EQ(one("amount(/a)", R"({"a":-1234,"currency":"JPY"})"), "-1234");
  EXPECT_EQ(one("amount(/a)", R"({"a":1234,"currency":"KWD"})"), "1.234");
  EXPECT_EQ(one("amount(/a)", R"({"a":1234,"currency":"EUR"})"), "12.34");
  EXPECT_EQ(one("amount(/a)", R"({"a":1234,"currency":"XYZ"})"), "12.34");
  EXPECT_EQ(one("amount(/a, 3)", R"({"a":1234,"currency":"EUR"})"), "1.234");
  EXPECT_EQ(one("amount(/a, 0)", R"({"a":1234})"), "1234");
  EXPECT_EQ(one("amount(/a, ^/money/cur)", R"({"a":1234,"money":{"cur":"JPY"}})"), "1234");
  // In rows over an array, the currency is the entity's, not the element's.
  Table t = mapText("p=amount(/p)", "/items", R"({"currency":"JPY","items":[{"p":500}]})");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0][0], "500");
}

TEST(MappingAmount, NonIntegerAmountFailsTheEvent) {
  std::string e = mapError("total=amount(/a)", "", R"({"a":12.5})");
  EXPECT_NE(e.find("column 'total' (amount(/a))"), std::string::npos) << e;
  EXPECT_NE(e.find("not an integer amount"), std::string::npos) << e;
  mapError("total=amount(/a)", "", R"({"a":"12,50"})");
}

TEST(MappingAmount, FormatMinorUnitsEdges) {
  EXPECT_EQ(formatMinorUnits(INT64_MIN, 2), "-92233720368547758.08");
  EXPECT_EQ(formatMinorUnits(100, 2), "1.00");
  EXPECT_EQ(formatMinorUnits(-100, 0), "-100");
  EXPECT_EQ(formatMinorUnits(5, 4), "0.0005");
  EXPECT_EQ(currencyDigits("jpy"), 0);
  EXPECT_EQ(currencyDigits("BHD"), 3);
  EXPECT_EQ(currencyDigits("CLF"), 4);
}

TEST(MappingDate, InstantToUtcDateAndFixedOffsets) {
  const std::string body = R"({"t":"2026-07-05T23:30:00.000Z","u":"2026-07-05T01:15:00+02:00",)"
                           R"("y":"2024-12-31T23:59:59.999Z"})";
  EXPECT_EQ(one("date(/t)", body), "2026-07-05");
  EXPECT_EQ(one("date(/u)", body), "2026-07-04");  // 23:15 UTC the day before
  EXPECT_EQ(one("date(/t, +02:00)", body), "2026-07-06");
  EXPECT_EQ(one("date(/t, -05:30)", body), "2026-07-05");
  EXPECT_EQ(one("date(/y, +0100)", body), "2025-01-01");
  EXPECT_EQ(one("date(/y, Z)", body), "2024-12-31");
  EXPECT_EQ(one("local(/t)", body), "2026-07-05 23:30:00");
  EXPECT_EQ(one("local(/t, +02:00)", body), "2026-07-06 01:30:00");
  EXPECT_EQ(one("local(/u, -01:00)", body), "2026-07-04 22:15:00");
  EXPECT_EQ(one("date(/n)", R"({"n":null})"), "");
}

TEST(MappingDate, TextThatIsNoInstantFailsTheEvent) {
  std::string e = mapError("d=date(/t)", "", R"({"t":"yesterday"})");
  EXPECT_NE(e.find("column 'd'"), std::string::npos) << e;
  EXPECT_NE(e.find("not an instant"), std::string::npos) << e;
  mapError("d=date(/t)", "", R"({"t":"2026-07-05T10:00:00"})");  // no zone: ambiguous
  int64_t ms = 0;
  EXPECT_TRUE(parseInstantMs("1970-01-01T00:00:01.5Z", ms));
  EXPECT_EQ(ms, 1500);
  EXPECT_TRUE(parseInstantMs("1970-01-01T01:00:00+01:00", ms));
  EXPECT_EQ(ms, 0);
  EXPECT_FALSE(parseInstantMs("1970-13-01T00:00:00Z", ms));
}

TEST(MappingFixedAndEvent, FixedTextAndEventFields) {
  EXPECT_EQ(one("fixed(DuckHub)", "{}"), "DuckHub");
  EXPECT_EQ(one(R"(fixed(a\, b \) c))", "{}"), "a, b ) c");
  EXPECT_EQ(one("fixed()", "{}"), "");

  Mapper mapper(
      Mapping::parse("k=$key; v=$version; p=$previous; e=$echo; s=$source; n=$entity; q=$sequence; "
                     "i=$idempotency_key; m=$meta; r=$row"));
  Rows out(mapper.mapping().columnCount());
  std::string body = R"({"id":"o1"})";
  ferry::testing::EventView ev({.key = "o1",
                                .version = "2026-07-05T12:00:00.000Z",
                                .body = body,
                                .previous = "2026-07-05T11:00:00.000Z",
                                .source = "duck",
                                .echo = true,
                                .sequence = 42,
                                .meta = R"({"numbers":["1007"]})"});
  std::string error;
  ASSERT_TRUE(mapper.map(ev.event(), out, error)) << error;
  std::vector<std::string> got;
  for (size_t c = 0; c < out.columns(); ++c) got.push_back(out.at(0, c).text);
  EXPECT_EQ(got, (std::vector<std::string>{"o1", "2026-07-05T12:00:00.000Z",
                                           "2026-07-05T11:00:00.000Z", "true", "duck", "order",
                                           "42", "duck/order/o1/2026-07-05T12:00:00.000Z",
                                           R"({"numbers":["1007"]})", "1"}));
}

// Maps one event with `meta` as its metadata; the rows as text, or the error as the only cell.
Table mapEvent(Mapper& mapper, const std::string& body, const std::string& meta) {
  ferry::testing::EventView ev(
      {.key = "o1", .version = "2026-07-05T12:00:00.000Z", .body = body, .meta = meta});
  Rows out(mapper.mapping().columnCount());
  std::string error;
  if (!mapper.map(ev.event(), out, error)) {
    EXPECT_EQ(out.size(), 0u) << "a failed event must add no rows";
    return {{"error: " + error}};
  }
  Table t;
  for (size_t r = 0; r < out.size(); ++r) {
    t.emplace_back();
    for (size_t c = 0; c < out.columns(); ++c) t.back().push_back(out.at(r, c).text);
  }
  return t;
}

TEST(MappingMeta, APointerReadsIntoTheSourcesMetadata) {
  Mapper mapper(Mapping::parse(
      "n0=$meta/numbers/0; n1=$meta/numbers/1; all=$meta/numbers; none=$meta/nope; "
      "either=first($meta/numbers/5, /orderNumber); whole=$meta"));
  const std::string body = R"({"orderNumber":1007})";
  const std::string meta = R"({"numbers":["1007","4500001019"],"own_lines":[1]})";
  EXPECT_EQ(mapEvent(mapper, body, meta),
            (Table{{"1007", "4500001019", R"(["1007","4500001019"])", "", "1007", meta}}));
  // No metadata: every $meta cell is empty, first() goes on to the body.
  EXPECT_EQ(mapEvent(mapper, body, ""), (Table{{"", "", "", "", "1007", ""}}));
  // The cell keeps the value's kind; a bare body (mapBody) has no metadata.
  Mapper kinds(Mapping::parse("n=$meta/count; s=$meta/numbers/0"));
  Rows out(2);
  std::string error;
  ferry::testing::EventView ev({.key = "o1", .version = "2026-07-05T12:00:00.000Z",
                                .body = "{}", .meta = R"({"count":3,"numbers":["x"]})"});
  ASSERT_TRUE(kinds.map(ev.event(), out, error)) << error;
  EXPECT_EQ(out.at(0, 0).kind, CellKind::kNumber);
  EXPECT_EQ(out.at(0, 1).text, "x");
  ASSERT_TRUE(kinds.mapBody("{}", out, error)) << error;
  EXPECT_EQ(out.at(1, 1).kind, CellKind::kEmpty);
  // Metadata that is no JSON fails the event when a column reads into it.
  Table bad = mapEvent(mapper, body, "{nope}");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0][0].find("meta (the source's metadata) is not valid JSON"), std::string::npos)
      << bad[0][0];
  // Mistakes: a pointer after another field, a malformed pointer.
  EXPECT_NE(parseError("x=$key/a").find("position 3: '$key/a': only $meta takes a JSON Pointer"),
            std::string::npos)
      << parseError("x=$key/a");
  EXPECT_NE(parseError("x=$meta/a~2").find("'~' in a JSON Pointer"), std::string::npos)
      << parseError("x=$meta/a~2");
}

TEST(MappingRowFilter, SkipOwnLinesLeavesOutThePositionsTheMetadataNames) {
  Mapper mapper(Mapping::parse("line=/id; row=$row", "/lines"));
  RowFilter filter;
  filter.skip_own_lines = true;
  mapper.setRowFilter(filter);
  const std::string body = R"({"lines":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]})";
  // $row stays the element's position.
  EXPECT_EQ(mapEvent(mapper, body, R"({"numbers":["1"],"own_lines":[3,1]})"),
            (Table{{"a", "1"}, {"c", "3"}}));
  EXPECT_EQ(mapEvent(mapper, body, R"({"own_lines":[0,1,2,3]})"), Table{});
  // Nothing to leave out: no metadata, no own_lines, an empty list, a position past the end.
  for (const char* meta : {"", R"({"numbers":["1"]})", R"({"own_lines":[]})",
                           R"({"own_lines":null})", R"({"own_lines":[9]})"})
    EXPECT_EQ(mapEvent(mapper, body, meta).size(), 4u) << meta;
  // own_lines that is no list of positions fails the event, naming it.
  for (const char* meta : {R"({"own_lines":"1"})", R"({"own_lines":[-1]})",
                           R"({"own_lines":["1"]})", R"({"own_lines":[1.5]})"}) {
    Table t = mapEvent(mapper, body, meta);
    ASSERT_EQ(t.size(), 1u) << meta;
    EXPECT_NE(t[0][0].find("meta: own_lines is"), std::string::npos) << t[0][0];
  }
  // The mapping goes on with the next event.
  EXPECT_EQ(mapEvent(mapper, body, R"({"own_lines":[0]})").size(), 3u);
  // Without the flag the metadata is not even read.
  Mapper plain(Mapping::parse("line=/id", "/lines"));
  EXPECT_EQ(mapEvent(plain, body, R"({"own_lines":"1"})").size(), 4u);
  // One row per event cannot be filtered.
  Mapper one_row(Mapping::parse("line=/id"));
  EXPECT_THROW(one_row.setRowFilter(filter), MappingError);
}

TEST(MappingRaw, RawMarksTheColumnAndKeepsTheValue) {
  Mapping m = Mapping::parse("a=/x; b=raw(/x); c=raw(amount(/n))");
  EXPECT_FALSE(m.raw(0));
  EXPECT_TRUE(m.raw(1));
  EXPECT_TRUE(m.raw(2));
  Table t = mapText("a=/x; b=raw(/x); c=raw(amount(/n))", "", R"({"x":"=1+1","n":-250})");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"=1+1", "=1+1", "-2.50"}));
}

TEST(MappingCount, CountsElements) {
  EXPECT_EQ(one("count(/items)", R"({"items":[1,2,3]})"), "3");
  EXPECT_EQ(one("count(/items)", R"({"items":[]})"), "0");
  EXPECT_EQ(one("count(/items)", R"({})"), "0");
  mapError("c=count(/items)", "", R"({"items":"abc"})");
}

TEST(MappingFirst, TheFirstArgumentThatReadsAValue) {
  const std::string body = R"({"a":null,"b":"", "c":"C","items":[1,2],"n":1250,"cur":"JPY"})";
  EXPECT_EQ(one("first(/missing, /c)", body), "C");
  EXPECT_EQ(one("first(/a, /c)", body), "C") << "null is no value";
  EXPECT_EQ(one("first(/b, /c)", body), "") << "an empty string is a value";
  EXPECT_EQ(one("first(/missing, /a)", body), "") << "none reads a value: an empty cell";
  // Functions as arguments: they count when their pointer reads a value.
  EXPECT_EQ(one("first(count(/none), fixed(1))", body), "1");
  EXPECT_EQ(one("first(count(/items), fixed(1))", body), "2");
  EXPECT_EQ(one("first(amount(/none), amount(/n, ^/cur))", body), "1250");
  EXPECT_EQ(one("first(date(/none), fixed(n/a\\, none))", body), "n/a, none");
  EXPECT_EQ(one("first(/missing, first(/a, /c))", body), "C");
  // The cell keeps the argument's kind.
  Mapper mapper(Mapping::parse("x=first(/none, /n)"));
  Rows out(1);
  std::string error;
  ASSERT_TRUE(mapper.mapBody(body, out, error)) << error;
  EXPECT_EQ(out.at(0, 0).kind, CellKind::kNumber);
  // An argument that reads a value but cannot be formatted still fails the event.
  mapError("x=first(amount(/c), /n)", "", body);
  // Mistakes.
  EXPECT_NE(parseError("x=first(/a)").find("first() takes two or more expressions, got 1"),
            std::string::npos)
      << parseError("x=first(/a)");
  EXPECT_NE(parseError("x=first(/a, nope)").find("position 13: 'nope' is not an expression"),
            std::string::npos)
      << parseError("x=first(/a, nope)");
}

TEST(MappingBody, InvalidJsonFailsTheEvent) {
  std::string e = mapError("a=/x", "", R"({"x": )");
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
  // The parser is reused: the next event maps normally.
  Mapper mapper(Mapping::parse("a=/x"));
  Rows out(1);
  std::string error;
  EXPECT_FALSE(mapper.mapBody("nope", out, error));
  EXPECT_TRUE(mapper.mapBody(R"({"x":"fine"})", out, error)) << error;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out.at(0, 0).text, "fine");
}

TEST(MappingSyntax, ErrorsNameTheColumnAndThePosition) {
  EXPECT_EQ(parseError("id=/id; total=amout(/t)"),
            "columns, column 2 ('total'), position 15: unknown function 'amout'; functions: "
            "amount, date, local, count, fixed, first, raw");
  EXPECT_EQ(parseError("id=/id; nothing"),
            "columns, column 2, position 9: expected Header=expression, found no '=' in "
            "'nothing' (write \\= for a '=' in a header)");
  EXPECT_EQ(parseError("a=/x; =/y"),
            "columns, column 2, position 7: the header before '=' is empty");
  EXPECT_EQ(parseError("a=productName"),
            "columns, column 1 ('a'), position 3: 'productName' is not an expression: a JSON "
            "Pointer starts with '/' (/productName), an event field with '$' ($key), a function "
            "call looks like amount(/field) (functions: amount, date, local, count, fixed, first, "
            "raw)");
}

TEST(MappingSyntax, MoreMistakes) {
  auto has = [](const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
  };
  std::string e = parseError("a=amount(/x");
  EXPECT_TRUE(has(e, "position 9: '(' of amount() is never closed")) << e;
  e = parseError("a=/x~2");
  EXPECT_TRUE(has(e, "position 5: '~' in a JSON Pointer must be followed by 0")) << e;
  e = parseError("a=$nope");
  EXPECT_TRUE(has(e, "column 1 ('a'), position 3: unknown event field '$nope'")) << e;
  e = parseError("a=date(/t, Europe/Berlin)");
  EXPECT_TRUE(has(e, "position 12: 'Europe/Berlin' is not a fixed UTC offset")) << e;
  e = parseError("a=amount(/t, two)");
  EXPECT_TRUE(has(e, "position 14: amount()'s second argument")) << e;
  e = parseError("a=fixed(x, y)");
  EXPECT_TRUE(has(e, "fixed() takes one text, got 2 argument(s); write \\, for a comma")) << e;
  e = parseError("a=/x; a=/y");
  EXPECT_TRUE(has(e, "column 2 ('a'), position 7: header 'a' is used twice")) << e;
  e = parseError("a=");
  EXPECT_TRUE(has(e, "column 1 ('a'), position 3: empty expression")) << e;
  e = parseError("a=count(/x) /y");
  EXPECT_TRUE(has(e, "position 13: unexpected text after count(")) << e;
  e = parseError("a=/x\\");
  EXPECT_TRUE(has(e, "columns, position 5: a lone '\\'")) << e;
  e = parseError("a=/x", "items");
  EXPECT_TRUE(has(e, "rows, position 1: a JSON Pointer starts with '/'")) << e;
  EXPECT_TRUE(has(parseError(" ; "), "no column given")) << parseError(" ; ");
  EXPECT_EQ(parseError("a=/x;"), "");  // a trailing ';' is fine
}

TEST(MappingLayouts, DuckHubOrder) {
  Mapping m = Mapping::layout("duckhub_order");
  EXPECT_FALSE(m.perElement());
  const std::string body =
      R"({"id":"ck1","orderNumber":"1042","status":"confirmed","type":"delivery",)"
      R"("customerName":"Ada","currency":"EUR","subtotalAmount":2350,"deliveryFee":250,)"
      R"("discountAmount":0,"totalAmount":2600,"createdAt":"2026-07-05T22:59:00.000Z",)"
      R"("updatedAt":"2026-07-05T23:01:05.000Z","confirmedAt":"2026-07-05T23:01:05.000Z",)"
      R"("completedAt":null,"items":[{"productName":"A"},{"productName":"B"}]})";
  Mapper mapper(m);
  Rows out(m.columnCount());
  std::string error;
  ASSERT_TRUE(mapper.mapBody(body, out, error)) << error;
  ASSERT_EQ(out.size(), 1u);
  std::vector<std::string> got;
  for (size_t c = 0; c < out.columns(); ++c) got.push_back(out.at(0, c).text);
  EXPECT_EQ(m.headers(),
            (std::vector<std::string>{"order_id", "order_number", "status", "type", "customer_name",
                                      "currency", "subtotal", "delivery_fee", "discount", "total",
                                      "created_date", "updated_at", "confirmed_at", "completed_at",
                                      "item_count", "previous_version"}));
  EXPECT_EQ(got, (std::vector<std::string>{"ck1", "1042", "confirmed", "delivery", "Ada", "EUR",
                                           "23.50", "2.50", "0.00", "26.00", "2026-07-05",
                                           "2026-07-05T23:01:05.000Z", "2026-07-05T23:01:05.000Z",
                                           "", "2", ""}));
}

TEST(MappingLayouts, DuckHubOrderLinesAndUnknownLayout) {
  Mapping m = Mapping::layout("duckhub_order_lines");
  EXPECT_TRUE(m.perElement());
  Mapper mapper(m);
  Rows out(m.columnCount());
  std::string error;
  ASSERT_TRUE(mapper.mapBody(
      R"({"id":"ck1","orderNumber":"7","currency":"JPY","totalAmount":1500,)"
      R"("createdAt":"2026-07-05T10:00:00.000Z","items":[)"
      R"({"productExternalId":"p1","productName":"Tea","quantity":2,"unitPrice":500,)"
      R"("totalPrice":1000},)"
      R"({"productExternalId":"p2","productName":"Mochi","quantity":1,"unitPrice":500,)"
      R"("totalPrice":500}]})",
      out, error))
      << error;
  ASSERT_EQ(out.size(), 2u);
  auto col = [&](const std::string& h) {
    for (size_t c = 0; c < m.columnCount(); ++c)
      if (m.headers()[c] == h) return c;
    ADD_FAILURE() << "no column " << h;
    return size_t{0};
  };
  EXPECT_EQ(out.at(1, col("order_number")).text, "7");
  EXPECT_EQ(out.at(1, col("product_name")).text, "Mochi");
  EXPECT_EQ(out.at(1, col("line")).text, "2");
  EXPECT_EQ(out.at(0, col("unit_price")).text, "500");  // JPY: no decimals
  EXPECT_EQ(out.at(0, col("order_total")).text, "1500");
  try {
    Mapping::layout("sap_idoc");
    ADD_FAILURE() << "no exception";
  } catch (const MappingError& e) {
    EXPECT_STREQ(e.what(),
                 "unknown layout 'sap_idoc'; layouts: duckhub_order, duckhub_order_lines, "
                 "tradecloud_order_lines, tradecloud_shipment_lines");
  }
}

// The rows of a built-in layout for `body`, each as header -> cell text.
std::vector<std::map<std::string, std::string>> layoutRows(const std::string& layout,
                                                           const std::string& body) {
  Mapper mapper(Mapping::layout(layout));
  Rows out(mapper.mapping().columnCount());
  std::string error;
  EXPECT_TRUE(mapper.mapBody(body, out, error)) << error;
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 0; r < out.size(); ++r) {
    rows.emplace_back();
    for (size_t c = 0; c < out.columns(); ++c)
      rows.back()[mapper.mapping().headers()[c]] = out.at(r, c).text;
  }
  return rows;
}

// Tradecloud order lines in the two documented shapes (api-contracts.md): the default poll's
// deliverySchedule[]/prices, and /poll/single-delivery's statusLine{scheduledDelivery, prices}.
TEST(MappingLayouts, TradecloudOrderLinesFillQuantityDateAndPriceInBothVariants) {
  const std::string head =
      R"({"id":"c-4500001234","lastUpdatedAt":"2025-04-23T10:00:00.000Z",)"
      R"("buyerOrder":{"purchaseOrderNumber":"4500001234","supplierAccountNumber":"SUP-7"},)"
      R"("lines":[)";
  const std::string money =
      R"("grossPrice":{"priceInTransactionCurrency":{"value":12.5,"currencyIso":"EUR"}},)"
      R"("discountPercentage":0,"netPrice":{"priceInTransactionCurrency":)"
      R"({"value":12.5,"currencyIso":"EUR"}},"priceUnitOfMeasureIso":"PCE","priceUnitQuantity":1)";
  const std::string status =
      R"("status":{"processStatus":"Issued","inProgressStatus":null,"logisticsStatus":"Open"},)"
      R"("lastUpdatedAt":"2025-04-23T10:00:00.000Z")";
  const std::string buyer_line =
      R"("buyerLine":{"position":"10","item":{"number":"ART-1","name":"Bolt",)"
      R"("purchaseUnitOfMeasureIso":"PCE"}},)";
  const std::string schedule =
      R"([{"position":1,"date":"2025-05-20","quantity":40,"status":"Open","etd":null,"eta":null},)"
      R"({"position":2,"date":"2025-06-20","quantity":60,"status":"Open","etd":null,"eta":null}])";
  const std::string default_body = head + R"({"id":"c-4500001234-10","lineType":"Item",)" +
                                   buyer_line + R"("deliverySchedule":)" + schedule +
                                   R"(,"deliveryScheduleIncludingRequests":)" + schedule +
                                   R"(,"prices":{)" + money + R"(},"pricesIncludingRequests":{)" +
                                   money + R"(},"confirmedLine":null,)" + status + "}]}";
  auto delivery = [](const char* date, const char* quantity) {
    return std::string(R"({"date":")") + date + R"(","quantity":)" + quantity +
           R"(,"status":"Open","etd":"2025-05-18","eta":")" + date + R"("})";
  };
  auto single_line = [&](const char* id, const char* date, const char* quantity) {
    return std::string(R"({"id":")") + id + R"(","lineType":"Item",)" + buyer_line +
           R"("statusLine":{"scheduledDelivery":)" + delivery(date, quantity) +
           R"(,"scheduledDeliveryInclRequests":)" + delivery(date, quantity) + R"(,"prices":{)" +
           money + R"(},"pricesInclRequests":{)" + money + R"(}},"confirmedLine":null,)" + status +
           "}";
  };
  const std::string single_body = head + single_line("c-4500001234-10-1", "2025-05-20", "40") +
                                  "," + single_line("c-4500001234-10-2", "2025-06-20", "60") + "]}";

  auto d = layoutRows("tradecloud_order_lines", default_body);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["quantity"], "40");
  EXPECT_EQ(d[0]["delivery_date"], "2025-05-20");
  EXPECT_EQ(d[0]["deliveries"], "2");
  EXPECT_EQ(d[0]["net_price"], "12.5");
  EXPECT_EQ(d[0]["currency"], "EUR");
  EXPECT_EQ(d[0]["price_unit_quantity"], "1");
  EXPECT_EQ(d[0]["unit"], "PCE");

  auto s = layoutRows("tradecloud_order_lines", single_body);
  ASSERT_EQ(s.size(), 2u);
  const std::vector<std::vector<std::string>> want{{"c-4500001234-10-1", "40", "2025-05-20"},
                                                   {"c-4500001234-10-2", "60", "2025-06-20"}};
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("single-delivery line " + std::to_string(i + 1));
    EXPECT_EQ(s[i]["line_id"], want[i][0]);
    EXPECT_EQ(s[i]["quantity"], want[i][1]);
    EXPECT_EQ(s[i]["delivery_date"], want[i][2]);
    EXPECT_EQ(s[i]["deliveries"], "1") << "a single-delivery line is one delivery line";
    EXPECT_EQ(s[i]["net_price"], "12.5");
    EXPECT_EQ(s[i]["currency"], "EUR");
    EXPECT_EQ(s[i]["price_unit_quantity"], "1");
    EXPECT_EQ(s[i]["item_number"], "ART-1");
  }
}

// Shipment lines read the documented locations: departure.etdDate and destinations[]; with
// several destinations, eta is the first destination's (the others: a custom layout).
TEST(MappingLayouts, TradecloudShipmentLinesReadTheDocumentedDepartureAndDestinations) {
  const std::string body =
      R"({"id":"0b7e","supplierShipment":{"companyId":"s","shipmentNumber":"SHP-1"},)"
      R"("lines":[{"purchaseOrderNumber":"4500001234","purchaseOrderLinePosition":"10",)"
      R"("item":{"number":"ART-1","name":"Bolt"},)"
      R"("supplierLine":{"despatchAdviceNumber":"DA-1","despatchQuantity":40},)"
      R"("meta":{"lastUpdatedAt":"2025-04-23T10:00:00.000Z"}}],)"
      R"("locations":{"departure":{"location":{"code":"WH-01"},"etdDate":"2025-04-25",)"
      R"("atdDate":null},"destinations":[)"
      R"({"location":{"code":"DC-NL"},"etaStartDate":"2025-04-28","etaStartTime":"08:00:00",)"
      R"("etaEndDate":"2025-04-29","etaEndTime":"16:00:00","ataDate":null,"etdDate":"2025-04-29",)"
      R"("atdDate":null},)"
      R"({"location":{"code":"PL-02"},"etaStartDate":"2025-05-02","etaStartTime":"07:00:00",)"
      R"("etaEndDate":"2025-05-02","etaEndTime":"12:00:00","ataDate":null,"etdDate":null,)"
      R"("atdDate":null}]},)"
      R"("status":{"processStatus":"Issued","processStatusReason":null},)"
      R"("meta":{"lastUpdatedAt":"2025-04-23T10:00:00.000Z"}})";
  auto rows = layoutRows("tradecloud_shipment_lines", body);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["etd"], "2025-04-25");
  EXPECT_EQ(rows[0]["eta"], "2025-04-28");
  EXPECT_EQ(rows[0]["eta_time"], "08:00:00");
  EXPECT_EQ(rows[0]["eta_end"], "2025-04-29");
  EXPECT_EQ(rows[0]["eta_end_time"], "16:00:00");
  EXPECT_EQ(rows[0]["destinations"], "2");
  EXPECT_EQ(rows[0]["despatch_quantity"], "40");
  EXPECT_EQ(rows[0]["shipment_number"], "SHP-1");
}

TEST(MappingLayouts, ExpectedColumnsNameTheFieldsTheyRead) {
  auto expected = [](const std::string& layout) {
    std::map<std::string, std::string> out;
    for (const auto& [header, fields] : Mapping::layoutExpectedColumns(layout))
      out[header] = fields;
    return out;
  };
  auto shipments = expected("tradecloud_shipment_lines");
  EXPECT_EQ(shipments["etd"], "^/locations/departure/etdDate");
  EXPECT_EQ(shipments["eta"], "^/locations/destinations/0/etaStartDate");
  for (const char* never : {"destinations", "previous_version", "status_reason", "eta_end"})
    EXPECT_EQ(shipments.count(never), 0u) << never;
  auto orders = expected("tradecloud_order_lines");
  EXPECT_EQ(orders["quantity"],
            "/deliverySchedule/0/quantity or /statusLine/scheduledDelivery/quantity");
  for (const char* never : {"deliveries", "confirmed_quantity", "in_progress_status"})
    EXPECT_EQ(orders.count(never), 0u) << never;
  EXPECT_EQ(expected("duckhub_order").count("completed_at"), 0u);
  EXPECT_EQ(expected("duckhub_order")["total"], "/totalAmount");
  EXPECT_TRUE(Mapping::layoutExpectedColumns("sap_idoc").empty());
}

TEST(MappingRowsStorage, ReusedAcrossClearAndRolledBackOnFailure) {
  Mapper mapper(Mapping::parse("p=amount(/p)", "/items"));
  Rows out(1);
  std::string error;
  ASSERT_TRUE(mapper.mapBody(R"({"items":[{"p":1},{"p":2}]})", out, error)) << error;
  // The second element fails: the first element's row of this event must not stay.
  EXPECT_FALSE(mapper.mapBody(R"({"items":[{"p":3},{"p":"x"}]})", out, error));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out.at(1, 0).text, "0.02");
  out.clear();
  ASSERT_TRUE(mapper.mapBody(R"({"items":[{"p":4}]})", out, error)) << error;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out.at(0, 0).text, "0.04");
}

}  // namespace
}  // namespace ferry::mapping
