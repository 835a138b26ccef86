/*
 * reduce.c: whole-tensor reductions to a (1,1,1,1) tensor (sum, mean, sum of
 * squares) and the broadcast backward of sum and mean. Kernels in
 * cl/reduce.cl, double-precision reference in tests/ref/reduce.c.
 *
 * Every reduction goes through dsd_reduce_into (src/ops/reduce.h), which the
 * losses also call with their elementwise term: pass 1 enqueues a fixed
 * DSD_REDUCE_GROUPS work-groups (fewer only for tensors smaller than that
 * many work-group widths) writing one partial sum each into a pooled
 * temporary, pass 2 one work-group that folds the partials in order. The
 * temporary goes back to the pool right after both launches are enqueued;
 * that is safe because the queue is in order, so whoever leases it next runs
 * after pass 2. No atomics, so a device gives bit-identical results.
 *
 * Backward never reads dy on the host: the kernel loads dy[0] itself.
 */
#include "reduce.h"

#include <stdio.h>

/* Work-group size of both passes (a power of two, lowered to what the device
 * allows). 256 x 128 groups = 32768 work-items keep a GTX 1080 Ti's 28 SMs
 * streaming while a 1280x720x3 image still gives each work-item ~84 terms. */
enum { REDUCE_WG_DEFAULT = 256, ELEMENTWISE_WG = 64 };

/* ------------------------------------------------------------------------ */
/* Validation */

static dsd_status check_scalar(dsd_context *ctx, const char *op, const dsd_tensor *t,
                               const char *what)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, t, what));
    if (t->n != 1 || t->c != 1 || t->h != 1 || t->w != 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but must be "
                        "1x1x1x1", op, what, t->n, t->c, t->h, t->w);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* The shared two-pass reduction */

dsd_status dsd_reduce_into(dsd_context *ctx, dsd_reduce_term term, const dsd_tensor *a,
                           const dsd_tensor *b, float target, float scale, dsd_tensor *y)
{
    const char *op = "reduce";
    int diff = term == DSD_REDUCE_TERM_SQ_DIFF || term == DSD_REDUCE_TERM_ABS_DIFF;
    if ((int)term < DSD_REDUCE_TERM_X || term > DSD_REDUCE_TERM_BCE_LOGITS)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: unknown term %d", op,
                        (int)term);
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    if (diff) {
        DSD_TRY(DSD_TENSOR_CHECK(ctx, op, b, "b"));
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, a, "a", b, "b"));
    } else {
        b = a; /* an unread stand-in: every kernel argument needs a buffer */
    }
    DSD_TRY(check_scalar(ctx, op, y, "y"));

    size_t wg = dsd_work_group_size(ctx, REDUCE_WG_DEFAULT);
    char opts[64];
    snprintf(opts, sizeof opts, "-DWG=%zu -DTERM=%d", wg, (int)term);
    cl_kernel k1, k2;
    DSD_TRY(dsd_kernel_get(ctx, "reduce", opts, "reduce_partials", &k1));
    DSD_TRY(dsd_kernel_get(ctx, "reduce", opts, "reduce_final", &k2));

    /* A fixed DSD_REDUCE_GROUPS groups, fewer only when the tensor cannot fill
     * them with one element per work-item. */
    cl_uint count = (cl_uint)dsd_tensor_numel(a);
    cl_uint groups = (cl_uint)((count + wg - 1) / wg);
    if (groups > DSD_REDUCE_GROUPS)
        groups = DSD_REDUCE_GROUPS;
    dsd_tensor partials;
    DSD_TRY(dsd_tensor_init(ctx, &partials, 1, 1, 1, (int)groups));
    dsd_karg args1[] = {DSD_KARG_TENSOR(a), DSD_KARG_TENSOR(b), DSD_KARG(count),
                        DSD_KARG(target), DSD_KARG_TENSOR(&partials)};
    dsd_karg args2[] = {DSD_KARG_TENSOR(&partials), DSD_KARG(groups), DSD_KARG(scale),
                        DSD_KARG_TENSOR(y)};
    size_t global1 = (size_t)groups * wg;
    dsd_status st = dsd_kernel_set_args(ctx, k1, args1, DSD_NARGS(args1));
    if (st == DSD_OK)
        st = dsd_kernel_launch(ctx, k1, 1, &global1, &wg);
    if (st == DSD_OK)
        st = dsd_kernel_set_args(ctx, k2, args2, DSD_NARGS(args2));
    if (st == DSD_OK)
        st = dsd_kernel_launch(ctx, k2, 1, &wg, &wg);
    dsd_tensor_free(ctx, &partials); /* in-order queue: the next lease runs after pass 2 */
    return st;
}

/* ------------------------------------------------------------------------ */
/* Public reductions */

dsd_status dsd_reduce_sum(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "reduce_sum", x, "x"));
    DSD_TRY(check_scalar(ctx, "reduce_sum", y, "y"));
    return dsd_reduce_into(ctx, DSD_REDUCE_TERM_X, x, NULL, 0.0f, 1.0f, y);
}

dsd_status dsd_reduce_mean(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "reduce_mean", x, "x"));
    DSD_TRY(check_scalar(ctx, "reduce_mean", y, "y"));
    float scale = (float)(1.0 / (double)dsd_tensor_numel(x));
    return dsd_reduce_into(ctx, DSD_REDUCE_TERM_X, x, NULL, 0.0f, scale, y);
}

dsd_status dsd_reduce_sum_squares(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "reduce_sum_squares", x, "x"));
    DSD_TRY(check_scalar(ctx, "reduce_sum_squares", y, "y"));
    return dsd_reduce_into(ctx, DSD_REDUCE_TERM_SQUARE, x, NULL, 0.0f, 1.0f, y);
}

/* dx += dy[0] * scale, one work-item per element of dx. */
static dsd_status broadcast_backward(dsd_context *ctx, const char *op, const dsd_tensor *dy,
                                     dsd_tensor *dx, int mean)
{
    DSD_TRY(check_scalar(ctx, op, dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, dx, "dx"));
    size_t wg = dsd_work_group_size(ctx, REDUCE_WG_DEFAULT);
    char opts[64];
    snprintf(opts, sizeof opts, "-DWG=%zu -DTERM=%d", wg,
             (int)DSD_REDUCE_TERM_X); /* the program pass 1 and 2 of a sum use */
    cl_uint count = (cl_uint)dsd_tensor_numel(dx);
    float scale = mean ? (float)(1.0 / (double)count) : 1.0f;
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG(scale), DSD_KARG_TENSOR(dx),
                       DSD_KARG(count)};
    size_t global = count, local = ELEMENTWISE_WG < wg ? ELEMENTWISE_WG : wg;
    return dsd_kernel_run(ctx, "reduce", opts, "reduce_broadcast_backward", args,
                          DSD_NARGS(args), 1, &global, &local);
}

dsd_status dsd_reduce_sum_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx)
{
    return broadcast_backward(ctx, "reduce_sum_backward", dy, dx, 0);
}

dsd_status dsd_reduce_mean_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx)
{
    return broadcast_backward(ctx, "reduce_mean_backward", dy, dx, 1);
}
