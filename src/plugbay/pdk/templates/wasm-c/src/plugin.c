/* $plugin_id: a Wasm plugin in C. Each command reads its parameters from a JSON
 * object and writes its result as JSON (see plugbay.h, docs/wasm-plugins.md). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "plugbay.h"

static long long calls = 0;
static char greeting[64] = "ready";

int pb_init(pb_json config, pb_buf *out) {
    (void)out;
    char *text = pb_get_string(config, "greeting", NULL);
    if (text) {
        strncpy(greeting, text, sizeof greeting - 1);
        free(text);
    }
    pb_log(20, greeting);
    return 0;
}

static int word_count(pb_json params, pb_buf *out) {
    size_t n;
    char *text = pb_get_string(params, "text", &n);
    if (!text) return pb_fail(out, "text must be a string");
    long long words = 0;
    int in_word = 0;
    for (size_t i = 0; i < n; i++) {
        int space = isspace((unsigned char)text[i]);
        if (!space && !in_word) words++;
        in_word = !space;
    }
    free(text);
    pb_printf(out, "%lld", words);
    return 0;
}

static int shout(pb_json params, pb_buf *out) {
    size_t n, m;
    char *text = pb_get_string(params, "text", &n);
    char *suffix = pb_get_string(params, "suffix", &m);
    if (!text || !suffix) {
        free(text);
        free(suffix);
        return pb_fail(out, "text and suffix must be strings");
    }
    for (size_t i = 0; i < n; i++) text[i] = (char)toupper((unsigned char)text[i]);
    pb_buf joined = {0};
    pb_put(&joined, text, n);
    pb_put(&joined, suffix, m);
    pb_put_string(out, joined.data, joined.len);
    free(joined.data);
    free(text);
    free(suffix);
    return 0;
}

/* storage goes through the host: {"op": "set", "key": ..., "value": ...} */
static int storage(const char *op, pb_json params, pb_buf *out, int with_value) {
    pb_buf request = {0};
    pb_printf(&request, "{\"op\":\"%s\",\"key\":", op);
    pb_json key = pb_get(params, "key");
    pb_put(&request, key.data, key.len);
    if (with_value) {
        pb_json value = pb_get(params, "value");
        pb_puts(&request, ",\"value\":");
        pb_put(&request, value.data, value.len);
    }
    pb_put(&request, "}", 2); /* with its NUL */
    char *reply = pb_host("storage", request.data);
    free(request.data);
    pb_json r = {reply, strlen(reply)};
    pb_json ok = pb_get(r, "ok");
    /* the host's refusal is passed on as it came, so the caller gets the host's error */
    int status = ok.data ? 0 : pb_fail_json(out, pb_get(r, "error"));
    if (ok.data) pb_put(out, ok.data, ok.len);
    free(reply);
    return status;
}

int pb_command(const char *name, pb_json params, pb_buf *out) {
    calls++;
    if (strcmp(name, "word_count") == 0) return word_count(params, out);
    if (strcmp(name, "shout") == 0) return shout(params, out);
    if (strcmp(name, "add") == 0) {
        long long a, b;
        if (!pb_get_int(params, "a", &a) || !pb_get_int(params, "b", &b))
            return pb_fail(out, "a and b must be integers");
        pb_printf(out, "%lld", a + b);
        return 0;
    }
    if (strcmp(name, "echo") == 0) {
        pb_json payload = pb_get(params, "payload");
        pb_put(out, payload.data, payload.len);
        return 0;
    }
    if (strcmp(name, "remember") == 0) return storage("set", params, out, 1);
    if (strcmp(name, "recall") == 0) return storage("get", params, out, 0);
    if (strcmp(name, "calls") == 0) {
        pb_printf(out, "%lld", calls);
        return 0;
    }
    /* declared under [commands] in plugin.toml, but no branch above runs it */
    pb_buf message = {0};
    pb_printf(&message,
              "command '%s' is declared in plugin.toml but src/plugin.c does not run it: "
              "add a branch for it to pb_command and rebuild ('plugbay build')",
              name);
    int status = pb_fail(out, message.data);
    free(message.data);
    return status;
}

/* a reload hands the count to the new version */
int pb_export_state(pb_buf *out) {
    pb_printf(out, "{\"calls\":%lld}", calls);
    return 0;
}

int pb_import_state(pb_json state, pb_buf *out) {
    (void)out;
    pb_get_int(state, "calls", &calls);
    return 0;
}
