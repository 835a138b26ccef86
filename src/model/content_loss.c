/*
 * content_loss.c: the generator's content term (paper section 2.7): the
 * perceptual loss on VGG-19 features (vgg.c) and, as alternatives for
 * experiments, pixel L1, pixel MSE and the frequency loss, behind one
 * forward/backward interface. dsdeblur_model.h and doc/vgg.md give the
 * formulas and why the weight lambda is left to the caller.
 *
 * It does not weight the term, does not own or zero any gradient (the
 * backward accumulates into the caller's d_fake) and computes no gradient
 * for the real image. References and checks: tests/test-vgg.c.
 */
#include "internal.h"

#include <string.h>

static const char *const kind_names[] = {"perceptual", "l1", "mse", "fft", "l1+fft"};
enum { N_KINDS = sizeof kind_names / sizeof kind_names[0] };

const char *dsd_content_loss_kind_name(dsd_content_loss_kind kind)
{
    return (int)kind >= 0 && (int)kind < N_KINDS ? kind_names[kind] : "?";
}

dsd_status dsd_content_loss_kind_parse(const char *name, dsd_content_loss_kind *out,
                                       dsd_error *err)
{
    for (int k = 0; name && k < N_KINDS; k++) {
        if (!strcmp(name, kind_names[k])) {
            *out = (dsd_content_loss_kind)k;
            return DSD_OK;
        }
    }
    return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "unknown content loss '%s' (valid: "
                    "perceptual, l1, mse, fft, l1+fft)", name ? name : "(null)");
}

/* Drops a pending training forward. The VGG tape keeps its arena for the
 * next step (dsd_vgg_backward consumed it), unless its forward was never
 * backpropagated: then only dsd_vgg_tape_free empties it. */
static void drop_pending(dsd_context *ctx, dsd_content_loss *l)
{
    if (l->tape.pending)
        dsd_vgg_tape_free(ctx, &l->tape);
    dsd_tensor_free(ctx, &l->f_fake);
    dsd_tensor_free(ctx, &l->f_real);
    memset(&l->fake, 0, sizeof l->fake); /* borrowed views: forgotten */
    memset(&l->real, 0, sizeof l->real);
    l->pending = 0;
}

dsd_status dsd_content_loss_init(dsd_context *ctx, dsd_content_loss *l,
                                 dsd_content_loss_kind kind, const char *vgg_weights,
                                 const dsd_vgg_config *vgg_cfg)
{
    memset(l, 0, sizeof *l);
    if ((int)kind < 0 || (int)kind >= N_KINDS)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "content loss kind %d "
                        "(valid: perceptual, l1, mse, fft, l1+fft)", (int)kind);
    l->fft_weight = 0.1f;
    if (kind != DSD_CONTENT_LOSS_PERCEPTUAL) {
        l->kind = kind;
        return DSD_OK;
    }
    if (!vgg_weights || !*vgg_weights)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "the perceptual loss needs "
                        "ImageNet VGG-19 weights (a safetensors file with torchvision's "
                        "features.<i> tensors), and none were given; dsdeblur cannot download "
                        "them: make the file with scripts/convert_vgg19.py (see doc/vgg.md), or "
                        "choose another content loss (l1, mse, fft, l1+fft)");
    dsd_status st = dsd_vgg_init(ctx, &l->vgg, vgg_cfg);
    if (st == DSD_OK)
        st = dsd_vgg_load(ctx, &l->vgg, vgg_weights);
    if (st != DSD_OK) {
        dsd_content_loss_free(ctx, l);
        return st;
    }
    l->kind = kind;
    return DSD_OK;
}

void dsd_content_loss_free(dsd_context *ctx, dsd_content_loss *l)
{
    if (!l)
        return;
    drop_pending(ctx, l);
    dsd_vgg_tape_free(ctx, &l->tape);
    dsd_vgg_free(ctx, &l->vgg);
    dsd_fft_plans_free(&l->fft);
    memset(l, 0, sizeof *l);
}

void dsd_content_loss_set_fft_weight(dsd_content_loss *l, float weight)
{
    l->fft_weight = weight;
}

/* loss = L1 + w FFT: the FFT term goes to a scalar of its own, then is added */
static dsd_status l1_fft_forward(dsd_context *ctx, dsd_content_loss *l, const dsd_tensor *fake,
                                 const dsd_tensor *real, dsd_tensor *loss)
{
    DSD_TRY(dsd_l1_loss_forward(ctx, fake, real, loss));
    dsd_tensor fft_term = {0};
    dsd_status st = dsd_tensor_init(ctx, &fft_term, 1, 1, 1, 1);
    if (st == DSD_OK)
        st = dsd_fft_loss_forward(ctx, &l->fft, fake, real, &fft_term);
    if (st == DSD_OK)
        st = dsd_add_forward(ctx, loss, &fft_term, l->fft_weight, loss);
    dsd_tensor_free(ctx, &fft_term);
    return st;
}

static dsd_status perceptual_forward(dsd_context *ctx, dsd_content_loss *l,
                                     const dsd_tensor *fake, const dsd_tensor *real,
                                     dsd_tensor *loss, int training)
{
    int c, h, w;
    DSD_TRY(dsd_vgg_output_shape(&l->vgg.cfg, fake->h, fake->w, &c, &h, &w, dsd_ctx_err(ctx)));
    DSD_TRY(dsd_tensor_init(ctx, &l->f_real, real->n, c, h, w));
    DSD_TRY(dsd_vgg_forward(ctx, &l->vgg, real, &l->f_real, NULL));
    DSD_TRY(dsd_tensor_init(ctx, &l->f_fake, fake->n, c, h, w));
    DSD_TRY(dsd_vgg_forward(ctx, &l->vgg, fake, &l->f_fake, training ? &l->tape : NULL));
    return dsd_mse_loss_forward(ctx, &l->f_fake, &l->f_real, loss);
}

dsd_status dsd_content_loss_forward(dsd_context *ctx, dsd_content_loss *l, const dsd_tensor *fake,
                                    const dsd_tensor *real, dsd_tensor *loss, int training)
{
    const char *op = "content_loss_forward";
    if (!l || (l->kind == DSD_CONTENT_LOSS_PERCEPTUAL && !l->vgg.params.values.buf))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: content loss not "
                        "initialized", op);
    if (!fake || !fake->buf || !real || !real->buf || !loss || !loss->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: fake, real or loss is "
                        "NULL or unallocated", op);
    if (!dsd_tensor_same_shape(fake, real))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: fake is %dx%dx%dx%d but real "
                        "%dx%dx%dx%d", op, fake->n, fake->c, fake->h, fake->w, real->n, real->c,
                        real->h, real->w);
    drop_pending(ctx, l);
    dsd_status st = DSD_OK;
    switch (l->kind) {
    case DSD_CONTENT_LOSS_PERCEPTUAL:
        st = perceptual_forward(ctx, l, fake, real, loss, training);
        break;
    case DSD_CONTENT_LOSS_L1:
        st = dsd_l1_loss_forward(ctx, fake, real, loss);
        break;
    case DSD_CONTENT_LOSS_MSE:
        st = dsd_mse_loss_forward(ctx, fake, real, loss);
        break;
    case DSD_CONTENT_LOSS_FFT:
        st = dsd_fft_loss_forward(ctx, &l->fft, fake, real, loss);
        break;
    case DSD_CONTENT_LOSS_L1_FFT:
        st = l1_fft_forward(ctx, l, fake, real, loss);
        break;
    }
    if (st != DSD_OK || !training) {
        drop_pending(ctx, l);
        return st;
    }
    l->fake = *fake;
    l->fake.capacity = 0;
    l->real = *real;
    l->real.capacity = 0;
    l->pending = 1;
    return DSD_OK;
}

dsd_status dsd_content_loss_backward(dsd_context *ctx, dsd_content_loss *l, float scale,
                                     dsd_tensor *d_fake)
{
    const char *op = "content_loss_backward";
    if (!l || !l->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: no training forward "
                        "is pending", op);
    if (d_fake && !dsd_tensor_same_shape(d_fake, &l->fake))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: d_fake is %dx%dx%dx%d but fake "
                        "was %dx%dx%dx%d", op, d_fake->n, d_fake->c, d_fake->h, d_fake->w,
                        l->fake.n, l->fake.c, l->fake.h, l->fake.w);
    dsd_status st = DSD_OK;
    dsd_tensor d_feat = {0};
    switch (l->kind) {
    case DSD_CONTENT_LOSS_PERCEPTUAL:
        if (!d_fake)
            break;
        st = dsd_tensor_init_zero(ctx, &d_feat, l->f_fake.n, l->f_fake.c, l->f_fake.h,
                                  l->f_fake.w);
        if (st == DSD_OK)
            st = dsd_mse_loss_backward(ctx, scale, &l->f_fake, &l->f_real, &d_feat, NULL);
        if (st == DSD_OK)
            st = dsd_vgg_backward(ctx, &l->vgg, &l->tape, &d_feat, d_fake);
        break;
    case DSD_CONTENT_LOSS_L1:
        st = dsd_l1_loss_backward(ctx, scale, &l->fake, &l->real, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_MSE:
        st = dsd_mse_loss_backward(ctx, scale, &l->fake, &l->real, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_FFT:
        st = dsd_fft_loss_backward(ctx, &l->fft, scale, &l->fake, &l->real, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_L1_FFT:
        st = dsd_l1_loss_backward(ctx, scale, &l->fake, &l->real, d_fake, NULL);
        if (st == DSD_OK)
            st = dsd_fft_loss_backward(ctx, &l->fft, scale * l->fft_weight, &l->fake, &l->real,
                                       d_fake, NULL);
        break;
    }
    dsd_tensor_free(ctx, &d_feat);
    drop_pending(ctx, l);
    return st;
}
