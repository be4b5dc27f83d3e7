/*
 * Ferry plugin ABI 2 — the C boundary between the ferry host and a plugin library.
 *
 * Versions
 *   FERRY_ABI_MAJOR changes only when the boundary breaks (a field removed or moved, a meaning
 *   changed); a host loads only plugins of its own major. FERRY_ABI_MINOR grows when something is
 *   appended: a field at the end of a struct, a function at the end of a table, a value of an
 *   enum. Every such addition is marked in this header with FERRY_SINCE(major, minor). A plugin's
 *   descriptor names the minor it needs; a host with a lower minor refuses it with both versions
 *   in the message. A plugin that declares a lower minor than the header it was built with (to run
 *   on older hosts) checks FERRY_HAS_FIELD before it touches anything newer.
 *
 * Rules of the boundary
 *   - Pure C: no C++ type, exception or RTTI crosses it. The C++ wrapper in <ferry/plugin.hpp>
 *     catches every exception on the plugin side and turns it into the call's status and message.
 *   - Every struct that may grow starts with its own size (`struct_size`) and only ever grows by
 *     appending. Structs marked "frozen" never change; they exist to be put in arrays.
 *   - Arrays the host hands to a plugin are arrays of pointers (`const T* const*`), so that a
 *     plugin built against an older minor never indexes them with a wrong element size. Arrays a
 *     plugin hands to the host hold frozen structs, or are walked with their first element's
 *     struct_size (the option table).
 *   - Data strings are {ptr, len} and may hold any byte, NUL included; ptr may be NULL when len is
 *     0. The type names say who owns the bytes (the naming follows Envoy's dynamic-module ABI):
 *       ferry_host_str    owned by the host, lent to the plugin for the duration of the call it
 *                         was passed to (or as documented);
 *       ferry_plugin_str  owned by the plugin, lent to the host for the duration of the call; the
 *                         host copies what it keeps.
 *     Static text of the descriptor (names, help, defaults) is NUL-terminated `const char*` that
 *     lives as long as the library is loaded.
 *   - Every kind of call answers with its own status type, so that a value means one thing. A
 *     non-OK answer is explained by a message set with ferry_host_api.set_error before returning.
 *   - Threading: the host calls the functions of one instance from one thread at a time (never
 *     concurrently), but not always from the same thread. Different instances may run
 *     concurrently. Host-API functions are thread-safe unless stated otherwise.
 *
 * A plugin library exports exactly one symbol, FERRY_ENTRY_SYMBOL, of type ferry_entry_fn. The
 * host reads the descriptor it returns and checks the versions, sizes and tables before it calls
 * anything else in the library.
 */
#ifndef FERRY_ABI_H
#define FERRY_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define FERRY_ABI_MAJOR 2u
#define FERRY_ABI_MINOR 1u

/* Marks a field, function or value appended in ABI major.minor (documentation only). */
#define FERRY_SINCE(major, minor)

/* Whether the struct at `ptr` (of type `type`, starting with struct_size) is long enough to hold
 * `field`: check it before reading a field added in a later minor than the other side needs. */
#define FERRY_HAS_FIELD(type, ptr, field)                   \
  ((ptr) != NULL && (size_t)(ptr)->struct_size >=           \
                        offsetof(type, field) + sizeof(((const type*)0)->field))

/* The name of the one exported symbol (a ferry_entry_fn). */
#define FERRY_ENTRY_SYMBOL ferry_plugin_entry
#define FERRY_ENTRY_SYMBOL_NAME "ferry_plugin_entry"

#if defined(_WIN32)
#define FERRY_EXPORT __declspec(dllexport)
#else
#define FERRY_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------------
 * Strings (frozen)
 * ------------------------------------------------------------------------------------------- */

/* Bytes owned by the host, lent to the plugin. */
typedef struct ferry_host_str {
  const char* ptr;
  size_t len;
} ferry_host_str;

/* Bytes owned by the plugin, lent to the host for the duration of the call. */
typedef struct ferry_plugin_str {
  const char* ptr;
  size_t len;
} ferry_plugin_str;

/* ---------------------------------------------------------------------------------------------
 * Enumerations
 * ------------------------------------------------------------------------------------------- */

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

#define FERRY_OPTION_REQUIRED 1u /* the config must set it (default_value is ignored) */
#define FERRY_OPTION_SECRET 2u   /* never logged, printed or echoed in an error */

/* One declared option: static data that lives as long as the library is loaded. The host walks
 * the table with the first entry's struct_size, so entries may grow in later minors. */
typedef struct ferry_option_def {
  uint32_t struct_size; /* sizeof(ferry_option_def) */
  ferry_option_type type;
  const char* name;          /* config key: [a-z0-9_]+ */
  const char* default_value; /* text in config syntax, or NULL for no default */
  const char* help;          /* one line for `ferry plugins` and the plugin's README */
  const char* choices;       /* NULL, or the allowed values separated by '|' ("a|b|c") */
  uint32_t flags;            /* FERRY_OPTION_* */
} ferry_option_def;

/* One resolved option value, as handed to create(): lent for the duration of create(). */
typedef struct ferry_option_value {
  uint32_t struct_size;
  ferry_host_str name;
  ferry_host_str value; /* the resolved text; meaningful only when is_set */
  int is_set;           /* 0 when the option is not set and has no default */
} ferry_option_value;

/* ---------------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------------- */

#define FERRY_ITEM_ECHO 1u /* this change was caused by this integration itself */

/* A change as a source emits it (ferry_host_api.emit). The host copies what it keeps. */
typedef struct ferry_item {
  uint32_t struct_size; /* sizeof(ferry_item) */
  uint32_t flags;       /* FERRY_ITEM_* */
  ferry_plugin_str entity;  /* "order", "shipment", … */
  ferry_plugin_str key;     /* the entity's id at the remote system; no control characters */
  ferry_plugin_str version; /* the remote change time exactly as received, ISO-8601 with a zone */
  ferry_plugin_str body;    /* the entity's JSON text exactly as received */
  /* Empty, or a JSON object of at most 64 KiB that sinks may act on without knowing the source:
   *   "numbers":   the business numbers people search for (order number, PO number), strings;
   *                `ferry trace` finds the event by any of them;
   *   "own_lines": positions (0-based) of the body's lines that are this integration's own open
   *                requests, for sinks that leave out echo lines.
   * Other members are free for the source to define (document them in its README). */
  ferry_plugin_str meta;
} ferry_item;

#define FERRY_EVENT_ECHO 1u

/* A journalled change as a sink (or a source's delivered hook) receives it: lent for the
 * duration of the call. */
typedef struct ferry_event {
  uint32_t struct_size;
  uint32_t flags;               /* FERRY_EVENT_* */
  int64_t sequence;             /* journal position, strictly increasing */
  int64_t fetched_at_ms;        /* when the host journalled it, ms since the Unix epoch */
  ferry_host_str source;        /* the source instance's name from the config */
  ferry_host_str entity;
  ferry_host_str key;
  ferry_host_str version;       /* exact text as received */
  ferry_host_str previous;      /* version delivered before for this key; empty for a new key */
  ferry_host_str body;          /* JSON text; the byte after the last is a NUL (not counted) */
  ferry_host_str meta;          /* the source's metadata object (see ferry_item), or empty */
  ferry_host_str idempotency_key; /* "source/entity/key/version" */
} ferry_event;

/* ---------------------------------------------------------------------------------------------
 * Status types, one per kind of call
 * ------------------------------------------------------------------------------------------- */

/* create() */
typedef enum ferry_create_status {
  FERRY_CREATE_OK = 0,
  FERRY_CREATE_REFUSED = 1 /* the options cannot work (the message names the option) */
} ferry_create_status;

/* ferry_source_api.fetch */
typedef enum ferry_fetch_status {
  FERRY_FETCH_OK = 0,    /* the page is complete */
  FERRY_FETCH_RETRY = 1, /* transient: the host backs off and asks again; nothing is kept */
  FERRY_FETCH_AUTH = 2,  /* credentials refused: the source is stopped with the message */
  FERRY_FETCH_STOP = 3   /* cannot go on until an operator acts (an endpoint retired, a
                            certificate not trusted, a 4xx that will not change): stopped */
} ferry_fetch_status;

/* ferry_source_api.delivered */
typedef enum ferry_hook_status {
  FERRY_HOOK_OK = 0,
  FERRY_HOOK_RETRY = 1, /* transient: called again for the same event after a back-off */
  FERRY_HOOK_AUTH = 2,  /* credentials refused: the source is stopped */
  FERRY_HOOK_STOP = 3   /* an operator must act: the source is stopped */
} ferry_hook_status;

/* ferry_sink_api.write */
typedef enum ferry_write_status {
  FERRY_WRITE_OK = 0,      /* every event of the batch is durable at the target */
  FERRY_WRITE_RETRY = 1,   /* events [0, done) are durable; the rest is written again later */
  FERRY_WRITE_REFUSED = 2, /* events [0, done) are durable; event `done` can never be written:
                              it goes to the dead letters with the message, the host goes on */
  FERRY_WRITE_AUTH = 3,    /* credentials refused: the sink is stopped; [0, done) durable */
  FERRY_WRITE_STOP = 4     /* an operator must act: the sink is stopped; [0, done) durable */
} ferry_write_status;

/* check() of either kind, for `ferry check --connect` */
typedef enum ferry_check_status {
  FERRY_CHECK_OK = 0,
  FERRY_CHECK_UNREACHABLE = 1, /* could not reach the remote or target (may pass later) */
  FERRY_CHECK_AUTH = 2,        /* credentials refused */
  FERRY_CHECK_FAILED = 3       /* reached, but it cannot work as configured */
} ferry_check_status;

/* Answers of the host. */
typedef enum ferry_emit_status {
  FERRY_EMIT_OK = 0,
  /* ABI 2.0 plugins: the item is unusable (no key, a control character in it, a bad version, …);
   * return a non-OK status from fetch(). The host counts the page's tries and, after the
   * source's `set_aside_after` of them, sets the item aside itself and answers OK. Also the
   * answer to an emit() outside fetch(). */
  FERRY_EMIT_REFUSED = 1,
  /* The item is unusable and handed over as unreadable, as set_aside() does: skip it and go on
   * with the page (answered to plugins that need ABI 2.1 or later). */
  FERRY_EMIT_SET_ASIDE FERRY_SINCE(2, 1) = 2
} ferry_emit_status;

typedef enum ferry_http_status {
  FERRY_HTTP_RESPONSE = 0,    /* a response arrived, whatever its HTTP status */
  FERRY_HTTP_NO_RESPONSE = 1, /* timeout, refused, dropped, too large, host stopping */
  FERRY_HTTP_BAD_REQUEST = 2  /* the request is malformed (bad URL, bad header) */
} ferry_http_status;

typedef enum ferry_state_status {
  FERRY_STATE_OK = 0,
  FERRY_STATE_ABSENT = 1, /* get: no value under that key */
  FERRY_STATE_FAILED = 2  /* the store failed (the journal's error is logged): nothing changed;
                             treat it as transient */
} ferry_state_status;

typedef enum ferry_acquire_status {
  FERRY_ACQUIRE_OK = 0,
  FERRY_ACQUIRE_STOPPING = 1 /* the host is stopping: return a RETRY status */
} ferry_acquire_status;

/* ---------------------------------------------------------------------------------------------
 * The host API: a function table handed to each instance at create()
 * ------------------------------------------------------------------------------------------- */

/* Opaque per-instance handle, owned by the host; pass it back with every host-API call. Valid
 * from create() until destroy() returns. */
typedef struct ferry_host_ctx ferry_host_ctx;

/* An instance, owned by the plugin: what create() made, handed back with every call. */
typedef struct ferry_plugin_instance ferry_plugin_instance;

/* A request header (frozen). */
typedef struct ferry_plugin_header {
  ferry_plugin_str name;
  ferry_plugin_str value;
} ferry_plugin_header;

/* A response header (frozen). */
typedef struct ferry_host_header {
  ferry_host_str name;
  ferry_host_str value;
} ferry_host_header;

#define FERRY_HTTP_SKIP_TLS_VERIFY 1u /* do not verify the server's certificate (only on the
                                         user's explicit request; the plugin logs a warning) */

/* An HTTP request, lent for the duration of http_request(). */
typedef struct ferry_http_request {
  uint32_t struct_size; /* sizeof(ferry_http_request) */
  uint32_t flags;       /* FERRY_HTTP_* */
  ferry_plugin_str method; /* "GET", "POST", "PATCH", … */
  ferry_plugin_str url;    /* absolute http:// or https:// URL, query already encoded */
  const ferry_plugin_header* headers;
  size_t header_count;
  ferry_plugin_str body;
  int64_t timeout_ms;        /* 0: the host default */
  ferry_plugin_str rate_key; /* empty, or a limiter defined with rate_limit_define(): the request
                                waits for a token first */
} ferry_http_request;

#define FERRY_HTTP_TRANSIENT 1u /* 408/425/429/5xx, timeouts and dropped connections */

/* An HTTP response, owned by the host until the plugin releases it with http_release(). */
typedef struct ferry_host_http_response {
  uint32_t struct_size;
  uint32_t flags;      /* FERRY_HTTP_TRANSIENT */
  int status;          /* HTTP status, 0 when no response arrived */
  const ferry_host_header* headers; /* names as received */
  size_t header_count;
  ferry_host_str body; /* the byte after the last is a NUL (not counted) */
  int64_t retry_after_ms; /* from Retry-After (seconds or HTTP date), -1 when absent */
  ferry_host_str error;   /* why no response arrived (status 0) or why the request is bad */
} ferry_host_http_response;

/* One window of a rate limit (frozen): at most `count` requests in any `per_ms` milliseconds. */
typedef struct ferry_rate_rule {
  uint32_t count;
  uint32_t per_ms;
} ferry_rate_rule;

/* Receives a value the host lends for the duration of the callback. */
typedef void (*ferry_receive_fn)(void* user, ferry_host_str value);

typedef struct ferry_host_api {
  uint32_t abi_major;   /* FERRY_ABI_MAJOR of the host */
  uint32_t abi_minor;   /* FERRY_ABI_MINOR of the host */
  uint32_t struct_size; /* sizeof(ferry_host_api) as the host was built */

  /* Writes a line to the host log, tagged with the instance name. Never pass secrets. */
  void (*log)(ferry_host_ctx* ctx, ferry_log_level level, ferry_plugin_str message);

  /* Sets the message that explains the non-OK status the current call is about to return. The
   * host copies it (secrets removed, control characters escaped). A second call replaces it. */
  void (*set_error)(ferry_host_ctx* ctx, ferry_plugin_str message);

  /* With a RETRY status: wait at least this long before the next attempt (e.g. Retry-After). */
  void (*set_retry_after)(ferry_host_ctx* ctx, int64_t delay_ms);

  /* Sources only, during fetch(): hands one item of the current page to the host, in the order
   * the remote returned them. */
  ferry_emit_status (*emit)(ferry_host_ctx* ctx, const ferry_item* item);

  /* Performs an HTTP request with the host's TLS (system CA store), proxy, timeouts, size cap and
   * keep-alive connections. *response is always set (also on NO_RESPONSE and BAD_REQUEST, with
   * `error` saying why) and must be released with http_release(). */
  ferry_http_status (*http_request)(ferry_host_ctx* ctx, const ferry_http_request* request,
                                    ferry_host_http_response** response);
  void (*http_release)(ferry_host_ctx* ctx, ferry_host_http_response* response);

  /* Defines the shared limiter `key` (e.g. "duckhub:api.duck-hub.com") with one or more windows;
   * every instance of the process that names the same key shares its budget. The first
   * definition wins; later ones with other rules are logged and ignored. */
  void (*rate_limit_define)(ferry_host_ctx* ctx, ferry_plugin_str key,
                            const ferry_rate_rule* rules, size_t rule_count);
  /* Blocks until `key` grants one request. */
  ferry_acquire_status (*rate_acquire)(ferry_host_ctx* ctx, ferry_plugin_str key);

  /* Durable state private to this instance, kept in the journal. state_get calls `receive` once
   * with the value when it answers OK. */
  ferry_state_status (*state_get)(ferry_host_ctx* ctx, ferry_plugin_str key,
                                  ferry_receive_fn receive, void* user);
  ferry_state_status (*state_set)(ferry_host_ctx* ctx, ferry_plugin_str key,
                                  ferry_plugin_str value);
  ferry_state_status (*state_erase)(ferry_host_ctx* ctx, ferry_plugin_str key);

  /* In-memory state shared by every instance that names the same scope (e.g. one Tradecloud
   * account's session); same conventions as the state functions. shared_lock/shared_unlock take
   * the scope's (recursive) mutex, to make read-modify-write sequences atomic. */
  ferry_state_status (*shared_get)(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                   ferry_plugin_str key, ferry_receive_fn receive, void* user);
  ferry_state_status (*shared_set)(ferry_host_ctx* ctx, ferry_plugin_str scope,
                                   ferry_plugin_str key, ferry_plugin_str value);
  void (*shared_lock)(ferry_host_ctx* ctx, ferry_plugin_str scope);
  void (*shared_unlock)(ferry_host_ctx* ctx, ferry_plugin_str scope);

  /* Metrics, exported with the instance as a label. `name` is [a-z0-9_]+. */
  void (*counter_add)(ferry_host_ctx* ctx, ferry_plugin_str name, double delta);
  void (*gauge_set)(ferry_host_ctx* ctx, ferry_plugin_str name, double value);

  /* Non-zero once the host has been asked to stop: long loops should return a RETRY status. */
  int (*stopping)(ferry_host_ctx* ctx);

  /* The identity of the journal the events come from, valid while the instance lives: a new
   * journal (its sequences start again at 1) has another one. A sink that keeps positions or
   * names files by sequence ties them to it, so that it never overwrites or skips what it
   * wrote from an older journal. */
  ferry_host_str (*journal_id)(ferry_host_ctx* ctx);

  /* Sources only, during fetch(): hands over an item of the page that cannot be read (not an
   * object, an id of the wrong type, a missing change time, …) instead of emitting it. `raw` is
   * the item's text as received, `reason` says what is wrong with it (no secrets). Skip the item
   * and go on with the page. The host decides what becomes of it: while the source has tried
   * the page fewer than `set_aside_after` times the page fails at its end and is fetched again
   * (the remote may be in the middle of a change); after that the item is kept as a source dead
   * letter (`ferry dead-letters list`), and the rest of the page is journalled. An item that is
   * already a dead letter is skipped at once. Answers OK, or REFUSED outside fetch(). */
  ferry_emit_status (*set_aside)(ferry_host_ctx* ctx, ferry_plugin_str raw,
                                 ferry_plugin_str reason) FERRY_SINCE(2, 1);
} ferry_host_api;

/* ---------------------------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------------------------- */

/* "Items with version at or after `since`, skipping `offset` of them, at most `limit`": the host
 * runs the cursor algorithm; a plugin only translates this into its API (an exclusive API asks
 * from one millisecond earlier). */
typedef struct ferry_fetch_request {
  uint32_t struct_size;
  uint32_t offset;
  uint32_t limit;
  int64_t since_ms;     /* the instant in milliseconds since the Unix epoch */
  ferry_host_str since; /* the same instant as UTC "YYYY-MM-DDThh:mm:ss.sssZ" */
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
  /* Fetches one page and emits its items through host->emit, in the remote's order. Anything
   * but OK keeps nothing of the page. */
  ferry_fetch_status (*fetch)(ferry_plugin_instance* instance, const ferry_fetch_request* request,
                              ferry_fetch_result* result);
  /* Optional (NULL): called once every sink routed from this source has `event` durably (or
   * skipped it), in journal order. At-least-once: it may be called again after a restart. */
  ferry_hook_status (*delivered)(ferry_plugin_instance* instance, const ferry_event* event);
  /* Optional (NULL: yes): whether this instance, as configured, needs delivered() at all. Asked
   * once after create(); answering 0 spares the host re-reading every event for the hook. */
  int (*wants_delivered)(ferry_plugin_instance* instance);
  /* Optional (NULL): a cheap connectivity and credentials test for `ferry check --connect`. */
  ferry_check_status (*check)(ferry_plugin_instance* instance);
} ferry_source_api;

/* ---------------------------------------------------------------------------------------------
 * Sinks
 * ------------------------------------------------------------------------------------------- */

typedef struct ferry_write_result {
  uint32_t struct_size;
  /* With any status but OK: events [0, done) are durable at the target (see
   * ferry_write_status). The host sets it to 0 before the call; with OK it is ignored. */
  size_t done;
} ferry_write_result;

typedef struct ferry_sink_api {
  uint32_t struct_size; /* sizeof(ferry_sink_api) */
  /* Writes a batch in journal order: `events` is an array of `count` pointers. Returns only once
   * the events it reports done are durable at the target. */
  ferry_write_status (*write)(ferry_plugin_instance* instance, const ferry_event* const* events,
                              size_t count, ferry_write_result* result);
  /* Optional (NULL): a cheap test that the target is reachable, for `ferry check --connect`. */
  ferry_check_status (*check)(ferry_plugin_instance* instance);
} ferry_sink_api;

/* ---------------------------------------------------------------------------------------------
 * The descriptor and the entry symbol
 * ------------------------------------------------------------------------------------------- */

typedef struct ferry_plugin_descriptor {
  /* These three fields never move, in any major: the host reads them first. */
  uint32_t abi_major;   /* FERRY_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;   /* the lowest minor whose host can run the plugin (FERRY_ABI_MINOR) */
  uint32_t struct_size; /* sizeof(ferry_plugin_descriptor) */
  ferry_plugin_kind kind;
  const char* name;        /* unique plugin name, [a-z0-9_]+, used as `plugin =` in the config */
  const char* version;     /* the plugin's own version, e.g. "1.2.0" */
  const char* description; /* one line */
  const ferry_option_def* options;
  size_t option_count;

  /* Creates an instance. `host` and `ctx` stay valid until destroy() returns; `options` holds a
   * pointer to every declared option, resolved (defaults applied, types checked), in declaration
   * order. On REFUSED call set_error(); *instance is then ignored. */
  ferry_create_status (*create)(const ferry_host_api* host, ferry_host_ctx* ctx,
                                const ferry_option_value* const* options, size_t option_count,
                                ferry_plugin_instance** instance);
  /* Destroys an instance made by create(). Never called concurrently with another call on it. */
  void (*destroy)(ferry_plugin_instance* instance);

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
