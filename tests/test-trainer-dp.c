/*
 * test-trainer-dp.c: data-parallel training in the library, without MPI
 * (dsd_trainer_init_comm, doc/distributed.md). Two replicas run in two
 * threads of this process, each with its own OpenCL context, joined by a
 * dsd_comm whose sum adds the replicas' vectors in rank order (the same
 * arithmetic as the MPI one in tools/train_comm.c). Checked, on the tiny
 * configuration of tests/test-trainer.c with dropout on, paired and synthetic
 * (device blur with noise), at the paper's lr 1e-4, after STEPS steps:
 *   - 2 replicas x batch 1 hold the weights of 1 trainer x batch 2 to 1e-5
 *     relative (norm of the difference over the norm, per network, leaving
 *     out the weights no loss depends on: inert_mask) and any single weight to
 *     1e-3, and report the same losses to 1e-5;
 *   - the replicas hold bit-identical weights; two 2-replica runs are
 *     bit-identical; an invalid replica is refused.
 * Tried while writing this: with the RaGAN batch means local to each replica
 * the weights differ by 2e-4 (G) and 1e-3 (D); with the dropout masks keyed
 * by the replica's own element index, by far more. tests/test-mpi.c runs the
 * same split through mpirun when built --with-mpi.
 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char root[64];

enum { STEPS = 10, REPLICAS = 2 };

/* A 40 x 36 sharp image with edges and a 5 x 1 box blur of it. */
static void make_pair(const char *blur_path, const char *sharp_path, int id)
{
    dsd_error err;
    dsd_image s, b;
    dsd_image_init(&s);
    dsd_image_init(&b);
    const int w = 40, h = 36;
    TU_HOST_OK(dsd_image_alloc(&s, w, h, &err), err);
    TU_HOST_OK(dsd_image_alloc(&b, w, h, &err), err);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = ((x / 6 + y / 5 + id) % 2) ? 200 : 40;
                v += (c * 30 + x * 2 + id * 17) % 50;
                s.data[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0;
                for (int d = -2; d <= 2; d++) {
                    int xx = x + d < 0 ? 0 : x + d >= w ? w - 1 : x + d;
                    sum += s.data[((size_t)y * w + xx) * 3 + c];
                }
                b.data[((size_t)y * w + x) * 3 + c] = (uint8_t)(sum / 5);
            }
    TU_HOST_OK(dsd_image_save(sharp_path, &s, &err), err);
    TU_HOST_OK(dsd_image_save(blur_path, &b, &err), err);
    dsd_image_free(&s);
    dsd_image_free(&b);
}

static void setup(void)
{
    tu_mkdir_p(tu_path(root, "blur"));
    tu_mkdir_p(tu_path(root, "sharp"));
    make_pair(tu_path(root, "blur/a.png"), tu_path(root, "sharp/a.png"), 0);
    make_pair(tu_path(root, "blur/b.png"), tu_path(root, "sharp/b.png"), 1);
    make_pair(tu_path(root, "blur/c.png"), tu_path(root, "sharp/c.png"), 2);
}

/* The tiny configuration with the batch of each replica. */
static void tiny_config(dsd_config *c, int batch, int synthetic)
{
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(c, &err), err);
    char set[1200];
    const char *sets[] = {"data.crop=32", "data.flip=true", "generator.base_width=8",
                          "generator.n_blocks=2", "generator.mlp_ratio=4",
                          "generator.dropout=0.5", "discriminator.base_width=8",
                          "train.content_loss=l1", "train.lr=0.0001", "train.epochs=100",
                          "train.decay_from=100", "train.seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        TU_HOST_OK(dsd_config_set(c, sets[i], &err), err);
    if (synthetic) {
        TU_HOST_OK(dsd_config_set(c, "data.mode=synthetic", &err), err);
        snprintf(set, sizeof set, "data.train=%s", tu_path(root, "sharp"));
        TU_HOST_OK(dsd_config_set(c, set, &err), err);
        TU_HOST_OK(dsd_config_set(c, "data.kernel_size=9", &err), err);
        TU_HOST_OK(dsd_config_set(c, "data.noise_sigma=0.01", &err), err);
    } else {
        TU_HOST_OK(dsd_config_set(c, "data.mode=paired", &err), err);
        snprintf(set, sizeof set, "data.train_blur=%s", tu_path(root, "blur"));
        TU_HOST_OK(dsd_config_set(c, set, &err), err);
        snprintf(set, sizeof set, "data.train_sharp=%s", tu_path(root, "sharp"));
        TU_HOST_OK(dsd_config_set(c, set, &err), err);
    }
    snprintf(set, sizeof set, "train.batch=%d", batch);
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "run.dir=%s", tu_path(root, "run"));
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    TU_HOST_OK(dsd_config_validate(c, &err), err);
}

/* ------------------------------------------------------------------------ */
/* Replicas as threads */

typedef struct group {
    pthread_barrier_t barrier;
    float *parts[REPLICAS];
} group;

typedef struct replica {
    group *g;
    int rank;
    const dsd_config *cfg;
    float *weights;           /* out: G then D */
    size_t count;
    double loss_d[STEPS], loss_g[STEPS];
    dsd_status status;
    char message[DSD_ERROR_LINE_MAX];
} replica;

static dsd_status set_error(dsd_error *err, dsd_status st, const char *what)
{
    memset(err, 0, sizeof *err);
    err->status = st;
    snprintf(err->message, sizeof err->message, "%s", what);
    return st;
}

/* In rank order, in double: the same on every replica and every run. */
static dsd_status thread_sum(void *user, float *v, size_t n, dsd_error *err)
{
    replica *r = user;
    group *g = r->g;
    g->parts[r->rank] = v;
    pthread_barrier_wait(&g->barrier);
    float *sum = malloc(n * sizeof *sum);
    if (!sum)
        return set_error(err, DSD_ERR_OUT_OF_MEMORY, "sum");
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < REPLICAS; k++)
            s += g->parts[k][i];
        sum[i] = (float)s;
    }
    pthread_barrier_wait(&g->barrier); /* everyone has read every part */
    memcpy(v, sum, n * sizeof *v);
    free(sum);
    return DSD_OK;
}

static float *download_all(dsd_context *ctx, dsd_trainer *t, size_t *count)
{
    dsd_generator *g = dsd_trainer_generator(t);
    dsd_discriminator *d = dsd_trainer_discriminator(t);
    size_t ng = g->params.count, nd = d->params.count;
    float *v = malloc((ng + nd) * sizeof *v);
    if (v && (dsd_tensor_download(ctx, &g->params.values, v, ng) != DSD_OK ||
              dsd_tensor_download(ctx, &d->params.values, v + ng, nd) != DSD_OK)) {
        free(v);
        return NULL;
    }
    *count = ng + nd;
    return v;
}

/* Trains STEPS steps as replica r->rank (or alone without a group). */
static void *train(void *arg)
{
    replica *r = arg;
    dsd_error err;
    memset(&err, 0, sizeof err);
    dsd_context *ctx = NULL;
    dsd_trainer *t = NULL;
    dsd_comm comm = {.rank = r->rank, .size = r->g ? REPLICAS : 1, .sum = thread_sum,
                     .user = r};
    r->status = dsd_context_init(&ctx, NULL, &err);
    if (r->status == DSD_OK) {
        r->status = dsd_trainer_init_comm(ctx, r->cfg, &comm, &t, &err);
    }
    for (int i = 0; i < STEPS && r->status == DSD_OK; i++) {
        dsd_step_stats s;
        r->status = dsd_trainer_step(t, &s, &err);
        r->loss_d[i] = s.loss_d;
        r->loss_g[i] = s.loss_g;
    }
    if (r->status == DSD_OK && !(r->weights = download_all(ctx, t, &r->count)))
        r->status = set_error(&err, DSD_ERR_OPENCL, "weights download");
    if (r->status != DSD_OK)
        dsd_error_format(&err, r->message, sizeof r->message);
    dsd_trainer_free(t);
    dsd_context_free(ctx);
    return NULL;
}

/* Runs REPLICAS replica threads. */
static void run_replicas(const dsd_config *cfg, replica *out)
{
    group g;
    ck_assert_int_eq(pthread_barrier_init(&g.barrier, NULL, REPLICAS), 0);
    pthread_t th[REPLICAS];
    for (int k = 0; k < REPLICAS; k++) {
        memset(&out[k], 0, sizeof out[k]);
        out[k] = (replica){.g = &g, .rank = k, .cfg = cfg};
        ck_assert_int_eq(pthread_create(&th[k], NULL, train, &out[k]), 0);
    }
    for (int k = 0; k < REPLICAS; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&g.barrier);
    for (int k = 0; k < REPLICAS; k++)
        ck_assert_msg(out[k].status == DSD_OK, "replica %d: %s", k, out[k].message);
}

/* 1 for the weights no loss depends on: the conv biases of D's layers 1 ..
 * n_layers, each followed by an instance norm without affine parameters
 * (which subtracts them again), and the last layer's bias (a constant added
 * to every logit cancels in real - mean(fake) of the RaGAN loss). Their
 * gradient is 0 in exact arithmetic and rounding noise in float, and Adam
 * scales any gradient to about lr: their values follow the noise, and differ
 * whenever the summation order does. */
static unsigned char *inert_mask(const dsd_config *cfg, size_t count, size_t *g_count)
{
    dsd_error err;
    dsd_trainer *t;
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), cfg, &t, &err), err);
    const dsd_params *g = &dsd_trainer_generator(t)->params;
    const dsd_params *d = &dsd_trainer_discriminator(t)->params;
    ck_assert_uint_eq(g->count + d->count, count);
    *g_count = g->count;
    unsigned char *m = calloc(count, 1);
    ck_assert(m != NULL);
    for (size_t i = 0; i < d->n; i++) {
        int layer;
        char rest[32];
        if (sscanf(d->info[i].name, "layers.%d.%31s", &layer, rest) == 2 &&
            !strcmp(rest, "conv.bias") && layer >= 1 && layer <= cfg->discriminator.n_layers + 1)
            memset(m + g->count + d->info[i].offset, 1, d->info[i].numel);
    }
    dsd_trainer_free(t);
    return m;
}

/* ||a - b|| / ||b|| over the weights not in inert. */
static double norm_rel(const float *a, const float *b, const unsigned char *inert, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        if (!inert[i]) {
            num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            den += (double)b[i] * b[i];
        }
    return sqrt(num / den);
}

/* Worst relative difference (absolute floor 1e-3) outside inert, and its
 * index. */
static double worst_rel(const float *a, const float *b, const unsigned char *inert, size_t n,
                        size_t *at)
{
    double worst = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        if (inert[i])
            continue;
        double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-3);
        if (d > worst) {
            worst = d;
            *at = i;
        }
    }
    return worst;
}

static void check_split_matches_whole(int synthetic)
{
    dsd_config one, two;
    tiny_config(&one, REPLICAS, synthetic);
    tiny_config(&two, 1, synthetic);

    replica whole = {.rank = 0, .cfg = &one};
    train(&whole);
    ck_assert_msg(whole.status == DSD_OK, "batch %d: %s", REPLICAS, whole.message);

    replica split[REPLICAS];
    run_replicas(&two, split);
    for (int k = 1; k < REPLICAS; k++) {
        ck_assert_uint_eq(split[k].count, split[0].count);
        ck_assert_msg(!memcmp(split[k].weights, split[0].weights,
                              split[0].count * sizeof(float)),
                      "replica %d's weights differ from replica 0's", k);
    }
    ck_assert_uint_eq(split[0].count, whole.count);
    size_t at;
    size_t ng;
    unsigned char *inert = inert_mask(&one, whole.count, &ng);
    double norm_g = norm_rel(split[0].weights, whole.weights, inert, ng);
    double norm_d = norm_rel(split[0].weights + ng, whole.weights + ng, inert + ng,
                             whole.count - ng);
    double rel = worst_rel(split[0].weights, whole.weights, inert, whole.count, &at);
    fprintf(stderr, "%s: %d x batch 1 vs 1 x batch %d after %d steps: relative difference "
            "%.3g (G), %.3g (D), worst weight %zu: %.3g\n", synthetic ? "synthetic" : "paired",
            REPLICAS, REPLICAS, STEPS, norm_g, norm_d, at, rel);
    ck_assert_msg(norm_g <= 1e-5 && norm_d <= 1e-5, "relative difference of the weights %.3g "
                  "(G), %.3g (D), more than 1e-5", norm_g, norm_d);
    /* one weight alone moves more: Adam divides a small gradient's rounding by
     * its own size */
    ck_assert_msg(rel <= 1e-3, "weight %zu: %.9g (replicas) vs %.9g (one trainer): relative "
                  "%.3g", at, (double)split[0].weights[at], (double)whole.weights[at], rel);
    for (int i = 0; i < STEPS; i++) {
        ck_assert_msg(fabs(split[0].loss_d[i] - whole.loss_d[i]) <= 1e-5 * fabs(whole.loss_d[i]),
                      "step %d: L_D %.9g vs %.9g", i, split[0].loss_d[i], whole.loss_d[i]);
        ck_assert_msg(fabs(split[0].loss_g[i] - whole.loss_g[i]) <= 1e-5 * fabs(whole.loss_g[i]),
                      "step %d: L_G %.9g vs %.9g", i, split[0].loss_g[i], whole.loss_g[i]);
    }

    if (!synthetic) {
        /* again: bit-identical */
        replica again[REPLICAS];
        run_replicas(&two, again);
        ck_assert_msg(!memcmp(again[0].weights, split[0].weights,
                              split[0].count * sizeof(float)),
                      "two runs of %d replicas differ", REPLICAS);
        for (int k = 0; k < REPLICAS; k++)
            free(again[k].weights);
    }
    for (int k = 0; k < REPLICAS; k++)
        free(split[k].weights);
    free(whole.weights);
    free(inert);
    dsd_config_free(&one);
    dsd_config_free(&two);
}

START_TEST(test_paired_split_matches_whole) { check_split_matches_whole(0); }
END_TEST

START_TEST(test_synthetic_split_matches_whole) { check_split_matches_whole(1); }
END_TEST

START_TEST(test_bad_comm_refused)
{
    dsd_error err;
    dsd_config c;
    tiny_config(&c, 1, 0);
    dsd_trainer *t = NULL;
    dsd_comm bad = {.rank = 2, .size = 2};
    ck_assert_int_eq(dsd_trainer_init_comm(tu_ctx(), &c, &bad, &t, &err),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert(t == NULL);
    dsd_config_free(&c);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "trainer-dp") != 0)
        return 1;
    Suite *s = suite_create("trainer-dp");
    TCase *tc = tcase_create("trainer-dp");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_paired_split_matches_whole);
    tcase_add_test(tc, test_synthetic_split_matches_whole);
    tcase_add_test(tc, test_bad_comm_refused);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    tu_ctx_free();
    return rc;
}
