#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "services/Time.h"

namespace ferry::core {
namespace {

constexpr int64_t kSecond = 1000000000;
// 2025-04-23T10:01:53Z, computed independently (Python's datetime).
constexpr int64_t kRef = int64_t{1745402513} * kSecond;

TEST(ParseInstant, UtcWithZAndMilliseconds) {
  EXPECT_EQ(parseInstantNs("2025-04-23T10:01:53.812Z"), kRef + 812000000);
  EXPECT_EQ(parseInstantNs("2025-04-23T10:01:53Z"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23t10:01:53z"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23 10:01:53Z"), kRef);
  EXPECT_EQ(parseInstantNs("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseInstantNs("2000-01-01T00:00:00Z"), int64_t{946684800} * kSecond);
}

TEST(ParseInstant, OffsetsNameTheSameInstant) {
  EXPECT_EQ(parseInstantNs("2025-04-23T12:01:53+02:00"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23T12:01:53+0200"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23T05:31:53-04:30"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23T10:01:53+00:00"), kRef);
  EXPECT_EQ(parseInstantNs("2025-04-23T10:01:53-00:00"), kRef);
  // Across midnight and a day boundary backwards.
  EXPECT_EQ(parseInstantNs("2025-04-24T00:31:53.5+14:30"), kRef + 500000000);
  EXPECT_EQ(parseInstantNs("2025-04-22T23:01:53-11:00"), kRef);
}

TEST(ParseInstant, FractionsOfZeroToNineDigits) {
  const char* texts[] = {"2025-04-23T10:01:53Z",          "2025-04-23T10:01:53.1Z",
                         "2025-04-23T10:01:53.12Z",       "2025-04-23T10:01:53.123Z",
                         "2025-04-23T10:01:53.1234Z",     "2025-04-23T10:01:53.12345Z",
                         "2025-04-23T10:01:53.123456Z",   "2025-04-23T10:01:53.1234567Z",
                         "2025-04-23T10:01:53.12345678Z", "2025-04-23T10:01:53.123456789Z"};
  const int64_t fractions[] = {0,         100000000, 120000000, 123000000, 123400000,
                               123450000, 123456000, 123456700, 123456780, 123456789};
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE(texts[i]);
    EXPECT_EQ(parseInstantNs(texts[i]), kRef + fractions[i]);
  }
  EXPECT_EQ(parseInstantNs("2025-04-23T10:01:53,5Z"), kRef + 500000000);
  // Versions that differ only in the 7th digit compare as different instants.
  EXPECT_LT(*parseInstantNs("2025-04-23T10:01:53.8120000Z"),
            *parseInstantNs("2025-04-23T10:01:53.8120001Z"));
  // A dot without digits is not a fraction.
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53.Z"));
}

TEST(ParseInstant, NaiveTimesAreRejected) {
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53"));
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53.812"));
  EXPECT_FALSE(parseInstantNs("2025-04-23"));
  EXPECT_FALSE(parseInstantNs(""));
}

TEST(ParseInstant, ImpossibleDatesAndTimesAreRejected) {
  EXPECT_FALSE(parseInstantNs("2025-02-30T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2023-02-29T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("1900-02-29T00:00:00Z"));  // divisible by 100, not by 400
  EXPECT_FALSE(parseInstantNs("2025-04-31T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-13-01T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-00-01T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-01-00T00:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-01-01T24:00:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-01-01T00:60:00Z"));
  EXPECT_FALSE(parseInstantNs("2025-01-01T00:00:00+24:00"));
  EXPECT_FALSE(parseInstantNs("2025-01-01T00:00:00+01:60"));
}

TEST(ParseInstant, LeapDaysThatExistAreAccepted) {
  EXPECT_EQ(parseInstantNs("2024-02-29T00:00:00Z"), int64_t{1709164800} * kSecond);
  EXPECT_TRUE(parseInstantNs("2000-02-29T12:00:00Z"));  // divisible by 400
  EXPECT_EQ(*parseInstantNs("2024-03-01T00:00:00Z") - *parseInstantNs("2024-02-29T00:00:00Z"),
            86400 * kSecond);
}

TEST(ParseInstant, MalformedTextIsRejected) {
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53ZZ"));
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53Z "));
  EXPECT_FALSE(parseInstantNs(" 2025-04-23T10:01:53Z"));
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53+02:00x"));
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53+02"));
  EXPECT_FALSE(parseInstantNs("2025-04-23T10:01:53+2:00"));
  EXPECT_FALSE(parseInstantNs("2025-04-23X10:01:53Z"));
  EXPECT_FALSE(parseInstantNs("2025/04/23T10:01:53Z"));
  EXPECT_FALSE(parseInstantNs("25-04-23T10:01:53Z"));
  EXPECT_FALSE(parseInstantNs("2025-4-23T10:01:53Z"));
  EXPECT_FALSE(parseInstantNs("now"));
}

// The range is that of int64 nanoseconds: 1677-09-21 to 2262-04-11.
TEST(FormatInstant, RoundTripsMillisecondText) {
  for (const char* text :
       {"2025-04-23T10:01:53.812Z", "1970-01-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z",
        "2000-01-01T00:00:00.001Z", "2262-04-11T23:47:16.854Z", "1677-09-21T00:12:44.000Z"}) {
    SCOPED_TRACE(text);
    auto ns = parseInstantNs(text);
    ASSERT_TRUE(ns);
    EXPECT_EQ(formatInstantMs(*ns), text);
  }
  EXPECT_EQ(formatInstantMs(*parseInstantNs("2025-04-23T12:01:53.8+02:00")),
            "2025-04-23T10:01:53.800Z");
}

TEST(FormatInstant, FloorsSubMilliseconds) {
  EXPECT_EQ(formatInstantMs(kRef + 812999999), "2025-04-23T10:01:53.812Z");
  EXPECT_EQ(formatInstantMs(*parseInstantNs("2025-04-23T10:01:53.8129Z")),
            "2025-04-23T10:01:53.812Z");
  EXPECT_EQ(formatInstantMs(999999), "1970-01-01T00:00:00.000Z");
}

TEST(FormatInstant, NegativeEpochFloorsTowardsThePast) {
  EXPECT_EQ(formatInstantMs(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(formatInstantMs(-1000000), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(formatInstantMs(-1000000000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(formatInstantMs(-86400 * kSecond), "1969-12-31T00:00:00.000Z");
  EXPECT_EQ(parseInstantNs("1969-12-31T23:59:59.999Z"), -1000000);
  EXPECT_EQ(parseInstantNs("1900-01-01T00:00:00Z"), int64_t{-2208988800} * kSecond);
  EXPECT_EQ(formatInstantMs(int64_t{-2208988800} * kSecond), "1900-01-01T00:00:00.000Z");
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(parseDurationMs("250ms"), 250);
  EXPECT_EQ(parseDurationMs("20s"), 20000);
  EXPECT_EQ(parseDurationMs("5m"), 300000);
  EXPECT_EQ(parseDurationMs("5min"), 300000);
  EXPECT_EQ(parseDurationMs("1h"), 3600000);
  EXPECT_EQ(parseDurationMs("2d"), 172800000);
  EXPECT_EQ(parseDurationMs("30"), 30000);
  EXPECT_EQ(parseDurationMs("0"), 0);
  EXPECT_EQ(parseDurationMs(" 15s "), 15000);
}

TEST(ParseDuration, JunkIsRejected) {
  for (const char* text : {"", " ", "-5s", "5 s", "1.5s", "s", "ms", "5x", "5sec", "5S", "1h30m",
                           "abc", "99999999999999999999", "9223372036854775807d"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(parseDurationMs(text));
  }
}

TEST(FormatDuration, PicksTheLargestExactUnit) {
  EXPECT_EQ(formatDurationMs(250), "250ms");
  EXPECT_EQ(formatDurationMs(1500), "1500ms");
  EXPECT_EQ(formatDurationMs(0), "0ms");
  EXPECT_EQ(formatDurationMs(20000), "20s");
  EXPECT_EQ(formatDurationMs(300000), "5m");
  EXPECT_EQ(formatDurationMs(3600000), "1h");
  EXPECT_EQ(formatDurationMs(172800000), "2d");
}

TEST(FormatDuration, OutputParsesBackToTheSameValue) {
  for (int64_t ms : {int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{61000}, int64_t{3900000},
                     int64_t{90000000}, int64_t{86400000} * 400}) {
    SCOPED_TRACE(ms);
    EXPECT_EQ(parseDurationMs(formatDurationMs(ms)), ms);
  }
}

TEST(Time, InstantsOutsideTheNanosecondRangeAreRefusedNotWrapped) {
  EXPECT_FALSE(parseInstantNs("9999-12-31T23:59:59.999Z"));
  EXPECT_FALSE(parseInstantNs("1600-01-01T00:00:00Z"));
  EXPECT_TRUE(parseInstantNs("2262-04-11T00:00:00Z"));
  EXPECT_EQ(formatInstantMs(INT64_MIN).substr(0, 4), "1677");
}

}  // namespace
}  // namespace ferry::core
