/*
 * test-runtime.c: the OpenCL runtime. Context creation, device listing and
 * selection, the on-disk kernel cache (hit, and recovery from corrupt
 * entries), and error paths: an invalid device selector, a kernel with a
 * syntax error (its build log must reach the caller), a missing kernel; the
 * one-line error format (message, then call and error name, then location).
 */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_context_default)
{
    dsd_context *ctx = tu_ctx();
    const dsd_device_info *d = dsd_context_device(ctx);
    ck_assert_msg(d->name[0] != '\0', "device has no name");
    ck_assert_uint_gt(d->compute_units, 0);
    ck_assert_uint_gt(d->global_mem_bytes, 0);
    ck_assert(dsd_context_queue(ctx) != NULL);
}
END_TEST

START_TEST(test_device_list_and_select)
{
    dsd_error err;
    dsd_device_info *list = NULL;
    size_t n = 0;
    ck_assert_int_eq(dsd_device_list(&list, &n, &err), DSD_OK);
    ck_assert_msg(n > 0, "no OpenCL device listed");
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(list[i].index, (int)i);
        ck_assert_msg(strstr(list[i].c_version, "OpenCL C") != NULL, "device %zu: '%s'", i,
                      list[i].c_version);
        ck_assert_uint_gt(list[i].max_alloc_bytes, 0);
    }
    ck_assert_int_eq(dsd_device_select(list, n, "0", &err), 0);
    char pd[32];
    snprintf(pd, sizeof pd, "%d:%d", list[n - 1].platform_index, list[n - 1].device_index);
    ck_assert_int_eq(dsd_device_select(list, n, pd, &err), (int)n - 1);
    /* a substring of the device's name picks it, case-insensitively */
    char sub[8] = {0};
    memcpy(sub, list[0].name, strnlen(list[0].name, 4));
    for (char *p = sub; *p; p++)
        *p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : (*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    ck_assert_int_ge(dsd_device_select(list, n, sub, &err), 0);
    ck_assert_int_ge(dsd_device_select(list, n, NULL, &err), 0);
    free(list);
}
END_TEST

START_TEST(test_invalid_selector)
{
    dsd_error err;
    dsd_context *ctx = NULL;
    dsd_context_options o = {0};
    o.device = "no-such-device-xyz";
    ck_assert_int_eq(dsd_context_init(&ctx, &o, &err), DSD_ERR_NO_DEVICE);
    ck_assert(ctx == NULL);
    ck_assert_msg(strstr(err.message, "no-such-device-xyz") != NULL, "message: %s", err.message);
    o.device = "999";
    ck_assert_int_eq(dsd_context_init(&ctx, &o, &err), DSD_ERR_NO_DEVICE);
    ck_assert_msg(strstr(err.message, "out of range") != NULL, "message: %s", err.message);
    char line[DSD_ERROR_LINE_MAX];
    dsd_error_format(&err, line, sizeof line);
    /* the message first, the location in brackets at the end of the line */
    ck_assert_msg(strncmp(line, err.message, strlen(err.message)) == 0, "not first: %s", line);
    const char *loc = strstr(line, " [src/context.c:");
    ck_assert_msg(loc && strchr(loc, ']') == line + strlen(line) - 1, "no source location at "
                  "the end: %s", line);
}
END_TEST

/* Makes a context with its own cache dir, fills a tensor with a kernel and
 * checks the values; returns the program statistics. */
static dsd_program_stats fill_with_cache(const char *cache)
{
    dsd_error err;
    dsd_context *ctx;
    dsd_context_options o = {0};
    o.cache_dir = cache;
    char line[DSD_ERROR_LINE_MAX];
    ck_assert_msg(dsd_context_init(&ctx, &o, &err) == DSD_OK, "%s",
                  dsd_error_format(&err, line, sizeof line));
    dsd_tensor t;
    ck_assert(dsd_tensor_init(ctx, &t, 1, 3, 5, 7) == DSD_OK);
    ck_assert_msg(dsd_tensor_fill(ctx, &t, 2.5f) == DSD_OK, "%s",
                  dsd_error_format(dsd_context_error(ctx), line, sizeof line));
    float host[105];
    ck_assert(dsd_tensor_download(ctx, &t, host, 105) == DSD_OK);
    for (int i = 0; i < 105; i++)
        ck_assert_float_eq(host[i], 2.5f);
    dsd_tensor_free(ctx, &t);
    dsd_program_stats s = dsd_context_program_stats(ctx);
    dsd_context_free(ctx);
    return s;
}

static int count_and_corrupt(const char *dir, int mode)
{
    DIR *d = opendir(dir);
    ck_assert(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".bin"))
            continue;
        n++;
        if (mode == 0)
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (mode == 1) { /* garbage of the same length class */
            FILE *f = fopen(p, "r+b");
            ck_assert(f != NULL);
            fseek(f, 30, SEEK_SET);
            fwrite("garbage garbage garbage", 1, 23, f);
            fclose(f);
        } else { /* truncated */
            ck_assert(truncate(p, 12) == 0);
        }
    }
    closedir(d);
    return n;
}

START_TEST(test_kernel_cache_hit_and_corruption)
{
    char dir[64];
    tu_mkdtemp(dir, sizeof dir, "runtime");
    dsd_program_stats a = fill_with_cache(dir);
    ck_assert_uint_ge(a.built_from_source, 1);
    ck_assert_uint_eq(a.loaded_from_disk, 0);
    ck_assert_int_ge(count_and_corrupt(dir, 0), 1);

    dsd_program_stats b = fill_with_cache(dir);
    ck_assert_uint_eq(b.built_from_source, 0);
    ck_assert_uint_ge(b.loaded_from_disk, 1);

    count_and_corrupt(dir, 1);
    dsd_program_stats c = fill_with_cache(dir);
    ck_assert_uint_ge(c.cache_rejected, 1);
    ck_assert_uint_ge(c.built_from_source, 1);

    count_and_corrupt(dir, 2);
    dsd_program_stats d = fill_with_cache(dir);
    ck_assert_uint_ge(d.cache_rejected, 1);
    ck_assert_uint_ge(d.built_from_source, 1);

    /* the rebuilt entry was written back and is good again */
    dsd_program_stats e = fill_with_cache(dir);
    ck_assert_uint_eq(e.built_from_source, 0);
    ck_assert_uint_ge(e.loaded_from_disk, 1);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_syntax_error_gives_build_log)
{
    dsd_context *ctx = tu_ctx();
    cl_program prog;
    const char *bad = "kernel void broken(global float *x) { x[0] = ; undeclared_thing(); }\n";
    dsd_status st = dsd_program_build_source(ctx, "broken.cl", bad, NULL, &prog);
    ck_assert_int_eq(st, DSD_ERR_BUILD);
    const dsd_error *e = dsd_context_error(ctx);
    ck_assert_str_eq(e->call, "clBuildProgram");
    ck_assert_int_eq(e->cl_code, CL_BUILD_PROGRAM_FAILURE);
    ck_assert_msg(strstr(e->message, "broken.cl") && strstr(e->message, "error"),
                  "no build log in: %s", e->message);
    char line[DSD_ERROR_LINE_MAX];
    dsd_error_format(e, line, sizeof line);
    ck_assert_msg(strstr(line, "CL_BUILD_PROGRAM_FAILURE (-11)"), "%s", line);
}
END_TEST

START_TEST(test_kernel_dir_override_with_broken_source)
{
    char dir[64];
    tu_mkdtemp(dir, sizeof dir, "runtime");
    char p[200];
    snprintf(p, sizeof p, "%s/common.cl", dir);
    FILE *f = fopen(p, "w");
    ck_assert(f != NULL);
    fputs("/* empty */\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/tensor.cl", dir);
    f = fopen(p, "w");
    ck_assert(f != NULL);
    fputs("kernel void tensor_fill(global float *x, uint o, uint n, float v) { x[o] = v }\n", f);
    fclose(f);

    dsd_error err;
    dsd_context *ctx;
    dsd_context_options o = {0};
    o.kernel_dir = dir;
    o.cache_dir = "";
    ck_assert(dsd_context_init(&ctx, &o, &err) == DSD_OK);
    dsd_tensor t;
    ck_assert(dsd_tensor_init(ctx, &t, 1, 1, 3, 3) == DSD_OK);
    ck_assert_int_eq(dsd_tensor_fill(ctx, &t, 1.0f), DSD_ERR_BUILD);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "cl/tensor.cl"), "%s",
                  dsd_context_error(ctx)->message);
    dsd_tensor_free(ctx, &t);
    dsd_context_free(ctx);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_missing_kernel)
{
    dsd_context *ctx = tu_ctx();
    cl_kernel k;
    ck_assert_int_eq(dsd_kernel_get(ctx, "tensor", NULL, "no_such_kernel", &k), DSD_ERR_OPENCL);
    ck_assert_str_eq(dsd_context_error(ctx)->call, "clCreateKernel");
    ck_assert_int_eq(dsd_kernel_get(ctx, "no_such_program", NULL, "x", &k),
                     DSD_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_error_names)
{
    ck_assert_str_eq(dsd_cl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    ck_assert_str_eq(dsd_cl_error_name(CL_INVALID_WORK_GROUP_SIZE), "CL_INVALID_WORK_GROUP_SIZE");
    ck_assert_str_eq(dsd_cl_error_name(12345), "CL_UNKNOWN_ERROR");
    ck_assert_str_eq(dsd_status_name(DSD_ERR_SHAPE), "DSD_ERR_SHAPE");
}
END_TEST

/* The one-line form a user reads: their file and the problem first, the
 * OpenCL call and its error name after it, our source location last. */
START_TEST(test_error_format)
{
    char line[DSD_ERROR_LINE_MAX];
    dsd_error e;
    dsd_error_clear(&e);
    ck_assert_str_eq(dsd_error_format(&e, line, sizeof line), "no error");
    e.status = DSD_ERR_OUT_OF_MEMORY;
    e.cl_code = CL_MEM_OBJECT_ALLOCATION_FAILURE;
    e.file = "src/buffer_pool.c";
    e.line = 42;
    snprintf(e.call, sizeof e.call, "clCreateBuffer");
    snprintf(e.message, sizeof e.message, "photo.png: 512 MiB for a 1x64x1024x2048 tensor");
    ck_assert_str_eq(dsd_error_format(&e, line, sizeof line),
                     "photo.png: 512 MiB for a 1x64x1024x2048 tensor (clCreateBuffer: "
                     "CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)) [src/buffer_pool.c:42]");
    /* no library call: message, then location */
    e.status = DSD_ERR_IO;
    e.cl_code = 0;
    e.call[0] = '\0';
    e.file = "src/io/image.c";
    e.line = 113;
    snprintf(e.message, sizeof e.message, "x.png: cannot open: No such file or directory");
    ck_assert_str_eq(dsd_error_format(&e, line, sizeof line),
                     "x.png: cannot open: No such file or directory [src/io/image.c:113]");
    /* a CLBlast status is a number, not an OpenCL name */
    e.status = DSD_ERR_CLBLAST;
    e.cl_code = -2048;
    snprintf(e.call, sizeof e.call, "CLBlastSgemm");
    snprintf(e.message, sizeof e.message, "GEMM 64x64x64");
    e.file = "src/ops/conv2d.c";
    e.line = 218;
    ck_assert_str_eq(dsd_error_format(&e, line, sizeof line),
                     "GEMM 64x64x64 (CLBlastSgemm: status -2048) [src/ops/conv2d.c:218]");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_error_names);
    tcase_add_test(tc, test_error_format);
    tcase_add_test(tc, test_context_default);
    tcase_add_test(tc, test_device_list_and_select);
    tcase_add_test(tc, test_invalid_selector);
    tcase_add_test(tc, test_kernel_cache_hit_and_corruption);
    tcase_add_test(tc, test_syntax_error_gives_build_log);
    tcase_add_test(tc, test_kernel_dir_override_with_broken_source);
    tcase_add_test(tc, test_missing_kernel);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
