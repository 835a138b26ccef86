/*
 * trainer.c: the training iteration of the paper (dsdeblur_train.h is the
 * manual): the generator and discriminator with their Adam states, the
 * relativistic and content losses, the data loader, synthetic blur, NaN
 * guards, validation and checkpoints. The loop, the progress bar, the log
 * and the signals live in tools/dsdeblur-train.c; the pieces each have their
 * own tests, and tests/test-trainer.c runs the whole thing on a tiny config
 * (the loss goes down, a resumed run ends bit-identical).
 *
 * Library calls that take the context record their errors there; this file
 * reports through a dsd_error, so DSD_TRY_CTX copies the context's error out.
 *
 * Data-parallel training (a dsd_comm of size > 1, doc/distributed.md): each
 * replica makes its share of the global batch (elements rank * batch ..), the
 * RaGAN loss takes its batch means over all replicas, the content loss's mean
 * is scaled by 1/size, and the gradients (with the loss shares) are summed
 * over the replicas before the NaN guards and Adam, so every replica applies
 * the same update. Everything random is keyed by the step and the sample's
 * index in the global batch, so size x batch b trains as 1 x size*b.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dsd_trainer {
    dsd_context *ctx;
    const dsd_config *cfg;
    char *config_text;
    dsd_comm comm;                 /* replicas; size 1 alone */
    int first;                     /* this replica's first element of the global batch */
    float *host;                   /* replicas: a network's gradients and the loss shares */

    dsd_generator g;
    dsd_generator_tape g_tape;     /* G's activations and step memory, kept between steps */
    dsd_discriminator d;
    dsd_discriminator_tape d_tape_real, d_tape_fake; /* D's, kept between steps likewise */
    dsd_content_loss content;
    dsd_tensor g_m, g_v, d_m, d_v; /* Adam moments, one arena each */
    int g_t, d_t;                  /* Adam step counters */

    dsd_dataset train, val;
    int has_val;
    dsd_batch_spec spec;
    dsd_loader *loader;            /* started lazily at `step` */
    dsd_batch batch;               /* the current step's batch */
    size_t steps_per_epoch;
    uint64_t step;                 /* steps done */

    dsd_blur_psf_params psf;       /* the synthetic blur's point-spread functions */
    dsd_blur_psf_ranges psf_ranges; /* their per-PSF draws (data.blur_length ...) */
    int psf_drawn;                 /* whether any setting is a range or set at all */
    float *psf_host;               /* N frames of psf.size^2 floats */
    dsd_fft_plans blur_fft;        /* clFFT plans of the synthetic blur */

    int n, crop, oh, ow;
    dsd_tensor blur, sharp, fake, dfake;
    dsd_tensor real_logits, fake_logits, dreal, dfake_logits;
    dsd_tensor loss_d, loss_adv, loss_content, sumsq, psfs;
};

/* ------------------------------------------------------------------------ */
/* Setup */

static dsd_status alloc_zero(dsd_trainer *t, dsd_tensor *x, int n, int c, int h, int w,
                             dsd_error *err)
{
    DSD_TRY_CTX(err, t->ctx, dsd_tensor_init_zero(t->ctx, x, n, c, h, w));
    return DSD_OK;
}

static int replicas(const dsd_trainer *t) { return t->comm.size > 1; }

dsd_status dsd_trainer_init(dsd_context *ctx, const dsd_config *cfg, dsd_trainer **out,
                            dsd_error *err)
{
    return dsd_trainer_init_comm(ctx, cfg, NULL, out, err);
}

dsd_status dsd_trainer_init_comm(dsd_context *ctx, const dsd_config *cfg, const dsd_comm *comm,
                                 dsd_trainer **out, dsd_error *err)
{
    *out = NULL;
    if (comm && (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size ||
                 (comm->size > 1 && !comm->sum)))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "trainer: replica %d of %d",
                        comm->rank, comm->size);
    if (comm && (int64_t)cfg->train.batch * comm->size > INT32_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "trainer: a global batch of %d x %d",
                        cfg->train.batch, comm->size);
    dsd_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "trainer");
    t->ctx = ctx;
    t->cfg = cfg;
    t->comm = comm ? *comm : (dsd_comm){.rank = 0, .size = 1};
    dsd_status st;
    DSD_TRY_GOTO(st, dsd_config_to_string(cfg, &t->config_text, err), fail);

    /* data first: a wrong path should fail before the device is busy */
    const dsd_data_mode mode = cfg->data.mode;
    if (mode == DSD_DATA_PAIRED)
        DSD_TRY_GOTO(st, dsd_dataset_open(&t->train, mode, cfg->data.train_blur,
                                          cfg->data.train_sharp, err), fail);
    else
        DSD_TRY_GOTO(st, dsd_dataset_open(&t->train, mode, cfg->data.train, NULL, err), fail);
    if (mode == DSD_DATA_PAIRED ? *cfg->data.val_blur != '\0' : *cfg->data.val != '\0') {
        if (mode == DSD_DATA_PAIRED)
            DSD_TRY_GOTO(st, dsd_dataset_open(&t->val, mode, cfg->data.val_blur,
                                              cfg->data.val_sharp, err), fail);
        else
            DSD_TRY_GOTO(st, dsd_dataset_open(&t->val, mode, cfg->data.val, NULL, err), fail);
        t->has_val = 1;
    }
    t->n = cfg->train.batch; /* this replica's share */
    t->first = t->comm.rank * t->n;
    t->crop = cfg->data.crop;
    t->spec.n = t->n * t->comm.size;
    if (replicas(t)) {
        t->spec.first = t->first;
        t->spec.count = t->n;
    }
    t->spec.crop = t->crop;
    t->spec.flip = cfg->data.flip;
    t->spec.crop_tries = cfg->data.crop_tries;
    t->spec.seed = (uint64_t)cfg->train.seed;
    t->spec.steps_per_epoch = (size_t)cfg->train.steps_per_epoch;
    t->spec.max_bad = cfg->data.max_bad;
    t->steps_per_epoch = dsd_batch_steps_per_epoch(&t->train, &t->spec);

    /* networks, optimizer state, losses */
    dsd_generator_config gc = dsd_config_generator(cfg);
    dsd_discriminator_config dc = dsd_config_discriminator(cfg);
    DSD_TRY_CTX_GOTO(st, err, ctx, dsd_generator_init(ctx, &t->g, &gc), fail);
    DSD_TRY_CTX_GOTO(st, err, ctx, dsd_discriminator_init(ctx, &t->d, &dc), fail);
    DSD_TRY_CTX_GOTO(st, err, ctx, dsd_generator_init_weights(ctx, &t->g,
                                                              (uint64_t)cfg->train.seed), fail);
    DSD_TRY_CTX_GOTO(st, err, ctx, dsd_discriminator_init_weights(ctx, &t->d,
                                                                  (uint64_t)cfg->train.seed + 1),
                     fail);
    int gc_count = (int)t->g.params.count, dc_count = (int)t->d.params.count;
    if (replicas(t)) {
        size_t most = t->g.params.count > t->d.params.count ? t->g.params.count
                                                            : t->d.params.count;
        if (!(t->host = malloc((most + 2) * sizeof *t->host))) {
            st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "gradient exchange buffer of %zu floats",
                          most + 2);
            goto fail;
        }
    }
    DSD_TRY_GOTO(st, alloc_zero(t, &t->g_m, 1, 1, 1, gc_count, err), fail);
    DSD_TRY_GOTO(st, alloc_zero(t, &t->g_v, 1, 1, 1, gc_count, err), fail);
    DSD_TRY_GOTO(st, alloc_zero(t, &t->d_m, 1, 1, 1, dc_count, err), fail);
    DSD_TRY_GOTO(st, alloc_zero(t, &t->d_v, 1, 1, 1, dc_count, err), fail);
    dsd_content_loss_kind kind;
    DSD_TRY_GOTO(st, dsd_content_loss_kind_parse(cfg->train.content_loss, &kind, err), fail);
    DSD_TRY_CTX_GOTO(st, err, ctx, dsd_content_loss_init(ctx, &t->content, kind,
                                                         cfg->train.vgg_weights, NULL), fail);
    dsd_content_loss_set_fft_weight(&t->content, (float)cfg->train.fft_weight);

    /* the step's tensors, allocated once */
    DSD_TRY_GOTO(st, dsd_discriminator_output_size(&dc, t->crop, t->crop, &t->oh, &t->ow,
                                                   err), fail);
    int n = t->n, c = t->crop;
    dsd_tensor *images[] = {&t->blur, &t->sharp, &t->fake, &t->dfake};
    for (int i = 0; i < 4; i++)
        DSD_TRY_GOTO(st, alloc_zero(t, images[i], n, 3, c, c, err), fail);
    dsd_tensor *logits[] = {&t->real_logits, &t->fake_logits, &t->dreal, &t->dfake_logits};
    for (int i = 0; i < 4; i++)
        DSD_TRY_GOTO(st, alloc_zero(t, logits[i], n, 1, t->oh, t->ow, err), fail);
    dsd_tensor *scalars[] = {&t->loss_d, &t->loss_adv, &t->loss_content, &t->sumsq};
    for (int i = 0; i < 4; i++)
        DSD_TRY_GOTO(st, alloc_zero(t, scalars[i], 1, 1, 1, 1, err), fail);
    if (mode == DSD_DATA_SYNTHETIC) {
        dsd_blur_psf_params_default(&t->psf);
        t->psf.size = cfg->data.kernel_size < DSD_BLUR_PSF_MAX ? cfg->data.kernel_size
                                                               : DSD_BLUR_PSF_MAX;
        if (t->psf.size > t->crop)
            t->psf.size = t->crop;
        /* the path fills most of the canvas, as DeblurGAN's 60 px in 64 */
        double longest = 2.0 * ((t->psf.size - 1) / 2);
        t->psf.length = longest * 60.0 / 62.0;
        t->psf_ranges = (dsd_blur_psf_ranges){
            .length_lo = cfg->data.blur_length > 0 ? cfg->data.blur_length : -1.0,
            .length_hi = cfg->data.blur_length_max,
            .exposure_lo = cfg->data.exposure,
            .exposure_hi = cfg->data.exposure_max,
            .anxiety_lo = cfg->data.anxiety,
            .anxiety_hi = cfg->data.anxiety_max,
        };
        t->psf_drawn = t->psf_ranges.length_lo >= 0 || t->psf_ranges.exposure_lo > 0 ||
                       t->psf_ranges.anxiety_lo >= 0;
        double length_max = cfg->data.blur_length_max > cfg->data.blur_length
                                ? cfg->data.blur_length_max
                                : cfg->data.blur_length;
        if (length_max > longest) {
            st = DSD_FAIL(err, DSD_ERR_CONFIG, "data.blur_length%s = %g does not fit the %dx%d "
                          "blur kernel (data.kernel_size %d, at most the crop %d): paths of at "
                          "most %g pixels do; raise data.kernel_size",
                          cfg->data.blur_length_max > cfg->data.blur_length ? "_max" : "",
                          length_max, t->psf.size, t->psf.size, cfg->data.kernel_size, t->crop,
                          longest);
            goto fail;
        }
        int k = t->psf.size;
        t->psf_host = malloc((size_t)n * k * k * sizeof(float));
        if (!t->psf_host) {
            st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "blur PSFs");
            goto fail;
        }
        DSD_TRY_GOTO(st, alloc_zero(t, &t->psfs, n, 1, k, k, err), fail);
    }
    *out = t;
    return DSD_OK;
fail:
    dsd_trainer_free(t);
    return st;
}

void dsd_trainer_free(dsd_trainer *t)
{
    if (!t)
        return;
    dsd_loader_stop(t->loader);
    dsd_batch_free(&t->batch);
    dsd_context *ctx = t->ctx;
    dsd_tensor *all[] = {&t->g_m,         &t->g_v,         &t->d_m,         &t->d_v,
                         &t->blur,        &t->sharp,       &t->fake,        &t->dfake,
                         &t->real_logits, &t->fake_logits, &t->dreal,       &t->dfake_logits,
                         &t->loss_d,      &t->loss_adv,    &t->loss_content, &t->sumsq,
                         &t->psfs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf)
            dsd_tensor_free(ctx, all[i]);
    dsd_content_loss_free(ctx, &t->content);
    dsd_generator_tape_free(ctx, &t->g_tape);
    dsd_discriminator_tape_free(ctx, &t->d_tape_real);
    dsd_discriminator_tape_free(ctx, &t->d_tape_fake);
    dsd_fft_plans_free(&t->blur_fft);
    dsd_generator_free(ctx, &t->g);
    dsd_discriminator_free(ctx, &t->d);
    dsd_dataset_free(&t->train);
    dsd_dataset_free(&t->val);
    free(t->psf_host);
    free(t->host);
    free(t->config_text);
    free(t);
}

uint64_t dsd_trainer_step_index(const dsd_trainer *t) { return t->step; }
uint64_t dsd_trainer_total_steps(const dsd_trainer *t)
{
    return (uint64_t)t->cfg->train.epochs * t->steps_per_epoch;
}
size_t dsd_trainer_steps_per_epoch(const dsd_trainer *t) { return t->steps_per_epoch; }
int dsd_trainer_has_validation(const dsd_trainer *t) { return t->has_val; }
dsd_generator *dsd_trainer_generator(dsd_trainer *t) { return &t->g; }
dsd_discriminator *dsd_trainer_discriminator(dsd_trainer *t) { return &t->d; }

/* ------------------------------------------------------------------------ */
/* One step */

static double download_scalar(dsd_trainer *t, const dsd_tensor *x, dsd_error *err, int *ok)
{
    float v = 0;
    *ok = dsd_tensor_download(t->ctx, x, &v, 1) == DSD_OK;
    if (!*ok)
        *err = *dsd_context_error(t->ctx);
    return v;
}

/* DSD_ERR_NAN naming the first non-finite parameter gradient of p, when the
 * arena's sum of squares is not finite. */
static dsd_status check_grads(dsd_trainer *t, const dsd_params *p, const char *net,
                              dsd_error *err)
{
    DSD_TRY_CTX(err, t->ctx, dsd_reduce_sum_squares(t->ctx, &p->grads, &t->sumsq));
    int ok;
    double s = download_scalar(t, &t->sumsq, err, &ok);
    if (!ok)
        return err->status;
    if (isfinite(s))
        return DSD_OK;
    /* the failure path only: find the first parameter holding a bad value */
    float *g = malloc(p->count * sizeof *g);
    const char *name = "(unknown)";
    if (g && dsd_tensor_download(t->ctx, &p->grads, g, p->count) == DSD_OK) {
        for (size_t k = 0; k < p->count; k++)
            if (!isfinite(g[k])) {
                for (size_t i = 0; i < p->n; i++)
                    if (k >= p->info[i].offset && k < p->info[i].offset + p->info[i].numel)
                        name = p->info[i].name;
                break;
            }
    }
    dsd_status st = DSD_FAIL(err, DSD_ERR_NAN, "step %llu: the %s gradient of '%s' is not "
                             "finite; stopping before any weight is updated (lower train.lr?)",
                             (unsigned long long)t->step, net, name);
    free(g);
    return st;
}

/* Replicas: p's gradients and the k loss shares in losses summed over all
 * replicas (one exchange per network per step), the sums back on the device
 * and in losses. */
static dsd_status sum_replicas(dsd_trainer *t, dsd_params *p, double *losses, int k,
                               dsd_error *err)
{
    size_t n = p->count;
    DSD_TRY_CTX(err, t->ctx, dsd_tensor_download(t->ctx, &p->grads, t->host, n));
    for (int i = 0; i < k; i++)
        t->host[n + (size_t)i] = (float)losses[i];
    DSD_TRY(t->comm.sum(t->comm.user, t->host, n + (size_t)k, err));
    DSD_TRY_CTX(err, t->ctx, dsd_tensor_upload(t->ctx, &p->grads, t->host, n));
    for (int i = 0; i < k; i++)
        losses[i] = t->host[n + (size_t)i];
    return DSD_OK;
}

static dsd_status next_batch(dsd_trainer *t, dsd_error *err)
{
    if (!t->loader)
        DSD_TRY(dsd_loader_start(&t->loader, &t->train, &t->spec, t->step, 3, err));
    dsd_batch_free(&t->batch);
    DSD_TRY(dsd_loader_next(t->loader, &t->batch, err));
    size_t numel = (size_t)t->n * 3 * t->crop * t->crop;
    DSD_TRY_CTX(err, t->ctx, dsd_tensor_upload(t->ctx, &t->sharp, t->batch.sharp, numel));
    if (t->cfg->data.mode != DSD_DATA_SYNTHETIC) {
        DSD_TRY_CTX(err, t->ctx, dsd_tensor_upload(t->ctx, &t->blur, t->batch.blur, numel));
        return DSD_OK;
    }
    /* synthetic: PSF i of step s from the stream (s, i) of the seed, i the
     * element's index in the global batch */
    int k = t->psf.size;
    uint64_t global_n = (uint64_t)t->spec.n;
    for (int i = 0; i < t->n; i++) {
        dsd_rng rng;
        dsd_rng_init(&rng, (uint64_t)t->cfg->train.seed,
                     t->step * global_n + (uint64_t)(t->first + i));
        dsd_blur_psf_params pp = t->psf;
        if (t->psf_drawn) { /* its own stream: the PSF stream stays as without ranges */
            dsd_rng draw;
            dsd_rng_init(&draw, (uint64_t)t->cfg->train.seed ^ DSD_BLUR_RANGE_KEY,
                         t->step * global_n + (uint64_t)(t->first + i));
            dsd_blur_psf_params_draw(&t->psf_ranges, &draw, &pp);
        }
        dsd_blur_psf psf;
        DSD_TRY(dsd_blur_psf_generate(&pp, &rng, &psf, err));
        DSD_TRY(dsd_blur_psf_embed(&psf, k, k, t->psf_host + (size_t)i * k * k, err));
    }
    DSD_TRY_CTX(err, t->ctx, dsd_tensor_upload(t->ctx, &t->psfs, t->psf_host,
                                               (size_t)t->n * k * k));
    uint64_t first64 = (uint64_t)t->first * 3 * (uint64_t)t->crop * (uint64_t)t->crop;
    if (first64 > UINT32_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "replica %d: its first pixel of the "
                        "global batch, %llu, passes the 32-bit noise counter (smaller "
                        "train.batch or fewer replicas)", t->comm.rank,
                        (unsigned long long)first64);
    uint32_t first = (uint32_t)first64;
    /* one std per step (the global batch's), the same on every replica */
    double sigma = dsd_blur_noise_sigma_draw(t->cfg->data.noise_sigma,
                                             t->cfg->data.noise_sigma_max,
                                             (uint64_t)t->cfg->train.seed, t->step);
    DSD_TRY_CTX(err, t->ctx, dsd_blur_apply_at(t->ctx, &t->blur_fft, &t->sharp, &t->psfs,
                                               (float)sigma, (uint64_t)t->cfg->train.seed,
                                               t->step, first, &t->blur));
    return DSD_OK;
}

/* The discriminator's step on the detached fake: RaGAN loss of real and
 * fake logits, its backward, the replicas' sum and Adam. */
static dsd_status discriminator_step(dsd_trainer *t, const dsd_adam_params *adam,
                                     dsd_step_stats *out, dsd_error *err)
{
    dsd_context *ctx = t->ctx;
    dsd_profile_scope_begin(ctx, "D step: D forward x2, RaGAN loss, D backward x2");
    /* a step that failed half-way may have left a tape pending: drop it */
    dsd_discriminator_tape *tr = &t->d_tape_real, *tf = &t->d_tape_fake;
    if (tr->pending)
        dsd_discriminator_tape_free(ctx, tr);
    if (tf->pending)
        dsd_discriminator_tape_free(ctx, tf);
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->d.params.grads, 0.0f));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_forward(ctx, &t->d, &t->sharp, &t->real_logits, tr));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_forward(ctx, &t->d, &t->fake, &t->fake_logits, tf));
    const dsd_comm *comm = &t->comm;
    DSD_TRY_CTX(err, ctx, dsd_ragan_loss_forward_comm(ctx, DSD_RAGAN_DISCRIMINATOR,
                                                      &t->real_logits, &t->fake_logits, comm,
                                                      &t->loss_d));
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->dreal, 0.0f));
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->dfake_logits, 0.0f));
    DSD_TRY_CTX(err, ctx, dsd_ragan_loss_backward_comm(ctx, DSD_RAGAN_DISCRIMINATOR, 1.0f,
                                                       &t->real_logits, &t->fake_logits, comm,
                                                       &t->dreal, &t->dfake_logits));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_backward(ctx, &t->d, tf, &t->dfake_logits, NULL, 1));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_backward(ctx, &t->d, tr, &t->dreal, NULL, 1));
    dsd_profile_scope_end(ctx);
    dsd_profile_scope_begin(ctx, "D step: loss download, gradient check, Adam");
    int ok;
    out->loss_d = download_scalar(t, &t->loss_d, err, &ok);
    if (!ok)
        return err->status;
    if (replicas(t))
        DSD_TRY(sum_replicas(t, &t->d.params, &out->loss_d, 1, err));
    if (!isfinite(out->loss_d))
        return DSD_FAIL(err, DSD_ERR_NAN, "step %llu: the discriminator loss is %g; stopping "
                        "before any weight is updated", (unsigned long long)t->step, out->loss_d);
    DSD_TRY(check_grads(t, &t->d.params, "discriminator", err));
    DSD_TRY_CTX(err, ctx, dsd_adam_step(ctx, adam, ++t->d_t, &t->d.params.values,
                                        &t->d.params.grads, &t->d_m, &t->d_v));
    dsd_profile_scope_end(ctx);
    return DSD_OK;
}

/* The generator's adversarial term through the updated discriminator:
 * loss_adv and its gradient into t->dfake (zeroed by the caller). */
static dsd_status generator_adversarial_term(dsd_trainer *t, dsd_error *err)
{
    dsd_context *ctx = t->ctx;
    const dsd_comm *comm = &t->comm;
    dsd_discriminator_tape *tf = &t->d_tape_fake;
    dsd_profile_scope_begin(ctx, "G step: D forward x2, RaGAN loss, D backward (dx)");
    DSD_TRY_CTX(err, ctx, dsd_discriminator_forward(ctx, &t->d, &t->sharp, &t->real_logits, NULL));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_forward(ctx, &t->d, &t->fake, &t->fake_logits, tf));
    DSD_TRY_CTX(err, ctx, dsd_ragan_loss_forward_comm(ctx, DSD_RAGAN_GENERATOR, &t->real_logits,
                                                      &t->fake_logits, comm, &t->loss_adv));
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->dfake_logits, 0.0f));
    DSD_TRY_CTX(err, ctx, dsd_ragan_loss_backward_comm(ctx, DSD_RAGAN_GENERATOR, 1.0f,
                                                       &t->real_logits, &t->fake_logits, comm,
                                                       NULL, &t->dfake_logits));
    DSD_TRY_CTX(err, ctx, dsd_discriminator_backward(ctx, &t->d, tf, &t->dfake_logits,
                                                     &t->dfake, 0));
    dsd_profile_scope_end(ctx);
    return DSD_OK;
}

dsd_status dsd_trainer_step(dsd_trainer *t, dsd_step_stats *out, dsd_error *err)
{
    dsd_context *ctx = t->ctx;
    const dsd_config *c = t->cfg;
    memset(out, 0, sizeof *out);
    int epoch = (int)(t->step / t->steps_per_epoch);
    float lr = dsd_lr_schedule((float)c->train.lr, epoch, c->train.decay_from, c->train.epochs);
    dsd_adam_params adam = {.lr = lr, .beta1 = (float)c->train.beta1,
                            .beta2 = (float)c->train.beta2, .eps = (float)c->train.eps};
    /* layer-profile scopes (no-ops unless dsd_profile_layers_enable): every
     * section of the step, so their times add up to the step's */
    dsd_profile_scope_begin(ctx, "data: batch upload, synthetic blur");
    dsd_status st = next_batch(t, err);
    dsd_profile_scope_end(ctx);
    DSD_TRY(st);

    /* fake = G(blur), kept for the generator's backward */
    t->g_tape.step = t->step;
    t->g_tape.first_sample = (uint64_t)t->first;
    dsd_profile_scope_begin(ctx, "G forward (other ops)");
    st = dsd_generator_forward(ctx, &t->g, &t->blur, &t->fake, &t->g_tape);
    dsd_profile_scope_end(ctx);
    DSD_TRY_CTX(err, ctx, st);
    /* warm-up (train.warmup_steps): the generator learns from the content
     * loss alone; the discriminator is neither run nor updated */
    int adversarial = t->step >= (uint64_t)c->train.warmup_steps;
    if (adversarial)
        DSD_TRY(discriminator_step(t, &adam, out, err));
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->g.params.grads, 0.0f));
    DSD_TRY_CTX(err, ctx, dsd_tensor_fill(ctx, &t->dfake, 0.0f));
    if (adversarial)
        DSD_TRY(generator_adversarial_term(t, err));
    dsd_profile_scope_begin(ctx, "G step: content loss forward");
    st = dsd_content_loss_forward(ctx, &t->content, &t->fake, &t->sharp, &t->loss_content, 1);
    dsd_profile_scope_end(ctx);
    DSD_TRY_CTX(err, ctx, st);
    dsd_profile_scope_begin(ctx, "G step: content loss backward");
    /* replicas: the content loss is a mean over this replica's share, 1/size of the batch */
    st = dsd_content_loss_backward(ctx, &t->content,
                                   (float)(c->train.lambda / t->comm.size), &t->dfake);
    dsd_profile_scope_end(ctx);
    DSD_TRY_CTX(err, ctx, st);
    dsd_profile_scope_begin(ctx, "G backward (other ops)");
    st = dsd_generator_backward(ctx, &t->g, &t->g_tape, &t->dfake, NULL);
    dsd_profile_scope_end(ctx);
    DSD_TRY_CTX(err, ctx, st);
    dsd_profile_scope_begin(ctx, "G step: loss download, gradient check, Adam");
    int ok = 1;
    if (adversarial)
        out->loss_g_adv = download_scalar(t, &t->loss_adv, err, &ok);
    if (!ok)
        return err->status;
    out->loss_content = download_scalar(t, &t->loss_content, err, &ok);
    if (!ok)
        return err->status;
    if (replicas(t)) {
        double losses[2] = {out->loss_g_adv, out->loss_content / t->comm.size};
        DSD_TRY(sum_replicas(t, &t->g.params, losses, 2, err));
        out->loss_g_adv = losses[0];
        out->loss_content = losses[1];
    }
    out->loss_g = out->loss_g_adv + c->train.lambda * out->loss_content;
    if (!isfinite(out->loss_g))
        return DSD_FAIL(err, DSD_ERR_NAN, "step %llu: the generator loss is %g (adversarial %g, "
                        "content %g); stopping before the generator is updated",
                        (unsigned long long)t->step, out->loss_g, out->loss_g_adv,
                        out->loss_content);
    DSD_TRY(check_grads(t, &t->g.params, "generator", err));
    DSD_TRY_CTX(err, ctx, dsd_adam_step(ctx, &adam, ++t->g_t, &t->g.params.values,
                                        &t->g.params.grads, &t->g_m, &t->g_v));
    dsd_profile_scope_end(ctx);

    out->adversarial = adversarial;
    out->step = t->step;
    out->epoch = epoch;
    out->lr = lr;
    out->bad = t->batch.bad;
    out->bad_message = t->batch.bad_message;
    t->step++;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Validation */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dsd_status dsd_trainer_validate(dsd_trainer *t, dsd_val_stats *out, dsd_error *err)
{
    memset(out, 0, sizeof *out);
    if (!t->has_val)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "no held-out set configured (data.val)");
    double start = now_seconds();
    size_t count = t->val.count;
    if (t->cfg->data.val_count > 0 && (size_t)t->cfg->data.val_count < count)
        count = (size_t)t->cfg->data.val_count;
    double psnr = 0, ssim = 0;
    for (size_t i = 0; i < count; i++) {
        const dsd_sample_files *f = &t->val.samples[i];
        dsd_image sharp, blur, restored;
        dsd_image_init(&sharp);
        dsd_image_init(&blur);
        dsd_image_init(&restored);
        dsd_status st = dsd_image_load(f->sharp, &sharp, err);
        if (st == DSD_OK && f->blur)
            st = dsd_image_load(f->blur, &blur, err);
        if (st == DSD_OK && !f->blur)
            st = DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "synthetic held-out sets need "
                          "pre-blurred images: use data.mode paired for validation data");
        if (st == DSD_OK) {
            /* the same path dsdeblur-run and dsdeblur-eval take */
            dsd_deblur_options opts = {0, -1, 0, 0};
            dsd_deblur_stats ds;
            if ((st = dsd_deblur_image(t->ctx, &t->g, &blur, &restored, &opts, &ds)) != DSD_OK)
                *err = *dsd_context_error(t->ctx);
        }
        double p = 0, s = 0;
        if (st == DSD_OK)
            st = dsd_psnr(&restored, &sharp, &p, err);
        if (st == DSD_OK)
            st = dsd_ssim(&restored, &sharp, DSD_SSIM_SKIMAGE, &s, err);
        dsd_image_free(&sharp);
        dsd_image_free(&blur);
        dsd_image_free(&restored);
        if (st != DSD_OK)
            return st;
        psnr += isfinite(p) ? p : 100.0; /* identical images: cap at 100 dB */
        ssim += s;
    }
    out->images = (int)count;
    out->psnr = count ? psnr / (double)count : 0;
    out->ssim = count ? ssim / (double)count : 0;
    out->seconds = now_seconds() - start;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints */

static dsd_checkpoint checkpoint_of(dsd_trainer *t)
{
    dsd_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.g = &t->g;
    ck.d = &t->d;
    ck.g_m = &t->g_m;
    ck.g_v = &t->g_v;
    ck.d_m = &t->d_m;
    ck.d_v = &t->d_v;
    return ck;
}

dsd_status dsd_trainer_save_checkpoint(dsd_trainer *t, const char *path, dsd_error *err)
{
    dsd_checkpoint ck = checkpoint_of(t);
    ck.step = t->step;
    ck.epoch = (int)(t->step / t->steps_per_epoch);
    ck.g_adam_t = t->g_t;
    ck.d_adam_t = t->d_t;
    ck.n_rng = 1;
    ck.rng[0] = (uint64_t)t->cfg->train.seed; /* all randomness derives from (seed, step) */
    ck.config_text = t->config_text;
    DSD_TRY_CTX(err, t->ctx, dsd_checkpoint_save(t->ctx, &ck, path));
    return DSD_OK;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

dsd_status dsd_trainer_weights_checksum(dsd_trainer *t, uint64_t *out, dsd_error *err)
{
    const dsd_params *nets[] = {&t->g.params, &t->d.params};
    uint64_t h = fnv1a(UINT64_C(0xcbf29ce484222325), &t->step, sizeof t->step);
    for (int k = 0; k < 2; k++) {
        float *v = malloc((nets[k]->count ? nets[k]->count : 1) * sizeof *v);
        if (!v)
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "checksum of %zu weights",
                            nets[k]->count);
        if (dsd_tensor_download(t->ctx, &nets[k]->values, v, nets[k]->count) != DSD_OK) {
            *err = *dsd_context_error(t->ctx);
            free(v);
            return err->status;
        }
        h = fnv1a(h, v, nets[k]->count * sizeof *v);
        free(v);
    }
    *out = h;
    return DSD_OK;
}

dsd_status dsd_trainer_save_generator(dsd_trainer *t, const char *path, dsd_storage storage,
                                      dsd_error *err)
{
    DSD_TRY_CTX(err, t->ctx, dsd_generator_save(t->ctx, &t->g, path, storage));
    return DSD_OK;
}

dsd_status dsd_trainer_resume(dsd_trainer *t, const char *path, dsd_error *err)
{
    dsd_checkpoint ck = checkpoint_of(t);
    DSD_TRY_CTX(err, t->ctx, dsd_checkpoint_load(t->ctx, &ck, path));
    dsd_status st = DSD_OK;
    if (ck.n_rng != 1 || ck.rng[0] != (uint64_t)t->cfg->train.seed)
        st = DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s was written with train.seed %llu, this "
                      "run has %lld: a resumed run must keep its seed", path,
                      (unsigned long long)(ck.n_rng ? ck.rng[0] : 0), t->cfg->train.seed);
    if (st == DSD_OK) {
        t->step = ck.step;
        t->g_t = ck.g_adam_t;
        t->d_t = ck.d_adam_t;
        dsd_loader_stop(t->loader); /* restart the data at the checkpoint's step */
        t->loader = NULL;
    }
    dsd_checkpoint_clear(&ck);
    return st;
}
