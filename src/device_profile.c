/*
 * device_profile.c: the tunables of one device and where they come from
 * (dsdeblur.h, "Device profiles"; doc/tuning.md).
 *
 * Today a profile holds CLBlast parameter overrides, applied with
 * CLBlastOverrideParameters when a context is created: CLBlast ships tuned
 * GEMM parameters for many GPUs but none for CPUs through PoCL, where its
 * generic defaults ran the networks' GEMMs at 3-7 GFLOP/s on the 2-core
 * AVX-512 machine of doc/tuning.md. The built-in profile for PoCL's CPU
 * device gives CLBlast's tiled GEMM kernel one work-item per work-group
 * (Xgemm: MDIMC = NDIMC = 1) and no local-memory staging (SA = SB = 0).
 * PoCL does not vectorize a kernel with loops and barriers across its
 * work-items, so the vector width in the kernel (VWM = VWN = 8) is the width
 * of the FMAs either way; what the 64-item groups of the earlier built-in
 * (64 x 64 x 64 tiles through local memory, from the tuner's winner) added was
 * the copies into local memory and a loop over the items around every
 * barrier. One item computing a 32 x 16 tile (KWG 64) has neither: the
 * paper's training step and the default configuration's both about 1.3x
 * faster (doc/tuning.md, fifth round). XGEMM_MIN_INDIRECT_SIZE 128: products
 * of at least 128^3 multiply-adds take this kernel, smaller ones CLBlast's
 * direct kernel (no padding or transposing passes; 256 suited the earlier
 * tiles). The direct kernel keeps CLBlast's parameters: one work-item per
 * group there was a few percent faster still, but PoCL then took 35 s
 * (16 x 16 tiles: over 10 minutes) to compile each CLBlast GEMM program,
 * which every new parameter set (tests, the tuner) pays again.
 *
 * GPU classes (NVIDIA, AMD, Intel) carry no CLBlast overrides, since
 * CLBlast's database covers them, only our kernels' work-group size.
 *
 * Depthwise convolutions (stride 1) take the 8-wide vector strip kernels on
 * CPU classes, 8x (forward) and 12x (backward) faster than the local-memory
 * tiles under PoCL, which runs the tiles as scalar code; GPU classes keep
 * the tiles.
 *
 * It does not parse files (src/io/profile_file.c does) nor choose between a
 * file and a built-in (context.c does, at init; doc/tuning.md).
 */
#include "internal.h"

#include <clblast_c.h>

#include <stdlib.h>
#include <string.h>

/* The built-in profile for CPUs (PoCL). */
static const dsd_device_profile cpu_profile = {
    .name = "built-in: CPU (PoCL)",
    .work_group = 64,
    .depthwise = DSD_DEPTHWISE_STRIP,
    .n_kernels = 2,
    .kernels = {
        {.kernel = "Xgemm", .n = 16,
         .names = {"GEMMK", "MWG", "NWG", "KWG", "MDIMC", "NDIMC", "MDIMA", "NDIMB", "KWI",
                   "VWM", "VWN", "STRM", "STRN", "SA", "SB", "KREG"},
         .values = {0, 32, 16, 64, 1, 1, 1, 1, 2, 8, 8, 0, 0, 0, 0, 1}},
        {.kernel = "GemmRoutine", .n = 1,
         .names = {"XGEMM_MIN_INDIRECT_SIZE"},
         .values = {128}},
    },
};

/* GPU classes. CLBlast's own database already holds tuned GEMM parameters
 * for many GPUs (and per-vendor defaults for the rest), so these carry no
 * CLBlast overrides: they name the class and set our own kernels'
 * work-group size, a multiple of the hardware's SIMD width (NVIDIA warp 32,
 * AMD wavefront 64, Intel subgroups of 8-32), and the local-memory tiles for
 * depthwise convolutions. A GPU whose GEMMs CLBlast
 * does not know is tuned with dsdeblur-bench --tune. */
static const dsd_device_profile nvidia_profile = {
    .name = "built-in: NVIDIA GPU (CLBlast's database; Pascal/GTX 1080 Ti is in it)",
    .work_group = 256,
    .depthwise = DSD_DEPTHWISE_TILE,
};
static const dsd_device_profile amd_profile = {
    .name = "built-in: AMD GPU (CLBlast's database; wavefront 64)",
    .work_group = 256,
    .depthwise = DSD_DEPTHWISE_TILE,
};
static const dsd_device_profile intel_profile = {
    .name = "built-in: Intel GPU (CLBlast's database; subgroups)",
    .work_group = 128,
    .depthwise = DSD_DEPTHWISE_TILE,
};
static const dsd_device_profile other_cpu_profile = {
    .name = "built-in: CPU (CLBlast's own parameters)",
    .work_group = 64,
    .depthwise = DSD_DEPTHWISE_STRIP,
};

/* PoCL's CPU device: the class the built-in CPU profile was tuned for. Other
 * CPU devices (Intel's CPU runtime, Oclgrind's simulator) keep CLBlast's own
 * GEMM choice. */
static int is_pocl_cpu(const dsd_device_info *device)
{
    return device->is_cpu && strstr(device->platform, "Portable Computing Language") != NULL;
}

static int vendor_is(const dsd_device_info *device, const char *a, const char *b)
{
    return strstr(device->vendor, a) != NULL || (b && strstr(device->vendor, b) != NULL) ||
           strstr(device->platform, a) != NULL;
}

void dsd_device_profile_default(const dsd_device_info *device, dsd_device_profile *out)
{
    const dsd_device_profile *p = NULL;
    if (device && is_pocl_cpu(device))
        p = &cpu_profile;
    else if (device && device->is_cpu)
        p = &other_cpu_profile;
    else if (device && device->is_gpu && vendor_is(device, "NVIDIA", NULL))
        p = &nvidia_profile;
    else if (device && device->is_gpu && vendor_is(device, "Advanced Micro Devices", "AMD"))
        p = &amd_profile;
    else if (device && device->is_gpu && vendor_is(device, "Intel", NULL))
        p = &intel_profile;
    if (p) {
        *out = *p;
        return;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "built-in: none (CLBlast's own parameters)");
}

size_t dsd_device_profile_get(const dsd_device_profile *p, const char *kernel, const char *name,
                              size_t fallback)
{
    for (int k = 0; k < p->n_kernels && k < DSD_PROFILE_MAX_KERNELS; k++) {
        const dsd_profile_kernel *pk = &p->kernels[k];
        if (strcmp(pk->kernel, kernel) != 0)
            continue;
        for (int i = 0; i < pk->n && i < DSD_PROFILE_MAX_PARAMS; i++)
            if (!strcmp(pk->names[i], name))
                return pk->values[i];
    }
    return fallback;
}

dsd_status dsd_device_profile_set(dsd_device_profile *p, const char *kernel, const char *name,
                                  size_t value, dsd_error *err)
{
    if (strlen(kernel) >= sizeof p->kernels[0].kernel ||
        strlen(name) >= sizeof p->kernels[0].names[0])
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "device profile: name %s.%s is too long "
                        "(at most %zu characters each)", kernel, name,
                        sizeof p->kernels[0].names[0] - 1);
    int k = 0;
    while (k < p->n_kernels && strcmp(p->kernels[k].kernel, kernel) != 0)
        k++;
    if (k == p->n_kernels) {
        if (p->n_kernels >= DSD_PROFILE_MAX_KERNELS)
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "device profile: more than %d "
                            "kernels", DSD_PROFILE_MAX_KERNELS);
        memset(&p->kernels[k], 0, sizeof p->kernels[k]);
        snprintf(p->kernels[k].kernel, sizeof p->kernels[k].kernel, "%s", kernel);
        p->n_kernels++;
    }
    dsd_profile_kernel *pk = &p->kernels[k];
    int i = 0;
    while (i < pk->n && strcmp(pk->names[i], name) != 0)
        i++;
    if (i == pk->n) {
        if (pk->n >= DSD_PROFILE_MAX_PARAMS)
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "device profile: kernel %s has more "
                            "than %d parameters", kernel, DSD_PROFILE_MAX_PARAMS);
        snprintf(pk->names[i], sizeof pk->names[i], "%s", name);
        pk->n++;
    }
    pk->values[i] = value;
    return DSD_OK;
}

dsd_status dsd_context_apply_profile(dsd_context *ctx, const dsd_device_profile *profile)
{
    if (!profile)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile is NULL");
    if (profile->work_group < 0 || profile->work_group > 4096 ||
        (profile->work_group & (profile->work_group - 1)) != 0)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile '%s': "
                        "work_group %d is not a power of two up to 4096 (0: the ops' own)",
                        profile->name, profile->work_group);
    if (profile->depthwise < DSD_DEPTHWISE_AUTO || profile->depthwise > DSD_DEPTHWISE_TILE)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile '%s': "
                        "depthwise route %d is not auto (0), strip (1) or tile (2)",
                        profile->name, profile->depthwise);
    if (profile->n_kernels < 0 || profile->n_kernels > DSD_PROFILE_MAX_KERNELS)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile '%s': %d "
                        "kernels (at most %d)", profile->name, profile->n_kernels,
                        DSD_PROFILE_MAX_KERNELS);
    for (int k = 0; k < profile->n_kernels; k++) {
        const dsd_profile_kernel *pk = &profile->kernels[k];
        if (pk->n < 1 || pk->n > DSD_PROFILE_MAX_PARAMS)
            return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile '%s': "
                            "kernel %s has %d parameters", profile->name, pk->kernel, pk->n);
        const char *names[DSD_PROFILE_MAX_PARAMS];
        for (int i = 0; i < pk->n; i++)
            names[i] = pk->names[i];
        CLBlastStatusCode st = CLBlastOverrideParameters(
            ctx->cl_device, pk->kernel, CLBlastPrecisionSingle, (size_t)pk->n, names,
            pk->values);
        if (st != CLBlastSuccess)
            return dsd_error_set(&ctx->error, DSD_ERR_CLBLAST, (int)st,
                                 "CLBlastOverrideParameters", __FILE__, __LINE__,
                                 "device profile '%s': CLBlast rejected the %s parameters (%d); "
                                 "a parameter name is unknown or a value is invalid",
                                 profile->name, pk->kernel, (int)st);
    }
    ctx->profile = *profile;
    snprintf(ctx->profile_name, sizeof ctx->profile_name, "%s", profile->name);
    return DSD_OK;
}

const char *dsd_context_profile_name(const dsd_context *ctx)
{
    return ctx->profile_name;
}

const dsd_device_profile *dsd_context_profile(const dsd_context *ctx)
{
    return &ctx->profile;
}

dsd_status dsd_context_profile_path(dsd_context *ctx, char *buf, size_t size)
{
    if (!*ctx->cache_dir)
        return DSD_FAIL(&ctx->error, DSD_ERR_IO, "the cache directory is off, so there is no "
                        "place for a tuned device profile (set XDG_CACHE_HOME or HOME)");
    int n = snprintf(buf, size, "%s/profiles/%016llx.yaml", ctx->cache_dir,
                     (unsigned long long)ctx->device_key);
    if (n < 0 || (size_t)n >= size)
        return DSD_FAIL(&ctx->error, DSD_ERR_IO, "the cache directory's path is too long");
    return DSD_OK;
}
