/*
 * dsdeblur_data.h: training data on the host (src/train/dataset.c,
 * src/train/loader.c): the three layouts dsdeblur-train reads, the random
 * crops and flips, and a loader thread that prepares batches ahead of the
 * device so the GPU never waits on the disk. Included by dsdeblur.h.
 *
 * Layouts (dsd_data_mode in dsdeblur_config.h)
 * --------------------------------------------
 *   gopro      <root>/<sequence>/blur/<name> with <root>/<sequence>/sharp/<name>
 *              (GOPRO_Large/train and /test as distributed)
 *   paired     <blur_dir>/<name> with <sharp_dir>/<name>
 *   synthetic  <dir>/<name>: sharp images only; the trainer blurs them
 * Image files are those ending in .png, .jpg, .jpeg, .bmp or .tga (any case).
 * Samples are sorted by path, so an index means the same file on every
 * machine. A blurred file without its sharp partner is not a sample: the scan
 * counts it (unpaired) and names the first one, for the tool to warn about.
 *
 * Reproducibility
 * ---------------
 * Which samples a step sees, where they are cropped and whether they are
 * flipped depend only on (seed, step), never on thread timing: epoch e visits
 * the samples in a permutation drawn from (seed, e), and batch element i of
 * step s draws its crop from (seed, s, i). A resumed run therefore sees
 * exactly the batches the uninterrupted run would have seen.
 *
 * Bad samples
 * -----------
 * A sample that cannot be decoded, whose two images differ in size, or that is
 * smaller than the crop is skipped (the next one in the epoch's order takes
 * its place) and reported in the batch (bad, bad_message); after more than
 * max_bad skips in a run, or when every sample of the set was tried for one
 * place and none could be used, the loader fails with the last reason.
 */
#ifndef DSDEBLUR_DATA_H
#define DSDEBLUR_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsd_sample_files {
    char *blur;   /* NULL in synthetic mode */
    char *sharp;
} dsd_sample_files;

typedef struct dsd_dataset {
    dsd_data_mode mode;
    dsd_sample_files *samples; /* count entries, sorted by sharp path */
    size_t count;
    size_t unpaired;           /* blurred files without a sharp partner */
    char unpaired_example[512];
} dsd_dataset;

/* Scans a layout. DSD_ERR_IO names a folder that cannot be read;
 * DSD_ERR_FORMAT when no sample is found (naming what was looked for).
 * For paired mode pass both folders; otherwise blur_dir is ignored. */
dsd_status dsd_dataset_open(dsd_dataset *ds, dsd_data_mode mode, const char *root_or_blur,
                            const char *sharp_dir, dsd_error *err);
void dsd_dataset_free(dsd_dataset *ds);

/* One batch: N planar (3, crop, crop) images per tensor, in [-1, 1]. In
 * synthetic mode blur is NULL (the trainer blurs sharp on the device). */
typedef struct dsd_batch {
    uint64_t step;
    int n, crop;
    float *blur, *sharp;     /* n * 3 * crop * crop floats each (malloc'd) */
    size_t *index;           /* the sample index of each element */
    int bad;                 /* samples skipped while filling this batch */
    char bad_message[DSD_ERROR_MESSAGE_MAX]; /* each skip's reason, one per line */
} dsd_batch;

void dsd_batch_free(dsd_batch *b);

typedef struct dsd_batch_spec {
    int n;                    /* batch size (data-parallel training: the global batch) */
    int crop;                 /* square crop side */
    int flip;                 /* random horizontal flips */
    int crop_tries;           /* > 1: the most detailed of this many random crops (sharp
                               * image's adjacent-pixel differences); 0 or 1: one crop */
    uint64_t seed;
    size_t steps_per_epoch;   /* 0: ceil(count / n) */
    int max_bad;              /* skips tolerated in a run */
    int first, count;         /* make elements first .. first + count - 1 of each batch of n
                               * only (one replica's share; sample, crop and flip are those
                               * of the whole batch's elements); count 0: all n */
} dsd_batch_spec;

/* Steps per epoch under spec (steps_per_epoch resolved). */
size_t dsd_batch_steps_per_epoch(const dsd_dataset *ds, const dsd_batch_spec *spec);

/* Makes batches (the loader thread runs one): it owns the current epoch's
 * permutation and the run's count of skipped samples. ds must outlive it. */
typedef struct dsd_batcher {
    const dsd_dataset *ds;
    dsd_batch_spec spec;
    uint64_t epoch;          /* of perm; UINT64_MAX before the first batch */
    size_t *perm;            /* ds->count sample indices */
    int bad_total;
} dsd_batcher;

dsd_status dsd_batcher_init(dsd_batcher *b, const dsd_dataset *ds, const dsd_batch_spec *spec,
                            dsd_error *err);
void dsd_batcher_free(dsd_batcher *b);
/* Fills out for step `step` (any order of steps works). DSD_ERR_FORMAT once
 * the run's skips exceed spec.max_bad ("11 bad training samples, more than
 * data.max_bad (10); the last: ...") or no sample can be used ("none of the 4
 * training samples can be used ..."), naming the last bad sample. */
dsd_status dsd_batcher_make(dsd_batcher *b, uint64_t step, dsd_batch *out, dsd_error *err);

/* ------------------------------------------------------------------------ */
/* The loader thread (src/train/loader.c) */

typedef struct dsd_loader dsd_loader;

/* Starts a thread that makes batches for steps first, first + 1, ... into a
 * queue of `depth` (>= 1). ds must outlive the loader. */
dsd_status dsd_loader_start(dsd_loader **out, const dsd_dataset *ds, const dsd_batch_spec *spec,
                            uint64_t first, int depth, dsd_error *err);
/* The next batch (blocks until it is ready); ownership passes to the
 * caller (dsd_batch_free). A failure inside the thread is returned here. */
dsd_status dsd_loader_next(dsd_loader *l, dsd_batch *out, dsd_error *err);
/* Stops the thread and frees the queue; NULL is allowed. */
void dsd_loader_stop(dsd_loader *l);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_DATA_H */
