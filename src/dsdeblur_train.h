/*
 * dsdeblur_train.h: training support (included by dsdeblur.h; do not include
 * it alone).
 *
 * Sections: synthetic blur (random camera-shake point-spread functions,
 * PSFs, and their application to sharp images, for dsdeblur-train's "synthetic" mode;
 * doc/synthetic-blur.md describes the model with pictures), the trainer (one
 * GAN iteration, validation, checkpoints) and the training log and plot.
 * The data loader is in dsdeblur_data.h, the configuration in
 * dsdeblur_config.h.
 */
#ifndef DSDEBLUR_TRAIN_H
#define DSDEBLUR_TRAIN_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Synthetic blur (src/train/blur_psf.c; src/train/blur_apply.c,
 * cl/blur.cl; reference: tests/ref/blur.c)
 *
 * The blur is a point-spread function, PSF (the "blur kernel" of the
 * literature and of the config key data.kernel_size); "kernel" in this
 * library means an OpenCL kernel.
 *
 *     dsd_blur_psf_params pp;
 *     dsd_blur_psf_params_default(&pp);
 *     dsd_rng rng;
 *     dsd_rng_init(&rng, seed, image_index);        // PSF k of seed s
 *     dsd_blur_psf psf;
 *     dsd_blur_psf_generate(&pp, &rng, &psf, &err); // host, double arithmetic
 *     dsd_tensor pt;                                 // (1, 1, psf.h, psf.w)
 *     dsd_tensor_init(ctx, &pt, 1, 1, psf.h, psf.w);
 *     dsd_tensor_upload(ctx, &pt, psf.data, (size_t)psf.h * psf.w);
 *     dsd_fft_plans plans = {0};                     // clFFT plans, caller-owned
 *     dsd_blur_apply(ctx, &plans, sharp, &pt, 0.01f, seed, step, blurred);
 *     dsd_fft_plans_free(&plans);                    // after the last blur
 *
 * Random numbers
 * --------------
 * dsd_rng is Philox4x32-10 (Salmon et al., SC 2011; the generator of
 * dsd_dropout_*) used as a stream: key (seed lo, seed hi), counter
 * (block lo, block hi, stream lo, stream hi), four 32-bit words per block.
 * It is a plain value with no hidden state: copy it to replay draws. Its
 * outputs are integer arithmetic, hence the same everywhere; the PSF
 * generator turns them into doubles with sqrt, log, sin, cos and floor only,
 * so a PSF is bit-identical on every machine whose libm rounds those the
 * same (glibc on x86-64 and aarch64; the build uses ISO C, where GCC does not
 * contract a*b+c into an FMA). */

typedef struct dsd_rng {
    uint32_t key[2];
    uint32_t ctr[4];   /* next block: (block lo, block hi, stream lo, stream hi) */
    uint32_t out[4];   /* the current block's words */
    int used;          /* words of out[] consumed (4: draw a new block) */
} dsd_rng;

/* Stream `stream` of seed `seed`, at its first word. */
void dsd_rng_init(dsd_rng *r, uint64_t seed, uint64_t stream);
/* The next 32-bit word. */
uint32_t dsd_rng_u32(dsd_rng *r);
/* Uniform in [0, 1) with 53 random bits (two words). */
double dsd_rng_uniform(dsd_rng *r);
/* Standard normal by Box-Muller from two uniforms (four words); the second
 * value of the pair is discarded, so every call costs the same draws. */
double dsd_rng_normal(dsd_rng *r);

/* Camera-shake PSFs in the style of Boracchi & Foi, "Modeling the
 * performance of image restoration from motion blur" (IEEE TIP 2012), as
 * DeblurGAN (Kupyn et al. 2018, motion_blur/generate_trajectory.py and
 * generate_PSF.py) uses them:
 *
 *   A particle starts at 0 with a random direction. At each of steps-1 steps
 *   its velocity v gains
 *     dv = big_shake + anxiety * (shake * (g1 + i g2) - centripetal * x) * L/(steps-1)
 *   (g1, g2 standard normal; with probability prob_big_shake * anxiety an
 *   abrupt turn big_shake = 2 v e^{i (pi + u - 1/2)}), is renormalized to
 *   length L/(steps-1), and moves the particle: x += v. So the path is L
 *   pixels long. Per PSF: centripetal ~ U(0, 0.7), prob_big_shake ~
 *   U(0, 0.2), shake ~ U(0, 10), initial angle ~ U(0, 2 pi).
 *   The first ceil(exposure * steps) samples (the camera's exposure) are
 *   centred in a size x size canvas (bounding-box centre on the anchor pixel
 *   ((size-1)/2, (size-1)/2) of dsd_blur_apply) and splatted bilinearly with
 *   weight 1 each; the PSF is then
 *   normalized to sum 1 (in double, stored as float) and, with trim,
 *   cropped to the bounding box of its non-zero pixels.
 *
 * Differences from DeblurGAN: its partial-exposure PSFs keep the whole
 * trajectory's centring (so they sit off-centre and shift the image); here
 * the exposed part is centred. Its canvas indices start at 1; here at 0. */

enum { DSD_BLUR_PSF_MAX = 64 };

/* A value for anxiety / exposure: draw it per PSF as DeblurGAN does. */
#define DSD_BLUR_RANDOM (-1.0)

typedef struct dsd_blur_psf_params {
    int size;        /* canvas side in pixels, 1..DSD_BLUR_PSF_MAX; default 64 */
    int steps;       /* trajectory samples, 2..100000; default 2000 */
    double length;   /* path length L in pixels, 0 <= L <= 2 ((size-1)/2) (size - 1 for odd
                      * size, size - 2 for even); default 60 */
    double anxiety;  /* shake strength in [0, 1]; 0 gives a straight line. DSD_BLUR_RANDOM
                      * (default): uniform from DeblurGAN's {0.01, 0.009, 0.008, 0.007,
                      * 0.005, 0.003} */
    double exposure; /* exposed fraction of the trajectory in (0, 1]. DSD_BLUR_RANDOM
                      * (default): uniform from {0.1, 0.5, 1} (DeblurGAN's parts 1..3) */
    int trim;        /* 1 (default): crop to the support; 0: keep size x size */
} dsd_blur_psf_params;

/* A PSF: h x w floats, row-major, >= 0, summing to 1 (within float rounding). */
typedef struct dsd_blur_psf {
    int h, w;
    float data[DSD_BLUR_PSF_MAX * DSD_BLUR_PSF_MAX];
} dsd_blur_psf;

void dsd_blur_psf_params_default(dsd_blur_psf_params *p);

/* Ranges of the PSF settings, drawn per PSF (dsdeblur-train's
 * data.blur_length .. data.anxiety_max, dsdeblur-blur's --length L:L_MAX,
 * --exposure and --anxiety). A setting whose lo is "unset" (length and
 * anxiety: lo < 0; exposure: lo <= 0) keeps the value in the params; lo < hi
 * draws it uniformly from [lo, hi), lo >= hi takes lo. */
typedef struct dsd_blur_psf_ranges {
    double length_lo, length_hi;     /* path length in pixels */
    double exposure_lo, exposure_hi; /* exposed fraction, (0, 1] */
    double anxiety_lo, anxiety_hi;   /* shake, [0, 1] */
} dsd_blur_psf_ranges;

/* The key xor'd into the seed for the stream of those draws ("rang"). */
#define DSD_BLUR_RANGE_KEY UINT64_C(0x72616e67)

/* Sets p's length, exposure and anxiety from r, drawing from `draw` (one
 * uniform per setting that is a range, in that order; a separate stream
 * from the PSF's own, so a fixed setting leaves the PSF stream untouched). */
void dsd_blur_psf_params_draw(const dsd_blur_psf_ranges *r, dsd_rng *draw,
                              dsd_blur_psf_params *p);

/* Draws one PSF from rng (which advances by a number of words that
 * depends only on p->steps and on which parameters are DSD_BLUR_RANDOM).
 * DSD_ERR_INVALID_ARGUMENT naming the parameter when p is out of range (err
 * may be NULL). Host only; no allocation. */
dsd_status dsd_blur_psf_generate(const dsd_blur_psf_params *p, dsd_rng *rng, dsd_blur_psf *out,
                                 dsd_error *err);

/* Writes psf into an out_h x out_w frame (zeros around it, row-major), placed
 * so that the anchor ((h-1)/2, (w-1)/2) of psf lands on the frame's anchor:
 * the framed PSF blurs exactly as psf does. Lets PSFs of different trimmed
 * sizes share one (N, 1, KH, KW) tensor. DSD_ERR_SHAPE when the frame is
 * smaller than psf. */
dsd_status dsd_blur_psf_embed(const dsd_blur_psf *psf, int out_h, int out_w, float *out,
                              dsd_error *err);

/* y = x (*) psf + noise, on the device.
 *
 * x, y (N, C, H, W), y may be x; psf (N or 1, 1, KH, KW) on the device,
 * one PSF per image (or one for all), the same for every channel.
 *
 * A true convolution ('same' output, anchor a = ((KH-1)/2, (KW-1)/2) as
 * numpy.convolve / scipy.signal.convolve2d mode 'same'):
 *   y[n,c,i,j] = sum_{p,q} psf[n,p,q] * xr[n,c, i + a_h - p, j + a_w - q]
 * where xr reflects x at its borders without repeating the edge pixel
 * (torch ReflectionPad2d, numpy.pad mode 'reflect'; scipy.ndimage calls it
 * 'mirror'): xr[-1] = x[1], xr[H] = x[H-2]. The image is reflected by
 * KH-1-a_h rows above, a_h below (same for columns), and reflection needs
 * each of those < H (< W): a PSF that large is DSD_ERR_SHAPE (so KH <= H
 * and KW <= W suffice, and H == 1 allows KH == 1 only).
 *
 * Computed by FFT (clFFT, complex-to-complex): each padded plane and each
 * PSF are zero-padded to FH x FW, the next sizes >= H + KH - 1 and
 * >= W + KW - 1 whose prime factors are 2, 3, 5, 7, 11, 13; products in
 * frequency; inverse; crop. clFFT's plans are kept in the caller's plans
 * (dsd_fft_plans, dsdeblur_ops.h), one per shape, made on first use.
 *
 * Noise (noise_sigma > 0): y += noise_sigma * g[i], then y is clamped to
 * [-1, 1] (the model's image range). g[i] for flat NCHW index i is standard
 * normal by Box-Muller from Philox4x32-10 with key (seed lo, seed hi) and
 * counter (i, stream lo, stream hi, 0x626c7572), computed on the device in
 * float: u1 = ((w0 >> 8) + 1) 2^-24, u2 = (w1 >> 8) 2^-24,
 * g = sqrt(-2 ln u1) cos(2 pi u2). The words are the same on every device;
 * the value differs from dsd_blur_noise_host by the device's float rounding
 * of log, sqrt and cos only. noise_sigma == 0: no noise and no clamp.
 * Negative or non-finite sigma is DSD_ERR_INVALID_ARGUMENT. */
dsd_status dsd_blur_apply(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *x,
                          const dsd_tensor *psf, float noise_sigma, uint64_t seed,
                          uint64_t stream, dsd_tensor *y);
/* The same with the noise of element i drawn at index first + i: x is a slice
 * of a larger batch starting at flat element `first` (data-parallel
 * training), and gets that batch's noise. DSD_ERR_SHAPE when first + numel
 * passes 2^32. */
dsd_status dsd_blur_apply_at(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *x,
                             const dsd_tensor *psf, float noise_sigma, uint64_t seed,
                             uint64_t stream, uint32_t first, dsd_tensor *y);

/* g[index] of dsd_blur_apply's noise in double, for tests and references. */
double dsd_blur_noise_host(uint64_t seed, uint64_t stream, uint32_t index);

/* The noise std of training step `step` when it is drawn from a range
 * (data.noise_sigma .. data.noise_sigma_max): uniform in [lo, hi] from its
 * own Philox stream (key seed ^ "noise", stream step), the same on every
 * replica and machine; lo itself when hi <= lo, with no draw. */
double dsd_blur_noise_sigma_draw(double lo, double hi, uint64_t seed, uint64_t step);

/* The FFT length dsd_blur_apply uses for n: the smallest m >= n whose prime
 * factors are all in {2, 3, 5, 7, 11, 13} (n >= 1). */
int dsd_blur_fft_size(int n);

/* ------------------------------------------------------------------------ */
/* The trainer (src/train/trainer.c): one GAN iteration of the paper, the
 * validation pass and checkpoints, for dsdeblur-train and the tests.
 *
 *     dsd_trainer *t;
 *     dsd_trainer_init(ctx, &cfg, &t, &err);            // networks, data, loader
 *     dsd_trainer_resume(t, "run/checkpoint-000001000.safetensors", &err);   // optional
 *     while (dsd_trainer_step_index(t) < dsd_trainer_total_steps(t)) {
 *         dsd_step_stats s;
 *         dsd_trainer_step(t, &s, &err);
 *     }
 *     dsd_trainer_save_checkpoint(t, path, &err);
 *     dsd_trainer_free(t);
 *
 * One step (section 3: D and G alternate, D first as in DeblurGAN):
 *   fake = G(blur)                                  (training: dropout on)
 *   D step  L_D = L_D^Ra(D(sharp), D(fake))          fake detached; Adam on D
 *   G step  L_G = L_G^Ra(D(sharp), D(fake)) + lambda L_content(fake, sharp)
 *           (D after its update, gradients through D into G only); Adam on G
 * with lr = dsd_lr_schedule(lr, epoch, decay_from, epochs) for both. In
 * synthetic mode blur is made on the device from the sharp crop with a
 * camera-shake PSF per image drawn from (seed, step, element). Everything
 * random derives from (train.seed, step), so a run resumed from a
 * checkpoint continues bit for bit like the uninterrupted one on the same
 * device.
 *
 * Every step downloads its three loss values (the only host
 * synchronization); a non-finite loss, or a non-finite gradient (an
 * arena-wide sum of squares, then the first bad parameter by name), stops
 * the step with DSD_ERR_NAN naming the step and the tensor, before any
 * weight is updated. */

typedef struct dsd_step_stats {
    uint64_t step;           /* the step just done (0-based) */
    int epoch;
    double lr;
    int adversarial;         /* 0 in the warm-up (train.warmup_steps): no D, no L_G^Ra */
    double loss_d;           /* L_D^Ra (0 in the warm-up) */
    double loss_g_adv;       /* L_G^Ra (0 in the warm-up) */
    double loss_content;     /* unweighted content loss */
    double loss_g;           /* loss_g_adv + lambda loss_content */
    int bad;                 /* training samples skipped for this batch */
    const char *bad_message; /* their reasons, one per line (valid until the next step) */
} dsd_step_stats;

typedef struct dsd_val_stats {
    int images;
    double psnr, ssim;       /* means over the images (SSIM: skimage protocol) */
    double seconds;          /* wall time of the pass */
} dsd_val_stats;

typedef struct dsd_trainer dsd_trainer;

/* Builds everything cfg describes (cfg must have passed dsd_config_validate
 * and must outlive the trainer), with freshly initialized weights at step 0.
 * Reports the device memory needed when it cannot allocate. */
dsd_status dsd_trainer_init(dsd_context *ctx, const dsd_config *cfg, dsd_trainer **out,
                            dsd_error *err);
/* The same as one replica of data-parallel training (doc/distributed.md):
 * comm (copied; NULL or size 1: alone, exactly dsd_trainer_init) names this
 * replica's rank among comm->size. cfg->train.batch is the batch of EACH
 * replica: the global batch is size * batch, and replica r trains on its
 * elements r * batch .. (r + 1) * batch - 1, with the samples, crops, flips,
 * blurs and dropout masks those elements have in a single-device run with
 * the global batch. Every step sums the gradients (and losses) over the
 * replicas through comm->sum (three small sums in each RaGAN loss, one of
 * each network's gradients), so all replicas apply the same Adam update and
 * the losses in dsd_step_stats are the global batch's. Every replica must
 * call the same trainer functions in the same order (step, resume);
 * validation and the file writers need no other replica. */
dsd_status dsd_trainer_init_comm(dsd_context *ctx, const dsd_config *cfg, const dsd_comm *comm,
                                 dsd_trainer **out, dsd_error *err);
void dsd_trainer_free(dsd_trainer *t);

/* Continues from a checkpoint written by dsd_trainer_save_checkpoint: weights,
 * Adam moments and counters, the step; refused (naming what differs) when the
 * checkpoint's networks or seed differ from cfg's. */
dsd_status dsd_trainer_resume(dsd_trainer *t, const char *path, dsd_error *err);

/* One iteration (see above). */
dsd_status dsd_trainer_step(dsd_trainer *t, dsd_step_stats *out, dsd_error *err);
/* PSNR/SSIM of the generator over the held-out set (the first data.val_count
 * pairs), whole images through dsd_deblur_image (dsdeblur_infer.h), as
 * dsdeblur-eval scores them. DSD_ERR_INVALID_ARGUMENT without a held-out set. */
dsd_status dsd_trainer_validate(dsd_trainer *t, dsd_val_stats *out, dsd_error *err);
/* Checkpoint (dsd_checkpoint_save) with the config text; atomic. */
dsd_status dsd_trainer_save_checkpoint(dsd_trainer *t, const char *path, dsd_error *err);
/* The generator alone, as a weight file dsdeblur-run reads (F32, or F16 for
 * a file half the size). */
dsd_status dsd_trainer_save_generator(dsd_trainer *t, const char *path, dsd_storage storage,
                                      dsd_error *err);

/* A 64-bit hash (FNV-1a) of the step and the bits of G's and D's weights:
 * data-parallel replicas compare it to detect a divergence. */
dsd_status dsd_trainer_weights_checksum(dsd_trainer *t, uint64_t *out, dsd_error *err);

uint64_t dsd_trainer_step_index(const dsd_trainer *t); /* steps done */
uint64_t dsd_trainer_total_steps(const dsd_trainer *t); /* epochs x steps per epoch */
size_t dsd_trainer_steps_per_epoch(const dsd_trainer *t);
int dsd_trainer_has_validation(const dsd_trainer *t);
/* The networks (for tests and tools). */
dsd_generator *dsd_trainer_generator(dsd_trainer *t);
dsd_discriminator *dsd_trainer_discriminator(dsd_trainer *t);
/* ------------------------------------------------------------------------ */
/* Training log and plot (src/train/log.c)
 *
 * <run.dir>/log.csv gets one row per step:
 *     step,epoch,lr,loss_d,loss_g_adv,loss_content,loss_g,seconds
 * and <run.dir>/val.csv one row per validation:
 *     step,epoch,psnr,ssim,images,seconds
 * (appended and flushed at once, so a crash loses at most a line; a resumed
 * run drops rows past its checkpoint's step and continues). plot.svg, next
 * to them, shows the losses (a moving average over ~2% of the run) and the
 * validation PSNR against the step; it is rewritten atomically at each
 * checkpoint, validation and at the end. */

typedef struct dsd_train_log dsd_train_log;

/* Opens (creating) dir/log.csv and dir/val.csv; rows with step >= first_step
 * are dropped (a resume from first_step). */
dsd_status dsd_train_log_open(dsd_train_log **out, const char *dir, uint64_t first_step,
                              dsd_error *err);
dsd_status dsd_train_log_step(dsd_train_log *log, const dsd_step_stats *s, double seconds,
                              dsd_error *err);
dsd_status dsd_train_log_val(dsd_train_log *log, uint64_t step, int epoch,
                             const dsd_val_stats *v, dsd_error *err);
/* Writes dir/plot.svg from everything logged (old rows included). */
dsd_status dsd_train_log_plot(dsd_train_log *log, dsd_error *err);
void dsd_train_log_close(dsd_train_log *log);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_TRAIN_H */
