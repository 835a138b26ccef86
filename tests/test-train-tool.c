/*
 * test-train-tool.c: the dsdeblur-train tool end to end on a tiny paired
 * data set (run from the build directory, as make check does): a
 * configuration error gives exit 2 and file:line:column; --print-config
 * shows overrides; a short run writes config, log, plot, checkpoint and
 * generator; --resume continues from the newest checkpoint and the log
 * follows it; a checkpoint of other networks is refused, and a generator file
 * given to --resume is named as one with the commands that take it; SIGTERM
 * finishes the step, writes a checkpoint and exits 0. Error lines read
 * "dsdeblur-train: error: FILE: problem [src/...]".
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[64];

/* Whether the file at path contains text. */
static int file_has(const char *path, const char *text)
{
    char *s = tu_read_file(path, NULL);
    int found = strstr(s, text) != NULL;
    free(s);
    return found;
}

static int file_lines(const char *path)
{
    char *s = tu_read_file(path, NULL);
    int n = tu_count_lines(s);
    free(s);
    return n;
}

/* The tiny run's arguments (networks of width 8, 32 x 32 crops). */
static const char *tiny(void)
{
    static char args[2048];
    snprintf(args, sizeof args,
             "--set data.mode=paired --set data.train_blur=%s --set data.train_sharp=%s "
             "--set data.crop=32 --set generator.base_width=8 --set generator.n_blocks=1 "
             "--set generator.mlp_ratio=4 --set discriminator.base_width=8 "
             "--set train.content_loss=l1 --set train.epochs=1000 --set train.decay_from=500 "
             "--set run.dir=%s --set run.every=2 --set run.keep=2 -q",
             tu_path(root, "blur"), tu_path(root, "sharp"), tu_path(root, "run"));
    return args;
}

/* dsdeblur-train with args (tu_run_tool, output in root/out, root/err). */
static int train(const char *args)
{
    return tu_run_tool("dsdeblur-train", args, root);
}

static void setup(void)
{
    tu_mkdir_p(tu_path(root, "blur"));
    tu_mkdir_p(tu_path(root, "sharp"));
    dsd_error err;
    dsd_image a;
    dsd_image_init(&a);
    ck_assert_int_eq(dsd_image_alloc(&a, 36, 34, &err), DSD_OK);
    for (size_t i = 0; i < dsd_image_numel(&a); i++)
        a.data[i] = (uint8_t)((i * 37) % 251);
    ck_assert_int_eq(dsd_image_save(tu_path(root, "sharp/x.png"), &a, &err), DSD_OK);
    for (size_t i = 0; i < dsd_image_numel(&a); i++)
        a.data[i] = (uint8_t)(a.data[i] / 2 + 60);
    ck_assert_int_eq(dsd_image_save(tu_path(root, "blur/x.png"), &a, &err), DSD_OK);
    dsd_image_free(&a);
}

START_TEST(test_config_errors)
{
    const char yaml[] = "train:\n  lrr: 1\n";
    tu_write_file(tu_path(root, "bad.yaml"), yaml, sizeof yaml - 1);
    char args[1200];
    snprintf(args, sizeof args, "-c %s", tu_path(root, "bad.yaml"));
    ck_assert_int_eq(train(args), 2);
    char *e = tu_read_file(tu_path(root, "err"), NULL);
    ck_assert_msg(strstr(e, "bad.yaml:2:3: unknown key 'train.lrr' (did you mean 'train.lr'?)"),
                  "%s", e);
    free(e);
    ck_assert_int_eq(train("--set train.epochs=zero"), 2);
    ck_assert_int_eq(train("--bogus"), 2);
    ck_assert_int_eq(train("--set train.lr=2e-4 --print-config"), 0);
    ck_assert(file_has(tu_path(root, "out"), "lr: 0.0002"));
    ck_assert_int_eq(train("--set train.content_loss=perceptual --set data.train=x"), 2);
    ck_assert(file_has(tu_path(root, "err"), "needs train.vgg_weights"));

    /* What a user reads: one line, the tool's name once, their file and the
     * problem first, our source location last in brackets. A folder as -c: */
    snprintf(args, sizeof args, "-c %s", root);
    ck_assert_int_eq(train(args), 2);
    e = tu_read_file(tu_path(root, "err"), NULL);
    char want[512];
    snprintf(want, sizeof want, "dsdeblur-train: error: %s: is a directory, not a configuration "
             "file [src/io/config.c:", root);
    ck_assert_msg(strncmp(e, want, strlen(want)) == 0 && tu_count_lines(e) == 1 &&
                      !strcmp(e + strlen(e) - 2, "]\n"),
                  "%s", e);
    free(e);
    /* a YAML syntax error is one, with its position, not a type error */
    const char open_list[] = "train:\n  lr: [1\n";
    tu_write_file(tu_path(root, "open.yaml"), open_list, sizeof open_list - 1);
    snprintf(args, sizeof args, "-c %s", tu_path(root, "open.yaml"));
    ck_assert_int_eq(train(args), 2);
    e = tu_read_file(tu_path(root, "err"), NULL);
    snprintf(want, sizeof want, "dsdeblur-train: error: %s:3:1: not valid YAML: did not find "
             "expected ',' or ']' (while parsing a flow sequence that starts at line 2, column "
             "7) [src/io/config.c:", tu_path(root, "open.yaml"));
    ck_assert_msg(strncmp(e, want, strlen(want)) == 0 && tu_count_lines(e) == 1, "%s", e);
    free(e);
}
END_TEST

START_TEST(test_run_and_resume)
{
    char args[4096];
    snprintf(args, sizeof args, "%s --steps 3", tiny());
    ck_assert_int_eq(train(args), 0);
    const char *files[] = {"run/config.yaml", "run/log.csv", "run/val.csv", "run/plot.svg",
                           "run/checkpoint-000000002.safetensors",
                           "run/checkpoint-000000003.safetensors", "run/generator.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        ck_assert_msg(tu_file_exists(tu_path(root, files[i])), "%s missing", files[i]);
    ck_assert_int_eq(file_lines(tu_path(root, "run/log.csv")), 4);
    ck_assert(file_has(tu_path(root, "run/config.yaml"), "content_loss: \"l1\""));

    snprintf(args, sizeof args, "%s --resume --steps 2", tiny());
    ck_assert_int_eq(train(args), 0);
    ck_assert_int_eq(file_lines(tu_path(root, "run/log.csv")), 6);
    ck_assert(tu_file_exists(tu_path(root, "run/checkpoint-000000005.safetensors")));
    ck_assert(tu_file_exists(tu_path(root, "run/checkpoint-000000004.safetensors")));
    ck_assert_msg(!tu_file_exists(tu_path(root, "run/checkpoint-000000003.safetensors")),
                  "run.keep=2 kept an old checkpoint");

    /* any checkpoint's generator can be exported for dsdeblur-run */
    snprintf(args, sizeof args, "%s --resume --export %s --f16", tiny(),
             tu_path(root, "g16.safetensors"));
    ck_assert_int_eq(train(args), 0);
    dsd_error err;
    dsd_generator_config gc;
    ck_assert_msg(dsd_generator_file_config(tu_path(root, "g16.safetensors"), &gc, &err) == DSD_OK,
                  "%s", err.message);
    ck_assert_int_eq(gc.base_width, 8);
    ck_assert_int_eq(file_lines(tu_path(root, "run/log.csv")), 6); /* exporting trains nothing */

    /* --resume on the generator file: a command to use it with, and how
     * training does resume, rather than a C function */
    snprintf(args, sizeof args, "%s --resume %s", tiny(),
             tu_path(root, "run/generator.safetensors"));
    ck_assert_int_eq(train(args), 1);
    char *g = tu_read_file(tu_path(root, "err"), NULL);
    char want[512];
    snprintf(want, sizeof want, "dsdeblur-train: error: %s: a generator weight file, not a "
             "training checkpoint", tu_path(root, "run/generator.safetensors"));
    ck_assert_msg(strncmp(g, want, strlen(want)) == 0 && tu_count_lines(g) == 1 &&
                      strstr(g, "`dsdeblur-run -m FILE`") &&
                      strstr(g, "resumes only from a checkpoint") && !strstr(g, "dsd_"),
                  "%s", g);
    free(g);

    /* other networks refuse the checkpoint and leave it in place */
    snprintf(args, sizeof args, "%s --set generator.n_blocks=2 --resume", tiny());
    ck_assert_int_eq(train(args), 1);
    char *e = tu_read_file(tu_path(root, "err"), NULL);
    ck_assert_msg(strstr(e, "n_blocks") != NULL, "%s", e);
    free(e);
    ck_assert(tu_file_exists(tu_path(root, "run/checkpoint-000000005.safetensors")));
}
END_TEST

START_TEST(test_sigterm_checkpoints)
{
    char args[4096];
    snprintf(args, sizeof args, "%s --set run.dir=%s --set run.every=100000", tiny(),
             tu_path(root, "sig"));
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "exec ./tools/dsdeblur-train %s >%s/out 2>%s/err", args, root, root);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait for a few logged steps (the log appears after the first) */
    int rows = 0;
    for (int i = 0; i < 600 && rows < 4; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        if (tu_file_exists(tu_path(root, "sig/log.csv")))
            rows = file_lines(tu_path(root, "sig/log.csv"));
    }
    ck_assert_int_ge(rows, 4);
    kill(pid, SIGTERM);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    int steps = file_lines(tu_path(root, "sig/log.csv")) - 1;
    char ck[128];
    snprintf(ck, sizeof ck, "sig/checkpoint-%09d.safetensors", steps);
    ck_assert_msg(tu_file_exists(tu_path(root, ck)), "no %s after SIGTERM", ck);
    ck_assert(tu_file_exists(tu_path(root, "sig/generator.safetensors")));
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "train-tool") != 0)
        return 1;
    Suite *s = suite_create("train_tool");
    TCase *tc = tcase_create("train_tool");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_run_and_resume);
    tcase_add_test(tc, test_sigterm_checkpoints);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    return rc;
}
