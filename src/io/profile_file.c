/*
 * profile_file.c: device profiles on disk (dsd_device_profile_load / _save;
 * doc/tuning.md, "Profile files"). dsdeblur-bench --tune writes one per
 * device into the cache directory; a context reads it at init (context.c).
 *
 * The format is a small YAML mapping:
 *
 *     name: "tuned: pthread-skylake-avx512"
 *     device: "pthread-skylake-avx512"
 *     driver: "6.0"
 *     tuned_at: "2026-12-02T08:30:00Z"
 *     work_group: 64
 *     depthwise: strip
 *     kernels:
 *       Xgemm: {GEMMK: 0, MWG: 64, NWG: 64, ...}
 *       GemmRoutine: {XGEMM_MIN_INDIRECT_SIZE: 256}
 *
 * Every key is optional (without depthwise: the device class's choice);
 * unknown top-level keys, repeated keys, values that are not non-negative
 * integers and a depthwise other than strip or tile are errors with
 * path:line:column, as src/io/config.c reports them. Kernel and parameter names are not checked
 * here: CLBlast knows them, and rejects unknown ones when the profile is
 * applied (dsd_context_apply_profile says which kernel).
 */
#include "internal.h"
#include "yaml_reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* Reading */

typedef dsd_yaml_reader reader;

static const char *text(const reader *r)
{
    return (const char *)r->event.data.scalar.value;
}

static dsd_status fail_here(reader *r, const char *fmt, const char *arg)
{
    char where[512], msg[512];
    dsd_yaml_at(r, &r->event.start_mark, where, sizeof where);
    snprintf(msg, sizeof msg, fmt, arg);
    return DSD_FAIL(r->err, DSD_ERR_CONFIG, "%s: %s", where, msg);
}

/* The current event as a scalar string into dst (key names it). */
static dsd_status read_string(reader *r, const char *key, char *dst, size_t size)
{
    if (r->event.type != YAML_SCALAR_EVENT)
        return fail_here(r, "%s takes a single value (a string)", key);
    if (strlen(text(r)) >= size) {
        char where[512];
        dsd_yaml_at(r, &r->event.start_mark, where, sizeof where);
        return DSD_FAIL(r->err, DSD_ERR_CONFIG, "%s: %s is longer than %zu characters", where,
                        key, size - 1);
    }
    snprintf(dst, size, "%s", text(r));
    return DSD_OK;
}

/* The current event as a non-negative decimal integer. */
static dsd_status read_uint(reader *r, const char *key, size_t *out)
{
    if (r->event.type != YAML_SCALAR_EVENT)
        return fail_here(r, "%s takes a single value (a non-negative integer)", key);
    const char *s = text(r);
    char *end = NULL;
    errno = 0;
    unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!end || end == s || *end || errno) {
        char where[512];
        dsd_yaml_at(r, &r->event.start_mark, where, sizeof where);
        return DSD_FAIL(r->err, DSD_ERR_CONFIG, "%s: %s: '%s' is not a non-negative integer",
                        where, key, s);
    }
    *out = (size_t)v;
    return DSD_OK;
}

/* kernels: {Name: {PARAM: value, ...}, ...} */
static dsd_status read_kernels(reader *r, dsd_device_profile *p)
{
    if (r->event.type != YAML_MAPPING_START_EVENT)
        return fail_here(r, "%s must be a mapping of CLBlast kernel names (Xgemm: {MWG: 64, "
                         "...})", "kernels");
    for (;;) {
        DSD_TRY(dsd_yaml_next(r));
        if (r->event.type == YAML_MAPPING_END_EVENT)
            return DSD_OK;
        if (r->event.type != YAML_SCALAR_EVENT)
            return fail_here(r, "expected a kernel name%s", "");
        char kernel[64];
        snprintf(kernel, sizeof kernel, "%s", text(r));
        for (int k = 0; k < p->n_kernels; k++)
            if (!strcmp(p->kernels[k].kernel, kernel))
                return fail_here(r, "kernel %s is listed twice", kernel);
        if (strlen(text(r)) >= sizeof p->kernels[0].kernel)
            return fail_here(r, "kernel name '%s' is too long", kernel);
        if (p->n_kernels >= DSD_PROFILE_MAX_KERNELS)
            return fail_here(r, "too many kernels (at most 8); '%s' is one more", kernel);
        dsd_profile_kernel *pk = &p->kernels[p->n_kernels++];
        memset(pk, 0, sizeof *pk);
        snprintf(pk->kernel, sizeof pk->kernel, "%.31s", kernel);
        DSD_TRY(dsd_yaml_next(r));
        if (r->event.type != YAML_MAPPING_START_EVENT)
            return fail_here(r, "kernel %s must be a mapping of parameters ({NAME: value, ...})",
                             kernel);
        for (;;) {
            DSD_TRY(dsd_yaml_next(r));
            if (r->event.type == YAML_MAPPING_END_EVENT)
                break;
            if (r->event.type != YAML_SCALAR_EVENT)
                return fail_here(r, "expected a parameter name of %s", kernel);
            const char *name = text(r);
            if (strlen(name) >= sizeof pk->names[0])
                return fail_here(r, "parameter name '%s' is too long", name);
            for (int i = 0; i < pk->n; i++)
                if (!strcmp(pk->names[i], name))
                    return fail_here(r, "parameter %s is set twice", name);
            if (pk->n >= DSD_PROFILE_MAX_PARAMS)
                return fail_here(r, "kernel %s has too many parameters (at most 24)", kernel);
            snprintf(pk->names[pk->n], sizeof pk->names[0], "%s", name);
            char key[160];
            snprintf(key, sizeof key, "%s.%s", kernel, name);
            DSD_TRY(dsd_yaml_next(r));
            DSD_TRY(read_uint(r, key, &pk->values[pk->n]));
            pk->n++;
        }
        if (pk->n == 0)
            return fail_here(r, "kernel %s has no parameters", kernel);
    }
}

/* depthwise: strip | tile */
static dsd_status read_depthwise(reader *r, dsd_device_profile *p)
{
    if (r->event.type != YAML_SCALAR_EVENT)
        return fail_here(r, "%s takes a single value (strip or tile)", "depthwise");
    if (!strcmp(text(r), "strip"))
        p->depthwise = DSD_DEPTHWISE_STRIP;
    else if (!strcmp(text(r), "tile"))
        p->depthwise = DSD_DEPTHWISE_TILE;
    else
        return fail_here(r, "depthwise: '%s' is not strip or tile", text(r));
    return DSD_OK;
}

static dsd_status read_document(reader *r, dsd_device_profile *p)
{
    DSD_TRY(dsd_yaml_next(r)); /* stream start */
    DSD_TRY(dsd_yaml_next(r));
    if (r->event.type != YAML_DOCUMENT_START_EVENT)
        return fail_here(r, "expected a device profile (a mapping: name:, kernels:, ...)%s", "");
    DSD_TRY(dsd_yaml_next(r));
    if (r->event.type != YAML_MAPPING_START_EVENT)
        return fail_here(r, "expected a device profile (a mapping: name:, kernels:, ...)%s", "");
    unsigned seen = 0;
    static const char *const keys[] = {"name", "device", "driver", "tuned_at", "work_group",
                                       "kernels", "depthwise"};
    for (;;) {
        DSD_TRY(dsd_yaml_next(r));
        if (r->event.type == YAML_MAPPING_END_EVENT)
            break;
        if (r->event.type != YAML_SCALAR_EVENT)
            return fail_here(r, "expected a key%s", "");
        int k = 0;
        while (k < DSD_NARGS(keys) && strcmp(keys[k], text(r)) != 0)
            k++;
        if (k == DSD_NARGS(keys))
            return fail_here(r, "unknown key '%s' (known: name, device, driver, tuned_at, "
                             "work_group, depthwise, kernels)", text(r));
        if (seen & (1u << k))
            return fail_here(r, "%s is set twice", keys[k]);
        seen |= 1u << k;
        DSD_TRY(dsd_yaml_next(r));
        switch (k) {
        case 0: DSD_TRY(read_string(r, "name", p->name, sizeof p->name)); break;
        case 1: DSD_TRY(read_string(r, "device", p->device, sizeof p->device)); break;
        case 2: DSD_TRY(read_string(r, "driver", p->driver, sizeof p->driver)); break;
        case 3: DSD_TRY(read_string(r, "tuned_at", p->tuned_at, sizeof p->tuned_at)); break;
        case 4: {
            size_t v;
            DSD_TRY(read_uint(r, "work_group", &v));
            if (v > 4096 || (v & (v - 1)) != 0)
                return fail_here(r, "work_group %s must be 0 or a power of two up to 4096",
                                 text(r));
            p->work_group = (int)v;
            break;
        }
        case 5: DSD_TRY(read_kernels(r, p)); break;
        default: DSD_TRY(read_depthwise(r, p)); break;
        }
    }
    DSD_TRY(dsd_yaml_next(r));
    if (r->event.type != YAML_DOCUMENT_END_EVENT)
        return fail_here(r, "expected the end of the document%s", "");
    DSD_TRY(dsd_yaml_next(r));
    if (r->event.type != YAML_STREAM_END_EVENT)
        return fail_here(r, "expected a single document%s", "");
    return DSD_OK;
}

dsd_status dsd_device_profile_load(const char *path, dsd_device_profile *out, dsd_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open the device profile: %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return DSD_FAIL(err, DSD_ERR_IO, "%s: is a directory, not a device profile", path);
    }
    reader r;
    dsd_status st = dsd_yaml_reader_init(&r, path, f, "a device profile", err);
    if (st == DSD_OK)
        st = dsd_yaml_reader_finish(&r, read_document(&r, out));
    fclose(f);
    if (st == DSD_OK && !*out->name)
        snprintf(out->name, sizeof out->name, "profile file");
    if (st != DSD_OK)
        memset(out, 0, sizeof *out);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Writing */

typedef struct writer {
    yaml_emitter_t emitter;
    int failed;
} writer;

static void emit(writer *w, yaml_event_t *e)
{
    if (!w->failed && !yaml_emitter_emit(&w->emitter, e))
        w->failed = 1;
}

static void emit_scalar(writer *w, const char *s, int quoted)
{
    yaml_event_t e;
    yaml_scalar_style_t style = quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                       : YAML_PLAIN_SCALAR_STYLE;
    yaml_scalar_event_initialize(&e, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, 1,
                                 style);
    emit(w, &e);
}

static void emit_mapping(writer *w, int start, int flow)
{
    yaml_event_t e;
    if (start)
        yaml_mapping_start_event_initialize(&e, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE
                                                                    : YAML_BLOCK_MAPPING_STYLE);
    else
        yaml_mapping_end_event_initialize(&e);
    emit(w, &e);
}

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    return fwrite(buffer, 1, size, (FILE *)data) == size;
}

dsd_status dsd_device_profile_save(const char *path, const dsd_device_profile *p,
                                   dsd_error *err)
{
    if (p->n_kernels < 0 || p->n_kernels > DSD_PROFILE_MAX_KERNELS)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "device profile '%s': %d kernels",
                        p->name, p->n_kernels);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot buffer the device profile");
    fputs("# dsdeblur device profile (doc/tuning.md); written by dsdeblur-bench --tune\n", f);
    writer w = {0};
    if (!yaml_emitter_initialize(&w.emitter)) {
        fclose(f);
        free(buf);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot start the YAML emitter");
    }
    yaml_emitter_set_output(&w.emitter, write_handler, f);
    yaml_emitter_set_unicode(&w.emitter, 1);
    yaml_emitter_set_width(&w.emitter, 100);
    yaml_event_t e;
    yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING);
    emit(&w, &e);
    yaml_document_start_event_initialize(&e, NULL, NULL, NULL, 1);
    emit(&w, &e);
    emit_mapping(&w, 1, 0);
    const char *strings[][2] = {{"name", p->name}, {"device", p->device},
                                {"driver", p->driver}, {"tuned_at", p->tuned_at}};
    for (int i = 0; i < 4; i++) {
        if (i > 0 && !*strings[i][1])
            continue;
        emit_scalar(&w, strings[i][0], 0);
        emit_scalar(&w, strings[i][1], 1);
    }
    char num[32];
    emit_scalar(&w, "work_group", 0);
    snprintf(num, sizeof num, "%d", p->work_group);
    emit_scalar(&w, num, 0);
    if (p->depthwise == DSD_DEPTHWISE_STRIP || p->depthwise == DSD_DEPTHWISE_TILE) {
        emit_scalar(&w, "depthwise", 0);
        emit_scalar(&w, p->depthwise == DSD_DEPTHWISE_STRIP ? "strip" : "tile", 0);
    }
    if (p->n_kernels > 0) {
        emit_scalar(&w, "kernels", 0);
        emit_mapping(&w, 1, 0);
        for (int k = 0; k < p->n_kernels; k++) {
            const dsd_profile_kernel *pk = &p->kernels[k];
            emit_scalar(&w, pk->kernel, 0);
            emit_mapping(&w, 1, 1);
            for (int i = 0; i < pk->n && i < DSD_PROFILE_MAX_PARAMS; i++) {
                emit_scalar(&w, pk->names[i], 0);
                snprintf(num, sizeof num, "%zu", pk->values[i]);
                emit_scalar(&w, num, 0);
            }
            emit_mapping(&w, 0, 1);
        }
        emit_mapping(&w, 0, 0);
    }
    emit_mapping(&w, 0, 0);
    yaml_document_end_event_initialize(&e, 1);
    emit(&w, &e);
    yaml_stream_end_event_initialize(&e);
    emit(&w, &e);
    int failed = w.failed || !yaml_emitter_flush(&w.emitter);
    const char *problem = w.emitter.problem;
    dsd_status st = DSD_OK;
    if (failed)
        st = DSD_FAIL(err, DSD_ERR_IO, "writing the device profile failed: %s",
                      problem ? problem : "write error");
    yaml_emitter_delete(&w.emitter);
    if (fclose(f) != 0 && st == DSD_OK)
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot buffer the device profile");
    if (st == DSD_OK) {
        const void *parts[] = {buf};
        size_t sizes[] = {len};
        st = dsd_write_file_atomic(path, parts, sizes, 1, err);
    }
    free(buf);
    return st;
}
