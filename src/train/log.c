/*
 * log.c: the training run's record (dsdeblur_train.h): a CSV row per step
 * and per validation, appended and flushed as they happen, and an SVG plot
 * of the loss and validation curves drawn from the whole record. The CSV is
 * read back on resume so the plot covers the run, not only the last leg.
 *
 * The SVG is written by hand: it is a few <polyline>s and labels, and no
 * Debian library draws plots from C; stb_image_write would need a
 * rasterizer, which would be the larger hand-rolled thing.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { STEP_COLS = 8, VAL_COLS = 6 };

typedef struct series {
    double *v;     /* rows x cols */
    size_t rows, cap;
    int cols;
} series;

struct dsd_train_log {
    char *dir;
    FILE *steps, *vals;
    series st, va;
};

static dsd_status series_add(series *s, const double *row, dsd_error *err)
{
    if (s->rows == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        double *v = realloc(s->v, cap * (size_t)s->cols * sizeof *v);
        if (!v)
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "training log of %zu rows", cap);
        s->v = v;
        s->cap = cap;
    }
    memcpy(s->v + s->rows * (size_t)s->cols, row, (size_t)s->cols * sizeof *row);
    s->rows++;
    return DSD_OK;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* path opened for reading, or NULL with *st DSD_OK when it does not exist.
 * Only a regular file: O_NONBLOCK, so that a FIFO named like the log is
 * refused instead of waited on forever. */
static FILE *open_existing(const char *path, dsd_status *st, dsd_error *err)
{
    *st = DSD_OK;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            *st = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    int flags = fcntl(fd, F_GETFL);
    FILE *f = NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        *st = DSD_FAIL(err, DSD_ERR_IO, "%s: not a regular file; move it out of the run folder",
                       path);
    else if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
             !(f = fdopen(fd, "r")))
        *st = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!f)
        close(fd);
    return f;
}

/* Reads the numeric rows of an existing CSV (header skipped) with step <
 * first_step into s, then rewrites the file with exactly those rows (so a
 * resumed run's rows follow its checkpoint) and leaves it open for append. */
static dsd_status reopen(const char *dir, const char *name, const char *header, int cols,
                         uint64_t first_step, series *s, FILE **out, dsd_error *err)
{
    s->cols = cols;
    char *path = path_in(dir, name);
    if (!path)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "log path");
    dsd_status opened;
    FILE *in = open_existing(path, &opened, err);
    if (opened != DSD_OK) {
        free(path);
        return opened;
    }
    if (in) {
        char line[1024];
        while (fgets(line, sizeof line, in)) {
            double row[16];
            char *p = line, *end;
            int k = 0;
            for (; k < cols; k++) {
                row[k] = strtod(p, &end);
                if (end == p)
                    break;
                p = *end == ',' ? end + 1 : end;
            }
            if (k == cols && row[0] < (double)first_step) {
                dsd_status st = series_add(s, row, err);
                if (st != DSD_OK) {
                    fclose(in);
                    free(path);
                    return st;
                }
            }
        }
        fclose(in);
    }
    /* rewrite what is kept, atomically, then append to it */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) {
        free(path);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "log buffer");
    }
    fprintf(mem, "%s\n", header);
    for (size_t r = 0; r < s->rows; r++)
        for (int c = 0; c < cols; c++)
            fprintf(mem, "%.9g%s", s->v[r * (size_t)cols + c], c + 1 < cols ? "," : "\n");
    fclose(mem);
    const void *parts[] = {text};
    size_t sizes[] = {len};
    dsd_status st = dsd_write_file_atomic(path, parts, sizes, 1, err);
    free(text);
    if (st == DSD_OK) {
        *out = fopen(path, "a");
        if (!*out)
            st = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
    }
    free(path);
    return st;
}

dsd_status dsd_train_log_open(dsd_train_log **out, const char *dir, uint64_t first_step,
                              dsd_error *err)
{
    *out = NULL;
    dsd_train_log *l = calloc(1, sizeof *l);
    if (!l)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "training log");
    size_t n = strlen(dir) + 1;
    l->dir = malloc(n);
    dsd_status st = l->dir ? DSD_OK : DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "training log");
    if (st == DSD_OK) {
        memcpy(l->dir, dir, n);
        st = reopen(dir, "log.csv", "step,epoch,lr,loss_d,loss_g_adv,loss_content,loss_g,seconds",
                    STEP_COLS, first_step, &l->st, &l->steps, err);
    }
    if (st == DSD_OK)
        st = reopen(dir, "val.csv", "step,epoch,psnr,ssim,images,seconds", VAL_COLS, first_step,
                    &l->va, &l->vals, err);
    if (st != DSD_OK) {
        dsd_train_log_close(l);
        return st;
    }
    *out = l;
    return DSD_OK;
}

void dsd_train_log_close(dsd_train_log *l)
{
    if (!l)
        return;
    if (l->steps)
        fclose(l->steps);
    if (l->vals)
        fclose(l->vals);
    free(l->st.v);
    free(l->va.v);
    free(l->dir);
    free(l);
}

static dsd_status append(dsd_train_log *l, FILE *f, series *s, const double *row,
                         const char *name, dsd_error *err)
{
    DSD_TRY(series_add(s, row, err));
    for (int c = 0; c < s->cols; c++)
        fprintf(f, "%.9g%s", row[c], c + 1 < s->cols ? "," : "\n");
    if (fflush(f) != 0 || ferror(f))
        return DSD_FAIL(err, DSD_ERR_IO, "%s/%s: write failed: %s", l->dir, name,
                        strerror(errno));
    return DSD_OK;
}

dsd_status dsd_train_log_step(dsd_train_log *l, const dsd_step_stats *s, double seconds,
                              dsd_error *err)
{
    double row[STEP_COLS] = {(double)s->step, s->epoch,      s->lr,     s->loss_d,
                             s->loss_g_adv,   s->loss_content, s->loss_g, seconds};
    return append(l, l->steps, &l->st, row, "log.csv", err);
}

dsd_status dsd_train_log_val(dsd_train_log *l, uint64_t step, int epoch, const dsd_val_stats *v,
                             dsd_error *err)
{
    double row[VAL_COLS] = {(double)step, epoch, v->psnr, v->ssim, v->images, v->seconds};
    return append(l, l->vals, &l->va, row, "val.csv", err);
}

/* ------------------------------------------------------------------------ */
/* The plot */

typedef struct panel {
    double x0, y0, w, h;       /* in SVG pixels */
    double xmin, xmax, ymin, ymax;
} panel;

static double px(const panel *p, double x)
{
    return p->x0 + (p->xmax > p->xmin ? (x - p->xmin) / (p->xmax - p->xmin) : 0.5) * p->w;
}

static double py(const panel *p, double y)
{
    return p->y0 + p->h - (p->ymax > p->ymin ? (y - p->ymin) / (p->ymax - p->ymin) : 0.5) * p->h;
}

static void frame(FILE *f, const panel *p, const char *title, const char *ylabel)
{
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#888'/>\n",
            p->x0, p->y0, p->w, p->h);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='14' font-weight='bold'>%s</text>\n", p->x0,
            p->y0 - 8, title);
    for (int i = 0; i <= 4; i++) {
        double y = p->ymin + (p->ymax - p->ymin) * i / 4.0;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%.4g</text>\n",
                p->x0 - 4, py(p, y) + 4, y);
        double x = p->xmin + (p->xmax - p->xmin) * i / 4.0;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%.0f</text>\n",
                px(p, x), p->y0 + p->h + 14, x);
    }
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>step</text>\n",
            p->x0 + p->w / 2, p->y0 + p->h + 28);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' transform='rotate(-90 %.1f %.1f)' "
            "text-anchor='middle'>%s</text>\n", p->x0 - 48, p->y0 + p->h / 2, p->x0 - 48,
            p->y0 + p->h / 2, ylabel);
}

/* Column col of s smoothed by a trailing moving average of `window` rows
 * (malloc'd, s->rows values; NULL when out of memory or empty). */
static double *smooth(const series *s, int col, size_t window)
{
    double *v = s->rows ? malloc(s->rows * sizeof *v) : NULL;
    if (!v)
        return NULL;
    double sum = 0;
    for (size_t r = 0; r < s->rows; r++) {
        sum += s->v[r * (size_t)s->cols + (size_t)col];
        if (r >= window)
            sum -= s->v[(r - window) * (size_t)s->cols + (size_t)col];
        v[r] = sum / (double)(r + 1 < window ? r + 1 : window);
    }
    return v;
}

/* The finite range of v[0..n) into [*lo, *hi] (widened when they are set). */
static void widen(const double *v, size_t n, double *lo, double *hi)
{
    for (size_t r = 0; v && r < n; r++)
        if (isfinite(v[r])) {
            *lo = fmin(*lo, v[r]);
            *hi = fmax(*hi, v[r]);
        }
}

static void fix_range(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi <= *lo)
        *hi = *lo + 1;
}

/* v (one value per row of s, x from column 0) as a polyline. */
static void polyline(FILE *f, const panel *p, const series *s, const double *v,
                     const char *colour)
{
    if (!v || s->rows == 0)
        return;
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", colour);
    size_t stride = s->rows > 2000 ? s->rows / 2000 : 1; /* at most ~2000 points */
    for (size_t r = 0; r < s->rows; r++)
        if (r % stride == 0 || r + 1 == s->rows)
            fprintf(f, "%.1f,%.1f ", px(p, s->v[r * (size_t)s->cols]), py(p, v[r]));
    fprintf(f, "'/>\n");
}

dsd_status dsd_train_log_plot(dsd_train_log *l, dsd_error *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "plot buffer");
    const double W = 900, H = 620;
    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' "
            "width='%.0f' height='%.0f' font-family='sans-serif'>\n<rect width='100%%' "
            "height='100%%' fill='white'/>\n", W, H);
    size_t window = l->st.rows / 50 + 1; /* ~2% of the run */
    double xmax = l->st.rows ? l->st.v[(l->st.rows - 1) * STEP_COLS] : 1;
    if (l->va.rows)
        xmax = fmax(xmax, l->va.v[(l->va.rows - 1) * VAL_COLS]);
    /* the axes span the smoothed curves, so noise does not squash them */
    double *ld = smooth(&l->st, 3, window), *lg = smooth(&l->st, 4, window),
           *lc = smooth(&l->st, 5, window), *vp = smooth(&l->va, 2, 1);
    panel a = {.x0 = 80, .y0 = 40, .w = 560, .h = 220,
               .xmin = 0, .xmax = xmax, .ymin = INFINITY, .ymax = -INFINITY};
    widen(ld, l->st.rows, &a.ymin, &a.ymax);
    widen(lg, l->st.rows, &a.ymin, &a.ymax);
    fix_range(&a.ymin, &a.ymax);
    frame(f, &a, "adversarial losses (moving average)", "loss");
    /* a run that never left its warm-up logs zeros for both: say so instead */
    int adversarial = 0;
    for (size_t r = 0; r < l->st.rows && !adversarial; r++)
        adversarial = l->st.v[r * STEP_COLS + 3] != 0 || l->st.v[r * STEP_COLS + 4] != 0;
    if (adversarial) {
        polyline(f, &a, &l->st, ld, "#d62728");
        polyline(f, &a, &l->st, lg, "#1f77b4");
        fprintf(f, "<text x='660' y='70' font-size='12' fill='#d62728'>L_D (discriminator)</text>"
                "\n<text x='660' y='88' font-size='12' fill='#1f77b4'>L_G adversarial</text>\n");
    } else {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle' fill='#555'>"
                "no adversarial term yet: content loss only (train.warmup_steps)</text>\n",
                a.x0 + a.w / 2, a.y0 + a.h / 2);
    }
    panel b = {.x0 = 80, .y0 = 340, .w = 560, .h = 220,
               .xmin = 0, .xmax = xmax, .ymin = INFINITY, .ymax = -INFINITY};
    widen(lc, l->st.rows, &b.ymin, &b.ymax);
    fix_range(&b.ymin, &b.ymax);
    frame(f, &b, "content loss (moving average)", "content");
    polyline(f, &b, &l->st, lc, "#2ca02c");
    /* validation PSNR on its own axis, over the content panel */
    if (l->va.rows) {
        panel c = b;
        c.ymin = INFINITY;
        c.ymax = -INFINITY;
        widen(vp, l->va.rows, &c.ymin, &c.ymax);
        fix_range(&c.ymin, &c.ymax);
        polyline(f, &c, &l->va, vp, "#9467bd");
        for (size_t r = 0; r < l->va.rows; r++)
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='#9467bd'/>\n",
                    px(&c, l->va.v[r * VAL_COLS]), py(&c, l->va.v[r * VAL_COLS + 2]));
        fprintf(f, "<text x='660' y='370' font-size='12' fill='#9467bd'>validation PSNR "
                "%.4g .. %.4g dB</text>\n<text x='660' y='388' font-size='12' fill='#9467bd'>"
                "last %.4g dB, SSIM %.4g</text>\n", c.ymin, c.ymax,
                l->va.v[(l->va.rows - 1) * VAL_COLS + 2], l->va.v[(l->va.rows - 1) * VAL_COLS + 3]);
    }
    free(ld);
    free(lg);
    free(lc);
    free(vp);
    fprintf(f, "<text x='660' y='352' font-size='12' fill='#2ca02c'>content loss</text>\n"
            "<text x='80' y='600' font-size='11' fill='#555'>%zu steps logged, %zu "
            "validations</text>\n</svg>\n", l->st.rows, l->va.rows);
    fclose(f);
    char *path = path_in(l->dir, "plot.svg");
    dsd_status st;
    if (!path) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "plot path");
    } else {
        const void *parts[] = {text};
        size_t sizes[] = {len};
        st = dsd_write_file_atomic(path, parts, sizes, 1, err);
    }
    free(path);
    free(text);
    return st;
}
