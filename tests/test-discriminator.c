/*
 * test-discriminator.c: the PatchGAN discriminator (src/model/discriminator.c)
 * against a double-precision reference network composed here from the op
 * references in tests/ref (conv2d, instance norm, LeakyReLU).
 *
 * Checked: logits, dx and every parameter gradient (accumulated on top of
 * random pre-filled values) to 1e-4 relative, with and without affine norms
 * and for several depths; two training forwards (real and fake images) kept
 * on two tapes and backpropagated in reverse order accumulate the sum of
 * both gradients; param_grads = 0 leaves the gradients untouched; the
 * reference backward against central finite differences; parameter counts;
 * output sizes; inference == training bit for bit; determinism; no leaked
 * device memory; shape, tape and config errors.
 *
 * Shapes: base_width 8 (channels 8/16/32/64), N = 2, 20 x 24 images
 * (logits 6 x 6; the deepest norms see 4 x 4 and 5 x 5 planes).
 */
#include "testutil.h"
#include "ref/activation.h"
#include "ref/conv2d.h"
#include "ref/discriminator.h"
#include "ref/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dsd_discriminator_config small_config(int n_layers, int affine)
{
    dsd_discriminator_config c = dsd_discriminator_default_config();
    c.base_width = 8;
    c.n_layers = n_layers;
    c.norm_affine = affine;
    return c;
}

/* The bias of a conv followed by an instance norm: the norm subtracts each
 * plane's mean, so its gradient is exactly zero (PyTorch keeps the bias all
 * the same, and so do we, for checkpoint compatibility). */
static int bias_before_norm(const dsd_discriminator_config *c, const dsd_param_info *e)
{
    int layer;
    char rest[32];
    if (sscanf(e->name, "layers.%d.%31s", &layer, rest) != 2)
        return 0;
    return !strcmp(rest, "conv.bias") && layer >= 1 && layer <= c->n_layers;
}

/* Per-parameter comparison of got - prefill with ref. */
static void check_param_grads(const dsd_discriminator_config *c, const dsd_params *table,
                              const double *got, const double *prefill, const double *ref,
                              double tol)
{
    for (size_t i = 0; i < table->n; i++) {
        const dsd_param_info *e = &table->info[i];
        double *delta = tu_alloc(e->numel);
        for (size_t j = 0; j < e->numel; j++)
            delta[j] = got[e->offset + j] - (prefill ? prefill[e->offset + j] : 0.0);
        char what[128];
        snprintf(what, sizeof what, "dL/d %s", e->name);
        if (bias_before_norm(c, e)) {
            /* zero up to rounding: the float sum of a plane's gradient, on top
             * of a prefill of magnitude 1 */
            for (size_t j = 0; j < e->numel; j++) {
                ck_assert_msg(fabs(ref[e->offset + j]) < 1e-12, "%s: reference %g, not 0", what,
                              ref[e->offset + j]);
                ck_assert_msg(fabs(delta[j]) < 1e-5, "%s[%zu]: %g, expected 0", what, j,
                              delta[j]);
            }
        } else {
            tu_check_close(what, delta, ref + e->offset, e->numel, tol);
        }
        free(delta);
    }
}

static double *random_prefill(size_t n, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    double *v = tu_alloc(n);
    tu_fill(&r, v, n, -1.0, 1.0);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)v[i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* Tests */

START_TEST(test_param_counts_and_sizes)
{
    dsd_discriminator_config c = dsd_discriminator_default_config();
    ck_assert_int_eq(c.base_width, 64);
    ck_assert_int_eq(c.n_layers, 3);
    ck_assert_int_eq(c.in_channels, 3);
    ck_assert_int_eq(c.norm_affine, 0);
    size_t def = dsd_discriminator_param_count(&c);
    /* 64*3*16+64, 128*64*16+128, 256*128*16+256, 512*256*16+512, 1*512*16+1 */
    ck_assert_uint_eq(def, 3136 + 131200 + 524544 + 2097664 + 8193);
    ck_assert_uint_eq(def, 2764737);
    dsd_discriminator_config v = c;
    v.norm_affine = 1;
    size_t aff = dsd_discriminator_param_count(&v);
    ck_assert_uint_eq(aff, def + 2 * (128 + 256 + 512));
    v = c;
    v.n_layers = 2; /* pix2pix n_layers = 2: 64, 128 (s2), 256 (s1), 1 */
    size_t l2 = dsd_discriminator_param_count(&v);
    ck_assert_uint_eq(l2, 3136 + 131200 + 524544 + (256 * 16 + 1));
    v.n_layers = 5; /* widths cap at 8 B = 512 */
    size_t l5 = dsd_discriminator_param_count(&v);
    ck_assert_uint_eq(l5, 3136 + 131200 + 524544 + 2097664 + 2 * (512 * 512 * 16 + 512) +
                              (512 * 16 + 1));
    printf("discriminator parameters: default %zu, affine norms %zu, n_layers 2 %zu, "
           "n_layers 5 %zu\n", def, aff, l2, l5);

    int oh, ow;
    TU_OK(dsd_discriminator_output_size(&c, 256, 256, &oh, &ow, NULL));
    ck_assert(oh == 35 && ow == 35);
    TU_OK(dsd_discriminator_output_size(&c, 20, 24, &oh, &ow, NULL));
    ck_assert(oh == 6 && ow == 6);
    TU_OK(dsd_discriminator_output_size(&c, 720, 1280, &oh, &ow, NULL));
    ck_assert(oh == 93 && ow == 163);
    dsd_error err;
    ck_assert_int_eq(dsd_discriminator_output_size(&c, 1, 1, &oh, &ow, &err), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_output_size(&c, 0, 8, &oh, &ow, &err), DSD_ERR_SHAPE);

    dsd_discriminator_config bad[4] = {c, c, c, c};
    bad[0].n_layers = 0;
    bad[1].n_layers = DSD_DISCRIMINATOR_MAX_LAYERS + 1;
    bad[2].eps = 0.0f;
    bad[3].slope = -1.0f;
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(dsd_discriminator_param_count(&bad[i]), 0);
}
END_TEST

START_TEST(test_table_and_views)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(3, 1);
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ck_assert_int_eq(d.n_conv, 5);
    const int widths[6] = {3, 8, 16, 32, 64, 1};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(d.width[i], widths[i]);
    ck_assert_uint_eq(d.params.n, 5 * 2 + 3 * 2);
    size_t next = 0;
    for (size_t i = 0; i < d.params.n; i++) {
        ck_assert_uint_eq(d.params.info[i].offset, next);
        next += d.params.info[i].numel;
    }
    ck_assert_uint_eq(next, d.params.count);
    ck_assert_uint_eq(d.params.count, dsd_discriminator_param_count(&cfg));
    const dsd_param_info *e = dsd_params_find(&d.params, "layers.2.norm.weight");
    ck_assert(e && e->ndim == 1 && e->shape[0] == 32 && e->init == DSD_PARAM_INIT_ONES);
    ck_assert(d.w[2].norm_weight.buf == d.params.values.buf);
    ck_assert_uint_eq(d.w[2].norm_weight.offset, e->offset);
    ck_assert(d.grad[2].norm_weight.buf == d.params.grads.buf);
    ck_assert_ptr_null(d.w[0].norm_weight.buf); /* no norm after the first conv */
    ck_assert_ptr_null(d.w[4].norm_weight.buf);
    ck_assert_ptr_null(dsd_params_find(&d.params, "layers.0.norm.weight"));
    e = dsd_params_find(&d.params, "layers.4.conv.weight");
    ck_assert(e && e->shape[0] == 1 && e->shape[1] == 64 && e->shape[2] == 4 && e->shape[3] == 4);

    /* init: convs uniform within 1/sqrt(fan_in), norms 1 and 0 */
    TU_OK(dsd_discriminator_init_weights(ctx, &d, 7));
    double *v = tu_alloc(d.params.count);
    tu_download(&d.params.values, v);
    for (size_t i = 0; i < d.params.n; i++) {
        const dsd_param_info *p = &d.params.info[i];
        for (size_t j = 0; j < p->numel; j++) {
            double x = v[p->offset + j];
            if (p->init == DSD_PARAM_INIT_ONES)
                ck_assert(x == 1.0);
            else if (p->init == DSD_PARAM_INIT_ZEROS)
                ck_assert(x == 0.0);
            else
                ck_assert_msg(fabs(x) <= 1.0 / sqrt((double)p->fan_in) && x != 0.0, "%s[%zu] = %g",
                              p->name, j, x);
        }
    }
    free(v);
    dsd_discriminator_free(ctx, &d);

    cfg = small_config(3, 0);
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ck_assert_uint_eq(d.params.n, 10);
    ck_assert_ptr_null(d.w[1].norm_weight.buf);
    dsd_discriminator_free(ctx, &d);
}
END_TEST

/* Forward + backward of one case against the reference. */
static void check_case(int n_layers, int affine, int in_channels, int n, int h, int w,
                       uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(n_layers, affine);
    cfg.in_channels = in_channels;
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ref_disc_case k;
    ref_disc_case_make(&k, &d, n, h, w, seed);
    size_t ni = ref_disc_image_numel(&k), nl = ref_disc_logits_numel(&k);

    ref_disc_acts t;
    ref_disc_forward(&k, k.x, &t);
    double *rdx = tu_alloc(ni), *rdp = tu_alloc(k.count);
    ref_disc_backward(&k, k.x, &t, k.g, rdx, rdp);

    tu_upload(&d.params.values, k.p);
    double *gp = random_prefill(k.count, seed + 1), *dxp = random_prefill(ni, seed + 2);
    tu_upload(&d.params.grads, gp);
    dsd_tensor x, logits, dl, dx;
    tu_tensor_from(&x, n, in_channels, h, w, k.x);
    tu_tensor(&logits, n, 1, k.oh, k.ow);
    tu_tensor_from(&dl, n, 1, k.oh, k.ow, k.g);
    tu_tensor_from(&dx, n, in_channels, h, w, dxp);
    dsd_discriminator_tape tape;
    memset(&tape, 0, sizeof tape);
    TU_OK(dsd_discriminator_forward(ctx, &d, &x, &logits, &tape));
    ck_assert(tape.pending);
    char what[96];
    snprintf(what, sizeof what, "logits (L %d, affine %d)", n_layers, affine);
    tu_check_tensor(what, &logits, t.a[t.nconv - 1], 1e-4);
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape, &dl, &dx, 1));
    ck_assert(!tape.pending);
    double *got = tu_alloc(k.count), *gdx = tu_alloc(ni);
    tu_download(&d.params.grads, got);
    tu_download(&dx, gdx);
    for (size_t i = 0; i < ni; i++)
        gdx[i] -= dxp[i];
    tu_check_close("dL/dx", gdx, rdx, ni, 1e-4);
    check_param_grads(&d.cfg, &d.params, got, gp, rdp, 1e-4);
    (void)nl;
    dsd_discriminator_tape_free(ctx, &tape);

    free(got);
    free(gdx);
    free(gp);
    free(dxp);
    free(rdx);
    free(rdp);
    ref_disc_acts_free(&t);
    tu_tensor_free(&x);
    tu_tensor_free(&logits);
    tu_tensor_free(&dl);
    tu_tensor_free(&dx);
    ref_disc_case_free(&k);
    dsd_discriminator_free(ctx, &d);
}

START_TEST(test_matches_reference)
{
    if (tu_small()) {
        check_case(2, 1, 3, 2, 9, 7, 11);
        return;
    }
    check_case(3, 0, 3, 2, 20, 24, 11);  /* the paper's layout */
    check_case(3, 1, 3, 2, 21, 17, 12);  /* affine norms, odd sizes */
    check_case(1, 0, 6, 1, 11, 9, 13);   /* one layer, six input channels, N = 1 */
    check_case(4, 1, 3, 2, 26, 30, 14);  /* deeper: stride-1 layer after four */
}
END_TEST

/* Real and fake images in one step: two tapes, backwards in reverse order. */
START_TEST(test_two_forwards_accumulate)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(tu_small() ? 2 : 3, 1);
    int h = tu_small() ? 9 : 20, w = tu_small() ? 7 : 24;
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ref_disc_case real, fake;
    ref_disc_case_make(&real, &d, 2, h, w, 21);
    ref_disc_case_make(&fake, &d, 2, h, w, 22);
    memcpy(fake.p, real.p, real.count * sizeof(double)); /* one network */
    size_t ni = ref_disc_image_numel(&real), np = real.count;

    ref_disc_acts tr, tf;
    ref_disc_forward(&real, real.x, &tr);
    ref_disc_forward(&fake, fake.x, &tf);
    double *rdp = tu_alloc(np), *rdx_real = tu_alloc(ni), *rdx_fake = tu_alloc(ni);
    ref_disc_backward(&real, real.x, &tr, real.g, rdx_real, rdp);
    ref_disc_backward(&fake, fake.x, &tf, fake.g, rdx_fake, rdp);

    tu_upload(&d.params.values, real.p);
    double *gp = random_prefill(np, 23);
    tu_upload(&d.params.grads, gp);
    dsd_tensor xr, xf, lr, lf, gr, gf, dxr, dxf;
    tu_tensor_from(&xr, 2, 3, h, w, real.x);
    tu_tensor_from(&xf, 2, 3, h, w, fake.x);
    tu_tensor(&lr, 2, 1, real.oh, real.ow);
    tu_tensor(&lf, 2, 1, real.oh, real.ow);
    tu_tensor_from(&gr, 2, 1, real.oh, real.ow, real.g);
    tu_tensor_from(&gf, 2, 1, real.oh, real.ow, fake.g);
    TU_OK(dsd_tensor_init_zero(ctx, &dxr, 2, 3, h, w));
    TU_OK(dsd_tensor_init_zero(ctx, &dxf, 2, 3, h, w));
    dsd_discriminator_tape tape_real = {0}, tape_fake = {0};
    TU_OK(dsd_discriminator_forward(ctx, &d, &xr, &lr, &tape_real));
    TU_OK(dsd_discriminator_forward(ctx, &d, &xf, &lf, &tape_fake));
    tu_check_tensor("real logits", &lr, tr.a[tr.nconv - 1], 1e-4);
    tu_check_tensor("fake logits", &lf, tf.a[tf.nconv - 1], 1e-4);
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape_fake, &gf, &dxf, 1));
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape_real, &gr, &dxr, 1));
    tu_check_tensor("dL/dx real", &dxr, rdx_real, 1e-4);
    tu_check_tensor("dL/dx fake", &dxf, rdx_fake, 1e-4);
    double *got = tu_alloc(np);
    tu_download(&d.params.grads, got);
    check_param_grads(&d.cfg, &d.params, got, gp, rdp, 1e-4);

    /* param_grads = 0: the gradient arena is left bit for bit as it was,
     * dx still accumulates */
    float *before = malloc(np * sizeof *before), *after = malloc(np * sizeof *after);
    TU_OK(dsd_tensor_download(ctx, &d.params.grads, before, np));
    TU_OK(dsd_tensor_fill(ctx, &dxf, 0.0f));
    TU_OK(dsd_discriminator_forward(ctx, &d, &xf, &lf, &tape_fake));
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape_fake, &gf, &dxf, 0));
    TU_OK(dsd_tensor_download(ctx, &d.params.grads, after, np));
    ck_assert_msg(memcmp(before, after, np * sizeof *before) == 0,
                  "param_grads = 0 changed the gradients");
    tu_check_tensor("dL/dx fake (no param grads)", &dxf, rdx_fake, 1e-4);
    /* neither dx nor param grads: nothing to do, the tape is consumed */
    TU_OK(dsd_discriminator_forward(ctx, &d, &xf, &lf, &tape_fake));
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape_fake, &gf, NULL, 0));
    ck_assert(!tape_fake.pending);

    free(before);
    free(after);
    free(got);
    free(gp);
    free(rdp);
    free(rdx_real);
    free(rdx_fake);
    ref_disc_acts_free(&tr);
    ref_disc_acts_free(&tf);
    dsd_tensor *all[] = {&xr, &xf, &lr, &lf, &gr, &gf, &dxr, &dxf};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    ref_disc_case_free(&real);
    ref_disc_case_free(&fake);
    dsd_discriminator_tape_free(ctx, &tape_real);
    dsd_discriminator_tape_free(ctx, &tape_fake);
    dsd_discriminator_free(ctx, &d);
}
END_TEST

START_TEST(test_reference_finite_differences)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(3, 1);
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ref_disc_case k;
    ref_disc_case_make(&k, &d, 2, 20, 24, 31);
    ref_disc_acts t;
    ref_disc_forward(&k, k.x, &t);
    size_t ni = ref_disc_image_numel(&k);
    double *rdx = tu_alloc(ni), *rdp = tu_alloc(k.count);
    ref_disc_backward(&k, k.x, &t, k.g, rdx, rdp);
    ref_disc_acts_free(&t);
    /* three elements of every parameter tensor */
    size_t checked = 0;
    for (size_t i = 0; i < d.params.n; i++) {
        const dsd_param_info *e = &d.params.info[i];
        double fd[3], an[3];
        for (int j = 0; j < 3; j++) {
            size_t idx = e->offset + ((size_t)j * 7919 + 3) % e->numel;
            tu_numeric_grad(ref_disc_loss, &k, &k.p[idx], 1, 1e-6, &fd[j]);
            an[j] = rdp[idx];
        }
        char what[128];
        snprintf(what, sizeof what, "reference dL/d %s vs finite differences", e->name);
        if (bias_before_norm(&d.cfg, e))
            for (int j = 0; j < 3; j++)
                ck_assert_msg(fabs(an[j]) < 1e-12 && fabs(fd[j]) < 1e-7, "%s: %g and %g, "
                              "expected 0", what, an[j], fd[j]);
        else
            tu_check_close(what, an, fd, 3, 1e-5);
        checked += 3;
    }
    ck_assert_uint_ge(checked, 40);
    enum { NXS = 16 };
    double fdx[NXS], anx[NXS];
    for (int j = 0; j < NXS; j++) {
        size_t i = (size_t)j * (ni / NXS) + 7;
        tu_numeric_grad(ref_disc_loss, &k, &k.x[i], 1, 1e-6, &fdx[j]);
        anx[j] = rdx[i];
    }
    tu_check_close("reference dL/dx vs finite differences", anx, fdx, NXS, 1e-5);
    free(rdx);
    free(rdp);
    ref_disc_case_free(&k);
    dsd_discriminator_free(ctx, &d);
}
END_TEST

START_TEST(test_inference_deterministic_no_leaks)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(tu_small() ? 2 : 3, 0);
    int h = tu_small() ? 9 : 20, w = tu_small() ? 7 : 24;
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    ref_disc_case k;
    ref_disc_case_make(&k, &d, 2, h, w, 41);
    size_t ni = ref_disc_image_numel(&k), nl = ref_disc_logits_numel(&k), np = k.count;
    tu_upload(&d.params.values, k.p);
    dsd_tensor x, l1, l2, gl, dx;
    tu_tensor_from(&x, 2, 3, h, w, k.x);
    tu_tensor(&l1, 2, 1, k.oh, k.ow);
    tu_tensor(&l2, 2, 1, k.oh, k.ow);
    tu_tensor_from(&gl, 2, 1, k.oh, k.ow, k.g);
    tu_tensor(&dx, 2, 3, h, w);
    float *run[2];
    for (int r = 0; r < 2; r++) {
        TU_OK(dsd_context_finish(ctx));
        uint64_t before = dsd_pool_get_stats(ctx).bytes_in_use;
        TU_OK(dsd_tensor_fill(ctx, &d.params.grads, 0.0f));
        TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));
        dsd_discriminator_tape tape = {0};
        TU_OK(dsd_discriminator_forward(ctx, &d, &x, &l1, &tape));
        uint64_t with_tape = dsd_pool_get_stats(ctx).bytes_in_use;
        ck_assert_uint_gt(with_tape, before);
        TU_OK(dsd_discriminator_forward(ctx, &d, &x, &l2, NULL));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape);
        TU_OK(dsd_discriminator_backward(ctx, &d, &tape, &gl, &dx, 1));
        /* the backward allocates nothing; the arena stays with the tape */
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape);
        run[r] = malloc((2 * nl + ni + np) * sizeof(float));
        TU_OK(dsd_tensor_download(ctx, &l1, run[r], nl));
        TU_OK(dsd_tensor_download(ctx, &l2, run[r] + nl, nl));
        TU_OK(dsd_tensor_download(ctx, &dx, run[r] + 2 * nl, ni));
        TU_OK(dsd_tensor_download(ctx, &d.params.grads, run[r] + 2 * nl + ni, np));
        ck_assert_msg(memcmp(run[r], run[r] + nl, nl * sizeof(float)) == 0,
                      "inference and training logits differ");
        /* a tape that is never backpropagated is freed by tape_free */
        TU_OK(dsd_discriminator_forward(ctx, &d, &x, &l1, &tape));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape); /* arena reused */
        dsd_discriminator_tape_free(ctx, &tape);
        ck_assert(!tape.pending);
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before); /* all given back */
    }
    ck_assert_msg(memcmp(run[0], run[1], (2 * nl + ni + np) * sizeof(float)) == 0,
                  "two runs of the discriminator differ");
    free(run[0]);
    free(run[1]);
    dsd_tensor *all[] = {&x, &l1, &l2, &gl, &dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    ref_disc_case_free(&k);
    dsd_discriminator_free(ctx, &d);
}
END_TEST

/* One training step of d on a random (n, 3, h, w) image with tape (the
 * gradients from zero): logits, dx and the parameter gradients, malloc'd. */
static float *train_step(dsd_discriminator *d, dsd_discriminator_tape *tape, int n, int h, int w,
                         size_t *count)
{
    dsd_context *ctx = tu_ctx();
    int oh, ow;
    dsd_error err;
    TU_HOST_OK(dsd_discriminator_output_size(&d->cfg, h, w, &oh, &ow, &err), err);
    size_t ni = (size_t)n * 3 * h * w, nl = (size_t)n * oh * ow, np = d->params.count;
    tu_rng rng = tu_rng_init(77 + (uint64_t)h);
    double *hx = tu_alloc(ni), *hg = tu_alloc(nl);
    tu_fill(&rng, hx, ni, -1.0, 1.0);
    tu_fill(&rng, hg, nl, -1.0, 1.0);
    dsd_tensor x, logits, dl, dx;
    tu_tensor_from(&x, n, 3, h, w, hx);
    tu_tensor_from(&dl, n, 1, oh, ow, hg);
    tu_tensor(&logits, n, 1, oh, ow);
    tu_tensor(&dx, n, 3, h, w);
    TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &d->params.grads, 0.0f));
    TU_OK(dsd_discriminator_forward(ctx, d, &x, &logits, tape));
    TU_OK(dsd_discriminator_backward(ctx, d, tape, &dl, &dx, 1));
    float *out = malloc((nl + ni + np) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    TU_OK(dsd_tensor_download(ctx, &logits, out, nl));
    TU_OK(dsd_tensor_download(ctx, &dx, out + nl, ni));
    TU_OK(dsd_tensor_download(ctx, &d->params.grads, out + nl + ni, np));
    *count = nl + ni + np;
    tu_tensor_free(&x);
    tu_tensor_free(&logits);
    tu_tensor_free(&dl);
    tu_tensor_free(&dx);
    free(hx);
    free(hg);
    return out;
}

/* dsd_discriminator_plan names every conv and places the pass's memory; a
 * tape reused for another shape or moved to another network re-plans, so
 * what it computes equals a fresh tape's (a stale plan whose slots happen to
 * have the right sizes, as for a transposed image, would alias memory). */
START_TEST(test_plan_and_tape_reuse)
{
    dsd_context *ctx = tu_ctx();
    dsd_error err;
    dsd_discriminator_config cfg = small_config(2, 1), wide = cfg;
    wide.base_width = 12;
    dsd_network_plan train = {0}, infer = {0};
    TU_HOST_OK(dsd_discriminator_plan(&cfg, 2, 20, 24, 1, &train, &err), err);
    TU_HOST_OK(dsd_discriminator_plan(&cfg, 2, 20, 24, 0, &infer, &err), err);
    ck_assert_uint_eq(train.n_layers, (size_t)cfg.n_layers + 2);
    ck_assert_uint_eq(infer.n_layers, (size_t)cfg.n_layers + 2);
    for (size_t i = 0; i < train.n_layers; i++) {
        char want[DSD_PARAM_NAME_MAX];
        snprintf(want, sizeof want, "layers.%zu.conv", i);
        ck_assert_str_eq(train.layers[i].name, want);
    }
    ck_assert(dsd_network_plan_macs(&train) > 0);
    ck_assert(dsd_network_plan_macs(&train) == dsd_network_plan_macs(&infer));
    ck_assert_uint_lt(infer.arena_floats, train.arena_floats); /* nothing kept */
    ck_assert_int_eq(dsd_discriminator_plan(&cfg, 1, 1, 1, 1, &infer, &err), DSD_ERR_SHAPE);

    dsd_discriminator d, d2;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    TU_OK(dsd_discriminator_init_weights(ctx, &d, 3));
    TU_OK(dsd_discriminator_init(ctx, &d2, &wide));
    TU_OK(dsd_discriminator_init_weights(ctx, &d2, 4));
    struct {
        dsd_discriminator *d;
        int n, h, w;
    } runs[] = {{&d, 2, 20, 24}, {&d, 2, 24, 20}, {&d, 1, 17, 13}, {&d, 2, 20, 24},
                {&d2, 2, 20, 24}};
    dsd_discriminator_tape shared = {0};
    for (int r = 0; r < TU_COUNT(runs); r++) {
        size_t n1, n2;
        float *got = train_step(runs[r].d, &shared, runs[r].n, runs[r].h, runs[r].w, &n1);
        TU_HOST_OK(dsd_discriminator_plan(&runs[r].d->cfg, runs[r].n, runs[r].h, runs[r].w, 1,
                                          &train, &err), err);
        ck_assert_uint_eq(shared.plan.n_slots, train.n_slots);
        ck_assert_uint_eq(shared.plan.arena_floats, train.arena_floats);
        ck_assert_uint_ge(shared.arena.capacity, train.arena_floats * sizeof(float));
        dsd_discriminator_tape fresh = {0};
        float *want = train_step(runs[r].d, &fresh, runs[r].n, runs[r].h, runs[r].w, &n2);
        dsd_discriminator_tape_free(ctx, &fresh);
        ck_assert_uint_eq(n1, n2);
        ck_assert_msg(memcmp(got, want, n1 * sizeof *got) == 0, "run %d (%dx3x%dx%d): the "
                      "reused tape and a fresh one differ", r, runs[r].n, runs[r].h, runs[r].w);
        free(got);
        free(want);
    }
    dsd_discriminator_tape_free(ctx, &shared);
    dsd_network_plan_free(&train);
    dsd_network_plan_free(&infer);
    dsd_discriminator_free(ctx, &d);
    dsd_discriminator_free(ctx, &d2);
}
END_TEST

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_config(3, 0);
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
    dsd_tensor x, x4, tiny, logits, wrong, ltiny;
    tu_tensor(&x, 2, 3, 20, 24);
    TU_OK(dsd_tensor_fill(ctx, &x, 0.5f));
    tu_tensor(&x4, 2, 4, 20, 24);
    tu_tensor(&tiny, 1, 3, 1, 1);
    tu_tensor(&logits, 2, 1, 6, 6);
    tu_tensor(&wrong, 2, 1, 6, 5);
    tu_tensor(&ltiny, 1, 1, 3, 3);
    dsd_discriminator_tape tape = {0};
    ck_assert_int_eq(dsd_discriminator_forward(ctx, &d, &x4, &logits, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_forward(ctx, &d, &x, &wrong, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_forward(ctx, &d, &tiny, &ltiny, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_forward(ctx, &d, &x, &x, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_backward(ctx, &d, &tape, &logits, NULL, 1),
                     DSD_ERR_INVALID_ARGUMENT);
    TU_OK(dsd_discriminator_forward(ctx, &d, &x, &logits, &tape));
    /* a pending tape is not overwritten */
    ck_assert_int_eq(dsd_discriminator_forward(ctx, &d, &x, &logits, &tape),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert(tape.pending);
    ck_assert_int_eq(dsd_discriminator_backward(ctx, &d, &tape, &wrong, NULL, 1), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_discriminator_backward(ctx, &d, &tape, &logits, &x4, 1), DSD_ERR_SHAPE);
    ck_assert(tape.pending);
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape, &logits, NULL, 1));
    ck_assert_int_eq(dsd_discriminator_backward(ctx, &d, &tape, &logits, NULL, 1),
                     DSD_ERR_INVALID_ARGUMENT);

    dsd_discriminator bad;
    dsd_discriminator_config c = cfg;
    c.n_layers = 0;
    ck_assert_int_eq(dsd_discriminator_init(ctx, &bad, &c), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bad.params.values.buf);
    dsd_discriminator_free(ctx, &bad);

    dsd_tensor *all[] = {&x, &x4, &tiny, &logits, &wrong, &ltiny};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    dsd_discriminator_tape_free(ctx, &tape);
    dsd_discriminator_free(ctx, &d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("discriminator");
    TCase *tc = tcase_create("discriminator");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_param_counts_and_sizes);
    tcase_add_test(tc, test_table_and_views);
    tcase_add_test(tc, test_matches_reference);
    tcase_add_test(tc, test_two_forwards_accumulate);
    if (!tu_small())
        tcase_add_test(tc, test_reference_finite_differences);
    tcase_add_test(tc, test_inference_deterministic_no_leaks);
    tcase_add_test(tc, test_plan_and_tape_reuse);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
