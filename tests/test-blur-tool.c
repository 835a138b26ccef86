/*
 * test-blur-tool.c: the dsdeblur-blur tool end to end (run from the build
 * directory, as make check does), for what its user reads on stderr:
 *   - an image too small for its blur kernel (1x1) is one line: the tool's
 *     name once, the file, the sizes in words, our source location last in
 *     brackets; no internal function name; exit 1;
 *   - a run that compiles its kernels from scratch (fresh PoCL and dsdeblur
 *     caches, POCL_EXTRA_BUILD_FLAGS unset) prints nothing on stderr: no
 *     "4 warnings generated." from PoCL's compiler on clFFT's kernels.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char root[64];

static void write_image(const char *name, int w, int h)
{
    dsd_image img;
    dsd_image_init(&img);
    dsd_error err;
    ck_assert_int_eq(dsd_image_alloc(&img, w, h, &err), DSD_OK);
    for (size_t i = 0; i < dsd_image_numel(&img); i++)
        img.data[i] = (uint8_t)((i * 37) % 251);
    ck_assert_msg(dsd_image_save(tu_path(root, name), &img, &err) == DSD_OK, "%s", err.message);
    dsd_image_free(&img);
}

START_TEST(test_image_too_small)
{
    write_image("tiny.png", 1, 1);
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

START_TEST(test_no_compiler_chatter)
{
    write_image("photo.png", 24, 20);
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
        return 1;
    Suite *s = suite_create("blur-tool");
    TCase *tc = tcase_create("blur-tool");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_image_too_small);
    tcase_add_test(tc, test_no_compiler_chatter);
    suite_add_tcase(s, tc);
    int rc = tu_run(s); /* the tool creates the contexts, in its own process */
    tu_rmtree(root);
    return rc;
}
