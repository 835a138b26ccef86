/*
 * test-trainer.c: the whole training iteration (src/train/trainer.c) on a
 * tiny configuration on PoCL: a generator of base width 8 with 2 blocks,
 * 32 x 32 crops of one fixed pair. Checked: the content loss goes down; a
 * run stopped after a checkpoint and resumed ends with bit-identical weights
 * (G, D) to an uninterrupted run, dropout on; synthetic mode runs (device
 * blur); validation gives PSNR/SSIM; a NaN weight stops the step with
 * DSD_ERR_NAN naming the step; a checkpoint of another seed is refused; the
 * log and plot are written and a resumed log drops rows past the checkpoint;
 * a warm-up trains G alone and resumes bit for bit.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char root[64];

/* A 40 x 36 sharp image with edges and its 5 x 1 horizontal box blur. */
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
                v += (c * 30 + x * 2) % 50;
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
    tu_mkdir_p(tu_path(root, "run"));
    make_pair(tu_path(root, "blur/a.png"), tu_path(root, "sharp/a.png"), 0);
}

/* The tiny paired configuration (content loss L1, lambda 100). */
static void tiny_config(dsd_config *c, double dropout, const char *run_dir)
{
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(c, &err), err);
    char set[1200];
    const char *sets[] = {"data.mode=paired", "data.crop=32", "data.flip=false",
                          "generator.base_width=8", "generator.n_blocks=2",
                          "generator.mlp_ratio=4", "discriminator.base_width=8",
                          "train.content_loss=l1", "train.lr=0.001", "train.epochs=100",
                          "train.decay_from=100", "train.seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        TU_HOST_OK(dsd_config_set(c, sets[i], &err), err);
    snprintf(set, sizeof set, "data.train_blur=%s", tu_path(root, "blur"));
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "data.train_sharp=%s", tu_path(root, "sharp"));
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "data.val_blur=%s", tu_path(root, "blur"));
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "data.val_sharp=%s", tu_path(root, "sharp"));
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "generator.dropout=%g", dropout);
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    snprintf(set, sizeof set, "run.dir=%s", run_dir);
    TU_HOST_OK(dsd_config_set(c, set, &err), err);
    TU_HOST_OK(dsd_config_validate(c, &err), err);
}

static float *download_all(dsd_trainer *t, size_t *count)
{
    dsd_generator *g = dsd_trainer_generator(t);
    dsd_discriminator *d = dsd_trainer_discriminator(t);
    size_t ng = g->params.count, nd = d->params.count;
    float *v = malloc((ng + nd) * sizeof *v);
    ck_assert(v != NULL);
    TU_OK(dsd_tensor_download(tu_ctx(), &g->params.values, v, ng));
    TU_OK(dsd_tensor_download(tu_ctx(), &d->params.values, v + ng, nd));
    *count = ng + nd;
    return v;
}

START_TEST(test_loss_goes_down)
{
    dsd_error err;
    dsd_config c;
    tiny_config(&c, 0.0, tu_path(root, "run"));
    dsd_trainer *t;
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    ck_assert_uint_eq(dsd_trainer_steps_per_epoch(t), 1);
    enum { STEPS = 60 };
    double first = 0, last = 0;
    for (int i = 0; i < STEPS; i++) {
        dsd_step_stats s;
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
        ck_assert_uint_eq(s.step, (uint64_t)i);
        ck_assert(isfinite(s.loss_d) && isfinite(s.loss_g));
        ck_assert(fabs(s.loss_g - (s.loss_g_adv + 100 * s.loss_content)) < 1e-6 * fabs(s.loss_g));
        if (i < 5)
            first += s.loss_content / 5;
        if (i >= STEPS - 5)
            last += s.loss_content / 5;
    }
    fprintf(stderr, "content %.4g -> %.4g\n", first, last);
    ck_assert_msg(last < 0.8 * first, "content loss %.4g -> %.4g did not go down", first, last);
    dsd_val_stats v;
    TU_HOST_OK(dsd_trainer_validate(t, &v, &err), err);
    ck_assert_int_eq(v.images, 1);
    ck_assert(isfinite(v.psnr) && v.psnr > 5 && v.ssim > -1 && v.ssim <= 1);
    dsd_trainer_free(t);
    dsd_config_free(&c);
}
END_TEST

/* 8 steps straight vs 4 steps, checkpoint, a new trainer resumed, 4 more. */
START_TEST(test_resume_is_bit_exact)
{
    dsd_error err;
    dsd_config c;
    tiny_config(&c, 0.5, tu_path(root, "run"));
    enum { HALF = 4 };
    dsd_trainer *t;
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    dsd_step_stats s;
    for (int i = 0; i < 2 * HALF; i++)
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    size_t n1;
    float *straight = download_all(t, &n1);
    dsd_trainer_free(t);

    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    for (int i = 0; i < HALF; i++)
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    TU_HOST_OK(dsd_trainer_save_checkpoint(t, tu_path(root, "run/ckpt.safetensors"), &err), err);
    dsd_trainer_free(t);

    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    TU_HOST_OK(dsd_trainer_resume(t, tu_path(root, "run/ckpt.safetensors"), &err), err);
    ck_assert_uint_eq(dsd_trainer_step_index(t), HALF);
    for (int i = 0; i < HALF; i++) {
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
        ck_assert_uint_eq(s.step, (uint64_t)(HALF + i));
    }
    size_t n2;
    float *resumed = download_all(t, &n2);
    ck_assert_uint_eq(n1, n2);
    size_t diff = 0;
    for (size_t i = 0; i < n1; i++)
        diff += memcmp(&straight[i], &resumed[i], sizeof(float)) != 0;
    ck_assert_msg(diff == 0, "%zu of %zu weights differ after resume", diff, n1);
    dsd_trainer_free(t);

    /* another seed refuses the checkpoint */
    TU_HOST_OK(dsd_config_set(&c, "train.seed=8", &err), err);
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    ck_assert_int_ne(dsd_trainer_resume(t, tu_path(root, "run/ckpt.safetensors"), &err), DSD_OK);
    ck_assert_msg(strstr(err.message, "train.seed") != NULL, "%s", err.message);
    dsd_trainer_free(t);
    free(straight);
    free(resumed);
    dsd_config_free(&c);
}
END_TEST

/* train.warmup_steps: the first steps train G on the content loss alone
 * (D neither run nor updated, no adversarial term), then the GAN starts; a
 * run resumed inside the warm-up ends bit-identical to a straight one. */
START_TEST(test_warmup)
{
    dsd_error err;
    dsd_config c;
    tiny_config(&c, 0.0, tu_path(root, "run"));
    TU_HOST_OK(dsd_config_set(&c, "train.warmup_steps=3", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "train.content_loss=l1+fft", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "train.fft_weight=0.25", &err), err);
    enum { STEPS = 5, WARM = 3 };
    dsd_trainer *t;
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    size_t ng = dsd_trainer_generator(t)->params.count, n;
    float *prev = download_all(t, &n);
    for (int i = 0; i < STEPS; i++) {
        dsd_step_stats s;
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
        ck_assert_int_eq(s.adversarial, i >= WARM);
        ck_assert(fabs(s.loss_g - (s.loss_g_adv + 100 * s.loss_content)) < 1e-6 * fabs(s.loss_g));
        if (i < WARM)
            ck_assert(s.loss_d == 0 && s.loss_g_adv == 0 && s.loss_content > 0);
        else
            ck_assert(s.loss_d > 0 && isfinite(s.loss_d) && s.loss_g_adv > 0);
        float *now = download_all(t, &n);
        size_t g_changed = 0, d_changed = 0;
        for (size_t k = 0; k < n; k++)
            (k < ng ? &g_changed : &d_changed)[0] += memcmp(&now[k], &prev[k], sizeof *now) != 0;
        ck_assert_msg(g_changed > 0, "step %d: the generator did not change", i);
        ck_assert_msg(i < WARM ? d_changed == 0 : d_changed > 0,
                      "step %d: %zu discriminator weights changed", i, d_changed);
        free(prev);
        prev = now;
    }
    dsd_trainer_free(t);

    /* stopped at step 2 (inside the warm-up), resumed, run to STEPS */
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    dsd_step_stats s;
    for (int i = 0; i < 2; i++)
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    TU_HOST_OK(dsd_trainer_save_checkpoint(t, tu_path(root, "run/warm.safetensors"), &err), err);
    dsd_trainer_free(t);
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    TU_HOST_OK(dsd_trainer_resume(t, tu_path(root, "run/warm.safetensors"), &err), err);
    for (int i = 2; i < STEPS; i++)
        TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    float *resumed = download_all(t, &n);
    size_t diff = 0;
    for (size_t k = 0; k < n; k++)
        diff += memcmp(&prev[k], &resumed[k], sizeof *prev) != 0;
    ck_assert_msg(diff == 0, "%zu of %zu weights differ after a resume in the warm-up", diff, n);
    free(resumed);
    free(prev);
    dsd_trainer_free(t);
    dsd_config_free(&c);
}
END_TEST

START_TEST(test_synthetic_and_nan)
{
    dsd_error err;
    dsd_config c;
    tiny_config(&c, 0.5, tu_path(root, "run"));
    char set[1200];
    TU_HOST_OK(dsd_config_set(&c, "data.mode=synthetic", &err), err);
    snprintf(set, sizeof set, "data.train=%s", tu_path(root, "sharp"));
    TU_HOST_OK(dsd_config_set(&c, set, &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.kernel_size=9", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.noise_sigma=0.01", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.val=", &err), err);
    TU_HOST_OK(dsd_config_validate(&c, &err), err);
    dsd_trainer *t;
    TU_HOST_OK(dsd_trainer_init(tu_ctx(), &c, &t, &err), err);
    ck_assert(!dsd_trainer_has_validation(t));
    dsd_step_stats s;
    TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    TU_HOST_OK(dsd_trainer_step(t, &s, &err), err);
    ck_assert(isfinite(s.loss_g));

    /* a NaN weight: the step stops, naming it */
    dsd_generator *g = dsd_trainer_generator(t);
    float nan = NAN;
    float *v = malloc(g->params.count * sizeof *v);
    TU_OK(dsd_tensor_download(tu_ctx(), &g->params.values, v, g->params.count));
    v[g->params.count / 2] = nan;
    TU_OK(dsd_tensor_upload(tu_ctx(), &g->params.values, v, g->params.count));
    dsd_status st = dsd_trainer_step(t, &s, &err);
    ck_assert_int_eq(st, DSD_ERR_NAN);
    ck_assert_msg(strstr(err.message, "step 2") != NULL, "%s", err.message);
    free(v);
    dsd_trainer_free(t);
    dsd_config_free(&c);
}
END_TEST

/* Synthetic blur with per-PSF ranges (data.blur_length .. data.anxiety_max):
 * a path longer than the kernel holds is a configuration error naming the
 * key; ranges change the blur (another first loss than without them) and
 * stay deterministic (the same loss again). */
static double first_synthetic_loss(const char *const *sets, int nsets, dsd_status *st,
                                   dsd_error *err)
{
    dsd_config c;
    tiny_config(&c, 0.0, tu_path(root, "run"));
    char set[1200];
    TU_HOST_OK(dsd_config_set(&c, "data.mode=synthetic", err), *err);
    snprintf(set, sizeof set, "data.train=%s", tu_path(root, "sharp"));
    TU_HOST_OK(dsd_config_set(&c, set, err), *err);
    TU_HOST_OK(dsd_config_set(&c, "data.kernel_size=9", err), *err);
    TU_HOST_OK(dsd_config_set(&c, "data.val=", err), *err);
    for (int i = 0; i < nsets; i++)
        TU_HOST_OK(dsd_config_set(&c, sets[i], err), *err);
    TU_HOST_OK(dsd_config_validate(&c, err), *err);
    dsd_trainer *t = NULL;
    double loss = NAN;
    *st = dsd_trainer_init(tu_ctx(), &c, &t, err);
    dsd_step_stats s;
    if (*st == DSD_OK)
        *st = dsd_trainer_step(t, &s, err);
    if (*st == DSD_OK)
        loss = s.loss_content;
    dsd_trainer_free(t);
    dsd_config_free(&c);
    return loss;
}

START_TEST(test_synthetic_ranges)
{
    dsd_error err;
    dsd_status st;
    const char *too_long[] = {"data.blur_length=2", "data.blur_length_max=9"};
    first_synthetic_loss(too_long, 2, &st, &err);
    ck_assert_int_eq(st, DSD_ERR_CONFIG);
    ck_assert_msg(strstr(err.message, "data.blur_length_max = 9") != NULL, "%s", err.message);

    double plain = first_synthetic_loss(NULL, 0, &st, &err);
    TU_HOST_OK(st, err);
    const char *ranges[] = {"data.blur_length=2", "data.blur_length_max=7",
                            "data.exposure=0.5", "data.exposure_max=1",
                            "data.anxiety=0", "data.anxiety_max=0.005"};
    double ranged = first_synthetic_loss(ranges, 6, &st, &err);
    TU_HOST_OK(st, err);
    double again = first_synthetic_loss(ranges, 6, &st, &err);
    TU_HOST_OK(st, err);
    ck_assert(isfinite(ranged) && ranged == again);
    ck_assert_msg(ranged != plain, "ranges did not change the blur (loss %.9g)", ranged);
}
END_TEST

START_TEST(test_log_and_plot)
{
    dsd_error err;
    dsd_train_log *log;
    TU_HOST_OK(dsd_train_log_open(&log, tu_path(root, "run"), 0, &err), err);
    for (int i = 0; i < 10; i++) {
        dsd_step_stats s = {.step = (uint64_t)i, .epoch = i / 5, .lr = 1e-4,
                            .loss_d = 1.3 - 0.01 * i, .loss_g_adv = 0.7, .loss_content = 0.5 / (i + 1),
                            .loss_g = 0.7 + 50.0 / (i + 1)};
        TU_HOST_OK(dsd_train_log_step(log, &s, 0.1, &err), err);
        if (i % 5 == 4) {
            dsd_val_stats v = {1, 20.0 + i, 0.5, 0.2};
            TU_HOST_OK(dsd_train_log_val(log, (uint64_t)i, i / 5, &v, &err), err);
        }
    }
    TU_HOST_OK(dsd_train_log_plot(log, &err), err);
    dsd_train_log_close(log);
    /* resumed from step 6: rows 6.. dropped, then continued */
    TU_HOST_OK(dsd_train_log_open(&log, tu_path(root, "run"), 6, &err), err);
    dsd_step_stats s = {.step = 6, .loss_d = 9, .loss_g = 9};
    TU_HOST_OK(dsd_train_log_step(log, &s, 0.1, &err), err);
    TU_HOST_OK(dsd_train_log_plot(log, &err), err);
    dsd_train_log_close(log);
    FILE *f = fopen(tu_path(root, "run/log.csv"), "r");
    ck_assert(f != NULL);
    char line[512];
    int rows = 0;
    ck_assert(fgets(line, sizeof line, f) && strstr(line, "step,epoch,lr,loss_d"));
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    ck_assert_int_eq(rows, 7); /* steps 0..5, then the new 6 */
    f = fopen(tu_path(root, "run/plot.svg"), "r");
    ck_assert(f != NULL);
    size_t n = fread(line, 1, sizeof line - 1, f);
    line[n] = '\0';
    fclose(f);
    ck_assert(strstr(line, "<svg") != NULL);
    size_t len;
    char *svg = tu_read_file(tu_path(root, "run/plot.svg"), &len);
    ck_assert(svg && strstr(svg, "L_D (discriminator)") && !strstr(svg, "no adversarial term"));
    free(svg);

    /* a run still in its warm-up (zeros for both GAN losses) says so */
    tu_mkdir_p(tu_path(root, "warm"));
    TU_HOST_OK(dsd_train_log_open(&log, tu_path(root, "warm"), 0, &err), err);
    for (int i = 0; i < 4; i++) {
        dsd_step_stats w = {.step = (uint64_t)i, .lr = 1e-4, .loss_content = 0.3 / (i + 1),
                            .loss_g = 30.0 / (i + 1)};
        TU_HOST_OK(dsd_train_log_step(log, &w, 0.1, &err), err);
    }
    TU_HOST_OK(dsd_train_log_plot(log, &err), err);
    dsd_train_log_close(log);
    svg = tu_read_file(tu_path(root, "warm/plot.svg"), &len);
    ck_assert(svg && strstr(svg, "no adversarial term yet") && !strstr(svg, "L_D (discriminator)"));
    free(svg);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "trainer") != 0)
        return 1;
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("trainer");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_loss_goes_down);
    tcase_add_test(tc, test_resume_is_bit_exact);
    tcase_add_test(tc, test_warmup);
    tcase_add_test(tc, test_synthetic_and_nan);
    tcase_add_test(tc, test_synthetic_ranges);
    tcase_add_test(tc, test_log_and_plot);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    tu_ctx_free();
    return rc;
}
