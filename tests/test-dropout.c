/*
 * test-dropout.c: dropout (src/ops/dropout.c, cl/dropout.cl) against the
 * references in tests/ref/dropout.c, whose own Philox4x32-10 is first checked
 * against Random123's published known-answer vectors.
 *
 * The mask must be the same bit for bit on the device, in
 * dsd_dropout_keep_host and in the reference; it must depend on the flat
 * index within the tensor only (not on a view's offset), differ for another
 * seed or stream (both 32-bit halves of each), and keep about 1 - p of the
 * elements. Device tensors are batch views starting at image 1 of a larger
 * tensor whose image 0 holds a sentinel no op may touch.
 */
#include "testutil.h"
#include "ref/dropout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (N, C, H, W): odd sizes, 1x1, and 2x13x61x67 = 106262 elements. */
static const int shapes_full[][4] = {
    {2, 3, 7, 5}, {2, 17, 9, 11}, {2, 5, 1, 1}, {1, 1, 1, 1}, {2, 13, 61, 67},
};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {2, 5, 1, 1}, {1, 1, 1, 1}};
static const int (*shapes)[4] = shapes_full;
static int n_shapes = TU_COUNT(shapes_full);

static const float probs[] = {0.1f, 0.5f, 0.85f};
enum { N_PROBS = (int)(sizeof probs / sizeof probs[0]) };

static const uint64_t SEED = UINT64_C(0x0123456789abcdef), STREAM = UINT64_C(0xfedcba9876543210);

/* The shape for statistics and determinism: ~100k elements, 6438 when small. */
static const int *big_shape(void)
{
    static const int big[4] = {2, 13, 61, 67}, small[4] = {2, 3, 37, 29};
    return tu_small() ? small : big;
}

/* ------------------------------------------------------------------------ */
/* Helpers: tensors as views with a guarded image 0 */

/* The float the device computes for a kept value: v * float(1 / (1 - p)). */
static double kept_value(double v, float p)
{
    float scale = (float)(1.0 / (1.0 - (double)p));
    return (double)((float)v * scale);
}

/* ------------------------------------------------------------------------ */
/* The generator */

/* Random123's kat_vectors, philox4x32 with 10 rounds. */
START_TEST(test_philox_kat)
{
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
        uint32_t out[4];
        ref_philox4x32_10(kat[k].ctr, kat[k].key, out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == kat[k].out[j], "vector %zu word %d: %08x != %08x", k, j,
                          out[j], kat[k].out[j]);
    }
}
END_TEST

/* The library's host mask equals the reference's, over indices, seeds and
 * streams whose high halves matter; and a p just above / at a u value splits
 * the way "keep iff u >= p" says. */
START_TEST(test_host_mask)
{
    static const uint64_t seeds[] = {0, 1, UINT64_C(0x100000000), SEED, ~UINT64_C(0)};
    static const uint64_t streams[] = {0, 7, UINT64_C(0x500000000), STREAM};
    for (size_t a = 0; a < sizeof seeds / sizeof seeds[0]; a++)
        for (size_t b = 0; b < sizeof streams / sizeof streams[0]; b++)
            for (uint32_t i = 0; i < 2000; i++) {
                uint32_t idx = i < 1000 ? i : 0xffffffffu - (i - 1000) * 4099u;
                for (int k = 0; k < N_PROBS; k++)
                    ck_assert_msg(dsd_dropout_keep_host(probs[k], seeds[a], streams[b], idx) ==
                                      ref_dropout_keep(probs[k], seeds[a], streams[b], idx),
                                  "seed %llx stream %llx index %u p %g",
                                  (unsigned long long)seeds[a], (unsigned long long)streams[b],
                                  idx, (double)probs[k]);
            }
    /* the boundary: u of index 0 exactly as p keeps, the next float above drops */
    const uint32_t ctr[4] = {0, (uint32_t)STREAM, (uint32_t)(STREAM >> 32), 0};
    const uint32_t key[2] = {(uint32_t)SEED, (uint32_t)(SEED >> 32)};
    uint32_t out[4];
    ref_philox4x32_10(ctr, key, out);
    float u = (float)((out[0] >> 8) / 16777216.0);
    if (u > 0.0f && u < 1.0f) {
        ck_assert(dsd_dropout_keep_host(u, SEED, STREAM, 0) == 1);
        ck_assert(dsd_dropout_keep_host(nextafterf(u, 1.0f), SEED, STREAM, 0) == 0);
    }
    /* p == 0 keeps everything */
    for (uint32_t i = 0; i < 1000; i++)
        ck_assert(dsd_dropout_keep_host(0.0f, SEED, STREAM, i) == 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Forward and backward vs the reference */

/* _i = p * n_shapes + shape. The device mask equals the host's exactly, kept
 * values are x * float(1/(1-p)) exactly, and both match the reference; backward
 * accumulates into a pre-fill, twice. */
START_TEST(test_forward_backward)
{
    dsd_context *ctx = tu_ctx();
    float p = probs[_i / n_shapes];
    const int *s = shapes[_i % n_shapes];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(50 + (uint64_t)_i);
    double *x = tu_alloc(n), *y = tu_alloc(n), *ref = tu_alloc(n);
    double *dy = tu_alloc(n), *dx0 = tu_alloc(n), *g = tu_alloc(n), *got = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.1, 2.0);
    tu_fill_nonzero(&r, dy, n, 0.1, 2.0);
    tu_fill(&r, dx0, n, -1.0, 1.0);
    tu_round_to_float(x, n);
    tu_round_to_float(dy, n);
    tu_round_to_float(dx0, n);
    char what[128];
    snprintf(what, sizeof what, "dropout p=%g %dx%dx%dx%d", (double)p, s[0], s[1], s[2], s[3]);

    tu_guarded tx, ty, tdy, tdx;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, s, NULL);
    tu_guarded_from(&tdy, s, dy);
    tu_guarded_from(&tdx, s, dx0);
    TU_OK(dsd_dropout_forward(ctx, p, SEED, STREAM, &tx.v, &ty.v));
    tu_download(&ty.v, y);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = dsd_dropout_keep_host(p, SEED, STREAM, (uint32_t)i);
        kept += (size_t)keep;
        double want = keep ? kept_value(x[i], p) : 0.0;
        ck_assert_msg(y[i] == want, "%s forward: element %zu is %.9g, want %.9g (host keep %d)",
                      what, i, y[i], want, keep);
    }
    ref_dropout_forward(p, SEED, STREAM, x, n, ref);
    tu_check_close(what, y, ref, n, 1e-6);
    tu_guarded_check(&ty, what);

    /* keep fraction within 5 sigma of 1 - p (the big shape has ~100k elements) */
    if (n > 1000) {
        double mean = (double)n * (1.0 - p), sigma = sqrt((double)n * p * (1.0 - p));
        ck_assert_msg(fabs((double)kept - mean) <= 5.0 * sigma, "%s: kept %zu of %zu, expected "
                      "%.1f +- %.1f", what, kept, n, mean, sigma);
    }

    TU_OK(dsd_dropout_backward(ctx, p, SEED, STREAM, &tdy.v, &tdx.v));
    ref_dropout_backward(p, SEED, STREAM, dy, n, g);
    tu_download(&tdx.v, got);
    float scale = (float)(1.0 / (1.0 - (double)p));
    for (size_t i = 0; i < n; i++) {
        /* dx + dy * scale in float, rounded after the product or fused (OpenCL
         * lets a compiler contract it into an fma) */
        double want = dx0[i], want_fma = dx0[i];
        if (dsd_dropout_keep_host(p, SEED, STREAM, (uint32_t)i)) {
            want = (double)((float)dx0[i] + (float)kept_value(dy[i], p));
            want_fma = (double)fmaf((float)dy[i], scale, (float)dx0[i]);
        }
        ck_assert_msg(got[i] == want || got[i] == want_fma, "%s backward: element %zu is "
                      "%.9g, want %.9g", what, i, got[i], want);
        got[i] -= dx0[i];
    }
    tu_check_close(what, got, g, n, 1e-6);
    tu_guarded_check(&tdx, what);

    /* a second backward adds the same gradient again */
    TU_OK(dsd_dropout_backward(ctx, p, SEED, STREAM, &tdy.v, &tdx.v));
    tu_download(&tdx.v, got);
    for (size_t i = 0; i < n; i++) {
        got[i] -= dx0[i];
        g[i] *= 2.0;
    }
    tu_check_close(what, got, g, n, 1e-5);

    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tdy);
    tu_guarded_free(&tdx);
    free(x);
    free(y);
    free(ref);
    free(dy);
    free(dx0);
    free(g);
    free(got);
}
END_TEST

/* The mask depends on the index within the tensor, not on the view offset:
 * the same data at image 0 and at image 3 of a buffer gives the same y. Also
 * in place (y == x). */
START_TEST(test_offset_and_in_place)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 9, 11};
    size_t n = tu_numel4(s);
    const float p = 0.4f;
    tu_rng r = tu_rng_init(8);
    double *x = tu_alloc(n), *y0 = tu_alloc(n), *y3 = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.1, 2.0);
    tu_round_to_float(x, n);
    tu_guarded a, b, c;
    tu_guarded_from_at(&a, s, x, 0);
    tu_guarded_from_at(&b, s, x, 3);
    ck_assert_uint_ne(b.v.offset, 0);
    tu_guarded_from(&c, s, NULL);
    TU_OK(dsd_dropout_forward(ctx, p, SEED, STREAM, &a.v, &c.v));
    tu_download(&c.v, y0);
    TU_OK(dsd_dropout_forward(ctx, p, SEED, STREAM, &b.v, &b.v)); /* in place, offset 3 images */
    tu_download(&b.v, y3);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(y0[i] == y3[i], "element %zu: %g at offset 0, %g at offset %u", i, y0[i],
                      y3[i], (unsigned)b.v.offset);
    tu_guarded_free(&a);
    tu_guarded_free(&b);
    tu_guarded_free(&c);
    free(x);
    free(y0);
    free(y3);
}
END_TEST

/* Data-parallel slices (dsd_dropout_forward_at / backward_at): images 1..2 of
 * a batch of 4, run alone with first = 1 * C * H * W, get exactly the values
 * and gradients those images get in the whole batch; a counter past 2^32 is
 * DSD_ERR_SHAPE. */
START_TEST(test_slice_of_batch)
{
    dsd_context *ctx = tu_ctx();
    const int whole[4] = {4, 3, 5, 7}, part[4] = {2, 3, 5, 7};
    size_t n = tu_numel4(whole), per = (size_t)3 * 5 * 7, m = tu_numel4(part);
    const float p = 0.5f;
    tu_rng r = tu_rng_init(21);
    double *x = tu_alloc(n), *y = tu_alloc(n), *dx = tu_alloc(n), *ys = tu_alloc(m),
           *dxs = tu_alloc(m);
    tu_fill_nonzero(&r, x, n, 0.1, 2.0);
    tu_round_to_float(x, n);
    tu_guarded a, b, sa, sb;
    tu_guarded_from(&a, whole, x);
    tu_guarded_from(&b, whole, NULL);
    tu_guarded_from(&sa, part, x + per);
    tu_guarded_from(&sb, part, NULL);
    TU_OK(dsd_dropout_forward(ctx, p, SEED, STREAM, &a.v, &b.v));
    tu_download(&b.v, y);
    TU_OK(dsd_dropout_forward_at(ctx, p, SEED, STREAM, (uint32_t)per, &sa.v, &sb.v));
    tu_download(&sb.v, ys);
    for (size_t i = 0; i < m; i++)
        ck_assert_msg(ys[i] == y[per + i], "element %zu of the slice: %g, %g in the batch", i,
                      ys[i], y[per + i]);
    /* backward: dx += mask * dy * scale, from zero, with dy = x */
    TU_OK(dsd_tensor_fill(ctx, &b.v, 0.0f));
    TU_OK(dsd_dropout_backward(ctx, p, SEED, STREAM, &a.v, &b.v));
    tu_download(&b.v, dx);
    TU_OK(dsd_tensor_fill(ctx, &sb.v, 0.0f));
    TU_OK(dsd_dropout_backward_at(ctx, p, SEED, STREAM, (uint32_t)per, &sa.v, &sb.v));
    tu_download(&sb.v, dxs);
    for (size_t i = 0; i < m; i++)
        ck_assert_msg(dxs[i] == dx[per + i], "gradient %zu of the slice: %g, %g in the batch",
                      i, dxs[i], dx[per + i]);
    TU_EXPECT_CTX_ERROR(dsd_dropout_forward_at(ctx, p, SEED, STREAM, UINT32_MAX - 10, &sa.v, &sb.v),
                    DSD_ERR_SHAPE, "32-bit mask counter");
    tu_guarded_free(&a);
    tu_guarded_free(&b);
    tu_guarded_free(&sa);
    tu_guarded_free(&sb);
    free(x), free(y), free(dx), free(ys), free(dxs);
}
END_TEST

/* Masks for (seed, stream) and for each of the four halves changed: the same
 * pair gives identical masks, another pair differs in about 2p(1-p) of the
 * elements. */
START_TEST(test_streams)
{
    dsd_context *ctx = tu_ctx();
    const int *s = big_shape();
    size_t n = tu_numel4(s);
    const float p = 0.3f;
    static const uint64_t pairs[][2] = {
        {SEED, STREAM},
        {SEED, STREAM},
        {SEED ^ 1, STREAM},
        {SEED ^ UINT64_C(0x100000000), STREAM},
        {SEED, STREAM ^ 1},
        {SEED, STREAM ^ UINT64_C(0x100000000)},
    };
    enum { N_PAIRS = (int)(sizeof pairs / sizeof pairs[0]) };
    double *ones = tu_alloc(n);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1.0;
    unsigned char *mask[N_PAIRS];
    tu_guarded tx, ty;
    tu_guarded_from(&tx, s, ones);
    tu_guarded_from(&ty, s, NULL);
    double *y = tu_alloc(n);
    for (int k = 0; k < N_PAIRS; k++) {
        TU_OK(dsd_dropout_forward(ctx, p, pairs[k][0], pairs[k][1], &tx.v, &ty.v));
        tu_download(&ty.v, y);
        mask[k] = malloc(n);
        ck_assert(mask[k] != NULL);
        for (size_t i = 0; i < n; i++)
            mask[k][i] = y[i] != 0.0;
    }
    ck_assert_msg(!memcmp(mask[0], mask[1], n), "the same seed and stream gave different masks");
    for (int k = 0; k < N_PAIRS; k++) { /* each keeps 1 - p within 5 sigma */
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            kept += mask[k][i];
        double mean = (double)n * (1.0 - p), sigma = sqrt((double)n * p * (1.0 - p));
        ck_assert_msg(fabs((double)kept - mean) <= 5.0 * sigma, "pair %d: kept %zu of %zu, "
                      "expected %.1f +- %.1f", k, kept, n, mean, sigma);
    }
    for (int k = 2; k < N_PAIRS; k++) {
        size_t differ = 0;
        for (size_t i = 0; i < n; i++)
            differ += mask[0][i] != mask[k][i];
        double expect = 2.0 * p * (1.0 - p) * (double)n;
        ck_assert_msg((double)differ > 0.6 * expect, "pair %d: only %zu of %zu mask bits differ "
                      "(expected ~%.0f)", k, differ, n, expect);
    }
    for (int k = 0; k < N_PAIRS; k++)
        free(mask[k]);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    free(ones);
    free(y);
}
END_TEST

/* On the device too an element whose u equals p exactly is kept and one
 * with u just below p is dropped (a probability-2^-24 event with random p). */
START_TEST(test_device_boundary)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5};
    size_t n = tu_numel4(s);
    double *x = tu_alloc(n), *y = tu_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0;
    tu_guarded tx, ty;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, s, NULL);
    int tried = 0;
    for (uint32_t idx = 0; idx < n && tried < 3; idx++) {
        const uint32_t ctr[4] = {idx, (uint32_t)STREAM, (uint32_t)(STREAM >> 32), 0};
        const uint32_t key[2] = {(uint32_t)SEED, (uint32_t)(SEED >> 32)};
        uint32_t out[4];
        ref_philox4x32_10(ctr, key, out);
        float u = (float)((out[0] >> 8) / 16777216.0);
        if (!(u > 0.0f && u < 1.0f))
            continue;
        tried++;
        for (int above = 0; above < 2; above++) {
            float p = above ? nextafterf(u, 1.0f) : u;
            TU_OK(dsd_dropout_forward(ctx, p, SEED, STREAM, &tx.v, &ty.v));
            tu_download(&ty.v, y);
            ck_assert_msg((y[idx] != 0.0) == !above, "index %u, u = %.9g, p = %.9g: kept %d",
                          idx, (double)u, (double)p, y[idx] != 0.0);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg((y[i] != 0.0) == ref_dropout_keep(p, SEED, STREAM, (uint32_t)i),
                              "index %zu, p = %.9g", i, (double)p);
        }
    }
    ck_assert_int_eq(tried, 3);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    free(x);
    free(y);
}
END_TEST

/* p == 0: forward is an exact copy, backward adds dy exactly. */
START_TEST(test_p_zero)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 5, 7, 5};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(12);
    double *x = tu_alloc(n), *dx0 = tu_alloc(n), *got = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 1e-3, 100.0);
    tu_fill(&r, dx0, n, -1.0, 1.0);
    tu_round_to_float(x, n);
    tu_round_to_float(dx0, n);
    tu_guarded tx, ty, tdx;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, s, NULL);
    tu_guarded_from(&tdx, s, dx0);
    TU_OK(dsd_dropout_forward(ctx, 0.0f, SEED, STREAM, &tx.v, &ty.v));
    tu_download(&ty.v, got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == x[i], "element %zu: %.9g != %.9g", i, got[i], x[i]);
    TU_OK(dsd_dropout_backward(ctx, 0.0f, SEED, STREAM, &tx.v, &tdx.v));
    tu_download(&tdx.v, got);
    for (size_t i = 0; i < n; i++) {
        double want = (double)((float)dx0[i] + (float)x[i]);
        ck_assert_msg(got[i] == want, "element %zu: %.9g != %.9g", i, got[i], want);
    }
    tu_guarded_check(&ty, "p = 0 forward");
    tu_guarded_check(&tdx, "p = 0 backward");
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tdx);
    free(x);
    free(dx0);
    free(got);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward vs central finite differences */

typedef struct fd_state {
    double p, *x, *y, *g;
    size_t n;
} fd_state;

static double fd_loss(void *user)
{
    fd_state *s = user;
    ref_dropout_forward(s->p, SEED, STREAM, s->x, s->n, s->y);
    return tu_dot(s->y, s->g, s->n);
}

START_TEST(test_ref_grad)
{
    const int sh[4] = {2, 3, 7, 5};
    fd_state s = {.p = probs[_i], .n = tu_numel4(sh)};
    tu_rng r = tu_rng_init(60 + (uint64_t)_i);
    s.x = tu_alloc(s.n);
    s.y = tu_alloc(s.n);
    s.g = tu_alloc(s.n);
    tu_fill_nonzero(&r, s.x, s.n, 0.1, 2.0);
    tu_fill_nonzero(&r, s.g, s.n, 0.1, 2.0);
    double *num = tu_alloc(s.n), *ana = tu_alloc(s.n);
    tu_numeric_grad(fd_loss, &s, s.x, s.n, 1e-6, num);
    ref_dropout_backward(s.p, SEED, STREAM, s.g, s.n, ana);
    char what[96];
    snprintf(what, sizeof what, "dropout p=%g reference backward vs finite differences", s.p);
    tu_check_close(what, ana, num, s.n, 1e-6);
    free(s.x);
    free(s.y);
    free(s.g);
    free(num);
    free(ana);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors and determinism */

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5}, t[4] = {2, 3, 5, 7};
    size_t n = tu_numel4(s);
    double *x = tu_alloc(n), *got = tu_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0 + (double)i;
    tu_guarded tx, ty, tt;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, s, NULL);
    tu_guarded_from(&tt, t, NULL);
    static const float bad_p[] = {1.0f, 1.5f, -0.1f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof bad_p / sizeof bad_p[0]; k++) {
        ck_assert_int_eq(dsd_dropout_forward(ctx, bad_p[k], SEED, STREAM, &tx.v, &ty.v),
                         DSD_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(dsd_dropout_backward(ctx, bad_p[k], SEED, STREAM, &tx.v, &ty.v),
                         DSD_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(dsd_dropout_backward(ctx, bad_p[k], SEED, STREAM, &tx.v, NULL),
                         DSD_ERR_INVALID_ARGUMENT);
    }
    ck_assert_int_eq(dsd_dropout_forward(ctx, 0.5f, SEED, STREAM, &tx.v, &tt.v), DSD_ERR_SHAPE);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x3x7x5") &&
                      strstr(dsd_context_error(ctx)->message, "2x3x5x7"),
                  "%s", dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_dropout_backward(ctx, 0.5f, SEED, STREAM, &tt.v, &ty.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_dropout_forward(ctx, 0.5f, SEED, STREAM, NULL, &ty.v),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_dropout_forward(ctx, 0.5f, SEED, STREAM, &tx.v, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_dropout_backward(ctx, 0.5f, SEED, STREAM, &tx.v, NULL), DSD_OK);
    /* nothing was enqueued */
    tu_download(&ty.v, got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == TU_SENTINEL, "y[%zu] changed to %g", i, got[i]);
    tu_download(&tt.v, got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == TU_SENTINEL, "t[%zu] changed to %g", i, got[i]);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tt);
    free(x);
    free(got);
}
END_TEST

/* Forward + backward twice on the largest shape: bit-identical. */
START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const int *s = big_shape();
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(70);
    double *x = tu_alloc(n), *dx0 = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.1, 2.0);
    tu_fill(&r, dx0, n, -1.0, 1.0);
    float *out[2][2];
    for (int run = 0; run < 2; run++) {
        tu_guarded tx, ty, tdx;
        tu_guarded_from(&tx, s, x);
        tu_guarded_from(&ty, s, NULL);
        tu_guarded_from(&tdx, s, dx0);
        TU_OK(dsd_dropout_forward(ctx, 0.37f, SEED, STREAM, &tx.v, &ty.v));
        TU_OK(dsd_dropout_backward(ctx, 0.37f, SEED, STREAM, &ty.v, &tdx.v));
        for (int k = 0; k < 2; k++) {
            out[run][k] = malloc(n * sizeof(float));
            ck_assert(out[run][k] != NULL);
        }
        TU_OK(dsd_tensor_download(ctx, &ty.v, out[run][0], n));
        TU_OK(dsd_tensor_download(ctx, &tdx.v, out[run][1], n));
        tu_guarded_free(&tx);
        tu_guarded_free(&ty);
        tu_guarded_free(&tdx);
    }
    ck_assert_msg(!memcmp(out[0][0], out[1][0], n * sizeof(float)), "forward differs");
    ck_assert_msg(!memcmp(out[0][1], out[1][1], n * sizeof(float)), "backward differs");
    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 2; k++)
            free(out[run][k]);
    free(x);
    free(dx0);
}
END_TEST

int main(void)
{
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("dropout");
    TCase *tc = tcase_create("dropout");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_philox_kat);
    tcase_add_test(tc, test_host_mask);
    tcase_add_loop_test(tc, test_forward_backward, 0, N_PROBS * n_shapes);
    tcase_add_test(tc, test_offset_and_in_place);
    tcase_add_test(tc, test_slice_of_batch);
    tcase_add_test(tc, test_streams);
    tcase_add_test(tc, test_device_boundary);
    tcase_add_test(tc, test_p_zero);
    tcase_add_loop_test(tc, test_ref_grad, 0, N_PROBS);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
