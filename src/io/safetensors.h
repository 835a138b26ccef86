/*
 * safetensors.h: reading and writing the safetensors checkpoint format, on the
 * host only (no OpenCL here). This is where model weights, optimizer state and
 * pretrained VGG weights enter and leave the library. It does not know about
 * models or device tensors: callers copy floats in and out.
 *
 * Reference: https://github.com/huggingface/safetensors (README, "Format").
 *
 * The format
 * ----------
 *     u64 N (little-endian) | N bytes of UTF-8 JSON | data section
 *
 * The JSON is one object mapping tensor names to
 *     {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [begin, end]}
 * where [begin, end) are byte offsets into the data section, plus an optional
 * "__metadata__" object of string -> string. Tensor data is raw, row-major,
 * little-endian. The header may be padded with trailing spaces.
 *
 * Reading
 * -------
 *     dsd_safetensors *st;
 *     if (dsd_safetensors_open("g.safetensors", &st, &err) != DSD_OK) ...
 *     int64_t shape[4] = {64, 3, 7, 7};
 *     dsd_safetensors_read_f32(st, "enc.0.weight", 4, shape, host, &err);
 *     const char *fmt = dsd_safetensors_metadata(st, "format");  // NULL if absent
 *     dsd_safetensors_close(st);
 *
 * dsd_safetensors_open reads the whole file into memory and validates all of
 * it before returning: the header length against the file size (and a 100 MB
 * cap), the JSON, every entry (known dtype, integer shape with at most
 * DSD_ST_MAX_DIMS dimensions, begin <= end <= data size, shape x dtype size ==
 * end - begin), non-empty and unique names, and that no two tensors' bytes
 * overlap. Gaps between tensors and bytes after the last one are accepted
 * (the Rust reference rejects them; nothing here depends on their absence).
 * Every failure is DSD_ERR_FORMAT (DSD_ERR_IO when the file cannot be read)
 * with a message naming the file and, where there is one, the tensor:
 *     "g.safetensors: tensor 'enc.0.weight': shape [64,3,7,7] x F32 needs
 *      37632 bytes but data_offsets give 37630"
 * After a successful open nothing in the file is unchecked, so lookups cannot
 * fail and return pointers into the loaded file.
 *
 * The JSON is parsed with libyaml's event parser (JSON is YAML flow syntax;
 * in flow context libyaml takes every ':' as the value indicator, so
 * "a":1 without a space parses). On top of libyaml the reader insists on the
 * JSON subset: flow style only, keys and strings double-quoted, numbers plain
 * scalars spelled as JSON integers, no anchors, aliases, tags or directives,
 * one document. Limits inherited from YAML, none of which a normal checkpoint
 * meets: an object key (tensor name) whose JSON spelling, quotes included,
 * exceeds 1024 characters (YAML's implicit-key limit), a key and its ':' on
 * different lines, raw DEL or C1 control characters, and \uD800-\uDFFF
 * surrogate-pair escapes are refused; YAML comments and a trailing comma
 * before '}' are tolerated. The writer below never produces any of these:
 * it escapes such characters as \uXXXX and refuses over-long names.
 *
 * Writing
 * -------
 *     dsd_safetensors_writer *w;
 *     dsd_safetensors_writer_init(&w, &err);
 *     dsd_safetensors_writer_add_f32(w, "enc.0.weight", 4, shape, host, 0, &err);
 *     dsd_safetensors_writer_set_metadata(w, "step", "1200", &err);
 *     dsd_safetensors_writer_save(w, "g.safetensors", &err);
 *     dsd_safetensors_writer_free(w);
 *
 * The writer copies data when it is added. Save writes tensors sorted by name
 * with consecutive data offsets, pads the header with spaces so the data
 * section starts at a multiple of 8 bytes, and writes "path.tmp.<pid>" in the
 * same directory, fflush + fsync, then rename()s it over path: a reader sees
 * the old file or the new one, never a torn one. On failure the temporary is
 * removed and an existing file at path is left as it was.
 *
 * Ownership: dsd_safetensors_open / _close and dsd_safetensors_writer_init /
 * _free are pairs; every pointer a reader function returns lives until
 * _close. Nothing here keeps global state; distinct objects may be used from
 * distinct threads.
 */
#ifndef DSDEBLUR_SAFETENSORS_H
#define DSDEBLUR_SAFETENSORS_H

#include "dsdeblur.h"

#include <stddef.h>
#include <stdint.h>

/* Most dimensions a tensor may have (the file format has no limit). */
#define DSD_ST_MAX_DIMS 8
/* Largest header accepted, as in the Rust reference implementation. */
#define DSD_ST_MAX_HEADER_BYTES 100000000u

/* Element types of the format. Only F32, F16 and BF16 convert to float;
 * the others can be opened and inspected. */
typedef enum dsd_st_dtype {
    DSD_ST_BOOL,
    DSD_ST_U8,
    DSD_ST_I8,
    DSD_ST_F8_E5M2,
    DSD_ST_F8_E4M3,
    DSD_ST_I16,
    DSD_ST_U16,
    DSD_ST_F16,
    DSD_ST_BF16,
    DSD_ST_I32,
    DSD_ST_U32,
    DSD_ST_F32,
    DSD_ST_F64,
    DSD_ST_I64,
    DSD_ST_U64,
} dsd_st_dtype;

/* "F32" etc. */
const char *dsd_st_dtype_name(dsd_st_dtype dtype);
/* Bytes per element. */
size_t dsd_st_dtype_size(dsd_st_dtype dtype);

/* IEEE 754 binary16 <-> binary32. f16_to_f32 is exact (subnormals, signed
 * zeros, infinities; NaN stays NaN). f32_to_f16 rounds to nearest, ties to
 * even: values from 65520 up become infinity, values up to 2^-25 become zero. */
float dsd_st_f16_to_f32(uint16_t h);
uint16_t dsd_st_f32_to_f16(float f);
/* bfloat16 -> binary32 (exact). */
float dsd_st_bf16_to_f32(uint16_t b);

/* ------------------------------------------------------------------------ */
/* Reading */

typedef struct dsd_safetensors dsd_safetensors;

/* One tensor of an open file. */
typedef struct dsd_st_tensor {
    const char *name;                 /* UTF-8, no NUL inside */
    dsd_st_dtype dtype;
    int ndim;                         /* 0 for a scalar */
    int64_t shape[DSD_ST_MAX_DIMS];   /* shape[0..ndim), row-major */
    uint64_t numel;                   /* product of shape (1 for a scalar) */
    size_t nbytes;                    /* numel * dtype size */
    uint64_t offset;                  /* data_offsets[0], from the data section */
    const void *data;                 /* nbytes raw little-endian bytes; unaligned */
} dsd_st_tensor;

/* Reads and validates path (see above). On failure *out is NULL. */
dsd_status dsd_safetensors_open(const char *path, dsd_safetensors **out, dsd_error *err);
/* NULL is allowed. */
void dsd_safetensors_close(dsd_safetensors *st);

/* Tensors are indexed in name order (strcmp), whatever the file's order. */
size_t dsd_safetensors_count(const dsd_safetensors *st);
/* NULL when index >= count. */
const dsd_st_tensor *dsd_safetensors_tensor(const dsd_safetensors *st, size_t index);
/* NULL when the file has no such tensor. */
const dsd_st_tensor *dsd_safetensors_find(const dsd_safetensors *st, const char *name);

/* The "__metadata__" string for key, NULL when absent. */
const char *dsd_safetensors_metadata(const dsd_safetensors *st, const char *key);
/* Metadata entries in file order; key_at returns NULL when index >= count. */
size_t dsd_safetensors_metadata_count(const dsd_safetensors *st);
const char *dsd_safetensors_metadata_key(const dsd_safetensors *st, size_t index);

/* Copies tensor name into out[0..numel) as float, converting from F32, F16 or
 * BF16. The tensor must exist and have exactly ndim dimensions equal to
 * expected_shape (which may be NULL when ndim is 0); otherwise
 * DSD_ERR_FORMAT with a message naming the tensor and both shapes. Other
 * dtypes give DSD_ERR_FORMAT; ndim outside [0, DSD_ST_MAX_DIMS] or a NULL
 * out gives DSD_ERR_INVALID_ARGUMENT. */
dsd_status dsd_safetensors_read_f32(const dsd_safetensors *st, const char *name, int ndim,
                                    const int64_t *expected_shape, float *out, dsd_error *err);

/* ------------------------------------------------------------------------ */
/* Writing */

typedef struct dsd_safetensors_writer dsd_safetensors_writer;

dsd_status dsd_safetensors_writer_init(dsd_safetensors_writer **out, dsd_error *err);
/* NULL is allowed. */
void dsd_safetensors_writer_free(dsd_safetensors_writer *w);

/* Adds a copy of data[0..numel) under name, stored as F32, or as F16 (round
 * to nearest even) when store_f16 is non-zero. shape may be NULL when ndim is
 * 0, data may be NULL when numel is 0. DSD_ERR_INVALID_ARGUMENT for an empty,
 * duplicate, non-UTF-8 or over-long name, "__metadata__", ndim outside
 * [0, DSD_ST_MAX_DIMS] or a negative dimension. */
dsd_status dsd_safetensors_writer_add_f32(dsd_safetensors_writer *w, const char *name, int ndim,
                                          const int64_t *shape, const float *data,
                                          int store_f16, dsd_error *err);

/* Sets "__metadata__"[key] = value (both copied, UTF-8); setting a key again
 * replaces its value. */
dsd_status dsd_safetensors_writer_set_metadata(dsd_safetensors_writer *w, const char *key,
                                               const char *value, dsd_error *err);

/* Writes the file atomically (see above). DSD_ERR_IO names the path and the
 * system's reason. The writer is unchanged and may be saved again. */
dsd_status dsd_safetensors_writer_save(dsd_safetensors_writer *w, const char *path,
                                       dsd_error *err);

#endif /* DSDEBLUR_SAFETENSORS_H */
