// The configuration against real INI files in a temp dir and the real plugins built by
// tests/loader (good_source and good_sink declare every option type, a secret and choices).
// Each failure test checks the message an operator reads: file, section, key, and the fix.
#include <Poco/Environment.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/Config.h"
#include "loader/Loader.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

const char* const kSecret = "s3cr3t-key-value";

// A valid config; tests append to it or replace lines in it.
const std::string kValid = std::string(R"([host]
# a comment the way most INI files write them
journal = data/journal.db
log_level = debug

[source.orders]
plugin = good_source
account = acme
api_key = )") + kSecret + R"(
interval = 30s
start_from = 2025-04-23T12:01:53.5+02:00

[sink.erp]
plugin = good_sink
target = /srv/erp
from = orders
)";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

class ConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    plugins_ = new PluginRegistry(PluginRegistry::loadDirectory(FERRY_TEST_GOOD_PLUGIN_DIR));
  }
  static void TearDownTestSuite() {
    delete plugins_;
    plugins_ = nullptr;
  }

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry-config-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text) {
    const fs::path file = dir_ / "ferry.ini";
    std::ofstream(file) << text;
    return file.string();
  }

  Config loadValid(const std::string& text, const PluginRegistry* plugins = nullptr) {
    Config config = loadConfig(write(text));
    validate(config, plugins != nullptr ? *plugins : *plugins_);
    return config;
  }

  // The ConfigError loading (and validating) `text` must throw.
  std::string error(const std::string& text, const PluginRegistry* plugins = nullptr) {
    try {
      loadValid(text, plugins);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ConfigError for:\n" << text;
    return "";
  }

  std::string file() const { return (dir_ / "ferry.ini").string(); }

  static PluginRegistry* plugins_;
  fs::path dir_;
};

PluginRegistry* ConfigTest::plugins_ = nullptr;

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "missing \"" << (part) << "\" in: " << (text)

TEST_F(ConfigTest, ValidConfigResolvesEveryValueAndDefault) {
  Config config = loadValid(kValid);
  EXPECT_EQ(config.file, file());

  EXPECT_EQ(config.host.journal, (dir_ / "data/journal.db").string());
  EXPECT_EQ(config.host.plugin_dir, "");
  EXPECT_EQ(config.host.log_level, "debug");
  EXPECT_EQ(config.host.log_file, "");
  EXPECT_EQ(config.host.retention_ms, 7 * 24 * 3600 * 1000LL);
  EXPECT_EQ(config.host.retry_initial_ms, 1000);
  EXPECT_EQ(config.host.retry_max_ms, 300000);
  EXPECT_EQ(config.host.commit_pages, 20);
  EXPECT_EQ(config.host.commit_interval_ms, 500);
  EXPECT_EQ(config.host.log_format, "text");
  EXPECT_EQ(config.host.unhealthy_after_ms, 300000);

  ASSERT_EQ(config.sources.size(), 1u);
  const InstanceConfig& source = config.sources[0];
  EXPECT_EQ(source.kind, "source");
  EXPECT_EQ(source.name, "orders");
  EXPECT_EQ(source.section, "source.orders");
  EXPECT_EQ(source.plugin, "good_source");
  EXPECT_TRUE(source.enabled);
  EXPECT_EQ(source.interval_ms, 30000);
  EXPECT_EQ(source.lookback_ms, 5000);
  EXPECT_EQ(source.start_from, "2025-04-23T10:01:53.500Z");
  EXPECT_EQ(source.page_size, 50) << "the plugin's redeclared default wins over the host's 100";
  using Resolved = std::vector<std::pair<std::string, std::optional<std::string>>>;
  EXPECT_EQ(source.resolved, (Resolved{{"interval", "30000"},
                                       {"lookback", "5000"},
                                       {"start_from", "2025-04-23T10:01:53.500Z"},
                                       {"page_size", "50"},
                                       {"set_aside_after", "3"},
                                       {"clock_skew", "3600000"},
                                       {"account", "acme"},
                                       {"api_key", kSecret},
                                       {"max_pages", "10"},
                                       {"verbose", "false"},
                                       {"timeout", "30000"},
                                       {"role", "buyer"},
                                       {"not_before", std::nullopt},
                                       {"ratio", "0.5"},
                                       {"pin", std::nullopt}}));
  EXPECT_EQ(source.secret_values, std::vector<std::string>{kSecret});

  ASSERT_EQ(config.sinks.size(), 1u);
  const InstanceConfig& sink = config.sinks[0];
  EXPECT_EQ(sink.from, std::vector<std::string>{"orders"});
  EXPECT_EQ(sink.batch_size, 100);
  EXPECT_EQ(sink.batch_delay_ms, 1000);
  EXPECT_TRUE(sink.skip_echo);
  EXPECT_EQ(sink.value("format"), "csv");
  EXPECT_EQ(sink.value("target"), "/srv/erp");
  EXPECT_EQ(sink.value("tags"), std::nullopt);
  EXPECT_EQ(sink.value("no_such_option"), std::nullopt);
}

TEST_F(ConfigTest, ValuesAreNormalisedByType) {
  std::string text = kValid + "tags =  north , ,south \nbatch_delay = 250ms\nskip_echo = Off\n";
  text = replace(text, "account = acme\n",
                 "account = acme\nverbose = yes\ntimeout = 2m\nmax_pages = +7\nrole = supplier\n"
                 "not_before = 2025-01-01 00:00:00+0100\nratio = 1.25\npin = 12345678\n");
  Config config = loadValid(text);
  const InstanceConfig& source = config.sources[0];
  EXPECT_EQ(source.value("verbose"), "true");
  EXPECT_EQ(source.value("timeout"), "120000");
  EXPECT_EQ(source.value("max_pages"), "7");
  EXPECT_EQ(source.value("role"), "supplier");
  EXPECT_EQ(source.value("not_before"), "2024-12-31T23:00:00.000Z");
  EXPECT_EQ(source.value("ratio"), "1.25");
  EXPECT_EQ(source.secret_values, (std::vector<std::string>{"12345678", kSecret}));
  const InstanceConfig& sink = config.sinks[0];
  EXPECT_EQ(sink.value("tags"), "north,south");
  EXPECT_EQ(sink.batch_delay_ms, 250);
  EXPECT_FALSE(sink.skip_echo);
}

TEST_F(ConfigTest, StartFromNowIsTheCurrentUtcInstant) {
  const int64_t before = nowMs();
  Config config = loadValid(replace(kValid, "start_from = 2025-04-23T12:01:53.5+02:00\n", ""));
  const int64_t after = nowMs();
  auto ns = parseInstantNs(config.sources[0].start_from);
  ASSERT_TRUE(ns.has_value()) << config.sources[0].start_from;
  EXPECT_GE(*ns / 1000000, before - 1);
  EXPECT_LE(*ns / 1000000, after);
  EXPECT_EQ(config.sources[0].start_from.back(), 'Z');
}

TEST_F(ConfigTest, UnknownKeyListsTheAllowedKeys) {
  std::string message =
      error(replace(kValid, "account = acme\n", "account = acme\ncolour = red\n"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] colour: unknown key for plugin good_source; allowed "
                         "keys: plugin, enabled, interval, lookback, start_from, page_size, "
                         "set_aside_after, clock_skew, "
                         "account, api_key, max_pages, verbose, timeout, role, not_before, ratio, "
                         "pin");
}

TEST_F(ConfigTest, UnknownHostKeyListsTheAllowedKeys) {
  std::string message = error(replace(kValid, "journal =", "jornal ="));
  EXPECT_EQ(message, file() +
                         ": [host] jornal: unknown key; allowed keys: journal, host_id, "
                         "lease_time, plugin_dir, log_level, log_file, log_format, retention, "
                         "retry_initial, retry_max, commit_pages, commit_interval, workers, "
                         "include, admin_listen, unhealthy_after");
}

TEST_F(ConfigTest, LeaseTimeOutsideThreeSecondsToTenMinutesIsRefusedNamingTheKey) {
  EXPECT_CONTAINS(error(replace(kValid, "journal =", "lease_time = 1s\njournal =")),
                  file() + ": [host] lease_time: must be between 3s and 10m, got 1s");
  EXPECT_CONTAINS(error(replace(kValid, "journal =", "lease_time = 11m\njournal =")),
                  file() + ": [host] lease_time: must be between 3s and 10m, got 11m");
}

TEST_F(ConfigTest, WorkersOutsideOneTo24AreRefusedNamingTheKey) {
  EXPECT_EQ(error(replace(kValid, "journal =", "workers = 0\njournal =")),
            file() + ": [host] workers: must be at least 1; raise the value or remove the key "
                     "for the default");
  EXPECT_NE(error(replace(kValid, "journal =", "workers = 25\njournal =")).find(
                ": [host] workers: at most 24"),
            std::string::npos);
}

TEST_F(ConfigTest, TypoInASectionName) {
  std::string message = error(replace(kValid, "[source.orders]", "[souce.orders]"));
  EXPECT_CONTAINS(message, file() + ": [souce.orders]: unknown section");
  EXPECT_CONTAINS(message, "allowed sections are [host], [source.<name>] and [sink.<name>]");
}

TEST_F(ConfigTest, InvalidInstanceName) {
  std::string message = error(replace(kValid, "[sink.erp]", "[sink.erp files]"));
  EXPECT_CONTAINS(message, file() + ": [sink.erp files]: invalid instance name 'erp files'");
  EXPECT_CONTAINS(message, "letters, digits, '_' and '-'");
}

TEST_F(ConfigTest, MissingRequiredOption) {
  std::string message = error(replace(kValid, "account = acme\n", ""));
  EXPECT_EQ(message, file() +
                         ": [source.orders] account: required option is not set; add `account = "
                         "…` to [source.orders] (the remote account id)");
}

TEST_F(ConfigTest, WrongInteger) {
  std::string message = error(kValid + "batch_size = ten\n");
  EXPECT_EQ(message, file() +
                         ": [sink.erp] batch_size: 'ten' is not an integer; write a whole number, "
                         "e.g. 100");
}

TEST_F(ConfigTest, WrongBool) {
  std::string message =
      error(replace(kValid, "account = acme\n", "account = acme\nverbose = maybe\n"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] verbose: 'maybe' is not a bool; write true or false "
                         "(or yes/no, on/off, 1/0)");
}

TEST_F(ConfigTest, WrongDuration) {
  std::string message = error(replace(kValid, "interval = 30s", "interval = 5 minutes"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] interval: '5 minutes' is not a duration; write e.g. "
                         "250ms, 20s, 5m, 1h or 2d");
}

TEST_F(ConfigTest, InstantWithoutZone) {
  std::string message = error(
      replace(kValid, "account = acme\n", "account = acme\nnot_before = 2025-04-23T10:00:00\n"));
  EXPECT_CONTAINS(message, file() +
                               ": [source.orders] not_before: '2025-04-23T10:00:00' is not "
                               "an instant with a time zone");
  EXPECT_CONTAINS(message, "write e.g. 2025-04-23T10:01:53Z");
}

TEST_F(ConfigTest, ValueOutsideChoices) {
  std::string message = error(kValid + "format = xlsx\n");
  EXPECT_EQ(message, file() +
                         ": [sink.erp] format: 'xlsx' is not one of csv|tsv; choose one of: csv, "
                         "tsv");
}

TEST_F(ConfigTest, HostLogLevelOutsideChoices) {
  std::string message = error(replace(kValid, "log_level = debug", "log_level = verbose"));
  EXPECT_CONTAINS(message, file() +
                               ": [host] log_level: 'verbose' is not one of "
                               "debug|info|warning|error");
}

TEST_F(ConfigTest, HostHealthAndLogFormatSettings) {
  Config config =
      loadValid(replace(kValid, "log_level = debug",
                        "log_level = debug\nlog_format = json\nunhealthy_after = 90s"));
  EXPECT_EQ(config.host.log_format, "json");
  EXPECT_EQ(config.host.unhealthy_after_ms, 90000);
  EXPECT_CONTAINS(error(replace(kValid, "log_level = debug", "log_level = debug\nlog_format = xml")),
                  file() + ": [host] log_format: 'xml' is not one of text|json");
  EXPECT_CONTAINS(error(replace(kValid, "log_level = debug",
                                "log_level = debug\nunhealthy_after = 0s")),
                  file() + ": [host] unhealthy_after: must be at least 1");
  EXPECT_CONTAINS(error(replace(kValid, "log_level = debug",
                                "log_level = debug\nunhealthy_after = soon")),
                  file() + ": [host] unhealthy_after:");
}

TEST_F(ConfigTest, UnknownPluginListsTheAvailableOnes) {
  std::string message = error(replace(kValid, "plugin = good_source", "plugin = good_sorce"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] plugin: unknown plugin 'good_sorce'; available "
                         "plugins: good_sink, good_source (in " FERRY_TEST_GOOD_PLUGIN_DIR ")");
}

TEST_F(ConfigTest, PluginOfTheWrongKind) {
  std::string message = error(replace(kValid, "plugin = good_source", "plugin = good_sink"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] plugin: plugin good_sink is a sink, but "
                         "[source.orders] needs a source plugin; use one of: good_source");
}

TEST_F(ConfigTest, FromNamesAnUnknownSource) {
  std::string message = error(replace(kValid, "from = orders", "from = orders, invoices"));
  EXPECT_EQ(message, file() +
                         ": [sink.erp] from: no source named 'invoices'; configured sources: "
                         "orders");
}

TEST_F(ConfigTest, EnvironmentVariableIsExpanded) {
  ::setenv("FERRY_TEST_API_KEY", "from-the-env-1234", 1);
  Config config = loadValid(replace(kValid, std::string("api_key = ") + kSecret,
                                    "api_key = ${system.env.FERRY_TEST_API_KEY}"));
  ::unsetenv("FERRY_TEST_API_KEY");
  EXPECT_EQ(config.sources[0].value("api_key"), "from-the-env-1234");
  EXPECT_EQ(config.sources[0].raw.at("api_key"), "from-the-env-1234");
  EXPECT_EQ(config.sources[0].secret_values, std::vector<std::string>{"from-the-env-1234"});
}

TEST_F(ConfigTest, UnsetEnvironmentVariable) {
  ::unsetenv("FERRY_TEST_NOT_SET");
  std::string message = error(replace(kValid, std::string("api_key = ") + kSecret,
                                      "api_key = prefix-${system.env.FERRY_TEST_NOT_SET}"));
  EXPECT_CONTAINS(message, file() +
                               ": [source.orders] api_key: environment variable "
                               "FERRY_TEST_NOT_SET is not set; set it in the environment");
}

TEST_F(ConfigTest, SecretWithABadValueIsNeverPrinted) {
  std::string message =
      error(replace(kValid, "account = acme\n", "account = acme\npin = 12ab-hunter2\n"));
  EXPECT_EQ(message, file() +
                         ": [source.orders] pin: invalid value (hidden: secret option); write a "
                         "whole number, e.g. 100");
  EXPECT_EQ(message.find("hunter2"), std::string::npos);
}

TEST_F(ConfigTest, SecretPastedIntoAnotherOptionIsRedacted) {
  // The operator pasted the API key into the wrong line: the error about that line must not
  // print the key it was given.
  std::string message = error(replace(
      kValid, "account = acme\n", std::string("account = acme\nmax_pages = ") + kSecret + "\n"));
  EXPECT_CONTAINS(message, file() + ": [source.orders] max_pages: '***' is not an integer");
  EXPECT_EQ(message.find(kSecret), std::string::npos) << message;
}

// A secret this short would be masked wherever its text occurs in a message (a one-letter one
// turned "expected" into "e***pected"), and is no credential anyway: refused, never shown.
TEST_F(ConfigTest, ImplausiblyShortSecretIsRefusedWithoutItsValue) {
  for (const std::string value : {"e", "Zx9Qv", "1234567"}) {
    std::string message = error(replace(kValid, std::string("api_key = ") + kSecret,
                                        "api_key = " + value));
    EXPECT_EQ(message, file() + ": [source.orders] api_key: the secret is shorter than 8 "
                                "characters; use the real credential (a secret must have at least "
                                "8 characters, or it would be masked wherever its text occurs in "
                                "a message)");
    EXPECT_EQ(message.find("= " + value), std::string::npos) << message;
  }
  // Eight characters (not bytes) are enough: "geheim-ü" is 8 characters, 9 bytes.
  std::string text = replace(kValid, "account = acme\n", "account = acme\npin = 12345678\n");
  EXPECT_EQ(loadValid(text).sources[0].value("pin"), "12345678");
  const std::string umlaut = "geheim-\xC3\xBC";
  text = replace(kValid, std::string("api_key = ") + kSecret, "api_key = " + umlaut);
  EXPECT_EQ(loadValid(text).sources[0].value("api_key"), umlaut);
  EXPECT_CONTAINS(error(replace(kValid, std::string("api_key = ") + kSecret, "api_key = geheim-")),
                  "[source.orders] api_key: the secret is shorter than 8 characters");
}

// Every part of a secret is masked on its own, so that an endpoint echoing one header value or
// the token inside it does not reveal it: the items of the value (';' or ',' between them), the
// text after an item's ':' or '=', and that text's last word. Parts under 8 characters are too
// likely to occur in unrelated text and stay unmasked.
TEST_F(ConfigTest, SecretPartsAreMaskedOnTheirOwn) {
  const std::string headers = "Authorization: Bearer tok-4f9a8b7c; X-Api-Key: key-09876543, "
                              "X-Tenant: 7";
  Config config = loadValid(replace(kValid, std::string("api_key = ") + kSecret,
                                    "api_key = " + headers));
  const auto& secrets = config.sources[0].secret_values;
  for (const std::string part : {headers, std::string("Bearer tok-4f9a8b7c"),
                                 std::string("tok-4f9a8b7c"), std::string("key-09876543"),
                                 std::string("Authorization: Bearer tok-4f9a8b7c"),
                                 std::string("X-Tenant: 7")})
    EXPECT_NE(std::find(secrets.begin(), secrets.end(), part), secrets.end()) << part;
  for (const std::string part : {"7", "Bearer"})
    EXPECT_EQ(std::find(secrets.begin(), secrets.end(), part), secrets.end()) << part;
}

// A URL's credentials are secret in any option: the user-info and the password are masked, and a
// password too short to mask safely is refused like a short secret.
TEST_F(ConfigTest, UrlCredentialsAreSecretInEveryOption) {
  Config config = loadValid(replace(kValid, "account = acme",
                                    "account = https://hook:pw-55667788@example.com/x"));
  const auto& secrets = config.sources[0].secret_values;
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "pw-55667788"), secrets.end());
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "hook:pw-55667788"), secrets.end());
  EXPECT_EQ(std::find(secrets.begin(), secrets.end(), "hook"), secrets.end());

  std::string message =
      error(replace(kValid, "account = acme", "account = https://hook:pw@example.com/x"));
  EXPECT_EQ(message, file() + ": [source.orders] account: the password in the URL is shorter "
                              "than 8 characters; use the real credential (a secret must have at "
                              "least 8 characters, or it would be masked wherever its text occurs "
                              "in a message)");
}

TEST_F(ConfigTest, RelativePathsAreResolvedAgainstTheConfigDirectory) {
  std::string text =
      replace(kValid, "log_level = debug",
              "log_level = debug\nplugin_dir = ../plugins\nlog_file = /var/log/f.log");
  Config config = loadConfig(write(text));
  EXPECT_EQ(config.host.journal, (dir_ / "data" / "journal.db").string());
  EXPECT_EQ(config.host.plugin_dir, (dir_.parent_path() / "plugins").string());
  EXPECT_EQ(config.host.log_file, "/var/log/f.log");

  // The directory of the file counts, not the current directory.
  const fs::path before = fs::current_path();
  fs::current_path("/");
  Config again = loadConfig(file());
  fs::current_path(before);
  EXPECT_EQ(again.host.journal, (dir_ / "data" / "journal.db").string());
}

TEST_F(ConfigTest, DefaultJournalIsNextToTheConfig) {
  Config config = loadValid(replace(kValid, "journal = data/journal.db\n", ""));
  EXPECT_EQ(config.host.journal, (dir_ / "ferry-journal.db").string());
  EXPECT_EQ(config.host.log_level, "debug");
}

// A PostgreSQL journal is a URL, not a path; its password may come from the environment, must be
// long enough to be masked, and never shows in a message. host_id defaults to the hostname.
TEST_F(ConfigTest, APostgresJournalIsAUrlWithASecretPasswordAndAHostId) {
  ::setenv("FERRY_TEST_PG_PASSWORD", "pg-Passw0rd-from-env", 1);
  Config config = loadValid(replace(
      kValid, "journal = data/journal.db",
      "journal = postgresql://ferry:${system.env.FERRY_TEST_PG_PASSWORD}@db1:5432/ferry\n"
      "host_id = erp-host-2"));
  ::unsetenv("FERRY_TEST_PG_PASSWORD");
  EXPECT_EQ(config.host.journal, "postgresql://ferry:pg-Passw0rd-from-env@db1:5432/ferry");
  EXPECT_EQ(config.host.host_id, "erp-host-2");

  Config by_default = loadValid(kValid);
  EXPECT_EQ(by_default.host.host_id, Poco::Environment::nodeName().substr(0, 40));

  std::string message =
      error(replace(kValid, "journal = data/journal.db", "journal = postgresql://ferry:short@db1/f"));
  EXPECT_CONTAINS(message, file() + ": [host] journal: the password in the URL is shorter than 8");
  EXPECT_EQ(message.find("short@"), std::string::npos) << message;
  message = error(replace(kValid, "journal = data/journal.db", "journal = mysql://db1/ferry"));
  EXPECT_CONTAINS(message, file() + ": [host] journal: 'mysql://' is no journal ferry knows");
  message = error(replace(kValid, "journal = data/journal.db", "journal = j.db\nhost_id = a b"));
  EXPECT_CONTAINS(message, file() + ": [host] host_id: 'a b' must be 1 to 40 letters");
}

TEST_F(ConfigTest, DisabledInstanceIsNotValidatedButNeedsAPlugin) {
  // A disabled instance may name a plugin that is not installed and keys it does not know: it
  // is kept for later, not run, so only the file's structure is checked.
  const std::string disabled =
      "[source.old]\nplugin = retired_plugin\nenabled = no\ncolour = red\n";
  Config config = loadValid(kValid + disabled);
  ASSERT_EQ(config.sources.size(), 2u);
  EXPECT_EQ(config.sources[1].name, "old");
  EXPECT_FALSE(config.sources[1].enabled);
  EXPECT_TRUE(config.sources[1].resolved.empty());
  EXPECT_EQ(config.sources[1].raw.at("colour"), "red");

  std::string message = error(kValid + "[source.old]\nenabled = false\ncolour = red\n");
  EXPECT_EQ(message, file() +
                         ": [source.old] plugin: missing; add `plugin = <name>` naming the source "
                         "plugin this instance runs");
}

TEST_F(ConfigTest, EnabledMustBeABool) {
  std::string message =
      error(replace(kValid, "target = /srv/erp", "target = /srv/erp\nenabled = sometimes"));
  EXPECT_CONTAINS(message, file() + ": [sink.erp] enabled: 'sometimes' is not a bool");
}

TEST_F(ConfigTest, InstanceNamesAreUniqueAcrossSourcesAndSinks) {
  std::string message = error(kValid + "[sink.orders]\nplugin = good_sink\ntarget = /x\n");
  EXPECT_EQ(message, file() +
                         ": [sink.orders]: the name 'orders' is already used by [source.orders]; "
                         "instance names must be unique across sources and sinks: rename one");
}

TEST_F(ConfigTest, KeyGivenTwice) {
  std::string message =
      error(replace(kValid, "account = acme\n", "account = acme\naccount = acme2\n"));
  EXPECT_CONTAINS(message, file() + ": [source.orders] account: set twice (lines 8 and 9)");
}

TEST_F(ConfigTest, KeyOutsideAnySection) {
  std::string message = error("journal = x.db\n" + kValid);
  EXPECT_CONTAINS(message, file() + ", line 1: journal is outside of any section");
}

TEST_F(ConfigTest, MissingFile) {
  try {
    loadConfig((dir_ / "absent.ini").string());
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "absent.ini").string() +
                                         ": cannot read the configuration file (no such file); "
                                         "pass the path of a readable file");
  }
}

TEST_F(ConfigTest, PluginRedeclaringAHostSettingWithAnotherTypeIsNamed) {
  PluginRegistry broken =
      PluginRegistry::loadDirectory(fs::path(FERRY_TEST_BROKEN_PLUGIN_DIR) / "redeclare");
  std::string message = error("[source.poll]\nplugin = redeclare_source\n", &broken);
  EXPECT_CONTAINS(message, file() + ": [source.poll] plugin: plugin redeclare_source (");
  EXPECT_CONTAINS(message,
                  "redeclare/loader_broken_redeclare.so) redeclares the host setting "
                  "'interval' as int, but it is a duration; this is a bug in the plugin");
}

TEST(NormaliseOption, BoolListInstantAndSecretChoices) {
  OptionSpec b{"flag", OptionType::Bool};
  for (const char* yes : {"true", "YES", "on", "1"})
    EXPECT_EQ(normaliseOption(b, yes, "w"), "true");
  for (const char* no : {"false", "No", "OFF", "0"})
    EXPECT_EQ(normaliseOption(b, no, "w"), "false");

  OptionSpec l{"l", OptionType::List, nullptr, false, false, "", "a|b|c"};
  EXPECT_EQ(normaliseOption(l, " a ,c,  b", "w"), "a,c,b");
  try {
    normaliseOption(l, "a, d", "f: [s] l");
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "f: [s] l: 'd' is not one of a|b|c; choose one of: a, b, c");
  }

  OptionSpec i{"t", OptionType::Instant};
  EXPECT_EQ(normaliseOption(i, "2025-04-23T10:01:53.812345Z", "w"), "2025-04-23T10:01:53.812Z");

  OptionSpec s{"role", OptionType::String, nullptr, false, true, "", "x|y"};
  try {
    normaliseOption(s, "topsecret", "f: [s] role");
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "f: [s] role: invalid value (hidden: secret option); choose one of: x, y");
  }
}

}  // namespace
}  // namespace ferry::core

namespace ferry::core {
namespace {

// [host] include: more [source.*] and [sink.*] sections from a folder, in name order, each error
// naming the file it is in.
class IncludeTest : public ConfigTest {
 protected:
  void writeIn(const std::string& relative, const std::string& text) {
    fs::create_directories((dir_ / relative).parent_path());
    std::ofstream(dir_ / relative) << text;
  }
  static std::string host(const std::string& include) {
    return "[host]\njournal = j.db\ninclude = " + include + "\n";
  }
  static std::string sink(const std::string& name, const std::string& extra = "") {
    return "[sink." + name + "]\nplugin = good_sink\ntarget = /srv/" + name + "\n" + extra;
  }
  static std::string source(const std::string& name) {
    return "[source." + name + "]\nplugin = good_source\naccount = " + name +
           "\napi_key = secret-key-" + name + "\n";
  }
};

TEST_F(IncludeTest, SectionsComeFromEveryFileOfTheFolderInNameOrder) {
  writeIn("conf.d/20-sinks.ini", sink("erp", "from = venue-a, venue-b\n"));
  writeIn("conf.d/10-venues.ini", source("venue-a") + source("venue-b"));
  writeIn("conf.d/notes.txt", "not ini");
  Config config = loadValid(host("conf.d") + source("main"));
  ASSERT_EQ(config.sources.size(), 3u);
  EXPECT_EQ(config.sources[0].name, "main");
  EXPECT_EQ(config.sources[1].name, "venue-a");
  EXPECT_EQ(config.sources[1].file, (dir_ / "conf.d/10-venues.ini").string());
  ASSERT_EQ(config.sinks.size(), 1u);
  EXPECT_EQ(config.sinks[0].from, (std::vector<std::string>{"venue-a", "venue-b"}));
  EXPECT_EQ(loadValid(host("conf.d/1*.ini")).sources.size(), 2u) << "a pattern";
}

TEST_F(IncludeTest, ErrorsNameTheIncludedFile) {
  const std::string sinks = (dir_ / "conf.d/sinks.ini").string();
  writeIn("conf.d/sinks.ini", sink("erp", "colour = red\n"));
  EXPECT_CONTAINS(error(host("conf.d")), sinks + ": [sink.erp] colour: unknown key");

  writeIn("conf.d/sinks.ini", sink("erp", "from = nowhere\n"));
  EXPECT_CONTAINS(error(host("conf.d")), sinks + ": [sink.erp] from: no source named 'nowhere'");

  writeIn("conf.d/sinks.ini", sink("main"));
  EXPECT_CONTAINS(error(host("conf.d") + source("main")),
                  sinks + ": [sink.main]: the name 'main' is already used by [source.main] in " +
                      file());

  writeIn("conf.d/sinks.ini", "[host]\nlog_level = debug\n");
  EXPECT_CONTAINS(error(host("conf.d")), sinks + ": [host]: only the main config file");

  EXPECT_CONTAINS(error(host("missing.d")), file() + ": [host] include: 'missing.d' is neither");
}

TEST_F(IncludeTest, ThousandsOfSectionsLoadAndValidate) {
  std::string venues;
  for (int i = 0; i < 2000; ++i) venues += source("v" + std::to_string(i));
  writeIn("conf.d/venues.ini", venues);
  Config config = loadValid(host("conf.d") + sink("erp"));
  EXPECT_EQ(config.sources.size(), 2000u);
  EXPECT_FALSE(config.sources.back().resolved.empty()) << "validated like the others";
}

}  // namespace
}  // namespace ferry::core
