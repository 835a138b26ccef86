/*
 * norm.c: instance normalization, forward and backward (PyTorch's
 * InstanceNorm2d: per (n, c) statistics over H x W, biased variance, optional
 * per-channel affine). Kernels in cl/norm.cl, double-precision reference in
 * tests/ref/norm.c.
 *
 * Forward is one launch: one work-group per plane computes the Welford
 * moments and writes the normalized plane. Backward is one launch for dx and
 * the per-plane sums sum(dy) and sum(dy * xhat); when dgamma or dbeta is
 * wanted, a second small launch adds those sums over the batch in n order.
 * They travel through a (2, N*C) temporary leased from the pool and given
 * back right after enqueueing (the in-order queue runs both kernels before
 * any later user of the buffer). No atomics, so results repeat bit for bit.
 *
 * Requires eps > 0, so a constant plane (or H x W = 1) gives y = beta, not
 * NaN. A NULL gamma means gamma = 1, a NULL beta means beta = 0.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>

/* Work-group size (one group per (n, c) plane): a power of two, lowered to
 * what the device allows. */
enum { NORM_WG_DEFAULT = 256 };

/* ------------------------------------------------------------------------ */
/* Validation helpers */

/* An optional tensor t (may be NULL) must be (n, c, h, w) as x implies. */
static dsd_status check_optional(dsd_context *ctx, const char *op, const dsd_tensor *t,
                                 const char *what, const dsd_tensor *x, int n, int c, int h,
                                 int w)
{
    if (!t)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, t, what));
    return DSD_TENSOR_EXPECT_SHAPE(ctx, op, t, what, n, c, h, w, "x", x);
}

/* Required tensor: like check_optional, but NULL is an error. */
static dsd_status check_required(dsd_context *ctx, const char *op, const dsd_tensor *t,
                                 const char *what, const dsd_tensor *x, int n, int c, int h,
                                 int w)
{
    if (!t)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, what);
    return check_optional(ctx, op, t, what, x, n, c, h, w);
}

static size_t norm_wg(const dsd_context *ctx, char *opts, size_t size)
{
    size_t wg = dsd_work_group_size(ctx, NORM_WG_DEFAULT);
    snprintf(opts, size, "-DWG=%zu", wg);
    return wg;
}

/* ------------------------------------------------------------------------ */
/* Forward */

dsd_status dsd_instance_norm_forward(dsd_context *ctx, float eps, const dsd_tensor *x,
                                     const dsd_tensor *gamma, const dsd_tensor *beta,
                                     dsd_tensor *y, dsd_tensor *mean, dsd_tensor *rstd)
{
    const char *op = "instance_norm_forward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, x, "x"));
    if (!(eps > 0.0f) || isinf(eps))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: eps %g must be positive "
                        "and finite", op, (double)eps);
    DSD_TRY(check_optional(ctx, op, gamma, "gamma", x, 1, x->c, 1, 1));
    DSD_TRY(check_optional(ctx, op, beta, "beta", x, 1, x->c, 1, 1));
    DSD_TRY(check_required(ctx, op, y, "y", x, x->n, x->c, x->h, x->w));
    DSD_TRY(check_optional(ctx, op, mean, "mean", x, x->n, x->c, 1, 1));
    DSD_TRY(check_optional(ctx, op, rstd, "rstd", x, x->n, x->c, 1, 1));
    if (!mean != !rstd)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: mean and rstd must be "
                        "both given or both NULL", op);

    cl_uint planes = (cl_uint)x->n * (cl_uint)x->c, channels = (cl_uint)x->c,
            hw = (cl_uint)dsd_tensor_plane(x);
    cl_uint has_gamma = gamma != NULL, has_beta = beta != NULL, save_stats = mean != NULL;
    /* absent tensors are passed as x's buffer; the kernel never touches them */
    const dsd_tensor *g = gamma ? gamma : x, *b = beta ? beta : x;
    const dsd_tensor *m = mean ? mean : x, *r = rstd ? rstd : x;
    dsd_karg args[] = {DSD_KARG_TENSOR(x),    DSD_KARG_TENSOR(g),   DSD_KARG_TENSOR(b),
                       DSD_KARG_TENSOR(y),    DSD_KARG_TENSOR(m),   DSD_KARG_TENSOR(r),
                       DSD_KARG(planes),      DSD_KARG(channels),   DSD_KARG(hw),
                       DSD_KARG(eps),         DSD_KARG(has_gamma),  DSD_KARG(has_beta),
                       DSD_KARG(save_stats)};
    char opts[32];
    size_t wg = norm_wg(ctx, opts, sizeof opts);
    size_t global = (size_t)planes * wg;
    return dsd_kernel_run(ctx, "norm", opts, "instance_norm_forward", args,
                          DSD_NARGS(args), 1, &global, &wg);
}

/* ------------------------------------------------------------------------ */
/* Backward */

dsd_status dsd_instance_norm_backward(dsd_context *ctx, const dsd_tensor *x,
                                      const dsd_tensor *gamma, const dsd_tensor *mean,
                                      const dsd_tensor *rstd, const dsd_tensor *dy,
                                      dsd_tensor *dx, dsd_tensor *dgamma, dsd_tensor *dbeta)
{
    const char *op = "instance_norm_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, NULL, x, "x"));
    DSD_TRY(check_optional(ctx, op, gamma, "gamma", x, 1, x->c, 1, 1));
    DSD_TRY(check_required(ctx, op, mean, "mean", x, x->n, x->c, 1, 1));
    DSD_TRY(check_required(ctx, op, rstd, "rstd", x, x->n, x->c, 1, 1));
    DSD_TRY(check_required(ctx, op, dy, "dy", x, x->n, x->c, x->h, x->w));
    DSD_TRY(check_optional(ctx, op, dx, "dx", x, x->n, x->c, x->h, x->w));
    DSD_TRY(check_optional(ctx, op, dgamma, "dgamma", x, 1, x->c, 1, 1));
    DSD_TRY(check_optional(ctx, op, dbeta, "dbeta", x, 1, x->c, 1, 1));
    if (!dx && !dgamma && !dbeta)
        return DSD_OK; /* no gradient wanted */

    cl_uint batch = (cl_uint)x->n, channels = (cl_uint)x->c, planes = batch * channels,
            hw = (cl_uint)dsd_tensor_plane(x);
    cl_uint has_gamma = gamma != NULL, want_dx = dx != NULL;
    cl_uint want_dgamma = dgamma != NULL, want_dbeta = dbeta != NULL;
    cl_uint want_partial = want_dgamma || want_dbeta;

    /* partial (2, N*C): sum dy, then sum dy * xhat, per plane */
    dsd_tensor partial = {0};
    if (want_partial)
        DSD_TRY(dsd_tensor_init(ctx, &partial, 1, 1, 2, (int)planes));
    const dsd_tensor *g = gamma ? gamma : x, *d = dx ? dx : x, *p = want_partial ? &partial : x;

    char opts[32];
    size_t wg = norm_wg(ctx, opts, sizeof opts);
    size_t global = (size_t)planes * wg;
    dsd_karg args[] = {DSD_KARG_TENSOR(x),     DSD_KARG_TENSOR(g),      DSD_KARG_TENSOR(mean),
                       DSD_KARG_TENSOR(rstd),  DSD_KARG_TENSOR(dy),     DSD_KARG_TENSOR(d),
                       DSD_KARG_TENSOR(p),     DSD_KARG(planes),        DSD_KARG(channels),
                       DSD_KARG(hw),           DSD_KARG(has_gamma),     DSD_KARG(want_dx),
                       DSD_KARG(want_partial)};
    dsd_status st = dsd_kernel_run(ctx, "norm", opts, "instance_norm_backward_data", args,
                                   DSD_NARGS(args), 1, &global, &wg);
    if (st == DSD_OK && want_partial) {
        const dsd_tensor *dg = dgamma ? dgamma : x, *db = dbeta ? dbeta : x;
        dsd_karg pargs[] = {DSD_KARG_TENSOR(&partial), DSD_KARG_TENSOR(dg),
                            DSD_KARG_TENSOR(db),       DSD_KARG(batch),
                            DSD_KARG(channels),        DSD_KARG(want_dgamma),
                            DSD_KARG(want_dbeta)};
        size_t pglobal = channels, plocal = wg < 64 ? wg : 64;
        st = dsd_kernel_run(ctx, "norm", opts, "instance_norm_backward_params", pargs,
                            DSD_NARGS(pargs), 1, &pglobal, &plocal);
    }
    dsd_tensor_free(ctx, &partial);
    return st;
}
