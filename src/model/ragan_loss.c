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
 *
 * The *_comm variants split the batch between data-parallel replicas: the
 * means over the batch are global (local sums, summed through the dsd_comm,
 * divided by the global count), each BCE term is this replica's share (its
 * local mean / size), and the gradient a mean sends back to the other map
 * (-sum(g) / n) sums g over all replicas first. That is exactly the loss of
 * the whole batch, whose gradient is the sum of the replicas'.
 */
#include "internal.h"

#include <string.h>

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

/* Replicas: host values summed through comm, the failure recorded in ctx. */
static dsd_status comm_sum(dsd_context *ctx, const dsd_comm *comm, float *v, size_t n)
{
    dsd_error e;
    memset(&e, 0, sizeof e);
    dsd_status st = comm->sum(comm->user, v, n, &e);
    if (st != DSD_OK)
        *dsd_ctx_err(ctx) = e;
    return st;
}

/* Replicas: mean_real and mean_fake (1,1,1,1) = the means of real and fake
 * over the whole batch. sum_scratch (1,1,1,1) is the caller's. */
static dsd_status global_means(dsd_context *ctx, const dsd_comm *comm, const dsd_tensor *real,
                               const dsd_tensor *fake, dsd_tensor *sum_scratch,
                               dsd_tensor *mean_real, dsd_tensor *mean_fake)
{
    float v[2];
    DSD_TRY(dsd_reduce_sum(ctx, real, sum_scratch));
    DSD_TRY(dsd_tensor_download(ctx, sum_scratch, &v[0], 1));
    DSD_TRY(dsd_reduce_sum(ctx, fake, sum_scratch));
    DSD_TRY(dsd_tensor_download(ctx, sum_scratch, &v[1], 1));
    DSD_TRY(comm_sum(ctx, comm, v, 2));
    double count = (double)dsd_tensor_numel(real) * (double)comm->size;
    float m[2] = {(float)(v[0] / count), (float)(v[1] / count)};
    DSD_TRY(dsd_tensor_upload(ctx, mean_real, &m[0], 1));
    return dsd_tensor_upload(ctx, mean_fake, &m[1], 1);
}

static int alone(const dsd_comm *comm) { return !comm || comm->size <= 1; }

dsd_status dsd_ragan_loss_forward(dsd_context *ctx, dsd_ragan_side side, const dsd_tensor *real,
                                  const dsd_tensor *fake, dsd_tensor *loss)
{
    return dsd_ragan_loss_forward_comm(ctx, side, real, fake, NULL, loss);
}

dsd_status dsd_ragan_loss_forward_comm(dsd_context *ctx, dsd_ragan_side side,
                                       const dsd_tensor *real, const dsd_tensor *fake,
                                       const dsd_comm *comm, dsd_tensor *loss)
{
    const char *op = "ragan_loss_forward";
    DSD_TRY(check_logits(ctx, op, real, fake));
    if (!loss || loss->n != 1 || loss->c != 1 || loss->h != 1 || loss->w != 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: loss must be a 1x1x1x1 tensor",
                        op);
    float t_real, t_fake;
    targets(side, &t_real, &t_fake);

    dsd_tensor mean = {0}, centred = {0}, term = {0}, mean_real = {0}, mean_fake = {0};
    dsd_status st;
    if ((st = dsd_tensor_init(ctx, &mean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &term, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &centred, real->n, real->c, real->h, real->w)) != DSD_OK)
        goto done;
    if (!alone(comm)) {
        /* the batch's means, then each term's local mean / size: this replica's share */
        if ((st = dsd_tensor_init(ctx, &mean_real, 1, 1, 1, 1)) != DSD_OK ||
            (st = dsd_tensor_init(ctx, &mean_fake, 1, 1, 1, 1)) != DSD_OK ||
            (st = global_means(ctx, comm, real, fake, &mean, &mean_real, &mean_fake)) != DSD_OK ||
            (st = dsd_add_forward(ctx, real, &mean_fake, -1.0f, &centred)) != DSD_OK ||
            (st = dsd_bce_logits_loss_forward(ctx, &centred, t_real, loss)) != DSD_OK ||
            (st = dsd_add_forward(ctx, fake, &mean_real, -1.0f, &centred)) != DSD_OK ||
            (st = dsd_bce_logits_loss_forward(ctx, &centred, t_fake, &term)) != DSD_OK ||
            (st = dsd_add_forward(ctx, loss, &term, 1.0f, loss)) != DSD_OK)
            goto done;
        float v;
        if ((st = dsd_tensor_download(ctx, loss, &v, 1)) != DSD_OK)
            goto done;
        v = (float)((double)v / comm->size);
        st = dsd_tensor_upload(ctx, loss, &v, 1);
        goto done;
    }
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
    dsd_tensor_free(ctx, &mean_fake);
    dsd_tensor_free(ctx, &mean_real);
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

/* Replicas: one term BCE(x - mean_other, t) over the whole batch of size
 * replicas: dx += g with g = scale * (sigmoid(centred) - t) / (n size), and
 * dmean += -sum(g) over this replica (the caller sums it over the replicas
 * and sends it to dother). */
static dsd_status term_backward_comm(dsd_context *ctx, const dsd_comm *comm, float scale,
                                     float target, const dsd_tensor *x,
                                     const dsd_tensor *mean_other, dsd_tensor *dx,
                                     dsd_tensor *centred, dsd_tensor *g, dsd_tensor *dmean)
{
    DSD_TRY(dsd_add_forward(ctx, x, mean_other, -1.0f, centred));
    DSD_TRY(dsd_tensor_fill(ctx, g, 0.0f));
    DSD_TRY(dsd_bce_logits_loss_backward(ctx, (float)((double)scale / comm->size), centred,
                                         target, g));
    DSD_TRY(dsd_tensor_fill(ctx, dmean, 0.0f));
    return dsd_add_backward(ctx, -1.0f, g, dx, dmean);
}

/* Replicas: dother += (the sum over replicas of dmean) / (n size), with dmean
 * already summed into host value v. */
static dsd_status mean_backward_comm(dsd_context *ctx, const dsd_comm *comm, float v,
                                     dsd_tensor *dmean, dsd_tensor *dother)
{
    if (!dother)
        return DSD_OK;
    float share = (float)((double)v / comm->size); /* reduce_mean_backward divides by n */
    DSD_TRY(dsd_tensor_upload(ctx, dmean, &share, 1));
    return dsd_reduce_mean_backward(ctx, dmean, dother);
}

static dsd_status backward_comm(dsd_context *ctx, const dsd_comm *comm, float scale,
                                float t_real, float t_fake, const dsd_tensor *real,
                                const dsd_tensor *fake, dsd_tensor *dreal, dsd_tensor *dfake,
                                dsd_tensor *mean, dsd_tensor *dmean, dsd_tensor *centred,
                                dsd_tensor *g)
{
    dsd_tensor mean_real = {0}, mean_fake = {0}, dmean_fake = {0};
    float v[2];
    dsd_status st;
    if ((st = dsd_tensor_init(ctx, &mean_real, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &mean_fake, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &dmean_fake, 1, 1, 1, 1)) != DSD_OK ||
        (st = global_means(ctx, comm, real, fake, mean, &mean_real, &mean_fake)) != DSD_OK)
        goto done;
    /* real term: its mean(fake) sends dmean_fake to fake; fake term: dmean to real */
    if ((st = term_backward_comm(ctx, comm, scale, t_real, real, &mean_fake, dreal, centred, g,
                                 &dmean_fake)) != DSD_OK ||
        (st = dsd_tensor_download(ctx, &dmean_fake, &v[0], 1)) != DSD_OK ||
        (st = term_backward_comm(ctx, comm, scale, t_fake, fake, &mean_real, dfake, centred, g,
                                 dmean)) != DSD_OK ||
        (st = dsd_tensor_download(ctx, dmean, &v[1], 1)) != DSD_OK ||
        (st = comm_sum(ctx, comm, v, 2)) != DSD_OK ||
        (st = mean_backward_comm(ctx, comm, v[0], &dmean_fake, dfake)) != DSD_OK)
        goto done;
    st = mean_backward_comm(ctx, comm, v[1], dmean, dreal);
done:
    dsd_tensor_free(ctx, &dmean_fake);
    dsd_tensor_free(ctx, &mean_fake);
    dsd_tensor_free(ctx, &mean_real);
    return st;
}

dsd_status dsd_ragan_loss_backward(dsd_context *ctx, dsd_ragan_side side, float scale,
                                   const dsd_tensor *real, const dsd_tensor *fake,
                                   dsd_tensor *dreal, dsd_tensor *dfake)
{
    return dsd_ragan_loss_backward_comm(ctx, side, scale, real, fake, NULL, dreal, dfake);
}

dsd_status dsd_ragan_loss_backward_comm(dsd_context *ctx, dsd_ragan_side side, float scale,
                                        const dsd_tensor *real, const dsd_tensor *fake,
                                        const dsd_comm *comm, dsd_tensor *dreal,
                                        dsd_tensor *dfake)
{
    const char *op = "ragan_loss_backward";
    DSD_TRY(check_logits(ctx, op, real, fake));
    DSD_TRY(check_grad(ctx, op, dreal, "dreal", real));
    DSD_TRY(check_grad(ctx, op, dfake, "dfake", fake));
    if (!dreal && !dfake && alone(comm))
        return DSD_OK; /* replicas: every rank still takes part in the sums */
    float t_real, t_fake;
    targets(side, &t_real, &t_fake);

    dsd_tensor mean = {0}, dmean = {0}, centred = {0}, g = {0};
    dsd_status st;
    if ((st = dsd_tensor_init(ctx, &mean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &dmean, 1, 1, 1, 1)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &centred, real->n, real->c, real->h, real->w)) != DSD_OK ||
        (st = dsd_tensor_init(ctx, &g, real->n, real->c, real->h, real->w)) != DSD_OK)
        goto done;
    if (!alone(comm)) {
        st = backward_comm(ctx, comm, scale, t_real, t_fake, real, fake, dreal, dfake, &mean,
                           &dmean, &centred, &g);
        goto done;
    }
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
