// The lease groups of a config (app/LeaseKeeper.h): sources of one request budget are leased
// together, so that one budget lives on one host; every other source and every sink alone.
#include <gtest/gtest.h>

#include "app/LeaseKeeper.h"

namespace ferry::core {
namespace {

InstanceConfig instance(const std::string& kind, const std::string& name, const std::string& plugin,
                        std::vector<std::pair<std::string, std::optional<std::string>>> options,
                        bool enabled = true) {
  InstanceConfig i;
  i.kind = kind;
  i.name = name;
  i.section = kind + "." + name;
  i.plugin = plugin;
  i.enabled = enabled;
  i.resolved = std::move(options);
  return i;
}

TEST(LeaseGroupsTest, SourcesOfOneBudgetShareAGroupAndEverySinkHasItsOwn) {
  Config config;
  config.sources = {
      instance("source", "berlin", "source_duckhub_orders",
               {{"base_url", "https://API.duckhub.example/v1"}, {"api_key", "k1"}}),
      instance("source", "paris", "source_duckhub_orders",
               {{"base_url", "https://api.duckhub.example/v1/"}, {"api_key", "k2"}}),
      instance("source", "staging", "source_duckhub_orders",
               {{"base_url", "https://staging.duckhub.example/v1"}, {"api_key", "k3"}}),
      instance("source", "tc-orders", "source_tradecloud_orders",
               {{"base_url", "https://api.tradecloud1.com/v2"}, {"email", "Buyer@Example.com"}}),
      instance("source", "tc-shipments", "source_tradecloud_shipments",
               {{"base_url", "https://api.tradecloud1.com/v2/"}, {"email", "buyer@example.com"}}),
      instance("source", "other-account", "source_tradecloud_orders",
               {{"base_url", "https://api.tradecloud1.com/v2"}, {"email", "other@example.com"}}),
      instance("source", "custom", "source_custom", {}),
      instance("source", "off", "source_duckhub_orders",
               {{"base_url", "https://api.duckhub.example/v1"}}, false),
  };
  config.sinks = {instance("sink", "erp", "sink_erp_csv", {}),
                  instance("sink", "db", "sink_sql", {}),
                  instance("sink", "old", "sink_sql", {}, false)};
  const auto groups = leaseGroups(config);
  const std::map<std::string, std::vector<std::string>> expected = {
      {"budget duckhub https://api.duckhub.example", {"berlin", "paris"}},
      {"budget duckhub https://staging.duckhub.example", {"staging"}},
      {"budget tradecloud https://api.tradecloud1.com/v2 buyer@example.com",
       {"tc-orders", "tc-shipments"}},
      {"budget tradecloud https://api.tradecloud1.com/v2 other@example.com", {"other-account"}},
      {"source custom", {"custom"}},
      {"sink erp", {"erp"}},
      {"sink db", {"db"}},
  };
  EXPECT_EQ(groups, expected);
}

}  // namespace
}  // namespace ferry::core
