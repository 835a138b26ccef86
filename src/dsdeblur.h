/*
 * dsdeblur.h: the public interface of libdsdeblur, the OpenCL runtime under
 * the dsdeblur tools (dsdeblur-train, dsdeblur-run, dsdeblur-eval, ...).
 *
 * This header is the manual for the core: errors, the context, devices and
 * tensors. The layer operations (forward and backward) are declared in
 * dsdeblur_ops.h, which this header includes.
 *
 * Overview
 * --------
 *     dsd_error err;
 *     dsd_context *ctx;
 *     if (dsd_context_init(&ctx, NULL, &err) != DSD_OK) {      // default device
 *         char line[DSD_ERROR_LINE_MAX];
 *         fprintf(stderr, "%s\n", dsd_error_format(&err, line, sizeof line));
 *         return 1;
 *     }
 *     dsd_tensor x;
 *     dsd_tensor_init(ctx, &x, 1, 3, 720, 1280);              // N, C, H, W
 *     dsd_tensor_upload(ctx, &x, pixels, dsd_tensor_numel(&x));
 *     ... ops enqueue work; nothing waits until a download ...
 *     dsd_tensor_free(ctx, &x);
 *     dsd_context_free(ctx);
 *
 * Errors are values
 * -----------------
 * Every fallible function returns a dsd_status. Functions that take a context
 * record the details (file:line, the OpenCL call, the error's name, a message)
 * in the context; read them with dsd_context_error(). Functions that run
 * before a context exists take a dsd_error * instead. The library never exits
 * or aborts on bad input; asserts guard only its own invariants.
 *
 * Ownership
 * ---------
 * dsd_context_init allocates the context; dsd_context_free releases it and
 * everything it caches (programs, kernels, pooled buffers). A dsd_tensor is a
 * plain struct the caller owns; dsd_tensor_init leases a device buffer from
 * the context's pool and dsd_tensor_free gives it back. A view (see
 * dsd_tensor_view_batch) borrows its parent's buffer and must not outlive it.
 *
 * Layout
 * ------
 * Tensors are float32, NCHW, contiguous, addressed as (buffer, offset) with
 * the offset counted in floats, so views and arena slices need no
 * sub-buffers. Every kernel takes that pair for each tensor argument.
 *
 * Threads
 * -------
 * A context uses one in-order command queue and is not thread-safe: use one
 * context per host thread.
 */
#ifndef DSDEBLUR_H
#define DSDEBLUR_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors */

typedef enum dsd_status {
    DSD_OK = 0,
    DSD_ERR_OPENCL,           /* an OpenCL call failed; cl_code holds its code */
    DSD_ERR_NO_DEVICE,        /* no OpenCL platform/device, or none matched */
    DSD_ERR_INVALID_ARGUMENT, /* a caller passed something meaningless */
    DSD_ERR_SHAPE,            /* tensor shapes do not fit the operation */
    DSD_ERR_OUT_OF_MEMORY,    /* host or device memory exhausted */
    DSD_ERR_BUILD,            /* an OpenCL program failed to compile (log in message) */
    DSD_ERR_IO,               /* a file could not be read or written */
    DSD_ERR_FORMAT,           /* a file is corrupt or not what it claims */
    DSD_ERR_CLBLAST,          /* a CLBlast routine failed; cl_code holds its status */
    DSD_ERR_CLFFT,            /* a clFFT routine failed; cl_code holds its status */
    DSD_ERR_NAN,              /* a NaN or Inf was found where it must not be */
    DSD_ERR_CONFIG,           /* a configuration file or override is invalid */
} dsd_status;

enum { DSD_ERROR_MESSAGE_MAX = 8192, DSD_ERROR_LINE_MAX = 9000 };

typedef struct dsd_error {
    dsd_status status;
    int cl_code;                 /* OpenCL / CLBlast / clFFT code, 0 if none */
    const char *file;            /* source file that detected it (static string) */
    int line;
    char call[64];               /* the failing library call, "" if none */
    char message[DSD_ERROR_MESSAGE_MAX];
} dsd_error;

/* "DSD_ERR_SHAPE" etc. */
const char *dsd_status_name(dsd_status status);
/* "CL_OUT_OF_RESOURCES" etc.; "CL_UNKNOWN_ERROR" for codes it does not know. */
const char *dsd_cl_error_name(int cl_code);
/* One line for a person: the message first (it names the file the user gave,
 * when there is one), then the failing call and its error in parentheses,
 * then the source location in brackets, for bug reports:
 * "message (clEnqueueReadBuffer: CL_INVALID_VALUE (-30)) [src/tensor.c:88]".
 * A message may hold more lines (a compiler log); the rest follows its end.
 * Returns buf. */
const char *dsd_error_format(const dsd_error *err, char *buf, size_t size);
void dsd_error_clear(dsd_error *err);

/* ------------------------------------------------------------------------ */
/* Devices */

typedef struct dsd_device_info {
    int index;                 /* global index across platforms, as selectors use */
    int platform_index;
    int device_index;          /* index within its platform */
    char platform[128];
    char name[128];
    char vendor[128];
    char driver[64];
    char version[128];         /* CL_DEVICE_VERSION */
    char c_version[64];        /* CL_DEVICE_OPENCL_C_VERSION */
    int is_gpu, is_cpu;
    unsigned compute_units;
    uint64_t global_mem_bytes;
    uint64_t local_mem_bytes;
    uint64_t max_alloc_bytes;
    size_t max_work_group_size;
    size_t base_align_bytes;   /* CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bytes */
} dsd_device_info;

/* Every device of every platform. *out is malloc'd; release with free(). An
 * empty list is not an error (count 0). */
dsd_status dsd_device_list(dsd_device_info **out, size_t *count, dsd_error *err);

/* Picks a device from a list by selector (see dsd_context_options.device).
 * Returns the position in list, or -1 with err filled. */
int dsd_device_select(const dsd_device_info *list, size_t count, const char *selector,
                      dsd_error *err);

/* ------------------------------------------------------------------------ */
/* Context */

typedef struct dsd_context dsd_context;

typedef struct dsd_context_options {
    /* Device selector. NULL: $DSDEBLUR_DEVICE, and when that is unset the
     * first GPU, else the first device of any type. Accepted forms:
     *   "3"       global device index, as --list-devices prints it
     *   "1:0"     platform index : device index within it
     *   "gpu", "cpu", "accelerator"   first device of that type
     *   anything else: case-insensitive substring of "platform device". */
    const char *device;
    /* Kernel binary cache directory. NULL: $XDG_CACHE_HOME/dsdeblur, else
     * $HOME/.cache/dsdeblur. "" disables the disk cache. */
    const char *cache_dir;
    /* Directory with the .cl sources to use instead of the embedded copies.
     * NULL: $DSDEBLUR_KERNEL_DIR if set, else the embedded sources. */
    const char *kernel_dir;
    /* Create the queue with CL_QUEUE_PROFILING_ENABLE and record per-kernel
     * events (see dsd_profile_*). */
    int profiling;
} dsd_context_options;

/* ------------------------------------------------------------------------ */
/* Device profiles (src/device_profile.c, src/io/profile_file.c, src/tune.c;
 * doc/tuning.md): the tunables of a device. A profile holds CLBlast
 * parameter overrides (CLBlastOverrideParameters), e.g. kernel "Xgemm" with
 * MWG, NWG, ..., and the preferred work-group size of our own element-wise
 * kernels. When a context is created it applies, by $DSDEBLUR_PROFILE:
 *   unset or "auto"  the tuned profile file of this device in the cache
 *                    directory (<cache_dir>/profiles/<device key>.yaml,
 *                    written by dsdeblur-bench --tune) when there is one,
 *                    else the built-in profile of the device's class;
 *   "builtin"        the built-in class profile, ignoring files;
 *   "none"           nothing (CLBlast's own parameters, ops' own sizes);
 *   anything else    the path of a profile file (an error if it cannot be
 *                    read or CLBlast rejects it).
 * Results stay deterministic for one profile; another profile changes the
 * GEMMs' summation order (within the tests' tolerances). */

enum { DSD_PROFILE_MAX_KERNELS = 8, DSD_PROFILE_MAX_PARAMS = 24 };

/* dsd_device_profile.depthwise (YAML key `depthwise: strip|tile`). */
typedef enum dsd_depthwise_route {
    DSD_DEPTHWISE_AUTO = 0,
    DSD_DEPTHWISE_STRIP = 1,
    DSD_DEPTHWISE_TILE = 2
} dsd_depthwise_route;

typedef struct dsd_profile_kernel {
    char kernel[32];                                /* CLBlast kernel name, e.g. "Xgemm" */
    int n;                                          /* parameters */
    char names[DSD_PROFILE_MAX_PARAMS][32];
    size_t values[DSD_PROFILE_MAX_PARAMS];
} dsd_profile_kernel;

typedef struct dsd_device_profile {
    char name[256];                                 /* where it came from, for reports */
    char device[128];                               /* tuned files: the device's name, */
    char driver[64];                                /* its driver version and the UTC */
    char tuned_at[32];                              /* time of tuning ("" if unknown) */
    /* Preferred work-group size of conv2d's element-wise and row kernels (a
     * power of two; lowered to what the device allows); 0: the op's own
     * choice (64). Launch shape only: it never changes a result. */
    int work_group;
    /* Which kernels depthwise convolutions of stride 1 take (a
     * dsd_depthwise_route; src/ops/depthwise.c): 8-wide vector strips
     * without local memory (what PoCL's CPU code generation rewards) or
     * local-memory tiles (GPUs). AUTO (0): the device's class default,
     * strips on CPUs, tiles on GPUs. Stride > 1 always takes tiles. Changes
     * the summation order (within the tests' tolerances), never the result
     * run to run. */
    int depthwise;
    int n_kernels;
    dsd_profile_kernel kernels[DSD_PROFILE_MAX_KERNELS];
} dsd_device_profile;

/* The built-in profile of a device's class (see doc/tuning.md's table). */
void dsd_device_profile_default(const dsd_device_info *device, dsd_device_profile *out);

/* Reads a profile file (YAML, format in doc/tuning.md). Errors name
 * path:line:column. Kernel and parameter names are not checked here:
 * CLBlast checks them when the profile is applied. */
dsd_status dsd_device_profile_load(const char *path, dsd_device_profile *out, dsd_error *err);
/* Writes p to path atomically (temporary file, fsync, rename); the folder
 * must exist. */
dsd_status dsd_device_profile_save(const char *path, const dsd_device_profile *p,
                                   dsd_error *err);
/* The value of parameter `name` of `kernel` in p, or `fallback`. */
size_t dsd_device_profile_get(const dsd_device_profile *p, const char *kernel,
                              const char *name, size_t fallback);
/* Sets (adds or replaces) parameter `name` of `kernel`. DSD_ERR_INVALID_ARGUMENT
 * when the kernel or parameter table is full or a name too long. */
dsd_status dsd_device_profile_set(dsd_device_profile *p, const char *kernel, const char *name,
                                  size_t value, dsd_error *err);

/* opts may be NULL for the defaults. On failure *out is NULL and err says why. */
dsd_status dsd_context_init(dsd_context **out, const dsd_context_options *opts,
                            dsd_error *err);
void dsd_context_free(dsd_context *ctx);

/* The last error recorded by a call on this context. */
const dsd_error *dsd_context_error(const dsd_context *ctx);
/* The chosen device. */
const dsd_device_info *dsd_context_device(const dsd_context *ctx);
cl_context dsd_context_cl(const dsd_context *ctx);
cl_command_queue dsd_context_queue(const dsd_context *ctx);
cl_device_id dsd_context_cl_device(const dsd_context *ctx);

/* Waits for all enqueued work (clFinish). The only synchronization point
 * besides downloads. */
dsd_status dsd_context_finish(dsd_context *ctx);

/* How program builds were served so far in this process. */
typedef struct dsd_program_stats {
    unsigned built_from_source;  /* compiled by the OpenCL compiler */
    unsigned loaded_from_disk;   /* loaded from the binary cache */
    unsigned memory_hits;        /* already built in this context */
    unsigned cache_rejected;     /* disk entries found corrupt or unusable */
} dsd_program_stats;
dsd_program_stats dsd_context_program_stats(const dsd_context *ctx);

/* Compiles (or fetches from the caches) the program built from cl/<name>.cl
 * with extra build options (may be NULL) and returns one of its kernels. The
 * context owns the kernel; do not release it. Used by the ops and by tests. */
dsd_status dsd_kernel_get(dsd_context *ctx, const char *program, const char *options,
                          const char *kernel_name, cl_kernel *out);

/* Builds a program from source text given here rather than from cl/ (no disk
 * cache). For tests and tools; the context owns the result. */
dsd_status dsd_program_build_source(dsd_context *ctx, const char *label,
                                    const char *source, const char *options,
                                    cl_program *out);

/* Applies a device profile (replaces earlier overrides of the same CLBlast
 * kernels for this device, process-wide, as CLBlast keeps them) and its
 * work-group size. */
dsd_status dsd_context_apply_profile(dsd_context *ctx, const dsd_device_profile *profile);
/* The name of the profile in effect ("" when none was applied); a profile
 * read from a file ends in " (<path>)". */
const char *dsd_context_profile_name(const dsd_context *ctx);
/* The profile in effect (all zero when none was applied). */
const dsd_device_profile *dsd_context_profile(const dsd_context *ctx);
/* Where this context's device keeps its tuned profile:
 * <cache_dir>/profiles/<16 hex digits of the device key>.yaml. DSD_ERR_IO
 * when the cache directory is off (""). */
dsd_status dsd_context_profile_path(dsd_context *ctx, char *buf, size_t size);

/* Directory used for the binary cache ("" when disabled). */
const char *dsd_context_cache_dir(const dsd_context *ctx);

/* ------------------------------------------------------------------------ */
/* Profiling (contexts created with profiling = 1) */

typedef struct dsd_profile_entry {
    char name[64];          /* kernel name, or "clblast_sgemm", ... */
    unsigned count;         /* launches */
    double total_ms;        /* summed device time from profiling events */
} dsd_profile_entry;

/* Drops recorded events. */
void dsd_profile_reset(dsd_context *ctx);
/* Waits for recorded events and sums them per name, in first-launch order.
 * *out is malloc'd; free() it. */
dsd_status dsd_profile_collect(dsd_context *ctx, dsd_profile_entry **out, size_t *count);

/* Layer profiling (src/layer_profile.c): host wall time per named scope, the
 * queue drained at every scope boundary, so that the scopes' times add up to
 * the wall time of the work they bracket (CLBlast's helper kernels, host
 * work and transfers included). Scopes nest; time is charged to the
 * innermost open scope only (exclusive times). Off by default; draining the
 * queue costs a little overlap, so times are for finding bottlenecks, not
 * for headline figures. Any context works (no event profiling needed). */
void dsd_profile_layers_enable(dsd_context *ctx, int on);
int dsd_profile_layers_enabled(const dsd_context *ctx);
/* Opens a scope named by the printf-style format (no-op when disabled). */
void dsd_profile_scope_begin(dsd_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dsd_profile_scope_end(dsd_context *ctx);
/* Closes the current interval and returns the time per scope name, in
 * first-seen order ("(outside scopes)" for time in none); count = times the
 * scope was entered. *out is malloc'd. */
dsd_status dsd_profile_layers_collect(dsd_context *ctx, dsd_profile_entry **out, size_t *count);
/* Forgets the times and starts a new interval now. */
void dsd_profile_layers_reset(dsd_context *ctx);

/* ------------------------------------------------------------------------ */
/* Buffer pool */

typedef struct dsd_pool_stats {
    uint64_t bytes_in_use;      /* leased to live tensors */
    uint64_t bytes_cached;      /* free buffers kept for reuse */
    uint64_t peak_bytes;        /* max of in_use + cached */
    unsigned buffers_created;   /* clCreateBuffer calls so far */
    unsigned reuses;            /* leases served from the free list */
} dsd_pool_stats;
dsd_pool_stats dsd_pool_get_stats(const dsd_context *ctx);
/* Starts a new peak: peak_bytes = what is leased and cached now. */
void dsd_pool_reset_peak(dsd_context *ctx);
/* Releases all cached free buffers back to the driver. */
void dsd_pool_trim(dsd_context *ctx);

/* ------------------------------------------------------------------------ */
/* Tensors */

typedef struct dsd_tensor {
    int n, c, h, w;      /* shape, NCHW */
    cl_mem buf;          /* device buffer (pooled, or the parent's for views) */
    cl_uint offset;      /* first element, in floats from the start of buf */
    size_t capacity;     /* bytes leased from the pool; 0 for views */
} dsd_tensor;

/* Leases storage for an n x c x h x w float tensor (contents undefined). */
dsd_status dsd_tensor_init(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w);
/* Gives the storage back to the pool; safe on views and zeroed structs. */
void dsd_tensor_free(dsd_context *ctx, dsd_tensor *t);
/* Same as init but filled with zeros. */
dsd_status dsd_tensor_init_zero(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w);

static inline size_t dsd_tensor_numel(const dsd_tensor *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}
static inline size_t dsd_tensor_plane(const dsd_tensor *t)
{
    return (size_t)t->h * (size_t)t->w;
}
/* Same shape? */
int dsd_tensor_same_shape(const dsd_tensor *a, const dsd_tensor *b);
/* Non-zero when a and b share at least one float (same buffer, intersecting
 * [offset, offset + numel) ranges). */
int dsd_tensor_overlap(const dsd_tensor *a, const dsd_tensor *b);

/* Images n0 .. n0+count-1 of t, sharing its buffer. */
dsd_tensor dsd_tensor_view_batch(const dsd_tensor *t, int n0, int count);
/* t with another shape of the same element count (DSD_ERR_SHAPE otherwise). */
dsd_status dsd_tensor_view_reshape(dsd_context *ctx, const dsd_tensor *t, int n, int c,
                                   int h, int w, dsd_tensor *out);

/* Host <-> device. count must equal dsd_tensor_numel(t). Upload returns once
 * the host memory may be reused; download waits for the data. */
dsd_status dsd_tensor_upload(dsd_context *ctx, dsd_tensor *t, const float *host, size_t count);
dsd_status dsd_tensor_download(dsd_context *ctx, const dsd_tensor *t, float *host, size_t count);
/* Device-side fill and copy (enqueued, no wait). */
dsd_status dsd_tensor_fill(dsd_context *ctx, dsd_tensor *t, float value);
dsd_status dsd_tensor_copy(dsd_context *ctx, dsd_tensor *dst, const dsd_tensor *src);

#ifdef __cplusplus
}
#endif

#include "dsdeblur_ops.h"
#include "dsdeblur_model.h"
#include "dsdeblur_io.h"
#include "dsdeblur_image.h"
#include "dsdeblur_config.h"
#include "dsdeblur_data.h"
#include "dsdeblur_train.h"
#include "dsdeblur_infer.h"

#endif /* DSDEBLUR_H */
