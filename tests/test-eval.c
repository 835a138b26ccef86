/*
 * test-eval.c: the dsdeblur-eval tool (tools/dsdeblur-eval.c) end to end,
 * folder mode: builds two folders from the metric test pairs under
 * tests/data/metrics/ plus an identical pair, a file on one side only, a
 * size mismatch, a corrupt file, a non-image file and a subfolder; runs the
 * built tool and checks its exit status, its table (each row against the
 * library's own PSNR/SSIM, formatted as the tool formats them), one stderr
 * line per problem naming the file, the CSV rows and the JSON summary; then
 * a clean run (exit 0) and usage errors (exit 2). The file rules: a --csv or
 * --json naming an input image is refused even with --force, an existing
 * report only replaced with --force, and a FIFO named like an image is one
 * line and skipped (not a hang). No OpenCL device is used.
 * Run from the build directory (make check does), where tools/dsdeblur-eval
 * lives.
 */
#include "testutil.h"

#include "dsdeblur_image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[64];

static const char *pairs[] = {"astro_61x47_noise", "chelsea_64x64_blur", "coffee_33x29_motion",
                              "astro_11x11_shift"};

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = tu_read_file(from, &n);
    tu_write_file(to, b, n);
    free(b);
}

/* tmp_dir/name, read whole (tu_read_file); free() it. */
static char *tmp_file(const char *name)
{
    return tu_read_file(tu_path(tmp_dir, name), NULL);
}

static void setup_folders(void)
{
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    ck_assert_msg(srcdir, "DSDEBLUR_TEST_SRCDIR is not set (run through make check)");
    char a[512], b[512], from[1024], to[1100];
    snprintf(a, sizeof a, "%s/A", tmp_dir);
    snprintf(b, sizeof b, "%s/B", tmp_dir);
    ck_assert(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0);
    for (int k = 0; k < TU_COUNT(pairs); k++) {
        snprintf(from, sizeof from, "%s/tests/data/metrics/%s_a.png", srcdir, pairs[k]);
        snprintf(to, sizeof to, "%s/%s.png", a, pairs[k]);
        copy_file(from, to);
        snprintf(from, sizeof from, "%s/tests/data/metrics/%s_b.png", srcdir, pairs[k]);
        snprintf(to, sizeof to, "%s/%s.png", b, pairs[k]);
        copy_file(from, to);
    }
}

/* Problems added to the folders (removed again for the clean run). */
static void add_problems(void)
{
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    char from[1024], to[512];
    snprintf(from, sizeof from, "%s/tests/data/metrics/astro_11x11_shift_a.png", srcdir);
    snprintf(to, sizeof to, "%s/A/same.png", tmp_dir);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s/B/same.png", tmp_dir);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s/A/onlyA.PNG", tmp_dir);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s/A/size,odd.png", tmp_dir); /* a comma: CSV quoting */
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/tests/data/metrics/coffee_33x29_motion_a.png", srcdir);
    snprintf(to, sizeof to, "%s/B/size,odd.png", tmp_dir);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s/A/bad.jpg", tmp_dir);
    tu_write_file(to, "not a jpeg", 10);
    snprintf(to, sizeof to, "%s/B/bad.jpg", tmp_dir);
    tu_write_file(to, "not a jpeg", 10);
    snprintf(to, sizeof to, "%s/A/README", tmp_dir); /* ignored: no image extension */
    tu_write_file(to, "x", 1);
    snprintf(to, sizeof to, "%s/B/sub.png", tmp_dir); /* ignored: a folder */
    ck_assert(mkdir(to, 0755) == 0);
}

START_TEST(test_eval_folders)
{
    setup_folders();
    add_problems();
    char args[1024];
    snprintf(args, sizeof args, "--protocol skimage --csv %s/r.csv --json=%s/r.json %s/A %s/B/",
             tmp_dir, tmp_dir, tmp_dir, tmp_dir);
    int rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(rc == 1, "exit status %d, want 1 (a pair failed)\nstdout:\n%s\nstderr:\n%s", rc,
                  out, err);

    /* each good pair's row carries the library's numbers */
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    for (int k = 0; k < TU_COUNT(pairs); k++) {
        dsd_image a = {0}, b = {0};
        dsd_error e;
        char pa[1024], row[256];
        snprintf(pa, sizeof pa, "%s/tests/data/metrics/%s_a.png", srcdir, pairs[k]);
        ck_assert(dsd_image_load(pa, &a, &e) == DSD_OK);
        snprintf(pa, sizeof pa, "%s/tests/data/metrics/%s_b.png", srcdir, pairs[k]);
        ck_assert(dsd_image_load(pa, &b, &e) == DSD_OK);
        double psnr, ssim;
        ck_assert(dsd_psnr(&a, &b, &psnr, &e) == DSD_OK);
        ck_assert(dsd_ssim(&a, &b, DSD_SSIM_SKIMAGE, &ssim, &e) == DSD_OK);
        snprintf(row, sizeof row, "%s.png", pairs[k]);
        const char *at = strstr(out, row);
        ck_assert_msg(at, "no row for %s in:\n%s", row, out);
        snprintf(row, sizeof row, "%9.4f  %8.6f\n", psnr, ssim);
        const char *eol = strchr(at, '\n');
        ck_assert_msg(eol && (size_t)(eol + 1 - at) >= strlen(row) &&
                          !strncmp(eol + 1 - strlen(row), row, strlen(row)),
                      "row for %s.png: want ...%s in:\n%s", pairs[k], row, out);
        dsd_image_free(&a);
        dsd_image_free(&b);
    }
    ck_assert_msg(strstr(out, "same.png") && strstr(out, "inf  1.000000"), "%s", out);
    ck_assert_msg(strstr(out, "5 pairs scored") && strstr(out, "1 identical") &&
                      strstr(out, "3 failed"),
                  "%s", out);
    ck_assert_msg(!strstr(out, "README") && !strstr(err, "README") && !strstr(err, "sub.png"),
                  "ignored files were not ignored:\n%s\n%s", out, err);

    /* one stderr line per problem, naming the file */
    ck_assert_msg(tu_count_lines(err) == 3, "want 3 lines on stderr, got:\n%s", err);
    ck_assert_msg(strstr(err, "onlyA.PNG: only in"), "%s", err);
    ck_assert_msg(strstr(err, "bad.jpg:") && strstr(err, "not an image"), "%s", err);
    ck_assert_msg(strstr(err, "size,odd.png: sizes differ: 11 x 11"), "%s", err);

    char *csv = tmp_file("r.csv");
    ck_assert_msg(tu_count_lines(csv) == 1 + 5 + 3, "CSV:\n%s", csv);
    ck_assert_msg(!strncmp(csv, "name,psnr_db,ssim_skimage,error\n", 32), "CSV:\n%s", csv);
    ck_assert_msg(strstr(csv, "\nsame.png,inf,1.00000000,\n"), "CSV:\n%s", csv);
    ck_assert_msg(strstr(csv, "\n\"size,odd.png\",,,\"sizes differ"), "CSV:\n%s", csv);
    char *json = tmp_file("r.json");
    ck_assert_msg(strstr(json, "\"protocol\": \"skimage\"") &&
                      strstr(json, "\"count\": 5, \"psnr_infinite\": 1, \"psnr\": null") &&
                      strstr(json, "\"name\": \"same.png\", \"psnr\": null, \"identical\": true"),
                  "JSON:\n%s", json);
    free(out);
    free(err);
    free(csv);
    free(json);

    /* clean folders: exit 0, matlab protocol */
    const char *extra[] = {"A/same.png", "B/same.png", "A/onlyA.PNG", "A/size,odd.png",
                           "B/size,odd.png", "A/bad.jpg", "B/bad.jpg"};
    for (int k = 0; k < TU_COUNT(extra); k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tmp_dir, extra[k]);
        ck_assert_msg(remove(p) == 0, "%s: %s", p, strerror(errno));
    }
    snprintf(args, sizeof args, "--protocol matlab %s/A %s/B", tmp_dir, tmp_dir);
    rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
    out = tmp_file("out");
    err = tmp_file("err");
    ck_assert_msg(rc == 0 && err[0] == '\0', "clean run: exit %d\n%s\n%s", rc, out, err);
    ck_assert_msg(strstr(out, "4 pairs scored, SSIM protocol matlab") &&
                      strstr(out, "0.923362\n"), /* astro_61x47_noise, matlab */
                  "%s", out);
    free(out);
    free(err);

    /* usage errors */
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", "--protocol foo A B", tmp_dir), 2);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", "onlyone", tmp_dir), 2);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", "--bogus A B", tmp_dir), 2);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", "--help", tmp_dir), 0);
    snprintf(args, sizeof args, "%s/A %s/nonexistent", tmp_dir, tmp_dir);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 1);
    err = tmp_file("err");
    ck_assert_msg(strstr(err, "nonexistent: cannot open folder"), "%s", err);
    free(err);
}
END_TEST

START_TEST(test_eval_file_rules)
{
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    ck_assert_msg(srcdir, "DSDEBLUR_TEST_SRCDIR is not set (run through make check)");
    char from[1024], img[512], args[2048];
    ck_assert(mkdir(tu_path(tmp_dir, "C"), 0755) == 0 && mkdir(tu_path(tmp_dir, "D"), 0755) == 0);
    snprintf(from, sizeof from, "%s/tests/data/metrics/%s_a.png", srcdir, pairs[0]);
    copy_file(from, tu_path(tmp_dir, "C/x.png"));
    snprintf(from, sizeof from, "%s/tests/data/metrics/%s_b.png", srcdir, pairs[0]);
    copy_file(from, tu_path(tmp_dir, "D/x.png"));
    tu_path_into(img, sizeof img, tmp_dir, "C/x.png");
    size_t n0, n1;
    char *before = tu_read_file(img, &n0);

    /* a report over an input image: refused even with --force */
    const char *opts[] = {"--csv", "--json"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "%s %s --force %s/C %s/D", opts[k], img, tmp_dir, tmp_dir);
        int rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
        char *err = tmp_file("err");
        ck_assert_msg(rc == 1 && strstr(err, "refusing to overwrite an input") &&
                          tu_count_lines(err) == 1,
                      "%s: exit %d, stderr:\n%s", opts[k], rc, err);
        free(err);
        char *after = tu_read_file(img, &n1);
        ck_assert_msg(n0 == n1 && !memcmp(before, after, n0), "%s replaced the image", opts[k]);
        free(after);
    }
    free(before);

    /* an existing report: only with --force */
    char csv[512];
    tu_path_into(csv, sizeof csv, tmp_dir, "old.csv");
    tu_write_file(csv, "keep", 4);
    snprintf(args, sizeof args, "--csv %s %s/C %s/D", csv, tmp_dir, tmp_dir);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 1);
    char *err = tmp_file("err"), *kept = tu_read_file(csv, NULL);
    ck_assert_msg(strstr(err, "exists; use --force"), "%s", err);
    ck_assert_str_eq(kept, "keep");
    free(err);
    free(kept);
    snprintf(args, sizeof args, "--force --csv %s %s/C %s/D", csv, tmp_dir, tmp_dir);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 0);
    kept = tu_read_file(csv, NULL);
    ck_assert_msg(!strncmp(kept, "name,", 5), "%s", kept);
    free(kept);

    /* a FIFO named like an image on both sides: one line, the other pair
     * still scored */
    tu_mkfifo(tu_path(tmp_dir, "C/y.png"));
    tu_mkfifo(tu_path(tmp_dir, "D/y.png"));
    snprintf(args, sizeof args, "%s/C %s/D", tmp_dir, tmp_dir);
    int rc = tu_run_tool_limit("dsdeblur-eval", args, tmp_dir, 60);
    char *out = tmp_file("out");
    err = tmp_file("err");
    ck_assert_msg(rc == 1 && tu_count_lines(err) == 1 && strstr(err, "y.png: is a FIFO") &&
                      strstr(out, "1 pair scored"),
                  "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "eval") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_eval_folders);
    tcase_add_test(tc, test_eval_file_rules);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* no OpenCL context is ever created */
    tu_rmtree(tmp_dir);
    return status;
}
