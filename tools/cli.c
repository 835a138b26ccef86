/*
 * cli.c: helpers shared by the tools (see cli.h).
 */
#include "cli.h"

#include <stdlib.h>
#include <time.h>

void cli_print_error(const char *prog, const dsd_error *err)
{
    static char line[DSD_ERROR_LINE_MAX];
    fprintf(stderr, "%s: error: %s\n", prog, dsd_error_format(err, line, sizeof line));
}

int cli_list_devices(const char *prog, FILE *out)
{
    dsd_error err;
    dsd_device_info *list = NULL;
    size_t n = 0;
    if (dsd_device_list(&list, &n, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no OpenCL device found (on Debian: apt-get install "
                "pocl-opencl-icd, or your GPU vendor's OpenCL driver)\n", prog);
        free(list);
        return 1;
    }
    int def = dsd_device_select(list, n, NULL, &err);
    for (size_t i = 0; i < n; i++) {
        const dsd_device_info *d = &list[i];
        fprintf(out, "%s[%d] %s  (platform %d:%d %s)\n", (int)i == def ? "*" : " ", d->index,
                d->name, d->platform_index, d->device_index, d->platform);
        fprintf(out, "      type %s, %s, %s, driver %s\n",
                d->is_gpu ? "GPU" : d->is_cpu ? "CPU" : "accelerator", d->version, d->c_version,
                d->driver);
        fprintf(out, "      %u compute units, global %.0f MiB, local %.0f KiB, max alloc %.0f "
                "MiB, max work-group %zu\n", d->compute_units, d->global_mem_bytes / 1048576.0,
                d->local_mem_bytes / 1024.0, d->max_alloc_bytes / 1048576.0,
                d->max_work_group_size);
    }
    fprintf(out, "* = default; choose with --device N, --device P:D, --device gpu|cpu, "
            "--device NAME, or DSDEBLUR_DEVICE\n");
    free(list);
    return 0;
}

dsd_context *cli_context(const char *prog, const char *selector, int profiling)
{
    dsd_error err;
    dsd_context *ctx = NULL;
    dsd_context_options o = {0};
    o.device = selector;
    o.profiling = profiling;
    if (dsd_context_init(&ctx, &o, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return NULL;
    }
    return ctx;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
