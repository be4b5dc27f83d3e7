// The few things the host does differently on Windows and on POSIX systems, behind one seam:
// where the executable, the default config and the plugins are, the PID, scratch directories.
// The rest of the host is the same code on both (Windows builds: packaging/windows).
#pragma once

#include <string>

namespace ferry::core::platform {

// The directory of the running executable, "" when it cannot be found.
std::string executableDir();

// The config used without --config or $FERRY_CONFIG: /etc/ferry/ferry.ini;
// on Windows %ProgramData%\Ferry\ferry.ini.
std::string defaultConfigPath();

// The plugin directory used without --plugin-dir, [host] plugin_dir or $FERRY_PLUGIN_DIR:
// <bin>/../lib/ferry/plugins; on Windows <ferry.exe's folder>\plugins.
std::string defaultPluginDir();

// The file name suffix of a plugin: ".so"; on Windows ".dll".
const char* pluginSuffix();

// This process's ID.
long processId();

// Creates a fresh directory under $TMPDIR (or /tmp; on Windows the user's temp folder) named
// `<prefix>.XXXXXX` and returns its path; throws std::runtime_error naming it on failure.
std::string makeScratchDir(const std::string& prefix);

}  // namespace ferry::core::platform
