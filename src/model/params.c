/*
 * params.c: the parameter arenas every network uses (dsd_params_*; the
 * manual is dsdeblur_model.h, "Parameter arenas"): a table of named
 * parameters in forward order, one device arena for the values and one for
 * the gradients, views into them, and seeded PyTorch-default initialization.
 * Generic: the generator, the discriminator and VGG build their tables with
 * it. Tests: tests/test-generator.c (table, views, initialization).
 */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static dsd_status params_grow(dsd_params *p, dsd_error *err)
{
    if (p->n < p->cap)
        return DSD_OK;
    size_t cap = p->cap ? 2 * p->cap : 64;
    dsd_param_info *info = realloc(p->info, cap * sizeof *info);
    if (!info)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "parameter table of %zu entries", cap);
    p->info = info;
    p->cap = cap;
    return DSD_OK;
}

dsd_status dsd_params_add(dsd_params *p, dsd_error *err, int ndim, const int *shape,
                          dsd_param_init init, int fan_in, const char *name_fmt, ...)
{
    char name[DSD_PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, name_fmt);
    int len = vsnprintf(name, sizeof name, name_fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof name)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter name '%s...' is longer than "
                        "%d characters", name, DSD_PARAM_NAME_MAX - 1);
    if (ndim != 1 && ndim != 4)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter '%s': %d dimensions (1 or 4 "
                        "expected)", name, ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter '%s': dimension %d is %d",
                            name, i, shape[i]);
        numel *= (size_t)shape[i];
    }
    if (fan_in <= 0 && init == DSD_PARAM_INIT_FAN_IN)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter '%s': fan_in %d", name, fan_in);
    if (p->count + numel > (size_t)INT_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter '%s': the arena would exceed "
                        "%d floats", name, INT_MAX);
    if (dsd_params_find(p, name))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "parameter '%s' added twice", name);
    DSD_TRY(params_grow(p, err));

    dsd_param_info *e = &p->info[p->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, (size_t)len + 1);
    e->ndim = ndim;
    for (int i = 0; i < 4; i++)
        e->shape[i] = i < ndim ? shape[i] : 0;
    if (ndim == 4) {
        memcpy(e->nchw, shape, 4 * sizeof(int));
    } else {
        e->nchw[0] = 1;
        e->nchw[1] = shape[0];
        e->nchw[2] = 1;
        e->nchw[3] = 1;
    }
    e->offset = p->count;
    e->numel = numel;
    e->init = init;
    e->fan_in = fan_in;
    p->count += numel;
    return DSD_OK;
}

/* The host-side table only (no device). */
static void params_table_free(dsd_params *p)
{
    free(p->info);
    p->info = NULL;
    p->n = p->cap = 0;
    p->count = 0;
}

dsd_status dsd_params_alloc(dsd_context *ctx, dsd_params *p)
{
    if (p->count == 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "an empty parameter layout");
    const dsd_device_info *dev = dsd_context_device(ctx);
    uint64_t bytes = (uint64_t)p->count * sizeof(float);
    if (bytes > dev->max_alloc_bytes || 2 * bytes > dev->global_mem_bytes)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "parameters and gradients need "
                        "2 x %.1f MiB; the device allows %.1f MiB per buffer and %.1f MiB in all",
                        bytes / 1048576.0, dev->max_alloc_bytes / 1048576.0,
                        dev->global_mem_bytes / 1048576.0);
    dsd_status st = dsd_tensor_init_zero(ctx, &p->values, 1, 1, 1, (int)p->count);
    if (st == DSD_OK)
        st = dsd_tensor_init_zero(ctx, &p->grads, 1, 1, 1, (int)p->count);
    if (st != DSD_OK) {
        dsd_tensor_free(ctx, &p->values);
        dsd_tensor_free(ctx, &p->grads);
    }
    return st;
}

void dsd_params_free(dsd_context *ctx, dsd_params *p)
{
    if (!p)
        return;
    dsd_tensor_free(ctx, &p->values);
    dsd_tensor_free(ctx, &p->grads);
    params_table_free(p);
}

const dsd_param_info *dsd_params_find(const dsd_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->info[i].name, name))
            return &p->info[i];
    return NULL;
}

dsd_status dsd_params_view(dsd_context *ctx, const dsd_tensor *arena, const dsd_param_info *info,
                           dsd_tensor *out)
{
    if (!arena || !info || !out || !arena->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "params_view: NULL or "
                        "unallocated argument");
    if (info->offset + info->numel > dsd_tensor_numel(arena))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "params_view: '%s' (floats %zu .. %zu) "
                        "does not fit an arena of %zu floats", info->name, info->offset,
                        info->offset + info->numel, dsd_tensor_numel(arena));
    dsd_tensor v = *arena;
    v.capacity = 0; /* borrowed: dsd_tensor_free on it gives nothing back */
    v.offset = arena->offset + (cl_uint)info->offset;
    v.n = info->nchw[0];
    v.c = info->nchw[1];
    v.h = info->nchw[2];
    v.w = info->nchw[3];
    *out = v;
    return DSD_OK;
}

/* splitmix64: turns (seed, name hash) into a well-mixed non-zero state. */
static uint64_t splitmix64(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* xorshift64*: uniform in [0, 1) from the top 24 bits (exact in float). */
static float rng_uniform(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (float)((x * UINT64_C(0x2545F4914F6CDD1D)) >> 40) * (1.0f / 16777216.0f);
}

dsd_status dsd_params_init_weights(dsd_context *ctx, dsd_params *p, uint64_t seed)
{
    if (!p->values.buf || dsd_tensor_numel(&p->values) != p->count)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "init_weights: arena not "
                        "allocated");
    float *host = malloc(p->count * sizeof *host);
    if (!host)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "init_weights: %zu host floats",
                        p->count);
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        float *dst = host + e->offset;
        if (e->init == DSD_PARAM_INIT_ONES || e->init == DSD_PARAM_INIT_ZEROS) {
            float v = e->init == DSD_PARAM_INIT_ONES ? 1.0f : 0.0f;
            for (size_t j = 0; j < e->numel; j++)
                dst[j] = v;
            continue;
        }
        uint64_t state = splitmix64(seed ^ dsd_hash64(DSD_HASH64_INIT, e->name, strlen(e->name)));
        if (state == 0)
            state = 1;
        float bound = (float)(1.0 / sqrt((double)e->fan_in));
        for (size_t j = 0; j < e->numel; j++)
            dst[j] = bound * (2.0f * rng_uniform(&state) - 1.0f);
    }
    dsd_status st = dsd_tensor_upload(ctx, &p->values, host, p->count);
    free(host);
    return st;
}
