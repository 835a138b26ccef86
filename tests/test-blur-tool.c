/*
 * test-blur-tool.c: the dsdeblur-blur tool (tools/dsdeblur-blur.c) end to
 * end, its file rules (tools/cli.h) in particular: OUT/sharp/x.png given as
 * an input is refused even with --force (it used to be re-encoded in place),
 * an existing output (the kernel picture too) is refused without --force,
 * two inputs of one stem do not write the same outputs, a FIFO input is one
 * line and skipped instead of a hang, and a killed run's temporaries in the
 * output folders are removed. The blur itself is tests/test-blur.c's.
 * Run from the build directory (make check does); it uses the default
 * OpenCL device (PoCL on CI) through the tool.
 */
#include "testutil.h"

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

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "blur-tool") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("blur_tool");
    TCase *tc = tcase_create("blur_tool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_blur_file_rules);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* the tool creates its context, in its own process */
    tu_rmtree(root);
    return status;
}
