/*
 * test-tensor.c: tensors. Upload/download round trips on odd shapes, batch
 * and reshape views (offsets reach the kernels), fill and copy, shape errors,
 * and the buffer pool (a repeated allocation pattern creates no new buffers).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 7, 5}, {3, 17, 9, 11}, {2, 5, 1, 13}};

START_TEST(test_round_trip)
{
    tu_rng r = tu_rng_init(11 + (uint64_t)_i);
    const int *s = shapes[_i];
    size_t n = (size_t)s[0] * s[1] * s[2] * s[3];
    double *x = tu_alloc(n), *y = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.1, 10.0);
    dsd_tensor t;
    tu_tensor_from(&t, s[0], s[1], s[2], s[3], x);
    ck_assert_uint_eq(dsd_tensor_numel(&t), n);
    tu_download(&t, y);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg((float)x[i] == (float)y[i], "element %zu: %g != %g", i, x[i], y[i]);
    tu_tensor_free(&t);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_views_fill_copy)
{
    dsd_context *ctx = tu_ctx();
    tu_rng r = tu_rng_init(5);
    const int N = 3, C = 5, H = 7, W = 9;
    size_t n = (size_t)N * C * H * W, per = (size_t)C * H * W;
    double *x = tu_alloc(n), *y = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.5, 2.0);
    dsd_tensor t, u;
    tu_tensor_from(&t, N, C, H, W, x);

    /* fill through a view of the middle image only */
    dsd_tensor mid = dsd_tensor_view_batch(&t, 1, 1);
    ck_assert_int_eq(mid.n, 1);
    ck_assert_uint_eq(mid.offset, per);
    TU_OK(dsd_tensor_fill(ctx, &mid, -3.0f));
    tu_download(&t, y);
    for (size_t i = 0; i < n; i++) {
        double want = (i >= per && i < 2 * per) ? -3.0 : (double)(float)x[i];
        ck_assert_msg(y[i] == want, "element %zu: %g != %g", i, y[i], want);
    }

    /* copy image 2 into image 0 of another tensor through views */
    tu_tensor(&u, N, C, H, W);
    TU_OK(dsd_tensor_fill(ctx, &u, 7.0f));
    dsd_tensor src = dsd_tensor_view_batch(&t, 2, 1), dst = dsd_tensor_view_batch(&u, 0, 1);
    TU_OK(dsd_tensor_copy(ctx, &dst, &src));
    tu_download(&u, y);
    for (size_t i = 0; i < n; i++) {
        double want = i < per ? (double)(float)x[2 * per + i] : 7.0;
        ck_assert_msg(y[i] == want, "element %zu: %g != %g", i, y[i], want);
    }

    /* download through a view reads only that image */
    double *img = tu_alloc(per);
    tu_download(&src, img);
    for (size_t i = 0; i < per; i++)
        ck_assert(img[i] == (double)(float)x[2 * per + i]);

    dsd_tensor flat;
    TU_OK(dsd_tensor_view_reshape(ctx, &t, 1, 1, 1, (int)n, &flat));
    ck_assert_int_eq(dsd_tensor_view_reshape(ctx, &t, 1, 1, 1, (int)n + 1, &flat), DSD_ERR_SHAPE);

    /* a view out of range is empty and rejected by ops */
    dsd_tensor bad = dsd_tensor_view_batch(&t, 2, 2);
    ck_assert_int_eq(bad.n, 0);
    ck_assert_int_ne(dsd_tensor_fill(ctx, &bad, 1.0f), DSD_OK);

    tu_tensor_free(&t);
    tu_tensor_free(&u);
    free(x);
    free(y);
    free(img);
}
END_TEST

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor t;
    ck_assert_int_eq(dsd_tensor_init(ctx, &t, 0, 3, 4, 4), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_tensor_init(ctx, &t, 1, -3, 4, 4), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_tensor_init(ctx, &t, 100000, 100000, 100000, 3), DSD_ERR_SHAPE);
    tu_tensor(&t, 1, 2, 3, 5);
    float buf[31];
    ck_assert_int_eq(dsd_tensor_upload(ctx, &t, buf, 31), DSD_ERR_SHAPE);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "1x2x3x5"), "%s",
                  dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_tensor_download(ctx, &t, buf, 29), DSD_ERR_SHAPE);
    dsd_tensor u;
    tu_tensor(&u, 1, 2, 5, 3);
    ck_assert_int_eq(dsd_tensor_copy(ctx, &u, &t), DSD_ERR_SHAPE);
    tu_tensor_free(&t);
    tu_tensor_free(&u);
}
END_TEST

START_TEST(test_pool_reuse)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor a, b, c;
    /* one "step" */
    for (int step = 0; step < 3; step++) {
        tu_tensor(&a, 2, 3, 33, 17);
        tu_tensor(&b, 1, 64, 9, 9);
        tu_tensor(&c, 2, 3, 33, 17);
        TU_OK(dsd_tensor_fill(ctx, &c, 1.0f));
        unsigned created = dsd_pool_get_stats(ctx).buffers_created;
        tu_tensor_free(&a);
        tu_tensor_free(&b);
        tu_tensor_free(&c);
        if (step == 0)
            continue;
        /* steps after the first reuse every buffer */
        static unsigned first;
        if (step == 1)
            first = created;
        ck_assert_uint_eq(created, first);
    }
    dsd_pool_stats s = dsd_pool_get_stats(ctx);
    ck_assert_uint_ge(s.reuses, 6);
    ck_assert_uint_eq(s.bytes_in_use, 0);
    dsd_pool_trim(ctx);
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_cached, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tensor");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_round_trip, 0, (int)(sizeof shapes / sizeof shapes[0]));
    tcase_add_test(tc, test_views_fill_copy);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_pool_reuse);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
