// A shared library that exports a function, but not the Ferry entry symbol: not a plugin.
#include <ferry/abi.h>

extern "C" FERRY_EXPORT int ferry_plugin_entry_typo(void) { return 42; }
