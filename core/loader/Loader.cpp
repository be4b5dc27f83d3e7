#include "loader/Loader.h"

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <set>
#include <system_error>

#include "services/Platform.h"

namespace ferry::core {

namespace fs = std::filesystem;

// Owns the mapping. Everything the plugin handed us (descriptor, option table, function
// pointers, instances) points into it, so it is only ever held through shared_ptr and released
// last.
class PluginLibrary {
 public:
  PluginLibrary(const fs::path& file, boost::dll::load_mode::type mode) : library_(file, mode) {}
  boost::dll::shared_library& library() { return library_; }

 private:
  boost::dll::shared_library library_;
};

namespace {

// The sizes of the 2.0 layouts: anything smaller would make us read past the plugin's struct, so
// it is refused before a field beyond it is touched. Fields a later minor appends are read only
// after FERRY_HAS_FIELD.
constexpr size_t kDescriptorSize =
    offsetof(ferry_plugin_descriptor, sink) + sizeof(ferry_plugin_descriptor::sink);
constexpr size_t kOptionDefSize =
    offsetof(ferry_option_def, flags) + sizeof(ferry_option_def::flags);
constexpr size_t kSourceApiSize =
    offsetof(ferry_source_api, check) + sizeof(ferry_source_api::check);
constexpr size_t kSinkApiSize = offsetof(ferry_sink_api, check) + sizeof(ferry_sink_api::check);

// "2.0"
std::string abiText(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}
const std::string kHostAbi = abiText(FERRY_ABI_MAJOR, FERRY_ABI_MINOR);

const char* const kRebuild = "rebuild the plugin against the ferry-dev SDK of this version";

bool isIdentifier(const char* s) {
  if (s == nullptr || *s == '\0') return false;
  for (; *s != '\0'; ++s) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string quoted(const char* s) { return s == nullptr ? "NULL" : "'" + std::string(s) + "'"; }

[[noreturn]] void badDescriptor(const fs::path& file, const std::string& problem) {
  throw LoadError(LoadError::Reason::BadDescriptor, file.string(),
                  file.string() + ": bad plugin descriptor: " + problem +
                      "; this is a bug in the plugin: fix it and " + kRebuild +
                      " (or remove the file from the plugin directory)");
}

OptionType optionType(ferry_option_type type) {
  switch (type) {
    case FERRY_OPT_STRING: return OptionType::String;
    case FERRY_OPT_INT: return OptionType::Int;
    case FERRY_OPT_BOOL: return OptionType::Bool;
    case FERRY_OPT_DOUBLE: return OptionType::Double;
    case FERRY_OPT_DURATION: return OptionType::Duration;
    case FERRY_OPT_INSTANT: return OptionType::Instant;
    case FERRY_OPT_LIST: return OptionType::List;
  }
  return OptionType::String;  // not reached: checkOptions refuses unknown types first
}

// The option table is an array of structs that may grow in later minors, so it is walked with
// the stride the plugin declares (the first entry's struct_size) and copied into OptionSpecs.
std::vector<OptionSpec> checkOptions(const fs::path& file, const ferry_plugin_descriptor& d) {
  std::vector<OptionSpec> out;
  if (d.option_count == 0) return out;
  if (d.options == nullptr)
    badDescriptor(file, "option_count is " + std::to_string(d.option_count) +
                            " but the option table is NULL");
  const uint32_t stride = d.options[0].struct_size;
  std::set<std::string> names;
  const auto* base = reinterpret_cast<const unsigned char*>(d.options);
  for (size_t i = 0; i < d.option_count; ++i) {
    const auto* def = reinterpret_cast<const ferry_option_def*>(base + i * stride);
    const std::string entry = "option #" + std::to_string(i + 1);
    if (def->struct_size < kOptionDefSize)
      badDescriptor(file, entry + " has struct_size " + std::to_string(def->struct_size) +
                              ", ABI " + kHostAbi + " needs at least " +
                              std::to_string(kOptionDefSize));
    if (def->struct_size != stride)
      badDescriptor(file, entry + " has struct_size " + std::to_string(def->struct_size) +
                              " but the first option has " + std::to_string(stride) +
                              ": every entry of the table must have the same size");
    if (!isIdentifier(def->name))
      badDescriptor(file, entry + " has the name " + quoted(def->name) +
                              ", option names must match [a-z0-9_]+");
    if (def->type < FERRY_OPT_STRING || def->type > FERRY_OPT_LIST)
      badDescriptor(file, "option '" + std::string(def->name) + "' has the unknown type " +
                              std::to_string(static_cast<int>(def->type)));
    if (!names.insert(def->name).second)
      badDescriptor(file, "option '" + std::string(def->name) + "' is declared twice");
    out.push_back(OptionSpec{def->name, optionType(def->type), def->default_value,
                             (def->flags & FERRY_OPTION_REQUIRED) != 0,
                             (def->flags & FERRY_OPTION_SECRET) != 0,
                             def->help != nullptr ? def->help : "", def->choices});
  }
  return out;
}

// Everything the host will later read from the descriptor, checked once here so that no other
// code has to distrust it.
std::vector<OptionSpec> checkDescriptor(const fs::path& file, const ferry_plugin_descriptor* d) {
  const std::string where = file.string();
  if (d == nullptr) badDescriptor(file, "the entry symbol returned NULL");
  // abi_major is the first field in every major; nothing else is read before it matches (in an
  // ABI 1 descriptor, the second field is not a minor).
  if (d->abi_major != FERRY_ABI_MAJOR)
    throw LoadError(LoadError::Reason::AbiMismatch, where,
                    where + ": was built for Ferry plugin ABI " + std::to_string(d->abi_major) +
                        ", this ferry loads plugins of ABI " + kHostAbi + ": " + kRebuild);
  if (d->abi_minor > FERRY_ABI_MINOR)
    throw LoadError(LoadError::Reason::AbiMismatch, where,
                    where + ": needs Ferry plugin ABI " + abiText(d->abi_major, d->abi_minor) +
                        ", this ferry provides ABI " + kHostAbi +
                        ": upgrade ferry, or build the plugin with FERRY_PLUGIN_ABI_MINOR " +
                        std::to_string(FERRY_ABI_MINOR) + " if it can do without the newer parts");
  if (d->struct_size < kDescriptorSize)
    throw LoadError(LoadError::Reason::ShortDescriptor, where,
                    where + ": the plugin descriptor is " + std::to_string(d->struct_size) +
                        " bytes, but ABI " + kHostAbi + " needs at least " +
                        std::to_string(kDescriptorSize) +
                        " bytes: the plugin was built with a broken or foreign header; " +
                        kRebuild);
  if (d->kind != FERRY_KIND_SOURCE && d->kind != FERRY_KIND_SINK)
    badDescriptor(file, "kind is " + std::to_string(static_cast<int>(d->kind)) +
                            ", expected FERRY_KIND_SOURCE (1) or FERRY_KIND_SINK (2)");
  if (!isIdentifier(d->name))
    badDescriptor(file, "the plugin name is " + quoted(d->name) + ", it must match [a-z0-9_]+");
  const std::string name = d->name;
  if (d->version == nullptr) badDescriptor(file, "plugin '" + name + "' has a NULL version");
  if (d->create == nullptr || d->destroy == nullptr)
    badDescriptor(file, "plugin '" + name + "' has a NULL " +
                            (d->create == nullptr ? "create" : "destroy") + " function");
  if (d->kind == FERRY_KIND_SOURCE) {
    if (d->source == nullptr)
      badDescriptor(file, "plugin '" + name + "' is a source but has no source table");
    if (d->sink != nullptr)
      badDescriptor(file, "plugin '" + name + "' is a source but also has a sink table");
    if (d->source->struct_size < kSourceApiSize)
      badDescriptor(file, "plugin '" + name + "' has a source table of " +
                              std::to_string(d->source->struct_size) + " bytes, ABI " + kHostAbi +
                              " needs at least " + std::to_string(kSourceApiSize));
    if (d->source->fetch == nullptr)
      badDescriptor(file, "plugin '" + name + "' is a source with a NULL fetch function");
  } else {
    if (d->sink == nullptr)
      badDescriptor(file, "plugin '" + name + "' is a sink but has no sink table");
    if (d->source != nullptr)
      badDescriptor(file, "plugin '" + name + "' is a sink but also has a source table");
    if (d->sink->struct_size < kSinkApiSize)
      badDescriptor(file, "plugin '" + name + "' has a sink table of " +
                              std::to_string(d->sink->struct_size) + " bytes, ABI " + kHostAbi +
                              " needs at least " + std::to_string(kSinkApiSize));
    if (d->sink->write == nullptr)
      badDescriptor(file, "plugin '" + name + "' is a sink with a NULL write function");
  }
  return checkOptions(file, *d);
}

fs::path makeAbsolute(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  return (ec ? p : abs).lexically_normal();
}

}  // namespace

std::shared_ptr<const Plugin> loadPlugin(const fs::path& requested) {
  // dlopen searches LD_LIBRARY_PATH and the system directories for a bare name: an absolute path
  // makes sure we load exactly the file the operator configured.
  const fs::path file = makeAbsolute(requested);
  const std::string where = file.string();
  std::error_code ec;
  if (!fs::exists(file, ec))
    throw LoadError(LoadError::Reason::NotFound, where,
                    where +
                        ": no such plugin file; check the path (and plugin_dir in [host]) and "
                        "that the plugin is installed");

  std::shared_ptr<PluginLibrary> library;
  try {
    library = std::make_shared<PluginLibrary>(
        file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw LoadError(LoadError::Reason::NotLoadable, where,
                    where + ": cannot be loaded: " + e.what() +
                        "; make sure it is a Ferry plugin built for this platform and that the "
                        "libraries it needs are installed (check with ldd)");
  }
  if (!library->library().has(FERRY_ENTRY_SYMBOL_NAME))
    throw LoadError(LoadError::Reason::MissingSymbol, where,
                    where + ": has no entry symbol " FERRY_ENTRY_SYMBOL_NAME
                            ", so it is not a Ferry plugin; remove it from the plugin directory, "
                            "or build it with FERRY_SOURCE_PLUGIN/FERRY_SINK_PLUGIN from the "
                            "ferry-dev SDK");
  auto entry = library->library().get<const ferry_plugin_descriptor*()>(FERRY_ENTRY_SYMBOL_NAME);
  const ferry_plugin_descriptor* descriptor = entry();

  auto plugin = std::make_shared<Plugin>();
  plugin->options = checkDescriptor(file, descriptor);
  plugin->library = std::move(library);
  plugin->descriptor = descriptor;
  plugin->file = file;
  return plugin;
}

PluginRegistry PluginRegistry::loadDirectory(const fs::path& requested) {
  const fs::path dir = makeAbsolute(requested);
  const std::string where = dir.string();
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw LoadError(LoadError::Reason::NotFound, where,
                    where +
                        ": no such plugin directory; set plugin_dir in [host] to the "
                        "directory that holds the plugin " + std::string(platform::pluginSuffix()) + " files");
  if (!fs::is_directory(dir, ec))
    throw LoadError(LoadError::Reason::NotFound, where,
                    where +
                        ": is not a directory; set plugin_dir in [host] to the directory "
                        "that holds the plugin " + std::string(platform::pluginSuffix()) + " files");

  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code entry_ec;
    if (entry.path().extension() == platform::pluginSuffix() && entry.is_regular_file(entry_ec))
      files.push_back(entry.path());
  }
  if (ec)
    throw LoadError(
        LoadError::Reason::NotFound, where,
        where + ": cannot list the plugin directory: " + ec.message() + "; check its permissions");
  // Name order makes "the first file that fails" and the duplicate message the same on every
  // machine, whatever order the file system lists entries in.
  std::sort(files.begin(), files.end());

  PluginRegistry registry;
  registry.dir_ = dir;
  for (const auto& file : files) {
    auto plugin = loadPlugin(file);
    auto [it, inserted] = registry.plugins_.emplace(plugin->name(), plugin);
    if (!inserted)
      throw LoadError(LoadError::Reason::DuplicateName, file.string(),
                      file.string() + ": declares the plugin name '" + plugin->name() +
                          "', which " + it->second->file.string() +
                          " declares too; remove one of the two files from " + where);
  }
  return registry;
}

std::shared_ptr<const Plugin> PluginRegistry::find(const std::string& name) const {
  auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Plugin>> PluginRegistry::all() const {
  std::vector<std::shared_ptr<const Plugin>> out;
  out.reserve(plugins_.size());
  for (const auto& [name, plugin] : plugins_) out.push_back(plugin);
  return out;
}

std::unique_ptr<PluginInstance> PluginInstance::create(
    std::shared_ptr<const Plugin> plugin, const std::string& instance_name,
    const ferry_host_api* api, ferry_host_ctx* ctx,
    const std::vector<const ferry_option_value*>& options,
    const std::function<std::string()>& last_error) {
  ferry_plugin_instance* handle = nullptr;
  const ferry_create_status status =
      plugin->descriptor->create(api, ctx, options.data(), options.size(), &handle);
  if (status != FERRY_CREATE_OK) {
    std::string message = last_error ? last_error() : std::string();
    if (message.empty()) message = "no reason given (status " + std::to_string(status) + ")";
    throw LoadError(LoadError::Reason::CreateFailed, plugin->file.string(),
                    instance_name + ": plugin " + plugin->name() + " (" + plugin->file.string() +
                        ") failed to start: " + message);
  }
  return std::unique_ptr<PluginInstance>(new PluginInstance(std::move(plugin), handle));
}

PluginInstance::~PluginInstance() {
  // The instance's code and vtables live in the library: destroy it while the library is still
  // mapped; plugin_ (and with it possibly the last hold on the library) goes after this body.
  plugin_->descriptor->destroy(handle_);
}

std::string Plugin::abi() const { return abiText(descriptor->abi_major, descriptor->abi_minor); }

std::string hostAbi() { return kHostAbi; }

}  // namespace ferry::core
