/*
 * test-torch-reference.c: the generator and the discriminator against an
 * independent PyTorch implementation (scripts/torch_reference.py), through data
 * it stored in tests/data/torch-reference.safetensors: the weights, an
 * input, the float64 forward output, an upstream gradient, dx and every
 * parameter gradient (all as F32). Neither Python nor PyTorch is needed here;
 * doc/pytorch.md says how the file is regenerated.
 *
 * What this adds to test-generator.c / test-discriminator.c: those compare
 * the library with references composed from this project's own op
 * references, so a misreading of the paper shared by both would pass there.
 * Here the other side is PyTorch's nn.Conv2d, ReflectionPad2d, PixelShuffle,
 * InstanceNorm2d and autograd, built from the header's description.
 *
 * Checked, per network: the file's "<net>.weights.*" names are exactly the
 * library's parameter table and every shape matches (what
 * load_state_dict(strict=True) demands on the PyTorch side); the forward
 * output, dx and every parameter gradient to 1e-4 relative (max|got - ref| /
 * max(max|ref|, floor), the worst element's index and both values in the
 * failure message). Conv biases in front of an InstanceNorm have an exactly
 * zero gradient (the norm removes any per-channel constant), so PyTorch's
 * value is rounding noise; for those the floor is the layer's weight
 * gradient scale instead of 1e-6. The name/shape check itself is tested on
 * tables that differ from the file (more blocks, another up kernel, the
 * other network), so it cannot pass vacuously.
 *
 * The file is found as $DSDEBLUR_TEST_SRCDIR/tests/data/torch-reference.safetensors
 * (make check sets DSDEBLUR_TEST_SRCDIR to the source tree, which keeps
 * out-of-tree builds and distcheck working), else relative to the current
 * directory.
 */
#include "testutil.h"
#include "io/safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
#define FLOOR 1e-6
#define DATA_FILE "tests/data/torch-reference.safetensors"

/* ------------------------------------------------------------------------ */
/* The reference file */

static dsd_safetensors *open_reference(void)
{
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", srcdir && *srcdir ? srcdir : ".", DATA_FILE);
    dsd_safetensors *st = NULL;
    dsd_error err;
    if (dsd_safetensors_open(path, &st, &err) != DSD_OK) {
        char line[DSD_ERROR_LINE_MAX];
        ck_abort_msg("cannot open the PyTorch reference data: %s (DSDEBLUR_TEST_SRCDIR=%s)",
                     dsd_error_format(&err, line, sizeof line), srcdir ? srcdir : "(unset)");
    }
    return st;
}

static const dsd_st_tensor *need(const dsd_safetensors *st, const char *name)
{
    const dsd_st_tensor *t = dsd_safetensors_find(st, name);
    ck_assert_msg(t != NULL, "reference file has no tensor '%s'", name);
    return t;
}

/* The whole tensor as floats (malloc'd). */
static float *read_floats(const dsd_safetensors *st, const dsd_st_tensor *t)
{
    float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
    ck_assert_msg(out != NULL, "out of memory for '%s'", t->name);
    dsd_error err;
    dsd_status s = dsd_safetensors_read_f32(st, t->name, t->ndim, t->shape, out, &err);
    if (s != DSD_OK) {
        char line[DSD_ERROR_LINE_MAX];
        ck_abort_msg("%s", dsd_error_format(&err, line, sizeof line));
    }
    return out;
}

static const char *meta(const dsd_safetensors *st, const char *key)
{
    const char *v = dsd_safetensors_metadata(st, key);
    ck_assert_msg(v != NULL, "reference file lacks metadata '%s'", key);
    return v;
}

static int meta_int(const dsd_safetensors *st, const char *key)
{
    const char *v = meta(st, key);
    char *end;
    long x = strtol(v, &end, 10);
    ck_assert_msg(*v && !*end, "metadata '%s' = '%s' is not an integer", key, v);
    return (int)x;
}

static float meta_float(const dsd_safetensors *st, const char *key)
{
    const char *v = meta(st, key);
    char *end;
    double x = strtod(v, &end);
    ck_assert_msg(*v && !*end, "metadata '%s' = '%s' is not a number", key, v);
    return (float)x;
}

/* A device tensor (N, C, H, W) holding the 4-D file tensor t. */
static void tensor_from_file(dsd_tensor *d, const dsd_safetensors *st, const dsd_st_tensor *t)
{
    ck_assert_msg(t->ndim == 4, "'%s' has %d dimensions, want 4", t->name, t->ndim);
    TU_OK(dsd_tensor_init(tu_ctx(), d, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                          (int)t->shape[3]));
    float *host = read_floats(st, t);
    TU_OK(dsd_tensor_upload(tu_ctx(), d, host, t->numel));
    free(host);
}

/* ------------------------------------------------------------------------ */
/* Names and shapes: the file against a parameter table */

/* Number of differences between the file's "<prefix>.weights.<name>" tensors
 * and the table p (a table name missing from the file, a file name missing
 * from the table, a shape that differs); the first is described in msg. */
static int name_set_mismatches(const dsd_safetensors *st, const char *prefix, const dsd_params *p,
                               char *msg, size_t size)
{
    char key[256], want[DSD_PARAM_NAME_MAX + 64];
    int bad = 0;
    msg[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        snprintf(key, sizeof key, "%s.weights.%s", prefix, e->name);
        const dsd_st_tensor *t = dsd_safetensors_find(st, key);
        int same = t && t->ndim == e->ndim;
        for (int k = 0; same && k < e->ndim; k++)
            same = t->shape[k] == e->shape[k];
        if (!same && !bad++) {
            size_t len = 0;
            for (int k = 0; k < e->ndim; k++)
                len += (size_t)snprintf(want + len, sizeof want - len, "%s%d", k ? "," : "[",
                                        e->shape[k]);
            snprintf(want + len, sizeof want - len, "]");
            snprintf(msg, size, t ? "'%s': file shape differs from the library's %s"
                                  : "library parameter '%s' (%s) is not in the file",
                     key, want);
        }
    }
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < dsd_safetensors_count(st); i++) {
        const char *name = dsd_safetensors_tensor(st, i)->name;
        if (strncmp(name, prefix, plen) || strncmp(name + plen, ".weights.", 9))
            continue;
        if (!dsd_params_find(p, name + plen + 9) && !bad++)
            snprintf(msg, size, "file tensor '%s' is not a library parameter", name);
    }
    return bad;
}

/* Copies every parameter from the file into the values arena and zeroes the
 * gradients. perturb (may be NULL) names a parameter whose first element gets
 * delta added (the sensitivity test). */
static void upload_weights_perturbed(const dsd_safetensors *st, const char *prefix, dsd_params *p,
                                     const char *perturb, float delta)
{
    float *host = calloc(p->count, sizeof *host);
    ck_assert(host != NULL);
    char key[256];
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        int64_t shape[4];
        for (int k = 0; k < e->ndim; k++)
            shape[k] = e->shape[k];
        snprintf(key, sizeof key, "%s.weights.%s", prefix, e->name);
        dsd_error err;
        if (dsd_safetensors_read_f32(st, key, e->ndim, shape, host + e->offset, &err) != DSD_OK) {
            char line[DSD_ERROR_LINE_MAX];
            ck_abort_msg("%s", dsd_error_format(&err, line, sizeof line));
        }
    }
    if (perturb) {
        const dsd_param_info *e = dsd_params_find(p, perturb);
        ck_assert_msg(e != NULL, "no parameter '%s'", perturb);
        host[e->offset] += delta;
    }
    TU_OK(dsd_tensor_upload(tu_ctx(), &p->values, host, p->count));
    TU_OK(dsd_tensor_fill(tu_ctx(), &p->grads, 0.0f));
    free(host);
}

static void upload_weights(const dsd_safetensors *st, const char *prefix, dsd_params *p)
{
    upload_weights_perturbed(st, prefix, p, NULL, 0.0f);
}

/* ------------------------------------------------------------------------ */
/* Comparison */

/* "[1,0,3,4]" for flat index i of shape. */
static void format_index(char *buf, size_t size, size_t i, int ndim, const int64_t *shape)
{
    size_t idx[DSD_ST_MAX_DIMS];
    for (int k = ndim - 1; k >= 0; k--) {
        idx[k] = i % (size_t)shape[k];
        i /= (size_t)shape[k];
    }
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < ndim && len < size; k++)
        len += (size_t)snprintf(buf + len, size - len, "%s%zu", k ? "," : "[", idx[k]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

/* Largest error seen per kind, for the summary line. */
typedef struct err_summary {
    double out, dx, grad;
    char grad_name[DSD_PARAM_NAME_MAX];
} err_summary;

/* Relative error of got against ref (n elements, shaped like the file tensor
 * `like` for the index in the message); fails with the worst element. */
static double compare_doubles(const char *what, const double *got, const double *ref, size_t n,
                              const dsd_st_tensor *like, double floor_)
{
    size_t worst = 0;
    double e = tu_rel_error(got, ref, n, floor_, &worst);
    char where[128];
    format_index(where, sizeof where, worst, like->ndim, like->shape);
    ck_assert_msg(e <= TOL, "%s: relative error %.3g > %.3g (floor %.3g) at element %zu %s of "
                  "%zu: library %.9g, PyTorch %.9g", what, e, TOL, floor_, worst, where, n,
                  got[worst], ref[worst]);
    return e;
}

/* Compares got[0..n) with the file tensor ref (same element count). */
static double compare(const char *what, const float *got, const dsd_safetensors *st,
                      const dsd_st_tensor *ref, double floor_)
{
    size_t n = ref->numel;
    float *rf = read_floats(st, ref);
    double *g = tu_alloc(n), *r = tu_alloc(n);
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        r[i] = rf[i];
    }
    double e = compare_doubles(what, g, r, n, ref, floor_);
    free(rf);
    free(g);
    free(r);
    return e;
}

/* The file tensor as doubles (tu_alloc'd). */
static double *read_doubles(const dsd_safetensors *st, const dsd_st_tensor *t)
{
    float *f = read_floats(st, t);
    double *d = tu_alloc(t->numel);
    for (size_t i = 0; i < t->numel; i++)
        d[i] = f[i];
    free(f);
    return d;
}

static double *download_doubles(const dsd_tensor *t)
{
    double *d = tu_alloc(dsd_tensor_numel(t));
    tu_download(t, d);
    return d;
}

/* Max |v| of a file tensor. */
static double max_abs(const dsd_safetensors *st, const dsd_st_tensor *t)
{
    float *v = read_floats(st, t);
    double m = 0.0;
    for (size_t i = 0; i < t->numel; i++)
        m = fmax(m, fabs((double)v[i]));
    free(v);
    return m;
}

/* Downloads the grads arena and compares every parameter's slice. first, last:
 * "layers.<i>.conv.bias" with first <= i <= last have an exactly zero gradient
 * (conv followed by InstanceNorm); their floor is the layer's weight gradient
 * scale. Pass first > last for none. */
static void compare_grads(const dsd_safetensors *st, const char *prefix, const dsd_params *p,
                          int first, int last, err_summary *sum)
{
    float *grads = malloc(p->count * sizeof *grads);
    ck_assert(grads != NULL);
    TU_OK(dsd_tensor_download(tu_ctx(), &p->grads, grads, p->count));
    char key[256], what[320];
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        snprintf(key, sizeof key, "%s.grad.%s", prefix, e->name);
        const dsd_st_tensor *ref = need(st, key);
        ck_assert_msg(ref->numel == e->numel, "'%s' has %" PRIu64 " elements, the library %zu",
                      key, ref->numel, e->numel);
        double floor_ = FLOOR;
        int layer;
        char rest[32];
        if (sscanf(e->name, "layers.%d.conv.%31s", &layer, rest) == 2 && !strcmp(rest, "bias") &&
            layer >= first && layer <= last) {
            snprintf(what, sizeof what, "%s.grad.layers.%d.conv.weight", prefix, layer);
            floor_ = fmax(FLOOR, max_abs(st, need(st, what)));
        }
        snprintf(what, sizeof what, "%s gradient", key);
        double err = compare(what, grads + e->offset, st, ref, floor_);
        if (err > sum->grad || !sum->grad_name[0]) {
            sum->grad = fmax(err, sum->grad);
            snprintf(sum->grad_name, sizeof sum->grad_name, "%s", e->name);
        }
    }
    free(grads);
}

static double compare_tensor(const char *what, const dsd_tensor *t, const dsd_safetensors *st,
                             const dsd_st_tensor *ref)
{
    size_t n = dsd_tensor_numel(t);
    ck_assert_msg(n == ref->numel, "%s: library has %zu elements, PyTorch %" PRIu64, what, n,
                  ref->numel);
    float *got = malloc(n * sizeof *got);
    ck_assert(got != NULL);
    TU_OK(dsd_tensor_download(tu_ctx(), t, got, n));
    double e = compare(what, got, st, ref, FLOOR);
    free(got);
    return e;
}

/* ------------------------------------------------------------------------ */
/* Configs from the file's metadata */

static dsd_generator_config generator_config(const dsd_safetensors *st)
{
    dsd_generator_config c;
    c.base_width = meta_int(st, "generator.base_width");
    c.n_blocks = meta_int(st, "generator.n_blocks");
    c.mlp_ratio = meta_int(st, "generator.mlp_ratio");
    c.up_kernel = meta_int(st, "generator.up_kernel");
    c.dropout = meta_float(st, "generator.dropout");
    c.slope = meta_float(st, "generator.slope");
    /* PyTorch's dropout masks are not the library's Philox streams: the
     * reference is only comparable without dropout. */
    ck_assert_msg(c.dropout == 0.0f, "reference generator has dropout %g; it must be 0",
                  (double)c.dropout);
    return c;
}

static dsd_discriminator_config discriminator_config(const dsd_safetensors *st)
{
    dsd_discriminator_config c;
    c.in_channels = meta_int(st, "discriminator.in_channels");
    c.base_width = meta_int(st, "discriminator.base_width");
    c.n_layers = meta_int(st, "discriminator.n_layers");
    c.norm_affine = meta_int(st, "discriminator.norm_affine");
    c.eps = meta_float(st, "discriminator.eps");
    c.slope = meta_float(st, "discriminator.slope");
    return c;
}

/* ------------------------------------------------------------------------ */
/* Tests */

START_TEST(test_generator_matches_torch)
{
    dsd_context *ctx = tu_ctx();
    dsd_safetensors *st = open_reference();
    dsd_generator_config cfg = generator_config(st);
    dsd_generator g;
    TU_OK(dsd_generator_init(ctx, &g, &cfg));

    char msg[512];
    int bad = name_set_mismatches(st, "generator", &g.params, msg, sizeof msg);
    ck_assert_msg(bad == 0, "generator: %d differences between the file and the library's "
                  "parameter table, first: %s", bad, msg);
    upload_weights(st, "generator", &g.params);

    dsd_tensor x, y, dy, dx;
    const dsd_st_tensor *xr = need(st, "generator.x");
    tensor_from_file(&x, st, xr);
    tensor_from_file(&dy, st, need(st, "generator.dy"));
    TU_OK(dsd_tensor_init(ctx, &y, x.n, x.c, x.h, x.w));
    TU_OK(dsd_tensor_init(ctx, &dx, x.n, x.c, x.h, x.w));
    TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));

    dsd_generator_tape tape = {.step = 0};
    TU_OK(dsd_generator_forward(ctx, &g, &x, &y, &tape));
    TU_OK(dsd_generator_backward(ctx, &g, &tape, &dy, &dx));
    dsd_generator_tape_free(ctx, &tape);

    err_summary sum = {0};
    sum.out = compare_tensor("generator y", &y, st, need(st, "generator.y"));
    sum.dx = compare_tensor("generator dx", &dx, st, need(st, "generator.dx"));
    compare_grads(st, "generator", &g.params, 1, 0, &sum);

    /* y = clamp(x + t, -1, 1) and dx = dy [|x + t| <= 1] + (the network's
     * part) are dominated by the global residual: max|y - x| and the
     * network's part of dx are ~10% and ~1% of max|y| and max|dx| here. So
     * compare those parts on their own scale too: y - x, and dx - dy * mask
     * with the mask from PyTorch's y (|y| < 1: not clamped). */
    const dsd_st_tensor *yr = need(st, "generator.y"), *dxr = need(st, "generator.dx");
    size_t n = yr->numel;
    double *hx = read_doubles(st, xr), *hdy = read_doubles(st, need(st, "generator.dy"));
    double *ry = read_doubles(st, yr), *rdx = read_doubles(st, dxr);
    double *gy = download_doubles(&y), *gdx = download_doubles(&dx);
    for (size_t i = 0; i < n; i++) {
        double pass = fabs(ry[i]) < 1.0 ? hdy[i] : 0.0;
        gy[i] -= hx[i];
        ry[i] -= hx[i];
        gdx[i] -= pass;
        rdx[i] -= pass;
    }
    double net_y = compare_doubles("generator y - x", gy, ry, n, yr, FLOOR);
    double net_dx = compare_doubles("generator dx - dy * [not clamped]", gdx, rdx, n, dxr, FLOOR);
    free(hx);
    free(hdy);
    free(ry);
    free(rdx);
    free(gy);
    free(gdx);
    printf("PyTorch %s reference, generator (%zu parameters, input %dx%dx%dx%d): max relative "
           "error y %.3g (y - x: %.3g), dx %.3g (network part: %.3g), parameter gradients %.3g "
           "(%s)\n", meta(st, "torch_version"), g.params.count, x.n, x.c, x.h, x.w, sum.out,
           net_y, sum.dx, net_dx, sum.grad, sum.grad_name);

    dsd_tensor_free(ctx, &x);
    dsd_tensor_free(ctx, &y);
    dsd_tensor_free(ctx, &dy);
    dsd_tensor_free(ctx, &dx);
    dsd_generator_free(ctx, &g);
    dsd_safetensors_close(st);
}
END_TEST

START_TEST(test_discriminator_matches_torch)
{
    dsd_context *ctx = tu_ctx();
    dsd_safetensors *st = open_reference();
    dsd_discriminator_config cfg = discriminator_config(st);
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &cfg));

    char msg[512];
    int bad = name_set_mismatches(st, "discriminator", &d.params, msg, sizeof msg);
    ck_assert_msg(bad == 0, "discriminator: %d differences between the file and the library's "
                  "parameter table, first: %s", bad, msg);
    upload_weights(st, "discriminator", &d.params);

    dsd_tensor x, logits, dlogits, dx;
    tensor_from_file(&x, st, need(st, "discriminator.x"));
    const dsd_st_tensor *yr = need(st, "discriminator.y");
    int oh = 0, ow = 0;
    dsd_error err;
    ck_assert(dsd_discriminator_output_size(&cfg, x.h, x.w, &oh, &ow, &err) == DSD_OK);
    ck_assert_msg(yr->ndim == 4 && yr->shape[0] == x.n && yr->shape[1] == 1 &&
                  yr->shape[2] == oh && yr->shape[3] == ow,
                  "PyTorch logits are %" PRId64 "x%" PRId64 "x%" PRId64 "x%" PRId64 ", the "
                  "library's %dx1x%dx%d", yr->shape[0], yr->shape[1], yr->shape[2],
                  yr->shape[3], x.n, oh, ow);
    tensor_from_file(&dlogits, st, need(st, "discriminator.dy"));
    TU_OK(dsd_tensor_init(ctx, &logits, x.n, 1, oh, ow));
    TU_OK(dsd_tensor_init(ctx, &dx, x.n, x.c, x.h, x.w));
    TU_OK(dsd_tensor_fill(ctx, &dx, 0.0f));

    dsd_discriminator_tape tape = {0};
    TU_OK(dsd_discriminator_forward(ctx, &d, &x, &logits, &tape));
    TU_OK(dsd_discriminator_backward(ctx, &d, &tape, &dlogits, &dx, 1));
    dsd_discriminator_tape_free(ctx, &tape);

    err_summary sum = {0};
    sum.out = compare_tensor("discriminator logits", &logits, st, yr);
    sum.dx = compare_tensor("discriminator dx", &dx, st, need(st, "discriminator.dx"));
    compare_grads(st, "discriminator", &d.params, 1, cfg.n_layers, &sum);
    printf("PyTorch %s reference, discriminator (%zu parameters, input %dx%dx%dx%d): max "
           "relative error logits %.3g, dx %.3g, parameter gradients %.3g (%s)\n",
           meta(st, "torch_version"), d.params.count, x.n, x.c, x.h, x.w, sum.out, sum.dx,
           sum.grad, sum.grad_name);

    dsd_tensor_free(ctx, &x);
    dsd_tensor_free(ctx, &logits);
    dsd_tensor_free(ctx, &dlogits);
    dsd_tensor_free(ctx, &dx);
    dsd_discriminator_free(ctx, &d);
    dsd_safetensors_close(st);
}
END_TEST

/* The strict name/shape check must see tables that do not match the file. */
START_TEST(test_name_check_detects_differences)
{
    dsd_context *ctx = tu_ctx();
    dsd_safetensors *st = open_reference();
    dsd_generator_config cfg = generator_config(st);
    char msg[512];
    dsd_generator g;

    /* one block more: the 18 parameters of the extra block are not in the file */
    dsd_generator_config more = cfg;
    more.n_blocks++;
    TU_OK(dsd_generator_init(ctx, &g, &more));
    int bad = name_set_mismatches(st, "generator", &g.params, msg, sizeof msg);
    ck_assert_msg(bad == 18, "extra block: %d differences, want 18 (%s)", bad, msg);
    ck_assert_msg(strstr(msg, "is not in the file") != NULL, "message: %s", msg);
    dsd_generator_free(ctx, &g);

    /* one block fewer: the file has 18 names the table lacks */
    if (cfg.n_blocks > 0) {
        dsd_generator_config fewer = cfg;
        fewer.n_blocks--;
        TU_OK(dsd_generator_init(ctx, &g, &fewer));
        bad = name_set_mismatches(st, "generator", &g.params, msg, sizeof msg);
        ck_assert_msg(bad == 18, "missing block: %d differences, want 18 (%s)", bad, msg);
        ck_assert_msg(strstr(msg, "is not a library parameter") != NULL, "message: %s", msg);
        dsd_generator_free(ctx, &g);
    }

    /* same names, other up kernel: the two up weights differ in shape */
    dsd_generator_config kernel = cfg;
    kernel.up_kernel = cfg.up_kernel == 1 ? 3 : 1;
    TU_OK(dsd_generator_init(ctx, &g, &kernel));
    bad = name_set_mismatches(st, "generator", &g.params, msg, sizeof msg);
    ck_assert_msg(bad == 2, "other up kernel: %d differences, want 2 (%s)", bad, msg);
    ck_assert_msg(strstr(msg, "up.0.weight") && strstr(msg, "shape differs"), "message: %s", msg);
    dsd_generator_free(ctx, &g);

    /* the discriminator's table against the generator's names */
    dsd_discriminator_config dcfg = discriminator_config(st);
    dsd_discriminator d;
    TU_OK(dsd_discriminator_init(ctx, &d, &dcfg));
    bad = name_set_mismatches(st, "generator", &d.params, msg, sizeof msg);
    ck_assert_msg((size_t)bad >= d.params.n, "other network: only %d differences", bad);
    dsd_discriminator_free(ctx, &d);
    dsd_safetensors_close(st);
}
END_TEST

/* The comparison is sharp enough to see one slightly wrong weight deep in
 * each network (a library bug of that size would fail the tests above). */
static double perturbed_error(dsd_context *ctx, const dsd_safetensors *st, int generator,
                              const char *name, float delta)
{
    const char *prefix = generator ? "generator" : "discriminator";
    char key[64];
    snprintf(key, sizeof key, "%s.x", prefix);
    dsd_tensor x, y;
    tensor_from_file(&x, st, need(st, key));
    snprintf(key, sizeof key, "%s.y", prefix);
    const dsd_st_tensor *yr = need(st, key);
    TU_OK(dsd_tensor_init(ctx, &y, (int)yr->shape[0], (int)yr->shape[1], (int)yr->shape[2],
                          (int)yr->shape[3]));
    if (generator) {
        dsd_generator_config cfg = generator_config(st);
        dsd_generator g;
        TU_OK(dsd_generator_init(ctx, &g, &cfg));
        upload_weights_perturbed(st, prefix, &g.params, name, delta);
        TU_OK(dsd_generator_forward(ctx, &g, &x, &y, NULL));
        dsd_generator_free(ctx, &g);
    } else {
        dsd_discriminator_config cfg = discriminator_config(st);
        dsd_discriminator d;
        TU_OK(dsd_discriminator_init(ctx, &d, &cfg));
        upload_weights_perturbed(st, prefix, &d.params, name, delta);
        TU_OK(dsd_discriminator_forward(ctx, &d, &x, &y, NULL));
        dsd_discriminator_free(ctx, &d);
    }
    size_t n = yr->numel;
    float *got = malloc(n * sizeof *got), *ref = read_floats(st, yr);
    double *g64 = tu_alloc(n), *r64 = tu_alloc(n);
    ck_assert(got != NULL);
    TU_OK(dsd_tensor_download(ctx, &y, got, n));
    for (size_t i = 0; i < n; i++) {
        g64[i] = got[i];
        r64[i] = ref[i];
    }
    if (generator) { /* the network's part, as in test_generator_matches_torch */
        double *hx = download_doubles(&x);
        for (size_t i = 0; i < n; i++) {
            g64[i] -= hx[i];
            r64[i] -= hx[i];
        }
        free(hx);
    }
    double e = tu_rel_error(g64, r64, n, FLOOR, NULL);
    printf("%s with %s[0] %+g: relative error of the output%s %.3g\n", prefix, name,
           (double)delta, generator ? " - x" : "", e);
    free(got);
    free(ref);
    free(g64);
    free(r64);
    dsd_tensor_free(ctx, &x);
    dsd_tensor_free(ctx, &y);
    return e;
}

START_TEST(test_comparison_detects_a_small_weight_error)
{
    /* a first-layer bias, a block's last bias, a discriminator middle weight:
     * each +0.01 on one element, i.e. about 1% to 5% of the weight's scale */
    static const struct {
        int generator;
        const char *name;
    } cases[] = {{1, "head.bias"}, {1, "blocks.1.dsc.2.pointwise.bias"},
                 {0, "layers.2.conv.weight"}};
    dsd_context *ctx = tu_ctx();
    dsd_safetensors *st = open_reference();
    for (int i = 0; i < TU_COUNT(cases); i++) {
        double e = perturbed_error(ctx, st, cases[i].generator, cases[i].name, 0.01f);
        ck_assert_msg(e > TOL, "%s[0] + 0.01 changes the output by only %.3g <= %.3g",
                      cases[i].name, e, TOL);
    }
    dsd_safetensors_close(st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("torch-reference");
    TCase *tc = tcase_create("torch-reference");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_generator_matches_torch);
    tcase_add_test(tc, test_discriminator_matches_torch);
    tcase_add_test(tc, test_name_check_detects_differences);
    tcase_add_test(tc, test_comparison_detects_a_small_weight_error);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
