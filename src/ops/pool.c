/*
 * pool.c: global average / max pooling (channel attention), channel mean /
 * max (spatial attention) and 2x2 max pooling, forward and backward. Kernels
 * in cl/pool.cl, double-precision reference in tests/ref/pool.c.
 *
 * Each function validates its tensors, then enqueues exactly one kernel. Max
 * backward recomputes the arg-max from x (first index wins ties) instead of
 * storing indices in forward, so forward needs no extra output and backward
 * needs no temporary: the work-item or work-group that finds an arg-max owns
 * the dx elements it writes, which keeps the scatter race-free without
 * atomics.
 */
#include "internal.h"

#include <stdio.h>

/* Work-group size of the global pools (one group per (n, c) plane): a power
 * of two, lowered to what the device allows. 256 keeps every SM busy with a
 * few hundred planes (channel attention: 256 planes of 180 x 320). */
enum { POOL_WG_DEFAULT = 256 };

/* ------------------------------------------------------------------------ */
/* Validation helpers */

/* How an op maps its big tensor (x, dx) to its small one (y, dy). */
typedef enum pool_kind {
    POOL_GLOBAL,  /* (N,C,H,W) -> (N,C,1,1) */
    POOL_CHANNEL, /* (N,C,H,W) -> (N,1,H,W) */
    POOL_HALF,    /* (N,C,H,W) -> (N,C,H/2,W/2) */
} pool_kind;

/* Checks big, then small against the shape big implies. */
static dsd_status check_pair(dsd_context *ctx, const char *op, pool_kind kind,
                             const dsd_tensor *big, const char *big_what, const dsd_tensor *small,
                             const char *small_what)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, big, big_what));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, small, small_what));
    int c = big->c, h = big->h, w = big->w;
    switch (kind) {
    case POOL_GLOBAL:
        h = w = 1;
        break;
    case POOL_CHANNEL:
        c = 1;
        break;
    case POOL_HALF:
        if (big->h < 2 || big->w < 2)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d is smaller "
                            "than the 2x2 window", op, big_what, big->n, big->c, big->h, big->w);
        h /= 2;
        w /= 2;
        break;
    }
    return DSD_TENSOR_EXPECT_SHAPE(ctx, op, small, small_what, big->n, c, h, w, big_what, big);
}

/* dx (when given) must have x's shape. */
static dsd_status check_dx(dsd_context *ctx, const char *op, const dsd_tensor *x,
                           const dsd_tensor *dx)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, dx, "dx"));
    return DSD_TENSOR_EXPECT_SHAPE(ctx, op, dx, "dx", x->n, x->c, x->h, x->w, "x", x);
}

static void wg_options(size_t wg, char *buf, size_t size)
{
    snprintf(buf, size, "-DWG=%zu", wg);
}

/* One work-group per (n, c) plane of x. */
static dsd_status run_per_plane(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                                int nargs, size_t planes)
{
    size_t wg = dsd_work_group_size(ctx, POOL_WG_DEFAULT);
    char opts[32];
    wg_options(wg, opts, sizeof opts);
    size_t global = planes * wg;
    return dsd_kernel_run(ctx, "pool", opts, kernel, args, nargs, 1, &global, &wg);
}

/* One work-item per element (count of them). */
static dsd_status run_flat(dsd_context *ctx, const char *kernel, const dsd_karg *args, int nargs,
                           size_t count)
{
    size_t wg = dsd_work_group_size(ctx, POOL_WG_DEFAULT);
    char opts[32];
    wg_options(wg, opts, sizeof opts); /* the same program as the per-plane kernels */
    size_t global = count, local = wg < 64 ? wg : 64;
    return dsd_kernel_run(ctx, "pool", opts, kernel, args, nargs, 1, &global, &local);
}

/* ------------------------------------------------------------------------ */
/* Global pooling: x (N,C,H,W) -> y (N,C,1,1) */

static dsd_status global_forward(dsd_context *ctx, const char *op,
                                 const dsd_tensor *x, dsd_tensor *y)
{
    DSD_TRY(check_pair(ctx, op, POOL_GLOBAL, x, "x", y, "y"));
    cl_uint planes = (cl_uint)x->n * (cl_uint)x->c, hw = (cl_uint)dsd_tensor_plane(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(planes), DSD_KARG(hw)};
    return run_per_plane(ctx, op, args, DSD_NARGS(args), planes);
}

dsd_status dsd_global_avg_pool_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    return global_forward(ctx, "global_avg_pool_forward", x, y);
}

dsd_status dsd_global_max_pool_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    return global_forward(ctx, "global_max_pool_forward", x, y);
}

dsd_status dsd_global_avg_pool_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx)
{
    if (!dx)
        return DSD_OK; /* nothing to accumulate */
    DSD_TRY(check_pair(ctx, "global_avg_pool_backward", POOL_GLOBAL, dx, "dx", dy, "dy"));
    cl_uint count = (cl_uint)dsd_tensor_numel(dx), hw = (cl_uint)dsd_tensor_plane(dx);
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx), DSD_KARG(count), DSD_KARG(hw)};
    return run_flat(ctx, "global_avg_pool_backward", args, DSD_NARGS(args), count);
}

dsd_status dsd_global_max_pool_backward(dsd_context *ctx, const dsd_tensor *x,
                                        const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "global_max_pool_backward";
    DSD_TRY(check_pair(ctx, op, POOL_GLOBAL, x, "x", dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(check_dx(ctx, op, x, dx));
    cl_uint planes = (cl_uint)x->n * (cl_uint)x->c, hw = (cl_uint)dsd_tensor_plane(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx),
                       DSD_KARG(planes), DSD_KARG(hw)};
    return run_per_plane(ctx, "global_max_pool_backward", args, DSD_NARGS(args), planes);
}

/* ------------------------------------------------------------------------ */
/* Channel pooling: x (N,C,H,W) -> y (N,1,H,W) */

static dsd_status channel_forward(dsd_context *ctx, const char *kernel, const dsd_tensor *x,
                                  dsd_tensor *y)
{
    DSD_TRY(check_pair(ctx, kernel, POOL_CHANNEL, x, "x", y, "y"));
    cl_uint count = (cl_uint)dsd_tensor_numel(y), channels = (cl_uint)x->c,
            hw = (cl_uint)dsd_tensor_plane(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(count),
                       DSD_KARG(channels), DSD_KARG(hw)};
    return run_flat(ctx, kernel, args, DSD_NARGS(args), count);
}

dsd_status dsd_channel_mean_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    return channel_forward(ctx, "channel_mean_forward", x, y);
}

dsd_status dsd_channel_max_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    return channel_forward(ctx, "channel_max_forward", x, y);
}

dsd_status dsd_channel_mean_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx)
{
    if (!dx)
        return DSD_OK;
    DSD_TRY(check_pair(ctx, "channel_mean_backward", POOL_CHANNEL, dx, "dx", dy, "dy"));
    cl_uint count = (cl_uint)dsd_tensor_numel(dx), channels = (cl_uint)dx->c,
            hw = (cl_uint)dsd_tensor_plane(dx);
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx), DSD_KARG(count),
                       DSD_KARG(channels), DSD_KARG(hw)};
    return run_flat(ctx, "channel_mean_backward", args, DSD_NARGS(args), count);
}

dsd_status dsd_channel_max_backward(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                                    dsd_tensor *dx)
{
    const char *op = "channel_max_backward";
    DSD_TRY(check_pair(ctx, op, POOL_CHANNEL, x, "x", dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(check_dx(ctx, op, x, dx));
    cl_uint count = (cl_uint)dsd_tensor_numel(dy), channels = (cl_uint)x->c,
            hw = (cl_uint)dsd_tensor_plane(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx),
                       DSD_KARG(count), DSD_KARG(channels), DSD_KARG(hw)};
    return run_flat(ctx, op, args, DSD_NARGS(args), count);
}

/* ------------------------------------------------------------------------ */
/* 2x2 max pool, stride 2, floor: x (N,C,H,W) -> y (N,C,H/2,W/2) */

dsd_status dsd_maxpool2x2_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y)
{
    const char *op = "maxpool2x2_forward";
    DSD_TRY(check_pair(ctx, op, POOL_HALF, x, "x", y, "y"));
    cl_uint count = (cl_uint)dsd_tensor_numel(y), in_h = (cl_uint)x->h, in_w = (cl_uint)x->w,
            out_h = (cl_uint)y->h, out_w = (cl_uint)y->w;
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(count), DSD_KARG(in_h),
                       DSD_KARG(in_w), DSD_KARG(out_h), DSD_KARG(out_w)};
    return run_flat(ctx, op, args, DSD_NARGS(args), count);
}

dsd_status dsd_maxpool2x2_backward(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                                   dsd_tensor *dx)
{
    const char *op = "maxpool2x2_backward";
    DSD_TRY(check_pair(ctx, op, POOL_HALF, x, "x", dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(check_dx(ctx, op, x, dx));
    cl_uint count = (cl_uint)dsd_tensor_numel(dy), in_h = (cl_uint)x->h, in_w = (cl_uint)x->w,
            out_h = (cl_uint)dy->h, out_w = (cl_uint)dy->w;
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx),
                       DSD_KARG(count), DSD_KARG(in_h), DSD_KARG(in_w), DSD_KARG(out_h),
                       DSD_KARG(out_w)};
    return run_flat(ctx, op, args, DSD_NARGS(args), count);
}
