/* The plugin ABI 1 header as Ferry 0.x shipped it, kept to build a plugin that a host of ABI 2
 * must refuse (tests/loader/plugins/abi1_sink.cpp). Not installed, not used by anything else. */
/*
 * Ferry plugin ABI — the C boundary between the ferry host and a plugin library.
 *
 * Rules of the boundary
 *   - Pure C: no C++ type, exception or RTTI crosses it. The C++ wrapper in <ferry/plugin.hpp>
 *     catches every exception on the plugin side and turns it into a status and a message.
 *   - Every struct starts with its own size (`struct_size`) and only ever grows by appending
 *     fields. A reader checks `struct_size` before reading a field added after version 1.
 *   - Strings are NUL-terminated UTF-8. A `const char*` handed across is borrowed: it stays valid
 *     for the duration of the call it was passed to, unless its documentation says otherwise.
 *   - Threading: the host calls the functions of one instance from one thread at a time (never
 *     concurrently), but not always from the same thread. Different instances may run
 *     concurrently. Host-API functions are thread-safe unless stated otherwise.
 *
 * A plugin library exports exactly one symbol, FERRY_ENTRY_SYMBOL, of type ferry_entry_fn. The
 * host reads the descriptor it returns and checks `abi_version`, `struct_size` and the tables
 * before it calls anything else in the library.
 */
#ifndef FERRY_ABI_H
#define FERRY_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. A host refuses a plugin whose descriptor names another
 * version; bump it only for changes that are not appends. */
#define FERRY_ABI_VERSION 1u

/* The name of the one exported symbol (a ferry_entry_fn). */
#define FERRY_ENTRY_SYMBOL ferry_plugin_entry
#define FERRY_ENTRY_SYMBOL_NAME "ferry_plugin_entry"

#if defined(_WIN32)
#define FERRY_EXPORT __declspec(dllexport)
#else
#define FERRY_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------------------------- */

/* What a plugin call answers. A non-OK answer should be accompanied by a message given through
 * ferry_host_api.set_error before returning. */
typedef enum ferry_status {
  FERRY_OK = 0,    /* done */
  FERRY_RETRY = 1, /* transient failure: the host backs off (honouring set_retry_after) and
                      tries again; nothing of the call is kept */
  FERRY_FATAL = 2, /* can never succeed as asked: a sink's event goes to the dead letters; a
                      source or create() is stopped with the message as its status */
  FERRY_AUTH = 3,  /* authentication or authorisation refused: the instance is stopped with the
                      message as its status instead of hammering the remote */
  FERRY_STOP = 4   /* the instance cannot go on for another reason an operator must fix (an
                      endpoint retired with 410, a redirect, an untrusted certificate): it is
                      stopped with the message as its status */
} ferry_status;

typedef enum ferry_plugin_kind { FERRY_KIND_SOURCE = 1, FERRY_KIND_SINK = 2 } ferry_plugin_kind;

typedef enum ferry_log_level {
  FERRY_LOG_DEBUG = 0,
  FERRY_LOG_INFO = 1,
  FERRY_LOG_WARNING = 2,
  FERRY_LOG_ERROR = 3
} ferry_log_level;

/* ---------------------------------------------------------------------------------------------
 * Options: declared by the plugin, validated and resolved by the host
 * ------------------------------------------------------------------------------------------- */

typedef enum ferry_option_type {
  FERRY_OPT_STRING = 1,   /* any text; `choices` may restrict it */
  FERRY_OPT_INT = 2,      /* a signed 64-bit decimal integer */
  FERRY_OPT_BOOL = 3,     /* true/false, yes/no, on/off, 1/0; resolved to "true" or "false" */
  FERRY_OPT_DOUBLE = 4,   /* a decimal number with '.' */
  FERRY_OPT_DURATION = 5, /* "250ms", "20s", "5m", "1h", "2d" or bare seconds; resolved to
                             whole milliseconds written as a decimal integer */
  FERRY_OPT_INSTANT = 6,  /* ISO-8601 with a zone ("2025-04-23T10:01:53.812Z", "...+02:00") or
                             "now"; resolved to UTC "YYYY-MM-DDThh:mm:ss.sssZ" */
  FERRY_OPT_LIST = 7      /* comma-separated values; resolved with blanks around items removed */
} ferry_option_type;

/* One declared option. A plugin's option table is static data that lives as long as the library
 * is loaded. */
typedef struct ferry_option_def {
  uint32_t struct_size;          /* sizeof(ferry_option_def) */
  const char* name;              /* config key: [a-z0-9_]+ */
  ferry_option_type type;
  const char* default_value;     /* text in config syntax, or NULL for no default */
  int required;                  /* non-zero: the config must set it (default_value ignored) */
  int secret;                    /* non-zero: never logged, printed or echoed in an error */
  const char* help;              /* one line for `ferry plugins` and the plugin's README */
  const char* choices;           /* NULL, or the allowed values separated by '|' ("a|b|c") */
} ferry_option_def;

/* One resolved option value, as handed to create(). `value` is NULL when the option is not set
 * and has no default. Borrowed for the duration of create(): copy what you keep. */
typedef struct ferry_option_value {
  uint32_t struct_size; /* sizeof(ferry_option_value) */
  const char* name;
  const char* value;
} ferry_option_value;

/* ---------------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------------- */

/* A change as a source emits it (ferry_host_api.emit). Borrowed: the host copies what it keeps
 * before emit() returns. */
typedef struct ferry_item {
  uint32_t struct_size; /* sizeof(ferry_item) */
  const char* entity;   /* "order", "shipment", … */
  const char* key;      /* the entity's id at the remote system */
  const char* version;  /* the remote change time exactly as received, ISO-8601 with a zone */
  const char* body;     /* the entity's JSON text exactly as received; need not be NUL-terminated */
  size_t body_len;
  int echo;             /* non-zero when this change was caused by this integration itself */
} ferry_item;

/* A journalled change as a sink (or a source's delivered hook) receives it. All strings are
 * NUL-terminated and borrowed for the duration of the call. */
typedef struct ferry_event {
  uint32_t struct_size;
  int64_t sequence;            /* journal position, strictly increasing */
  const char* source;          /* the source instance's name from the config */
  const char* entity;
  const char* key;
  const char* version;         /* exact string as received */
  const char* previous;        /* version delivered before for this key; "" for a new key */
  const char* body;            /* NUL-terminated JSON text */
  size_t body_len;
  int echo;
  const char* idempotency_key; /* "source/entity/key/version" */
} ferry_event;

/* ---------------------------------------------------------------------------------------------
 * The host API: a versioned function table handed to each instance at create()
 * ------------------------------------------------------------------------------------------- */

/* Opaque per-instance handle; pass it back with every host-API call. Valid from create() until
 * destroy() returns. */
typedef struct ferry_host_ctx ferry_host_ctx;

typedef struct ferry_header {
  const char* name;
  const char* value;
} ferry_header;

/* An HTTP request. Borrowed for the duration of http_request(). */
typedef struct ferry_http_request {
  uint32_t struct_size;        /* sizeof(ferry_http_request) */
  const char* method;          /* "GET", "POST", "PATCH", … */
  const char* url;             /* absolute http:// or https:// URL, query already encoded */
  const ferry_header* headers; /* may be NULL when header_count is 0 */
  size_t header_count;
  const char* body;            /* may be NULL */
  size_t body_len;
  int64_t timeout_ms;          /* 0: the host default (30 s) */
  const char* rate_key;        /* NULL, or a limiter defined with rate_limit_define(): the
                                  request waits for a token first */
  int skip_tls_verify;         /* non-zero: do not verify the server's certificate (only when the
                                  user asked for it explicitly; the plugin logs a warning) */
} ferry_http_request;

/* An HTTP response, owned by the host; release it with http_free(). */
typedef struct ferry_http_response {
  uint32_t struct_size;
  int status;                  /* HTTP status, 0 when no response arrived */
  const ferry_header* headers; /* response headers, names as received */
  size_t header_count;
  const char* body;            /* NUL-terminated */
  size_t body_len;
  int transient;               /* non-zero for 408/425/429/5xx, timeouts and dropped connections */
  int64_t retry_after_ms;      /* from Retry-After (seconds or HTTP date), -1 when absent */
  const char* error;           /* transport error text when status is 0, else "" */
} ferry_http_response;

/* One window of a rate limit: at most `count` requests in any `per_ms` milliseconds. */
typedef struct ferry_rate_rule {
  uint32_t count;
  uint32_t per_ms;
} ferry_rate_rule;

typedef void (*ferry_bytes_fn)(void* user, const char* data, size_t len);

typedef struct ferry_host_api {
  uint32_t abi_version; /* FERRY_ABI_VERSION of the host */
  uint32_t struct_size; /* sizeof(ferry_host_api) as the host was built */

  /* Writes a line to the host log, tagged with the instance name. Never pass secrets. */
  void (*log)(ferry_host_ctx* ctx, ferry_log_level level, const char* message);

  /* Sets the message that explains the non-OK status the current call is about to return. The
   * host copies it. Calling it again replaces the message. */
  void (*set_error)(ferry_host_ctx* ctx, const char* message);

  /* With FERRY_RETRY: wait at least this long before the next attempt (e.g. Retry-After). */
  void (*set_retry_after)(ferry_host_ctx* ctx, int64_t delay_ms);

  /* Sources only, during fetch(): hands one item of the current page to the host. Items must be
   * emitted in the order the remote returned them. Returns FERRY_OK, or FERRY_FATAL with the
   * reason logged (unparseable version, missing key) — the page then fails. */
  ferry_status (*emit)(ferry_host_ctx* ctx, const ferry_item* item);

  /* Performs an HTTP request with the host's TLS (system CA store), proxy, timeouts and
   * keep-alive connections. Returns FERRY_OK when a response arrived (whatever its status) and
   * FERRY_RETRY when none did (timeout, refused, dropped); in both cases *response is set and
   * must be released with http_free(). FERRY_FATAL for a malformed request (bad URL). */
  ferry_status (*http_request)(ferry_host_ctx* ctx, const ferry_http_request* request,
                               ferry_http_response** response);
  void (*http_free)(ferry_host_ctx* ctx, ferry_http_response* response);

  /* Defines the shared limiter `key` (e.g. "duckhub:api.duck-hub.com") with one or more
   * windows; every instance of the process that names the same key shares its budget. The first
   * definition wins; later ones with other rules are logged and ignored. */
  void (*rate_limit_define)(ferry_host_ctx* ctx, const char* key, const ferry_rate_rule* rules,
                            size_t rule_count);
  /* Blocks until `key` grants one request. Returns FERRY_RETRY when the host is stopping. */
  ferry_status (*rate_acquire)(ferry_host_ctx* ctx, const char* key);

  /* Durable state private to this instance, kept in the journal. state_get calls `receive` once
   * with the value and returns FERRY_OK, or returns FERRY_FATAL without calling it when the key
   * is absent. state_set with value NULL deletes the key. */
  ferry_status (*state_get)(ferry_host_ctx* ctx, const char* key, ferry_bytes_fn receive,
                            void* user);
  ferry_status (*state_set)(ferry_host_ctx* ctx, const char* key, const char* value, size_t len);

  /* In-memory state shared by every instance that names the same scope (e.g. one Tradecloud
   * account's session). Same conventions as state_get/state_set. shared_lock/shared_unlock take
   * the scope's (recursive) mutex, to make read-modify-write sequences atomic. */
  ferry_status (*shared_get)(ferry_host_ctx* ctx, const char* scope, const char* key,
                             ferry_bytes_fn receive, void* user);
  ferry_status (*shared_set)(ferry_host_ctx* ctx, const char* scope, const char* key,
                             const char* value, size_t len);
  void (*shared_lock)(ferry_host_ctx* ctx, const char* scope);
  void (*shared_unlock)(ferry_host_ctx* ctx, const char* scope);

  /* Metrics, exported with the instance name as a label. counter_add adds to a counter,
   * gauge_set sets a gauge. `name` is [a-z0-9_]+. */
  void (*counter_add)(ferry_host_ctx* ctx, const char* name, double delta);
  void (*gauge_set)(ferry_host_ctx* ctx, const char* name, double value);

  /* Non-zero once the host has been asked to stop: long loops should return FERRY_RETRY. */
  int (*stopping)(ferry_host_ctx* ctx);
} ferry_host_api;

/* ---------------------------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------------------------- */

/* "Items with version at or after `since`, skipping `offset` of them, at most `limit`": the host
 * runs the cursor algorithm; a plugin only translates this into its API (an exclusive API asks
 * from one millisecond earlier). */
typedef struct ferry_fetch_request {
  uint32_t struct_size;
  const char* since;   /* UTC "YYYY-MM-DDThh:mm:ss.sssZ" */
  int64_t since_ms;    /* the same instant in milliseconds since the Unix epoch */
  uint32_t offset;
  uint32_t limit;
} ferry_fetch_request;

typedef struct ferry_fetch_result {
  uint32_t struct_size;
  /* How many items the remote returned on this page. The host sets it to UINT32_MAX before the
   * call; left so, the number of emitted items counts. Set it when an item is not emitted
   * (filtered), so that a full page is still recognised as full. */
  uint32_t received;
} ferry_fetch_result;

typedef struct ferry_source_api {
  uint32_t struct_size; /* sizeof(ferry_source_api) */
  /* Fetches one page and emits its items through host->emit, in the remote's order. OK: the
   * page is complete. RETRY/FATAL/AUTH: nothing of the page is kept. */
  ferry_status (*fetch)(void* instance, const ferry_fetch_request* request,
                        ferry_fetch_result* result);
  /* Optional (NULL): called once every sink routed from this source has `event` durably (or
   * skipped it), in journal order. At-least-once: it may be called again after a restart. */
  ferry_status (*delivered)(void* instance, const ferry_event* event);
  /* Optional (NULL): a cheap connectivity and credentials test for `ferry check --connect`. */
  ferry_status (*check)(void* instance);
  /* Optional (NULL: yes): whether this instance, as configured, needs delivered() at all. Asked
   * once after create(); answering 0 spares the host re-reading every event for the hook (e.g.
   * a source whose confirmation is switched off). */
  int (*wants_delivered)(void* instance);
} ferry_source_api;

/* ---------------------------------------------------------------------------------------------
 * Sinks
 * ------------------------------------------------------------------------------------------- */

typedef struct ferry_write_result {
  uint32_t struct_size;
  /* Set by the sink on RETRY and FATAL: events [0, done) are durable at the target. On FATAL,
   * event `done` can never be written: it goes to the dead letters with the set_error message and
   * the host goes on with the events after it. On OK every event is durable and `done` is
   * ignored. The host sets it to 0 before the call. */
  size_t done;
} ferry_write_result;

typedef struct ferry_sink_api {
  uint32_t struct_size; /* sizeof(ferry_sink_api) */
  /* Writes a batch in journal order. Returns only once the events it reports done are durable
   * at the target. */
  ferry_status (*write)(void* instance, const ferry_event* events, size_t count,
                        ferry_write_result* result);
  /* Optional (NULL): a cheap test that the target is reachable, for `ferry check --connect`. */
  ferry_status (*check)(void* instance);
} ferry_sink_api;

/* ---------------------------------------------------------------------------------------------
 * The descriptor and the entry symbol
 * ------------------------------------------------------------------------------------------- */

typedef struct ferry_plugin_descriptor {
  uint32_t abi_version; /* FERRY_ABI_VERSION the plugin was built with; never moves */
  uint32_t struct_size; /* sizeof(ferry_plugin_descriptor); never moves */
  ferry_plugin_kind kind;
  const char* name;        /* unique plugin name, [a-z0-9_]+, used as `plugin =` in the config */
  const char* version;     /* the plugin's own version, e.g. "1.2.0" */
  const char* description; /* one line */
  const ferry_option_def* options;
  size_t option_count;

  /* Creates an instance. `host` and `ctx` stay valid until destroy() returns; `options` holds
   * every declared option, resolved (defaults applied, types checked). On failure return a
   * non-OK status with set_error(); *instance is then ignored. */
  ferry_status (*create)(const ferry_host_api* host, ferry_host_ctx* ctx,
                         const ferry_option_value* options, size_t option_count, void** instance);
  /* Destroys an instance made by create(). Never called concurrently with another call on it. */
  void (*destroy)(void* instance);

  const ferry_source_api* source; /* non-NULL exactly when kind is FERRY_KIND_SOURCE */
  const ferry_sink_api* sink;     /* non-NULL exactly when kind is FERRY_KIND_SINK */
} ferry_plugin_descriptor;

/* The entry symbol's type. It must only return a pointer to static data: no allocation, no I/O.
 * The descriptor and everything it points to live as long as the library is loaded. */
typedef const ferry_plugin_descriptor* (*ferry_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FERRY_ABI_H */
