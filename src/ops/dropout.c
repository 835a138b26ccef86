/*
 * dropout.c: inverted dropout whose mask is a pure function of (seed,
 * stream, element index), forward and backward, plus the same mask on the
 * host. Kernels in cl/dropout.cl, double-precision reference (with its own
 * Philox, checked against the published known-answer vectors) in
 * tests/ref/dropout.c.
 *
 * The generator is Philox4x32-10 (Salmon et al., SC 2011; src/philox.c and
 * cl/common.cl), a counter-based RNG: element i uses counter (i, stream lo,
 * stream hi, 0) and key (seed lo, seed hi) and keeps the element when the
 * first output word, as u = (word >> 8) * 2^-24, is >= p. No mask is stored,
 * so backward costs no memory, resuming training needs only the step counter,
 * and the host can reproduce any mask bit (dsd_dropout_keep_host). p == 0 is
 * the identity.
 */
#include "internal.h"

static int valid_p(float p)
{
    return p >= 0.0f && p < 1.0f; /* false for NaN */
}

int dsd_dropout_keep_host(float p, uint64_t seed, uint64_t stream, uint32_t index)
{
    if (p <= 0.0f)
        return 1;
    const uint32_t counter[4] = {index, (uint32_t)stream, (uint32_t)(stream >> 32), 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t words[4];
    dsd_philox4x32_10(counter, key, words);
    uint32_t word = words[0];
    float u = (float)(word >> 8) * (1.0f / 16777216.0f); /* exact: 24 bits */
    return u >= p;
}

/* ------------------------------------------------------------------------ */
/* Device ops */

enum { DROPOUT_WG = 64 };

/* Validates p, src and dst (same shapes), then runs kernel over the elements. */
static dsd_status dropout_run(dsd_context *ctx, const char *op, const char *kernel, float p,
                              uint64_t seed, uint64_t stream, uint32_t first,
                              const dsd_tensor *src, const char *src_what, dsd_tensor *dst,
                              const char *dst_what)
{
    if (!valid_p(p))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: p = %g is not in "
                        "[0, 1)", op, (double)p);
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, src, src_what));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dst, dst_what, src, src_what));
    size_t numel = dsd_tensor_numel(src);
    if ((uint64_t)first + numel > (uint64_t)UINT32_MAX + 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: elements %u .. %u of the batch "
                        "pass the 32-bit mask counter", op, (unsigned)first,
                        (unsigned)(first + numel - 1));
    cl_uint count = (cl_uint)numel, first_arg = first;
    float scale = (float)(1.0 / (1.0 - (double)p));
    cl_uint k0 = (cl_uint)seed, k1 = (cl_uint)(seed >> 32);
    cl_uint s0 = (cl_uint)stream, s1 = (cl_uint)(stream >> 32);
    dsd_karg args[] = {DSD_KARG_TENSOR(src), DSD_KARG_TENSOR(dst), DSD_KARG(count),
                       DSD_KARG(p),          DSD_KARG(scale),      DSD_KARG(k0),
                       DSD_KARG(k1),         DSD_KARG(s0),         DSD_KARG(s1),
                       DSD_KARG(first_arg)};
    /* a work-item per 8 elements (cl/dropout.cl) */
    size_t global = ((size_t)count + 7) / 8, local = dsd_work_group_size(ctx, DROPOUT_WG);
    return dsd_kernel_run(ctx, "dropout", NULL, kernel, args, DSD_NARGS(args), 1, &global,
                          &local);
}

dsd_status dsd_dropout_forward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                               const dsd_tensor *x, dsd_tensor *y)
{
    return dsd_dropout_forward_at(ctx, p, seed, stream, 0, x, y);
}

dsd_status dsd_dropout_backward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                const dsd_tensor *dy, dsd_tensor *dx)
{
    return dsd_dropout_backward_at(ctx, p, seed, stream, 0, dy, dx);
}

dsd_status dsd_dropout_forward_at(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                  uint32_t first, const dsd_tensor *x, dsd_tensor *y)
{
    return dropout_run(ctx, "dropout_forward", "dropout_forward", p, seed, stream, first, x,
                       "x", y, "y");
}

dsd_status dsd_dropout_backward_at(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                   uint32_t first, const dsd_tensor *dy, dsd_tensor *dx)
{
    if (!dx) {
        if (!valid_p(p))
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "dropout_backward: "
                            "p = %g is not in [0, 1)", (double)p);
        return DSD_OK;
    }
    return dropout_run(ctx, "dropout_backward", "dropout_backward", p, seed, stream, first, dy,
                       "dy", dx, "dx");
}
