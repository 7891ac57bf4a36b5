/* The conformance plugin (tests/backends) in C: the same commands as the Python one. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugbay.h"

static long long count = 0;
static int imported = 0;
static int hang_on_cleanup = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int pb_cleanup(pb_buf *out) {
    (void)out;
    volatile int spin = hang_on_cleanup;
    while (spin) { spin = hang_on_cleanup; }
    return 0;
}

int pb_export_state(pb_buf *out) {
    pb_printf(out, "{\"count\":%lld}", count);
    return 0;
}

int pb_import_state(pb_json state, pb_buf *out) {
    (void)out;
    pb_get_int(state, "count", &count);
    imported = 1;
    return 0;
}

int pb_command(const char *name, pb_json params, pb_buf *out) {
    if (strcmp(name, "add") == 0) {
        long long a, b;
        if (!pb_get_int(params, "a", &a) || !pb_get_int(params, "b", &b)) return pb_fail(out, "a, b");
        pb_printf(out, "%lld", a + b);
        return 0;
    }
    if (strcmp(name, "wrong_result") == 0) { pb_puts(out, "\"not a number\""); return 0; }
    if (strcmp(name, "bump") == 0) { pb_printf(out, "%lld", ++count); return 0; }
    if (strcmp(name, "label") == 0) { pb_puts(out, "\"{label}\""); return 0; }
    if (strcmp(name, "was_imported") == 0) { pb_puts(out, imported ? "true" : "false"); return 0; }
    if (strcmp(name, "wait") == 0) {
        double seconds = 0, start = now();
        pb_get_double(params, "seconds", &seconds);
        while (now() - start < seconds) {}
        pb_puts(out, "\"done\"");
        return 0;
    }
    if (strcmp(name, "cancelled") == 0) { pb_puts(out, "0"); return 0; }
    if (strcmp(name, "die") == 0) __builtin_trap();
    if (strcmp(name, "hang_cleanup") == 0) { hang_on_cleanup = 1; return 0; }
    if (strcmp(name, "dial") == 0) {
        /* a module has no sockets: reaching out is asking the host, which denies */
        char *reply = pb_host("secret", "{\"name\":\"network\"}");
        pb_json r = {reply, strlen(reply)};
        pb_json error = pb_get(r, "error");
        int status = error.data ? pb_fail_json(out, error) : 0;
        if (!error.data) pb_puts(out, "\"connected\"");
        free(reply);
        return status;
    }
    return pb_fail(out, "no such command");
}
