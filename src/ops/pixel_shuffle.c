/*
 * pixel_shuffle.c: PixelShuffle (N, C*r*r, H, W) -> (N, C, H*r, W*r) and its
 * inverse PixelUnshuffle, forward and backward, in PyTorch's channel order.
 * Kernels in cl/pixel_shuffle.cl, double-precision reference in
 * tests/ref/pixel_shuffle.c.
 *
 * Both directions are one permutation kernel walking the spatially large
 * tensor; the backward of shuffle is unshuffle accumulating into dx and vice
 * versa. Each function validates, then enqueues one kernel. Outputs must not
 * overlap inputs (a permutation cannot run in place).
 */
#include "internal.h"

#include <stdio.h>

enum { PS_WG = 256 };

/* small (N, C*r*r, H, W) and big (N, C, H*r, W*r); small_what / big_what name
 * them in messages. */
static dsd_status check_pair(dsd_context *ctx, const char *op, int r, const dsd_tensor *small,
                             const char *small_what, const dsd_tensor *big, const char *big_what)
{
    if (r < 1 || r > 64)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: factor r = %d is not "
                        "in 1..64", op, r);
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, small, small_what));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, big, big_what));
    int rr = r * r;
    if (small->c % rr != 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d has %d channels, "
                        "not a multiple of r*r = %d", op, small_what, small->n, small->c,
                        small->h, small->w, small->c, rr);
    if (big->h % r != 0 || big->w % r != 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d is not divisible "
                        "into %dx%d blocks", op, big_what, big->n, big->c, big->h, big->w, r, r);
    if (big->n != small->n || big->c != small->c / rr || big->h / r != small->h ||
        big->w / r != small->w)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d and %s %dx%dx%dx%d "
                        "are not related by a pixel shuffle with r = %d (%s needs %dx%dx%dx%d)",
                        op, small_what, small->n, small->c, small->h, small->w, big_what, big->n,
                        big->c, big->h, big->w, r, big_what, small->n, small->c / rr,
                        small->h * r, small->w * r);
    if (small->buf == big->buf) {
        size_t s0 = small->offset, b0 = big->offset, n = dsd_tensor_numel(big);
        if (s0 < b0 + n && b0 < s0 + n)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s and %s overlap "
                            "(a permutation cannot run in place)", op, small_what, big_what);
    }
    return DSD_OK;
}

/* kernel "pixel_shuffle" (small -> big) or "pixel_unshuffle" (big -> small),
 * compiled for this r (-DR=r). */
static dsd_status run(dsd_context *ctx, const char *kernel, int r, const dsd_tensor *src,
                      dsd_tensor *dst, const dsd_tensor *big, int accumulate)
{
    cl_uint big_h = (cl_uint)big->h, big_w = (cl_uint)big->w;
    cl_uint planes = (cl_uint)big->n * (cl_uint)big->c;
    cl_int acc = accumulate;
    dsd_karg args[] = {DSD_KARG_TENSOR(src), DSD_KARG_TENSOR(dst), DSD_KARG(planes),
                       DSD_KARG(big_h),      DSD_KARG(big_w),      DSD_KARG(acc)};
    char opts[32];
    snprintf(opts, sizeof opts, "-DR=%d", r);
    size_t wg = dsd_work_group_size(ctx, PS_WG);
    /* a row of up to wg columns, then as many rows as fit */
    size_t local[3] = {1, 1, 1};
    while (local[0] < big_w && local[0] < wg)
        local[0] *= 2;
    while (local[1] < big_h && local[0] * local[1] * 2 <= wg)
        local[1] *= 2;
    size_t global[3] = {big_w, big_h, planes};
    return dsd_kernel_run(ctx, "pixel_shuffle", opts, kernel, args, DSD_NARGS(args), 3, global,
                          local);
}

dsd_status dsd_pixel_shuffle_forward(dsd_context *ctx, int r, const dsd_tensor *x, dsd_tensor *y)
{
    DSD_TRY(check_pair(ctx, "pixel_shuffle_forward", r, x, "x", y, "y"));
    return run(ctx, "pixel_shuffle", r, x, y, y, 0);
}

dsd_status dsd_pixel_shuffle_backward(dsd_context *ctx, int r, const dsd_tensor *dy,
                                      dsd_tensor *dx)
{
    if (!dx) {
        if (r < 1)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "pixel_shuffle_backward: "
                            "factor r = %d", r);
        return DSD_TENSOR_CHECK(ctx, "pixel_shuffle_backward", dy, "dy");
    }
    DSD_TRY(check_pair(ctx, "pixel_shuffle_backward", r, dx, "dx", dy, "dy"));
    return run(ctx, "pixel_unshuffle", r, dy, dx, dy, 1);
}

dsd_status dsd_pixel_unshuffle_forward(dsd_context *ctx, int r, const dsd_tensor *x,
                                       dsd_tensor *y)
{
    DSD_TRY(check_pair(ctx, "pixel_unshuffle_forward", r, y, "y", x, "x"));
    return run(ctx, "pixel_unshuffle", r, x, y, x, 0);
}

dsd_status dsd_pixel_unshuffle_backward(dsd_context *ctx, int r, const dsd_tensor *dy,
                                        dsd_tensor *dx)
{
    if (!dx) {
        if (r < 1)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT,
                            "pixel_unshuffle_backward: factor r = %d", r);
        return DSD_TENSOR_CHECK(ctx, "pixel_unshuffle_backward", dy, "dy");
    }
    DSD_TRY(check_pair(ctx, "pixel_unshuffle_backward", r, dy, "dy", dx, "dx"));
    return run(ctx, "pixel_shuffle", r, dy, dx, dx, 1);
}
