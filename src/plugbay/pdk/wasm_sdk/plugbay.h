/* plugbay.h: the plugbay Wasm ABI, version 1, for plugins written in C.
 *
 * A plugin implements pb_command (and, when it needs them, pb_init, pb_cleanup,
 * pb_export_state, pb_import_state); plugbay.c, compiled beside it by
 * 'plugbay build', exports the ABI the host calls (docs/wasm-plugins.md):
 *
 *   plugbay_alloc(size) -> ptr          plugbay_free(ptr, size)
 *   plugbay_init(cfg, len) -> reply     plugbay_call(cmd, cmd_len, params, len) -> reply
 *   plugbay_abi_version() -> 1          plugbay_cleanup() -> reply
 *   plugbay_export_state() -> reply     plugbay_import_state(ptr, len) -> reply
 *
 * A reply is a 64-bit (pointer << 32 | length) of JSON: {"ok": VALUE} or
 * {"error": {"message": "...", ...}}. Everything crosses as JSON, one message per call.
 */
#ifndef PLUGBAY_H
#define PLUGBAY_H

#include <stddef.h>
#include <stdint.h>

#define PLUGBAY_ABI_VERSION 1

/* A growable buffer: a command writes its result's JSON into one. */
typedef struct {
    char *data;
    size_t len, cap;
} pb_buf;

/* A JSON text (not NUL-terminated): the parameters, the config, a reply. */
typedef struct {
    const char *data;
    size_t len;
} pb_json;

/* ---- what the plugin implements -------------------------------------------------
 * pb_command: run one command; write its result as JSON into out and return 0, or
 * return pb_fail(out, "message") (the caller gets a PluginCallError with it). */
int pb_command(const char *name, pb_json params, pb_buf *out);
/* Optional (plugbay.c has defaults that do nothing): */
int pb_init(pb_json config, pb_buf *out);      /* 0 or pb_fail */
int pb_cleanup(pb_buf *out);                    /* 0 or pb_fail */
int pb_export_state(pb_buf *out);               /* write JSON state, 0; 1: none */
int pb_import_state(pb_json state, pb_buf *out);/* 0, pb_fail, or 1: none */

/* ---- writing JSON --------------------------------------------------------------- */
void pb_put(pb_buf *b, const char *text, size_t n);
void pb_puts(pb_buf *b, const char *text);
void pb_printf(pb_buf *b, const char *format, ...);
void pb_put_string(pb_buf *b, const char *text, size_t n); /* a quoted, escaped JSON string */
int pb_fail(pb_buf *out, const char *message);             /* always returns -1 */
/* Fail with an error object as JSON, e.g. the "error" a host request answered (a host
 * denial passed on keeps its kind: the caller sees PermissionDenied). Returns -1. */
int pb_fail_json(pb_buf *out, pb_json error);

/* ---- reading JSON (top-level keys of an object) ----------------------------------- */
/* The raw value of key (any JSON type), or .data == NULL when absent. */
pb_json pb_get(pb_json object, const char *key);
int pb_get_int(pb_json object, const char *key, long long *out);    /* 1 when present */
int pb_get_double(pb_json object, const char *key, double *out);    /* 1 when present */
int pb_get_bool(pb_json object, const char *key, int *out);         /* 1 when present */
/* A string value, unescaped into a new NUL-terminated buffer (free it), or NULL. */
char *pb_get_string(pb_json object, const char *key, size_t *len);

/* ---- the host (each request goes through the host's broker, as this plugin) ----------- */
void pb_log(int level, const char *message);   /* 10 debug, 20 info, 30 warning, 40 error */
/* A raw request to a host import ("log", "storage", "event", "service", "secret"): the
 * reply's JSON text, NUL-terminated (free it). */
char *pb_host(const char *import, const char *request_json);

#endif
