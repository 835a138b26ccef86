/*
 * fuzz-config.c: libFuzzer harness for the YAML configuration reader
 * (src/io/config.c, on libyaml). Each input is a configuration file loaded
 * over the defaults. Beyond "no sanitizer report": a failed load is
 * DSD_ERR_CONFIG (or IO / OUT_OF_MEMORY) with a message naming the file; a
 * successful one is validated, written back as YAML (dsd_config_to_string),
 * and that text must load again, over fresh defaults, to the same text (the
 * round trip dsdeblur-train relies on when it stores the configuration in a
 * checkpoint). Build and run: scripts/fuzz (make fuzz).
 */
#include "dsdeblur.h"
#include "fuzz-input.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    dsd_config cfg, again;
    dsd_error err;
    memset(&err, 0, sizeof err);
    if (dsd_config_defaults(&cfg, &err) != DSD_OK)
        abort();
    dsd_status s = dsd_config_load(&cfg, path, &err);
    if (s != DSD_OK) {
        FUZZ_REQUIRE(s == DSD_ERR_CONFIG || s == DSD_ERR_IO || s == DSD_ERR_OUT_OF_MEMORY,
                     "status %s: %s", dsd_status_name(s), err.message);
        FUZZ_REQUIRE(!strncmp(err.message, path, strlen(path)), "message lacks the path: %s",
                     err.message);
        dsd_config_free(&cfg);
        return 0;
    }
    (void)dsd_config_validate(&cfg, &err);
    char *text = NULL, *text2 = NULL;
    s = dsd_config_to_string(&cfg, &text, &err);
    FUZZ_REQUIRE(s == DSD_OK, "to_string: %s", err.message);
    const char *path2 = fuzz_input_path((const uint8_t *)text, strlen(text));
    if (dsd_config_defaults(&again, &err) != DSD_OK)
        abort();
    s = dsd_config_load(&again, path2, &err);
    FUZZ_REQUIRE(s == DSD_OK, "the written configuration does not load: %s\n%s", err.message,
                 text);
    s = dsd_config_to_string(&again, &text2, &err);
    FUZZ_REQUIRE(s == DSD_OK, "to_string (again): %s", err.message);
    FUZZ_REQUIRE(!strcmp(text, text2), "round trip changed the configuration:\n%s\n---\n%s",
                 text, text2);
    free(text);
    free(text2);
    dsd_config_free(&cfg);
    dsd_config_free(&again);
    return 0;
}
