/* A Wasm plugin in bad faith (tests/adversarial/test_attack_wasm.py). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugbay.h"

static int read_file(pb_json params, pb_buf *out) {
    char *path = pb_get_string(params, "path", NULL);
    if (!path) return pb_fail(out, "path");
    FILE *f = fopen(path, "r");
    if (!f) {
        char message[512];
        snprintf(message, sizeof message, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return pb_fail(out, message);
    }
    char data[4096];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    free(path);
    pb_put_string(out, data, n);
    return 0;
}

static int write_file(pb_json params, pb_buf *out) {
    char *path = pb_get_string(params, "path", NULL);
    if (!path) return pb_fail(out, "path");
    FILE *f = fopen(path, "w");
    if (!f) {
        char message[512];
        snprintf(message, sizeof message, "cannot write %s: %s", path, strerror(errno));
        free(path);
        return pb_fail(out, message);
    }
    fputs("written by the attacker", f);
    fclose(f);
    free(path);
    pb_puts(out, "\"written\"");
    return 0;
}

/* a host request passed on as is: its reply's "ok", or its error as this call's error */
static int ask(const char *import, pb_json params, pb_buf *out) {
    char *request = pb_get_string(params, "request", NULL);
    if (!request) return pb_fail(out, "request");
    char *reply = pb_host(import, request);
    free(request);
    if (!reply) { pb_puts(out, "null"); return 0; }
    pb_json r = {reply, strlen(reply)};
    pb_json ok = pb_get(r, "ok"), error = pb_get(r, "error");
    int status = 0;
    if (error.data) status = pb_fail_json(out, error);
    else if (ok.data) pb_put(out, ok.data, ok.len);
    else pb_puts(out, "null");
    free(reply);
    return status;
}

int pb_command(const char *name, pb_json params, pb_buf *out) {
    if (strcmp(name, "ping") == 0) { pb_puts(out, "\"pong\""); return 0; }
    if (strcmp(name, "say") == 0) {
        char *text = pb_get_string(params, "text", NULL);
        printf("%s\n", text ? text : "");
        fflush(stdout);
        free(text);
        return 0;
    }
    if (strcmp(name, "read_file") == 0) return read_file(params, out);
    if (strcmp(name, "write_file") == 0) return write_file(params, out);
    if (strcmp(name, "env") == 0) {
        char *name_ = pb_get_string(params, "name", NULL);
        const char *value = name_ ? getenv(name_) : NULL;
        free(name_);
        if (value) pb_put_string(out, value, strlen(value));
        else pb_puts(out, "null");
        return 0;
    }
    if (strcmp(name, "spin") == 0) { volatile int forever = 1; while (forever) {} }
    if (strcmp(name, "grow") == 0) {
        /* a memory grow bomb: 1 MiB at a time, and a trap when the host says no */
        for (;;) {
            if (__builtin_wasm_memory_grow(0, 16) == (size_t)-1) __builtin_trap();
        }
    }
    if (strcmp(name, "huge") == 0) {
        long long n = 0;
        pb_get_int(params, "size", &n);
        char *text = malloc((size_t)n);
        if (!text) return pb_fail(out, "no memory for it");
        memset(text, 'x', (size_t)n);
        pb_put_string(out, text, (size_t)n);
        free(text);
        return 0;
    }
    if (strcmp(name, "ask") == 0) {
        char *import = pb_get_string(params, "via", NULL);
        int status = import ? ask(import, params, out) : pb_fail(out, "import");
        free(import);
        return status;
    }
    if (strcmp(name, "forge") == 0) {
        /* an error of its own, dressed as the host's denial */
        char *error = pb_get_string(params, "error", NULL);
        if (!error) return pb_fail(out, "error");
        pb_json e = {error, strlen(error)};
        int status = pb_fail_json(out, e); /* pb_fail_json copies it */
        free(error);
        return status;
    }
    return pb_fail(out, "no such command");
}
