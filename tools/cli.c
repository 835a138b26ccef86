/*
 * cli.c: helpers shared by the tools (see cli.h).
 */
#include <config.h>

#include "cli.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// The command line

void cli_args_init(cli_args *a, const char *prog, int argc, char **argv, void (*usage)(FILE *),
                   int accept)
{
    *a = (cli_args){.prog = prog, .argc = argc, .argv = argv, .usage = usage, .accept = accept,
                    .next = 1, .exit_status = -1};
}

/* Whether the current argument's name (before any '=') is long_name. */
static int long_name_is(const cli_args *a, const char *long_name)
{
    size_t n = strlen(long_name);
    return !strncmp(a->arg, long_name, n) && (a->arg[n] == '\0' || a->arg[n] == '=');
}

/* Answers the shared options; 1 when the current argument was one. */
static int shared_option(cli_args *a)
{
    if (cli_args_option(a, "-d", "--device")) {
        a->device = cli_args_value(a);
    } else if (cli_args_flag(a, "-h", "--help")) {
        a->usage(stdout);
        a->exit_status = 0;
    } else if (cli_args_flag(a, NULL, "--version")) {
        printf("%s %s\n", a->prog, PACKAGE_VERSION);
        a->exit_status = 0;
    } else if ((a->accept & CLI_LIST_DEVICES) && cli_args_flag(a, NULL, "--list-devices")) {
        a->list_devices = 1;
    } else if ((a->accept & CLI_QUIET) && cli_args_flag(a, "-q", "--quiet")) {
        a->quiet = 1;
    } else {
        return 0;
    }
    return 1;
}

int cli_args_next(cli_args *a)
{
    while (a->exit_status < 0 && a->next < a->argc) {
        a->index = a->next++;
        a->arg = a->argv[a->index];
        a->inline_value = NULL;
        if (a->options_ended)
            return 1;
        if (!strcmp(a->arg, "--")) {
            a->options_ended = 1;
            continue;
        }
        if (!strncmp(a->arg, "--", 2)) {
            const char *eq = strchr(a->arg, '=');
            a->inline_value = eq ? eq + 1 : NULL;
        }
        if (!shared_option(a))
            return 1;
    }
    return 0;
}

int cli_args_positional(const cli_args *a)
{
    return a->options_ended || a->arg[0] != '-' || a->arg[1] == '\0';
}

int cli_args_option(const cli_args *a, const char *short_name, const char *long_name)
{
    if (cli_args_positional(a))
        return 0;
    return (short_name && !strcmp(a->arg, short_name)) ||
           (long_name && long_name_is(a, long_name));
}

int cli_args_flag(const cli_args *a, const char *short_name, const char *long_name)
{
    if (cli_args_positional(a))
        return 0;
    return (short_name && !strcmp(a->arg, short_name)) ||
           (long_name && !strcmp(a->arg, long_name));
}

const char *cli_args_value(cli_args *a)
{
    if (a->inline_value)
        return a->inline_value;
    if (a->next < a->argc)
        return a->argv[a->next++];
    cli_args_fail(a, "%s needs a value", a->arg);
    return NULL;
}

const char *cli_args_optional_value(cli_args *a)
{
    if (a->inline_value)
        return a->inline_value;
    if (a->next < a->argc && a->argv[a->next][0] != '-')
        return a->argv[a->next++];
    return "";
}

int cli_args_int(cli_args *a, int lo, int hi, int *out)
{
    const char *name = a->arg;
    const char *v = cli_args_value(a);
    if (!v)
        return 2;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        /* the option's name without "=VALUE" */
        int len = a->inline_value ? (int)(a->inline_value - 1 - name) : (int)strlen(name);
        cli_args_fail(a, "%.*s wants a whole number in %d..%d, not '%s'", len, name, lo, hi, v);
        return 2;
    }
    *out = (int)x;
    return 0;
}

void cli_args_fail(cli_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", a->prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    a->exit_status = 2;
}

void cli_args_unknown(cli_args *a)
{
    if (cli_args_positional(a))
        cli_args_fail(a, "unexpected argument '%s'", a->arg);
    else
        cli_args_fail(a, "unknown option '%s'", a->arg);
}

int cli_args_end(cli_args *a)
{
    if (a->exit_status < 0 && a->list_devices)
        a->exit_status = cli_list_devices(a->prog, stdout);
    return a->exit_status;
}

int cli_args_config(cli_args *a, cli_config_args *c)
{
    const char *v;
    if (cli_args_option(a, "-c", "--config")) {
        if (!(v = cli_args_value(a)))
            return 1;
        if (c->n_files == CLI_MAX_CONFIGS)
            cli_args_fail(a, "at most %d configuration files", CLI_MAX_CONFIGS);
        else
            c->files[c->n_files++] = v;
    } else if (cli_args_option(a, NULL, "--set")) {
        if (!(v = cli_args_value(a)))
            return 1;
        if (c->n_sets == CLI_MAX_SETS)
            cli_args_fail(a, "at most %d --set overrides", CLI_MAX_SETS);
        else
            c->sets[c->n_sets++] = v;
    } else {
        return 0;
    }
    return 1;
}

// ----------------------------------------------------------------------------
// Devices, configuration, errors

void cli_print_error(const char *prog, const dsd_error *err)
{
    cli_print_error_for(prog, NULL, err);
}

void cli_print_error_for(const char *prog, const char *subject, const dsd_error *err)
{
    static char line[DSD_ERROR_LINE_MAX];
    dsd_error_format(err, line, sizeof line);
    /* the library's messages about a file start with it: say it once */
    size_t n = subject ? strlen(subject) : 0;
    if (!subject || (!strncmp(line, subject, n) && line[n] == ':'))
        fprintf(stderr, "%s: error: %s\n", prog, line);
    else
        fprintf(stderr, "%s: error: %s: %s\n", prog, subject, line);
}

int cli_list_devices(const char *prog, FILE *out)
{
    dsd_error err;
    dsd_device_info *list = NULL;
    size_t n = 0;
    if (dsd_device_list(&list, &n, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no OpenCL device found (on Debian: apt-get install "
                "pocl-opencl-icd, or your GPU vendor's OpenCL driver)\n", prog);
        free(list);
        return 1;
    }
    int def = dsd_device_select(list, n, NULL, &err);
    for (size_t i = 0; i < n; i++) {
        const dsd_device_info *d = &list[i];
        fprintf(out, "%s[%d] %s  (platform %d:%d %s)\n", (int)i == def ? "*" : " ", d->index,
                d->name, d->platform_index, d->device_index, d->platform);
        fprintf(out, "      type %s, %s, %s, driver %s\n",
                d->is_gpu ? "GPU" : d->is_cpu ? "CPU" : "accelerator", d->version, d->c_version,
                d->driver);
        fprintf(out, "      %u compute units, global %.0f MiB, local %.0f KiB, max alloc %.0f "
                "MiB, max work-group %zu\n", d->compute_units, d->global_mem_bytes / 1048576.0,
                d->local_mem_bytes / 1024.0, d->max_alloc_bytes / 1048576.0,
                d->max_work_group_size);
    }
    fprintf(out, "* = default; choose with --device N, --device P:D, --device gpu|cpu, "
            "--device NAME, or DSDEBLUR_DEVICE\n");
    free(list);
    return 0;
}

/* PoCL compiles kernels with clang in the tool's own process, and clang
 * prints "4 warnings generated." on stderr for kernels that warn (clFFT's
 * generated ones do); that is no message for a user. PoCL appends
 * POCL_EXTRA_BUILD_FLAGS to every build, so -w silences it, unless the user
 * has set the variable (even to nothing, to see the warnings again). A failed
 * build's errors still come back in its log, inside the error message. Other
 * OpenCL drivers ignore the variable. */
static void quiet_kernel_compiler(void)
{
    setenv("POCL_EXTRA_BUILD_FLAGS", "-w", 0);
}

dsd_context *cli_context(const char *prog, const char *selector, int profiling)
{
    quiet_kernel_compiler();
    dsd_error err;
    dsd_context *ctx = NULL;
    dsd_context_options o = {0};
    o.device = selector;
    o.profiling = profiling;
    if (dsd_context_init(&ctx, &o, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return NULL;
    }
    return ctx;
}

int cli_config_build(const char *prog, dsd_config *cfg, const cli_config_args *c)
{
    dsd_error err;
    if (dsd_config_defaults(cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    for (int i = 0; i < c->n_files; i++) {
        if (cli_check_input(prog, c->files[i])) { /* a FIFO would block the read */
            dsd_config_free(cfg);
            return 2;
        }
        if (dsd_config_load(cfg, c->files[i], &err) != DSD_OK)
            goto fail;
    }
    for (int i = 0; i < c->n_sets; i++)
        if (dsd_config_set(cfg, c->sets[i], &err) != DSD_OK)
            goto fail;
    return 0;
fail:
    cli_print_error(prog, &err);
    dsd_config_free(cfg);
    return 2;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The one flag a signal handler may set (the tools' only global). */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void cli_catch_stop_signals(void)
{
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
}

int cli_stop_requested(void)
{
    return stop_requested != 0;
}

// ----------------------------------------------------------------------------
// Files and folders

char *cli_path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir), n = len + strlen(name) + 2;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
    return path;
}

int cli_has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    static const char *exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot, exts[i]) == 0)
            return 1;
    return 0;
}

void cli_names_free(cli_names *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether dir/name is a folder (0 when that cannot be told). */
static int is_folder(const char *dir, const char *name)
{
    char *path = cli_path_join(dir, name);
    if (!path)
        return 0;
    struct stat st;
    int yes = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return yes;
}

int cli_list_images(const char *prog, const char *dir, int skip_folders, cli_names *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: error: %s: cannot open folder: %s\n", prog, dir, strerror(errno));
        return 1;
    }
    size_t first = out->count;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !cli_has_image_extension(e->d_name))
            continue;
        if (skip_folders && is_folder(dir, e->d_name))
            continue;
        if (out->count == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 64;
            char **n = realloc(out->names, cap * sizeof *n);
            if (!n)
                goto oom;
            out->names = n;
            out->cap = cap;
        }
        if (!(out->names[out->count] = strdup(e->d_name)))
            goto oom;
        out->count++;
    }
    closedir(d);
    if (out->count > first)
        qsort(out->names + first, out->count - first, sizeof *out->names, compare_names);
    return 0;
oom:
    closedir(d);
    return -1;
}

// ----------------------------------------------------------------------------
// Inputs and outputs

const char *cli_not_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return NULL;
    if (S_ISDIR(st.st_mode))
        return "is a directory, not a regular file";
    if (S_ISFIFO(st.st_mode))
        return "is a FIFO (named pipe), not a regular file";
    if (S_ISSOCK(st.st_mode))
        return "is a socket, not a regular file";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        return "is a device, not a regular file";
    return "is not a regular file";
}

int cli_check_input(const char *prog, const char *path)
{
    const char *why = cli_not_regular(path);
    if (!why)
        return 0;
    fprintf(stderr, "%s: error: %s: %s\n", prog, path, why);
    return 1;
}

int cli_files_add(cli_files *f, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        cli_file_id *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return -1;
    f->v[f->count++] = (cli_file_id){.dev = st.st_dev, .ino = st.st_ino, .path = copy};
    return 0;
}

void cli_files_free(cli_files *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->v[i].path);
    free(f->v);
    memset(f, 0, sizeof *f);
}

const char *cli_files_find(const cli_files *f, const char *path)
{
    struct stat st;
    if (!f || stat(path, &st) != 0)
        return NULL;
    for (size_t i = 0; i < f->count; i++)
        if (f->v[i].dev == st.st_dev && f->v[i].ino == st.st_ino)
            return f->v[i].path;
    return NULL;
}

const char *cli_output_refusal(const cli_files *inputs, const char *path, int force, char *buf,
                               size_t size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return NULL;
    const char *in = cli_files_find(inputs, path);
    if (in && !strcmp(in, path))
        snprintf(buf, size, "%s is an input of this command; refusing to overwrite an input "
                 "(even with --force)", path);
    else if (in)
        snprintf(buf, size, "%s is the input %s; refusing to overwrite an input (even with "
                 "--force)", path, in);
    else if (!force)
        snprintf(buf, size, "%s exists; use --force to replace it", path);
    else
        return NULL;
    return buf;
}

int cli_check_output(const char *prog, const cli_files *inputs, const char *path, int force)
{
    char why[8192];
    if (!cli_output_refusal(inputs, path, force, why, sizeof why))
        return 0;
    fprintf(stderr, "%s: error: %s\n", prog, why);
    return 1;
}

void cli_remove_stale_temporaries(const char *prog, const char *dir)
{
    dsd_error err;
    size_t files = 0;
    uint64_t bytes = 0;
    if (dsd_remove_stale_temporaries(dir, &files, &bytes, &err) != DSD_OK)
        fprintf(stderr, "%s: warning: %s\n", prog, err.message);
    if (files)
        fprintf(stderr, "%s: removed %zu stale temporary file%s (%.1f MB) that killed runs "
                "left in %s\n", prog, files, files == 1 ? "" : "s", (double)bytes / 1e6, dir);
}

// ----------------------------------------------------------------------------
// Report files

void cli_text_printf(cli_text *t, const char *fmt, ...)
{
    for (;;) {
        if (t->failed)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt,
                          ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->data && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? 2 * t->cap : 4096) + (size_t)n;
        char *p = realloc(t->data, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
}

void cli_text_free(cli_text *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

int cli_text_save(const char *prog, const cli_text *t, const char *path)
{
    if (t->failed) {
        fprintf(stderr, "%s: error: %s: out of memory building the file\n", prog, path);
        return 1;
    }
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        fprintf(stderr, "%s: error: %s: out of memory\n", prog, path);
        return 1;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        fprintf(stderr, "%s: error: %s: cannot create %s: %s\n", prog, path, tmp,
                strerror(errno));
        free(tmp);
        return 1;
    }
    size_t done = 0;
    int werr = 0;
    while (done < t->len && !werr) {
        ssize_t w = write(fd, t->data + done, t->len - done);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno != EINTR)
            werr = errno;
        else if (w == 0)
            werr = EIO;
    }
    if (!werr && fsync(fd) != 0)
        werr = errno;
    if (close(fd) != 0 && !werr)
        werr = errno;
    if (!werr && rename(tmp, path) != 0)
        werr = errno;
    if (werr) {
        fprintf(stderr, "%s: error: %s: write failed: %s\n", prog, path, strerror(werr));
        unlink(tmp);
    }
    free(tmp);
    return werr ? 1 : 0;
}

// ----------------------------------------------------------------------------
// JSON

static void json_quoted(cli_text *t, const char *s)
{
    cli_text_printf(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': cli_text_printf(t, "\\\""); break;
        case '\\': cli_text_printf(t, "\\\\"); break;
        case '\n': cli_text_printf(t, "\\n"); break;
        case '\r': cli_text_printf(t, "\\r"); break;
        case '\t': cli_text_printf(t, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                cli_text_printf(t, "\\u%04x", *p);
            else
                cli_text_printf(t, "%c", *p); /* UTF-8 passes through */
        }
    }
    cli_text_printf(t, "\"");
}

/* The separator and key before a value: ",", then a line break and indent in
 * a container of lines, a space between members of a one-line container. */
static void json_member(cli_json *j, const char *key)
{
    if (j->depth > 0) {
        int *count = &j->level[j->depth - 1].count;
        if (*count)
            cli_text_printf(&j->text, ",");
        if (j->level[j->depth - 1].lines)
            cli_text_printf(&j->text, "\n%*s", 2 * j->depth, "");
        else if (*count)
            cli_text_printf(&j->text, " ");
        ++*count;
    }
    if (key) {
        json_quoted(&j->text, key);
        cli_text_printf(&j->text, ": ");
    }
}

void cli_json_open(cli_json *j, const char *key, char bracket, int lines)
{
    assert(j->depth < CLI_JSON_MAX_DEPTH && (bracket == '{' || bracket == '['));
    json_member(j, key);
    cli_text_printf(&j->text, "%c", bracket);
    j->level[j->depth].close = bracket == '{' ? '}' : ']';
    j->level[j->depth].lines = (char)(lines != 0);
    j->level[j->depth].count = 0;
    j->depth++;
}

void cli_json_close(cli_json *j)
{
    assert(j->depth > 0);
    j->depth--;
    if (j->level[j->depth].lines && j->level[j->depth].count)
        cli_text_printf(&j->text, "\n%*s", 2 * j->depth, "");
    cli_text_printf(&j->text, "%c%s", j->level[j->depth].close, j->depth ? "" : "\n");
}

void cli_json_string(cli_json *j, const char *key, const char *s)
{
    json_member(j, key);
    json_quoted(&j->text, s);
}

void cli_json_number(cli_json *j, const char *key, const char *fmt, double v)
{
    json_member(j, key);
    if (isfinite(v))
        cli_text_printf(&j->text, fmt, v);
    else
        cli_text_printf(&j->text, "null");
}

void cli_json_int(cli_json *j, const char *key, long long v)
{
    json_member(j, key);
    cli_text_printf(&j->text, "%lld", v);
}

void cli_json_bool(cli_json *j, const char *key, int v)
{
    json_member(j, key);
    cli_text_printf(&j->text, "%s", v ? "true" : "false");
}

void cli_json_null(cli_json *j, const char *key)
{
    json_member(j, key);
    cli_text_printf(&j->text, "null");
}
