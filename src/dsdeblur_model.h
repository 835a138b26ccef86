/*
 * dsdeblur_model.h: the networks of the paper, forward and backward, with
 * their parameters in one device arena each (included by dsdeblur.h; do not
 * include it alone). Implementations: src/model/params.c (the dsd_params_*
 * arena code every network shares), src/model/generator.c and
 * src/model/discriminator.c; double-precision reference networks and the
 * gradient checks: tests/test-generator.c, tests/test-discriminator.c.
 *
 * What this is not: a training loop, a loss or an optimizer (those call
 * these functions), and not a general graph library: the layers are fixed,
 * and each backward is written by hand in mirrored order (llm.c style, see
 * doc/architecture.md).
 *
 * Overview
 * --------
 *     dsd_generator g;
 *     dsd_generator_config cfg = dsd_generator_default_config();
 *     if (dsd_generator_init(ctx, &g, &cfg) != DSD_OK) ...   // arenas on the device
 *     dsd_generator_init_weights(ctx, &g, 42);              // PyTorch-default init
 *
 *     // one training step of the generator alone
 *     dsd_generator_tape tape = {0};                        // caller-owned, reused
 *     dsd_tensor_fill(ctx, &g.params.grads, 0.0f);          // zero grads once per step
 *     tape.step = step;                                     // dropout masks of this step
 *     dsd_generator_forward(ctx, &g, &blur, &sharp_hat, &tape);  // keeps activations
 *     ... loss forward, loss backward into d_sharp_hat ...
 *     dsd_generator_backward(ctx, &g, &tape, &d_sharp_hat, NULL);  // accumulates grads
 *     dsd_adam_step(ctx, &hp, step + 1, &g.params.values, &g.params.grads, &m, &v);
 *     dsd_generator_tape_free(ctx, &tape);
 *
 *     // deblurring: no activations kept, memory bounded by a few feature maps
 *     dsd_generator_forward(ctx, &g, &blur, &out, NULL);
 *     dsd_generator_free(ctx, &g);
 *
 * Parameter arenas (dsd_params)
 * -----------------------------
 * Every parameter of a network lives in ONE device tensor, params.values,
 * shaped (1, 1, 1, count); its gradients live in a second one, params.grads,
 * with the same layout. So zeroing the gradients is one dsd_tensor_fill, the
 * Adam step is one dsd_adam_step over the whole arena (m and v are two more
 * tensors of `count` floats the trainer owns), and a checkpoint is one
 * download sliced by the table. The table params.info lists every parameter
 * in forward order with its name, its PyTorch shape (what a checkpoint
 * stores), the NCHW shape of its device view and its offset in floats.
 * Parameters are packed back to back without padding, so count is exactly
 * the number of parameters.
 *
 * The networks also hold typed views (dsd_tensor structs that borrow the
 * arena's buffer at an offset, capacity 0) named after the layers, one set
 * into values (g.w) and the same set into grads (g.grad), built with
 * dsd_params_view. Conv weights are (Cout, Cin/groups, KH, KW), conv biases
 * and norm parameters (1, C, 1, 1). Views must not outlive the network.
 *
 * Parameter names (they become safetensors names)
 * -----------------------------------------------
 * PyTorch module paths, ModuleList indices from 0, ".weight" / ".bias":
 *   generator      head.{weight,bias}                 7x7 conv 3 -> B (reflect pad 3)
 *                  down.{0,1}.{weight,bias}           3x3 stride 2: B -> 2B, 2B -> 4B
 *                  blocks.<i>.ca.fc1.{weight,bias}    channel attention MLP 4B -> 4B/r
 *                  blocks.<i>.ca.fc2.{weight,bias}    4B/r -> 4B
 *                  blocks.<i>.sa.conv.{weight,bias}   spatial attention 7x7, 2 -> 1
 *                  blocks.<i>.dsc.<j>.depthwise.{weight,bias}   j = 0, 1, 2: 3x3, groups 4B
 *                  blocks.<i>.dsc.<j>.pointwise.{weight,bias}   1x1, 4B -> 4B
 *                  up.{0,1}.{weight,bias}             KxK: 4B -> 8B, 2B -> 4B (before
 *                                                     PixelShuffle(2))
 *                  tail.{weight,bias}                 7x7 conv B -> 3 (reflect pad 3)
 *   discriminator  layers.<i>.conv.{weight,bias}      i = 0 .. n_layers + 1
 *                  layers.<i>.norm.{weight,bias}      only with norm_affine, i = 1 .. n_layers
 * (B = base_width, r = mlp_ratio, K = up_kernel.) Weight shapes are
 * PyTorch's (Cout, Cin/groups, KH, KW); biases and norm parameters are 1-D (C).
 *
 * Parameter counts
 * ----------------
 * The default generator (B 64, 9 blocks, r 16, K 3) has 3,785,806 parameters
 * (15.1 MB as float32): head 9,472, down 369,024, each DSCRb 213,619
 * (attention 8,563 + three DSCs of 68,352), up 1,475,328, tail 9,411. With
 * r = 8: 3,859,678; with K = 1: 2,475,086; per block fewer or more: 213,619
 * each (0 blocks: 1,863,235). The default discriminator (B 64, 3 layers) has
 * 2,764,737. dsd_generator_param_count / dsd_discriminator_param_count
 * compute these from a config without a device.
 *
 * Training and inference forwards
 * -------------------------------
 * training != 0 keeps every activation the backward needs; training == 0
 * keeps none and gives each intermediate back to the pool as soon as the
 * next layer has consumed it (several ops run in place), so inference at
 * 1280x720 needs a few full-resolution feature maps, not all of them. Every
 * activation and gradient temporary is a slot of one arena placed by the
 * network's plan ("Network plans" below): a training pass runs in the
 * arena of its tape, kept from step to step; an inference pass leases one
 * arena for the call. The backward gives each slot back to the plan as soon
 * as it has been used for the last time, so later slots reuse its place.
 *
 * The input x is BORROWED by a training forward: it must stay alive and
 * unchanged until the matching backward (the first layer's weight gradient
 * reads it). Outputs are caller-allocated and must not overlap inputs.
 *
 * Each network's training forward fills a caller-owned tape
 * (dsd_generator_tape, dsd_discriminator_tape, dsd_vgg_tape): one tape per
 * pending forward, as many as the caller likes, no hidden slot limit, and
 * the lifetime is visible in the caller's code. The discriminator is applied
 * to real and fake images in one step, with the backwards in any order: two
 * tapes. Backward consumes the tape (marks it empty) and leaves it its arena
 * for the next forward of the same shape; a new generator forward drops a
 * pending one, while the discriminator's and VGG's refuse a pending tape.
 * *_tape_free gives the arena back (and drops a tape that will not be
 * backpropagated).
 *
 * LeakyReLU runs in place and its backward reads the activation's output
 * instead of its input: with slope >= 0 both have the same sign, which is all
 * the backward looks at. Dropout likewise runs in place after the LeakyReLU;
 * where it dropped an element the gradient is zero whatever the saved value.
 * Hence the configs require slope >= 0.
 *
 * Backward semantics are those of the ops: everything ACCUMULATES. Parameter
 * gradients are added into params.grads (zero them once per step), dx (when
 * not NULL) receives dx += dL/dx.
 *
 * Dropout masks are Philox streams (see dsd_dropout_forward): seed
 * g->dropout_seed, stream = step * 65536 + block index, element index
 * counted from tape.first_sample's first element (dsd_dropout_forward_at), so
 * a sample's mask does not depend on how a batch is split. The same step
 * regenerates the same masks, so a resumed run and the backward need no
 * stored mask. Inference never drops.
 *
 * Errors: invalid configs give DSD_ERR_INVALID_ARGUMENT, input shapes the
 * network cannot take DSD_ERR_SHAPE (recorded in the context like any op);
 * on an error in the middle of a forward or backward the tape is no longer
 * pending and the step must be redone.
 */
#ifndef DSDEBLUR_MODEL_H
#define DSDEBLUR_MODEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Parameter arenas (src/model/params.c) */

enum { DSD_PARAM_NAME_MAX = 64 };

/* How dsd_params_init_weights fills a parameter. */
typedef enum dsd_param_init {
    DSD_PARAM_INIT_FAN_IN = 0, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's Conv2d
                                  default for weight (kaiming_uniform_, a = sqrt(5))
                                  and bias alike */
    DSD_PARAM_INIT_ONES,       /* norm weight */
    DSD_PARAM_INIT_ZEROS,      /* norm bias */
} dsd_param_init;

typedef struct dsd_param_info {
    char name[DSD_PARAM_NAME_MAX]; /* "blocks.3.ca.fc1.weight" */
    int ndim;                      /* dimensions of the PyTorch shape: 4 or 1 */
    int shape[4];                  /* PyTorch shape, shape[0 .. ndim) */
    int nchw[4];                   /* the device view's shape: weights as above,
                                      biases (1, C, 1, 1) */
    size_t offset;                 /* first float in the arena */
    size_t numel;
    dsd_param_init init;
    int fan_in;                    /* Cin/groups * KH * KW of the owning conv */
} dsd_param_info;

typedef struct dsd_params {
    dsd_param_info *info;  /* n entries in forward order (malloc'd) */
    size_t n, cap;
    size_t count;          /* floats in the arena == number of parameters */
    dsd_tensor values;     /* (1, 1, 1, count) */
    dsd_tensor grads;      /* (1, 1, 1, count), same layout */
} dsd_params;

/* Building a layout (for network implementations): append one parameter.
 * shape is the PyTorch shape (ndim 1 or 4); the device view gets nchw =
 * shape for ndim 4 and (1, shape[0], 1, 1) for ndim 1. The name is printf
 * style. Host only; DSD_ERR_INVALID_ARGUMENT for a name too long or a
 * duplicate, DSD_ERR_OUT_OF_MEMORY when the table cannot grow. */
dsd_status dsd_params_add(dsd_params *p, dsd_error *err, int ndim, const int *shape,
                          dsd_param_init init, int fan_in, const char *name_fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
/* Allocates values and grads for the layout (both zeroed). Fails with
 * DSD_ERR_OUT_OF_MEMORY naming the bytes needed and what the device allows. */
dsd_status dsd_params_alloc(dsd_context *ctx, dsd_params *p);
/* Gives the arenas back and frees the table; safe on a zeroed struct. */
void dsd_params_free(dsd_context *ctx, dsd_params *p);

/* The entry called name, or NULL. */
const dsd_param_info *dsd_params_find(const dsd_params *p, const char *name);
/* A view of one parameter in an arena laid out like p (values, grads, or an
 * optimizer moment of count floats): arena's buffer at arena->offset +
 * info->offset, shape info->nchw. DSD_ERR_SHAPE when the arena is not
 * count floats. */
dsd_status dsd_params_view(dsd_context *ctx, const dsd_tensor *arena, const dsd_param_info *info,
                           dsd_tensor *out);
/* Fills every parameter as its init says, on the host from a seeded
 * xorshift64* stream per parameter (seeded by seed and the parameter's name,
 * so one parameter's values do not depend on the others), then uploads.
 * Same seed -> same weights on every machine. */
dsd_status dsd_params_init_weights(dsd_context *ctx, dsd_params *p, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* Weight views shared by the networks */

typedef struct dsd_conv_weights {
    dsd_tensor weight;   /* (Cout, Cin/groups, KH, KW) */
    dsd_tensor bias;     /* (1, Cout, 1, 1) */
} dsd_conv_weights;

/* ------------------------------------------------------------------------ */
/* Generator (src/model/generator.c; paper sections 2.1 - 2.4)
 *
 * x (N, 3, H, W) blurred, in [-1, 1]; H and W multiples of 4, at least 8.
 * With B = base_width, C = 4B, r = mlp_ratio, K = up_kernel, LReLU slope s:
 *   head    ReflectionPad(3), conv 7x7 3 -> B, LReLU                (N, B, H, W)
 *   down.0  conv 3x3 stride 2 pad 1 (zeros) B -> 2B, LReLU          (N, 2B, H/2, W/2)
 *   down.1  conv 3x3 stride 2 pad 1 2B -> C, LReLU                  (N, C, H/4, W/4)
 *   blocks  n_blocks x DSCRb(C):
 *             channel attention: mc = sigmoid(fc2(LReLU(fc1(avgpool f)))
 *                                            + fc2(LReLU(fc1(maxpool f))))   fc = 1x1 conv
 *             f1 = f * mc
 *             spatial attention: ms = sigmoid(conv7x7 pad 3 ([mean_c f1; max_c f1]))
 *             f2 = f1 * ms
 *             out = f + DSC(LReLU(Dropout(LReLU(DSC(... DSC(f2)))))): precisely
 *               DSC -> LReLU -> Dropout(p) -> DSC -> LReLU -> DSC,
 *               DSC = ReflectionPad(1) depthwise 3x3 (bias) + pointwise 1x1 (bias)
 *   up.0    conv KxK pad K/2 C -> 8B, PixelShuffle(2), LReLU        (N, 2B, H/2, W/2)
 *   up.1    conv KxK pad K/2 2B -> 4B, PixelShuffle(2), LReLU       (N, B, H, W)
 *   tail    ReflectionPad(3), conv 7x7 B -> 3, tanh
 *   y = clamp(x + tail, -1, 1)
 * Every conv has a bias. */

typedef struct dsd_generator_config {
    int n_blocks;       /* DSCRb count: 9 */
    int base_width;     /* B: 64 (channels B, 2B, 4B) */
    int mlp_ratio;      /* r: 16; hidden width 4B / r (floor, >= 1) */
    int up_kernel;      /* K: 3; odd */
    float dropout;      /* p in the blocks: 0.5; [0, 1) */
    float slope;        /* LeakyReLU negative slope: 0.2; >= 0 */
} dsd_generator_config;

/* The paper's generator. */
dsd_generator_config dsd_generator_default_config(void);
/* DSD_OK when cfg is usable, else DSD_ERR_INVALID_ARGUMENT naming the field. */
dsd_status dsd_generator_config_check(const dsd_generator_config *cfg, dsd_error *err);
/* Number of parameters of a network with this config (0 when invalid). */
size_t dsd_generator_param_count(const dsd_generator_config *cfg);

typedef struct dsd_dscrb_weights {
    dsd_conv_weights fc1;          /* (C/r, C, 1, 1) channel attention, shared MLP */
    dsd_conv_weights fc2;          /* (C, C/r, 1, 1) */
    dsd_conv_weights sa;           /* (1, 2, 7, 7) spatial attention */
    dsd_conv_weights depthwise[3]; /* (C, 1, 3, 3) */
    dsd_conv_weights pointwise[3]; /* (C, C, 1, 1) */
} dsd_dscrb_weights;

typedef struct dsd_generator_weights {
    dsd_conv_weights head;         /* (B, 3, 7, 7) */
    dsd_conv_weights down[2];      /* (2B, B, 3, 3), (4B, 2B, 3, 3) */
    dsd_dscrb_weights *blocks;     /* n_blocks (malloc'd) */
    dsd_conv_weights up[2];        /* (8B, 4B, K, K), (4B, 2B, K, K) */
    dsd_conv_weights tail;         /* (3, B, 7, 7) */
} dsd_generator_weights;

/* ------------------------------------------------------------------------ */
/* Network plans (src/model/plan.c)
 *
 * What one pass of a network does at one input shape, decided before it
 * runs and recorded from the network's own code run in planning mode: the
 * convolutions in forward order, each with its route and chunking, and every
 * activation and temporary placed in one device arena (first fit). Training
 * and inference walk the plan; dsd_deblur_estimate_bytes and dsdeblur-bench's
 * work model read it. dsd_generator_plan, dsd_discriminator_plan and
 * dsd_vgg_plan make one.
 *
 *     dsd_network_plan plan = {0};
 *     dsd_generator_plan(&cfg, 1, 720, 1280, 0, &plan, &err);  // inference at 720p
 *     printf("%.1f GFLOP, %.0f MiB\n", 2e-9 * dsd_network_plan_macs(&plan),
 *            dsd_network_plan_bytes(&plan) / 1048576.0);
 *     dsd_network_plan_free(&plan);
 */

typedef struct dsd_plan_layer {
    char name[DSD_PARAM_NAME_MAX]; /* its parameters' prefix, e.g. "blocks.2.ca.fc1" */
    int stage;                     /* dsd_generator_stage for the generator */
    dsd_conv2d_plan conv;          /* shapes, route, chunking, workspace */
} dsd_plan_layer;

typedef struct dsd_plan_slot {
    size_t offset, floats; /* in the arena, in floats */
} dsd_plan_slot;

typedef struct dsd_network_plan {
    dsd_plan_layer *layers;      /* forward convolutions in order (a shared conv used
                                    twice, like the channel attention's MLP, twice) */
    size_t n_layers, cap_layers;
    dsd_plan_slot *slots;        /* every slot the pass takes, in order */
    size_t n_slots, cap_slots;
    size_t arena_floats;         /* the arena: the peak of the live slots */
    size_t workspace_bytes;      /* the largest column buffer of any convolution */
    dsd_plan_slot *live;         /* planning only: the slots not yet given back */
    size_t n_live, cap_live;
} dsd_network_plan;

void dsd_network_plan_free(dsd_network_plan *plan);
/* Device bytes the pass needs besides weights, input and output: the arena
 * plus the workspace. */
uint64_t dsd_network_plan_bytes(const dsd_network_plan *plan);
/* Multiply-adds of the planned forward convolutions. */
double dsd_network_plan_macs(const dsd_network_plan *plan);

/* Building a plan (used by the networks' planning mode). */
void dsd_network_plan_reset(dsd_network_plan *plan);
dsd_status dsd_network_plan_add_layer(dsd_network_plan *plan, const char *name, int stage,
                                      const dsd_conv2d_plan *conv, dsd_error *err);
void dsd_network_plan_need_workspace(dsd_network_plan *plan, size_t bytes);
dsd_status dsd_network_plan_take(dsd_network_plan *plan, size_t floats, size_t *offset,
                                 dsd_error *err);
void dsd_network_plan_give(dsd_network_plan *plan, size_t offset);

/* ------------------------------------------------------------------------ */
/* The generator, continued */

typedef enum dsd_generator_stage {
    DSD_GENERATOR_ENCODE = 0, /* head, down.0, down.1: x (N, 3, H, W) -> f (N, C, H/4, W/4) */
    DSD_GENERATOR_BLOCKS,     /* the DSCRbs on f */
    DSD_GENERATOR_DECODE,     /* up.0, up.1, tail, residual, clamp: f, x -> y */
} dsd_generator_stage;

typedef struct dsd_generator {
    dsd_generator_config cfg;
    dsd_params params;             /* the arenas and their table */
    dsd_generator_weights w;       /* views into params.values */
    dsd_generator_weights grad;    /* the same views into params.grads */
    uint64_t dropout_seed;         /* Philox key of the blocks' dropout; set by
                                      dsd_generator_init_weights, else 0x5eed */
    size_t arena_bytes;            /* device bytes of values + grads */
} dsd_generator;

/* What a training forward saved for its backward, and the memory both run
 * in (caller-owned; start from a zeroed struct and set step before each
 * forward). The arena is sized from the pass's plan on first use and kept
 * while the shape stays the same, so steps after the first allocate
 * nothing. */
typedef struct dsd_generator_tape {
    uint64_t step;                 /* in: the dropout masks are those of this step */
    uint64_t first_sample;         /* in: data-parallel training: the global index of the
                                    * batch's first sample, whose masks it takes (0: alone) */
    int pending;                   /* a forward waits for its backward */
    int block;                     /* -1: the whole network; b: block b alone */
    int n, h, w;                   /* the input shape the plan and arena are for */
    dsd_generator_config cfg;      /* and the network (a tape may move between generators) */
    dsd_network_plan plan;         /* forward and backward of that shape */
    dsd_tensor arena;              /* activations and gradient temporaries (owned) */
    dsd_tensor workspace;          /* the convolutions' column buffer (owned) */
    size_t next_slot;              /* the backward continues the plan's slots here */
    dsd_tensor x;                  /* the input (borrowed view) */
    struct dsd_generator_saved *saved; /* the activations (private layout) */
} dsd_generator_tape;

/* Validates cfg (NULL: defaults), builds the table and views, allocates both
 * arenas (zeroed). On failure g is left zeroed (safe to free). */
dsd_status dsd_generator_init(dsd_context *ctx, dsd_generator *g, const dsd_generator_config *cfg);
/* Gives back the arenas; safe on a zeroed struct. */
void dsd_generator_free(dsd_context *ctx, dsd_generator *g);
/* PyTorch-default initialization (see dsd_params_init_weights); also sets
 * dropout_seed = seed. */
dsd_status dsd_generator_init_weights(dsd_context *ctx, dsd_generator *g, uint64_t seed);

/* The plan of one pass on (n, 3, h, w): training (forward with dropout and
 * the backward) or inference. *plan is reset and refilled (start from a
 * zeroed struct; free with dsd_network_plan_free). */
dsd_status dsd_generator_plan(const dsd_generator_config *cfg, int n, int h, int w, int training,
                              dsd_network_plan *plan, dsd_error *err);

/* The plan of one stage alone (inference) for an (n, 3, h, w) image:
 * ENCODE and DECODE of that image, BLOCKS one block on its feature map. */
dsd_status dsd_generator_plan_stage(const dsd_generator_config *cfg, dsd_generator_stage stage,
                                    int n, int h, int w, dsd_network_plan *plan, dsd_error *err);

/* y = G(x); x, y (N, 3, H, W), not overlapping. tape NULL: inference (no
 * dropout, nothing kept). Otherwise training: dropout with the masks of
 * tape->step, activations kept in the tape for dsd_generator_backward. */
dsd_status dsd_generator_forward(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                 dsd_tensor *y, dsd_generator_tape *tape);
/* Backward of the forward that filled tape: accumulates dL/dparams into
 * g->params.grads and, when dx is not NULL, dx += dL/dx; dy = dL/dy.
 * DSD_ERR_INVALID_ARGUMENT without a pending forward. The tape keeps its
 * arena for the next step. */
dsd_status dsd_generator_backward(dsd_context *ctx, dsd_generator *g, dsd_generator_tape *tape,
                                  const dsd_tensor *dy, dsd_tensor *dx);
/* Gives back a tape's arena; safe on zeroed tapes. */
void dsd_generator_tape_free(dsd_context *ctx, dsd_generator_tape *tape);

/* The stages on their own (inference), for the tiled path of src/infer:
 * f (N, C, H/4, W/4) = encode(x); out = block b (f); y = decode(f, x), y may
 * be x's shape only. Each runs in an arena of its own plan, leased for the
 * call. */
dsd_status dsd_generator_encode(dsd_context *ctx, dsd_generator *g, const dsd_tensor *x,
                                dsd_tensor *f);
dsd_status dsd_generator_block(dsd_context *ctx, dsd_generator *g, int b, const dsd_tensor *f,
                               dsd_tensor *out);
dsd_status dsd_generator_decode(dsd_context *ctx, dsd_generator *g, const dsd_tensor *f,
                                const dsd_tensor *x, dsd_tensor *y);
/* Block b alone in training mode (tests): out = DSCRb_b(f) with the tape's
 * step, then dx += dL/df and the block's parameter gradients. */
dsd_status dsd_generator_block_train_forward(dsd_context *ctx, dsd_generator *g, int b,
                                             const dsd_tensor *f, dsd_tensor *out,
                                             dsd_generator_tape *tape);

/* ------------------------------------------------------------------------ */
/* Discriminator (src/model/discriminator.c; paper section 2.5): PatchGAN
 *
 * With B = base_width and L = n_layers (4x4 kernels, zero padding 2, bias):
 *   layers.0        conv stride 2, in_channels -> B, LReLU
 *   layers.i        i = 1 .. L-1: conv stride 2, B min(2^(i-1), 8) -> B min(2^i, 8),
 *                   InstanceNorm, LReLU
 *   layers.L        conv stride 1, B min(2^(L-1), 8) -> B min(2^L, 8), InstanceNorm, LReLU
 *   layers.L+1      conv stride 1 -> 1: logits (no sigmoid; the losses take logits)
 * Each conv maps a side s to s/2 + 1 (stride 2) or s + 1 (stride 1), so a
 * 256x256 input gives 35x35 logits. InstanceNorm: eps 1e-5, biased variance,
 * affine only with norm_affine (PyTorch's InstanceNorm2d default is off). */

enum { DSD_DISCRIMINATOR_MAX_LAYERS = 8 };

typedef struct dsd_discriminator_config {
    int in_channels;    /* 3 */
    int base_width;     /* B: 64 */
    int n_layers;       /* L: 3; 1 .. DSD_DISCRIMINATOR_MAX_LAYERS */
    int norm_affine;    /* 0: InstanceNorm without weight and bias */
    float eps;          /* 1e-5 */
    float slope;        /* 0.2; >= 0 */
} dsd_discriminator_config;

dsd_discriminator_config dsd_discriminator_default_config(void);
dsd_status dsd_discriminator_config_check(const dsd_discriminator_config *cfg, dsd_error *err);
size_t dsd_discriminator_param_count(const dsd_discriminator_config *cfg);
/* The logits' spatial size for an h x w input (DSD_ERR_SHAPE when too small). */
dsd_status dsd_discriminator_output_size(const dsd_discriminator_config *cfg, int h, int w,
                                         int *out_h, int *out_w, dsd_error *err);

typedef struct dsd_discriminator_layer {
    dsd_conv_weights conv;
    dsd_tensor norm_weight, norm_bias; /* (1, C, 1, 1); zeroed structs without affine */
} dsd_discriminator_layer;

typedef struct dsd_discriminator {
    dsd_discriminator_config cfg;
    int n_conv;                                  /* n_layers + 2 */
    int width[DSD_DISCRIMINATOR_MAX_LAYERS + 3]; /* channels: width[0] = in_channels,
                                                    layer i maps width[i] -> width[i+1] */
    dsd_params params;
    dsd_discriminator_layer w[DSD_DISCRIMINATOR_MAX_LAYERS + 2];    /* views into values */
    dsd_discriminator_layer grad[DSD_DISCRIMINATOR_MAX_LAYERS + 2]; /* into grads */
    size_t arena_bytes;
} dsd_discriminator;

/* What one training forward saved for its backward, and the memory both run
 * in (caller-owned; start from a zeroed struct, e.g.
 * `dsd_discriminator_tape t = {0};`). The arena is sized from the training
 * pass's plan on first use and kept, also after the backward, while the
 * input shape and the network stay the same, so steps after the first
 * allocate nothing; dsd_discriminator_tape_free gives it back. */
typedef struct dsd_discriminator_tape {
    int pending;                                  /* filled, not yet consumed */
    int n, h, w;                                  /* the input shape the plan is for */
    dsd_discriminator_config cfg;                 /* and the network */
    dsd_network_plan plan;                        /* forward and backward of that shape */
    dsd_tensor arena;                             /* activations, gradient temporaries (owned) */
    dsd_tensor workspace;                         /* the convolutions' column buffer (owned) */
    size_t next_slot;                             /* the backward continues the plan's slots */
    dsd_tensor x;                                 /* the input (borrowed view) */
    dsd_tensor z[DSD_DISCRIMINATOR_MAX_LAYERS + 1];    /* conv outputs before the norm */
    dsd_tensor a[DSD_DISCRIMINATOR_MAX_LAYERS + 1];    /* layer outputs after LReLU */
    dsd_tensor mean[DSD_DISCRIMINATOR_MAX_LAYERS + 1]; /* (N, C, 1, 1) norm statistics */
    dsd_tensor rstd[DSD_DISCRIMINATOR_MAX_LAYERS + 1]; /* (z .. rstd: views of the arena) */
} dsd_discriminator_tape;

dsd_status dsd_discriminator_init(dsd_context *ctx, dsd_discriminator *d,
                                  const dsd_discriminator_config *cfg);
void dsd_discriminator_free(dsd_context *ctx, dsd_discriminator *d);
dsd_status dsd_discriminator_init_weights(dsd_context *ctx, dsd_discriminator *d, uint64_t seed);

/* The plan of one pass on (n, in_channels, h, w): training (the forward
 * keeping its activations, and the backward) or inference. *plan is reset
 * and refilled (start from a zeroed struct; free with
 * dsd_network_plan_free). Layers are named "layers.<i>.conv". */
dsd_status dsd_discriminator_plan(const dsd_discriminator_config *cfg, int n, int h, int w,
                                  int training, dsd_network_plan *plan, dsd_error *err);

/* logits (N, 1, OH, OW) = D(x), x (N, in_channels, H, W). tape NULL:
 * inference (nothing kept; one arena leased for the call). Otherwise the
 * tape must not be pending; it receives the activations and borrows x until
 * the backward. */
dsd_status dsd_discriminator_forward(dsd_context *ctx, dsd_discriminator *d, const dsd_tensor *x,
                                     dsd_tensor *logits, dsd_discriminator_tape *tape);
/* Backward of the forward that filled tape, for dlogits = dL/dlogits:
 * param_grads != 0 accumulates into d->params.grads (0 skips them: the
 * generator's adversarial term needs only dx); dx (may be NULL) += dL/dx.
 * Consumes the tape (it keeps its arena for the next forward). */
dsd_status dsd_discriminator_backward(dsd_context *ctx, dsd_discriminator *d,
                                      dsd_discriminator_tape *tape, const dsd_tensor *dlogits,
                                      dsd_tensor *dx, int param_grads);
/* Gives a tape's arena back, with any pending forward; the tape is left
 * zeroed. Safe on zeroed tapes. */
void dsd_discriminator_tape_free(dsd_context *ctx, dsd_discriminator_tape *tape);

/* ------------------------------------------------------------------------ */
/* Relativistic average GAN loss (src/model/ragan_loss.c; paper eqs. 5 - 7)
 *
 * From the discriminator's logits C(x_r) = real and C(x_f) = fake, both
 * (N, 1, OH, OW) of the same shape, with BCE(z, t) the mean over elements of
 * the stable binary cross-entropy with logits (dsd_bce_logits_loss_forward)
 * and mean() the mean over ALL elements of a logit map (batch and patches):
 *   discriminator  L_D = BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)
 *   generator      L_G = BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)
 * sigma(real - mean(fake)) is D_Ra(x_r, x_f) of eq. (5); the sigmoid of the
 * paper's last layer lives here, inside the BCE, never in the network.
 * Taking the mean over patches as well as the batch is DeblurGAN-v2's
 * reading of E_{x_f} for a PatchGAN (doc/model.md). */

/* Data-parallel replicas (dsd_trainer_init_comm in dsdeblur_train.h; MPI in
 * tools/mpi_comm.c): this replica's rank among size, and sum, which replaces
 * v[0 .. n) by its elementwise sum over all ranks. Every rank calls it with the
 * same n in the same order; the result must be bit-identical on every rank
 * and from run to run (sum in rank order, not in arrival order). A NULL
 * dsd_comm, or size 1, is one replica alone: the single-device code path. */
typedef struct dsd_comm {
    int rank, size;
    dsd_status (*sum)(void *user, float *v, size_t n, dsd_error *err);
    void *user;
} dsd_comm;

typedef enum dsd_ragan_side {
    DSD_RAGAN_DISCRIMINATOR = 0, /* L_D: real should look more real than fake */
    DSD_RAGAN_GENERATOR,         /* L_G: the targets swapped */
} dsd_ragan_side;

/* loss (1, 1, 1, 1) = L_D or L_G. */
dsd_status dsd_ragan_loss_forward(dsd_context *ctx, dsd_ragan_side side, const dsd_tensor *real,
                                  const dsd_tensor *fake, dsd_tensor *loss);
/* dreal += scale * dL/dreal, dfake += scale * dL/dfake, either may be NULL
 * (the generator step needs only dfake: the real logits do not depend on G,
 * but the mean(fake) inside the real term still sends gradient to fake). */
dsd_status dsd_ragan_loss_backward(dsd_context *ctx, dsd_ragan_side side, float scale,
                                   const dsd_tensor *real, const dsd_tensor *fake,
                                   dsd_tensor *dreal, dsd_tensor *dfake);
/* The same over a batch split between comm->size replicas, each holding
 * logits of one shape: mean() and BCE's mean run over the whole batch (the
 * logit sums are summed through comm: one call in the forward, two in the
 * backward), and loss is this replica's share, so the replicas' losses sum
 * to the loss of the whole batch and their gradients to its gradient. With
 * comm NULL or of size 1 these are the functions above. */
dsd_status dsd_ragan_loss_forward_comm(dsd_context *ctx, dsd_ragan_side side,
                                       const dsd_tensor *real, const dsd_tensor *fake,
                                       const dsd_comm *comm, dsd_tensor *loss);
dsd_status dsd_ragan_loss_backward_comm(dsd_context *ctx, dsd_ragan_side side, float scale,
                                        const dsd_tensor *real, const dsd_tensor *fake,
                                        const dsd_comm *comm, dsd_tensor *dreal,
                                        dsd_tensor *dfake);

/* ------------------------------------------------------------------------ */
/* VGG-19 feature extractor (src/model/vgg.c; its weights file:
 * src/io/vgg_file.c, dsd_vgg_load in dsdeblur_io.h; paper section 2.7,
 * doc/vgg.md)
 *
 * The frozen ImageNet VGG-19 of torchvision, `features` up to a chosen index
 * (default 14, conv3_3 before its ReLU: DeblurGAN's features[:15]), used by
 * the perceptual loss. torchvision indices of vgg19().features:
 *    0 conv1_1  1 relu   2 conv1_2  3 relu   4 pool1                 64 ch
 *    5 conv2_1  6 relu   7 conv2_2  8 relu   9 pool2                128 ch
 *   10 conv3_1 11 relu  12 conv3_2 13 relu  14 conv3_3 15 relu
 *   16 conv3_4 17 relu  18 pool3                                    256 ch
 *   19 .. 27 conv4_1 .. pool4, 28 .. 36 conv5_1 .. pool5             512 ch
 * Convs 3x3, zero padding 1, bias; pools 2x2 stride 2, floor (an odd side
 * loses its last row or column, as nn.MaxPool2d(2, 2)). last_layer may be
 * any conv or ReLU index 0 .. 35 (not a pool); the output of a conv index is
 * taken before its ReLU.
 *
 * Input: x (N, 3, H, W) in [-1, 1] (the generator's range). The network sees
 * ((x + 1) / 2 - mean_c) / std_c with ImageNet's mean (0.485, 0.456, 0.406)
 * and std (0.229, 0.224, 0.225), the normalization torchvision's weights were
 * trained with: computed as x * scale + shift with two (1, 3, 1, 1)
 * constants (scale_c = 0.5 / std_c, shift_c = (0.5 - mean_c) / std_c) by
 * the broadcast ops, not folded into conv1_1, because conv1_1's zero padding
 * must pad the normalized image.
 *
 * Parameters: features.<i>.weight (Cout, Cin, 3, 3) and features.<i>.bias
 * (Cout) for every conv index i <= last_layer, torchvision's names, in one
 * dsd_params arena. Frozen: only params.values is allocated; params.grads
 * stays a zeroed struct and nothing ever computes a parameter gradient.
 * Default (last 14): 1,735,488 parameters (6.6 MiB). dsdeblur cannot
 * download weights: dsd_vgg_load reads a safetensors file made by
 * scripts/convert_vgg19.py (doc/vgg.md). A network without loaded weights
 * refuses to run (its features would be meaningless).
 *
 * Forwards follow the discriminator's rules: a caller-owned tape owning the
 * pass's arena (NULL: inference, nothing kept, each intermediate given back
 * as soon as the next layer has consumed it, in an arena leased for the
 * call), one tape per pending forward; the perceptual loss runs the fake
 * image with a tape and the real one without. The ReLUs run in
 * place (their backward reads the output, which has the input's sign). The
 * backward gives dx only (dx += dL/dx) and consumes the tape. */

enum { DSD_VGG_MAX_INDEX = 35 /* relu5_4: the last non-pool index */ };

typedef enum dsd_vgg_layer_kind {
    DSD_VGG_LAYER_CONV = 0,
    DSD_VGG_LAYER_RELU,
    DSD_VGG_LAYER_POOL,
} dsd_vgg_layer_kind;

typedef struct dsd_vgg_config {
    int last_layer;     /* torchvision features index of the output: 14 (conv3_3) */
} dsd_vgg_config;

dsd_vgg_config dsd_vgg_default_config(void);
/* DSD_ERR_INVALID_ARGUMENT unless last_layer is a conv or ReLU in 0 .. 35. */
dsd_status dsd_vgg_config_check(const dsd_vgg_config *cfg, dsd_error *err);
/* Parameters of a network with this config (0 when invalid). */
size_t dsd_vgg_param_count(const dsd_vgg_config *cfg);
/* "conv3_3", "relu3_3", "pool2" for a torchvision index 0 .. 36, else "?". */
const char *dsd_vgg_layer_name(int index);
/* The output shape (channels, height, width) for an h x w input;
 * DSD_ERR_SHAPE when a pool would see a side shorter than 2. */
dsd_status dsd_vgg_output_shape(const dsd_vgg_config *cfg, int h, int w, int *out_c,
                                int *out_h, int *out_w, dsd_error *err);

typedef struct dsd_vgg {
    dsd_vgg_config cfg;
    int n_layers;                                /* last_layer + 1 */
    dsd_vgg_layer_kind kind[DSD_VGG_MAX_INDEX + 1];
    int width[DSD_VGG_MAX_INDEX + 1];            /* output channels of layer i */
    dsd_params params;                           /* values only (frozen) */
    dsd_conv_weights w[DSD_VGG_MAX_INDEX + 1];   /* views into params.values at conv
                                                    indices, zeroed elsewhere */
    dsd_tensor scale, shift;                     /* (1, 3, 1, 1) input mapping */
    int has_weights;                             /* set by dsd_vgg_load / _init_weights */
    size_t arena_bytes;                          /* device bytes of the parameters */
} dsd_vgg;

/* What a forward with a tape saved, and the memory it and its backward run
 * in (caller-owned; start from a zeroed struct). As the discriminator's: the
 * arena is sized from the plan on first use and kept while the input shape
 * and last_layer stay the same; dsd_vgg_tape_free gives it back. */
typedef struct dsd_vgg_tape {
    int pending;                         /* filled, not yet consumed */
    int n, h, w;                         /* the input shape the plan is for */
    dsd_vgg_config cfg;                  /* and the network */
    dsd_network_plan plan;               /* forward and backward of that shape */
    dsd_tensor arena;                    /* activations, gradient temporaries (owned) */
    dsd_tensor workspace;                /* the convolutions' column buffer (owned) */
    size_t next_slot;                    /* the backward continues the plan's slots */
    dsd_tensor x;                        /* the input (borrowed view) */
    dsd_tensor xn;                       /* the normalized input */
    dsd_tensor a[DSD_VGG_MAX_INDEX + 1]; /* output of conv / pool index i (a ReLU
                                            rewrites its conv's in place); the last
                                            index's output is the caller's y, unless
                                            it is a ReLU (xn, a: views of the arena) */
} dsd_vgg_tape;

/* Validates cfg (NULL: defaults), builds the table and views, allocates the
 * parameter arena (zeroed, has_weights 0) and the input constants. On
 * failure vgg is left zeroed (safe to free). */
dsd_status dsd_vgg_init(dsd_context *ctx, dsd_vgg *vgg, const dsd_vgg_config *cfg);
void dsd_vgg_free(dsd_context *ctx, dsd_vgg *vgg);
/* Real weights: dsd_vgg_load (dsdeblur_io.h). Random PyTorch-default weights (dsd_params_init_weights), for tests and
 * benchmarks only: the features of a random VGG are not a perceptual loss. */
dsd_status dsd_vgg_init_weights(dsd_context *ctx, dsd_vgg *vgg, uint64_t seed);

/* The plan of one pass on (n, 3, h, w): training (the forward with a tape,
 * and the backward) or inference; as dsd_discriminator_plan. Layers are
 * named "features.<i>". */
dsd_status dsd_vgg_plan(const dsd_vgg_config *cfg, int n, int h, int w, int training,
                        dsd_network_plan *plan, dsd_error *err);

/* y = features[0 .. last_layer](normalize(x)); x (N, 3, H, W), y the shape
 * dsd_vgg_output_shape gives, not overlapping x. tape NULL: inference (one
 * arena leased for the call). Otherwise the tape must not be pending; it
 * receives the activations and borrows x until the backward. */
dsd_status dsd_vgg_forward(dsd_context *ctx, dsd_vgg *vgg, const dsd_tensor *x, dsd_tensor *y,
                           dsd_vgg_tape *tape);
/* dx (may be NULL: then the tape is only consumed) += dL/dx for dy = dL/dy
 * of the forward that filled tape. Consumes the tape (it keeps its arena). */
dsd_status dsd_vgg_backward(dsd_context *ctx, dsd_vgg *vgg, dsd_vgg_tape *tape,
                            const dsd_tensor *dy, dsd_tensor *dx);
/* Gives a tape's arena back, with any pending forward; the tape is left
 * zeroed. Safe on zeroed tapes. */
void dsd_vgg_tape_free(dsd_context *ctx, dsd_vgg_tape *tape);

/* ------------------------------------------------------------------------ */
/* Content losses (src/model/content_loss.c; paper section 2.7, doc/vgg.md)
 *
 * L_content(fake, real), a scalar, for the generator's loss
 * L_G = L_adv + lambda L_content (paper eq. 7, lambda = 100):
 *   PERCEPTUAL  mean over (N, C, h, w) of (phi(fake) - phi(real))^2, phi the
 *               VGG-19 features above (conv3_3 by default): eq. 8, averaged
 *               over channels and batch as well, as DeblurGAN's MSELoss does
 *   L1          mean |fake - real| over the pixels
 *   MSE         mean (fake - real)^2 over the pixels
 *   FFT         dsd_fft_loss (mean |Re|, |Im| of FFT2(fake - real))
 *   L1_FFT      L1 + fft_weight * FFT (MIMO-UNet's pair; fft_weight 0.1 by
 *               default, set with dsd_content_loss_set_fft_weight)
 * The object returns the UNWEIGHTED loss: lambda belongs to the trainer's
 * loss weights (it differs per kind and per experiment), and the backward
 * takes it as `scale`. real gets no gradient (a constant target).
 *
 * forward(training = 1) keeps what the backward needs: the fake image's VGG
 * tape and both feature maps (perceptual), or borrowed views of fake and
 * real (pixel kinds; they must stay alive and unchanged until the backward).
 * The real image's VGG forward keeps nothing. One backward per training
 * forward; a new forward first drops a pending one. training = 0 computes
 * the value only (validation). */

typedef enum dsd_content_loss_kind {
    DSD_CONTENT_LOSS_PERCEPTUAL = 0,
    DSD_CONTENT_LOSS_L1,
    DSD_CONTENT_LOSS_MSE,
    DSD_CONTENT_LOSS_FFT,
    DSD_CONTENT_LOSS_L1_FFT,
} dsd_content_loss_kind;

/* "perceptual", "l1", "mse", "fft", "l1+fft" (exact, lower case) -> kind;
 * DSD_ERR_INVALID_ARGUMENT naming the valid choices otherwise. */
dsd_status dsd_content_loss_kind_parse(const char *name, dsd_content_loss_kind *out,
                                       dsd_error *err);
/* The name above, or "?" for an invalid kind. */
const char *dsd_content_loss_kind_name(dsd_content_loss_kind kind);

typedef struct dsd_content_loss {
    dsd_content_loss_kind kind;
    dsd_vgg vgg;                 /* PERCEPTUAL only (zeroed otherwise) */
    int pending;                 /* a training forward awaits its backward */
    dsd_tensor fake, real;       /* borrowed views (pixel kinds) */
    dsd_tensor f_fake, f_real;   /* features (PERCEPTUAL) */
    dsd_vgg_tape tape;           /* the fake image's VGG forward (PERCEPTUAL); its
                                    arena stays between steps */
    dsd_fft_plans fft;           /* clFFT plans (FFT, L1_FFT), made on first use */
    float fft_weight;            /* L1_FFT: weight of the FFT term */
} dsd_content_loss;

/* kind PERCEPTUAL needs vgg_weights, the safetensors path dsd_vgg_load
 * reads, and takes vgg_cfg (NULL: conv3_3); without a path it fails with
 * DSD_ERR_INVALID_ARGUMENT saying why and pointing at doc/vgg.md. The other
 * kinds ignore both. On failure l is left zeroed (safe to free). */
dsd_status dsd_content_loss_init(dsd_context *ctx, dsd_content_loss *l,
                                 dsd_content_loss_kind kind, const char *vgg_weights,
                                 const dsd_vgg_config *vgg_cfg);
void dsd_content_loss_free(dsd_context *ctx, dsd_content_loss *l);
/* L1_FFT: the FFT term's weight (>= 0; 0.1 after init). */
void dsd_content_loss_set_fft_weight(dsd_content_loss *l, float weight);
/* loss (1, 1, 1, 1) = L_content(fake, real); fake and real (N, 3, H, W) of
 * one shape (any C for the pixel kinds). */
dsd_status dsd_content_loss_forward(dsd_context *ctx, dsd_content_loss *l, const dsd_tensor *fake,
                                    const dsd_tensor *real, dsd_tensor *loss, int training);
/* d_fake += scale * dL/dfake for the pending training forward (scale is the
 * upstream gradient: lambda in the generator's loss); consumes it.
 * DSD_ERR_INVALID_ARGUMENT without one. */
dsd_status dsd_content_loss_backward(dsd_context *ctx, dsd_content_loss *l, float scale,
                                     dsd_tensor *d_fake);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_MODEL_H */
