/*
 * test-generator.c: the generator (src/model/generator.c) against a
 * double-precision reference network composed here from the op references
 * in tests/ref, the way test-dscrb.c composes one block; and the parameter
 * arena (dsd_params_*): counts, table, views, initialization.
 *
 * The reference is written the plain way (every pre- and post-activation
 * kept, no in-place tricks), so it checks the library's in-place LeakyReLU,
 * dropout and residual shortcuts too. Its parameters are found by name in the
 * library's table, with their sizes checked against the reference's own
 * arithmetic, so a wrong name, shape or offset fails.
 *
 * Checked: forward output (training with dropout, and inference), dx and
 * every parameter gradient (accumulated on top of random pre-filled values)
 * to 1e-4 relative; the reference backward against central finite
 * differences; parameter counts of the paper's config and variations;
 * inference == training without dropout, bit for bit; two runs bit
 * identical; no leaked device memory; shape and config errors.
 *
 * Shapes: base_width 8 (channels 8/16/32), mlp_ratio 4 (hidden 8), one or two
 * blocks, N = 2, 12 x 16 images (3 x 4 in the blocks, where the reflect
 * padding and the 7x7 spatial conv meet every border).
 */
#include "testutil.h"
#include "ref/activation.h"
#include "ref/generator.h"
#include "ref/conv2d.h"
#include "ref/dropout.h"
#include "ref/elementwise.h"
#include "ref/pixel_shuffle.h"
#include "ref/pool.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------------ */
/* Case setup (the reference network is tests/ref/generator.c) */

static dsd_generator_config small_config(int n_blocks, float dropout)
{
    dsd_generator_config c = dsd_generator_default_config();
    c.n_blocks = n_blocks;
    c.base_width = 8;
    c.mlp_ratio = 4;
    c.dropout = dropout;
    return c;
}

static void gen_init(dsd_generator *g, const dsd_generator_config *cfg)
{
    TU_OK(dsd_generator_init(tu_ctx(), g, cfg));
    g->dropout_seed = REF_GEN_DROPOUT_SEED;
}

/* ------------------------------------------------------------------------ */
/* Tests */

START_TEST(test_param_counts)
{
    dsd_generator_config c = dsd_generator_default_config();
    ck_assert_int_eq(c.n_blocks, 9);
    ck_assert_int_eq(c.base_width, 64);
    ck_assert_int_eq(c.mlp_ratio, 16);
    ck_assert_int_eq(c.up_kernel, 3);
    size_t def = dsd_generator_param_count(&c);
    /* by hand: head 64*3*49+64, down 128*64*9+128 + 256*128*9+256,
     * block 16*256+16 + 256*16+256 + 2*49+1 + 3*(256*9+256 + 256*256+256),
     * up 512*256*9+512 + 256*128*9+256, tail 3*64*49+3 */
    size_t head = 9472, down = 73856 + 295168, block = 4112 + 4352 + 99 + 3 * (2560 + 65792),
           up = 1180160 + 295168, tail = 9411;
    ck_assert_uint_eq(block, 213619);
    ck_assert_uint_eq(def, head + down + 9 * block + up + tail);
    ck_assert_uint_eq(def, 3785806);
    printf("generator parameters: default %zu (%.2f M, %.2f MB float32)\n", def, def / 1e6,
           def * 4 / 1e6);

    dsd_generator_config v = c;
    v.mlp_ratio = 8;
    size_t r8 = dsd_generator_param_count(&v);
    ck_assert_uint_eq(r8, def + 9 * (2 * 16 * 256 + 16));
    ck_assert_uint_eq(r8, 3859678);
    v = c;
    v.up_kernel = 1;
    size_t k1 = dsd_generator_param_count(&v);
    ck_assert_uint_eq(k1, def - 8 * (512 * 256 + 256 * 128));
    ck_assert_uint_eq(k1, 2475086);
    printf("generator parameters: mlp_ratio 8 %zu, up_kernel 1 %zu\n", r8, k1);
    for (int nb = 0; nb <= 12; nb += 3) {
        v = c;
        v.n_blocks = nb;
        size_t cnt = dsd_generator_param_count(&v);
        ck_assert_uint_eq(cnt, 1863235 + (size_t)nb * 213619);
        printf("generator parameters: n_blocks %d: %zu\n", nb, cnt);
    }
    v = small_config(2, 0.5f);
    ck_assert_uint_eq(dsd_generator_param_count(&v),
                      (8 * 3 * 49 + 8) + (16 * 8 * 9 + 16) + (32 * 16 * 9 + 32) +
                          2 * ((8 * 32 + 8) + (32 * 8 + 32) + 99 + 3 * (32 * 9 + 32 + 32 * 32 + 32)) +
                          (64 * 32 * 9 + 64) + (32 * 16 * 9 + 32) + (3 * 8 * 49 + 3));

    /* invalid configs count 0 */
    dsd_generator_config bad[5];
    for (int i = 0; i < 5; i++)
        bad[i] = c;
    bad[0].mlp_ratio = 0;
    bad[1].mlp_ratio = 512;
    bad[2].up_kernel = 2;
    bad[3].dropout = 1.0f;
    bad[4].slope = -0.1f;
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(dsd_generator_param_count(&bad[i]), 0);
}
END_TEST

START_TEST(test_table_and_views)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(2, 0.5f);
    dsd_generator g;
    gen_init(&g, &cfg);
    const dsd_params *p = &g.params;
    ck_assert_uint_eq(p->count, dsd_generator_param_count(&cfg));
    ck_assert_uint_eq(dsd_tensor_numel(&p->values), p->count);
    ck_assert_uint_eq(dsd_tensor_numel(&p->grads), p->count);
    ck_assert_uint_eq(g.arena_bytes, 2 * p->count * sizeof(float));
    /* 3 + 2 * 9 + 3 convs, each weight + bias */
    ck_assert_uint_eq(p->n, 2 * (3 + 2 * 9 + 3));
    size_t next = 0;
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        ck_assert_uint_eq(e->offset, next); /* packed, in table order */
        size_t m = 1;
        for (int j = 0; j < e->ndim; j++)
            m *= (size_t)e->shape[j];
        ck_assert_uint_eq(m, e->numel);
        ck_assert_uint_eq((size_t)e->nchw[0] * e->nchw[1] * e->nchw[2] * e->nchw[3], e->numel);
        next += e->numel;
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(p->info[j].name, e->name);
    }
    ck_assert_uint_eq(next, p->count);
    ck_assert_str_eq(p->info[0].name, "head.weight");
    ck_assert_str_eq(p->info[p->n - 1].name, "tail.bias");

    /* views: same buffer, the table's offset and shape, values vs grads */
    const dsd_param_info *e = dsd_params_find(p, "blocks.1.dsc.2.pointwise.weight");
    ck_assert_ptr_nonnull(e);
    const dsd_tensor *v = &g.w.blocks[1].pointwise[2].weight;
    ck_assert(v->buf == p->values.buf);
    ck_assert_uint_eq(v->offset, p->values.offset + e->offset);
    ck_assert_int_eq(v->n, 32);
    ck_assert_int_eq(v->c, 32);
    ck_assert_int_eq(v->h, 1);
    ck_assert_int_eq(v->w, 1);
    ck_assert_uint_eq(v->capacity, 0);
    v = &g.grad.blocks[1].pointwise[2].weight;
    ck_assert(v->buf == p->grads.buf);
    ck_assert_uint_eq(v->offset, p->grads.offset + e->offset);
    e = dsd_params_find(p, "blocks.0.ca.fc1.bias");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->ndim, 1);
    ck_assert_int_eq(e->shape[0], 8);
    v = &g.w.blocks[0].fc1.bias;
    ck_assert(v->n == 1 && v->c == 8 && v->h == 1 && v->w == 1);
    ck_assert_uint_eq(v->offset, e->offset);
    e = dsd_params_find(p, "blocks.0.dsc.1.depthwise.weight");
    ck_assert(e && e->shape[0] == 32 && e->shape[1] == 1 && e->shape[2] == 3 && e->fan_in == 9);
    e = dsd_params_find(p, "up.0.weight");
    ck_assert(e && e->shape[0] == 64 && e->shape[1] == 32 && e->shape[2] == 3);
    ck_assert_ptr_null(dsd_params_find(p, "blocks.2.ca.fc1.weight"));

    /* a view of a parameter that does not fit the arena is a shape error */
    dsd_tensor small, out;
    tu_tensor(&small, 1, 1, 1, 10);
    ck_assert_int_eq(dsd_params_view(ctx, &small, &p->info[p->n - 1], &out), DSD_ERR_SHAPE);
    tu_tensor_free(&small);

    /* the names become safetensors keys: the layout rejects duplicates */
    dsd_params t;
    memset(&t, 0, sizeof t);
    int shape[1] = {4};
    dsd_error err;
    ck_assert_int_eq(dsd_params_add(&t, &err, 1, shape, DSD_PARAM_INIT_ZEROS, 1, "a.bias"), DSD_OK);
    ck_assert_int_eq(dsd_params_add(&t, &err, 1, shape, DSD_PARAM_INIT_ZEROS, 1, "a.bias"),
                     DSD_ERR_INVALID_ARGUMENT);
    dsd_params_free(ctx, &t);
    dsd_generator_free(ctx, &g);
}
END_TEST

START_TEST(test_init_weights)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(2, 0.5f);
    dsd_generator g1, g2, g3;
    gen_init(&g1, &cfg);
    gen_init(&g2, &cfg);
    dsd_generator_config cfg1 = small_config(1, 0.5f);
    gen_init(&g3, &cfg1);
    TU_OK(dsd_generator_init_weights(ctx, &g1, 42));
    TU_OK(dsd_generator_init_weights(ctx, &g2, 42));
    TU_OK(dsd_generator_init_weights(ctx, &g3, 42));
    ck_assert_uint_eq(g1.dropout_seed, 42);
    size_t n = g1.params.count;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    ck_assert(a && b && c);
    TU_OK(dsd_tensor_download(ctx, &g1.params.values, a, n));
    TU_OK(dsd_tensor_download(ctx, &g2.params.values, b, n));
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "same seed, different weights");
    for (size_t i = 0; i < g1.params.n; i++) {
        const dsd_param_info *e = &g1.params.info[i];
        double bound = 1.0 / sqrt((double)e->fan_in), sum2 = 0, lo = 0, hi = 0;
        for (size_t j = 0; j < e->numel; j++) {
            double v = a[e->offset + j];
            ck_assert_msg(fabs(v) <= bound, "%s[%zu] = %g outside +-%g", e->name, j, v, bound);
            sum2 += v * v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (e->numel >= 1000) { /* uniform: rms = bound / sqrt(3), both tails reached */
            double rms = sqrt(sum2 / e->numel);
            ck_assert_msg(fabs(rms / (bound / sqrt(3.0)) - 1) < 0.05, "%s: rms %g, expected %g",
                          e->name, rms, bound / sqrt(3.0));
            ck_assert(lo < -0.95 * bound && hi > 0.95 * bound);
        }
        /* seeded per name: the same tensor in a 1-block network is identical */
        const dsd_param_info *e3 = dsd_params_find(&g3.params, e->name);
        if (e3) {
            float *v3 = malloc(e3->numel * sizeof *v3);
            dsd_tensor view;
            TU_OK(dsd_params_view(ctx, &g3.params.values, e3, &view));
            TU_OK(dsd_tensor_download(ctx, &view, v3, e3->numel));
            ck_assert_msg(memcmp(v3, a + e->offset, e3->numel * sizeof *v3) == 0,
                          "%s differs between 1 and 2 blocks", e->name);
            free(v3);
        }
    }
    /* distinct tensors and distinct seeds differ */
    const dsd_param_info *w0 = dsd_params_find(&g1.params, "blocks.0.dsc.0.pointwise.weight"),
                         *w1 = dsd_params_find(&g1.params, "blocks.0.dsc.1.pointwise.weight");
    ck_assert(memcmp(a + w0->offset, a + w1->offset, w0->numel * sizeof *a) != 0);
    TU_OK(dsd_generator_init_weights(ctx, &g2, 43));
    TU_OK(dsd_tensor_download(ctx, &g2.params.values, c, n));
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += a[i] == c[i];
    ck_assert_msg(same < n / 100, "seeds 42 and 43 share %zu of %zu values", same, n);
    free(a);
    free(b);
    free(c);
    dsd_generator_free(ctx, &g1);
    dsd_generator_free(ctx, &g2);
    dsd_generator_free(ctx, &g3);
}
END_TEST

/* Runs the device generator on case k: forward (training flag), optionally
 * backward on top of random prefilled grads / dx. */
typedef struct dev_run {
    double *y, *dx, *grads;          /* downloaded results */
    double *dx0, *grads0;            /* the prefills */
} dev_run;

static void dev_run_case(dsd_generator *g, const ref_gen_case *k, int training, int backward,
                         dev_run *out)
{
    dsd_context *ctx = tu_ctx();
    size_t ni = ref_gen_image_numel(k);
    tu_upload(&g->params.values, k->p);
    dsd_tensor x, y, dy, dx;
    tu_tensor_from(&x, k->n, 3, k->h, k->w, k->x);
    tu_tensor(&y, k->n, 3, k->h, k->w);
    dsd_generator_tape tape = {.step = k->step};
    TU_OK(dsd_generator_forward(ctx, g, &x, &y, training ? &tape : NULL));
    out->y = tu_alloc(ni);
    tu_download(&y, out->y);
    if (backward) {
        tu_rng r = tu_rng_init(99);
        out->dx0 = tu_alloc(ni);
        out->grads0 = tu_alloc(k->count);
        tu_fill(&r, out->dx0, ni, -1, 1);
        tu_fill(&r, out->grads0, k->count, -1, 1);
        for (size_t i = 0; i < ni; i++)
            out->dx0[i] = (float)out->dx0[i];
        for (size_t i = 0; i < k->count; i++)
            out->grads0[i] = (float)out->grads0[i];
        tu_tensor_from(&dy, k->n, 3, k->h, k->w, k->g);
        tu_tensor_from(&dx, k->n, 3, k->h, k->w, out->dx0);
        tu_upload(&g->params.grads, out->grads0);
        TU_OK(dsd_generator_backward(ctx, g, &tape, &dy, &dx));
        out->dx = tu_alloc(ni);
        out->grads = tu_alloc(k->count);
        tu_download(&dx, out->dx);
        tu_download(&g->params.grads, out->grads);
        tu_tensor_free(&dy);
        tu_tensor_free(&dx);
    }
    dsd_generator_tape_free(ctx, &tape);
    tu_tensor_free(&x);
    tu_tensor_free(&y);
}

static void dev_run_free(dev_run *r)
{
    free(r->y);
    free(r->dx);
    free(r->grads);
    free(r->dx0);
    free(r->grads0);
    memset(r, 0, sizeof *r);
}

/* Per-parameter comparison of got - prefill with the reference. */
static void check_param_grads(const dsd_params *table, const double *got, const double *prefill,
                              const double *ref, double tol)
{
    for (size_t i = 0; i < table->n; i++) {
        const dsd_param_info *e = &table->info[i];
        double *delta = tu_alloc(e->numel);
        for (size_t j = 0; j < e->numel; j++)
            delta[j] = got[e->offset + j] - prefill[e->offset + j];
        char what[128];
        snprintf(what, sizeof what, "dL/d %s", e->name);
        tu_check_close(what, delta, ref + e->offset, e->numel, tol);
        free(delta);
    }
}

static void check_against_reference(int n_blocks, int n, int h, int w, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(n_blocks, 0.5f);
    dsd_generator g;
    gen_init(&g, &cfg);
    ref_gen_case k;
    ref_gen_case_make(&k, &g, n, h, w, seed);
    ref_gen_dims d = ref_gen_dims_of(&k);
    size_t ni = ref_gen_image_numel(&k);

    /* training, with dropout */
    ref_gen_acts a;
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(&k, &a);
    size_t unclamped = 0;
    for (size_t i = 0; i < ni; i++) {
        ck_assert_msg(fabs(fabs(a.s[i]) - 1.0) > 1e-5, "test data sits on the clamp's edge");
        unclamped += fabs(a.s[i]) < 1.0;
    }
    ck_assert_msg(unclamped > ni / 2, "only %zu of %zu outputs unclamped", unclamped, ni);
    double *rdx = tu_alloc(ni), *rdp = tu_alloc(k.count);
    ref_gen_backward(&k, &a, rdx, rdp);

    dev_run r;
    memset(&r, 0, sizeof r);
    dev_run_case(&g, &k, 1, 1, &r);
    tu_check_close("generator output (training)", r.y, a.y, ni, 1e-4);
    for (size_t i = 0; i < ni; i++)
        r.dx[i] -= r.dx0[i];
    tu_check_close("dL/dx", r.dx, rdx, ni, 1e-4);
    /* dL/dx is mostly the global residual's clamp-masked upstream; compare
     * the part that went through the network on its own scale too */
    for (size_t i = 0; i < ni; i++) {
        double skip = fabs(a.s[i]) <= 1.0 ? k.g[i] : 0.0;
        r.dx[i] -= skip;
        rdx[i] -= skip;
    }
    tu_check_close("dL/dx through the network", r.dx, rdx, ni, 1e-4);
    check_param_grads(&g.params, r.grads, r.grads0, rdp, 1e-4);
    dev_run_free(&r);
    ref_gen_acts_free(&a, &d);

    /* inference: no dropout */
    k.training = 0;
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(&k, &a);
    dev_run_case(&g, &k, 0, 0, &r);
    tu_check_close("generator output (inference)", r.y, a.y, ni, 1e-4);
    dev_run_free(&r);
    ref_gen_acts_free(&a, &d);

    /* the dropout mattered: the training output differs from inference's */
    k.training = 1;
    double *y_train = tu_alloc(ni);
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(&k, &a);
    memcpy(y_train, a.y, ni * sizeof(double));
    ref_gen_acts_free(&a, &d);
    k.training = 0;
    double diff = 0;
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(&k, &a);
    for (size_t i = 0; i < ni; i++)
        diff = fmax(diff, fabs(a.y[i] - y_train[i]));
    ck_assert_msg(diff > 1e-3, "dropout changed nothing (%g)", diff);
    ref_gen_acts_free(&a, &d);
    free(y_train);

    free(rdx);
    free(rdp);
    ref_gen_case_free(&k);
    dsd_generator_free(ctx, &g);
}

START_TEST(test_matches_reference)
{
    if (tu_small())
        check_against_reference(1, 2, 8, 12, 101);
    else
        check_against_reference(2, 2, 12, 16, 101);
}
END_TEST

START_TEST(test_matches_reference_batch1)
{
    if (tu_small())
        return;
    check_against_reference(1, 1, 16, 8, 202);
}
END_TEST

START_TEST(test_reference_finite_differences)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(1, 0.5f);
    dsd_generator g;
    gen_init(&g, &cfg);
    ref_gen_case k;
    ref_gen_case_make(&k, &g, 2, 12, 16, 303);
    ref_gen_dims d = ref_gen_dims_of(&k);
    size_t ni = ref_gen_image_numel(&k);
    ref_gen_acts a;
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(&k, &a);
    double *rdx = tu_alloc(ni), *rdp = tu_alloc(k.count);
    ref_gen_backward(&k, &a, rdx, rdp);
    ref_gen_acts_free(&a, &d);

    /* two elements of every parameter tensor (first and one past the middle) */
    size_t checked = 0;
    for (size_t i = 0; i < g.params.n; i++) {
        const dsd_param_info *e = &g.params.info[i];
        size_t idx[2] = {e->offset, e->offset + (e->numel / 2 + 1) % e->numel};
        int m = e->numel > 1 ? 2 : 1;
        double fd[2], an[2];
        for (int j = 0; j < m; j++) {
            tu_numeric_grad(ref_gen_loss, &k, &k.p[idx[j]], 1, 1e-6, &fd[j]);
            an[j] = rdp[idx[j]];
        }
        char what[128];
        snprintf(what, sizeof what, "reference dL/d %s vs finite differences", e->name);
        tu_check_close(what, an, fd, (size_t)m, 1e-5);
        checked += (size_t)m;
    }
    ck_assert_uint_ge(checked, 50);
    /* input elements spread over both images and all channels */
    enum { NXS = 12 };
    double fdx[NXS], anx[NXS];
    for (int j = 0; j < NXS; j++) {
        size_t i = (size_t)j * (ni / NXS) + 5;
        tu_numeric_grad(ref_gen_loss, &k, &k.x[i], 1, 1e-6, &fdx[j]);
        anx[j] = rdx[i];
    }
    tu_check_close("reference dL/dx vs finite differences", anx, fdx, NXS, 1e-5);
    free(rdx);
    free(rdp);
    ref_gen_case_free(&k);
    dsd_generator_free(ctx, &g);
}
END_TEST

START_TEST(test_inference_equals_training_without_dropout)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(2, 0.0f);
    dsd_generator g;
    gen_init(&g, &cfg);
    ref_gen_case k;
    ref_gen_case_make(&k, &g, 2, 12, 16, 404);
    size_t ni = ref_gen_image_numel(&k);
    tu_upload(&g.params.values, k.p);
    dsd_tensor x, y1, y2;
    tu_tensor_from(&x, k.n, 3, k.h, k.w, k.x);
    tu_tensor(&y1, k.n, 3, k.h, k.w);
    tu_tensor(&y2, k.n, 3, k.h, k.w);
    dsd_generator_tape tape = {.step = 5};
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y1, &tape));
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y2, NULL));
    float *f1 = malloc(ni * sizeof *f1), *f2 = malloc(ni * sizeof *f2);
    TU_OK(dsd_tensor_download(ctx, &y1, f1, ni));
    TU_OK(dsd_tensor_download(ctx, &y2, f2, ni));
    ck_assert_msg(memcmp(f1, f2, ni * sizeof *f1) == 0,
                  "inference and training (dropout 0) outputs differ");
    /* the inference forward left the pending training forward alone; its
     * backward consumes it */
    TU_OK(dsd_generator_backward(ctx, &g, &tape, &y1, NULL));
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, &tape, &y1, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    dsd_generator_tape_free(ctx, &tape);
    free(f1);
    free(f2);
    tu_tensor_free(&x);
    tu_tensor_free(&y1);
    tu_tensor_free(&y2);
    ref_gen_case_free(&k);
    dsd_generator_free(ctx, &g);
}
END_TEST

START_TEST(test_deterministic_and_no_leaks)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(tu_small() ? 1 : 2, 0.5f);
    dsd_generator g;
    gen_init(&g, &cfg);
    ref_gen_case k;
    ref_gen_case_make(&k, &g, 2, tu_small() ? 8 : 12, tu_small() ? 12 : 16, 505);
    size_t ni = ref_gen_image_numel(&k), np = g.params.count;
    tu_upload(&g.params.values, k.p);
    dsd_tensor x, y, dy, dx;
    tu_tensor_from(&x, k.n, 3, k.h, k.w, k.x);
    tu_tensor_from(&dy, k.n, 3, k.h, k.w, k.g);
    tu_tensor(&y, k.n, 3, k.h, k.w);
    tu_tensor(&dx, k.n, 3, k.h, k.w);
    float *run[2];
    uint64_t in_use[2];
    for (int r = 0; r < 2; r++) {
        TU_OK(dsd_context_finish(ctx));
        uint64_t before = dsd_pool_get_stats(ctx).bytes_in_use;
        dsd_generator_tape tape = {.step = 11};
        TU_OK(dsd_tensor_fill(ctx, &g.params.grads, 0.0f));
        TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));
        TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
        uint64_t with_tape = dsd_pool_get_stats(ctx).bytes_in_use;
        ck_assert_uint_gt(with_tape, before); /* activations kept */
        TU_OK(dsd_generator_backward(ctx, &g, &tape, &dy, &dx));
        in_use[r] = dsd_pool_get_stats(ctx).bytes_in_use;
        ck_assert_uint_eq(in_use[r], with_tape); /* the backward allocates nothing */
        TU_OK(dsd_generator_forward(ctx, &g, &x, &y, NULL));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape);
        run[r] = malloc((2 * ni + np) * sizeof(float));
        TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape); /* arena reused */
        TU_OK(dsd_tensor_download(ctx, &y, run[r], ni));
        TU_OK(dsd_generator_backward(ctx, &g, &tape, &dy, &dx)); /* dx, grads accumulate twice */
        TU_OK(dsd_tensor_download(ctx, &dx, run[r] + ni, ni));
        TU_OK(dsd_tensor_download(ctx, &g.params.grads, run[r] + 2 * ni, np));
        dsd_generator_tape_free(ctx, &tape);
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before); /* all given back */
        in_use[r] = before;
    }
    ck_assert_msg(memcmp(run[0], run[1], (2 * ni + np) * sizeof(float)) == 0,
                  "two runs of the generator differ");
    /* a forward that is never backpropagated is dropped by the next one and
     * by the tape's free */
    dsd_generator_tape tape = {.step = 12};
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
    tape.step = 13;
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
    TU_OK(dsd_generator_backward(ctx, &g, &tape, &dy, NULL));
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, &tape, &dy, NULL), DSD_ERR_INVALID_ARGUMENT);
    tape.step = 14;
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
    dsd_generator_tape_free(ctx, &tape);
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, in_use[0]);
    free(run[0]);
    free(run[1]);
    tu_tensor_free(&x);
    tu_tensor_free(&y);
    tu_tensor_free(&dy);
    tu_tensor_free(&dx);
    ref_gen_case_free(&k);
    uint64_t arenas = g.arena_bytes;
    uint64_t before_free = dsd_pool_get_stats(ctx).bytes_in_use;
    dsd_generator_free(ctx, &g);
    ck_assert_uint_ge(before_free - dsd_pool_get_stats(ctx).bytes_in_use, arenas);
}
END_TEST

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_config(1, 0.5f);
    dsd_generator g;
    gen_init(&g, &cfg);
    dsd_tensor x, y, odd, four, y_small;
    tu_tensor(&x, 2, 3, 12, 16);
    TU_OK(dsd_tensor_fill(ctx, &x, 0.25f));
    tu_tensor(&y, 2, 3, 12, 16);
    tu_tensor(&odd, 2, 3, 12, 14);
    tu_tensor(&four, 2, 4, 12, 16);
    tu_tensor(&y_small, 1, 3, 12, 16);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, &odd, &odd, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, &four, &y, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, &x, &y_small, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, &x, &x, NULL), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, NULL, &y, NULL), DSD_ERR_INVALID_ARGUMENT);
    dsd_tensor x4;
    tu_tensor(&x4, 1, 3, 4, 8); /* blocks would be 1x2: too small for reflect padding */
    dsd_tensor y4;
    tu_tensor(&y4, 1, 3, 4, 8);
    ck_assert_int_eq(dsd_generator_forward(ctx, &g, &x4, &y4, NULL), DSD_ERR_SHAPE);
    dsd_generator_tape tape = {0};
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, &tape, &y, NULL), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, NULL, &y, NULL), DSD_ERR_INVALID_ARGUMENT);
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, &tape, &y_small, NULL), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_generator_backward(ctx, &g, &tape, &y, &y_small), DSD_ERR_SHAPE);
    TU_OK(dsd_generator_backward(ctx, &g, &tape, &y, NULL)); /* still pending after the errors */
    dsd_generator_tape_free(ctx, &tape);
    const char *msg = dsd_context_error(ctx)->message;
    (void)msg;

    dsd_generator bad;
    dsd_generator_config c = cfg;
    c.up_kernel = 4;
    ck_assert_int_eq(dsd_generator_init(ctx, &bad, &c), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bad.params.values.buf);
    c = cfg;
    c.slope = -0.5f;
    ck_assert_int_eq(dsd_generator_init(ctx, &bad, &c), DSD_ERR_INVALID_ARGUMENT);
    c = cfg;
    c.dropout = 1.0f;
    ck_assert_int_eq(dsd_generator_init(ctx, &bad, &c), DSD_ERR_INVALID_ARGUMENT);
    dsd_generator_free(ctx, &bad); /* safe on the zeroed struct */

    dsd_tensor *all[] = {&x, &y, &odd, &four, &y_small, &x4, &y4};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    dsd_generator_free(ctx, &g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("generator");
    TCase *tc = tcase_create("generator");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_param_counts);
    tcase_add_test(tc, test_table_and_views);
    tcase_add_test(tc, test_init_weights);
    tcase_add_test(tc, test_matches_reference);
    tcase_add_test(tc, test_matches_reference_batch1);
    if (!tu_small())
        tcase_add_test(tc, test_reference_finite_differences);
    tcase_add_test(tc, test_inference_equals_training_without_dropout);
    tcase_add_test(tc, test_deterministic_and_no_leaks);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
