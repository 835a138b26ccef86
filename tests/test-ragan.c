/*
 * test-ragan.c: the relativistic average GAN loss (src/model/ragan_loss.c)
 * against the double-precision reference in tests/ref/ragan.c, which is
 * itself checked against central finite differences.
 *
 * Checked, for both sides (discriminator and generator) on logit maps of the
 * discriminator's shape (N = 2, 1 x 7 x 5 and 1 x 1 x 1, and N = 1): the loss,
 * both gradients accumulated onto random pre-filled values, a NULL dreal (the
 * generator step), large logits (+-60) staying finite, the known value at
 * real == fake (2 log 2), determinism, and shape errors.
 */
#include "testutil.h"
#include "ref/ragan.h"

#include <math.h>
#include <stdlib.h>

static const int shapes[][4] = {{2, 1, 7, 5}, {2, 1, 1, 1}, {1, 1, 9, 11}, {3, 1, 4, 6}};

typedef struct ragan_case {
    int side;
    size_t n;
    double *real, *fake;
    double *which; /* the array finite differences perturb */
} ragan_case;

static double case_loss(void *user)
{
    const ragan_case *k = user;
    return ref_ragan_loss_forward(k->side, k->real, k->fake, k->n);
}

/* Device loss and gradients vs the reference for one shape and side. */
static void check_case(const int s[4], int side, double logit_scale, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(seed);
    double *real = tu_alloc(n), *fake = tu_alloc(n);
    tu_fill_nonzero(&r, real, n, 0.05 * logit_scale, logit_scale);
    tu_fill_nonzero(&r, fake, n, 0.05 * logit_scale, logit_scale);
    tu_round_to_float(real, n);
    tu_round_to_float(fake, n);
    const double scale = 1.7;

    /* the reference backward against finite differences (both arrays) */
    double *dr_ref = tu_alloc(n), *df_ref = tu_alloc(n), *num = tu_alloc(n);
    ref_ragan_loss_backward(side, 1.0, real, fake, n, dr_ref, df_ref);
    ragan_case k = {side, n, real, fake, NULL};
    if (logit_scale < 10) {
        tu_numeric_grad(case_loss, &k, real, n, 1e-5, num);
        tu_check_close("reference dreal vs finite differences", dr_ref, num, n, 1e-6);
        tu_numeric_grad(case_loss, &k, fake, n, 1e-5, num);
        tu_check_close("reference dfake vs finite differences", df_ref, num, n, 1e-6);
    }

    /* the device */
    dsd_tensor tr, tf, loss, dr, df;
    tu_tensor_from(&tr, s[0], s[1], s[2], s[3], real);
    tu_tensor_from(&tf, s[0], s[1], s[2], s[3], fake);
    tu_tensor(&loss, 1, 1, 1, 1);
    TU_OK(dsd_ragan_loss_forward(ctx, side, &tr, &tf, &loss));
    double want = ref_ragan_loss_forward(side, real, fake, n), got = tu_download_scalar(&loss);
    ck_assert_msg(isfinite(got), "loss is %g", got);
    tu_check_close("loss", &got, &want, 1, 1e-4);

    double *pre_r = tu_alloc(n), *pre_f = tu_alloc(n);
    tu_fill(&r, pre_r, n, -1, 1);
    tu_fill(&r, pre_f, n, -1, 1);
    tu_round_to_float(pre_r, n);
    tu_round_to_float(pre_f, n);
    tu_tensor_from(&dr, s[0], s[1], s[2], s[3], pre_r);
    tu_tensor_from(&df, s[0], s[1], s[2], s[3], pre_f);
    TU_OK(dsd_ragan_loss_backward(ctx, side, (float)scale, &tr, &tf, &dr, &df));
    for (size_t i = 0; i < n; i++) {
        dr_ref[i] *= scale;
        df_ref[i] *= scale;
    }
    tu_check_accum("dreal", &dr, pre_r, dr_ref, 1e-4);
    tu_check_accum("dfake", &df, pre_f, df_ref, 1e-4);

    /* the generator step passes no dreal: dfake must be the same */
    tu_upload(&df, pre_f);
    TU_OK(dsd_ragan_loss_backward(ctx, side, (float)scale, &tr, &tf, NULL, &df));
    tu_check_accum("dfake without dreal", &df, pre_f, df_ref, 1e-4);

    tu_tensor_free(&tr);
    tu_tensor_free(&tf);
    tu_tensor_free(&loss);
    tu_tensor_free(&dr);
    tu_tensor_free(&df);
    free(real);
    free(fake);
    free(dr_ref);
    free(df_ref);
    free(num);
    free(pre_r);
    free(pre_f);
}

START_TEST(test_matches_reference)
{
    for (int side = 0; side < 2; side++)
        for (int i = 0; i < TU_COUNT(shapes); i++)
            check_case(shapes[i], side, 3.0, 100 + 10 * (uint64_t)i + (uint64_t)side);
}
END_TEST

START_TEST(test_large_logits_stay_finite)
{
    for (int side = 0; side < 2; side++)
        check_case(shapes[0], side, 60.0, 7 + (uint64_t)side);
}
END_TEST

/* real == fake (all logits equal): every centred logit is 0, each BCE is
 * log 2, the loss 2 log 2 on both sides. */
START_TEST(test_equal_logits)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor a, loss;
    tu_tensor(&a, 2, 1, 3, 5);
    tu_tensor(&loss, 1, 1, 1, 1);
    TU_OK(dsd_tensor_fill(ctx, &a, 0.75f));
    for (int side = 0; side < 2; side++) {
        TU_OK(dsd_ragan_loss_forward(ctx, side, &a, &a, &loss));
        double got = tu_download_scalar(&loss), want = 2 * log(2.0);
        ck_assert_msg(fabs(got - want) < 1e-6, "side %d: %.9g, expected 2 log 2 = %.9g", side,
                      got, want);
    }
    tu_tensor_free(&a);
    tu_tensor_free(&loss);
}
END_TEST

START_TEST(test_deterministic)
{
    dsd_context *ctx = tu_ctx();
    const int *s = shapes[2];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(99);
    double *real = tu_alloc(n), *fake = tu_alloc(n), *g1 = tu_alloc(n), *g2 = tu_alloc(n);
    tu_fill(&r, real, n, -4, 4);
    tu_fill(&r, fake, n, -4, 4);
    dsd_tensor tr, tf, loss, df;
    tu_tensor_from(&tr, s[0], s[1], s[2], s[3], real);
    tu_tensor_from(&tf, s[0], s[1], s[2], s[3], fake);
    tu_tensor(&loss, 1, 1, 1, 1);
    tu_tensor(&df, s[0], s[1], s[2], s[3]);
    double l[2];
    double *g[2] = {g1, g2};
    for (int run = 0; run < 2; run++) {
        TU_OK(dsd_tensor_fill(ctx, &df, 0.0f));
        TU_OK(dsd_ragan_loss_forward(ctx, DSD_RAGAN_GENERATOR, &tr, &tf, &loss));
        TU_OK(dsd_ragan_loss_backward(ctx, DSD_RAGAN_GENERATOR, 1.0f, &tr, &tf, NULL, &df));
        l[run] = tu_download_scalar(&loss);
        tu_download(&df, g[run]);
    }
    ck_assert_msg(l[0] == l[1], "loss differs between runs: %.9g vs %.9g", l[0], l[1]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(g1[i] == g2[i], "dfake[%zu] differs between runs", i);
    tu_tensor_free(&tr);
    tu_tensor_free(&tf);
    tu_tensor_free(&loss);
    tu_tensor_free(&df);
    free(real);
    free(fake);
    free(g1);
    free(g2);
}
END_TEST

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor a, b, loss, big;
    tu_tensor(&a, 2, 1, 3, 5);
    tu_tensor(&b, 2, 1, 5, 3);
    tu_tensor(&loss, 1, 1, 1, 1);
    tu_tensor(&big, 1, 1, 1, 2);
    TU_OK(dsd_tensor_fill(ctx, &a, 0.5f));
    TU_OK(dsd_tensor_fill(ctx, &b, 0.5f));
    tu_expect_status(dsd_ragan_loss_forward(ctx, DSD_RAGAN_DISCRIMINATOR, &a, &b, &loss),
                     DSD_ERR_SHAPE, "forward with mismatched logits");
    tu_expect_status(dsd_ragan_loss_forward(ctx, DSD_RAGAN_DISCRIMINATOR, &a, &a, &big),
                     DSD_ERR_SHAPE, "forward into a 2-element loss");
    tu_expect_status(dsd_ragan_loss_backward(ctx, DSD_RAGAN_GENERATOR, 1.0f, &a, &a, NULL, &b),
                     DSD_ERR_SHAPE, "backward into a mis-shaped dfake");
    tu_expect_status(dsd_ragan_loss_forward(ctx, DSD_RAGAN_GENERATOR, NULL, &a, &loss),
                     DSD_ERR_INVALID_ARGUMENT, "forward with NULL real");
    tu_tensor_free(&a);
    tu_tensor_free(&b);
    tu_tensor_free(&loss);
    tu_tensor_free(&big);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ragan");
    TCase *tc = tcase_create("ragan");
    tcase_add_test(tc, test_matches_reference);
    tcase_add_test(tc, test_large_logits_stay_finite);
    tcase_add_test(tc, test_equal_logits);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
