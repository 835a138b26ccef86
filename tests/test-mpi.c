/*
 * test-mpi.c: dsdeblur-train under mpirun (built --with-mpi only;
 * doc/distributed.md), two ranks on PoCL with one core each
 * (POCL_MAX_PTHREAD_COUNT=1), on a tiny configuration (generator width 8,
 * one block, 32 x 32 crops, dropout on). Checked:
 *   - np=2 x batch 1 for 10 steps ends with the weights of np=1 x batch 2 to
 *     1e-5 relative (norm of the difference over the norm, per network,
 *     without the weights no loss depends on: see inert() below);
 *   - np=2 run twice: bit-identical checkpoints (weights and Adam moments);
 *   - 5 steps at np=2 x batch 1, resumed at np=1 x batch 2 for 5 more: the
 *     weights of the 10 steps at np=2 to 1e-5 (the global batch is what
 *     counts);
 *   - SIGTERM to rank 1 alone: every rank finishes its step, mpirun exits 0,
 *     one checkpoint at the step the log reached;
 *   - a rank that fails (its data folder missing) ends the job with its
 *     message, no hang;
 *   - ranks that train differently (another lr on rank 1) are caught by the
 *     weight checksum: exit 1 naming the step and the rank.
 * The library's part (the same split in two threads, no MPI) is
 * tests/test-trainer-dp.c.
 */
#include "testutil.h"

#include "io/safetensors.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[64];

static void setup(void)
{
    const char *src = getenv("DSDEBLUR_TEST_SRCDIR");
    ck_assert_msg(src != NULL, "DSDEBLUR_TEST_SRCDIR is not set (run through make check)");
    tu_mkdir_p(tu_path(root, "data/blur"));
    tu_mkdir_p(tu_path(root, "data/sharp"));
    const char *pairs[][2] = {{"data/samples/dogs-blurred.png", "data/blur/a.png"},
                              {"data/samples/dogs-sharp.png", "data/sharp/a.png"}};
    for (int i = 0; i < 2; i++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/%s", src, pairs[i][0]);
        size_t n;
        void *bytes = tu_read_file(from, &n);
        tu_write_file(tu_path(root, pairs[i][1]), bytes, n);
        free(bytes);
    }
    char yaml[4096];
    int n = snprintf(yaml, sizeof yaml,
                     "data:\n  mode: paired\n  train_blur: %s/data/blur\n"
                     "  train_sharp: %s/data/sharp\n  crop: 32\n"
                     "generator:\n  base_width: 8\n  n_blocks: 1\n  mlp_ratio: 4\n"
                     "  dropout: 0.5\n"
                     "discriminator:\n  base_width: 8\n"
                     "train:\n  content_loss: l1\n  epochs: 1000\n  decay_from: 500\n"
                     "run:\n  every: 5\n  keep: 100\n",
                     root, root);
    tu_write_file(tu_path(root, "tiny.yaml"), yaml, (size_t)n);
}

/* "mpirun <flags> -np N" (MPMD: a whole app context list after the flags). */
static const char *mpirun(void)
{
    return geteuid() == 0 ? "mpirun --oversubscribe --allow-run-as-root"
                          : "mpirun --oversubscribe";
}

/* Runs `cmd` through the shell (output into root/out, root/err); the exit
 * status. */
static int shell(const char *cmd)
{
    char full[8192];
    int n = snprintf(full, sizeof full, "%s >%s/out 2>%s/err </dev/null", cmd, root, root);
    ck_assert(n > 0 && (size_t)n < sizeof full);
    int st = system(full);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", full);
    return WEXITSTATUS(st);
}

/* np ranks of dsdeblur-train with the tiny config, batch per rank, into dir;
 * extra arguments after. */
static int train(int np, int batch, const char *dir, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout 300 %s -np %d ./tools/dsdeblur-train -c %s "
             "--set train.batch=%d --set run.dir=%s -q %s", mpirun(), np,
             tu_path(root, "tiny.yaml"), batch, dir, extra);
    return shell(cmd);
}

static char *err_text(void) { return tu_read_file(tu_path(root, "err"), NULL); }

/* ------------------------------------------------------------------------ */
/* Checkpoints */

/* The D weights no loss depends on (see tests/test-trainer-dp.c): conv
 * biases before D's non-affine instance norms (layers 1 .. 3) and the last
 * layer's (the RaGAN loss is blind to a constant logit shift). */
static int inert(const char *name)
{
    int layer;
    char rest[32];
    return sscanf(name, "discriminator.layers.%d.%31s", &layer, rest) == 2 &&
           !strcmp(rest, "conv.bias") && layer >= 1;
}

static int is_weight(const char *name, const char *net)
{
    return !strncmp(name, net, strlen(net));
}

/* ||a - b|| / ||b|| over the weights of net ("generator." or
 * "discriminator.") in checkpoints a and b. */
static double weights_rel(const char *a_path, const char *b_path, const char *net)
{
    dsd_error err;
    dsd_safetensors *a, *b;
    TU_HOST_OK(dsd_safetensors_open(a_path, &a, &err), err);
    TU_HOST_OK(dsd_safetensors_open(b_path, &b, &err), err);
    double num = 0, den = 0;
    size_t tensors = 0;
    for (size_t i = 0; i < dsd_safetensors_count(b); i++) {
        const dsd_st_tensor *tb = dsd_safetensors_tensor(b, i);
        if (!is_weight(tb->name, net) || inert(tb->name))
            continue;
        const dsd_st_tensor *ta = dsd_safetensors_find(a, tb->name);
        ck_assert_msg(ta && ta->nbytes == tb->nbytes && tb->dtype == DSD_ST_F32,
                      "tensor %s differs in shape", tb->name);
        for (uint64_t k = 0; k < tb->numel; k++) {
            float x, y;
            memcpy(&x, (const char *)ta->data + 4 * k, 4);
            memcpy(&y, (const char *)tb->data + 4 * k, 4);
            num += ((double)x - y) * ((double)x - y);
            den += (double)y * y;
        }
        tensors++;
    }
    ck_assert_uint_gt(tensors, 0);
    dsd_safetensors_close(a);
    dsd_safetensors_close(b);
    return sqrt(num / den);
}

/* Every tensor of a and b bit for bit (the metadata, holding run.dir, aside). */
static void assert_same_tensors(const char *a_path, const char *b_path)
{
    dsd_error err;
    dsd_safetensors *a, *b;
    TU_HOST_OK(dsd_safetensors_open(a_path, &a, &err), err);
    TU_HOST_OK(dsd_safetensors_open(b_path, &b, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(a), dsd_safetensors_count(b));
    for (size_t i = 0; i < dsd_safetensors_count(b); i++) {
        const dsd_st_tensor *tb = dsd_safetensors_tensor(b, i);
        const dsd_st_tensor *ta = dsd_safetensors_find(a, tb->name);
        ck_assert_msg(ta && ta->nbytes == tb->nbytes, "tensor %s differs in shape", tb->name);
        ck_assert_msg(!memcmp(ta->data, tb->data, tb->nbytes), "tensor %s differs between "
                      "%s and %s", tb->name, a_path, b_path);
    }
    dsd_safetensors_close(a);
    dsd_safetensors_close(b);
}

static void assert_close(const char *a_path, const char *b_path, const char *what)
{
    double g = weights_rel(a_path, b_path, "generator.");
    double d = weights_rel(a_path, b_path, "discriminator.");
    fprintf(stderr, "%s: relative difference %.3g (G), %.3g (D)\n", what, g, d);
    ck_assert_msg(g <= 1e-5 && d <= 1e-5, "%s: weights differ by %.3g (G), %.3g (D) relative",
                  what, g, d);
}

static int count_checkpoints(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no folder %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += !strncmp(e->d_name, "checkpoint-", 11);
    closedir(d);
    return n;
}

static int file_lines(const char *path)
{
    size_t n;
    char *s = tu_read_file(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    free(s);
    return lines;
}

/* ------------------------------------------------------------------------ */
/* Tests */

START_TEST(test_split_matches_whole)
{
    char two[256], one[256], again[256];
    snprintf(two, sizeof two, "%s", tu_path(root, "np2"));
    snprintf(one, sizeof one, "%s", tu_path(root, "np1"));
    snprintf(again, sizeof again, "%s", tu_path(root, "np2-again"));
    ck_assert_int_eq(train(2, 1, two, "--steps 10 --check-every 1"), 0);
    ck_assert_int_eq(train(1, 2, one, "--steps 10"), 0);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/checkpoint-000000010.safetensors", two);
    snprintf(b, sizeof b, "%s/checkpoint-000000010.safetensors", one);
    assert_close(a, b, "np=2 x batch 1 vs np=1 x batch 2, 10 steps");

    /* twice: bit-identical */
    ck_assert_int_eq(train(2, 1, again, "--steps 10"), 0);
    snprintf(b, sizeof b, "%s/checkpoint-000000010.safetensors", again);
    assert_same_tensors(a, b);

    /* the first 5 steps at np=2, the next 5 at np=1 x batch 2 */
    char mixed[256], from[512];
    snprintf(mixed, sizeof mixed, "%s", tu_path(root, "mixed"));
    tu_mkdir_p(mixed);
    snprintf(from, sizeof from, "%s/checkpoint-000000005.safetensors", two);
    size_t n;
    void *bytes = tu_read_file(from, &n);
    snprintf(b, sizeof b, "%s/checkpoint-000000005.safetensors", mixed);
    tu_write_file(b, bytes, n);
    free(bytes);
    ck_assert_int_eq(train(1, 2, mixed, "--resume --steps 5"), 0);
    snprintf(b, sizeof b, "%s/checkpoint-000000010.safetensors", mixed);
    assert_close(b, a, "5 steps np=2 + 5 resumed at np=1 x batch 2 vs 10 at np=2");
}
END_TEST

/* The pid of rank `rank` of the dsdeblur-train writing into dir. */
static pid_t find_rank(const char *dir, int rank)
{
    DIR *d = opendir("/proc");
    ck_assert(d != NULL);
    pid_t found = 0;
    struct dirent *e;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    while (!found && (e = readdir(d)) != NULL) {
        char path[300];
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* argv[0] is the tool (not mpirun or the shell), and dir is in argv */
        int ours = strstr(buf, "dsdeblur-train") != NULL && !strstr(buf, "mpirun");
        for (size_t i = 0; ours && i < n; i++)
            if (buf[i] == '\0')
                buf[i] = '\n';
        if (!ours || !strstr(buf, dir))
            continue;
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        if (!(f = fopen(path, "rb")))
            continue;
        char env[65536];
        n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        for (size_t i = 0; i + strlen(want) <= n; i++)
            if (!memcmp(env + i, want, strlen(want)) && (i == 0 || env[i - 1] == '\0') &&
                (env[i + strlen(want)] == '\0')) {
                found = pid;
                break;
            }
    }
    closedir(d);
    return found;
}

START_TEST(test_sigterm_one_rank)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_path(root, "sig"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s -np 2 ./tools/dsdeblur-train -c %s --set train.batch=1 "
             "--set run.dir=%s --set run.every=100000 -q >%s/out 2>%s/err </dev/null",
             mpirun(), tu_path(root, "tiny.yaml"), dir, root, root);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char log[512];
    snprintf(log, sizeof log, "%s/log.csv", dir);
    int rows = 0;
    for (int i = 0; i < 1200 && rows < 4; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        if (tu_file_exists(log))
            rows = file_lines(log);
    }
    ck_assert_int_ge(rows, 4);
    pid_t one = find_rank(dir, 1);
    ck_assert_msg(one > 0, "rank 1 not found");
    kill(one, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1200; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        ck_assert(w == 0);
        if (i == 1199) {
            kill(pid, SIGKILL);
            ck_abort_msg("mpirun still running 120 s after SIGTERM to rank 1");
        }
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    char *e = err_text();
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d: %s", st, e);
    free(e);
    int steps = file_lines(log) - 1;
    ck_assert_int_eq(count_checkpoints(dir), 1);
    char ck[512];
    snprintf(ck, sizeof ck, "%s/checkpoint-%09d.safetensors", dir, steps);
    ck_assert_msg(tu_file_exists(ck), "no %s after SIGTERM", ck);
}
END_TEST

START_TEST(test_failing_rank_ends_the_job)
{
    char cmd[4096];
    const char *y = tu_path(root, "tiny.yaml");
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_path(root, "fail"));
    snprintf(cmd, sizeof cmd, "timeout 300 %s -np 1 ./tools/dsdeblur-train -c %s --set "
             "run.dir=%s -q --steps 1000 : -np 1 ./tools/dsdeblur-train -c %s --set run.dir=%s "
             "--set data.train_sharp=%s/missing -q --steps 1000", mpirun(), y, dir, y, dir, root);
    int rc = shell(cmd);
    char *e = err_text();
    ck_assert_msg(rc != 0 && rc != 124, "exit status %d (124: a hang): %s", rc, e);
    ck_assert_msg(strstr(e, "dsdeblur-train[rank 1]: error:") && strstr(e, "missing"), "%s", e);
    free(e);
}
END_TEST

START_TEST(test_divergence_is_caught)
{
    char cmd[4096];
    const char *y = tu_path(root, "tiny.yaml");
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_path(root, "diverge"));
    snprintf(cmd, sizeof cmd, "timeout 300 %s -np 1 ./tools/dsdeblur-train -c %s --set "
             "run.dir=%s -q --steps 10 --check-every 2 : -np 1 ./tools/dsdeblur-train -c %s "
             "--set run.dir=%s --set train.lr=0.0002 -q --steps 10 --check-every 2", mpirun(),
             y, dir, y, dir);
    int rc = shell(cmd);
    char *e = err_text();
    ck_assert_msg(rc == 1, "exit status %d: %s", rc, e);
    ck_assert_msg(strstr(e, "step 2: the weights of rank 1 differ from rank 0's"), "%s", e);
    free(e);
    ck_assert_int_eq(count_checkpoints(dir), 0);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(root, sizeof root, "mpi") != 0)
        return 1;
    setenv("POCL_MAX_PTHREAD_COUNT", "1", 1); /* one PoCL core per rank */
    /* containers often forbid the cross-process reads (CMA) of Open MPI's
     * shared-memory transport; the copy through the shared segment always works */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_split_matches_whole);
    tcase_add_test(tc, test_sigterm_one_rank);
    tcase_add_test(tc, test_failing_rank_ends_the_job);
    tcase_add_test(tc, test_divergence_is_caught);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_rmtree(root);
    return rc;
}
