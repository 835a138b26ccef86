/*
 * testutil.c: shared test helpers (see testutil.h).
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static dsd_context *shared_ctx;

dsd_context *tu_ctx(void)
{
    if (shared_ctx)
        return shared_ctx;
    dsd_error err;
    if (dsd_context_init(&shared_ctx, NULL, &err) != DSD_OK) {
        char line[DSD_ERROR_LINE_MAX];
        dsd_error_format(&err, line, sizeof line);
        const char *allow = getenv("DSDEBLUR_ALLOW_NO_DEVICE");
        if (err.status == DSD_ERR_NO_DEVICE && allow && !strcmp(allow, "1")) {
            fprintf(stderr, "SKIP: %s (DSDEBLUR_ALLOW_NO_DEVICE=1)\n", line);
            exit(77);
        }
        ck_abort_msg("no OpenCL context: %s", line);
    }
    return shared_ctx;
}

void tu_ctx_free(void)
{
    dsd_context_free(shared_ctx);
    shared_ctx = NULL;
}

void tu_ok_(dsd_status st, const char *expr, const char *file, int line)
{
    if (st == DSD_OK)
        return;
    char msg[DSD_ERROR_LINE_MAX];
    dsd_error_format(dsd_context_error(tu_ctx()), msg, sizeof msg);
    ck_abort_msg("%s:%d: %s returned %s: %s", file, line, expr, dsd_status_name(st), msg);
}

tu_rng tu_rng_init(uint64_t seed)
{
    tu_rng r = {seed ? seed : 0x9e3779b97f4a7c15ULL};
    return r;
}

static uint64_t next_u64(tu_rng *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

double tu_uniform(tu_rng *r, double lo, double hi)
{
    double u = (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

void tu_fill(tu_rng *r, double *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_uniform(r, lo, hi);
}

void tu_fill_nonzero(tu_rng *r, double *x, size_t n, double min_abs, double max_abs)
{
    for (size_t i = 0; i < n; i++) {
        double v = tu_uniform(r, min_abs, max_abs);
        x[i] = (next_u64(r) & 1) ? v : -v;
    }
}

double *tu_alloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_msg(p != NULL, "out of host memory (%zu doubles)", n);
    return p;
}

void tu_tensor(dsd_tensor *t, int n, int c, int h, int w)
{
    TU_OK(dsd_tensor_init(tu_ctx(), t, n, c, h, w));
}

void tu_upload(dsd_tensor *t, const double *host)
{
    size_t n = dsd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    ck_assert(f != NULL);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)host[i];
    /* Write the WHOLE buffer from offset 0 (read it, patch the tensor's range,
     * write it back): Oclgrind 21.10 sizes its initialized-memory tracking by
     * the last host write and ignores its offset, so a partial write makes
     * later reads of a pooled buffer or a view look uninitialized. */
    dsd_context *ctx = tu_ctx();
    cl_command_queue q = dsd_context_queue(ctx);
    size_t bytes = 0;
    cl_int rc = clGetMemObjectInfo(t->buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
    ck_assert_msg(rc == CL_SUCCESS, "clGetMemObjectInfo: %s", dsd_cl_error_name(rc));
    size_t begin = (size_t)t->offset * sizeof *f;
    ck_assert(begin + n * sizeof *f <= bytes);
    unsigned char *whole = malloc(bytes);
    ck_assert(whole != NULL);
    rc = clEnqueueReadBuffer(q, t->buf, CL_TRUE, 0, bytes, whole, 0, NULL, NULL);
    if (rc == CL_SUCCESS) {
        memcpy(whole + begin, f, n * sizeof *f);
        rc = clEnqueueWriteBuffer(q, t->buf, CL_TRUE, 0, bytes, whole, 0, NULL, NULL);
    }
    free(whole);
    free(f);
    ck_assert_msg(rc == CL_SUCCESS, "upload: %s", dsd_cl_error_name(rc));
}

void tu_download(const dsd_tensor *t, double *host)
{
    size_t n = dsd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    ck_assert(f != NULL);
    dsd_status st = dsd_tensor_download(tu_ctx(), t, f, n);
    for (size_t i = 0; i < n && st == DSD_OK; i++)
        host[i] = f[i];
    free(f);
    TU_OK(st);
}

void tu_tensor_from(dsd_tensor *t, int n, int c, int h, int w, const double *host)
{
    tu_tensor(t, n, c, h, w);
    tu_upload(t, host);
}

void tu_tensor_free(dsd_tensor *t)
{
    dsd_tensor_free(tu_ctx(), t);
}

double tu_rel_error(const double *got, const double *ref, size_t n, double floor_, size_t *worst)
{
    double max_ref = floor_, max_diff = -1.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > max_ref)
            max_ref = fabs(ref[i]);
        double d = fabs(got[i] - ref[i]);
        if (isnan(got[i]) || isnan(ref[i]))
            d = INFINITY;
        if (d > max_diff) {
            max_diff = d;
            w = i;
        }
    }
    if (worst)
        *worst = w;
    return n ? max_diff / max_ref : 0.0;
}

double tu_check_close(const char *what, const double *got, const double *ref, size_t n,
                      double tol)
{
    size_t worst = 0;
    double e = tu_rel_error(got, ref, n, 1e-6, &worst);
    ck_assert_msg(e <= tol, "%s: relative error %.3g > %.3g at element %zu of %zu: got %.9g, "
                  "reference %.9g", what, e, tol, worst, n, n ? got[worst] : 0.0,
                  n ? ref[worst] : 0.0);
    return e;
}

double tu_check_tensor(const char *what, const dsd_tensor *t, const double *ref, double tol)
{
    size_t n = dsd_tensor_numel(t);
    double *got = tu_alloc(n);
    tu_download(t, got);
    double e = tu_check_close(what, got, ref, n, tol);
    free(got);
    return e;
}

void tu_numeric_grad(tu_loss_fn loss, void *user, double *param, size_t n, double eps,
                     double *grad)
{
    for (size_t i = 0; i < n; i++) {
        double saved = param[i];
        param[i] = saved + eps;
        double lp = loss(user);
        param[i] = saved - eps;
        double lm = loss(user);
        param[i] = saved;
        grad[i] = (lp - lm) / (2.0 * eps);
    }
}

double tu_dot(const double *y, const double *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += y[i] * g[i];
    return s;
}

int tu_small(void)
{
    const char *s = getenv("DSDEBLUR_TEST_SMALL");
    return s && !strcmp(s, "1");
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tu_ctx_free();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

size_t tu_numel4(const int s[4])
{
    return (size_t)s[0] * s[1] * s[2] * s[3];
}

const int (*tu_pick_shapes(const int (*full)[4], int n_full, const int (*small)[4],
                           int n_small, int *n))[4]
{
    int use_small = tu_small();
    *n = use_small ? n_small : n_full;
    return use_small ? small : full;
}

void tu_round_to_float(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)x[i];
}

void tu_write_whole_ctx(dsd_context *ctx, const dsd_tensor *t, const double *host, size_t at,
                        size_t count, float fill)
{
    size_t n = t->capacity / sizeof(float);
    ck_assert_uint_ge(n, at + count);
    float *f = malloc(n * sizeof *f);
    ck_assert(f != NULL);
    for (size_t i = 0; i < n; i++)
        f[i] = fill;
    for (size_t i = 0; host && i < count; i++)
        f[at + i] = (float)host[i];
    cl_int rc = clEnqueueWriteBuffer(dsd_context_queue(ctx), t->buf, CL_TRUE, 0, n * sizeof *f,
                                     f, 0, NULL, NULL);
    free(f);
    ck_assert_msg(rc == CL_SUCCESS, "clEnqueueWriteBuffer: %s", dsd_cl_error_name(rc));
}

void tu_write_whole(const dsd_tensor *t, const double *host, size_t at, size_t count)
{
    tu_write_whole_ctx(tu_ctx(), t, host, at, count, TU_SENTINEL);
}

void tu_plain_from(dsd_tensor *t, int n, int c, int h, int w, const double *host)
{
    tu_tensor(t, n, c, h, w);
    tu_write_whole(t, host, 0, host ? dsd_tensor_numel(t) : 0);
}

void tu_guarded_from_at(tu_guarded *t, const int s[4], const double *host, int first)
{
    tu_tensor(&t->base, s[0] + first, s[1], s[2], s[3]);
    t->v = dsd_tensor_view_batch(&t->base, first, s[0]);
    ck_assert_int_eq(t->v.n, s[0]);
    tu_write_whole(&t->base, host, t->v.offset, host ? dsd_tensor_numel(&t->v) : 0);
}

void tu_guarded_from(tu_guarded *t, const int s[4], const double *host)
{
    tu_guarded_from_at(t, s, host, 1);
}

void tu_guarded_init(tu_guarded *t, const int s[4])
{
    tu_guarded_from_at(t, s, NULL, 1);
}

void tu_guarded_const(tu_guarded *t, const int s[4], float value)
{
    tu_guarded_init(t, s);
    TU_OK(dsd_tensor_fill(tu_ctx(), &t->v, value));
}

void tu_guarded_check(const tu_guarded *t, const char *what)
{
    dsd_tensor g = dsd_tensor_view_batch(&t->base, 0, 1);
    size_t n = dsd_tensor_numel(&g);
    double *h = tu_alloc(n);
    tu_download(&g, h);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(h[i] == TU_SENTINEL,
                      "%s: guard element %zu (before the view) overwritten with %g", what, i,
                      h[i]);
    free(h);
}

void tu_guarded_check_untouched(const tu_guarded *t, double value, const char *what)
{
    size_t n = dsd_tensor_numel(&t->v);
    double *h = tu_alloc(n);
    tu_download(&t->v, h);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(h[i] == value, "%s: element %zu changed to %g", what, i, h[i]);
    free(h);
    tu_guarded_check(t, what);
}

void tu_guarded_free(tu_guarded *t)
{
    tu_tensor_free(&t->base);
}

void tu_check_accum(const char *what, const dsd_tensor *t, const double *prefill,
                    const double *grad, double tol)
{
    size_t n = dsd_tensor_numel(t);
    double *got = tu_alloc(n);
    tu_download(t, got);
    for (size_t i = 0; i < n; i++)
        got[i] -= prefill[i];
    tu_check_close(what, got, grad, n, tol);
    free(got);
}

double tu_download_scalar(const dsd_tensor *t)
{
    ck_assert_uint_eq(dsd_tensor_numel(t), 1);
    double v;
    tu_download(t, &v);
    return v;
}

void tu_expect_status(dsd_status got, dsd_status want, const char *call)
{
    char line[DSD_ERROR_LINE_MAX];
    ck_assert_msg(got == want, "%s returned %s, want %s (%s)", call, dsd_status_name(got),
                  dsd_status_name(want),
                  dsd_error_format(dsd_context_error(tu_ctx()), line, sizeof line));
}

/* ------------------------------------------------------------------------ */
/* Host-only calls */

void tu_host_ok_(dsd_status st, const dsd_error *err, const char *expr, const char *file,
                 int line)
{
    if (st == DSD_OK)
        return;
    char msg[DSD_ERROR_LINE_MAX];
    ck_abort_msg("%s:%d: %s returned %s: %s", file, line, expr, dsd_status_name(st),
                 dsd_error_format(err, msg, sizeof msg));
}

void tu_expect_error_(dsd_status st, dsd_status want, const dsd_error *err, const char *file,
                      int line, ...)
{
    ck_assert_msg(st == want, "%s:%d: got %s, want %s (message: %s)", file, line,
                  dsd_status_name(st), dsd_status_name(want), err->message);
    ck_assert_msg(err->status == want, "%s:%d: returned %s but the error records %s", file,
                  line, dsd_status_name(want), dsd_status_name(err->status));
    va_list ap;
    va_start(ap, line);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        ck_assert_msg(strstr(err->message, s), "%s:%d: message \"%s\" lacks \"%s\"", file,
                      line, err->message, s);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Temporary folders and paths */

int tu_make_tmp_dir(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "/tmp/dsdeblur-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "tu_make_tmp_dir: a %zu-byte buffer cannot hold the name for '%s'\n",
                size, name);
        return -1;
    }
    if (!mkdtemp(buf)) {
        fprintf(stderr, "mkdtemp %s: %s\n", buf, strerror(errno));
        return -1;
    }
    return 0;
}

void tu_mkdtemp(char *buf, size_t size, const char *name)
{
    ck_assert_msg(tu_make_tmp_dir(buf, size, name) == 0, "cannot make a temporary folder for %s",
                  name);
}

int tu_rmtree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *e; (e = readdir(d));) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                size_t n = strlen(path) + strlen(e->d_name) + 2;
                char *sub = malloc(n);
                if (!sub) {
                    rc = -1;
                    break;
                }
                snprintf(sub, n, "%s/%s", path, e->d_name);
                rc |= tu_rmtree(sub);
                free(sub);
            }
            closedir(d);
        }
        if (rmdir(path) != 0) {
            fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
            rc = -1;
        }
    } else if (unlink(path) != 0) {
        fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

void tu_mkdir_p(const char *path)
{
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    ck_assert(p);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", p,
                          strerror(errno));
            p[i] = c;
        }
    free(p);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "%s is not a folder", path);
}

const char *tu_path_into(char *buf, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(buf, size, "%s/%s", dir, rel);
    ck_assert_msg(n > 0 && (size_t)n < size, "path too long for %zu bytes: %s/%s", size, dir,
                  rel);
    return buf;
}

const char *tu_path(const char *dir, const char *rel)
{
    static char bufs[8][1024];
    static int next;
    return tu_path_into(bufs[next++ % 8], sizeof bufs[0], dir, rel);
}

/* ------------------------------------------------------------------------ */
/* Whole files */

void *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "%s: %s", path, strerror(errno));
    ck_assert_msg(fseek(f, 0, SEEK_END) == 0, "%s: cannot seek", path);
    long size = ftell(f);
    ck_assert_msg(size >= 0 && fseek(f, 0, SEEK_SET) == 0, "%s: cannot seek", path);
    char *buf = malloc((size_t)size + 1);
    ck_assert(buf);
    ck_assert_msg(size == 0 || fread(buf, 1, (size_t)size, f) == (size_t)size,
                  "%s: short read", path);
    fclose(f);
    buf[size] = '\0';
    if (n)
        *n = (size_t)size;
    return buf;
}

void tu_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f, "%s: %s", path, strerror(errno));
    ck_assert_msg(n == 0 || fwrite(bytes, 1, n, f) == n, "%s: short write", path);
    ck_assert_msg(fclose(f) == 0, "%s: %s", path, strerror(errno));
}

int tu_count_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d, "%s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

int tu_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

int tu_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------------ */
/* Built tools */

int tu_run_tool(const char *tool, const char *args, const char *dir)
{
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "./tools/%s %s >%s/out 2>%s/err </dev/null", tool, args,
                     dir, dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof cmd, "command too long: ./tools/%s %s", tool,
                  args);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

int tu_run_tool_limit(const char *tool, const char *args, const char *dir, int seconds)
{
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "timeout %d ./tools/%s %s >%s/out 2>%s/err </dev/null",
                     seconds, tool, args, dir, dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof cmd, "command too long: ./tools/%s %s", tool,
                  args);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    ck_assert_msg(WEXITSTATUS(st) != 124, "%s hung: still running after %d s: %s", tool,
                  seconds, cmd);
    return WEXITSTATUS(st);
}

void tu_mkfifo(const char *path)
{
    ck_assert_msg(mkfifo(path, 0644) == 0, "mkfifo %s: %s", path, strerror(errno));
}

long tu_dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(0);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return (long)pid;
}
