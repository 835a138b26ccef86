/*
 * device_profile.c: the tunables of one device and where they come from
 * (dsdeblur.h, "Device profiles"; doc/tuning.md).
 *
 * Today a profile holds CLBlast parameter overrides, applied with
 * CLBlastOverrideParameters when a context is created: CLBlast ships tuned
 * GEMM parameters for many GPUs but none for CPUs through PoCL, where its
 * generic defaults ran the networks' GEMMs at 3-7 GFLOP/s on the 2-core
 * AVX-512 machine of doc/tuning.md. The built-in profile for PoCL's CPU
 * device started from the best configuration clblast_tuner_xgemm found there
 * (53 GFLOP/s on a 256 x 4096 x 256 product), with 8-wide vectors (VWM, VWN)
 * and KWG 64 instead of 4 and 32: PoCL does not vectorize this kernel across
 * work-items (it uses local memory and barriers), so the vector width in the
 * kernel is the width of the FMAs; 1.3x on the networks' products (68 -> 90
 * GFLOP/s forward, 44 -> 55 dW, 75 -> 103 column gradient for a 3x3 64 -> 128
 * convolution at 120 x 120). Plus XGEMM_MIN_INDIRECT_SIZE 256: products of at least
 * 256^3 multiply-adds take the tuned indirect kernel; below that CLBlast's
 * direct kernel (untuned on CPUs) still wins, having no padding or
 * transposing passes. GPUs get no
 * overrides: CLBlast's own database (and its defaults per vendor) apply.
 *
 * It does not parse files: a caller that reads a profile from disk passes
 * the struct (dsd_context_apply_profile).
 */
#include "internal.h"

#include <clblast_c.h>

#include <stdlib.h>
#include <string.h>

/* The built-in profile for CPUs (PoCL). */
static const dsd_device_profile cpu_profile = {
    .name = "built-in: CPU (PoCL)",
    .n_kernels = 2,
    .kernels = {
        {.kernel = "Xgemm", .n = 16,
         .names = {"GEMMK", "MWG", "NWG", "KWG", "MDIMC", "NDIMC", "MDIMA", "NDIMB", "KWI",
                   "VWM", "VWN", "STRM", "STRN", "SA", "SB", "KREG"},
         .values = {0, 64, 64, 64, 8, 8, 8, 8, 2, 8, 8, 0, 0, 1, 1, 1}},
        {.kernel = "GemmRoutine", .n = 1,
         .names = {"XGEMM_MIN_INDIRECT_SIZE"},
         .values = {256}},
    },
};

/* PoCL's CPU device: the class the built-in CPU profile was tuned for. Other
 * CPU devices (Intel's CPU runtime, Oclgrind's simulator) keep CLBlast's own
 * choice. */
static int is_pocl_cpu(const dsd_device_info *device)
{
    return device->is_cpu && strstr(device->platform, "Portable Computing Language") != NULL;
}

void dsd_device_profile_default(const dsd_device_info *device, dsd_device_profile *out)
{
    if (device && is_pocl_cpu(device)) {
        *out = cpu_profile;
        return;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "built-in: none (CLBlast's own parameters)");
}

dsd_status dsd_context_apply_profile(dsd_context *ctx, const dsd_device_profile *profile)
{
    if (!profile)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "device profile is NULL");
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
    snprintf(ctx->profile_name, sizeof ctx->profile_name, "%s", profile->name);
    return DSD_OK;
}

const char *dsd_context_profile_name(const dsd_context *ctx)
{
    return ctx->profile_name;
}
