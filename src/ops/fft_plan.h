/*
 * fft_plan.h: the clFFT plans of src/ops/fft_loss.c, shared with the other
 * clFFT user of the library (the synthetic blur, src/train/blur_apply.c).
 * Plans live in a caller-owned dsd_fft_plans (dsdeblur_ops.h), never in the
 * context, and are destroyed by dsd_fft_plans_free(). Not installed. The
 * rules for clFFT's process-global state (clfftSetup when a dsd_fft_plans
 * makes its first plan, never clfftTeardown) are explained at the top of
 * fft_loss.c.
 */
#ifndef DSDEBLUR_OPS_FFT_PLAN_H
#define DSDEBLUR_OPS_FFT_PLAN_H

#include "internal.h"

#include <clFFT.h>

/* A baked single-precision 2-D complex-to-complex in-place plan over `batch`
 * contiguous row-major planes of h x w interleaved complex values (distance
 * h*w complex elements), unnormalized in both directions (scale 1). */
typedef struct dsd_fft_plan {
    int h, w;
    size_t batch;              /* planes per transform */
    clfftPlanHandle handle;
    size_t tmp_bytes;          /* scratch the baked plan wants, 0 if none */
} dsd_fft_plan;

/* The plan for batch planes of h x w from plans, created and baked on first
 * use. The returned pointer is valid only until the next call (the array may
 * grow): copy the struct to hold two plans at once. h and w must factor into
 * 2, 3, 5, 7, 11 and 13 (callers check; clFFT's own error is reported
 * otherwise). DSD_ERR_INVALID_ARGUMENT when plans is NULL or holds plans of
 * another context. */
dsd_status dsd_fft_plan_get(dsd_context *ctx, dsd_fft_plans *plans, int h, int w, size_t batch,
                            const dsd_fft_plan **out);

/* Enqueues plan in place on spec (tmp: scratch of at least plan->tmp_bytes, or
 * NULL when the plan needs none); never waits. */
dsd_status dsd_fft_transform(dsd_context *ctx, const dsd_fft_plan *plan, clfftDirection dir,
                             cl_mem spec, cl_mem tmp);

#endif /* DSDEBLUR_OPS_FFT_PLAN_H */
