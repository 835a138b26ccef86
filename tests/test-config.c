/*
 * test-config.c: the training configuration (src/io/config.c): defaults,
 * data/paper.yaml, overrides, the YAML round trip, and malformed files, each
 * giving its expected message with file:line:column. Host only: no OpenCL
 * device is needed.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

/* Writes text to <tmpdir>/name and returns the path (a tu_path buffer). */
static const char *write_file(const char *name, const char *text)
{
    const char *path = tu_path(tmpdir, name);
    tu_write_file(path, text, strlen(text));
    return path;
}

static void expect_load_error(const char *name, const char *text, dsd_status want,
                              const char *substring)
{
    dsd_config c;
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(&c, &err), err);
    const char *path = write_file(name, text);
    dsd_status st = dsd_config_load(&c, path, &err);
    ck_assert_msg(st == want, "%s: status %s, want %s (%s)", name, dsd_status_name(st),
                  dsd_status_name(want), err.message);
    ck_assert_msg(strstr(err.message, substring) != NULL, "%s: message '%s' lacks '%s'", name,
                  err.message, substring);
    ck_assert_msg(strstr(err.message, name) != NULL, "%s: message '%s' does not name the file",
                  name, err.message);
    dsd_config_free(&c);
}

START_TEST(test_defaults_are_the_paper)
{
    dsd_config c;
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(&c, &err), err);
    ck_assert_int_eq(c.data.crop, 256);
    ck_assert_int_eq(c.data.flip, 1);
    ck_assert(c.data.noise_sigma == 0 && c.data.noise_sigma_max == 0); /* no noise */
    ck_assert_int_eq(c.train.batch, 1);
    ck_assert_int_eq(c.train.epochs, 500);
    ck_assert_int_eq(c.train.decay_from, 150);
    ck_assert(c.train.lr == 1e-4 && c.train.beta1 == 0.5 && c.train.beta2 == 0.999);
    ck_assert(c.train.lambda == 100 && c.generator.dropout == 0.5);
    ck_assert_str_eq(c.train.content_loss, "perceptual");
    ck_assert_int_eq(c.generator.n_blocks, 9);
    ck_assert_str_eq(c.device, "");

    /* data/paper.yaml holds the same model and training values */
    char path[1024];
    const char *src = getenv("DSDEBLUR_TEST_SRCDIR");
    snprintf(path, sizeof path, "%s/data/paper.yaml", src ? src : ".");
    dsd_config p;
    TU_HOST_OK(dsd_config_defaults(&p, &err), err);
    dsd_status st = dsd_config_load(&p, path, &err);
    ck_assert_msg(st == DSD_OK, "%s: %s", path, err.message);
    ck_assert(memcmp(&p.generator, &c.generator, sizeof c.generator) == 0);
    ck_assert(memcmp(&p.discriminator, &c.discriminator, sizeof c.discriminator) == 0);
    ck_assert(p.train.lr == c.train.lr && p.train.beta1 == c.train.beta1 &&
              p.train.beta2 == c.train.beta2 && p.train.eps == c.train.eps &&
              p.train.lambda == c.train.lambda && p.train.epochs == c.train.epochs &&
              p.train.decay_from == c.train.decay_from && p.train.batch == c.train.batch);
    ck_assert_str_eq(p.train.content_loss, "perceptual");
    ck_assert_str_eq(p.data.train, "GOPRO_Large/train");
    ck_assert_int_eq(dsd_config_validate(&p, &err), DSD_OK);
    dsd_config_free(&p);
    dsd_config_free(&c);
}
END_TEST

START_TEST(test_file_and_overrides)
{
    dsd_config c;
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(&c, &err), err);
    const char *path = write_file("run.yaml", "# a small run\n"
                                              "data:\n"
                                              "  mode: synthetic\n"
                                              "  train: /photos\n"
                                              "  flip: no\n"
                                              "train:\n"
                                              "  lr: 2e-4\n"
                                              "  content_loss: l1\n"
                                              "  seed: 12345678901\n"
                                              "device: gpu\n");
    TU_HOST_OK(dsd_config_load(&c, path, &err), err);
    ck_assert_int_eq(c.data.mode, DSD_DATA_SYNTHETIC);
    ck_assert_str_eq(c.data.train, "/photos");
    ck_assert_int_eq(c.data.flip, 0);
    ck_assert(c.train.lr == 2e-4);
    ck_assert(c.train.seed == 12345678901LL);
    ck_assert_str_eq(c.device, "gpu");
    ck_assert_int_eq(c.train.epochs, 500); /* untouched keys keep their defaults */
    TU_HOST_OK(dsd_config_set(&c, "train.epochs=3", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.train=/other dir/with spaces", &err), err);
    ck_assert_int_eq(c.train.epochs, 3);
    ck_assert_str_eq(c.data.train, "/other dir/with spaces");
    TU_HOST_OK(dsd_config_set(&c, "train.decay_from=1", &err), err);
    /* camera sensor noise of 1 to 2 gray levels (issue 12) */
    TU_HOST_OK(dsd_config_set(&c, "data.noise_sigma=0.00784", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.noise_sigma_max=0.01569", &err), err);
    ck_assert(c.data.noise_sigma == 0.00784 && c.data.noise_sigma_max == 0.01569);
    /* camera paths drawn per kernel; unset, the PSFs are as before */
    ck_assert(c.data.blur_length == 0 && c.data.exposure == 0 && c.data.anxiety == -1);
    TU_HOST_OK(dsd_config_set(&c, "data.blur_length=12", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.blur_length_max=45", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.exposure=0.5", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.anxiety=0", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "data.anxiety_max=0.005", &err), err);
    ck_assert(c.data.blur_length == 12 && c.data.blur_length_max == 45 &&
              c.data.exposure == 0.5 && c.data.anxiety_max == 0.005);
    TU_HOST_OK(dsd_config_validate(&c, &err), err);

    struct {
        const char *set, *msg;
    } bad[] = {
        {"train.lr", "expected key=value"},
        {"=3", "expected key=value"},
        {"train.lrr=1", "unknown key 'train.lrr' (did you mean 'train.lr'?)"},
        {"nothing.like.it=1", "unknown key 'nothing.like.it'"},
        {"train.epochs=0", "train.epochs must be between 1 and 1000000"},
        {"train.lr=abc", "train.lr: 'abc' is not a number"},
        {"train.lr=inf", "train.lr: 'inf' is not a number"},
        {"train.content_loss=ssim", "'ssim' is not one of perceptual|l1|mse|fft"},
        {"data.anxiety=-2", "data.anxiety must be between -1 and 1"},
        {"data.blur_length=63", "data.blur_length must be between 0 and 62"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsd_status st = dsd_config_set(&c, bad[i].set, &err);
        ck_assert_msg(st == DSD_ERR_CONFIG, "--set %s accepted", bad[i].set);
        ck_assert_msg(strstr(err.message, bad[i].msg), "--set %s: '%s' lacks '%s'", bad[i].set,
                      err.message, bad[i].msg);
        ck_assert_msg(strstr(err.message, "--set"), "'%s' does not name the override",
                      err.message);
    }
    ck_assert_int_eq(c.train.epochs, 3); /* refused overrides changed nothing */
    dsd_config_free(&c);
}
END_TEST

START_TEST(test_round_trip)
{
    dsd_config c, d;
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(&c, &err), err);
    /* a string that looks like a bool, and one like a number */
    TU_HOST_OK(dsd_config_set(&c, "data.train=yes", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "run.dir=1e3", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "train.lr=0.00012345678901234567", &err), err);
    TU_HOST_OK(dsd_config_set(&c, "generator.dropout=0.1", &err), err);
    char path[512];
    snprintf(path, sizeof path, "%s/saved.yaml", tmpdir);
    TU_HOST_OK(dsd_config_save(&c, path, &err), err);
    TU_HOST_OK(dsd_config_defaults(&d, &err), err);
    TU_HOST_OK(dsd_config_load(&d, path, &err), err);
    char *a, *b;
    TU_HOST_OK(dsd_config_to_string(&c, &a, &err), err);
    TU_HOST_OK(dsd_config_to_string(&d, &b, &err), err);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(d.data.train, "yes");
    ck_assert_str_eq(d.run.dir, "1e3");
    ck_assert(d.train.lr == c.train.lr); /* doubles survive exactly */
    ck_assert(d.generator.dropout == 0.1);
    ck_assert(strstr(a, "lr: 0.00012345678901234567") != NULL);
    free(a);
    free(b);
    /* every key is listed, named and described */
    const char *name, *help;
    int n = 0;
    while (dsd_config_key(n, &name, &help)) {
        ck_assert(name && *name && help && *help);
        n++;
    }
    ck_assert_int_ge(n, 35);
    dsd_config_free(&c);
    dsd_config_free(&d);
}
END_TEST

START_TEST(test_malformed_files)
{
    expect_load_error("typo.yaml", "data:\n  mdoe: gopro\n", DSD_ERR_CONFIG,
                      "typo.yaml:2:3: unknown key 'data.mdoe' (did you mean 'data.mode'?)");
    expect_load_error("type.yaml", "train:\n  lr: fast\n", DSD_ERR_CONFIG,
                      "type.yaml:2:7: train.lr: 'fast' is not a number");
    expect_load_error("range.yaml", "train:\n  epochs: 0\n", DSD_ERR_CONFIG,
                      "range.yaml:2:11: train.epochs must be between 1 and 1000000, not 0");
    expect_load_error("mode.yaml", "data:\n  mode: video\n", DSD_ERR_CONFIG,
                      "mode.yaml:2:9: data.mode: 'video' is not one of gopro|paired|synthetic");
    expect_load_error("syntax.yaml", "train:\n  lr: \"1e-4\n", DSD_ERR_CONFIG,
                      "not valid YAML");
    expect_load_error("list.yaml", "train:\n  lr: [1, 2]\n", DSD_ERR_CONFIG,
                      "list.yaml:2:7: train.lr takes a single value, not a list");
    /* an unclosed list is a syntax error, with libyaml's words and positions,
     * not a list where a value belongs */
    expect_load_error("open.yaml", "train:\n  lr: [1\n", DSD_ERR_CONFIG,
                      "open.yaml:3:1: not valid YAML: did not find expected ',' or ']' (while "
                      "parsing a flow sequence that starts at line 2, column 7)");
    expect_load_error("opensec.yaml", "train: [1\n", DSD_ERR_CONFIG,
                      "opensec.yaml:2:1: not valid YAML: did not find expected ',' or ']'");
    expect_load_error("opentop.yaml", "[1\n", DSD_ERR_CONFIG,
                      "opentop.yaml:2:1: not valid YAML: did not find expected ',' or ']'");
    expect_load_error("utf8.yaml", "train:\n  lr: \xff\n", DSD_ERR_CONFIG,
                      "utf8.yaml: byte 13: not valid YAML: invalid leading UTF-8 octet");
    expect_load_error("twice.yaml", "train:\n  lr: 1e-4\n  lr: 2e-4\n", DSD_ERR_CONFIG,
                      "twice.yaml:3:3: train.lr is set twice");
    expect_load_error("toplist.yaml", "- a\n- b\n", DSD_ERR_CONFIG,
                      "toplist.yaml:1:1: expected a mapping of sections");
    expect_load_error("flat.yaml", "train: 5\n", DSD_ERR_CONFIG,
                      "flat.yaml:1:1: section 'train' must be a mapping of keys");
    expect_load_error("bool.yaml", "data:\n  flip: maybe\n", DSD_ERR_CONFIG,
                      "data.flip: 'maybe' is not true or false");
    expect_load_error("int.yaml", "train:\n  batch: 1.5\n", DSD_ERR_CONFIG,
                      "int.yaml:2:10: train.batch: '1.5' is not an integer");
    expect_load_error("alias.yaml", "train:\n  lr: &x 1e-4\n  eps: *x\n", DSD_ERR_CONFIG,
                      "aliases are not allowed");
    expect_load_error("docs.yaml", "train:\n  lr: 1e-4\n---\ntrain:\n  lr: 2e-4\n",
                      DSD_ERR_CONFIG, "expected a single document");
    expect_load_error("section.yaml", "trian:\n  lr: 1e-4\n", DSD_ERR_CONFIG,
                      "unknown key 'trian.lr'");

    dsd_config c;
    dsd_error err;
    TU_HOST_OK(dsd_config_defaults(&c, &err), err);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such.yaml", tmpdir);
    ck_assert_int_eq(dsd_config_load(&c, missing, &err), DSD_ERR_IO);
    ck_assert(strstr(err.message, "no-such.yaml: cannot open") != NULL);
    /* a folder opens for reading; it is said to be one, not "input error" */
    ck_assert_int_eq(dsd_config_load(&c, tmpdir, &err), DSD_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "%s: is a directory, not a configuration file", tmpdir);
    ck_assert_str_eq(err.message, want);
    /* an empty file changes nothing */
    TU_HOST_OK(dsd_config_load(&c, write_file("empty.yaml", ""), &err), err);
    ck_assert_int_eq(c.train.epochs, 500);
    dsd_config_free(&c);
}
END_TEST

START_TEST(test_validation)
{
    struct {
        const char *sets[4], *msg;
    } cases[] = {
        {{"data.train=x", NULL}, "perceptual needs train.vgg_weights"},
        {{"data.mode=paired", "train.content_loss=l1", NULL}, "paired needs data.train_blur"},
        {{"train.content_loss=l1", NULL}, "data.mode gopro needs data.train"},
        {{"data.train=x", "train.content_loss=l1", "data.crop=30"}, "not a multiple of 4"},
        {{"data.train=x", "train.content_loss=mse", "train.decay_from=600"},
         "train.decay_from 600 is after train.epochs 500"},
        {{"data.train=x", "train.content_loss=fft", "generator.up_kernel=4"}, "must be odd"},
        {{"data.train=x", "train.content_loss=l1", "data.exposure_max=1"},
         "data.exposure_max is set but data.exposure is not"},
        {{"data.train=x", "train.content_loss=l1", "data.anxiety_max=0.005"},
         "data.anxiety_max is set but data.anxiety is not"},
        {{"data.train=x", "train.content_loss=l1", "data.blur_length=30",
          "data.blur_length_max=20"},
         "data.blur_length_max 20 is below data.blur_length 30"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsd_config c;
        dsd_error err;
        TU_HOST_OK(dsd_config_defaults(&c, &err), err);
        for (int j = 0; j < 4 && cases[i].sets[j]; j++)
            TU_HOST_OK(dsd_config_set(&c, cases[i].sets[j], &err), err);
        dsd_status st = dsd_config_validate(&c, &err);
        ck_assert_msg(st == DSD_ERR_CONFIG, "case %zu accepted", i);
        ck_assert_msg(strstr(err.message, cases[i].msg), "case %zu: '%s' lacks '%s'", i,
                      err.message, cases[i].msg);
        dsd_config_free(&c);
    }
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(tmpdir, sizeof tmpdir, "config") != 0)
        return 1;
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_are_the_paper);
    tcase_add_test(tc, test_file_and_overrides);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_malformed_files);
    tcase_add_test(tc, test_validation);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(tmpdir);
    return rc;
}
