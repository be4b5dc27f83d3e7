// The loader against real libraries: good plugins built with the SDK, and one deliberately
// broken plugin per directory (see CMakeLists.txt). Each test checks the reason a caller would
// branch on and the words an operator would read.
#include "loader/Loader.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

const fs::path kGood = FERRY_TEST_GOOD_PLUGIN_DIR;
const fs::path kBroken = FERRY_TEST_BROKEN_PLUGIN_DIR;

// A minimal host for create()/fetch()/write(): records what the plugin says, refuses nothing.
struct Harness {
  std::string last_error;
  std::vector<std::string> logs;
  std::vector<std::string> emitted;  // "key@version"

  static Harness& of(ferry_host_ctx* ctx) { return *reinterpret_cast<Harness*>(ctx); }
  ferry_host_ctx* ctx() { return reinterpret_cast<ferry_host_ctx*>(this); }

  static std::string text(ferry_plugin_str s) { return std::string(s.ptr, s.len); }

  const ferry_host_api* api() const {
    static const ferry_host_api api = [] {
      ferry_host_api a{};
      a.abi_major = FERRY_ABI_MAJOR;
      a.abi_minor = FERRY_ABI_MINOR;
      a.struct_size = sizeof(ferry_host_api);
      a.log = [](ferry_host_ctx* c, ferry_log_level, ferry_plugin_str m) {
        of(c).logs.push_back(text(m));
      };
      a.set_error = [](ferry_host_ctx* c, ferry_plugin_str m) { of(c).last_error = text(m); };
      a.set_retry_after = [](ferry_host_ctx*, int64_t) {};
      a.emit = [](ferry_host_ctx* c, const ferry_item* item) {
        of(c).emitted.push_back(text(item->key) + "@" + text(item->version));
        return FERRY_EMIT_OK;
      };
      a.http_request = [](ferry_host_ctx*, const ferry_http_request*,
                          ferry_host_http_response** r) {
        *r = nullptr;
        return FERRY_HTTP_NO_RESPONSE;
      };
      a.http_release = [](ferry_host_ctx*, ferry_host_http_response*) {};
      a.rate_limit_define = [](ferry_host_ctx*, ferry_plugin_str, const ferry_rate_rule*,
                               size_t) {};
      a.rate_acquire = [](ferry_host_ctx*, ferry_plugin_str) { return FERRY_ACQUIRE_OK; };
      a.state_get = [](ferry_host_ctx*, ferry_plugin_str, ferry_receive_fn, void*) {
        return FERRY_STATE_ABSENT;
      };
      a.state_set = [](ferry_host_ctx*, ferry_plugin_str, ferry_plugin_str) {
        return FERRY_STATE_OK;
      };
      a.state_erase = [](ferry_host_ctx*, ferry_plugin_str) { return FERRY_STATE_OK; };
      a.shared_get = [](ferry_host_ctx*, ferry_plugin_str, ferry_plugin_str, ferry_receive_fn,
                        void*) { return FERRY_STATE_ABSENT; };
      a.shared_set = [](ferry_host_ctx*, ferry_plugin_str, ferry_plugin_str, ferry_plugin_str) {
        return FERRY_STATE_OK;
      };
      a.shared_lock = [](ferry_host_ctx*, ferry_plugin_str) {};
      a.shared_unlock = [](ferry_host_ctx*, ferry_plugin_str) {};
      a.counter_add = [](ferry_host_ctx*, ferry_plugin_str, double) {};
      a.gauge_set = [](ferry_host_ctx*, ferry_plugin_str, double) {};
      a.stopping = [](ferry_host_ctx*) { return 0; };
      a.journal_id = [](ferry_host_ctx*) { return ferry_host_str{"loader-test", 11}; };
      return a;
    }();
    return &api;
  }

  // One resolved option, as the host hands it over.
  static ferry_option_value option(const char* name, const char* value) {
    return {sizeof(ferry_option_value), {name, strlen(name)}, {value, strlen(value)}, 1};
  }

  std::unique_ptr<PluginInstance> create(std::shared_ptr<const Plugin> plugin,
                                         const std::string& name,
                                         const std::vector<ferry_option_value>& options = {}) {
    std::vector<const ferry_option_value*> pointers;
    for (const auto& o : options) pointers.push_back(&o);
    return PluginInstance::create(std::move(plugin), name, api(), ctx(), pointers,
                                  [this] { return last_error; });
  }
};

bool mapped(const fs::path& file) {
  std::ifstream maps("/proc/self/maps");
  std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  return text.find(file.string()) != std::string::npos;
}

// Loads `what` (a file, or a directory when `directory`) and returns the LoadError it must throw.
LoadError loadFailure(const fs::path& what, bool directory = false) {
  try {
    if (directory) {
      PluginRegistry::loadDirectory(what);
    } else {
      loadPlugin(what);
    }
  } catch (const LoadError& e) {
    return e;
  }
  ADD_FAILURE() << "loading " << what << " did not fail";
  return LoadError(LoadError::Reason::NotFound, "", "");
}

void expectWords(const std::string& message, std::initializer_list<std::string> words) {
  for (const auto& w : words)
    EXPECT_NE(message.find(w), std::string::npos) << "missing \"" << w << "\" in: " << message;
}

fs::path onlySo(const std::string& broken_case) {
  for (const auto& e : fs::directory_iterator(kBroken / broken_case))
    if (e.path().extension() == ".so") return e.path();
  ADD_FAILURE() << "no .so in " << kBroken / broken_case;
  return {};
}

TEST(Loader, LoadsTheGoodDirectoryInNameOrder) {
  auto registry = PluginRegistry::loadDirectory(kGood);
  EXPECT_EQ(registry.directory(), kGood);
  auto all = registry.all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->name(), "good_sink");
  EXPECT_EQ(all[1]->name(), "good_source");
  EXPECT_TRUE(all[0]->isSink());
  EXPECT_TRUE(all[1]->isSource());
  EXPECT_EQ(all[1]->file, kGood / "loader_good_source.so");
  EXPECT_STREQ(all[1]->descriptor->version, "1.2.3");
  EXPECT_EQ(registry.find("good_source"), all[1]);
  EXPECT_EQ(registry.find("missing"), nullptr);

  const auto& options = all[1]->options;
  ASSERT_EQ(options.size(), 10u);
  EXPECT_STREQ(options[0].name, "account");
  EXPECT_TRUE(options[0].required);
  EXPECT_STREQ(options[1].name, "api_key");
  EXPECT_TRUE(options[1].secret);
  EXPECT_EQ(options[4].type, OptionType::Duration);
  EXPECT_STREQ(options[5].choices, "buyer|supplier");
}

TEST(Loader, RelativePathIsMadeAbsolute) {
  const fs::path before = fs::current_path();
  fs::current_path(kGood.parent_path());
  std::shared_ptr<const Plugin> plugin;
  try {
    plugin = loadPlugin(kGood.filename() / "loader_good_sink.so");
  } catch (...) {
    fs::current_path(before);
    throw;
  }
  fs::current_path(before);
  EXPECT_EQ(plugin->file, kGood / "loader_good_sink.so");
  EXPECT_TRUE(plugin->file.is_absolute());
  EXPECT_TRUE(mapped(plugin->file));
}

TEST(Loader, OnlyRegularSoFilesOfADirectoryAreLoaded) {
  const fs::path dir =
      fs::temp_directory_path() / ("ferry-loader-test-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "subdir.so");  // a directory, not a library
  fs::copy_file(kGood / "loader_good_sink.so", dir / "sink.so");
  std::ofstream(dir / "README.txt") << "not a plugin\n";
  auto registry = PluginRegistry::loadDirectory(dir);
  ASSERT_EQ(registry.all().size(), 1u);
  EXPECT_EQ(registry.all()[0]->file, dir / "sink.so");
  registry = PluginRegistry();
  fs::remove_all(dir);
}

TEST(Loader, MissingFileIsNotFound) {
  auto e = loadFailure(kGood / "no_such_plugin.so");
  EXPECT_EQ(e.reason(), LoadError::Reason::NotFound);
  EXPECT_EQ(e.file(), (kGood / "no_such_plugin.so").string());
  expectWords(e.what(),
              {(kGood / "no_such_plugin.so").string() + ": no such plugin file", "check the path"});
}

TEST(Loader, MissingDirectoryIsNotFound) {
  auto e = loadFailure(kBroken / "no_such_dir", true);
  EXPECT_EQ(e.reason(), LoadError::Reason::NotFound);
  expectWords(e.what(), {(kBroken / "no_such_dir").string() + ": no such plugin directory",
                         "set plugin_dir in [host]"});
}

TEST(Loader, TextFileIsNotLoadableAndTheDlopenErrorIsShown) {
  const fs::path file = kBroken / "not_loadable" / "garbage.so";
  auto e = loadFailure(kBroken / "not_loadable", true);
  EXPECT_EQ(e.reason(), LoadError::Reason::NotLoadable);
  EXPECT_EQ(e.file(), file.string());
  expectWords(e.what(), {file.string() + ": cannot be loaded", "invalid ELF header",
                         "built for this platform"});
}

TEST(Loader, LibraryWithoutEntrySymbol) {
  const fs::path file = onlySo("missing_symbol");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::MissingSymbol);
  expectWords(e.what(), {file.string() + ": has no entry symbol ferry_plugin_entry",
                         "not a Ferry plugin", "FERRY_SOURCE_PLUGIN"});
  EXPECT_FALSE(mapped(file)) << "a refused library must be unloaded";
}

TEST(Loader, PluginBuiltForAbi1IsRefusedNamingBothVersions) {
  const fs::path file = onlySo("abi1");
  auto e = loadFailure(kBroken / "abi1", true);
  EXPECT_EQ(e.reason(), LoadError::Reason::AbiMismatch);
  EXPECT_EQ(std::string(e.what()),
            file.string() +
                ": was built for Ferry plugin ABI 1, this ferry loads plugins of ABI 2.1: rebuild "
                "the plugin against the ferry-dev SDK of this version");
  EXPECT_FALSE(mapped(file)) << "a refused library must be unloaded";
}

TEST(Loader, AnotherMajorIsRefusedNamingBothVersions) {
  const fs::path file = onlySo("abi_major");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::AbiMismatch);
  expectWords(e.what(), {file.string() + ": was built for Ferry plugin ABI 3",
                         "this ferry loads plugins of ABI 2.1", "rebuild the plugin"});
}

TEST(Loader, NewerMinorIsRefusedNamingBothVersions) {
  const fs::path file = onlySo("newer_minor");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::AbiMismatch);
  EXPECT_EQ(std::string(e.what()),
            file.string() +
                ": needs Ferry plugin ABI 2.2, this ferry provides ABI 2.1: upgrade ferry, or "
                "build the plugin with FERRY_PLUGIN_ABI_MINOR 1 if it can do without the newer "
                "parts");
}

TEST(Loader, PluginsDeclareTheAbiTheyNeed) {
  auto registry = PluginRegistry::loadDirectory(kGood);
  EXPECT_EQ(hostAbi(), "2.1");
  EXPECT_EQ(registry.find("good_sink")->abi(), "2.1");
}

TEST(Loader, ShortDescriptorSaysBothSizes) {
  const fs::path file = onlySo("short_descriptor");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::ShortDescriptor);
  const size_t v1 = offsetof(ferry_plugin_descriptor, sink) + sizeof(void*);  // ABI 2.0
  expectWords(e.what(), {file.string() + ": the plugin descriptor is 8 bytes",
                         "needs at least " + std::to_string(v1) + " bytes", "rebuild the plugin"});
}

TEST(Loader, NullDescriptor) {
  const fs::path file = onlySo("null_descriptor");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string() + ": bad plugin descriptor: the entry symbol returned NULL",
                         "bug in the plugin"});
}

TEST(Loader, BadPluginName) {
  const fs::path file = onlySo("bad_name");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string() + ": bad plugin descriptor",
                         "the plugin name is 'Bad Name!', it must match [a-z0-9_]+"});
}

TEST(Loader, SourceWithoutFetch) {
  const fs::path file = onlySo("no_fetch");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string(), "plugin 'hand_written' is a source with a NULL fetch"});
}

TEST(Loader, DuplicateOptionName) {
  const fs::path file = onlySo("duplicate_option");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string(), "option 'path' is declared twice"});
}

TEST(Loader, UnknownOptionType) {
  const fs::path file = onlySo("bad_option_type");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string(), "option 'retries' has the unknown type 42"});
}

TEST(Loader, ShortOptionDefinitions) {
  const fs::path file = onlySo("short_option");
  auto e = loadFailure(file);
  EXPECT_EQ(e.reason(), LoadError::Reason::BadDescriptor);
  expectWords(e.what(), {file.string(), "option #1 has struct_size 8",
                         "needs at least " + std::to_string(offsetof(ferry_option_def, flags) +
                                                            sizeof(uint32_t))});
}

TEST(Loader, DuplicatePluginNameNamesBothFiles) {
  const fs::path dir = kBroken / "duplicate_name";
  auto e = loadFailure(dir, true);
  EXPECT_EQ(e.reason(), LoadError::Reason::DuplicateName);
  EXPECT_EQ(e.file(), (dir / "loader_twin_b.so").string());
  expectWords(e.what(), {(dir / "loader_twin_b.so").string() + ": declares the plugin name 'twin'",
                         (dir / "loader_twin_a.so").string() + " declares too",
                         "remove one of the two files from " + dir.string()});
}

TEST(Loader, CreateFailureCarriesThePluginsMessage) {
  auto registry = PluginRegistry::loadDirectory(kBroken / "throwing_create");
  auto plugin = registry.find("throwing_source");
  ASSERT_NE(plugin, nullptr);
  Harness host;
  try {
    host.create(plugin, "tc-orders");
    FAIL() << "create() did not fail";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.reason(), LoadError::Reason::CreateFailed);
    EXPECT_EQ(std::string(e.what()),
              "tc-orders: plugin throwing_source (" + plugin->file.string() +
                  ") failed to start: cannot reach https://api.example.test: connection refused");
  }
}

TEST(Loader, InstanceOutlivesTheRegistryAndUnmapsLast) {
  Harness host;
  std::unique_ptr<PluginInstance> instance;
  fs::path file;
  {
    auto registry = PluginRegistry::loadDirectory(kGood);
    auto plugin = registry.find("good_source");
    ASSERT_NE(plugin, nullptr);
    file = plugin->file;
    instance = host.create(plugin, "orders", {Harness::option("account", "acme")});
  }  // registry and every Plugin handle except the instance's are gone

  ASSERT_TRUE(mapped(file)) << "the instance must keep its library mapped";
  ASSERT_NE(instance->source(), nullptr);
  EXPECT_EQ(host.logs, std::vector<std::string>{"good_source started for acme"});
  const std::string since = "2025-04-23T10:01:53.812Z";
  ferry_fetch_request request{sizeof(ferry_fetch_request), 0, 100, 0, {since.data(), since.size()}};
  ferry_fetch_result result{sizeof(ferry_fetch_result), UINT32_MAX};
  EXPECT_EQ(instance->source()->fetch(instance->handle(), &request, &result), FERRY_FETCH_OK);
  EXPECT_EQ(result.received, 2u);
  EXPECT_EQ(host.emitted, (std::vector<std::string>{"order-1@2025-04-23T10:01:53.812Z",
                                                    "order-2@2025-04-23T10:01:53.812Z"}));

  instance.reset();
  EXPECT_FALSE(mapped(file)) << "the library must be unmapped once its last instance is gone";
}

TEST(Loader, SinkInstanceWritesThroughTheTable) {
  auto registry = PluginRegistry::loadDirectory(kGood);
  Harness host;
  auto instance = host.create(registry.find("good_sink"), "erp", {Harness::option("target", "/tmp/out")});
  ASSERT_NE(instance->sink(), nullptr);
  EXPECT_EQ(instance->source(), nullptr);
  ferry_write_result result{sizeof(ferry_write_result), 0};
  EXPECT_EQ(instance->sink()->write(instance->handle(), nullptr, 0, &result), FERRY_WRITE_OK);
  EXPECT_EQ(host.logs, std::vector<std::string>{"wrote 0 events to /tmp/out"});
}

TEST(Loader, OptionTypeNames) {
  EXPECT_STREQ(optionTypeName(OptionType::String), "string");
  EXPECT_STREQ(optionTypeName(OptionType::Int), "int");
  EXPECT_STREQ(optionTypeName(OptionType::Bool), "bool");
  EXPECT_STREQ(optionTypeName(OptionType::Double), "double");
  EXPECT_STREQ(optionTypeName(OptionType::Duration), "duration");
  EXPECT_STREQ(optionTypeName(OptionType::Instant), "instant");
  EXPECT_STREQ(optionTypeName(OptionType::List), "list");
}

}  // namespace
}  // namespace ferry::core
