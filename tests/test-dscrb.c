/*
 * test-dscrb.c: one DSCRb block (paper section 2.2) composed from the ops,
 * gradient-checked end to end.
 *
 *   x -> channel attention: avg/max pool -> shared MLP (1x1 C->Cr, LeakyReLU,
 *        1x1 Cr->C) applied to both -> sum -> sigmoid -> f1 = x * mc
 *     -> spatial attention: channel mean/max of f1 -> concat -> 7x7 conv 2->1
 *        -> sigmoid -> f2 = f1 * ms
 *     -> DSC -> LeakyReLU -> Dropout -> DSC -> LeakyReLU -> DSC  (DSC = reflect-pad 1
 *        depthwise 3x3 + pointwise 1x1, both with bias)
 *   out = x + that
 *
 * The same block runs on the device (the library's own block: block 0 of a
 * one-block generator, through dsd_generator_block_train_forward and
 * dsd_generator_backward, the code training runs) and on the CPU from the
 * double-precision references in tests/ref. The test
 * compares the output, dx and every parameter gradient (the shared MLP's
 * weights receive two accumulated contributions), checks the reference
 * backward against central finite differences of the reference forward, and
 * requires two device runs to be bit-identical.
 */
#include "testutil.h"
#include "ref/activation.h"
#include "ref/conv2d.h"
#include "ref/dropout.h"
#include "ref/elementwise.h"
#include "ref/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 2, C = 8, CR = 2, H = 9, W = 7 };
#define SLOPE 0.2
#define DROP_P 0.5
#define SEED 1234567ULL
/* The library's dropout stream of block 0 at step 0 (dsdeblur_model.h). */
#define STREAM 0

/* Parameters, in one table so both implementations and the checks loop over them. */
enum { P_W1, P_B1, P_W2, P_B2, P_WS, P_BS, P_WD1, P_BD1, P_WP1, P_BP1, P_WD2, P_BD2, P_WP2,
       P_BP2, P_WD3, P_BD3, P_WP3, P_BP3, P_COUNT };
static const char *param_name[P_COUNT] = {
    "mlp1.weight", "mlp1.bias", "mlp2.weight", "mlp2.bias", "spatial.weight", "spatial.bias",
    "dsc1.dw.weight", "dsc1.dw.bias", "dsc1.pw.weight", "dsc1.pw.bias", "dsc2.dw.weight",
    "dsc2.dw.bias", "dsc2.pw.weight", "dsc2.pw.bias", "dsc3.dw.weight", "dsc3.dw.bias",
    "dsc3.pw.weight", "dsc3.pw.bias"};
static const int param_shape[P_COUNT][4] = {
    {CR, C, 1, 1}, {1, CR, 1, 1}, {C, CR, 1, 1}, {1, C, 1, 1}, {1, 2, 7, 7}, {1, 1, 1, 1},
    {C, 1, 3, 3}, {1, C, 1, 1}, {C, C, 1, 1}, {1, C, 1, 1},
    {C, 1, 3, 3}, {1, C, 1, 1}, {C, C, 1, 1}, {1, C, 1, 1},
    {C, 1, 3, 3}, {1, C, 1, 1}, {C, C, 1, 1}, {1, C, 1, 1}};

static size_t numel4(const int s[4]) { return (size_t)s[0] * s[1] * s[2] * s[3]; }

/* Host state: inputs, parameters, upstream gradient. */
typedef struct block_data {
    double *x, *g;          /* x (N,C,H,W), g = dL/dout */
    double *p[P_COUNT];
} block_data;

/* ------------------------------------------------------------------------ */
/* CPU reference */

typedef struct ref_geoms {
    ref_conv2d_geom mlp1, mlp2, spatial, dw, pw;
} ref_geoms;

static ref_geoms make_geoms(void)
{
    ref_geoms g;
    g.mlp1 = (ref_conv2d_geom){N, C, 1, 1, CR, 1, 1, 1, 0, 0, 1};
    g.mlp2 = (ref_conv2d_geom){N, CR, 1, 1, C, 1, 1, 1, 0, 0, 1};
    g.spatial = (ref_conv2d_geom){N, 2, H, W, 1, 7, 7, 1, 3, 0, 1};
    g.dw = (ref_conv2d_geom){N, C, H, W, C, 3, 3, 1, 1, 1, C};
    g.pw = (ref_conv2d_geom){N, C, H, W, C, 1, 1, 1, 0, 0, 1};
    return g;
}

#define NX ((size_t)N * C * H * W)
#define NP ((size_t)N * H * W)
#define NV ((size_t)N * C)

/* Activations the reference keeps for backward. */
typedef struct ref_acts {
    double avg[NV], mx[NV], h1[N * CR], a1[N * CR], h2[N * CR], a2[N * CR], o1[NV], o2[NV],
        s[NV], mc[NV];
    double f1[NX], cm[NP], cx[NP], cat[2 * NP], sc[NP], ms[NP], f2[NX];
    double d1[NX], p1[NX], l1[NX], r1[NX], d2[NX], p2[NX], l2[NX], d3[NX], p3[NX], out[NX];
} ref_acts;

static const int shape_x[4] = {N, C, H, W}, shape_vec[4] = {N, C, 1, 1},
                 shape_pix[4] = {N, 1, H, W};

static void ref_block_forward(const block_data *b, ref_acts *a)
{
    ref_geoms g = make_geoms();
    double *const *p = b->p;
    ref_global_avg_pool_forward(b->x, N, C, H, W, a->avg);
    ref_global_max_pool_forward(b->x, N, C, H, W, a->mx);
    ref_conv2d_forward(&g.mlp1, a->avg, p[P_W1], p[P_B1], a->h1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, N * CR);
    ref_conv2d_forward(&g.mlp2, a->a1, p[P_W2], p[P_B2], a->o1);
    ref_conv2d_forward(&g.mlp1, a->mx, p[P_W1], p[P_B1], a->h2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2, N * CR);
    ref_conv2d_forward(&g.mlp2, a->a2, p[P_W2], p[P_B2], a->o2);
    ref_add_forward(shape_vec, a->o1, shape_vec, a->o2, 1.0, a->s);
    ref_activation_forward(DSD_ACT_SIGMOID, 0, a->s, a->mc, NV);
    ref_mul_forward(shape_x, b->x, shape_vec, a->mc, a->f1);

    ref_channel_mean_forward(a->f1, N, C, H, W, a->cm);
    ref_channel_max_forward(a->f1, N, C, H, W, a->cx);
    ref_concat_forward(N, 1, 1, H * W, a->cm, a->cx, a->cat);
    ref_conv2d_forward(&g.spatial, a->cat, p[P_WS], p[P_BS], a->sc);
    ref_activation_forward(DSD_ACT_SIGMOID, 0, a->sc, a->ms, NP);
    ref_mul_forward(shape_x, a->f1, shape_pix, a->ms, a->f2);

    ref_conv2d_forward(&g.dw, a->f2, p[P_WD1], p[P_BD1], a->d1);
    ref_conv2d_forward(&g.pw, a->d1, p[P_WP1], p[P_BP1], a->p1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->p1, a->l1, NX);
    ref_dropout_forward(DROP_P, SEED, STREAM, a->l1, NX, a->r1);
    ref_conv2d_forward(&g.dw, a->r1, p[P_WD2], p[P_BD2], a->d2);
    ref_conv2d_forward(&g.pw, a->d2, p[P_WP2], p[P_BP2], a->p2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->p2, a->l2, NX);
    ref_conv2d_forward(&g.dw, a->l2, p[P_WD3], p[P_BD3], a->d3);
    ref_conv2d_forward(&g.pw, a->d3, p[P_WP3], p[P_BP3], a->p3);
    ref_add_forward(shape_x, b->x, shape_x, a->p3, 1.0, a->out);
}

/* Accumulates dx and dp[] for upstream b->g. */
static void ref_block_backward(const block_data *b, const ref_acts *a, double *dx,
                               double *const dp[P_COUNT])
{
    ref_geoms g = make_geoms();
    double *const *p = b->p;
    static double t1[NX], t2[NX], t3[NX], dr1[NX], dl1[NX], dp1[NX], df2[NX], df1[NX];
    static double dms[NP], dsc[NP], dcat[2 * NP], dcm[NP], dcx[NP];
    static double dmc[NV], ds[NV], do1[NV], do2[NV], da1[N * CR], da2[N * CR], dh1[N * CR],
        dh2[N * CR], davg[NV], dmx[NV];
#define ZERO(arr) memset(arr, 0, sizeof arr)
    ZERO(t1); ZERO(t2); ZERO(t3); ZERO(dr1); ZERO(dl1); ZERO(dp1); ZERO(df2); ZERO(df1);
    ZERO(dms); ZERO(dsc); ZERO(dcat); ZERO(dcm); ZERO(dcx); ZERO(dmc); ZERO(ds); ZERO(do1);
    ZERO(do2); ZERO(da1); ZERO(da2); ZERO(dh1); ZERO(dh2); ZERO(davg); ZERO(dmx);
#undef ZERO
    /* out = x + p3 */
    ref_add_backward(shape_x, shape_x, 1.0, b->g, dx, t1); /* t1 = dp3 */
    /* DSC3 */
    ref_conv2d_backward(&g.pw, a->d3, p[P_WP3], t1, t2, dp[P_WP3], dp[P_BP3]); /* t2 = dd3 */
    memset(t3, 0, sizeof t3);
    ref_conv2d_backward(&g.dw, a->l2, p[P_WD3], t2, t3, dp[P_WD3], dp[P_BD3]); /* t3 = dl2 */
    memset(t1, 0, sizeof t1);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->p2, a->l2, t3, t1, NX); /* t1 = dp2 */
    memset(t2, 0, sizeof t2);
    ref_conv2d_backward(&g.pw, a->d2, p[P_WP2], t1, t2, dp[P_WP2], dp[P_BP2]); /* dd2 */
    ref_conv2d_backward(&g.dw, a->r1, p[P_WD2], t2, dr1, dp[P_WD2], dp[P_BD2]);
    ref_dropout_backward(DROP_P, SEED, STREAM, dr1, NX, dl1);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->p1, a->l1, dl1, dp1, NX);
    memset(t1, 0, sizeof t1);
    ref_conv2d_backward(&g.pw, a->d1, p[P_WP1], dp1, t1, dp[P_WP1], dp[P_BP1]); /* dd1 */
    ref_conv2d_backward(&g.dw, a->f2, p[P_WD1], t1, df2, dp[P_WD1], dp[P_BD1]);
    /* spatial attention */
    ref_mul_backward(shape_x, a->f1, shape_pix, a->ms, df2, df1, dms);
    ref_activation_backward(DSD_ACT_SIGMOID, 0, a->sc, a->ms, dms, dsc, NP);
    ref_conv2d_backward(&g.spatial, a->cat, p[P_WS], dsc, dcat, dp[P_WS], dp[P_BS]);
    ref_concat_backward(N, 1, 1, H * W, dcat, dcm, dcx);
    ref_channel_mean_backward(dcm, N, C, H, W, df1);
    ref_channel_max_backward(a->f1, dcx, N, C, H, W, df1);
    /* channel attention */
    ref_mul_backward(shape_x, b->x, shape_vec, a->mc, df1, dx, dmc);
    ref_activation_backward(DSD_ACT_SIGMOID, 0, a->s, a->mc, dmc, ds, NV);
    ref_add_backward(shape_vec, shape_vec, 1.0, ds, do1, do2);
    ref_conv2d_backward(&g.mlp2, a->a2, p[P_W2], do2, da2, dp[P_W2], dp[P_B2]);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2, da2, dh2, N * CR);
    ref_conv2d_backward(&g.mlp1, a->mx, p[P_W1], dh2, dmx, dp[P_W1], dp[P_B1]);
    ref_conv2d_backward(&g.mlp2, a->a1, p[P_W2], do1, da1, dp[P_W2], dp[P_B2]);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, da1, dh1, N * CR);
    ref_conv2d_backward(&g.mlp1, a->avg, p[P_W1], dh1, davg, dp[P_W1], dp[P_B1]);
    ref_global_max_pool_backward(b->x, dmx, N, C, H, W, dx);
    ref_global_avg_pool_backward(davg, N, C, H, W, dx);
}

/* ------------------------------------------------------------------------ */
/* Device */

/* The library's generator parameter each test parameter is. */
static const char *library_name[P_COUNT] = {
    "blocks.0.ca.fc1.weight", "blocks.0.ca.fc1.bias", "blocks.0.ca.fc2.weight",
    "blocks.0.ca.fc2.bias", "blocks.0.sa.conv.weight", "blocks.0.sa.conv.bias",
    "blocks.0.dsc.0.depthwise.weight", "blocks.0.dsc.0.depthwise.bias",
    "blocks.0.dsc.0.pointwise.weight", "blocks.0.dsc.0.pointwise.bias",
    "blocks.0.dsc.1.depthwise.weight", "blocks.0.dsc.1.depthwise.bias",
    "blocks.0.dsc.1.pointwise.weight", "blocks.0.dsc.1.pointwise.bias",
    "blocks.0.dsc.2.depthwise.weight", "blocks.0.dsc.2.depthwise.bias",
    "blocks.0.dsc.2.pointwise.weight", "blocks.0.dsc.2.pointwise.bias"};

typedef struct dev_block {
    dsd_generator g;          /* one block of C = 4 B channels, hidden C / r = CR */
    dsd_generator_tape tape;
    dsd_tensor x, g_out, dx, out;
    dsd_tensor dp[P_COUNT];   /* views into g.params.grads */
} dev_block;

static void dev_alloc(dev_block *d, const block_data *b)
{
    dsd_context *ctx = tu_ctx();
    memset(d, 0, sizeof *d);
    dsd_generator_config cfg = {.n_blocks = 1, .base_width = C / 4, .mlp_ratio = C / CR,
                                .up_kernel = 3, .dropout = DROP_P, .slope = SLOPE};
    TU_OK(dsd_generator_init(ctx, &d->g, &cfg));
    d->g.dropout_seed = SEED;
    double *host = tu_alloc(d->g.params.count);
    for (size_t i = 0; i < d->g.params.count; i++)
        host[i] = 0.0;
    for (int i = 0; i < P_COUNT; i++) {
        const dsd_param_info *e = dsd_params_find(&d->g.params, library_name[i]);
        ck_assert_msg(e != NULL, "the library has no parameter %s", library_name[i]);
        ck_assert_uint_eq(e->numel, numel4(param_shape[i]));
        memcpy(host + e->offset, b->p[i], e->numel * sizeof *host);
        TU_OK(dsd_params_view(ctx, &d->g.params.grads, e, &d->dp[i]));
    }
    tu_upload(&d->g.params.values, host);
    free(host);
    tu_tensor_from(&d->x, N, C, H, W, b->x);
    tu_tensor_from(&d->g_out, N, C, H, W, b->g);
    tu_tensor(&d->dx, N, C, H, W);
    tu_tensor(&d->out, N, C, H, W);
}

static void dev_free(dev_block *d)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_tape_free(ctx, &d->tape);
    dsd_generator_free(ctx, &d->g);
    tu_tensor_free(&d->x);
    tu_tensor_free(&d->g_out);
    tu_tensor_free(&d->dx);
    tu_tensor_free(&d->out);
}

static void dev_forward(dsd_context *ctx, dev_block *d)
{
    d->tape.step = 0;
    TU_OK(dsd_generator_block_train_forward(ctx, &d->g, 0, &d->x, &d->out, &d->tape));
}

static void dev_backward(dsd_context *ctx, dev_block *d)
{
    TU_OK(dsd_tensor_fill(ctx, &d->dx, 0.0f));
    TU_OK(dsd_tensor_fill(ctx, &d->g.params.grads, 0.0f));
    TU_OK(dsd_generator_backward(ctx, &d->g, &d->tape, &d->g_out, &d->dx));
}

/* ------------------------------------------------------------------------ */

static void make_data(block_data *b, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    b->x = tu_alloc(NX);
    b->g = tu_alloc(NX);
    tu_fill(&r, b->x, NX, -1.0, 1.0);
    tu_fill(&r, b->g, NX, -1.0, 1.0);
    for (int i = 0; i < P_COUNT; i++) {
        size_t n = numel4(param_shape[i]);
        b->p[i] = tu_alloc(n);
        /* fan-in scaled weights keep activations O(1) so no sigmoid saturates */
        int fan_in = param_shape[i][1] * param_shape[i][2] * param_shape[i][3];
        double scale = (i % 2 == 0) ? 1.5 / sqrt((double)fan_in) : 0.3;
        tu_fill(&r, b->p[i], n, -scale, scale);
    }
    /* round everything to float so both sides see the same inputs */
    for (size_t i = 0; i < NX; i++) {
        b->x[i] = (float)b->x[i];
        b->g[i] = (float)b->g[i];
    }
    for (int i = 0; i < P_COUNT; i++)
        for (size_t j = 0; j < numel4(param_shape[i]); j++)
            b->p[i][j] = (float)b->p[i][j];
}

static void free_data(block_data *b)
{
    free(b->x);
    free(b->g);
    for (int i = 0; i < P_COUNT; i++)
        free(b->p[i]);
}

static double ref_loss(void *user)
{
    const block_data *b = user;
    static ref_acts a;
    ref_block_forward(b, &a);
    return tu_dot(a.out, b->g, NX);
}

START_TEST(test_block_matches_reference)
{
    dsd_context *ctx = tu_ctx();
    block_data b;
    make_data(&b, 77);
    static ref_acts a;
    ref_block_forward(&b, &a);
    double *rdx = tu_alloc(NX), *rdp[P_COUNT];
    for (int i = 0; i < P_COUNT; i++)
        rdp[i] = tu_alloc(numel4(param_shape[i]));
    ref_block_backward(&b, &a, rdx, rdp);

    dev_block d;
    dev_alloc(&d, &b);
    dev_forward(ctx, &d);
    dev_backward(ctx, &d);
    tu_check_tensor("block output", &d.out, a.out, 1e-4);
    tu_check_tensor("dL/dx", &d.dx, rdx, 1e-4);
    for (int i = 0; i < P_COUNT; i++) {
        char what[64];
        snprintf(what, sizeof what, "dL/d %s", param_name[i]);
        tu_check_tensor(what, &d.dp[i], rdp[i], 1e-4);
    }
    dev_free(&d);
    free(rdx);
    for (int i = 0; i < P_COUNT; i++)
        free(rdp[i]);
    free_data(&b);
}
END_TEST

START_TEST(test_reference_finite_differences)
{
    block_data b;
    make_data(&b, 91);
    static ref_acts a;
    ref_block_forward(&b, &a);
    double *rdx = tu_alloc(NX), *rdp[P_COUNT];
    for (int i = 0; i < P_COUNT; i++)
        rdp[i] = tu_alloc(numel4(param_shape[i]));
    ref_block_backward(&b, &a, rdx, rdp);

    /* every parameter tensor (all of the small ones, the first 40 elements of
     * the larger ones) and the first 60 input elements */
    for (int i = 0; i < P_COUNT; i++) {
        size_t n = numel4(param_shape[i]);
        if (n > 40)
            n = 40;
        double *fd = tu_alloc(n);
        tu_numeric_grad(ref_loss, &b, b.p[i], n, 1e-6, fd);
        char what[64];
        snprintf(what, sizeof what, "reference dL/d %s vs finite differences", param_name[i]);
        tu_check_close(what, rdp[i], fd, n, 1e-6);
        free(fd);
    }
    double *fdx = tu_alloc(60);
    tu_numeric_grad(ref_loss, &b, b.x, 60, 1e-6, fdx);
    tu_check_close("reference dL/dx vs finite differences", rdx, fdx, 60, 1e-6);
    free(fdx);
    free(rdx);
    for (int i = 0; i < P_COUNT; i++)
        free(rdp[i]);
    free_data(&b);
}
END_TEST

static void download_all(const dev_block *d, float *buf, size_t *n)
{
    size_t k = 0;
    const dsd_tensor *ts[P_COUNT + 2];
    ts[0] = &d->out;
    ts[1] = &d->dx;
    for (int i = 0; i < P_COUNT; i++)
        ts[2 + i] = &d->dp[i];
    for (int i = 0; i < P_COUNT + 2; i++) {
        size_t m = dsd_tensor_numel(ts[i]);
        TU_OK(dsd_tensor_download(tu_ctx(), ts[i], buf + k, m));
        k += m;
    }
    *n = k;
}

START_TEST(test_block_deterministic)
{
    dsd_context *ctx = tu_ctx();
    block_data b;
    make_data(&b, 5);
    enum { MAXF = 4 * NX + 4096 };
    static float run1[MAXF], run2[MAXF];
    size_t n1, n2;
    dev_block d;
    dev_alloc(&d, &b);
    dev_forward(ctx, &d);
    dev_backward(ctx, &d);
    download_all(&d, run1, &n1);
    dev_forward(ctx, &d);
    dev_backward(ctx, &d);
    download_all(&d, run2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(run1, run2, n1 * sizeof(float)) == 0,
                  "two runs of the block differ");
    dev_free(&d);
    free_data(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dscrb");
    TCase *tc = tcase_create("dscrb");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_reference_finite_differences);
    tcase_add_test(tc, test_block_matches_reference);
    tcase_add_test(tc, test_block_deterministic);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
