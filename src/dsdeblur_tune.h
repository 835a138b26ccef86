/*
 * dsdeblur_tune.h: measuring a device's GEMM parameters (src/tune.c;
 * doc/tuning.md, "Tuning a device"). dsdeblur-bench --tune is the front end.
 *
 * Every GEMM of the library goes through CLBlast's SGEMM (src/ops/gemm.c),
 * whose speed depends on the Xgemm kernel's tile parameters and on
 * XGEMM_MIN_INDIRECT_SIZE (below it the untuned "direct" kernel runs). The
 * tuner times a fixed list of candidate configurations on the products the
 * networks actually run (derived from their plans), keeps the fastest one
 * that also passes a correctness check against a double-precision host
 * product, and returns it as a device profile that dsd_device_profile_save
 * writes to the cache directory (dsd_context_profile_path), where the next
 * context of the same device picks it up.
 *
 *     dsd_gemm_shape *shapes = NULL; size_t n = 0;
 *     dsd_tune_shapes_from_plan(&plan, 1, 1, &shapes, &n, &err);  // per network
 *     dsd_tune_shapes_select(shapes, &n, 12);
 *     dsd_tune_options o = dsd_tune_default_options();
 *     dsd_tune_result r;
 *     dsd_tune_device(ctx, shapes, n, &o, &r);
 *     dsd_device_profile_save(path, &r.best, &err);
 *
 * What it is not: CLBlast's exhaustive tuner (clblast_tuner_xgemm tries
 * thousands of configurations on one square size); this tries ~16 on the
 * networks' own shapes, in minutes.
 */
#ifndef DSDEBLUR_TUNE_H
#define DSDEBLUR_TUNE_H

#include "dsdeblur.h"
#include "dsdeblur_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One column-major product C (m x n) = op(A) op(B), as dsd_gemm gets it. */
typedef struct dsd_gemm_shape {
    size_t m, n, k;
    int trans_a, trans_b;
    double count;       /* how many times one pass of the networks runs it */
} dsd_gemm_shape;

/* Adds the GEMMs of a plan's convolutions to *shapes (realloc'd; merged by
 * shape): forward products, and with training also the backward's (dW only
 * when with_dw: VGG's weights are frozen). Free *shapes with free(). */
dsd_status dsd_tune_shapes_from_plan(const dsd_network_plan *plan, int training, int with_dw,
                                     dsd_gemm_shape **shapes, size_t *n_shapes, dsd_error *err);
/* Sorts by multiply-adds (count x m x n x k), largest first, and keeps at
 * most max_shapes. */
void dsd_tune_shapes_select(dsd_gemm_shape *shapes, size_t *n_shapes, size_t max_shapes);

/* One candidate: the Xgemm parameters (CLBlast's names) and the threshold. */
typedef struct dsd_xgemm_config {
    char label[32];
    size_t gemmk, mwg, nwg, kwg, mdimc, ndimc, mdima, ndimb, kwi, vwm, vwn, strm, strn, sa, sb,
        kreg;
    size_t min_indirect;  /* GemmRoutine XGEMM_MIN_INDIRECT_SIZE */
} dsd_xgemm_config;

/* Whether CLBlast's Xgemm accepts c on dev (divisibility rules, work-group
 * size, local memory); when not, why says which rule. */
int dsd_xgemm_config_valid(const dsd_device_info *dev, const dsd_xgemm_config *c, char *why,
                           size_t why_size);
/* The fixed candidate list, those valid on dev, into out (at most cap);
 * returns the count. */
size_t dsd_tune_candidates(const dsd_device_info *dev, dsd_xgemm_config *out, size_t cap);
/* Sets the Xgemm and GemmRoutine parameters of p to c. */
dsd_status dsd_xgemm_config_to_profile(const dsd_xgemm_config *c, dsd_device_profile *p,
                                       dsd_error *err);

typedef struct dsd_tune_options {
    double seconds;        /* stop trying further candidates after this (0: no bound) */
    int max_candidates;    /* time at most this many, the profile in effect included
                              (0: all) */
    /* Called after each timed candidate (index 0: the profile in effect);
     * failure is NULL, or why the candidate could not run (ms is then -1;
     * the search goes on without it). */
    void (*report)(void *user, int index, const char *label, double ms, double gflops,
                   const char *failure);
    void *user;
} dsd_tune_options;

dsd_tune_options dsd_tune_default_options(void);

typedef struct dsd_tune_result {
    dsd_device_profile best;     /* the profile to save (the one in effect when it won) */
    char best_label[32];
    double current_ms, best_ms;  /* the shapes' total time, weighted by count */
    double gflops_current, gflops_best;
    int tried, skipped;          /* candidates tried; not tried (time or count bound) */
    int failed;                  /* tried but refused by the device or CLBlast */
    int time_bound_hit;
    double max_rel_error;        /* of the correctness check of best */
    int confirmed;               /* the two times are from the confirming runs */
} dsd_tune_result;

/* Times the profile in effect, then the candidates (dsd_tune_candidates,
 * each at the threshold in effect), then the fastest with thresholds 128,
 * 256, 512 and 1024; times the one in effect and the fastest twice more,
 * taking turns (current_ms and best_ms are the better of each, and the
 * fastest must still win); checks the winner against a host double product (three
 * odd-sized products, one per transposition the library uses, error at most
 * 1e-4 of the sum of |a||b|), and leaves the winner applied. DSD_ERR_CLBLAST
 * when the winner fails the check (the profile in effect is re-applied). */
dsd_status dsd_tune_device(dsd_context *ctx, const dsd_gemm_shape *shapes, size_t n_shapes,
                           const dsd_tune_options *opts, dsd_tune_result *out);

/* Writes p to dsd_context_profile_path, creating <cache_dir>/profiles;
 * path (may be NULL) receives where. */
dsd_status dsd_tune_save(dsd_context *ctx, const dsd_device_profile *p, char *path,
                         size_t path_size);

#ifdef __cplusplus
}
#endif

#endif
