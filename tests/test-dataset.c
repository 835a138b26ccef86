/*
 * test-dataset.c: the training data layouts and batches (src/train/dataset.c)
 * and the loader thread (src/train/loader.c), on small images this test
 * writes into a temporary folder. Host only.
 *
 * Checked: gopro, paired and synthetic scans (sorted, unpaired files counted
 * and named, empty folders refused); crops at the same place in both images
 * of a pair (the blurred file is the sharp one inverted, so every crop can be
 * checked pixel by pixel against its partner), flips, every epoch visiting
 * every sample once; batches that depend only on (seed, step) (made in any
 * order, by the thread or directly); bad samples (corrupt, mismatched sizes,
 * too small) skipped with their reason, and too many stop the run.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char root[64];

/* A w x h image whose pixels encode (id, x, y); inverted when invert. */
static void write_image(const char *path, int w, int h, int id, int invert)
{
    dsd_error err;
    dsd_image img;
    dsd_image_init(&img);
    TU_HOST_OK(dsd_image_alloc(&img, w, h, &err), err);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.data + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 3 + id);
            p[1] = (uint8_t)(y * 5 + id * 7);
            p[2] = (uint8_t)(id * 40);
            if (invert)
                for (int c = 0; c < 3; c++)
                    p[c] = (uint8_t)(255 - p[c]);
        }
    TU_HOST_OK(dsd_image_save(path, &img, &err), err);
    dsd_image_free(&img);
}

/* <root>/<dir>/blur/<name> (inverted) and <root>/<dir>/sharp/<name>: one
 * w x h image id, so every crop can be checked against its partner. */
static void write_pair(const char *dir, const char *name, int w, int h, int id)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/blur/%s", dir, name);
    write_image(tu_path(root, rel), w, h, id, 1);
    snprintf(rel, sizeof rel, "%s/sharp/%s", dir, name);
    write_image(tu_path(root, rel), w, h, id, 0);
}

/* gopro/<seq>/{blur,sharp}, paired/{blur,sharp}, synthetic/ */
static void make_tree(void)
{
    const char *dirs[] = {"gopro/seqB/blur", "gopro/seqB/sharp", "gopro/seqA/blur",
                          "gopro/seqA/sharp", "gopro/notes", "paired/blur", "paired/sharp",
                          "synthetic", "empty"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        tu_mkdir_p(tu_path(root, dirs[i]));
    char name[32], rel[256];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%06d.png", i);
        write_pair("gopro/seqA", name, 40, 36, 10 + i);
        write_pair("gopro/seqB", name, 33, 45, 20 + i);
    }
    write_image(tu_path(root, "gopro/seqB/blur/orphan.png"), 33, 45, 1, 1); /* no sharp partner */
    tu_write_file(tu_path(root, "gopro/seqA/blur/readme.txt"), "x", 1); /* not an image: ignored */
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "img%d.png", i);
        write_pair("paired", name, 30, 30, 50 + i);
        snprintf(rel, sizeof rel, "synthetic/s%d.png", i);
        write_image(tu_path(root, rel), 29 + i, 31, 60 + i, 0);
    }
}

START_TEST(test_scans)
{
    dsd_error err;
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_GOPRO, tu_path(root, "gopro"), NULL, &err), err);
    ck_assert_uint_eq(ds.count, 6);
    ck_assert_uint_eq(ds.unpaired, 1);
    ck_assert(strstr(ds.unpaired_example, "orphan.png") != NULL);
    ck_assert(strstr(ds.samples[0].blur, "seqA/blur/000000.png") != NULL);
    ck_assert(strstr(ds.samples[0].sharp, "seqA/sharp/000000.png") != NULL);
    ck_assert(strstr(ds.samples[5].sharp, "seqB/sharp/000002.png") != NULL);
    dsd_dataset_free(&ds);

    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_PAIRED, tu_path(root, "paired/blur"),
                                tu_path(root, "paired/sharp"), &err),
               err);
    ck_assert_uint_eq(ds.count, 5);
    dsd_dataset_free(&ds);

    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_SYNTHETIC, tu_path(root, "synthetic"), NULL, &err),
               err);
    ck_assert_uint_eq(ds.count, 5);
    ck_assert(ds.samples[2].blur == NULL);
    dsd_dataset_free(&ds);

    ck_assert_int_eq(dsd_dataset_open(&ds, DSD_DATA_SYNTHETIC, tu_path(root, "empty"), NULL, &err),
                     DSD_ERR_FORMAT);
    ck_assert(strstr(err.message, "no training samples found") != NULL);
    ck_assert_int_eq(dsd_dataset_open(&ds, DSD_DATA_GOPRO, tu_path(root, "missing"), NULL, &err),
                     DSD_ERR_IO);
    ck_assert(strstr(err.message, "missing: cannot read the folder") != NULL);
}
END_TEST

/* Every crop of a pair lines up: blur == 255 - sharp, pixel for pixel, in
 * [-1, 1] units blur == -sharp. Every epoch visits every sample once. */
START_TEST(test_batches_pair_up_and_cover)
{
    dsd_error err;
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_GOPRO, tu_path(root, "gopro"), NULL, &err), err);
    dsd_batch_spec spec = {.n = 2, .crop = 16, .flip = 1, .seed = 5, .max_bad = 0};
    dsd_batcher b;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &spec, &err), err);
    size_t spe = dsd_batch_steps_per_epoch(&ds, &spec);
    ck_assert_uint_eq(spe, 3);
    int flipped = 0, plain = 0;
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        int seen[6] = {0};
        for (uint64_t s = epoch * spe; s < (epoch + 1) * spe; s++) {
            dsd_batch bt;
            TU_HOST_OK(dsd_batcher_make(&b, s, &bt, &err), err);
            size_t per = 3 * 16 * 16;
            for (int i = 0; i < 2; i++) {
                seen[bt.index[i]]++;
                for (size_t j = 0; j < per; j++)
                    ck_assert_msg(fabsf(bt.blur[i * per + j] + bt.sharp[i * per + j]) < 1e-6f,
                                  "step %llu element %d: blur and sharp crops differ at %zu",
                                  (unsigned long long)s, i, j);
                /* the red channel grows with x (3 per pixel) unless flipped */
                float d = bt.sharp[i * per + 1] - bt.sharp[i * per + 0];
                if (d > 0)
                    plain++;
                else
                    flipped++;
            }
            ck_assert_int_eq(bt.bad, 0);
            dsd_batch_free(&bt);
        }
        for (int k = 0; k < 6; k++)
            ck_assert_msg(seen[k] == 1, "epoch %llu saw sample %d %d times",
                          (unsigned long long)epoch, k, seen[k]);
    }
    ck_assert_int_gt(flipped, 0);
    ck_assert_int_gt(plain, 0);
    dsd_batcher_free(&b);
    dsd_dataset_free(&ds);
}
END_TEST

static void check_same_batch(const dsd_batch *a, const dsd_batch *b);

/* data.crop_tries: on a flat image with one textured corner, the most
 * detailed of 16 random crops lands on the texture far more often than a
 * single random crop; 0 and 1 give the same batches; batches stay
 * reproducible. */
static double crop_variance(const float *x, size_t count)
{
    double mean = 0, var = 0;
    for (size_t j = 0; j < count; j++)
        mean += x[j] / (double)count;
    for (size_t j = 0; j < count; j++)
        var += (x[j] - mean) * (x[j] - mean) / (double)count;
    return var;
}

static double textured_share(const dsd_dataset *ds, int tries, int steps)
{
    dsd_error err;
    dsd_batch_spec spec = {.n = 1, .crop = 16, .flip = 0, .crop_tries = tries, .seed = 9,
                           .steps_per_epoch = 1};
    dsd_batcher b;
    TU_HOST_OK(dsd_batcher_init(&b, ds, &spec, &err), err);
    int textured = 0;
    for (int s = 0; s < steps; s++) {
        dsd_batch bt, again;
        TU_HOST_OK(dsd_batcher_make(&b, (uint64_t)s, &bt, &err), err);
        TU_HOST_OK(dsd_batcher_make(&b, (uint64_t)s, &again, &err), err);
        check_same_batch(&bt, &again);
        textured += crop_variance(bt.sharp, 3 * 16 * 16) > 1e-3;
        dsd_batch_free(&bt);
        dsd_batch_free(&again);
    }
    dsd_batcher_free(&b);
    return (double)textured / steps;
}

START_TEST(test_crop_tries)
{
    dsd_error err;
    tu_mkdir_p(tu_path(root, "detail"));
    dsd_image im;
    dsd_image_init(&im);
    const int w = 97, h = 71; /* texture in the 30 x 30 top-left corner only */
    TU_HOST_OK(dsd_image_alloc(&im, w, h, &err), err);
    uint64_t r = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                im.data[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(x < 30 && y < 30 ? 40 + (r >> 57) : 128);
            }
    TU_HOST_OK(dsd_image_save(tu_path(root, "detail/a.png"), &im, &err), err);
    dsd_image_free(&im);
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_SYNTHETIC, tu_path(root, "detail"), NULL, &err),
               err);
    enum { STEPS = 60 };
    double one = textured_share(&ds, 1, STEPS), zero = textured_share(&ds, 0, STEPS),
           best16 = textured_share(&ds, 16, STEPS);
    fprintf(stderr, "crops touching the texture: 1 try %.2f, 16 tries %.2f\n", one, best16);
    ck_assert(one == zero);
    ck_assert_msg(one < 0.5, "%.2f of single crops touch the texture", one);
    ck_assert_msg(best16 > 0.9, "%.2f of best-of-16 crops touch the texture", best16);
    dsd_dataset_free(&ds);
}
END_TEST

static void check_same_batch(const dsd_batch *a, const dsd_batch *b)
{
    size_t per = (size_t)a->n * 3 * a->crop * a->crop;
    ck_assert_uint_eq(a->step, b->step);
    ck_assert(memcmp(a->index, b->index, (size_t)a->n * sizeof *a->index) == 0);
    ck_assert(memcmp(a->sharp, b->sharp, per * sizeof(float)) == 0);
    ck_assert((a->blur == NULL) == (b->blur == NULL));
    if (a->blur)
        ck_assert(memcmp(a->blur, b->blur, per * sizeof(float)) == 0);
}

/* Batches depend on (seed, step) only: the thread from step 4 and a
 * batcher asked for steps in reverse order give identical batches, and
 * another seed gives other crops. */
START_TEST(test_reproducible_and_loader)
{
    dsd_error err;
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_SYNTHETIC, tu_path(root, "synthetic"), NULL, &err),
               err);
    dsd_batch_spec spec = {.n = 3, .crop = 12, .flip = 1, .seed = 77, .max_bad = 0};
    enum { STEPS = 7, FIRST = 4 };
    dsd_batch direct[STEPS];
    dsd_batcher b;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &spec, &err), err);
    for (int s = STEPS - 1; s >= 0; s--)
        TU_HOST_OK(dsd_batcher_make(&b, FIRST + (uint64_t)s, &direct[s], &err), err);
    dsd_batcher_free(&b);

    dsd_loader *l;
    TU_HOST_OK(dsd_loader_start(&l, &ds, &spec, FIRST, 2, &err), err);
    for (int s = 0; s < STEPS; s++) {
        dsd_batch t;
        TU_HOST_OK(dsd_loader_next(l, &t, &err), err);
        check_same_batch(&direct[s], &t);
        dsd_batch_free(&t);
    }
    dsd_loader_stop(l);

    dsd_batch_spec other = spec;
    other.seed = 78;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &other, &err), err);
    dsd_batch t;
    TU_HOST_OK(dsd_batcher_make(&b, FIRST, &t, &err), err);
    size_t per = (size_t)3 * 3 * 12 * 12;
    ck_assert_msg(memcmp(t.sharp, direct[0].sharp, per * sizeof(float)) != 0,
                  "another seed gave the same batch");
    dsd_batch_free(&t);
    dsd_batcher_free(&b);
    for (int s = 0; s < STEPS; s++)
        dsd_batch_free(&direct[s]);
    dsd_dataset_free(&ds);
}
END_TEST

/* Data-parallel shares (spec.first, spec.count): elements 1..2 of a batch of
 * 4, made alone, are elements 1..2 of the whole batch (sample, crop, flip);
 * a share outside the batch is refused. */
START_TEST(test_share_of_batch)
{
    dsd_error err;
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_SYNTHETIC, tu_path(root, "synthetic"), NULL, &err),
               err);
    dsd_batch_spec spec = {.n = 4, .crop = 12, .flip = 1, .seed = 77, .max_bad = 0};
    dsd_batch_spec share = spec;
    share.first = 1;
    share.count = 2;
    dsd_batcher whole, part;
    TU_HOST_OK(dsd_batcher_init(&whole, &ds, &spec, &err), err);
    TU_HOST_OK(dsd_batcher_init(&part, &ds, &share, &err), err);
    ck_assert_uint_eq(dsd_batch_steps_per_epoch(&ds, &share),
                      dsd_batch_steps_per_epoch(&ds, &spec));
    size_t per = (size_t)3 * 12 * 12;
    for (uint64_t step = 0; step < 6; step++) {
        dsd_batch a, b;
        TU_HOST_OK(dsd_batcher_make(&whole, step, &a, &err), err);
        TU_HOST_OK(dsd_batcher_make(&part, step, &b, &err), err);
        ck_assert_int_eq(b.n, 2);
        for (int i = 0; i < 2; i++) {
            ck_assert_uint_eq(b.index[i], a.index[1 + i]);
            ck_assert_msg(!memcmp(b.sharp + i * per, a.sharp + (1 + i) * per,
                                  per * sizeof(float)),
                          "step %llu: element %d of the share differs from element %d of the "
                          "batch", (unsigned long long)step, i, 1 + i);
        }
        dsd_batch_free(&a);
        dsd_batch_free(&b);
    }
    dsd_batcher_free(&whole);
    dsd_batcher_free(&part);
    share.first = 3;
    ck_assert_int_eq(dsd_batcher_init(&part, &ds, &share, &err), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(err.message, "elements 3 .. 4 of a batch of 4"), "%s", err.message);
    dsd_dataset_free(&ds);
}
END_TEST

START_TEST(test_bad_samples)
{
    dsd_error err;
    tu_mkdir_p(tu_path(root, "bad/blur"));
    tu_mkdir_p(tu_path(root, "bad/sharp"));
    write_pair("bad", "a.png", 30, 30, 1);
    write_image(tu_path(root, "bad/blur/b.png"), 30, 28, 2, 1); /* size mismatch */
    write_image(tu_path(root, "bad/sharp/b.png"), 30, 30, 2, 0);
    write_pair("bad", "c.png", 10, 10, 3); /* smaller than the crop */
    const char text[] = "this is not an image";
    tu_write_file(tu_path(root, "bad/blur/d.png"), text, sizeof text - 1); /* not a PNG */
    write_image(tu_path(root, "bad/sharp/d.png"), 30, 30, 4, 0);

    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_PAIRED, tu_path(root, "bad/blur"),
                                tu_path(root, "bad/sharp"), &err),
               err);
    ck_assert_uint_eq(ds.count, 4);
    dsd_batch_spec spec = {.n = 1, .crop = 16, .flip = 0, .seed = 3, .max_bad = 100};
    dsd_batcher b;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &spec, &err), err);
    int bad = 0, good = 0;
    const char *reasons[3] = {"is 30x28 but", "smaller than the 16x16 crop", "d.png"};
    int found[3] = {0};
    for (uint64_t s = 0; s < 8; s++) {
        dsd_batch t;
        TU_HOST_OK(dsd_batcher_make(&b, s, &t, &err), err);
        ck_assert_uint_eq(t.index[0], 0); /* only a.png is usable */
        good++;
        bad += t.bad;
        for (int r = 0; r < 3; r++)
            if (t.bad && strstr(t.bad_message, reasons[r]))
                found[r] = 1;
        dsd_batch_free(&t);
    }
    ck_assert_int_eq(good, 8);
    ck_assert_int_gt(bad, 0);
    for (int r = 0; r < 3; r++)
        ck_assert_msg(found[r], "no skip reported '%s'", reasons[r]);
    dsd_batcher_free(&b);

    /* with max_bad 1 the run stops, naming the reason */
    spec.max_bad = 1;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &spec, &err), err);
    dsd_status st = DSD_OK;
    for (uint64_t s = 0; s < 8 && st == DSD_OK; s++) {
        dsd_batch t;
        st = dsd_batcher_make(&b, s, &t, &err);
        if (st == DSD_OK)
            dsd_batch_free(&t);
    }
    ck_assert_int_eq(st, DSD_ERR_FORMAT);
    /* the count and the rule agree: stopped at the 2nd skip, which is more than 1 */
    ck_assert_msg(strstr(err.message, "2 bad training samples, more than data.max_bad (1); "
                                      "the last: ") == err.message,
                  "%s", err.message);
    dsd_batcher_free(&b);

    /* the loader hands the failure over, and keeps handing it over */
    dsd_loader *l;
    TU_HOST_OK(dsd_loader_start(&l, &ds, &spec, 0, 3, &err), err);
    st = DSD_OK;
    for (int s = 0; s < 10 && st == DSD_OK; s++) {
        dsd_batch t;
        st = dsd_loader_next(l, &t, &err);
        if (st == DSD_OK)
            dsd_batch_free(&t);
    }
    ck_assert_int_eq(st, DSD_ERR_FORMAT);
    dsd_batch t;
    ck_assert_int_eq(dsd_loader_next(l, &t, &err), DSD_ERR_FORMAT);
    dsd_loader_stop(l);
    dsd_dataset_free(&ds);
}
END_TEST

/* Every sample bad, but fewer than max_bad: the loader stops because nothing
 * is usable, and says so rather than "3 bad samples (more than 100)". */
START_TEST(test_no_usable_sample)
{
    dsd_error err;
    tu_mkdir_p(tu_path(root, "allbad/blur"));
    tu_mkdir_p(tu_path(root, "allbad/sharp"));
    write_pair("allbad", "a.png", 10, 10, 1); /* smaller than the crop */
    write_pair("allbad", "b.png", 12, 12, 2);
    write_pair("allbad", "c.png", 14, 14, 3);
    dsd_dataset ds;
    TU_HOST_OK(dsd_dataset_open(&ds, DSD_DATA_PAIRED, tu_path(root, "allbad/blur"),
                                tu_path(root, "allbad/sharp"), &err),
               err);
    dsd_batch_spec spec = {.n = 1, .crop = 16, .flip = 0, .seed = 3, .max_bad = 100};
    dsd_batcher b;
    TU_HOST_OK(dsd_batcher_init(&b, &ds, &spec, &err), err);
    dsd_batch t;
    ck_assert_int_eq(dsd_batcher_make(&b, 0, &t, &err), DSD_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "none of the 3 training samples can be used (each was "
                                      "skipped as bad); the last: ") == err.message &&
                      strstr(err.message, "smaller than the 16x16 crop"),
                  "%s", err.message);
    dsd_batcher_free(&b);
    dsd_dataset_free(&ds);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "data") != 0)
        return 1;
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_add_unchecked_fixture(tc, make_tree, NULL);
    tcase_add_test(tc, test_scans);
    tcase_add_test(tc, test_batches_pair_up_and_cover);
    tcase_add_test(tc, test_reproducible_and_loader);
    tcase_add_test(tc, test_share_of_batch);
    tcase_add_test(tc, test_bad_samples);
    tcase_add_test(tc, test_no_usable_sample);
    tcase_add_test(tc, test_crop_tries);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    return rc;
}
