/*
 * cli.c: helpers shared by the tools (see cli.h).
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

void cli_print_error(const char *prog, const dsd_error *err)
{
    static char line[DSD_ERROR_LINE_MAX];
    fprintf(stderr, "%s: error: %s\n", prog, dsd_error_format(err, line, sizeof line));
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

dsd_context *cli_context(const char *prog, const char *selector, int profiling)
{
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

int cli_config_build(const char *prog, dsd_config *cfg, const char *const *files, int n_files,
                     const char *const *sets, int n_sets)
{
    dsd_error err;
    if (dsd_config_defaults(cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    for (int i = 0; i < n_files; i++)
        if (dsd_config_load(cfg, files[i], &err) != DSD_OK)
            goto fail;
    for (int i = 0; i < n_sets; i++)
        if (dsd_config_set(cfg, sets[i], &err) != DSD_OK)
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
    size_t len = strlen(dir), n = len + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return 0;
    snprintf(path, n, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
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
