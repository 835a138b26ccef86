/*
 * testutil.h: what every test shares. A per-process OpenCL context (tests run
 * with CK_NOFORK), deterministic random data, double <-> device transfers,
 * a relative-error comparison that names the worst element, and central
 * finite differences on double-precision references.
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

#endif
