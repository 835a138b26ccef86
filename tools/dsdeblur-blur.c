/*
 * dsdeblur-blur: makes a synthetic blurred/sharp test set from sharp images,
 * with the same random camera-shake blur kernels (point-spread functions,
 * PSFs) and FFT blur dsdeblur-train's
 * synthetic mode uses (doc/synthetic-blur.md), so a held-out evaluation can be
 * built from any photographs:
 *
 *   dsdeblur-blur [--seed S] [--kernel-size K] [--length L[:L_MAX]]
 *                 [--exposure E[:E_MAX]] [--anxiety A[:A_MAX]]
 *                 [--noise SIGMA[:SIGMA_MAX]]
 *                 [--device SEL] [--force]
 *                 -o OUT_DIR SHARP_IMAGE...
 *
 * writes OUT_DIR/blur/<stem>.png, OUT_DIR/sharp/<stem>.png (the input, as PNG)
 * and OUT_DIR/kernels/<stem>.png (the kernel, scaled to its maximum), a layout
 * `dsdeblur-eval --blur OUT_DIR/blur --sharp OUT_DIR/sharp` and
 * `data.mode: paired` read. Image i of the command line gets kernel stream i
 * of the seed; with a range for --length, --exposure, --anxiety or --noise,
 * image i draws its path length, exposed fraction, shake and noise level
 * uniformly from the range with a second stream (key seed ^ DSD_BLUR_RANGE_KEY,
 * stream i), so the kernels of fixed settings are the same as before ranges
 * existed. Existing outputs are refused unless --force; an output that
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
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "dsdeblur-blur";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--seed S] [--kernel-size K] [--length L[:L_MAX]] [--exposure E[:E_MAX]]\n"
            "       [--anxiety A[:A_MAX]] [--noise SIGMA[:SIGMA_MAX]] [--device SEL] [--force]\n"
            "       -o OUT_DIR SHARP_IMAGE...\n"
            "  writes OUT_DIR/{blur,sharp,kernels}/<name>.png; kernel i of seed S blurs image i\n"
            "  --kernel-size K  largest kernel side, 3..64 (default 31, or what --length needs)\n"
            "  --length L       camera path length in pixels, 0..60, or a range L:L_MAX drawn\n"
            "                   per image (default about K - 2)\n"
            "  --exposure E     exposed fraction of the path, in (0, 1], or a range (default:\n"
            "                   0.1, 0.5 or 1 at random, as dsdeblur-train)\n"
            "  --anxiety A      shake in [0, 1] (0: a straight path), or a range (default:\n"
            "                   DeblurGAN's 0.003 to 0.01 at random, as dsdeblur-train)\n"
            "  --noise SIGMA    Gaussian noise std in [-1, 1] units, or N/255 for N gray levels\n"
            "                   of an 8-bit image, or a range drawn per image (default 0)\n",
            prog);
}


/* A range lo:hi, or one value for both. */
typedef struct range {
    double lo, hi;
} range;

/* One number of a range; "N/255" is N gray levels of an 8-bit image, 2N/255
 * in [-1, 1] units, when levels is set. 0 when it is not one. */
static int parse_number(const char *s, const char *stop, int levels, double *out)
{
    char buf[64];
    size_t n = (size_t)(stop - s);
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end == buf)
        return 0;
    if (levels && !strcmp(end, "/255")) {
        v *= 2.0 / 255.0;
        end += 4;
    }
    if (*end || !(v == v))
        return 0;
    *out = v;
    return 1;
}

/* "A" or "A:B" with lo <= A <= B <= hi. 0 when it is not one. */
static int parse_range(const char *s, double lo, double hi, int levels, range *out)
{
    const char *colon = strchr(s, ':');
    const char *stop = colon ? colon : s + strlen(s);
    if (!parse_number(s, stop, levels, &out->lo))
        return 0;
    out->hi = out->lo;
    if (colon && !parse_number(colon + 1, colon + 1 + strlen(colon + 1), levels, &out->hi))
        return 0;
    return out->lo >= lo && out->hi >= out->lo && out->hi <= hi;
}

/* The canvas that holds a path of length len with dsdeblur-train's margin
 * (length = (K-1) 60/62 for odd K): the smallest odd K with (K-1) 60/62 >= len. */
static int kernel_for_length(double len)
{
    int k = 2 * (int)ceil(len * 31.0 / 60.0 - 1e-9) + 1;
    return k < 3 ? 3 : k;
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

/* What blurs each image: the kernel canvas and the (ranges of) settings. */
typedef struct blur_settings {
    uint64_t seed;
    int ksize;
    range length; /* lo < 0: as dsdeblur-train, (K-1) 60/62 for the canvas */
    range exposure; /* lo < 0: DSD_BLUR_RANDOM */
    range anxiety;  /* lo < 0: DSD_BLUR_RANDOM */
    range noise;    /* [-1, 1] units */
} blur_settings;

static int blur_one(dsd_context *ctx, dsd_fft_plans *plans, const char *in, uint64_t index,
                    const blur_settings *bs, const char *out)
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
    pp.size = bs->ksize;
    pp.length = 2.0 * ((bs->ksize - 1) / 2) * 60.0 / 62.0; /* as dsdeblur-train */
    /* Per-image draws from the range stream: length, exposure, anxiety, noise. */
    dsd_rng draw;
    dsd_rng_init(&draw, bs->seed ^ DSD_BLUR_RANGE_KEY, index);
    dsd_blur_psf_ranges ranges = {bs->length.lo,   bs->length.hi,  bs->exposure.lo,
                                  bs->exposure.hi, bs->anxiety.lo, bs->anxiety.hi};
    dsd_blur_psf_params_draw(&ranges, &draw, &pp);
    float noise = (float)bs->noise.lo;
    if (bs->noise.lo < bs->noise.hi)
        noise = (float)(bs->noise.lo + (bs->noise.hi - bs->noise.lo) * dsd_rng_uniform(&draw));
    uint64_t seed = bs->seed;
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
    printf("%s -> %s (kernel %dx%d, path %.1f px, noise %.2f/255)\n", in, pb, psf.w, psf.h,
           pp.length, (double)noise * 127.5);
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
    int ksize = 0, force = 0, first = argc;
    range length = {-1, -1}, exposure = {-1, -1}, anxiety = {-1, -1}, noise = {0, 0};
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
        } else if (cli_args_option(&a, NULL, "--length")) {
            if ((v = cli_args_value(&a)) && !parse_range(v, 0, 60, 0, &length))
                cli_args_fail(&a, "--length '%s' is not a length in [0, 60] pixels or a range "
                              "L:L_MAX of them", v);
        } else if (cli_args_option(&a, NULL, "--exposure")) {
            if ((v = cli_args_value(&a)) &&
                (!parse_range(v, 0, 1, 0, &exposure) || !(exposure.lo > 0)))
                cli_args_fail(&a, "--exposure '%s' is not a fraction in (0, 1] or a range "
                              "E:E_MAX of them", v);
        } else if (cli_args_option(&a, NULL, "--anxiety")) {
            if ((v = cli_args_value(&a)) && !parse_range(v, 0, 1, 0, &anxiety))
                cli_args_fail(&a, "--anxiety '%s' is not a value in [0, 1] or a range "
                              "A:A_MAX of them", v);
        } else if (cli_args_option(&a, NULL, "--noise")) {
            if ((v = cli_args_value(&a)) && !parse_range(v, 0, 1, 1, &noise))
                cli_args_fail(&a, "--noise '%s' is not a std in [0, 1] ([-1, 1] units; N/255 "
                              "for N gray levels) or a range SIGMA:SIGMA_MAX of them", v);
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
    if (ksize == 0)
        ksize = length.lo >= 0 ? kernel_for_length(length.hi) : 31;
    if (length.hi > 2.0 * ((ksize - 1) / 2)) {
        fprintf(stderr, "%s: error: --length %g does not fit --kernel-size %d: a path of L "
                "pixels needs a kernel of at least %d (or leave out --kernel-size)\n", prog,
                length.hi, ksize, kernel_for_length(length.hi));
        return 2;
    }
    blur_settings bs = {.seed = seed, .ksize = ksize, .length = length, .exposure = exposure,
                        .anxiety = anxiety, .noise = noise};
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
            failed |= blur_one(ctx, &plans, argv[k], (uint64_t)(k - first), &bs, out);
    }
    cli_files_free(&read);
    dsd_fft_plans_free(&plans);
    dsd_context_free(ctx);
    clfftTeardown(); /* after every plan and context: see src/ops/fft_loss.c */
    return failed ? 1 : 0;
}
