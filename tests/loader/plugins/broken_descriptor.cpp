// A hand-written descriptor (no SDK glue), compiled once per defect: each FERRY_TEST_DEFECT_*
// definition breaks exactly one thing the loader must refuse before it calls any plugin code.
// Without a defect it is a valid sink named FERRY_TEST_NAME (the duplicate-name pair).
#include <ferry/abi.h>

#ifndef FERRY_TEST_NAME
#define FERRY_TEST_NAME "hand_written"
#endif

namespace {

ferry_create_status create(const ferry_host_api*, ferry_host_ctx*, const ferry_option_value* const*,
                           size_t, ferry_plugin_instance** instance) {
  static int object;
  *instance = reinterpret_cast<ferry_plugin_instance*>(&object);
  return FERRY_CREATE_OK;
}
void destroy(ferry_plugin_instance*) {}
ferry_write_status write(ferry_plugin_instance*, const ferry_event* const*, size_t,
                         ferry_write_result*) {
  return FERRY_WRITE_OK;
}
ferry_fetch_status fetch(ferry_plugin_instance*, const ferry_fetch_request*, ferry_fetch_result*) {
  return FERRY_FETCH_OK;
}

#if defined(FERRY_TEST_DEFECT_SHORT_OPTION)
const uint32_t kOptionSize = 8;
#else
const uint32_t kOptionSize = sizeof(ferry_option_def);
#endif

#if defined(FERRY_TEST_DEFECT_BAD_OPTION_TYPE)
const ferry_option_type kSecondType = static_cast<ferry_option_type>(42);
#else
const ferry_option_type kSecondType = FERRY_OPT_INT;
#endif

#if defined(FERRY_TEST_DEFECT_DUPLICATE_OPTION)
const char* const kSecondName = "path";
#else
const char* const kSecondName = "retries";
#endif

const ferry_option_def kOptions[] = {
    {kOptionSize, FERRY_OPT_STRING, "path", nullptr, "where to write", nullptr,
     FERRY_OPTION_REQUIRED},
    {kOptionSize, kSecondType, kSecondName, "3", "how often to try", nullptr, 0},
};

const ferry_sink_api kSink{sizeof(ferry_sink_api), &write, nullptr};
const ferry_source_api kSource{sizeof(ferry_source_api), &fetch, nullptr, nullptr, nullptr};

const ferry_plugin_descriptor kDescriptor {
#if defined(FERRY_TEST_DEFECT_ABI_MAJOR)
  FERRY_ABI_MAJOR + 1,
#else
  FERRY_ABI_MAJOR,
#endif
#if defined(FERRY_TEST_DEFECT_NEWER_MINOR)
      FERRY_ABI_MINOR + 1,
#else
      FERRY_ABI_MINOR,
#endif
#if defined(FERRY_TEST_DEFECT_SHORT_DESCRIPTOR)
      8,
#else
      sizeof(ferry_plugin_descriptor),
#endif
#if defined(FERRY_TEST_DEFECT_NO_FETCH)
      FERRY_KIND_SOURCE,
#else
      FERRY_KIND_SINK,
#endif
#if defined(FERRY_TEST_DEFECT_BAD_NAME)
      "Bad Name!",
#else
      FERRY_TEST_NAME,
#endif
      "1.0.0", "a hand-written descriptor", kOptions, sizeof(kOptions) / sizeof(kOptions[0]),
      &create, &destroy,
#if defined(FERRY_TEST_DEFECT_NO_FETCH)
      &kSource, nullptr,
#else
      nullptr, &kSink,
#endif
};

}  // namespace

#if defined(FERRY_TEST_DEFECT_NO_FETCH)
// The source table exists but its fetch is missing.
namespace {
const ferry_source_api kNoFetch{sizeof(ferry_source_api), nullptr, nullptr, nullptr, nullptr};
const ferry_plugin_descriptor kNoFetchDescriptor = [] {
  ferry_plugin_descriptor d = kDescriptor;
  d.source = &kNoFetch;
  return d;
}();
}  // namespace
#endif

extern "C" FERRY_EXPORT const ferry_plugin_descriptor* FERRY_ENTRY_SYMBOL(void) {
#if defined(FERRY_TEST_DEFECT_NULL_DESCRIPTOR)
  return nullptr;
#elif defined(FERRY_TEST_DEFECT_NO_FETCH)
  return &kNoFetchDescriptor;
#else
  return &kDescriptor;
#endif
}
