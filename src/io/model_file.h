/*
 * model_file.h: what src/io/model_file.c shares with src/io/checkpoint.c
 * (not installed): network configs as safetensors metadata, the format
 * check, and parameter arenas as groups of safetensors tensors. The public
 * side is dsdeblur_io.h; the formats are described there and in
 * doc/weights.md.
 *
 * Every function reports through a dsd_error (the caller passes its
 * context's) with messages that name the file and the tensor or key.
 */
#ifndef DSDEBLUR_IO_MODEL_FILE_H
#define DSDEBLUR_IO_MODEL_FILE_H

#include "internal.h"
#include "io/safetensors.h"

/* Longest tensor name the files use: a prefix ("optim.discriminator.m.")
 * plus a parameter name. */
enum { DSD_MF_NAME_MAX = DSD_PARAM_NAME_MAX + 32 };

/* ------------------------------------------------------------------------ */
/* Configs as metadata: "<net>.<field>" = text, where net is "generator" or
 * "discriminator". */

dsd_status dsd_mf_put_generator_config(dsd_safetensors_writer *w,
                                       const dsd_generator_config *cfg, dsd_error *err);
dsd_status dsd_mf_put_discriminator_config(dsd_safetensors_writer *w,
                                           const dsd_discriminator_config *cfg,
                                           dsd_error *err);
/* Parses every field (DSD_ERR_FORMAT naming the key when one is missing or
 * garbled) and checks the result with *_config_check. */
dsd_status dsd_mf_get_generator_config(const dsd_safetensors *st, const char *path,
                                       dsd_generator_config *cfg, dsd_error *err);
dsd_status dsd_mf_get_discriminator_config(const dsd_safetensors *st, const char *path,
                                           dsd_discriminator_config *cfg, dsd_error *err);
/* Appends "generator n_blocks 2, this model has 9" for every field where
 * file and model differ to buf (separated by "; "); returns how many. */
int dsd_mf_generator_config_diff(const dsd_generator_config *file,
                                 const dsd_generator_config *model, char *buf, size_t size);
int dsd_mf_discriminator_config_diff(const dsd_discriminator_config *file,
                                     const dsd_discriminator_config *model, char *buf,
                                     size_t size);

/* "format" must be `expected` and "format_version" equal to version. */
dsd_status dsd_mf_check_format(const dsd_safetensors *st, const char *path,
                               const char *expected, int version, dsd_error *err);

/* Shortest decimal text that strtof reads back to exactly f. */
void dsd_mf_format_float(char *buf, size_t size, float f);

/* ------------------------------------------------------------------------ */
/* Arenas as tensors: entry e of params is the tensor prefix + e->name with
 * e's PyTorch shape, its values at host + e->offset. */

typedef struct dsd_mf_group {
    const char *prefix;        /* "" or "generator." etc. */
    const dsd_params *params;  /* the table */
    float *host;               /* params->count floats */
} dsd_mf_group;

/* Adds every tensor of g to w; DSD_ERR_NAN for a non-finite value,
 * DSD_ERR_INVALID_ARGUMENT for one F16 cannot hold (store_f16). */
dsd_status dsd_mf_add_group(dsd_safetensors_writer *w, const char *path, const dsd_mf_group *g,
                            int store_f16, dsd_error *err);
/* Every tensor of every group present with its exact shape and a float
 * dtype (F32 only when f32_only), and no tensor in the file outside the
 * groups. Reads nothing. */
dsd_status dsd_mf_check_groups(const dsd_safetensors *st, const char *path,
                               const dsd_mf_group *groups, int n_groups, int f32_only,
                               dsd_error *err);
/* Converts a checked group into g->host; DSD_ERR_NAN for a non-finite value. */
dsd_status dsd_mf_read_group(const dsd_safetensors *st, const char *path, const dsd_mf_group *g,
                             dsd_error *err);

#endif /* DSDEBLUR_IO_MODEL_FILE_H */
