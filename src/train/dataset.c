/*
 * dataset.c: scanning the training layouts and making batches on the host
 * (dsdeblur_data.h is the manual): folder listings, the per-epoch
 * permutation, random crops and flips, bad-sample skipping. The thread that
 * runs dsd_batch_make ahead of the device is src/train/loader.c; images are
 * decoded by src/io/image.c (stb_image). Tests: tests/test-dataset.c.
 *
 * Randomness is a stateless hash (splitmix64 of seed, step, element), not a
 * stream, so any batch can be made on its own, in any order, on any thread.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Hash-based randomness */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(a) ^ b) ^ c);
}

/* Uniform in [0, n) (n > 0) from a 64-bit hash, without modulo bias that
 * matters at these sizes (n < 2^32). */
static size_t below(uint64_t h, size_t n)
{
    return (size_t)(((h >> 32) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------------ */
/* Folder listings */

static int is_image_name(const char *name)
{
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga"};
    size_t n = strlen(name);
    if (name[0] == '.')
        return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(name + n - e, ext[i]))
            return 1;
    }
    return 0;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) + 1 : 0) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, c ? "%s/%s/%s" : "%s/%s", a, b, c);
    return s;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir accepted by keep (image files or subfolders). */
static dsd_status list_dir(const char *dir, int want_dirs, char ***out, size_t *count,
                           dsd_error *err)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    dsd_status st = DSD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (want_dirs) {
            char *p = join(dir, e->d_name, NULL);
            int ok = p && is_dir(p);
            free(p);
            if (!ok)
                continue;
        } else if (!is_image_name(e->d_name)) {
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **g = realloc(names, nc * sizeof *g);
            if (!g) {
                st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: listing the folder", dir);
                break;
            }
            names = g;
            cap = nc;
        }
        size_t len = strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n]) {
            st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: listing the folder", dir);
            break;
        }
        memcpy(names[n++], e->d_name, len);
    }
    closedir(d);
    if (st != DSD_OK) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return st;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    *out = names;
    *count = n;
    return DSD_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static dsd_status add_sample(dsd_dataset *ds, size_t *cap, char *blur, char *sharp,
                             dsd_error *err)
{
    if (ds->count == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        dsd_sample_files *g = realloc(ds->samples, nc * sizeof *g);
        if (!g) {
            free(blur);
            free(sharp);
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "dataset of %zu samples", nc);
        }
        ds->samples = g;
        *cap = nc;
    }
    ds->samples[ds->count].blur = blur;
    ds->samples[ds->count].sharp = sharp;
    ds->count++;
    return DSD_OK;
}

/* Pairs blur_dir/<name> with sharp_dir/<name> for every image in blur_dir. */
static dsd_status scan_pairs(dsd_dataset *ds, size_t *cap, const char *blur_dir,
                             const char *sharp_dir, dsd_error *err)
{
    char **names;
    size_t n;
    DSD_TRY(list_dir(blur_dir, 0, &names, &n, err));
    dsd_status st = DSD_OK;
    for (size_t i = 0; i < n && st == DSD_OK; i++) {
        char *b = join(blur_dir, names[i], NULL), *s = join(sharp_dir, names[i], NULL);
        if (!b || !s) {
            free(b);
            free(s);
            st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: listing", blur_dir);
            break;
        }
        if (!is_file(s)) {
            if (ds->unpaired++ == 0)
                snprintf(ds->unpaired_example, sizeof ds->unpaired_example,
                         "%s has no partner %s", b, s);
            free(b);
            free(s);
            continue;
        }
        st = add_sample(ds, cap, b, s, err);
    }
    free_names(names, n);
    return st;
}

dsd_status dsd_dataset_open(dsd_dataset *ds, dsd_data_mode mode, const char *root_or_blur,
                            const char *sharp_dir, dsd_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->mode = mode;
    size_t cap = 0;
    dsd_status st = DSD_OK;
    const char *what = "";
    if (!root_or_blur || !*root_or_blur)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "no data folder given");
    switch (mode) {
    case DSD_DATA_GOPRO: {
        char **seqs;
        size_t n;
        DSD_TRY(list_dir(root_or_blur, 1, &seqs, &n, err));
        for (size_t i = 0; i < n && st == DSD_OK; i++) {
            char *b = join(root_or_blur, seqs[i], "blur"), *s = join(root_or_blur, seqs[i], "sharp");
            if (!b || !s)
                st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: listing", root_or_blur);
            else if (is_dir(b) && is_dir(s))
                st = scan_pairs(ds, &cap, b, s, err);
            free(b);
            free(s);
        }
        free_names(seqs, n);
        what = "<sequence>/blur/<image> with <sequence>/sharp/<image>";
        break;
    }
    case DSD_DATA_PAIRED:
        if (!sharp_dir || !*sharp_dir)
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "paired data needs a sharp folder");
        st = scan_pairs(ds, &cap, root_or_blur, sharp_dir, err);
        what = "images with the same names in both folders";
        break;
    case DSD_DATA_SYNTHETIC: {
        char **names;
        size_t n;
        DSD_TRY(list_dir(root_or_blur, 0, &names, &n, err));
        for (size_t i = 0; i < n && st == DSD_OK; i++) {
            char *s = join(root_or_blur, names[i], NULL);
            st = s ? add_sample(ds, &cap, NULL, s, err)
                   : DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: listing", root_or_blur);
        }
        free_names(names, n);
        what = "image files (.png, .jpg, .jpeg, .bmp, .tga)";
        break;
    }
    default:
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "unknown data mode %d", (int)mode);
    }
    if (st == DSD_OK && ds->count == 0)
        st = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: no training samples found (looked for %s)%s%s",
                      root_or_blur, what, ds->unpaired ? "; " : "", ds->unpaired_example);
    if (st != DSD_OK)
        dsd_dataset_free(ds);
    return st;
}

void dsd_dataset_free(dsd_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->count; i++) {
        free(ds->samples[i].blur);
        free(ds->samples[i].sharp);
    }
    free(ds->samples);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------------ */
/* Batches */

size_t dsd_batch_steps_per_epoch(const dsd_dataset *ds, const dsd_batch_spec *spec)
{
    if (spec->steps_per_epoch)
        return spec->steps_per_epoch;
    size_t n = spec->n > 0 ? (size_t)spec->n : 1;
    size_t s = (ds->count + n - 1) / n;
    return s ? s : 1;
}

void dsd_batch_free(dsd_batch *b)
{
    if (!b)
        return;
    free(b->blur);
    free(b->sharp);
    free(b->index);
    memset(b, 0, sizeof *b);
}

dsd_status dsd_batcher_init(dsd_batcher *b, const dsd_dataset *ds, const dsd_batch_spec *spec,
                            dsd_error *err)
{
    memset(b, 0, sizeof *b);
    if (!ds || ds->count == 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "batcher: empty dataset");
    if (spec->n < 1 || spec->crop < 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "batcher: batch %d, crop %d", spec->n,
                        spec->crop);
    if (spec->first < 0 || spec->count < 0 || spec->first + spec->count > spec->n ||
        (spec->count == 0 && spec->first != 0))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "batcher: elements %d .. %d of a batch "
                        "of %d", spec->first, spec->first + spec->count - 1, spec->n);
    b->perm = malloc(ds->count * sizeof *b->perm);
    if (!b->perm)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "batcher: order of %zu samples", ds->count);
    b->ds = ds;
    b->spec = *spec;
    b->epoch = UINT64_MAX;
    return DSD_OK;
}

void dsd_batcher_free(dsd_batcher *b)
{
    if (!b)
        return;
    free(b->perm);
    memset(b, 0, sizeof *b);
}

/* perm = the epoch's Fisher-Yates shuffle of 0 .. count-1, each swap drawn
 * from hash(seed, epoch, i). */
static void shuffle(dsd_batcher *b, uint64_t epoch)
{
    size_t n = b->ds->count;
    for (size_t i = 0; i < n; i++)
        b->perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = below(hash3(b->spec.seed, epoch, i), i + 1);
        size_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
    b->epoch = epoch;
}

/* Position (*x, *y) of random crop number `attempt` of batch element i of
 * step (attempt 0: the plain random crop); returns the hash it came from. */
static uint64_t crop_position(const dsd_batcher *b, uint64_t step, int i, int attempt,
                              const dsd_image *im, int *x, int *y)
{
    uint64_t h = hash3(b->spec.seed ^ 0xc409 ^ ((uint64_t)attempt << 40), step, (uint64_t)i);
    *x = (int)below(h, (size_t)(im->width - b->spec.crop + 1));
    *y = (int)below(mix64(h), (size_t)(im->height - b->spec.crop + 1));
    return h;
}

/* Detail of the crop side x side at (x, y): the mean absolute difference
 * of horizontally and vertically adjacent green values, on every other row
 * and column (enough to tell texture from sky at a fraction of the cost). */
static double crop_detail(const dsd_image *im, int x, int y, int side)
{
    uint64_t sum = 0, count = 0;
    size_t stride = (size_t)im->width * 3;
    for (int r = y; r + 1 < y + side; r += 2) {
        const uint8_t *row = im->data + (size_t)r * stride + 1, *below_row = row + stride;
        for (int c = x; c + 1 < x + side; c += 2) {
            int g = row[(size_t)c * 3];
            sum += (uint64_t)abs(row[(size_t)(c + 1) * 3] - g) +
                   (uint64_t)abs(below_row[(size_t)c * 3] - g);
            count += 2;
        }
    }
    return count ? (double)sum / (double)count : 0.0;
}

/* Loads sample k and writes its crop for batch element i of step into
 * dst_blur/dst_sharp (planar). DSD_ERR_FORMAT/IO for a bad sample. */
static dsd_status load_crop(const dsd_batcher *b, size_t k, uint64_t step, int i,
                            float *dst_blur, float *dst_sharp, dsd_error *err)
{
    const dsd_sample_files *f = &b->ds->samples[k];
    int crop = b->spec.crop;
    dsd_image sharp, blur, cs, cb;
    dsd_image_init(&sharp);
    dsd_image_init(&blur);
    dsd_image_init(&cs);
    dsd_image_init(&cb);
    dsd_status st = dsd_image_load(f->sharp, &sharp, err);
    if (st == DSD_OK && f->blur)
        st = dsd_image_load(f->blur, &blur, err);
    if (st == DSD_OK && f->blur && (blur.width != sharp.width || blur.height != sharp.height))
        st = DSD_FAIL(err, DSD_ERR_FORMAT, "%s is %dx%d but %s is %dx%d", f->blur, blur.width,
                      blur.height, f->sharp, sharp.width, sharp.height);
    if (st == DSD_OK && (sharp.width < crop || sharp.height < crop))
        st = DSD_FAIL(err, DSD_ERR_FORMAT, "%s is %dx%d, smaller than the %dx%d crop", f->sharp,
                      sharp.width, sharp.height, crop, crop);
    if (st == DSD_OK) {
        int x, y;
        uint64_t h = crop_position(b, step, i, 0, &sharp, &x, &y);
        int flip = b->spec.flip && (mix64(h ^ 0xf11b) & 1);
        /* crop_tries > 1: the most detailed of that many positions (the first
         * is the one above, so 1 changes nothing) */
        double best = b->spec.crop_tries > 1 ? crop_detail(&sharp, x, y, crop) : 0.0;
        for (int t = 1; t < b->spec.crop_tries; t++) {
            int xt, yt;
            crop_position(b, step, i, t, &sharp, &xt, &yt);
            double d = crop_detail(&sharp, xt, yt, crop);
            if (d > best) {
                best = d;
                x = xt;
                y = yt;
            }
        }
        st = dsd_image_crop(&sharp, x, y, crop, crop, &cs, err);
        if (st == DSD_OK && f->blur)
            st = dsd_image_crop(&blur, x, y, crop, crop, &cb, err);
        if (st == DSD_OK) {
            dsd_image_to_planar(&cs, dst_sharp);
            if (f->blur)
                dsd_image_to_planar(&cb, dst_blur);
            if (flip) {
                size_t plane = (size_t)crop * crop;
                for (int c = 0; c < 3; c++)
                    for (int r = 0; r < crop; r++) {
                        float *rows[2] = {dst_sharp + c * plane + (size_t)r * crop,
                                          f->blur ? dst_blur + c * plane + (size_t)r * crop
                                                  : NULL};
                        for (int t = 0; t < 2 && rows[t]; t++)
                            for (int a = 0, z = crop - 1; a < z; a++, z--) {
                                float v = rows[t][a];
                                rows[t][a] = rows[t][z];
                                rows[t][z] = v;
                            }
                    }
            }
        }
    }
    dsd_image_free(&sharp);
    dsd_image_free(&blur);
    dsd_image_free(&cs);
    dsd_image_free(&cb);
    return st;
}

dsd_status dsd_batcher_make(dsd_batcher *b, uint64_t step, dsd_batch *out, dsd_error *err)
{
    memset(out, 0, sizeof *out);
    const dsd_dataset *ds = b->ds;
    int n = b->spec.count ? b->spec.count : b->spec.n, crop = b->spec.crop;
    int first = b->spec.first;
    size_t spe = dsd_batch_steps_per_epoch(ds, &b->spec);
    uint64_t epoch = step / spe;
    if (epoch != b->epoch)
        shuffle(b, epoch);
    size_t per = (size_t)3 * crop * crop;
    out->step = step;
    out->n = n;
    out->crop = crop;
    out->sharp = malloc((size_t)n * per * sizeof(float));
    out->blur = ds->mode == DSD_DATA_SYNTHETIC ? NULL : malloc((size_t)n * per * sizeof(float));
    out->index = malloc((size_t)n * sizeof *out->index);
    if (!out->sharp || !out->index || (ds->mode != DSD_DATA_SYNTHETIC && !out->blur)) {
        dsd_batch_free(out);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "batch of %d %dx%d crops", n, crop, crop);
    }
    for (int i = 0; i < n; i++) {
        /* element i of this share is element first + i of the whole batch */
        size_t pos = ((step % spe) * (size_t)b->spec.n + (size_t)(first + i)) % ds->count;
        for (size_t tries = 0;; tries++) {
            size_t k = b->perm[(pos + tries) % ds->count];
            dsd_error why;
            dsd_status st = load_crop(b, k, step, first + i,
                                      out->blur ? out->blur + i * per : NULL,
                                      out->sharp + i * per, &why);
            if (st == DSD_OK) {
                out->index[i] = k;
                break;
            }
            if (st == DSD_ERR_OUT_OF_MEMORY) {
                *err = why;
                dsd_batch_free(out);
                return st;
            }
            /* every skip's reason, one per line, for the tool to warn about */
            size_t used = strlen(out->bad_message);
            snprintf(out->bad_message + used, sizeof out->bad_message - used, "%s%s",
                     out->bad++ ? "\n" : "", why.message);
            /* two reasons to stop, each said as it is: too many skips in
             * the run, or every sample tried for this place was bad */
            dsd_status fail = DSD_OK;
            if (++b->bad_total > b->spec.max_bad)
                fail = DSD_FAIL(err, DSD_ERR_FORMAT, "%d bad training samples, more than "
                                "data.max_bad (%d); the last: %s", b->bad_total,
                                b->spec.max_bad, why.message);
            else if (tries + 1 >= ds->count)
                fail = DSD_FAIL(err, DSD_ERR_FORMAT, "none of the %zu training samples can be "
                                "used (each was skipped as bad); the last: %s", ds->count,
                                why.message);
            if (fail != DSD_OK) {
                dsd_batch_free(out);
                return fail;
            }
        }
    }
    return DSD_OK;
}
