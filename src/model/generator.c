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
#include "internal.h"

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

struct dsd_generator_tape {
    int pending;          /* a training forward waits for its backward */
    uint64_t step;
    dsd_tensor x;         /* (N, 3, H, W) the input, borrowed */
    dsd_tensor a0;        /* (N, B, H, W) head after LReLU */
    dsd_tensor a1;        /* (N, 2B, H/2, W/2) down.0 after LReLU */
    dsd_tensor a2;        /* (N, C, H/4, W/4) down.1 after LReLU */
    dscrb_saved *blocks;  /* n_blocks (training) or one scratch block (inference) */
    dsd_tensor feat;      /* inference: the current block input */
    dsd_tensor u;         /* up conv output before the shuffle (scratch) */
    dsd_tensor v1;        /* (N, 2B, H/2, W/2) up.0 after shuffle + LReLU */
    dsd_tensor v2;        /* (N, B, H, W) up.1 after shuffle + LReLU */
    dsd_tensor t;         /* (N, 3, H, W) tanh(tail) */
    dsd_tensor s;         /* (N, 3, H, W) x + t, the clamp's input */
};

static void dscrb_saved_release(dsd_context *ctx, dscrb_saved *s)
{
    dsd_tensor *all = (dsd_tensor *)s;
    for (size_t i = 0; i < sizeof *s / sizeof(dsd_tensor); i++)
        dsd_tensor_free(ctx, &all[i]);
}

static void tape_release(dsd_context *ctx, struct dsd_generator_tape *t, int n_blocks)
{
    for (int i = 0; i < n_blocks; i++)
        dscrb_saved_release(ctx, &t->blocks[i]);
    dsd_tensor *singles[] = {&t->a0, &t->a1, &t->a2, &t->feat, &t->u,
                             &t->v1, &t->v2, &t->t,  &t->s};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        dsd_tensor_free(ctx, singles[i]);
    memset(&t->x, 0, sizeof t->x); /* borrowed, never freed */
    t->pending = 0;
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
        g->tape = calloc(1, sizeof *g->tape);
        if (g->tape)
            g->tape->blocks = calloc(nb, sizeof *g->tape->blocks);
        if (!g->w.blocks || !g->grad.blocks || !g->tape || !g->tape->blocks)
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
    if (g->tape) {
        if (g->tape->blocks)
            tape_release(ctx, g->tape, g->cfg.n_blocks);
        free(g->tape->blocks);
        free(g->tape);
    }
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
/* Forward */

static const dsd_conv2d_params conv_7x7_reflect = {7, 7, 1, 3, DSD_PAD_REFLECT, 1};
static const dsd_conv2d_params conv_down = {3, 3, 2, 1, DSD_PAD_ZERO, 1};
static const dsd_conv2d_params conv_1x1 = {1, 1, 1, 0, DSD_PAD_ZERO, 1};
static const dsd_conv2d_params conv_spatial = {7, 7, 1, 3, DSD_PAD_ZERO, 1};

static dsd_conv2d_params conv_depthwise(int channels)
{
    dsd_conv2d_params p = {3, 3, 1, 1, DSD_PAD_REFLECT, channels};
    return p;
}

static dsd_conv2d_params conv_up(int k)
{
    dsd_conv2d_params p = {k, k, 1, k / 2, DSD_PAD_ZERO, 1};
    return p;
}

/* The dropout stream of block b at a step (see dsdeblur_model.h). */
static uint64_t dropout_stream(uint64_t step, int block)
{
    return step * UINT64_C(65536) + (uint64_t)block;
}

#define LEASE(t, n_, c_, h_, w_) DSD_TRY(dsd_tensor_init(ctx, (t), (n_), (c_), (h_), (w_)))
#define DROP(t)                        \
    do {                               \
        if (!training)                 \
            dsd_tensor_free(ctx, (t)); \
    } while (0)

/* One DSCRb on x (N, C, H, W) into s->out. Training keeps the activations in
 * s; inference frees each as soon as it is consumed and leaves only s->out.
 * On failure the caller releases s. */
static dsd_status dscrb_forward(dsd_context *ctx, const dsd_generator *g, int b,
                                const dsd_tensor *x, int training, uint64_t step, dscrb_saved *s)
{
    const dsd_dscrb_weights *w = &g->w.blocks[b];
    const float slope = g->cfg.slope, p = g->cfg.dropout;
    const int n = x->n, c = x->c, h = x->h, wd = x->w, hidden = w->fc1.weight.n;
    const dsd_conv2d_params dw = conv_depthwise(c);

    /* channel attention: mc = sigmoid(mlp(avg) + mlp(max)), f1 = x * mc */
    LEASE(&s->avg, n, c, 1, 1);
    LEASE(&s->mx, n, c, 1, 1);
    DSD_TRY(dsd_global_avg_pool_forward(ctx, x, &s->avg));
    DSD_TRY(dsd_global_max_pool_forward(ctx, x, &s->mx));
    LEASE(&s->a1, n, hidden, 1, 1);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->avg, &w->fc1.weight, &w->fc1.bias, &s->a1));
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a1, &s->a1));
    LEASE(&s->mc, n, c, 1, 1);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->a1, &w->fc2.weight, &w->fc2.bias, &s->mc));
    LEASE(&s->a2, n, hidden, 1, 1);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->mx, &w->fc1.weight, &w->fc1.bias, &s->a2));
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a2, &s->a2));
    LEASE(&s->o2, n, c, 1, 1);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->a2, &w->fc2.weight, &w->fc2.bias, &s->o2));
    DSD_TRY(dsd_add_forward(ctx, &s->mc, &s->o2, 1.0f, &s->mc));
    dsd_tensor_free(ctx, &s->o2);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_SIGMOID, 0.0f, &s->mc, &s->mc));
    DROP(&s->avg);
    DROP(&s->mx);
    DROP(&s->a1);
    DROP(&s->a2);
    LEASE(&s->f1, n, c, h, wd);
    DSD_TRY(dsd_mul_forward(ctx, x, &s->mc, &s->f1));
    DROP(&s->mc);

    /* spatial attention: ms = sigmoid(conv7x7([mean_c f1; max_c f1])), f2 = f1 * ms */
    LEASE(&s->cm, n, 1, h, wd);
    LEASE(&s->cx, n, 1, h, wd);
    DSD_TRY(dsd_channel_mean_forward(ctx, &s->f1, &s->cm));
    DSD_TRY(dsd_channel_max_forward(ctx, &s->f1, &s->cx));
    LEASE(&s->cat, n, 2, h, wd);
    DSD_TRY(dsd_concat_forward(ctx, &s->cm, &s->cx, &s->cat));
    dsd_tensor_free(ctx, &s->cm);
    dsd_tensor_free(ctx, &s->cx);
    LEASE(&s->ms, n, 1, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_spatial, &s->cat, &w->sa.weight, &w->sa.bias, &s->ms));
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_SIGMOID, 0.0f, &s->ms, &s->ms));
    DROP(&s->cat);
    if (training) {
        LEASE(&s->f2, n, c, h, wd);
        DSD_TRY(dsd_mul_forward(ctx, &s->f1, &s->ms, &s->f2));
    } else {
        DSD_TRY(dsd_mul_forward(ctx, &s->f1, &s->ms, &s->f1)); /* in place */
        s->f2 = s->f1;
        memset(&s->f1, 0, sizeof s->f1);
        dsd_tensor_free(ctx, &s->ms);
    }

    /* DSC -> LReLU -> Dropout -> DSC -> LReLU -> DSC, then the residual */
    LEASE(&s->d[0], n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &dw, &s->f2, &w->depthwise[0].weight, &w->depthwise[0].bias,
                               &s->d[0]));
    DROP(&s->f2);
    LEASE(&s->l1, n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->d[0], &w->pointwise[0].weight,
                               &w->pointwise[0].bias, &s->l1));
    DROP(&s->d[0]);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l1, &s->l1));
    if (training && p > 0.0f)
        DSD_TRY(dsd_dropout_forward(ctx, p, g->dropout_seed, dropout_stream(step, b), &s->l1,
                                    &s->l1));
    LEASE(&s->d[1], n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &dw, &s->l1, &w->depthwise[1].weight, &w->depthwise[1].bias,
                               &s->d[1]));
    DROP(&s->l1);
    LEASE(&s->l2, n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->d[1], &w->pointwise[1].weight,
                               &w->pointwise[1].bias, &s->l2));
    DROP(&s->d[1]);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l2, &s->l2));
    LEASE(&s->d[2], n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &dw, &s->l2, &w->depthwise[2].weight, &w->depthwise[2].bias,
                               &s->d[2]));
    DROP(&s->l2);
    LEASE(&s->out, n, c, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_1x1, &s->d[2], &w->pointwise[2].weight,
                               &w->pointwise[2].bias, &s->out));
    DROP(&s->d[2]);
    return dsd_add_forward(ctx, &s->out, x, 1.0f, &s->out);
}

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

/* The whole network on x into y; t receives the activations (training) or
 * serves as scratch (inference). On failure the caller releases t. */
static dsd_status generator_run(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                dsd_tensor *y, int training, uint64_t step,
                                struct dsd_generator_tape *t)
{
    const dsd_generator_weights *w = &g->w;
    const gen_dims d = gen_dims_of(&g->cfg);
    const float slope = g->cfg.slope;
    const int n = x->n, h = x->h, wd = x->w;
    const dsd_conv2d_params up = conv_up(d.k);

    /* head and the two stride-2 convs */
    LEASE(&t->a0, n, d.b, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_7x7_reflect, x, &w->head.weight, &w->head.bias, &t->a0));
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a0, &t->a0));
    LEASE(&t->a1, n, 2 * d.b, h / 2, wd / 2);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_down, &t->a0, &w->down[0].weight, &w->down[0].bias,
                               &t->a1));
    DROP(&t->a0);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a1, &t->a1));
    LEASE(&t->a2, n, d.c, h / 4, wd / 4);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_down, &t->a1, &w->down[1].weight, &w->down[1].bias,
                               &t->a2));
    DROP(&t->a1);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a2, &t->a2));

    /* the residual blocks */
    const dsd_tensor *feat = &t->a2;
    if (!training) {
        t->feat = t->a2;
        memset(&t->a2, 0, sizeof t->a2);
        feat = &t->feat;
    }
    for (int b = 0; b < g->cfg.n_blocks; b++) {
        dscrb_saved *s = &t->blocks[training ? b : 0];
        DSD_TRY(dscrb_forward(ctx, g, b, feat, training, step, s));
        if (training) {
            feat = &s->out;
        } else {
            dsd_tensor_free(ctx, &t->feat);
            t->feat = s->out;
            memset(&s->out, 0, sizeof s->out);
        }
    }

    /* up-sampling: conv, PixelShuffle(2), LReLU; twice */
    LEASE(&t->u, n, 8 * d.b, h / 4, wd / 4);
    DSD_TRY(dsd_conv2d_forward(ctx, &up, feat, &w->up[0].weight, &w->up[0].bias, &t->u));
    DROP(&t->feat);
    LEASE(&t->v1, n, 2 * d.b, h / 2, wd / 2);
    DSD_TRY(dsd_pixel_shuffle_forward(ctx, 2, &t->u, &t->v1));
    dsd_tensor_free(ctx, &t->u);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->v1, &t->v1));
    LEASE(&t->u, n, 4 * d.b, h / 2, wd / 2);
    DSD_TRY(dsd_conv2d_forward(ctx, &up, &t->v1, &w->up[1].weight, &w->up[1].bias, &t->u));
    DROP(&t->v1);
    LEASE(&t->v2, n, d.b, h, wd);
    DSD_TRY(dsd_pixel_shuffle_forward(ctx, 2, &t->u, &t->v2));
    dsd_tensor_free(ctx, &t->u);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->v2, &t->v2));

    /* tail, tanh, global residual, clamp */
    LEASE(&t->t, n, 3, h, wd);
    DSD_TRY(dsd_conv2d_forward(ctx, &conv_7x7_reflect, &t->v2, &w->tail.weight, &w->tail.bias,
                               &t->t));
    DROP(&t->v2);
    DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_TANH, 0.0f, &t->t, &t->t));
    if (training) {
        LEASE(&t->s, n, 3, h, wd);
        DSD_TRY(dsd_add_forward(ctx, x, &t->t, 1.0f, &t->s));
        DSD_TRY(dsd_clamp_forward(ctx, -1.0f, 1.0f, &t->s, y));
    } else {
        DSD_TRY(dsd_add_forward(ctx, x, &t->t, 1.0f, y));
        dsd_tensor_free(ctx, &t->t);
        DSD_TRY(dsd_clamp_forward(ctx, -1.0f, 1.0f, y, y));
    }
    return DSD_OK;
}

#undef DROP
#undef LEASE

dsd_status dsd_generator_forward(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                 dsd_tensor *y, int training, uint64_t step)
{
    const char *op = "generator_forward";
    if (!g || !g->tape || !g->params.values.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: generator not "
                        "initialized", op);
    DSD_TRY(check_image(ctx, op, x, "x"));
    DSD_TRY(check_image(ctx, op, y, "y"));
    if (!dsd_tensor_same_shape(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: y is %dx%dx%dx%d but x is "
                        "%dx%dx%dx%d", op, y->n, y->c, y->h, y->w, x->n, x->c, x->h, x->w);
    if (dsd_tensor_overlap(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: y overlaps x", op);

    struct dsd_generator_tape *t = g->tape;
    tape_release(ctx, t, g->cfg.n_blocks); /* drop a forward never backpropagated */
    dsd_status st = generator_run(ctx, g, x, y, training, step, t);
    if (st != DSD_OK || !training) {
        tape_release(ctx, t, g->cfg.n_blocks);
        return st;
    }
    t->x = *x;
    t->x.capacity = 0;
    t->step = step;
    t->pending = 1;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward (mirrored order; every temporary is a zeroed lease, because the
 * op backwards accumulate) */

/* Leases a zeroed n x c x h x w tensor into *t (released by the caller). */
static dsd_status zeros(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w)
{
    return dsd_tensor_init_zero(ctx, t, n, c, h, w);
}

#define TRY_GOTO(expr)          \
    do {                        \
        st = (expr);            \
        if (st != DSD_OK)       \
            goto done;          \
    } while (0)

/* Backward of block b: dout = dL/d(s->out); dx += dL/dx. Gives back the
 * block's activations except s->out (the next block's input, released by the
 * caller). */
static dsd_status dscrb_backward(dsd_context *ctx, dsd_generator *g, int b, const dsd_tensor *x,
                                 dscrb_saved *s, uint64_t step, const dsd_tensor *dout,
                                 dsd_tensor *dx)
{
    const dsd_dscrb_weights *w = &g->w.blocks[b];
    dsd_dscrb_weights *gw = &g->grad.blocks[b];
    const float slope = g->cfg.slope, p = g->cfg.dropout;
    const int n = x->n, c = x->c, h = x->h, wd = x->w, hidden = w->fc1.weight.n;
    const dsd_conv2d_params dw = conv_depthwise(c);
    dsd_status st = DSD_OK;
    /* temporaries, named by the gradient they hold when first written */
    dsd_tensor t_dd2 = {0}, t_dl2 = {0}, t_dp2 = {0}, t_dd1 = {0}, t_dr1 = {0}, t_dl1 = {0},
               t_dp1 = {0}, t_dd0 = {0}, t_df2 = {0}, t_df1 = {0}, t_dms = {0}, t_dsc = {0},
               t_dcat = {0}, t_dcm = {0}, t_dcx = {0}, t_dmc = {0}, t_ds = {0}, t_da = {0},
               t_dh = {0}, t_dpool = {0};
    dsd_tensor *tmp[] = {&t_dd2, &t_dl2, &t_dp2, &t_dd1, &t_dr1, &t_dl1, &t_dp1,
                         &t_dd0, &t_df2, &t_df1, &t_dms, &t_dsc, &t_dcat, &t_dcm,
                         &t_dcx, &t_dmc, &t_ds,  &t_da,  &t_dh,  &t_dpool};

    /* out = x + pointwise2(d2): dx += dout; the conv sees dout */
    TRY_GOTO(dsd_add_backward(ctx, 1.0f, dout, dx, NULL));
    TRY_GOTO(zeros(ctx, &t_dd2, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->d[2], &w->pointwise[2].weight, dout, &t_dd2,
                                 &gw->pointwise[2].weight, &gw->pointwise[2].bias));
    dsd_tensor_free(ctx, &s->d[2]);
    TRY_GOTO(zeros(ctx, &t_dl2, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &dw, &s->l2, &w->depthwise[2].weight, &t_dd2, &t_dl2,
                                 &gw->depthwise[2].weight, &gw->depthwise[2].bias));
    dsd_tensor_free(ctx, &t_dd2);
    TRY_GOTO(zeros(ctx, &t_dp2, n, c, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l2, NULL, &t_dl2, &t_dp2));
    dsd_tensor_free(ctx, &t_dl2);
    dsd_tensor_free(ctx, &s->l2);
    TRY_GOTO(zeros(ctx, &t_dd1, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->d[1], &w->pointwise[1].weight, &t_dp2, &t_dd1,
                                 &gw->pointwise[1].weight, &gw->pointwise[1].bias));
    dsd_tensor_free(ctx, &t_dp2);
    dsd_tensor_free(ctx, &s->d[1]);
    TRY_GOTO(zeros(ctx, &t_dr1, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &dw, &s->l1, &w->depthwise[1].weight, &t_dd1, &t_dr1,
                                 &gw->depthwise[1].weight, &gw->depthwise[1].bias));
    dsd_tensor_free(ctx, &t_dd1);
    const dsd_tensor *dl1 = &t_dr1;
    if (p > 0.0f) {
        TRY_GOTO(zeros(ctx, &t_dl1, n, c, h, wd));
        TRY_GOTO(dsd_dropout_backward(ctx, p, g->dropout_seed, dropout_stream(step, b), &t_dr1,
                                      &t_dl1));
        dsd_tensor_free(ctx, &t_dr1);
        dl1 = &t_dl1;
    }
    /* l1 holds dropout(LReLU(.)): same sign where kept, zero gradient where dropped */
    TRY_GOTO(zeros(ctx, &t_dp1, n, c, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->l1, NULL, dl1, &t_dp1));
    dsd_tensor_free(ctx, &t_dr1);
    dsd_tensor_free(ctx, &t_dl1);
    dsd_tensor_free(ctx, &s->l1);
    TRY_GOTO(zeros(ctx, &t_dd0, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->d[0], &w->pointwise[0].weight, &t_dp1, &t_dd0,
                                 &gw->pointwise[0].weight, &gw->pointwise[0].bias));
    dsd_tensor_free(ctx, &t_dp1);
    dsd_tensor_free(ctx, &s->d[0]);
    TRY_GOTO(zeros(ctx, &t_df2, n, c, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &dw, &s->f2, &w->depthwise[0].weight, &t_dd0, &t_df2,
                                 &gw->depthwise[0].weight, &gw->depthwise[0].bias));
    dsd_tensor_free(ctx, &t_dd0);
    dsd_tensor_free(ctx, &s->f2);

    /* spatial attention */
    TRY_GOTO(zeros(ctx, &t_df1, n, c, h, wd));
    TRY_GOTO(zeros(ctx, &t_dms, n, 1, h, wd));
    TRY_GOTO(dsd_mul_backward(ctx, &s->f1, &s->ms, &t_df2, &t_df1, &t_dms));
    dsd_tensor_free(ctx, &t_df2);
    TRY_GOTO(zeros(ctx, &t_dsc, n, 1, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_SIGMOID, 0.0f, NULL, &s->ms, &t_dms, &t_dsc));
    dsd_tensor_free(ctx, &t_dms);
    dsd_tensor_free(ctx, &s->ms);
    TRY_GOTO(zeros(ctx, &t_dcat, n, 2, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_spatial, &s->cat, &w->sa.weight, &t_dsc, &t_dcat,
                                 &gw->sa.weight, &gw->sa.bias));
    dsd_tensor_free(ctx, &t_dsc);
    dsd_tensor_free(ctx, &s->cat);
    TRY_GOTO(zeros(ctx, &t_dcm, n, 1, h, wd));
    TRY_GOTO(zeros(ctx, &t_dcx, n, 1, h, wd));
    TRY_GOTO(dsd_concat_backward(ctx, &t_dcat, &t_dcm, &t_dcx));
    dsd_tensor_free(ctx, &t_dcat);
    TRY_GOTO(dsd_channel_mean_backward(ctx, &t_dcm, &t_df1));
    TRY_GOTO(dsd_channel_max_backward(ctx, &s->f1, &t_dcx, &t_df1));
    dsd_tensor_free(ctx, &t_dcm);
    dsd_tensor_free(ctx, &t_dcx);

    /* channel attention: f1 = x * mc, mc = sigmoid(o1 + o2) */
    TRY_GOTO(zeros(ctx, &t_dmc, n, c, 1, 1));
    TRY_GOTO(dsd_mul_backward(ctx, x, &s->mc, &t_df1, dx, &t_dmc));
    dsd_tensor_free(ctx, &t_df1);
    dsd_tensor_free(ctx, &s->f1);
    TRY_GOTO(zeros(ctx, &t_ds, n, c, 1, 1));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_SIGMOID, 0.0f, NULL, &s->mc, &t_dmc, &t_ds));
    dsd_tensor_free(ctx, &t_dmc);
    dsd_tensor_free(ctx, &s->mc);
    /* both MLP branches receive ds (the sum's backward); max branch first */
    TRY_GOTO(zeros(ctx, &t_da, n, hidden, 1, 1));
    TRY_GOTO(zeros(ctx, &t_dh, n, hidden, 1, 1));
    TRY_GOTO(zeros(ctx, &t_dpool, n, c, 1, 1));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->a2, &w->fc2.weight, &t_ds, &t_da,
                                 &gw->fc2.weight, &gw->fc2.bias));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a2, NULL, &t_da, &t_dh));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->mx, &w->fc1.weight, &t_dh, &t_dpool,
                                 &gw->fc1.weight, &gw->fc1.bias));
    TRY_GOTO(dsd_global_max_pool_backward(ctx, x, &t_dpool, dx));
    TRY_GOTO(dsd_tensor_fill(ctx, &t_da, 0.0f));
    TRY_GOTO(dsd_tensor_fill(ctx, &t_dh, 0.0f));
    TRY_GOTO(dsd_tensor_fill(ctx, &t_dpool, 0.0f));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->a1, &w->fc2.weight, &t_ds, &t_da,
                                 &gw->fc2.weight, &gw->fc2.bias));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &s->a1, NULL, &t_da, &t_dh));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_1x1, &s->avg, &w->fc1.weight, &t_dh, &t_dpool,
                                 &gw->fc1.weight, &gw->fc1.bias));
    TRY_GOTO(dsd_global_avg_pool_backward(ctx, &t_dpool, dx));

done:
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        dsd_tensor_free(ctx, tmp[i]);
    return st;
}

dsd_status dsd_generator_backward(dsd_context *ctx, dsd_generator *g, const dsd_tensor *dy,
                                  dsd_tensor *dx)
{
    const char *op = "generator_backward";
    if (!g || !g->tape || !g->tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: no training forward "
                        "is pending", op);
    struct dsd_generator_tape *t = g->tape;
    const dsd_tensor *x = &t->x;
    DSD_TRY(check_image(ctx, op, dy, "dy"));
    if (!dsd_tensor_same_shape(dy, x))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dy is %dx%dx%dx%d but the forward "
                        "took %dx%dx%dx%d", op, dy->n, dy->c, dy->h, dy->w, x->n, x->c, x->h,
                        x->w);
    if (dx) {
        DSD_TRY(check_image(ctx, op, dx, "dx"));
        if (!dsd_tensor_same_shape(dx, x))
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dx is %dx%dx%dx%d but the "
                            "forward took %dx%dx%dx%d", op, dx->n, dx->c, dx->h, dx->w, x->n,
                            x->c, x->h, x->w);
    }

    const dsd_generator_weights *w = &g->w;
    dsd_generator_weights *gw = &g->grad;
    const gen_dims d = gen_dims_of(&g->cfg);
    const float slope = g->cfg.slope;
    const int n = x->n, h = x->h, wd = x->w, nb = g->cfg.n_blocks;
    const dsd_conv2d_params up = conv_up(d.k);
    dsd_status st = DSD_OK;
    dsd_tensor t_ds = {0}, t_du = {0}, t_dv = {0}, t_dsh = {0}, t_dfeat = {0}, t_dprev = {0};
    dsd_tensor *tmp[] = {&t_ds, &t_du, &t_dv, &t_dsh, &t_dfeat, &t_dprev};

    /* y = clamp(s), s = x + tanh(tail(v2)) */
    TRY_GOTO(zeros(ctx, &t_ds, n, 3, h, wd));
    TRY_GOTO(dsd_clamp_backward(ctx, -1.0f, 1.0f, &t->s, dy, &t_ds));
    dsd_tensor_free(ctx, &t->s);
    if (dx)
        TRY_GOTO(dsd_add_backward(ctx, 1.0f, &t_ds, dx, NULL));
    TRY_GOTO(zeros(ctx, &t_du, n, 3, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_TANH, 0.0f, NULL, &t->t, &t_ds, &t_du));
    dsd_tensor_free(ctx, &t_ds);
    dsd_tensor_free(ctx, &t->t);
    TRY_GOTO(zeros(ctx, &t_dv, n, d.b, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_7x7_reflect, &t->v2, &w->tail.weight, &t_du, &t_dv,
                                 &gw->tail.weight, &gw->tail.bias));
    dsd_tensor_free(ctx, &t_du);

    /* up.1: v2 = LReLU(shuffle(conv(v1))) */
    TRY_GOTO(zeros(ctx, &t_dsh, n, d.b, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->v2, NULL, &t_dv, &t_dsh));
    dsd_tensor_free(ctx, &t_dv);
    dsd_tensor_free(ctx, &t->v2);
    TRY_GOTO(zeros(ctx, &t_du, n, 4 * d.b, h / 2, wd / 2));
    TRY_GOTO(dsd_pixel_shuffle_backward(ctx, 2, &t_dsh, &t_du));
    dsd_tensor_free(ctx, &t_dsh);
    TRY_GOTO(zeros(ctx, &t_dv, n, 2 * d.b, h / 2, wd / 2));
    TRY_GOTO(dsd_conv2d_backward(ctx, &up, &t->v1, &w->up[1].weight, &t_du, &t_dv,
                                 &gw->up[1].weight, &gw->up[1].bias));
    dsd_tensor_free(ctx, &t_du);

    /* up.0: v1 = LReLU(shuffle(conv(feat))) */
    TRY_GOTO(zeros(ctx, &t_dsh, n, 2 * d.b, h / 2, wd / 2));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->v1, NULL, &t_dv, &t_dsh));
    dsd_tensor_free(ctx, &t_dv);
    dsd_tensor_free(ctx, &t->v1);
    TRY_GOTO(zeros(ctx, &t_du, n, 8 * d.b, h / 4, wd / 4));
    TRY_GOTO(dsd_pixel_shuffle_backward(ctx, 2, &t_dsh, &t_du));
    dsd_tensor_free(ctx, &t_dsh);
    const dsd_tensor *feat = nb > 0 ? &t->blocks[nb - 1].out : &t->a2;
    TRY_GOTO(zeros(ctx, &t_dfeat, n, d.c, h / 4, wd / 4));
    TRY_GOTO(dsd_conv2d_backward(ctx, &up, feat, &w->up[0].weight, &t_du, &t_dfeat,
                                 &gw->up[0].weight, &gw->up[0].bias));
    dsd_tensor_free(ctx, &t_du);

    /* the blocks, last to first */
    for (int b = nb - 1; b >= 0; b--) {
        const dsd_tensor *in = b > 0 ? &t->blocks[b - 1].out : &t->a2;
        TRY_GOTO(zeros(ctx, &t_dprev, n, d.c, h / 4, wd / 4));
        TRY_GOTO(dscrb_backward(ctx, g, b, in, &t->blocks[b], t->step, &t_dfeat, &t_dprev));
        dscrb_saved_release(ctx, &t->blocks[b]);
        dsd_tensor_free(ctx, &t_dfeat);
        t_dfeat = t_dprev;
        memset(&t_dprev, 0, sizeof t_dprev);
    }

    /* down.1, down.0, head */
    TRY_GOTO(zeros(ctx, &t_dsh, n, d.c, h / 4, wd / 4));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a2, NULL, &t_dfeat,
                                     &t_dsh));
    dsd_tensor_free(ctx, &t_dfeat);
    dsd_tensor_free(ctx, &t->a2);
    TRY_GOTO(zeros(ctx, &t_dv, n, 2 * d.b, h / 2, wd / 2));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_down, &t->a1, &w->down[1].weight, &t_dsh, &t_dv,
                                 &gw->down[1].weight, &gw->down[1].bias));
    dsd_tensor_free(ctx, &t_dsh);
    TRY_GOTO(zeros(ctx, &t_dsh, n, 2 * d.b, h / 2, wd / 2));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a1, NULL, &t_dv, &t_dsh));
    dsd_tensor_free(ctx, &t_dv);
    dsd_tensor_free(ctx, &t->a1);
    TRY_GOTO(zeros(ctx, &t_dv, n, d.b, h, wd));
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_down, &t->a0, &w->down[0].weight, &t_dsh, &t_dv,
                                 &gw->down[0].weight, &gw->down[0].bias));
    dsd_tensor_free(ctx, &t_dsh);
    TRY_GOTO(zeros(ctx, &t_dsh, n, d.b, h, wd));
    TRY_GOTO(dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, slope, &t->a0, NULL, &t_dv, &t_dsh));
    dsd_tensor_free(ctx, &t_dv);
    dsd_tensor_free(ctx, &t->a0);
    TRY_GOTO(dsd_conv2d_backward(ctx, &conv_7x7_reflect, x, &w->head.weight, &t_dsh, dx,
                                 &gw->head.weight, &gw->head.bias));

done:
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        dsd_tensor_free(ctx, tmp[i]);
    tape_release(ctx, t, nb);
    return st;
}

#undef TRY_GOTO
