/*
 * layer_profile.c: wall time per named scope (dsdeblur.h, "Layer
 * profiling"), for finding where a training step or an inference spends its
 * time when OpenCL events cannot say: CLBlast runs helper kernels outside the
 * one event it returns, and host work and transfers have no event at all.
 *
 * At every scope boundary the queue is drained (clFinish) and the time since
 * the previous boundary is charged to the innermost open scope, so the
 * scopes' times are exclusive and add up to the wall time of the interval.
 * It does not time anything by itself: the networks and the trainer open
 * scopes around their layers and sections.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SCOPE_DEPTH_MAX = 16 };
#define OUTSIDE_NAME "(outside scopes)"

struct dsd_layer_profile {
    char stack[SCOPE_DEPTH_MAX][64]; /* open scopes, innermost last */
    int depth;                       /* may exceed the stack: deeper scopes charge the last */
    double mark;                     /* seconds: the last boundary */
    dsd_profile_entry *buckets;      /* per name, first-seen order */
    size_t n, cap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static dsd_profile_entry *bucket(struct dsd_layer_profile *lp, const char *name)
{
    for (size_t i = 0; i < lp->n; i++)
        if (!strcmp(lp->buckets[i].name, name))
            return &lp->buckets[i];
    if (lp->n == lp->cap) {
        size_t cap = lp->cap ? 2 * lp->cap : 64;
        dsd_profile_entry *grown = realloc(lp->buckets, cap * sizeof *grown);
        if (!grown)
            return NULL; /* profiling only: the time is dropped */
        lp->buckets = grown;
        lp->cap = cap;
    }
    dsd_profile_entry *e = &lp->buckets[lp->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

/* Drains the queue and charges the time since the last boundary. */
static void boundary(dsd_context *ctx, struct dsd_layer_profile *lp)
{
    clFinish(ctx->queue); /* profiling only: an error shows up at the next real call */
    double t = now_s();
    int top = lp->depth < SCOPE_DEPTH_MAX ? lp->depth : SCOPE_DEPTH_MAX;
    dsd_profile_entry *e = bucket(lp, top > 0 ? lp->stack[top - 1] : OUTSIDE_NAME);
    if (e)
        e->total_ms += (t - lp->mark) * 1e3;
    lp->mark = t;
}

void dsd_profile_layers_enable(dsd_context *ctx, int on)
{
    if (!on) {
        dsd_layer_profile_free(ctx);
        return;
    }
    if (!ctx->layer_profile) {
        ctx->layer_profile = calloc(1, sizeof *ctx->layer_profile);
        if (ctx->layer_profile)
            ctx->layer_profile->mark = now_s();
    }
}

int dsd_profile_layers_enabled(const dsd_context *ctx)
{
    return ctx->layer_profile != NULL;
}

void dsd_profile_scope_begin(dsd_context *ctx, const char *fmt, ...)
{
    struct dsd_layer_profile *lp = ctx->layer_profile;
    if (!lp)
        return;
    boundary(ctx, lp);
    if (lp->depth < SCOPE_DEPTH_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(lp->stack[lp->depth], sizeof lp->stack[0], fmt, ap);
        va_end(ap);
        dsd_profile_entry *e = bucket(lp, lp->stack[lp->depth]);
        if (e)
            e->count++;
    }
    lp->depth++;
}

void dsd_profile_scope_end(dsd_context *ctx)
{
    struct dsd_layer_profile *lp = ctx->layer_profile;
    if (!lp || lp->depth == 0)
        return;
    boundary(ctx, lp);
    lp->depth--;
}

dsd_status dsd_profile_layers_collect(dsd_context *ctx, dsd_profile_entry **out, size_t *count)
{
    struct dsd_layer_profile *lp = ctx->layer_profile;
    *out = NULL;
    *count = 0;
    if (!lp)
        return DSD_OK;
    boundary(ctx, lp);
    *out = malloc((lp->n ? lp->n : 1) * sizeof **out);
    if (!*out)
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "layer profile: out of host memory");
    memcpy(*out, lp->buckets, lp->n * sizeof **out);
    *count = lp->n;
    return DSD_OK;
}

void dsd_profile_layers_reset(dsd_context *ctx)
{
    struct dsd_layer_profile *lp = ctx->layer_profile;
    if (!lp)
        return;
    clFinish(ctx->queue);
    lp->n = 0;
    lp->depth = 0;
    lp->mark = now_s();
}

void dsd_layer_profile_free(dsd_context *ctx)
{
    if (!ctx->layer_profile)
        return;
    free(ctx->layer_profile->buckets);
    free(ctx->layer_profile);
    ctx->layer_profile = NULL;
}
