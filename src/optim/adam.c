/*
 * adam.c: the Adam optimizer step and the learning-rate schedule of the
 * paper. The kernel is cl/adam.cl; the double-precision reference is
 * tests/ref/adam.c.
 *
 * dsd_adam_step validates its arguments, computes the bias corrections on the
 * host in double and enqueues one fused kernel that updates param, m and v
 * from grad in a single pass (one read of four arrays, three writes). The
 * tensors are treated as flat arrays: only their element counts must agree,
 * so a caller passes whole parameter / gradient / moment arenas and updates
 * the entire model in one launch. It does not zero the gradient, clip it, or
 * apply weight decay; it does not wait for the device.
 */
#include "internal.h"

#include <limits.h>
#include <math.h>

/* Work-group size of the update (lowered to what the device allows). The
 * kernel uses no local memory, so this only sets the scheduling granularity. */
enum { ADAM_WG_DEFAULT = 256 };

/* ------------------------------------------------------------------------ */
/* Validation */

/* t must hold as many floats as param (shapes may differ). */
static dsd_status check_count(dsd_context *ctx, const dsd_tensor *t, const char *what,
                              const dsd_tensor *param)
{
    if (dsd_tensor_numel(t) == dsd_tensor_numel(param))
        return DSD_OK;
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "adam: %s is %dx%dx%dx%d (%zu floats) but "
                    "param is %dx%dx%dx%d (%zu floats)", what, t->n, t->c, t->h, t->w,
                    dsd_tensor_numel(t), param->n, param->c, param->h, param->w,
                    dsd_tensor_numel(param));
}

/* The four arrays must be disjoint: one work-item reads element i of each and
 * writes element i of three, so an overlap at a different offset would race
 * and an exact alias (m == v) would compute something else. */
static dsd_status check_disjoint(dsd_context *ctx, const dsd_tensor *a, const char *a_what,
                                 const dsd_tensor *b, const char *b_what, size_t count)
{
    if (a->buf != b->buf)
        return DSD_OK;
    size_t a0 = a->offset, b0 = b->offset;
    if (a0 + count <= b0 || b0 + count <= a0)
        return DSD_OK;
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: %s (offset %zu) and %s "
                    "(offset %zu) overlap in one buffer (%zu floats each)", a_what, a0, b_what,
                    b0, count);
}

static dsd_status check_params(dsd_context *ctx, const dsd_adam_params *hp, int t)
{
    if (!hp)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: params is NULL");
    if (t < 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: step t = %d, must be "
                        ">= 1 (the first step is 1)", t);
    /* Written so that NaN fails every test. */
    if (!(hp->lr >= 0.0f) || !isfinite(hp->lr))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: lr = %g, must be "
                        "finite and >= 0", (double)hp->lr);
    if (!(hp->beta1 >= 0.0f && hp->beta1 < 1.0f))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: beta1 = %g, must be "
                        "in [0, 1)", (double)hp->beta1);
    if (!(hp->beta2 >= 0.0f && hp->beta2 < 1.0f))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: beta2 = %g, must be "
                        "in [0, 1)", (double)hp->beta2);
    if (!(hp->eps > 0.0f) || !isfinite(hp->eps))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: eps = %g, must be "
                        "finite and > 0", (double)hp->eps);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* The step */

dsd_status dsd_adam_step(dsd_context *ctx, const dsd_adam_params *p, int t, dsd_tensor *param,
                         const dsd_tensor *grad, dsd_tensor *m, dsd_tensor *v)
{
    if (!ctx)
        return DSD_ERR_INVALID_ARGUMENT;
    DSD_TRY(check_params(ctx, p, t));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "adam", param, "param"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "adam", grad, "grad"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "adam", m, "m"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "adam", v, "v"));
    DSD_TRY(check_count(ctx, grad, "grad", param));
    DSD_TRY(check_count(ctx, m, "m", param));
    DSD_TRY(check_count(ctx, v, "v", param));
    size_t n = dsd_tensor_numel(param);
    if (n > UINT_MAX)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "adam: %zu floats exceed the kernel's "
                        "32-bit index", n);
    DSD_TRY(check_disjoint(ctx, param, "param", grad, "grad", n));
    DSD_TRY(check_disjoint(ctx, param, "param", m, "m", n));
    DSD_TRY(check_disjoint(ctx, param, "param", v, "v", n));
    DSD_TRY(check_disjoint(ctx, grad, "grad", m, "m", n));
    DSD_TRY(check_disjoint(ctx, grad, "grad", v, "v", n));
    DSD_TRY(check_disjoint(ctx, m, "m", v, "v", n));

    /* Bias corrections in double, as PyTorch computes them in Python floats:
     * step_size = lr / (1 - b1^t); the kernel multiplies sqrt(v) by
     * 1 / sqrt(1 - b2^t) where PyTorch divides by sqrt(1 - b2^t) (a rounding
     * difference of one float ulp). For large t both factors tend to 1. */
    double b1 = p->beta1, b2 = p->beta2;
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    float step_size = (float)((double)p->lr / bc1);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    if (!isfinite(step_size) || !isfinite(inv_sqrt_bc2))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "adam: lr %g with beta1 %g, "
                        "beta2 %g at step %d gives a step size beyond float range", (double)p->lr,
                        b1, b2, t);
    float beta1 = p->beta1, beta2 = p->beta2, eps = p->eps;
    float one_minus_beta1 = (float)(1.0 - b1), one_minus_beta2 = (float)(1.0 - b2);
    cl_uint count = (cl_uint)n;

    dsd_karg args[] = {
        DSD_KARG_TENSOR(param), DSD_KARG_TENSOR(grad), DSD_KARG_TENSOR(m), DSD_KARG_TENSOR(v),
        DSD_KARG(count),        DSD_KARG(beta1),       DSD_KARG(one_minus_beta1),
        DSD_KARG(beta2),        DSD_KARG(one_minus_beta2), DSD_KARG(step_size),
        DSD_KARG(inv_sqrt_bc2), DSD_KARG(eps),
    };
    size_t local = dsd_work_group_size(ctx, ADAM_WG_DEFAULT);
    size_t global = n;
    return dsd_kernel_run(ctx, "adam", NULL, "adam_step", args, DSD_NARGS(args), 1, &global,
                          &local);
}

/* ------------------------------------------------------------------------ */
/* Learning-rate schedule */

/* The learning rate for 0-based `epoch`, the paper's schedule (lr 1e-4 for
 * the first 150 of 500 epochs, then linear decay to 0):
 *
 *   epoch <  constant_epochs             base_lr
 *   constant_epochs <= epoch < total     base_lr * (total - epoch) / (total - constant)
 *   epoch >= total_epochs                0
 *
 * so the decay starts at base_lr itself on epoch == constant_epochs and its
 * last non-zero value is base_lr / (total - constant) on epoch total - 1.
 * When constant_epochs >= total_epochs there is no decay phase and every
 * epoch gets base_lr (a constant schedule). A negative constant_epochs counts
 * as 0. Computed in double, rounded to float once. */
float dsd_lr_schedule(float base_lr, int epoch, int constant_epochs, int total_epochs)
{
    if (constant_epochs < 0)
        constant_epochs = 0;
    if (constant_epochs >= total_epochs || epoch < constant_epochs)
        return base_lr;
    if (epoch >= total_epochs)
        return 0.0f;
    double remaining = (double)total_epochs - (double)epoch;
    double span = (double)total_epochs - (double)constant_epochs;
    return (float)((double)base_lr * remaining / span);
}
