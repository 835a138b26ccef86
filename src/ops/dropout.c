/*
 * dropout.c: inverted dropout whose mask is a pure function of (seed,
 * stream, element index), forward and backward, plus the same mask on the
 * host. Kernels in cl/dropout.cl, double-precision reference (with its own
 * Philox, checked against the published known-answer vectors) in
 * tests/ref/dropout.c.
 *
 * The generator is Philox4x32-10 (Salmon et al., SC 2011), a counter-based
 * RNG: element i uses counter (i, stream lo, stream hi, 0) and key (seed lo,
 * seed hi) and keeps the element when the first output word, as
 * u = (word >> 8) * 2^-24, is >= p. No mask is stored, so backward costs no
 * memory, resuming training needs only the step counter, and the host can
 * reproduce any mask bit (dsd_dropout_keep_host). p == 0 is the identity.
 */
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Philox4x32-10 on the host (the kernel has its own copy in cl/dropout.cl) */

enum {
    PHILOX_ROUNDS = 10,
};
#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

/* One round: two 32x32 -> 64-bit products mixed into the other two words. */
static void philox_round(uint32_t ctr[4], const uint32_t key[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * ctr[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * ctr[2];
    uint32_t out[4] = {
        (uint32_t)(p1 >> 32) ^ ctr[1] ^ key[0],
        (uint32_t)p1,
        (uint32_t)(p0 >> 32) ^ ctr[3] ^ key[1],
        (uint32_t)p0,
    };
    for (int i = 0; i < 4; i++)
        ctr[i] = out[i];
}

/* The first word of Philox4x32-10(counter, key). */
static uint32_t philox_first_word(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                  uint32_t k0, uint32_t k1)
{
    uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1};
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        philox_round(ctr, key);
        key[0] += PHILOX_W0;
        key[1] += PHILOX_W1;
    }
    return ctr[0];
}

static int valid_p(float p)
{
    return p >= 0.0f && p < 1.0f; /* false for NaN */
}

int dsd_dropout_keep_host(float p, uint64_t seed, uint64_t stream, uint32_t index)
{
    if (p <= 0.0f)
        return 1;
    uint32_t word = philox_first_word(index, (uint32_t)stream, (uint32_t)(stream >> 32), 0,
                                      (uint32_t)seed, (uint32_t)(seed >> 32));
    float u = (float)(word >> 8) * (1.0f / 16777216.0f); /* exact: 24 bits */
    return u >= p;
}

/* ------------------------------------------------------------------------ */
/* Device ops */

enum { DROPOUT_WG = 64 };

static dsd_status check_tensor(dsd_context *ctx, const char *op, const dsd_tensor *t,
                               const char *what)
{
    if (!t)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, what);
    if (!t->buf || t->n <= 0 || t->c <= 0 || t->h <= 0 || t->w <= 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s (%dx%dx%dx%d) is empty or "
                        "unallocated", op, what, t->n, t->c, t->h, t->w);
    return DSD_OK;
}

/* Validates p, src and dst (same shapes), then runs kernel over the elements. */
static dsd_status dropout_run(dsd_context *ctx, const char *op, const char *kernel, float p,
                              uint64_t seed, uint64_t stream, const dsd_tensor *src,
                              const char *src_what, dsd_tensor *dst, const char *dst_what)
{
    if (!valid_p(p))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: p = %g is not in "
                        "[0, 1)", op, (double)p);
    DSD_TRY(check_tensor(ctx, op, src, src_what));
    DSD_TRY(check_tensor(ctx, op, dst, dst_what));
    if (!dsd_tensor_same_shape(src, dst))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but %s is "
                        "%dx%dx%dx%d", op, dst_what, dst->n, dst->c, dst->h, dst->w, src_what,
                        src->n, src->c, src->h, src->w);
    cl_uint count = (cl_uint)dsd_tensor_numel(src);
    float scale = (float)(1.0 / (1.0 - (double)p));
    cl_uint k0 = (cl_uint)seed, k1 = (cl_uint)(seed >> 32);
    cl_uint s0 = (cl_uint)stream, s1 = (cl_uint)(stream >> 32);
    dsd_karg args[] = {DSD_KARG_TENSOR(src), DSD_KARG_TENSOR(dst), DSD_KARG(count),
                       DSD_KARG(p),          DSD_KARG(scale),      DSD_KARG(k0),
                       DSD_KARG(k1),         DSD_KARG(s0),         DSD_KARG(s1)};
    size_t global = count, local = DROPOUT_WG;
    while (local > 1 && local > ctx->device.max_work_group_size)
        local /= 2;
    return dsd_kernel_run(ctx, "dropout", NULL, kernel, args, 11, 1, &global, &local);
}

dsd_status dsd_dropout_forward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                               const dsd_tensor *x, dsd_tensor *y)
{
    return dropout_run(ctx, "dropout_forward", "dropout_forward", p, seed, stream, x, "x", y,
                       "y");
}

dsd_status dsd_dropout_backward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                const dsd_tensor *dy, dsd_tensor *dx)
{
    if (!dx) {
        if (!valid_p(p))
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "dropout_backward: "
                            "p = %g is not in [0, 1)", (double)p);
        return DSD_OK;
    }
    return dropout_run(ctx, "dropout_backward", "dropout_backward", p, seed, stream, dy, "dy",
                       dx, "dx");
}
