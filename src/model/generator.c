/*
 * generator.c: the deblurring generator of the paper (sections 2.1 - 2.4),
 * forward and backward, composed from the ops. dsdeblur_model.h is the manual:
 * the architecture, the parameter names and the memory rules are described
 * there. The double-precision reference network and the gradient checks are
 * in tests/test-generator.c.
 *
 * It does not compute losses or update weights, and it has no graph: the
 * backward is written out by hand in mirrored order, each saved activation
 * given back right after its last use. The parameter arenas it lays its
 * weights out in are src/model/params.c.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Layout helpers (the arena itself: src/model/params.c) */

/* Appends a conv's weight (cout, cin_g, k, k) and bias (cout) as
 * "<prefix>.weight" / "<prefix>.bias". */
static dsd_status params_add_conv(dsd_params *p, dsd_error *err, const char *prefix, int cout,
                                  int cin_g, int kh, int kw)
{
    int wshape[4] = {cout, cin_g, kh, kw}, bshape[1] = {cout};
    int fan_in = cin_g * kh * kw;
    DSD_TRY(dsd_params_add(p, err, 4, wshape, DSD_PARAM_INIT_FAN_IN, fan_in, "%s.weight", prefix));
    return dsd_params_add(p, err, 1, bshape, DSD_PARAM_INIT_FAN_IN, fan_in, "%s.bias", prefix);
}

/* Binds the next two table entries (weight, bias) of arena to cw. */
static dsd_status params_bind_conv(dsd_context *ctx, const dsd_params *p, const dsd_tensor *arena,
                                   size_t *cursor, dsd_conv_weights *cw)
{
    if (*cursor + 2 > p->n)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "parameter table too short");
    DSD_TRY(dsd_params_view(ctx, arena, &p->info[*cursor], &cw->weight));
    DSD_TRY(dsd_params_view(ctx, arena, &p->info[*cursor + 1], &cw->bias));
    *cursor += 2;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Generator layout */

dsd_generator_config dsd_generator_default_config(void)
{
    dsd_generator_config c = {9, 64, 16, 3, 0.5f, 0.2f};
    return c;
}

enum { GEN_MAX_BLOCKS = 65536, GEN_MAX_BASE = 1 << 16 };

dsd_status dsd_generator_config_check(const dsd_generator_config *c, dsd_error *err)
{
    if (!c)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator config is NULL");
    if (c->n_blocks < 0 || c->n_blocks > GEN_MAX_BLOCKS)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator n_blocks %d not in [0, %d]",
                        c->n_blocks, GEN_MAX_BLOCKS);
    if (c->base_width < 1 || c->base_width > GEN_MAX_BASE)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator base_width %d not in [1, %d]",
                        c->base_width, GEN_MAX_BASE);
    if (c->mlp_ratio < 1 || 4 * c->base_width / c->mlp_ratio < 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator mlp_ratio %d leaves no hidden "
                        "unit for %d channels", c->mlp_ratio, 4 * c->base_width);
    if (c->up_kernel < 1 || c->up_kernel % 2 == 0 || c->up_kernel > 15)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator up_kernel %d must be odd, 1 .. "
                        "15", c->up_kernel);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator dropout %g not in [0, 1)",
                        (double)c->dropout);
    if (!(c->slope >= 0.0f) || isinf(c->slope))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator slope %g must be finite and "
                        ">= 0 (LeakyReLU runs in place)", (double)c->slope);
    return DSD_OK;
}

/* Widths derived from the config. */
typedef struct gen_dims {
    int b, c, hidden, k;
} gen_dims;

static gen_dims gen_dims_of(const dsd_generator_config *cfg)
{
    gen_dims d;
    d.b = cfg->base_width;
    d.c = 4 * cfg->base_width;
    d.hidden = d.c / cfg->mlp_ratio;
    d.k = cfg->up_kernel;
    return d;
}

/* The table in forward order; the views below bind in the same order. */
static dsd_status generator_layout(const dsd_generator_config *cfg, dsd_params *p, dsd_error *err)
{
    gen_dims d = gen_dims_of(cfg);
    char prefix[DSD_PARAM_NAME_MAX];
    DSD_TRY(params_add_conv(p, err, "head", d.b, 3, 7, 7));
    DSD_TRY(params_add_conv(p, err, "down.0", 2 * d.b, d.b, 3, 3));
    DSD_TRY(params_add_conv(p, err, "down.1", d.c, 2 * d.b, 3, 3));
    for (int i = 0; i < cfg->n_blocks; i++) {
        snprintf(prefix, sizeof prefix, "blocks.%d.ca.fc1", i);
        DSD_TRY(params_add_conv(p, err, prefix, d.hidden, d.c, 1, 1));
        snprintf(prefix, sizeof prefix, "blocks.%d.ca.fc2", i);
        DSD_TRY(params_add_conv(p, err, prefix, d.c, d.hidden, 1, 1));
        snprintf(prefix, sizeof prefix, "blocks.%d.sa.conv", i);
        DSD_TRY(params_add_conv(p, err, prefix, 1, 2, 7, 7));
        for (int j = 0; j < 3; j++) {
            snprintf(prefix, sizeof prefix, "blocks.%d.dsc.%d.depthwise", i, j);
            DSD_TRY(params_add_conv(p, err, prefix, d.c, 1, 3, 3));
            snprintf(prefix, sizeof prefix, "blocks.%d.dsc.%d.pointwise", i, j);
            DSD_TRY(params_add_conv(p, err, prefix, d.c, d.c, 1, 1));
        }
    }
    DSD_TRY(params_add_conv(p, err, "up.0", 8 * d.b, d.c, d.k, d.k));
    DSD_TRY(params_add_conv(p, err, "up.1", 4 * d.b, 2 * d.b, d.k, d.k));
    return params_add_conv(p, err, "tail", 3, d.b, 7, 7);
}

size_t dsd_generator_param_count(const dsd_generator_config *cfg)
{
    if (dsd_generator_config_check(cfg, NULL) != DSD_OK)
        return 0;
    dsd_params p;
    memset(&p, 0, sizeof p);
    size_t count = generator_layout(cfg, &p, NULL) == DSD_OK ? p.count : 0;
    free(p.info);
    return count;
}

static dsd_status generator_bind(dsd_context *ctx, dsd_generator *g, const dsd_tensor *arena,
                                 dsd_generator_weights *w)
{
    size_t k = 0;
    const dsd_params *p = &g->params;
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->head));
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->down[0]));
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->down[1]));
    for (int i = 0; i < g->cfg.n_blocks; i++) {
        dsd_dscrb_weights *b = &w->blocks[i];
        DSD_TRY(params_bind_conv(ctx, p, arena, &k, &b->fc1));
        DSD_TRY(params_bind_conv(ctx, p, arena, &k, &b->fc2));
        DSD_TRY(params_bind_conv(ctx, p, arena, &k, &b->sa));
        for (int j = 0; j < 3; j++) {
            DSD_TRY(params_bind_conv(ctx, p, arena, &k, &b->depthwise[j]));
            DSD_TRY(params_bind_conv(ctx, p, arena, &k, &b->pointwise[j]));
        }
    }
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->up[0]));
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->up[1]));
    DSD_TRY(params_bind_conv(ctx, p, arena, &k, &w->tail));
    return k == p->n ? DSD_OK
                     : DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "generator table has "
                                "%zu entries, views bound %zu", p->n, k);
}

/* ------------------------------------------------------------------------ */
/* Init / free */

dsd_status dsd_generator_init(dsd_context *ctx, dsd_generator *g, const dsd_generator_config *cfg)
{
    memset(g, 0, sizeof *g);
    dsd_generator_config c = cfg ? *cfg : dsd_generator_default_config();
    DSD_TRY(dsd_generator_config_check(&c, dsd_ctx_err(ctx)));
    g->cfg = c;
    g->dropout_seed = 0x5eed;
    dsd_status st = generator_layout(&c, &g->params, dsd_ctx_err(ctx));
    size_t nb = c.n_blocks > 0 ? (size_t)c.n_blocks : 1;
    if (st == DSD_OK) {
        g->w.blocks = calloc(nb, sizeof *g->w.blocks);
        g->grad.blocks = calloc(nb, sizeof *g->grad.blocks);
        if (!g->w.blocks || !g->grad.blocks)
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "generator views for %d "
                          "blocks", c.n_blocks);
    }
    if (st == DSD_OK)
        st = dsd_params_alloc(ctx, &g->params);
    if (st == DSD_OK)
        st = generator_bind(ctx, g, &g->params.values, &g->w);
    if (st == DSD_OK)
        st = generator_bind(ctx, g, &g->params.grads, &g->grad);
    if (st != DSD_OK) {
        dsd_generator_free(ctx, g);
        return st;
    }
    g->arena_bytes = 2 * g->params.count * sizeof(float);
    return DSD_OK;
}

void dsd_generator_free(dsd_context *ctx, dsd_generator *g)
{
    if (!g)
        return;
    free(g->w.blocks);
    free(g->grad.blocks);
    dsd_params_free(ctx, &g->params);
    memset(g, 0, sizeof *g);
}

dsd_status dsd_generator_init_weights(dsd_context *ctx, dsd_generator *g, uint64_t seed)
{
    DSD_TRY(dsd_params_init_weights(ctx, &g->params, seed));
    g->dropout_seed = seed;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Saved activations */

/* One DSCRb's activations (training), or its scratch (inference). */
typedef struct dscrb_saved {
    dsd_tensor avg, mx;   /* (N, C, 1, 1) pooled block input */
    dsd_tensor a1, a2;    /* (N, hidden, 1, 1) LReLU(fc1(avg)), LReLU(fc1(mx)) */
    dsd_tensor mc;        /* (N, C, 1, 1) channel attention map */
    dsd_tensor f1;        /* (N, C, H, W) x * mc */
    dsd_tensor cat;       /* (N, 2, H, W) [mean_c f1; max_c f1] */
    dsd_tensor ms;        /* (N, 1, H, W) spatial attention map */
    dsd_tensor f2;        /* (N, C, H, W) f1 * ms */
    dsd_tensor d[3];      /* (N, C, H, W) depthwise outputs of the three DSCs */
    dsd_tensor l1;        /* DSC 1 -> LReLU -> Dropout (in place) */
    dsd_tensor l2;        /* DSC 2 -> LReLU */
    dsd_tensor out;       /* x + DSC 3 */
    dsd_tensor o2, cm, cx; /* forward scratch, never kept */
} dscrb_saved;

struct dsd_generator_saved {
    dsd_tensor head_out;    /* (N, B, H, W) head after LReLU */
    dsd_tensor down0_out;   /* (N, 2B, H/2, W/2) down.0 after LReLU */
    dsd_tensor features;    /* (N, C, H/4, W/4) down.1 after LReLU: the blocks' input */
    dsd_tensor block_in;    /* inference: the current block's input */
    dscrb_saved *blocks;    /* n_blocks (training) or one scratch block (inference) */
    int n_blocks;           /* entries of blocks */
    dsd_tensor up_conv;     /* an up conv's output before the shuffle (scratch) */
    dsd_tensor up0_out;     /* (N, 2B, H/2, W/2) up.0 after shuffle + LReLU */
    dsd_tensor up1_out;     /* (N, B, H, W) up.1 after shuffle + LReLU */
    dsd_tensor tail_tanh;   /* (N, 3, H, W) tanh(tail(up1_out)) */
    dsd_tensor residual;    /* (N, 3, H, W) x + tail_tanh, the clamp's input */
};

static struct dsd_generator_saved *saved_new(int n_blocks)
{
    struct dsd_generator_saved *sv = calloc(1, sizeof *sv);
    if (!sv)
        return NULL;
    sv->n_blocks = n_blocks > 0 ? n_blocks : 1;
    sv->blocks = calloc((size_t)sv->n_blocks, sizeof *sv->blocks);
    if (!sv->blocks) {
        free(sv);
        return NULL;
    }
    return sv;
}

static void saved_delete(struct dsd_generator_saved *sv)
{
    if (sv)
        free(sv->blocks);
    free(sv);
}

/* Forgets every slot (the arena stays): a new pass starts from here. */
static void saved_clear(struct dsd_generator_saved *sv)
{
    dscrb_saved *blocks = sv->blocks;
    int n = sv->n_blocks;
    memset(blocks, 0, (size_t)n * sizeof *blocks);
    memset(sv, 0, sizeof *sv);
    sv->blocks = blocks;
    sv->n_blocks = n;
}

/* ------------------------------------------------------------------------ */
/* A pass: planned, then run
 *
 * The same functions below plan a pass (ctx NULL: shapes only, nothing runs;
 * every slot taken and given back and every convolution is recorded in the
 * plan) and run it (each slot becomes a view of the arena at its planned
 * offset; the column buffer is the planned workspace). The slot and conv
 * helpers are the networks' shared src/model/pass.c; gen_pass adds what the
 * generator's code needs besides. */

typedef struct gen_pass {
    dsd_pass base;                    /* slots, arena, workspace (src/model/pass.c) */
    const dsd_generator_config *cfg;
    const dsd_generator_weights *w;   /* shapes only while planning */
    dsd_generator_weights *grad;      /* running backward: the gradient views */
    uint64_t dropout_seed;
    int training;                     /* dropout on, activations kept */
    uint64_t step;                    /* training: the dropout masks' step */
    uint64_t first_sample;            /* training: the batch's first global sample index */
} gen_pass;

static dsd_status take(gen_pass *r, dsd_tensor *t, int n, int c, int h, int w)
{
    return dsd_pass_take(&r->base, t, n, c, h, w);
}

static dsd_status take_zero(gen_pass *r, dsd_tensor *t, int n, int c, int h, int w)
{
    return dsd_pass_take_zero(&r->base, t, n, c, h, w);
}

static void give(gen_pass *r, dsd_tensor *t)
{
    dsd_pass_give(&r->base, t);
}

/* Runs an op's call only when the pass runs. */
#define RUN(expr) DSD_PASS_RUN(&r->base, expr)

/* Layer-profile scopes of a running pass (no-ops while planning or when
 * layer profiling is off). */
#define PASS_SCOPE_BEGIN(r, ...)                                \
    do {                                                        \
        if ((r)->base.ctx)                                      \
            dsd_profile_scope_begin((r)->base.ctx, __VA_ARGS__); \
    } while (0)
#define PASS_SCOPE_END(r)                          \
    do {                                           \
        if ((r)->base.ctx)                         \
            dsd_profile_scope_end((r)->base.ctx);  \
    } while (0)

/* "blocks.<b>.name" (b >= 0) or "name": a conv's parameter prefix, which
 * names its plan layer and its layer-profile scopes. */
static void conv_full_name(int block, const char *name, char *buf, size_t size)
{
    if (block >= 0)
        snprintf(buf, size, "blocks.%d.%s", block, name);
    else
        snprintf(buf, size, "%s", name);
}

/* y = conv(x) with cw, the conv named (block, name). */
static dsd_status conv_forward(gen_pass *r, int block, const char *name,
                               const dsd_conv2d_params *p, const dsd_tensor *x,
                               const dsd_conv_weights *cw, dsd_tensor *y)
{
    char full[DSD_PARAM_NAME_MAX];
    conv_full_name(block, name, full, sizeof full);
    return dsd_pass_conv_forward(&r->base, full, p, x, cw, y);
}

/* dx += dL/dx (dx may be NULL), gradients into gcw, for dy = dL/dy. */
static dsd_status conv_backward(gen_pass *r, int block, const char *name,
                                const dsd_conv2d_params *p, const dsd_tensor *x,
                                const dsd_conv_weights *cw, const dsd_tensor *dy,
                                dsd_tensor *dx, dsd_conv_weights *gcw)
{
    char full[DSD_PARAM_NAME_MAX];
    conv_full_name(block, name, full, sizeof full);
    return dsd_pass_conv_backward(&r->base, full, p, x, &cw->weight, dy, dx, &gcw->weight,
                                  &gcw->bias);
}

/* ------------------------------------------------------------------------ */
/* Forward */

static const dsd_conv2d_params conv_7x7_reflect = {
    .kernel_h = 7, .kernel_w = 7, .stride = 1, .pad = 3, .pad_mode = DSD_PAD_REFLECT, .groups = 1};
static const dsd_conv2d_params conv_down = {
    .kernel_h = 3, .kernel_w = 3, .stride = 2, .pad = 1, .pad_mode = DSD_PAD_ZERO, .groups = 1};
static const dsd_conv2d_params conv_1x1 = {
    .kernel_h = 1, .kernel_w = 1, .stride = 1, .pad = 0, .pad_mode = DSD_PAD_ZERO, .groups = 1};
static const dsd_conv2d_params conv_spatial = {
    .kernel_h = 7, .kernel_w = 7, .stride = 1, .pad = 3, .pad_mode = DSD_PAD_ZERO, .groups = 1};

static dsd_conv2d_params conv_depthwise(int channels)
{
    return (dsd_conv2d_params){.kernel_h = 3, .kernel_w = 3, .stride = 1, .pad = 1,
                               .pad_mode = DSD_PAD_REFLECT, .groups = channels};
}

static dsd_conv2d_params conv_up(int k)
{
    return (dsd_conv2d_params){.kernel_h = k, .kernel_w = k, .stride = 1, .pad = k / 2,
                               .pad_mode = DSD_PAD_ZERO, .groups = 1};
}

/* The dropout stream of block b at a step (see dsdeblur_model.h). */
static uint64_t dropout_stream(uint64_t step, int block)
{
    return step * UINT64_C(65536) + (uint64_t)block;
}

/* The mask index of x's first element: a slice of a data-parallel batch that
 * starts at global sample first_sample takes that batch's mask from there
 * (a count past 2^32 is refused by the dropout op's own check). */
static uint32_t dropout_first(const gen_pass *r, const dsd_tensor *x)
{
    uint64_t per = (uint64_t)x->c * (uint64_t)x->h * (uint64_t)x->w;
    uint64_t first = r->first_sample * per;
    return first > UINT32_MAX ? UINT32_MAX : (uint32_t)first;
}

/* Gives t back unless the pass keeps activations. */
#define DROP(t)                    \
    do {                           \
        if (!training)             \
            give(r, (t));          \
    } while (0)

/* One DSCRb on x (N, C, H, W) into s->out (a new slot when take_out, else
 * the caller's tensor already in s->out). Training keeps the activations in
 * s; inference gives each back as soon as it is consumed. */
static dsd_status dscrb_forward(gen_pass *r, int b, const dsd_tensor *x, dscrb_saved *s,
                                int take_out)
{
    dsd_context *ctx = r->base.ctx;
    const dsd_dscrb_weights *w = &r->w->blocks[b];
    const int training = r->training;
    const float slope = r->cfg->slope, p = r->cfg->dropout;
    const int n = x->n, c = x->c, h = x->h, wd = x->w, hidden = gen_dims_of(r->cfg).hidden;
    const dsd_conv2d_params dw = conv_depthwise(c);
    r->base.stage = DSD_GENERATOR_BLOCKS;

    /* channel attention: mc = sigmoid(mlp(avg) + mlp(max)), f1 = x * mc */
    DSD_TRY(take(r, &s->avg, n, c, 1, 1));
    DSD_TRY(take(r, &s->mx, n, c, 1, 1));
    RUN(dsd_global_avg_pool_forward(ctx, x, &s->avg));
    RUN(dsd_global_max_pool_forward(ctx, x, &s->mx));
    DSD_TRY(take(r, &s->a1, n, hidden, 1, 1));
    DSD_TRY(conv_forward(r, b, "ca.fc1", &conv_1x1, &s->avg, &w->fc1, &s->a1));
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a1, &s->a1));
    DSD_TRY(take(r, &s->mc, n, c, 1, 1));
    DSD_TRY(conv_forward(r, b, "ca.fc2", &conv_1x1, &s->a1, &w->fc2, &s->mc));
    DSD_TRY(take(r, &s->a2, n, hidden, 1, 1));
    DSD_TRY(conv_forward(r, b, "ca.fc1", &conv_1x1, &s->mx, &w->fc1, &s->a2));
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a2, &s->a2));
    DSD_TRY(take(r, &s->o2, n, c, 1, 1));
    DSD_TRY(conv_forward(r, b, "ca.fc2", &conv_1x1, &s->a2, &w->fc2, &s->o2));
    RUN(dsd_add_forward(ctx, &s->mc, &s->o2, 1.0f, &s->mc));
    give(r, &s->o2);
    RUN(dsd_activation_forward(ctx, DSD_ACT_SIGMOID, 0.0f, &s->mc, &s->mc));
    DROP(&s->avg);
    DROP(&s->mx);
    DROP(&s->a1);
    DROP(&s->a2);
    DSD_TRY(take(r, &s->f1, n, c, h, wd));
    RUN(dsd_mul_forward(ctx, x, &s->mc, &s->f1));
    DROP(&s->mc);

    /* spatial attention: ms = sigmoid(conv7x7([mean_c f1; max_c f1])), f2 = f1 * ms */
    DSD_TRY(take(r, &s->cm, n, 1, h, wd));
    DSD_TRY(take(r, &s->cx, n, 1, h, wd));
    RUN(dsd_channel_mean_forward(ctx, &s->f1, &s->cm));
    RUN(dsd_channel_max_forward(ctx, &s->f1, &s->cx));
    DSD_TRY(take(r, &s->cat, n, 2, h, wd));
    RUN(dsd_concat_forward(ctx, &s->cm, &s->cx, &s->cat));
    give(r, &s->cm);
    give(r, &s->cx);
    DSD_TRY(take(r, &s->ms, n, 1, h, wd));
    DSD_TRY(conv_forward(r, b, "sa.conv", &conv_spatial, &s->cat, &w->sa, &s->ms));
    RUN(dsd_activation_forward(ctx, DSD_ACT_SIGMOID, 0.0f, &s->ms, &s->ms));
    DROP(&s->cat);
    if (training) {
        DSD_TRY(take(r, &s->f2, n, c, h, wd));
        RUN(dsd_mul_forward(ctx, &s->f1, &s->ms, &s->f2));
    } else {
        RUN(dsd_mul_forward(ctx, &s->f1, &s->ms, &s->f1)); /* in place */
        s->f2 = s->f1;
        memset(&s->f1, 0, sizeof s->f1);
        give(r, &s->ms);
    }

    /* DSC -> LReLU -> Dropout -> DSC -> LReLU -> DSC, then the residual */
    DSD_TRY(take(r, &s->d[0], n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.0.depthwise", &dw, &s->f2, &w->depthwise[0], &s->d[0]));
    DROP(&s->f2);
    DSD_TRY(take(r, &s->l1, n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.0.pointwise", &conv_1x1, &s->d[0], &w->pointwise[0],
                         &s->l1));
    DROP(&s->d[0]);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l1, &s->l1));
    if (training && p > 0.0f)
        RUN(dsd_dropout_forward_at(ctx, p, r->dropout_seed, dropout_stream(r->step, b),
                                   dropout_first(r, &s->l1), &s->l1, &s->l1));
    DSD_TRY(take(r, &s->d[1], n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.1.depthwise", &dw, &s->l1, &w->depthwise[1], &s->d[1]));
    DROP(&s->l1);
    DSD_TRY(take(r, &s->l2, n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.1.pointwise", &conv_1x1, &s->d[1], &w->pointwise[1],
                         &s->l2));
    DROP(&s->d[1]);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l2, &s->l2));
    DSD_TRY(take(r, &s->d[2], n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.2.depthwise", &dw, &s->l2, &w->depthwise[2], &s->d[2]));
    DROP(&s->l2);
    if (take_out)
        DSD_TRY(take(r, &s->out, n, c, h, wd));
    DSD_TRY(conv_forward(r, b, "dsc.2.pointwise", &conv_1x1, &s->d[2], &w->pointwise[2],
                         &s->out));
    DROP(&s->d[2]);
    RUN(dsd_add_forward(ctx, &s->out, x, 1.0f, &s->out));
    return DSD_OK;
}

/* head, down.0, down.1 on x into f (N, C, H/4, W/4). */
static dsd_status encode(gen_pass *r, const dsd_tensor *x, struct dsd_generator_saved *sv,
                         dsd_tensor *f)
{
    dsd_context *ctx = r->base.ctx;
    const dsd_generator_weights *w = r->w;
    const gen_dims d = gen_dims_of(r->cfg);
    const int training = r->training;
    const float slope = r->cfg->slope;
    const int n = x->n, h = x->h, wd = x->w;
    r->base.stage = DSD_GENERATOR_ENCODE;

    DSD_TRY(take(r, &sv->head_out, n, d.b, h, wd));
    DSD_TRY(conv_forward(r, -1, "head", &conv_7x7_reflect, x, &w->head, &sv->head_out));
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->head_out, &sv->head_out));
    DSD_TRY(take(r, &sv->down0_out, n, 2 * d.b, h / 2, wd / 2));
    DSD_TRY(conv_forward(r, -1, "down.0", &conv_down, &sv->head_out, &w->down[0],
                         &sv->down0_out));
    DROP(&sv->head_out);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->down0_out, &sv->down0_out));
    DSD_TRY(conv_forward(r, -1, "down.1", &conv_down, &sv->down0_out, &w->down[1], f));
    DROP(&sv->down0_out);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, f, f));
    return DSD_OK;
}

/* y = clamp(x + tanh(tail(up.1(up.0(f)))), -1, 1). give_f: f is a slot of
 * this pass, given back once read (inference). */
static dsd_status decode(gen_pass *r, dsd_tensor *f, int give_f, const dsd_tensor *x,
                         struct dsd_generator_saved *sv, dsd_tensor *y)
{
    dsd_context *ctx = r->base.ctx;
    const dsd_generator_weights *w = r->w;
    const gen_dims d = gen_dims_of(r->cfg);
    const int training = r->training;
    const float slope = r->cfg->slope;
    const int n = x->n, h = x->h, wd = x->w;
    const dsd_conv2d_params up = conv_up(d.k);
    r->base.stage = DSD_GENERATOR_DECODE;

    /* up-sampling: conv, PixelShuffle(2), LReLU; twice */
    DSD_TRY(take(r, &sv->up_conv, n, 8 * d.b, h / 4, wd / 4));
    DSD_TRY(conv_forward(r, -1, "up.0", &up, f, &w->up[0], &sv->up_conv));
    if (give_f)
        give(r, f);
    DSD_TRY(take(r, &sv->up0_out, n, 2 * d.b, h / 2, wd / 2));
    RUN(dsd_pixel_shuffle_forward(ctx, 2, &sv->up_conv, &sv->up0_out));
    give(r, &sv->up_conv);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->up0_out, &sv->up0_out));
    DSD_TRY(take(r, &sv->up_conv, n, 4 * d.b, h / 2, wd / 2));
    DSD_TRY(conv_forward(r, -1, "up.1", &up, &sv->up0_out, &w->up[1], &sv->up_conv));
    DROP(&sv->up0_out);
    DSD_TRY(take(r, &sv->up1_out, n, d.b, h, wd));
    RUN(dsd_pixel_shuffle_forward(ctx, 2, &sv->up_conv, &sv->up1_out));
    give(r, &sv->up_conv);
    RUN(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->up1_out, &sv->up1_out));

    /* tail, tanh, global residual, clamp */
    DSD_TRY(take(r, &sv->tail_tanh, n, 3, h, wd));
    DSD_TRY(conv_forward(r, -1, "tail", &conv_7x7_reflect, &sv->up1_out, &w->tail,
                         &sv->tail_tanh));
    DROP(&sv->up1_out);
    RUN(dsd_activation_forward(ctx, DSD_ACT_TANH, 0.0f, &sv->tail_tanh, &sv->tail_tanh));
    if (training) {
        DSD_TRY(take(r, &sv->residual, n, 3, h, wd));
        RUN(dsd_add_forward(ctx, x, &sv->tail_tanh, 1.0f, &sv->residual));
        RUN(dsd_clamp_forward(ctx, -1.0f, 1.0f, &sv->residual, y));
    } else {
        RUN(dsd_add_forward(ctx, x, &sv->tail_tanh, 1.0f, y));
        give(r, &sv->tail_tanh);
        RUN(dsd_clamp_forward(ctx, -1.0f, 1.0f, y, y));
    }
    return DSD_OK;
}

/* The whole network on x into y. */
static dsd_status generator_forward_pass(gen_pass *r, const dsd_tensor *x, dsd_tensor *y,
                                         struct dsd_generator_saved *sv)
{
    const gen_dims d = gen_dims_of(r->cfg);
    DSD_TRY(take(r, &sv->features, x->n, d.c, x->h / 4, x->w / 4));
    PASS_SCOPE_BEGIN(r, "G encode (other ops)");
    dsd_status st = encode(r, x, sv, &sv->features);
    PASS_SCOPE_END(r);
    DSD_TRY(st);

    /* the residual blocks: training keeps each block's activations; inference
     * reuses one scratch block and gives each input back after its block */
    dsd_tensor *feat = &sv->features;
    if (!r->training) {
        sv->block_in = sv->features;
        memset(&sv->features, 0, sizeof sv->features);
        feat = &sv->block_in;
    }
    for (int b = 0; b < r->cfg->n_blocks; b++) {
        dscrb_saved *s = &sv->blocks[r->training ? b : 0];
        PASS_SCOPE_BEGIN(r, "G blocks.%d (other ops)", b);
        st = dscrb_forward(r, b, feat, s, 1);
        PASS_SCOPE_END(r);
        DSD_TRY(st);
        if (r->training) {
            feat = &s->out;
        } else {
            give(r, &sv->block_in);
            sv->block_in = s->out;
            memset(&s->out, 0, sizeof s->out);
        }
    }
    PASS_SCOPE_BEGIN(r, "G decode (other ops)");
    st = decode(r, feat, !r->training, x, sv, y);
    PASS_SCOPE_END(r);
    return st;
}

#undef DROP

/* ------------------------------------------------------------------------ */
/* Backward (mirrored order; every gradient temporary is a zeroed slot,
 * because the op backwards accumulate) */

/* Backward of block b: dout = dL/d(s->out); dx += dL/dx. Gives back the
 * block's activations except s->out (the next block's input). */
static dsd_status dscrb_backward(gen_pass *r, int b, const dsd_tensor *x, dscrb_saved *s,
                                 const dsd_tensor *dout, dsd_tensor *dx)
{
    dsd_context *ctx = r->base.ctx;
    const dsd_dscrb_weights *w = &r->w->blocks[b];
    dsd_dscrb_weights *gw = &r->grad->blocks[b];
    const float slope = r->cfg->slope, p = r->cfg->dropout;
    const int n = x->n, c = x->c, h = x->h, wd = x->w, hidden = gen_dims_of(r->cfg).hidden;
    const dsd_conv2d_params dw = conv_depthwise(c);
    /* gradients, each named d_<the activation it is the gradient of> */
    dsd_tensor d_d2, d_l2, d_pw1, d_d1, d_drop, d_l1, d_pw0, d_d0, d_f2, d_f1, d_ms, d_sa,
        d_cat, d_mean, d_max, d_mc, d_mlp, d_hidden, d_fc1, d_pool;

    /* out = x + pointwise2(d2): dx += dout; the conv sees dout */
    RUN(dsd_add_backward(ctx, 1.0f, dout, dx, NULL));
    DSD_TRY(take_zero(r, &d_d2, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.2.pointwise", &conv_1x1, &s->d[2], &w->pointwise[2], dout,
                          &d_d2, &gw->pointwise[2]));
    give(r, &s->d[2]);
    DSD_TRY(take_zero(r, &d_l2, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.2.depthwise", &dw, &s->l2, &w->depthwise[2], &d_d2, &d_l2,
                          &gw->depthwise[2]));
    give(r, &d_d2);
    DSD_TRY(take_zero(r, &d_pw1, n, c, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l2, NULL, &d_l2, &d_pw1));
    give(r, &d_l2);
    give(r, &s->l2);
    DSD_TRY(take_zero(r, &d_d1, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.1.pointwise", &conv_1x1, &s->d[1], &w->pointwise[1], &d_pw1,
                          &d_d1, &gw->pointwise[1]));
    give(r, &d_pw1);
    give(r, &s->d[1]);
    DSD_TRY(take_zero(r, &d_drop, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.1.depthwise", &dw, &s->l1, &w->depthwise[1], &d_d1, &d_drop,
                          &gw->depthwise[1]));
    give(r, &d_d1);
    dsd_tensor *d_act1 = &d_drop; /* dL/d(LReLU output): through the dropout when on */
    memset(&d_l1, 0, sizeof d_l1);
    if (p > 0.0f) {
        DSD_TRY(take_zero(r, &d_l1, n, c, h, wd));
        RUN(dsd_dropout_backward_at(ctx, p, r->dropout_seed, dropout_stream(r->step, b),
                                    dropout_first(r, &d_drop), &d_drop, &d_l1));
        give(r, &d_drop);
        d_act1 = &d_l1;
    }
    /* l1 holds dropout(LReLU(.)): same sign where kept, zero gradient where dropped */
    DSD_TRY(take_zero(r, &d_pw0, n, c, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l1, NULL, d_act1, &d_pw0));
    give(r, &d_drop);
    give(r, &d_l1);
    give(r, &s->l1);
    DSD_TRY(take_zero(r, &d_d0, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.0.pointwise", &conv_1x1, &s->d[0], &w->pointwise[0], &d_pw0,
                          &d_d0, &gw->pointwise[0]));
    give(r, &d_pw0);
    give(r, &s->d[0]);
    DSD_TRY(take_zero(r, &d_f2, n, c, h, wd));
    DSD_TRY(conv_backward(r, b, "dsc.0.depthwise", &dw, &s->f2, &w->depthwise[0], &d_d0, &d_f2,
                          &gw->depthwise[0]));
    give(r, &d_d0);
    give(r, &s->f2);

    /* spatial attention */
    DSD_TRY(take_zero(r, &d_f1, n, c, h, wd));
    DSD_TRY(take_zero(r, &d_ms, n, 1, h, wd));
    RUN(dsd_mul_backward(ctx, &s->f1, &s->ms, &d_f2, &d_f1, &d_ms));
    give(r, &d_f2);
    DSD_TRY(take_zero(r, &d_sa, n, 1, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_SIGMOID, 0.0f, NULL, &s->ms, &d_ms, &d_sa));
    give(r, &d_ms);
    give(r, &s->ms);
    DSD_TRY(take_zero(r, &d_cat, n, 2, h, wd));
    DSD_TRY(conv_backward(r, b, "sa.conv", &conv_spatial, &s->cat, &w->sa, &d_sa, &d_cat, &gw->sa));
    give(r, &d_sa);
    give(r, &s->cat);
    DSD_TRY(take_zero(r, &d_mean, n, 1, h, wd));
    DSD_TRY(take_zero(r, &d_max, n, 1, h, wd));
    RUN(dsd_concat_backward(ctx, &d_cat, &d_mean, &d_max));
    give(r, &d_cat);
    RUN(dsd_channel_mean_backward(ctx, &d_mean, &d_f1));
    RUN(dsd_channel_max_backward(ctx, &s->f1, &d_max, &d_f1));
    give(r, &d_mean);
    give(r, &d_max);

    /* channel attention: f1 = x * mc, mc = sigmoid(o1 + o2) */
    DSD_TRY(take_zero(r, &d_mc, n, c, 1, 1));
    RUN(dsd_mul_backward(ctx, x, &s->mc, &d_f1, dx, &d_mc));
    give(r, &d_f1);
    give(r, &s->f1);
    DSD_TRY(take_zero(r, &d_mlp, n, c, 1, 1));
    RUN(dsd_activation_backward(ctx, DSD_ACT_SIGMOID, 0.0f, NULL, &s->mc, &d_mc, &d_mlp));
    give(r, &d_mc);
    give(r, &s->mc);
    /* both MLP branches receive d_mlp (the sum's backward); max branch first */
    DSD_TRY(take_zero(r, &d_hidden, n, hidden, 1, 1));
    DSD_TRY(take_zero(r, &d_fc1, n, hidden, 1, 1));
    DSD_TRY(take_zero(r, &d_pool, n, c, 1, 1));
    DSD_TRY(conv_backward(r, b, "ca.fc2", &conv_1x1, &s->a2, &w->fc2, &d_mlp, &d_hidden, &gw->fc2));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a2, NULL, &d_hidden,
                                &d_fc1));
    DSD_TRY(conv_backward(r, b, "ca.fc1", &conv_1x1, &s->mx, &w->fc1, &d_fc1, &d_pool, &gw->fc1));
    RUN(dsd_global_max_pool_backward(ctx, x, &d_pool, dx));
    RUN(dsd_tensor_fill(ctx, &d_hidden, 0.0f));
    RUN(dsd_tensor_fill(ctx, &d_fc1, 0.0f));
    RUN(dsd_tensor_fill(ctx, &d_pool, 0.0f));
    DSD_TRY(conv_backward(r, b, "ca.fc2", &conv_1x1, &s->a1, &w->fc2, &d_mlp, &d_hidden, &gw->fc2));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a1, NULL, &d_hidden,
                                &d_fc1));
    DSD_TRY(conv_backward(r, b, "ca.fc1", &conv_1x1, &s->avg, &w->fc1, &d_fc1, &d_pool, &gw->fc1));
    RUN(dsd_global_avg_pool_backward(ctx, &d_pool, dx));
    give(r, &d_mlp);
    give(r, &d_hidden);
    give(r, &d_fc1);
    give(r, &d_pool);
    dsd_tensor *pooled[] = {&s->avg, &s->mx, &s->a1, &s->a2};
    for (size_t i = 0; i < sizeof pooled / sizeof pooled[0]; i++)
        give(r, pooled[i]);
    return DSD_OK;
}

/* The whole network's backward: dy = dL/dy; dx (may be NULL) += dL/dx. */
static dsd_status generator_backward_pass(gen_pass *r, const dsd_tensor *x,
                                          struct dsd_generator_saved *sv, const dsd_tensor *dy,
                                          dsd_tensor *dx)
{
    dsd_context *ctx = r->base.ctx;
    const dsd_generator_weights *w = r->w;
    dsd_generator_weights *gw = r->grad;
    const gen_dims d = gen_dims_of(r->cfg);
    const float slope = r->cfg->slope;
    const int n = x->n, h = x->h, wd = x->w, nb = r->cfg->n_blocks;
    const dsd_conv2d_params up = conv_up(d.k);
    dsd_tensor d_residual, d_tail, d_up1, d_shuffled, d_up_conv, d_up0, d_feat, d_prev,
        d_features, d_down0, d_head;

    /* y = clamp(residual), residual = x + tanh(tail(up1_out)) */
    DSD_TRY(take_zero(r, &d_residual, n, 3, h, wd));
    RUN(dsd_clamp_backward(ctx, -1.0f, 1.0f, &sv->residual, dy, &d_residual));
    give(r, &sv->residual);
    if (dx)
        RUN(dsd_add_backward(ctx, 1.0f, &d_residual, dx, NULL));
    DSD_TRY(take_zero(r, &d_tail, n, 3, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_TANH, 0.0f, NULL, &sv->tail_tanh, &d_residual,
                                &d_tail));
    give(r, &d_residual);
    give(r, &sv->tail_tanh);
    DSD_TRY(take_zero(r, &d_up1, n, d.b, h, wd));
    DSD_TRY(conv_backward(r, -1, "tail", &conv_7x7_reflect, &sv->up1_out, &w->tail, &d_tail, &d_up1,
                          &gw->tail));
    give(r, &d_tail);

    /* up.1: up1_out = LReLU(shuffle(conv(up0_out))) */
    DSD_TRY(take_zero(r, &d_shuffled, n, d.b, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->up1_out, NULL, &d_up1,
                                &d_shuffled));
    give(r, &d_up1);
    give(r, &sv->up1_out);
    DSD_TRY(take_zero(r, &d_up_conv, n, 4 * d.b, h / 2, wd / 2));
    RUN(dsd_pixel_shuffle_backward(ctx, 2, &d_shuffled, &d_up_conv));
    give(r, &d_shuffled);
    DSD_TRY(take_zero(r, &d_up0, n, 2 * d.b, h / 2, wd / 2));
    DSD_TRY(conv_backward(r, -1, "up.1", &up, &sv->up0_out, &w->up[1], &d_up_conv, &d_up0,
                          &gw->up[1]));
    give(r, &d_up_conv);

    /* up.0: up0_out = LReLU(shuffle(conv(feat))) */
    DSD_TRY(take_zero(r, &d_shuffled, n, 2 * d.b, h / 2, wd / 2));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->up0_out, NULL, &d_up0,
                                &d_shuffled));
    give(r, &d_up0);
    give(r, &sv->up0_out);
    DSD_TRY(take_zero(r, &d_up_conv, n, 8 * d.b, h / 4, wd / 4));
    RUN(dsd_pixel_shuffle_backward(ctx, 2, &d_shuffled, &d_up_conv));
    give(r, &d_shuffled);
    dsd_tensor *feat = nb > 0 ? &sv->blocks[nb - 1].out : &sv->features;
    DSD_TRY(take_zero(r, &d_feat, n, d.c, h / 4, wd / 4));
    DSD_TRY(conv_backward(r, -1, "up.0", &up, feat, &w->up[0], &d_up_conv, &d_feat, &gw->up[0]));
    give(r, &d_up_conv);

    /* the blocks, last to first */
    for (int b = nb - 1; b >= 0; b--) {
        dsd_tensor *in = b > 0 ? &sv->blocks[b - 1].out : &sv->features;
        DSD_TRY(take_zero(r, &d_prev, n, d.c, h / 4, wd / 4));
        PASS_SCOPE_BEGIN(r, "G blocks.%d backward (other ops)", b);
        dsd_status st = dscrb_backward(r, b, in, &sv->blocks[b], &d_feat, &d_prev);
        PASS_SCOPE_END(r);
        DSD_TRY(st);
        give(r, &sv->blocks[b].out);
        give(r, &d_feat);
        d_feat = d_prev;
    }

    /* down.1, down.0, head */
    DSD_TRY(take_zero(r, &d_features, n, d.c, h / 4, wd / 4));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->features, NULL, &d_feat,
                                &d_features));
    give(r, &d_feat);
    give(r, &sv->features);
    DSD_TRY(take_zero(r, &d_down0, n, 2 * d.b, h / 2, wd / 2));
    DSD_TRY(conv_backward(r, -1, "down.1", &conv_down, &sv->down0_out, &w->down[1], &d_features,
                          &d_down0, &gw->down[1]));
    give(r, &d_features);
    DSD_TRY(take_zero(r, &d_features, n, 2 * d.b, h / 2, wd / 2));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->down0_out, NULL, &d_down0,
                                &d_features));
    give(r, &d_down0);
    give(r, &sv->down0_out);
    DSD_TRY(take_zero(r, &d_head, n, d.b, h, wd));
    DSD_TRY(conv_backward(r, -1, "down.0", &conv_down, &sv->head_out, &w->down[0], &d_features,
                          &d_head, &gw->down[0]));
    give(r, &d_features);
    DSD_TRY(take_zero(r, &d_features, n, d.b, h, wd));
    RUN(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &sv->head_out, NULL, &d_head,
                                &d_features));
    give(r, &d_head);
    give(r, &sv->head_out);
    DSD_TRY(conv_backward(r, -1, "head", &conv_7x7_reflect, x, &w->head, &d_features, dx,
                          &gw->head));
    give(r, &d_features);
    return DSD_OK;
}

#undef RUN

/* ------------------------------------------------------------------------ */
/* Passes: what each entry point plans and runs */

typedef enum pass_kind {
    PASS_WHOLE,  /* a = x, out = y */
    PASS_ENCODE, /* a = x, out = f */
    PASS_BLOCK,  /* a = f, out = the block's output */
    PASS_DECODE, /* a = f, b = x, out = y */
} pass_kind;

static dsd_status forward_kind(gen_pass *r, pass_kind kind, int block, const dsd_tensor *a,
                               const dsd_tensor *b, dsd_tensor *out,
                               struct dsd_generator_saved *sv)
{
    switch (kind) {
    case PASS_WHOLE:
        return generator_forward_pass(r, a, out, sv);
    case PASS_ENCODE:
        return encode(r, a, sv, out);
    case PASS_BLOCK:
        sv->blocks[0].out = *out;
        return dscrb_forward(r, block, a, &sv->blocks[0], 0);
    case PASS_DECODE: {
        dsd_tensor f = *a;
        return decode(r, &f, 0, b, sv, out);
    }
    }
    return DSD_FAIL(r->base.ctx ? dsd_ctx_err(r->base.ctx) : r->base.err,
                    DSD_ERR_INVALID_ARGUMENT, "generator: unknown pass %d",
                    (int)kind);
}

/* The backward of a training pass (PASS_WHOLE or PASS_BLOCK). */
static dsd_status backward_kind(gen_pass *r, pass_kind kind, int block, const dsd_tensor *x,
                                const dsd_tensor *dy, dsd_tensor *dx,
                                struct dsd_generator_saved *sv)
{
    if (kind == PASS_BLOCK) {
        DSD_TRY(dscrb_backward(r, block, x, &sv->blocks[0], dy, dx));
        memset(&sv->blocks[0].out, 0, sizeof sv->blocks[0].out); /* the caller's */
        return DSD_OK;
    }
    return generator_backward_pass(r, x, sv, dy, dx);
}

/* Plans a pass of kind on shape-only tensors a, b, out (training: its
 * backward too). */
static dsd_status plan_kind(const dsd_generator_config *cfg, pass_kind kind, int block,
                            int training, const dsd_tensor *a, const dsd_tensor *b,
                            const dsd_tensor *out, dsd_network_plan *plan, dsd_error *err)
{
    dsd_network_plan_reset(plan);
    int nb = cfg->n_blocks > 0 ? cfg->n_blocks : 1;
    dsd_dscrb_weights *blocks = calloc((size_t)nb, sizeof *blocks);
    struct dsd_generator_saved *sv = saved_new(training ? cfg->n_blocks : 1);
    dsd_status st = DSD_OK;
    if (!blocks || !sv) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "generator plan: out of host memory");
    } else {
        dsd_generator_weights shapes = {.blocks = blocks};
        gen_pass r = {.base = {.plan = plan, .net = "G", .err = err}, .cfg = cfg,
                      .w = &shapes, .grad = &shapes, .training = training};
        dsd_tensor sa = *a, sb = b ? *b : *a, so = *out;
        st = forward_kind(&r, kind, block, &sa, &sb, &so, sv);
        if (st == DSD_OK && training)
            st = backward_kind(&r, kind, block, &sa, &so, &sa, sv);
    }
    free(blocks);
    saved_delete(sv);
    dsd_pass_plan_done(plan);
    return st;
}

static dsd_tensor shape_of(int n, int c, int h, int w)
{
    return (dsd_tensor){.n = n, .c = c, .h = h, .w = w};
}

dsd_status dsd_generator_plan(const dsd_generator_config *cfg, int n, int h, int w, int training,
                              dsd_network_plan *plan, dsd_error *err)
{
    DSD_TRY(dsd_generator_config_check(cfg, err));
    if (n < 1 || h < 8 || w < 8 || h % 4 || w % 4)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "generator plan: %dx3x%dx%d; the generator takes N "
                        "x 3 x H x W with H and W multiples of 4, at least 8", n, h, w);
    dsd_tensor x = shape_of(n, 3, h, w);
    return plan_kind(cfg, PASS_WHOLE, -1, training, &x, NULL, &x, plan, err);
}

dsd_status dsd_generator_plan_stage(const dsd_generator_config *cfg, dsd_generator_stage stage,
                                    int n, int h, int w, dsd_network_plan *plan, dsd_error *err)
{
    DSD_TRY(dsd_generator_config_check(cfg, err));
    if (n < 1 || h < 8 || w < 8 || h % 4 || w % 4)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "generator plan: %dx3x%dx%d; the generator takes N "
                        "x 3 x H x W with H and W multiples of 4, at least 8", n, h, w);
    const int c = gen_dims_of(cfg).c;
    dsd_tensor x = shape_of(n, 3, h, w), f = shape_of(n, c, h / 4, w / 4);
    switch (stage) {
    case DSD_GENERATOR_ENCODE:
        return plan_kind(cfg, PASS_ENCODE, -1, 0, &x, NULL, &f, plan, err);
    case DSD_GENERATOR_BLOCKS:
        if (cfg->n_blocks < 1) {
            dsd_network_plan_reset(plan);
            return DSD_OK;
        }
        return plan_kind(cfg, PASS_BLOCK, 0, 0, &f, NULL, &f, plan, err);
    case DSD_GENERATOR_DECODE:
        return plan_kind(cfg, PASS_DECODE, -1, 0, &f, &x, &x, plan, err);
    }
    return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "generator plan: unknown stage %d",
                    (int)stage);
}

/* Runs an inference pass in an arena leased for the call. */
static dsd_status run_inference(dsd_context *ctx, dsd_generator *g, pass_kind kind, int block,
                                const dsd_tensor *a, const dsd_tensor *b, dsd_tensor *out)
{
    dsd_network_plan plan = {0};
    dsd_tensor arena = {0}, workspace = {0};
    struct dsd_generator_saved *sv = saved_new(1);
    dsd_status st = sv ? DSD_OK : DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "generator: "
                                           "out of host memory");
    if (st == DSD_OK)
        st = plan_kind(&g->cfg, kind, block, 0, a, b, out, &plan, dsd_ctx_err(ctx));
    if (st == DSD_OK)
        st = dsd_pass_memory_alloc(ctx, "generator", &plan, &arena, &workspace);
    if (st == DSD_OK) {
        gen_pass r = {.base = dsd_pass_running(ctx, "G", &plan, &arena, &workspace, 0),
                      .cfg = &g->cfg, .w = &g->w, .grad = &g->grad,
                      .dropout_seed = g->dropout_seed};
        st = forward_kind(&r, kind, block, a, b, out, sv);
    }
    dsd_pass_memory_free(ctx, &plan, &arena, &workspace);
    saved_delete(sv);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tapes */

void dsd_generator_tape_free(dsd_context *ctx, dsd_generator_tape *tape)
{
    if (!tape)
        return;
    dsd_pass_memory_free(ctx, &tape->plan, &tape->arena, &tape->workspace);
    saved_delete(tape->saved);
    uint64_t step = tape->step, first_sample = tape->first_sample; /* inputs: kept */
    memset(tape, 0, sizeof *tape);
    tape->step = step;
    tape->first_sample = first_sample;
}

/* Makes tape ready for a training pass of kind on a (plans and allocates
 * only when the shape or kind changed since the last one). */
static dsd_status tape_prepare(dsd_context *ctx, const dsd_generator *g,
                               dsd_generator_tape *tape, pass_kind kind, int block,
                               const dsd_tensor *a)
{
    tape->pending = 0; /* a forward never backpropagated is dropped */
    const dsd_generator_config *c = &g->cfg, *t = &tape->cfg;
    int same_net = c->n_blocks == t->n_blocks && c->base_width == t->base_width &&
                   c->mlp_ratio == t->mlp_ratio && c->up_kernel == t->up_kernel &&
                   c->dropout == t->dropout && c->slope == t->slope;
    int fresh = tape->saved && same_net && tape->block == block && tape->n == a->n &&
                tape->h == a->h && tape->w == a->w;
    if (!fresh) {
        dsd_generator_tape_free(ctx, tape); /* keeps step and first_sample */
        tape->block = block;
        tape->cfg = g->cfg;
        tape->n = a->n;
        tape->h = a->h;
        tape->w = a->w;
        tape->saved = saved_new(kind == PASS_BLOCK ? 1 : g->cfg.n_blocks);
        if (!tape->saved)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "generator tape: out of "
                            "host memory");
        dsd_status st = plan_kind(&g->cfg, kind, block, 1, a, NULL, a, &tape->plan,
                                  dsd_ctx_err(ctx));
        if (st == DSD_OK)
            st = dsd_pass_memory_alloc(ctx, "generator", &tape->plan, &tape->arena,
                                       &tape->workspace);
        if (st != DSD_OK) {
            dsd_generator_tape_free(ctx, tape);
            return st;
        }
    }
    saved_clear(tape->saved);
    tape->next_slot = 0;
    return DSD_OK;
}

static gen_pass tape_pass(dsd_context *ctx, dsd_generator *g, dsd_generator_tape *tape)
{
    return (gen_pass){.base = dsd_pass_running(ctx, "G", &tape->plan, &tape->arena,
                                               &tape->workspace, tape->next_slot),
                      .cfg = &g->cfg, .w = &g->w, .grad = &g->grad,
                      .dropout_seed = g->dropout_seed, .training = 1, .step = tape->step,
                      .first_sample = tape->first_sample};
}

/* ------------------------------------------------------------------------ */
/* Entry points */

static dsd_status check_image(dsd_context *ctx, const char *op, const dsd_tensor *t,
                              const char *what)
{
    if (!t || !t->buf || t->n <= 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is NULL or "
                        "unallocated", op, what);
    if (t->c != 3 || t->h % 4 || t->w % 4 || t->h < 8 || t->w < 8)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d; the generator "
                        "takes N x 3 x H x W with H and W multiples of 4, at least 8", op, what,
                        t->n, t->c, t->h, t->w);
    return DSD_OK;
}

static dsd_status check_ready(dsd_context *ctx, const dsd_generator *g, const char *op)
{
    if (!g || !g->params.values.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: generator not "
                        "initialized", op);
    return DSD_OK;
}

/* f must be a feature map of this generator: (N, C, H, W) with any N, H, W. */
static dsd_status check_features(dsd_context *ctx, const char *op, const dsd_generator *g,
                                 const dsd_tensor *f, const char *what)
{
    const int c = gen_dims_of(&g->cfg).c;
    if (!f || !f->buf || f->n <= 0 || f->h <= 0 || f->w <= 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is NULL or "
                        "unallocated", op, what);
    if (f->c != c)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s has %d channels, the "
                        "generator's blocks %d", op, what, f->c, c);
    return DSD_OK;
}

/* t must be (n, c, h, w), for the stage functions. */
static dsd_status check_shape(dsd_context *ctx, const char *op, const dsd_tensor *t,
                              const char *what, int n, int c, int h, int w)
{
    if (!t || !t->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is NULL or "
                        "unallocated", op, what);
    if (t->n != n || t->c != c || t->h != h || t->w != w)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d, want "
                        "%dx%dx%dx%d", op, what, t->n, t->c, t->h, t->w, n, c, h, w);
    return DSD_OK;
}

dsd_status dsd_generator_forward(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                 dsd_tensor *y, dsd_generator_tape *tape)
{
    const char *op = "generator_forward";
    DSD_TRY(check_ready(ctx, g, op));
    DSD_TRY(check_image(ctx, op, x, "x"));
    DSD_TRY(check_image(ctx, op, y, "y"));
    if (!dsd_tensor_same_shape(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: y is %dx%dx%dx%d but x is "
                        "%dx%dx%dx%d", op, y->n, y->c, y->h, y->w, x->n, x->c, x->h, x->w);
    if (dsd_tensor_overlap(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: y overlaps x", op);
    if (!tape)
        return run_inference(ctx, g, PASS_WHOLE, -1, x, NULL, y);

    DSD_TRY(tape_prepare(ctx, g, tape, PASS_WHOLE, -1, x));
    gen_pass r = tape_pass(ctx, g, tape);
    DSD_TRY(generator_forward_pass(&r, x, y, tape->saved));
    tape->next_slot = r.base.next_slot;
    tape->x = *x;
    tape->x.capacity = 0;
    tape->pending = 1;
    return DSD_OK;
}

dsd_status dsd_generator_block_train_forward(dsd_context *ctx, dsd_generator *g, int b,
                                             const dsd_tensor *f, dsd_tensor *out,
                                             dsd_generator_tape *tape)
{
    const char *op = "generator_block_train_forward";
    DSD_TRY(check_ready(ctx, g, op));
    if (b < 0 || b >= g->cfg.n_blocks || !tape)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: block %d of %d, tape "
                        "%s", op, b, g->cfg.n_blocks, tape ? "given" : "NULL");
    const int c = gen_dims_of(&g->cfg).c;
    DSD_TRY(check_features(ctx, op, g, f, "f"));
    DSD_TRY(check_shape(ctx, op, out, "out", f->n, c, f->h, f->w));
    DSD_TRY(tape_prepare(ctx, g, tape, PASS_BLOCK, b, f));
    gen_pass r = tape_pass(ctx, g, tape);
    tape->saved->blocks[0].out = *out;
    DSD_TRY(dscrb_forward(&r, b, f, &tape->saved->blocks[0], 0));
    tape->next_slot = r.base.next_slot;
    tape->x = *f;
    tape->x.capacity = 0;
    tape->pending = 1;
    return DSD_OK;
}

dsd_status dsd_generator_backward(dsd_context *ctx, dsd_generator *g, dsd_generator_tape *tape,
                                  const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "generator_backward";
    DSD_TRY(check_ready(ctx, g, op));
    if (!tape || !tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: no training forward "
                        "is pending", op);
    const dsd_tensor *x = &tape->x;
    if (tape->block < 0)
        DSD_TRY(check_image(ctx, op, dy, "dy"));
    if (!dy || !dsd_tensor_same_shape(dy, x))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dy is %dx%dx%dx%d but the forward "
                        "took %dx%dx%dx%d", op, dy ? dy->n : 0, dy ? dy->c : 0, dy ? dy->h : 0,
                        dy ? dy->w : 0, x->n, x->c, x->h, x->w);
    if (dx) {
        if (tape->block < 0)
            DSD_TRY(check_image(ctx, op, dx, "dx"));
        if (!dsd_tensor_same_shape(dx, x))
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dx is %dx%dx%dx%d but the "
                            "forward took %dx%dx%dx%d", op, dx->n, dx->c, dx->h, dx->w, x->n,
                            x->c, x->h, x->w);
    }
    tape->pending = 0;
    gen_pass r = tape_pass(ctx, g, tape);
    pass_kind kind = tape->block < 0 ? PASS_WHOLE : PASS_BLOCK;
    return backward_kind(&r, kind, tape->block, x, dy, dx, tape->saved);
}

dsd_status dsd_generator_encode(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                dsd_tensor *f)
{
    const char *op = "generator_encode";
    DSD_TRY(check_ready(ctx, g, op));
    DSD_TRY(check_image(ctx, op, x, "x"));
    DSD_TRY(check_shape(ctx, op, f, "f", x->n, gen_dims_of(&g->cfg).c, x->h / 4, x->w / 4));
    return run_inference(ctx, g, PASS_ENCODE, -1, x, NULL, f);
}

dsd_status dsd_generator_block(dsd_context *ctx, dsd_generator *g, int b, const dsd_tensor *f,
                               dsd_tensor *out)
{
    const char *op = "generator_block";
    DSD_TRY(check_ready(ctx, g, op));
    if (b < 0 || b >= g->cfg.n_blocks)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: block %d of %d", op,
                        b, g->cfg.n_blocks);
    const int c = gen_dims_of(&g->cfg).c;
    DSD_TRY(check_features(ctx, op, g, f, "f"));
    DSD_TRY(check_shape(ctx, op, out, "out", f->n, c, f->h, f->w));
    return run_inference(ctx, g, PASS_BLOCK, b, f, NULL, out);
}

dsd_status dsd_generator_decode(dsd_context *ctx, dsd_generator *g, const dsd_tensor *f,
                                const dsd_tensor *x, dsd_tensor *y)
{
    const char *op = "generator_decode";
    DSD_TRY(check_ready(ctx, g, op));
    DSD_TRY(check_image(ctx, op, x, "x"));
    DSD_TRY(check_image(ctx, op, y, "y"));
    DSD_TRY(check_shape(ctx, op, f, "f", x->n, gen_dims_of(&g->cfg).c, x->h / 4, x->w / 4));
    DSD_TRY(check_shape(ctx, op, y, "y", x->n, 3, x->h, x->w));
    return run_inference(ctx, g, PASS_DECODE, -1, f, x, y);
}
