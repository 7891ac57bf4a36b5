/* plugbay.c: the plugbay Wasm ABI, version 1 (see plugbay.h and docs/wasm-plugins.md).
 * 'plugbay build' compiles this file beside a plugin's own sources. */
#include "plugbay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_EXPORT(name) __attribute__((export_name(#name)))
#define PB_IMPORT(name) __attribute__((import_module("plugbay"), import_name(#name)))

PB_IMPORT(log) void pb__log(const char *request, size_t len);
PB_IMPORT(storage) uint64_t pb__storage(const char *request, size_t len);
PB_IMPORT(event) uint64_t pb__event(const char *request, size_t len);
PB_IMPORT(service) uint64_t pb__service(const char *request, size_t len);
PB_IMPORT(secret) uint64_t pb__secret(const char *request, size_t len);

/* ---- defaults for the optional hooks ----------------------------------------------- */
__attribute__((weak)) int pb_init(pb_json config, pb_buf *out) { (void)config; (void)out; return 0; }
__attribute__((weak)) int pb_cleanup(pb_buf *out) { (void)out; return 0; }
__attribute__((weak)) int pb_export_state(pb_buf *out) { (void)out; return 1; }
__attribute__((weak)) int pb_import_state(pb_json s, pb_buf *out) { (void)s; (void)out; return 1; }
__attribute__((weak)) const char *pb_commands_json = 0;

/* ---- buffers ------------------------------------------------------------------------- */
/* Out of memory where the SDK cannot go on: the host is told how much was refused (its
 * error then names the memory limit, and the record is in the plugin's log), then the
 * instance traps. No allocation here: the record is written on the stack. */
static void pb_out_of_memory(size_t wanted) {
    char record[160];
    int n = snprintf(record, sizeof record,
                     "{\"level\":40,\"message\":\"out of memory: %zu more bytes were refused\","
                     "\"fields\":{\"out_of_memory\":%zu}}", wanted, wanted);
    if (n > 0 && (size_t)n < sizeof record) pb__log(record, (size_t)n);
    __builtin_trap();
}

static void pb_reserve(pb_buf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) pb_out_of_memory(cap);
    b->data = grown;
    b->cap = cap;
}

void pb_put(pb_buf *b, const char *text, size_t n) {
    pb_reserve(b, n);
    memcpy(b->data + b->len, text, n);
    b->len += n;
}

void pb_puts(pb_buf *b, const char *text) { pb_put(b, text, strlen(text)); }

void pb_printf(pb_buf *b, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (n < 0) return;
    pb_reserve(b, (size_t)n + 1);
    va_start(args, format);
    vsnprintf(b->data + b->len, (size_t)n + 1, format, args);
    va_end(args);
    b->len += (size_t)n;
}

void pb_put_string(pb_buf *b, const char *s, size_t n) {
    pb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            pb_put(b, esc, 2);
        } else if (c < 0x20) {
            pb_printf(b, "\\u%04x", c);
        } else {
            pb_put(b, (const char *)&s[i], 1);
        }
    }
    pb_put(b, "\"", 1);
}

static pb_buf pb_reply;      /* the reply of the last call: the host copies it at once */
static pb_buf pb_message;    /* a command's error message, or its error object */
static int pb_message_json;  /* pb_message holds an error object (pb_fail_json) */

int pb_fail(pb_buf *out, const char *message) {
    (void)out;
    pb_message.len = 0;
    pb_message_json = 0;
    pb_puts(&pb_message, message);
    return -1;
}

int pb_fail_json(pb_buf *out, pb_json error) {
    (void)out;
    if (!error.data || error.len == 0 || error.data[0] != '{') return pb_fail(out, "a command failed");
    pb_message.len = 0;
    pb_message_json = 1;
    pb_put(&pb_message, error.data, error.len);
    return -1;
}

/* ---- reading JSON ---------------------------------------------------------------------- */
static size_t pb_skip_ws(pb_json j, size_t i) {
    while (i < j.len && (j.data[i] == ' ' || j.data[i] == '\n' || j.data[i] == '\t' || j.data[i] == '\r')) i++;
    return i;
}

/* the index just past the JSON value starting at i */
static size_t pb_skip_value(pb_json j, size_t i) {
    if (i >= j.len) return j.len;
    char c = j.data[i];
    if (c == '"') {
        for (i++; i < j.len; i++) {
            if (j.data[i] == '\\') i++;
            else if (j.data[i] == '"') return i + 1;
        }
        return j.len;
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        for (; i < j.len; i++) {
            char d = j.data[i];
            if (d == '"') { i = pb_skip_value(j, i) - 1; continue; }
            if (d == '{' || d == '[') depth++;
            if (d == '}' || d == ']') { if (--depth == 0) return i + 1; }
        }
        return j.len;
    }
    while (i < j.len && j.data[i] != ',' && j.data[i] != '}' && j.data[i] != ']') i++;
    return i;
}

pb_json pb_get(pb_json o, const char *key) {
    pb_json none = {0, 0};
    size_t klen = strlen(key), i = pb_skip_ws(o, 0);
    if (i >= o.len || o.data[i] != '{') return none;
    i++;
    while (1) {
        i = pb_skip_ws(o, i);
        if (i >= o.len || o.data[i] != '"') return none;
        size_t kstart = i + 1, kend = pb_skip_value(o, i) - 1;
        i = pb_skip_ws(o, kend + 1);
        if (i >= o.len || o.data[i] != ':') return none;
        i = pb_skip_ws(o, i + 1);
        size_t vend = pb_skip_value(o, i);
        if (kend - kstart == klen && memcmp(o.data + kstart, key, klen) == 0) {
            pb_json v = {o.data + i, vend - i};
            return v;
        }
        i = pb_skip_ws(o, vend);
        if (i >= o.len || o.data[i] != ',') return none;
        i++;
    }
}

static int pb_number(pb_json v, char *text, size_t cap) {
    if (!v.data || v.len == 0 || v.len >= cap) return 0;
    memcpy(text, v.data, v.len);
    text[v.len] = 0;
    return 1;
}

int pb_get_int(pb_json o, const char *key, long long *out) {
    char text[32];
    if (!pb_number(pb_get(o, key), text, sizeof text)) return 0;
    char *end;
    *out = strtoll(text, &end, 10);
    return *end == 0;
}

int pb_get_double(pb_json o, const char *key, double *out) {
    char text[64];
    if (!pb_number(pb_get(o, key), text, sizeof text)) return 0;
    char *end;
    *out = strtod(text, &end);
    return *end == 0;
}

int pb_get_bool(pb_json o, const char *key, int *out) {
    pb_json v = pb_get(o, key);
    if (v.data && v.len == 4 && memcmp(v.data, "true", 4) == 0) { *out = 1; return 1; }
    if (v.data && v.len == 5 && memcmp(v.data, "false", 5) == 0) { *out = 0; return 1; }
    return 0;
}

char *pb_get_string(pb_json o, const char *key, size_t *len) {
    pb_json v = pb_get(o, key);
    if (!v.data || v.len < 2 || v.data[0] != '"') return NULL;
    char *s = malloc(v.len);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t i = 1; i + 1 < v.len; i++) {
        char c = v.data[i];
        if (c == '\\' && i + 2 < v.len) {
            char e = v.data[++i];
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == 'r') c = '\r';
            else if (e == 'b') c = '\b';
            else if (e == 'f') c = '\f';
            else if (e == 'u' && i + 4 < v.len) {
                unsigned code = (unsigned)strtoul((char[]){v.data[i+1], v.data[i+2], v.data[i+3], v.data[i+4], 0}, NULL, 16);
                i += 4;
                if (code < 0x80) c = (char)code;
                else if (code < 0x800) { s[n++] = (char)(0xC0 | (code >> 6)); c = (char)(0x80 | (code & 0x3F)); }
                else { s[n++] = (char)(0xE0 | (code >> 12)); s[n++] = (char)(0x80 | ((code >> 6) & 0x3F)); c = (char)(0x80 | (code & 0x3F)); }
            } else c = e;
        }
        s[n++] = c;
    }
    s[n] = 0;
    if (len) *len = n;
    return s;
}

/* ---- the host ------------------------------------------------------------------------ */
static char *pb_take(uint64_t reply) {
    if (reply == 0) pb_out_of_memory(0); /* the host found no memory for its answer */
    char *ptr = (char *)(uintptr_t)(reply >> 32);
    size_t len = (size_t)(reply & 0xFFFFFFFFu);
    char *text = malloc(len + 1);
    if (!text) pb_out_of_memory(len + 1);
    memcpy(text, ptr, len);
    text[len] = 0;
    free(ptr); /* the host allocated it with plugbay_alloc */
    return text;
}

void pb_log(int level, const char *message) {
    pb_buf b = {0};
    pb_printf(&b, "{\"level\":%d,\"message\":", level);
    pb_put_string(&b, message, strlen(message));
    pb_puts(&b, "}");
    pb__log(b.data, b.len);
    free(b.data);
}

char *pb_host(const char *import, const char *request) {
    size_t n = strlen(request);
    if (strcmp(import, "log") == 0) { pb__log(request, n); return NULL; }
    if (strcmp(import, "storage") == 0) return pb_take(pb__storage(request, n));
    if (strcmp(import, "event") == 0) return pb_take(pb__event(request, n));
    if (strcmp(import, "service") == 0) return pb_take(pb__service(request, n));
    if (strcmp(import, "secret") == 0) return pb_take(pb__secret(request, n));
    return NULL;
}

/* ---- the exports the host calls ---------------------------------------------------------- */
static uint64_t pb_pack(pb_buf *b) { return ((uint64_t)(uintptr_t)b->data << 32) | (uint64_t)b->len; }

static uint64_t pb_finish(int status, pb_buf *value) {
    pb_reply.len = 0;
    if (status == 0) {
        pb_puts(&pb_reply, "{\"ok\":");
        if (value->len) pb_put(&pb_reply, value->data, value->len);
        else pb_puts(&pb_reply, "null");
        pb_puts(&pb_reply, "}");
    } else if (status > 0) {
        pb_puts(&pb_reply, "{\"none\":true}");
    } else if (pb_message_json) {
        pb_puts(&pb_reply, "{\"error\":");
        pb_put(&pb_reply, pb_message.data, pb_message.len);
        pb_puts(&pb_reply, "}");
    } else {
        pb_puts(&pb_reply, "{\"error\":{\"message\":");
        pb_put_string(&pb_reply, pb_message.data ? pb_message.data : "", pb_message.len);
        pb_puts(&pb_reply, "}}");
    }
    value->len = 0;
    return pb_pack(&pb_reply);
}

static pb_buf pb_value;

PB_EXPORT(plugbay_abi_version) int plugbay_abi_version(void) { return PLUGBAY_ABI_VERSION; }
PB_EXPORT(plugbay_alloc) void *plugbay_alloc(size_t size) { return malloc(size ? size : 1); }
PB_EXPORT(plugbay_free) void plugbay_free(void *ptr, size_t size) { (void)size; free(ptr); }

PB_EXPORT(plugbay_init) uint64_t plugbay_init(const char *config, size_t len) {
    pb_json c = {config, len};
    return pb_finish(pb_init(c, &pb_value), &pb_value);
}

PB_EXPORT(plugbay_call) uint64_t plugbay_call(const char *cmd, size_t cmd_len, const char *params, size_t len) {
    char name[128];
    if (cmd_len >= sizeof name) return pb_finish(pb_fail(&pb_value, "command name too long"), &pb_value);
    memcpy(name, cmd, cmd_len);
    name[cmd_len] = 0;
    pb_json p = {params, len};
    return pb_finish(pb_command(name, p, &pb_value), &pb_value);
}

PB_EXPORT(plugbay_cleanup) uint64_t plugbay_cleanup(void) { return pb_finish(pb_cleanup(&pb_value), &pb_value); }
PB_EXPORT(plugbay_export_state) uint64_t plugbay_export_state(void) {
    return pb_finish(pb_export_state(&pb_value), &pb_value);
}
PB_EXPORT(plugbay_import_state) uint64_t plugbay_import_state(const char *state, size_t len) {
    pb_json s = {state, len};
    return pb_finish(pb_import_state(s, &pb_value), &pb_value);
}
