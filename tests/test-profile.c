/*
 * test-profile.c: device profiles (src/device_profile.c, src/io/profile_file.c,
 * the selection in src/context.c, the tuner's pieces in src/tune.c;
 * doc/tuning.md).
 *
 * - Profile files: a save/load round trip of every field (names with quotes
 *   and colons; the depthwise route both ways and absent), and malformed
 *   files, each with the path:line:column and the words of its error.
 * - Which profile a context takes: a tuned file in the cache directory wins
 *   over the built-in one; DSDEBLUR_PROFILE=builtin ignores it, none applies
 *   nothing, a path applies that file; a missing or broken file is an error
 *   that says where it came from; a kernel CLBlast does not know is named.
 * - Results under profiles: a convolution (im2col route, forward and
 *   backward) under an alternative GEMM configuration stays within the
 *   double reference's tolerance and is bit-identical on a second run; the
 *   work-group size of a profile changes nothing at all (a launch shape only).
 * - The tuner's pieces: the candidate list obeys CLBlast's Xgemm rules, and
 *   shapes come out of a plan as conv2d.c multiplies them.
 * dsdeblur-bench --tune end to end is in test-bench.c.
 */
#include <config.h>

#include "testutil.h"
#include "dsdeblur_ops.h"
#include "dsdeblur_tune.h"
#include "ref/conv2d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmp_dir[64];

/* An alternative valid Xgemm configuration (not the built-in CPU one), with
 * the threshold low enough that small products take the tuned kernel. */
static void alternative_profile(dsd_device_profile *p, int work_group)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "test: 32x32x16 v2");
    p->work_group = work_group;
    dsd_xgemm_config c = {.gemmk = 0, .mwg = 32, .nwg = 32, .kwg = 16, .mdimc = 8, .ndimc = 8,
                          .mdima = 8, .ndimb = 8, .kwi = 2, .vwm = 2, .vwn = 2, .strm = 0,
                          .strn = 0, .sa = 1, .sb = 1, .kreg = 1, .min_indirect = 16};
    dsd_error err;
    ck_assert(dsd_xgemm_config_valid(NULL, &c, NULL, 0));
    TU_HOST_OK(dsd_xgemm_config_to_profile(&c, p, &err), err);
}

/* ------------------------------------------------------------------------ */
/* Files */

START_TEST(test_file_round_trip)
{
    dsd_device_profile p, q;
    alternative_profile(&p, 128);
    snprintf(p.name, sizeof p.name, "tuned: \"odd\": name # not a comment");
    snprintf(p.device, sizeof p.device, "Device: with colon");
    snprintf(p.driver, sizeof p.driver, "1.2.3");
    snprintf(p.tuned_at, sizeof p.tuned_at, "2026-12-02T08:00:00Z");
    p.depthwise = DSD_DEPTHWISE_TILE;
    dsd_error err;
    TU_HOST_OK(dsd_device_profile_set(&p, "Xbogus", "ZZ", 7, &err), err);
    const char *path = tu_path(tmp_dir, "round.yaml");
    TU_HOST_OK(dsd_device_profile_save(path, &p, &err), err);
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
    TU_HOST_OK(dsd_device_profile_load(path, &q, &err), err);
    ck_assert_str_eq(q.name, p.name);
    ck_assert_str_eq(q.device, p.device);
    ck_assert_str_eq(q.driver, p.driver);
    ck_assert_str_eq(q.tuned_at, p.tuned_at);
    ck_assert_int_eq(q.work_group, 128);
    ck_assert_int_eq(q.depthwise, DSD_DEPTHWISE_TILE);
    ck_assert_int_eq(q.n_kernels, p.n_kernels);
    for (int k = 0; k < p.n_kernels; k++) {
        ck_assert_str_eq(q.kernels[k].kernel, p.kernels[k].kernel);
        ck_assert_int_eq(q.kernels[k].n, p.kernels[k].n);
        for (int i = 0; i < p.kernels[k].n; i++) {
            ck_assert_str_eq(q.kernels[k].names[i], p.kernels[k].names[i]);
            ck_assert_uint_eq(q.kernels[k].values[i], p.kernels[k].values[i]);
        }
    }
    ck_assert_uint_eq(dsd_device_profile_get(&q, "Xgemm", "MWG", 0), 32);
    ck_assert_uint_eq(dsd_device_profile_get(&q, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 0),
                      16);
    ck_assert_uint_eq(dsd_device_profile_get(&q, "Xgemm", "NOPE", 99), 99);

    /* the other route, and none (the device class's choice: no key written) */
    p.depthwise = DSD_DEPTHWISE_STRIP;
    TU_HOST_OK(dsd_device_profile_save(path, &p, &err), err);
    TU_HOST_OK(dsd_device_profile_load(path, &q, &err), err);
    ck_assert_int_eq(q.depthwise, DSD_DEPTHWISE_STRIP);
    p.depthwise = DSD_DEPTHWISE_AUTO;
    TU_HOST_OK(dsd_device_profile_save(path, &p, &err), err);
    char *saved = tu_read_file(path, NULL);
    ck_assert_msg(!strstr(saved, "depthwise"), "%s", saved);
    free(saved);
    TU_HOST_OK(dsd_device_profile_load(path, &q, &err), err);
    ck_assert_int_eq(q.depthwise, DSD_DEPTHWISE_AUTO);

    /* the hand-written form of doc/tuning.md, with every key optional */
    const char *text = "# a comment\nkernels:\n  Xgemm: {MWG: 64}\n";
    tu_write_file(path, text, strlen(text));
    TU_HOST_OK(dsd_device_profile_load(path, &q, &err), err);
    ck_assert_str_eq(q.name, "profile file");
    ck_assert_int_eq(q.work_group, 0);
    ck_assert_int_eq(q.n_kernels, 1);
    ck_assert_uint_eq(dsd_device_profile_get(&q, "Xgemm", "MWG", 0), 64);
}
END_TEST

START_TEST(test_file_malformed)
{
    static const struct {
        const char *text, *want1, *want2;
    } cases[] = {
        {"", "bad.yaml:1:1", "expected a device profile"},
        {"- 1\n", "bad.yaml:1:1", "expected a device profile"},
        {"name: [1, 2]\n", "bad.yaml:1:7", "name takes a single value"},
        {"bogus: 1\n", "bad.yaml:1:1", "unknown key 'bogus'"},
        {"name: a\nname: b\n", "bad.yaml:2:1", "name is set twice"},
        {"work_group: 48\n", "bad.yaml:1:13", "power of two"},
        {"work_group: -64\n", "bad.yaml:1:13", "not a non-negative integer"},
        {"depthwise: fast\n", "bad.yaml:1:12", "depthwise: 'fast' is not strip or tile"},
        {"depthwise: 1\n", "bad.yaml:1:12", "is not strip or tile"},
        {"depthwise: [strip]\n", "bad.yaml:1:12", "depthwise takes a single value"},
        {"depthwise: strip\ndepthwise: tile\n", "bad.yaml:2:1", "depthwise is set twice"},
        {"kernels: 3\n", "bad.yaml:1:10", "must be a mapping of CLBlast kernel names"},
        {"kernels:\n  Xgemm: 64\n", "bad.yaml:2:10", "kernel Xgemm must be a mapping"},
        {"kernels:\n  Xgemm: {MWG: -4}\n", "bad.yaml:2:16", "Xgemm.MWG: '-4'"},
        {"kernels:\n  Xgemm: {MWG: 6.5}\n", "bad.yaml:2:16", "not a non-negative integer"},
        {"kernels:\n  Xgemm: {MWG: 64, MWG: 32}\n", "bad.yaml:2:20", "MWG is set twice"},
        {"kernels:\n  Xgemm: {}\n", "bad.yaml:2:", "kernel Xgemm has no parameters"},
        {"kernels:\n  Xgemm: {MWG: 64}\n  Xgemm: {NWG: 64}\n", "bad.yaml:3:3",
         "kernel Xgemm is listed twice"},
        {"kernels:\n  Xgemm: {MWG: 64\n", "bad.yaml:3:1", "not valid YAML"},
        {"name: a\n---\nname: b\n", "bad.yaml:2:1", "a single document"},
        {"a: &x 1\nname: *x\n", "bad.yaml:1:1", "unknown key 'a'"},
        {"name: *x\n", "bad.yaml:1:7", "aliases are not allowed"},
    };
    const char *path = tu_path(tmp_dir, "bad.yaml");
    for (int i = 0; i < TU_COUNT(cases); i++) {
        tu_write_file(path, cases[i].text, strlen(cases[i].text));
        dsd_device_profile p;
        dsd_error err;
        dsd_status st = dsd_device_profile_load(path, &p, &err);
        ck_assert_msg(st == DSD_ERR_CONFIG, "case %d ('%s'): %s", i, cases[i].text,
                      dsd_status_name(st));
        ck_assert_msg(strstr(err.message, cases[i].want1) && strstr(err.message, cases[i].want2),
                      "case %d ('%s'): message '%s' lacks '%s' or '%s'", i, cases[i].text,
                      err.message, cases[i].want1, cases[i].want2);
        ck_assert_int_eq(p.n_kernels, 0);
    }
    dsd_device_profile p;
    dsd_error err;
    TU_EXPECT_ERROR(dsd_device_profile_load(tu_path(tmp_dir, "missing.yaml"), &p, &err),
                    DSD_ERR_IO, err, "missing.yaml: cannot open the device profile");
    TU_EXPECT_ERROR(dsd_device_profile_load(tmp_dir, &p, &err), DSD_ERR_IO, err,
                    "is a directory");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Which profile a context takes */

static dsd_context *context_in(const char *cache, dsd_error *err, dsd_status *st)
{
    dsd_context_options o = {.cache_dir = cache};
    dsd_context *ctx = NULL;
    *st = dsd_context_init(&ctx, &o, err);
    return ctx;
}

static dsd_context *context_ok(const char *cache)
{
    dsd_error err;
    dsd_status st;
    dsd_context *ctx = context_in(cache, &err, &st);
    TU_HOST_OK(st, err);
    return ctx;
}

START_TEST(test_context_selection)
{
    char cache[1024], path[1200];
    tu_path_into(cache, sizeof cache, tmp_dir, "cache");
    unsetenv("DSDEBLUR_PROFILE");

    /* no file: the built-in class profile */
    dsd_context *ctx = context_ok(cache);
    dsd_device_profile builtin;
    dsd_device_profile_default(dsd_context_device(ctx), &builtin);
    ck_assert_str_eq(dsd_context_profile_name(ctx), builtin.name);
    ck_assert_int_eq(dsd_context_profile(ctx)->work_group, builtin.work_group);
    TU_OK(dsd_context_profile_path(ctx, path, sizeof path));
    ck_assert_msg(strncmp(path, cache, strlen(cache)) == 0 && strstr(path, "/profiles/") &&
                      strlen(strstr(path, "/profiles/")) == strlen("/profiles/") + 16 + 5,
                  "%s", path);

    /* a tuned file for this device, saved where the tuner saves it */
    dsd_device_profile tuned;
    alternative_profile(&tuned, 256);
    snprintf(tuned.name, sizeof tuned.name, "tuned: test");
    TU_OK(dsd_tune_save(ctx, &tuned, path, sizeof path));
    dsd_context_free(ctx);
    ctx = context_ok(cache);
    char want[1400];
    snprintf(want, sizeof want, "tuned: test (%s)", path);
    ck_assert_str_eq(dsd_context_profile_name(ctx), want);
    ck_assert_int_eq(dsd_context_profile(ctx)->work_group, 256);
    ck_assert_uint_eq(dsd_device_profile_get(dsd_context_profile(ctx), "Xgemm", "KWG", 0), 16);
    dsd_context_free(ctx);

    setenv("DSDEBLUR_PROFILE", "auto", 1);
    ctx = context_ok(cache);
    ck_assert_str_eq(dsd_context_profile_name(ctx), want);
    dsd_context_free(ctx);

    setenv("DSDEBLUR_PROFILE", "builtin", 1);
    ctx = context_ok(cache);
    ck_assert_str_eq(dsd_context_profile_name(ctx), builtin.name);
    dsd_context_free(ctx);

    setenv("DSDEBLUR_PROFILE", "none", 1);
    ctx = context_ok(cache);
    ck_assert_str_eq(dsd_context_profile_name(ctx), "");
    ck_assert_int_eq(dsd_context_profile(ctx)->work_group, 0);
    dsd_context_free(ctx);

    /* a path: that file, whatever the cache holds */
    char other[1024];
    tu_path_into(other, sizeof other, tmp_dir, "other.yaml");
    const char *text = "name: from a path\nwork_group: 32\ndepthwise: tile\nkernels:\n"
                       "  GemmRoutine: {XGEMM_MIN_INDIRECT_SIZE: 512}\n";
    tu_write_file(other, text, strlen(text));
    setenv("DSDEBLUR_PROFILE", other, 1);
    ctx = context_ok(cache);
    snprintf(want, sizeof want, "from a path (%s)", other);
    ck_assert_str_eq(dsd_context_profile_name(ctx), want);
    ck_assert_int_eq(dsd_context_profile(ctx)->work_group, 32);
    ck_assert_int_eq(dsd_context_profile(ctx)->depthwise, DSD_DEPTHWISE_TILE);
    /* a route that is none of the three is refused; the profile stays */
    dsd_device_profile bad = *dsd_context_profile(ctx);
    bad.depthwise = 3;
    TU_EXPECT_ERROR(dsd_context_apply_profile(ctx, &bad), DSD_ERR_INVALID_ARGUMENT,
                    *dsd_context_error(ctx), "depthwise route 3");
    ck_assert_int_eq(dsd_context_profile(ctx)->depthwise, DSD_DEPTHWISE_TILE);
    dsd_context_free(ctx);

    /* errors: a missing path, a kernel CLBlast does not know, a broken tuned file */
    dsd_error err;
    dsd_status st;
    setenv("DSDEBLUR_PROFILE", tu_path(tmp_dir, "missing.yaml"), 1);
    ctx = context_in(cache, &err, &st);
    ck_assert_ptr_null(ctx);
    TU_EXPECT_ERROR(st, DSD_ERR_IO, err, "missing.yaml: cannot open", "from DSDEBLUR_PROFILE");
    text = "name: bogus\nkernels:\n  Xbogus: {A: 1}\n";
    tu_write_file(other, text, strlen(text));
    setenv("DSDEBLUR_PROFILE", other, 1);
    ctx = context_in(cache, &err, &st);
    ck_assert_ptr_null(ctx);
    TU_EXPECT_ERROR(st, DSD_ERR_CLBLAST, err, "CLBlast rejected the Xbogus parameters");

    unsetenv("DSDEBLUR_PROFILE");
    text = "kernels:\n  Xgemm: {MWG: 64\n";
    tu_write_file(path, text, strlen(text));
    ctx = context_in(cache, &err, &st);
    ck_assert_ptr_null(ctx);
    TU_EXPECT_ERROR(st, DSD_ERR_CONFIG, err, "not valid YAML", "dsdeblur-bench --tune",
                    "DSDEBLUR_PROFILE=builtin ignores it");
    setenv("DSDEBLUR_PROFILE", "builtin", 1);
    ctx = context_ok(cache);
    ck_assert_str_eq(dsd_context_profile_name(ctx), builtin.name);
    dsd_context_free(ctx);
    unsetenv("DSDEBLUR_PROFILE");

    /* the cache off: no file is looked for, and there is nowhere to save one */
    ctx = context_ok("");
    ck_assert_str_eq(dsd_context_profile_name(ctx), builtin.name);
    TU_EXPECT_ERROR(dsd_tune_save(ctx, &tuned, NULL, 0), DSD_ERR_IO,
                    *dsd_context_error(ctx), "cache directory is off");
    dsd_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Results under profiles */

typedef struct conv_run {
    double *y, *dx, *dw;
} conv_run;

/* A 3x3 convolution taking the im2col route: forward, and backward into dx
 * and dW, under the profile in effect. */
static void run_conv(const ref_conv2d_geom *g, const double *x, const double *w,
                     const double *b, const double *dy, conv_run *out)
{
    dsd_context *ctx = tu_ctx();
    const int oh = ref_conv2d_out_h(g), ow = ref_conv2d_out_w(g);
    dsd_tensor tx, tw, tb, ty, tdy, tdx, tdw, tdb;
    tu_tensor_from(&tx, g->n, g->cin, g->h, g->w, x);
    tu_tensor_from(&tw, g->cout, g->cin, g->kh, g->kw, w);
    tu_tensor_from(&tb, 1, g->cout, 1, 1, b);
    tu_tensor_from(&tdy, g->n, g->cout, oh, ow, dy);
    tu_tensor(&ty, g->n, g->cout, oh, ow);
    TU_OK(dsd_tensor_init_zero(ctx, &tdx, g->n, g->cin, g->h, g->w));
    TU_OK(dsd_tensor_init_zero(ctx, &tdw, g->cout, g->cin, g->kh, g->kw));
    TU_OK(dsd_tensor_init_zero(ctx, &tdb, 1, g->cout, 1, 1));
    dsd_conv2d_params p = {.kernel_h = g->kh, .kernel_w = g->kw, .stride = g->stride,
                           .pad = g->pad, .pad_mode = DSD_PAD_ZERO, .groups = 1};
    dsd_conv2d_plan plan;
    dsd_error err;
    TU_HOST_OK(dsd_conv2d_plan_make(&p, g->n, g->cin, g->h, g->w, g->cout, &plan, &err), err);
    ck_assert_int_eq(plan.forward, DSD_CONV2D_ROUTE_IM2COL);
    ck_assert_int_eq(plan.backward, DSD_CONV2D_ROUTE_IM2COL);
    TU_OK(dsd_conv2d_forward(ctx, &p, &tx, &tw, &tb, &ty));
    TU_OK(dsd_conv2d_backward(ctx, &p, &tx, &tw, &tdy, &tdx, &tdw, &tdb));
    size_t ny = (size_t)g->n * g->cout * oh * ow, nx = (size_t)g->n * g->cin * g->h * g->w,
           nw = (size_t)g->cout * g->cin * g->kh * g->kw;
    out->y = tu_alloc(ny);
    out->dx = tu_alloc(nx);
    out->dw = tu_alloc(nw);
    tu_download(&ty, out->y);
    tu_download(&tdx, out->dx);
    tu_download(&tdw, out->dw);
    dsd_tensor *all[] = {&tx, &tw, &tb, &ty, &tdy, &tdx, &tdw, &tdb};
    for (int i = 0; i < TU_COUNT(all); i++)
        tu_tensor_free(all[i]);
}

static void conv_run_free(conv_run *r)
{
    free(r->y);
    free(r->dx);
    free(r->dw);
}

START_TEST(test_results_under_profiles)
{
    dsd_context *ctx = tu_ctx();
    const dsd_device_profile before = *dsd_context_profile(ctx);
    /* odd sizes; P = 7 x 83 columns (rows wider than 64, so the row kernels'
     * work-groups differ between work_group 64 and 256), K = 5 * 9 = 45, M = 19 */
    const ref_conv2d_geom g = {.n = 2, .cin = 5, .h = 7, .w = 83, .cout = 19, .kh = 3, .kw = 3,
                               .stride = 1, .pad = 1, .reflect = 0, .groups = 1};
    const int oh = ref_conv2d_out_h(&g), ow = ref_conv2d_out_w(&g);
    size_t nx = (size_t)g.n * g.cin * g.h * g.w, nw = (size_t)g.cout * g.cin * 9,
           ny = (size_t)g.n * g.cout * oh * ow;
    double *x = tu_alloc(nx), *w = tu_alloc(nw), *b = tu_alloc((size_t)g.cout),
           *dy = tu_alloc(ny);
    tu_rng rng = tu_rng_init(7);
    tu_fill(&rng, x, nx, -1, 1);
    tu_fill(&rng, w, nw, -1, 1);
    tu_fill(&rng, b, (size_t)g.cout, -1, 1);
    tu_fill(&rng, dy, ny, -1, 1);
    tu_round_to_float(x, nx);
    tu_round_to_float(w, nw);
    tu_round_to_float(b, (size_t)g.cout);
    tu_round_to_float(dy, ny);
    double *ry = tu_alloc(ny), *rdx = tu_alloc(nx), *rdw = tu_alloc(nw),
           *rdb = tu_alloc((size_t)g.cout);
    ref_conv2d_forward(&g, x, w, b, ry);
    ref_conv2d_backward(&g, x, w, dy, rdx, rdw, rdb);

    /* an alternative GEMM configuration: within the reference's tolerance,
     * and the same bits twice */
    dsd_device_profile alt;
    alternative_profile(&alt, 64);
    TU_OK(dsd_context_apply_profile(ctx, &alt));
    conv_run a1, a2;
    run_conv(&g, x, w, b, dy, &a1);
    run_conv(&g, x, w, b, dy, &a2);
    tu_check_close("forward y (alternative profile)", a1.y, ry, ny, 1e-4);
    tu_check_close("backward dx (alternative profile)", a1.dx, rdx, nx, 1e-4);
    tu_check_close("backward dW (alternative profile)", a1.dw, rdw, nw, 1e-4);
    ck_assert(memcmp(a1.y, a2.y, ny * sizeof *a1.y) == 0);
    ck_assert(memcmp(a1.dx, a2.dx, nx * sizeof *a1.dx) == 0);
    ck_assert(memcmp(a1.dw, a2.dw, nw * sizeof *a1.dw) == 0);

    /* the work-group size alone: the very same bits (a launch shape only) */
    alternative_profile(&alt, 256);
    TU_OK(dsd_context_apply_profile(ctx, &alt));
    conv_run a3;
    run_conv(&g, x, w, b, dy, &a3);
    ck_assert_msg(memcmp(a1.y, a3.y, ny * sizeof *a1.y) == 0, "work_group changed y");
    ck_assert_msg(memcmp(a1.dx, a3.dx, nx * sizeof *a1.dx) == 0, "work_group changed dx");
    ck_assert_msg(memcmp(a1.dw, a3.dw, nw * sizeof *a1.dw) == 0, "work_group changed dW");

    /* a profile whose work-group size is not a power of two is refused */
    alt.work_group = 96;
    TU_EXPECT_CTX_ERROR(dsd_context_apply_profile(ctx, &alt), DSD_ERR_INVALID_ARGUMENT,
                        "work_group 96");

    /* back to the profile the context started with: within tolerance too */
    TU_OK(dsd_context_apply_profile(ctx, &before));
    conv_run d;
    run_conv(&g, x, w, b, dy, &d);
    tu_check_close("forward y (default profile)", d.y, ry, ny, 1e-4);
    tu_check_close("backward dx (default profile)", d.dx, rdx, nx, 1e-4);
    conv_run *runs[] = {&a1, &a2, &a3, &d};
    for (int i = 0; i < TU_COUNT(runs); i++)
        conv_run_free(runs[i]);
    free(x);
    free(w);
    free(b);
    free(dy);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The tuner's pieces */

START_TEST(test_candidates_valid)
{
    dsd_device_info dev;
    memset(&dev, 0, sizeof dev);
    dev.max_work_group_size = 1024;
    dev.local_mem_bytes = 48 * 1024; /* the GTX 1080 Ti's */
    dsd_xgemm_config c[64];
    size_t n = dsd_tune_candidates(&dev, c, 64);
    ck_assert_uint_ge(n, 10);
    for (size_t i = 0; i < n; i++) {
        char why[128] = "";
        ck_assert_msg(dsd_xgemm_config_valid(&dev, &c[i], why, sizeof why), "%s: %s",
                      c[i].label, why);
        ck_assert(c[i].mwg % (c[i].mdimc * c[i].vwm) == 0);
        ck_assert(c[i].nwg % (c[i].ndimc * c[i].vwn) == 0);
        ck_assert(c[i].mwg % (c[i].mdima * c[i].vwm) == 0);
        ck_assert(c[i].nwg % (c[i].ndimb * c[i].vwn) == 0);
        ck_assert(c[i].kwg % c[i].kwi == 0);
        ck_assert(c[i].kwg % ((c[i].mdimc * c[i].ndimc) / c[i].mdima) == 0);
        ck_assert(c[i].kwg % ((c[i].mdimc * c[i].ndimc) / c[i].ndimb) == 0);
    }
    /* the first is the built-in PoCL CPU configuration */
    dsd_device_profile cpu;
    dsd_device_info pocl = dev;
    pocl.is_cpu = 1;
    snprintf(pocl.platform, sizeof pocl.platform, "Portable Computing Language");
    dsd_device_profile_default(&pocl, &cpu);
    ck_assert_uint_eq(dsd_device_profile_get(&cpu, "Xgemm", "MWG", 0), c[0].mwg);
    ck_assert_uint_eq(dsd_device_profile_get(&cpu, "Xgemm", "KWG", 0), c[0].kwg);
    ck_assert_uint_eq(dsd_device_profile_get(&cpu, "Xgemm", "SA", 9), c[0].sa);
    /* CPU classes take the depthwise strips, GPU classes the tiles */
    ck_assert_int_eq(cpu.depthwise, DSD_DEPTHWISE_STRIP);
    dsd_device_info other_cpu = pocl;
    snprintf(other_cpu.platform, sizeof other_cpu.platform, "Intel(R) CPU Runtime");
    dsd_device_profile_default(&other_cpu, &cpu);
    ck_assert_int_eq(cpu.depthwise, DSD_DEPTHWISE_STRIP);
    /* a small device drops what does not fit */
    dev.max_work_group_size = 64;
    dev.local_mem_bytes = 8 * 1024;
    size_t m = dsd_tune_candidates(&dev, c, 64);
    ck_assert_uint_lt(m, n);
    for (size_t i = 0; i < m; i++)
        ck_assert(c[i].mdimc * c[i].ndimc <= 64);
    /* the rules, one broken at a time */
    dsd_xgemm_config bad = c[0];
    char why[128];
    bad.kwg = 63; /* not a multiple of KWI (2) */
    ck_assert(!dsd_xgemm_config_valid(NULL, &bad, why, sizeof why));
    ck_assert_str_eq(why, "KWG % KWI != 0");
    bad = c[0];
    bad.mwg = 36; /* not a multiple of MDIMC x VWM (8) */
    ck_assert(!dsd_xgemm_config_valid(NULL, &bad, why, sizeof why));
    ck_assert_str_eq(why, "MWG % (MDIMC * VWM) != 0");

    /* the GPU classes name themselves and set a SIMD-multiple work-group */
    static const struct { const char *vendor; int wg; const char *word; } gpus[] = {
        {"NVIDIA Corporation", 256, "NVIDIA"}, {"Advanced Micro Devices, Inc.", 256, "AMD"},
        {"Intel(R) Corporation", 128, "Intel"}};
    for (int i = 0; i < TU_COUNT(gpus); i++) {
        dsd_device_info gd;
        memset(&gd, 0, sizeof gd);
        gd.is_gpu = 1;
        snprintf(gd.vendor, sizeof gd.vendor, "%s", gpus[i].vendor);
        dsd_device_profile gp;
        dsd_device_profile_default(&gd, &gp);
        ck_assert_msg(strstr(gp.name, gpus[i].word), "%s", gp.name);
        ck_assert_int_eq(gp.work_group, gpus[i].wg);
        ck_assert_int_eq(gp.depthwise, DSD_DEPTHWISE_TILE);
        ck_assert_int_eq(gp.n_kernels, 0);
    }
}
END_TEST

START_TEST(test_shapes_from_plan)
{
    /* one 3x3 conv 8 -> 16 on 1 x 8 x 20 x 12: one chunk of 20 rows (P = 240,
     * K = 72, M = 16), and a pointwise one on 2 images (P = 36, K = 8) */
    dsd_network_plan plan;
    memset(&plan, 0, sizeof plan);
    dsd_conv2d_params p3 = {.kernel_h = 3, .kernel_w = 3, .stride = 1, .pad = 1, .groups = 1};
    dsd_conv2d_params p1 = {.kernel_h = 1, .kernel_w = 1, .stride = 1, .pad = 0, .groups = 1};
    dsd_conv2d_plan c3, c1;
    dsd_error err;
    TU_HOST_OK(dsd_conv2d_plan_make(&p3, 1, 8, 20, 12, 16, &c3, &err), err);
    TU_HOST_OK(dsd_conv2d_plan_make(&p1, 2, 8, 6, 6, 16, &c1, &err), err);
    ck_assert_int_eq(c3.forward, DSD_CONV2D_ROUTE_IM2COL);
    ck_assert_int_eq(c3.chunk_rows, 20);
    ck_assert_int_eq(c1.forward, DSD_CONV2D_ROUTE_POINTWISE);
    TU_HOST_OK(dsd_network_plan_add_layer(&plan, "a", 0, &c3, &err), err);
    TU_HOST_OK(dsd_network_plan_add_layer(&plan, "b", 0, &c1, &err), err);
    TU_HOST_OK(dsd_network_plan_add_layer(&plan, "a again", 0, &c3, &err), err);
    dsd_gemm_shape *s = NULL;
    size_t n = 0;
    TU_HOST_OK(dsd_tune_shapes_from_plan(&plan, 1, 1, &s, &n, &err), err);
    ck_assert_uint_eq(n, 6);
    dsd_tune_shapes_select(s, &n, 3);
    ck_assert_uint_eq(n, 3);
    /* the im2col products, each run twice (the layer is planned twice) */
    const dsd_gemm_shape want[] = {{240, 16, 72, 0, 0, 2}, {72, 16, 240, 1, 0, 2},
                                   {240, 72, 16, 0, 1, 2}};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++)
            found |= s[j].m == want[i].m && s[j].n == want[i].n && s[j].k == want[i].k &&
                     s[j].trans_a == want[i].trans_a && s[j].trans_b == want[i].trans_b &&
                     s[j].count == want[i].count;
        ck_assert_msg(found, "shape %d (%zu x %zu x %zu) missing", i, want[i].m, want[i].n,
                      want[i].k);
    }
    free(s);
    /* inference: forward products only */
    s = NULL;
    n = 0;
    TU_HOST_OK(dsd_tune_shapes_from_plan(&plan, 0, 1, &s, &n, &err), err);
    ck_assert_uint_eq(n, 2);
    free(s);
    dsd_network_plan_free(&plan);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "profile") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("profile");
    TCase *tc = tcase_create("profile");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_file_malformed);
    tcase_add_test(tc, test_candidates_valid);
    tcase_add_test(tc, test_shapes_from_plan);
    tcase_add_test(tc, test_context_selection);
    tcase_add_test(tc, test_results_under_profiles);
    suite_add_tcase(s, tc);
    int status = tu_run(s);
    tu_rmtree(tmp_dir);
    return status;
}
