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
 * pairs are still scored and the exit status is 1. A file that is not a
 * regular file (a FIFO named like an image would block a read forever) is
 * such a problem. Report files are written to a temporary name, fsynced and
 * renamed; one that is an input (an image of either folder, the model) is
 * never written, and one that exists only with --force; both are checked
 * before anything is scored (exit status 1).
 *
 * --report DIR (model mode) also writes a page for people who would rather
 * look than read: DIR/index.html (plain HTML and CSS, no script) with the
 * metrics table and, per image, three crops at 1:1 written beside it as PNG,
 * DIR/NNN-blurred.png, NNN-deblurred.png, NNN-sharp.png (NNN: the image's
 * place in the sorted list, so file names need no escaping). The crop is
 * the 256 x 256 window (smaller images: all of it) of the sharp image with
 * the most gradient energy, found on an 8-pixel grid: where blur shows.
 * The same rules as the other report files: written atomically, existing
 * ones replaced only with --force, never an input.
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
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "dsdeblur-eval";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--protocol skimage|matlab] [--csv FILE] [--json FILE] [--force]\n"
            "          A_DIR B_DIR\n"
            "       %s -m MODEL --blur BLUR_DIR --sharp SHARP_DIR [--tile N] [--device SEL]\n"
            "          [--protocol skimage|matlab] [--csv FILE] [--json FILE]\n"
            "          [--report DIR] [--force]\n"
            "  A_DIR, B_DIR        folders of images paired by file name (.png, .jpg, .jpeg,\n"
            "                      .bmp, .tga); typically restored images and references\n"
            "  -m, --model MODEL   model mode: deblur BLUR_DIR's images with this generator\n"
            "                      and score input and output against SHARP_DIR's\n"
            "  --tile N            model mode: run in N-pixel tiles (0: whole images)\n"
            "  --device SEL        model mode: OpenCL device (index, P:D, gpu, cpu, name)\n"
            "  --protocol P        SSIM protocol: skimage (default) or matlab\n"
            "  --csv FILE          also write name,psnr_db,ssim,error rows to FILE\n"
            "  --json FILE         also write the results and means as JSON to FILE\n"
            "  --report DIR        model mode: also write DIR/index.html, crops at 1:1 of\n"
            "                      blurred | deblurred | sharp per image and the metrics\n"
            "  --force             replace existing report files (never an input)\n"
            "  --help, --version\n",
            prog, prog);
}


// ----------------------------------------------------------------------------
// Listing and pairing

/* One file name of either folder: a pair scored, or why it could not be. */
typedef struct result {
    const char *name;   /* borrowed from a cli_names */
    int paired;         /* in both folders: to be scored */
    int ok;
    double psnr, ssim;  /* folder mode: A against B */
    double in_psnr, in_ssim, out_psnr, out_ssim; /* model mode: blurred and deblurred */
    double seconds, device_seconds;              /* model mode */
    int width, height;                           /* model mode */
    int crop_x, crop_y, crop_w, crop_h;          /* --report: the crops' window */
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

/* The image files of dir (by extension; hidden files and folders skipped),
 * sorted. Returns 0, or 1 with the error printed. */
static int list_images(const char *dir, cli_names *out)
{
    int rc = cli_list_images(prog, dir, 1, out);
    if (rc < 0)
        fprintf(stderr, "%s: error: out of memory listing %s\n", prog, dir);
    return rc != 0;
}

/* The image names of both folders, merged: a name on both sides is a pair to
 * score (paired), a name on one side only a failure. Returns the results
 * (calloc'd; names borrowed from la and lb) and their count, or NULL with the
 * error printed. */
static result *pair_folders(const char *a_dir, const char *b_dir, cli_names *la, cli_names *lb,
                            size_t *n_res)
{
    if (list_images(a_dir, la) || list_images(b_dir, lb))
        return NULL;
    result *res = calloc(la->count + lb->count + 1, sizeof *res);
    if (!res) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        return NULL;
    }
    size_t n = 0, ia = 0, ib = 0;
    while (ia < la->count || ib < lb->count) {
        int c = ia == la->count ? 1 : ib == lb->count ? -1 : strcmp(la->names[ia], lb->names[ib]);
        result *r = &res[n];
        if (c == 0) {
            r->name = la->names[ia++];
            ib++;
            r->paired = 1;
        } else if (c < 0) {
            r->name = la->names[ia++];
            fail(r, "only in %s, not in %s", a_dir, b_dir);
        } else {
            r->name = lb->names[ib++];
            fail(r, "only in %s, not in %s", b_dir, a_dir);
        }
        n++;
    }
    *n_res = n;
    return res;
}

/* a_dir/<r's name> and b_dir/<r's name> into a and b: 1, or 0 with r failed
 * (unreadable, corrupt, or sizes that differ). */
static int load_pair(const char *a_dir, const char *b_dir, result *r, dsd_image *a, dsd_image *b)
{
    dsd_error err;
    char *pa = cli_path_join(a_dir, r->name), *pb = cli_path_join(b_dir, r->name);
    int ok = 0;
    const char *why = NULL;
    if (!pa || !pb)
        fail(r, "out of memory");
    else if ((why = cli_not_regular(pa)) || (why = cli_not_regular(pb)))
        fail(r, "%s: %s; skipped", cli_not_regular(pa) ? pa : pb, why);
    else if (dsd_image_load(pa, a, &err) != DSD_OK || dsd_image_load(pb, b, &err) != DSD_OK)
        fail(r, "%s", err.message);
    else if (a->width != b->width || a->height != b->height)
        fail(r, "sizes differ: %d x %d in %s, %d x %d in %s", a->width, a->height, a_dir,
             b->width, b->height, b_dir);
    else
        ok = 1;
    free(pa);
    free(pb);
    return ok;
}

/* PSNR and SSIM of x against ref: 1, or 0 with r failed. */
static int score(const dsd_image *x, const dsd_image *ref, dsd_ssim_protocol protocol,
                 double *psnr, double *ssim, result *r)
{
    dsd_error err;
    if (dsd_psnr(x, ref, psnr, &err) != DSD_OK ||
        dsd_ssim(x, ref, protocol, ssim, &err) != DSD_OK) {
        fail(r, "%s", err.message);
        return 0;
    }
    return 1;
}

/* The width of the name column: the longest name, at least 4, at most 60. */
static int name_width(const result *res, size_t n_res)
{
    size_t width = 4;
    for (size_t i = 0; i < n_res; i++)
        if (strlen(res[i].name) > width)
            width = strlen(res[i].name);
    return width > 60 ? 60 : (int)width;
}

/* Ends the summary line (how many failed) and says so when neither folder
 * holds an image. Returns the exit status: 0 when every name was scored. */
static int summary_end(size_t n_ok, size_t n_res, const char *a_dir, const char *b_dir)
{
    if (n_ok != n_res)
        printf(", %zu failed (see standard error)", n_res - n_ok);
    printf("\n");
    if (n_res == 0)
        fprintf(stderr, "%s: error: no images (.png, .jpg, .jpeg, .bmp, .tga) in %s or %s\n",
                prog, a_dir, b_dir);
    return n_ok == n_res && n_res > 0 ? 0 : 1;
}

// ----------------------------------------------------------------------------
// Report files

/* Whether the report files may be written (tools/cli.h's rules): neither is
 * one of the images of the two folders or the model, neither exists unless
 * force, and they are not one file. 0, or 1 with the line printed. */
static int check_report_dir(const cli_files *read, const char *dir, size_t n_res, int force);

static int check_reports(const char *a_dir, const char *b_dir, const cli_names *la,
                         const cli_names *lb, const char *model, const char *csv_path,
                         const char *json_path, const char *report_dir, size_t n_res,
                         int force)
{
    if (csv_path && json_path && !strcmp(csv_path, json_path)) {
        fprintf(stderr, "%s: error: --csv and --json both name %s\n", prog, csv_path);
        return 1;
    }
    cli_files read = {0};
    int rc = model ? cli_files_add(&read, model) : 0;
    const char *dirs[2] = {a_dir, b_dir};
    const cli_names *lists[2] = {la, lb};
    for (int side = 0; side < 2 && rc == 0; side++)
        for (size_t i = 0; i < lists[side]->count && rc == 0; i++) {
            char *path = cli_path_join(dirs[side], lists[side]->names[i]);
            rc = path ? cli_files_add(&read, path) : -1;
            free(path);
        }
    if (rc)
        fprintf(stderr, "%s: error: out of memory\n", prog);
    else if ((csv_path && cli_check_output(prog, &read, csv_path, force)) ||
             (json_path && cli_check_output(prog, &read, json_path, force)) ||
             (report_dir && check_report_dir(&read, report_dir, n_res, force)))
        rc = 1;
    cli_files_free(&read);
    return rc ? 1 : 0;
}

/* s as one CSV field (RFC 4180: quoted when it holds , " or a line break). */
static void csv_field(cli_text *t, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        cli_text_printf(t, "%s", s);
        return;
    }
    cli_text_printf(t, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            cli_text_printf(t, "\"\"");
        else
            cli_text_printf(t, "%c", *p);
    }
    cli_text_printf(t, "\"");
}

/* One row per file name: the metrics of a scored pair (folder mode: PSNR
 * and SSIM; model mode: those of the input and of the output, and the
 * seconds), or the error of a failed one after empty metrics. An infinite
 * PSNR is written "inf". 0, or 1 with the error printed. */
static int save_csv(const char *path, int model_mode, const char *pname, const result *res,
                    size_t n_res)
{
    cli_text t = {0};
    if (model_mode)
        cli_text_printf(&t, "name,input_psnr_db,input_ssim_%s,output_psnr_db,output_ssim_%s,"
                        "seconds,device_seconds,error\n", pname, pname);
    else
        cli_text_printf(&t, "name,psnr_db,ssim_%s,error\n", pname);
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
        csv_field(&t, r->name);
        if (!r->ok) {
            cli_text_printf(&t, model_mode ? ",,,,,,," : ",,,");
            csv_field(&t, r->error);
            cli_text_printf(&t, "\n");
        } else if (model_mode) {
            cli_text_printf(&t, ",%.6f,%.8f,%.6f,%.8f,%.6f,%.6f,\n", r->in_psnr, r->in_ssim,
                            r->out_psnr, r->out_ssim, r->seconds, r->device_seconds);
        } else {
            cli_text_printf(&t, ",%.6f,%.8f,\n", r->psnr, r->ssim);
        }
    }
    int rc = cli_text_save(prog, &t, path);
    cli_text_free(&t);
    return rc;
}

/* "failed": [{"name": ..., "error": ...}, ...], in both modes. */
static void json_failed(cli_json *j, const result *res, size_t n_res)
{
    cli_json_open(j, "failed", '[', 1);
    for (size_t i = 0; i < n_res; i++) {
        if (res[i].ok)
            continue;
        cli_json_open(j, NULL, '{', 0);
        cli_json_string(j, "name", res[i].name);
        cli_json_string(j, "error", res[i].error);
        cli_json_close(j);
    }
    cli_json_close(j);
}

// ----------------------------------------------------------------------------
// The visual report (--report DIR, model mode)

enum { REPORT_CROP = 256, REPORT_GRID = 8 };

static const char *const report_kinds[3] = {"blurred", "deblurred", "sharp"};

/* DIR/NNN-<kind>.png for result i, malloc'd (NULL: out of memory). */
static char *report_image_path(const char *dir, size_t i, const char *kind)
{
    char name[64];
    snprintf(name, sizeof name, "%03zu-%s.png", i, kind);
    return cli_path_join(dir, name);
}

/* Creates dir when missing, removes killed runs' temporaries, and checks
 * index.html and every crop an image of n_res may write (cli.h's rules).
 * 0, or 1 with the line printed. */
static int check_report_dir(const cli_files *read, const char *dir, size_t n_res, int force)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0777) != 0) {
            fprintf(stderr, "%s: error: --report %s: cannot create the folder: %s\n", prog, dir,
                    strerror(errno));
            return 1;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: error: --report %s is not a folder\n", prog, dir);
        return 1;
    }
    cli_remove_stale_temporaries(prog, dir);
    char *index = cli_path_join(dir, "index.html");
    int rc = !index || cli_check_output(prog, read, index, force);
    free(index);
    for (size_t i = 0; i < n_res && !rc; i++)
        for (int k = 0; k < 3 && !rc; k++) {
            char *path = report_image_path(dir, i, report_kinds[k]);
            rc = !path || cli_check_output(prog, read, path, force);
            free(path);
        }
    return rc;
}

/* The crop window of img: REPORT_CROP square (or the image where smaller)
 * at the grid position with the largest sum of squared luminance
 * differences to the right and below neighbours; the first such on ties
 * (rows, then columns), so the choice is the same everywhere. */
static void report_window(const dsd_image *img, int *x0, int *y0, int *cw, int *ch)
{
    int w = img->width, h = img->height;
    *cw = w < REPORT_CROP ? w : REPORT_CROP;
    *ch = h < REPORT_CROP ? h : REPORT_CROP;
    *x0 = (w - *cw) / 2;
    *y0 = (h - *ch) / 2;
    double *sum = calloc((size_t)(w + 1) * (size_t)(h + 1), sizeof *sum); /* integral image */
    if (!sum)
        return; /* the centre will do */
    for (int y = 0; y < h; y++) {
        double row = 0;
        for (int x = 0; x < w; x++) {
            const uint8_t *p = img->data + ((size_t)y * w + x) * 3;
            double e = 0;
            for (int c = 0; c < 3; c++) {
                double dx = x + 1 < w ? (double)p[3 + c] - p[c] : 0;
                double dy = y + 1 < h ? (double)p[(size_t)w * 3 + c] - p[c] : 0;
                e += dx * dx + dy * dy;
            }
            row += e;
            sum[(size_t)(y + 1) * (w + 1) + x + 1] = sum[(size_t)y * (w + 1) + x + 1] + row;
        }
    }
    double best = -1;
    for (int y = 0; y + *ch <= h; y += REPORT_GRID)
        for (int x = 0; x + *cw <= w; x += REPORT_GRID) {
            size_t W = (size_t)w + 1;
            double e = sum[(size_t)(y + *ch) * W + x + *cw] - sum[(size_t)y * W + x + *cw] -
                       sum[(size_t)(y + *ch) * W + x] + sum[(size_t)y * W + x];
            if (e > best) {
                best = e;
                *x0 = x;
                *y0 = y;
            }
        }
    free(sum);
}

/* Writes the window (x0, y0, cw, ch) of img to path. 1, or 0 with r failed. */
static int save_crop(const dsd_image *img, int x0, int y0, int cw, int ch, const char *path,
                     result *r)
{
    dsd_error err;
    dsd_image c = {0};
    int ok = dsd_image_alloc(&c, cw, ch, &err) == DSD_OK;
    if (ok) {
        for (int y = 0; y < ch; y++)
            memcpy(c.data + (size_t)y * cw * 3,
                   img->data + ((size_t)(y0 + y) * img->width + x0) * 3, (size_t)cw * 3);
        ok = dsd_image_save(path, &c, &err) == DSD_OK;
    }
    if (!ok)
        fail(r, "--report: %s", err.message);
    dsd_image_free(&c);
    return ok;
}

/* The three crops of result i. 1, or 0 with r failed. */
static int report_crops(const char *dir, size_t i, const dsd_image *blur, const dsd_image *out,
                        const dsd_image *sharp, result *r)
{
    report_window(sharp, &r->crop_x, &r->crop_y, &r->crop_w, &r->crop_h);
    const dsd_image *imgs[3] = {blur, out, sharp};
    int ok = 1;
    for (int k = 0; k < 3 && ok; k++) {
        char *path = report_image_path(dir, i, report_kinds[k]);
        ok = path ? save_crop(imgs[k], r->crop_x, r->crop_y, r->crop_w, r->crop_h, path, r)
                  : (fail(r, "out of memory"), 0);
        free(path);
    }
    return ok;
}

/* s with & < > " escaped. */
static void html_text(cli_text *t, const char *s)
{
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': cli_text_printf(t, "&amp;"); break;
        case '<': cli_text_printf(t, "&lt;"); break;
        case '>': cli_text_printf(t, "&gt;"); break;
        case '"': cli_text_printf(t, "&quot;"); break;
        default: cli_text_printf(t, "%c", *p);
        }
    }
}

/* One metrics row: name (linked to its crops), size, PSNR and SSIM before and
 * after, the gain, seconds. */
static void html_row(cli_text *t, const char *name, size_t anchor, const char *size,
                     double ip, double op, double is, double os, double secs, int strong)
{
    const char *b = strong ? "<b>" : "", *e = strong ? "</b>" : "";
    cli_text_printf(t, "<tr><td>");
    if (anchor != (size_t)-1)
        cli_text_printf(t, "<a href=\"#i%03zu\">", anchor);
    cli_text_printf(t, "%s", b);
    html_text(t, name);
    cli_text_printf(t, "%s%s</td><td>%s</td>", e, anchor != (size_t)-1 ? "</a>" : "", size);
    cli_text_printf(t, "<td>%s%.3f%s</td><td>%s%.3f%s</td><td class=\"%s\">%s%+.2f%s</td>", b, ip,
                    e, b, op, e, op > ip ? "up" : "down", b, op - ip, e);
    cli_text_printf(t, "<td>%s%.4f%s</td><td class=\"%s\">%s%.4f%s</td><td>%s%.3f%s</td></tr>\n",
                    b, is, e, os > is ? "up" : "down", b, os, e, b, secs, e);
}

/* DIR/index.html: the table, then per image its three crops. 0, or 1 with
 * the error printed. */
static int save_report(const char *dir, const char *model, const char *pname,
                       const result *res, size_t n_res)
{
    cli_text t = {0};
    cli_text_printf(&t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<title>dsdeblur-eval report</title>\n<style>\n"
                    "body { font-family: sans-serif; margin: 1.5em; color: #222; }\n"
                    "table { border-collapse: collapse; margin-bottom: 2em; }\n"
                    "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right;\n"
                    "         white-space: nowrap; }\n"
                    "th:first-child, td:first-child { text-align: left; }\n"
                    "td.up { color: #060; } td.down { color: #a00; }\n"
                    ".crops { display: flex; flex-wrap: wrap; gap: 12px; }\n"
                    "figure { margin: 0; }\n"
                    "figure img { image-rendering: pixelated; display: block; }\n"
                    "figcaption { font-size: 0.9em; padding-top: 0.2em; }\n"
                    "</style>\n</head>\n<body>\n<h1>dsdeblur-eval report</h1>\n<p>Model <code>");
    html_text(&t, model);
    cli_text_printf(&t, "</code>; PSNR in dB and SSIM (%s protocol) of the blurred input and of "
                    "the deblurred output against the sharp image; crops at 1:1.</p>\n", pname);
    cli_text_printf(&t, "<table id=\"metrics\">\n<tr><th>image</th><th>size</th><th>PSNR in</th>"
                    "<th>PSNR out</th><th>gain</th><th>SSIM in</th><th>SSIM out</th>"
                    "<th>seconds</th></tr>\n");
    size_t n_ok = 0;
    double s_ip = 0, s_op = 0, s_is = 0, s_os = 0, s_t = 0;
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
        if (!r->ok)
            continue;
        char size[64];
        snprintf(size, sizeof size, "%d &times; %d", r->width, r->height);
        html_row(&t, r->name, i, size, r->in_psnr, r->out_psnr, r->in_ssim, r->out_ssim,
                 r->seconds, 0);
        n_ok++;
        s_ip += r->in_psnr;
        s_op += r->out_psnr;
        s_is += r->in_ssim;
        s_os += r->out_ssim;
        s_t += r->seconds;
    }
    if (n_ok) {
        double k = 1.0 / n_ok;
        html_row(&t, "mean", (size_t)-1, "", s_ip * k, s_op * k, s_is * k, s_os * k, s_t * k, 1);
    }
    cli_text_printf(&t, "</table>\n");
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
        if (!r->ok) {
            cli_text_printf(&t, "<h2>");
            html_text(&t, r->name);
            cli_text_printf(&t, "</h2>\n<p>failed: ");
            html_text(&t, r->error);
            cli_text_printf(&t, "</p>\n");
            continue;
        }
        cli_text_printf(&t, "<h2 id=\"i%03zu\">", i);
        html_text(&t, r->name);
        cli_text_printf(&t, "</h2>\n<p>%d &times; %d crop at (%d, %d) of %d &times; %d</p>\n"
                        "<div class=\"crops\">\n", r->crop_w, r->crop_h, r->crop_x, r->crop_y,
                        r->width, r->height);
        const char *caption[3] = {"blurred", "deblurred", "sharp"};
        for (int k = 0; k < 3; k++) {
            cli_text_printf(&t, "<figure><img src=\"%03zu-%s.png\" width=\"%d\" height=\"%d\" "
                            "alt=\"%s\"><figcaption>%s", i, report_kinds[k], r->crop_w,
                            r->crop_h, caption[k], caption[k]);
            if (k < 2)
                cli_text_printf(&t, ": %.2f dB, SSIM %.4f", k ? r->out_psnr : r->in_psnr,
                                k ? r->out_ssim : r->in_ssim);
            cli_text_printf(&t, "</figcaption></figure>\n");
        }
        cli_text_printf(&t, "</div>\n");
    }
    cli_text_printf(&t, "</body>\n</html>\n");
    char *index = cli_path_join(dir, "index.html");
    int rc = index ? cli_text_save(prog, &t, index) : 1;
    if (!index)
        fprintf(stderr, "%s: error: out of memory\n", prog);
    free(index);
    cli_text_free(&t);
    return rc;
}

// ----------------------------------------------------------------------------
// Folder mode: score A's images against B's

static void score_pair(const char *a_dir, const char *b_dir, dsd_ssim_protocol protocol,
                       result *r)
{
    dsd_image a = {0}, b = {0};
    if (load_pair(a_dir, b_dir, r, &a, &b) && score(&a, &b, protocol, &r->psnr, &r->ssim, r))
        r->ok = 1;
    dsd_image_free(&a);
    dsd_image_free(&b);
}

static int folder_mode(const char *a_dir, const char *b_dir, dsd_ssim_protocol protocol,
                       const char *csv_path, const char *json_path, int force)
{
    const char *pname = dsd_ssim_protocol_name(protocol);
    cli_names la = {0}, lb = {0};
    size_t n_res = 0;
    result *res = pair_folders(a_dir, b_dir, &la, &lb, &n_res);
    if (!res || check_reports(a_dir, b_dir, &la, &lb, NULL, csv_path, json_path, NULL, 0,
                              force)) {
        free(res);
        cli_names_free(&la);
        cli_names_free(&lb);
        return 1;
    }
    for (size_t i = 0; i < n_res; i++)
        if (res[i].paired)
            score_pair(a_dir, b_dir, protocol, &res[i]);

    /* Table, failures, means. */
    size_t n_ok = 0, n_inf = 0;
    double sum_psnr = 0, sum_psnr_finite = 0, sum_ssim = 0;
    int width = name_width(res, n_res);
    printf("%-*s  %9s  %8s\n", width, "name", "PSNR(dB)", "SSIM");
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
        printf("%-*s  %9.4f  %8.6f\n", width, r->name, r->psnr, r->ssim);
    }
    double mean_psnr = n_ok ? sum_psnr / n_ok : NAN, mean_ssim = n_ok ? sum_ssim / n_ok : NAN;
    printf("%-*s  %9.4f  %8.6f\n", width, "mean", mean_psnr, mean_ssim);
    printf("%zu pair%s scored, SSIM protocol %s", n_ok, n_ok == 1 ? "" : "s", pname);
    if (n_inf)
        printf(", %zu identical (PSNR inf, so the mean PSNR is inf)", n_inf);
    if (n_inf && n_inf < n_ok)
        printf(", mean PSNR of the other %zu: %.4f dB", n_ok - n_inf,
               (sum_psnr_finite) / (double)(n_ok - n_inf));
    int rc = summary_end(n_ok, n_res, a_dir, b_dir);
    if (csv_path && save_csv(csv_path, 0, pname, res, n_res))
        rc = 1;
    if (json_path) {
        /* PSNR +inf (identical images) has no JSON number: null, with
         * "identical": true on the pair and "psnr_infinite" in the mean
         * (whose "psnr" is then null too, as it is with no pair at all). */
        cli_json j = {0};
        cli_json_open(&j, NULL, '{', 1);
        cli_json_string(&j, "protocol", pname);
        cli_json_string(&j, "a_dir", a_dir);
        cli_json_string(&j, "b_dir", b_dir);
        cli_json_open(&j, "pairs", '[', 1);
        for (size_t i = 0; i < n_res; i++) {
            if (!res[i].ok)
                continue;
            cli_json_open(&j, NULL, '{', 0);
            cli_json_string(&j, "name", res[i].name);
            cli_json_number(&j, "psnr", "%.6f", res[i].psnr);
            if (isinf(res[i].psnr))
                cli_json_bool(&j, "identical", 1);
            cli_json_number(&j, "ssim", "%.8f", res[i].ssim);
            cli_json_close(&j);
        }
        cli_json_close(&j);
        json_failed(&j, res, n_res);
        cli_json_open(&j, "mean", '{', 0);
        cli_json_int(&j, "count", (long long)n_ok);
        cli_json_int(&j, "psnr_infinite", (long long)n_inf);
        cli_json_number(&j, "psnr", "%.6f", mean_psnr);
        cli_json_number(&j, "ssim", "%.8f", mean_ssim);
        cli_json_close(&j);
        cli_json_close(&j);
        if (cli_text_save(prog, &j.text, json_path))
            rc = 1;
        cli_text_free(&j.text);
    }

    free(res);
    cli_names_free(&la);
    cli_names_free(&lb);
    return rc;
}

// ----------------------------------------------------------------------------
// Model mode: deblur, then score input and output

static void model_score(dsd_context *ctx, dsd_generator *g, const char *blur_dir,
                        const char *sharp_dir, dsd_ssim_protocol protocol, int tile,
                        const char *report_dir, size_t index, result *r)
{
    dsd_image blur = {0}, sharp = {0}, out = {0};
    dsd_deblur_options o = {.tile = tile, .overlap = -1};
    dsd_deblur_stats st;
    if (load_pair(blur_dir, sharp_dir, r, &blur, &sharp) &&
        score(&blur, &sharp, protocol, &r->in_psnr, &r->in_ssim, r)) {
        if (dsd_deblur_image(ctx, g, &blur, &out, &o, &st) != DSD_OK) {
            fail(r, "%s", dsd_context_error(ctx)->message);
        } else if (score(&out, &sharp, protocol, &r->out_psnr, &r->out_ssim, r)) {
            r->ok = 1;
            r->seconds = st.total_s;
            r->device_seconds = st.device_s;
            r->width = blur.width;
            r->height = blur.height;
            if (report_dir && !report_crops(report_dir, index, &blur, &out, &sharp, r))
                r->ok = 0;
        }
    }
    dsd_image_free(&blur);
    dsd_image_free(&sharp);
    dsd_image_free(&out);
}

static int model_mode(const char *model, const char *blur_dir, const char *sharp_dir,
                      dsd_ssim_protocol protocol, const char *csv_path, const char *json_path,
                      const char *report_dir, const char *selector, int tile, int force)
{
    const char *pname = dsd_ssim_protocol_name(protocol);
    dsd_error err;
    dsd_generator_config cfg;
    if (cli_check_input(prog, model))
        return 1;
    if (dsd_generator_file_config(model, &cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    cli_names la = {0}, lb = {0};
    size_t n_res = 0;
    result *res = pair_folders(blur_dir, sharp_dir, &la, &lb, &n_res);
    if (res && check_reports(blur_dir, sharp_dir, &la, &lb, model, csv_path, json_path,
                             report_dir, n_res, force)) {
        free(res);
        res = NULL;
    }
    dsd_context *ctx = res ? cli_context(prog, selector, 0) : NULL;
    dsd_generator g = {0};
    int rc = 1;
    if (!ctx)
        goto out;
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
    for (size_t i = 0; i < n_res; i++)
        if (res[i].paired)
            model_score(ctx, &g, blur_dir, sharp_dir, protocol, tile, report_dir, i, &res[i]);

    size_t n_ok = 0;
    double s_ip = 0, s_is = 0, s_op = 0, s_os = 0, s_t = 0, s_d = 0;
    int width = name_width(res, n_res);
    printf("%-*s  %9s  %8s  %9s  %8s  %8s\n", width, "name", "in PSNR", "in SSIM", "out PSNR",
           "out SSIM", "time(s)");
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
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
        printf("%-*s  %9.4f  %8.6f  %9.4f  %8.6f  %8.4f\n", width, r->name, r->in_psnr,
               r->in_ssim, r->out_psnr, r->out_ssim, r->seconds);
    }
    double k = n_ok ? 1.0 / n_ok : NAN;
    printf("%-*s  %9.4f  %8.6f  %9.4f  %8.6f  %8.4f\n", width, "mean", s_ip * k, s_is * k,
           s_op * k, s_os * k, s_t * k);
    size_t params = dsd_generator_param_count(&cfg);
    const dsd_device_info *dev = dsd_context_device(ctx);
    printf("model %s: %zu parameters (%.2f M, %.1f MB as float32); device [%d] %s\n", model,
           params, params / 1e6, params * 4 / 1e6, dev->index, dev->name);
    printf("%zu image%s, SSIM protocol %s: PSNR %.4f -> %.4f dB, SSIM %.6f -> %.6f, %.4f s per "
           "image end to end (%.4f s device compute)", n_ok, n_ok == 1 ? "" : "s", pname,
           s_ip * k, s_op * k, s_is * k, s_os * k, s_t * k, s_d * k);
    rc = summary_end(n_ok, n_res, blur_dir, sharp_dir);
    if (csv_path && save_csv(csv_path, 1, pname, res, n_res))
        rc = 1;
    if (report_dir && save_report(report_dir, model, pname, res, n_res))
        rc = 1;
    if (json_path) {
        cli_json j = {0};
        cli_json_open(&j, NULL, '{', 1);
        cli_json_string(&j, "mode", "model");
        cli_json_string(&j, "model", model);
        cli_json_int(&j, "parameters", (long long)params);
        cli_json_number(&j, "megabytes_f32", "%.3f", params * 4 / 1e6);
        cli_json_string(&j, "device", dev->name);
        cli_json_string(&j, "protocol", pname);
        cli_json_string(&j, "blur_dir", blur_dir);
        cli_json_string(&j, "sharp_dir", sharp_dir);
        cli_json_open(&j, "images", '[', 1);
        for (size_t i = 0; i < n_res; i++) {
            const result *m = &res[i];
            if (!m->ok)
                continue;
            cli_json_open(&j, NULL, '{', 0);
            cli_json_string(&j, "name", m->name);
            cli_json_int(&j, "width", m->width);
            cli_json_int(&j, "height", m->height);
            cli_json_number(&j, "input_psnr", "%.6f", m->in_psnr);
            cli_json_number(&j, "input_ssim", "%.8f", m->in_ssim);
            cli_json_number(&j, "output_psnr", "%.6f", m->out_psnr);
            cli_json_number(&j, "output_ssim", "%.8f", m->out_ssim);
            cli_json_number(&j, "seconds", "%.6f", m->seconds);
            cli_json_number(&j, "device_seconds", "%.6f", m->device_seconds);
            cli_json_close(&j);
        }
        cli_json_close(&j);
        json_failed(&j, res, n_res);
        cli_json_open(&j, "mean", '{', 0);
        cli_json_int(&j, "count", (long long)n_ok);
        cli_json_number(&j, "input_psnr", "%.6f", s_ip * k);
        cli_json_number(&j, "input_ssim", "%.8f", s_is * k);
        cli_json_number(&j, "output_psnr", "%.6f", s_op * k);
        cli_json_number(&j, "output_ssim", "%.8f", s_os * k);
        cli_json_number(&j, "seconds", "%.6f", s_t * k);
        cli_json_number(&j, "device_seconds", "%.6f", s_d * k);
        cli_json_close(&j);
        cli_json_close(&j);
        if (cli_text_save(prog, &j.text, json_path))
            rc = 1;
        cli_text_free(&j.text);
    }
out:
    free(res);
    if (ctx) {
        dsd_generator_free(ctx, &g);
        dsd_context_free(ctx);
    }
    cli_names_free(&la);
    cli_names_free(&lb);
    return rc;
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv)
{
    const char *protocol_name = "skimage", *csv_path = NULL, *json_path = NULL;
    const char *model = NULL, *blur_dir = NULL, *sharp_dir = NULL, *report_dir = NULL;
    const char *dirs[2];
    int n_dirs = 0, tile = -1, force = 0; /* tile -1: no --tile */
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, 0);
    while (cli_args_next(&a)) {
        if (cli_args_option(&a, NULL, "--protocol"))
            protocol_name = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--csv"))
            csv_path = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--json"))
            json_path = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--report"))
            report_dir = cli_args_value(&a);
        else if (cli_args_option(&a, "-m", "--model"))
            model = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--blur"))
            blur_dir = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--sharp"))
            sharp_dir = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--tile"))
            cli_args_int(&a, 0, 65535, &tile);
        else if (cli_args_flag(&a, "-f", "--force"))
            force = 1;
        else if (cli_args_positional(&a) && n_dirs < 2)
            dirs[n_dirs++] = a.arg;
        else if (cli_args_positional(&a))
            cli_args_fail(&a, "unexpected argument '%s': give two folders", a.arg);
        else
            cli_args_unknown(&a);
    }
    if (cli_args_end(&a) >= 0)
        return a.exit_status;
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
        return model_mode(model, blur_dir, sharp_dir, protocol, csv_path, json_path, report_dir,
                          a.device, tile < 0 ? 0 : tile, force);
    }
    if (a.device || tile >= 0 || report_dir) {
        fprintf(stderr, "%s: error: --device, --tile and --report belong to model mode (-m)\n",
                prog);
        return 2;
    }
    if (n_dirs != 2) {
        fprintf(stderr, "%s: error: give two folders, A_DIR and B_DIR (see --help)\n", prog);
        return 2;
    }
    return folder_mode(dirs[0], dirs[1], protocol, csv_path, json_path, force);
}
