/*
 * dsdeblur-bench: times the paper's networks on one OpenCL device, so that
 * runs on different vendors' devices can be put side by side
 * (doc/dsdeblur-bench.1 explains every number it prints and every JSON field).
 *
 * Two benchmarks:
 *   inference  dsd_generator_forward (training = 0) on a random 1 x 3 x H x W
 *              image, for each --size (default 1280x720);
 *   training   dsd_trainer_step, the real GAN iteration of dsdeblur-train (D
 *              step and G step with the relativistic loss and the content
 *              loss, Adam on both, the data loader, the NaN guards), on a
 *              one-pair paired data set written into a temporary folder.
 * Each runs --warmup times untimed (kernel compilation, buffer pool), then
 * --reps times; every run is bracketed by clFinish and timed by the host's
 * monotonic clock. The context is created with profiling on, and the
 * per-kernel table of the run with the median wall time is printed: device
 * time per kernel name from OpenCL events, its share of that run's wall time,
 * and GFLOP/s and GB/s where the work of that kernel is known (see "Work
 * model" below); '-' where it is not.
 *
 * What this is not: a per-op micro-benchmark (dsdeblur-bench-ops times each
 * layer op alone) and not a test: nothing here checks results.
 *
 * Exit status: 0 done, 1 a runtime error (device, memory, files), 2 bad usage
 * or configuration.
 */
#include <config.h>

#include "cli.h"
#include "dsdeblur_tune.h"
#include "io/safetensors.h"

#include <clFFT.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "dsdeblur-bench";

/* JSON schema identifier; bump when a field changes meaning or goes away. */
#define BENCH_SCHEMA "dsdeblur-bench/1"

/* Repetitions when --reps is not given. A CPU (PoCL) takes tens of seconds
 * per 1280x720 inference, so it gets fewer. */
enum { REPS_DEFAULT_GPU = 10, REPS_DEFAULT_CPU = 3, REPS_MAX = 1000, MAX_SIZES = 16 };

/* Records a tool-side error in err the way the library does (status, message). */
static dsd_status tool_fail(dsd_error *err, dsd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static dsd_status tool_fail(dsd_error *err, dsd_status status, const char *fmt, ...)
{
    dsd_error_clear(err);
    err->status = status;
    err->file = __FILE__;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [options]\n"
            "  --size WxH          inference image size (repeatable; default 1280x720);\n"
            "                      sides multiples of 4, at least 8\n"
            "  --train-size N      training crop side (data.crop; default 256)\n"
            "  --batch N           training batch (train.batch; default 1)\n"
            "  --no-train          skip the training-step benchmark\n"
            "  --content KIND      perceptual | l1 | mse | fft (train.content_loss;\n"
            "                      default perceptual, as the paper)\n"
            "  --vgg FILE          VGG-19 weights for perceptual (default: random weights\n"
            "                      written to the temporary folder; timing does not\n"
            "                      depend on their values)\n"
            "  -c, --config FILE   YAML configuration as for dsdeblur-train (repeatable)\n"
            "  --set KEY=VALUE     override one key, e.g. --set generator.n_blocks=6\n"
            "  --warmup N          untimed runs before timing (default 1, at least 1)\n"
            "  --reps N            timed runs (default %d on a GPU, %d on a CPU)\n"
            "  --device SEL        OpenCL device (index, P:D, gpu, cpu or a name substring)\n"
            "  --json FILE         write all results as JSON (atomically); an existing FILE\n"
            "                      only with --force, an input (-c, --vgg) never\n"
            "  --force             replace an existing --json FILE\n"
            "  --list-devices      list OpenCL devices and exit\n"
            "  --profile MODE      kernels (default): device time per kernel from OpenCL\n"
            "                      events; layers: also wall time per layer and step\n"
            "                      section, the queue drained at each boundary, so the\n"
            "                      times add up to the run (CLBlast helpers, host work\n"
            "                      and transfers included)\n"
            "  --tune              measure GEMM configurations on the networks' products\n"
            "                      at the training crop and save the fastest as this\n"
            "                      device's profile in the cache directory (replacing\n"
            "                      an earlier one); no benchmark runs\n"
            "  --tune-seconds N    stop trying further candidates after N seconds\n"
            "                      (default 300)\n"
            "  --tune-candidates N time at most N configurations, the one in effect\n"
            "                      included (default: all)\n"
            "  -q, --quiet         no progress lines on stderr (errors only)\n"
            "  -h, --help, --version\n",
            prog, REPS_DEFAULT_GPU, REPS_DEFAULT_CPU);
}

/* ------------------------------------------------------------------------ */
/* Options */

typedef struct options {
    int sizes[MAX_SIZES][2]; /* (width, height) */
    int n_sizes;
    int train_size, batch;   /* 0: from the configuration */
    int no_train;
    const char *content;     /* NULL: from the configuration */
    const char *vgg;
    cli_config_args config;  /* -c FILE, --set KEY=VALUE */
    int warmup, reps;        /* reps 0: the device's default */
    const char *device, *json;
    int force;               /* --force: replace an existing --json file */
    int quiet;
    int profile_layers;      /* --profile layers */
    int tune;                /* --tune */
    int tune_seconds;        /* --tune-seconds */
    int tune_candidates;     /* --tune-candidates (0: all) */
} options;

/* --size WxH into o; 0, or 2 with the error printed. */
static int parse_size(cli_args *a, options *o)
{
    const char *v = cli_args_value(a);
    int w, h;
    char tail;
    if (!v)
        return 2;
    if (sscanf(v, "%dx%d%c", &w, &h, &tail) != 2 || w < 8 || h < 8 || w % 4 || h % 4 ||
        w > DSD_IMAGE_MAX_SIDE || h > DSD_IMAGE_MAX_SIDE) {
        cli_args_fail(a, "--size '%s': expected WxH with both sides multiples of 4 and at "
                      "least 8 (the generator downsamples twice)", v);
        return 2;
    }
    if (o->n_sizes == MAX_SIZES) {
        cli_args_fail(a, "at most %d --size options", MAX_SIZES);
        return 2;
    }
    o->sizes[o->n_sizes][0] = w;
    o->sizes[o->n_sizes][1] = h;
    o->n_sizes++;
    return 0;
}

/* -1 to go on, or the exit status when the tool stops here (--help,
 * --version, --list-devices: 0; a usage error: 2). */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.warmup = 1, .tune_seconds = 300};
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, CLI_LIST_DEVICES | CLI_QUIET);
    while (cli_args_next(&a)) {
        if (cli_args_config(&a, &o->config)) {
            continue;
        } else if (cli_args_option(&a, NULL, "--size")) {
            parse_size(&a, o);
        } else if (cli_args_option(&a, NULL, "--train-size")) {
            cli_args_int(&a, 8, 8192, &o->train_size);
        } else if (cli_args_option(&a, NULL, "--batch")) {
            cli_args_int(&a, 1, 1024, &o->batch);
        } else if (cli_args_flag(&a, NULL, "--no-train")) {
            o->no_train = 1;
        } else if (cli_args_option(&a, NULL, "--content")) {
            dsd_content_loss_kind k;
            dsd_error err;
            if ((o->content = cli_args_value(&a)) &&
                dsd_content_loss_kind_parse(o->content, &k, &err) != DSD_OK)
                cli_args_fail(&a, "--content: %s", err.message);
        } else if (cli_args_option(&a, NULL, "--vgg")) {
            o->vgg = cli_args_value(&a);
        } else if (cli_args_option(&a, NULL, "--warmup")) {
            cli_args_int(&a, 1, REPS_MAX, &o->warmup);
        } else if (cli_args_option(&a, NULL, "--reps")) {
            cli_args_int(&a, 1, REPS_MAX, &o->reps);
        } else if (cli_args_option(&a, NULL, "--json")) {
            o->json = cli_args_value(&a);
        } else if (cli_args_flag(&a, "-f", "--force")) {
            o->force = 1;
        } else if (cli_args_flag(&a, NULL, "--tune")) {
            o->tune = 1;
        } else if (cli_args_option(&a, NULL, "--tune-seconds")) {
            cli_args_int(&a, 1, 1000000, &o->tune_seconds);
        } else if (cli_args_option(&a, NULL, "--tune-candidates")) {
            cli_args_int(&a, 1, 1000, &o->tune_candidates);
        } else if (cli_args_option(&a, NULL, "--profile")) {
            const char *v = cli_args_value(&a);
            if (v && !strcmp(v, "layers"))
                o->profile_layers = 1;
            else if (v && strcmp(v, "kernels") != 0)
                cli_args_fail(&a, "--profile '%s': expected kernels or layers", v);
        } else {
            cli_args_unknown(&a);
        }
    }
    o->device = a.device;
    o->quiet = a.quiet;
    if (o->n_sizes == 0) {
        o->sizes[0][0] = 1280;
        o->sizes[0][1] = 720;
        o->n_sizes = 1;
    }
    return cli_args_end(&a);
}

/* ------------------------------------------------------------------------ */
/* Temporary folder: the training data set and the random VGG weights */

typedef struct temp_dir {
    char root[4096];
    char blur[4200], sharp[4200], run[4200];
    char blur_png[4300], sharp_png[4300], vgg[4300];
    int made;
} temp_dir;

static int temp_dir_make(temp_dir *t)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(t->root, sizeof t->root, "%s/dsdeblur-bench-XXXXXX", base);
    if (!mkdtemp(t->root)) {
        fprintf(stderr, "%s: error: cannot create a temporary folder in %s: %s\n", prog, base,
                strerror(errno));
        return 1;
    }
    t->made = 1;
    snprintf(t->blur, sizeof t->blur, "%s/blur", t->root);
    snprintf(t->sharp, sizeof t->sharp, "%s/sharp", t->root);
    snprintf(t->run, sizeof t->run, "%s/run", t->root);
    snprintf(t->blur_png, sizeof t->blur_png, "%s/a.png", t->blur);
    snprintf(t->sharp_png, sizeof t->sharp_png, "%s/a.png", t->sharp);
    snprintf(t->vgg, sizeof t->vgg, "%s/vgg19-random.safetensors", t->root);
    const char *dirs[] = {t->blur, t->sharp, t->run};
    for (int i = 0; i < 3; i++)
        if (mkdir(dirs[i], 0700) != 0) {
            fprintf(stderr, "%s: error: cannot create %s: %s\n", prog, dirs[i], strerror(errno));
            return 1;
        }
    return 0;
}

/* Removes what temp_dir_make and the benchmark put there (nothing else). */
static void temp_dir_remove(temp_dir *t)
{
    if (!t->made)
        return;
    const char *files[] = {t->blur_png, t->sharp_png, t->vgg};
    for (int i = 0; i < 3; i++)
        if (remove(files[i]) != 0 && errno != ENOENT)
            fprintf(stderr, "%s: warning: cannot remove %s: %s\n", prog, files[i],
                    strerror(errno));
    const char *dirs[] = {t->blur, t->sharp, t->run, t->root};
    for (int i = 0; i < 4; i++)
        if (rmdir(dirs[i]) != 0 && errno != ENOENT)
            fprintf(stderr, "%s: warning: cannot remove %s: %s\n", prog, dirs[i],
                    strerror(errno));
    t->made = 0;
}

/* One side x side pair: a smooth pattern with noise as "sharp", a horizontal
 * box blur of it as "blur". The values do not matter for timing; they only
 * have to be a valid image pair. */
static dsd_status write_pair(const temp_dir *t, int side, dsd_error *err)
{
    dsd_image s, b;
    dsd_image_init(&s);
    dsd_image_init(&b);
    dsd_status st = dsd_image_alloc(&s, side, side, err);
    if (st == DSD_OK)
        st = dsd_image_alloc(&b, side, side, err);
    if (st == DSD_OK) {
        dsd_rng rng;
        dsd_rng_init(&rng, 1, 0);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++) {
                    double v = 127.5 + 80 * sin(0.07 * x + 0.05 * c) * cos(0.09 * y) +
                               30 * (dsd_rng_uniform(&rng) - 0.5);
                    s.data[((size_t)y * side + x) * 3 + c] =
                        (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++) {
                    int sum = 0;
                    for (int d = -3; d <= 3; d++) {
                        int xx = x + d < 0 ? 0 : x + d >= side ? side - 1 : x + d;
                        sum += s.data[((size_t)y * side + xx) * 3 + c];
                    }
                    b.data[((size_t)y * side + x) * 3 + c] = (uint8_t)(sum / 7);
                }
        st = dsd_image_save(t->sharp_png, &s, err);
    }
    if (st == DSD_OK)
        st = dsd_image_save(t->blur_png, &b, err);
    dsd_image_free(&s);
    dsd_image_free(&b);
    return st;
}

/* A VGG-19 features.0 .. 14 file (conv3_3, the perceptual loss's default)
 * with torchvision's names and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) values. */
static dsd_status write_random_vgg(const char *path, dsd_error *err)
{
    /* torchvision vgg19().features conv indices up to 14: (index, Cin, Cout) */
    static const int convs[][3] = {{0, 3, 64},     {2, 64, 64},    {5, 64, 128},
                                   {7, 128, 128},  {10, 128, 256}, {12, 256, 256},
                                   {14, 256, 256}};
    const int n_convs = (int)(sizeof convs / sizeof convs[0]);
    size_t total = 0;
    for (int i = 0; i < n_convs; i++)
        total += (size_t)convs[i][2] * convs[i][1] * 9 + (size_t)convs[i][2];
    dsd_vgg_config vc = dsd_vgg_default_config();
    if (vc.last_layer != 14 || total != dsd_vgg_param_count(&vc)) {
        return tool_fail(err, DSD_ERR_INVALID_ARGUMENT, "the default VGG layout (last layer "
                         "%d, %zu parameters) is not the conv3_3 one this tool writes (%zu "
                         "parameters); pass --vgg FILE", vc.last_layer,
                         dsd_vgg_param_count(&vc), total);
    }
    dsd_safetensors_writer *w = NULL;
    dsd_status st = dsd_safetensors_writer_init(&w, err);
    float *buf = st == DSD_OK ? malloc((size_t)256 * 256 * 9 * sizeof *buf) : NULL;
    if (st == DSD_OK && !buf)
        st = tool_fail(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory for the VGG weights");
    dsd_rng rng;
    dsd_rng_init(&rng, 19, 0);
    for (int i = 0; i < n_convs && st == DSD_OK; i++) {
        int cin = convs[i][1], cout = convs[i][2];
        double bound = 1.0 / sqrt(9.0 * cin);
        size_t nw = (size_t)cout * cin * 9;
        for (size_t k = 0; k < nw; k++)
            buf[k] = (float)((2 * dsd_rng_uniform(&rng) - 1) * bound);
        char name[64];
        int64_t wshape[4] = {cout, cin, 3, 3}, bshape[1] = {cout};
        snprintf(name, sizeof name, "features.%d.weight", convs[i][0]);
        st = dsd_safetensors_writer_add_f32(w, name, 4, wshape, buf, 0, err);
        for (int k = 0; k < cout && st == DSD_OK; k++)
            buf[k] = (float)((2 * dsd_rng_uniform(&rng) - 1) * bound);
        snprintf(name, sizeof name, "features.%d.bias", convs[i][0]);
        if (st == DSD_OK)
            st = dsd_safetensors_writer_add_f32(w, name, 1, bshape, buf, 0, err);
    }
    if (st == DSD_OK)
        st = dsd_safetensors_writer_set_metadata(w, "note", "random weights written by "
                                                 "dsdeblur-bench for timing only", err);
    if (st == DSD_OK)
        st = dsd_safetensors_writer_save(w, path, err);
    free(buf);
    dsd_safetensors_writer_free(w);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Work model: the generator's convolutions, layer by layer
 *
 * MACs of a conv = N * Cout * OH * OW * (Cin / groups) * KH * KW; FLOPs = 2 MACs
 * (bias, activations, attention products and the residual adds are not
 * counted: together they are well under 1% at the paper's size).
 *
 * Hand count for the paper's generator (B 64, C 256, r 16, K 3, 9 blocks) at
 * 1280x720, N 1 (HW = 921,600; /2: 230,400; /4: 57,600):
 *   head    64 * 921600 * 3 * 49               =   8,670,412,800
 *   down.0  128 * 230400 * 64 * 9              =  16,986,931,200
 *   down.1  256 * 57600 * 128 * 9              =  16,986,931,200
 *   block   fc1, fc2 (avg and max branches) 4 * 16 * 256 = 16,384
 *           sa 1 * 57600 * 2 * 49                          5,644,800
 *           3 depthwise 3 * 256 * 57600 * 9              398,131,200
 *           3 pointwise 3 * 256 * 57600 * 256         11,324,620,800
 *           one block                                 11,728,413,184
 *   9 blocks                                   = 105,555,718,656
 *   up.0    512 * 57600 * 256 * 9              =  67,947,724,800
 *   up.1    256 * 230400 * 128 * 9             =  67,947,724,800
 *   tail    3 * 921600 * 64 * 49               =   8,670,412,800
 *   total                                        292,765,856,256 MACs
 * = 585.5 GFLOP per 1280x720 inference; the plan gives the same (the
 * test tests/test-bench.c checks it on a small network against a hand count).
 *
 * Per-kernel work. The generator's plan (dsd_generator_plan, src/model/
 * plan.c) lists every conv of the forward with the route and chunking the
 * library will take (dsd_conv2d_plan_make, the one place conv2d decides):
 * depthwise_forward for groups == Cin, conv2d_direct_few for at most 4
 * output channels, one clblast_sgemm per image for a 1x1 stride-1 unpadded
 * conv whose input plane fits the column bound, else conv2d_im2col +
 * clblast_sgemm per chunk of output rows; a conv that is neither depthwise
 * nor direct and runs in one chunk first runs conv2d_bias_fill (several
 * chunks: conv2d_chunk_store adds the bias, not modelled).
 * From the plan the tool predicts the calls, FLOPs and minimal bytes of
 * those five kernels. The prediction is used only when its call count equals
 * the profiled one (a mismatch prints '-' rather than a rate from a wrong
 * model). Bytes are the minimal traffic (each operand read once, each result
 * written once), so GB/s is a lower bound on what the kernel moved. */

typedef struct kernel_work {
    const char *name;
    unsigned calls;
    double flop, bytes;
} kernel_work;

enum { WORK_SGEMM, WORK_IM2COL, WORK_BIAS_FILL, WORK_DEPTHWISE, WORK_DIRECT, WORK_COUNT };

/* The five kernels' work in one inference forward of batch x 3 x h x w, read
 * from the generator's plan; *macs: all its convs' multiply-adds, *bytes:
 * the device memory the plan needs (NAN and 0 when it cannot be planned). */
static void gen_forward_work(const dsd_generator_config *g, int batch, int h, int w,
                             kernel_work work[WORK_COUNT], double *macs, uint64_t *bytes)
{
    const kernel_work zero[WORK_COUNT] = {
        [WORK_SGEMM] = {.name = "clblast_sgemm"},
        [WORK_IM2COL] = {.name = "conv2d_im2col"},
        [WORK_BIAS_FILL] = {.name = "conv2d_bias_fill"},
        [WORK_DEPTHWISE] = {.name = "depthwise_forward"},
        [WORK_DIRECT] = {.name = "conv2d_direct_few"},
    };
    memcpy(work, zero, sizeof zero);
    *macs = NAN;
    *bytes = 0;
    dsd_network_plan plan = {0};
    if (dsd_generator_plan(g, batch, h, w, 0, &plan, NULL) != DSD_OK) {
        dsd_network_plan_free(&plan);
        return; /* no model: every rate prints '-' */
    }
    *macs = dsd_network_plan_macs(&plan);
    *bytes = dsd_network_plan_bytes(&plan);
    for (size_t i = 0; i < plan.n_layers; i++) {
        const dsd_conv2d_plan *l = &plan.layers[i].conv;
        const int k = l->params.kernel_h * l->params.kernel_w;
        double in = (double)l->cin * l->h * l->w, out = (double)l->cout * l->oh * l->ow;
        double wts = (double)l->cout * (l->cin / l->params.groups) * k;
        switch (l->forward) {
        case DSD_CONV2D_ROUTE_DEPTHWISE:
        case DSD_CONV2D_ROUTE_DIRECT_FEW: {
            kernel_work *kw = &work[l->forward == DSD_CONV2D_ROUTE_DEPTHWISE ? WORK_DEPTHWISE
                                                                             : WORK_DIRECT];
            kw->calls += 1;
            kw->flop += 2 * l->macs;
            kw->bytes += 4 * (batch * (in + out) + wts + l->cout);
            break;
        }
        case DSD_CONV2D_ROUTE_POINTWISE:
            work[WORK_BIAS_FILL].calls += 1;
            work[WORK_BIAS_FILL].bytes += 4 * (batch * out + l->cout);
            work[WORK_SGEMM].flop += 2 * l->macs;
            /* C (Cout x HW) += W (Cout x Cin) X (Cin x HW), per image */
            work[WORK_SGEMM].calls += (unsigned)batch;
            work[WORK_SGEMM].bytes += 4 * (wts * batch + batch * (in + 2 * out));
            break;
        case DSD_CONV2D_ROUTE_IM2COL: {
            unsigned chunks = (unsigned)l->chunks;
            if (chunks == 1) { /* several chunks: conv2d_chunk_store adds the bias */
                work[WORK_BIAS_FILL].calls += 1;
                work[WORK_BIAS_FILL].bytes += 4 * (batch * out + l->cout);
            }
            work[WORK_SGEMM].flop += 2 * l->macs;
            double kc = (double)l->cin * k, cols = (double)l->oh * l->ow;
            work[WORK_IM2COL].calls += chunks * (unsigned)batch;
            work[WORK_IM2COL].bytes += 4 * batch * (kc * cols + in);
            /* per chunk: C (Cout x cols) += W (Cout x Kc) col (Kc x cols) */
            work[WORK_SGEMM].calls += chunks * (unsigned)batch;
            work[WORK_SGEMM].bytes += 4 * (wts * chunks * batch + batch * (kc * cols + 2 * out));
            break;
        }
        }
    }
    dsd_network_plan_free(&plan);
}

/* ------------------------------------------------------------------------ */
/* Timing */

typedef struct kernel_row {
    dsd_profile_entry e;
    double gflops, gbps;    /* NAN: unknown */
} kernel_row;

typedef struct bench_result {
    int reps;
    double *wall_s;         /* reps wall times (run order) */
    double median_s, min_s, max_s;
    int median_run;         /* 0-based run whose wall time is the median */
    kernel_row *rows;       /* that run's profile, by total time, descending */
    size_t n_rows;
    double events_ms;       /* sum of its event times */
    int model_mismatch;     /* a modelled kernel's calls differed from the profile */
    uint64_t peak_bytes;    /* the buffer pool's peak over the runs (weights included) */
    dsd_profile_entry *layers; /* --profile layers: the median run's scopes, by time */
    size_t n_layers;
    double layers_ms;       /* their sum, "(outside scopes)" excluded */
    uint64_t planned_bytes; /* inference: the plan's arena and workspace (0: unknown) */
} bench_result;

static void bench_result_free(bench_result *r)
{
    free(r->layers);
    free(r->wall_s);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

typedef dsd_status (*run_fn)(void *arg, dsd_error *err);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_row(const void *a, const void *b)
{
    double x = ((const kernel_row *)a)->e.total_ms, y = ((const kernel_row *)b)->e.total_ms;
    return (x < y) - (x > y);
}

static int cmp_entry(const void *a, const void *b)
{
    double x = ((const dsd_profile_entry *)a)->total_ms, y = ((const dsd_profile_entry *)b)->total_ms;
    return (x < y) - (x > y);
}

/* warmup untimed runs, then reps timed ones, each: profile reset, clock,
 * run, clFinish, clock, profile collect (outside the timed span). Keeps the
 * profile of the median run (the lower median for an even count, so that it
 * is a run that happened). */
static dsd_status bench(dsd_context *ctx, run_fn fn, void *arg, int warmup, int reps,
                        int progress, bench_result *r, dsd_error *err)
{
    memset(r, 0, sizeof *r);
    dsd_status st = DSD_OK;
    dsd_profile_entry **prof = calloc((size_t)reps, sizeof *prof);
    size_t *n_prof = calloc((size_t)reps, sizeof *n_prof);
    dsd_profile_entry **layers = calloc((size_t)reps, sizeof *layers);
    size_t *n_layers = calloc((size_t)reps, sizeof *n_layers);
    double *sorted = calloc((size_t)reps, sizeof *sorted);
    r->wall_s = calloc((size_t)reps, sizeof *r->wall_s);
    r->reps = reps;
    dsd_pool_reset_peak(ctx);
    if (!prof || !n_prof || !layers || !n_layers || !sorted || !r->wall_s) {
        st = tool_fail(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        goto done;
    }
#define CTX_TRY(expr)                                   \
    do {                                                \
        if ((st = (expr)) != DSD_OK) {                  \
            *err = *dsd_context_error(ctx);             \
            goto done;                                  \
        }                                               \
    } while (0)
    for (int i = 0; i < warmup + reps; i++) {
        if (cli_stop_requested()) {
            st = tool_fail(err, DSD_ERR_INVALID_ARGUMENT, "interrupted by a signal");
            goto done;
        }
        CTX_TRY(dsd_context_finish(ctx));
        dsd_profile_reset(ctx);
        dsd_profile_layers_reset(ctx);
        double t0 = cli_now();
        if ((st = fn(arg, err)) != DSD_OK)
            goto done;
        CTX_TRY(dsd_context_finish(ctx));
        double t = cli_now() - t0;
        if (i < warmup) {
            if (progress)
                fprintf(stderr, "  warm-up %d/%d: %.3f s\n", i + 1, warmup, t);
            dsd_profile_reset(ctx);
            continue;
        }
        int k = i - warmup;
        r->wall_s[k] = t;
        if (progress)
            fprintf(stderr, "  run %d/%d: %.3f s\n", k + 1, reps, t);
        CTX_TRY(dsd_profile_collect(ctx, &prof[k], &n_prof[k]));
        dsd_profile_reset(ctx);
        CTX_TRY(dsd_profile_layers_collect(ctx, &layers[k], &n_layers[k]));
    }
#undef CTX_TRY
    r->peak_bytes = dsd_pool_get_stats(ctx).peak_bytes;
    memcpy(sorted, r->wall_s, (size_t)reps * sizeof *sorted);
    qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
    r->min_s = sorted[0];
    r->max_s = sorted[reps - 1];
    r->median_s = sorted[(reps - 1) / 2];
    for (int k = 0; k < reps; k++)
        if (r->wall_s[k] == r->median_s) {
            r->median_run = k;
            break;
        }
    size_t n = n_prof[r->median_run];
    r->rows = calloc(n ? n : 1, sizeof *r->rows);
    if (!r->rows) {
        st = tool_fail(err, DSD_ERR_OUT_OF_MEMORY, "out of host memory");
        goto done;
    }
    for (size_t j = 0; j < n; j++) {
        r->rows[j].e = prof[r->median_run][j];
        r->rows[j].gflops = r->rows[j].gbps = NAN;
        r->events_ms += r->rows[j].e.total_ms;
    }
    r->n_rows = n;
    if (n > 1) /* qsort wants a valid pointer even for no elements */
        qsort(r->rows, n, sizeof *r->rows, cmp_row);
    r->layers = layers[r->median_run];
    r->n_layers = n_layers[r->median_run];
    layers[r->median_run] = NULL;
    for (size_t j = 0; j < r->n_layers; j++)
        if (strcmp(r->layers[j].name, "(outside scopes)") != 0)
            r->layers_ms += r->layers[j].total_ms;
    if (r->n_layers > 1)
        qsort(r->layers, r->n_layers, sizeof *r->layers, cmp_entry);
done:
    if (prof)
        for (int k = 0; k < reps; k++)
            free(prof[k]);
    if (layers)
        for (int k = 0; k < reps; k++)
            free(layers[k]);
    free(layers);
    free(n_layers);
    free(prof);
    free(n_prof);
    free(sorted);
    return st;
}

/* Fills the rates of the kernels the work model knows. */
static void apply_work(bench_result *r, const kernel_work *work, int n_work)
{
    for (int i = 0; i < n_work; i++) {
        if (work[i].calls == 0)
            continue;
        for (size_t j = 0; j < r->n_rows; j++) {
            kernel_row *row = &r->rows[j];
            if (strcmp(row->e.name, work[i].name) != 0)
                continue;
            if (row->e.count != work[i].calls || row->e.total_ms <= 0) {
                r->model_mismatch |= row->e.count != work[i].calls;
                break;
            }
            if (work[i].flop > 0)
                row->gflops = work[i].flop / (row->e.total_ms * 1e6);
            if (work[i].bytes > 0)
                row->gbps = work[i].bytes / (row->e.total_ms * 1e6);
            break;
        }
    }
}

static void print_rate(double v)
{
    if (isfinite(v))
        printf(" %9.1f", v);
    else
        printf(" %9s", "-");
}

static void print_result(const char *what, const bench_result *r, double model_gflop)
{
    printf("%s: median %.4f s, min %.4f s, max %.4f s over %d runs", what, r->median_s,
           r->min_s, r->max_s, r->reps);
    if (model_gflop > 0)
        printf("; %.4g GFLOP of convolutions -> %.4g GFLOP/s", model_gflop,
               model_gflop / r->median_s);
    printf("\n  device memory: peak %.1f MiB (buffer pool: weights, inputs, activations, "
           "workspace)", r->peak_bytes / 1048576.0);
    if (r->planned_bytes)
        printf("; the plan's arena and workspace %.1f MiB", r->planned_bytes / 1048576.0);
    printf("\n  kernels of run %d (the median), device time from OpenCL events:\n",
           r->median_run + 1);
    printf("  %-34s %7s %11s %7s %9s %9s\n", "kernel", "calls", "total ms", "share",
           "GFLOP/s", "GB/s");
    for (size_t j = 0; j < r->n_rows; j++) {
        const kernel_row *row = &r->rows[j];
        printf("  %-34s %7u %11.3f %6.1f%%", row->e.name, row->e.count, row->e.total_ms,
               100 * row->e.total_ms / (r->median_s * 1e3));
        print_rate(row->gflops);
        print_rate(row->gbps);
        printf("\n");
    }
    double cover = r->events_ms / (r->median_s * 1e3);
    printf("  events sum to %.3f ms of the run's %.3f ms wall time (%.1f%%); the rest is host "
           "work, transfers, waits and kernels run without an event\n", r->events_ms,
           r->median_s * 1e3, 100 * cover);
    if (cover < 0.9)
        printf("  note: %.0f%% of the wall time is in no event. Part of it may be CLBlast's "
               "helper kernels\n  (padding, transposing), which run outside the one event "
               "CLBlast returns per GEMM: then\n  clblast_sgemm's ms is too low and its "
               "GFLOP/s too high. The whole-network GFLOP/s (wall\n  clock) is not "
               "affected.\n", 100 * (1 - cover));
    if (r->model_mismatch)
        printf("  note: a modelled kernel's call count differs from the profile; its rates are "
               "'-' (the library's routing changed)\n");
    if (r->n_layers) {
        printf("  layers and sections of run %d, wall time with the queue drained at each "
               "boundary (exclusive):\n", r->median_run + 1);
        printf("  %-52s %7s %11s %7s\n", "scope", "entered", "total ms", "share");
        for (size_t j = 0; j < r->n_layers; j++) {
            const dsd_profile_entry *e = &r->layers[j];
            printf("  %-52s %7u %11.3f %6.1f%%\n", e->name, e->count, e->total_ms,
                   100 * e->total_ms / (r->median_s * 1e3));
        }
        printf("  the scopes account for %.1f%% of the run's wall time\n",
               100 * r->layers_ms / (r->median_s * 1e3));
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* The two benchmarks */

typedef struct infer_arg {
    dsd_context *ctx;
    dsd_generator *g;
    dsd_tensor *x, *y;
} infer_arg;

static dsd_status run_inference(void *p, dsd_error *err)
{
    infer_arg *a = p;
    dsd_status st = dsd_generator_forward(a->ctx, a->g, a->x, a->y, NULL);
    if (st != DSD_OK)
        *err = *dsd_context_error(a->ctx);
    return st;
}

typedef struct train_arg {
    dsd_trainer *t;
    double last_loss_g;
} train_arg;

static dsd_status run_train_step(void *p, dsd_error *err)
{
    train_arg *a = p;
    dsd_step_stats s;
    dsd_status st = dsd_trainer_step(a->t, &s, err);
    a->last_loss_g = s.loss_g;
    return st;
}

/* ------------------------------------------------------------------------ */
/* JSON (doc/dsdeblur-bench.1 describes every field) */

static void json_profile(cli_json *j, const bench_result *r)
{
    cli_json_open(j, "profile", '{', 1);
    cli_json_int(j, "run", r->median_run + 1);
    cli_json_number(j, "wall_s", "%.9g", r->median_s);
    cli_json_number(j, "events_ms", "%.9g", r->events_ms);
    cli_json_bool(j, "model_mismatch", r->model_mismatch);
    cli_json_open(j, "kernels", '[', 1);
    for (size_t k = 0; k < r->n_rows; k++) {
        const kernel_row *row = &r->rows[k];
        cli_json_open(j, NULL, '{', 0);
        cli_json_string(j, "name", row->e.name);
        cli_json_int(j, "calls", row->e.count);
        cli_json_number(j, "total_ms", "%.9g", row->e.total_ms);
        cli_json_number(j, "share", "%.9g", row->e.total_ms / (r->median_s * 1e3));
        cli_json_number(j, "gflops", "%.9g", row->gflops);
        cli_json_number(j, "gbps", "%.9g", row->gbps);
        cli_json_close(j);
    }
    cli_json_close(j);
    cli_json_close(j);
}

static void json_times(cli_json *j, const bench_result *r)
{
    cli_json_int(j, "peak_device_bytes", (long long)r->peak_bytes);
    cli_json_number(j, "median_s", "%.9g", r->median_s);
    cli_json_number(j, "min_s", "%.9g", r->min_s);
    cli_json_number(j, "max_s", "%.9g", r->max_s);
    cli_json_open(j, "times_s", '[', 0);
    for (int k = 0; k < r->reps; k++)
        cli_json_number(j, NULL, "%.9g", r->wall_s[k]);
    cli_json_close(j);
}

typedef struct report {
    const dsd_device_info *dev;
    const dsd_config *cfg;
    const char *config_yaml;
    int warmup, reps, reps_default;
    int n_sizes;
    int (*sizes)[2];
    bench_result *infer;
    double *infer_macs;
    size_t gen_params, disc_params;
    int have_train;
    bench_result *train;
    int train_size, batch;
    const char *content, *vgg; /* vgg: a path, or "random" */
    char timestamp[32];
} report;

static void json_write(cli_json *j, const report *rp)
{
    const dsd_device_info *d = rp->dev;
    const dsd_config *c = rp->cfg;
    cli_json_open(j, NULL, '{', 1);
    cli_json_string(j, "schema", BENCH_SCHEMA);
    cli_json_string(j, "version", PACKAGE_VERSION);
    cli_json_string(j, "timestamp", rp->timestamp);
    cli_json_open(j, "device", '{', 0);
    cli_json_int(j, "index", d->index);
    cli_json_string(j, "platform", d->platform);
    cli_json_string(j, "name", d->name);
    cli_json_string(j, "vendor", d->vendor);
    cli_json_string(j, "driver", d->driver);
    cli_json_string(j, "version", d->version);
    cli_json_string(j, "opencl_c_version", d->c_version);
    cli_json_string(j, "type", d->is_gpu ? "gpu" : d->is_cpu ? "cpu" : "accelerator");
    cli_json_int(j, "compute_units", d->compute_units);
    cli_json_int(j, "global_mem_bytes", (long long)d->global_mem_bytes);
    cli_json_int(j, "local_mem_bytes", (long long)d->local_mem_bytes);
    cli_json_int(j, "max_alloc_bytes", (long long)d->max_alloc_bytes);
    cli_json_int(j, "max_work_group_size", (long long)d->max_work_group_size);
    cli_json_close(j);
    cli_json_open(j, "generator", '{', 0);
    cli_json_int(j, "n_blocks", c->generator.n_blocks);
    cli_json_int(j, "base_width", c->generator.base_width);
    cli_json_int(j, "mlp_ratio", c->generator.mlp_ratio);
    cli_json_int(j, "up_kernel", c->generator.up_kernel);
    cli_json_number(j, "dropout", "%.9g", c->generator.dropout);
    cli_json_number(j, "slope", "%.9g", c->generator.slope);
    cli_json_int(j, "params", (long long)rp->gen_params);
    cli_json_close(j);
    cli_json_open(j, "discriminator", '{', 0);
    cli_json_int(j, "base_width", c->discriminator.base_width);
    cli_json_int(j, "n_layers", c->discriminator.n_layers);
    cli_json_bool(j, "norm_affine", c->discriminator.norm_affine);
    cli_json_int(j, "params", (long long)rp->disc_params);
    cli_json_close(j);
    cli_json_string(j, "config_yaml", rp->config_yaml);
    cli_json_int(j, "warmup", rp->warmup);
    cli_json_int(j, "reps", rp->reps);
    cli_json_bool(j, "reps_default", rp->reps_default);
    cli_json_open(j, "inference", '[', 1);
    for (int i = 0; i < rp->n_sizes; i++) {
        const bench_result *r = &rp->infer[i];
        cli_json_open(j, NULL, '{', 1);
        cli_json_int(j, "width", rp->sizes[i][0]);
        cli_json_int(j, "height", rp->sizes[i][1]);
        cli_json_int(j, "batch", 1);
        json_times(j, r);
        cli_json_number(j, "conv_flop", "%.9g", 2 * rp->infer_macs[i]);
        cli_json_number(j, "gflops", "%.9g", 2 * rp->infer_macs[i] / (r->median_s * 1e9));
        json_profile(j, r);
        cli_json_close(j);
    }
    cli_json_close(j);
    if (!rp->have_train) {
        cli_json_null(j, "train");
    } else {
        const bench_result *r = rp->train;
        cli_json_open(j, "train", '{', 1);
        cli_json_int(j, "width", rp->train_size);
        cli_json_int(j, "height", rp->train_size);
        cli_json_int(j, "batch", rp->batch);
        cli_json_string(j, "content_loss", rp->content);
        cli_json_string(j, "vgg_weights", rp->vgg);
        json_times(j, r);
        json_profile(j, r);
        cli_json_close(j);
    }
    cli_json_close(j);
}

/* Written whole to path.tmp.<pid>, fsynced and renamed: readers see the old
 * file or the new one. 0 or 1 (error printed). */
static int json_save(const char *path, const report *rp)
{
    cli_json j = {0};
    json_write(&j, rp);
    int rc = cli_text_save(prog, &j.text, path);
    cli_text_free(&j.text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Main */

static int build_config(const options *o, const temp_dir *td, dsd_config *cfg)
{
    dsd_error err;
    int rc = cli_config_build(prog, cfg, &o->config);
    if (rc)
        return rc;
    /* the benchmark's own keys: its data set, run folder, sizes and loss */
    char sets[10][4400];
    int n = 0;
    snprintf(sets[n++], sizeof sets[0], "data.mode=paired");
    snprintf(sets[n++], sizeof sets[0], "data.train_blur=%s", td->blur);
    snprintf(sets[n++], sizeof sets[0], "data.train_sharp=%s", td->sharp);
    snprintf(sets[n++], sizeof sets[0], "data.val_blur=");
    snprintf(sets[n++], sizeof sets[0], "data.val_sharp=");
    snprintf(sets[n++], sizeof sets[0], "run.dir=%s", td->run);
    snprintf(sets[n++], sizeof sets[0], "train.vgg_weights=%s", o->vgg ? o->vgg : td->vgg);
    if (o->train_size)
        snprintf(sets[n++], sizeof sets[0], "data.crop=%d", o->train_size);
    if (o->batch)
        snprintf(sets[n++], sizeof sets[0], "train.batch=%d", o->batch);
    if (o->content)
        snprintf(sets[n++], sizeof sets[0], "train.content_loss=%s", o->content);
    for (int i = 0; i < n; i++)
        if (dsd_config_set(cfg, sets[i], &err) != DSD_OK) {
            cli_print_error(prog, &err);
            return 2;
        }
    if (dsd_config_validate(cfg, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 2;
    }
    return 0;
}

/* Inference at every size; 0 or 1. */
static int bench_inference(dsd_context *ctx, const options *o, const dsd_generator_config *gc,
                           int warmup, int reps, bench_result *out, double *macs)
{
    dsd_generator g;
    memset(&g, 0, sizeof g);
    dsd_error err;
    int rc = 1;
    float *host = NULL;
    if (dsd_generator_init(ctx, &g, gc) != DSD_OK ||
        dsd_generator_init_weights(ctx, &g, 1) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
        goto done;
    }
    for (int i = 0; i < o->n_sizes; i++) {
        const int w = o->sizes[i][0], h = o->sizes[i][1];
        dsd_tensor x = {0}, y = {0};
        size_t numel = (size_t)3 * w * h;
        free(host);
        host = malloc(numel * sizeof *host);
        if (!host) {
            fprintf(stderr, "%s: error: out of host memory for a %dx%d image\n", prog, w, h);
            goto done;
        }
        dsd_rng rng;
        dsd_rng_init(&rng, 2, (uint64_t)i);
        for (size_t k = 0; k < numel; k++)
            host[k] = (float)(2 * dsd_rng_uniform(&rng) - 1);
        if (dsd_tensor_init(ctx, &x, 1, 3, h, w) != DSD_OK ||
            dsd_tensor_init(ctx, &y, 1, 3, h, w) != DSD_OK ||
            dsd_tensor_upload(ctx, &x, host, numel) != DSD_OK) {
            cli_print_error(prog, dsd_context_error(ctx));
            dsd_tensor_free(ctx, &x);
            dsd_tensor_free(ctx, &y);
            goto done;
        }
        infer_arg a = {.ctx = ctx, .g = &g, .x = &x, .y = &y};
        const int progress = !o->quiet;
        if (progress)
            fprintf(stderr, "inference %dx%d: %d warm-up + %d timed runs...\n", w, h, warmup, reps);
        dsd_status st = bench(ctx, run_inference, &a, warmup, reps, progress, &out[i], &err);
        dsd_tensor_free(ctx, &x);
        dsd_tensor_free(ctx, &y);
        if (st != DSD_OK) {
            char what[64];
            snprintf(what, sizeof what, "inference %dx%d", w, h);
            cli_print_error_for(prog, what, &err);
            goto done;
        }
        kernel_work work[WORK_COUNT];
        uint64_t planned;
        gen_forward_work(gc, 1, h, w, work, &macs[i], &planned);
        apply_work(&out[i], work, WORK_COUNT);
        out[i].planned_bytes = planned;
        char what[64];
        snprintf(what, sizeof what, "inference %dx%d", w, h);
        print_result(what, &out[i], 2 * macs[i] * 1e-9);
    }
    rc = 0;
done:
    free(host);
    dsd_generator_free(ctx, &g);
    dsd_pool_trim(ctx);
    return rc;
}

static int bench_train(dsd_context *ctx, const dsd_config *cfg, int warmup, int reps,
                       int progress, bench_result *out)
{
    dsd_error err;
    dsd_trainer *t = NULL;
    if (dsd_trainer_init(ctx, cfg, &t, &err) != DSD_OK) {
        cli_print_error(prog, &err);
        return 1;
    }
    train_arg a = {.t = t};
    if (progress)
        fprintf(stderr, "training step %dx%d batch %d (%s): %d warm-up + %d timed runs...\n",
            cfg->data.crop, cfg->data.crop, cfg->train.batch, cfg->train.content_loss, warmup,
            reps);
    dsd_status st = bench(ctx, run_train_step, &a, warmup, reps, progress, out, &err);
    dsd_trainer_free(t);
    dsd_pool_trim(ctx);
    if (st != DSD_OK) {
        cli_print_error_for(prog, "training step", &err);
        return 1;
    }
    char what[96];
    snprintf(what, sizeof what, "training step %dx%d batch %d", cfg->data.crop, cfg->data.crop,
             cfg->train.batch);
    print_result(what, out, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* --tune */

static void tune_report(void *user, int index, const char *label, double ms, double gflops,
                        const char *failure)
{
    (void)user;
    if (failure)
        printf("  %2d  %-36s     failed: %s\n", index, label, failure);
    else
        printf("  %2d  %-36s %10.1f %9.1f\n", index, label, ms, gflops);
    fflush(stdout);
}

/* Adds one network's products; 0 or 1. */
static int tune_add_plan(dsd_status st, dsd_network_plan *plan, int with_dw,
                         dsd_gemm_shape **shapes, size_t *n, dsd_error *err)
{
    if (st == DSD_OK)
        st = dsd_tune_shapes_from_plan(plan, 1, with_dw, shapes, n, err);
    dsd_network_plan_free(plan);
    if (st != DSD_OK) {
        cli_print_error(prog, err);
        return 1;
    }
    return 0;
}

/* Measures, checks and saves this device's profile; 0 or 1. */
static int tune_device(dsd_context *ctx, const options *o, const dsd_config *cfg)
{
    dsd_error err;
    dsd_gemm_shape *shapes = NULL;
    size_t n = 0;
    const int crop = cfg->data.crop, batch = cfg->train.batch;
    dsd_generator_config gc = dsd_config_generator(cfg);
    dsd_discriminator_config dc = dsd_config_discriminator(cfg);
    dsd_network_plan plan;
    memset(&plan, 0, sizeof plan);
    if (tune_add_plan(dsd_generator_plan(&gc, batch, crop, crop, 1, &plan, &err), &plan, 1,
                      &shapes, &n, &err))
        goto fail;
    memset(&plan, 0, sizeof plan);
    if (tune_add_plan(dsd_discriminator_plan(&dc, batch, crop, crop, 1, &plan, &err), &plan, 1,
                      &shapes, &n, &err))
        goto fail;
    if (!strcmp(cfg->train.content_loss, "perceptual")) {
        dsd_vgg_config vc = dsd_vgg_default_config();
        memset(&plan, 0, sizeof plan);
        if (tune_add_plan(dsd_vgg_plan(&vc, batch, crop, crop, 1, &plan, &err), &plan, 0,
                          &shapes, &n, &err))
            goto fail;
    }
    double all_macs = 0, kept_macs = 0;
    for (size_t i = 0; i < n; i++)
        all_macs += shapes[i].count * (double)shapes[i].m * shapes[i].n * shapes[i].k;
    size_t distinct = n;
    dsd_tune_shapes_select(shapes, &n, 12);
    for (size_t i = 0; i < n; i++)
        kept_macs += shapes[i].count * (double)shapes[i].m * shapes[i].n * shapes[i].k;
    printf("tuning: GEMMs of one training pass at %dx%d, batch %d (generator, discriminator%s):"
           " %zu distinct products, the %zu largest timed (%.0f%% of %.3g GFLOP)\n", crop, crop,
           batch, !strcmp(cfg->train.content_loss, "perceptual") ? ", VGG" : "", distinct, n,
           all_macs > 0 ? 100 * kept_macs / all_macs : 0, 2e-9 * all_macs);
    for (size_t i = 0; i < n; i++)
        printf("  m %6zu  n %5zu  k %6zu  %s%s  x%.0f\n", shapes[i].m, shapes[i].n, shapes[i].k,
               shapes[i].trans_a ? "A^T" : "A  ", shapes[i].trans_b ? " B^T" : " B  ",
               shapes[i].count);
    printf("\n  #   candidate (Xgemm tiles, vectors)        total ms   GFLOP/s\n");
    fflush(stdout);
    dsd_tune_options to = dsd_tune_default_options();
    to.seconds = o->tune_seconds;
    to.max_candidates = o->tune_candidates;
    to.report = tune_report;
    dsd_tune_result r;
    if (dsd_tune_device(ctx, shapes, n, &to, &r) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
        goto fail;
    }
    free(shapes);
    shapes = NULL;
    if (r.time_bound_hit)
        printf("stopped after --tune-seconds %d: %d candidates not tried\n", o->tune_seconds,
               r.skipped);
    else if (r.skipped)
        printf("%d candidates not tried (--tune-candidates %d)\n", r.skipped,
               o->tune_candidates);
    if (r.failed)
        printf("%d candidates could not run on this device (see above)\n", r.failed);
    printf("\nfastest: %s, %.1f ms (%.1f GFLOP/s); in effect before: %.1f ms (%.1f "
           "GFLOP/s)%s\n", r.best_label, r.best_ms, r.gflops_best, r.current_ms,
           r.gflops_current,
           r.confirmed ? "\n(both timed twice more, taking turns; the better time of each)"
                       : "");
    printf("check: 3 products against a double-precision host reference, largest error "
           "%.2g of the sum of |a||b| (limit 1e-4)\n", r.max_rel_error);
    char path[1200];
    if (dsd_tune_save(ctx, &r.best, path, sizeof path) != DSD_OK) {
        cli_print_error(prog, dsd_context_error(ctx));
        return 1;
    }
    printf("profile \"%s\" written to %s\n(contexts on this device use it from now on; "
           "DSDEBLUR_PROFILE=builtin ignores it, deleting the file removes it)\n", r.best.name,
           path);
    return 0;
fail:
    free(shapes);
    return 1;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    temp_dir td;
    memset(&td, 0, sizeof td);
    dsd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    dsd_context *ctx = NULL;
    bench_result infer[MAX_SIZES], train;
    double infer_macs[MAX_SIZES] = {0};
    memset(infer, 0, sizeof infer);
    memset(&train, 0, sizeof train);
    char *config_yaml = NULL;
    dsd_error err;

    /* the report's file, checked before minutes of benchmarking */
    if (o.json) {
        cli_files read = {0};
        for (int i = 0; i < o.config.n_files; i++)
            cli_files_add(&read, o.config.files[i]);
        if (o.vgg)
            cli_files_add(&read, o.vgg);
        rc = cli_check_output(prog, &read, o.json, o.force);
        cli_files_free(&read);
        if (rc)
            return 1;
    }
    if (o.vgg && cli_check_input(prog, o.vgg))
        return 1; /* as a missing one */
    if ((rc = temp_dir_make(&td)) != 0)
        goto done;
    if ((rc = build_config(&o, &td, &cfg)) != 0)
        goto done;
    rc = 1;
    cli_catch_stop_signals();

    const char *selector = o.device ? o.device : *cfg.device ? cfg.device : NULL;
    if (!(ctx = cli_context(prog, selector, 1)))
        goto done;
    dsd_profile_layers_enable(ctx, o.profile_layers);
    const dsd_device_info *d = dsd_context_device(ctx);
    int reps_default = o.reps == 0;
    int reps = reps_default ? (d->is_cpu ? REPS_DEFAULT_CPU : REPS_DEFAULT_GPU) : o.reps;
    dsd_generator_config gc = dsd_config_generator(&cfg);
    dsd_discriminator_config dc = dsd_config_discriminator(&cfg);
    int perceptual = !strcmp(cfg.train.content_loss, "perceptual");

    printf("%s: libdsdeblur %s\n", prog, PACKAGE_VERSION);
    printf("device: [%d] %s | vendor %s | platform %s | driver %s | %s | %s\n", d->index,
           d->name, d->vendor, d->platform, d->driver, d->version, d->c_version);
    printf("        %s, %u compute units, global memory %.0f MiB, max allocation %.0f MiB, "
           "local %.0f KiB\n", d->is_gpu ? "GPU" : d->is_cpu ? "CPU" : "accelerator",
           d->compute_units, d->global_mem_bytes / 1048576.0, d->max_alloc_bytes / 1048576.0,
           d->local_mem_bytes / 1024.0);
    const char *profile = dsd_context_profile_name(ctx);
    printf("        device profile: %s\n",
           *profile ? profile : "none (CLBlast's own parameters; DSDEBLUR_PROFILE)");
    printf("generator: %d blocks, base width %d, mlp ratio %d, up kernel %d (%zu parameters); "
           "discriminator: base width %d, %d layers (%zu parameters)\n", gc.n_blocks,
           gc.base_width, gc.mlp_ratio, gc.up_kernel, dsd_generator_param_count(&gc),
           dc.base_width, dc.n_layers, dsd_discriminator_param_count(&dc));
    const char *reps_why = !reps_default ? "--reps"
                           : d->is_cpu   ? "the default for a CPU; --reps to change"
                                         : "the default; --reps to change";
    if (!o.tune)
        printf("runs: %d warm-up, %d timed (%s); times are wall clock from enqueue to "
               "clFinish\n", o.warmup, reps, reps_why);
    if (!o.no_train && !o.tune)
        printf("training: %dx%d crops, batch %d, content loss %s%s\n", cfg.data.crop,
               cfg.data.crop, cfg.train.batch, cfg.train.content_loss,
               !perceptual ? ""
               : o.vgg ? " (VGG-19 weights from --vgg)"
                       : " with RANDOM VGG-19 weights (timing does not depend on the values; "
                         "--vgg FILE to use real ones)");
    printf("\n");
    fflush(stdout);

    if (o.tune) {
        rc = tune_device(ctx, &o, &cfg);
        goto done;
    }
    if (bench_inference(ctx, &o, &gc, o.warmup, reps, infer, infer_macs))
        goto done;
    if (!o.no_train) {
        if (perceptual && !o.vgg && write_random_vgg(td.vgg, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            goto done;
        }
        if (write_pair(&td, cfg.data.crop, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            goto done;
        }
        if (bench_train(ctx, &cfg, o.warmup, reps, !o.quiet, &train))
            goto done;
    }

    if (o.json) {
        if (dsd_config_to_string(&cfg, &config_yaml, &err) != DSD_OK) {
            cli_print_error(prog, &err);
            goto done;
        }
        report rp;
        memset(&rp, 0, sizeof rp);
        rp.dev = d;
        rp.cfg = &cfg;
        rp.config_yaml = config_yaml;
        rp.warmup = o.warmup;
        rp.reps = reps;
        rp.reps_default = reps_default;
        rp.n_sizes = o.n_sizes;
        rp.sizes = o.sizes;
        rp.infer = infer;
        rp.infer_macs = infer_macs;
        rp.gen_params = dsd_generator_param_count(&gc);
        rp.disc_params = dsd_discriminator_param_count(&dc);
        rp.have_train = !o.no_train;
        rp.train = &train;
        rp.train_size = cfg.data.crop;
        rp.batch = cfg.train.batch;
        rp.content = cfg.train.content_loss;
        rp.vgg = !perceptual ? "" : o.vgg ? o.vgg : "random";
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(rp.timestamp, sizeof rp.timestamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (json_save(o.json, &rp))
            goto done;
        printf("\nresults written to %s\n", o.json);
    }
    rc = 0;
done:
    for (int i = 0; i < MAX_SIZES; i++)
        bench_result_free(&infer[i]);
    bench_result_free(&train);
    free(config_yaml);
    dsd_context_free(ctx);
    dsd_config_free(&cfg);
    temp_dir_remove(&td);
    clfftTeardown();
    return rc;
}
