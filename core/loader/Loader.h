// Loading plugin libraries with Boost.DLL and checking their descriptors before any other
// plugin code runs.
//
// Lifetime: a PluginLibrary stays mapped for as long as anything holds a shared_ptr to it: the
// registry, a Plugin, and every PluginInstance made from it. The host destroys instances before
// it drops the registry, and the library is unmapped only after its last instance is gone.
#pragma once

#include <ferry/abi.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/OptionSpec.h"

namespace ferry::core {

// Why a plugin could not be loaded or created. The message names the file and says what to do.
class LoadError : public std::runtime_error {
 public:
  enum class Reason {
    NotFound,         // the file or directory does not exist
    NotLoadable,      // dlopen refused it (the loader's message is included)
    MissingSymbol,    // no ferry_plugin_entry
    AbiMismatch,      // another major, or a newer minor than this host's (both versions named)
    ShortDescriptor,  // a descriptor or table shorter than the minor it declares needs
    BadDescriptor,    // NULL descriptor, bad kind, name, missing functions, bad option table
    DuplicateName,    // two files declare the same plugin name (both files named)
    CreateFailed      // create() returned non-OK (the plugin's message is included)
  };
  LoadError(Reason reason, std::string file, const std::string& message)
      : std::runtime_error(message), reason_(reason), file_(std::move(file)) {}
  Reason reason() const noexcept { return reason_; }
  const std::string& file() const noexcept { return file_; }

 private:
  Reason reason_;
  std::string file_;
};

class PluginLibrary;  // the mapped library (Boost.DLL), defined in Loader.cpp

// A loaded, checked plugin. The descriptor points into the library, which `library` keeps
// mapped.
struct Plugin {
  std::shared_ptr<PluginLibrary> library;
  const ferry_plugin_descriptor* descriptor = nullptr;
  std::filesystem::path file;  // absolute
  // The descriptor's option table, checked (names, types, no duplicates) and copied: read
  // options here, not through descriptor->options, whose entries may be larger when the plugin
  // was built against a newer minor. The strings still point into the library.
  std::vector<OptionSpec> options;

  std::string name() const { return descriptor->name; }
  std::string version() const { return descriptor->version; }
  std::string description() const {
    return descriptor->description != nullptr ? descriptor->description : "";
  }
  // The ABI the plugin declares, "2.0".
  std::string abi() const;
  bool isSource() const { return descriptor->kind == FERRY_KIND_SOURCE; }
  bool isSink() const { return descriptor->kind == FERRY_KIND_SINK; }
};

// The plugin ABI this host provides, "2.0".
std::string hostAbi();

// Opens one library (absolute path, RTLD_NOW | RTLD_LOCAL), calls its entry symbol and checks
// the descriptor. Throws LoadError.
std::shared_ptr<const Plugin> loadPlugin(const std::filesystem::path& file);

// Every plugin of a directory, by name.
class PluginRegistry {
 public:
  // Loads every regular file ending in the platform's module suffix (".so"), in name order.
  // Throws LoadError on the first file that fails, and for a duplicate plugin name.
  static PluginRegistry loadDirectory(const std::filesystem::path& dir);

  // nullptr when no plugin of that name was loaded.
  std::shared_ptr<const Plugin> find(const std::string& name) const;
  // In name order.
  std::vector<std::shared_ptr<const Plugin>> all() const;
  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::shared_ptr<const Plugin>> plugins_;
};

// One instance made by a plugin's create(). Destroying it calls the plugin's destroy() and then
// releases its hold on the library.
class PluginInstance {
 public:
  // Calls descriptor->create. `last_error` returns the message the plugin gave via set_error,
  // used in the LoadError(CreateFailed) naming the instance and the file.
  static std::unique_ptr<PluginInstance> create(std::shared_ptr<const Plugin> plugin,
                                                const std::string& instance_name,
                                                const ferry_host_api* api, ferry_host_ctx* ctx,
                                                const std::vector<const ferry_option_value*>& options,
                                                const std::function<std::string()>& last_error);
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  ferry_plugin_instance* handle() const { return handle_; }
  const Plugin& plugin() const { return *plugin_; }
  const ferry_source_api* source() const { return plugin_->descriptor->source; }
  const ferry_sink_api* sink() const { return plugin_->descriptor->sink; }

 private:
  PluginInstance(std::shared_ptr<const Plugin> plugin, ferry_plugin_instance* handle)
      : plugin_(std::move(plugin)), handle_(handle) {}
  std::shared_ptr<const Plugin> plugin_;
  ferry_plugin_instance* handle_;
};

}  // namespace ferry::core
