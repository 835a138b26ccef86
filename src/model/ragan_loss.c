/*
 * ragan_loss.c: the relativistic average GAN loss of the paper (eqs. 5 - 7)
 * for the discriminator and the generator, composed from the reduction and
 * loss ops (dsd_reduce_mean, dsd_add_*, dsd_bce_logits_loss_*), so it is as
 * stable and deterministic as they are. dsdeblur_model.h states the formulas;
 * the double-precision reference and the checks are in tests/test-ragan.c.
 *
 * It does not run the discriminator: callers pass logits and route the
 * gradients this returns into dsd_discriminator_backward.
 *
 * Backward recomputes the two centred maps (real - mean(fake), fake -
 * mean(real)) instead of keeping them from the forward: they cost one cheap
 * pass each and the API stays stateless.
 */
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Validation and shared pieces */

static dsd_status check_logits(dsd_context *ctx, const char *op, const dsd_tensor *real,
                               const dsd_tensor *fake)
{
    if (!real || !fake || !real->buf || !fake->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: real and fake logits "
                        "must be allocated tensors", op);
    if (!dsd_tensor_same_shape(real, fake))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: real logits are %dx%dx%dx%d but "
                        "fake logits %dx%dx%dx%d", op, real->n, real->c, real->h, real->w,
                        fake->n, fake->c, fake->h, fake->w);
    return DSD_OK;
}

static dsd_status check_grad(dsd_context *ctx, const char *op, const dsd_tensor *g,
                             const char *what, const dsd_tensor *like)
{
    if (g && !dsd_tensor_same_shape(g, like))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but the logits "
                        "are %dx%dx%dx%d", op, what, g->n, g->c, g->h, g->w, like->n, like->c,
                        like->h, like->w);
    return DSD_OK;
}

/* BCE targets of the real and the fake term. */
static void targets(dsd_ragan_side side, float *t_real, float *t_fake)
{
    *t_real = side == DSD_RAGAN_DISCRIMINATOR ? 1.0f : 0.0f;
    *t_fake = 1.0f - *t_real;
}

/* centred = x - mean(other); mean_other (1,1,1,1) is scratch the caller owns. */
static dsd_status centre(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *other,
                         dsd_tensor *mean_other, dsd_tensor *centred)
{
    DSD_TRY(dsd_reduce_mean(ctx, other, mean_other));
    return dsd_add_forward(ctx, x, mean_other, -1.0f, centred);
}

/* ------------------------------------------------------------------------ */
/* Forward */

dsd_status dsd_ragan_loss_forward(dsd_context *ctx, dsd_ragan_side side, const dsd_tensor *real,
                                  const dsd_tensor *fake, dsd_tensor *loss)
{
    const char *op = "ragan_loss_forward";
    DSD_TRY(check_logits(ctx, op, real, fake));
    if (!loss || loss->n != 1 || loss->c != 1 || loss->h != 1 || loss->w != 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: loss must be a 1x1x1x1 tensor",
                        op);
    float t_real, t_fake;
    targets(side, &t_real, &t_fake);

    dsd_tensor mean = {0}, centred = {0}, term = {0};
    dsd_status st;
    if ((st = dsd_tensor_init(ctx, &mean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &term, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &centred, real->n, real->c, real->h, real->w)) != DSD_OK)
        goto done;
    /* loss = BCE(real - mean(fake), t_real) */
    if ((st = centre(ctx, real, fake, &mean, &centred)) != DSD_OK ||
        (st = dsd_bce_logits_loss_forward(ctx, &centred, t_real, loss)) != DSD_OK)
        goto done;
    /* loss += BCE(fake - mean(real), t_fake) */
    if ((st = centre(ctx, fake, real, &mean, &centred)) != DSD_OK ||
        (st = dsd_bce_logits_loss_forward(ctx, &centred, t_fake, &term)) != DSD_OK)
        goto done;
    st = dsd_add_forward(ctx, loss, &term, 1.0f, loss);
done:
    dsd_tensor_free(ctx, &centred);
    dsd_tensor_free(ctx, &term);
    dsd_tensor_free(ctx, &mean);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Backward */

/* One term BCE(x - mean(other), t): with g = scale * (sigmoid(centred) - t) / n,
 * dx += g and dother -= sum(g) / n_other. */
static dsd_status term_backward(dsd_context *ctx, float scale, float target, const dsd_tensor *x,
                                const dsd_tensor *other, dsd_tensor *dx, dsd_tensor *dother,
                                dsd_tensor *mean, dsd_tensor *centred, dsd_tensor *g,
                                dsd_tensor *dmean)
{
    DSD_TRY(centre(ctx, x, other, mean, centred));
    DSD_TRY(dsd_tensor_fill(ctx, g, 0.0f));
    DSD_TRY(dsd_bce_logits_loss_backward(ctx, scale, centred, target, g));
    DSD_TRY(dsd_tensor_fill(ctx, dmean, 0.0f));
    /* centred = x + (-1) * mean: dx += g, dmean += -sum(g) */
    DSD_TRY(dsd_add_backward(ctx, -1.0f, g, dx, dother ? dmean : NULL));
    if (dother)
        DSD_TRY(dsd_reduce_mean_backward(ctx, dmean, dother));
    return DSD_OK;
}

dsd_status dsd_ragan_loss_backward(dsd_context *ctx, dsd_ragan_side side, float scale,
                                   const dsd_tensor *real, const dsd_tensor *fake,
                                   dsd_tensor *dreal, dsd_tensor *dfake)
{
    const char *op = "ragan_loss_backward";
    DSD_TRY(check_logits(ctx, op, real, fake));
    DSD_TRY(check_grad(ctx, op, dreal, "dreal", real));
    DSD_TRY(check_grad(ctx, op, dfake, "dfake", fake));
    if (!dreal && !dfake)
        return DSD_OK;
    float t_real, t_fake;
    targets(side, &t_real, &t_fake);

    dsd_tensor mean = {0}, dmean = {0}, centred = {0}, g = {0};
    dsd_status st;
    if ((st = dsd_tensor_init(ctx, &mean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &dmean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &centred, real->n, real->c, real->h, real->w)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &g, real->n, real->c, real->h, real->w)) != DSD_OK)
        goto done;
    if ((st = term_backward(ctx, scale, t_real, real, fake, dreal, dfake, &mean, &centred, &g,
                            &dmean)) != DSD_OK)
        goto done;
    st = term_backward(ctx, scale, t_fake, fake, real, dfake, dreal, &mean, &centred, &g,
                       &dmean);
done:
    dsd_tensor_free(ctx, &g);
    dsd_tensor_free(ctx, &centred);
    dsd_tensor_free(ctx, &dmean);
    dsd_tensor_free(ctx, &mean);
    return st;
}
