/*
 * dsdeblur-run: deblurs photographs with a trained generator.
 *
 * This first version provides the device plumbing the later deblurring path
 * stands on: --list-devices, --device, and --self-test, which starts the
 * runtime, runs a smoke computation on the chosen device, checks its result
 * and reports how long start-up took (first run vs. cached kernels).
 * Deblurring itself arrives with the networks (see README.md).
 */
#include <config.h>

#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *prog = "dsdeblur-run";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--device SEL] --list-devices | --self-test | --help | --version\n"
            "  --list-devices   list OpenCL platforms and devices\n"
            "  --device SEL     device index, P:D, gpu, cpu or a name substring\n"
            "                   (default: $DSDEBLUR_DEVICE, else the first GPU, else any)\n"
            "  --self-test      start the runtime and run a smoke computation\n",
            prog);
}

static int self_test(const char *selector)
{
    double t0 = cli_now();
    dsd_context *ctx = cli_context(prog, selector, 0);
    if (!ctx)
        return 1;
    double t_init = cli_now();
    const dsd_device_info *d = dsd_context_device(ctx);
    printf("device: [%d] %s (%s, %s)\n", d->index, d->name, d->platform, d->c_version);

    /* smoke: fill a 1x3x720x1280 tensor on the device, copy it, read it back */
    dsd_tensor a, b;
    const int n = 1, c = 3, h = 720, w = 1280;
    size_t count = (size_t)n * c * h * w;
    float *host = malloc(count * sizeof *host);
    int rc = 1;
    if (!host) {
        fprintf(stderr, "%s: error: out of host memory\n", prog);
        dsd_context_free(ctx);
        return 1;
    }
    if (dsd_tensor_init(ctx, &a, n, c, h, w) != DSD_OK ||
        dsd_tensor_init(ctx, &b, n, c, h, w) != DSD_OK ||
        dsd_tensor_fill(ctx, &a, 0.25f) != DSD_OK || dsd_tensor_copy(ctx, &b, &a) != DSD_OK ||
        dsd_tensor_download(ctx, &b, host, count) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
    } else {
        size_t bad = 0;
        for (size_t i = 0; i < count; i++)
            bad += host[i] != 0.25f;
        double t_end = cli_now();
        dsd_program_stats s = dsd_context_program_stats(ctx);
        printf("runtime start-up %.3f s, first kernel (compile or cache load) + smoke %.3f s\n",
               t_init - t0, t_end - t_init);
        printf("programs: %u compiled, %u loaded from cache (%s), %u corrupt entries ignored\n",
               s.built_from_source, s.loaded_from_disk,
               dsd_context_cache_dir(ctx)[0] ? dsd_context_cache_dir(ctx) : "disabled",
               s.cache_rejected);
        if (bad) {
            fprintf(stderr, "%s: error: smoke computation wrong in %zu of %zu values\n", prog,
                    bad, count);
        } else {
            printf("self-test passed: %zu values filled, copied and read back on the device\n",
                   count);
            rc = 0;
        }
    }
    free(host);
    dsd_tensor_free(ctx, &a);
    dsd_tensor_free(ctx, &b);
    dsd_context_free(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    const char *selector = NULL;
    int list = 0, test = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list-devices")) {
            list = 1;
        } else if (!strcmp(argv[i], "--self-test")) {
            test = 1;
        } else if (!strcmp(argv[i], "--device") || !strcmp(argv[i], "-d")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: error: %s needs a value (see --help)\n", prog, argv[i]);
                return 2;
            }
            selector = argv[++i];
        } else if (!strncmp(argv[i], "--device=", 9)) {
            selector = argv[i] + 9;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("%s %s\n", prog, PACKAGE_VERSION);
            return 0;
        } else {
            fprintf(stderr, "%s: error: unknown argument '%s' (see --help)\n", prog, argv[i]);
            return 2;
        }
    }
    if (list)
        return cli_list_devices(prog, stdout);
    if (test)
        return self_test(selector);
    fprintf(stderr, "%s: error: deblurring needs a trained model, which this version does not "
            "have yet; try --list-devices or --self-test\n", prog);
    usage(stderr);
    return 2;
}
