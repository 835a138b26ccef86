/*
 * fuzz-safetensors.c: libFuzzer harness for the safetensors reader
 * (src/io/safetensors.c; its JSON header goes through libyaml). Each input is
 * a whole .safetensors file. Beyond "no sanitizer report": a failed open is
 * DSD_ERR_FORMAT (or OUT_OF_MEMORY) with a message naming the file; after a
 * successful open every tensor is read back as float with its own shape (the
 * F32/F16/BF16 conversions and every byte of its data range) or refused with
 * DSD_ERR_FORMAT for other dtypes, and every lookup and metadata accessor is
 * exercised. Build and run: scripts/fuzz (make fuzz).
 */
#include "dsdeblur.h"
#include "io/safetensors.h"
#include "fuzz-input.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    dsd_safetensors *st = NULL;
    dsd_error err;
    memset(&err, 0, sizeof err);
    dsd_status s = dsd_safetensors_open(path, &st, &err);
    if (s != DSD_OK) {
        FUZZ_REQUIRE(s == DSD_ERR_FORMAT || s == DSD_ERR_OUT_OF_MEMORY, "status %s: %s",
                     dsd_status_name(s), err.message);
        FUZZ_REQUIRE(!strncmp(err.message, path, strlen(path)), "message lacks the path: %s",
                     err.message);
        FUZZ_REQUIRE(st == NULL, "open failed but returned an object");
        return 0;
    }
    size_t n = dsd_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const dsd_st_tensor *t = dsd_safetensors_tensor(st, i);
        FUZZ_REQUIRE(dsd_safetensors_find(st, t->name) == t, "find('%s') is not tensor %zu",
                     t->name, i);
        FUZZ_REQUIRE(t->nbytes == t->numel * dsd_st_dtype_size(t->dtype),
                     "tensor '%s': nbytes %zu for %llu elements", t->name, t->nbytes,
                     (unsigned long long)t->numel);
        /* numel * 4 <= 4 * nbytes: bounded by the input's size */
        float *out = malloc(t->numel ? t->numel * sizeof *out : 1);
        if (!out)
            continue;
        s = dsd_safetensors_read_f32(st, t->name, t->ndim, t->shape, out, &err);
        FUZZ_REQUIRE(s == DSD_OK || s == DSD_ERR_FORMAT, "read_f32('%s'): %s: %s", t->name,
                     dsd_status_name(s), err.message);
        free(out);
    }
    size_t m = dsd_safetensors_metadata_count(st);
    for (size_t i = 0; i < m; i++) {
        const char *key = dsd_safetensors_metadata_key(st, i);
        FUZZ_REQUIRE(key && dsd_safetensors_metadata(st, key), "metadata %zu", i);
    }
    FUZZ_REQUIRE(dsd_safetensors_find(st, "\x01no such tensor") == NULL, "found a ghost");
    dsd_safetensors_close(st);
    return 0;
}
