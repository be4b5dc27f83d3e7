#include <gtest/gtest.h>

#include "services/Metrics.h"

namespace ferry::core {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Metrics, SeriesAreLabelledBySourceOrSinkAndExistFromTheStart) {
  Metrics m;
  m.declareInstance("tc-orders", "source");
  m.declareInstance("erp", "sink");
  const std::string text = m.render();
  EXPECT_TRUE(has(text, "ferry_source_events_total{source=\"tc-orders\"} 0")) << text;
  EXPECT_TRUE(has(text, "ferry_source_retries_total{source=\"tc-orders\"} 0")) << text;
  EXPECT_TRUE(has(text, "ferry_http_requests_total{source=\"tc-orders\"} 0")) << text;
  EXPECT_TRUE(has(text, "ferry_sink_events_total{sink=\"erp\"} 0")) << text;
  EXPECT_TRUE(has(text, "ferry_sink_dead_letters_total{sink=\"erp\"} 0")) << text;
  EXPECT_TRUE(has(text, "ferry_http_requests_total{sink=\"erp\"} 0")) << text;
  EXPECT_FALSE(text.find("ferry_sink_events_total{source=") != std::string::npos) << text;
  EXPECT_EQ(text.find("instance="), std::string::npos) << text;
}

TEST(Metrics, EveryFamilyHasHelpAndTypeOnce) {
  Metrics m;
  m.declareInstance("a", "source");
  m.declareInstance("b", "source");
  m.set("queue_depth", "a", 3);  // a plugin's gauge
  const std::string text = m.render();
  EXPECT_TRUE(has(text, "# HELP ferry_source_events_total New events the source committed to the "
                        "journal."))
      << text;
  EXPECT_TRUE(has(text, "# TYPE ferry_source_events_total counter")) << text;
  EXPECT_TRUE(has(text, "# TYPE ferry_queue_depth gauge")) << text;
  EXPECT_NE(text.find("# HELP ferry_queue_depth "), std::string::npos) << text;
  size_t first = text.find("# TYPE ferry_source_events_total");
  EXPECT_EQ(text.find("# TYPE ferry_source_events_total", first + 1), std::string::npos) << text;
}

TEST(Metrics, LargeCountersAreExactAndFractionsShort) {
  Metrics m;
  m.declareInstance("s", "source");
  m.add("source_events_total", "s", 12345678);  // std::ostream would print 1.23457e+07
  m.set("ratio", "s", 0.1);
  const std::string text = m.render();
  EXPECT_TRUE(has(text, "ferry_source_events_total{source=\"s\"} 12345678")) << text;
  EXPECT_TRUE(has(text, "ferry_ratio{source=\"s\"} 0.1")) << text;
}

TEST(Metrics, LabelValuesAndPluginNamesAreEscaped) {
  Metrics m;
  m.declareInstance("we\"ird\\name", "sink");
  m.add("orders confirmed-total", "we\"ird\\name", 1);
  const std::string text = m.render();
  EXPECT_TRUE(has(text, "ferry_orders_confirmed_total{sink=\"we\\\"ird\\\\name\"} 1")) << text;
}

TEST(Metrics, HttpDurationsAreAHistogramByStatusCode) {
  Metrics m;
  m.declareInstance("dh", "source");
  m.observeHttp("dh", 200, 0.02);
  m.observeHttp("dh", 200, 3.0);
  m.observeHttp("dh", 503, 0.2);
  m.observeHttp("dh", 0, 30.0);
  const std::string text = m.render();
  EXPECT_TRUE(has(text, "# TYPE ferry_http_request_duration_seconds histogram")) << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_bucket{source=\"dh\",code=\"200\","
                        "le=\"0.025\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_bucket{source=\"dh\",code=\"200\","
                        "le=\"2.5\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_bucket{source=\"dh\",code=\"200\","
                        "le=\"5\"} 2"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_bucket{source=\"dh\",code=\"200\","
                        "le=\"+Inf\"} 2"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_sum{source=\"dh\",code=\"200\"} 3.02"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_count{source=\"dh\",code=\"503\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "ferry_http_request_duration_seconds_count{source=\"dh\",code=\"none\"} 1"))
      << text;
}

}  // namespace
}  // namespace ferry::core
