/*
 * dsdeblur_ops.h: the layer operations, forward and backward (included by
 * dsdeblur.h; do not include it alone).
 *
 * Conventions shared by every op
 * ------------------------------
 * - Tensors are float32 NCHW (see dsdeblur.h). The caller allocates every
 *   output with the right shape; an op validates all shapes before it enqueues
 *   anything and returns DSD_ERR_SHAPE naming the mismatch.
 * - Ops only enqueue work: no op waits for the device.
 * - Backward functions ACCUMULATE: they add into the gradient tensors they are
 *   given (dx += ..., dweight += ...), as llm.c does, so a tensor used twice
 *   (the shared MLP of channel attention, the discriminator applied to real
 *   and fake images) receives the sum of its gradients. Zero gradients once
 *   per step (dsd_tensor_fill(ctx, g, 0)). A NULL gradient pointer skips that
 *   gradient.
 * - Results are deterministic: no floating-point atomics; every reduction
 *   runs in a fixed order, so one device gives bit-identical results run to
 *   run.
 * - Differentiation is by hand-written backward passes called in mirrored
 *   order by the model code (doc/architecture.md explains why).
 */
#ifndef DSDEBLUR_OPS_H
#define DSDEBLUR_OPS_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Convolution (src/ops/conv2d.c, cl/conv2d.cl; depthwise: src/ops/depthwise.c,
 * cl/depthwise.cl)
 *
 * x (N, Cin, H, W), weight (Cout, Cin/groups, KH, KW), bias (1, Cout, 1, 1) or
 * NULL, y (N, Cout, OH, OW) with OH = (H + 2*pad - KH)/stride + 1 (same for W).
 * groups is 1 or Cin (depthwise, then Cout == Cin). Reflection padding
 * requires pad < H and pad < W (as PyTorch's ReflectionPad2d).
 *
 * Strategy: groups == 1 goes through CLBlast GEMM. A 1x1 stride-1 unpadded
 * convolution is a GEMM on the NCHW data directly; other kernel sizes use
 * im2col in row chunks so the column buffer stays bounded (col_limit_bytes)
 * at 1280x720. groups == Cin uses a direct tiled kernel. */

typedef enum dsd_padding {
    DSD_PAD_ZERO = 0,
    DSD_PAD_REFLECT = 1,
} dsd_padding;

typedef struct dsd_conv2d_params {
    int kernel_h, kernel_w; /* 1, 3, 4, 7 in the model; any >= 1 works */
    int stride;             /* >= 1 (1 and 2 in the model) */
    int pad;                /* pixels on every side */
    dsd_padding pad_mode;
    int groups;             /* 1 or Cin */
} dsd_conv2d_params;

/* Output spatial size, or DSD_ERR_SHAPE (error recorded in ctx). */
dsd_status dsd_conv2d_output_size(dsd_context *ctx, const dsd_conv2d_params *p, int in_h,
                                  int in_w, int *out_h, int *out_w);

dsd_status dsd_conv2d_forward(dsd_context *ctx, const dsd_conv2d_params *p, const dsd_tensor *x,
                              const dsd_tensor *weight, const dsd_tensor *bias, dsd_tensor *y);

/* Accumulates dx (N,Cin,H,W), dweight (like weight), dbias (like bias); any may be NULL. */
dsd_status dsd_conv2d_backward(dsd_context *ctx, const dsd_conv2d_params *p, const dsd_tensor *x,
                               const dsd_tensor *weight, const dsd_tensor *dy, dsd_tensor *dx,
                               dsd_tensor *dweight, dsd_tensor *dbias);

/* How a convolution runs: the one place its route and chunking are decided.
 * dsd_conv2d_forward/_backward take this route; network plans (src/model/
 * plan.c), the memory estimates and dsdeblur-bench's work model read it. */
typedef enum dsd_conv2d_route {
    DSD_CONV2D_ROUTE_DEPTHWISE = 0, /* groups == Cin: src/ops/depthwise.c */
    DSD_CONV2D_ROUTE_POINTWISE,     /* 1x1, stride 1, no pad, an image's input within
                                       the column bound: one GEMM per image */
    DSD_CONV2D_ROUTE_IM2COL,        /* im2col in chunks of output rows + GEMM */
    DSD_CONV2D_ROUTE_DIRECT_FEW,    /* Cout <= 4: direct kernels, no GEMM (backward:
                                       stride 1 only, else IM2COL) */
} dsd_conv2d_route;

typedef struct dsd_conv2d_plan {
    dsd_conv2d_params params;
    int n, cin, h, w;             /* x */
    int cout, oh, ow;             /* y */
    dsd_conv2d_route forward;     /* the forward's route */
    dsd_conv2d_route backward;    /* the backward's */
    int chunk_rows;               /* output rows per im2col chunk (0 without im2col) */
    int chunks;                   /* im2col chunks per image (0 without im2col) */
    size_t forward_workspace;     /* bytes of the column buffer each pass needs */
    size_t backward_workspace;    /* (0 where the route has none) */
    double macs;                  /* multiply-adds of the forward (all images) */
} dsd_conv2d_plan;

/* The column-buffer bound in bytes: $DSDEBLUR_CONV_COL_LIMIT when it is a
 * positive integer, else 8 MiB (a size that keeps a chunk's GEMM operand in a
 * CPU's last-level cache; src/ops/conv2d.c). */
size_t dsd_conv2d_col_limit(void);
/* Plans p on an (n, cin, h, w) input with cout output channels (validates
 * the shapes the way dsd_conv2d_forward does; err may be NULL). */
dsd_status dsd_conv2d_plan_make(const dsd_conv2d_params *p, int n, int cin, int h, int w,
                                int cout, dsd_conv2d_plan *out, dsd_error *err);
/* dsd_conv2d_forward / _backward with the column buffer taken from
 * workspace (a float tensor of at least the plan's forward_workspace /
 * backward_workspace bytes; NULL: leased from the pool for the call). */
dsd_status dsd_conv2d_forward_ws(dsd_context *ctx, const dsd_conv2d_params *p,
                                 const dsd_tensor *x, const dsd_tensor *weight,
                                 const dsd_tensor *bias, dsd_tensor *y,
                                 const dsd_tensor *workspace);
dsd_status dsd_conv2d_backward_ws(dsd_context *ctx, const dsd_conv2d_params *p,
                                  const dsd_tensor *x, const dsd_tensor *weight,
                                  const dsd_tensor *dy, dsd_tensor *dx, dsd_tensor *dweight,
                                  dsd_tensor *dbias, const dsd_tensor *workspace);

/* The depthwise path (groups == Cin == Cout); dsd_conv2d_* dispatch here. */
dsd_status dsd_depthwise_conv2d_forward(dsd_context *ctx, const dsd_conv2d_params *p,
                                        const dsd_tensor *x, const dsd_tensor *weight,
                                        const dsd_tensor *bias, dsd_tensor *y);
dsd_status dsd_depthwise_conv2d_backward(dsd_context *ctx, const dsd_conv2d_params *p,
                                         const dsd_tensor *x, const dsd_tensor *weight,
                                         const dsd_tensor *dy, dsd_tensor *dx,
                                         dsd_tensor *dweight, dsd_tensor *dbias);

/* ------------------------------------------------------------------------ */
/* Activations (src/ops/activation.c, cl/activation.cl)
 * y = f(x), same shape; y may be x (in place) in forward. Backward needs x for
 * the ReLU family and y for sigmoid/tanh; pass both (either may be the only
 * one the function reads). */

typedef enum dsd_activation {
    DSD_ACT_LEAKY_RELU = 0, /* x > 0 ? x : slope * x (slope 0.2 in the model) */
    DSD_ACT_RELU,
    DSD_ACT_SIGMOID,
    DSD_ACT_TANH,
} dsd_activation;

dsd_status dsd_activation_forward(dsd_context *ctx, dsd_activation act, float slope,
                                  const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_activation_backward(dsd_context *ctx, dsd_activation act, float slope,
                                   const dsd_tensor *x, const dsd_tensor *y,
                                   const dsd_tensor *dy, dsd_tensor *dx);

/* ------------------------------------------------------------------------ */
/* Broadcast elementwise (src/ops/elementwise.c, cl/elementwise.cl)
 * b broadcasts against a per dimension: each of b's N, C, and (H,W) pair is
 * either a's or 1, e.g. (N,C,1,1), (N,1,H,W), (1,1,1,1) or a's shape. y has
 * a's shape and may alias a. Backward reduces over the broadcast dimensions
 * in a fixed order. */

/* y = a + alpha * b */
dsd_status dsd_add_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                           float alpha, dsd_tensor *y);
/* da += dy; db += alpha * sum over broadcast dims of dy */
dsd_status dsd_add_backward(dsd_context *ctx, float alpha, const dsd_tensor *dy, dsd_tensor *da,
                            dsd_tensor *db);
/* y = a * b */
dsd_status dsd_mul_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                           dsd_tensor *y);
/* da += dy * b; db += sum over broadcast dims of dy * a */
dsd_status dsd_mul_backward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                            const dsd_tensor *dy, dsd_tensor *da, dsd_tensor *db);
/* y = alpha * x (y may alias x); backward: dx += alpha * dy */
dsd_status dsd_scale_forward(dsd_context *ctx, float alpha, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_scale_backward(dsd_context *ctx, float alpha, const dsd_tensor *dy, dsd_tensor *dx);
/* y = min(max(x, lo), hi); backward passes dy where lo <= x <= hi (PyTorch's rule) */
dsd_status dsd_clamp_forward(dsd_context *ctx, float lo, float hi, const dsd_tensor *x,
                             dsd_tensor *y);
dsd_status dsd_clamp_backward(dsd_context *ctx, float lo, float hi, const dsd_tensor *x,
                              const dsd_tensor *dy, dsd_tensor *dx);
/* y (N, Ca+Cb, H, W) = [a; b] along channels; backward splits dy */
dsd_status dsd_concat_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                              dsd_tensor *y);
dsd_status dsd_concat_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *da,
                               dsd_tensor *db);

/* ------------------------------------------------------------------------ */
/* PixelShuffle (src/ops/pixel_shuffle.c, cl/pixel_shuffle.cl), PyTorch order:
 * y[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w].
 * Shuffle: x (N, C*r*r, H, W) -> y (N, C, H*r, W*r). Unshuffle: the inverse. */
dsd_status dsd_pixel_shuffle_forward(dsd_context *ctx, int r, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_pixel_shuffle_backward(dsd_context *ctx, int r, const dsd_tensor *dy,
                                      dsd_tensor *dx);
dsd_status dsd_pixel_unshuffle_forward(dsd_context *ctx, int r, const dsd_tensor *x,
                                       dsd_tensor *y);
dsd_status dsd_pixel_unshuffle_backward(dsd_context *ctx, int r, const dsd_tensor *dy,
                                        dsd_tensor *dx);

/* ------------------------------------------------------------------------ */
/* Pooling (src/ops/pool.c, cl/pool.cl). Max backward routes the gradient to
 * the arg-max, recomputed from x (first index wins ties). */

/* x (N,C,H,W) -> y (N,C,1,1): mean / max over H x W */
dsd_status dsd_global_avg_pool_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_global_avg_pool_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx);
dsd_status dsd_global_max_pool_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_global_max_pool_backward(dsd_context *ctx, const dsd_tensor *x,
                                        const dsd_tensor *dy, dsd_tensor *dx);
/* x (N,C,H,W) -> y (N,1,H,W): mean / max over channels per pixel */
dsd_status dsd_channel_mean_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_channel_mean_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx);
dsd_status dsd_channel_max_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_channel_max_backward(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                                    dsd_tensor *dx);
/* 2x2 max pool, stride 2, floor: x (N,C,H,W) -> y (N,C,H/2,W/2) */
dsd_status dsd_maxpool2x2_forward(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_maxpool2x2_backward(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                                   dsd_tensor *dx);

/* ------------------------------------------------------------------------ */
/* Instance normalization (src/ops/norm.c, cl/norm.cl)
 * y = (x - mean) * rstd * gamma + beta per (n, c) over H x W, rstd =
 * 1/sqrt(var + eps), biased variance (PyTorch). gamma/beta (1,C,1,1) or NULL
 * (affine off). mean/rstd (N,C,1,1) are written for backward; NULL in
 * inference. */
dsd_status dsd_instance_norm_forward(dsd_context *ctx, float eps, const dsd_tensor *x,
                                     const dsd_tensor *gamma, const dsd_tensor *beta,
                                     dsd_tensor *y, dsd_tensor *mean, dsd_tensor *rstd);
dsd_status dsd_instance_norm_backward(dsd_context *ctx, const dsd_tensor *x,
                                      const dsd_tensor *gamma, const dsd_tensor *mean,
                                      const dsd_tensor *rstd, const dsd_tensor *dy,
                                      dsd_tensor *dx, dsd_tensor *dgamma, dsd_tensor *dbeta);

/* ------------------------------------------------------------------------ */
/* Dropout (src/ops/dropout.c, cl/dropout.cl)
 * Element i (flat NCHW index) is kept when the first 32-bit output of
 * Philox4x32-10 with key (seed lo, seed hi) and counter (i, stream lo,
 * stream hi, 0), as a uniform u = (bits >> 8) * 2^-24, satisfies u >= p; kept
 * values are scaled by 1/(1-p). The same (seed, stream) regenerates the same
 * mask on every device, so backward and resume need no stored mask. Callers
 * use stream = a per-call-site counter combined with the step. */
dsd_status dsd_dropout_forward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                               const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_dropout_backward(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                const dsd_tensor *dy, dsd_tensor *dx);
/* The same with element i of the tensor taking the mask bit of index first + i:
 * a slice of a larger batch (data-parallel training: the samples from global
 * index s on, first = s * C * H * W) gets the slice of that batch's mask.
 * DSD_ERR_SHAPE when first + numel passes 2^32. */
dsd_status dsd_dropout_forward_at(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                  uint32_t first, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_dropout_backward_at(dsd_context *ctx, float p, uint64_t seed, uint64_t stream,
                                   uint32_t first, const dsd_tensor *dy, dsd_tensor *dx);
/* The same mask on the host (1 keep / 0 drop), for tests and references. */
int dsd_dropout_keep_host(float p, uint64_t seed, uint64_t stream, uint32_t index);

/* ------------------------------------------------------------------------ */
/* Losses (src/ops/loss.c, cl/loss.cl), mean reduction into a (1,1,1,1)
 * tensor. Backward takes the upstream gradient as a host float `scale` (1 for
 * a loss used alone, lambda for a weighted term) and accumulates. */
dsd_status dsd_mse_loss_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                                dsd_tensor *loss);
/* da += scale * 2 (a - b) / n; db -= the same (db may be NULL) */
dsd_status dsd_mse_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *a,
                                 const dsd_tensor *b, dsd_tensor *da, dsd_tensor *db);
dsd_status dsd_l1_loss_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                               dsd_tensor *loss);
/* da += scale * sign(a - b) / n, sign(0) = 0 */
dsd_status dsd_l1_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *a,
                                const dsd_tensor *b, dsd_tensor *da, dsd_tensor *db);
/* mean of max(z,0) - z*t + log(1 + exp(-|z|)) over logits z, constant target t */
dsd_status dsd_bce_logits_loss_forward(dsd_context *ctx, const dsd_tensor *logits, float target,
                                       dsd_tensor *loss);
/* dz += scale * (sigmoid(z) - t) / n */
dsd_status dsd_bce_logits_loss_backward(dsd_context *ctx, float scale, const dsd_tensor *logits,
                                        float target, dsd_tensor *dlogits);

/* ------------------------------------------------------------------------ */
/* Reductions (src/ops/reduce.c, cl/reduce.cl): whole tensor -> (1,1,1,1),
 * two passes with a fixed number of work-groups and a fixed order. */
dsd_status dsd_reduce_sum(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_reduce_mean(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
dsd_status dsd_reduce_sum_squares(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
/* dx += dy[0] (sum) or dy[0] / n (mean); dy is (1,1,1,1) on the device */
dsd_status dsd_reduce_sum_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx);
dsd_status dsd_reduce_mean_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *dx);

/* ------------------------------------------------------------------------ */
/* Frequency loss (src/ops/fft_loss.c, cl/fft_loss.cl; clFFT)
 * With D = FFT2(a - b) per (n, c) plane (complex-to-complex, full H x W
 * spectrum, unnormalized forward transform), loss = mean over the 2*N*C*H*W
 * values of |Re D| and |Im D| (torch: L1 of the stacked real and imaginary
 * parts of fft2(a) and fft2(b)). H and W must factor into 2, 3, 5, 7, 11, 13
 * (clFFT's radices); anything else is DSD_ERR_SHAPE.
 *
 * clFFT plans are owned by the caller (the content loss, the trainer's
 * synthetic blur, a test), not by the context: start from a zeroed
 * dsd_fft_plans, pass it to every call on one context, free it with
 * dsd_fft_plans_free after the last (keep it as long as the context is
 * used: the first call for a shape creates and bakes its plan, which compiles
 * clFFT's kernels on the host; later calls reuse it). Using one dsd_fft_plans with two contexts is
 * DSD_ERR_INVALID_ARGUMENT. dsdeblur never calls clfftTeardown (it would
 * destroy every plan of the process); see src/ops/fft_loss.c. */
typedef struct dsd_fft_plans {
    /* private */
    struct dsd_fft_plan *plan;  /* baked plans, one per (H, W, batch) seen */
    size_t n, cap;
    cl_context cl_ctx;          /* the context the plans belong to; NULL while empty */
} dsd_fft_plans;

/* Destroys every plan; plans is zeroed (reusable, with any context). */
void dsd_fft_plans_free(dsd_fft_plans *plans);

dsd_status dsd_fft_loss_forward(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *a,
                                const dsd_tensor *b, dsd_tensor *loss);
/* da += scale * Re(IFFT_unnormalized(sign(Re D) + i sign(Im D))) / (2 N C H W); db -= same */
dsd_status dsd_fft_loss_backward(dsd_context *ctx, dsd_fft_plans *plans, float scale,
                                 const dsd_tensor *a, const dsd_tensor *b, dsd_tensor *da,
                                 dsd_tensor *db);

/* ------------------------------------------------------------------------ */
/* Adam (src/optim/adam.c, cl/adam.cl), PyTorch's formulation:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * One fused kernel per call; param, grad, m, v have the same element count
 * (pass whole parameter arenas to update every tensor in one launch). t >= 1. */
typedef struct dsd_adam_params {
    float lr;     /* 1e-4 in the paper */
    float beta1;  /* 0.5 */
    float beta2;  /* 0.999 */
    float eps;    /* 1e-8 */
} dsd_adam_params;

dsd_status dsd_adam_step(dsd_context *ctx, const dsd_adam_params *p, int t, dsd_tensor *param,
                         const dsd_tensor *grad, dsd_tensor *m, dsd_tensor *v);

/* Learning rate for a 0-based epoch: base_lr for epochs < constant_epochs,
 * then linear decay reaching 0 at epoch == total_epochs (paper: 150 of 500). */
float dsd_lr_schedule(float base_lr, int epoch, int constant_epochs, int total_epochs);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_OPS_H */
