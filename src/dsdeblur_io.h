/*
 * dsdeblur_io.h: weight files and training checkpoints (included by
 * dsdeblur.h after dsdeblur_model.h; do not include it alone).
 * Implementations: src/io/model_file.c (generator and discriminator weight
 * files), src/io/vgg_file.c (the VGG-19 weights of the perceptual loss) and
 * src/io/checkpoint.c (training checkpoints), all on top of the safetensors
 * reader and writer of src/io/safetensors.c. Tests: tests/test-model-file.c
 * and, for VGG-19, tests/test-vgg.c. The formats, every tensor name with its shape for
 * the default networks, and loading a file into PyTorch: doc/weights.md.
 *
 * What this is not: a general safetensors API (that is src/io/safetensors.h,
 * host only and not installed), and not a converter from other projects'
 * checkpoints: a file loads only into a network of exactly the config it was
 * saved from.
 *
 * Weight files
 * ------------
 *     dsd_generator_save(ctx, &g, "g.safetensors", DSD_STORAGE_F32);
 *
 *     dsd_generator_config cfg;
 *     if (dsd_generator_file_config("g.safetensors", &cfg, &err) != DSD_OK) ...
 *     dsd_generator_init(ctx, &g2, &cfg);
 *     if (dsd_generator_load(ctx, &g2, "g.safetensors") != DSD_OK) ...
 *
 * One safetensors tensor per entry of the network's parameter table
 * (params.info), under its PyTorch name ("blocks.3.ca.fc1.weight") with its
 * PyTorch shape (conv weights 4-D, biases and norm parameters 1-D), stored
 * as F32 or F16. The metadata holds
 *     "format"          "dsdeblur-generator" or "dsdeblur-discriminator"
 *     "format_version"  "1"
 *     "generator.<field>" / "discriminator.<field>"  every config field as
 *                       text: integers in decimal, floats in the shortest
 *                       form that reads back to the same float ("0.2").
 * A load checks, before touching the device: the format key and version,
 * that the file's config equals the network's (DSD_ERR_INVALID_ARGUMENT
 * listing every field that differs: "g.safetensors was saved with generator
 * n_blocks 2, this model has 9"), that every expected tensor is present with
 * its exact shape as F32, F16 or BF16, that the file has no other tensor
 * (the first extra one in name order is named), and that every value is
 * finite (DSD_ERR_NAN). Only then is the whole arena uploaded, in one write:
 * a failed load leaves the network's weights as they were. File-level
 * problems are DSD_ERR_FORMAT (DSD_ERR_IO when the file cannot be read);
 * every message names the file and, where there is one, the tensor.
 *
 * A save downloads the arena, refuses non-finite weights (DSD_ERR_NAN naming
 * the tensor and the element) and, for F16 storage, weights beyond F16's
 * range (DSD_ERR_INVALID_ARGUMENT), then writes the file atomically (a
 * temporary in the same directory, fsync, rename): on any failure an
 * existing file at path is left as it was.
 *
 * Weight files leave the gradients and the generator's dropout_seed alone
 * (the seed matters to training only; checkpoints carry it).
 *
 * Training checkpoints
 * --------------------
 *     dsd_checkpoint ck = {0};
 *     ck.g = &g; ck.d = &d;                   // borrowed networks
 *     ck.g_m = &gm; ck.g_v = &gv;             // Adam moments, g.params.count floats
 *     ck.d_m = &dm; ck.d_v = &dv;             // d.params.count floats
 *     ck.step = step; ck.epoch = epoch;
 *     ck.g_adam_t = tg; ck.d_adam_t = td;     // t of the last dsd_adam_step
 *     ck.n_rng = 4; memcpy(ck.rng, rng, sizeof rng);
 *     ck.config_text = yaml_text;             // stored verbatim
 *     dsd_checkpoint_save(ctx, &ck, "ckpt.safetensors");
 *
 *     // resuming: the networks already built with the training config
 *     dsd_checkpoint ck = {.g = &g, .d = &d, .g_m = &gm, ...};
 *     dsd_checkpoint_load(ctx, &ck, "ckpt.safetensors");  // fills step ... config_text
 *     ...
 *     dsd_checkpoint_clear(&ck);                          // frees the loaded text
 *
 * One safetensors file, always F32, holding
 *     generator.<name>, discriminator.<name>          the weights
 *     optim.generator.m.<name>, optim.generator.v.<name>          Adam moments,
 *     optim.discriminator.m.<name>, optim.discriminator.v.<name>  laid out like
 *                                                     the weights (same shapes)
 * and the metadata "format" = "dsdeblur-checkpoint", "format_version",
 * "step", "epoch", "optim.generator.t", "optim.discriminator.t" (decimal),
 * "generator.dropout_seed" (16 hex digits), "rng" (the caller's words, each
 * as 16 hex digits, separated by single spaces), "config" (the caller's
 * text, verbatim) and both networks' configs as in weight files. A load
 * validates everything (format, configs, every tensor's presence, shape and
 * F32 dtype, no extra tensor, finite values, the moments' sizes, every
 * metadata value) before the first upload, and restores bit for bit what was
 * saved: weights, moments, counters, RNG words, dropout seed and text.
 */
#ifndef DSDEBLUR_IO_H
#define DSDEBLUR_IO_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Weight files (src/io/model_file.c) */

/* Version written into "format_version"; loads refuse other versions. */
enum { DSD_WEIGHTS_FORMAT_VERSION = 1 };

/* How a weight file stores its values. */
typedef enum dsd_storage {
    DSD_STORAGE_F32 = 0,   /* exact */
    DSD_STORAGE_F16,       /* half the size; round to nearest even, |w| < 65520 */
} dsd_storage;

/* Writes g's weights to path (see above). Errors are recorded in ctx. */
dsd_status dsd_generator_save(dsd_context *ctx, const dsd_generator *g, const char *path,
                              dsd_storage storage);
/* Replaces g's weights by the file's after validating all of it against g. */
dsd_status dsd_generator_load(dsd_context *ctx, dsd_generator *g, const char *path);
/* The generator config a weight file (or a checkpoint) was saved with, so a
 * tool can build the right network before loading. Host only. DSD_ERR_FORMAT
 * when the file is not one of ours, a field is missing or garbled, or the
 * config is not valid (dsd_generator_config_check). */
dsd_status dsd_generator_file_config(const char *path, dsd_generator_config *out,
                                     dsd_error *err);

/* The same for the discriminator ("discriminator.<field>" metadata). */
dsd_status dsd_discriminator_save(dsd_context *ctx, const dsd_discriminator *d,
                                  const char *path, dsd_storage storage);
dsd_status dsd_discriminator_load(dsd_context *ctx, dsd_discriminator *d, const char *path);
dsd_status dsd_discriminator_file_config(const char *path, dsd_discriminator_config *out,
                                         dsd_error *err);

/* ------------------------------------------------------------------------ */
/* VGG-19 weights (src/io/vgg_file.c; doc/vgg.md) */

/* Reads features.<i>.weight / .bias for every conv index <= last_layer from a
 * safetensors file with torchvision's names (F32, F16 or BF16; other keys,
 * e.g. the rest of a full vgg19 state_dict, are ignored) and uploads them.
 * DSD_ERR_IO / DSD_ERR_FORMAT naming the file and the tensor (a missing
 * tensor, a wrong shape), pointing at doc/vgg.md; on failure the weights on
 * the device are unchanged. */
dsd_status dsd_vgg_load(dsd_context *ctx, dsd_vgg *vgg, const char *path);

/* ------------------------------------------------------------------------ */
/* Training checkpoints (src/io/checkpoint.c) */

enum { DSD_CHECKPOINT_FORMAT_VERSION = 1, DSD_CHECKPOINT_RNG_MAX = 16 };

/* What a trainer saves and restores. The networks and moment tensors are
 * borrowed (never freed here) and must be set for both save and load; the
 * rest is read by save and filled by load. */
typedef struct dsd_checkpoint {
    dsd_generator *g;
    dsd_discriminator *d;
    dsd_tensor *g_m, *g_v;   /* Adam moments of g: g->params.count floats each,
                                laid out like g->params.values */
    dsd_tensor *d_m, *d_v;   /* of d: d->params.count floats each */

    uint64_t step;           /* training iterations done */
    int epoch;               /* epochs done (>= 0) */
    int g_adam_t, d_adam_t;  /* Adam step counters (t of the last dsd_adam_step;
                                0 before the first) */
    int n_rng;               /* 0 .. DSD_CHECKPOINT_RNG_MAX words in rng */
    uint64_t rng[DSD_CHECKPOINT_RNG_MAX]; /* the caller's RNG state, opaque */
    /* The caller's configuration (e.g. the trainer's YAML), UTF-8 without NUL;
     * NULL saves "". After a load it points to a copy the struct owns (free
     * it with dsd_checkpoint_clear); a load replaces, never frees, a pointer
     * the caller set. */
    const char *config_text;
    char *owned_text_;       /* private: what config_text points to after a load */
} dsd_checkpoint;

/* Writes everything to path atomically (F32 only). DSD_ERR_NAN when a
 * weight or a moment is not finite (naming the tensor), DSD_ERR_SHAPE when a
 * moment tensor is not its network's count floats, DSD_ERR_INVALID_ARGUMENT
 * for a missing pointer, n_rng out of range or a negative epoch or counter. */
dsd_status dsd_checkpoint_save(dsd_context *ctx, const dsd_checkpoint *ck, const char *path);
/* Validates the file against ck's networks and moment tensors, then uploads
 * weights and moments, restores g->dropout_seed and fills step, epoch, the
 * counters, rng and config_text (freeing the text of an earlier load into
 * the same struct). A differently configured network is refused with
 * DSD_ERR_INVALID_ARGUMENT listing every differing field; file problems are
 * DSD_ERR_FORMAT / DSD_ERR_NAN / DSD_ERR_IO as for weight files. On any of
 * these nothing is changed (ck and the device state stay as they were).
 * Only an OpenCL failure during the six uploads themselves (its status is
 * returned) can leave some arenas replaced and others not. */
dsd_status dsd_checkpoint_load(dsd_context *ctx, dsd_checkpoint *ck, const char *path);
/* Frees the text a load allocated and sets config_text to NULL when it
 * pointed there; safe on a zeroed struct and after a save. */
void dsd_checkpoint_clear(dsd_checkpoint *ck);

/* ------------------------------------------------------------------------ */
/* Temporary files (src/io/atomic_file.c) */

/* Every file above is written to "<path>.tmp.<pid>" (images to
 * "<path>.tmp.<pid>.<n>"), fsynced and renamed over path, so a process killed
 * mid-write leaves that temporary behind. This removes, from dir (not its
 * subfolders), the regular files named so whose writer is gone: no process
 * has the pid, the pid is this process's own (call it before this process
 * writes into dir), or the file is over an hour old (the pid was reused).
 * files and bytes (either may be NULL) receive how many were removed and
 * their size. DSD_ERR_IO when dir cannot be read or a file cannot be removed
 * (the others are still removed). */
dsd_status dsd_remove_stale_temporaries(const char *dir, size_t *files, uint64_t *bytes,
                                        dsd_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_IO_H */
