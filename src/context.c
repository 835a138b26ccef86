/*
 * context.c: the OpenCL context object. Enumerates devices, picks one from a
 * selector, creates the context and its single in-order queue, and provides
 * the kernel argument/launch helpers and profiling-event bookkeeping that
 * every op uses. Program compilation and caching live in program.c, buffers
 * in buffer_pool.c.
 */
#include "internal.h"

#include <clblast_c.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Device enumeration */

static void info_string(cl_device_id dev, cl_device_info what, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
    buf[size - 1] = '\0';
}

static void fill_device_info(cl_platform_id plat, cl_device_id dev, dsd_device_info *d)
{
    clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof d->platform, d->platform, NULL);
    d->platform[sizeof d->platform - 1] = '\0';
    info_string(dev, CL_DEVICE_NAME, d->name, sizeof d->name);
    info_string(dev, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    info_string(dev, CL_DRIVER_VERSION, d->driver, sizeof d->driver);
    info_string(dev, CL_DEVICE_VERSION, d->version, sizeof d->version);
    info_string(dev, CL_DEVICE_OPENCL_C_VERSION, d->c_version, sizeof d->c_version);
    cl_device_type type = 0;
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    d->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    d->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    cl_uint cu = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    d->compute_units = cu;
    cl_ulong v = 0;
    clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, NULL);
    d->global_mem_bytes = v;
    v = 0;
    clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof v, &v, NULL);
    d->local_mem_bytes = v;
    v = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, NULL);
    d->max_alloc_bytes = v;
    size_t wg = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    d->max_work_group_size = wg;
    cl_uint align_bits = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    d->base_align_bytes = align_bits / 8;
}

/* Walks every platform/device; when want_index >= 0, stores that device's ids. */
static dsd_status enumerate(dsd_device_info **out, size_t *count, int want_index,
                            cl_platform_id *want_plat, cl_device_id *want_dev, dsd_error *err)
{
    *out = NULL;
    *count = 0;
    cl_uint n_plat = 0;
    cl_int rc = clGetPlatformIDs(0, NULL, &n_plat);
    if (rc == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (rc == CL_SUCCESS && n_plat == 0))
        return DSD_OK; /* no platform: an empty list */
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(err, rc, "clGetPlatformIDs", "cannot query OpenCL platforms");
    cl_platform_id *plats = calloc(n_plat, sizeof *plats);
    if (!plats)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    rc = clGetPlatformIDs(n_plat, plats, NULL);
    if (rc != CL_SUCCESS) {
        free(plats);
        return DSD_CL_FAIL(err, rc, "clGetPlatformIDs", "cannot query OpenCL platforms");
    }
    dsd_device_info *list = NULL;
    size_t n = 0;
    for (cl_uint p = 0; p < n_plat; p++) {
        cl_uint n_dev = 0;
        rc = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_dev);
        if (rc != CL_SUCCESS || n_dev == 0)
            continue; /* a platform without devices is not an error */
        cl_device_id *devs = calloc(n_dev, sizeof *devs);
        dsd_device_info *grown = realloc(list, (n + n_dev) * sizeof *list);
        if (!devs || !grown) {
            free(devs);
            free(grown ? grown : list);
            free(plats);
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        }
        list = grown;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, n_dev, devs, NULL) == CL_SUCCESS) {
            for (cl_uint d = 0; d < n_dev; d++) {
                dsd_device_info *info = &list[n];
                memset(info, 0, sizeof *info);
                info->index = (int)n;
                info->platform_index = (int)p;
                info->device_index = (int)d;
                fill_device_info(plats[p], devs[d], info);
                if ((int)n == want_index) {
                    *want_plat = plats[p];
                    *want_dev = devs[d];
                }
                n++;
            }
        }
        free(devs);
    }
    free(plats);
    *out = list;
    *count = n;
    return DSD_OK;
}

dsd_status dsd_device_list(dsd_device_info **out, size_t *count, dsd_error *err)
{
    return enumerate(out, count, -1, NULL, NULL, err);
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (const char *h = hay; *h; h++) {
        size_t i = 0;
        while (i < nl && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}

static int parse_uint(const char *s, int *value)
{
    if (!*s)
        return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000)
            return 0;
        v = v * 10 + (*p - '0');
    }
    *value = (int)v;
    return 1;
}

int dsd_device_select(const dsd_device_info *list, size_t count, const char *selector,
                      dsd_error *err)
{
    if (count == 0) {
        DSD_FAIL(err, DSD_ERR_NO_DEVICE,
                 "no OpenCL device found (is an ICD installed? on Debian: apt-get install "
                 "pocl-opencl-icd for the CPU, or your GPU vendor's OpenCL driver)");
        return -1;
    }
    if (!selector || !*selector) {
        for (size_t i = 0; i < count; i++)
            if (list[i].is_gpu)
                return (int)i;
        return 0;
    }
    int idx;
    if (parse_uint(selector, &idx)) {
        if ((size_t)idx < count)
            return idx;
        DSD_FAIL(err, DSD_ERR_NO_DEVICE, "device index %d out of range (%zu device%s; see "
                 "--list-devices)", idx, count, count == 1 ? "" : "s");
        return -1;
    }
    const char *colon = strchr(selector, ':');
    if (colon) {
        char left[32];
        size_t len = (size_t)(colon - selector);
        int p, d;
        if (len < sizeof left) {
            memcpy(left, selector, len);
            left[len] = '\0';
            if (parse_uint(left, &p) && parse_uint(colon + 1, &d)) {
                for (size_t i = 0; i < count; i++)
                    if (list[i].platform_index == p && list[i].device_index == d)
                        return (int)i;
                DSD_FAIL(err, DSD_ERR_NO_DEVICE, "no device %d on platform %d (see --list-devices)",
                         d, p);
                return -1;
            }
        }
    }
    if (!strcmp(selector, "gpu") || !strcmp(selector, "cpu") || !strcmp(selector, "accelerator")) {
        for (size_t i = 0; i < count; i++) {
            if ((!strcmp(selector, "gpu") && list[i].is_gpu) ||
                (!strcmp(selector, "cpu") && list[i].is_cpu) ||
                (!strcmp(selector, "accelerator") && !list[i].is_gpu && !list[i].is_cpu))
                return (int)i;
        }
        DSD_FAIL(err, DSD_ERR_NO_DEVICE, "no %s device found (see --list-devices)", selector);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        char both[260];
        snprintf(both, sizeof both, "%s %s", list[i].platform, list[i].name);
        if (contains_nocase(both, selector))
            return (int)i;
    }
    DSD_FAIL(err, DSD_ERR_NO_DEVICE,
             "no device matches \"%s\" (use an index, platform:device, gpu, cpu, or a name "
             "substring; see --list-devices)", selector);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Context lifetime */

static void resolve_dir(char *dst, size_t size, const char *given, const char *env_name,
                        int default_cache)
{
    dst[0] = '\0';
    const char *env = env_name ? getenv(env_name) : NULL;
    if (given) {
        snprintf(dst, size, "%s", given);
    } else if (env && *env) {
        snprintf(dst, size, "%s", env);
    } else if (default_cache) {
        const char *xdg = getenv("XDG_CACHE_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(dst, size, "%s/dsdeblur", xdg);
        else if (home && *home)
            snprintf(dst, size, "%s/.cache/dsdeblur", home);
    }
}

/* Applies the device profile $DSDEBLUR_PROFILE asks for: unset or "auto", a
 * tuned file for this device in the cache directory when one exists, else
 * the built-in profile of the device's class; "builtin" the latter; "none"
 * nothing; anything else, the profile file at that path. A tuned file that
 * cannot be read or applied is an error too: it was written for this
 * device, so a broken one should be fixed (re-tuned or removed), not
 * silently skipped. */
static dsd_status select_profile(dsd_context *ctx, dsd_error *err)
{
    const char *mode = getenv("DSDEBLUR_PROFILE");
    if (mode && !*mode)
        mode = NULL;
    if (mode && !strcmp(mode, "none"))
        return DSD_OK;
    dsd_device_profile p;
    char path[1200] = "";
    const char *from = NULL;
    if (mode && strcmp(mode, "auto") != 0 && strcmp(mode, "builtin") != 0) {
        from = mode;
    } else if ((!mode || !strcmp(mode, "auto")) && *ctx->cache_dir &&
               dsd_context_profile_path(ctx, path, sizeof path) == DSD_OK &&
               access(path, F_OK) == 0) {
        from = path;
    }
    if (from) {
        dsd_error ferr;
        if (dsd_device_profile_load(from, &p, &ferr) != DSD_OK) {
            if (err) {
                *err = ferr;
                snprintf(err->message + strlen(err->message),
                         sizeof err->message - strlen(err->message),
                         " (the device profile from %s; DSDEBLUR_PROFILE=builtin ignores it)",
                         from == mode ? "DSDEBLUR_PROFILE" : "the cache, written by dsdeblur-bench "
                         "--tune");
            }
            return ferr.status;
        }
        size_t len = strlen(p.name);
        snprintf(p.name + len, sizeof p.name - len, " (%s)", from);
    } else {
        dsd_device_profile_default(&ctx->device, &p);
    }
    if (dsd_context_apply_profile(ctx, &p) != DSD_OK) {
        if (err)
            *err = ctx->error;
        return ctx->error.status;
    }
    return DSD_OK;
}

dsd_status dsd_context_init(dsd_context **out, const dsd_context_options *opts, dsd_error *err)
{
    dsd_context_options defaults = {0};
    if (!opts)
        opts = &defaults;
    *out = NULL;
    dsd_error_clear(err);

    dsd_device_info *list = NULL;
    size_t count = 0;
    DSD_TRY(enumerate(&list, &count, -1, NULL, NULL, err));
    const char *selector = opts->device ? opts->device : getenv("DSDEBLUR_DEVICE");
    int idx = dsd_device_select(list, count, selector, err);
    if (idx < 0) {
        free(list);
        return err ? err->status : DSD_ERR_NO_DEVICE;
    }
    free(list);

    dsd_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    dsd_device_info *again = NULL;
    dsd_status st = enumerate(&again, &count, idx, &ctx->cl_platform, &ctx->cl_device, err);
    if (st != DSD_OK || (size_t)idx >= count) {
        free(again);
        free(ctx);
        return st != DSD_OK ? st : DSD_FAIL(err, DSD_ERR_NO_DEVICE, "device list changed");
    }
    ctx->device = again[idx];
    free(again);

    cl_int rc;
    ctx->cl_ctx = clCreateContext(NULL, 1, &ctx->cl_device, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) {
        free(ctx);
        return DSD_CL_FAIL(err, rc, "clCreateContext", "cannot create a context on %s",
                           ctx->device.name);
    }
    ctx->profiling = opts->profiling != 0;
    cl_command_queue_properties props = ctx->profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    /* clCreateCommandQueue is the 1.2 entry point; 2.0's WithProperties is not
     * available on every 1.2 platform. */
    ctx->queue = clCreateCommandQueue(ctx->cl_ctx, ctx->cl_device, props, &rc);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    if (rc != CL_SUCCESS) {
        dsd_status fail = DSD_CL_FAIL(err, rc, "clCreateCommandQueue",
                                      "cannot create a queue on %s", ctx->device.name);
        clReleaseContext(ctx->cl_ctx);
        free(ctx);
        return fail;
    }

    resolve_dir(ctx->cache_dir, sizeof ctx->cache_dir, opts->cache_dir, NULL, 1);
    resolve_dir(ctx->kernel_dir, sizeof ctx->kernel_dir, opts->kernel_dir,
                "DSDEBLUR_KERNEL_DIR", 0);

    uint64_t h = DSD_HASH64_INIT;
    const dsd_device_info *d = &ctx->device;
    h = dsd_hash64(h, d->platform, strlen(d->platform) + 1);
    h = dsd_hash64(h, d->name, strlen(d->name) + 1);
    h = dsd_hash64(h, d->vendor, strlen(d->vendor) + 1);
    h = dsd_hash64(h, d->driver, strlen(d->driver) + 1);
    h = dsd_hash64(h, d->version, strlen(d->version) + 1);
    char plat_version[256] = "";
    clGetPlatformInfo(ctx->cl_platform, CL_PLATFORM_VERSION, sizeof plat_version, plat_version,
                      NULL);
    plat_version[sizeof plat_version - 1] = '\0';
    h = dsd_hash64(h, plat_version, strlen(plat_version) + 1);
    ctx->device_key = h;

    /* the device's tunables (doc/tuning.md, "Which profile a context takes") */
    if (select_profile(ctx, err) != DSD_OK) {
        dsd_status fail = err ? err->status : DSD_ERR_CLBLAST;
        dsd_context_free(ctx);
        return fail;
    }

    dsd_error_clear(&ctx->error);
    *out = ctx;
    return DSD_OK;
}

void dsd_context_free(dsd_context *ctx)
{
    if (!ctx)
        return;
    if (ctx->queue)
        clFinish(ctx->queue);
    dsd_profile_reset(ctx);
    free(ctx->events);
    dsd_layer_profile_free(ctx);
    /* CLBlast caches programs per OpenCL context in process-wide tables; drop
     * them with the context they belong to (other contexts rebuild on demand). */
    CLBlastClearCache();
    dsd_programs_release(ctx);
    dsd_pool_release_all(ctx);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl_ctx)
        clReleaseContext(ctx->cl_ctx);
    free(ctx);
}

const dsd_error *dsd_context_error(const dsd_context *ctx) { return &ctx->error; }
dsd_error *dsd_ctx_err(dsd_context *ctx) { return &ctx->error; }
const dsd_device_info *dsd_context_device(const dsd_context *ctx) { return &ctx->device; }
cl_context dsd_context_cl(const dsd_context *ctx) { return ctx->cl_ctx; }
cl_command_queue dsd_context_queue(const dsd_context *ctx) { return ctx->queue; }
cl_device_id dsd_context_cl_device(const dsd_context *ctx) { return ctx->cl_device; }
const char *dsd_context_cache_dir(const dsd_context *ctx) { return ctx->cache_dir; }
dsd_program_stats dsd_context_program_stats(const dsd_context *ctx) { return ctx->program_stats; }

dsd_status dsd_context_finish(dsd_context *ctx)
{
    DSD_CL_TRY(&ctx->error, clFinish(ctx->queue), "waiting for the queue on %s",
               ctx->device.name);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Kernel arguments and launches */

static const char *kernel_name_of(cl_kernel k, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
    buf[size - 1] = '\0';
    return buf;
}

dsd_status dsd_kernel_set_args(dsd_context *ctx, cl_kernel k, const dsd_karg *args, int n)
{
    for (int i = 0; i < n; i++) {
        cl_int rc = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value);
        if (rc != CL_SUCCESS) {
            char name[64];
            return DSD_CL_FAIL(&ctx->error, rc, "clSetKernelArg", "kernel %s, argument %d",
                               kernel_name_of(k, name, sizeof name), i);
        }
    }
    return DSD_OK;
}

int dsd_profile_enabled(const dsd_context *ctx) { return ctx->profiling; }

void dsd_profile_record(dsd_context *ctx, const char *name, cl_event ev)
{
    if (!ev)
        return;
    if (!ctx->profiling) {
        clReleaseEvent(ev);
        return;
    }
    if (ctx->n_events == ctx->cap_events) {
        size_t cap = ctx->cap_events ? ctx->cap_events * 2 : 256;
        dsd_profile_event *grown = realloc(ctx->events, cap * sizeof *grown);
        if (!grown) { /* profiling is best effort; drop the event */
            clReleaseEvent(ev);
            return;
        }
        ctx->events = grown;
        ctx->cap_events = cap;
    }
    dsd_profile_event *e = &ctx->events[ctx->n_events++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->event = ev;
}

dsd_status dsd_kernel_launch(dsd_context *ctx, cl_kernel k, cl_uint dims, const size_t *global,
                             const size_t *local)
{
    size_t rounded[3];
    for (cl_uint i = 0; i < dims; i++) {
        if (global[i] == 0)
            return DSD_OK; /* nothing to do (empty tensor) */
        rounded[i] = local ? dsd_round_up(global[i], local[i]) : global[i];
    }
    cl_event ev = NULL;
    cl_int rc = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, rounded, local, 0, NULL,
                                       ctx->profiling ? &ev : NULL);
    char name[64];
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(&ctx->error, rc, "clEnqueueNDRangeKernel", "kernel %s",
                           kernel_name_of(k, name, sizeof name));
    if (ev)
        dsd_profile_record(ctx, kernel_name_of(k, name, sizeof name), ev);
    return DSD_OK;
}

dsd_status dsd_kernel_run(dsd_context *ctx, const char *program, const char *options,
                          const char *kernel_name, const dsd_karg *args, int nargs,
                          cl_uint dims, const size_t *global, const size_t *local)
{
    cl_kernel k;
    DSD_TRY(dsd_kernel_get(ctx, program, options, kernel_name, &k));
    DSD_TRY(dsd_kernel_set_args(ctx, k, args, nargs));
    return dsd_kernel_launch(ctx, k, dims, global, local);
}

/* ------------------------------------------------------------------------ */
/* Profiling */

void dsd_profile_reset(dsd_context *ctx)
{
    for (size_t i = 0; i < ctx->n_events; i++)
        clReleaseEvent(ctx->events[i].event);
    ctx->n_events = 0;
}

dsd_status dsd_profile_collect(dsd_context *ctx, dsd_profile_entry **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DSD_TRY(dsd_context_finish(ctx));
    dsd_profile_entry *list = calloc(ctx->n_events ? ctx->n_events : 1, sizeof *list);
    if (!list)
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    size_t n = 0;
    for (size_t i = 0; i < ctx->n_events; i++) {
        cl_ulong t0 = 0, t1 = 0;
        cl_event ev = ctx->events[i].event;
        cl_int rc = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
        if (rc == CL_SUCCESS)
            rc = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
        if (rc != CL_SUCCESS) {
            free(list);
            return DSD_CL_FAIL(&ctx->error, rc, "clGetEventProfilingInfo", "event of %s",
                               ctx->events[i].name);
        }
        size_t j = 0;
        while (j < n && strcmp(list[j].name, ctx->events[i].name) != 0)
            j++;
        if (j == n) {
            snprintf(list[n].name, sizeof list[n].name, "%s", ctx->events[i].name);
            n++;
        }
        list[j].count++;
        list[j].total_ms += (double)(t1 - t0) * 1e-6;
    }
    *out = list;
    *count = n;
    return DSD_OK;
}
