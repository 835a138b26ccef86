/*
 * checkpoint.c: training checkpoints, one safetensors file with both
 * networks' weights, their Adam moments and the trainer's counters, RNG
 * words and configuration text (dsdeblur_io.h lists the names and keys;
 * doc/weights.md shows a file's contents).
 *
 * It does not decide when to checkpoint, keep several generations or know
 * what the RNG words or the configuration text mean: the trainer does. The
 * tensors are always F32, so a load restores every weight and moment bit
 * for bit. Like weight files (src/io/model_file.c, whose helpers it uses),
 * a load validates the whole file on the host before the first upload.
 * Tests: tests/test-model-file.c.
 */
#include "io/model_file.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The four arenas of a checkpoint, in the order of the groups below. */
enum { N_GROUPS = 6 };

static const char *const group_prefix[N_GROUPS] = {
    "generator.",            "discriminator.",
    "optim.generator.m.",    "optim.generator.v.",
    "optim.discriminator.m.", "optim.discriminator.v.",
};

/* Checks ck's pointers and the moments' sizes (what save and load share). */
static dsd_status check_struct(dsd_error *err, const dsd_checkpoint *ck, const char *path,
                               const char *what)
{
    if (!ck || !path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "checkpoint %s: %s is NULL", what,
                        ck ? "path" : "ck");
    if (!ck->g || !ck->d || !ck->g_m || !ck->g_v || !ck->d_m || !ck->d_v)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: checkpoint %s needs both networks "
                        "and all four Adam moment tensors (g, d, g_m, g_v, d_m, d_v)", path,
                        what);
    if (!ck->g->params.values.buf || !ck->d->params.values.buf)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: checkpoint %s: the %s has no "
                        "parameters (not initialized?)", path, what,
                        ck->g->params.values.buf ? "discriminator" : "generator");
    const struct {
        const dsd_tensor *t;
        const char *name;
        size_t count;
    } moments[4] = {
        {.t = ck->g_m, .name = "g_m", .count = ck->g->params.count},
        {.t = ck->g_v, .name = "g_v", .count = ck->g->params.count},
        {.t = ck->d_m, .name = "d_m", .count = ck->d->params.count},
        {.t = ck->d_v, .name = "d_v", .count = ck->d->params.count},
    };
    for (int i = 0; i < 4; i++) {
        if (!moments[i].t->buf || dsd_tensor_numel(moments[i].t) != moments[i].count)
            return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: checkpoint %s: %s holds %zu floats, its "
                            "network has %zu parameters", path, what, moments[i].name,
                            moments[i].t->buf ? dsd_tensor_numel(moments[i].t) : (size_t)0,
                            moments[i].count);
    }
    return DSD_OK;
}

/* The arenas in group order: weights on the device, moments the caller's. */
static void group_tensors(const dsd_checkpoint *ck, const dsd_tensor *t[N_GROUPS],
                          const dsd_params *p[N_GROUPS])
{
    t[0] = &ck->g->params.values;
    t[1] = &ck->d->params.values;
    t[2] = ck->g_m;
    t[3] = ck->g_v;
    t[4] = ck->d_m;
    t[5] = ck->d_v;
    p[0] = p[2] = p[3] = &ck->g->params;
    p[1] = p[4] = p[5] = &ck->d->params;
}

static void free_hosts(float *host[N_GROUPS])
{
    for (int i = 0; i < N_GROUPS; i++) {
        free(host[i]);
        host[i] = NULL;
    }
}

static dsd_status alloc_hosts(dsd_error *err, const char *path, const dsd_params *p[N_GROUPS],
                              float *host[N_GROUPS])
{
    for (int i = 0; i < N_GROUPS; i++) {
        host[i] = malloc(p[i]->count * sizeof(float));
        if (!host[i]) {
            free_hosts(host);
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: %zu host floats for '%s*'", path,
                            p[i]->count, group_prefix[i]);
        }
    }
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Saving */

/* "0123456789abcdef fedcba9876543210" (16 hex digits per word). */
static char *rng_text(const uint64_t *words, int n)
{
    char *s = malloc((size_t)n * 17 + 1);
    if (!s)
        return NULL;
    s[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < n; i++) /* 16 digits, preceded by a space from the second on */
        len += (size_t)snprintf(s + len, 18, "%s%016" PRIx64, i ? " " : "", words[i]);
    return s;
}

dsd_status dsd_checkpoint_save(dsd_context *ctx, const dsd_checkpoint *ck, const char *path)
{
    dsd_error *err = dsd_ctx_err(ctx);
    DSD_TRY(check_struct(err, ck, path, "save"));
    if (ck->n_rng < 0 || ck->n_rng > DSD_CHECKPOINT_RNG_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: checkpoint save: n_rng %d not in "
                        "[0, %d]", path, ck->n_rng, DSD_CHECKPOINT_RNG_MAX);
    if (ck->epoch < 0 || ck->g_adam_t < 0 || ck->d_adam_t < 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: checkpoint save: epoch %d, "
                        "g_adam_t %d, d_adam_t %d must be >= 0", path, ck->epoch, ck->g_adam_t,
                        ck->d_adam_t);

    const dsd_tensor *t[N_GROUPS];
    const dsd_params *p[N_GROUPS];
    float *host[N_GROUPS] = {0};
    group_tensors(ck, t, p);
    DSD_TRY(alloc_hosts(err, path, p, host));

    dsd_status st = DSD_OK;
    dsd_safetensors_writer *w = NULL;
    char *rng = NULL;
    for (int i = 0; i < N_GROUPS && st == DSD_OK; i++)
        st = dsd_tensor_download(ctx, t[i], host[i], p[i]->count);
    if (st != DSD_OK)
        goto done;
    if ((st = dsd_safetensors_writer_init(&w, err)) != DSD_OK)
        goto done;
    for (int i = 0; i < N_GROUPS && st == DSD_OK; i++) {
        dsd_mf_group g = {.prefix = group_prefix[i], .params = p[i], .host = host[i]};
        st = dsd_mf_add_group(w, path, &g, 0, err);
    }
    if (st != DSD_OK)
        goto done;

    rng = rng_text(ck->rng, ck->n_rng);
    if (!rng) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: RNG text", path);
        goto done;
    }
    char version[16], step[32], epoch[16], gt[16], dt[16], seed[24];
    snprintf(version, sizeof version, "%d", DSD_CHECKPOINT_FORMAT_VERSION);
    snprintf(step, sizeof step, "%" PRIu64, ck->step);
    snprintf(epoch, sizeof epoch, "%d", ck->epoch);
    snprintf(gt, sizeof gt, "%d", ck->g_adam_t);
    snprintf(dt, sizeof dt, "%d", ck->d_adam_t);
    snprintf(seed, sizeof seed, "%016" PRIx64, ck->g->dropout_seed);
    const char *meta[][2] = {
        {"format", "dsdeblur-checkpoint"},
        {"format_version", version},
        {"step", step},
        {"epoch", epoch},
        {"optim.generator.t", gt},
        {"optim.discriminator.t", dt},
        {"generator.dropout_seed", seed},
        {"rng", rng},
        {"config", ck->config_text ? ck->config_text : ""},
    };
    for (size_t i = 0; i < sizeof meta / sizeof meta[0] && st == DSD_OK; i++)
        st = dsd_safetensors_writer_set_metadata(w, meta[i][0], meta[i][1], err);
    if (st != DSD_OK ||
        (st = dsd_mf_put_generator_config(w, &ck->g->cfg, err)) != DSD_OK ||
        (st = dsd_mf_put_discriminator_config(w, &ck->d->cfg, err)) != DSD_OK)
        goto done;
    st = dsd_safetensors_writer_save(w, path, err);
done:
    free(rng);
    dsd_safetensors_writer_free(w);
    free_hosts(host);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loading */

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Exactly 16 hex digits at s. */
static int parse_hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        if (!is_hex(s[i]))
            return 0;
        char c = s[i];
        int d = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

static const char *need_meta(const dsd_safetensors *sf, const char *path, const char *key,
                             dsd_error *err, dsd_status *st)
{
    const char *v = dsd_safetensors_metadata(sf, key);
    if (!v)
        *st = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: checkpoint metadata has no '%s'", path, key);
    return v;
}

/* A decimal count in [0, max]. */
static dsd_status meta_count(const dsd_safetensors *sf, const char *path, const char *key,
                             uint64_t max, uint64_t *out, dsd_error *err)
{
    dsd_status st = DSD_OK;
    const char *v = need_meta(sf, path, key, err, &st);
    if (!v)
        return st;
    errno = 0;
    char *end;
    unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (!(v[0] >= '0' && v[0] <= '9') || errno || *end || n > max)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: checkpoint metadata '%s' is '%.32s', not a "
                        "count in [0, %" PRIu64 "]", path, key, v, max);
    *out = n;
    return DSD_OK;
}

typedef struct ckpt_scalars {
    uint64_t step, epoch, g_t, d_t, seed;
    int n_rng;
    uint64_t rng[DSD_CHECKPOINT_RNG_MAX];
    const char *text;
} ckpt_scalars;

static dsd_status read_scalars(const dsd_safetensors *sf, const char *path, ckpt_scalars *s,
                               dsd_error *err)
{
    DSD_TRY(meta_count(sf, path, "step", UINT64_MAX, &s->step, err));
    DSD_TRY(meta_count(sf, path, "epoch", INT_MAX, &s->epoch, err));
    DSD_TRY(meta_count(sf, path, "optim.generator.t", INT_MAX, &s->g_t, err));
    DSD_TRY(meta_count(sf, path, "optim.discriminator.t", INT_MAX, &s->d_t, err));
    dsd_status st = DSD_OK;
    const char *seed = need_meta(sf, path, "generator.dropout_seed", err, &st);
    if (!seed)
        return st;
    if (strlen(seed) != 16 || !parse_hex64(seed, &s->seed))
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: checkpoint metadata 'generator.dropout_seed' "
                        "is '%.32s', not 16 hex digits", path, seed);
    const char *rng = need_meta(sf, path, "rng", err, &st);
    if (!rng)
        return st;
    /* "" or words of 16 hex digits separated by single spaces */
    s->n_rng = 0;
    for (const char *r = rng; *r;) {
        if (s->n_rng == DSD_CHECKPOINT_RNG_MAX)
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: checkpoint metadata 'rng' has more than "
                            "%d words", path, DSD_CHECKPOINT_RNG_MAX);
        if (!parse_hex64(r, &s->rng[s->n_rng]) || (r[16] != '\0' && (r[16] != ' ' || !r[17])))
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: checkpoint metadata 'rng' word %d is not "
                            "16 hex digits followed by a space or the end: '%.40s'", path,
                            s->n_rng, r);
        s->n_rng++;
        r += r[16] ? 17 : 16;
    }
    s->text = need_meta(sf, path, "config", err, &st);
    return s->text ? DSD_OK : st;
}

dsd_status dsd_checkpoint_load(dsd_context *ctx, dsd_checkpoint *ck, const char *path)
{
    dsd_error *err = dsd_ctx_err(ctx);
    DSD_TRY(check_struct(err, ck, path, "load"));

    const dsd_tensor *t[N_GROUPS];
    const dsd_params *p[N_GROUPS];
    float *host[N_GROUPS] = {0};
    group_tensors(ck, t, p);
    dsd_safetensors *sf = NULL;
    char *text = NULL;
    ckpt_scalars s;
    memset(&s, 0, sizeof s);

    dsd_status st = dsd_safetensors_open(path, &sf, err);
    if (st != DSD_OK)
        goto done;
    if ((st = dsd_mf_check_format(sf, path, "dsdeblur-checkpoint",
                                  DSD_CHECKPOINT_FORMAT_VERSION, err)) != DSD_OK)
        goto done;

    /* Both configs before any tensor: a different network is the likely
     * cause of every tensor mismatch, and this names it. */
    dsd_generator_config gc;
    dsd_discriminator_config dc;
    if ((st = dsd_mf_get_generator_config(sf, path, &gc, err)) != DSD_OK ||
        (st = dsd_mf_get_discriminator_config(sf, path, &dc, err)) != DSD_OK)
        goto done;
    char diff[1024] = "";
    int n_diff = dsd_mf_generator_config_diff(&gc, &ck->g->cfg, diff, sizeof diff);
    n_diff += dsd_mf_discriminator_config_diff(&dc, &ck->d->cfg, diff, sizeof diff);
    if (n_diff > 0) {
        st = DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s was saved with %s", path, diff);
        goto done;
    }

    dsd_mf_group groups[N_GROUPS];
    for (int i = 0; i < N_GROUPS; i++)
        groups[i] = (dsd_mf_group){.prefix = group_prefix[i], .params = p[i], .host = NULL};
    if ((st = dsd_mf_check_groups(sf, path, groups, N_GROUPS, 1, err)) != DSD_OK ||
        (st = read_scalars(sf, path, &s, err)) != DSD_OK ||
        (st = alloc_hosts(err, path, p, host)) != DSD_OK)
        goto done;
    for (int i = 0; i < N_GROUPS && st == DSD_OK; i++) {
        groups[i].host = host[i];
        st = dsd_mf_read_group(sf, path, &groups[i], err);
    }
    if (st != DSD_OK)
        goto done;
    text = strdup(s.text);
    if (!text) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: copying the config text", path);
        goto done;
    }

    /* Everything validated: upload, then fill the struct. The casts drop
     * the const group_tensors gave the arenas for saving. */
    for (int i = 0; i < N_GROUPS && st == DSD_OK; i++)
        st = dsd_tensor_upload(ctx, (dsd_tensor *)t[i], host[i], p[i]->count);
    if (st != DSD_OK)
        goto done;
    ck->g->dropout_seed = s.seed;
    ck->step = s.step;
    ck->epoch = (int)s.epoch;
    ck->g_adam_t = (int)s.g_t;
    ck->d_adam_t = (int)s.d_t;
    ck->n_rng = s.n_rng;
    memset(ck->rng, 0, sizeof ck->rng);
    memcpy(ck->rng, s.rng, (size_t)s.n_rng * sizeof s.rng[0]);
    free(ck->owned_text_);
    ck->owned_text_ = text;
    ck->config_text = text;
    text = NULL;
done:
    free(text);
    free_hosts(host);
    dsd_safetensors_close(sf);
    return st;
}

void dsd_checkpoint_clear(dsd_checkpoint *ck)
{
    if (!ck)
        return;
    if (ck->config_text == ck->owned_text_)
        ck->config_text = NULL;
    free(ck->owned_text_);
    ck->owned_text_ = NULL;
}
