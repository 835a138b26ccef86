/*
 * dsdeblur-run: deblurs photographs with a trained generator.
 *
 *     dsdeblur-run -m model.safetensors -o out/ blurry1.jpg blurry2.png folder/
 *     dsdeblur-run -m model.safetensors -o sharp.jpg blurry.png
 *
 * Inputs are image files or folders (their .png/.jpg/.jpeg/.bmp/.tga files,
 * not recursive). Output rule: -o ending in '/' or naming an existing folder
 * is a folder (created when missing) receiving <input stem>.png (or .jpg with
 * --format jpg); any other -o names one output file, allowed for exactly one
 * input file, its format taken from its extension (.png, .jpg, .jpeg). The
 * network is built from the weight file's metadata, so every variant loads;
 * without -m the bundled default model is used: $DSDEBLUR_DEFAULT_MODEL when
 * set, else the build tree's (data/ beside the tools/ folder this program runs
 * from, or the source tree's data/ when it runs from its own build tree),
 * else the installed one; the first output line names it (not with -q).
 * Several images on a terminal (or with --progress) show "[3/12] name 1.8 s"
 * per image on stderr.
 *
 * Safety (the rules of tools/cli.h): an output that is (by device and inode,
 * through links) one of the inputs or the model is never written, even with
 * --force; an existing output is refused unless --force; two inputs mapping
 * to one output are refused; an input that is not a regular file (a FIFO
 * named like an image would block forever) is skipped. Every problem
 * with one image is one line on stderr naming the file; the other images
 * are still processed, and the exit status is then 1. Usage errors and a
 * missing model are 2. Ctrl-C (SIGINT) or SIGTERM finishes the image at hand,
 * prints how many were finished and the last written, and exits 130. Also: --list-devices, --device, --self-test (the
 * runtime smoke test). Man page: doc/dsdeblur-run.1.
 */
#include <config.h>

#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DSDEBLUR_PKGDATADIR
#define DSDEBLUR_PKGDATADIR "/usr/local/share/dsdeblur"
#endif
#define DEFAULT_MODEL_NAME "dsdeblur-default.safetensors"
#define DEFAULT_MODEL DSDEBLUR_PKGDATADIR "/" DEFAULT_MODEL_NAME

static const char *prog = "dsdeblur-run";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-m MODEL] -o OUT [options] INPUT...\n"
            "       %s [--device SEL] --list-devices | --self-test | --help | --version\n"
            "  INPUT            image files (.png .jpg .jpeg .bmp .tga) or folders of them\n"
            "  -m, --model F    generator weights (.safetensors); default: the bundled\n"
            "                   model of the build tree, else %s\n"
            "  -o, --output OUT a folder (ends in '/' or exists): OUT/<stem>.png per input;\n"
            "                   otherwise one output file for one input (.png or .jpg)\n"
            "  --format F       png (default) or jpg, for folder outputs\n"
            "  --tile N         run in N-pixel tiles (0: whole image, tiles only when the\n"
            "                   device is too small); results are the same\n"
            "  --time           print device compute and end-to-end seconds per image\n"
            "  --compare        also write <output stem>-compare.png: input | output\n"
            "  -q, --quiet      no 'model:' line, no progress\n"
            "  --progress       '[i/n] name seconds' per image on stderr (default: when\n"
            "                   stderr is a terminal and there are several images)\n"
            "  --force          replace existing outputs (never an input)\n"
            "  --device SEL     device index, P:D, gpu, cpu or a name substring\n"
            "                   (default: $DSDEBLUR_DEVICE, else the first GPU, else any)\n"
            "  --list-devices   list OpenCL platforms and devices\n"
            "  --self-test      start the runtime and run a smoke computation\n"
            "exit status: 0 all written, 1 some image or the model failed, 2 usage error or\n"
            "no model\n",
            prog, prog, DEFAULT_MODEL);
}

static int self_test(const char *selector)
{
    double t0 = cli_now();
    dsd_context *ctx = cli_context(prog, selector, 0);
    if (!ctx)
        return 1;
    double t_init = cli_now();
    const dsd_device_info *d = dsd_context_device(ctx);
    printf("device: [%d] %s (%s, %s)\n", d->index, d->name, d->platform, d->c_version);

    /* smoke: fill a 1x3x720x1280 tensor on the device, copy it, read it back */
    dsd_tensor a, b;
    const int n = 1, c = 3, h = 720, w = 1280;
    size_t count = (size_t)n * c * h * w;
    float *host = malloc(count * sizeof *host);
    int rc = 1;
    if (!host) {
        fprintf(stderr, "%s: error: out of host memory\n", prog);
        dsd_context_free(ctx);
        return 1;
    }
    if (dsd_tensor_init(ctx, &a, n, c, h, w) != DSD_OK ||
        dsd_tensor_init(ctx, &b, n, c, h, w) != DSD_OK ||
        dsd_tensor_fill(ctx, &a, 0.25f) != DSD_OK || dsd_tensor_copy(ctx, &b, &a) != DSD_OK ||
        dsd_tensor_download(ctx, &b, host, count) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
    } else {
        size_t bad = 0;
        for (size_t i = 0; i < count; i++)
            bad += host[i] != 0.25f;
        double t_end = cli_now();
        dsd_program_stats s = dsd_context_program_stats(ctx);
        printf("runtime start-up %.3f s, first kernel (compile or cache load) + smoke %.3f s\n",
               t_init - t0, t_end - t_init);
        printf("programs: %u compiled, %u loaded from cache (%s), %u corrupt entries ignored\n",
               s.built_from_source, s.loaded_from_disk,
               dsd_context_cache_dir(ctx)[0] ? dsd_context_cache_dir(ctx) : "disabled",
               s.cache_rejected);
        if (bad) {
            fprintf(stderr, "%s: error: smoke computation wrong in %zu of %zu values\n", prog,
                    bad, count);
        } else {
            printf("self-test passed: %zu values filled, copied and read back on the device\n",
                   count);
            rc = 0;
        }
    }
    free(host);
    dsd_tensor_free(ctx, &a);
    dsd_tensor_free(ctx, &b);
    dsd_context_free(ctx);
    return rc;
}

// ----------------------------------------------------------------------------
// Jobs: one per input image

typedef struct job {
    char *in;       /* input path */
    char *out;      /* output path; NULL when the job already failed */
    char *compare;  /* --compare: <out stem>-compare.png, or NULL */
    char *error;    /* the one stderr line's text, when the job failed early */
} job;

typedef struct job_list {
    job *v;
    size_t count, cap;
} job_list;

static void oom(void)
{
    fprintf(stderr, "%s: error: out of host memory\n", prog);
    exit(1);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = malloc((size_t)n + 1);
    if (!p)
        oom();
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static job *job_add(job_list *l, const char *in)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        job *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            oom();
        l->v = v;
        l->cap = cap;
    }
    job *j = &l->v[l->count++];
    memset(j, 0, sizeof *j);
    j->in = xstrdup(in);
    return j;
}

/* dir/name, malloc'd (exits when out of memory). */
static char *join(const char *dir, const char *name)
{
    char *p = cli_path_join(dir, name);
    if (!p)
        oom();
    return p;
}

/* Adds the image files of folder dir (sorted). Returns 0, or 1 with one line
 * printed when the folder cannot be read or holds no image. */
static int add_folder(job_list *l, const char *dir)
{
    cli_names names = {0};
    int rc = cli_list_images(prog, dir, 0, &names);
    if (rc < 0)
        oom();
    if (rc)
        return 1;
    size_t n = names.count;
    for (size_t i = 0; i < n; i++) {
        char *p = join(dir, names.names[i]);
        job_add(l, p); /* a subfolder named like an image fails at load, by name */
        free(p);
    }
    cli_names_free(&names);
    if (!n) {
        fprintf(stderr, "%s: error: %s: no images (.png, .jpg, .jpeg, .bmp, .tga) in this "
                "folder\n", prog, dir);
        return 1;
    }
    return 0;
}

/* "dir/photo.v2.jpg" -> "photo.v2" (malloc'd). */
static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *s = xstrdup(base);
    char *dot = strrchr(s, '.');
    if (dot && dot != s)
        *dot = '\0';
    return s;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* out with "-compare" before its extension, always .png ("a/b.jpg" ->
 * "a/b-compare.png"). */
static char *compare_path(const char *out)
{
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - out) : strlen(out);
    return xprintf("%.*s-compare.png", (int)stem, out);
}

/* in | 8 white pixels | out, one image, so the two can be judged side by side. */
static dsd_status save_comparison(const char *path, const dsd_image *in, const dsd_image *out,
                                  dsd_error *err)
{
    enum { GAP = 8 };
    dsd_image both = {0};
    dsd_status st = dsd_image_alloc(&both, 2 * in->width + GAP, in->height, err);
    if (st != DSD_OK)
        return st;
    memset(both.data, 255, dsd_image_numel(&both));
    size_t row = (size_t)in->width * 3, wide = (size_t)both.width * 3;
    for (int y = 0; y < in->height; y++) {
        memcpy(both.data + y * wide, in->data + y * row, row);
        memcpy(both.data + y * wide + row + GAP * 3, out->data + y * row, row);
    }
    st = dsd_image_save(path, &both, err);
    dsd_image_free(&both);
    return st;
}

// ----------------------------------------------------------------------------

typedef struct run_options {
    const char *model, *output, *format;
    int tile, timing, force, compare, self_test, quiet, progress;
} run_options;

// ----------------------------------------------------------------------------
// The default model: where a first user's copy is

/* Whether path is a readable regular file. */
static int readable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* The directory of this program's own executable (libtool runs the build
 * tree's from tools/.libs/), malloc'd; NULL where /proc/self/exe is not. */
static char *exe_dir(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || n >= (ssize_t)sizeof buf - 1)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    size_t len = strlen(buf);
    if (len >= 6 && !strcmp(buf + len - 6, "/.libs"))
        buf[len - 6] = '\0';
    return xstrdup(buf);
}

/* The model to use without -m, malloc'd, and in *where how it was found;
 * NULL when there is none, with the places looked at in tried (for the
 * error line). In order: $DSDEBLUR_DEFAULT_MODEL (the only candidate when
 * set); <exe dir>/../data/ when the executable sits in a folder named tools
 * (a build tree, run before `make install`); the source tree's data/ when
 * the executable is this build tree's (VPATH builds: data/ is not copied);
 * the install prefix's $(pkgdatadir). */
static char *find_default_model(const char **where, char *tried, size_t tried_size)
{
    tried[0] = '\0';
    const char *env = getenv("DSDEBLUR_DEFAULT_MODEL");
    if (env) {
        snprintf(tried, tried_size, "%s ($DSDEBLUR_DEFAULT_MODEL)", env);
        *where = "$DSDEBLUR_DEFAULT_MODEL";
        return *env && readable_file(env) ? xstrdup(env) : NULL;
    }
    char *dir = exe_dir(), *found = NULL;
    if (dir) {
        size_t len = strlen(dir);
        if (len >= 6 && !strcmp(dir + len - 6, "/tools")) {
            char *p = xprintf("%.*s/data/%s", (int)(len - 6), dir, DEFAULT_MODEL_NAME);
            if (readable_file(p)) {
                *where = "the build tree's";
                found = p;
            } else {
                snprintf(tried, tried_size, "%s, ", p);
                free(p);
            }
        }
#if defined(DSDEBLUR_BUILDDIR) && defined(DSDEBLUR_SRCDIR)
        /* this build tree's tools/, by device and inode (dir has its links resolved) */
        struct stat here, built;
        if (!found && stat(dir, &here) == 0 && stat(DSDEBLUR_BUILDDIR "/tools", &built) == 0 &&
            here.st_dev == built.st_dev && here.st_ino == built.st_ino) {
            char *p = xprintf("%s/data/%s", DSDEBLUR_SRCDIR, DEFAULT_MODEL_NAME);
            size_t used = strlen(tried);
            if (readable_file(p)) {
                *where = "the source tree's";
                found = p;
            } else {
                snprintf(tried + used, tried_size - used, "%s, ", p);
                free(p);
            }
        }
#endif
        free(dir);
    }
    if (found)
        return found;
    size_t used = strlen(tried);
    snprintf(tried + used, tried_size - used, "%s", DEFAULT_MODEL);
    *where = "the installed";
    return readable_file(DEFAULT_MODEL) ? xstrdup(DEFAULT_MODEL) : NULL;
}

/* The last path component, for progress lines. */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

/* Loads the model: the config from the file's metadata, then the weights. */
static int load_model(dsd_context *ctx, const char *path, dsd_generator *g)
{
    dsd_error err;
    dsd_generator_config cfg;
    if (dsd_generator_file_config(path, &cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    if (dsd_generator_init(ctx, g, &cfg) != DSD_OK || dsd_generator_load(ctx, g, path) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
        return 1;
    }
    return 0;
}

/* The tool; main owns inputs (room for every argument), so no early return
 * leaks it. */
static int run(int argc, char **argv, const char **inputs)
{
    run_options o = {0};
    job_list jobs = {0};
    int n_inputs = 0;
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, CLI_LIST_DEVICES);
    while (cli_args_next(&a)) {
        if (cli_args_option(&a, "-m", "--model"))
            o.model = cli_args_value(&a);
        else if (cli_args_option(&a, "-o", "--output"))
            o.output = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--format"))
            o.format = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--tile"))
            cli_args_int(&a, 0, 65535, &o.tile);
        else if (cli_args_flag(&a, NULL, "--time"))
            o.timing = 1;
        else if (cli_args_flag(&a, NULL, "--compare"))
            o.compare = 1;
        else if (cli_args_flag(&a, "-f", "--force"))
            o.force = 1;
        else if (cli_args_flag(&a, "-q", "--quiet"))
            o.quiet = 1;
        else if (cli_args_flag(&a, NULL, "--progress"))
            o.progress = 1;
        else if (cli_args_flag(&a, NULL, "--self-test"))
            o.self_test = 1;
        else if (cli_args_positional(&a))
            inputs[n_inputs++] = a.arg;
        else
            cli_args_unknown(&a);
    }
    if (cli_args_end(&a) >= 0)
        return a.exit_status;
    if (o.self_test)
        return self_test(a.device);

    // ------------------------------------------------------------------
    // Usage checks, before any device work
    if (n_inputs == 0) {
        fprintf(stderr, "%s: error: no input images (see --help)\n", prog);
        return 2;
    }
    if (!o.output) {
        fprintf(stderr, "%s: error: say where the results go: -o FOLDER/ or, for one input, "
                "-o FILE.png (see --help)\n", prog);
        return 2;
    }
    const char *ext = ".png";
    if (o.format) {
        if (!strcasecmp(o.format, "png"))
            ext = ".png";
        else if (!strcasecmp(o.format, "jpg") || !strcasecmp(o.format, "jpeg"))
            ext = ".jpg";
        else {
            fprintf(stderr, "%s: error: --format must be png or jpg, not '%s'\n", prog,
                    o.format);
            return 2;
        }
    }
    struct stat st;
    size_t olen = strlen(o.output);
    int out_is_dir = (olen && o.output[olen - 1] == '/') ||
                     (stat(o.output, &st) == 0 && S_ISDIR(st.st_mode));
    int single_file_input = n_inputs == 1 && !(stat(inputs[0], &st) == 0 && S_ISDIR(st.st_mode));
    if (!out_is_dir) {
        if (!single_file_input) {
            fprintf(stderr, "%s: error: -o %s names one file, but the inputs are %s; end it "
                    "with '/' to make it a folder\n", prog, o.output,
                    n_inputs > 1 ? "several" : "a folder");
            return 2;
        }
        const char *fext = ends_with_ci(o.output, ".png")    ? ".png"
                           : ends_with_ci(o.output, ".jpg")  ? ".jpg"
                           : ends_with_ci(o.output, ".jpeg") ? ".jpg"
                                                             : NULL;
        if (!fext) {
            fprintf(stderr, "%s: error: -o %s: the output file must end in .png, .jpg or .jpeg "
                    "(or end -o with '/' for a folder)\n", prog, o.output);
            return 2;
        }
        if (o.format && strcmp(fext, ext)) {
            fprintf(stderr, "%s: error: --format %s contradicts -o %s\n", prog, o.format,
                    o.output);
            return 2;
        }
    }

    const char *model = o.model, *model_where = NULL;
    char *default_model = NULL;
    if (!model) {
        char tried[16384];
        model = default_model = find_default_model(&model_where, tried, sizeof tried);
        if (!model) {
            fprintf(stderr, "%s: error: no model given and no default model is installed yet "
                    "(looked for %s); pass -m MODEL.safetensors\n", prog, tried);
            return 2;
        }
    }

    if (cli_check_input(prog, model))
        return 1;

    // ------------------------------------------------------------------
    // Inputs -> jobs, outputs assigned, every refusal decided up front
    int failed = 0;
    for (int i = 0; i < n_inputs; i++) {
        if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode))
            failed |= add_folder(&jobs, inputs[i]);
        else
            job_add(&jobs, inputs[i]); /* missing or bad files fail at load, by name */
    }
    cli_files read = {0}; /* every file this command reads: never an output */
    if (cli_files_add(&read, model))
        oom();
    for (size_t i = 0; i < jobs.count; i++)
        if (cli_files_add(&read, jobs.v[i].in))
            oom();
    if (out_is_dir && stat(o.output, &st) != 0) {
        if (mkdir(o.output, 0777) != 0) {
            fprintf(stderr, "%s: error: %s: cannot create the output folder: %s\n", prog,
                    o.output, strerror(errno));
            return 1;
        }
    }
    if (out_is_dir)
        cli_remove_stale_temporaries(prog, o.output);
    for (size_t i = 0; i < jobs.count; i++) {
        job *j = &jobs.v[i];
        char why[8192];
        const char *not_regular = cli_not_regular(j->in);
        if (not_regular) {
            /* a FIFO would block the load forever; a folder fails by name */
            j->error = xprintf("%s: %s; skipped", j->in, not_regular);
            continue;
        }
        if (out_is_dir) {
            char *stem = stem_of(j->in), *base = xprintf("%s%s", stem, ext);
            j->out = join(o.output, base);
            free(stem);
            free(base);
        } else {
            j->out = xstrdup(o.output);
        }
        if (o.compare)
            j->compare = compare_path(j->out);
        for (size_t k = 0; k < i && !j->error; k++) {
            const job *e = &jobs.v[k];
            const char *mine[] = {j->out, j->compare}, *theirs[] = {e->out, e->compare};
            for (int m = 0; m < 2 && !j->error; m++)
                for (int t = 0; t < 2 && !j->error; t++)
                    if (mine[m] && theirs[t] && !strcmp(mine[m], theirs[t]))
                        j->error = xprintf("%s: would write %s, which %s already writes; "
                                           "rename one of them", j->in, mine[m], e->in);
        }
        if (!j->error && cli_output_refusal(&read, j->out, o.force, why, sizeof why))
            j->error = xprintf("%s: %s", j->in, why);
        if (!j->error && j->compare &&
            cli_output_refusal(&read, j->compare, o.force, why, sizeof why))
            j->error = xprintf("%s: %s", j->in, why);
        if (j->error) {
            free(j->out);
            free(j->compare);
            j->out = j->compare = NULL;
        }
    }
    cli_files_free(&read);

    // ------------------------------------------------------------------
    // Device, model, images. From here Ctrl-C (SIGINT) or SIGTERM finishes
    // the image at hand, says how far the run got and exits 130.
    cli_catch_stop_signals();
    dsd_context *ctx = cli_context(prog, a.device, 0);
    if (!ctx)
        return 1;
    dsd_generator g = {0};
    if (load_model(ctx, model, &g)) {
        dsd_generator_free(ctx, &g);
        dsd_context_free(ctx);
        return 1;
    }
    if (o.timing) {
        const dsd_device_info *d = dsd_context_device(ctx);
        printf("model %s: %zu parameters; device [%d] %s\n", model, g.params.count, d->index,
               d->name);
    }
    if (!o.quiet && model_where)
        printf("model: %s (%s default model)\n", model, model_where);
    fflush(stdout);
    int progress = !o.quiet && (o.progress || (jobs.count > 1 && isatty(STDERR_FILENO)));
    size_t n_done = 0, n_failed = 0;
    const char *last_written = NULL;
    int interrupted = 0; /* stopped by a signal with images left */
    double sum_device = 0, sum_total = 0;
    for (size_t i = 0; i < jobs.count; i++) {
        job *j = &jobs.v[i];
        if ((interrupted = cli_stop_requested()))
            break;
        if (progress)
            fprintf(stderr, "[%zu/%zu] %s", i + 1, jobs.count, base_name(j->in));
        if (j->error) {
            if (progress)
                fprintf(stderr, " failed\n");
            fprintf(stderr, "%s: error: %s\n", prog, j->error);
            failed = 1;
            n_failed++;
            continue;
        }
        dsd_error err;
        dsd_image in = {0}, out = {0};
        dsd_deblur_options dopt = {.tile = o.tile, .overlap = -1};
        dsd_deblur_stats s;
        double t0 = cli_now();
        if (dsd_image_load(j->in, &in, &err) != DSD_OK) {
            if (progress)
                fprintf(stderr, " failed\n");
            cli_print_error_for(prog, j->in, &err);
            failed = 1;
            n_failed++;
        } else if (dsd_deblur_image(ctx, &g, &in, &out, &dopt, &s) != DSD_OK) {
            if (progress)
                fprintf(stderr, " failed\n");
            cli_print_error_for(prog, j->in, dsd_context_error(ctx));
            failed = 1;
            n_failed++;
        } else if (dsd_image_save(j->out, &out, &err) != DSD_OK ||
                   (j->compare && save_comparison(j->compare, &in, &out, &err) != DSD_OK)) {
            if (progress)
                fprintf(stderr, " failed\n");
            cli_print_error_for(prog, j->in, &err);
            failed = 1;
            n_failed++;
        } else {
            double total = cli_now() - t0;
            if (progress)
                fprintf(stderr, " %.1f s\n", total);
            n_done++;
            last_written = j->out;
            sum_device += s.device_s;
            sum_total += total;
            if (o.timing) {
                printf("%s -> %s: %d x %d, device %.3f s, end to end %.3f s (decode, deblur, "
                       "encode)", j->in, j->out, in.width, in.height, s.device_s, total);
                if (s.tile)
                    printf(", %d tiles of %d px (halo %d)%s", s.n_tiles, s.tile, s.overlap,
                           s.fallbacks ? ", tiled to fit the device" : "");
                printf("\n");
            }
        }
        dsd_image_free(&in);
        dsd_image_free(&out);
    }
    if (o.timing && n_done)
        printf("%zu image%s, mean device %.3f s, mean end to end %.3f s per image\n", n_done,
               n_done == 1 ? "" : "s", sum_device / n_done, sum_total / n_done);

    if (interrupted) {
        fprintf(stderr, "%s: interrupted: %zu of %zu images finished (", prog, n_done,
                jobs.count);
        if (last_written)
            fprintf(stderr, "last written: %s)", last_written);
        else
            fprintf(stderr, "none written)");
        if (n_failed)
            fprintf(stderr, "; %zu failed", n_failed);
        fprintf(stderr, "\n");
    }

    dsd_generator_free(ctx, &g);
    dsd_context_free(ctx);
    for (size_t i = 0; i < jobs.count; i++) {
        free(jobs.v[i].in);
        free(jobs.v[i].out);
        free(jobs.v[i].compare);
        free(jobs.v[i].error);
    }
    free(jobs.v);
    free(default_model);
    return interrupted ? 130 : failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs)
        oom();
    int rc = run(argc, argv, inputs);
    free(inputs);
    return rc;
}
