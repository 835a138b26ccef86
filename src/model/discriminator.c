/*
 * discriminator.c: the PatchGAN discriminator of the paper (section 2.5),
 * forward and backward, composed from the ops. dsdeblur_model.h describes
 * the layers, the parameter names and why the saved activations live in a
 * caller-owned tape (one per forward: real and fake images are judged in the
 * same step and backpropagated in any order). The parameter arena comes from
 * dsd_params_* (src/model/generator.c). Reference network and gradient
 * checks: tests/test-discriminator.c.
 *
 * It returns logits: the sigmoid of the paper's last layer is folded into the
 * losses (dsd_bce_logits_loss_*), which is the numerically stable form.
 */
#include "internal.h"

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

void dsd_discriminator_tape_free(dsd_context *ctx, dsd_discriminator_tape *tape)
{
    if (!tape)
        return;
    for (int i = 0; i < DSD_DISCRIMINATOR_MAX_LAYERS + 1; i++) {
        dsd_tensor_free(ctx, &tape->z[i]);
        dsd_tensor_free(ctx, &tape->a[i]);
        dsd_tensor_free(ctx, &tape->mean[i]);
        dsd_tensor_free(ctx, &tape->rstd[i]);
    }
    memset(tape, 0, sizeof *tape); /* x is borrowed: forgotten, not freed */
}

/* ------------------------------------------------------------------------ */
/* Forward */

/* Runs the layers; tape receives the activations (training) or is scratch
 * (inference: each layer's input is given back once its output exists).
 * On failure the caller frees the tape. */
static dsd_status disc_run(dsd_context *ctx, const dsd_discriminator *d, const dsd_tensor *x,
                           dsd_tensor *logits, int training, dsd_discriminator_tape *t)
{
    const dsd_discriminator_config *c = &d->cfg;
    const int n = x->n, last = d->n_conv - 1;
    const dsd_tensor *in = x;
    int h = x->h, w = x->w;
    for (int i = 0; i < last; i++) {
        const dsd_discriminator_layer *l = &d->w[i];
        const dsd_conv2d_params cp = layer_conv(c, i);
        const int cout = d->width[i + 1];
        h = h / cp.stride + 1;
        w = w / cp.stride + 1;
        if (layer_norm(c, i)) {
            DSD_TRY(dsd_tensor_init(ctx, &t->z[i], n, cout, h, w));
            DSD_TRY(dsd_conv2d_forward(ctx, &cp, in, &l->conv.weight, &l->conv.bias, &t->z[i]));
            DSD_TRY(dsd_tensor_init(ctx, &t->a[i], n, cout, h, w));
            if (training) {
                DSD_TRY(dsd_tensor_init(ctx, &t->mean[i], n, cout, 1, 1));
                DSD_TRY(dsd_tensor_init(ctx, &t->rstd[i], n, cout, 1, 1));
            }
            const dsd_tensor *gamma = l->norm_weight.buf ? &l->norm_weight : NULL;
            const dsd_tensor *beta = l->norm_bias.buf ? &l->norm_bias : NULL;
            DSD_TRY(dsd_instance_norm_forward(ctx, c->eps, &t->z[i], gamma, beta, &t->a[i],
                                              training ? &t->mean[i] : NULL,
                                              training ? &t->rstd[i] : NULL));
            if (!training)
                dsd_tensor_free(ctx, &t->z[i]);
        } else {
            DSD_TRY(dsd_tensor_init(ctx, &t->a[i], n, cout, h, w));
            DSD_TRY(dsd_conv2d_forward(ctx, &cp, in, &l->conv.weight, &l->conv.bias, &t->a[i]));
        }
        DSD_TRY(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, c->slope, &t->a[i], &t->a[i]));
        if (!training && i > 0)
            dsd_tensor_free(ctx, &t->a[i - 1]);
        in = &t->a[i];
    }
    const dsd_conv2d_params cp = layer_conv(c, last);
    DSD_TRY(dsd_conv2d_forward(ctx, &cp, in, &d->w[last].conv.weight, &d->w[last].conv.bias,
                               logits));
    return DSD_OK;
}

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

    dsd_discriminator_tape scratch;
    dsd_discriminator_tape *t = tape ? tape : &scratch;
    memset(t, 0, sizeof *t);
    dsd_status st = disc_run(ctx, d, x, logits, tape != NULL, t);
    if (st != DSD_OK || !tape) {
        dsd_discriminator_tape_free(ctx, t);
        return st;
    }
    t->x = *x;
    t->x.capacity = 0;
    t->pending = 1;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward */

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
    const dsd_discriminator_config *c = &d->cfg;
    const int last = d->n_conv - 1;
    const dsd_tensor *x = &tape->x;
    if (!dlogits || !dlogits->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: dlogits is NULL", op);
    int oh, ow;
    DSD_TRY(dsd_discriminator_output_size(c, x->h, x->w, &oh, &ow, dsd_ctx_err(ctx)));
    if (dlogits->n != x->n || dlogits->c != 1 || dlogits->h != oh || dlogits->w != ow)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dlogits are %dx%dx%dx%d but the "
                        "forward gave %dx1x%dx%d", op, dlogits->n, dlogits->c, dlogits->h,
                        dlogits->w, x->n, oh, ow);
    if (dx && !dsd_tensor_same_shape(dx, x))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dx is %dx%dx%dx%d but x was "
                        "%dx%dx%dx%d", op, dx->n, dx->c, dx->h, dx->w, x->n, x->c, x->h, x->w);

    dsd_status st = DSD_OK;
    dsd_tensor t_da = {0}, t_dz = {0}, t_dprev = {0};
    if (!dx && !param_grads)
        goto done; /* nothing asked for */

    /* last conv: logits = conv(a[last - 1]) */
    {
        const dsd_conv2d_params cp = layer_conv(c, last);
        const dsd_tensor *in = &tape->a[last - 1];
        dsd_discriminator_layer *gl = &d->grad[last];
        DSD_TRY_GOTO(st, dsd_tensor_init_zero(ctx, &t_da, in->n, in->c, in->h, in->w), done);
        DSD_TRY_GOTO(st, dsd_conv2d_backward(ctx, &cp, in, &d->w[last].conv.weight, dlogits, &t_da,
                                             param_grads ? &gl->conv.weight : NULL,
                                             param_grads ? &gl->conv.bias : NULL), done);
    }
    for (int i = last - 1; i >= 0; i--) {
        const dsd_discriminator_layer *l = &d->w[i];
        dsd_discriminator_layer *gl = &d->grad[i];
        const dsd_conv2d_params cp = layer_conv(c, i);
        const dsd_tensor *a = &tape->a[i];
        /* LReLU (in place; its output has its input's sign) */
        DSD_TRY_GOTO(st, dsd_tensor_init_zero(ctx, &t_dz, a->n, a->c, a->h, a->w), done);
        DSD_TRY_GOTO(st, dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, c->slope, a, NULL, &t_da,
                                                 &t_dz), done);
        dsd_tensor_free(ctx, &t_da);
        if (layer_norm(c, i)) {
            DSD_TRY_GOTO(st, dsd_tensor_init_zero(ctx, &t_da, a->n, a->c, a->h, a->w), done);
            const dsd_tensor *gamma = l->norm_weight.buf ? &l->norm_weight : NULL;
            int affine = gamma != NULL && param_grads;
            DSD_TRY_GOTO(st, dsd_instance_norm_backward(ctx, &tape->z[i], gamma, &tape->mean[i],
                                                        &tape->rstd[i], &t_dz, &t_da,
                                                        affine ? &gl->norm_weight : NULL,
                                                        affine ? &gl->norm_bias : NULL), done);
            dsd_tensor_free(ctx, &t_dz);
            t_dz = t_da;
            memset(&t_da, 0, sizeof t_da);
        }
        /* t_dz = dL/d(conv output); the conv's input is a[i - 1] or x */
        const dsd_tensor *in = i > 0 ? &tape->a[i - 1] : x;
        dsd_tensor *din = NULL;
        if (i > 0) {
            DSD_TRY_GOTO(st, dsd_tensor_init_zero(ctx, &t_dprev, in->n, in->c, in->h, in->w), done);
            din = &t_dprev;
        } else {
            din = dx;
        }
        DSD_TRY_GOTO(st, dsd_conv2d_backward(ctx, &cp, in, &l->conv.weight, &t_dz, din,
                                             param_grads ? &gl->conv.weight : NULL,
                                             param_grads ? &gl->conv.bias : NULL), done);
        dsd_tensor_free(ctx, &t_dz);
        /* layer i's activations are no longer needed */
        dsd_tensor_free(ctx, &tape->a[i]);
        dsd_tensor_free(ctx, &tape->z[i]);
        dsd_tensor_free(ctx, &tape->mean[i]);
        dsd_tensor_free(ctx, &tape->rstd[i]);
        t_da = t_dprev;
        memset(&t_dprev, 0, sizeof t_dprev);
    }

done:
    dsd_tensor_free(ctx, &t_da);
    dsd_tensor_free(ctx, &t_dz);
    dsd_tensor_free(ctx, &t_dprev);
    dsd_discriminator_tape_free(ctx, tape);
    return st;
}
