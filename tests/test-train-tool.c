/*
 * test-train-tool.c: the dsdeblur-train tool end to end on a tiny paired
 * data set (run from the build directory, as make check does): a
 * configuration error gives exit 2 and file:line:column; --print-config
 * shows overrides; a short run writes config, log, plot, checkpoint and
 * generator; --resume continues from the newest checkpoint and the log
 * follows it; a checkpoint of other networks is refused, and a generator file
 * given to --resume is named as one with the commands that take it; SIGTERM
 * finishes the step, writes a checkpoint and exits 0. Error lines read
 * "dsdeblur-train: error: FILE: problem [src/...]". Files (tools/cli.h's
 * rules): --export never replaces the checkpoint it reads, nor an existing
 * file without --force; a new run does not start over an old one without
 * --force; temporaries of killed writers are removed at the start; --resume
 * falls back from a truncated checkpoint (or a FIFO named like one) to the
 * newest that loads, and says so clearly when there is none; a FIFO given as
 * -c or --resume, or found as run.dir/log.csv, is refused at once instead of
 * blocking.
 */
#include "testutil.h"

#include <signal.h>
#include <stdarg.h>
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

/* The same, failing the test if the tool hangs (a FIFO read). */
static int train_limit(const char *args)
{
    return tu_run_tool_limit("dsdeblur-train", args, root, 600);
}

/* tiny() with run.dir root/dir. */
static const char *tiny_in(const char *dir)
{
    static char args[4096];
    snprintf(args, sizeof args, "%s --set run.dir=%s", tiny(), tu_path(root, dir));
    return args;
}

/* Asserts root/err contains every string that follows (NULL-terminated). */
static void err_has(const char *first, ...)
{
    char *e = tu_read_file(tu_path(root, "err"), NULL);
    va_list ap;
    va_start(ap, first);
    for (const char *want = first; want; want = va_arg(ap, const char *))
        ck_assert_msg(strstr(e, want), "stderr lacks '%s':\n%s", want, e);
    va_end(ap);
    free(e);
}

/* Cuts the file at path to half its size (a checkpoint torn by a crash). */
static void truncate_half(const char *path)
{
    size_t n;
    char *b = tu_read_file(path, &n);
    tu_write_file(path, b, n / 2);
    free(b);
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
    snprintf(want, sizeof want, "dsdeblur-train: error: %s: is a directory, not a regular "
             "file\n", root);
    ck_assert_msg(strcmp(e, want) == 0, "%s", e);
    free(e);
    /* a YAML syntax error is one, with its position, not a type error */
    const char open_list[] = "train:\n  lr: [1\n";
    tu_write_file(tu_path(root, "open.yaml"), open_list, sizeof open_list - 1);
    snprintf(args, sizeof args, "-c %s", tu_path(root, "open.yaml"));
    ck_assert_int_eq(train(args), 2);
    e = tu_read_file(tu_path(root, "err"), NULL);
    snprintf(want, sizeof want, "dsdeblur-train: error: %s:3:1: not valid YAML: did not find "
             "expected ',' or ']' (while parsing a flow sequence that starts at line 2, column "
             "7) [src/io/yaml_reader.c:", tu_path(root, "open.yaml"));
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
    size_t gen_bytes;
    char *gen = tu_read_file(tu_path(root, "run/generator.safetensors"), &gen_bytes);
    tu_write_file(tu_path(root, "gen-copy.safetensors"), gen, gen_bytes); /* not in run.dir */
    free(gen);
    snprintf(args, sizeof args, "%s --resume %s", tiny(), tu_path(root, "gen-copy.safetensors"));
    ck_assert_int_eq(train(args), 1);
    char *g = tu_read_file(tu_path(root, "err"), NULL);
    char want[512];
    snprintf(want, sizeof want, "dsdeblur-train: error: %s: a generator weight file, not a "
             "training checkpoint", tu_path(root, "gen-copy.safetensors"));
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

START_TEST(test_export_and_new_run)
{
    char args[8192], ck[1024], g[1024];
    snprintf(args, sizeof args, "%s --steps 2", tiny_in("safe"));
    ck_assert_int_eq(train(args), 0);
    tu_path_into(ck, sizeof ck, root, "safe/checkpoint-000000002.safetensors");
    size_t n0, n1;
    char *before = tu_read_file(ck, &n0);

    /* --resume X --export X: the checkpoint resumed is never replaced, even
     * with --force, whether named or found as the newest */
    snprintf(args, sizeof args, "%s --resume %s --export %s --force", tiny_in("safe"), ck, ck);
    ck_assert_int_eq(train(args), 1);
    err_has("refusing to overwrite an input", NULL);
    snprintf(args, sizeof args, "%s --resume --export %s --force", tiny_in("safe"), ck);
    ck_assert_int_eq(train(args), 1);
    err_has("refusing to overwrite an input", NULL);
    char *after = tu_read_file(ck, &n1);
    ck_assert_msg(n0 == n1 && !memcmp(before, after, n0), "the checkpoint changed");
    free(after);

    /* an existing file: only with --force */
    tu_path_into(g, sizeof g, root, "safe-g.safetensors");
    tu_write_file(g, "keep", 4);
    snprintf(args, sizeof args, "%s --resume --export %s", tiny_in("safe"), g);
    ck_assert_int_eq(train(args), 1);
    err_has("exists; use --force", NULL);
    char *kept = tu_read_file(g, NULL);
    ck_assert_str_eq(kept, "keep");
    free(kept);
    snprintf(args, sizeof args, "%s --resume --export %s --force", tiny_in("safe"), g);
    ck_assert_int_eq(train(args), 0);
    dsd_error err;
    dsd_generator_config gc;
    ck_assert_msg(dsd_generator_file_config(g, &gc, &err) == DSD_OK, "%s", err.message);

    /* a new run over the old one: refused without --force, which starts
     * over (the old checkpoints removed, so --resume cannot mix two runs) */
    snprintf(args, sizeof args, "%s --steps 1", tiny_in("safe"));
    ck_assert_int_eq(train(args), 2);
    err_has("holds an earlier run", "--resume", "--force", NULL);
    after = tu_read_file(ck, &n1);
    ck_assert_msg(n0 == n1 && !memcmp(before, after, n0), "the checkpoint changed");
    free(after);
    free(before);
    snprintf(args, sizeof args, "%s --steps 1 --force", tiny_in("safe"));
    ck_assert_int_eq(train(args), 0);
    ck_assert(!tu_file_exists(ck));
    ck_assert(tu_file_exists(tu_path(root, "safe/checkpoint-000000001.safetensors")));
}
END_TEST

START_TEST(test_stale_temporaries_and_fallback)
{
    char args[8192], name[256];
    snprintf(args, sizeof args, "%s --steps 4 --set run.keep=3", tiny_in("fb"));
    ck_assert_int_eq(train(args), 0);

    /* what SIGKILLs during writes leave: a checkpoint, the plot, an image */
    long dead = tu_dead_pid();
    static char big[100000];
    snprintf(name, sizeof name, "fb/checkpoint-000000006.safetensors.tmp.%ld", dead);
    tu_write_file(tu_path(root, name), big, sizeof big);
    snprintf(name, sizeof name, "fb/plot.svg.tmp.%ld", dead);
    tu_write_file(tu_path(root, name), big, 1000);
    snprintf(name, sizeof name, "fb/x.png.tmp.%ld.0", dead);
    tu_write_file(tu_path(root, name), big, 10);
    /* kept: a live writer's (this process), and a name that is no temporary */
    char live[256];
    snprintf(live, sizeof live, "fb/other.tmp.%ld", (long)getpid());
    tu_write_file(tu_path(root, live), big, 10);
    tu_write_file(tu_path(root, "fb/notes.tmp.txt"), big, 10);

    /* the newest checkpoint torn, and a FIFO named as a newer one */
    truncate_half(tu_path(root, "fb/checkpoint-000000004.safetensors"));
    tu_mkfifo(tu_path(root, "fb/checkpoint-000000009.safetensors"));
    snprintf(args, sizeof args, "%s --resume --steps 1 --set run.keep=3", tiny_in("fb"));
    ck_assert_int_eq(train_limit(args), 0);
    err_has("removed 3 stale temporary files (0.1 MB)", "checkpoint-000000009.safetensors: is a FIFO",
            "skipping a damaged checkpoint", "checkpoint-000000004.safetensors", NULL);
    ck_assert_int_eq(tu_count_temporaries(tu_path(root, "fb")), 2);
    ck_assert(tu_file_exists(tu_path(root, live)));
    /* resumed from step 2: its log rows, then one step */
    ck_assert_int_eq(file_lines(tu_path(root, "fb/log.csv")), 4);
    ck_assert(tu_file_exists(tu_path(root, "fb/checkpoint-000000003.safetensors")));
    remove(tu_path(root, live));

    /* none loads: a clear error */
    truncate_half(tu_path(root, "fb/checkpoint-000000003.safetensors"));
    ck_assert_int_eq(train_limit(args), 1);
    err_has("none of the 3 checkpoints", "loads", NULL);
}
END_TEST

START_TEST(test_resume_nothing)
{
    /* a run killed while writing its first checkpoint */
    char args[8192], name[256];
    tu_mkdir_p(tu_path(root, "none"));
    snprintf(name, sizeof name, "none/checkpoint-000000002.safetensors.tmp.%ld", tu_dead_pid());
    tu_write_file(tu_path(root, name), "partial", 7);
    tu_write_file(tu_path(root, "none/log.csv"), "step\n0\n", 7);
    snprintf(args, sizeof args, "%s --resume", tiny_in("none"));
    ck_assert_int_eq(train(args), 1);
    err_has("removed 1 stale temporary file ", "no checkpoint in", "start it again without --resume",
            NULL);
    ck_assert_int_eq(tu_count_temporaries(tu_path(root, "none")), 0);
    /* and it starts again without --resume (no --force needed) */
    snprintf(args, sizeof args, "%s --steps 1", tiny_in("none"));
    ck_assert_int_eq(train(args), 0);
}
END_TEST

START_TEST(test_fifo_inputs)
{
    char args[8192];
    tu_mkfifo(tu_path(root, "fifo.yaml"));
    snprintf(args, sizeof args, "-c %s", tu_path(root, "fifo.yaml"));
    ck_assert_int_eq(train_limit(args), 2);
    err_has("fifo.yaml: is a FIFO", NULL);
    tu_mkfifo(tu_path(root, "fifo.safetensors"));
    snprintf(args, sizeof args, "%s --resume %s", tiny_in("ff"), tu_path(root, "fifo.safetensors"));
    ck_assert_int_eq(train_limit(args), 1);
    err_has("fifo.safetensors: is a FIFO", NULL);
    /* a FIFO where the run's log goes: an error, not a hang */
    tu_mkdir_p(tu_path(root, "fl"));
    tu_mkfifo(tu_path(root, "fl/log.csv"));
    snprintf(args, sizeof args, "%s --steps 1", tiny_in("fl"));
    ck_assert_int_eq(train_limit(args), 1);
    err_has("log.csv: not a regular file", NULL);
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
    tcase_add_test(tc, test_export_and_new_run);
    tcase_add_test(tc, test_stale_temporaries_and_fallback);
    tcase_add_test(tc, test_resume_nothing);
    tcase_add_test(tc, test_fifo_inputs);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    return rc;
}
