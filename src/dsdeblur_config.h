/*
 * dsdeblur_config.h: the training configuration (src/io/config.c): every
 * setting of dsdeblur-train in one struct, read from a YAML file (libyaml),
 * overridden by `key=value` strings from the command line, validated, and
 * written back as YAML (the effective configuration printed at start and
 * saved beside the checkpoints). Included by dsdeblur.h.
 *
 * The file is a mapping of sections to mappings of keys, e.g.
 *
 *     data:
 *       mode: gopro            # gopro | paired | synthetic
 *       train: GOPRO_Large/train
 *     train:
 *       lr: 1.0e-4
 *
 * Keys are addressed as "section.key" (train.lr). data/paper.yaml holds the
 * paper's settings; dsd_config_defaults() gives the same model and training
 * values (data paths empty, validation every run.every steps), so a file
 * needs only the keys it changes. doc/dsdeblur-train.1 lists every key, and
 * dsd_config_key() enumerates them with a one-line description.
 *
 * Errors (DSD_ERR_CONFIG) name the file, line and column, or the override:
 *     "run.yaml:7:9: train.lr: 'fast' is not a number"
 *     "run.yaml:3:3: unknown key 'data.mdoe' (did you mean 'data.mode'?)"
 *     "--set train.epochs=0: train.epochs must be between 1 and 1000000"
 * Unknown keys, wrong types, out-of-range values, duplicate keys and
 * anything that is not a two-level mapping are errors, never ignored.
 *
 * Strings are owned by the struct (malloc'd); dsd_config_free releases them.
 * No global state; the parser is re-entrant.
 */
#ifndef DSDEBLUR_CONFIG_H
#define DSDEBLUR_CONFIG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dsd_data_mode {
    DSD_DATA_GOPRO = 0, /* <root>/<sequence>/blur/<name>.png with .../sharp/<name>.png */
    DSD_DATA_PAIRED,    /* two folders with matching file names */
    DSD_DATA_SYNTHETIC, /* a folder of sharp images, blurred on the fly */
} dsd_data_mode;

typedef struct dsd_config {
    struct {
        dsd_data_mode mode;
        char *train;        /* gopro: root of sequences; synthetic: sharp images */
        char *train_blur;   /* paired: blurred folder */
        char *train_sharp;  /* paired: sharp folder */
        char *val;          /* held-out set, same layout as train ("" = none) */
        char *val_blur, *val_sharp;
        int val_count;      /* images of the held-out set used per validation (0 = all) */
        int crop;           /* square random crop: 256 */
        int flip;           /* random horizontal flips */
        int crop_tries;     /* the most detailed of this many random crops: 1 */
        int kernel_size;    /* synthetic: largest blur kernel side: 64 */
        double noise_sigma; /* synthetic: Gaussian noise std in [-1, 1] units */
        double noise_sigma_max; /* synthetic: > noise_sigma: std drawn per step from
                                 * [noise_sigma, noise_sigma_max]; 0: fixed */
        /* synthetic: per-PSF ranges of the camera path (doc/synthetic-blur.md);
         * a _max above its setting draws from [setting, max) per PSF */
        double blur_length, blur_length_max; /* pixels; 0: (kernel_size-1) 60/62 */
        double exposure, exposure_max;       /* (0, 1]; 0: 0.1, 0.5 or 1 at random */
        double anxiety, anxiety_max;         /* [0, 1]; -1: DeblurGAN's set at random */
        int max_bad;        /* unreadable samples tolerated before stopping */
    } data;
    struct {
        int n_blocks, base_width, mlp_ratio, up_kernel;
        double dropout, slope;
    } generator;
    struct {
        int base_width, n_layers, norm_affine;
    } discriminator;
    struct {
        int batch;
        int epochs;          /* 500 */
        int decay_from;      /* epoch where the linear decay to 0 starts: 150 */
        int steps_per_epoch; /* 0: one pass over the training set */
        double lr, beta1, beta2, eps;
        double lambda;       /* content-loss weight: 100 */
        char *content_loss;  /* perceptual | l1 | mse | fft | l1+fft */
        double fft_weight;   /* l1+fft: L1 + fft_weight * FFT: 0.1 */
        int warmup_steps;    /* steps of content loss only, before the GAN starts: 0 */
        char *vgg_weights;   /* safetensors file with torchvision VGG-19 names */
        long long seed;
    } train;
    struct {
        char *dir;           /* where checkpoints, logs and plots go */
        int every;           /* steps between checkpoints */
        int keep;            /* checkpoints kept (older ones removed) */
        int val_every;       /* steps between validations (0 = only at the end) */
    } run;
    char *device;            /* selector (dsdeblur.h); "" = default */
} dsd_config;

/* The paper's settings (data/paper.yaml), with empty data paths. */
dsd_status dsd_config_defaults(dsd_config *cfg, dsd_error *err);
void dsd_config_free(dsd_config *cfg);

/* Applies the keys of a YAML file on top of cfg (which holds defaults or an
 * earlier file). On error cfg holds the keys applied before the bad one. */
dsd_status dsd_config_load(dsd_config *cfg, const char *path, dsd_error *err);
/* Applies one "section.key=value" override (the value parsed like a YAML
 * scalar of the key's type). */
dsd_status dsd_config_set(dsd_config *cfg, const char *assignment, dsd_error *err);
/* Cross-field checks (paired mode needs both folders, decay_from <=
 * epochs, ...), run once after loading and overrides. */
dsd_status dsd_config_validate(const dsd_config *cfg, dsd_error *err);

/* Writes cfg as a YAML document (every key, in the file's layout). */
dsd_status dsd_config_write(const dsd_config *cfg, FILE *out, dsd_error *err);
/* The same into a malloc'd string (*out, NUL-terminated; free() it). */
dsd_status dsd_config_to_string(const dsd_config *cfg, char **out, dsd_error *err);
/* Writes the YAML to path atomically (temporary file, fsync, rename). */
dsd_status dsd_config_save(const dsd_config *cfg, const char *path, dsd_error *err);

/* Key i (0-based) of the schema: its "section.key" name and a one-line
 * description; 0 when i is past the last key. */
int dsd_config_key(int i, const char **name, const char **help);

/* The network configs cfg describes (the discriminator shares the
 * generator's LeakyReLU slope). */
dsd_generator_config dsd_config_generator(const dsd_config *cfg);
dsd_discriminator_config dsd_config_discriminator(const dsd_config *cfg);

/* Name of a data mode ("gopro"). */
const char *dsd_data_mode_name(dsd_data_mode mode);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_CONFIG_H */
