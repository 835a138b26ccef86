/*
 * dsdeblur-train: trains the deblurring GAN of the paper (doc/dsdeblur-train.1).
 *
 * The loop a researcher leaves running for days: configuration from YAML
 * files and --set overrides (printed and saved beside the checkpoints), a
 * progress bar on a terminal and plain lines otherwise, a CSV log and an SVG
 * plot, validation with the best generator kept, checkpoints every
 * run.every steps (atomic, the last run.keep kept), Ctrl-C / SIGTERM
 * finishing the current step and checkpointing, and --resume continuing bit
 * for bit. The work itself is the library's trainer (src/train/trainer.c).
 *
 * Files (the rules of tools/cli.h): a run starts by removing the temporary
 * files that killed runs left in run.dir; a new run does not start over a
 * previous one's checkpoints without --force; --resume without FILE falls
 * back from a damaged newest checkpoint to the newest one that loads (with
 * a warning naming it and why); --export never replaces the checkpoint it
 * exports from (or any input) and an existing file only with --force; no
 * file of run.dir is written over an input (-c config.yaml of the run
 * itself is left as it is).
 *
 * Under mpirun (built --with-mpi, tools/train_comm.c; doc/distributed.md)
 * every rank is one data-parallel replica on its own device: all train, rank
 * 0 alone writes the run folder, a stop signal on any rank stops all after
 * the same step, and a rank that fails ends the job (MPI_Abort).
 *
 * Exit status: 0 done or interrupted cleanly, 1 a training error (data,
 * device, NaN, no checkpoint to resume, an output refused, replicas
 * diverged), 2 bad usage or configuration (a new run over an old one
 * without --force).
 */
#include <config.h>

#include "cli.h"
#include "train_comm.h"

#include <clFFT.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "dsdeblur-train"; /* "dsdeblur-train[rank R]" with several ranks */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-c CONFIG.yaml]... [--set KEY=VALUE]... [options]\n"
            "  -c, --config FILE   apply a YAML configuration (repeatable; later files win).\n"
            "                      Defaults are the paper's (data/paper.yaml, without paths)\n"
            "  --set KEY=VALUE     override one key, e.g. --set train.lr=2e-4 (repeatable)\n"
            "  --resume [FILE]     continue from a checkpoint; without FILE, the newest\n"
            "                      checkpoint in run.dir that loads\n"
            "  --steps N           stop after N more steps (a checkpoint is written)\n"
            "  --export FILE       write the generator (after --resume: the checkpoint's) as\n"
            "                      a weight file for dsdeblur-run, then exit; --f16 halves it\n"
            "  --force             replace an existing --export FILE; start a new run in a\n"
            "                      run.dir holding an old one (its checkpoints are removed)\n"
            "  --device SEL        OpenCL device (index, P:D, gpu, cpu or a name substring);\n"
            "                      under mpirun, default: GPU number <local rank> of the node\n"
            "  --check-every N     under mpirun: compare the ranks' weights every N steps\n"
            "                      (default 100; 0: at the start and the end only)\n"
            "  --print-config      print the effective configuration and exit\n"
            "  --list-keys         list every configuration key and exit\n"
            "  --list-devices      list OpenCL devices and exit\n"
            "  -q, --quiet         no progress output (errors and warnings only)\n"
            "  -h, --help, --version\n"
            "Writes into run.dir: config.yaml, log.csv, val.csv, plot.svg,\n"
            "checkpoint-<step>.safetensors, best.safetensors, generator.safetensors.\n",
            prog);
}

/* ------------------------------------------------------------------------ */
/* Run folder helpers */

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

static void checkpoint_path(char *buf, size_t size, const char *dir, uint64_t step)
{
    snprintf(buf, size, "%s/checkpoint-%09llu.safetensors", dir, (unsigned long long)step);
}

/* The steps of the checkpoints in dir, ascending (malloc'd). */
static size_t list_checkpoints(const char *dir, unsigned long long **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    unsigned long long *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long step;
        char tail[32];
        if (sscanf(e->d_name, "checkpoint-%llu.%31s", &step, tail) == 2 &&
            !strcmp(tail, "safetensors")) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                unsigned long long *g = realloc(v, cap * sizeof *g);
                if (!g)
                    break;
                v = g;
            }
            v[n++] = step;
        }
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of files */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            unsigned long long t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *out = v;
    return n;
}

/* Removes all but the newest `keep` checkpoints. */
static void prune_checkpoints(const char *dir, int keep)
{
    unsigned long long *steps;
    size_t n = list_checkpoints(dir, &steps);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char path[4096];
        checkpoint_path(path, sizeof path, dir, steps[i]);
        if (remove(path) != 0)
            fprintf(stderr, "%s: warning: cannot remove old checkpoint %s: %s\n", prog, path,
                    strerror(errno));
    }
    free(steps);
}

/* ------------------------------------------------------------------------ */
/* Progress */

static void format_duration(double s, char *buf, size_t size)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 86400)
        snprintf(buf, size, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
    else if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

typedef struct progress {
    int tty, quiet;
    double start, last_print;
    uint64_t first_step, total;
    double avg_d, avg_g, avg_c; /* exponential moving averages for display */
    int have_avg, have_gan_avg;
} progress;

static void progress_update(progress *p, const dsd_step_stats *s, int epochs)
{
    if (p->quiet)
        return;
    const double a = 0.05;
    p->avg_c = p->have_avg ? p->avg_c + a * (s->loss_content - p->avg_c) : s->loss_content;
    p->have_avg = 1;
    if (s->adversarial) { /* the GAN's averages start with its first step, after any warm-up */
        p->avg_d = p->have_gan_avg ? p->avg_d + a * (s->loss_d - p->avg_d) : s->loss_d;
        p->avg_g = p->have_gan_avg ? p->avg_g + a * (s->loss_g_adv - p->avg_g) : s->loss_g_adv;
        p->have_gan_avg = 1;
    }
    double now = cli_now();
    uint64_t done = s->step + 1;
    if (!p->tty && now - p->last_print < 10.0 && done != p->total && done != p->first_step + 1)
        return;
    if (p->tty && now - p->last_print < 0.2 && done != p->total)
        return;
    p->last_print = now;
    double rate = (double)(done - p->first_step) / fmax(now - p->start, 1e-9);
    char eta[32];
    format_duration((double)(p->total - done) / rate, eta, sizeof eta);
    double frac = p->total ? (double)done / (double)p->total : 1;
    if (p->tty) {
        char bar[21];
        int fill = (int)(frac * 20);
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        char gan[64] = "warm-up";
        if (s->adversarial)
            snprintf(gan, sizeof gan, "L_D %.3f L_G %.3f", p->avg_d, p->avg_g);
        fprintf(stderr, "\r[%s] %5.1f%% step %llu/%llu epoch %d/%d  %.2f it/s  ETA %s  "
                "%s content %.4f lr %.2g \033[K", bar, 100 * frac,
                (unsigned long long)done, (unsigned long long)p->total, s->epoch + 1, epochs,
                rate, eta, gan, p->avg_c, s->lr);
    } else {
        char gan[64] = "warm-up";
        if (s->adversarial)
            snprintf(gan, sizeof gan, "L_D %.4f L_G %.4f", s->loss_d, s->loss_g_adv);
        fprintf(stderr, "step %llu/%llu epoch %d/%d %.2f it/s ETA %s %s content %.5f lr %.3g\n",
                (unsigned long long)done, (unsigned long long)p->total, s->epoch + 1, epochs,
                rate, eta, gan, s->loss_content, s->lr);
    }
}

static void progress_break(const progress *p)
{
    if (p->tty && !p->quiet)
        fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Main */

typedef struct options {
    cli_config_args config;   /* -c FILE, --set KEY=VALUE */
    const char *resume;       /* NULL, "" (newest) or a path */
    long long steps;          /* -1: to the end */
    const char *device;
    const char *export_path;  /* --export: write the generator and stop */
    int export_f16;
    int force;                /* --force */
    int print_config, list_keys, quiet;
    int check_every;          /* replicas: weight checksums compared every N steps */
} options;

/* -1 to go on, or the exit status when the tool stops here (--help,
 * --version, --list-devices: 0; a usage error: 2). */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.steps = -1, .check_every = 100};
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, CLI_LIST_DEVICES | CLI_QUIET);
    while (cli_args_next(&a)) {
        const char *v;
        char *end;
        if (cli_args_config(&a, &o->config)) {
            continue;
        } else if (cli_args_option(&a, NULL, "--resume")) {
            o->resume = cli_args_optional_value(&a);
        } else if (cli_args_option(&a, NULL, "--steps")) {
            if ((v = cli_args_value(&a))) {
                o->steps = strtoll(v, &end, 10);
                if (*end || o->steps < 0)
                    cli_args_fail(&a, "--steps needs a count, not '%s'", v);
            }
        } else if (cli_args_option(&a, NULL, "--export")) {
            o->export_path = cli_args_value(&a);
        } else if (cli_args_option(&a, NULL, "--check-every")) {
            cli_args_int(&a, 0, 1 << 30, &o->check_every);
        } else if (cli_args_flag(&a, NULL, "--f16")) {
            o->export_f16 = 1;
        } else if (cli_args_flag(&a, "-f", "--force")) {
            o->force = 1;
        } else if (cli_args_flag(&a, NULL, "--print-config")) {
            o->print_config = 1;
        } else if (cli_args_flag(&a, NULL, "--list-keys")) {
            o->list_keys = 1;
        } else {
            cli_args_unknown(&a);
        }
    }
    o->device = a.device;
    o->quiet = a.quiet;
    return cli_args_end(&a);
}

/* The configuration from defaults, files, overrides and --device; 0 or an
 * exit status. */
static int build_config(const options *o, dsd_config *cfg)
{
    int rc = cli_config_build(prog, cfg, &o->config);
    if (rc || !o->device)
        return rc;
    dsd_error err;
    char set[1024];
    snprintf(set, sizeof set, "device=%s", o->device);
    if (dsd_config_set(cfg, set, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        dsd_config_free(cfg);
        return 2;
    }
    return 0;
}

/* resumed: the checkpoint the run resumed from (empty for a new run). */
static int save_checkpoint(dsd_trainer *t, const dsd_config *cfg, const cli_files *resumed)
{
    dsd_error err;
    char path[4096];
    checkpoint_path(path, sizeof path, cfg->run.dir, dsd_trainer_step_index(t));
    if (cli_files_find(resumed, path))
        return 0; /* no step since the resume (--steps 0): that file is this state */
    if (dsd_trainer_save_checkpoint(t, path, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    prune_checkpoints(cfg->run.dir, cfg->run.keep);
    return 0;
}

/* Validation, log, plot, and best.safetensors on a new best PSNR. */
static int validate(dsd_trainer *t, const dsd_config *cfg, dsd_train_log *log, double *best,
                    const progress *p, int epoch)
{
    dsd_error err;
    dsd_val_stats v;
    if (dsd_trainer_validate(t, &v, &err) != DSD_OK) {
        progress_break(p);
        cli_print_error(prog, &err);
        return 1;
    }
    int improved = v.psnr > *best;
    if (!p->quiet) {
        progress_break(p);
        fprintf(stderr, "validation at step %llu: PSNR %.3f dB, SSIM %.4f over %d images "
                "(%.1f s)%s\n", (unsigned long long)dsd_trainer_step_index(t), v.psnr, v.ssim,
                v.images, v.seconds, improved ? ", best so far" : "");
    }
    if (dsd_train_log_val(log, dsd_trainer_step_index(t), epoch, &v, &err) != DSD_OK ||
        dsd_train_log_plot(log, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    if (improved) {
        *best = v.psnr;
        char path[4096];
        snprintf(path, sizeof path, "%s/best.safetensors", cfg->run.dir);
        if (dsd_trainer_save_generator(t, path, DSD_STORAGE_F32, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            return 1;
        }
    }
    return 0;
}

/* The files this command reads, which nothing it writes may replace: the
 * configuration files, the VGG weights, and the checkpoint(s) --resume may
 * load (every checkpoint of run.dir without FILE). 0, or 1 with the line
 * printed. */
static int list_inputs(const options *o, const dsd_config *cfg, cli_files *read)
{
    int rc = 0;
    for (int i = 0; i < o->config.n_files && !rc; i++)
        rc = cli_files_add(read, o->config.files[i]);
    if (!rc && *cfg->train.vgg_weights)
        rc = cli_files_add(read, cfg->train.vgg_weights);
    if (!rc && o->resume && *o->resume)
        rc = cli_files_add(read, o->resume);
    if (!rc && o->resume && !*o->resume) {
        unsigned long long *steps;
        size_t n = list_checkpoints(cfg->run.dir, &steps);
        for (size_t i = 0; i < n && !rc; i++) {
            char path[4096];
            checkpoint_path(path, sizeof path, cfg->run.dir, steps[i]);
            rc = cli_files_add(read, path);
        }
        free(steps);
    }
    if (rc)
        fprintf(stderr, "%s: error: out of memory\n", prog);
    return rc ? 1 : 0;
}

/* A new run (no --resume) in a run.dir that holds an earlier run's
 * checkpoints or weights: refused (exit 2) without --force, since its first
 * checkpoint would be pruned in favour of the old run's later ones and
 * --resume would mix the two. With --force and start_over (called once the
 * trainer is ready, so a run that cannot start loses nothing) the old
 * checkpoints are removed. 0 to go on. */
static int check_new_run(const options *o, const dsd_config *cfg, int start_over)
{
    unsigned long long *steps;
    size_t n = list_checkpoints(cfg->run.dir, &steps);
    char path[4096];
    const char *held = NULL;
    struct stat st;
    if (n) {
        checkpoint_path(path, sizeof path, cfg->run.dir, steps[n - 1]);
        held = path;
    } else {
        static const char *const weights[] = {"generator.safetensors", "best.safetensors"};
        for (int i = 0; i < 2 && !held; i++) {
            snprintf(path, sizeof path, "%s/%s", cfg->run.dir, weights[i]);
            if (stat(path, &st) == 0)
                held = path;
        }
    }
    int rc = 0;
    if (held && !o->force) {
        fprintf(stderr, "%s: error: run.dir %s holds an earlier run (%s); continue it with "
                "--resume, choose another run.dir, or start over with --force (its "
                "checkpoints are removed)\n", prog, cfg->run.dir, held);
        rc = 2;
    } else if (held && start_over) {
        size_t removed = 0;
        for (size_t i = 0; i < n; i++) {
            checkpoint_path(path, sizeof path, cfg->run.dir, steps[i]);
            if (remove(path) == 0)
                removed++;
            else
                fprintf(stderr, "%s: warning: cannot remove old checkpoint %s: %s\n", prog,
                        path, strerror(errno));
        }
        if (removed && !o->quiet)
            fprintf(stderr, "--force: starting over in %s; removed the earlier run's %zu "
                    "checkpoint%s\n", cfg->run.dir, removed, removed == 1 ? "" : "s");
    }
    free(steps);
    return rc;
}

/* The run's own files are never written over an input of this command
 * (tools/cli.h): an error for the logs and weights, while a config.yaml that
 * is the -c file itself is left as it is (the checkpoints hold the effective
 * configuration too). 0, or 1 with the line printed. */
static int save_run_config(const dsd_config *cfg, const cli_files *read)
{
    static const char *const names[] = {"log.csv", "val.csv", "plot.svg", "best.safetensors",
                                        "generator.safetensors"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", cfg->run.dir, names[i]);
        const char *in = cli_files_find(read, path);
        if (in) {
            fprintf(stderr, "%s: error: %s is the input %s; refusing to overwrite an input: "
                    "choose another run.dir\n", prog, path, in);
            return 1;
        }
    }
    dsd_error err;
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    if (cli_files_find(read, path))
        return 0;
    if (dsd_config_save(cfg, path, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    return 0;
}

/* --resume: FILE, or without it the newest checkpoint of run.dir that loads,
 * falling back from a damaged one (a warning naming it and why) to the one
 * before. The file resumed from goes into *resumed. 0, or 1 with the error
 * printed. */
static int resume(dsd_trainer *t, const options *o, const dsd_config *cfg, cli_files *resumed,
                  int quiet)
{
    dsd_error err;
    char path[4096];
    if (*o->resume) {
        if (dsd_trainer_resume(t, o->resume, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            return 1;
        }
        snprintf(path, sizeof path, "%s", o->resume);
    } else {
        unsigned long long *steps;
        size_t n = list_checkpoints(cfg->run.dir, &steps), i = n;
        while (i-- > 0) {
            checkpoint_path(path, sizeof path, cfg->run.dir, steps[i]);
            const char *why = cli_not_regular(path);
            if (!why && dsd_trainer_resume(t, path, &err) == DSD_OK)
                break;
            /* a file that does not load: damaged (truncated, corrupt,
             * unreadable) means fall back; anything else (other networks,
             * another seed, the device) is this run's problem, not the file's */
            if (!why && err.status != DSD_ERR_FORMAT && err.status != DSD_ERR_IO &&
                err.status != DSD_ERR_NAN) {
                cli_print_error(prog, &err);
                free(steps);
                return 1;
            }
            fprintf(stderr, "%s: warning: skipping a damaged checkpoint: %s%s%s%s\n", prog,
                    why ? path : err.message, why ? ": " : "", why ? why : "",
                    i ? "; trying the one before" : "");
        }
        free(steps);
        if (i == (size_t)-1) {
            fprintf(stderr, "%s: error: --resume: none of the %zu checkpoints in %s loads (see "
                    "the warnings above); start over without --resume and with --force, or "
                    "restore a checkpoint\n", prog, n, cfg->run.dir);
            return 1;
        }
    }
    if (cli_files_add(resumed, path)) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "resumed from %s at step %llu\n", path,
                (unsigned long long)dsd_trainer_step_index(t));
    return 0;
}

/* Every file check that needs no device, before the device starts. 0 to go
 * on, or the exit status. */
static int check_files(const options *o, const dsd_config *cfg, cli_files *read)
{
    if (o->resume && *o->resume && cli_check_input(prog, o->resume))
        return 1;
    if (*cfg->train.vgg_weights && cli_check_input(prog, cfg->train.vgg_weights))
        return 1;
    if (list_inputs(o, cfg, read))
        return 1;
    if (o->resume && !*o->resume) {
        unsigned long long *steps;
        size_t n = list_checkpoints(cfg->run.dir, &steps);
        free(steps);
        if (n == 0) {
            /* also what a run killed during its first checkpoint leaves */
            fprintf(stderr, "%s: error: --resume: no checkpoint in %s (no "
                    "checkpoint-*.safetensors): the run stopped before its first checkpoint, "
                    "so there is nothing to resume; start it again without --resume\n", prog,
                    cfg->run.dir);
            return 1;
        }
    }
    if (o->export_path)
        return cli_check_output(prog, read, o->export_path, o->force);
    if (!o->resume)
        return check_new_run(o, cfg, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replicas (mpirun; doc/distributed.md) */

/* The device selector of this rank: --device / the config's device when
 * given; with several ranks, else GPU number <local rank> of the node (modulo
 * the node's GPUs, with a warning when ranks share one); else NULL (the
 * default device). */
static const char *rank_device(const dsd_config *cfg, const train_comm *tc, char *buf,
                               size_t size)
{
    if (*cfg->device)
        return cfg->device;
    if (tc->comm.size <= 1)
        return NULL;
    dsd_device_info *list = NULL;
    size_t count = 0, gpus = 0;
    dsd_error err;
    if (dsd_device_list(&list, &count, &err) != DSD_OK)
        return NULL; /* cli_context reports the problem */
    for (size_t i = 0; i < count; i++)
        gpus += list[i].is_gpu != 0;
    const char *sel = NULL;
    if (gpus > 0) {
        size_t want = (size_t)tc->local_rank % gpus;
        for (size_t i = 0, k = 0; i < count; i++)
            if (list[i].is_gpu && k++ == want) {
                snprintf(buf, size, "%d", list[i].index);
                sel = buf;
            }
        if ((size_t)tc->local_size > gpus && tc->local_rank == 0)
            fprintf(stderr, "%s: warning: %d ranks on this node share its %zu GPU(s)\n", prog,
                    tc->local_size, gpus);
    }
    free(list);
    return sel;
}

/* Compares the weights of all ranks (collective); 0, or 1 with the error
 * printed by rank 0 (every rank returns 1: a collective failure). */
static int check_replicas(dsd_trainer *t, train_comm *tc, int *collective)
{
    if (tc->comm.size <= 1)
        return 0;
    dsd_error err;
    uint64_t sum = 0;
    if (dsd_trainer_weights_checksum(t, &sum, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    int bad = train_comm_first_differing(tc, sum);
    if (bad < 0)
        return 0;
    if (tc->comm.rank == 0)
        fprintf(stderr, "%s: error: step %llu: the weights of rank %d differ from rank 0's: the "
                "replicas diverged (ranks with different configurations, checkpoints or "
                "devices?); stopping without a checkpoint\n", prog,
                (unsigned long long)dsd_trainer_step_index(t), bad);
    *collective = 1;
    return 1;
}

/* Trains (every rank); the exit status. *collective is set when every rank
 * fails the same way (then only rank 0 printed the error, and the job can
 * end without MPI_Abort). Rank 0 alone checks and writes the run folder. */
static int train(const options *o, const dsd_config *cfg, train_comm *tc, int *collective)
{
    dsd_error err;
    cli_files read = {0}, resumed = {0};
    dsd_context *ctx = NULL;
    dsd_trainer *t = NULL;
    dsd_train_log *log = NULL;
    char path[4096];
    int rc = 1;
    const int rank0 = tc->comm.rank == 0; /* writes the run folder and reports */
    const int quiet = o->quiet || !rank0;
    if (!o->export_path && rank0) { /* an export reads run.dir and writes nothing there */
        if (mkdir_p(cfg->run.dir) != 0) {
            fprintf(stderr, "%s: error: cannot create run.dir %s: %s\n", prog, cfg->run.dir,
                    strerror(errno));
            return 1;
        }
        cli_remove_stale_temporaries(prog, cfg->run.dir);
    }
    if ((rc = check_files(o, cfg, &read)) != 0 ||
        (!o->export_path && rank0 && (rc = save_run_config(cfg, &read)) != 0))
        goto done;
    rc = 1;
    char sel[32];
    if (!(ctx = cli_context(prog, rank_device(cfg, tc, sel, sizeof sel), 0)))
        goto done;
    const dsd_device_info *dev = dsd_context_device(ctx);
    if (!o->quiet && tc->comm.size > 1)
        fprintf(stderr, "rank %d of %d: device [%d] %s (%s, %s)\n", tc->comm.rank,
                tc->comm.size, dev->index, dev->name, dev->platform, dev->c_version);
    else if (!o->quiet)
        fprintf(stderr, "device: [%d] %s (%s, %s)\n", dev->index, dev->name, dev->platform,
                dev->c_version);
    if (dsd_trainer_init_comm(ctx, cfg, &tc->comm, &t, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    if (!quiet && tc->comm.size > 1)
        fprintf(stderr, "data-parallel: %d ranks x batch %d = global batch %d\n", tc->comm.size,
                cfg->train.batch, tc->comm.size * cfg->train.batch);
    if (o->resume && resume(t, o, cfg, &resumed, quiet))
        goto done;
    if (!o->resume && !o->export_path && rank0 && check_new_run(o, cfg, 1))
        goto done;
    if (o->export_path) {
        dsd_storage storage = o->export_f16 ? DSD_STORAGE_F16 : DSD_STORAGE_F32;
        if (rank0 && dsd_trainer_save_generator(t, o->export_path, storage, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "generator of step %llu written to %s\n",
                    (unsigned long long)dsd_trainer_step_index(t), o->export_path);
        rc = 0;
        goto done;
    }
    if (rank0 &&
        dsd_train_log_open(&log, cfg->run.dir, dsd_trainer_step_index(t), &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    if (check_replicas(t, tc, collective)) /* the same start everywhere (seed, checkpoint) */
        goto done;
    uint64_t total = dsd_trainer_total_steps(t), end = total;
    if (o->steps >= 0 && dsd_trainer_step_index(t) + (uint64_t)o->steps < end)
        end = dsd_trainer_step_index(t) + (uint64_t)o->steps;
    progress p = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .start = cli_now(),
                  .first_step = dsd_trainer_step_index(t), .total = total};
    if (!quiet)
        fprintf(stderr, "training: %zu steps per epoch, %d epochs (lr decays from epoch %d), "
                "steps %llu..%llu; Ctrl-C stops after a checkpoint\n",
                dsd_trainer_steps_per_epoch(t), cfg->train.epochs, cfg->train.decay_from,
                (unsigned long long)dsd_trainer_step_index(t), (unsigned long long)end);
    cli_catch_stop_signals(); /* the loop finishes its step, checkpoints and exits */
    double best = -INFINITY;
    int val_every = cfg->run.val_every;
    int stopped = 0; /* a stop signal on any rank: all stop after the same step */
    while (dsd_trainer_step_index(t) < end &&
           !(stopped = train_comm_any(tc, cli_stop_requested()))) {
        double t0 = cli_now();
        dsd_step_stats s;
        if (dsd_trainer_step(t, &s, &err) != DSD_OK) {
            /* a NaN is found after the ranks' gradients are summed: on every rank */
            *collective = err.status == DSD_ERR_NAN;
            progress_break(&p);
            if (rank0 || !*collective)
                cli_print_error(prog, &err);
            if (err.status == DSD_ERR_NAN && rank0)
                fprintf(stderr, "%s: no checkpoint written for the failed step; the last one in "
                        "%s is intact\n", prog, cfg->run.dir);
            goto done;
        }
        if (s.bad) {
            progress_break(&p);
            for (const char *m = s.bad_message; *m;) {
                const char *nl = strchr(m, '\n');
                int len = nl ? (int)(nl - m) : (int)strlen(m);
                fprintf(stderr, "%s: warning: skipped a training sample: %.*s\n", prog, len, m);
                m += len + (nl ? 1 : 0);
            }
        }
        if (log && dsd_train_log_step(log, &s, cli_now() - t0, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            goto done;
        }
        progress_update(&p, &s, cfg->train.epochs);
        uint64_t done_steps = s.step + 1;
        if (o->check_every > 0 && done_steps % (uint64_t)o->check_every == 0 &&
            check_replicas(t, tc, collective))
            goto done;
        if (!rank0)
            continue; /* the rest writes the run folder */
        if (done_steps % (uint64_t)cfg->run.every == 0 && done_steps < end) {
            if (save_checkpoint(t, cfg, &resumed))
                goto done;
            if (dsd_train_log_plot(log, &err) != DSD_OK) {
                cli_print_error(prog, &err);
                goto done;
            }
        }
        if (dsd_trainer_has_validation(t) && val_every > 0 &&
            done_steps % (uint64_t)val_every == 0 && done_steps < end) {
            if (validate(t, cfg, log, &best, &p, s.epoch))
                goto done;
        }
    }
    progress_break(&p);
    if (stopped && !quiet)
        fprintf(stderr, "interrupted: writing a checkpoint at step %llu\n",
                (unsigned long long)dsd_trainer_step_index(t));
    if (check_replicas(t, tc, collective))
        goto done;
    if (!rank0) {
        rc = 0;
        goto done;
    }
    if (save_checkpoint(t, cfg, &resumed))
        goto done;
    if (dsd_trainer_has_validation(t) && !stopped &&
        validate(t, cfg, log, &best, &p, (int)(dsd_trainer_step_index(t) /
                                               dsd_trainer_steps_per_epoch(t))))
        goto done;
    if (dsd_train_log_plot(log, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    snprintf(path, sizeof path, "%s/generator.safetensors", cfg->run.dir);
    if (dsd_trainer_save_generator(t, path, DSD_STORAGE_F32, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "%s at step %llu; generator weights: %s\n",
                stopped ? "stopped" : "done",
                (unsigned long long)dsd_trainer_step_index(t), path);
    rc = 0;
done:
    dsd_train_log_close(log);
    dsd_trainer_free(t);
    if (ctx)
        dsd_context_free(ctx);
    cli_files_free(&read);
    cli_files_free(&resumed);
    return rc;
}

/* The tool after MPI's start: the exit status; *collective when every rank
 * fails alike (no MPI_Abort needed). */
static int run(int argc, char **argv, train_comm *tc, int *collective)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.list_keys) {
        const char *name, *help;
        for (int i = 0; dsd_config_key(i, &name, &help); i++)
            printf("%-26s %s\n", name, help);
        return 0;
    }
    dsd_config cfg;
    if ((rc = build_config(&o, &cfg)) != 0)
        return rc;
    dsd_error err;
    if (o.print_config) {
        rc = dsd_config_write(&cfg, stdout, &err) == DSD_OK ? 0 : 1;
        if (rc)
            cli_print_error(prog, &err);
        dsd_config_free(&cfg);
        return rc;
    }
    if (dsd_config_validate(&cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        dsd_config_free(&cfg);
        return 2;
    }
    if (!o.quiet && tc->comm.rank == 0) {
        fprintf(stderr, "effective configuration:\n");
        dsd_config_write(&cfg, stderr, &err);
    }
    rc = train(&o, &cfg, tc, collective);
    dsd_config_free(&cfg);
    clfftTeardown();
    return rc;
}

int main(int argc, char **argv)
{
    train_comm tc;
    if (train_comm_init(&tc, &argc, &argv))
        return 1;
    char rank_prog[64];
    if (tc.comm.size > 1) {
        snprintf(rank_prog, sizeof rank_prog, "%s[rank %d]", prog, tc.comm.rank);
        prog = rank_prog;
    }
    int collective = 0;
    int rc = run(argc, argv, &tc, &collective);
    /* with several ranks, a failure of this rank alone ends the whole job
     * (MPI_Abort), so that no rank waits for it */
    if (rc != 0 && !collective && tc.comm.size > 1)
        train_comm_abort(&tc, rc);
    train_comm_finalize(&tc);
    return rc;
}
