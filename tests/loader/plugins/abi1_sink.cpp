// A sink built against the ABI 1 header (tests/loader/abi1/ferry/abi.h, first on the include
// path): exactly what a plugin compiled for Ferry's first plugin ABI hands a newer host.
#include <ferry/abi.h>

static_assert(FERRY_ABI_VERSION == 1u, "this plugin must be built against the ABI 1 header");

namespace {

ferry_status create(const ferry_host_api*, ferry_host_ctx*, const ferry_option_value*, size_t,
                    void** instance) {
  static int object;
  *instance = &object;
  return FERRY_OK;
}
void destroy(void*) {}
ferry_status write(void*, const ferry_event*, size_t, ferry_write_result*) { return FERRY_OK; }

const ferry_option_def kOptions[] = {
    {sizeof(ferry_option_def), "path", FERRY_OPT_STRING, nullptr, 1, 0, "where to write", nullptr},
};
const ferry_sink_api kSink{sizeof(ferry_sink_api), &write, nullptr};
const ferry_plugin_descriptor kDescriptor{FERRY_ABI_VERSION, sizeof(ferry_plugin_descriptor),
                                          FERRY_KIND_SINK,   "abi_one_sink",
                                          "1.0.0",           "built against plugin ABI 1",
                                          kOptions,          1,
                                          &create,           &destroy,
                                          nullptr,           &kSink};

}  // namespace

extern "C" FERRY_EXPORT const ferry_plugin_descriptor* FERRY_ENTRY_SYMBOL(void) {
  return &kDescriptor;
}
