/*
 * tune.c: the GEMM tuner behind dsdeblur-bench --tune (dsdeblur_tune.h;
 * doc/tuning.md, "Tuning a device").
 *
 * It derives the products the networks run from their plans (the same
 * routes and chunking conv2d.c takes), keeps those that carry most of the
 * multiply-adds, and times a fixed list of Xgemm configurations on them
 * through dsd_gemm, each applied with CLBlastOverrideParameters
 * (dsd_context_apply_profile; CLBlast drops its compiled Xgemm programs for
 * the device when its parameters change). A candidate's time is a short
 * warm-up (compilation, see time_shapes) and then one timed run of every
 * shape, each shape's time weighted by how often a pass runs it; clFinish
 * brackets each shape.
 *
 * It does not search: the list is fixed (dsd_tune_candidates), so a run is
 * minutes and its outcome is one of a known set. Every candidate computes
 * each C element as the same dot product up to summation order, so any
 * winner is as accurate as the others; the check against a host double
 * product guards against a configuration CLBlast runs wrongly on a device.
 */
#include "internal.h"
#include "dsdeblur_tune.h"
#include "dsdeblur_train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Shapes from plans */

static dsd_status add_shape(dsd_gemm_shape **shapes, size_t *n, size_t m, size_t nn, size_t k,
                            int ta, int tb, double count, dsd_error *err)
{
    if (m == 0 || nn == 0 || k == 0 || count <= 0)
        return DSD_OK;
    for (size_t i = 0; i < *n; i++) {
        dsd_gemm_shape *s = &(*shapes)[i];
        if (s->m == m && s->n == nn && s->k == k && s->trans_a == ta && s->trans_b == tb) {
            s->count += count;
            return DSD_OK;
        }
    }
    dsd_gemm_shape *grown = realloc(*shapes, (*n + 1) * sizeof *grown);
    if (!grown)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory for the GEMM shapes");
    *shapes = grown;
    grown[*n] = (dsd_gemm_shape){m, nn, k, ta, tb, count};
    (*n)++;
    return DSD_OK;
}

/* The products of one convolution (conv2d.c: forward_image, backward_image,
 * the pointwise paths), counted per pass. */
static dsd_status conv_shapes(const dsd_conv2d_plan *c, int training, int with_dw,
                              dsd_gemm_shape **shapes, size_t *n, dsd_error *err)
{
    const double images = c->n;
    const size_t cout = (size_t)c->cout;
    if (c->forward == DSD_CONV2D_ROUTE_POINTWISE) {
        size_t plane = (size_t)c->h * c->w, cin = (size_t)c->cin;
        DSD_TRY(add_shape(shapes, n, plane, cout, cin, 0, 0, images, err));
        if (training) {
            if (with_dw)
                DSD_TRY(add_shape(shapes, n, cin, cout, plane, 1, 0, images, err));
            DSD_TRY(add_shape(shapes, n, plane, cin, cout, 0, 1, images, err));
        }
        return DSD_OK;
    }
    if (c->chunk_rows <= 0)
        return DSD_OK;
    const size_t kc = (size_t)c->cin * c->params.kernel_h * c->params.kernel_w;
    const int full = c->oh / c->chunk_rows, tail = c->oh % c->chunk_rows;
    for (int part = 0; part < 2; part++) {
        int rows = part == 0 ? c->chunk_rows : tail;
        double count = images * (part == 0 ? full : 1);
        if (rows == 0 || count == 0)
            continue;
        size_t cols = (size_t)rows * c->ow;
        if (c->forward == DSD_CONV2D_ROUTE_IM2COL)
            DSD_TRY(add_shape(shapes, n, cols, cout, kc, 0, 0, count, err));
        if (training && c->backward == DSD_CONV2D_ROUTE_IM2COL) {
            if (with_dw)
                DSD_TRY(add_shape(shapes, n, kc, cout, cols, 1, 0, count, err));
            DSD_TRY(add_shape(shapes, n, cols, kc, cout, 0, 1, count, err));
        }
    }
    return DSD_OK;
}

dsd_status dsd_tune_shapes_from_plan(const dsd_network_plan *plan, int training, int with_dw,
                                     dsd_gemm_shape **shapes, size_t *n_shapes, dsd_error *err)
{
    for (size_t i = 0; i < plan->n_layers; i++)
        DSD_TRY(conv_shapes(&plan->layers[i].conv, training, with_dw, shapes, n_shapes, err));
    return DSD_OK;
}

static double shape_macs(const dsd_gemm_shape *s)
{
    return (double)s->m * (double)s->n * (double)s->k;
}

static int cmp_weight(const void *pa, const void *pb)
{
    const dsd_gemm_shape *a = pa, *b = pb;
    double wa = a->count * shape_macs(a), wb = b->count * shape_macs(b);
    if (wa != wb)
        return wa > wb ? -1 : 1;
    /* ties: a fixed order, so the selection is deterministic */
    if (a->m != b->m) return a->m < b->m ? -1 : 1;
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    if (a->k != b->k) return a->k < b->k ? -1 : 1;
    if (a->trans_a != b->trans_a) return a->trans_a - b->trans_a;
    return a->trans_b - b->trans_b;
}

void dsd_tune_shapes_select(dsd_gemm_shape *shapes, size_t *n_shapes, size_t max_shapes)
{
    if (*n_shapes > 1)
        qsort(shapes, *n_shapes, sizeof *shapes, cmp_weight);
    if (*n_shapes > max_shapes)
        *n_shapes = max_shapes;
}

/* ------------------------------------------------------------------------ */
/* Candidates */

#define XCFG(lbl, mwg_, nwg_, kwg_, mdimc_, ndimc_, mdima_, ndimb_, kwi_, vwm_, vwn_, strm_, \
             strn_, sa_, sb_) \
    {.label = lbl, .gemmk = 0, .mwg = mwg_, .nwg = nwg_, .kwg = kwg_, .mdimc = mdimc_, \
     .ndimc = ndimc_, .mdima = mdima_, .ndimb = ndimb_, .kwi = kwi_, .vwm = vwm_, .vwn = vwn_, \
     .strm = strm_, .strn = strn_, .sa = sa_, .sb = sb_, .kreg = 1, .min_indirect = 256}

/* The fixed list. The first is the built-in PoCL CPU profile
 * (device_profile.c: one work-item per work-group, no local memory), then
 * its neighbours of the same kind (tile sizes, depth), then the built-in of
 * the earlier rounds (64 x 64 x 64 with local memory, 8 x 8 work-items) and
 * the generic shape CLBlast falls back to for unknown devices (64 x 64
 * tiles, 32 deep, vectors of 4, no local memory); the rest vary one thing at
 * a time around them (tile sizes, depth, vector widths, local memory,
 * strided access) plus larger tiles for GPUs. Invalid ones for a device are
 * dropped, not adjusted. */
static const dsd_xgemm_config candidates[] = {
    XCFG("cpu 32x16x64 v8 1x1", 32, 16, 64, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0),
    XCFG("16x16x64 v8 1x1", 16, 16, 64, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0),
    XCFG("32x8x64 v8 1x1", 32, 8, 64, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0),
    XCFG("32x16x128 v8 1x1", 32, 16, 128, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0),
    XCFG("16x32x64 v8 1x1", 16, 32, 64, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0),
    XCFG("cpu 64x64x64 v8 local", 64, 64, 64, 8, 8, 8, 8, 2, 8, 8, 0, 0, 1, 1),
    XCFG("64x64x32 v8 local", 64, 64, 32, 8, 8, 8, 8, 2, 8, 8, 0, 0, 1, 1),
    XCFG("64x64x32 v4 local", 64, 64, 32, 8, 8, 8, 8, 2, 4, 4, 0, 0, 1, 1),
    XCFG("64x64x32 16x8 v4", 64, 64, 32, 16, 8, 16, 8, 2, 4, 4, 0, 0, 0, 0),
    XCFG("64x64x32 v4", 64, 64, 32, 8, 8, 8, 8, 2, 4, 4, 0, 0, 0, 0),
    XCFG("32x32x32 v4 local", 32, 32, 32, 8, 8, 8, 8, 2, 4, 4, 0, 0, 1, 1),
    XCFG("128x64x32 v8/4 local", 128, 64, 32, 8, 8, 8, 8, 2, 8, 4, 0, 0, 1, 1),
    XCFG("64x128x32 v4/8 local", 64, 128, 32, 8, 8, 8, 8, 2, 4, 8, 0, 0, 1, 1),
    XCFG("64x64x16 v4 local", 64, 64, 16, 8, 8, 8, 8, 2, 4, 4, 0, 0, 1, 1),
    XCFG("64x64x64 v4 local", 64, 64, 64, 8, 8, 8, 8, 2, 4, 4, 0, 0, 1, 1),
    XCFG("128x128x32 v8 local", 128, 128, 32, 8, 8, 8, 8, 2, 8, 8, 0, 0, 1, 1),
    XCFG("128x64x64 v8/4 local", 128, 64, 64, 8, 8, 8, 8, 2, 8, 4, 0, 0, 1, 1),
    XCFG("64x64x32 v4 local strided", 64, 64, 32, 8, 8, 8, 8, 2, 4, 4, 1, 1, 1, 1),
    XCFG("64x64x32 v2 local", 64, 64, 32, 8, 8, 8, 8, 2, 2, 2, 0, 0, 1, 1),
    XCFG("64x64x32 16x16 local", 64, 64, 32, 16, 16, 16, 16, 2, 4, 4, 0, 0, 1, 1),
    XCFG("32x128x32 8x16 v4 local", 32, 128, 32, 8, 16, 8, 16, 2, 4, 4, 0, 0, 1, 1),
    XCFG("gpu 128x128x16 v2 local", 128, 128, 16, 16, 16, 16, 16, 2, 2, 2, 0, 0, 1, 1),
    XCFG("gpu 64x64x16 v2 local", 64, 64, 16, 16, 16, 16, 16, 2, 2, 2, 0, 0, 1, 1),
};

/* The thresholds the second stage tries for the fastest configuration. */
static const size_t min_indirect_sizes[] = {128, 256, 512, 1024};

int dsd_xgemm_config_valid(const dsd_device_info *dev, const dsd_xgemm_config *c, char *why,
                           size_t why_size)
{
    const char *rule = NULL;
    size_t threads = c->mdimc * c->ndimc;
    if (!c->mwg || !c->nwg || !c->kwg || !c->mdimc || !c->ndimc || !c->mdima || !c->ndimb ||
        !c->kwi || !c->vwm || !c->vwn)
        rule = "a zero parameter";
    else if (c->gemmk != 0 || c->kreg != 1)
        rule = "GEMMK 0 with KREG 1 only";
    else if (c->mwg % (c->mdimc * c->vwm))
        rule = "MWG % (MDIMC * VWM) != 0";
    else if (c->nwg % (c->ndimc * c->vwn))
        rule = "NWG % (NDIMC * VWN) != 0";
    else if (c->mwg % (c->mdima * c->vwm))
        rule = "MWG % (MDIMA * VWM) != 0";
    else if (c->nwg % (c->ndimb * c->vwn))
        rule = "NWG % (NDIMB * VWN) != 0";
    else if (threads % c->mdima || threads % c->ndimb)
        rule = "MDIMC * NDIMC not a multiple of MDIMA and NDIMB";
    else if (c->kwg % (threads / c->mdima))
        rule = "KWG % ((MDIMC * NDIMC) / MDIMA) != 0";
    else if (c->kwg % (threads / c->ndimb))
        rule = "KWG % ((MDIMC * NDIMC) / NDIMB) != 0";
    else if (c->kwg % c->kwi)
        rule = "KWG % KWI != 0";
    else if (dev && threads > dev->max_work_group_size)
        rule = "MDIMC * NDIMC above the device's work-group size";
    else if (dev && (c->sa * c->kwg * c->mwg + c->sb * c->kwg * c->nwg) * sizeof(float) >
                        dev->local_mem_bytes)
        rule = "local memory for SA/SB above the device's";
    if (rule && why)
        snprintf(why, why_size, "%s", rule);
    return rule == NULL;
}

size_t dsd_tune_candidates(const dsd_device_info *dev, dsd_xgemm_config *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && n < cap; i++)
        if (dsd_xgemm_config_valid(dev, &candidates[i], NULL, 0))
            out[n++] = candidates[i];
    return n;
}

dsd_status dsd_xgemm_config_to_profile(const dsd_xgemm_config *c, dsd_device_profile *p,
                                       dsd_error *err)
{
    const struct { const char *name; size_t v; } xs[] = {
        {"GEMMK", c->gemmk}, {"MWG", c->mwg}, {"NWG", c->nwg}, {"KWG", c->kwg},
        {"MDIMC", c->mdimc}, {"NDIMC", c->ndimc}, {"MDIMA", c->mdima}, {"NDIMB", c->ndimb},
        {"KWI", c->kwi}, {"VWM", c->vwm}, {"VWN", c->vwn}, {"STRM", c->strm},
        {"STRN", c->strn}, {"SA", c->sa}, {"SB", c->sb}, {"KREG", c->kreg},
    };
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        DSD_TRY(dsd_device_profile_set(p, "Xgemm", xs[i].name, xs[i].v, err));
    return dsd_device_profile_set(p, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", c->min_indirect,
                                  err);
}

/* ------------------------------------------------------------------------ */
/* Timing */

dsd_tune_options dsd_tune_default_options(void)
{
    return (dsd_tune_options){.seconds = 0, .max_candidates = 0};
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Device operands large enough for every shape (filled with values in
 * [-1, 1]; the values do not change the timing). */
typedef struct tune_buffers {
    dsd_tensor a, b, c;
} tune_buffers;

static dsd_status fill(dsd_context *ctx, dsd_tensor *t, size_t count, uint64_t seed)
{
    if (count > (size_t)0x7fffffff)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "tuning operand of %zu floats "
                        "is too large", count);
    DSD_TRY(dsd_tensor_init(ctx, t, 1, 1, 1, (int)count));
    float *host = malloc(count * sizeof *host);
    if (!host)
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    dsd_rng rng;
    dsd_rng_init(&rng, seed, 0);
    for (size_t i = 0; i < count; i++)
        host[i] = (float)(2 * dsd_rng_uniform(&rng) - 1);
    dsd_status st = dsd_tensor_upload(ctx, t, host, count);
    free(host);
    return st;
}

static void buffers_free(dsd_context *ctx, tune_buffers *b)
{
    dsd_tensor_free(ctx, &b->a);
    dsd_tensor_free(ctx, &b->b);
    dsd_tensor_free(ctx, &b->c);
}

static dsd_status buffers_init(dsd_context *ctx, const dsd_gemm_shape *s, size_t n,
                               tune_buffers *b)
{
    size_t na = 1, nb = 1, nc = 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i].m * s[i].k > na) na = s[i].m * s[i].k;
        if (s[i].k * s[i].n > nb) nb = s[i].k * s[i].n;
        if (s[i].m * s[i].n > nc) nc = s[i].m * s[i].n;
    }
    memset(b, 0, sizeof *b);
    dsd_status st = fill(ctx, &b->a, na, 11);
    if (st == DSD_OK)
        st = fill(ctx, &b->b, nb, 12);
    if (st == DSD_OK)
        st = fill(ctx, &b->c, nc, 13);
    if (st != DSD_OK)
        buffers_free(ctx, b);
    return st;
}

/* One product of shape s on the buffers, with tight leading dimensions. */
static dsd_status run_shape(dsd_context *ctx, const tune_buffers *b, const dsd_gemm_shape *s)
{
    dsd_gemm_operand a = {b->a.buf, b->a.offset, s->trans_a ? s->k : s->m};
    dsd_gemm_operand bb = {b->b.buf, b->b.offset, s->trans_b ? s->n : s->k};
    dsd_gemm_operand c = {b->c.buf, b->c.offset, s->m};
    return dsd_gemm(ctx, "tuning product", s->trans_a, s->trans_b, s->m, s->n, s->k, &a, &bb,
                    0.0f, &c);
}

/* The weighted time of all shapes in milliseconds. The warm-up compiles
 * what the timed run needs without running every shape twice: per
 * transposition pair present, the smallest of its shapes (CLBlast's
 * indirect Xgemm program and its copy kernels, or the direct kernel) and an
 * 8 x 8 x 8 product (the direct kernel). */
static dsd_status time_shapes(dsd_context *ctx, const tune_buffers *b, const dsd_gemm_shape *s,
                              size_t n, double *ms, double *gflops)
{
    for (int pair = 0; pair < 4; pair++) {
        const dsd_gemm_shape *smallest = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i].trans_a * 2 + s[i].trans_b == pair &&
                (!smallest || shape_macs(&s[i]) < shape_macs(smallest)))
                smallest = &s[i];
        if (!smallest)
            continue;
        const dsd_gemm_shape tiny = {8, 8, 8, smallest->trans_a, smallest->trans_b, 1};
        DSD_TRY(run_shape(ctx, b, smallest));
        DSD_TRY(run_shape(ctx, b, &tiny));
    }
    DSD_TRY(dsd_context_finish(ctx));
    double total = 0, flops = 0;
    for (size_t i = 0; i < n; i++) {
        double t0 = now_seconds();
        DSD_TRY(run_shape(ctx, b, &s[i]));
        DSD_TRY(dsd_context_finish(ctx));
        total += (now_seconds() - t0) * s[i].count;
        flops += 2 * shape_macs(&s[i]) * s[i].count;
    }
    *ms = 1e3 * total;
    *gflops = total > 0 ? 1e-9 * flops / total : 0;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Correctness check */

/* Three odd-sized products, one per transposition pair the library uses
 * (conv2d.c), with the threshold lowered so that the tuned indirect kernel
 * runs them; error relative to the sum of |a_ik b_kj| (an absolute floor
 * near zero). */
static dsd_status check_profile(dsd_context *ctx, const dsd_device_profile *p, double *max_rel)
{
    dsd_device_profile small = *p;
    if (dsd_device_profile_get(p, "Xgemm", "MWG", 0) != 0)
        DSD_TRY(dsd_device_profile_set(&small, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 16,
                                       &ctx->error));
    DSD_TRY(dsd_context_apply_profile(ctx, &small));
    static const dsd_gemm_shape checks[] = {
        {161, 75, 143, 0, 0, 1}, {143, 75, 161, 1, 0, 1}, {161, 143, 75, 0, 1, 1}};
    *max_rel = 0;
    dsd_status st = DSD_OK;
    for (size_t t = 0; t < 3 && st == DSD_OK; t++) {
        const dsd_gemm_shape *s = &checks[t];
        tune_buffers b;
        st = buffers_init(ctx, s, 1, &b);
        if (st != DSD_OK)
            break;
        size_t na = s->m * s->k, nb = s->k * s->n, nc = s->m * s->n;
        float *ha = malloc(na * sizeof *ha), *hb = malloc(nb * sizeof *hb),
              *hc = malloc(nc * sizeof *hc);
        if (!ha || !hb || !hc)
            st = DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        if (st == DSD_OK)
            st = dsd_tensor_download(ctx, &b.a, ha, na);
        if (st == DSD_OK)
            st = dsd_tensor_download(ctx, &b.b, hb, nb);
        if (st == DSD_OK)
            st = run_shape(ctx, &b, s);
        if (st == DSD_OK)
            st = dsd_tensor_download(ctx, &b.c, hc, nc);
        const size_t lda = s->trans_a ? s->k : s->m, ldb = s->trans_b ? s->n : s->k;
        for (size_t j = 0; j < s->n && st == DSD_OK; j++)
            for (size_t i = 0; i < s->m; i++) {
                double ref = 0, mag = 0;
                for (size_t q = 0; q < s->k; q++) {
                    double av = s->trans_a ? ha[i * lda + q] : ha[q * lda + i];
                    double bv = s->trans_b ? hb[q * ldb + j] : hb[j * ldb + q];
                    ref += av * bv;
                    mag += fabs(av * bv);
                }
                double rel = fabs(hc[j * s->m + i] - ref) / (mag > 1e-30 ? mag : 1e-30);
                if (!(rel <= *max_rel))
                    *max_rel = isnan(rel) ? INFINITY : rel;
            }
        free(ha);
        free(hb);
        free(hc);
        buffers_free(ctx, &b);
    }
    dsd_status back = dsd_context_apply_profile(ctx, p);
    return st != DSD_OK ? st : back;
}

/* ------------------------------------------------------------------------ */
/* The search */

/* Whether profile p already sets exactly c. */
static int same_as(const dsd_device_profile *p, const dsd_xgemm_config *c)
{
    dsd_device_profile q;
    memset(&q, 0, sizeof q);
    if (dsd_xgemm_config_to_profile(c, &q, NULL) != DSD_OK)
        return 0;
    for (int k = 0; k < q.n_kernels; k++)
        for (int i = 0; i < q.kernels[k].n; i++)
            if (dsd_device_profile_get(p, q.kernels[k].kernel, q.kernels[k].names[i],
                                       (size_t)-1) != q.kernels[k].values[i])
                return 0;
    return 1;
}

dsd_status dsd_tune_device(dsd_context *ctx, const dsd_gemm_shape *shapes, size_t n_shapes,
                           const dsd_tune_options *opts, dsd_tune_result *out)
{
    memset(out, 0, sizeof *out);
    if (n_shapes == 0)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "tuning: no GEMM shapes (the "
                        "networks run no products on this device's routes)");
    const dsd_device_profile current = ctx->profile;
    const size_t current_threshold =
        dsd_device_profile_get(&current, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 256);
    const double t_start = now_seconds();
    tune_buffers b;
    DSD_TRY(buffers_init(ctx, shapes, n_shapes, &b));

    /* index 0: the profile in effect */
    double ms, gflops;
    dsd_status st = time_shapes(ctx, &b, shapes, n_shapes, &ms, &gflops);
    if (st != DSD_OK) {
        buffers_free(ctx, &b);
        return st;
    }
    out->current_ms = out->best_ms = ms;
    out->gflops_current = out->gflops_best = gflops;
    out->best = current;
    snprintf(out->best_label, sizeof out->best_label, "in effect");
    out->tried = 1;
    if (opts->report)
        opts->report(opts->user, 0, "in effect", ms, gflops, NULL);

    dsd_xgemm_config cands[64];
    size_t n_cands = dsd_tune_candidates(&ctx->device, cands, 48);
    size_t best_cand = (size_t)-1;
    /* stage 2: the stage-1 winner at the other thresholds (filled in below) */
    const size_t n_stage2 = sizeof min_indirect_sizes / sizeof min_indirect_sizes[0];
    const size_t total = n_cands + n_stage2;
    for (size_t i = 0; i < total && st == DSD_OK; i++) {
        if (i == n_cands) { /* stage 2 starts: the fastest configuration so far */
            if (best_cand == (size_t)-1)
                break;
            for (size_t j = 0; j < n_stage2; j++) {
                cands[n_cands + j] = cands[best_cand];
                cands[n_cands + j].min_indirect = min_indirect_sizes[j];
                snprintf(cands[n_cands + j].label, sizeof cands[0].label, "%.20s, >=%zu",
                         cands[best_cand].label, min_indirect_sizes[j]);
            }
        }
        dsd_xgemm_config *c = &cands[i];
        if (i < n_cands)
            c->min_indirect = current_threshold;
        else if (c->min_indirect == current_threshold)
            continue; /* stage 1 timed it already */
        if (same_as(&current, c)) { /* index 0 timed it already */
            if (i < n_cands && best_cand == (size_t)-1 && !strcmp(out->best_label, "in effect"))
                best_cand = i; /* stage 2 varies the threshold of the one in effect */
            continue;
        }
        if ((opts->max_candidates > 0 && out->tried >= opts->max_candidates) ||
            (opts->seconds > 0 && now_seconds() - t_start > opts->seconds)) {
            out->time_bound_hit = opts->seconds > 0 && now_seconds() - t_start > opts->seconds;
            /* what would still have run: the rest of the list (less copies
             * of the one in effect) and the thresholds not yet tried */
            for (size_t j = i; j < (i < n_cands ? n_cands : total); j++) {
                dsd_xgemm_config rest = cands[j];
                if (j < n_cands)
                    rest.min_indirect = current_threshold;
                else if (rest.min_indirect == current_threshold)
                    continue;
                if (j >= n_cands || !same_as(&current, &rest))
                    out->skipped++;
            }
            if (i < n_cands) /* the threshold stage had not started */
                for (size_t j = 0; j < n_stage2; j++)
                    out->skipped += min_indirect_sizes[j] != current_threshold;
            break;
        }
        dsd_device_profile p = current;
        st = dsd_xgemm_config_to_profile(c, &p, &ctx->error);
        if (st != DSD_OK)
            break;
        snprintf(p.name, sizeof p.name, "tuned: %s", ctx->device.name);
        dsd_status cst = dsd_context_apply_profile(ctx, &p);
        if (cst == DSD_OK)
            cst = time_shapes(ctx, &b, shapes, n_shapes, &ms, &gflops);
        out->tried++;
        if (cst != DSD_OK) {
            /* a configuration the device's compiler or CLBlast refuses (a
             * register or resource limit the rules above cannot see) is
             * reported and passed over, not fatal */
            char line[DSD_ERROR_LINE_MAX];
            dsd_error_format(&ctx->error, line, sizeof line);
            out->failed++;
            if (opts->report)
                opts->report(opts->user, out->tried - 1, c->label, -1, 0, line);
            dsd_error_clear(&ctx->error);
            if (cst == DSD_ERR_OUT_OF_MEMORY) { /* the device is short, not the candidate */
                (void)dsd_context_apply_profile(ctx, &current);
                st = DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "tuning: %s", line);
                break;
            }
            continue;
        }
        if (opts->report)
            opts->report(opts->user, out->tried - 1, c->label, ms, gflops, NULL);
        if (ms < out->best_ms) {
            out->best_ms = ms;
            out->gflops_best = gflops;
            out->best = p;
            snprintf(out->best_label, sizeof out->best_label, "%.31s", c->label);
            if (i < n_cands)
                best_cand = i;
        }
    }
    /* confirm: time the one in effect and the fastest twice more, taking
     * turns, so that a slow first run (cold memory, a busy machine) decides
     * nothing; the fastest is kept only if its better time still wins */
    if (st == DSD_OK && strcmp(out->best_label, "in effect") != 0) {
        double cur_ms = INFINITY, cur_gf = 0, best_ms = INFINITY, best_gf = 0;
        for (int round = 0; round < 2 && st == DSD_OK; round++) { /* the faster of two each */
            double t, gf;
            st = dsd_context_apply_profile(ctx, &current);
            if (st == DSD_OK)
                st = time_shapes(ctx, &b, shapes, n_shapes, &t, &gf);
            if (st == DSD_OK && t < cur_ms) {
                cur_ms = t;
                cur_gf = gf;
            }
            if (st == DSD_OK)
                st = dsd_context_apply_profile(ctx, &out->best);
            if (st == DSD_OK)
                st = time_shapes(ctx, &b, shapes, n_shapes, &t, &gf);
            if (st == DSD_OK && t < best_ms) {
                best_ms = t;
                best_gf = gf;
            }
        }
        if (st == DSD_OK) {
            out->current_ms = cur_ms;
            out->gflops_current = cur_gf;
            out->best_ms = best_ms;
            out->gflops_best = best_gf;
            if (!(best_ms < cur_ms)) {
                out->best = current;
                snprintf(out->best_label, sizeof out->best_label, "in effect");
                out->best_ms = cur_ms;
                out->gflops_best = cur_gf;
            }
            out->confirmed = 1;
        }
    }
    buffers_free(ctx, &b);
    if (st != DSD_OK) {
        dsd_error keep = ctx->error;
        dsd_context_apply_profile(ctx, &current);
        ctx->error = keep;
        return st;
    }
    /* the winner, checked; the saved profile is named after this device */
    if (strcmp(out->best_label, "in effect") != 0) {
        snprintf(out->best.name, sizeof out->best.name, "tuned: %s", ctx->device.name);
    } else {
        char was[sizeof out->best.name];
        snprintf(was, sizeof was, "%s", current.name);
        char *paren = strstr(was, " (/");
        if (paren)
            *paren = '\0'; /* a file's path suffix */
        if (strncmp(was, "tuned: ", 7) == 0)
            snprintf(out->best.name, sizeof out->best.name, "%s", was);
        else
            snprintf(out->best.name, sizeof out->best.name, "tuned: %.60s (%.120s won)",
                     ctx->device.name, was);
    }
    snprintf(out->best.device, sizeof out->best.device, "%s", ctx->device.name);
    snprintf(out->best.driver, sizeof out->best.driver, "%s", ctx->device.driver);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out->best.tuned_at, sizeof out->best.tuned_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    st = check_profile(ctx, &out->best, &out->max_rel_error);
    if (st == DSD_OK && !(out->max_rel_error <= 1e-4)) {
        dsd_context_apply_profile(ctx, &current);
        return DSD_FAIL(&ctx->error, DSD_ERR_CLBLAST, "tuning: the fastest configuration (%s) "
                        "gives wrong products on this device (error %.3g of the sum of |a||b|, "
                        "above 1e-4); nothing saved", out->best_label, out->max_rel_error);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Saving */

static int make_dir(const char *path)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

dsd_status dsd_tune_save(dsd_context *ctx, const dsd_device_profile *p, char *path,
                         size_t path_size)
{
    char file[1200];
    DSD_TRY(dsd_context_profile_path(ctx, file, sizeof file));
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (make_dir(dir) != 0)
        return DSD_FAIL(&ctx->error, DSD_ERR_IO, "%s: cannot create the folder: %s", dir,
                        strerror(errno));
    DSD_TRY(dsd_device_profile_save(file, p, &ctx->error));
    if (path)
        snprintf(path, path_size, "%s", file);
    return DSD_OK;
}
