/*
 * test-adam.c: the Adam step (src/optim/adam.c, cl/adam.cl) against the
 * double-precision reference in tests/ref/adam.c, and the learning-rate
 * schedule against hand-computed values.
 *
 * The device runs several steps from float state while the reference runs in
 * double from the same (float-rounded) start and the same gradients; p, m, v
 * and the displacement p - p0 are compared after every step. Gradients are
 * random, non-zero, different each step, with a few very large and very tiny
 * ones mixed in. Element counts are odd (1, 105, 10007) and the four tensors
 * get different shapes of the same count, as arenas do. Parameters start
 * with magnitudes in [1e-3, 0.1] (typical weights), so the float rounding of
 * p stays far below the size of the Adam updates and the displacement check
 * sees an update that is wrong by a fraction of lr.
 */
#include "testutil.h"
#include "ref/adam.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The paper's hyper-parameters and a second set with a larger lr and the
 * usual betas. */
static const dsd_adam_params hparams[] = {
    {1e-4f, 0.5f, 0.999f, 1e-8f},
    {1e-2f, 0.9f, 0.99f, 1e-8f},
};
enum { N_HPARAMS = (int)(sizeof hparams / sizeof hparams[0]), N_STEPS = 7 };

/* Element counts with a shape for each of p, g, m, v. */
typedef struct adam_case {
    size_t count;
    int shape[4][4]; /* p, g, m, v */
} adam_case;

static const adam_case cases[] = {
    {1, {{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}}},
    {105, {{1, 3, 5, 7}, {7, 5, 3, 1}, {1, 1, 1, 105}, {3, 1, 35, 1}}},
    {10007, {{1, 1, 1, 10007}, {10007, 1, 1, 1}, {1, 1, 10007, 1}, {1, 10007, 1, 1}}},
};
enum { N_CASES = (int)(sizeof cases / sizeof cases[0]) };

/* ------------------------------------------------------------------------ */
/* Helpers */

static ref_adam_params ref_of(const dsd_adam_params *hp)
{
    ref_adam_params r = {hp->lr, hp->beta1, hp->beta2, hp->eps};
    return r;
}

/* Random non-zero gradients for step `step`, |g| in [1e-3, 1], except that a
 * rotating subset (about 1 in 23, and the single element of a 1-element
 * tensor on some steps) is large (|g| in [1e2, 1e3]) or tiny ([1e-7, 1e-6]). */
static void fill_grad(tu_rng *r, double *g, size_t n, int step)
{
    tu_fill_nonzero(r, g, n, 1e-3, 1.0);
    for (size_t i = 0; i < n; i++) {
        size_t sel = (i * 7 + (size_t)step) % 23;
        double sign = g[i] < 0 ? -1.0 : 1.0;
        if (sel == 0)
            g[i] = sign * tu_uniform(r, 1e2, 1e3);
        else if (sel == 1)
            g[i] = sign * tu_uniform(r, 1e-7, 1e-6);
    }
    tu_round_to_float(g, n);
}

static void fill_param(tu_rng *r, double *p, size_t n)
{
    tu_fill_nonzero(r, p, n, 1e-3, 0.1);
    tu_round_to_float(p, n);
}

/* Second moments are non-negative: |x| in [lo, hi]. */
static void fill_positive(tu_rng *r, double *x, size_t n, double lo, double hi)
{
    tu_fill_nonzero(r, x, n, lo, hi);
    for (size_t i = 0; i < n; i++)
        x[i] = fabs(x[i]);
    tu_round_to_float(x, n);
}

static float *download_floats(const dsd_tensor *t)
{
    size_t n = dsd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    ck_assert(f != NULL);
    TU_OK(dsd_tensor_download(tu_ctx(), t, f, n));
    return f;
}

/* Device state: four tensors of one case. */
typedef struct adam_state {
    dsd_tensor p, g, m, v;
} adam_state;

static void state_init(adam_state *s, const adam_case *c, const double *p0, const double *m0,
                       const double *v0)
{
    const int(*sh)[4] = c->shape;
    tu_tensor_from(&s->p, sh[0][0], sh[0][1], sh[0][2], sh[0][3], p0);
    tu_tensor(&s->g, sh[1][0], sh[1][1], sh[1][2], sh[1][3]);
    tu_tensor_from(&s->m, sh[2][0], sh[2][1], sh[2][2], sh[2][3], m0);
    tu_tensor_from(&s->v, sh[3][0], sh[3][1], sh[3][2], sh[3][3], v0);
}

static void state_free(adam_state *s)
{
    tu_tensor_free(&s->p);
    tu_tensor_free(&s->g);
    tu_tensor_free(&s->m);
    tu_tensor_free(&s->v);
}

/* Runs steps t0 .. t0 + steps - 1 on the device and on the reference from
 * (p, m, v), checking p, m, v and p - p0 after every step. */
static void run_and_compare(const char *label, const adam_case *c, const dsd_adam_params *hp,
                            uint64_t seed, int t0, int steps, double *p, double *m, double *v)
{
    dsd_context *ctx = tu_ctx();
    size_t n = c->count;
    tu_rng r = tu_rng_init(seed);
    ref_adam_params rp = ref_of(hp);
    double *p0 = tu_alloc(n), *g = tu_alloc(n), *got = tu_alloc(n), *dgot = tu_alloc(n),
           *dref = tu_alloc(n);
    memcpy(p0, p, n * sizeof *p);
    adam_state s;
    state_init(&s, c, p, m, v);
    char what[160];
    for (int k = 0; k < steps; k++) {
        int t = t0 + k;
        fill_grad(&r, g, n, k);
        tu_upload(&s.g, g);
        TU_OK(dsd_adam_step(ctx, hp, t, &s.p, &s.g, &s.m, &s.v));
        ref_adam_step(&rp, t, p, g, m, v, n);

        snprintf(what, sizeof what, "%s: m after step %d", label, t);
        tu_check_tensor(what, &s.m, m, 1e-4);
        snprintf(what, sizeof what, "%s: v after step %d", label, t);
        tu_check_tensor(what, &s.v, v, 1e-4);
        snprintf(what, sizeof what, "%s: p after step %d", label, t);
        tu_check_tensor(what, &s.p, p, 1e-4);
        /* The displacement is a few lr: this is where a wrong update shows. */
        tu_download(&s.p, got);
        for (size_t i = 0; i < n; i++) {
            dgot[i] = got[i] - p0[i];
            dref[i] = p[i] - p0[i];
        }
        snprintf(what, sizeof what, "%s: p - p0 after step %d", label, t);
        tu_check_close(what, dgot, dref, n, 1e-3);
    }
    state_free(&s);
    free(p0);
    free(g);
    free(got);
    free(dgot);
    free(dref);
}

/* ------------------------------------------------------------------------ */
/* Tests */

/* N_STEPS steps from zero moments (as training starts) for every case and
 * hyper-parameter set; _i = case * N_HPARAMS + set. */
START_TEST(test_steps_vs_reference)
{
    const adam_case *c = &cases[_i / N_HPARAMS];
    const dsd_adam_params *hp = &hparams[_i % N_HPARAMS];
    if (tu_small() && c->count > 200)
        return;
    size_t n = c->count;
    tu_rng r = tu_rng_init(101 + (uint64_t)_i);
    double *p = tu_alloc(n), *m = tu_alloc(n), *v = tu_alloc(n);
    fill_param(&r, p, n);
    for (size_t i = 0; i < n; i++)
        m[i] = v[i] = 0.0;
    char label[64];
    snprintf(label, sizeof label, "%zu elements, lr %g b1 %g b2 %g", n, (double)hp->lr,
             (double)hp->beta1, (double)hp->beta2);
    run_and_compare(label, c, hp, 202 + (uint64_t)_i, 1, N_STEPS, p, m, v);
    free(p);
    free(m);
    free(v);
}
END_TEST

/* Resuming at step 11 from non-zero moments (a checkpoint): the bias
 * corrections of a later t and moments read back from memory. */
START_TEST(test_resume_vs_reference)
{
    const adam_case *c = &cases[tu_small() ? 1 : 2];
    size_t n = c->count;
    tu_rng r = tu_rng_init(303);
    double *p = tu_alloc(n), *m = tu_alloc(n), *v = tu_alloc(n);
    fill_param(&r, p, n);
    tu_fill_nonzero(&r, m, n, 1e-3, 1.0);
    tu_round_to_float(m, n);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(float)(m[i] * m[i] * tu_uniform(&r, 1.0, 4.0));
    for (int h = 0; h < N_HPARAMS; h++) {
        double *pc = tu_alloc(n), *mc = tu_alloc(n), *vc = tu_alloc(n);
        memcpy(pc, p, n * sizeof *p);
        memcpy(mc, m, n * sizeof *m);
        memcpy(vc, v, n * sizeof *v);
        run_and_compare(h ? "resume, set 2" : "resume, paper set", c, &hparams[h], 404 + h, 11,
                        N_STEPS, pc, mc, vc);
        free(pc);
        free(mc);
        free(vc);
    }
    free(p);
    free(m);
    free(v);
}
END_TEST

/* The first step from m = v = 0 moves every element by lr * g / (|g| + eps),
 * i.e. by lr against the sign of g when |g| >> eps, whatever the size of g.
 * Without the first bias correction the move would be (1 - b1) lr, without
 * the second lr / sqrt(1 - b2). */
START_TEST(test_first_step_is_lr)
{
    dsd_context *ctx = tu_ctx();
    const adam_case *c = &cases[tu_small() ? 1 : 2];
    size_t n = c->count;
    tu_rng r = tu_rng_init(505 + (uint64_t)_i);
    const dsd_adam_params *hp = &hparams[_i];
    double *zero = tu_alloc(n), *g = tu_alloc(n), *p = tu_alloc(n);
    for (size_t i = 0; i < n; i++) {
        zero[i] = 0.0;
        /* log-uniform magnitude in [1e-3, 1e3], random sign */
        double mag = exp(tu_uniform(&r, log(1e-3), log(1e3)));
        g[i] = (tu_uniform(&r, -1.0, 1.0) < 0 ? -mag : mag);
    }
    tu_round_to_float(g, n);
    adam_state s;
    state_init(&s, c, zero, zero, zero);
    tu_upload(&s.g, g);
    TU_OK(dsd_adam_step(ctx, hp, 1, &s.p, &s.g, &s.m, &s.v));
    tu_download(&s.p, p);
    for (size_t i = 0; i < n; i++) {
        double want = g[i] > 0 ? -(double)hp->lr : (double)hp->lr;
        ck_assert_msg(fabs(p[i] - want) <= 1e-4 * (double)hp->lr,
                      "lr %g: element %zu of %zu moved by %.9g for g = %g, want %.9g",
                      (double)hp->lr, i, n, p[i], g[i], want);
    }
    state_free(&s);
    free(zero);
    free(g);
    free(p);
}
END_TEST

/* Only the slices the views name change: the parameter is image 1 of a
 * (3,3,5,7) tensor, the gradient image 3 of a (4,7,5,3) one, m and v images
 * 2 and 0 of one (3,1,1,105) buffer (disjoint views of one buffer are
 * allowed). */
START_TEST(test_views)
{
    dsd_context *ctx = tu_ctx();
    const size_t per = 105;
    tu_rng r = tu_rng_init(606);
    const dsd_adam_params *hp = &hparams[1];
    ref_adam_params rp = ref_of(hp);
    double *P = tu_alloc(3 * per), *G = tu_alloc(4 * per), *MV = tu_alloc(3 * per);
    double *m = tu_alloc(per), *v = tu_alloc(per), *p = tu_alloc(per), *g = tu_alloc(per);
    fill_param(&r, P, 3 * per);
    fill_grad(&r, G, 4 * per, 0);
    tu_fill_nonzero(&r, MV, 3 * per, 0.5, 2.0); /* sentinels around m and v */
    tu_round_to_float(MV, 3 * per);
    for (size_t i = 0; i < per; i++) {
        MV[2 * per + i] = 0.0; /* m */
        MV[i] = 0.0;           /* v */
    }
    dsd_tensor tp, tg, tmv;
    tu_tensor_from(&tp, 3, 3, 5, 7, P);
    tu_tensor_from(&tg, 4, 7, 5, 3, G);
    tu_tensor_from(&tmv, 3, 1, 1, 105, MV);
    float *p_before = download_floats(&tp), *g_before = download_floats(&tg),
          *mv_before = download_floats(&tmv);
    dsd_tensor vp = dsd_tensor_view_batch(&tp, 1, 1), vg = dsd_tensor_view_batch(&tg, 3, 1);
    dsd_tensor vm = dsd_tensor_view_batch(&tmv, 2, 1), vv = dsd_tensor_view_batch(&tmv, 0, 1);
    ck_assert_uint_eq(vp.offset, per);
    ck_assert_uint_eq(vg.offset, 3 * per);

    memcpy(p, P + per, per * sizeof *p);
    memcpy(g, G + 3 * per, per * sizeof *g);
    for (size_t i = 0; i < per; i++)
        m[i] = v[i] = 0.0;
    for (int t = 1; t <= 3; t++) {
        TU_OK(dsd_adam_step(ctx, hp, t, &vp, &vg, &vm, &vv));
        ref_adam_step(&rp, t, p, g, m, v, per);
    }
    tu_check_tensor("view: p slice", &vp, p, 1e-4);
    tu_check_tensor("view: m slice", &vm, m, 1e-4);
    tu_check_tensor("view: v slice", &vv, v, 1e-4);

    float *p_after = download_floats(&tp), *g_after = download_floats(&tg),
          *mv_after = download_floats(&tmv);
    ck_assert_msg(!memcmp(p_after, p_before, per * sizeof(float)), "param image 0 changed");
    ck_assert_msg(!memcmp(p_after + 2 * per, p_before + 2 * per, per * sizeof(float)),
                  "param image 2 changed");
    ck_assert_msg(memcmp(p_after + per, p_before + per, per * sizeof(float)),
                  "param image 1 did not change");
    ck_assert_msg(!memcmp(g_after, g_before, 4 * per * sizeof(float)), "grad changed");
    ck_assert_msg(!memcmp(mv_after + per, mv_before + per, per * sizeof(float)),
                  "the sentinel between m and v changed");

    tu_tensor_free(&tp);
    tu_tensor_free(&tg);
    tu_tensor_free(&tmv);
    free(P);
    free(G);
    free(MV);
    free(m);
    free(v);
    free(p);
    free(g);
    free(p_before);
    free(g_before);
    free(mv_before);
    free(p_after);
    free(g_after);
    free(mv_after);
}
END_TEST

/* Every invalid call fails with the right status and enqueues nothing: the
 * tensors are bit-identical afterwards. */
START_TEST(test_invalid_arguments)
{
    dsd_context *ctx = tu_ctx();
    const adam_case *c = &cases[1];
    size_t n = c->count;
    tu_rng r = tu_rng_init(707);
    double *p0 = tu_alloc(n), *m0 = tu_alloc(n), *v0 = tu_alloc(n);
    fill_param(&r, p0, n);
    tu_fill_nonzero(&r, m0, n, 0.1, 1.0);
    fill_positive(&r, v0, n, 0.1, 1.0);
    adam_state s;
    state_init(&s, c, p0, m0, v0);
    fill_grad(&r, p0, n, 0);
    tu_upload(&s.g, p0);
    float *before[4] = {download_floats(&s.p), download_floats(&s.g), download_floats(&s.m),
                        download_floats(&s.v)};
    const dsd_adam_params ok = hparams[0];
    dsd_adam_params bad;
    const int INV = DSD_ERR_INVALID_ARGUMENT;

    ck_assert_int_eq(dsd_adam_step(NULL, &ok, 1, &s.p, &s.g, &s.m, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, NULL, 1, &s.p, &s.g, &s.m, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 0, &s.p, &s.g, &s.m, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, -3, &s.p, &s.g, &s.m, &s.v), INV);

    const float lrs[] = {-1e-4f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof lrs / sizeof lrs[0]; k++) {
        bad = ok;
        bad.lr = lrs[k];
        ck_assert_int_eq(dsd_adam_step(ctx, &bad, 1, &s.p, &s.g, &s.m, &s.v), INV);
    }
    const float betas[] = {1.0f, -0.1f, 1.5f, NAN};
    for (size_t k = 0; k < sizeof betas / sizeof betas[0]; k++) {
        bad = ok;
        bad.beta1 = betas[k];
        ck_assert_int_eq(dsd_adam_step(ctx, &bad, 1, &s.p, &s.g, &s.m, &s.v), INV);
        bad = ok;
        bad.beta2 = betas[k];
        ck_assert_int_eq(dsd_adam_step(ctx, &bad, 1, &s.p, &s.g, &s.m, &s.v), INV);
    }
    const float epss[] = {0.0f, -1e-8f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof epss / sizeof epss[0]; k++) {
        bad = ok;
        bad.eps = epss[k];
        ck_assert_int_eq(dsd_adam_step(ctx, &bad, 1, &s.p, &s.g, &s.m, &s.v), INV);
    }

    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, NULL, &s.g, &s.m, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, NULL, &s.m, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, NULL, &s.v), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, &s.m, NULL), INV);

    /* element counts that differ by one, in each position */
    dsd_tensor t104, t106;
    tu_tensor(&t104, 1, 1, 8, 13);
    tu_tensor(&t106, 2, 1, 53, 1);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &t104, &s.m, &s.v), DSD_ERR_SHAPE);
    const char *msg = dsd_context_error(ctx)->message;
    ck_assert_msg(strstr(msg, "1x1x8x13") && strstr(msg, "1x3x5x7"), "message: %s", msg);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, &t106, &s.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, &s.m, &t104), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &t106, &s.g, &s.m, &s.v), DSD_ERR_SHAPE);
    dsd_tensor empty = dsd_tensor_view_batch(&s.p, 0, 2); /* out of range: n = 0 */
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &empty, &s.g, &s.m, &s.v), DSD_ERR_SHAPE);
    dsd_tensor unalloc;
    memset(&unalloc, 0, sizeof unalloc);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &unalloc, &s.m, &s.v), DSD_ERR_SHAPE);

    /* aliasing: exact (m == v, param == grad) and partial overlap */
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, &s.m, &s.m), INV);
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.p, &s.m, &s.v), INV);
    dsd_tensor big, a, b;
    tu_tensor(&big, 2, 1, 1, (int)n);
    a = dsd_tensor_view_batch(&big, 0, 1);
    b = a;
    b.offset = 50; /* floats 50 .. 154 overlap a's 0 .. 104 */
    ck_assert_int_eq(dsd_adam_step(ctx, &ok, 1, &s.p, &s.g, &a, &b), INV);

    float *after[4] = {download_floats(&s.p), download_floats(&s.g), download_floats(&s.m),
                       download_floats(&s.v)};
    for (int k = 0; k < 4; k++) {
        ck_assert_msg(!memcmp(before[k], after[k], n * sizeof(float)),
                      "tensor %d changed by a failed call", k);
        free(before[k]);
        free(after[k]);
    }
    tu_tensor_free(&t104);
    tu_tensor_free(&t106);
    tu_tensor_free(&big);
    state_free(&s);
    free(p0);
    free(m0);
    free(v0);
}
END_TEST

/* Edge values that are valid: lr = 0 updates the moments but not p; beta1 =
 * beta2 = 0 (no memory) against the reference. */
START_TEST(test_edge_parameters)
{
    dsd_context *ctx = tu_ctx();
    const adam_case *c = &cases[1];
    size_t n = c->count;
    tu_rng r = tu_rng_init(808);
    double *p = tu_alloc(n), *m = tu_alloc(n), *v = tu_alloc(n), *g = tu_alloc(n);
    fill_param(&r, p, n);
    tu_fill_nonzero(&r, m, n, 0.1, 1.0);
    tu_round_to_float(m, n);
    fill_positive(&r, v, n, 0.1, 1.0);
    fill_grad(&r, g, n, 3);
    adam_state s;
    state_init(&s, c, p, m, v);
    tu_upload(&s.g, g);
    float *p_before = download_floats(&s.p);

    dsd_adam_params zero_lr = hparams[0];
    zero_lr.lr = 0.0f;
    TU_OK(dsd_adam_step(ctx, &zero_lr, 2, &s.p, &s.g, &s.m, &s.v));
    ref_adam_params rp = ref_of(&zero_lr);
    ref_adam_step(&rp, 2, p, g, m, v, n);
    float *p_after = download_floats(&s.p);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(p_before[i] == p_after[i], "lr = 0 changed p[%zu]: %.9g -> %.9g", i,
                      (double)p_before[i], (double)p_after[i]);
    tu_check_tensor("lr 0: m", &s.m, m, 1e-4);
    tu_check_tensor("lr 0: v", &s.v, v, 1e-4);

    dsd_adam_params no_memory = {1e-3f, 0.0f, 0.0f, 1e-8f};
    TU_OK(dsd_adam_step(ctx, &no_memory, 3, &s.p, &s.g, &s.m, &s.v));
    rp = ref_of(&no_memory);
    ref_adam_step(&rp, 3, p, g, m, v, n);
    tu_check_tensor("betas 0: p", &s.p, p, 1e-4);
    tu_check_tensor("betas 0: m", &s.m, m, 1e-4);
    tu_check_tensor("betas 0: v", &s.v, v, 1e-4);

    state_free(&s);
    free(p_before);
    free(p_after);
    free(p);
    free(m);
    free(v);
    free(g);
}
END_TEST

/* The same N_STEPS steps twice from the same start: bit-identical p, m, v. */
START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const adam_case *c = &cases[tu_small() ? 1 : 2];
    size_t n = c->count;
    double *p = tu_alloc(n), *zero = tu_alloc(n), *g = tu_alloc(n);
    float *out[2][3];
    for (int run = 0; run < 2; run++) {
        tu_rng r = tu_rng_init(909);
        fill_param(&r, p, n);
        for (size_t i = 0; i < n; i++)
            zero[i] = 0.0;
        adam_state s;
        state_init(&s, c, p, zero, zero);
        for (int t = 1; t <= N_STEPS; t++) {
            fill_grad(&r, g, n, t);
            tu_upload(&s.g, g);
            TU_OK(dsd_adam_step(ctx, &hparams[0], t, &s.p, &s.g, &s.m, &s.v));
        }
        out[run][0] = download_floats(&s.p);
        out[run][1] = download_floats(&s.m);
        out[run][2] = download_floats(&s.v);
        state_free(&s);
    }
    static const char *names[3] = {"p", "m", "v"};
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(!memcmp(out[0][k], out[1][k], n * sizeof(float)),
                      "%s differs between two identical runs", names[k]);
        free(out[0][k]);
        free(out[1][k]);
    }
    free(p);
    free(zero);
    free(g);
}
END_TEST

/* The paper's schedule (1e-4, 150 constant epochs of 500), by hand:
 * base for epochs 0..149, then 1e-4 * (500 - e) / 350. */
START_TEST(test_lr_schedule)
{
    static const struct {
        int epoch;
        double want;
    } pts[] = {
        {0, 1e-4},
        {149, 1e-4},
        {150, 1e-4},                 /* 350 / 350 */
        {151, 9.971428571428571e-5}, /* 349 / 350 */
        {325, 5e-5},                 /* 175 / 350 */
        {499, 2.857142857142857e-7}, /* 1 / 350 */
        {500, 0.0},
        {600, 0.0},
    };
    for (size_t k = 0; k < sizeof pts / sizeof pts[0]; k++) {
        double got = dsd_lr_schedule(1e-4f, pts[k].epoch, 150, 500);
        double want = pts[k].want * ((double)1e-4f / 1e-4); /* base is a float */
        ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want),
                      "epoch %d: lr %.9g, want %.9g", pts[k].epoch, got, want);
    }
    /* monotone non-increasing over the whole run */
    float prev = dsd_lr_schedule(1e-4f, 0, 150, 500);
    for (int e = 1; e <= 510; e++) {
        float cur = dsd_lr_schedule(1e-4f, e, 150, 500);
        ck_assert_msg(cur <= prev && cur >= 0.0f, "epoch %d: %g after %g", e, cur, prev);
        prev = cur;
    }
    /* constant_epochs >= total_epochs: constant */
    const int epochs[] = {0, 99, 100, 101, 1000};
    for (size_t k = 0; k < sizeof epochs / sizeof epochs[0]; k++) {
        ck_assert(dsd_lr_schedule(2e-4f, epochs[k], 100, 100) == 2e-4f);
        ck_assert(dsd_lr_schedule(2e-4f, epochs[k], 300, 100) == 2e-4f);
    }
    /* no constant phase: decay from the first epoch */
    ck_assert(dsd_lr_schedule(1e-3f, 0, 0, 10) == 1e-3f);
    ck_assert(fabs(dsd_lr_schedule(1e-3f, 5, 0, 10) - 5e-4) <= 1e-6 * 5e-4);
    ck_assert(dsd_lr_schedule(1e-3f, 10, 0, 10) == 0.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adam");
    TCase *tc = tcase_create("adam");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_steps_vs_reference, 0, N_CASES * N_HPARAMS);
    tcase_add_test(tc, test_resume_vs_reference);
    tcase_add_loop_test(tc, test_first_step_is_lr, 0, N_HPARAMS);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_invalid_arguments);
    tcase_add_test(tc, test_edge_parameters);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_lr_schedule);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
