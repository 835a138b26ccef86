/*
 * test-blur-tool.c: the dsdeblur-blur tool (tools/dsdeblur-blur.c) end to
 * end (run from the build directory, as make check does; it uses the default
 * OpenCL device, PoCL on CI, through the tool). The blur itself is
 * tests/test-blur.c's.
 *   - Its file rules (tools/cli.h): OUT/sharp/x.png given as an input is
 *     refused even with --force (it used to be re-encoded in place), an
 *     existing output (the kernel picture too) is refused without --force,
 *     two inputs of one stem do not write the same outputs, a FIFO input is
 *     one line and skipped instead of a hang, and a killed run's temporaries
 *     in the output folders are removed.
 *   - What its user reads on stderr: an image too small for its blur kernel
 *     (1x1) is one line: the tool's name once, the file, the sizes in words,
 *     our source location last in brackets; no internal function name; exit
 *     1. A run that compiles its kernels from scratch (fresh PoCL and
 *     dsdeblur caches, POCL_EXTRA_BUILD_FLAGS unset) prints nothing on
 *     stderr: no "4 warnings generated." from PoCL's compiler on clFFT's
 *     kernels.
 *   - The range of real camera shake at 1280 x 720 (issue 12): --length 40
 *     alone picks a 43 x 43 canvas and a straight (--anxiety 0, --exposure 1)
 *     path spans 40 pixels in its kernel picture; --noise 1/255 (one 8-bit
 *     gray level, 2/255 in [-1, 1] units) and a plain 4/255 (two levels)
 *     add noise of that std, measured on a flat image; a range 1/255:2/255
 *     draws each image's
 *     level inside it, reproducibly; lengths that do not fit, bad ranges
 *     and noise above 1 are usage errors (exit 2).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char root[64];

static void write_image(const char *rel, int w, int h, int seed)
{
    dsd_image img = {0};
    dsd_error e;
    ck_assert(dsd_image_alloc(&img, w, h, &e) == DSD_OK);
    for (size_t i = 0; i < dsd_image_numel(&img); i++)
        img.data[i] = (uint8_t)((i * (7 + seed) + (i / 3) % 11 * 13) & 255);
    ck_assert_msg(dsd_image_save(tu_path(root, rel), &img, &e) == DSD_OK, "%s", e.message);
    dsd_image_free(&img);
}

/* dsdeblur-blur with args; its stderr, malloc'd, in *err. */
static int blur(const char *args, char **err)
{
    int rc = tu_run_tool_limit("dsdeblur-blur", args, root, 300);
    *err = tu_read_file(tu_path(root, "err"), NULL);
    return rc;
}

/* Whether the file at a equals the bytes saved before. */
static int unchanged(const char *path, const char *before, size_t n)
{
    size_t m;
    char *now = tu_read_file(path, &m);
    int same = m == n && !memcmp(now, before, n);
    free(now);
    return same;
}

START_TEST(test_blur_file_rules)
{
    char args[4096], *err;
    tu_mkdir_p(tu_path(root, "in"));
    tu_mkdir_p(tu_path(root, "in2"));
    write_image("in/b.png", 16, 12, 1);
    write_image("in2/b.png", 10, 8, 2);
    snprintf(args, sizeof args, "-o %s %s", tu_path(root, "D"), tu_path(root, "in/b.png"));
    ck_assert_msg(blur(args, &err) == 0, "%s", err);
    free(err);

    /* the set's own sharp image as input: never rewritten, even with --force */
    size_t ns, nb;
    char *sharp = tu_read_file(tu_path(root, "D/sharp/b.png"), &ns);
    char *blurred = tu_read_file(tu_path(root, "D/blur/b.png"), &nb);
    snprintf(args, sizeof args, "--force -o %s %s", tu_path(root, "D"),
             tu_path(root, "D/sharp/b.png"));
    int rc = blur(args, &err);
    ck_assert_msg(rc == 1 && tu_count_lines(err) == 1 &&
                      strstr(err, "refusing to overwrite an input"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    ck_assert(unchanged(tu_path(root, "D/sharp/b.png"), sharp, ns));
    ck_assert(unchanged(tu_path(root, "D/blur/b.png"), blurred, nb));

    /* existing outputs without --force, the kernel picture included */
    ck_assert(remove(tu_path(root, "D/blur/b.png")) == 0 &&
              remove(tu_path(root, "D/sharp/b.png")) == 0);
    snprintf(args, sizeof args, "-o %s %s", tu_path(root, "D"), tu_path(root, "in/b.png"));
    rc = blur(args, &err);
    ck_assert_msg(rc == 1 && strstr(err, "kernels/b.png exists; use --force"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    ck_assert(!tu_file_exists(tu_path(root, "D/blur/b.png")));
    snprintf(args, sizeof args, "--force -o %s %s", tu_path(root, "D"),
             tu_path(root, "in/b.png"));
    ck_assert_msg(blur(args, &err) == 0, "%s", err);
    free(err);
    ck_assert(unchanged(tu_path(root, "D/sharp/b.png"), sharp, ns));
    free(sharp);
    free(blurred);

    /* two inputs of one stem: the second is refused, not written over the first */
    snprintf(args, sizeof args, "--force -o %s %s %s", tu_path(root, "E"),
             tu_path(root, "in/b.png"), tu_path(root, "in2/b.png"));
    rc = blur(args, &err);
    ck_assert_msg(rc == 1 && tu_count_lines(err) == 1 && strstr(err, "already writes"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    dsd_image img = {0};
    dsd_error e;
    ck_assert(dsd_image_load(tu_path(root, "E/blur/b.png"), &img, &e) == DSD_OK);
    ck_assert_int_eq(img.width, 16);
    dsd_image_free(&img);

    /* a FIFO input: one line, skipped; a killed run's temporary removed */
    tu_mkfifo(tu_path(root, "in/f.png"));
    tu_mkdir_p(tu_path(root, "F/blur"));
    char tmp[128];
    snprintf(tmp, sizeof tmp, "F/blur/b.png.tmp.%ld.0", tu_dead_pid());
    tu_write_file(tu_path(root, tmp), "partial", 7);
    snprintf(args, sizeof args, "-o %s %s %s", tu_path(root, "F"), tu_path(root, "in/f.png"),
             tu_path(root, "in/b.png"));
    rc = blur(args, &err);
    ck_assert_msg(rc == 1 && strstr(err, "f.png: is a FIFO") &&
                      strstr(err, "removed 1 stale temporary file"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    ck_assert(tu_file_exists(tu_path(root, "F/blur/b.png")));
    ck_assert(!tu_file_exists(tu_path(root, tmp)));
}
END_TEST

START_TEST(test_image_too_small)
{
    write_image("tiny.png", 1, 1, 0);
    char args[1024];
    snprintf(args, sizeof args, "-o %s %s", tu_path(root, "out-tiny"), tu_path(root, "tiny.png"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-blur", args, root), 1);
    char *e = tu_read_file(tu_path(root, "err"), NULL);
    char want[512];
    snprintf(want, sizeof want, "dsdeblur-blur: error: %s: the image is 1x1 pixels, too small "
             "for its ", tu_path(root, "tiny.png"));
    ck_assert_msg(strncmp(e, want, strlen(want)) == 0, "stderr:\n%s", e);
    ck_assert_msg(tu_count_lines(e) == 1 && strstr(e + 1, "dsdeblur-blur:") == NULL,
                  "one line, the tool named once:\n%s", e);
    ck_assert_msg(strstr(e, " blur kernel (width x height): ") && strstr(e, "needs at least "),
                  "stderr:\n%s", e);
    ck_assert_msg(!strstr(e, "blur_apply:") && !strstr(e, "PSF"), "internal words:\n%s", e);
    const char *loc = strstr(e, " [src/train/blur_apply.c:");
    ck_assert_msg(loc && !strcmp(strchr(loc, ']'), "]\n"), "no location at the end:\n%s", e);
    free(e);
}
END_TEST

/* The std of (blurred - sharp) in 8-bit levels over a flat 128 x 128 image
 * blurred by dsdeblur-blur with extra (options), and its stdout. */
static double noise_std(const char *opts, const char *out, char **stdout_text)
{
    dsd_image img = {0};
    dsd_error e;
    ck_assert(dsd_image_alloc(&img, 128, 128, &e) == DSD_OK);
    memset(img.data, 128, dsd_image_numel(&img));
    ck_assert(dsd_image_save(tu_path(root, "flat.png"), &img, &e) == DSD_OK);
    dsd_image_free(&img);
    char args[1024], *err;
    snprintf(args, sizeof args, "--kernel-size 3 %s -o %s %s", opts, tu_path(root, out),
             tu_path(root, "flat.png"));
    int rc = blur(args, &err);
    ck_assert_msg(rc == 0 && !err[0], "%s: exit %d, stderr:\n%s", args, rc, err);
    free(err);
    *stdout_text = tu_read_file(tu_path(root, "out"), NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/blur/flat.png", out);
    ck_assert(dsd_image_load(tu_path(root, path), &img, &e) == DSD_OK);
    double s = 0, s2 = 0;
    size_t n = dsd_image_numel(&img);
    for (size_t i = 0; i < n; i++) {
        double d = (double)img.data[i] - 128.0;
        s += d;
        s2 += d * d;
    }
    dsd_image_free(&img);
    return sqrt(s2 / n - (s / n) * (s / n));
}

START_TEST(test_camera_shake_range)
{
    /* A straight 40-pixel path: the canvas --length 40 needs, and the kernel
     * picture (4 x enlarged) spans 40 pixels. */
    write_image("shake.png", 96, 80, 5);
    char args[1024], *err;
    snprintf(args, sizeof args, "--length 40 --anxiety 0 --exposure 1 -o %s %s",
             tu_path(root, "out-shake"), tu_path(root, "shake.png"));
    int rc = blur(args, &err);
    char *out = tu_read_file(tu_path(root, "out"), NULL);
    ck_assert_msg(rc == 0 && !err[0], "exit %d, stderr:\n%s", rc, err);
    int kw = 0, kh = 0;
    const char *at = strstr(out, "(kernel ");
    ck_assert_msg(at && sscanf(at, "(kernel %dx%d, path 40.0 px, noise 0.00/255)", &kw, &kh) == 2,
                  "stdout:\n%s", out);
    double span = sqrt((double)(kw - 1) * (kw - 1) + (double)(kh - 1) * (kh - 1));
    ck_assert_msg(span >= 38 && span <= 43 && kw <= 43 && kh <= 43,
                  "a straight 40-pixel path gave a %dx%d kernel (span %.1f)", kw, kh, span);
    dsd_image k = {0};
    dsd_error e;
    ck_assert(dsd_image_load(tu_path(root, "out-shake/kernels/shake.png"), &k, &e) == DSD_OK);
    ck_assert_msg(k.width == 4 * kw && k.height == 4 * kh, "kernel picture %dx%d for %dx%d",
                  k.width, k.height, kw, kh);
    dsd_image_free(&k);
    free(out);
    free(err);

    /* Sensor noise: 1/255 is one 8-bit level (rounding to 8 bits adds 1/12
     * to the variance); 16384 x 3 samples: the std is within 2% (7 sigma). */
    double sd = noise_std("--noise 1/255", "out-n1", &out);
    ck_assert_msg(fabs(sd - sqrt(1.0 + 1.0 / 12)) < 0.02 * sqrt(1.0 + 1.0 / 12),
                  "--noise 1/255: std %.4f levels, want %.4f", sd, sqrt(1.0 + 1.0 / 12));
    ck_assert_msg(strstr(out, "noise 1.00/255)"), "stdout:\n%s", out);
    free(out);
    sd = noise_std("--noise 0.0156862745", "out-n2", &out); /* 4/255 in [-1, 1]: 2 levels */
    ck_assert_msg(fabs(sd - sqrt(4.0 + 1.0 / 12)) < 0.02 * sqrt(4.0 + 1.0 / 12),
                  "--noise 0.0157: std %.4f levels, want %.4f", sd, sqrt(4.0 + 1.0 / 12));
    ck_assert_msg(strstr(out, "noise 2.00/255)"), "stdout:\n%s", out);
    free(out);
    /* A range: drawn inside it, the same again for the same seed. */
    sd = noise_std("--noise 1/255:2/255 --seed 7", "out-r1", &out);
    double level = -1;
    at = strstr(out, "noise ");
    ck_assert_msg(at && sscanf(at, "noise %lf/255", &level) == 1 && level >= 1 && level <= 2,
                  "stdout:\n%s", out);
    double sigma = level; /* in 8-bit levels */
    ck_assert_msg(fabs(sd - sqrt(sigma * sigma + 1.0 / 12)) < 0.03 * sqrt(sigma * sigma + 1.0 / 12),
                  "drawn %.2f/255: std %.4f levels", level, sd);
    char *again;
    double sd2 = noise_std("--noise 1/255:2/255 --seed 7", "out-r2", &again);
    ck_assert_msg(sd2 == sd && !strcmp(strstr(again, "(kernel"), strstr(out, "(kernel")),
                  "not reproducible:\n%s\n%s", out, again);
    free(out);
    free(again);

    /* Usage errors. */
    const char *bad[] = {"--length 41 --kernel-size 31", "--length 61", "--length 30:20",
                         "--noise 2", "--noise 1/255:x", "--exposure 0", "--anxiety 2"};
    for (int i = 0; i < TU_COUNT(bad); i++) {
        snprintf(args, sizeof args, "%s -o %s %s", bad[i], tu_path(root, "out-bad"),
                 tu_path(root, "shake.png"));
        rc = blur(args, &err);
        ck_assert_msg(rc == 2 && tu_count_lines(err) >= 1, "'%s': exit %d, stderr:\n%s", bad[i],
                      rc, err);
        free(err);
    }
}
END_TEST

START_TEST(test_no_compiler_chatter)
{
    write_image("photo.png", 24, 20, 3);
    /* kernels compiled now, not read from a cache; PoCL's flags not ours */
    char pocl[128], xdg[128];
    snprintf(pocl, sizeof pocl, "%s", tu_path(root, "pocl-cache"));
    snprintf(xdg, sizeof xdg, "%s", tu_path(root, "xdg-cache"));
    tu_mkdir_p(pocl);
    tu_mkdir_p(xdg);
    setenv("POCL_CACHE_DIR", pocl, 1);
    setenv("XDG_CACHE_HOME", xdg, 1);
    unsetenv("POCL_EXTRA_BUILD_FLAGS");
    char args[1024];
    snprintf(args, sizeof args, "--kernel-size 5 -o %s %s", tu_path(root, "out-photo"),
             tu_path(root, "photo.png"));
    int rc = tu_run_tool("dsdeblur-blur", args, root);
    char *e = tu_read_file(tu_path(root, "err"), NULL);
    ck_assert_msg(rc == 0 && e[0] == '\0', "exit %d, stderr:\n%s", rc, e);
    free(e);
    ck_assert(tu_file_exists(tu_path(root, "out-photo/blur/photo.png")));
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "blur-tool") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("blur_tool");
    TCase *tc = tcase_create("blur_tool");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_blur_file_rules);
    tcase_add_test(tc, test_image_too_small);
    tcase_add_test(tc, test_camera_shake_range);
    tcase_add_test(tc, test_no_compiler_chatter); /* last: it points the caches elsewhere */
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* the tool creates its context, in its own process */
    tu_rmtree(root);
    return status;
}
