/*
 * activation.c: LeakyReLU, ReLU, sigmoid and tanh, forward and backward.
 * Kernels in cl/activation.cl, double-precision reference in
 * tests/ref/activation.c.
 *
 * Each function validates its tensors and enqueues one flat kernel (one
 * work-item per element). Forward may run in place (y is x: same buffer, same
 * offset); any other overlap of x and y is refused. Backward reads x for the
 * ReLU family and y for sigmoid and tanh; the one it does not read may be
 * NULL. A NULL dx skips the backward after validation.
 */
#include "internal.h"

/* Work-group size of the flat kernels, lowered to what the device allows. */
enum { ACT_WG = 256 };

static dsd_status check_act(dsd_context *ctx, const char *op, dsd_activation act)
{
    if (act != DSD_ACT_LEAKY_RELU && act != DSD_ACT_RELU && act != DSD_ACT_SIGMOID &&
        act != DSD_ACT_TANH)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: unknown activation %d",
                        op, (int)act);
    return DSD_OK;
}

/* y may be x itself (in place) or disjoint from it; a partial overlap would
 * let one work-item overwrite another's input. */
static dsd_status check_in_place(dsd_context *ctx, const char *op, const dsd_tensor *x,
                                 const dsd_tensor *y)
{
    if (x->buf != y->buf || x->offset == y->offset)
        return DSD_OK;
    size_t n = dsd_tensor_numel(x);
    size_t xs = x->offset, ys = y->offset;
    if (xs + n <= ys || ys + n <= xs)
        return DSD_OK;
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: y (offset %zu) partly "
                    "overlaps x (offset %zu); use the same tensor for in place", op, ys, xs);
}

static dsd_status run_flat(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                           int nargs, size_t count)
{
    size_t local = dsd_work_group_size(ctx, ACT_WG);
    return dsd_kernel_run(ctx, "activation", NULL, kernel, args, nargs, 1, &count, &local);
}

/* ------------------------------------------------------------------------ */

dsd_status dsd_activation_forward(dsd_context *ctx, dsd_activation act, float slope,
                                  const dsd_tensor *x, dsd_tensor *y)
{
    const char *op = "activation_forward";
    DSD_TRY(check_act(ctx, op, act));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, y, "y", x, "x"));
    DSD_TRY(check_in_place(ctx, op, x, y));
    cl_uint count = (cl_uint)dsd_tensor_numel(x);
    cl_int act_arg = (cl_int)act;
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(count),
                       DSD_KARG(act_arg), DSD_KARG(slope)};
    return run_flat(ctx, "activation_forward", args, DSD_NARGS(args), count);
}

dsd_status dsd_activation_backward(dsd_context *ctx, dsd_activation act, float slope,
                                   const dsd_tensor *x, const dsd_tensor *y,
                                   const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "activation_backward";
    DSD_TRY(check_act(ctx, op, act));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, dy, "dy"));
    /* The ReLU family differentiates at x, sigmoid and tanh at y = f(x). */
    int reads_x = act == DSD_ACT_LEAKY_RELU || act == DSD_ACT_RELU;
    const dsd_tensor *src = reads_x ? x : y;
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, src, reads_x ? "x" : "y", dy, "dy"));
    if (x)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, x, "x", dy, "dy"));
    if (y)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, y, "y", dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dx, "dx", dy, "dy"));
    cl_uint count = (cl_uint)dsd_tensor_numel(dy);
    cl_int act_arg = (cl_int)act;
    dsd_karg args[] = {DSD_KARG_TENSOR(src), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx),
                       DSD_KARG(count), DSD_KARG(act_arg), DSD_KARG(slope)};
    return run_flat(ctx, "activation_backward", args, DSD_NARGS(args), count);
}
