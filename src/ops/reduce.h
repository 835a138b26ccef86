/*
 * reduce.h: the whole-tensor reduction that other ops in src/ops/ share (the
 * losses fuse their elementwise term into it). Private to the library; the
 * public reductions are declared in dsdeblur_ops.h.
 *
 * dsd_reduce_into computes y[0] = scale * sum_i term(a[i], b[i]) in two
 * passes (cl/reduce.cl): min(DSD_REDUCE_GROUPS, ceil(count / WG)) work-groups
 * each fold a fixed grid-strided subset of the elements into one partial sum
 * with a local tree, then one work-group folds the partials in index order.
 * The grouping depends only on the element count and the work-group size
 * (fixed per device), so a device gives bit-identical results run to run.
 */
#ifndef DSDEBLUR_OPS_REDUCE_H
#define DSDEBLUR_OPS_REDUCE_H

#include "internal.h"

/* Work-groups of pass 1, the same on every device (for tensors of at least
 * DSD_REDUCE_GROUPS work-group widths). */
enum { DSD_REDUCE_GROUPS = 128 };

/* The elementwise term that is summed (x = a[i], y = b[i]). */
typedef enum dsd_reduce_term {
    DSD_REDUCE_TERM_X = 0,      /* x */
    DSD_REDUCE_TERM_SQUARE,     /* x * x */
    DSD_REDUCE_TERM_SQ_DIFF,    /* (x - y)^2 (MSE) */
    DSD_REDUCE_TERM_ABS_DIFF,   /* |x - y| (L1) */
    DSD_REDUCE_TERM_BCE_LOGITS, /* max(x,0) - x*target + log1p(exp(-|x|)) (BCE with logits) */
} dsd_reduce_term;

/* y[0] = scale * sum over all elements of term(a[i], b[i]). b is read only by
 * the *_DIFF terms (NULL otherwise) and must then have a's shape; target is
 * read only by DSD_REDUCE_TERM_BCE_LOGITS. y is any tensor with one element.
 * Validates its tensors, enqueues two kernels, never waits. */
dsd_status dsd_reduce_into(dsd_context *ctx, dsd_reduce_term term, const dsd_tensor *a,
                           const dsd_tensor *b, float target, float scale, dsd_tensor *y);

#endif
