/*
 * test-vgg.c: the VGG-19 feature extractor (src/model/vgg.c, its weights
 * file src/io/vgg_file.c) and the content losses (src/model/content_loss.c)
 * against double-precision references composed here from the op references
 * in tests/ref (conv2d, ReLU, 2x2 max pool, the pixel losses and the DFT
 * loss).
 *
 * VGG: features and dx (accumulated on a random pre-fill) to 1e-4 relative
 * for several output layers (relu1_2, relu2_2, conv3_3, relu3_3), N = 2 and
 * odd sizes whose pools floor; the reference backward against central finite
 * differences; tape and no-tape forwards bit-identical, two runs
 * bit-identical, nothing left leased from the pool, tape errors; config,
 * parameter counts, output shapes. Loading: F32, F16 and BF16 files with
 * extra keys load exactly; a missing tensor, a wrong shape and a missing file
 * fail with messages naming the file and tensor and pointing at doc/vgg.md,
 * and leave the weights as they were; no weights at all is refused.
 * Content losses: every kind's value and d_fake (with scale, accumulated)
 * against the references, the references against finite differences, kind
 * names, the perceptual loss without weights, backward without a pending
 * forward, validation forwards keeping nothing.
 *
 * VGG widths are fixed (64/128/256), so the images are small instead:
 * 2x3x9x11 (pools 4x5, 2x2), 1x3x16x12, 2x3x13x17 (6x8, 3x4).
 */
#include "testutil.h"
#include "io/safetensors.h"
#include "ref/activation.h"
#include "ref/conv2d.h"
#include "ref/fft.h"
#include "ref/loss.h"
#include "ref/pool.h"

#include <clFFT.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NIDX = DSD_VGG_MAX_INDEX + 1 };

static const double MEAN[3] = {0.485, 0.456, 0.406};
static const double STD[3] = {0.229, 0.224, 0.225};

static char tmp_dir[64];

/* ------------------------------------------------------------------------ */
/* Reference network */

typedef struct vcase {
    int last, n, h, w;
    const dsd_params *table;
    size_t count;
    double *p;       /* parameters in the table's layout */
    double *x, *g;   /* input, upstream gradient of the output */
    int oc, oh, ow;
} vcase;

/* The reference's own view of the layers, from torchvision's cfg "E". */
typedef struct rlayer {
    int kind;               /* 0 conv, 1 relu, 2 pool */
    int cin, cout, h, w, oh, ow;
    const double *wt, *b;
} rlayer;

static int ref_layers(const vcase *k, rlayer *l)
{
    static const int cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0,
                              512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
    int i = 0, c = 3, h = k->h, w = k->w;
    for (size_t j = 0; j < sizeof cfg / sizeof cfg[0] && i <= k->last; j++) {
        int reps = cfg[j] ? 2 : 1;
        for (int r = 0; r < reps && i <= k->last; r++, i++) {
            rlayer *L = &l[i];
            memset(L, 0, sizeof *L);
            L->kind = cfg[j] ? r : 2;
            L->cin = c;
            L->cout = cfg[j] ? cfg[j] : c;
            L->h = h;
            L->w = w;
            L->oh = L->kind == 2 ? h / 2 : h;
            L->ow = L->kind == 2 ? w / 2 : w;
            if (L->kind == 0) {
                char name[64];
                snprintf(name, sizeof name, "features.%d.weight", i);
                const dsd_param_info *e = dsd_params_find(k->table, name);
                ck_assert_msg(e && e->numel == (size_t)L->cout * L->cin * 9, "%s", name);
                L->wt = k->p + e->offset;
                snprintf(name, sizeof name, "features.%d.bias", i);
                e = dsd_params_find(k->table, name);
                ck_assert_msg(e && e->numel == (size_t)L->cout, "%s", name);
                L->b = k->p + e->offset;
            }
            c = L->cout;
            h = L->oh;
            w = L->ow;
        }
    }
    ck_assert_int_eq(i, k->last + 1);
    return i;
}

static size_t layer_out_numel(const vcase *k, const rlayer *L)
{
    return (size_t)k->n * L->cout * L->oh * L->ow;
}

typedef struct racts {
    int nl;
    double *xn;
    double *a[NIDX];   /* output of layer i */
} racts;

static size_t image_numel(const vcase *k) { return (size_t)k->n * 3 * k->h * k->w; }
static size_t out_numel(const vcase *k) { return (size_t)k->n * k->oc * k->oh * k->ow; }

static void ref_forward(const vcase *k, const double *x, racts *t)
{
    rlayer l[NIDX];
    t->nl = ref_layers(k, l);
    size_t plane = (size_t)k->h * k->w;
    t->xn = tu_alloc(image_numel(k));
    for (int n = 0; n < k->n; n++)
        for (int c = 0; c < 3; c++)
            for (size_t j = 0; j < plane; j++) {
                size_t i = ((size_t)n * 3 + c) * plane + j;
                t->xn[i] = ((x[i] + 1.0) / 2.0 - MEAN[c]) / STD[c];
            }
    const double *in = t->xn;
    for (int i = 0; i < t->nl; i++) {
        const rlayer *L = &l[i];
        size_t m = layer_out_numel(k, L);
        t->a[i] = tu_alloc(m);
        if (L->kind == 0) {
            ref_conv2d_geom g = {k->n, L->cin, L->h, L->w, L->cout, 3, 3, 1, 1, 0, 1};
            ref_conv2d_forward(&g, in, L->wt, L->b, t->a[i]);
        } else if (L->kind == 1) {
            ref_activation_forward(DSD_ACT_RELU, 0.0, in, t->a[i], m);
        } else {
            ref_maxpool2x2_forward(in, k->n, L->cin, L->h, L->w, t->a[i]);
        }
        in = t->a[i];
    }
}

static void racts_free(racts *t)
{
    free(t->xn);
    for (int i = 0; i < t->nl; i++)
        free(t->a[i]);
}

/* dx += dL/dx for the upstream gradient dy of the output. */
static void ref_backward(const vcase *k, const racts *t, const double *dy, double *dx)
{
    rlayer l[NIDX];
    int nl = ref_layers(k, l);
    size_t m = layer_out_numel(k, &l[nl - 1]);
    double *g = tu_alloc(m);
    memcpy(g, dy, m * sizeof(double));
    for (int i = nl - 1; i >= 0; i--) {
        const rlayer *L = &l[i];
        const double *in = i > 0 ? t->a[i - 1] : t->xn;
        size_t min = (size_t)k->n * L->cin * L->h * L->w, mout = layer_out_numel(k, L);
        double *din = tu_alloc(min);
        if (L->kind == 0) {
            ref_conv2d_geom geom = {k->n, L->cin, L->h, L->w, L->cout, 3, 3, 1, 1, 0, 1};
            ref_conv2d_backward(&geom, in, L->wt, g, din, NULL, NULL);
        } else if (L->kind == 1) {
            ref_activation_backward(DSD_ACT_RELU, 0.0, in, t->a[i], g, din, mout);
        } else {
            ref_maxpool2x2_backward(in, g, k->n, L->cin, L->h, L->w, din);
        }
        free(g);
        g = din;
    }
    size_t plane = (size_t)k->h * k->w;
    for (int n = 0; n < k->n; n++)
        for (int c = 0; c < 3; c++)
            for (size_t j = 0; j < plane; j++) {
                size_t i = ((size_t)n * 3 + c) * plane + j;
                dx[i] += g[i] * 0.5 / STD[c];
            }
    free(g);
}

static double ref_loss(void *user)
{
    const vcase *k = user;
    racts t;
    ref_forward(k, k->x, &t);
    double l = tu_dot(t.a[t.nl - 1], k->g, out_numel(k));
    racts_free(&t);
    return l;
}

/* ------------------------------------------------------------------------ */
/* Setup */

/* He-scaled weights U(+-2.4/sqrt(fan_in)) (magnitudes survive seven convs),
 * biases U(+-0.1), x in [-1, 1], all non-zero and rounded to float. */
static void case_make(vcase *k, const dsd_vgg *vgg, int n, int h, int w, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->last = vgg->cfg.last_layer;
    k->n = n;
    k->h = h;
    k->w = w;
    k->table = &vgg->params;
    k->count = vgg->params.count;
    TU_OK(dsd_vgg_output_shape(&vgg->cfg, h, w, &k->oc, &k->oh, &k->ow, NULL));
    tu_rng r = tu_rng_init(seed);
    k->p = tu_alloc(k->count);
    for (size_t i = 0; i < vgg->params.n; i++) {
        const dsd_param_info *e = &vgg->params.info[i];
        double bound = e->ndim == 4 ? 2.4 / sqrt((double)e->fan_in) : 0.1;
        tu_fill_nonzero(&r, k->p + e->offset, e->numel, 0.02 * bound, bound);
    }
    k->x = tu_alloc(image_numel(k));
    k->g = tu_alloc(out_numel(k));
    tu_fill(&r, k->x, image_numel(k), -1.0, 1.0);
    tu_fill(&r, k->g, out_numel(k), -1.0, 1.0);
    tu_round_to_float(k->p, k->count);
    tu_round_to_float(k->x, image_numel(k));
    tu_round_to_float(k->g, out_numel(k));
}

static void case_free(vcase *k)
{
    free(k->p);
    free(k->x);
    free(k->g);
}

/* A VGG with last layer `last` holding the case's weights. */
static void vgg_with_weights(dsd_vgg *vgg, int last)
{
    dsd_vgg_config cfg = {last};
    TU_OK(dsd_vgg_init(tu_ctx(), vgg, &cfg));
    TU_OK(dsd_vgg_init_weights(tu_ctx(), vgg, 5)); /* sets has_weights */
}

static double *random_array(size_t n, uint64_t seed, double lo, double hi)
{
    tu_rng r = tu_rng_init(seed);
    double *v = tu_alloc(n);
    tu_fill(&r, v, n, lo, hi);
    tu_round_to_float(v, n);
    return v;
}

/* Writes the case's parameters (the table's names and PyTorch shapes) to
 * path, plus the extra keys a full vgg19 state_dict has; skip (may be NULL)
 * is left out, wrong (may be NULL) gets shape [d0, d1, 9, 1]. */
static void write_weights(const vcase *k, const char *path, int store_f16, const char *skip,
                          const char *wrong)
{
    dsd_error err;
    dsd_safetensors_writer *w;
    TU_OK(dsd_safetensors_writer_init(&w, &err));
    float *f = malloc(k->count * sizeof *f);
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < k->count; i++)
        f[i] = (float)k->p[i];
    for (size_t i = 0; i < k->table->n; i++) {
        const dsd_param_info *e = &k->table->info[i];
        if (skip && !strcmp(e->name, skip))
            continue;
        int64_t shape[4];
        for (int d = 0; d < e->ndim; d++)
            shape[d] = e->shape[d];
        if (wrong && !strcmp(e->name, wrong))
            shape[2] = 9, shape[3] = 1;
        dsd_status st = dsd_safetensors_writer_add_f32(w, e->name, e->ndim, shape,
                                                       f + e->offset, store_f16, &err);
        ck_assert_msg(st == DSD_OK, "%s", err.message);
    }
    /* extra keys: a later conv (weight only) and the classifier */
    size_t extra_n = 256 * 256 * 9;
    float *extra = calloc(extra_n, sizeof *extra);
    ck_assert_ptr_nonnull(extra);
    int64_t s16[4] = {256, 256, 3, 3}, s6w[2] = {1000, 4}, s6b[1] = {1000};
    if (!dsd_params_find(k->table, "features.16.weight"))
        TU_OK(dsd_safetensors_writer_add_f32(w, "features.16.weight", 4, s16, extra, 0, &err));
    TU_OK(dsd_safetensors_writer_add_f32(w, "classifier.6.weight", 2, s6w, extra, 0, &err));
    TU_OK(dsd_safetensors_writer_add_f32(w, "classifier.6.bias", 1, s6b, extra, 0, &err));
    dsd_status st = dsd_safetensors_writer_save(w, path, &err);
    ck_assert_msg(st == DSD_OK, "%s", err.message);
    dsd_safetensors_writer_free(w);
    free(extra);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Config, counts, shapes */

START_TEST(test_config_counts_shapes)
{
    dsd_vgg_config c = dsd_vgg_default_config();
    ck_assert_int_eq(c.last_layer, 14);
    ck_assert_str_eq(dsd_vgg_layer_name(14), "conv3_3");
    ck_assert_str_eq(dsd_vgg_layer_name(15), "relu3_3");
    ck_assert_str_eq(dsd_vgg_layer_name(9), "pool2");
    ck_assert_str_eq(dsd_vgg_layer_name(36), "pool5");
    ck_assert_str_eq(dsd_vgg_layer_name(37), "?");
    ck_assert_str_eq(dsd_vgg_layer_name(-1), "?");
    /* 64*3*9+64, 64*64*9+64, 128*64*9+128, 128*128*9+128, 256*128*9+256, 2x 256*256*9+256 */
    size_t def = dsd_vgg_param_count(&c);
    ck_assert_uint_eq(def, 1792 + 36928 + 73856 + 147584 + 295168 + 2 * 590080);
    ck_assert_uint_eq(def, 1735488);
    dsd_vgg_config all = {35};
    ck_assert_uint_eq(dsd_vgg_param_count(&all), 20024384); /* torchvision vgg19().features */
    dsd_vgg_config r15 = {15};
    ck_assert_uint_eq(dsd_vgg_param_count(&r15), def);
    printf("VGG-19 parameters: conv3_3 %zu, all features %zu\n", def,
           dsd_vgg_param_count(&all));
    const int bad[] = {-1, 4, 9, 18, 27, 36, 37};
    dsd_error err;
    for (int i = 0; i < TU_COUNT(bad); i++) {
        dsd_vgg_config b = {bad[i]};
        ck_assert_int_eq(dsd_vgg_config_check(&b, &err), DSD_ERR_INVALID_ARGUMENT);
        ck_assert_uint_eq(dsd_vgg_param_count(&b), 0);
    }
    dsd_vgg_config pool = {4};
    dsd_vgg_config_check(&pool, &err);
    ck_assert_msg(strstr(err.message, "pool1"), "%s", err.message);
    for (int i = 0; i <= 35; i++) {
        dsd_vgg_config v = {i};
        int is_pool = i == 4 || i == 9 || i == 18 || i == 27;
        ck_assert_int_eq(dsd_vgg_config_check(&v, NULL), is_pool ? DSD_ERR_INVALID_ARGUMENT
                                                                  : DSD_OK);
    }

    int oc, oh, ow;
    TU_OK(dsd_vgg_output_shape(&c, 256, 256, &oc, &oh, &ow, NULL));
    ck_assert(oc == 256 && oh == 64 && ow == 64);
    TU_OK(dsd_vgg_output_shape(&c, 9, 11, &oc, &oh, &ow, NULL));
    ck_assert(oc == 256 && oh == 2 && ow == 2);
    TU_OK(dsd_vgg_output_shape(&c, 720, 1280, &oc, &oh, &ow, NULL));
    ck_assert(oh == 180 && ow == 320);
    dsd_vgg_config r3 = {3};
    TU_OK(dsd_vgg_output_shape(&r3, 1, 1, &oc, &oh, &ow, NULL));
    ck_assert(oc == 64 && oh == 1 && ow == 1);
    ck_assert_int_eq(dsd_vgg_output_shape(&c, 3, 3, &oc, &oh, &ow, &err), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_vgg_output_shape(&c, 0, 8, &oc, &oh, &ow, &err), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_vgg_output_shape(&all, 16, 16, &oc, &oh, &ow, NULL), DSD_OK);
    ck_assert(oc == 512 && oh == 1 && ow == 1);
}
END_TEST

START_TEST(test_table_and_views)
{
    dsd_context *ctx = tu_ctx();
    dsd_vgg vgg;
    TU_OK(dsd_vgg_init(ctx, &vgg, NULL));
    ck_assert_int_eq(vgg.n_layers, 15);
    ck_assert_uint_eq(vgg.params.n, 14);
    ck_assert_ptr_nonnull(vgg.params.values.buf);
    ck_assert_ptr_null(vgg.params.grads.buf); /* frozen: no gradient arena */
    ck_assert_uint_eq(vgg.arena_bytes, 1735488 * sizeof(float));
    ck_assert_int_eq(vgg.has_weights, 0);
    const int convs[] = {0, 2, 5, 7, 10, 12, 14};
    size_t next = 0;
    for (int j = 0; j < TU_COUNT(convs); j++) {
        int i = convs[j];
        char name[64];
        snprintf(name, sizeof name, "features.%d.weight", i);
        const dsd_param_info *e = dsd_params_find(&vgg.params, name);
        ck_assert_msg(e != NULL, "%s", name);
        ck_assert_uint_eq(e->offset, next);
        ck_assert_int_eq(e->shape[0], vgg.width[i]);
        ck_assert(e->shape[2] == 3 && e->shape[3] == 3);
        ck_assert_int_eq(vgg.kind[i], DSD_VGG_LAYER_CONV);
        ck_assert(vgg.w[i].weight.buf == vgg.params.values.buf);
        ck_assert_uint_eq(vgg.w[i].weight.offset, e->offset);
        next += e->numel;
        snprintf(name, sizeof name, "features.%d.bias", i);
        e = dsd_params_find(&vgg.params, name);
        ck_assert(e && e->ndim == 1 && e->shape[0] == vgg.width[i] && e->offset == next);
        ck_assert(vgg.w[i].bias.c == vgg.width[i] && vgg.w[i].bias.n == 1);
        next += e->numel;
    }
    ck_assert_uint_eq(next, vgg.params.count);
    ck_assert_int_eq(vgg.kind[4], DSD_VGG_LAYER_POOL);
    ck_assert_int_eq(vgg.kind[13], DSD_VGG_LAYER_RELU);
    ck_assert_ptr_null(vgg.w[4].weight.buf);
    ck_assert_ptr_null(dsd_params_find(&vgg.params, "features.16.weight"));
    dsd_vgg_free(ctx, &vgg);
    dsd_vgg_free(ctx, &vgg); /* safe twice (zeroed) */

    dsd_vgg_config bad = {9};
    TU_EXPECT_CTX_ERROR(dsd_vgg_init(ctx, &vgg, &bad), DSD_ERR_INVALID_ARGUMENT, "pool2");
    ck_assert_ptr_null(vgg.params.values.buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Forward and backward against the reference */

static void check_case(int last, int n, int h, int w, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    dsd_vgg vgg;
    vgg_with_weights(&vgg, last);
    vcase k;
    case_make(&k, &vgg, n, h, w, seed);
    size_t ni = image_numel(&k);
    racts t;
    ref_forward(&k, k.x, &t);
    double *dxp = random_array(ni, seed + 1, -1.0, 1.0), *rdx = tu_alloc(ni);
    ref_backward(&k, &t, k.g, rdx);

    tu_upload(&vgg.params.values, k.p);
    dsd_tensor x, y, dy, dx;
    tu_tensor_from(&x, n, 3, h, w, k.x);
    tu_tensor(&y, n, k.oc, k.oh, k.ow);
    tu_tensor_from(&dy, n, k.oc, k.oh, k.ow, k.g);
    tu_tensor_from(&dx, n, 3, h, w, dxp);
    dsd_vgg_tape tape = {0};
    TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y, &tape));
    ck_assert(tape.pending);
    char what[96];
    snprintf(what, sizeof what, "VGG %s features, %dx3x%dx%d", dsd_vgg_layer_name(last), n, h, w);
    tu_check_tensor(what, &y, t.a[t.nl - 1], 1e-4);
    TU_OK(dsd_vgg_backward(ctx, &vgg, &tape, &dy, &dx));
    ck_assert(!tape.pending);
    snprintf(what, sizeof what, "VGG %s dL/dx, %dx3x%dx%d", dsd_vgg_layer_name(last), n, h, w);
    tu_check_accum(what, &dx, dxp, rdx, 1e-4);
    dsd_vgg_tape_free(ctx, &tape);

    free(dxp);
    free(rdx);
    racts_free(&t);
    tu_tensor_free(&x);
    tu_tensor_free(&y);
    tu_tensor_free(&dy);
    tu_tensor_free(&dx);
    case_free(&k);
    dsd_vgg_free(ctx, &vgg);
}

START_TEST(test_matches_reference)
{
    if (tu_small()) {
        check_case(3, 2, 5, 7, 11);  /* relu1_2, no pool */
        check_case(5, 2, 5, 7, 12);  /* conv2_1 after a flooring pool */
        return;
    }
    check_case(14, 2, 9, 11, 11);  /* the default: conv3_3, pools 4x5 and 2x2 */
    check_case(14, 1, 16, 12, 12); /* N = 1, even sides */
    check_case(15, 2, 13, 17, 13); /* relu3_3 as the output: 6x8, 3x4 */
    check_case(3, 2, 7, 5, 14);    /* relu1_2 */
    check_case(8, 2, 11, 9, 15);   /* relu2_2 */
}
END_TEST

START_TEST(test_reference_finite_differences)
{
    dsd_vgg vgg;
    vgg_with_weights(&vgg, 15); /* ends on a ReLU: every layer kind */
    vcase k;
    case_make(&k, &vgg, 2, 9, 11, 21);
    racts t;
    ref_forward(&k, k.x, &t);
    size_t ni = image_numel(&k);
    double *rdx = tu_alloc(ni);
    ref_backward(&k, &t, k.g, rdx);
    racts_free(&t);
    enum { NXS = 16 };
    double fd[NXS], an[NXS];
    for (int j = 0; j < NXS; j++) {
        size_t i = (size_t)j * (ni / NXS) + 5;
        tu_numeric_grad(ref_loss, &k, &k.x[i], 1, 1e-6, &fd[j]);
        an[j] = rdx[i];
    }
    tu_check_close("reference VGG dL/dx vs finite differences", an, fd, NXS, 1e-5);
    free(rdx);
    case_free(&k);
    dsd_vgg_free(tu_ctx(), &vgg);
}
END_TEST

/* Tape vs no tape, determinism, the pool, tape errors. */
START_TEST(test_tape_deterministic_no_leaks)
{
    dsd_context *ctx = tu_ctx();
    int last = tu_small() ? 5 : 14, h = tu_small() ? 5 : 9, w = tu_small() ? 7 : 11;
    dsd_vgg vgg;
    vgg_with_weights(&vgg, last);
    vcase k;
    case_make(&k, &vgg, 2, h, w, 31);
    tu_upload(&vgg.params.values, k.p);
    size_t ni = image_numel(&k), no = out_numel(&k);
    dsd_tensor x, y1, y2, dy, dx;
    tu_tensor_from(&x, 2, 3, h, w, k.x);
    tu_tensor(&y1, 2, k.oc, k.oh, k.ow);
    tu_tensor(&y2, 2, k.oc, k.oh, k.ow);
    tu_tensor_from(&dy, 2, k.oc, k.oh, k.ow, k.g);
    tu_tensor(&dx, 2, 3, h, w);
    float *run[2];
    for (int r = 0; r < 2; r++) {
        TU_OK(dsd_context_finish(ctx));
        uint64_t before = dsd_pool_get_stats(ctx).bytes_in_use;
        TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));
        dsd_vgg_tape tape = {0};
        TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y1, &tape));
        uint64_t with_tape = dsd_pool_get_stats(ctx).bytes_in_use;
        ck_assert_uint_gt(with_tape, before);
        /* the real image's forward: nothing kept */
        TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y2, NULL));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape);
        TU_OK(dsd_vgg_backward(ctx, &vgg, &tape, &dy, &dx));
        /* the backward allocates nothing; the arena stays with the tape */
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape);
        run[r] = malloc((2 * no + ni) * sizeof(float));
        TU_OK(dsd_tensor_download(ctx, &y1, run[r], no));
        TU_OK(dsd_tensor_download(ctx, &y2, run[r] + no, no));
        TU_OK(dsd_tensor_download(ctx, &dx, run[r] + 2 * no, ni));
        ck_assert_msg(memcmp(run[r], run[r] + no, no * sizeof(float)) == 0,
                      "tape and no-tape features differ");
        /* errors: a pending tape is not overwritten; an empty one has no backward */
        TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y1, &tape));
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, with_tape); /* arena reused */
        TU_EXPECT_CTX_ERROR(dsd_vgg_forward(ctx, &vgg, &x, &y1, &tape), DSD_ERR_INVALID_ARGUMENT,
                            "tape");
        ck_assert(tape.pending);
        TU_EXPECT_CTX_ERROR(dsd_vgg_backward(ctx, &vgg, &tape, &dx, &dx), DSD_ERR_SHAPE, "dy");
        ck_assert(tape.pending);
        /* dx NULL: nothing computed, the tape is consumed */
        TU_OK(dsd_vgg_backward(ctx, &vgg, &tape, &dy, NULL));
        ck_assert(!tape.pending);
        TU_EXPECT_CTX_ERROR(dsd_vgg_backward(ctx, &vgg, &tape, &dy, &dx), DSD_ERR_INVALID_ARGUMENT,
                            "no forward");
        TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y1, &tape));
        dsd_vgg_tape_free(ctx, &tape);
        ck_assert(!tape.pending);
        dsd_vgg_tape_free(ctx, &tape);
        ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before);
    }
    ck_assert_msg(memcmp(run[0], run[1], (2 * no + ni) * sizeof(float)) == 0,
                  "two runs of the VGG differ");
    free(run[0]);
    free(run[1]);

    /* shape errors */
    dsd_tensor x4, tiny, ytiny;
    tu_tensor(&x4, 2, 4, h, w);
    tu_tensor(&tiny, 1, 3, 1, 1);
    tu_tensor(&ytiny, 1, 64, 1, 1);
    TU_EXPECT_CTX_ERROR(dsd_vgg_forward(ctx, &vgg, &x4, &y1, NULL), DSD_ERR_SHAPE, "3 channels");
    TU_EXPECT_CTX_ERROR(dsd_vgg_forward(ctx, &vgg, &x, &dx, NULL), DSD_ERR_SHAPE, "gives");
    TU_EXPECT_CTX_ERROR(dsd_vgg_forward(ctx, &vgg, &tiny, &ytiny, NULL), DSD_ERR_SHAPE,
                        "too small");
    tu_tensor_free(&x4);
    tu_tensor_free(&tiny);
    tu_tensor_free(&ytiny);

    dsd_tensor *all[] = {&x, &y1, &y2, &dy, &dx};
    for (int i = 0; i < TU_COUNT(all); i++)
        tu_tensor_free(all[i]);
    case_free(&k);
    dsd_vgg_free(ctx, &vgg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Loading */

/* One forward (with tape) and backward of vgg on a random (n, 3, h, w)
 * image: the features and dx, malloc'd. */
static float *tape_step(dsd_vgg *vgg, dsd_vgg_tape *tape, int n, int h, int w, size_t *count)
{
    dsd_context *ctx = tu_ctx();
    int oc, oh, ow;
    dsd_error err;
    TU_HOST_OK(dsd_vgg_output_shape(&vgg->cfg, h, w, &oc, &oh, &ow, &err), err);
    size_t ni = (size_t)n * 3 * h * w, no = (size_t)n * oc * oh * ow;
    tu_rng rng = tu_rng_init(55 + (uint64_t)h);
    double *hx = tu_alloc(ni), *hg = tu_alloc(no);
    tu_fill(&rng, hx, ni, -1.0, 1.0);
    tu_fill(&rng, hg, no, -1.0, 1.0);
    dsd_tensor x, y, dy, dx;
    tu_tensor_from(&x, n, 3, h, w, hx);
    tu_tensor_from(&dy, n, oc, oh, ow, hg);
    tu_tensor(&y, n, oc, oh, ow);
    tu_tensor(&dx, n, 3, h, w);
    TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));
    TU_OK(dsd_vgg_forward(ctx, vgg, &x, &y, tape));
    TU_OK(dsd_vgg_backward(ctx, vgg, tape, &dy, &dx));
    float *out = malloc((no + ni) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    TU_OK(dsd_tensor_download(ctx, &y, out, no));
    TU_OK(dsd_tensor_download(ctx, &dx, out + no, ni));
    *count = no + ni;
    tu_tensor_free(&x);
    tu_tensor_free(&y);
    tu_tensor_free(&dy);
    tu_tensor_free(&dx);
    free(hx);
    free(hg);
    return out;
}

/* dsd_vgg_plan names every conv and places the pass's memory; a tape reused
 * for another shape or moved to a VGG with another last layer re-plans, so
 * what it computes equals a fresh tape's. */
START_TEST(test_plan_and_tape_reuse)
{
    dsd_context *ctx = tu_ctx();
    dsd_error err;
    dsd_vgg_config cfg = {.last_layer = 7}; /* conv2_2 */
    dsd_network_plan train = {0}, infer = {0};
    TU_HOST_OK(dsd_vgg_plan(&cfg, 2, 12, 10, 1, &train, &err), err);
    TU_HOST_OK(dsd_vgg_plan(&cfg, 2, 12, 10, 0, &infer, &err), err);
    const int convs[] = {0, 2, 5, 7};
    ck_assert_uint_eq(train.n_layers, (size_t)TU_COUNT(convs));
    ck_assert_uint_eq(infer.n_layers, (size_t)TU_COUNT(convs));
    for (int i = 0; i < TU_COUNT(convs); i++) {
        char want[DSD_PARAM_NAME_MAX];
        snprintf(want, sizeof want, "features.%d", convs[i]);
        ck_assert_str_eq(train.layers[i].name, want);
    }
    ck_assert(dsd_network_plan_macs(&train) > 0);
    ck_assert(dsd_network_plan_macs(&train) == dsd_network_plan_macs(&infer));
    ck_assert_uint_lt(infer.arena_floats, train.arena_floats); /* nothing kept */
    ck_assert_int_eq(dsd_vgg_plan(&cfg, 1, 3, 1, 1, &infer, &err), DSD_ERR_SHAPE);

    dsd_vgg a, b;
    vgg_with_weights(&a, 7);
    vgg_with_weights(&b, 3); /* relu1_2: the tape keeps a copy of the output */
    struct {
        dsd_vgg *vgg;
        int n, h, w;
    } runs[] = {{&a, 2, 12, 10}, {&a, 2, 10, 12}, {&a, 1, 9, 7}, {&a, 2, 12, 10},
                {&b, 2, 12, 10}};
    dsd_vgg_tape shared = {0};
    for (int r = 0; r < TU_COUNT(runs); r++) {
        size_t n1, n2;
        float *got = tape_step(runs[r].vgg, &shared, runs[r].n, runs[r].h, runs[r].w, &n1);
        TU_HOST_OK(dsd_vgg_plan(&runs[r].vgg->cfg, runs[r].n, runs[r].h, runs[r].w, 1, &train,
                                &err), err);
        ck_assert_uint_eq(shared.plan.n_slots, train.n_slots);
        ck_assert_uint_eq(shared.plan.arena_floats, train.arena_floats);
        ck_assert_uint_ge(shared.arena.capacity, train.arena_floats * sizeof(float));
        dsd_vgg_tape fresh = {0};
        float *want = tape_step(runs[r].vgg, &fresh, runs[r].n, runs[r].h, runs[r].w, &n2);
        dsd_vgg_tape_free(ctx, &fresh);
        ck_assert_uint_eq(n1, n2);
        ck_assert_msg(memcmp(got, want, n1 * sizeof *got) == 0, "run %d (%dx3x%dx%d): the "
                      "reused tape and a fresh one differ", r, runs[r].n, runs[r].h, runs[r].w);
        free(got);
        free(want);
    }
    dsd_vgg_tape_free(ctx, &shared);
    dsd_network_plan_free(&train);
    dsd_network_plan_free(&infer);
    dsd_vgg_free(ctx, &a);
    dsd_vgg_free(ctx, &b);
}
END_TEST

static void expect_values(const dsd_vgg *vgg, const double *want, const char *what)
{
    size_t n = vgg->params.count;
    float *got = malloc(n * sizeof *got);
    ck_assert_ptr_nonnull(got);
    TU_OK(dsd_tensor_download(tu_ctx(), &vgg->params.values, got, n));
    size_t bad = n; /* the first mismatch (one assertion: Check's are slow per call) */
    for (size_t i = 0; i < n && bad == n; i++)
        if (got[i] != (float)want[i])
            bad = i;
    ck_assert_msg(bad == n, "%s: value %zu is %.9g, expected %.9g", what, bad,
                  bad < n ? (double)got[bad] : 0.0, bad < n ? want[bad] : 0.0);
    free(got);
}

/* A BF16 safetensors file written by hand (the writer stores F32 and F16
 * only): the table's tensors, each value truncated to bfloat16. */
static void write_bf16(const vcase *k, const char *path, double *rounded)
{
    char header[4096];
    int hn = 0;
    size_t off = 0;
    hn += snprintf(header + hn, sizeof header - (size_t)hn, "{");
    for (size_t i = 0; i < k->table->n; i++) {
        const dsd_param_info *e = &k->table->info[i];
        char shape[64];
        if (e->ndim == 4)
            snprintf(shape, sizeof shape, "%d,%d,%d,%d", e->shape[0], e->shape[1], e->shape[2],
                     e->shape[3]);
        else
            snprintf(shape, sizeof shape, "%d", e->shape[0]);
        hn += snprintf(header + hn, sizeof header - (size_t)hn,
                       "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                       i ? "," : "", e->name, shape, off, off + 2 * e->numel);
        off += 2 * e->numel;
    }
    hn += snprintf(header + hn, sizeof header - (size_t)hn, "}");
    ck_assert(hn > 0 && (size_t)hn < sizeof header);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char len[8];
    for (int b = 0; b < 8; b++)
        len[b] = (unsigned char)(((uint64_t)hn >> (8 * b)) & 0xff);
    ck_assert(fwrite(len, 1, 8, f) == 8 && fwrite(header, 1, (size_t)hn, f) == (size_t)hn);
    for (size_t i = 0; i < k->count; i++) {
        float v = (float)k->p[i];
        uint32_t u;
        memcpy(&u, &v, 4);
        uint16_t hi = (uint16_t)(u >> 16); /* truncation: exactly representable */
        unsigned char b2[2] = {(unsigned char)(hi & 0xff), (unsigned char)(hi >> 8)};
        ck_assert(fwrite(b2, 1, 2, f) == 2);
        rounded[i] = dsd_st_bf16_to_f32(hi);
    }
    ck_assert(fclose(f) == 0);
}

START_TEST(test_load)
{
    dsd_context *ctx = tu_ctx();
    char path[128], msg[DSD_ERROR_MESSAGE_MAX];
    dsd_vgg vgg;
    dsd_vgg_config cfg = {14};
    TU_OK(dsd_vgg_init(ctx, &vgg, &cfg));
    vcase k;
    case_make(&k, &vgg, 1, 16, 16, 41);

    /* no weights yet: refused */
    dsd_tensor x, y;
    tu_tensor(&x, 1, 3, 16, 16);
    TU_OK(dsd_tensor_fill(ctx, &x, 0.25f));
    tu_tensor(&y, 1, k.oc, k.oh, k.ow);
    TU_EXPECT_CTX_ERROR(dsd_vgg_forward(ctx, &vgg, &x, &y, NULL), DSD_ERR_INVALID_ARGUMENT,
                        "no weights", "doc/vgg.md");

    /* F32 with extra keys: exact */
    tu_path_into(path, sizeof path, tmp_dir, "vgg32.safetensors");
    write_weights(&k, path, 0, NULL, NULL);
    TU_OK(dsd_vgg_load(ctx, &vgg, path));
    ck_assert_int_eq(vgg.has_weights, 1);
    expect_values(&vgg, k.p, "F32 load");
    TU_OK(dsd_vgg_forward(ctx, &vgg, &x, &y, NULL));

    /* F16: the values rounded to half */
    double *h16 = tu_alloc(k.count);
    for (size_t i = 0; i < k.count; i++)
        h16[i] = dsd_st_f16_to_f32(dsd_st_f32_to_f16((float)k.p[i]));
    tu_path_into(path, sizeof path, tmp_dir, "vgg16.safetensors");
    write_weights(&k, path, 1, NULL, NULL);
    TU_OK(dsd_vgg_load(ctx, &vgg, path));
    expect_values(&vgg, h16, "F16 load");

    /* BF16 */
    double *b16 = tu_alloc(k.count);
    tu_path_into(path, sizeof path, tmp_dir, "vggbf16.safetensors");
    write_bf16(&k, path, b16);
    TU_OK(dsd_vgg_load(ctx, &vgg, path));
    expect_values(&vgg, b16, "BF16 load");

    /* back to F32, then failures leave these values in place */
    tu_path_into(path, sizeof path, tmp_dir, "vgg32.safetensors");
    TU_OK(dsd_vgg_load(ctx, &vgg, path));

    tu_path_into(path, sizeof path, tmp_dir, "missing.safetensors");
    write_weights(&k, path, 0, "features.12.bias", NULL);
    TU_EXPECT_CTX_ERROR(dsd_vgg_load(ctx, &vgg, path), DSD_ERR_FORMAT, path, "'features.12.bias'",
                        "conv3_2", "doc/vgg.md");
    snprintf(msg, sizeof msg, "%s", dsd_context_error(ctx)->message);
    printf("missing tensor: %s\n", msg);
    expect_values(&vgg, k.p, "after a failed load (missing tensor)");

    tu_path_into(path, sizeof path, tmp_dir, "wrong.safetensors");
    write_weights(&k, path, 0, NULL, "features.5.weight");
    TU_EXPECT_CTX_ERROR(dsd_vgg_load(ctx, &vgg, path), DSD_ERR_FORMAT, path, "'features.5.weight'",
                        "conv2_1", "[128,64,9,1]", "[128,64,3,3]");
    printf("wrong shape: %s\n", dsd_context_error(ctx)->message);
    expect_values(&vgg, k.p, "after a failed load (wrong shape)");

    tu_path_into(path, sizeof path, tmp_dir, "does-not-exist.safetensors");
    TU_EXPECT_CTX_ERROR(dsd_vgg_load(ctx, &vgg, path), DSD_ERR_IO, path, "doc/vgg.md",
                        "convert_vgg19.py");
    TU_EXPECT_CTX_ERROR(dsd_vgg_load(ctx, &vgg, NULL), DSD_ERR_INVALID_ARGUMENT, "doc/vgg.md");
    expect_values(&vgg, k.p, "after a failed load (no file)");

    /* a deeper network needs features.16.bias, which the file lacks (its
     * features.16.weight was an ignored extra key above) */
    dsd_vgg deep;
    dsd_vgg_config c16 = {16};
    TU_OK(dsd_vgg_init(ctx, &deep, &c16));
    tu_path_into(path, sizeof path, tmp_dir, "vgg32.safetensors");
    TU_EXPECT_CTX_ERROR(dsd_vgg_load(ctx, &deep, path), DSD_ERR_FORMAT, "features.16.bias",
                        "conv3_4");
    ck_assert_int_eq(deep.has_weights, 0);
    dsd_vgg_free(ctx, &deep);

    free(h16);
    free(b16);
    tu_tensor_free(&x);
    tu_tensor_free(&y);
    case_free(&k);
    dsd_vgg_free(ctx, &vgg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Content losses */

START_TEST(test_kind_names)
{
    const char *names[] = {"perceptual", "l1", "mse", "fft", "l1+fft"};
    const dsd_content_loss_kind kinds[] = {DSD_CONTENT_LOSS_PERCEPTUAL, DSD_CONTENT_LOSS_L1,
                                           DSD_CONTENT_LOSS_MSE, DSD_CONTENT_LOSS_FFT,
                                           DSD_CONTENT_LOSS_L1_FFT};
    dsd_error err;
    for (int i = 0; i < TU_COUNT(names); i++) {
        dsd_content_loss_kind k = (dsd_content_loss_kind)-1;
        TU_OK(dsd_content_loss_kind_parse(names[i], &k, &err));
        ck_assert_int_eq(k, kinds[i]);
        ck_assert_str_eq(dsd_content_loss_kind_name(kinds[i]), names[i]);
    }
    ck_assert_str_eq(dsd_content_loss_kind_name((dsd_content_loss_kind)9), "?");
    const char *bad[] = {"L1", "vgg", "", "perceptual ", "l2", "l1+", "fft+l1"};
    for (int i = 0; i < TU_COUNT(bad); i++) {
        dsd_content_loss_kind k = DSD_CONTENT_LOSS_MSE;
        ck_assert_int_eq(dsd_content_loss_kind_parse(bad[i], &k, &err),
                         DSD_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(k, DSD_CONTENT_LOSS_MSE); /* untouched */
        ck_assert_msg(strstr(err.message, "perceptual, l1, mse, fft, l1+fft") &&
                      strstr(err.message, bad[i]),
                      "%s", err.message);
    }
    dsd_content_loss_kind k;
    ck_assert_int_eq(dsd_content_loss_kind_parse(NULL, &k, &err), DSD_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_perceptual_needs_weights)
{
    dsd_context *ctx = tu_ctx();
    dsd_content_loss l;
    TU_EXPECT_CTX_ERROR(dsd_content_loss_init(ctx, &l, DSD_CONTENT_LOSS_PERCEPTUAL, NULL, NULL),
                        DSD_ERR_INVALID_ARGUMENT, "perceptual loss needs", "doc/vgg.md",
                        "scripts/convert_vgg19.py", "cannot download");
    ck_assert_ptr_null(l.vgg.params.values.buf);
    dsd_content_loss_free(ctx, &l);
    TU_EXPECT_CTX_ERROR(dsd_content_loss_init(ctx, &l, DSD_CONTENT_LOSS_PERCEPTUAL, "", NULL),
                        DSD_ERR_INVALID_ARGUMENT, "doc/vgg.md");
    char path[128];
    tu_path_into(path, sizeof path, tmp_dir, "absent.safetensors");
    uint64_t before = dsd_pool_get_stats(ctx).bytes_in_use;
    TU_EXPECT_CTX_ERROR(dsd_content_loss_init(ctx, &l, DSD_CONTENT_LOSS_PERCEPTUAL, path, NULL),
                        DSD_ERR_IO, path, "doc/vgg.md");
    ck_assert_ptr_null(l.vgg.params.values.buf);
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before);
    TU_EXPECT_CTX_ERROR(dsd_content_loss_init(ctx, &l, (dsd_content_loss_kind)7, NULL, NULL),
                        DSD_ERR_INVALID_ARGUMENT, "perceptual, l1, mse, fft, l1+fft");
    /* pixel kinds need no weights */
    TU_OK(dsd_content_loss_init(ctx, &l, DSD_CONTENT_LOSS_L1, NULL, NULL));
    ck_assert_ptr_null(l.vgg.params.values.buf);
    dsd_content_loss_free(ctx, &l);
}
END_TEST

/* One content-loss case on the host: fake, real, the weights (perceptual). */
typedef struct lcase {
    dsd_content_loss_kind kind;
    double fft_weight; /* L1_FFT */
    int n, c, h, w;
    vcase v;          /* perceptual: the network and its weights */
    double *fake, *real;
    racts real_acts;  /* perceptual: the reference features of real (computed once) */
} lcase;

static size_t lcase_numel(const lcase *k) { return (size_t)k->n * k->c * k->h * k->w; }

/* The reference value of the loss at k->fake. */
static double ref_content(const lcase *k)
{
    size_t m = lcase_numel(k);
    double l = 0.0;
    switch (k->kind) {
    case DSD_CONTENT_LOSS_PERCEPTUAL: {
        racts tf;
        const racts *tr = &k->real_acts;
        ref_forward(&k->v, k->fake, &tf);
        ref_mse_loss_forward(tf.a[tf.nl - 1], tr->a[tr->nl - 1], out_numel(&k->v), &l);
        racts_free(&tf);
        break;
    }
    case DSD_CONTENT_LOSS_L1:
        ref_l1_loss_forward(k->fake, k->real, m, &l);
        break;
    case DSD_CONTENT_LOSS_MSE:
        ref_mse_loss_forward(k->fake, k->real, m, &l);
        break;
    case DSD_CONTENT_LOSS_FFT:
        l = ref_fft_loss_forward(k->fake, k->real, k->n, k->c, k->h, k->w);
        break;
    case DSD_CONTENT_LOSS_L1_FFT:
        ref_l1_loss_forward(k->fake, k->real, m, &l);
        l += k->fft_weight * ref_fft_loss_forward(k->fake, k->real, k->n, k->c, k->h, k->w);
        break;
    }
    return l;
}

static double ref_content_fn(void *user) { return ref_content(user); }

/* d_fake += scale dL/dfake */
static void ref_content_backward(const lcase *k, double scale, double *d_fake)
{
    size_t m = lcase_numel(k);
    switch (k->kind) {
    case DSD_CONTENT_LOSS_PERCEPTUAL: {
        racts tf;
        const racts *tr = &k->real_acts;
        ref_forward(&k->v, k->fake, &tf);
        size_t no = out_numel(&k->v);
        double *df = tu_alloc(no);
        ref_mse_loss_backward(scale, tf.a[tf.nl - 1], tr->a[tr->nl - 1], no, df, NULL);
        ref_backward(&k->v, &tf, df, d_fake);
        free(df);
        racts_free(&tf);
        break;
    }
    case DSD_CONTENT_LOSS_L1:
        ref_l1_loss_backward(scale, k->fake, k->real, m, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_MSE:
        ref_mse_loss_backward(scale, k->fake, k->real, m, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_FFT:
        ref_fft_loss_backward(scale, k->fake, k->real, k->n, k->c, k->h, k->w, d_fake, NULL);
        break;
    case DSD_CONTENT_LOSS_L1_FFT:
        ref_l1_loss_backward(scale, k->fake, k->real, m, d_fake, NULL);
        ref_fft_loss_backward(scale * k->fft_weight, k->fake, k->real, k->n, k->c, k->h, k->w,
                              d_fake, NULL);
        break;
    }
}

/* fd: also check the reference's gradient against finite differences. */
static void check_content(dsd_content_loss_kind kind, int n, int h, int w, uint64_t seed, int fd)
{
    dsd_context *ctx = tu_ctx();
    lcase k;
    memset(&k, 0, sizeof k);
    k.kind = kind;
    k.fft_weight = 0.37; /* not the default 0.1: the weight must be the one set */
    k.n = n;
    k.c = 3;
    k.h = h;
    k.w = w;
    char path[128] = "";
    dsd_vgg shape_only;
    memset(&shape_only, 0, sizeof shape_only);
    if (kind == DSD_CONTENT_LOSS_PERCEPTUAL) {
        /* weights written to a file, loaded through the public init */
        TU_OK(dsd_vgg_init(ctx, &shape_only, NULL));
        case_make(&k.v, &shape_only, n, h, w, seed);
        free(k.v.x); /* the reference network is run on fake and real instead */
        k.v.x = NULL;
        tu_path_into(path, sizeof path, tmp_dir, "content.safetensors");
        write_weights(&k.v, path, 0, NULL, NULL);
    }
    size_t m = lcase_numel(&k);
    k.fake = random_array(m, seed + 2, -1.0, 1.0);
    k.real = random_array(m, seed + 3, -1.0, 1.0);
    if (kind == DSD_CONTENT_LOSS_PERCEPTUAL)
        ref_forward(&k.v, k.real, &k.real_acts);
    const double scale = 3.5;
    double want = ref_content(&k);
    double *dfp = random_array(m, seed + 4, -1.0, 1.0), *rdf = tu_alloc(m);
    ref_content_backward(&k, scale, rdf);

    dsd_tensor fake, real, loss, dfake;
    tu_tensor_from(&fake, n, 3, h, w, k.fake);
    tu_tensor_from(&real, n, 3, h, w, k.real);
    tu_tensor(&loss, 1, 1, 1, 1);
    tu_tensor_from(&dfake, n, 3, h, w, dfp);
    TU_OK(dsd_context_finish(ctx));
    uint64_t base = dsd_pool_get_stats(ctx).bytes_in_use;
    dsd_content_loss l;
    TU_OK(dsd_content_loss_init(ctx, &l, kind, path, NULL));
    ck_assert_float_eq(l.fft_weight, 0.1f);
    dsd_content_loss_set_fft_weight(&l, (float)k.fft_weight);
    TU_OK(dsd_context_finish(ctx));
    uint64_t before = dsd_pool_get_stats(ctx).bytes_in_use;

    /* validation forward: the value, nothing kept */
    TU_OK(dsd_content_loss_forward(ctx, &l, &fake, &real, &loss, 0));
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before);
    double got0 = tu_download_scalar(&loss);
    TU_EXPECT_CTX_ERROR(dsd_content_loss_backward(ctx, &l, scale, &dfake), DSD_ERR_INVALID_ARGUMENT,
                        "no training forward");

    TU_OK(dsd_content_loss_forward(ctx, &l, &fake, &real, &loss, 1));
    double got = tu_download_scalar(&loss);
    char what[96];
    snprintf(what, sizeof what, "%s loss %dx3x%dx%d", dsd_content_loss_kind_name(kind), n, h, w);
    tu_check_close(what, &got, &want, 1, 1e-4);
    ck_assert_msg(got == got0, "%s: validation %.9g and training %.9g values differ", what, got0,
                  got);
    TU_OK(dsd_content_loss_backward(ctx, &l, (float)scale, &dfake));
    ck_assert(!l.pending);
    /* all given back but the VGG tape's arena, kept for the next step */
    uint64_t kept = l.tape.arena.capacity + l.tape.workspace.capacity;
    ck_assert(kind == DSD_CONTENT_LOSS_PERCEPTUAL ? kept > 0 : kept == 0);
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, before + kept);
    snprintf(what, sizeof what, "%s d_fake %dx3x%dx%d", dsd_content_loss_kind_name(kind), n, h, w);
    tu_check_accum(what, &dfake, dfp, rdf, 1e-4);
    printf("%s: loss %.6g\n", dsd_content_loss_kind_name(kind), got);

    /* a pending forward dropped by the next one and by free */
    TU_OK(dsd_content_loss_forward(ctx, &l, &fake, &real, &loss, 1));
    TU_OK(dsd_content_loss_forward(ctx, &l, &fake, &real, &loss, 1));
    ck_assert(l.pending);
    TU_EXPECT_CTX_ERROR(dsd_content_loss_forward(ctx, &l, &fake, &loss, &loss, 1), DSD_ERR_SHAPE,
                        "real");
    ck_assert(l.pending); /* a refused call changes nothing */
    TU_EXPECT_CTX_ERROR(dsd_content_loss_backward(ctx, &l, 1.0f, &loss), DSD_ERR_SHAPE, "d_fake");
    ck_assert(l.pending);
    dsd_content_loss_free(ctx, &l);
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).bytes_in_use, base);
    dsd_content_loss_free(ctx, &l);

    /* the reference backward against finite differences (unit scale) */
    if (fd) {
        enum { NXS = 12 };
        double *r1 = tu_alloc(m), num[NXS], an[NXS];
        ref_content_backward(&k, 1.0, r1);
        for (int j = 0; j < NXS; j++) {
            size_t i = (size_t)j * (m / NXS) + 3;
            tu_numeric_grad(ref_content_fn, &k, &k.fake[i], 1, 1e-6, &num[j]);
            an[j] = r1[i];
        }
        snprintf(what, sizeof what, "reference %s dL/dfake vs finite differences",
                 dsd_content_loss_kind_name(kind));
        tu_check_close(what, an, num, NXS, 1e-5);
        free(r1);
    }
    free(dfp);
    free(rdf);
    free(k.real);
    free(k.fake);
    if (kind == DSD_CONTENT_LOSS_PERCEPTUAL) {
        racts_free(&k.real_acts);
        case_free(&k.v);
        dsd_vgg_free(ctx, &shape_only);
    }
    tu_tensor_free(&fake);
    tu_tensor_free(&real);
    tu_tensor_free(&loss);
    tu_tensor_free(&dfake);
}

START_TEST(test_content_losses)
{
    int n = 2, h = tu_small() ? 6 : 9, w = tu_small() ? 5 : 11;
    check_content(DSD_CONTENT_LOSS_L1, n, h, w, 51, 1);
    check_content(DSD_CONTENT_LOSS_MSE, n, h, w, 52, 1);
    check_content(DSD_CONTENT_LOSS_FFT, n, h, w, 53, 1);
    check_content(DSD_CONTENT_LOSS_L1_FFT, n, h, w, 56, 1);
    if (!tu_small()) {
        check_content(DSD_CONTENT_LOSS_PERCEPTUAL, 2, 9, 11, 54, 1);
        check_content(DSD_CONTENT_LOSS_PERCEPTUAL, 1, 16, 12, 55, 0);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "vgg") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("vgg");
    TCase *tc = tcase_create("vgg");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_config_counts_shapes);
    tcase_add_test(tc, test_table_and_views);
    tcase_add_test(tc, test_matches_reference);
    if (!tu_small())
        tcase_add_test(tc, test_reference_finite_differences);
    tcase_add_test(tc, test_tape_deterministic_no_leaks);
    tcase_add_test(tc, test_plan_and_tape_reuse);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_perceptual_needs_weights);
    tcase_add_test(tc, test_content_losses);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* frees the shared context first */
    clfftTeardown();        /* the FFT loss's process-wide clFFT state (see src/ops/fft_loss.c) */
    tu_rmtree(tmp_dir);
    return status;
}
