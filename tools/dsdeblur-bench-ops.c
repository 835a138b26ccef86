/*
 * dsdeblur-bench-ops: times each layer op, forward and backward, at the
 * shapes the paper's generator runs (a benchmark program, not a test).
 *
 * Every case runs once to warm up (kernel compilation, pool), then `reps`
 * times; the device time of each repetition is summed from OpenCL profiling
 * events (every kernel and CLBlast GEMM the op enqueued), and the median
 * over repetitions is reported with the GFLOP/s and GB/s it implies. The
 * host wall clock around enqueue + clFinish is printed beside it as a cross-
 * check: CLBlast and clFFT return one event per call, which covers only the
 * last kernel when they run several, so for GEMMs the wall time is the
 * figure to trust. GFLOP/s and GB/s are computed from the slower of the two
 * clocks, so they never overstate; for tiny ops the wall clock includes the
 * enqueue and clFinish overhead (tens of microseconds). FLOPs
 * count multiply-adds as two; bytes count the minimal traffic (each input and
 * output touched once), so GB/s is a lower bound on what the kernel moved.
 *
 *   dsdeblur-bench-ops [--device SEL] [--reps N] [--shapes small|paper|all]
 *                      [--filter SUBSTRING] [--json FILE [--force]]
 *
 * An existing --json FILE is replaced only with --force (checked before the
 * first case runs).
 *
 * small: the body at 1x256x64x64 and the head at 1x3x256x256 (quick on a CPU).
 * paper: the body at 1x256x180x320 and the head at 1x3x720x1280 (1280x720 input).
 */
#include <config.h>

#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *prog = "dsdeblur-bench-ops";

/* ------------------------------------------------------------------------ */
/* Cases */

typedef enum op_kind {
    OP_CONV,
    OP_ACT,
    OP_ADD_BCAST_C,   /* a (N,C,H,W) * b (N,C,1,1): channel attention multiply */
    OP_MUL_BCAST_HW,  /* a (N,C,H,W) * b (N,1,H,W): spatial attention multiply */
    OP_ADD,           /* residual add */
    OP_GAP,
    OP_GMP,
    OP_CMEAN,
    OP_CMAX,
    OP_SHUFFLE,
    OP_INORM,
    OP_DROPOUT,
    OP_MSE,
    OP_MAXPOOL,
} op_kind;

typedef struct bench_case {
    const char *name;
    op_kind kind;
    int n, c, h, w;           /* input shape */
    int out_c;                /* conv output channels */
    dsd_conv2d_params conv;   /* conv only */
    dsd_activation act;       /* activation only */
} bench_case;

typedef struct bench_result {
    double fwd_ms, bwd_ms;        /* device time from profiling events */
    double fwd_wall, bwd_wall;    /* host wall clock around enqueue + clFinish */
    double fwd_flop, bwd_flop, fwd_bytes, bwd_bytes;
} bench_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sum of all profiled device time since the last reset, in ms. */
static dsd_status device_ms(dsd_context *ctx, double *ms)
{
    dsd_profile_entry *e;
    size_t n;
    dsd_status st = dsd_profile_collect(ctx, &e, &n);
    if (st != DSD_OK)
        return st;
    *ms = 0;
    for (size_t i = 0; i < n; i++)
        *ms += e[i].total_ms;
    free(e);
    dsd_profile_reset(ctx);
    return DSD_OK;
}

/* Tensors a case needs; all allocated up front so only the op is timed. */
typedef struct bench_tensors {
    dsd_tensor x, y, w, b, dx, dy, dw, db, aux, daux, stat1, stat2, loss;
} bench_tensors;

static void free_all(dsd_context *ctx, bench_tensors *t)
{
    dsd_tensor *all[] = {&t->x, &t->y, &t->w, &t->b, &t->dx, &t->dy, &t->dw,
                         &t->db, &t->aux, &t->daux, &t->stat1, &t->stat2, &t->loss};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dsd_tensor_free(ctx, all[i]);
}

#define TRY(expr)                  \
    do {                           \
        st = (expr);               \
        if (st != DSD_OK)          \
            goto done;             \
    } while (0)

static dsd_status alloc_filled(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w,
                               float v)
{
    dsd_status st = dsd_tensor_init(ctx, t, n, c, h, w);
    return st == DSD_OK ? dsd_tensor_fill(ctx, t, v) : st;
}

static dsd_status setup(dsd_context *ctx, const bench_case *bc, bench_tensors *t,
                        bench_result *r)
{
    dsd_status st = DSD_OK;
    const int N = bc->n, C = bc->c, H = bc->h, W = bc->w;
    const double in_bytes = 4.0 * N * C * H * W;
    TRY(alloc_filled(ctx, &t->x, N, C, H, W, 0.5f));
    TRY(alloc_filled(ctx, &t->dx, N, C, H, W, 0.0f));
    switch (bc->kind) {
    case OP_CONV: {
        int oh, ow, g = bc->conv.groups;
        TRY(dsd_conv2d_output_size(ctx, &bc->conv, H, W, &oh, &ow));
        int co = bc->out_c;
        TRY(alloc_filled(ctx, &t->y, N, co, oh, ow, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, co, oh, ow, 0.01f));
        TRY(alloc_filled(ctx, &t->w, co, C / g, bc->conv.kernel_h, bc->conv.kernel_w, 0.01f));
        TRY(alloc_filled(ctx, &t->dw, co, C / g, bc->conv.kernel_h, bc->conv.kernel_w, 0.0f));
        TRY(alloc_filled(ctx, &t->b, 1, co, 1, 1, 0.1f));
        TRY(alloc_filled(ctx, &t->db, 1, co, 1, 1, 0.0f));
        double macs = (double)N * co * oh * ow * (C / g) * bc->conv.kernel_h * bc->conv.kernel_w;
        double out_bytes = 4.0 * N * co * oh * ow;
        double w_bytes = 4.0 * co * (C / g) * bc->conv.kernel_h * bc->conv.kernel_w;
        r->fwd_flop = 2 * macs;
        r->bwd_flop = 4 * macs;
        r->fwd_bytes = in_bytes + out_bytes + w_bytes;
        r->bwd_bytes = 2 * in_bytes + out_bytes + 2 * w_bytes + in_bytes;
        break;
    }
    case OP_GAP:
    case OP_GMP:
        TRY(alloc_filled(ctx, &t->y, N, C, 1, 1, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, 1, 1, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->bwd_flop = r->fwd_flop;
        r->fwd_bytes = in_bytes;
        r->bwd_bytes = 2 * in_bytes + (bc->kind == OP_GMP ? in_bytes : 0);
        break;
    case OP_CMEAN:
    case OP_CMAX:
        TRY(alloc_filled(ctx, &t->y, N, 1, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, 1, H, W, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->bwd_flop = r->fwd_flop;
        r->fwd_bytes = in_bytes + in_bytes / C;
        r->bwd_bytes = 2 * in_bytes + (bc->kind == OP_CMAX ? in_bytes : 0);
        break;
    case OP_SHUFFLE:
        TRY(alloc_filled(ctx, &t->y, N, C / 4, H * 2, W * 2, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C / 4, H * 2, W * 2, 0.01f));
        r->fwd_bytes = 2 * in_bytes;
        r->bwd_bytes = 3 * in_bytes;
        break;
    case OP_MAXPOOL:
        TRY(alloc_filled(ctx, &t->y, N, C, H / 2, W / 2, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, H / 2, W / 2, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->fwd_bytes = in_bytes * 1.25;
        r->bwd_bytes = in_bytes * 3.25;
        break;
    case OP_ADD_BCAST_C:
    case OP_MUL_BCAST_HW:
        if (bc->kind == OP_ADD_BCAST_C) {
            TRY(alloc_filled(ctx, &t->aux, N, C, 1, 1, 0.7f));
            TRY(alloc_filled(ctx, &t->daux, N, C, 1, 1, 0.0f));
        } else {
            TRY(alloc_filled(ctx, &t->aux, N, 1, H, W, 0.7f));
            TRY(alloc_filled(ctx, &t->daux, N, 1, H, W, 0.0f));
        }
        TRY(alloc_filled(ctx, &t->y, N, C, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, H, W, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->bwd_flop = 3 * r->fwd_flop;
        r->fwd_bytes = 2 * in_bytes;
        r->bwd_bytes = 5 * in_bytes;
        break;
    case OP_ADD:
        TRY(alloc_filled(ctx, &t->aux, N, C, H, W, 0.7f));
        TRY(alloc_filled(ctx, &t->daux, N, C, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->y, N, C, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, H, W, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->bwd_flop = 2 * r->fwd_flop;
        r->fwd_bytes = 3 * in_bytes;
        r->bwd_bytes = 5 * in_bytes;
        break;
    case OP_ACT:
    case OP_DROPOUT:
        TRY(alloc_filled(ctx, &t->y, N, C, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, H, W, 0.01f));
        r->fwd_flop = (double)N * C * H * W;
        r->bwd_flop = r->fwd_flop;
        r->fwd_bytes = 2 * in_bytes;
        r->bwd_bytes = 4 * in_bytes;
        break;
    case OP_INORM:
        TRY(alloc_filled(ctx, &t->y, N, C, H, W, 0.0f));
        TRY(alloc_filled(ctx, &t->dy, N, C, H, W, 0.01f));
        TRY(alloc_filled(ctx, &t->stat1, N, C, 1, 1, 0.0f));
        TRY(alloc_filled(ctx, &t->stat2, N, C, 1, 1, 0.0f));
        r->fwd_flop = 5.0 * N * C * H * W;
        r->bwd_flop = 8.0 * N * C * H * W;
        r->fwd_bytes = 2 * in_bytes;
        r->bwd_bytes = 4 * in_bytes;
        break;
    case OP_MSE:
        TRY(alloc_filled(ctx, &t->aux, N, C, H, W, 0.7f));
        TRY(alloc_filled(ctx, &t->loss, 1, 1, 1, 1, 0.0f));
        r->fwd_flop = 3.0 * N * C * H * W;
        r->bwd_flop = 3.0 * N * C * H * W;
        r->fwd_bytes = 2 * in_bytes;
        r->bwd_bytes = 4 * in_bytes;
        break;
    }
done:
    return st;
}

static dsd_status run_op(dsd_context *ctx, const bench_case *bc, bench_tensors *t, int backward)
{
    switch (bc->kind) {
    case OP_CONV:
        return backward ? dsd_conv2d_backward(ctx, &bc->conv, &t->x, &t->w, &t->dy, &t->dx,
                                              &t->dw, &t->db)
                        : dsd_conv2d_forward(ctx, &bc->conv, &t->x, &t->w, &t->b, &t->y);
    case OP_ACT:
        return backward ? dsd_activation_backward(ctx, bc->act, 0.2f, &t->x, &t->y, &t->dy, &t->dx)
                        : dsd_activation_forward(ctx, bc->act, 0.2f, &t->x, &t->y);
    case OP_ADD_BCAST_C:
    case OP_MUL_BCAST_HW:
        return backward ? dsd_mul_backward(ctx, &t->x, &t->aux, &t->dy, &t->dx, &t->daux)
                        : dsd_mul_forward(ctx, &t->x, &t->aux, &t->y);
    case OP_ADD:
        return backward ? dsd_add_backward(ctx, 1.0f, &t->dy, &t->dx, &t->daux)
                        : dsd_add_forward(ctx, &t->x, &t->aux, 1.0f, &t->y);
    case OP_GAP:
        return backward ? dsd_global_avg_pool_backward(ctx, &t->dy, &t->dx)
                        : dsd_global_avg_pool_forward(ctx, &t->x, &t->y);
    case OP_GMP:
        return backward ? dsd_global_max_pool_backward(ctx, &t->x, &t->dy, &t->dx)
                        : dsd_global_max_pool_forward(ctx, &t->x, &t->y);
    case OP_CMEAN:
        return backward ? dsd_channel_mean_backward(ctx, &t->dy, &t->dx)
                        : dsd_channel_mean_forward(ctx, &t->x, &t->y);
    case OP_CMAX:
        return backward ? dsd_channel_max_backward(ctx, &t->x, &t->dy, &t->dx)
                        : dsd_channel_max_forward(ctx, &t->x, &t->y);
    case OP_SHUFFLE:
        return backward ? dsd_pixel_shuffle_backward(ctx, 2, &t->dy, &t->dx)
                        : dsd_pixel_shuffle_forward(ctx, 2, &t->x, &t->y);
    case OP_MAXPOOL:
        return backward ? dsd_maxpool2x2_backward(ctx, &t->x, &t->dy, &t->dx)
                        : dsd_maxpool2x2_forward(ctx, &t->x, &t->y);
    case OP_INORM:
        return backward ? dsd_instance_norm_backward(ctx, &t->x, NULL, &t->stat1, &t->stat2,
                                                     &t->dy, &t->dx, NULL, NULL)
                        : dsd_instance_norm_forward(ctx, 1e-5f, &t->x, NULL, NULL, &t->y,
                                                    &t->stat1, &t->stat2);
    case OP_DROPOUT:
        return backward ? dsd_dropout_backward(ctx, 0.5f, 42, 7, &t->dy, &t->dx)
                        : dsd_dropout_forward(ctx, 0.5f, 42, 7, &t->x, &t->y);
    case OP_MSE:
        return backward ? dsd_mse_loss_backward(ctx, 1.0f, &t->x, &t->aux, &t->dx, NULL)
                        : dsd_mse_loss_forward(ctx, &t->x, &t->aux, &t->loss);
    }
    return DSD_ERR_INVALID_ARGUMENT;
}

static dsd_status time_op(dsd_context *ctx, const bench_case *bc, bench_tensors *t, int backward,
                          int reps, double *median_ms, double *median_wall_ms)
{
    double *ms = calloc((size_t)reps, sizeof *ms);
    if (!ms)
        return DSD_ERR_OUT_OF_MEMORY;
    double *wall = calloc((size_t)reps, sizeof *wall);
    dsd_status st = wall ? run_op(ctx, bc, t, backward) : DSD_ERR_OUT_OF_MEMORY; /* warm-up */
    double dummy;
    if (st == DSD_OK)
        st = device_ms(ctx, &dummy);
    for (int i = 0; i < reps && st == DSD_OK; i++) {
        double t0 = cli_now();
        st = run_op(ctx, bc, t, backward);
        if (st == DSD_OK)
            st = dsd_context_finish(ctx);
        wall[i] = (cli_now() - t0) * 1e3;
        if (st == DSD_OK)
            st = device_ms(ctx, &ms[i]);
    }
    if (st == DSD_OK) {
        qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
        qsort(wall, (size_t)reps, sizeof *wall, cmp_double);
        *median_ms = ms[reps / 2];
        *median_wall_ms = wall[reps / 2];
    }
    free(ms);
    free(wall);
    return st;
}

/* ------------------------------------------------------------------------ */

static dsd_conv2d_params conv(int k, int s, int pad, dsd_padding mode, int groups)
{
    return (dsd_conv2d_params){.kernel_h = k, .kernel_w = k, .stride = s, .pad = pad,
                               .pad_mode = mode, .groups = groups};
}

static size_t build_cases(bench_case *out, size_t max, int body_h, int body_w, int head_h,
                          int head_w)
{
    size_t n = 0;
#define ADD(...) do { if (n < max) out[n++] = (bench_case){.n = 1, __VA_ARGS__}; } while (0)
    const int bh = body_h, bw = body_w, hh = head_h, hw = head_w;
    /* head and tail of the generator, at the input resolution */
    ADD(.name = "conv7x7 3->64 reflect (head)", .kind = OP_CONV, .c = 3, .h = hh, .w = hw,
        .out_c = 64, .conv = conv(7, 1, 3, DSD_PAD_REFLECT, 1));
    ADD(.name = "conv3x3 s2 64->128 (down 1)", .kind = OP_CONV, .c = 64, .h = hh, .w = hw,
        .out_c = 128, .conv = conv(3, 2, 1, DSD_PAD_ZERO, 1));
    ADD(.name = "conv3x3 s2 128->256 (down 2)", .kind = OP_CONV, .c = 128, .h = hh / 2,
        .w = hw / 2, .out_c = 256, .conv = conv(3, 2, 1, DSD_PAD_ZERO, 1));
    ADD(.name = "conv7x7 64->3 reflect (tail)", .kind = OP_CONV, .c = 64, .h = hh, .w = hw,
        .out_c = 3, .conv = conv(7, 1, 3, DSD_PAD_REFLECT, 1));
    ADD(.name = "leaky_relu (head, 64 ch)", .kind = OP_ACT, .c = 64, .h = hh, .w = hw,
        .act = DSD_ACT_LEAKY_RELU);
    /* one DSCRb at the body resolution */
    ADD(.name = "global_avg_pool", .kind = OP_GAP, .c = 256, .h = bh, .w = bw);
    ADD(.name = "global_max_pool", .kind = OP_GMP, .c = 256, .h = bh, .w = bw);
    ADD(.name = "mul (N,C,1,1) channel attention", .kind = OP_ADD_BCAST_C, .c = 256, .h = bh,
        .w = bw);
    ADD(.name = "channel_mean", .kind = OP_CMEAN, .c = 256, .h = bh, .w = bw);
    ADD(.name = "channel_max", .kind = OP_CMAX, .c = 256, .h = bh, .w = bw);
    ADD(.name = "conv7x7 2->1 (spatial attention)", .kind = OP_CONV, .c = 2, .h = bh, .w = bw,
        .out_c = 1, .conv = conv(7, 1, 3, DSD_PAD_ZERO, 1));
    ADD(.name = "mul (N,1,H,W) spatial attention", .kind = OP_MUL_BCAST_HW, .c = 256, .h = bh,
        .w = bw);
    ADD(.name = "depthwise3x3 reflect", .kind = OP_CONV, .c = 256, .h = bh, .w = bw,
        .out_c = 256, .conv = conv(3, 1, 1, DSD_PAD_REFLECT, 256));
    ADD(.name = "pointwise1x1 256->256 (GEMM)", .kind = OP_CONV, .c = 256, .h = bh, .w = bw,
        .out_c = 256, .conv = conv(1, 1, 0, DSD_PAD_ZERO, 1));
    ADD(.name = "leaky_relu (body)", .kind = OP_ACT, .c = 256, .h = bh, .w = bw,
        .act = DSD_ACT_LEAKY_RELU);
    ADD(.name = "sigmoid (body)", .kind = OP_ACT, .c = 256, .h = bh, .w = bw,
        .act = DSD_ACT_SIGMOID);
    ADD(.name = "dropout p=0.5", .kind = OP_DROPOUT, .c = 256, .h = bh, .w = bw);
    ADD(.name = "add (residual)", .kind = OP_ADD, .c = 256, .h = bh, .w = bw);
    /* upsampling */
    ADD(.name = "conv3x3 256->512 (up 1)", .kind = OP_CONV, .c = 256, .h = bh, .w = bw,
        .out_c = 512, .conv = conv(3, 1, 1, DSD_PAD_ZERO, 1));
    ADD(.name = "pixel_shuffle r=2 (512->128)", .kind = OP_SHUFFLE, .c = 512, .h = bh, .w = bw);
    /* discriminator and losses (at the crop size of the body's input) */
    ADD(.name = "instance_norm", .kind = OP_INORM, .c = 256, .h = bh, .w = bw);
    ADD(.name = "maxpool2x2 (VGG)", .kind = OP_MAXPOOL, .c = 256, .h = bh, .w = bw);
    ADD(.name = "mse_loss", .kind = OP_MSE, .c = 256, .h = bh, .w = bw);
    ADD(.name = "tanh (tail)", .kind = OP_ACT, .c = 3, .h = hh, .w = hw, .act = DSD_ACT_TANH);
#undef ADD
    return n;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: %s [--device SEL] [--reps N] [--shapes small|paper] [--filter S] "
            "[--json FILE [--force]]\n       %s --list-devices\n", prog, prog);
}

int main(int argc, char **argv)
{
    const char *filter = NULL, *json_path = NULL, *shapes = "small";
    int reps = 5, force = 0;
    cli_args a;
    cli_args_init(&a, prog, argc, argv, usage, CLI_LIST_DEVICES);
    while (cli_args_next(&a)) {
        if (cli_args_option(&a, NULL, "--reps"))
            cli_args_int(&a, 1, 1000, &reps);
        else if (cli_args_option(&a, NULL, "--shapes"))
            shapes = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--filter"))
            filter = cli_args_value(&a);
        else if (cli_args_option(&a, NULL, "--json"))
            json_path = cli_args_value(&a);
        else if (cli_args_flag(&a, "-f", "--force"))
            force = 1;
        else
            cli_args_unknown(&a);
    }
    if (cli_args_end(&a) >= 0)
        return a.exit_status;
    int bh = 64, bw = 64, hh = 256, hw = 256;
    if (!strcmp(shapes, "paper")) {
        bh = 180; bw = 320; hh = 720; hw = 1280;
    } else if (strcmp(shapes, "small") != 0) {
        fprintf(stderr, "%s: error: --shapes must be small or paper\n", prog);
        return 2;
    }
    if (json_path && cli_check_output(prog, NULL, json_path, force))
        return 1; /* it reads no file, so only an existing one is refused */
    dsd_context *ctx = cli_context(prog, a.device, 1);
    if (!ctx)
        return 1;
    const dsd_device_info *d = dsd_context_device(ctx);
    printf("device: %s | %s | driver %s | %s\n", d->name, d->platform, d->driver, d->c_version);
    printf("shapes: body 1x256x%dx%d, head 1x3x%dx%d; median of %d runs after 1 warm-up\n\n",
           bh, bw, hh, hw, reps);
    printf("%-36s %9s %9s %8s %8s %9s %9s %8s %8s\n", "op", "fwd ev ms", "wall ms",
           "GFLOP/s", "GB/s", "bwd ev ms", "wall ms", "GFLOP/s", "GB/s");
    cli_json json = {0};
    cli_json_open(&json, NULL, '{', 0);
    cli_json_string(&json, "device", d->name);
    cli_json_string(&json, "platform", d->platform);
    cli_json_string(&json, "driver", d->driver);
    cli_json_string(&json, "shapes", shapes);
    cli_json_open(&json, "ops", '[', 1);
    bench_case cases[64];
    size_t n = build_cases(cases, 64, bh, bw, hh, hw);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(cases[i].name, filter))
            continue;
        bench_tensors t;
        memset(&t, 0, sizeof t);
        bench_result r = {0};
        dsd_status st = setup(ctx, &cases[i], &t, &r);
        if (st == DSD_OK)
            st = time_op(ctx, &cases[i], &t, 0, reps, &r.fwd_ms, &r.fwd_wall);
        if (st == DSD_OK)
            st = time_op(ctx, &cases[i], &t, 1, reps, &r.bwd_ms, &r.bwd_wall);
        free_all(ctx, &t);
        if (st != DSD_OK) {
            cli_print_error_for(prog, cases[i].name, dsd_context_error(ctx));
            rc = 1;
            continue;
        }
        /* rates from the slower of the two clocks (see the top of the file) */
        double ft = r.fwd_wall > r.fwd_ms ? r.fwd_wall : r.fwd_ms;
        double bt = r.bwd_wall > r.bwd_ms ? r.bwd_wall : r.bwd_ms;
        double fg = r.fwd_flop / (ft * 1e6), fb = r.fwd_bytes / (ft * 1e6);
        double bg = r.bwd_flop / (bt * 1e6), bb = r.bwd_bytes / (bt * 1e6);
        printf("%-36s %9.3f %9.3f %8.1f %8.1f %9.3f %9.3f %8.1f %8.1f\n", cases[i].name,
               r.fwd_ms, r.fwd_wall, fg, fb, r.bwd_ms, r.bwd_wall, bg, bb);
        fflush(stdout);
        cli_json_open(&json, NULL, '{', 0);
        cli_json_string(&json, "op", cases[i].name);
        cli_json_number(&json, "fwd_ms", "%.6f", r.fwd_ms);
        cli_json_number(&json, "fwd_gflops", "%.3f", fg);
        cli_json_number(&json, "fwd_gbps", "%.3f", fb);
        cli_json_number(&json, "fwd_wall_ms", "%.6f", r.fwd_wall);
        cli_json_number(&json, "bwd_ms", "%.6f", r.bwd_ms);
        cli_json_number(&json, "bwd_gflops", "%.3f", bg);
        cli_json_number(&json, "bwd_gbps", "%.3f", bb);
        cli_json_number(&json, "bwd_wall_ms", "%.6f", r.bwd_wall);
        cli_json_close(&json);
    }
    cli_json_close(&json);
    cli_json_close(&json);
    if (json_path && cli_text_save(prog, &json.text, json_path))
        rc = 1;
    cli_text_free(&json.text);
    dsd_context_free(ctx);
    return rc;
}
