/*
 * fft_loss.c: the frequency-domain content loss (forward and backward) on
 * clFFT. Kernels in cl/fft_loss.cl, double-precision reference (a plain DFT,
 * no FFT library) in tests/ref/fft.c.
 *
 * With d = a - b and D = FFT2(d) per (n, c) plane (complex to complex, full
 * H x W spectrum, unnormalized), loss = sum(|Re D| + |Im D|) / (2 N C H W).
 *
 * Gradient. Write theta(k, x) = 2 pi (kh h / H + kw w / W). Then
 * Re D_k = sum_x d_x cos theta and Im D_k = -sum_x d_x sin theta, so
 *   dL/dd_x = 1/(2NCHW) sum_k [sign(Re D_k) cos theta - sign(Im D_k) sin theta]
 *           = 1/(2NCHW) Re sum_k S_k e^{+i theta},   S_k = sign(Re D_k) + i sign(Im D_k),
 * which is the real part of the unnormalized inverse transform of S (clFFT's
 * backward direction with its scale set to 1). d = a - b gives da += and
 * db -= the same. At the frequencies where D is real for any real input (k = 0
 * and, for even lengths, the Nyquist rows/columns) Im D is 0 in exact
 * arithmetic and sign(0) = 0; in float it may come out as a tiny +-value, but
 * its term is multiplied by sin(theta) = sin(0 or pi) = 0, so either way the
 * gradient is the same up to rounding.
 *
 * Forward enqueues: pack (d as complex) -> clFFT forward in place -> a fixed
 * number of partial sums -> one final group (deterministic, no atomics).
 * Backward recomputes D (pack, forward), replaces it by S, runs the backward
 * transform and accumulates. Nothing here waits for the device; only the
 * first call for a shape bakes its plan, which compiles clFFT's kernels on
 * the host (clFFT may also upload twiddle tables then).
 *
 * clFFT's process-global state, and the scheme used here
 * -------------------------------------------------------
 * clFFT keeps one process-wide repository (a C++ singleton behind a lock) of
 * plans, generated programs and kernels. From its source (lifetime.cpp,
 * repo.cpp, clFFT 2.12):
 *  - clfftSetup() locks the repository, creates the singleton on first use,
 *    loads an optional timer module and stores the setup data. Calling it
 *    again is harmless (same data; it returns CLFFT_SUCCESS), so each
 *    dsd_fft_plans calls it when it makes its first plan.
 *  - Plans are created per cl_context (a plan retains its context and is
 *    released by clfftDestroyPlan). Compiled programs are cached in the
 *    repository keyed by (generator, parameters, cl_context, device) and are
 *    NOT released with the plan: they stay until clfftTeardown(). A cached
 *    program retains its cl_context, so a freed dsd_context's cl_context
 *    lingers until teardown (bounded memory: one set of programs per shape
 *    per context), and no later context can receive the same cl_context
 *    handle, so a stale program can never be matched to a new context.
 *  - clfftTeardown() releases every cached program and kernel and deletes
 *    every plan of every context in the process, then restarts plan handles
 *    at 1. Called while another context (possibly on another thread: one
 *    context per host thread is the library's model) holds plans, it would
 *    invalidate them, and a new plan could even reuse a stale handle.
 * So dsdeblur never calls clfftTeardown(): the plans belong to a caller-owned
 * dsd_fft_plans (the content loss holds one, the trainer another for the
 * synthetic blur), which creates and bakes a plan on first use of a shape
 * and destroys its plans in dsd_fft_plans_free(); the context knows nothing
 * of clFFT, and the library keeps no global state of its own. An application
 * that wants clFFT's caches released (and clFFT's "resources not freed"
 * warning at exit silenced) calls clfftTeardown() once itself, after freeing
 * every dsd_fft_plans and every context, from one thread.
 *
 * Temporary buffers: a 2-D plan may need a scratch buffer (clfftGetTmpBufSize,
 * e.g. for its transposes). Left NULL, clFFT would allocate one per plan and
 * keep it for the plan's lifetime; instead each call leases it from the
 * context's pool and gives it back after enqueueing (safe on the in-order
 * queue), so the memory is shared with other ops and shows in the pool stats.
 */
#include "internal.h"

#include "ops/fft_plan.h"

#include <clFFT.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Work-group size of every kernel here (a power of two, lowered to the device
 * limit) and the most partial sums of the forward reduction. */
enum { FFT_WG_DEFAULT = 256, FFT_MAX_GROUPS = 128 };

/* ------------------------------------------------------------------------ */
/* Plans */

/* The plan struct and the two entry points are shared with the synthetic blur
 * (src/train/blur_apply.c) through src/ops/fft_plan.h. */
typedef dsd_fft_plan fft_plan;

/* clFFT's own statuses (>= CLFFT_BUGCHECK); the rest are OpenCL codes. */
static const char *fft_status_name(clfftStatus st)
{
    switch ((int)st) {
    case CLFFT_BUGCHECK: return "CLFFT_BUGCHECK";
    case CLFFT_NOTIMPLEMENTED: return "CLFFT_NOTIMPLEMENTED";
    case CLFFT_TRANSPOSED_NOTIMPLEMENTED: return "CLFFT_TRANSPOSED_NOTIMPLEMENTED";
    case CLFFT_FILE_NOT_FOUND: return "CLFFT_FILE_NOT_FOUND";
    case CLFFT_FILE_CREATE_FAILURE: return "CLFFT_FILE_CREATE_FAILURE";
    case CLFFT_VERSION_MISMATCH: return "CLFFT_VERSION_MISMATCH";
    case CLFFT_INVALID_PLAN: return "CLFFT_INVALID_PLAN";
    case CLFFT_DEVICE_NO_DOUBLE: return "CLFFT_DEVICE_NO_DOUBLE";
    case CLFFT_DEVICE_MISMATCH: return "CLFFT_DEVICE_MISMATCH";
    default: return dsd_cl_error_name((int)st);
    }
}

/* Evaluates a clFFT call; on failure records DSD_ERR_CLFFT naming the call and
 * the status, and jumps to `fail`. */
#define FFT_CHECK(ctx, expr, fmt, ...)                                                    \
    do {                                                                                  \
        clfftStatus fft_st_ = (expr);                                                     \
        if (fft_st_ != CLFFT_SUCCESS) {                                                   \
            dsd_error_set(dsd_ctx_err(ctx), DSD_ERR_CLFFT, (int)fft_st_,                  \
                          dsd_call_name_(#expr), __FILE__, __LINE__, "%s: " fmt,          \
                          fft_status_name(fft_st_), __VA_ARGS__);                         \
            goto fail;                                                                    \
        }                                                                                 \
    } while (0)

void dsd_fft_plans_free(dsd_fft_plans *plans)
{
    if (!plans)
        return;
    for (size_t i = 0; i < plans->n; i++)
        clfftDestroyPlan(&plans->plan[i].handle); /* nothing to report at free */
    free(plans->plan);
    memset(plans, 0, sizeof *plans);
    /* No clfftTeardown(): see the top of this file. */
}

/* Before a dsd_fft_plans makes its first plan: clFFT's process-wide setup
 * (harmless when repeated, see the top of this file). */
static dsd_status fft_setup(dsd_context *ctx)
{
    /* What clfftInitSetupData() does; that header function is a non-static
     * `__inline` with no external definition, so at -O0 it does not link. */
    clfftSetupData setup = {.major = clfftVersionMajor, .minor = clfftVersionMinor,
                            .patch = clfftVersionPatch, .debugFlags = 0};
    FFT_CHECK(ctx, clfftSetup(&setup), "setting up clFFT %u.%u.%u", (unsigned)clfftVersionMajor,
              (unsigned)clfftVersionMinor, (unsigned)clfftVersionPatch);
    return DSD_OK;
fail:
    return dsd_ctx_err(ctx)->status;
}

/* The baked plan for batch planes of h x w (created on first use). The
 * returned pointer is valid until the next call (the array may grow). */
dsd_status dsd_fft_plan_get(dsd_context *ctx, dsd_fft_plans *plans, int h, int w, size_t batch,
                            const fft_plan **out)
{
    if (!plans)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "FFT plans are NULL: pass "
                        "a zeroed dsd_fft_plans");
    /* A plan belongs to the cl_context it was made in (and retains it, so
     * the handle cannot be reused while plans are held). */
    if (plans->n > 0 && plans->cl_ctx != ctx->cl_ctx)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "these FFT plans were made "
                        "for another context; use one dsd_fft_plans per context");
    for (size_t i = 0; i < plans->n; i++) {
        const fft_plan *p = &plans->plan[i];
        if (p->h == h && p->w == w && p->batch == batch) {
            *out = p;
            return DSD_OK;
        }
    }
    if (plans->n == 0)
        DSD_TRY(fft_setup(ctx));
    if (plans->n == plans->cap) { /* grow first, so a baked plan is never lost */
        size_t cap = plans->cap ? 2 * plans->cap : 8;
        fft_plan *grown = realloc(plans->plan, cap * sizeof *grown);
        if (!grown)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        plans->plan = grown;
        plans->cap = cap;
    }
    fft_plan p = {.h = h, .w = w, .batch = batch, .handle = 0, .tmp_bytes = 0};
    size_t lengths[2] = {(size_t)w, (size_t)h};      /* fastest dimension first */
    size_t strides[2] = {1, (size_t)w};              /* row-major planes, in complex elements */
    size_t dist = (size_t)h * (size_t)w;
    cl_command_queue queue = ctx->queue;
    int created = 0;
    FFT_CHECK(ctx, clfftCreateDefaultPlan(&p.handle, ctx->cl_ctx, CLFFT_2D, lengths),
              "creating a 2-D %dx%d plan", h, w);
    created = 1;
    FFT_CHECK(ctx, clfftSetPlanPrecision(p.handle, CLFFT_SINGLE), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetLayout(p.handle, CLFFT_COMPLEX_INTERLEAVED, CLFFT_COMPLEX_INTERLEAVED),
              "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetResultLocation(p.handle, CLFFT_INPLACE), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetPlanInStride(p.handle, CLFFT_2D, strides), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetPlanOutStride(p.handle, CLFFT_2D, strides), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetPlanDistance(p.handle, dist, dist), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetPlanBatchSize(p.handle, batch), "%dx%d plan, batch %zu", h, w, batch);
    /* Unnormalized both ways: forward is clFFT's default; backward defaults to 1/(HW). */
    FFT_CHECK(ctx, clfftSetPlanScale(p.handle, CLFFT_FORWARD, 1.0f), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftSetPlanScale(p.handle, CLFFT_BACKWARD, 1.0f), "%dx%d plan", h, w);
    FFT_CHECK(ctx, clfftBakePlan(p.handle, 1, &queue, NULL, NULL),
              "baking a 2-D %dx%d plan, batch %zu, on %s", h, w, batch, ctx->device.name);
    FFT_CHECK(ctx, clfftGetTmpBufSize(p.handle, &p.tmp_bytes), "%dx%d plan", h, w);
    plans->plan[plans->n] = p;
    plans->cl_ctx = ctx->cl_ctx;
    *out = &plans->plan[plans->n++];
    return DSD_OK;
fail:
    if (created)
        clfftDestroyPlan(&p.handle);
    return dsd_ctx_err(ctx)->status;
}

/* Enqueues the plan in place on spec (tmp may be NULL); never waits. */
dsd_status dsd_fft_transform(dsd_context *ctx, const fft_plan *plan, clfftDirection dir,
                             cl_mem spec, cl_mem tmp)
{
    cl_command_queue queue = dsd_context_queue(ctx);
    cl_event ev = NULL;
    const char *name = dir == CLFFT_FORWARD ? "forward" : "backward";
    FFT_CHECK(ctx, clfftEnqueueTransform(plan->handle, dir, 1, &queue, 0, NULL,
                                         dsd_profile_enabled(ctx) ? &ev : NULL, &spec, NULL, tmp),
              "%s transform of %zu planes of %dx%d", name, plan->batch, plan->h, plan->w);
    /* For multi-pass transforms clFFT's event is that of the last pass only. */
    dsd_profile_record(ctx, dir == CLFFT_FORWARD ? "clfft_forward" : "clfft_backward", ev);
    return DSD_OK;
fail:
    return dsd_ctx_err(ctx)->status;
}

/* ------------------------------------------------------------------------ */
/* Validation */

static dsd_status expect_like(dsd_context *ctx, const char *op, const dsd_tensor *t,
                              const char *what, const dsd_tensor *a)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, t, what));
    if (!dsd_tensor_same_shape(t, a))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but a is "
                        "%dx%dx%dx%d; they must have the same shape", op, what, t->n, t->c, t->h,
                        t->w, a->n, a->c, a->h, a->w);
    return DSD_OK;
}

/* The smallest prime factor of n outside clFFT's radices {2,3,5,7,11,13}, or 0. */
static int unsupported_factor(int n)
{
    static const int radices[] = {2, 3, 5, 7, 11, 13};
    for (size_t i = 0; i < sizeof radices / sizeof radices[0]; i++)
        while (n % radices[i] == 0)
            n /= radices[i];
    if (n == 1)
        return 0;
    for (int p = 17; p * p <= n; p += 2)
        if (n % p == 0)
            return p;
    return n;
}

static dsd_status check_length(dsd_context *ctx, const char *op, const char *dim, int len,
                               const dsd_tensor *a)
{
    int f = unsupported_factor(len);
    if (f)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s = %d of a (%dx%dx%dx%d) has the "
                        "prime factor %d; clFFT transforms only lengths whose prime factors are "
                        "2, 3, 5, 7, 11 and 13", op, dim, len, a->n, a->c, a->h, a->w, f);
    return DSD_OK;
}

/* a and b: allocated, same shape, transformable, small enough for uint indices. */
static dsd_status check_inputs(dsd_context *ctx, const char *op, const dsd_tensor *a,
                               const dsd_tensor *b)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(expect_like(ctx, op, b, "b", a));
    DSD_TRY(check_length(ctx, op, "H", a->h, a));
    DSD_TRY(check_length(ctx, op, "W", a->w, a));
    if (2.0 * (double)dsd_tensor_numel(a) > 4294967295.0 || a->w > 1073741823)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: a (%dx%dx%dx%d) is too large: its "
                        "complex spectrum needs more than 2^32 floats", op, a->n, a->c, a->h,
                        a->w);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Shared steps */

/* Buffers one call leases: the spectrum and clFFT's scratch. */
typedef struct fft_work {
    size_t wg;
    char opts[32];
    const fft_plan *plan;
    dsd_tensor spec;  /* (N, C, H, 2W): interleaved complex */
    dsd_tensor tmp;   /* clFFT scratch, unallocated when the plan needs none */
} fft_work;

static void fft_work_free(dsd_context *ctx, fft_work *wk)
{
    dsd_tensor_free(ctx, &wk->spec);
    dsd_tensor_free(ctx, &wk->tmp);
}

/* Gets the plan, leases the buffers, and enqueues spec = FFT2(a - b). */
static dsd_status fft_spectrum(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *a,
                               const dsd_tensor *b, fft_work *wk)
{
    wk->wg = dsd_work_group_size(ctx, FFT_WG_DEFAULT);
    snprintf(wk->opts, sizeof wk->opts, "-DWG=%zu", wk->wg);
    size_t batch = (size_t)a->n * (size_t)a->c;
    DSD_TRY(dsd_fft_plan_get(ctx, plans, a->h, a->w, batch, &wk->plan));
    DSD_TRY(dsd_tensor_init(ctx, &wk->spec, a->n, a->c, a->h, 2 * a->w));
    if (wk->plan->tmp_bytes > 0) {
        size_t floats = (wk->plan->tmp_bytes + sizeof(float) - 1) / sizeof(float);
        if (floats > 2147483647u)
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "clFFT asks for %zu bytes "
                            "of scratch", wk->plan->tmp_bytes);
        DSD_TRY(dsd_tensor_init(ctx, &wk->tmp, 1, 1, 1, (int)floats));
    }
    cl_uint count = (cl_uint)dsd_tensor_numel(a);
    dsd_karg args[] = {DSD_KARG_TENSOR(a), DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(&wk->spec),
                       DSD_KARG(count)};
    size_t global = count;
    DSD_TRY(dsd_kernel_run(ctx, "fft_loss", wk->opts, "fft_loss_pack", args, DSD_NARGS(args), 1,
                           &global, &wk->wg));
    return dsd_fft_transform(ctx, wk->plan, CLFFT_FORWARD, wk->spec.buf, wk->tmp.buf);
}

/* ------------------------------------------------------------------------ */
/* Forward: loss (1,1,1,1) = mean(|Re D|, |Im D|) */

dsd_status dsd_fft_loss_forward(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *a,
                                const dsd_tensor *b, dsd_tensor *loss)
{
    const char *op = "fft_loss_forward";
    DSD_TRY(check_inputs(ctx, op, a, b));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, loss, "loss"));
    if (dsd_tensor_numel(loss) != 1)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: loss is %dx%dx%dx%d but must be "
                        "1x1x1x1", op, loss->n, loss->c, loss->h, loss->w);

    fft_work wk = {0};
    dsd_tensor partial = {0};
    dsd_status st = fft_spectrum(ctx, plans, a, b, &wk);
    if (st != DSD_OK)
        goto done;

    /* A fixed number of groups per shape keeps the summation order fixed. */
    cl_uint count = (cl_uint)dsd_tensor_numel(a);
    size_t groups = (count + wk.wg - 1) / wk.wg;
    if (groups > FFT_MAX_GROUPS)
        groups = FFT_MAX_GROUPS;
    cl_uint ngroups = (cl_uint)groups;
    st = dsd_tensor_init(ctx, &partial, 1, 1, 1, (int)groups);
    if (st != DSD_OK)
        goto done;
    dsd_karg pargs[] = {DSD_KARG_TENSOR(&wk.spec), DSD_KARG(count), DSD_KARG_TENSOR(&partial)};
    size_t global = groups * wk.wg;
    st = dsd_kernel_run(ctx, "fft_loss", wk.opts, "fft_loss_abs_partial", pargs,
                        DSD_NARGS(pargs), 1, &global, &wk.wg);
    if (st != DSD_OK)
        goto done;
    float inv_count = (float)(1.0 / (2.0 * (double)count));
    dsd_karg fargs[] = {DSD_KARG_TENSOR(&partial), DSD_KARG(ngroups), DSD_KARG_TENSOR(loss),
                        DSD_KARG(inv_count)};
    global = wk.wg;
    st = dsd_kernel_run(ctx, "fft_loss", wk.opts, "fft_loss_abs_final", fargs, DSD_NARGS(fargs), 1,
                        &global, &wk.wg);
done:
    dsd_tensor_free(ctx, &partial);
    fft_work_free(ctx, &wk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Backward: da += scale Re(IFFT(S)) / (2NCHW), db -= the same */

dsd_status dsd_fft_loss_backward(dsd_context *ctx, dsd_fft_plans *plans, float scale,
                                 const dsd_tensor *a, const dsd_tensor *b, dsd_tensor *da,
                                 dsd_tensor *db)
{
    const char *op = "fft_loss_backward";
    DSD_TRY(check_inputs(ctx, op, a, b));
    if (da)
        DSD_TRY(expect_like(ctx, op, da, "da", a));
    if (db)
        DSD_TRY(expect_like(ctx, op, db, "db", a));
    if (!da && !db)
        return DSD_OK; /* nothing to accumulate */

    fft_work wk = {0};
    dsd_status st = fft_spectrum(ctx, plans, a, b, &wk);
    if (st != DSD_OK)
        goto done;

    cl_uint count = (cl_uint)dsd_tensor_numel(a), floats = 2 * count;
    dsd_karg sargs[] = {DSD_KARG_TENSOR(&wk.spec), DSD_KARG(floats)};
    size_t global = floats;
    st = dsd_kernel_run(ctx, "fft_loss", wk.opts, "fft_loss_sign", sargs, DSD_NARGS(sargs), 1,
                        &global, &wk.wg);
    if (st != DSD_OK)
        goto done;
    st = dsd_fft_transform(ctx, wk.plan, CLFFT_BACKWARD, wk.spec.buf, wk.tmp.buf);
    if (st != DSD_OK)
        goto done;

    float coef = (float)((double)scale / (2.0 * (double)count));
    /* A missing gradient's argument is the other one (the kernel skips it). */
    const dsd_tensor *ga = da ? da : db, *gb = db ? db : da;
    cl_uint has_da = da != NULL, has_db = db != NULL;
    dsd_karg aargs[] = {DSD_KARG_TENSOR(&wk.spec), DSD_KARG_TENSOR(ga), DSD_KARG_TENSOR(gb),
                        DSD_KARG(count), DSD_KARG(coef), DSD_KARG(has_da), DSD_KARG(has_db)};
    global = count;
    st = dsd_kernel_run(ctx, "fft_loss", wk.opts, "fft_loss_accumulate", aargs, DSD_NARGS(aargs), 1,
                        &global, &wk.wg);
done:
    fft_work_free(ctx, &wk);
    return st;
}
