/*
 * dsdeblur-blur: makes a synthetic blurred/sharp test set from sharp images,
 * with the same random camera-shake blur kernels (point-spread functions,
 * PSFs) and FFT blur dsdeblur-train's
 * synthetic mode uses (doc/synthetic-blur.md), so a held-out evaluation can be
 * built from any photographs:
 *
 *   dsdeblur-blur [--seed S] [--kernel-size K] [--noise SIGMA] [--device SEL]
 *                 [--force] -o OUT_DIR SHARP_IMAGE...
 *
 * writes OUT_DIR/blur/<stem>.png, OUT_DIR/sharp/<stem>.png (the input, as PNG)
 * and OUT_DIR/kernels/<stem>.png (the kernel, scaled to its maximum), a layout
 * `dsdeblur-eval --blur OUT_DIR/blur --sharp OUT_DIR/sharp` and
 * `data.mode: paired` read. Image i of the command line gets kernel stream i
 * of the seed. Existing outputs are refused unless --force; an output that
 * is one of the inputs (OUT/sharp/<name>.png given as an input, by device
 * and inode) is refused even with --force, as is a second input of the same
 * stem; an input that is not a regular file (a FIFO) is skipped. Each is one
 * line on stderr, and the other images are still written.
 *
 * Exit status: 0, 1 when an image failed (the others are still written), 2 usage.
 */
#include <config.h>

#include "cli.h"

#include <clFFT.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "dsdeblur-blur";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--seed S] [--kernel-size K] [--noise SIGMA] [--device SEL] [--force]\n"
            "       -o OUT_DIR SHARP_IMAGE...\n"
            "  writes OUT_DIR/{blur,sharp,kernels}/<name>.png; kernel i of seed S blurs image i\n"
            "  --kernel-size K  largest kernel side, 3..64 (default 31)\n"
            "  --noise SIGMA    Gaussian noise std in [-1, 1] units (default 0)\n",
            prog);
}

/* OUT/sub/<stem of in>.png */
static void out_path(char *buf, size_t size, const char *out, const char *sub, const char *in)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", in);
    char *base = basename(copy);
    char *dot = strrchr(base, '.');
    if (dot && dot != base)
        *dot = '\0';
    snprintf(buf, size, "%s/%s/%s.png", out, sub, base);
}

/* The PSF as a gray picture, scaled so its largest weight is white. */
static dsd_status save_psf(const dsd_blur_psf *psf, const char *path, dsd_error *err)
{
    dsd_image img;
    dsd_image_init(&img);
    const int scale = 4;
    dsd_status st = dsd_image_alloc(&img, psf->w * scale, psf->h * scale, err);
    if (st != DSD_OK)
        return st;
    float mx = 0;
    for (int i = 0; i < psf->h * psf->w; i++)
        mx = psf->data[i] > mx ? psf->data[i] : mx;
    for (int y = 0; y < img.height; y++)
        for (int x = 0; x < img.width; x++) {
            float v = mx > 0 ? psf->data[(y / scale) * psf->w + x / scale] / mx : 0;
            uint8_t u = (uint8_t)(v * 255.0f + 0.5f);
            uint8_t *p = img.data + ((size_t)y * img.width + x) * 3;
            p[0] = p[1] = p[2] = u;
        }
    st = dsd_image_save(path, &img, err);
    dsd_image_free(&img);
    return st;
}

/* Whether input k of argv[first..] may be blurred (tools/cli.h's rules): a
 * regular file, whose three outputs are no input (read holds them all), do
 * not exist unless force, and are not those of an earlier input with the
 * same stem. 1 when it may, else 0 with the line printed. */
static int may_blur(char **argv, int first, int k, const char *out, const cli_files *read,
                    int force)
{
    const char *in = argv[k], *why = cli_not_regular(in);
    if (why) {
        fprintf(stderr, "%s: error: %s: %s; skipped\n", prog, in, why);
        return 0;
    }
    char mine[4096], theirs[4096], buf[8192];
    out_path(mine, sizeof mine, out, "blur", in);
    for (int e = first; e < k; e++) {
        out_path(theirs, sizeof theirs, out, "blur", argv[e]);
        if (!strcmp(mine, theirs)) {
            fprintf(stderr, "%s: error: %s: would write %s, which %s already writes; rename "
                    "one of them\n", prog, in, mine, argv[e]);
            return 0;
        }
    }
    const char *subs[] = {"blur", "sharp", "kernels"};
    for (int i = 0; i < 3; i++) {
        out_path(mine, sizeof mine, out, subs[i], in);
        if ((why = cli_output_refusal(read, mine, force, buf, sizeof buf))) {
            fprintf(stderr, "%s: error: %s: %s\n", prog, in, why);
            return 0;
        }
    }
    return 1;
}

static int blur_one(dsd_context *ctx, dsd_fft_plans *plans, const char *in, uint64_t index,
                    uint64_t seed, int ksize, float noise, const char *out)
{
    dsd_error err;
    char pb[4096], ps[4096], pk[4096];
    out_path(pb, sizeof pb, out, "blur", in);
    out_path(ps, sizeof ps, out, "sharp", in);
    out_path(pk, sizeof pk, out, "kernels", in);
    dsd_image img, res;
    dsd_image_init(&img);
    dsd_image_init(&res);
    if (dsd_image_load(in, &img, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    int rc = 1;
    size_t numel = dsd_image_numel(&img);
    float *host = malloc(numel * sizeof *host);
    dsd_tensor x = {0}, pt = {0};
    dsd_blur_psf_params pp;
    dsd_blur_psf_params_default(&pp);
    pp.size = ksize;
    pp.length = 2.0 * ((ksize - 1) / 2) * 60.0 / 62.0; /* as dsdeblur-train */
    dsd_rng rng;
    dsd_rng_init(&rng, seed, index);
    dsd_blur_psf psf;
    if (!host) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, in);
        goto done;
    }
    if (dsd_blur_psf_generate(&pp, &rng, &psf, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    dsd_image_to_planar(&img, host);
    if (dsd_tensor_init(ctx, &x, 1, 3, img.height, img.width) != DSD_OK ||
        dsd_tensor_init(ctx, &pt, 1, 1, psf.h, psf.w) != DSD_OK ||
        dsd_tensor_upload(ctx, &x, host, numel) != DSD_OK ||
        dsd_tensor_upload(ctx, &pt, psf.data, (size_t)psf.h * psf.w) != DSD_OK ||
        dsd_blur_apply(ctx, plans, &x, &pt, noise, seed, index, &x) != DSD_OK ||
        dsd_tensor_download(ctx, &x, host, numel) != DSD_OK) {
        cli_print_error_for(prog, in, dsd_context_error(ctx));
        goto done;
    }
    if (dsd_image_alloc(&res, img.width, img.height, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    dsd_image_from_planar(&res, host);
    if (dsd_image_save(pb, &res, &err) != DSD_OK || dsd_image_save(ps, &img, &err) != DSD_OK ||
        save_psf(&psf, pk, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    printf("%s -> %s (kernel %dx%d)\n", in, pb, psf.w, psf.h);
    rc = 0;
done:
    if (x.buf)
        dsd_tensor_free(ctx, &x);
    if (pt.buf)
        dsd_tensor_free(ctx, &pt);
    free(host);
    dsd_image_free(&img);
    dsd_image_free(&res);
    return rc;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long long seed = 1;
    int ksize = 31, force = 0, first = argc;
    double noise = 0;
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, 0);
    while (cli_args_next(&a)) {
        const char *v;
        char *end;
        if (cli_args_positional(&a)) {
            first = a.index; /* the images: options come before them */
            break;
        } else if (cli_args_flag(&a, NULL, "--force")) {
            force = 1;
        } else if (cli_args_option(&a, "-o", NULL)) {
            out = cli_args_value(&a);
        } else if (cli_args_option(&a, NULL, "--seed")) {
            if ((v = cli_args_value(&a))) {
                seed = strtoull(v, &end, 10);
                if (*end)
                    cli_args_fail(&a, "--seed '%s' is not a number", v);
            }
        } else if (cli_args_option(&a, NULL, "--kernel-size")) {
            cli_args_int(&a, 3, DSD_BLUR_PSF_MAX, &ksize);
        } else if (cli_args_option(&a, NULL, "--noise")) {
            if ((v = cli_args_value(&a))) {
                noise = strtod(v, &end);
                if (*end || !(noise >= 0 && noise <= 1))
                    cli_args_fail(&a, "--noise must be in [0, 1]");
            }
        } else {
            cli_args_unknown(&a);
        }
    }
    if (cli_args_end(&a) >= 0)
        return a.exit_status;
    if (!out || first >= argc) {
        usage(stderr);
        return 2;
    }
    const char *subs[] = {"", "/blur", "/sharp", "/kernels"};
    for (int s = 0; s < 4; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s%s", out, subs[s]);
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: error: cannot create %s: %s\n", prog, dir, strerror(errno));
            return 1;
        }
        if (s > 0)
            cli_remove_stale_temporaries(prog, dir);
    }
    cli_files read = {0}; /* every input: never an output, even with --force */
    for (int k = first; k < argc; k++)
        if (cli_files_add(&read, argv[k])) {
            fprintf(stderr, "%s: error: out of memory\n", prog);
            return 1;
        }
    dsd_context *ctx = cli_context(prog, a.device, 0);
    if (!ctx) {
        cli_files_free(&read);
        return 1;
    }
    dsd_fft_plans plans = {0}; /* one clFFT plan per image size, shared by the images */
    int failed = 0;
    for (int k = first; k < argc; k++) {
        if (!may_blur(argv, first, k, out, &read, force))
            failed = 1;
        else
            failed |= blur_one(ctx, &plans, argv[k], (uint64_t)(k - first), seed, ksize,
                               (float)noise, out);
    }
    cli_files_free(&read);
    dsd_fft_plans_free(&plans);
    dsd_context_free(ctx);
    clfftTeardown(); /* after every plan and context: see src/ops/fft_loss.c */
    return failed ? 1 : 0;
}
