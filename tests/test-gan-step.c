/*
 * test-gan-step.c: one whole GAN step of the paper, composed on the device
 * from the generator, the discriminator, the relativistic loss and a pixel
 * content loss, against the same step composed from the double-precision
 * references (tests/ref/generator.c, discriminator.c, ragan.c, loss.c), and
 * that reference against central finite differences on a few parameters of
 * each network.
 *
 *   generator step      L_G = L_G^Ra(D(sharp), D(G(blur))) + lambda MSE(G(blur), sharp)
 *                       gradients reach G through D (D's own gradients off)
 *   discriminator step  L_D = L_D^Ra(D(sharp), D(G(blur))), G(blur) detached;
 *                       D applied twice, its gradients accumulate over both
 *
 * This is the wiring the trainer uses: a gradient that misses the mean(fake)
 * term inside the real logits, the D-to-G path, or one of D's two
 * applications fails here although every piece passes its own test.
 *
 * Shapes: generator base_width 8, mlp_ratio 4, one block, dropout 0.5 (the
 * reference regenerates the same Philox mask); discriminator base_width 8,
 * 3 layers; N = 2, 12 x 16 images (logits 4 x 5).
 */
#include "testutil.h"
#include "ref/discriminator.h"
#include "ref/generator.h"
#include "ref/loss.h"
#include "ref/ragan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAMBDA 0.5 /* comparable terms, so neither hides a bug in the other */
enum { N = 2, H = 12, W = 16 };

typedef struct gan_case {
    ref_gen_case g;  /* g.x = blur; g.p = G's parameters */
    ref_disc_case d; /* d.p = D's parameters */
    double *sharp;
} gan_case;

/* ------------------------------------------------------------------------ */
/* The reference step */

/* Loss of the step (side 1: L_G with the content term; 0: L_D) and, when the
 * pointers are not NULL, dL/dG-params and dL/dD-params (accumulated). */
static double ref_step(const gan_case *k, int side, double *dgp, double *ddp)
{
    const ref_gen_case *kg = &k->g;
    const ref_disc_case *kd = &k->d;
    ref_gen_dims dims = ref_gen_dims_of(kg);
    ref_gen_acts ga;
    ref_gen_acts_alloc(&ga, &dims);
    ref_gen_forward(kg, &ga);
    ref_disc_acts ar, af;
    ref_disc_forward(kd, k->sharp, &ar);
    ref_disc_forward(kd, ga.y, &af);
    size_t nl = ref_disc_logits_numel(kd), ni = ref_gen_image_numel(kg);
    const double *lr = ar.a[ar.nconv - 1], *lf = af.a[af.nconv - 1];
    double loss = ref_ragan_loss_forward(side, lr, lf, nl);
    if (side == 1) {
        double mse;
        ref_mse_loss_forward(ga.y, k->sharp, ni, &mse);
        loss += LAMBDA * mse;
    }
    if (dgp || ddp) {
        double *dlr = tu_alloc(nl), *dlf = tu_alloc(nl), *dimg = tu_alloc(ni);
        ref_ragan_loss_backward(side, 1.0, lr, lf, nl, dlr, dlf);
        double *scratch = tu_alloc(kd->count);
        double *dd = side == 0 && ddp ? ddp : scratch;
        if (side == 0) /* both applications of D; the images get no gradient */
            ref_disc_backward(kd, k->sharp, &ar, dlr, dimg, dd);
        ref_disc_backward(kd, ga.y, &af, dlf, dimg, dd);
        if (side == 1 && dgp) {
            ref_mse_loss_backward(LAMBDA, ga.y, k->sharp, ni, dimg, NULL);
            ref_gen_case up = *kg;
            up.g = dimg;
            double *dblur = tu_alloc(ni);
            ref_gen_backward(&up, &ga, dblur, dgp);
            free(dblur);
        }
        free(scratch);
        free(dlr);
        free(dlf);
        free(dimg);
    }
    ref_disc_acts_free(&ar);
    ref_disc_acts_free(&af);
    ref_gen_acts_free(&ga, &dims);
    return loss;
}

typedef struct fd_user {
    const gan_case *k;
    int side;
} fd_user;

static double fd_loss(void *user)
{
    const fd_user *u = user;
    return ref_step(u->k, u->side, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* The device step */

typedef struct nets {
    dsd_generator g;
    dsd_discriminator d;
} nets;

static void nets_init(nets *m, gan_case *k)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config gc = dsd_generator_default_config();
    gc.n_blocks = 1;
    gc.base_width = 8;
    gc.mlp_ratio = 4;
    gc.dropout = 0.5f;
    TU_OK(dsd_generator_init(ctx, &m->g, &gc));
    m->g.dropout_seed = REF_GEN_DROPOUT_SEED;
    dsd_discriminator_config dc = dsd_discriminator_default_config();
    dc.base_width = 8;
    dc.n_layers = 3;
    TU_OK(dsd_discriminator_init(ctx, &m->d, &dc));
    ref_gen_case_make(&k->g, &m->g, N, H, W, 31);
    ref_disc_case_make(&k->d, &m->d, N, H, W, 32);
    size_t ni = ref_gen_image_numel(&k->g);
    k->sharp = tu_alloc(ni);
    tu_rng r = tu_rng_init(33);
    tu_fill(&r, k->sharp, ni, -0.9, 0.9);
    tu_round_to_float(k->sharp, ni);
    tu_upload(&m->g.params.values, k->g.p);
    tu_upload(&m->d.params.values, k->d.p);
}

static void nets_free(nets *m, gan_case *k)
{
    dsd_generator_free(tu_ctx(), &m->g);
    dsd_discriminator_free(tu_ctx(), &m->d);
    ref_gen_case_free(&k->g);
    ref_disc_case_free(&k->d);
    free(k->sharp);
}

/* One step on the device; returns the loss, downloads the gradients of the
 * network that step trains into grads (G's count for side 1, D's for 0). */
static double dev_step(nets *m, const gan_case *k, int side, double *grads)
{
    dsd_context *ctx = tu_ctx();
    int oh = k->d.oh, ow = k->d.ow;
    dsd_tensor blur, sharp, fake, lr, lf, dlr, dlf, dfake, loss, content;
    tu_tensor_from(&blur, N, 3, H, W, k->g.x);
    tu_tensor_from(&sharp, N, 3, H, W, k->sharp);
    tu_tensor(&fake, N, 3, H, W);
    tu_tensor(&lr, N, 1, oh, ow);
    tu_tensor(&lf, N, 1, oh, ow);
    tu_tensor(&dlr, N, 1, oh, ow);
    tu_tensor(&dlf, N, 1, oh, ow);
    tu_tensor(&dfake, N, 3, H, W);
    tu_tensor(&loss, 1, 1, 1, 1);
    tu_tensor(&content, 1, 1, 1, 1);
    TU_OK(dsd_tensor_fill(ctx, &m->g.params.grads, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &m->d.params.grads, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &dlr, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &dlf, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &dfake, 0.0f));

    dsd_discriminator_tape tr = {0}, tf = {0};
    dsd_generator_tape gtape = {.step = k->g.step};
    TU_OK(dsd_generator_forward(ctx, &m->g, &blur, &fake, side == 1 ? &gtape : NULL));
    if (side == 1) {
        TU_OK(dsd_discriminator_forward(ctx, &m->d, &sharp, &lr, NULL));
        TU_OK(dsd_discriminator_forward(ctx, &m->d, &fake, &lf, &tf));
        TU_OK(dsd_ragan_loss_forward(ctx, DSD_RAGAN_GENERATOR, &lr, &lf, &loss));
        TU_OK(dsd_mse_loss_forward(ctx, &fake, &sharp, &content));
        TU_OK(dsd_add_forward(ctx, &loss, &content, (float)LAMBDA, &loss));
        TU_OK(dsd_ragan_loss_backward(ctx, DSD_RAGAN_GENERATOR, 1.0f, &lr, &lf, NULL, &dlf));
        TU_OK(dsd_discriminator_backward(ctx, &m->d, &tf, &dlf, &dfake, 0));
        TU_OK(dsd_mse_loss_backward(ctx, (float)LAMBDA, &fake, &sharp, &dfake, NULL));
        TU_OK(dsd_generator_backward(ctx, &m->g, &gtape, &dfake, NULL));
        dsd_generator_tape_free(ctx, &gtape);
        tu_download(&m->g.params.grads, grads);
        /* D's gradients stay untouched by the generator step */
        double *dd = tu_alloc(m->d.params.count);
        tu_download(&m->d.params.grads, dd);
        for (size_t i = 0; i < m->d.params.count; i++)
            ck_assert_msg(dd[i] == 0.0, "the generator step wrote D's gradient %zu", i);
        free(dd);
    } else {
        /* fake is detached: G ran in inference mode, nothing flows back to it */
        TU_OK(dsd_discriminator_forward(ctx, &m->d, &sharp, &lr, &tr));
        TU_OK(dsd_discriminator_forward(ctx, &m->d, &fake, &lf, &tf));
        TU_OK(dsd_ragan_loss_forward(ctx, DSD_RAGAN_DISCRIMINATOR, &lr, &lf, &loss));
        TU_OK(dsd_ragan_loss_backward(ctx, DSD_RAGAN_DISCRIMINATOR, 1.0f, &lr, &lf, &dlr, &dlf));
        TU_OK(dsd_discriminator_backward(ctx, &m->d, &tf, &dlf, NULL, 1));
        TU_OK(dsd_discriminator_backward(ctx, &m->d, &tr, &dlr, NULL, 1));
        tu_download(&m->d.params.grads, grads);
    }
    dsd_discriminator_tape_free(ctx, &tr);
    dsd_discriminator_tape_free(ctx, &tf);
    double l = tu_download_scalar(&loss);
    dsd_tensor *all[] = {&blur, &sharp, &fake, &lr, &lf, &dlr, &dlf, &dfake, &loss, &content};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    return l;
}

/* ------------------------------------------------------------------------ */
/* Checks */

/* Compares grads per parameter tensor, naming it. The discriminator's conv
 * biases before an instance norm have a zero gradient (the norm removes
 * them): there the device must give 0 up to float rounding. */
static void check_grads(const dsd_params *table, const double *got, const double *ref)
{
    for (size_t i = 0; i < table->n; i++) {
        const dsd_param_info *e = &table->info[i];
        char what[128];
        snprintf(what, sizeof what, "dL/d %s", e->name);
        double mx = 0;
        for (size_t j = 0; j < e->numel; j++)
            mx = fmax(mx, fabs(ref[e->offset + j]));
        if (mx < 1e-12) {
            for (size_t j = 0; j < e->numel; j++)
                ck_assert_msg(fabs(got[e->offset + j]) < 1e-6, "%s[%zu]: %g, expected 0", what,
                              j, got[e->offset + j]);
            continue;
        }
        tu_check_close(what, got + e->offset, ref + e->offset, e->numel, 1e-4);
    }
}

/* Finite differences of the reference step on a few entries of params
 * (every n-th parameter tensor, its element in the middle), against ref. */
static void check_fd(gan_case *k, int side, const dsd_params *table, double *params,
                     const double *ref)
{
    fd_user u = {k, side};
    enum { MAXP = 16 };
    double fd[MAXP], an[MAXP];
    int m = 0;
    size_t stride = table->n / 8 + 1;
    for (size_t i = 0; i < table->n && m < MAXP; i += stride) {
        const dsd_param_info *e = &table->info[i];
        size_t at = e->offset + e->numel / 2;
        if (fabs(ref[at]) < 1e-9) /* a bias in front of a norm: nothing to check */
            continue;
        tu_numeric_grad(fd_loss, &u, params + at, 1, 1e-6, &fd[m]);
        an[m++] = ref[at];
    }
    ck_assert_int_ge(m, 4);
    tu_check_close(side ? "reference dL_G vs finite differences"
                        : "reference dL_D vs finite differences", an, fd, (size_t)m, 1e-5);
}

START_TEST(test_generator_step)
{
    gan_case k;
    nets m;
    nets_init(&m, &k);
    double *ref = tu_alloc(k.g.count), *got = tu_alloc(k.g.count);
    double want = ref_step(&k, 1, ref, NULL);
    check_fd(&k, 1, &m.g.params, k.g.p, ref);
    double l = dev_step(&m, &k, 1, got);
    tu_check_close("L_G", &l, &want, 1, 1e-4);
    check_grads(&m.g.params, got, ref);
    free(ref);
    free(got);
    nets_free(&m, &k);
}
END_TEST

START_TEST(test_discriminator_step)
{
    gan_case k;
    nets m;
    nets_init(&m, &k);
    /* the detached fake is G in inference mode: the reference without dropout */
    k.g.training = 0;
    double *ref = tu_alloc(k.d.count), *got = tu_alloc(k.d.count);
    double want = ref_step(&k, 0, NULL, ref);
    check_fd(&k, 0, &m.d.params, k.d.p, ref);
    double l = dev_step(&m, &k, 0, got);
    tu_check_close("L_D", &l, &want, 1, 1e-4);
    check_grads(&m.d.params, got, ref);
    free(ref);
    free(got);
    nets_free(&m, &k);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gan_step");
    TCase *tc = tcase_create("gan_step");
    tcase_add_test(tc, test_generator_step);
    tcase_add_test(tc, test_discriminator_step);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
