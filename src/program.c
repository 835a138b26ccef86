/*
 * program.c: compiling the kernels in cl/ and caching the results.
 *
 * A program is cl/common.cl followed by cl/<name>.cl, built with
 * "-cl-std=CL1.2" plus per-op options (work-group sizes, tile sizes). Built
 * programs are kept in the context (one build per process per option set) and
 * their binaries on disk under the cache directory, keyed by a hash of the
 * device identity (platform, device, driver versions), the full source text and
 * the options. A cache entry carries a magic, its length and a checksum; one
 * that fails any check, or that the driver refuses, is ignored and rebuilt.
 * Cache writes go to a temporary file that is renamed into place.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "DSDPRG01"
#define BASE_OPTIONS "-cl-std=CL1.2"

/* ------------------------------------------------------------------------ */
/* Sources */

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
        *size = (size_t)len;
    }
    return buf;
}

/* Returns a malloc'd NUL-terminated copy of cl/<name>.cl. */
static dsd_status load_source(dsd_context *ctx, const char *name, char **out)
{
    *out = NULL;
    if (ctx->kernel_dir[0]) {
        char path[1400];
        size_t size;
        snprintf(path, sizeof path, "%s/%s.cl", ctx->kernel_dir, name);
        *out = read_file(path, &size);
        if (!*out)
            return DSD_FAIL(&ctx->error, DSD_ERR_IO, "cannot read kernel source %s: %s "
                            "(DSDEBLUR_KERNEL_DIR=%s)", path, strerror(errno), ctx->kernel_dir);
        return DSD_OK;
    }
    for (size_t i = 0; i < dsd_embedded_source_count; i++) {
        const dsd_embedded_source *s = &dsd_embedded_sources[i];
        if (strcmp(s->name, name) == 0) {
            char *copy = malloc(s->size + 1);
            if (!copy)
                return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
            memcpy(copy, s->data, s->size);
            copy[s->size] = '\0';
            *out = copy;
            return DSD_OK;
        }
    }
    return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "no kernel source named cl/%s.cl",
                    name);
}

/* common.cl + "\n#line 1\n" + <name>.cl */
static dsd_status compose_source(dsd_context *ctx, const char *name, char **out)
{
    char *common = NULL, *body = NULL;
    DSD_TRY(load_source(ctx, "common", &common));
    dsd_status st = load_source(ctx, name, &body);
    if (st != DSD_OK) {
        free(common);
        return st;
    }
    size_t n = strlen(common) + strlen(body) + 64;
    char *all = malloc(n);
    if (!all) {
        free(common);
        free(body);
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    snprintf(all, n, "%s\n#line 1\n%s", common, body);
    free(common);
    free(body);
    *out = all;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Building */

static dsd_status build_log_error(dsd_context *ctx, cl_program prog, cl_int rc, const char *label,
                                  const char *options)
{
    size_t log_size = 0;
    clGetProgramBuildInfo(prog, ctx->cl_device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size);
    char *log = malloc(log_size + 1);
    if (log) {
        log[0] = '\0';
        clGetProgramBuildInfo(prog, ctx->cl_device, CL_PROGRAM_BUILD_LOG, log_size, log, NULL);
        log[log_size] = '\0';
    }
    dsd_status st = DSD_CL_FAIL(&ctx->error, rc, "clBuildProgram",
                                "building %s with \"%s\" failed; compiler log:\n%s", label,
                                options, log ? log : "(no log)");
    free(log);
    return st;
}

static dsd_status build_from_source(dsd_context *ctx, const char *label, const char *source,
                                    const char *options, cl_program *out)
{
    cl_int rc;
    const char *srcs[1] = {source};
    cl_program prog = clCreateProgramWithSource(ctx->cl_ctx, 1, srcs, NULL, &rc);
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(&ctx->error, rc, "clCreateProgramWithSource", "program %s", label);
    rc = clBuildProgram(prog, 1, &ctx->cl_device, options, NULL, NULL);
    if (rc != CL_SUCCESS) {
        dsd_status st = build_log_error(ctx, prog, rc, label, options);
        clReleaseProgram(prog);
        return st;
    }
    ctx->program_stats.built_from_source++;
    *out = prog;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Disk cache */

static int ensure_dir(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return (mkdir(tmp, 0755) == 0 || errno == EEXIST) ? 0 : -1;
}

static void cache_path(const dsd_context *ctx, const char *name, uint64_t key, char *buf,
                       size_t size)
{
    snprintf(buf, size, "%s/%s-%016llx.bin", ctx->cache_dir, name, (unsigned long long)key);
}

/* Loads and builds a cached binary; returns 0 and sets *out on success. Any
 * problem (missing, short, bad checksum, refused by the driver) returns -1 and
 * counts as a rejection when the file existed. */
static int cache_load(dsd_context *ctx, const char *path, const char *options, cl_program *out)
{
    size_t size;
    char *data = read_file(path, &size);
    if (!data)
        return -1;
    int ok = 0;
    uint64_t len = 0, sum = 0;
    const size_t head = 8 + 8 + 8;
    if (size >= head && memcmp(data, CACHE_MAGIC, 8) == 0) {
        memcpy(&len, data + 8, 8);
        memcpy(&sum, data + 16, 8);
        ok = len > 0 && len == size - head &&
             dsd_hash64(DSD_HASH64_INIT, data + head, (size_t)len) == sum;
    }
    if (ok) {
        const unsigned char *bin = (const unsigned char *)data + head;
        size_t bin_size = (size_t)len;
        cl_int status = CL_SUCCESS, rc;
        cl_program prog = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->cl_device, &bin_size,
                                                    &bin, &status, &rc);
        ok = rc == CL_SUCCESS && status == CL_SUCCESS;
        if (ok && clBuildProgram(prog, 1, &ctx->cl_device, options, NULL, NULL) != CL_SUCCESS)
            ok = 0;
        if (ok)
            *out = prog;
        else if (prog)
            clReleaseProgram(prog);
    }
    free(data);
    if (!ok) {
        ctx->program_stats.cache_rejected++;
        return -1;
    }
    ctx->program_stats.loaded_from_disk++;
    return 0;
}

/* Best effort: a cache that cannot be written only costs start-up time. */
static void cache_store(dsd_context *ctx, const char *path, cl_program prog)
{
    size_t bin_size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bin_size, &bin_size, NULL) !=
            CL_SUCCESS || bin_size == 0)
        return;
    unsigned char *bin = malloc(bin_size);
    if (!bin)
        return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) != CL_SUCCESS ||
        ensure_dir(ctx->cache_dir) != 0) {
        free(bin);
        return;
    }
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(bin);
        return;
    }
    uint64_t len = bin_size, sum = dsd_hash64(DSD_HASH64_INIT, bin, bin_size);
    int ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&len, 8, 1, f) == 1 &&
             fwrite(&sum, 8, 1, f) == 1 && fwrite(bin, 1, bin_size, f) == bin_size;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0)
        remove(tmp);
    free(bin);
}

/* ------------------------------------------------------------------------ */
/* The per-context program table */

static dsd_status get_program(dsd_context *ctx, const char *name, const char *extra,
                              size_t *index)
{
    if (!extra)
        extra = "";
    for (size_t i = 0; i < ctx->n_programs; i++) {
        if (!strcmp(ctx->programs[i].name, name) && !strcmp(ctx->programs[i].options, extra)) {
            ctx->program_stats.memory_hits++;
            *index = i;
            return DSD_OK;
        }
    }
    if (ctx->n_programs == ctx->cap_programs) {
        size_t cap = ctx->cap_programs ? ctx->cap_programs * 2 : 16;
        dsd_program_entry *grown = realloc(ctx->programs, cap * sizeof *grown);
        if (!grown)
            return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        ctx->programs = grown;
        ctx->cap_programs = cap;
    }

    char *source = NULL;
    DSD_TRY(compose_source(ctx, name, &source));
    char options[1024];
    snprintf(options, sizeof options, "%s %s", BASE_OPTIONS, extra);

    uint64_t key = ctx->device_key;
    key = dsd_hash64(key, source, strlen(source) + 1);
    key = dsd_hash64(key, options, strlen(options) + 1);
    char path[1200] = "";
    cl_program prog = NULL;
    if (ctx->cache_dir[0]) {
        cache_path(ctx, name, key, path, sizeof path);
        if (cache_load(ctx, path, options, &prog) != 0)
            prog = NULL;
    }
    if (!prog) {
        char label[300];
        snprintf(label, sizeof label, "cl/%s.cl", name);
        dsd_status st = build_from_source(ctx, label, source, options, &prog);
        if (st != DSD_OK) {
            free(source);
            return st;
        }
        if (path[0])
            cache_store(ctx, path, prog);
    }
    free(source);

    dsd_program_entry *e = &ctx->programs[ctx->n_programs];
    e->name = strdup(name);
    e->options = strdup(extra);
    e->program = prog;
    if (!e->name || !e->options) {
        free(e->name);
        free(e->options);
        clReleaseProgram(prog);
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    *index = ctx->n_programs++;
    return DSD_OK;
}

dsd_status dsd_kernel_get(dsd_context *ctx, const char *program, const char *options,
                          const char *kernel_name, cl_kernel *out)
{
    if (!options)
        options = "";
    /* Fast path: the kernel table is small (tens of entries). */
    for (size_t i = 0; i < ctx->n_kernels; i++) {
        const dsd_kernel_entry *k = &ctx->kernels[i];
        const dsd_program_entry *p = &ctx->programs[k->program_index];
        if (!strcmp(k->name, kernel_name) && !strcmp(p->name, program) &&
            !strcmp(p->options, options)) {
            *out = k->kernel;
            return DSD_OK;
        }
    }
    size_t pi;
    DSD_TRY(get_program(ctx, program, options, &pi));
    if (ctx->n_kernels == ctx->cap_kernels) {
        size_t cap = ctx->cap_kernels ? ctx->cap_kernels * 2 : 32;
        dsd_kernel_entry *grown = realloc(ctx->kernels, cap * sizeof *grown);
        if (!grown)
            return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        ctx->kernels = grown;
        ctx->cap_kernels = cap;
    }
    cl_int rc;
    cl_kernel k = clCreateKernel(ctx->programs[pi].program, kernel_name, &rc);
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(&ctx->error, rc, "clCreateKernel", "kernel %s in cl/%s.cl",
                           kernel_name, program);
    dsd_kernel_entry *e = &ctx->kernels[ctx->n_kernels];
    e->program_index = pi;
    e->name = strdup(kernel_name);
    e->kernel = k;
    if (!e->name) {
        clReleaseKernel(k);
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    ctx->n_kernels++;
    *out = k;
    return DSD_OK;
}

dsd_status dsd_program_build_source(dsd_context *ctx, const char *label, const char *source,
                                    const char *options, cl_program *out)
{
    char opts[1024];
    snprintf(opts, sizeof opts, "%s %s", BASE_OPTIONS, options ? options : "");
    cl_program prog;
    DSD_TRY(build_from_source(ctx, label, source, opts, &prog));
    if (ctx->n_programs == ctx->cap_programs) {
        size_t cap = ctx->cap_programs ? ctx->cap_programs * 2 : 16;
        dsd_program_entry *grown = realloc(ctx->programs, cap * sizeof *grown);
        if (!grown) {
            clReleaseProgram(prog);
            return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        }
        ctx->programs = grown;
        ctx->cap_programs = cap;
    }
    /* Stored under a name no cl/ file can have, so dsd_kernel_get never finds it. */
    dsd_program_entry *e = &ctx->programs[ctx->n_programs];
    e->name = malloc(strlen(label) + 2);
    e->options = strdup(opts);
    if (!e->name || !e->options) {
        free(e->name);
        free(e->options);
        clReleaseProgram(prog);
        return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    snprintf(e->name, strlen(label) + 2, "%s%s", "\x01", label);
    e->program = prog;
    ctx->n_programs++;
    *out = prog;
    return DSD_OK;
}

void dsd_programs_release(dsd_context *ctx)
{
    for (size_t i = 0; i < ctx->n_kernels; i++) {
        clReleaseKernel(ctx->kernels[i].kernel);
        free(ctx->kernels[i].name);
    }
    free(ctx->kernels);
    ctx->kernels = NULL;
    ctx->n_kernels = ctx->cap_kernels = 0;
    for (size_t i = 0; i < ctx->n_programs; i++) {
        clReleaseProgram(ctx->programs[i].program);
        free(ctx->programs[i].name);
        free(ctx->programs[i].options);
    }
    free(ctx->programs);
    ctx->programs = NULL;
    ctx->n_programs = ctx->cap_programs = 0;
}
