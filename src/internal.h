/*
 * internal.h: what the library's modules share and the public header does
 * not promise: the context's layout, error-recording macros, kernel argument
 * and launch helpers. Not installed.
 */
#ifndef DSDEBLUR_INTERNAL_H
#define DSDEBLUR_INTERNAL_H

#include "dsdeblur.h"

#include <stdarg.h>
#include <stdio.h>

/* ------------------------------------------------------------------------ */
/* Error recording. Each returns err->status so callers can `return DSD_FAIL(...)`. */

dsd_status dsd_error_set(dsd_error *err, dsd_status status, int code, const char *call,
                         const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
dsd_status dsd_error_vset(dsd_error *err, dsd_status status, int code, const char *call,
                          const char *file, int line, const char *fmt, va_list ap);

/* A failure with no library call behind it. */
#define DSD_FAIL(err, status, ...) \
    dsd_error_set((err), (status), 0, "", __FILE__, __LINE__, __VA_ARGS__)
/* An OpenCL call returned clerr (!= CL_SUCCESS). */
#define DSD_CL_FAIL(err, clerr, call, ...) \
    dsd_error_set((err), dsd_status_from_cl(clerr), (clerr), (call), __FILE__, __LINE__, \
                  __VA_ARGS__)
/* Evaluate an OpenCL call returning cl_int; on failure record and return. */
#define DSD_CL_TRY(err, expr, ...)                                              \
    do {                                                                        \
        cl_int dsd_try_rc_ = (expr);                                            \
        if (dsd_try_rc_ != CL_SUCCESS)                                          \
            return DSD_CL_FAIL((err), dsd_try_rc_, dsd_call_name_(#expr), __VA_ARGS__); \
    } while (0)
/* Propagate a dsd_status. */
#define DSD_TRY(expr)                          \
    do {                                       \
        dsd_status dsd_try_st_ = (expr);       \
        if (dsd_try_st_ != DSD_OK)             \
            return dsd_try_st_;                \
    } while (0)
/* Evaluate a dsd_status into st; on failure jump to label (a function with
 * one cleanup path at label, which returns st). */
#define DSD_TRY_GOTO(st, expr, label)          \
    do {                                       \
        if (((st) = (expr)) != DSD_OK)         \
            goto label;                        \
    } while (0)
/* For a function that reports through its own dsd_error *err but calls ones
 * that record in the context: on failure copy ctx's error into *err, then
 * return its status (DSD_TRY_CTX) or store it in st and jump to label. */
#define DSD_TRY_CTX(err, ctx, expr)                     \
    do {                                                \
        if ((expr) != DSD_OK) {                         \
            *(err) = *dsd_context_error(ctx);           \
            return (err)->status;                       \
        }                                               \
    } while (0)
#define DSD_TRY_CTX_GOTO(st, err, ctx, expr, label)     \
    do {                                                \
        if (((st) = (expr)) != DSD_OK) {                \
            *(err) = *dsd_context_error(ctx);           \
            goto label;                                 \
        }                                               \
    } while (0)

/* CL_OUT_OF_RESOURCES / allocation failures map to DSD_ERR_OUT_OF_MEMORY. */
dsd_status dsd_status_from_cl(cl_int code);
/* "clEnqueueNDRangeKernel(q, k, ...)" -> "clEnqueueNDRangeKernel" (static buffer
 * per call site is not needed: returns a pointer into a thread-local copy). */
const char *dsd_call_name_(const char *expr);

/* Replaces path with the concatenation of parts[0..count) atomically
 * (src/io/atomic_file.c): temporary file, fsync, rename; on failure the
 * temporary is removed and an existing path is left untouched. */
dsd_status dsd_write_file_atomic(const char *path, const void *const *parts,
                                 const size_t *sizes, size_t count, dsd_error *err);

/* The context's error slot. */
dsd_error *dsd_ctx_err(dsd_context *ctx);

/* ------------------------------------------------------------------------ */
/* The context (one per host thread). Owned pieces are released in
 * dsd_context_free in reverse order of creation. */

typedef struct dsd_program_entry {
    char *name;            /* program name ("conv2d") */
    char *options;         /* extra build options, "" for none */
    cl_program program;
} dsd_program_entry;

typedef struct dsd_kernel_entry {
    size_t program_index;  /* into programs[] */
    char *name;
    cl_kernel kernel;
} dsd_kernel_entry;

typedef struct dsd_pool_block {
    cl_mem mem;
    size_t bytes;
} dsd_pool_block;

typedef struct dsd_profile_event {
    char name[64];
    cl_event event;
} dsd_profile_event;

struct dsd_context {
    dsd_device_info device;
    cl_platform_id cl_platform;
    cl_device_id cl_device;
    cl_context cl_ctx;
    cl_command_queue queue;
    dsd_error error;

    char cache_dir[1024];       /* "" = disk cache off */
    char kernel_dir[1024];      /* "" = embedded sources */
    uint64_t device_key;        /* hash of platform/device/driver identity */

    dsd_program_entry *programs;
    size_t n_programs, cap_programs;
    dsd_kernel_entry *kernels;
    size_t n_kernels, cap_kernels;
    dsd_program_stats program_stats;

    dsd_pool_block *free_blocks; /* pool free list */
    size_t n_free, cap_free;
    dsd_pool_stats pool_stats;

    int profiling;
    dsd_profile_event *events;
    size_t n_events, cap_events;

    struct dsd_layer_profile *layer_profile; /* NULL unless layer profiling is on */
    char profile_name[256];     /* the device profile applied (device_profile.c) */
    dsd_device_profile profile; /* its contents (all zero when none was applied) */
};

/* program.c */
void dsd_programs_release(dsd_context *ctx);
/* layer_profile.c */
void dsd_layer_profile_free(dsd_context *ctx);
/* buffer_pool.c */
void dsd_pool_release_all(dsd_context *ctx);

/* ------------------------------------------------------------------------ */
/* Kernel arguments and launches */

typedef struct dsd_karg {
    size_t size;
    const void *value; /* NULL with size > 0 means local memory of that size */
} dsd_karg;

#define DSD_KARG(v) ((dsd_karg){sizeof(v), &(v)})
/* A tensor is passed as two arguments: (global float *, uint offset). */
#define DSD_KARG_TENSOR(t) DSD_KARG((t)->buf), DSD_KARG((t)->offset)
#define DSD_KARG_LOCAL(bytes) ((dsd_karg){(bytes), NULL})
/* The number of elements of an array (of kernel arguments, say). */
#define DSD_NARGS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Sets args[0..n) on kernel k. */
dsd_status dsd_kernel_set_args(dsd_context *ctx, cl_kernel k, const dsd_karg *args, int n);

/* Enqueues k over `global` work-items (rounded up to a multiple of `local`
 * when local is given; kernels bound-check). Records a profiling event under
 * the kernel's name when profiling is on. Never waits. */
dsd_status dsd_kernel_launch(dsd_context *ctx, cl_kernel k, cl_uint dims,
                             const size_t *global, const size_t *local);

/* Convenience: get + set args + launch in one call. */
dsd_status dsd_kernel_run(dsd_context *ctx, const char *program, const char *options,
                          const char *kernel_name, const dsd_karg *args, int nargs,
                          cl_uint dims, const size_t *global, const size_t *local);

/* Records an event produced outside dsd_kernel_launch (CLBlast, clFFT) under
 * name when profiling is on; takes ownership of ev (released either way). */
void dsd_profile_record(dsd_context *ctx, const char *name, cl_event ev);
/* Non-zero when profiling is on (then pass an event pointer to CLBlast). */
int dsd_profile_enabled(const dsd_context *ctx);

/* Rounds x up to a multiple of m (m > 0). */
static inline size_t dsd_round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

/* An op's preferred work-group size `wanted` (a power of two), halved until
 * the device allows it; never below 1. */
static inline size_t dsd_work_group_size(const dsd_context *ctx, size_t wanted)
{
    while (wanted > 1 && wanted > ctx->device.max_work_group_size)
        wanted /= 2;
    return wanted;
}

/* The device profile's work-group size for element-wise and row kernels
 * (dsd_device_profile.work_group), or `fallback` when it sets none; lowered
 * to what the device allows. A launch shape only: kernels that use it must
 * not depend on it for their results. */
static inline size_t dsd_profile_work_group(const dsd_context *ctx, size_t fallback)
{
    size_t wanted = ctx->profile.work_group > 0 ? (size_t)ctx->profile.work_group : fallback;
    return dsd_work_group_size(ctx, wanted);
}

/* ------------------------------------------------------------------------ */
/* Argument checks shared by the ops (src/tensor.c). Each records its failure
 * in the context and returns the status: DSD_ERR_INVALID_ARGUMENT for a NULL
 * tensor, DSD_ERR_SHAPE for the rest. Messages start "op: " (nothing when op
 * is NULL) and name tensors by `what`; the error's file:line is the caller's,
 * hence the macros. */

/* t is non-NULL, allocated and has no empty dimension. */
#define DSD_TENSOR_CHECK(ctx, op, t, what) \
    dsd_tensor_check_at((ctx), __FILE__, __LINE__, (op), (t), (what))
/* DSD_TENSOR_CHECK, then t has ref's shape:
 * "op: what is NxCxHxW but ref_what is NxCxHxW". */
#define DSD_TENSOR_CHECK_LIKE(ctx, op, t, what, ref, ref_what) \
    dsd_tensor_check_like_at((ctx), __FILE__, __LINE__, (op), (t), (what), (ref), (ref_what))
/* DSD_TENSOR_CHECK, then t is exactly (n, c, h, w), the shape `why` implies:
 * "op: what is NxCxHxW but why needs NxCxHxW", or with ref (may be NULL)
 * "... but why NxCxHxW needs NxCxHxW" showing ref's shape after `why`. */
#define DSD_TENSOR_EXPECT_SHAPE(ctx, op, t, what, n, c, h, w, why, ref)                     \
    dsd_tensor_expect_shape_at((ctx), __FILE__, __LINE__, (op), (t), (what), (n), (c), (h), \
                               (w), (why), (ref))

dsd_status dsd_tensor_check_at(dsd_context *ctx, const char *file, int line, const char *op,
                               const dsd_tensor *t, const char *what);
dsd_status dsd_tensor_check_like_at(dsd_context *ctx, const char *file, int line, const char *op,
                                    const dsd_tensor *t, const char *what, const dsd_tensor *ref,
                                    const char *ref_what);
dsd_status dsd_tensor_expect_shape_at(dsd_context *ctx, const char *file, int line,
                                      const char *op, const dsd_tensor *t, const char *what,
                                      int n, int c, int h, int w, const char *why,
                                      const dsd_tensor *ref);

/* ------------------------------------------------------------------------ */
/* GEMM (src/ops/gemm.c): column-major C (m x n) = op(A) op(B) + beta C through
 * CLBlast, with operands moved to offset 0 and CLBlast's temporary buffer
 * leased from the pool. what names the product in error messages. */

typedef struct dsd_gemm_operand {
    cl_mem buf;
    size_t offset; /* in floats */
    size_t ld;     /* leading dimension, in floats */
} dsd_gemm_operand;

dsd_status dsd_gemm(dsd_context *ctx, const char *what, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const dsd_gemm_operand *a, const dsd_gemm_operand *b,
                    float beta, const dsd_gemm_operand *c);

/* The depth K to state a product with an m-row A (column-major, lda = m) in:
 * k itself, or k rounded up to the device profile's Xgemm KWG where
 * CLBlast's fast kernel would otherwise copy all of A into a K-padded
 * temporary (m a multiple of MWG, the product large enough for that kernel,
 * the rounded depth at most max_k). The caller then supplies the zero rows:
 * A's rows k.. of the padded depth and B's (dsd_gemm_turn_padded). */
size_t dsd_gemm_padded_depth(const dsd_context *ctx, size_t m, size_t n, size_t k,
                             size_t max_k);
/* *out (leased from the pool, *capacity bytes; the caller returns it) =
 * the `rows` x `cols` row-major matrix at (buf, off) transposed, `cols`
 * rows of `rows` floats, followed by cols_padded - cols rows of zeros. */
dsd_status dsd_gemm_turn_padded(dsd_context *ctx, cl_mem buf, size_t off, size_t rows,
                                size_t cols, size_t cols_padded, cl_mem *out, size_t *capacity);

/* ------------------------------------------------------------------------ */
/* Pool (src/buffer_pool.c), used by tensor.c */

dsd_status dsd_pool_lease(dsd_context *ctx, size_t bytes, cl_mem *out, size_t *capacity);
void dsd_pool_return(dsd_context *ctx, cl_mem mem, size_t capacity);

/* Embedded kernel sources (generated src/kernels_embedded.c) */
typedef struct dsd_embedded_source {
    const char *name;           /* "conv2d" for cl/conv2d.cl */
    const unsigned char *data;  /* not NUL-terminated */
    size_t size;
} dsd_embedded_source;
extern const dsd_embedded_source dsd_embedded_sources[];
extern const size_t dsd_embedded_source_count;

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011; src/philox.c): the four output words of one counter block
 * under key. The host twin of dsd_philox4x32_10 in cl/common.cl; dropout
 * masks, blur noise and dsd_rng all draw from it. */
void dsd_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* 64-bit FNV-1a, for cache keys (not for security). */
uint64_t dsd_hash64(uint64_t h, const void *data, size_t size);
#define DSD_HASH64_INIT UINT64_C(0xcbf29ce484222325)

#endif /* DSDEBLUR_INTERNAL_H */
