/*
 * dsdeblur-eval: scores restored images against references, folder by
 * folder: PSNR and SSIM (skimage or MATLAB protocol, see doc/metrics.md) for
 * every file name present in both folders, a table on standard output, the
 * means, and optionally the same as CSV and/or JSON.
 *
 * Model mode (-m MODEL --blur DIR --sharp DIR) deblurs every blurred image
 * with the generator first and reports, per image, the input's scores
 * (blurred vs sharp), the output's (deblurred vs sharp) and the seconds it
 * took, then the means, the seconds per image and the model's parameter
 * count: the columns of the paper's Tables I and III. Kernels are compiled
 * by a warm-up run on a small image before the first timed one.
 *
 * What it does not do: pair files whose names differ (a.jpg vs a.png),
 * recurse into subfolders. Folder mode is host only (no OpenCL device).
 *
 * Every problem with a pair (a file on one side only, unreadable or corrupt,
 * sizes that differ) is one line on standard error naming the file; the other
 * pairs are still scored and the exit status is 1. Report files are written
 * to a temporary name, fsynced and renamed.
 */
#include <config.h>

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "dsdeblur-eval";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--protocol skimage|matlab] [--csv FILE] [--json FILE] A_DIR B_DIR\n"
            "       %s -m MODEL --blur BLUR_DIR --sharp SHARP_DIR [--tile N] [--device SEL]\n"
            "          [--protocol skimage|matlab] [--csv FILE] [--json FILE]\n"
            "  A_DIR, B_DIR        folders of images paired by file name (.png, .jpg, .jpeg,\n"
            "                      .bmp, .tga); typically restored images and references\n"
            "  -m, --model MODEL   model mode: deblur BLUR_DIR's images with this generator\n"
            "                      and score input and output against SHARP_DIR's\n"
            "  --tile N            model mode: run in N-pixel tiles (0: whole images)\n"
            "  --device SEL        model mode: OpenCL device (index, P:D, gpu, cpu, name)\n"
            "  --protocol P        SSIM protocol: skimage (default) or matlab\n"
            "  --csv FILE          also write name,psnr_db,ssim,error rows to FILE\n"
            "  --json FILE         also write the results and means as JSON to FILE\n"
            "  --help, --version\n",
            prog, prog);
}

// ----------------------------------------------------------------------------
// Listing and pairing

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    size_t len = strlen(dir);
    if (p)
        snprintf(p, n, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
    return p;
}

/* The image files of dir (by extension; hidden files and folders skipped),
 * sorted. Returns 0, or 1 with the error printed. */
static int list_images(const char *dir, cli_names *out)
{
    int rc = cli_list_images(prog, dir, 1, out);
    if (rc < 0)
        fprintf(stderr, "%s: error: out of memory listing %s\n", prog, dir);
    return rc != 0;
}

typedef struct result {
    const char *name;   /* borrowed from a cli_names */
    int ok;
    double psnr, ssim;
    char error[1024];   /* when !ok */
} result;

static void fail(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->ok = 0;
}

static void score_pair(const char *a_dir, const char *b_dir, dsd_ssim_protocol protocol,
                       result *r)
{
    dsd_error err;
    dsd_image a = {0}, b = {0};
    char *pa = join(a_dir, r->name), *pb = join(b_dir, r->name);
    if (!pa || !pb) {
        fail(r, "out of memory");
    } else if (dsd_image_load(pa, &a, &err) != DSD_OK) {
        fail(r, "%s", err.message);
    } else if (dsd_image_load(pb, &b, &err) != DSD_OK) {
        fail(r, "%s", err.message);
    } else if (a.width != b.width || a.height != b.height) {
        fail(r, "sizes differ: %d x %d in %s, %d x %d in %s", a.width, a.height, a_dir,
             b.width, b.height, b_dir);
    } else if (dsd_psnr(&a, &b, &r->psnr, &err) != DSD_OK ||
               dsd_ssim(&a, &b, protocol, &r->ssim, &err) != DSD_OK) {
        fail(r, "%s", err.message);
    } else {
        r->ok = 1;
    }
    free(pa);
    free(pb);
    dsd_image_free(&a);
    dsd_image_free(&b);
}

// ----------------------------------------------------------------------------
// Report files

/* Text written through an in-memory buffer, then saved atomically. */
typedef struct report {
    char *data;
    size_t len, cap;
    int failed;
} report;

static void rp(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rp(report *r, const char *fmt, ...)
{
    for (;;) {
        if (r->failed)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(r->data ? r->data + r->len : NULL, r->data ? r->cap - r->len : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0) {
            r->failed = 1;
            return;
        }
        if (r->data && r->len + (size_t)n < r->cap) {
            r->len += (size_t)n;
            return;
        }
        size_t cap = (r->cap ? 2 * r->cap : 4096) + (size_t)n;
        char *p = realloc(r->data, cap);
        if (!p) {
            r->failed = 1;
            return;
        }
        r->data = p;
        r->cap = cap;
    }
}

/* s as a JSON string body (quotes added by the caller). */
static void rp_json_string(report *r, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            rp(r, "\\%c", *p);
        else if (*p < 0x20)
            rp(r, "\\u%04x", *p);
        else
            rp(r, "%c", *p);
    }
}

/* s as one CSV field (RFC 4180: quoted when it holds , " or a line break). */
static void rp_csv_field(report *r, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        rp(r, "%s", s);
        return;
    }
    rp(r, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            rp(r, "\"\"");
        else
            rp(r, "%c", *p);
    }
    rp(r, "\"");
}

/* Writes the report to path via <path>.tmp.<pid>, fsync, rename. */
static int report_save(report *r, const char *path)
{
    if (r->failed) {
        fprintf(stderr, "%s: error: %s: out of memory building the report\n", prog, path);
        return 1;
    }
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) {
        fprintf(stderr, "%s: error: %s: out of memory\n", prog, path);
        return 1;
    }
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        fprintf(stderr, "%s: error: %s: cannot create %s: %s\n", prog, path, tmp,
                strerror(errno));
        free(tmp);
        return 1;
    }
    size_t done = 0;
    int werr = 0;
    while (done < r->len && !werr) {
        ssize_t n = write(fd, r->data + done, r->len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno != EINTR)
            werr = errno;
        else if (n == 0)
            werr = EIO;
    }
    if (!werr && fsync(fd) != 0)
        werr = errno;
    if (close(fd) != 0 && !werr)
        werr = errno;
    if (!werr && rename(tmp, path) != 0)
        werr = errno;
    if (werr) {
        fprintf(stderr, "%s: error: %s: write failed: %s\n", prog, path, strerror(werr));
        unlink(tmp);
        free(tmp);
        return 1;
    }
    free(tmp);
    return 0;
}

// ----------------------------------------------------------------------------
// Model mode: deblur, then score input and output

typedef struct model_result {
    const char *name;   /* borrowed from a cli_names */
    int ok;
    double in_psnr, in_ssim, out_psnr, out_ssim;
    double seconds, device_seconds;
    int width, height;
    char error[1024];
} model_result;

static void model_fail(model_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void model_fail(model_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->ok = 0;
}

static void model_score(dsd_context *ctx, dsd_generator *g, const char *blur_dir,
                        const char *sharp_dir, dsd_ssim_protocol protocol, int tile,
                        model_result *r)
{
    dsd_error err;
    dsd_image blur = {0}, sharp = {0}, out = {0};
    char *pa = join(blur_dir, r->name), *pb = join(sharp_dir, r->name);
    dsd_deblur_options o = {tile, -1, 0, 0};
    dsd_deblur_stats st;
    if (!pa || !pb) {
        model_fail(r, "out of memory");
    } else if (dsd_image_load(pa, &blur, &err) != DSD_OK ||
               dsd_image_load(pb, &sharp, &err) != DSD_OK) {
        model_fail(r, "%s", err.message);
    } else if (blur.width != sharp.width || blur.height != sharp.height) {
        model_fail(r, "sizes differ: %d x %d in %s, %d x %d in %s", blur.width, blur.height,
                   blur_dir, sharp.width, sharp.height, sharp_dir);
    } else if (dsd_psnr(&blur, &sharp, &r->in_psnr, &err) != DSD_OK ||
               dsd_ssim(&blur, &sharp, protocol, &r->in_ssim, &err) != DSD_OK) {
        model_fail(r, "%s", err.message);
    } else if (dsd_deblur_image(ctx, g, &blur, &out, &o, &st) != DSD_OK) {
        model_fail(r, "%s", dsd_context_error(ctx)->message);
    } else if (dsd_psnr(&out, &sharp, &r->out_psnr, &err) != DSD_OK ||
               dsd_ssim(&out, &sharp, protocol, &r->out_ssim, &err) != DSD_OK) {
        model_fail(r, "%s", err.message);
    } else {
        r->ok = 1;
        r->seconds = st.total_s;
        r->device_seconds = st.device_s;
        r->width = blur.width;
        r->height = blur.height;
    }
    free(pa);
    free(pb);
    dsd_image_free(&blur);
    dsd_image_free(&sharp);
    dsd_image_free(&out);
}

/* A JSON number, or null when not finite (JSON has no infinity). */
static void rp_json_number(report *r, const char *fmt, double v)
{
    if (isfinite(v))
        rp(r, fmt, v);
    else
        rp(r, "null");
}

static int model_mode(const char *model, const char *blur_dir, const char *sharp_dir,
                      dsd_ssim_protocol protocol, const char *csv_path, const char *json_path,
                      const char *selector, int tile)
{
    const char *pname = dsd_ssim_protocol_name(protocol);
    dsd_error err;
    dsd_generator_config cfg;
    if (dsd_generator_file_config(model, &cfg, &err) != DSD_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err.message);
        return 1;
    }
    cli_names la = {0}, lb = {0};
    if (list_images(blur_dir, &la) || list_images(sharp_dir, &lb)) {
        cli_names_free(&la);
        cli_names_free(&lb);
        return 1;
    }
    dsd_context *ctx = cli_context(prog, selector, 0);
    if (!ctx) {
        cli_names_free(&la);
        cli_names_free(&lb);
        return 1;
    }
    dsd_generator g = {0};
    int rc = 1;
    model_result *res = calloc(la.count + lb.count + 1, sizeof *res);
    if (!res) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        goto out;
    }
    if (dsd_generator_init(ctx, &g, &cfg) != DSD_OK || dsd_generator_load(ctx, &g, model) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
        goto out;
    }
    /* warm-up: compile every kernel before the first timed image */
    {
        dsd_image w = {0}, wo = {0};
        if (dsd_image_alloc(&w, 64, 64, &err) == DSD_OK &&
            dsd_deblur_image(ctx, &g, &w, &wo, NULL, NULL) != DSD_OK) {
            cli_print_error(prog, dsd_context_error(ctx));
            dsd_image_free(&w);
            goto out;
        }
        dsd_image_free(&w);
        dsd_image_free(&wo);
    }

    size_t n_res = 0, ia = 0, ib = 0;
    while (ia < la.count || ib < lb.count) {
        int c = ia == la.count ? 1 : ib == lb.count ? -1 : strcmp(la.names[ia], lb.names[ib]);
        model_result *r = &res[n_res++];
        if (c == 0) {
            r->name = la.names[ia++];
            ib++;
            model_score(ctx, &g, blur_dir, sharp_dir, protocol, tile, r);
        } else if (c < 0) {
            r->name = la.names[ia++];
            model_fail(r, "only in %s, not in %s", blur_dir, sharp_dir);
        } else {
            r->name = lb.names[ib++];
            model_fail(r, "only in %s, not in %s", sharp_dir, blur_dir);
        }
    }

    size_t n_ok = 0, width = 4;
    double s_ip = 0, s_is = 0, s_op = 0, s_os = 0, s_t = 0, s_d = 0;
    for (size_t i = 0; i < n_res; i++)
        if (strlen(res[i].name) > width)
            width = strlen(res[i].name);
    if (width > 60)
        width = 60;
    printf("%-*s  %9s  %8s  %9s  %8s  %8s\n", (int)width, "name", "in PSNR", "in SSIM",
           "out PSNR", "out SSIM", "time(s)");
    for (size_t i = 0; i < n_res; i++) {
        const model_result *r = &res[i];
        if (!r->ok) {
            fprintf(stderr, "%s: %s: %s\n", prog, r->name, r->error);
            continue;
        }
        n_ok++;
        s_ip += r->in_psnr;
        s_is += r->in_ssim;
        s_op += r->out_psnr;
        s_os += r->out_ssim;
        s_t += r->seconds;
        s_d += r->device_seconds;
        printf("%-*s  %9.4f  %8.6f  %9.4f  %8.6f  %8.4f\n", (int)width, r->name, r->in_psnr,
               r->in_ssim, r->out_psnr, r->out_ssim, r->seconds);
    }
    double k = n_ok ? 1.0 / n_ok : NAN;
    printf("%-*s  %9.4f  %8.6f  %9.4f  %8.6f  %8.4f\n", (int)width, "mean", s_ip * k, s_is * k,
           s_op * k, s_os * k, s_t * k);
    size_t params = dsd_generator_param_count(&cfg);
    const dsd_device_info *dev = dsd_context_device(ctx);
    printf("model %s: %zu parameters (%.2f M, %.1f MB as float32); device [%d] %s\n", model,
           params, params / 1e6, params * 4 / 1e6, dev->index, dev->name);
    printf("%zu image%s, SSIM protocol %s: PSNR %.4f -> %.4f dB, SSIM %.6f -> %.6f, %.4f s per "
           "image end to end (%.4f s device compute)", n_ok, n_ok == 1 ? "" : "s", pname,
           s_ip * k, s_op * k, s_is * k, s_os * k, s_t * k, s_d * k);
    if (n_ok != n_res)
        printf(", %zu failed (see standard error)", n_res - n_ok);
    printf("\n");
    rc = n_ok == n_res && n_res > 0 ? 0 : 1;
    if (n_res == 0)
        fprintf(stderr, "%s: error: no images (.png, .jpg, .jpeg, .bmp, .tga) in %s or %s\n",
                prog, blur_dir, sharp_dir);

    if (csv_path) {
        report r = {0};
        rp(&r, "name,input_psnr_db,input_ssim_%s,output_psnr_db,output_ssim_%s,seconds,"
               "device_seconds,error\n", pname, pname);
        for (size_t i = 0; i < n_res; i++) {
            const model_result *m = &res[i];
            rp_csv_field(&r, m->name);
            if (m->ok)
                rp(&r, ",%.6f,%.8f,%.6f,%.8f,%.6f,%.6f,\n", m->in_psnr, m->in_ssim, m->out_psnr,
                   m->out_ssim, m->seconds, m->device_seconds);
            else {
                rp(&r, ",,,,,,,");
                rp_csv_field(&r, m->error);
                rp(&r, "\n");
            }
        }
        if (report_save(&r, csv_path))
            rc = 1;
        free(r.data);
    }
    if (json_path) {
        report r = {0};
        rp(&r, "{\n  \"mode\": \"model\",\n  \"model\": \"");
        rp_json_string(&r, model);
        rp(&r, "\",\n  \"parameters\": %zu,\n  \"megabytes_f32\": %.3f,\n  \"device\": \"", params,
           params * 4 / 1e6);
        rp_json_string(&r, dev->name);
        rp(&r, "\",\n  \"protocol\": \"%s\",\n  \"blur_dir\": \"", pname);
        rp_json_string(&r, blur_dir);
        rp(&r, "\",\n  \"sharp_dir\": \"");
        rp_json_string(&r, sharp_dir);
        rp(&r, "\",\n  \"images\": [");
        const char *sep = "\n";
        for (size_t i = 0; i < n_res; i++) {
            const model_result *m = &res[i];
            if (!m->ok)
                continue;
            rp(&r, "%s    {\"name\": \"", sep);
            rp_json_string(&r, m->name);
            rp(&r, "\", \"width\": %d, \"height\": %d, \"input_psnr\": ", m->width, m->height);
            rp_json_number(&r, "%.6f", m->in_psnr);
            rp(&r, ", \"input_ssim\": %.8f, \"output_psnr\": ", m->in_ssim);
            rp_json_number(&r, "%.6f", m->out_psnr);
            rp(&r, ", \"output_ssim\": %.8f, \"seconds\": %.6f, \"device_seconds\": %.6f}",
               m->out_ssim, m->seconds, m->device_seconds);
            sep = ",\n";
        }
        rp(&r, "\n  ],\n  \"failed\": [");
        sep = "\n";
        for (size_t i = 0; i < n_res; i++) {
            if (res[i].ok)
                continue;
            rp(&r, "%s    {\"name\": \"", sep);
            rp_json_string(&r, res[i].name);
            rp(&r, "\", \"error\": \"");
            rp_json_string(&r, res[i].error);
            rp(&r, "\"}");
            sep = ",\n";
        }
        rp(&r, "\n  ],\n  \"mean\": {\"count\": %zu, \"input_psnr\": ", n_ok);
        rp_json_number(&r, "%.6f", s_ip * k);
        rp(&r, ", \"input_ssim\": ");
        rp_json_number(&r, "%.8f", s_is * k);
        rp(&r, ", \"output_psnr\": ");
        rp_json_number(&r, "%.6f", s_op * k);
        rp(&r, ", \"output_ssim\": ");
        rp_json_number(&r, "%.8f", s_os * k);
        rp(&r, ", \"seconds\": ");
        rp_json_number(&r, "%.6f", s_t * k);
        rp(&r, ", \"device_seconds\": ");
        rp_json_number(&r, "%.6f", s_d * k);
        rp(&r, "}\n}\n");
        if (report_save(&r, json_path))
            rc = 1;
        free(r.data);
    }
out:
    free(res);
    dsd_generator_free(ctx, &g);
    dsd_context_free(ctx);
    cli_names_free(&la);
    cli_names_free(&lb);
    return rc;
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv)
{
    const char *protocol_name = "skimage", *csv_path = NULL, *json_path = NULL;
    const char *model = NULL, *blur_dir = NULL, *sharp_dir = NULL, *selector = NULL;
    const char *tile_text = NULL;
    const char *dirs[2];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = !strcmp(a, "--protocol") ? &protocol_name
                             : !strcmp(a, "--csv")    ? &csv_path
                             : !strcmp(a, "--json")   ? &json_path
                             : !strcmp(a, "-m") || !strcmp(a, "--model") ? &model
                             : !strcmp(a, "--blur")   ? &blur_dir
                             : !strcmp(a, "--sharp")  ? &sharp_dir
                             : !strcmp(a, "--device") ? &selector
                             : !strcmp(a, "--tile")   ? &tile_text
                                                      : NULL;
        if (value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: error: %s needs a value (see --help)\n", prog, a);
                return 2;
            }
            *value = argv[++i];
        } else if (!strncmp(a, "--protocol=", 11)) {
            protocol_name = a + 11;
        } else if (!strncmp(a, "--csv=", 6)) {
            csv_path = a + 6;
        } else if (!strncmp(a, "--json=", 7)) {
            json_path = a + 7;
        } else if (!strncmp(a, "--model=", 8)) {
            model = a + 8;
        } else if (!strncmp(a, "--blur=", 7)) {
            blur_dir = a + 7;
        } else if (!strncmp(a, "--sharp=", 8)) {
            sharp_dir = a + 8;
        } else if (!strncmp(a, "--device=", 9)) {
            selector = a + 9;
        } else if (!strncmp(a, "--tile=", 7)) {
            tile_text = a + 7;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("%s %s\n", prog, PACKAGE_VERSION);
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: error: unknown option '%s' (see --help)\n", prog, a);
            return 2;
        } else if (n_dirs < 2) {
            dirs[n_dirs++] = a;
        } else {
            fprintf(stderr, "%s: error: unexpected argument '%s': give two folders (see "
                    "--help)\n", prog, a);
            return 2;
        }
    }
    dsd_error err;
    dsd_ssim_protocol protocol;
    if (dsd_ssim_protocol_parse(protocol_name, &protocol, &err) != DSD_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err.message);
        return 2;
    }
    if (model || blur_dir || sharp_dir) {
        if (!model || !blur_dir || !sharp_dir || n_dirs) {
            fprintf(stderr, "%s: error: model mode takes -m MODEL --blur BLUR_DIR --sharp "
                    "SHARP_DIR and no other folders (see --help)\n", prog);
            return 2;
        }
        int tile = 0;
        if (tile_text) {
            char *end;
            long v = strtol(tile_text, &end, 10);
            if (end == tile_text || *end || v < 0 || v > 65535) {
                fprintf(stderr, "%s: error: --tile wants a whole number 0 .. 65535, not '%s'\n",
                        prog, tile_text);
                return 2;
            }
            tile = (int)v;
        }
        return model_mode(model, blur_dir, sharp_dir, protocol, csv_path, json_path, selector,
                          tile);
    }
    if (selector || tile_text) {
        fprintf(stderr, "%s: error: --device and --tile belong to model mode (-m)\n", prog);
        return 2;
    }
    if (n_dirs != 2) {
        fprintf(stderr, "%s: error: give two folders, A_DIR and B_DIR (see --help)\n", prog);
        return 2;
    }

    cli_names la = {0}, lb = {0};
    if (list_images(dirs[0], &la) || list_images(dirs[1], &lb)) {
        cli_names_free(&la);
        cli_names_free(&lb);
        return 1;
    }

    /* Merge the two sorted lists: a name on both sides is a pair to score, a
     * name on one side only is a failure. */
    result *res = calloc(la.count + lb.count + 1, sizeof *res);
    if (!res) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        return 1;
    }
    size_t n_res = 0, ia = 0, ib = 0;
    while (ia < la.count || ib < lb.count) {
        int c = ia == la.count ? 1 : ib == lb.count ? -1 : strcmp(la.names[ia], lb.names[ib]);
        result *r = &res[n_res++];
        if (c == 0) {
            r->name = la.names[ia++];
            ib++;
            score_pair(dirs[0], dirs[1], protocol, r);
        } else if (c < 0) {
            r->name = la.names[ia++];
            fail(r, "only in %s, not in %s", dirs[0], dirs[1]);
        } else {
            r->name = lb.names[ib++];
            fail(r, "only in %s, not in %s", dirs[1], dirs[0]);
        }
    }

    /* Table, failures, means. */
    size_t n_ok = 0, n_inf = 0, width = 4;
    double sum_psnr = 0, sum_psnr_finite = 0, sum_ssim = 0;
    for (size_t i = 0; i < n_res; i++)
        if (strlen(res[i].name) > width)
            width = strlen(res[i].name);
    if (width > 60)
        width = 60;
    printf("%-*s  %9s  %8s\n", (int)width, "name", "PSNR(dB)", "SSIM");
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
        if (!r->ok) {
            fprintf(stderr, "%s: %s: %s\n", prog, r->name, r->error);
            continue;
        }
        n_ok++;
        n_inf += isinf(r->psnr) != 0;
        sum_psnr += r->psnr;
        sum_psnr_finite += isinf(r->psnr) ? 0 : r->psnr;
        sum_ssim += r->ssim;
        printf("%-*s  %9.4f  %8.6f\n", (int)width, r->name, r->psnr, r->ssim);
    }
    double mean_psnr = n_ok ? sum_psnr / n_ok : NAN, mean_ssim = n_ok ? sum_ssim / n_ok : NAN;
    printf("%-*s  %9.4f  %8.6f\n", (int)width, "mean", mean_psnr, mean_ssim);
    printf("%zu pair%s scored, SSIM protocol %s", n_ok, n_ok == 1 ? "" : "s",
           dsd_ssim_protocol_name(protocol));
    if (n_inf)
        printf(", %zu identical (PSNR inf, so the mean PSNR is inf)", n_inf);
    if (n_inf && n_inf < n_ok)
        printf(", mean PSNR of the other %zu: %.4f dB", n_ok - n_inf,
               (sum_psnr_finite) / (double)(n_ok - n_inf));
    if (n_ok != n_res)
        printf(", %zu failed (see standard error)", n_res - n_ok);
    printf("\n");

    int rc = n_ok == n_res && n_res > 0 ? 0 : 1;
    if (n_res == 0)
        fprintf(stderr, "%s: error: no images (.png, .jpg, .jpeg, .bmp, .tga) in %s or %s\n",
                prog, dirs[0], dirs[1]);

    if (csv_path) {
        report r = {0};
        rp(&r, "name,psnr_db,ssim_%s,error\n", dsd_ssim_protocol_name(protocol));
        for (size_t i = 0; i < n_res; i++) {
            rp_csv_field(&r, res[i].name);
            if (res[i].ok)
                rp(&r, ",%.6f,%.8f,\n", res[i].psnr, res[i].ssim); /* inf prints "inf" */
            else {
                rp(&r, ",,,");
                rp_csv_field(&r, res[i].error);
                rp(&r, "\n");
            }
        }
        if (report_save(&r, csv_path))
            rc = 1;
        free(r.data);
    }
    if (json_path) {
        /* PSNR +inf (identical images) has no JSON number: null, with
         * "identical": true on the pair and "psnr_infinite" in the mean. */
        report r = {0};
        rp(&r, "{\n  \"protocol\": \"%s\",\n  \"a_dir\": \"", dsd_ssim_protocol_name(protocol));
        rp_json_string(&r, dirs[0]);
        rp(&r, "\",\n  \"b_dir\": \"");
        rp_json_string(&r, dirs[1]);
        rp(&r, "\",\n  \"pairs\": [");
        const char *sep = "\n";
        for (size_t i = 0; i < n_res; i++) {
            if (!res[i].ok)
                continue;
            rp(&r, "%s    {\"name\": \"", sep);
            rp_json_string(&r, res[i].name);
            if (isinf(res[i].psnr))
                rp(&r, "\", \"psnr\": null, \"identical\": true, \"ssim\": %.8f}", res[i].ssim);
            else
                rp(&r, "\", \"psnr\": %.6f, \"ssim\": %.8f}", res[i].psnr, res[i].ssim);
            sep = ",\n";
        }
        rp(&r, "\n  ],\n  \"failed\": [");
        sep = "\n";
        for (size_t i = 0; i < n_res; i++) {
            if (res[i].ok)
                continue;
            rp(&r, "%s    {\"name\": \"", sep);
            rp_json_string(&r, res[i].name);
            rp(&r, "\", \"error\": \"");
            rp_json_string(&r, res[i].error);
            rp(&r, "\"}");
            sep = ",\n";
        }
        rp(&r, "\n  ],\n  \"mean\": {\"count\": %zu, \"psnr_infinite\": %zu, ", n_ok, n_inf);
        if (n_ok && !n_inf)
            rp(&r, "\"psnr\": %.6f, ", mean_psnr);
        else
            rp(&r, "\"psnr\": null, ");
        if (n_ok)
            rp(&r, "\"ssim\": %.8f}\n}\n", mean_ssim);
        else
            rp(&r, "\"ssim\": null}\n}\n");
        if (report_save(&r, json_path))
            rc = 1;
        free(r.data);
    }

    free(res);
    cli_names_free(&la);
    cli_names_free(&lb);
    return rc;
}
