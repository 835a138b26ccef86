/*
 * testutil.h: what every test shares. A per-process OpenCL context (tests run
 * with CK_NOFORK), deterministic random data, double <-> device transfers,
 * a relative-error comparison that names the worst element, and central
 * finite differences on double-precision references. For host-only tests:
 * assertions on calls that report through a dsd_error, temporary folders,
 * whole-file reads and writes, and running a built tool.
 *
 * Everything that asserts (ck_assert) must run inside a test or a fixture;
 * tu_make_tmp_dir and tu_rmtree do not assert, for main().
 *
 * Comparisons use max|got - ref| / max(max|ref|, floor) <= tol, the
 * "relative error with an absolute floor" of the test plan (doc/testing.md).
 */
#ifndef DSDEBLUR_TESTUTIL_H
#define DSDEBLUR_TESTUTIL_H

#include "dsdeblur.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* The shared context. Created on first use; when no OpenCL device exists the
 * test fails, unless DSDEBLUR_ALLOW_NO_DEVICE=1, in which case the test
 * program exits 77 (automake's SKIP). */
dsd_context *tu_ctx(void);
/* Frees the shared context (call at the end of main). */
void tu_ctx_free(void);

/* Fails the current test with the context's error when st != DSD_OK. */
#define TU_OK(expr) tu_ok_((expr), #expr, __FILE__, __LINE__)
void tu_ok_(dsd_status st, const char *expr, const char *file, int line);

/* xorshift64* stream; seed must be non-zero. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;
tu_rng tu_rng_init(uint64_t seed);
double tu_uniform(tu_rng *r, double lo, double hi);
/* Uniform in [lo, hi], but never closer than 0.05 * (hi - lo) / 2 to zero in
 * magnitude is NOT guaranteed: use tu_fill_nonzero for that. */
void tu_fill(tu_rng *r, double *x, size_t n, double lo, double hi);
/* Values with |v| in [min_abs, max_abs], random sign (for kinks at 0). */
void tu_fill_nonzero(tu_rng *r, double *x, size_t n, double min_abs, double max_abs);

/* malloc'd arrays that fail the test when out of memory; free with free(). */
double *tu_alloc(size_t n);

/* Device tensor from/to double host arrays (converted to/from float). */
void tu_tensor(dsd_tensor *t, int n, int c, int h, int w);
void tu_upload(dsd_tensor *t, const double *host);
void tu_download(const dsd_tensor *t, double *host);
/* Allocates a tensor and uploads host data. */
void tu_tensor_from(dsd_tensor *t, int n, int c, int h, int w, const double *host);
void tu_tensor_free(dsd_tensor *t);

/* Relative error max|got-ref| / max(max|ref|, floor). */
double tu_rel_error(const double *got, const double *ref, size_t n, double floor_,
                    size_t *worst);
/* Asserts tu_rel_error <= tol with a message naming what, the worst index
 * and both values. Returns the error. */
double tu_check_close(const char *what, const double *got, const double *ref, size_t n,
                      double tol);
/* Same, comparing a device tensor with a reference array. */
double tu_check_tensor(const char *what, const dsd_tensor *t, const double *ref, double tol);

/* Central finite differences of loss() with respect to param[0..n): perturbs
 * param[i] by +-eps in place and restores it. grad[i] receives the estimate. */
typedef double (*tu_loss_fn)(void *user);
void tu_numeric_grad(tu_loss_fn loss, void *user, double *param, size_t n, double eps,
                     double *grad);

/* sum(y[i] * g[i]): the scalar whose gradient w.r.t. y is g; tests use it to
 * turn an op's output into a loss for finite differences. */
double tu_dot(const double *y, const double *g, size_t n);

/* Runs a suite with CK_NOFORK (one OpenCL context per process) and returns
 * the exit status for main(). */
int tu_run(Suite *s);

/* Non-zero when DSDEBLUR_TEST_SMALL=1 (under Oclgrind): tests shrink shapes. */
int tu_small(void);


/* ------------------------------------------------------------------------ */
/* Small shape helpers */

/* Number of elements of a static array. */
#define TU_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Elements of an (N, C, H, W) shape. */
size_t tu_numel4(const int s[4]);

/* The shape table to use: small (n_small entries) when tu_small(), else full
 * (n_full entries). Stores the count in *n. TU_PICK_SHAPES takes the counts
 * from the arrays' sizes. */
const int (*tu_pick_shapes(const int (*full)[4], int n_full, const int (*small)[4],
                           int n_small, int *n))[4];
#define TU_PICK_SHAPES(full, small, n)                                                      \
    tu_pick_shapes((full), TU_COUNT(full), (small), TU_COUNT(small), (n))

/* Rounds x[0..n) to float in place, so a double reference sees exactly the
 * values the device holds. */
void tu_round_to_float(double *x, size_t n);

/* ------------------------------------------------------------------------ */
/* Whole-buffer host writes and guarded views */

/* The value the guard image and unwritten buffer space hold. */
#define TU_SENTINEL 1234.5f

/* Writes the whole pooled buffer of t (t->capacity bytes, from byte 0) in one
 * host write: fill everywhere, except count values of host (if not NULL,
 * rounded to float) from element `at` of the buffer. Oclgrind 21.10's
 * --uninitialized re-sizes a buffer's shadow to the size of each host write
 * (its hostMemoryStore re-allocates it, ignoring the offset), so a write that
 * does not cover the pooled buffer's whole capacity, or starts at an offset,
 * makes later kernel accesses (also by the buffer's next user in the pool)
 * look uninitialized; tests therefore always write all of it. */
void tu_write_whole_ctx(dsd_context *ctx, const dsd_tensor *t, const double *host, size_t at,
                        size_t count, float fill);
/* Same on tu_ctx() with fill TU_SENTINEL. */
void tu_write_whole(const dsd_tensor *t, const double *host, size_t at, size_t count);

/* A plain (n, c, h, w) tensor holding host, or TU_SENTINEL everywhere when
 * host is NULL, written with tu_write_whole. */
void tu_plain_from(dsd_tensor *t, int n, int c, int h, int w, const double *host);

/* A guarded tensor: v, of shape s, is images first..first+N-1 of base (an
 * (N+first)-image tensor), so ops see a non-zero offset; everything else in
 * base's buffer (image 0 in particular) holds TU_SENTINEL, which no op may
 * touch. */
typedef struct tu_guarded {
    dsd_tensor base, v;
} tu_guarded;
/* v holds host (TU_SENTINEL when host is NULL); first = 1. */
void tu_guarded_from(tu_guarded *t, const int s[4], const double *host);
/* Same with the view starting at image `first` (0 gives no guard image). */
void tu_guarded_from_at(tu_guarded *t, const int s[4], const double *host, int first);
/* tu_guarded_from(t, s, NULL): TU_SENTINEL everywhere. */
void tu_guarded_init(tu_guarded *t, const int s[4]);
/* tu_guarded_init, then v filled with value on the device. */
void tu_guarded_const(tu_guarded *t, const int s[4], float value);
/* Asserts image 0 of base still holds TU_SENTINEL. */
void tu_guarded_check(const tu_guarded *t, const char *what);
/* Asserts every element of v equals value, then tu_guarded_check. */
void tu_guarded_check_untouched(const tu_guarded *t, double value, const char *what);
void tu_guarded_free(tu_guarded *t);

/* ------------------------------------------------------------------------ */
/* More checks */

/* Backward ops accumulate: compares (t - prefill) with the reference gradient
 * grad (tu_check_close), so a large pre-fill cannot hide a small gradient. */
void tu_check_accum(const char *what, const dsd_tensor *t, const double *prefill,
                    const double *grad, double tol);

/* The single value of a one-element tensor. */
double tu_download_scalar(const dsd_tensor *t);

/* Asserts got == want, naming call and the context's error line. */
void tu_expect_status(dsd_status got, dsd_status want, const char *call);

/* ------------------------------------------------------------------------ */
/* Host-only calls (they report through a dsd_error, not a context) */

/* Fails the current test unless expr gives DSD_OK, with the formatted error
 * of the dsd_error err (a variable, not a pointer). */
#define TU_HOST_OK(expr, err) tu_host_ok_((expr), &(err), #expr, __FILE__, __LINE__)
void tu_host_ok_(dsd_status st, const dsd_error *err, const char *expr, const char *file,
                 int line);

/* Asserts expr gives want, that the error records want too, and that its
 * message contains each of the strings that follow (at least one).
 * TU_EXPECT_ERROR reads the dsd_error err (a variable); TU_EXPECT_CTX_ERROR
 * the last error of tu_ctx(). */
#define TU_EXPECT_ERROR(expr, want, err, ...)                                              \
    tu_expect_error_((expr), (want), &(err), __FILE__, __LINE__, __VA_ARGS__,             \
                     (const char *)NULL)
#define TU_EXPECT_CTX_ERROR(expr, want, ...)                                               \
    tu_expect_error_((expr), (want), dsd_context_error(tu_ctx()), __FILE__, __LINE__,     \
                     __VA_ARGS__, (const char *)NULL)
void tu_expect_error_(dsd_status st, dsd_status want, const dsd_error *err, const char *file,
                      int line, ...);

/* ------------------------------------------------------------------------ */
/* Temporary folders and paths (host only) */

/* Makes a fresh folder /tmp/dsdeblur-<name>-XXXXXX in buf (64 bytes do).
 * Returns 0, or -1 after saying why on stderr. It does not assert, so main()
 * can call it before the suite runs. */
int tu_make_tmp_dir(char *buf, size_t size, const char *name);
/* The same inside a test, failing the test when the folder cannot be made. */
void tu_mkdtemp(char *buf, size_t size, const char *name);
/* Removes path and everything below it (links themselves, never their
 * targets). Returns 0, or -1 after naming on stderr what is left. Does not
 * assert, so main() can call it after the suite. */
int tu_rmtree(const char *path);

/* mkdir -p without a shell: path and its missing parents (0755). Fails the
 * test when path is not a folder afterwards. */
void tu_mkdir_p(const char *path);

/* dir/rel in one of eight rotating buffers: good for the arguments of a call
 * or two; copy a path that must live longer. Fails the test if it does not
 * fit (1024 bytes). */
const char *tu_path(const char *dir, const char *rel);
/* dir/rel into buf (of size bytes), for a path that must live longer;
 * returns buf. Fails the test if it does not fit. */
const char *tu_path_into(char *buf, size_t size, const char *dir, const char *rel);

/* ------------------------------------------------------------------------ */
/* Whole files (host only; each fails the test on an I/O error) */

/* The whole file, malloc'd with a NUL after its last byte (so text can be
 * searched); its size in *n when n is not NULL. free() it. */
void *tu_read_file(const char *path, size_t *n);
/* Creates or replaces path with bytes[0..n). */
void tu_write_file(const char *path, const void *bytes, size_t n);
/* Entries of folder dir whose name contains ".tmp." (temporaries an atomic
 * save left behind). */
int tu_count_temporaries(const char *dir);
/* Non-zero when something (file, folder, ...) exists at path. */
int tu_file_exists(const char *path);
/* The number of '\n' in s. */
int tu_count_lines(const char *s);

/* ------------------------------------------------------------------------ */
/* Built tools */

/* Runs ./tools/<tool> args through the shell from the build directory (as
 * make check does), stdin from /dev/null, stdout into dir/out and stderr
 * into dir/err. Returns the exit status; fails the test when the command
 * does not fit or the tool did not exit (a signal). */
int tu_run_tool(const char *tool, const char *args, const char *dir);
/* The same under coreutils' timeout: a tool still running after seconds is
 * killed and the test fails, saying it hung (a test of a FIFO input must
 * fail, not wait forever). */
int tu_run_tool_limit(const char *tool, const char *args, const char *dir, int seconds);
/* Makes a FIFO (named pipe) at path, failing the test when it cannot. */
void tu_mkfifo(const char *path);
/* The pid of a process that has exited (forked, exited, reaped): what a
 * killed writer leaves in the names of its temporaries. */
long tu_dead_pid(void);

#endif
