/*
 * model_file.c: generator and discriminator weight files (dsdeblur_io.h
 * describes the format and the guarantees), plus the pieces checkpoint.c
 * shares (model_file.h): configs as metadata, the format check and
 * parameter arenas as groups of tensors.
 *
 * It does not parse or write safetensors itself (src/io/safetensors.c does,
 * and has already validated the file's structure when anything here runs),
 * and it does not convert foreign checkpoints: names, shapes and config must
 * match the network exactly. Reference for the names: the parameter tables
 * of src/model/generator.c and src/model/discriminator.c, which are PyTorch
 * module paths (doc/weights.md shows a PyTorch load). Tests:
 * tests/test-model-file.c.
 *
 * A load validates the whole file into a host copy of the arena and uploads
 * it in one write at the end, so a failure anywhere leaves the device
 * weights unchanged.
 */
#include "io/model_file.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Config fields as metadata */

typedef enum field_type { FIELD_INT, FIELD_FLOAT } field_type;

typedef struct config_field {
    const char *name;   /* the struct member, also the metadata key's suffix */
    field_type type;
    size_t offset;      /* of the int or float in the config struct */
} config_field;

#define INT_FIELD(T, m) {.name = #m, .type = FIELD_INT, .offset = offsetof(T, m)}
#define FLOAT_FIELD(T, m) {.name = #m, .type = FIELD_FLOAT, .offset = offsetof(T, m)}

/* Every member of dsd_generator_config / dsd_discriminator_config; a field
 * added to a config must be added here (the tests compare the read-back
 * config with memcmp, which catches a forgotten one). */
static const config_field generator_fields[] = {
    INT_FIELD(dsd_generator_config, n_blocks),
    INT_FIELD(dsd_generator_config, base_width),
    INT_FIELD(dsd_generator_config, mlp_ratio),
    INT_FIELD(dsd_generator_config, up_kernel),
    FLOAT_FIELD(dsd_generator_config, dropout),
    FLOAT_FIELD(dsd_generator_config, slope),
};
static const config_field discriminator_fields[] = {
    INT_FIELD(dsd_discriminator_config, in_channels),
    INT_FIELD(dsd_discriminator_config, base_width),
    INT_FIELD(dsd_discriminator_config, n_layers),
    INT_FIELD(dsd_discriminator_config, norm_affine),
    FLOAT_FIELD(dsd_discriminator_config, eps),
    FLOAT_FIELD(dsd_discriminator_config, slope),
};
#define N_FIELDS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct config_kind {
    const char *net;               /* "generator": metadata prefix and message word */
    const config_field *fields;
    size_t n_fields;
} config_kind;

static const config_kind generator_kind = {.net = "generator", .fields = generator_fields,
                                           .n_fields = N_FIELDS(generator_fields)};
static const config_kind discriminator_kind = {.net = "discriminator",
                                               .fields = discriminator_fields,
                                               .n_fields = N_FIELDS(discriminator_fields)};

static int field_int(const void *cfg, const config_field *f)
{
    int v;
    memcpy(&v, (const char *)cfg + f->offset, sizeof v);
    return v;
}

static float field_float(const void *cfg, const config_field *f)
{
    float v;
    memcpy(&v, (const char *)cfg + f->offset, sizeof v);
    return v;
}

void dsd_mf_format_float(char *buf, size_t size, float f)
{
    /* %.9g always reads back exactly; fewer digits usually do ("0.2"). */
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

static void field_text(const void *cfg, const config_field *f, char *buf, size_t size)
{
    if (f->type == FIELD_INT)
        snprintf(buf, size, "%d", field_int(cfg, f));
    else
        dsd_mf_format_float(buf, size, field_float(cfg, f));
}

static dsd_status put_config(dsd_safetensors_writer *w, const config_kind *k, const void *cfg,
                             dsd_error *err)
{
    for (size_t i = 0; i < k->n_fields; i++) {
        char key[96], value[64];
        snprintf(key, sizeof key, "%s.%s", k->net, k->fields[i].name);
        field_text(cfg, &k->fields[i], value, sizeof value);
        DSD_TRY(dsd_safetensors_writer_set_metadata(w, key, value, err));
    }
    return DSD_OK;
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static int parse_int(const char *s, int *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '-'))
        return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < INT_MIN || v > INT_MAX)
        return 0;
    *out = (int)v;
    return 1;
}

/* A finite float with no surrounding blanks. */
static int parse_float(const char *s, float *out)
{
    if (!*s || *s == ' ' || *s == '\t' || *s == '\n')
        return 0;
    errno = 0;
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static dsd_status get_config(const dsd_safetensors *st, const char *path, const config_kind *k,
                             void *cfg, dsd_error *err)
{
    for (size_t i = 0; i < k->n_fields; i++) {
        const config_field *f = &k->fields[i];
        char key[96];
        snprintf(key, sizeof key, "%s.%s", k->net, f->name);
        const char *text = dsd_safetensors_metadata(st, key);
        if (!text)
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: metadata has no '%s' (the %s config is "
                            "incomplete)", path, key, k->net);
        int ok;
        if (f->type == FIELD_INT) {
            int v = 0;
            ok = parse_int(text, &v);
            memcpy((char *)cfg + f->offset, &v, sizeof v);
        } else {
            float v = 0.0f;
            ok = parse_float(text, &v);
            memcpy((char *)cfg + f->offset, &v, sizeof v);
        }
        if (!ok)
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: metadata '%s' is '%.64s', not %s", path,
                            key, text, f->type == FIELD_INT ? "an integer" : "a finite number");
    }
    return DSD_OK;
}

static int config_diff(const config_kind *k, const void *file, const void *model, char *buf,
                       size_t size)
{
    int n = 0;
    size_t len = size ? strlen(buf) : 0;
    for (size_t i = 0; i < k->n_fields; i++) {
        const config_field *f = &k->fields[i];
        int same = f->type == FIELD_INT ? field_int(file, f) == field_int(model, f)
                                        : field_float(file, f) == field_float(model, f);
        if (same)
            continue;
        char a[64], b[64];
        field_text(file, f, a, sizeof a);
        field_text(model, f, b, sizeof b);
        if (len < size) {
            int w = snprintf(buf + len, size - len, "%s%s %s %s, this model has %s",
                             len ? "; " : "", k->net, f->name, a, b);
            len += w > 0 ? (size_t)w : 0;
        }
        n++;
    }
    return n;
}

dsd_status dsd_mf_put_generator_config(dsd_safetensors_writer *w,
                                       const dsd_generator_config *cfg, dsd_error *err)
{
    return put_config(w, &generator_kind, cfg, err);
}

dsd_status dsd_mf_put_discriminator_config(dsd_safetensors_writer *w,
                                           const dsd_discriminator_config *cfg, dsd_error *err)
{
    return put_config(w, &discriminator_kind, cfg, err);
}

dsd_status dsd_mf_get_generator_config(const dsd_safetensors *st, const char *path,
                                       dsd_generator_config *cfg, dsd_error *err)
{
    dsd_generator_config c;
    memset(&c, 0, sizeof c);
    DSD_TRY(get_config(st, path, &generator_kind, &c, err));
    dsd_error why;
    dsd_error_clear(&why);
    if (dsd_generator_config_check(&c, &why) != DSD_OK)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: the saved config is not valid: %s", path,
                        why.message);
    *cfg = c;
    return DSD_OK;
}

dsd_status dsd_mf_get_discriminator_config(const dsd_safetensors *st, const char *path,
                                           dsd_discriminator_config *cfg, dsd_error *err)
{
    dsd_discriminator_config c;
    memset(&c, 0, sizeof c);
    DSD_TRY(get_config(st, path, &discriminator_kind, &c, err));
    dsd_error why;
    dsd_error_clear(&why);
    if (dsd_discriminator_config_check(&c, &why) != DSD_OK)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: the saved config is not valid: %s", path,
                        why.message);
    *cfg = c;
    return DSD_OK;
}

int dsd_mf_generator_config_diff(const dsd_generator_config *file,
                                 const dsd_generator_config *model, char *buf, size_t size)
{
    return config_diff(&generator_kind, file, model, buf, size);
}

int dsd_mf_discriminator_config_diff(const dsd_discriminator_config *file,
                                     const dsd_discriminator_config *model, char *buf,
                                     size_t size)
{
    return config_diff(&discriminator_kind, file, model, buf, size);
}

/* ------------------------------------------------------------------------ */
/* Format check */

/* What a format string is, in words, and what to do with such a file: the
 * commands, since the person reading is most often at a shell (a mismatch is
 * typically `dsdeblur-train --resume generator.safetensors`). NULL for a
 * format this library does not write. */
static const char *format_noun(const char *format)
{
    if (!strcmp(format, "dsdeblur-checkpoint"))
        return "a training checkpoint";
    if (!strcmp(format, "dsdeblur-generator"))
        return "a generator weight file";
    if (!strcmp(format, "dsdeblur-discriminator"))
        return "a discriminator weight file";
    return NULL;
}

static const char *format_use(const char *format)
{
    if (!strcmp(format, "dsdeblur-checkpoint"))
        return "; `dsdeblur-train -c RUN_DIR/config.yaml --resume FILE` continues its training, "
               "and with `--export OUT.safetensors` writes its generator for dsdeblur-run";
    if (!strcmp(format, "dsdeblur-generator"))
        return "; generator weights are for `dsdeblur-run -m FILE` and `dsdeblur-eval -m FILE`, "
               "and training resumes only from a checkpoint (checkpoint-<step>.safetensors in "
               "run.dir)";
    return "";
}

dsd_status dsd_mf_check_format(const dsd_safetensors *st, const char *path,
                               const char *expected, int version, dsd_error *err)
{
    const char *format = dsd_safetensors_metadata(st, "format");
    if (!format)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: a safetensors file without a 'format' "
                        "metadata key, not a dsdeblur file (expected '%s')", path, expected);
    if (strcmp(format, expected)) {
        if (format_noun(format) && format_noun(expected))
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: %s, not %s ('format' is '%s', expected "
                            "'%s')%s", path, format_noun(format), format_noun(expected), format,
                            expected, format_use(format));
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: 'format' is '%.64s', expected '%s'", path,
                        format, expected);
    }
    const char *v = dsd_safetensors_metadata(st, "format_version");
    int n = 0;
    if (!v || !parse_int(v, &n))
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: 'format_version' is %s%.32s%s, not an "
                        "integer", path, v ? "'" : "", v ? v : "missing", v ? "'" : "");
    if (n != version)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: format_version %d, this library reads "
                        "version %d%s", path, n, version,
                        n > version ? " (written by a newer dsdeblur)" : "");
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Arenas as groups of tensors */

static void group_name(char *buf, const dsd_mf_group *g, const dsd_param_info *e)
{
    snprintf(buf, DSD_MF_NAME_MAX, "%s%s", g->prefix, e->name);
}

static void info_shape(const dsd_param_info *e, int64_t *shape)
{
    for (int d = 0; d < e->ndim; d++)
        shape[d] = e->shape[d];
}

static const char *shape_text(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, d ? "," : "", shape[d]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
    return buf;
}

dsd_status dsd_mf_add_group(dsd_safetensors_writer *w, const char *path, const dsd_mf_group *g,
                            int store_f16, dsd_error *err)
{
    for (size_t i = 0; i < g->params->n; i++) {
        const dsd_param_info *e = &g->params->info[i];
        char name[DSD_MF_NAME_MAX];
        group_name(name, g, e);
        const float *v = g->host + e->offset;
        for (size_t j = 0; j < e->numel; j++) {
            if (!isfinite(v[j]))
                return DSD_FAIL(err, DSD_ERR_NAN, "%s: not saved: tensor '%s' element %zu is "
                                "%g", path, name, j, (double)v[j]);
            /* 65520 and up round to infinity in F16 (dsd_st_f32_to_f16). */
            if (store_f16 && fabsf(v[j]) >= 65520.0f)
                return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: not saved: tensor '%s' "
                                "element %zu is %g, beyond F16's range (65504); save as F32",
                                path, name, j, (double)v[j]);
        }
        int64_t shape[4];
        info_shape(e, shape);
        DSD_TRY(dsd_safetensors_writer_add_f32(w, name, e->ndim, shape, v, store_f16, err));
    }
    return DSD_OK;
}

/* Non-zero when name is prefix + an entry of one of the groups. */
static int expected_name(const dsd_mf_group *groups, int n_groups, const char *name)
{
    for (int i = 0; i < n_groups; i++) {
        size_t len = strlen(groups[i].prefix);
        if (!strncmp(name, groups[i].prefix, len) && dsd_params_find(groups[i].params, name + len))
            return 1;
    }
    return 0;
}

dsd_status dsd_mf_check_groups(const dsd_safetensors *st, const char *path,
                               const dsd_mf_group *groups, int n_groups, int f32_only,
                               dsd_error *err)
{
    for (int gi = 0; gi < n_groups; gi++) {
        const dsd_mf_group *g = &groups[gi];
        for (size_t i = 0; i < g->params->n; i++) {
            const dsd_param_info *e = &g->params->info[i];
            char name[DSD_MF_NAME_MAX], want[96], have[96];
            group_name(name, g, e);
            int64_t shape[4];
            info_shape(e, shape);
            const dsd_st_tensor *t = dsd_safetensors_find(st, name);
            if (!t)
                return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: missing tensor '%s' (shape %s)", path,
                                name, shape_text(want, sizeof want, e->ndim, shape));
            int same = t->ndim == e->ndim;
            for (int d = 0; same && d < e->ndim; d++)
                same = t->shape[d] == shape[d];
            if (!same)
                return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensor '%s' has shape %s, this model "
                                "needs %s", path, name,
                                shape_text(have, sizeof have, t->ndim, t->shape),
                                shape_text(want, sizeof want, e->ndim, shape));
            int float_type = t->dtype == DSD_ST_F32 ||
                             (!f32_only && (t->dtype == DSD_ST_F16 || t->dtype == DSD_ST_BF16));
            if (!float_type)
                return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensor '%s' is %s; expected %s", path,
                                name, dsd_st_dtype_name(t->dtype),
                                f32_only ? "F32 (checkpoints are stored exactly)"
                                         : "F32, F16 or BF16");
        }
    }
    size_t n = dsd_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const dsd_st_tensor *t = dsd_safetensors_tensor(st, i);
        if (!expected_name(groups, n_groups, t->name))
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: unexpected tensor '%.*s' (the file has %zu "
                            "tensors; this model has no such parameter)", path,
                            DSD_MF_NAME_MAX, t->name, n);
    }
    return DSD_OK;
}

dsd_status dsd_mf_read_group(const dsd_safetensors *st, const char *path, const dsd_mf_group *g,
                             dsd_error *err)
{
    for (size_t i = 0; i < g->params->n; i++) {
        const dsd_param_info *e = &g->params->info[i];
        char name[DSD_MF_NAME_MAX];
        group_name(name, g, e);
        int64_t shape[4];
        info_shape(e, shape);
        float *v = g->host + e->offset;
        DSD_TRY(dsd_safetensors_read_f32(st, name, e->ndim, shape, v, err));
        for (size_t j = 0; j < e->numel; j++)
            if (!isfinite(v[j]))
                return DSD_FAIL(err, DSD_ERR_NAN, "%s: tensor '%s' element %zu is %g", path,
                                name, j, (double)v[j]);
    }
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Weight files */

typedef struct net_file {
    const char *format;            /* "dsdeblur-generator" */
    const config_kind *kind;
    const void *cfg;               /* the network's config */
    const dsd_params *params;
} net_file;

static dsd_status save_net(dsd_context *ctx, const net_file *nf, const char *path,
                           dsd_storage storage)
{
    dsd_error *err = dsd_ctx_err(ctx);
    if (!path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s save: path is NULL", nf->kind->net);
    if (storage != DSD_STORAGE_F32 && storage != DSD_STORAGE_F16)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: storage %d is neither F32 nor F16",
                        path, (int)storage);
    const dsd_params *p = nf->params;
    if (!p->values.buf || p->n == 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: the %s has no parameters (not "
                        "initialized?)", path, nf->kind->net);

    dsd_status st = DSD_OK;
    dsd_safetensors_writer *w = NULL;
    float *host = malloc(p->count * sizeof *host);
    if (!host) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: %zu host floats for the %s's weights",
                      path, p->count, nf->kind->net);
        goto done;
    }
    if ((st = dsd_tensor_download(ctx, &p->values, host, p->count)) != DSD_OK)
        goto done;
    if ((st = dsd_safetensors_writer_init(&w, err)) != DSD_OK)
        goto done;
    dsd_mf_group g = {.prefix = "", .params = p, .host = host};
    char version[16];
    snprintf(version, sizeof version, "%d", DSD_WEIGHTS_FORMAT_VERSION);
    if ((st = dsd_mf_add_group(w, path, &g, storage == DSD_STORAGE_F16, err)) != DSD_OK ||
        (st = dsd_safetensors_writer_set_metadata(w, "format", nf->format, err)) != DSD_OK ||
        (st = dsd_safetensors_writer_set_metadata(w, "format_version", version, err)) != DSD_OK ||
        (st = put_config(w, nf->kind, nf->cfg, err)) != DSD_OK)
        goto done;
    st = dsd_safetensors_writer_save(w, path, err);
done:
    dsd_safetensors_writer_free(w);
    free(host);
    return st;
}

/* Reads the file's config into file_cfg (a struct of the kind's type) and
 * compares it with the model's. */
static dsd_status check_config(const dsd_safetensors *st, const char *path,
                               const config_kind *k, const void *model_cfg, void *file_cfg,
                               dsd_error *err)
{
    if (k == &generator_kind)
        DSD_TRY(dsd_mf_get_generator_config(st, path, file_cfg, err));
    else
        DSD_TRY(dsd_mf_get_discriminator_config(st, path, file_cfg, err));
    char diff[1024] = "";
    if (config_diff(k, file_cfg, model_cfg, diff, sizeof diff) > 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s was saved with %s", path, diff);
    return DSD_OK;
}

static dsd_status load_net(dsd_context *ctx, const net_file *nf, dsd_params *p,
                           const char *path)
{
    dsd_error *err = dsd_ctx_err(ctx);
    if (!path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s load: path is NULL", nf->kind->net);
    if (!p->values.buf || p->n == 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: the %s has no parameters (not "
                        "initialized?)", path, nf->kind->net);
    dsd_safetensors *sf = NULL;
    float *host = NULL;
    union {
        dsd_generator_config g;
        dsd_discriminator_config d;
    } file_cfg;
    dsd_status st = dsd_safetensors_open(path, &sf, err);
    if (st != DSD_OK)
        goto done;
    if ((st = dsd_mf_check_format(sf, path, nf->format, DSD_WEIGHTS_FORMAT_VERSION, err)) !=
            DSD_OK ||
        (st = check_config(sf, path, nf->kind, nf->cfg, &file_cfg, err)) != DSD_OK)
        goto done;
    dsd_mf_group g = {.prefix = "", .params = p, .host = NULL};
    if ((st = dsd_mf_check_groups(sf, path, &g, 1, 0, err)) != DSD_OK)
        goto done;
    host = malloc(p->count * sizeof *host);
    if (!host) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: %zu host floats for the %s's weights",
                      path, p->count, nf->kind->net);
        goto done;
    }
    g.host = host;
    if ((st = dsd_mf_read_group(sf, path, &g, err)) != DSD_OK)
        goto done;
    /* Everything validated: one upload of the whole arena. */
    st = dsd_tensor_upload(ctx, &p->values, host, p->count);
done:
    free(host);
    dsd_safetensors_close(sf);
    return st;
}

static net_file generator_file(const dsd_generator *g)
{
    net_file nf = {.format = "dsdeblur-generator", .kind = &generator_kind, .cfg = &g->cfg,
                   .params = &g->params};
    return nf;
}

static net_file discriminator_file(const dsd_discriminator *d)
{
    net_file nf = {.format = "dsdeblur-discriminator", .kind = &discriminator_kind,
                   .cfg = &d->cfg, .params = &d->params};
    return nf;
}

dsd_status dsd_generator_save(dsd_context *ctx, const dsd_generator *g, const char *path,
                              dsd_storage storage)
{
    if (!g)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "generator save: g is NULL");
    net_file nf = generator_file(g);
    return save_net(ctx, &nf, path, storage);
}

dsd_status dsd_generator_load(dsd_context *ctx, dsd_generator *g, const char *path)
{
    if (!g)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "generator load: g is NULL");
    net_file nf = generator_file(g);
    return load_net(ctx, &nf, &g->params, path);
}

dsd_status dsd_discriminator_save(dsd_context *ctx, const dsd_discriminator *d,
                                  const char *path, dsd_storage storage)
{
    if (!d)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT,
                        "discriminator save: d is NULL");
    net_file nf = discriminator_file(d);
    return save_net(ctx, &nf, path, storage);
}

dsd_status dsd_discriminator_load(dsd_context *ctx, dsd_discriminator *d, const char *path)
{
    if (!d)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT,
                        "discriminator load: d is NULL");
    net_file nf = discriminator_file(d);
    return load_net(ctx, &nf, &d->params, path);
}

/* The config of a weight file of `format` or of a checkpoint. */
static dsd_status file_config(const char *path, const char *format, const config_kind *k,
                              void *out, dsd_error *err)
{
    if (!path || !out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s file_config: %s is NULL", k->net,
                        path ? "out" : "path");
    dsd_safetensors *sf = NULL;
    DSD_TRY(dsd_safetensors_open(path, &sf, err));
    const char *f = dsd_safetensors_metadata(sf, "format");
    dsd_status st;
    if (f && !strcmp(f, "dsdeblur-checkpoint"))
        st = dsd_mf_check_format(sf, path, f, DSD_CHECKPOINT_FORMAT_VERSION, err);
    else
        st = dsd_mf_check_format(sf, path, format, DSD_WEIGHTS_FORMAT_VERSION, err);
    if (st == DSD_OK) {
        if (k == &generator_kind)
            st = dsd_mf_get_generator_config(sf, path, out, err);
        else
            st = dsd_mf_get_discriminator_config(sf, path, out, err);
    }
    dsd_safetensors_close(sf);
    return st;
}

dsd_status dsd_generator_file_config(const char *path, dsd_generator_config *out, dsd_error *err)
{
    return file_config(path, "dsdeblur-generator", &generator_kind, out, err);
}

dsd_status dsd_discriminator_file_config(const char *path, dsd_discriminator_config *out,
                                         dsd_error *err)
{
    return file_config(path, "dsdeblur-discriminator", &discriminator_kind, out, err);
}
