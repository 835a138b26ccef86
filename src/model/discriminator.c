/*
 * discriminator.c: the PatchGAN discriminator of the paper (section 2.5),
 * forward and backward, composed from the ops. dsdeblur_model.h describes
 * the layers, the parameter names and why the saved activations live in a
 * caller-owned tape (one per forward: real and fake images are judged in the
 * same step and backpropagated in any order). The forward and backward are
 * written once and run twice over: in planning mode they produce the
 * network's plan (dsd_discriminator_plan), then for real in one arena laid
 * out by that plan (src/model/pass.h). The parameter arena comes from
 * dsd_params_* (src/model/params.c). Reference network and gradient checks:
 * tests/test-discriminator.c.
 *
 * It returns logits: the sigmoid of the paper's last layer is folded into the
 * losses (dsd_bce_logits_loss_*), which is the numerically stable form.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Config and layout */

dsd_discriminator_config dsd_discriminator_default_config(void)
{
    dsd_discriminator_config c = {.in_channels = 3, .base_width = 64, .n_layers = 3,
                                  .norm_affine = 0, .eps = 1e-5f, .slope = 0.2f};
    return c;
}

dsd_status dsd_discriminator_config_check(const dsd_discriminator_config *c, dsd_error *err)
{
    if (!c)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator config is NULL");
    if (c->in_channels < 1 || c->in_channels > 4096)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator in_channels %d not in "
                        "[1, 4096]", c->in_channels);
    if (c->base_width < 1 || c->base_width > 8192)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator base_width %d not in "
                        "[1, 8192]", c->base_width);
    if (c->n_layers < 1 || c->n_layers > DSD_DISCRIMINATOR_MAX_LAYERS)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator n_layers %d not in [1, %d]",
                        c->n_layers, DSD_DISCRIMINATOR_MAX_LAYERS);
    if (!(c->eps > 0.0f) || isinf(c->eps))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator eps %g must be positive",
                        (double)c->eps);
    if (!(c->slope >= 0.0f) || isinf(c->slope))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "discriminator slope %g must be finite "
                        "and >= 0 (LeakyReLU runs in place)", (double)c->slope);
    return DSD_OK;
}

static int min_int(int a, int b) { return a < b ? a : b; }

/* Channels: width[0] = in_channels, layer i maps width[i] -> width[i + 1]. */
static void disc_widths(const dsd_discriminator_config *c, int *width)
{
    const int L = c->n_layers, B = c->base_width;
    width[0] = c->in_channels;
    width[1] = B;
    for (int i = 1; i <= L; i++)
        width[i + 1] = B * min_int(1 << i, 8);
    width[L + 2] = 1;
}

/* Layer i: stride 2 for i < n_layers, norm for 1 <= i <= n_layers, LReLU for
 * all but the last. */
static int layer_stride(const dsd_discriminator_config *c, int i) { return i < c->n_layers ? 2 : 1; }
static int layer_norm(const dsd_discriminator_config *c, int i) { return i >= 1 && i <= c->n_layers; }

static dsd_conv2d_params layer_conv(const dsd_discriminator_config *c, int i)
{
    dsd_conv2d_params p = {.kernel_h = 4, .kernel_w = 4, .stride = layer_stride(c, i), .pad = 2,
                           .pad_mode = DSD_PAD_ZERO, .groups = 1};
    return p;
}

static dsd_status disc_layout(const dsd_discriminator_config *c, dsd_params *p, dsd_error *err)
{
    int width[DSD_DISCRIMINATOR_MAX_LAYERS + 3];
    disc_widths(c, width);
    for (int i = 0; i < c->n_layers + 2; i++) {
        int cout = width[i + 1], cin = width[i];
        int wshape[4] = {cout, cin, 4, 4}, cshape[1] = {cout};
        DSD_TRY(dsd_params_add(p, err, 4, wshape, DSD_PARAM_INIT_FAN_IN, cin * 16,
                               "layers.%d.conv.weight", i));
        DSD_TRY(dsd_params_add(p, err, 1, cshape, DSD_PARAM_INIT_FAN_IN, cin * 16,
                               "layers.%d.conv.bias", i));
        if (c->norm_affine && layer_norm(c, i)) {
            DSD_TRY(dsd_params_add(p, err, 1, cshape, DSD_PARAM_INIT_ONES, 1,
                                   "layers.%d.norm.weight", i));
            DSD_TRY(dsd_params_add(p, err, 1, cshape, DSD_PARAM_INIT_ZEROS, 1,
                                   "layers.%d.norm.bias", i));
        }
    }
    return DSD_OK;
}

size_t dsd_discriminator_param_count(const dsd_discriminator_config *cfg)
{
    if (dsd_discriminator_config_check(cfg, NULL) != DSD_OK)
        return 0;
    dsd_params p;
    memset(&p, 0, sizeof p);
    size_t count = disc_layout(cfg, &p, NULL) == DSD_OK ? p.count : 0;
    free(p.info);
    return count;
}

dsd_status dsd_discriminator_output_size(const dsd_discriminator_config *cfg, int h, int w,
                                         int *out_h, int *out_w, dsd_error *err)
{
    DSD_TRY(dsd_discriminator_config_check(cfg, err));
    if (h < 1 || w < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "discriminator input %dx%d is empty", h, w);
    int oh = h, ow = w;
    for (int i = 0; i < cfg->n_layers + 2; i++) {
        /* 4x4 kernel, padding 2: (size + 2 * 2 - 4) / stride + 1 */
        int s = layer_stride(cfg, i);
        oh = oh / s + 1;
        ow = ow / s + 1;
        if (layer_norm(cfg, i) && oh * ow < 2)
            return DSD_FAIL(err, DSD_ERR_SHAPE, "discriminator input %dx%d is too small: "
                            "layer %d's instance norm would see a 1x1 plane", h, w, i);
    }
    *out_h = oh;
    *out_w = ow;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Init / free */

static dsd_status disc_bind(dsd_context *ctx, dsd_discriminator *d, const dsd_tensor *arena,
                            dsd_discriminator_layer *layers)
{
    char name[DSD_PARAM_NAME_MAX];
    const dsd_params *p = &d->params;
    for (int i = 0; i < d->n_conv; i++) {
        dsd_discriminator_layer *l = &layers[i];
        memset(l, 0, sizeof *l);
        struct {
            const char *suffix;
            dsd_tensor *view;
        } slots[] = {{.suffix = "conv.weight", .view = &l->conv.weight},
                     {.suffix = "conv.bias", .view = &l->conv.bias},
                     {.suffix = "norm.weight", .view = &l->norm_weight},
                     {.suffix = "norm.bias", .view = &l->norm_bias}};
        for (size_t k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "layers.%d.%s", i, slots[k].suffix);
            const dsd_param_info *e = dsd_params_find(p, name);
            if (!e && k < 2)
                return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "discriminator "
                                "table lacks '%s'", name);
            if (e)
                DSD_TRY(dsd_params_view(ctx, arena, e, slots[k].view));
        }
    }
    return DSD_OK;
}

dsd_status dsd_discriminator_init(dsd_context *ctx, dsd_discriminator *d,
                                  const dsd_discriminator_config *cfg)
{
    memset(d, 0, sizeof *d);
    dsd_discriminator_config c = cfg ? *cfg : dsd_discriminator_default_config();
    DSD_TRY(dsd_discriminator_config_check(&c, dsd_ctx_err(ctx)));
    d->cfg = c;
    d->n_conv = c.n_layers + 2;
    disc_widths(&c, d->width);
    dsd_status st = disc_layout(&c, &d->params, dsd_ctx_err(ctx));
    if (st == DSD_OK)
        st = dsd_params_alloc(ctx, &d->params);
    if (st == DSD_OK)
        st = disc_bind(ctx, d, &d->params.values, d->w);
    if (st == DSD_OK)
        st = disc_bind(ctx, d, &d->params.grads, d->grad);
    if (st != DSD_OK) {
        dsd_discriminator_free(ctx, d);
        return st;
    }
    d->arena_bytes = 2 * d->params.count * sizeof(float);
    return DSD_OK;
}

void dsd_discriminator_free(dsd_context *ctx, dsd_discriminator *d)
{
    if (!d)
        return;
    dsd_params_free(ctx, &d->params);
    memset(d, 0, sizeof *d);
}

dsd_status dsd_discriminator_init_weights(dsd_context *ctx, dsd_discriminator *d, uint64_t seed)
{
    return dsd_params_init_weights(ctx, &d->params, seed);
}

/* ------------------------------------------------------------------------ */
/* A pass: planned, then run
 *
 * The forward and backward below are the network's one description. Run
 * with a planning pass (ctx NULL, shape-only tensors, a discriminator that
 * holds only cfg, n_conv and width) they record the plan; run for real,
 * every activation and gradient temporary is a view of one arena at its
 * planned offset and every conv uses the planned workspace (src/model/
 * pass.h). */

#define RUN(expr) DSD_PASS_RUN(r, expr)

/* The layers on x into logits; t receives the activations (training) or is
 * scratch (inference: each layer's input is given back once its output
 * exists). */
static dsd_status disc_forward_pass(dsd_pass *r, const dsd_discriminator *d, const dsd_tensor *x,
                                    dsd_tensor *logits, int training, dsd_discriminator_tape *t)
{
    const dsd_discriminator_config *c = &d->cfg;
    const int n = x->n, last = d->n_conv - 1;
    const dsd_tensor *in = x;
    int h = x->h, w = x->w;
    char name[DSD_PARAM_NAME_MAX];
    for (int i = 0; i < last; i++) {
        const dsd_discriminator_layer *l = &d->w[i];
        const dsd_conv2d_params cp = layer_conv(c, i);
        const int cout = d->width[i + 1];
        h = h / cp.stride + 1;
        w = w / cp.stride + 1;
        snprintf(name, sizeof name, "layers.%d.conv", i);
        if (layer_norm(c, i)) {
            DSD_TRY(dsd_pass_take(r, &t->z[i], n, cout, h, w));
            DSD_TRY(dsd_pass_conv_forward(r, name, &cp, in, &l->conv, &t->z[i]));
            DSD_TRY(dsd_pass_take(r, &t->a[i], n, cout, h, w));
            if (training) {
                DSD_TRY(dsd_pass_take(r, &t->mean[i], n, cout, 1, 1));
                DSD_TRY(dsd_pass_take(r, &t->rstd[i], n, cout, 1, 1));
            }
            const dsd_tensor *gamma = l->norm_weight.buf ? &l->norm_weight : NULL;
            const dsd_tensor *beta = l->norm_bias.buf ? &l->norm_bias : NULL;
            RUN(dsd_instance_norm_forward(r->ctx, c->eps, &t->z[i], gamma, beta, &t->a[i],
                                          training ? &t->mean[i] : NULL,
                                          training ? &t->rstd[i] : NULL));
            if (!training)
                dsd_pass_give(r, &t->z[i]);
        } else {
            DSD_TRY(dsd_pass_take(r, &t->a[i], n, cout, h, w));
            DSD_TRY(dsd_pass_conv_forward(r, name, &cp, in, &l->conv, &t->a[i]));
        }
        RUN(dsd_activation_forward(r->ctx, DSD_ACT_LEAKY_RELU, c->slope, &t->a[i], &t->a[i]));
        if (!training && i > 0)
            dsd_pass_give(r, &t->a[i - 1]);
        in = &t->a[i];
    }
    const dsd_conv2d_params cp = layer_conv(c, last);
    snprintf(name, sizeof name, "layers.%d.conv", last);
    return dsd_pass_conv_forward(r, name, &cp, in, &d->w[last].conv, logits);
}

/* Backward of the forward that filled t (mirrored order; every gradient
 * temporary is a zeroed slot, because the op backwards accumulate):
 * param_grads != 0 accumulates into d->grad, dx (may be NULL) += dL/dx.
 * Each activation is given back after its last use. */
static dsd_status disc_backward_pass(dsd_pass *r, dsd_discriminator *d,
                                     dsd_discriminator_tape *t, const dsd_tensor *x,
                                     const dsd_tensor *dlogits, dsd_tensor *dx, int param_grads)
{
    const dsd_discriminator_config *c = &d->cfg;
    const int last = d->n_conv - 1;
    /* d_a = dL/d(a layer's output), d_z = dL/d(its pre-activation), d_prev =
     * dL/d(its input) */
    dsd_tensor d_a, d_z, d_prev;

    /* last conv: logits = conv(a[last - 1]) */
    {
        const dsd_conv2d_params cp = layer_conv(c, last);
        const dsd_tensor *in = &t->a[last - 1];
        dsd_discriminator_layer *gl = &d->grad[last];
        DSD_TRY(dsd_pass_take_zero(r, &d_a, in->n, in->c, in->h, in->w));
        char name[32];
        snprintf(name, sizeof name, "layers.%d.conv", last);
        DSD_TRY(dsd_pass_conv_backward(r, name, &cp, in, &d->w[last].conv.weight, dlogits, &d_a,
                                       param_grads ? &gl->conv.weight : NULL,
                                       param_grads ? &gl->conv.bias : NULL));
    }
    for (int i = last - 1; i >= 0; i--) {
        const dsd_discriminator_layer *l = &d->w[i];
        dsd_discriminator_layer *gl = &d->grad[i];
        const dsd_conv2d_params cp = layer_conv(c, i);
        const dsd_tensor *a = &t->a[i];
        /* LReLU (in place; its output has its input's sign) */
        DSD_TRY(dsd_pass_take_zero(r, &d_z, a->n, a->c, a->h, a->w));
        RUN(dsd_activation_backward(r->ctx, DSD_ACT_LEAKY_RELU, c->slope, a, NULL, &d_a, &d_z));
        dsd_pass_give(r, &d_a);
        if (layer_norm(c, i)) {
            DSD_TRY(dsd_pass_take_zero(r, &d_a, a->n, a->c, a->h, a->w));
            const dsd_tensor *gamma = l->norm_weight.buf ? &l->norm_weight : NULL;
            int affine = gamma != NULL && param_grads;
            RUN(dsd_instance_norm_backward(r->ctx, &t->z[i], gamma, &t->mean[i], &t->rstd[i],
                                           &d_z, &d_a, affine ? &gl->norm_weight : NULL,
                                           affine ? &gl->norm_bias : NULL));
            dsd_pass_give(r, &d_z);
            d_z = d_a;
            memset(&d_a, 0, sizeof d_a);
        }
        /* d_z = dL/d(conv output); the conv's input is a[i - 1] or x */
        const dsd_tensor *in = i > 0 ? &t->a[i - 1] : x;
        dsd_tensor *din = dx;
        memset(&d_prev, 0, sizeof d_prev);
        if (i > 0) {
            DSD_TRY(dsd_pass_take_zero(r, &d_prev, in->n, in->c, in->h, in->w));
            din = &d_prev;
        }
        char name[32];
        snprintf(name, sizeof name, "layers.%d.conv", i);
        DSD_TRY(dsd_pass_conv_backward(r, name, &cp, in, &l->conv.weight, &d_z, din,
                                       param_grads ? &gl->conv.weight : NULL,
                                       param_grads ? &gl->conv.bias : NULL));
        dsd_pass_give(r, &d_z);
        /* layer i's activations are no longer needed */
        dsd_pass_give(r, &t->a[i]);
        dsd_pass_give(r, &t->z[i]);
        dsd_pass_give(r, &t->mean[i]);
        dsd_pass_give(r, &t->rstd[i]);
        d_a = d_prev;
    }
    return DSD_OK;
}

#undef RUN

/* A discriminator holding only what planning reads: cfg, n_conv, width
 * (weights and gradients are zeroed structs). */
static void disc_shape(const dsd_discriminator_config *cfg, dsd_discriminator *d)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->n_conv = cfg->n_layers + 2;
    disc_widths(cfg, d->width);
}

static dsd_tensor shape_of(const dsd_tensor *t)
{
    return (dsd_tensor){.n = t->n, .c = t->c, .h = t->h, .w = t->w};
}

/* Plans a pass on x into logits (their shapes only; training: the backward
 * too) into *plan. */
static dsd_status plan_pass(const dsd_discriminator_config *cfg, const dsd_tensor *x,
                            const dsd_tensor *logits, int training, dsd_network_plan *plan,
                            dsd_error *err)
{
    dsd_network_plan_reset(plan);
    dsd_discriminator *shape = malloc(sizeof *shape);
    dsd_discriminator_tape *t = calloc(1, sizeof *t);
    dsd_status st = DSD_OK;
    if (!shape || !t) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "discriminator plan: out of host memory");
    } else {
        disc_shape(cfg, shape);
        dsd_pass r = {.plan = plan, .net = "discriminator plan", .err = err};
        dsd_tensor sx = shape_of(x), sl = shape_of(logits);
        st = disc_forward_pass(&r, shape, &sx, &sl, training, t);
        if (st == DSD_OK && training)
            st = disc_backward_pass(&r, shape, t, &sx, &sl, &sx, 1);
    }
    free(shape);
    free(t);
    dsd_pass_plan_done(plan);
    return st;
}

dsd_status dsd_discriminator_plan(const dsd_discriminator_config *cfg, int n, int h, int w,
                                  int training, dsd_network_plan *plan, dsd_error *err)
{
    int oh, ow;
    DSD_TRY(dsd_discriminator_output_size(cfg, h, w, &oh, &ow, err));
    if (n < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "discriminator plan: %d images", n);
    dsd_tensor x = {.n = n, .c = cfg->in_channels, .h = h, .w = w};
    dsd_tensor logits = {.n = n, .c = 1, .h = oh, .w = ow};
    return plan_pass(cfg, &x, &logits, training, plan, err);
}

/* An inference forward in an arena (and workspace) leased for the call. */
static dsd_status run_inference(dsd_context *ctx, const dsd_discriminator *d,
                                const dsd_tensor *x, dsd_tensor *logits)
{
    dsd_network_plan plan = {0};
    dsd_tensor arena = {0}, workspace = {0};
    dsd_discriminator_tape *scratch = calloc(1, sizeof *scratch);
    dsd_status st = scratch ? DSD_OK : DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY,
                                                "discriminator: out of host memory");
    if (st == DSD_OK)
        st = plan_pass(&d->cfg, x, logits, 0, &plan, dsd_ctx_err(ctx));
    if (st == DSD_OK)
        st = dsd_pass_memory_alloc(ctx, "discriminator", &plan, &arena, &workspace);
    if (st == DSD_OK) {
        dsd_pass r = dsd_pass_running(ctx, "discriminator", &plan, &arena, &workspace, 0);
        st = disc_forward_pass(&r, d, x, logits, 0, scratch);
    }
    dsd_pass_memory_free(ctx, &plan, &arena, &workspace);
    free(scratch);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tapes */

void dsd_discriminator_tape_free(dsd_context *ctx, dsd_discriminator_tape *tape)
{
    if (!tape)
        return;
    dsd_pass_memory_free(ctx, &tape->plan, &tape->arena, &tape->workspace);
    memset(tape, 0, sizeof *tape); /* x and the activations are views: forgotten */
}

/* Makes tape ready for a training forward of d on x (plans and allocates
 * only when the shape or the network changed since its last one: a stale
 * plan with same-size slots would silently alias memory). */
static dsd_status tape_prepare(dsd_context *ctx, const dsd_discriminator *d,
                               dsd_discriminator_tape *tape, const dsd_tensor *x,
                               const dsd_tensor *logits)
{
    const dsd_discriminator_config *c = &d->cfg, *k = &tape->cfg;
    int same_net = c->in_channels == k->in_channels && c->base_width == k->base_width &&
                   c->n_layers == k->n_layers && c->norm_affine == k->norm_affine &&
                   c->eps == k->eps && c->slope == k->slope;
    int fresh = tape->arena.buf && same_net && tape->n == x->n && tape->h == x->h &&
                tape->w == x->w;
    if (!fresh) {
        dsd_discriminator_tape_free(ctx, tape);
        dsd_status st = plan_pass(&d->cfg, x, logits, 1, &tape->plan, dsd_ctx_err(ctx));
        if (st == DSD_OK)
            st = dsd_pass_memory_alloc(ctx, "discriminator", &tape->plan, &tape->arena,
                                       &tape->workspace);
        if (st != DSD_OK) {
            dsd_discriminator_tape_free(ctx, tape);
            return st;
        }
        tape->cfg = d->cfg;
        tape->n = x->n;
        tape->h = x->h;
        tape->w = x->w;
    }
    /* the previous pass's views are stale: start from empty ones */
    memset(&tape->x, 0, sizeof tape->x);
    memset(tape->z, 0, sizeof tape->z);
    memset(tape->a, 0, sizeof tape->a);
    memset(tape->mean, 0, sizeof tape->mean);
    memset(tape->rstd, 0, sizeof tape->rstd);
    tape->next_slot = 0;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points */

dsd_status dsd_discriminator_forward(dsd_context *ctx, dsd_discriminator *d, const dsd_tensor *x,
                                     dsd_tensor *logits, dsd_discriminator_tape *tape)
{
    const char *op = "discriminator_forward";
    if (!d || !d->params.values.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: discriminator not "
                        "initialized", op);
    if (!x || !x->buf || !logits || !logits->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: x or logits is NULL "
                        "or unallocated", op);
    if (tape && tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: the tape holds a "
                        "forward not yet backpropagated (free it or use another)", op);
    if (x->c != d->cfg.in_channels)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: x is %dx%dx%dx%d but the "
                        "discriminator takes %d channels", op, x->n, x->c, x->h, x->w,
                        d->cfg.in_channels);
    int oh, ow;
    DSD_TRY(dsd_discriminator_output_size(&d->cfg, x->h, x->w, &oh, &ow, dsd_ctx_err(ctx)));
    if (logits->n != x->n || logits->c != 1 || logits->h != oh || logits->w != ow)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: logits are %dx%dx%dx%d but x "
                        "%dx%dx%dx%d gives %dx1x%dx%d", op, logits->n, logits->c, logits->h,
                        logits->w, x->n, x->c, x->h, x->w, x->n, oh, ow);
    if (dsd_tensor_overlap(x, logits))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: logits overlap x", op);
    if (!tape)
        return run_inference(ctx, d, x, logits);

    DSD_TRY(tape_prepare(ctx, d, tape, x, logits));
    dsd_pass r = dsd_pass_running(ctx, "discriminator", &tape->plan, &tape->arena,
                                  &tape->workspace, 0);
    DSD_TRY(disc_forward_pass(&r, d, x, logits, 1, tape));
    tape->next_slot = r.next_slot;
    tape->x = *x;
    tape->x.capacity = 0;
    tape->pending = 1;
    return DSD_OK;
}

dsd_status dsd_discriminator_backward(dsd_context *ctx, dsd_discriminator *d,
                                      dsd_discriminator_tape *tape, const dsd_tensor *dlogits,
                                      dsd_tensor *dx, int param_grads)
{
    const char *op = "discriminator_backward";
    if (!d || !d->params.grads.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: discriminator not "
                        "initialized", op);
    if (!tape || !tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: the tape holds no "
                        "training forward", op);
    const dsd_tensor *x = &tape->x;
    if (!dlogits || !dlogits->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: dlogits is NULL", op);
    int oh, ow;
    DSD_TRY(dsd_discriminator_output_size(&d->cfg, x->h, x->w, &oh, &ow, dsd_ctx_err(ctx)));
    if (dlogits->n != x->n || dlogits->c != 1 || dlogits->h != oh || dlogits->w != ow)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dlogits are %dx%dx%dx%d but the "
                        "forward gave %dx1x%dx%d", op, dlogits->n, dlogits->c, dlogits->h,
                        dlogits->w, x->n, oh, ow);
    if (dx && !dsd_tensor_same_shape(dx, x))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dx is %dx%dx%dx%d but x was "
                        "%dx%dx%dx%d", op, dx->n, dx->c, dx->h, dx->w, x->n, x->c, x->h, x->w);

    tape->pending = 0;
    if (!dx && !param_grads)
        return DSD_OK; /* nothing asked for */
    dsd_pass r = dsd_pass_running(ctx, "discriminator", &tape->plan, &tape->arena,
                                  &tape->workspace, tape->next_slot);
    return disc_backward_pass(&r, d, tape, x, dlogits, dx, param_grads);
}
