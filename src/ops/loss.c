/*
 * loss.c: the mean-reduced losses of the GAN (MSE, L1, BCE with logits),
 * forward into a (1,1,1,1) tensor and backward with the upstream gradient
 * given as a host float `scale`. Kernels in cl/loss.cl (backward) and
 * cl/reduce.cl (forward), double-precision reference in tests/ref/loss.c.
 *
 * Forward is the deterministic two-pass reduction of src/ops/reduce.h with
 * the loss's elementwise term fused into its first pass (no temporary the
 * size of the input) and the 1/n of the mean applied by its last work-item,
 * so the loss never visits the host. Backward is one elementwise kernel that
 * writes every requested gradient.
 */
#include "reduce.h"

#include <math.h>

/* Work-group size of the elementwise backward kernels. */
enum { LOSS_WG = 64 };

/* ------------------------------------------------------------------------ */
/* Validation */

static dsd_status check_loss(dsd_context *ctx, const char *op, const dsd_tensor *loss)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, loss, "loss"));
    if (loss->n != 1 || loss->c != 1 || loss->h != 1 || loss->w != 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: loss is %dx%dx%dx%d but must be "
                        "1x1x1x1", op, loss->n, loss->c, loss->h, loss->w);
    return DSD_OK;
}

static dsd_status check_finite(dsd_context *ctx, const char *op, float v, const char *what)
{
    if (!isfinite(v))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is %g", op, what,
                        (double)v);
    return DSD_OK;
}

/* 1 / numel(t), rounded once. */
static float inv_count(const dsd_tensor *t)
{
    return (float)(1.0 / (double)dsd_tensor_numel(t));
}

/* ------------------------------------------------------------------------ */
/* Forward */

static dsd_status pair_forward(dsd_context *ctx, const char *op, dsd_reduce_term term,
                               const dsd_tensor *a, const dsd_tensor *b, dsd_tensor *loss)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, b, "b", a, "a"));
    DSD_TRY(check_loss(ctx, op, loss));
    return dsd_reduce_into(ctx, term, a, b, 0.0f, inv_count(a), loss);
}

dsd_status dsd_mse_loss_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                                dsd_tensor *loss)
{
    return pair_forward(ctx, "mse_loss_forward", DSD_REDUCE_TERM_SQ_DIFF, a, b, loss);
}

dsd_status dsd_l1_loss_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                               dsd_tensor *loss)
{
    return pair_forward(ctx, "l1_loss_forward", DSD_REDUCE_TERM_ABS_DIFF, a, b, loss);
}

dsd_status dsd_bce_logits_loss_forward(dsd_context *ctx, const dsd_tensor *logits, float target,
                                       dsd_tensor *loss)
{
    const char *op = "bce_logits_loss_forward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, logits, "logits"));
    DSD_TRY(check_finite(ctx, op, target, "target"));
    DSD_TRY(check_loss(ctx, op, loss));
    return dsd_reduce_into(ctx, DSD_REDUCE_TERM_BCE_LOGITS, logits, NULL, target,
                           inv_count(logits), loss);
}

/* ------------------------------------------------------------------------ */
/* Backward */

/* da += k f(a - b), db -= k f(a - b) for the kernel of the pair loss. */
static dsd_status pair_backward(dsd_context *ctx, const char *op, const char *kernel, double k,
                                const dsd_tensor *a, const dsd_tensor *b, dsd_tensor *da,
                                dsd_tensor *db)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, b, "b", a, "a"));
    if (da)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, da, "da", a, "a"));
    if (db)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, db, "db", a, "a"));
    if (!da && !db)
        return DSD_OK;
    float kf = (float)k;
    DSD_TRY(check_finite(ctx, op, kf, "scale"));
    cl_uint grads = (da ? 1u : 0u) | (db ? 2u : 0u);
    /* A missing gradient is bound to a (never written: grads says so). */
    const dsd_tensor *ga = da ? da : a, *gb = db ? db : a;
    cl_uint count = (cl_uint)dsd_tensor_numel(a);
    dsd_karg args[] = {DSD_KARG_TENSOR(a),  DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(ga),
                       DSD_KARG_TENSOR(gb), DSD_KARG(count),    DSD_KARG(kf),
                       DSD_KARG(grads)};
    size_t global = count, local = dsd_work_group_size(ctx, LOSS_WG);
    return dsd_kernel_run(ctx, "loss", NULL, kernel, args, DSD_NARGS(args), 1, &global, &local);
}

dsd_status dsd_mse_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *a,
                                 const dsd_tensor *b, dsd_tensor *da, dsd_tensor *db)
{
    double n = a ? (double)dsd_tensor_numel(a) : 1.0;
    return pair_backward(ctx, "mse_loss_backward", "mse_loss_backward", 2.0 * scale / n, a, b,
                         da, db);
}

dsd_status dsd_l1_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *a,
                                const dsd_tensor *b, dsd_tensor *da, dsd_tensor *db)
{
    double n = a ? (double)dsd_tensor_numel(a) : 1.0;
    return pair_backward(ctx, "l1_loss_backward", "l1_loss_backward", scale / n, a, b, da, db);
}

dsd_status dsd_bce_logits_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *logits,
                                        float target, dsd_tensor *dlogits)
{
    const char *op = "bce_logits_loss_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, logits, "logits"));
    DSD_TRY(check_finite(ctx, op, target, "target"));
    if (!dlogits)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dlogits, "dlogits", logits, "logits"));
    float k = (float)((double)scale / (double)dsd_tensor_numel(logits));
    DSD_TRY(check_finite(ctx, op, k, "scale"));
    cl_uint count = (cl_uint)dsd_tensor_numel(logits);
    dsd_karg args[] = {DSD_KARG_TENSOR(logits), DSD_KARG_TENSOR(dlogits), DSD_KARG(count),
                       DSD_KARG(target), DSD_KARG(k)};
    size_t global = count, local = dsd_work_group_size(ctx, LOSS_WG);
    return dsd_kernel_run(ctx, "loss", NULL, "bce_logits_loss_backward", args, DSD_NARGS(args), 1,
                          &global, &local);
}
