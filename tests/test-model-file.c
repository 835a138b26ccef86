/*
 * test-model-file.c: generator / discriminator weight files and training
 * checkpoints (src/io/model_file.c, src/io/checkpoint.c; formats in
 * dsdeblur_io.h and doc/weights.md).
 *
 * Checked: save/load round trips bit for bit (weights downloaded before and
 * after, into a network initialized with other weights first), F16 storage
 * equal to the F16 rounding of every weight, a BF16 tensor converted, the metadata keys and config
 * read-back (memcmp against the config, so a config field the file forgets
 * fails), the tensor table (every name with its PyTorch shape, nothing
 * else); checkpoints restoring weights, moments, step, epoch, Adam counters,
 * RNG words, dropout seed and config text exactly. Error paths, each with
 * its status and a piece of its message, and each load followed by a check
 * that the weights (and moments) did not change: missing, extra, reshaped,
 * I32, F16-in-a-checkpoint and NaN tensors; truncated, empty, lying-header
 * and non-safetensors files; wrong "format" both ways; config mismatches;
 * garbled metadata; refusals to save NaN/Inf or F16-overflowing values; a
 * failed save leaving the existing file byte for byte (the temporary's name
 * is taken by a directory, which stops root as well as anyone).
 *
 * Small networks: generator base_width 8, mlp_ratio 4, 2 blocks (40,865
 * parameters); discriminator base_width 8, 3 layers, affine norms. Files live
 * in a mkdtemp directory removed at the end.
 */
#include "testutil.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[256];

static dsd_generator_config small_gen(void)
{
    dsd_generator_config c = dsd_generator_default_config();
    c.n_blocks = 2;
    c.base_width = 8;
    c.mlp_ratio = 4;
    return c;
}

static dsd_discriminator_config small_disc(void)
{
    dsd_discriminator_config c = dsd_discriminator_default_config();
    c.base_width = 8;
    c.norm_affine = 1; /* the norm.{weight,bias} names too */
    return c;
}

static void gen_make(dsd_generator *g, const dsd_generator_config *c, uint64_t seed)
{
    TU_OK(dsd_generator_init(tu_ctx(), g, c));
    TU_OK(dsd_generator_init_weights(tu_ctx(), g, seed));
}

static void disc_make(dsd_discriminator *d, const dsd_discriminator_config *c, uint64_t seed)
{
    TU_OK(dsd_discriminator_init(tu_ctx(), d, c));
    TU_OK(dsd_discriminator_init_weights(tu_ctx(), d, seed));
}

/* The arena (or a moment tensor) on the host; free() it. */
static float *download(const dsd_tensor *t)
{
    size_t n = dsd_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    ck_assert(h);
    TU_OK(dsd_tensor_download(tu_ctx(), t, h, n));
    return h;
}

/* Random floats in +-1 (moments: |.| for v), as a device tensor of n. */
static void random_tensor(dsd_tensor *t, size_t n, uint64_t seed, int positive)
{
    tu_rng r = tu_rng_init(seed);
    float *h = malloc(n * sizeof *h);
    ck_assert(h);
    for (size_t i = 0; i < n; i++) {
        double v = tu_uniform(&r, -1.0, 1.0);
        h[i] = (float)(positive ? fabs(v) * 1e-3 : v * 1e-2);
    }
    TU_OK(dsd_tensor_init(tu_ctx(), t, 1, 1, 1, (int)n));
    TU_OK(dsd_tensor_upload(tu_ctx(), t, h, n));
    free(h);
}

/* Bit-identical arrays; names the first differing parameter and element. */
static void expect_same_bits(const char *what, const dsd_params *p, const float *got,
                             const float *want)
{
    if (!memcmp(got, want, p->count * sizeof *got))
        return;
    for (size_t i = 0; i < p->n; i++) {
        const dsd_param_info *e = &p->info[i];
        for (size_t j = 0; j < e->numel; j++) {
            float a = got[e->offset + j], b = want[e->offset + j];
            ck_assert_msg(!memcmp(&a, &b, sizeof a), "%s: '%s' element %zu is %.9g, expected "
                          "%.9g (bit for bit)", what, e->name, j, (double)a, (double)b);
        }
    }
}

/* The device arena t still holds `before`. */
static void expect_unchanged(const char *what, const dsd_params *p, const dsd_tensor *t,
                             const float *before)
{
    float *now = download(t);
    expect_same_bits(what, p, now, before);
    free(now);
}

/* ------------------------------------------------------------------------ */
/* Files built by hand */

/* How rewrite() changes a file (NULL fields: no change). */
typedef struct edit {
    const char *drop_tensor;
    const char *extra_tensor;    /* added, shape [3] */
    const char *flatten_tensor;  /* stored 1-D */
    const char *f16_tensor;      /* stored as F16 */
    const char *nan_tensor;      /* element 1 becomes NaN */
    const char *drop_meta;
    const char *meta_key, *meta_value; /* set or replace */
} edit;

/* src with the edits applied, written to dst through the library's writer
 * (tensors read back as float: src must be F32 for an exact copy). */
static void rewrite(const char *src, const char *dst, const edit *e)
{
    dsd_error err;
    dsd_safetensors *st;
    dsd_safetensors_writer *w;
    TU_OK(dsd_safetensors_open(src, &st, &err));
    TU_OK(dsd_safetensors_writer_init(&w, &err));
    for (size_t i = 0; i < dsd_safetensors_count(st); i++) {
        const dsd_st_tensor *t = dsd_safetensors_tensor(st, i);
        if (e->drop_tensor && !strcmp(t->name, e->drop_tensor))
            continue;
        float *v = malloc((size_t)t->numel * sizeof *v + 4);
        ck_assert(v);
        TU_OK(dsd_safetensors_read_f32(st, t->name, t->ndim, t->shape, v, &err));
        int64_t flat[1] = {(int64_t)t->numel};
        int flatten = e->flatten_tensor && !strcmp(t->name, e->flatten_tensor);
        if (e->nan_tensor && !strcmp(t->name, e->nan_tensor))
            v[1] = NAN;
        int f16 = e->f16_tensor && !strcmp(t->name, e->f16_tensor);
        TU_OK(dsd_safetensors_writer_add_f32(w, t->name, flatten ? 1 : t->ndim,
                                             flatten ? flat : t->shape, v, f16, &err));
        free(v);
    }
    if (e->extra_tensor) {
        const float v[3] = {1, 2, 3};
        const int64_t shape[1] = {3};
        TU_OK(dsd_safetensors_writer_add_f32(w, e->extra_tensor, 1, shape, v, 0, &err));
    }
    for (size_t i = 0; i < dsd_safetensors_metadata_count(st); i++) {
        const char *k = dsd_safetensors_metadata_key(st, i);
        if (e->drop_meta && !strcmp(k, e->drop_meta))
            continue;
        TU_OK(dsd_safetensors_writer_set_metadata(w, k, dsd_safetensors_metadata(st, k), &err));
    }
    if (e->meta_key)
        TU_OK(dsd_safetensors_writer_set_metadata(w, e->meta_key, e->meta_value, &err));
    TU_OK(dsd_safetensors_writer_save(w, dst, &err));
    dsd_safetensors_writer_free(w);
    dsd_safetensors_close(st);
}

/* src with the first `from` in its bytes replaced by `to` (same length). */
static void patch(const char *src, const char *dst, const char *from, const char *to)
{
    size_t n, len = strlen(from);
    ck_assert_uint_eq(len, strlen(to));
    unsigned char *b = tu_read_file(src, &n);
    size_t at = 0;
    while (at + len <= n && memcmp(b + at, from, len))
        at++;
    ck_assert_msg(at + len <= n, "%s has no \"%s\"", src, from);
    memcpy(b + at, to, len);
    tu_write_file(dst, b, n);
    free(b);
}

/* src with tensor `name`'s dtype F16 relabelled BF16 (same element size, so
 * the data stays; the header grows by one byte and is re-padded). */
static void relabel_bf16(const char *src, const char *dst, const char *name)
{
    size_t n;
    unsigned char *b = tu_read_file(src, &n);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)b[i] << (8 * i);
    char from[128], to[128];
    snprintf(from, sizeof from, "\"%s\":{\"dtype\":\"F16\"", name);
    snprintf(to, sizeof to, "\"%s\":{\"dtype\":\"BF16\"", name);
    char *h = malloc(len + 16);
    ck_assert(h);
    memcpy(h, b + 8, len);
    h[len] = '\0';
    char *at = strstr(h, from);
    ck_assert_msg(at, "%s has no \"%s\"", src, from);
    size_t head = (size_t)(at - h), fl = strlen(from), tl = strlen(to);
    char *out = malloc(len + 16);
    ck_assert(out);
    memcpy(out, h, head);
    size_t m = head;
    memcpy(out + m, to, tl);
    m += tl;
    memcpy(out + m, h + head + fl, len - head - fl);
    m += len - head - fl;
    while (m > 0 && out[m - 1] == ' ')
        m--;
    while (m % 8)
        out[m++] = ' ';
    FILE *f = fopen(dst, "wb");
    ck_assert(f);
    for (int i = 0; i < 8; i++)
        fputc((int)(((uint64_t)m >> (8 * i)) & 0xff), f);
    ck_assert(fwrite(out, 1, m, f) == m);
    ck_assert(fwrite(b + 8 + len, 1, n - 8 - len, f) == n - 8 - len);
    ck_assert(fclose(f) == 0);
    free(out);
    free(h);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Weight files */

START_TEST(test_generator_round_trip)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator a, b;
    gen_make(&a, &cfg, 11);
    gen_make(&b, &cfg, 22);
    ck_assert_uint_eq(a.params.count, 40865); /* tests below rely on this network */
    char path[512];
    snprintf(path, sizeof path, "%s", tu_path(tmp_dir, "g.safetensors"));
    TU_OK(dsd_generator_save(ctx, &a, path, DSD_STORAGE_F32));

    float *want = download(&a.params.values);
    float *other = download(&b.params.values);
    ck_assert(memcmp(want, other, a.params.count * sizeof(float))); /* the load must matter */
    TU_OK(dsd_generator_load(ctx, &b, path));
    float *got = download(&b.params.values);
    expect_same_bits("generator F32 round trip", &a.params, got, want);
    ck_assert_uint_eq(b.dropout_seed, 22); /* weight files leave the seed alone */

    /* the file: one tensor per table entry with its PyTorch shape, the keys */
    dsd_error err;
    dsd_safetensors *st;
    TU_OK(dsd_safetensors_open(path, &st, &err));
    ck_assert_uint_eq(dsd_safetensors_count(st), a.params.n);
    for (size_t i = 0; i < a.params.n; i++) {
        const dsd_param_info *e = &a.params.info[i];
        const dsd_st_tensor *t = dsd_safetensors_find(st, e->name);
        ck_assert_msg(t, "no tensor '%s'", e->name);
        ck_assert_int_eq(t->dtype, DSD_ST_F32);
        ck_assert_int_eq(t->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            ck_assert_int_eq(t->shape[d], e->shape[d]);
    }
    const dsd_st_tensor *head = dsd_safetensors_find(st, "head.weight");
    ck_assert(head && head->ndim == 4 && head->shape[0] == 8 && head->shape[1] == 3 &&
              head->shape[2] == 7 && head->shape[3] == 7);
    const dsd_st_tensor *fc1b = dsd_safetensors_find(st, "blocks.1.ca.fc1.bias");
    ck_assert(fc1b && fc1b->ndim == 1 && fc1b->shape[0] == 8);
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format"), "dsdeblur-generator");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format_version"), "1");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.n_blocks"), "2");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.base_width"), "8");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.mlp_ratio"), "4");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.up_kernel"), "3");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.dropout"), "0.5");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.slope"), "0.2");
    dsd_safetensors_close(st);

    /* config read-back, every field */
    dsd_generator_config rc;
    memset(&rc, 0xab, sizeof rc);
    TU_OK(dsd_generator_file_config(path, &rc, &err));
    ck_assert(!memcmp(&rc, &cfg, sizeof rc));
    /* odd float values survive the text form exactly */
    dsd_generator_config odd = cfg;
    odd.slope = 0.123456789f;
    odd.dropout = 1.0f / 3.0f;
    dsd_generator c;
    gen_make(&c, &odd, 3);
    TU_OK(dsd_generator_save(ctx, &c, tu_path(tmp_dir, "odd.safetensors"), DSD_STORAGE_F32));
    TU_OK(dsd_generator_file_config(tu_path(tmp_dir, "odd.safetensors"), &rc, &err));
    ck_assert(!memcmp(&rc, &odd, sizeof rc));
    TU_OK(dsd_generator_load(ctx, &c, tu_path(tmp_dir, "odd.safetensors")));

    free(want);
    free(other);
    free(got);
    dsd_generator_free(ctx, &a);
    dsd_generator_free(ctx, &b);
    dsd_generator_free(ctx, &c);
}
END_TEST

START_TEST(test_generator_f16)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator a, b;
    gen_make(&a, &cfg, 5);
    gen_make(&b, &cfg, 6);
    /* a few values at F16's edges: subnormal, tie, largest */
    float *w = download(&a.params.values);
    w[0] = 3e-6f;
    w[1] = 1.0f + 1.0f / 2048.0f; /* halfway between two F16s: rounds to even (1.0) */
    w[2] = -65504.0f;
    TU_OK(dsd_tensor_upload(ctx, &a.params.values, w, a.params.count));
    char path[512];
    snprintf(path, sizeof path, "%s", tu_path(tmp_dir, "g16.safetensors"));
    TU_OK(dsd_generator_save(ctx, &a, path, DSD_STORAGE_F16));

    dsd_error err;
    dsd_safetensors *st;
    TU_OK(dsd_safetensors_open(path, &st, &err));
    ck_assert_int_eq(dsd_safetensors_find(st, "tail.weight")->dtype, DSD_ST_F16);
    dsd_safetensors_close(st);

    TU_OK(dsd_generator_load(ctx, &b, path));
    float *got = download(&b.params.values);
    double worst = 0.0;
    for (size_t i = 0; i < a.params.count; i++) {
        float r = dsd_st_f16_to_f32(dsd_st_f32_to_f16(w[i]));
        ck_assert_msg(got[i] == r, "F16 element %zu: %.9g, expected %.9g (from %.9g)", i,
                      (double)got[i], (double)r, (double)w[i]);
        /* and that is within half an F16 ulp (2^-11 relative, 2^-25 absolute) */
        double e = fabs((double)got[i] - w[i]);
        ck_assert_msg(e <= fabs(w[i]) * 0x1p-11 + 0x1p-25, "element %zu: |%.9g - %.9g|", i,
                      (double)got[i], (double)w[i]);
        if (e > worst)
            worst = e;
    }
    ck_assert(worst > 0.0); /* it did round */
    ck_assert(got[1] == 1.0f && got[2] == -65504.0f);

    /* BF16 converts too: head.bias's F16 bits relabelled BF16 load as the
     * BF16 values of those bits */
    relabel_bf16(path, tu_path(tmp_dir, "bf16.safetensors"), "head.bias");
    TU_OK(dsd_generator_load(ctx, &b, tu_path(tmp_dir, "bf16.safetensors")));
    free(got);
    got = download(&b.params.values);
    const dsd_param_info *hb = dsd_params_find(&a.params, "head.bias");
    for (size_t i = 0; i < a.params.count; i++) {
        uint16_t bits = dsd_st_f32_to_f16(w[i]);
        int in_bias = i >= hb->offset && i < hb->offset + hb->numel;
        float r = in_bias ? dsd_st_bf16_to_f32(bits) : dsd_st_f16_to_f32(bits);
        ck_assert_msg(got[i] == r, "BF16 file element %zu: %.9g, expected %.9g", i,
                      (double)got[i], (double)r);
    }

    /* beyond F16's range: refused for F16, fine for F32 */
    w[3] = 70000.0f;
    TU_OK(dsd_tensor_upload(ctx, &a.params.values, w, a.params.count));
    TU_EXPECT_CTX_ERROR(
        dsd_generator_save(ctx, &a, tu_path(tmp_dir, "big.safetensors"), DSD_STORAGE_F16),
        DSD_ERR_INVALID_ARGUMENT, "big.safetensors", "'head.weight' element 3", "F16");
    ck_assert(!tu_file_exists(tu_path(tmp_dir, "big.safetensors")));
    TU_OK(dsd_generator_save(ctx, &a, tu_path(tmp_dir, "big.safetensors"), DSD_STORAGE_F32));

    free(w);
    free(got);
    dsd_generator_free(ctx, &a);
    dsd_generator_free(ctx, &b);
}
END_TEST

START_TEST(test_discriminator_round_trip)
{
    dsd_context *ctx = tu_ctx();
    dsd_discriminator_config cfg = small_disc();
    dsd_discriminator a, b;
    disc_make(&a, &cfg, 7);
    disc_make(&b, &cfg, 8);
    /* non-default norm parameters, so a skipped one would show */
    float *w = download(&a.params.values);
    const dsd_param_info *nw = dsd_params_find(&a.params, "layers.2.norm.weight");
    ck_assert(nw);
    w[nw->offset + 1] = -0.0f;
    w[nw->offset + 2] = 1.5f;
    TU_OK(dsd_tensor_upload(ctx, &a.params.values, w, a.params.count));
    char path[512];
    snprintf(path, sizeof path, "%s", tu_path(tmp_dir, "d.safetensors"));
    TU_OK(dsd_discriminator_save(ctx, &a, path, DSD_STORAGE_F32));
    TU_OK(dsd_discriminator_load(ctx, &b, path));
    float *got = download(&b.params.values);
    expect_same_bits("discriminator F32 round trip", &a.params, got, w);
    ck_assert(signbit(got[nw->offset + 1]));

    dsd_error err;
    dsd_discriminator_config rc;
    memset(&rc, 0xcd, sizeof rc);
    TU_OK(dsd_discriminator_file_config(path, &rc, &err));
    ck_assert(!memcmp(&rc, &cfg, sizeof rc));
    dsd_safetensors *st;
    TU_OK(dsd_safetensors_open(path, &st, &err));
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format"), "dsdeblur-discriminator");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "discriminator.eps"), "1e-05");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "discriminator.norm_affine"), "1");
    ck_assert_uint_eq(dsd_safetensors_count(st), a.params.n);
    dsd_safetensors_close(st);

    /* a generator file is not a discriminator file, and the reverse */
    dsd_generator_config gc = small_gen();
    dsd_generator g;
    gen_make(&g, &gc, 9);
    float *gw = download(&g.params.values);
    TU_OK(dsd_generator_save(ctx, &g, tu_path(tmp_dir, "g.safetensors"), DSD_STORAGE_F32));
    TU_EXPECT_CTX_ERROR(dsd_discriminator_load(ctx, &b, tu_path(tmp_dir, "g.safetensors")),
                        DSD_ERR_FORMAT, "g.safetensors",
                        "'format' is 'dsdeblur-generator', expected "
                        "'dsdeblur-discriminator'");
    expect_unchanged("after loading a generator file", &b.params, &b.params.values, w);
    TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &g, path), DSD_ERR_FORMAT,
                        "'format' is 'dsdeblur-discriminator', expected 'dsdeblur-generator'");
    expect_unchanged("after loading a discriminator file", &g.params, &g.params.values, gw);
    TU_EXPECT_ERROR(dsd_discriminator_file_config(tu_path(tmp_dir, "g.safetensors"), &rc, &err),
                    DSD_ERR_FORMAT, err, "expected 'dsdeblur-discriminator'");

    /* config mismatch: norm_affine changes the table, n_layers the shapes */
    dsd_discriminator_config c2 = cfg;
    c2.n_layers = 2;
    c2.norm_affine = 0;
    dsd_discriminator d2;
    disc_make(&d2, &c2, 1);
    float *w2 = download(&d2.params.values);
    TU_EXPECT_CTX_ERROR(dsd_discriminator_load(ctx, &d2, path), DSD_ERR_INVALID_ARGUMENT,
                        "d.safetensors was saved with",
                        "discriminator n_layers 3, this model has 2",
                        "discriminator norm_affine 1, this model has 0");
    expect_unchanged("after a config mismatch", &d2.params, &d2.params.values, w2);

    free(w);
    free(got);
    free(gw);
    free(w2);
    dsd_generator_free(ctx, &g);
    dsd_discriminator_free(ctx, &a);
    dsd_discriminator_free(ctx, &b);
    dsd_discriminator_free(ctx, &d2);
}
END_TEST

/* One malformed file per case, loaded into the same generator. */
START_TEST(test_generator_malformed)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator g, src;
    gen_make(&g, &cfg, 31);
    gen_make(&src, &cfg, 32);
    float *before = download(&g.params.values);
    char good[512];
    snprintf(good, sizeof good, "%s", tu_path(tmp_dir, "good.safetensors"));
    TU_OK(dsd_generator_save(ctx, &src, good, DSD_STORAGE_F32));
    size_t n;
    unsigned char *bytes = tu_read_file(good, &n);
#define LOAD_FAILS(file, status, ...)                                                              \
    do {                                                                                           \
        TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &g, (file)), (status), __VA_ARGS__);           \
        expect_unchanged((file), &g.params, &g.params.values, before);                             \
    } while (0)

    /* 1. a missing tensor */
    rewrite(good, tu_path(tmp_dir, "missing.safetensors"),
            &(edit){.drop_tensor = "blocks.1.sa.conv.bias"});
    LOAD_FAILS(tu_path(tmp_dir, "missing.safetensors"), DSD_ERR_FORMAT, "missing.safetensors",
               "missing tensor 'blocks.1.sa.conv.bias' (shape [1])");
    /* 2. an extra tensor (as a third block would add) */
    rewrite(good, tu_path(tmp_dir, "extra.safetensors"),
            &(edit){.extra_tensor = "blocks.2.ca.fc1.bias"});
    LOAD_FAILS(tu_path(tmp_dir, "extra.safetensors"), DSD_ERR_FORMAT, "extra.safetensors",
               "unexpected tensor 'blocks.2.ca.fc1.bias'");
    /* 3. a wrong shape: a conv weight flattened (same bytes) */
    rewrite(good, tu_path(tmp_dir, "shape.safetensors"),
            &(edit){.flatten_tensor = "down.0.weight"});
    LOAD_FAILS(tu_path(tmp_dir, "shape.safetensors"), DSD_ERR_FORMAT,
               "tensor 'down.0.weight' has shape [1152], this model needs [16,8,3,3]");
    /* 4. a wrong dtype: I32 has F32's size, so only the header changes */
    patch(good, tu_path(tmp_dir, "i32.safetensors"), "\"head.bias\":{\"dtype\":\"F32\"",
          "\"head.bias\":{\"dtype\":\"I32\"");
    LOAD_FAILS(tu_path(tmp_dir, "i32.safetensors"), DSD_ERR_FORMAT, "i32.safetensors",
               "tensor 'head.bias' is I32; expected F32, F16 or BF16");
    /* 5. truncated inside the data */
    tu_write_file(tu_path(tmp_dir, "trunc.safetensors"), bytes, n - n / 3);
    LOAD_FAILS(tu_path(tmp_dir, "trunc.safetensors"), DSD_ERR_FORMAT, "trunc.safetensors",
               "run past the end of the data section");
    /* 6. zero bytes */
    tu_write_file(tu_path(tmp_dir, "empty.safetensors"), bytes, 0);
    LOAD_FAILS(tu_path(tmp_dir, "empty.safetensors"), DSD_ERR_FORMAT, "empty.safetensors",
               "file is 0 bytes");
    /* 7. a header length beyond the end of the file */
    {
        unsigned char *lie = malloc(n);
        ck_assert(lie);
        memcpy(lie, bytes, n);
        uint64_t len = (uint64_t)n; /* > n - 8 */
        for (int i = 0; i < 8; i++)
            lie[i] = (unsigned char)(len >> (8 * i));
        tu_write_file(tu_path(tmp_dir, "lie.safetensors"), lie, n);
        free(lie);
    }
    LOAD_FAILS(tu_path(tmp_dir, "lie.safetensors"), DSD_ERR_FORMAT, "lie.safetensors",
               "is larger than the");
    /* 8. not a safetensors file at all */
    {
        const char ppm[] = "P6\n4 4\n255\n0123456789abcdef0123456789abcdef0123456789abcdef";
        tu_write_file(tu_path(tmp_dir, "image.ppm"), ppm, sizeof ppm - 1);
    }
    LOAD_FAILS(tu_path(tmp_dir, "image.ppm"), DSD_ERR_FORMAT, "image.ppm",
               "not a safetensors file");
    /* 9. a plain safetensors file without our metadata */
    rewrite(good, tu_path(tmp_dir, "plain.safetensors"), &(edit){.drop_meta = "format"});
    LOAD_FAILS(tu_path(tmp_dir, "plain.safetensors"), DSD_ERR_FORMAT, "plain.safetensors",
               "without a 'format' metadata key");
    /* 10. a newer format version */
    rewrite(good, tu_path(tmp_dir, "v2.safetensors"),
            &(edit){.meta_key = "format_version", .meta_value = "2"});
    LOAD_FAILS(tu_path(tmp_dir, "v2.safetensors"), DSD_ERR_FORMAT, "format_version 2", "newer");
    /* 11. a NaN weight in the file */
    rewrite(good, tu_path(tmp_dir, "nan.safetensors"), &(edit){.nan_tensor = "tail.bias"});
    LOAD_FAILS(tu_path(tmp_dir, "nan.safetensors"), DSD_ERR_NAN, "nan.safetensors",
               "tensor 'tail.bias' element 1 is nan");
    /* 12. garbled config metadata */
    rewrite(good, tu_path(tmp_dir, "garbled.safetensors"),
            &(edit){.meta_key = "generator.mlp_ratio", .meta_value = "4x"});
    LOAD_FAILS(tu_path(tmp_dir, "garbled.safetensors"), DSD_ERR_FORMAT,
               "metadata 'generator.mlp_ratio' is '4x', not an integer");
    /* 13. no such file */
    LOAD_FAILS(tu_path(tmp_dir, "nonexistent.safetensors"), DSD_ERR_IO, "nonexistent.safetensors",
               "cannot open");
#undef LOAD_FAILS
    free(bytes);
    free(before);
    dsd_generator_free(ctx, &g);
    dsd_generator_free(ctx, &src);
}
END_TEST

/* Files of a differently configured generator. */
START_TEST(test_generator_config_mismatch)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator g;
    gen_make(&g, &cfg, 41);
    float *before = download(&g.params.values);
    const struct {
        const char *file;
        dsd_generator_config cfg;
        const char *want;
    } cases[] = {
        {"blocks3.safetensors", {3, 8, 4, 3, 0.5f, 0.2f}, "generator n_blocks 3, this model has 2"},
        {"width16.safetensors", {2, 16, 4, 3, 0.5f, 0.2f},
         "generator base_width 16, this model has 8"},
        {"ratio2.safetensors", {2, 8, 2, 3, 0.5f, 0.2f}, "generator mlp_ratio 2, this model has 4"},
        {"k1.safetensors", {2, 8, 4, 1, 0.5f, 0.2f}, "generator up_kernel 1, this model has 3"},
        {"slope.safetensors", {2, 8, 4, 3, 0.5f, 0.1f}, "generator slope 0.1, this model has 0.2"},
        {"drop.safetensors", {2, 8, 4, 3, 0.25f, 0.2f},
         "generator dropout 0.25, this model has 0.5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsd_generator other;
        gen_make(&other, &cases[i].cfg, 42);
        TU_OK(dsd_generator_save(ctx, &other, tu_path(tmp_dir, cases[i].file), DSD_STORAGE_F32));
        dsd_generator_free(ctx, &other);
        TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &g, tu_path(tmp_dir, cases[i].file)),
                            DSD_ERR_INVALID_ARGUMENT, cases[i].file, "was saved with",
                            cases[i].want);
        expect_unchanged(cases[i].file, &g.params, &g.params.values, before);
        /* and the file's own config is what a tool would build */
        dsd_error err;
        dsd_generator_config rc;
        TU_OK(dsd_generator_file_config(tu_path(tmp_dir, cases[i].file), &rc, &err));
        ck_assert(!memcmp(&rc, &cases[i].cfg, sizeof rc));
    }
    /* several differences are all listed */
    dsd_generator other;
    dsd_generator_config two = {9, 16, 4, 3, 0.5f, 0.2f};
    gen_make(&other, &two, 43);
    TU_OK(dsd_generator_save(ctx, &other, tu_path(tmp_dir, "two.safetensors"), DSD_STORAGE_F32));
    dsd_generator_free(ctx, &other);
    TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &g, tu_path(tmp_dir, "two.safetensors")),
                        DSD_ERR_INVALID_ARGUMENT,
                        "two.safetensors was saved with generator "
                        "n_blocks 9, this model has 2; generator base_width 16, this model has 8");
    expect_unchanged("two differences", &g.params, &g.params.values, before);
    free(before);
    dsd_generator_free(ctx, &g);
}
END_TEST

START_TEST(test_file_config_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator g;
    gen_make(&g, &cfg, 51);
    char good[512];
    snprintf(good, sizeof good, "%s", tu_path(tmp_dir, "fc.safetensors"));
    TU_OK(dsd_generator_save(ctx, &g, good, DSD_STORAGE_F32));
    dsd_generator_config rc, untouched;
    memset(&rc, 0x5a, sizeof rc);
    untouched = rc;
    dsd_error err;

    rewrite(good, tu_path(tmp_dir, "fc-missing.safetensors"),
            &(edit){.drop_meta = "generator.up_kernel"});
    TU_EXPECT_ERROR(
        dsd_generator_file_config(tu_path(tmp_dir, "fc-missing.safetensors"), &rc, &err),
        DSD_ERR_FORMAT, err, "fc-missing.safetensors", "metadata has no 'generator.up_kernel'");
    rewrite(good, tu_path(tmp_dir, "fc-int.safetensors"),
            &(edit){.meta_key = "generator.n_blocks", .meta_value = "nine"});
    TU_EXPECT_ERROR(dsd_generator_file_config(tu_path(tmp_dir, "fc-int.safetensors"), &rc, &err),
                    DSD_ERR_FORMAT, err, "'generator.n_blocks' is 'nine', not an integer");
    rewrite(good, tu_path(tmp_dir, "fc-space.safetensors"),
            &(edit){.meta_key = "generator.n_blocks", .meta_value = " 2"});
    TU_EXPECT_ERROR(dsd_generator_file_config(tu_path(tmp_dir, "fc-space.safetensors"), &rc, &err),
                    DSD_ERR_FORMAT, err, "'generator.n_blocks' is ' 2', not an integer");
    rewrite(good, tu_path(tmp_dir, "fc-float.safetensors"),
            &(edit){.meta_key = "generator.slope", .meta_value = "0.2x"});
    TU_EXPECT_ERROR(dsd_generator_file_config(tu_path(tmp_dir, "fc-float.safetensors"), &rc, &err),
                    DSD_ERR_FORMAT, err, "'generator.slope' is '0.2x', not a finite number");
    rewrite(good, tu_path(tmp_dir, "fc-inf.safetensors"),
            &(edit){.meta_key = "generator.dropout", .meta_value = "inf"});
    TU_EXPECT_ERROR(dsd_generator_file_config(tu_path(tmp_dir, "fc-inf.safetensors"), &rc, &err),
                    DSD_ERR_FORMAT, err, "'generator.dropout' is 'inf', not a finite number");
    rewrite(good, tu_path(tmp_dir, "fc-invalid.safetensors"),
            &(edit){.meta_key = "generator.up_kernel", .meta_value = "2"});
    TU_EXPECT_ERROR(
        dsd_generator_file_config(tu_path(tmp_dir, "fc-invalid.safetensors"), &rc, &err),
        DSD_ERR_FORMAT, err, "fc-invalid.safetensors: the saved config is not valid",
        "up_kernel 2");
    TU_EXPECT_ERROR(dsd_generator_file_config(tu_path(tmp_dir, "fc-none.safetensors"), &rc, &err),
                    DSD_ERR_IO, err, "fc-none.safetensors");
    ck_assert(!memcmp(&rc, &untouched, sizeof rc)); /* failures write nothing */
    /* the load reports the same (and changes nothing) */
    float *before = download(&g.params.values);
    TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &g, tu_path(tmp_dir, "fc-missing.safetensors")),
                        DSD_ERR_FORMAT, "no 'generator.up_kernel'");
    expect_unchanged("fc-missing", &g.params, &g.params.values, before);
    free(before);
    dsd_generator_free(ctx, &g);
}
END_TEST

START_TEST(test_save_refusals)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = small_gen();
    dsd_generator g;
    gen_make(&g, &cfg, 61);
    char path[512];
    snprintf(path, sizeof path, "%s", tu_path(tmp_dir, "keep.safetensors"));
    TU_OK(dsd_generator_save(ctx, &g, path, DSD_STORAGE_F32));
    size_t n0;
    unsigned char *old = tu_read_file(path, &n0);

    /* NaN and Inf weights: refused, naming the tensor; the old file stays */
    float *w = download(&g.params.values);
    const dsd_param_info *e = dsd_params_find(&g.params, "blocks.0.dsc.2.pointwise.weight");
    ck_assert(e);
    float saved = w[e->offset + 5];
    w[e->offset + 5] = NAN;
    TU_OK(dsd_tensor_upload(ctx, &g.params.values, w, g.params.count));
    TU_EXPECT_CTX_ERROR(dsd_generator_save(ctx, &g, path, DSD_STORAGE_F32), DSD_ERR_NAN,
                        "keep.safetensors", "tensor 'blocks.0.dsc.2.pointwise.weight' element 5");
    w[e->offset + 5] = -INFINITY;
    TU_OK(dsd_tensor_upload(ctx, &g.params.values, w, g.params.count));
    TU_EXPECT_CTX_ERROR(dsd_generator_save(ctx, &g, path, DSD_STORAGE_F16), DSD_ERR_NAN,
                        "'blocks.0.dsc.2.pointwise.weight' element 5 is -inf");
    size_t n1;
    unsigned char *now = tu_read_file(path, &n1);
    ck_assert(n1 == n0 && !memcmp(now, old, n0));
    free(now);
    w[e->offset + 5] = saved;
    w[0] += 1.0f; /* a different file from here on */
    TU_OK(dsd_tensor_upload(ctx, &g.params.values, w, g.params.count));

    /* a directory that does not exist */
    TU_EXPECT_CTX_ERROR(
        dsd_generator_save(ctx, &g, tu_path(tmp_dir, "no-such-dir/g.safetensors"), DSD_STORAGE_F32),
        DSD_ERR_IO, "no-such-dir/g.safetensors");
    ck_assert(!tu_file_exists(tu_path(tmp_dir, "no-such-dir")));

    /* the temporary's name taken by a directory: the write fails before the
     * rename, for root too, and the existing file is left byte for byte */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    TU_EXPECT_CTX_ERROR(dsd_generator_save(ctx, &g, path, DSD_STORAGE_F32), DSD_ERR_IO,
                        "keep.safetensors", "cannot create");
    now = tu_read_file(path, &n1);
    ck_assert(n1 == n0 && !memcmp(now, old, n0));
    free(now);
    ck_assert_int_eq(rmdir(tmp), 0);
    /* and once the way is clear the save replaces it */
    TU_OK(dsd_generator_save(ctx, &g, path, DSD_STORAGE_F32));
    now = tu_read_file(path, &n1);
    ck_assert(n1 == n0 && memcmp(now, old, n0));
    free(now);

    /* bad arguments */
    TU_EXPECT_CTX_ERROR(dsd_generator_save(ctx, &g, path, (dsd_storage)7), DSD_ERR_INVALID_ARGUMENT,
                        "storage 7");
    dsd_generator zero;
    memset(&zero, 0, sizeof zero);
    TU_EXPECT_CTX_ERROR(dsd_generator_save(ctx, &zero, path, DSD_STORAGE_F32),
                        DSD_ERR_INVALID_ARGUMENT, "not initialized");
    TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &zero, path), DSD_ERR_INVALID_ARGUMENT,
                        "not initialized");

    free(old);
    free(w);
    dsd_generator_free(ctx, &g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Checkpoints */

typedef struct train_state {
    dsd_generator g;
    dsd_discriminator d;
    dsd_tensor gm, gv, dm, dv;
    dsd_checkpoint ck;
} train_state;

static void state_make(train_state *s, const dsd_generator_config *gc,
                       const dsd_discriminator_config *dc, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    gen_make(&s->g, gc, seed);
    disc_make(&s->d, dc, seed + 1);
    random_tensor(&s->gm, s->g.params.count, seed + 2, 0);
    random_tensor(&s->gv, s->g.params.count, seed + 3, 1);
    random_tensor(&s->dm, s->d.params.count, seed + 4, 0);
    random_tensor(&s->dv, s->d.params.count, seed + 5, 1);
    s->ck.g = &s->g;
    s->ck.d = &s->d;
    s->ck.g_m = &s->gm;
    s->ck.g_v = &s->gv;
    s->ck.d_m = &s->dm;
    s->ck.d_v = &s->dv;
}

static void state_free(train_state *s)
{
    dsd_checkpoint_clear(&s->ck);
    dsd_tensor_free(tu_ctx(), &s->gm);
    dsd_tensor_free(tu_ctx(), &s->gv);
    dsd_tensor_free(tu_ctx(), &s->dm);
    dsd_tensor_free(tu_ctx(), &s->dv);
    dsd_generator_free(tu_ctx(), &s->g);
    dsd_discriminator_free(tu_ctx(), &s->d);
}

/* Host copies of the six arenas, to compare before and after. */
typedef struct snapshot {
    float *t[6];
} snapshot;

static snapshot snap(const train_state *s)
{
    snapshot p = {{download(&s->g.params.values), download(&s->d.params.values),
                   download(&s->gm), download(&s->gv), download(&s->dm), download(&s->dv)}};
    return p;
}

static void snap_free(snapshot *p)
{
    for (int i = 0; i < 6; i++)
        free(p->t[i]);
}

static void expect_state(const char *what, const train_state *s, const snapshot *want)
{
    snapshot now = snap(s);
    const dsd_params *tables[6] = {&s->g.params, &s->d.params, &s->g.params,
                                   &s->g.params, &s->d.params, &s->d.params};
    static const char *names[6] = {"G weights", "D weights", "G m", "G v", "D m", "D v"};
    for (int i = 0; i < 6; i++) {
        char label[128];
        snprintf(label, sizeof label, "%s: %s", what, names[i]);
        expect_same_bits(label, tables[i], now.t[i], want->t[i]);
    }
    snap_free(&now);
}

static const char config_yaml[] =
    "# dsdeblur-train\n"
    "data: {train: \"/data/GoPro/train\", crop: 256}\n"
    "optim:\n"
    "  lr: 1.0e-4\t# Adam\n"
    "  betas: [0.5, 0.999]\n"
    "path: 'C:\\runs\\gopro'\n"
    "note: \"d\xc3\xa9" "flou \xe2\x80\x94 \\\"quoted\\\"\"\n";

START_TEST(test_checkpoint_round_trip)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config gc = small_gen();
    dsd_discriminator_config dc = small_disc();
    train_state a, b;
    state_make(&a, &gc, &dc, 100);
    state_make(&b, &gc, &dc, 200);
    a.g.dropout_seed = UINT64_C(0xfedcba9876543210);
    a.ck.step = UINT64_C(12345678901234);
    a.ck.epoch = 17;
    a.ck.g_adam_t = 4242;
    a.ck.d_adam_t = 4243;
    a.ck.n_rng = 4;
    a.ck.rng[0] = 0;
    a.ck.rng[1] = UINT64_MAX;
    a.ck.rng[2] = UINT64_C(0x0123456789abcdef);
    a.ck.rng[3] = UINT64_C(0x8000000000000001);
    a.ck.config_text = config_yaml;
    char path[512];
    snprintf(path, sizeof path, "%s", tu_path(tmp_dir, "ckpt.safetensors"));
    TU_OK(dsd_checkpoint_save(ctx, &a.ck, path));

    snapshot want = snap(&a);
    TU_OK(dsd_checkpoint_load(ctx, &b.ck, path));
    expect_state("checkpoint round trip", &b, &want);
    ck_assert_uint_eq(b.g.dropout_seed, UINT64_C(0xfedcba9876543210));
    ck_assert_uint_eq(b.ck.step, UINT64_C(12345678901234));
    ck_assert_int_eq(b.ck.epoch, 17);
    ck_assert_int_eq(b.ck.g_adam_t, 4242);
    ck_assert_int_eq(b.ck.d_adam_t, 4243);
    ck_assert_int_eq(b.ck.n_rng, 4);
    ck_assert(!memcmp(b.ck.rng, a.ck.rng, 4 * sizeof a.ck.rng[0]));
    ck_assert_str_eq(b.ck.config_text, config_yaml);

    /* what the file holds */
    dsd_error err;
    dsd_safetensors *st;
    TU_OK(dsd_safetensors_open(path, &st, &err));
    ck_assert_uint_eq(dsd_safetensors_count(st), 3 * (a.g.params.n + a.d.params.n));
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format"), "dsdeblur-checkpoint");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "rng"), "0000000000000000 ffffffffffffffff "
                     "0123456789abcdef 8000000000000001");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "step"), "12345678901234");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "generator.dropout_seed"), "fedcba9876543210");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "discriminator.n_layers"), "3");
    const char *names[] = {"generator.head.weight", "discriminator.layers.4.conv.bias",
                           "optim.generator.m.blocks.1.dsc.0.depthwise.weight",
                           "optim.generator.v.tail.bias",
                           "optim.discriminator.m.layers.1.norm.weight",
                           "optim.discriminator.v.layers.0.conv.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const dsd_st_tensor *t = dsd_safetensors_find(st, names[i]);
        ck_assert_msg(t && t->dtype == DSD_ST_F32, "checkpoint tensor '%s'", names[i]);
    }
    const dsd_st_tensor *t = dsd_safetensors_find(st, "optim.generator.m.head.weight");
    ck_assert(t && t->ndim == 4 && t->shape[0] == 8 && t->shape[3] == 7);
    /* each name holds its own arena (a round trip alone would not see two
     * arenas swapped on both sides) */
    {
        static const char *prefix[6] = {"generator.", "discriminator.", "optim.generator.m.",
                                        "optim.generator.v.", "optim.discriminator.m.",
                                        "optim.discriminator.v."};
        const dsd_params *tables[6] = {&a.g.params, &a.d.params, &a.g.params,
                                       &a.g.params, &a.d.params, &a.d.params};
        for (int i = 0; i < 6; i++) {
            float *v = malloc(tables[i]->count * sizeof *v);
            ck_assert(v);
            for (size_t k = 0; k < tables[i]->n; k++) {
                const dsd_param_info *e = &tables[i]->info[k];
                char name[160];
                int64_t shape[4];
                for (int d = 0; d < e->ndim; d++)
                    shape[d] = e->shape[d];
                snprintf(name, sizeof name, "%s%s", prefix[i], e->name);
                TU_OK(dsd_safetensors_read_f32(st, name, e->ndim, shape, v + e->offset, &err));
            }
            expect_same_bits(prefix[i], tables[i], v, want.t[i]);
            free(v);
        }
    }
    dsd_safetensors_close(st);

    /* the generator config reads from a checkpoint too */
    dsd_generator_config rc;
    TU_OK(dsd_generator_file_config(path, &rc, &err));
    ck_assert(!memcmp(&rc, &gc, sizeof rc));
    dsd_discriminator_config rd;
    TU_OK(dsd_discriminator_file_config(path, &rd, &err));
    ck_assert(!memcmp(&rd, &dc, sizeof rd));

    /* no RNG words and no text; a second load frees the first's text */
    a.ck.n_rng = 0;
    a.ck.config_text = NULL;
    TU_OK(dsd_checkpoint_save(ctx, &a.ck, tu_path(tmp_dir, "ckpt0.safetensors")));
    TU_OK(dsd_checkpoint_load(ctx, &b.ck, tu_path(tmp_dir, "ckpt0.safetensors")));
    ck_assert_int_eq(b.ck.n_rng, 0);
    ck_assert_str_eq(b.ck.config_text, "");
    dsd_checkpoint_clear(&b.ck);
    ck_assert_ptr_null(b.ck.config_text);
    dsd_checkpoint_clear(&b.ck); /* twice is fine */

    snap_free(&want);
    state_free(&a);
    state_free(&b);
}
END_TEST

START_TEST(test_checkpoint_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config gc = small_gen();
    dsd_discriminator_config dc = small_disc();
    train_state src, s;
    state_make(&src, &gc, &dc, 300);
    state_make(&s, &gc, &dc, 400);
    src.ck.n_rng = 2;
    src.ck.rng[0] = 1;
    src.ck.rng[1] = 2;
    src.ck.config_text = "x: 1\n";
    s.ck.step = 99;
    s.ck.config_text = "mine";
    char good[512];
    snprintf(good, sizeof good, "%s", tu_path(tmp_dir, "ck-good.safetensors"));
    TU_OK(dsd_checkpoint_save(ctx, &src.ck, good));
    snapshot before = snap(&s);
#define CK_LOAD_FAILS(file, status, ...)                                                           \
    do {                                                                                           \
        TU_EXPECT_CTX_ERROR(dsd_checkpoint_load(ctx, &s.ck, (file)), (status), __VA_ARGS__);       \
        expect_state((file), &s, &before);                                                         \
        ck_assert_uint_eq(s.ck.step, 99);                                                          \
        ck_assert_str_eq(s.ck.config_text, "mine");                                                \
    } while (0)

    /* a generator file where a checkpoint is expected, and the reverse */
    TU_OK(dsd_generator_save(ctx, &src.g, tu_path(tmp_dir, "ck-g.safetensors"), DSD_STORAGE_F32));
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-g.safetensors"), DSD_ERR_FORMAT,
                  "ck-g.safetensors: a generator weight file, not a training checkpoint",
                  "'format' is 'dsdeblur-generator', expected 'dsdeblur-checkpoint'",
                  "`dsdeblur-run -m FILE`", "resumes only from a checkpoint");
    float *gw = download(&s.g.params.values);
    TU_EXPECT_CTX_ERROR(dsd_generator_load(ctx, &s.g, good), DSD_ERR_FORMAT, "ck-good.safetensors",
                        "a training checkpoint, not a generator weight file",
                        "'format' is 'dsdeblur-checkpoint', expected 'dsdeblur-generator'",
                        "--resume FILE", "--export OUT.safetensors");
    expect_unchanged("checkpoint as generator", &s.g.params, &s.g.params.values, gw);
    free(gw);
    /* a missing moment */
    rewrite(good, tu_path(tmp_dir, "ck-missing.safetensors"),
            &(edit){.drop_tensor = "optim.discriminator.v.layers.3.norm.bias"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-missing.safetensors"), DSD_ERR_FORMAT,
                  "missing tensor 'optim.discriminator.v.layers.3.norm.bias'");
    /* an unknown tensor */
    rewrite(good, tu_path(tmp_dir, "ck-extra.safetensors"),
            &(edit){.extra_tensor = "optim.ema.head.weight"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-extra.safetensors"), DSD_ERR_FORMAT,
                  "unexpected tensor 'optim.ema.head.weight'");
    /* F16 inside a checkpoint */
    rewrite(good, tu_path(tmp_dir, "ck-f16.safetensors"),
            &(edit){.f16_tensor = "optim.generator.m.up.1.bias"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-f16.safetensors"), DSD_ERR_FORMAT,
                  "tensor 'optim.generator.m.up.1.bias' is F16; expected F32");
    /* a NaN moment in the file */
    rewrite(good, tu_path(tmp_dir, "ck-nan.safetensors"),
            &(edit){.nan_tensor = "optim.generator.v.head.bias"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-nan.safetensors"), DSD_ERR_NAN,
                  "tensor 'optim.generator.v.head.bias' element 1 is nan");
    /* garbled counters and RNG words */
    rewrite(good, tu_path(tmp_dir, "ck-rng.safetensors"),
            &(edit){.meta_key = "rng", .meta_value = "0000000000000001 00000000000002"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-rng.safetensors"), DSD_ERR_FORMAT, "'rng' word 1");
    rewrite(good, tu_path(tmp_dir, "ck-rng2.safetensors"),
            &(edit){.meta_key = "rng", .meta_value = "0000000000000001 "});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-rng2.safetensors"), DSD_ERR_FORMAT, "'rng' word 0");
    rewrite(good, tu_path(tmp_dir, "ck-step.safetensors"),
            &(edit){.meta_key = "step", .meta_value = "-1"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-step.safetensors"), DSD_ERR_FORMAT, "'step' is '-1'");
    rewrite(good, tu_path(tmp_dir, "ck-epoch.safetensors"),
            &(edit){.meta_key = "epoch", .meta_value = "99999999999"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-epoch.safetensors"), DSD_ERR_FORMAT,
                  "'epoch' is '99999999999'");
    rewrite(good, tu_path(tmp_dir, "ck-text.safetensors"), &(edit){.drop_meta = "config"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-text.safetensors"), DSD_ERR_FORMAT,
                  "metadata has no 'config'");
    rewrite(good, tu_path(tmp_dir, "ck-seed.safetensors"),
            &(edit){.meta_key = "generator.dropout_seed", .meta_value = "12345"});
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-seed.safetensors"), DSD_ERR_FORMAT,
                  "'generator.dropout_seed'");
    /* truncated */
    {
        size_t n;
        unsigned char *b = tu_read_file(good, &n);
        tu_write_file(tu_path(tmp_dir, "ck-trunc.safetensors"), b, n / 2);
        free(b);
    }
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-trunc.safetensors"), DSD_ERR_FORMAT, "ck-trunc.safetensors");

    /* a differently configured discriminator */
    {
        train_state o;
        dsd_discriminator_config dc2 = dc;
        dc2.n_layers = 2;
        state_make(&o, &gc, &dc2, 500);
        TU_OK(dsd_checkpoint_save(ctx, &o.ck, tu_path(tmp_dir, "ck-d2.safetensors")));
        state_free(&o);
    }
    CK_LOAD_FAILS(tu_path(tmp_dir, "ck-d2.safetensors"), DSD_ERR_INVALID_ARGUMENT,
                  "ck-d2.safetensors was saved with discriminator n_layers 2, this model has 3");
    /* moments that are not the network's size */
    {
        dsd_tensor small;
        random_tensor(&small, 100, 9, 0);
        dsd_tensor *keep = s.ck.d_v;
        s.ck.d_v = &small;
        TU_EXPECT_CTX_ERROR(dsd_checkpoint_load(ctx, &s.ck, good), DSD_ERR_SHAPE,
                            "d_v holds 100 floats");
        TU_EXPECT_CTX_ERROR(dsd_checkpoint_save(ctx, &s.ck, tu_path(tmp_dir, "ck-x.safetensors")),
                            DSD_ERR_SHAPE, "d_v holds 100 floats");
        s.ck.d_v = keep;
        dsd_tensor_free(ctx, &small);
        ck_assert(!tu_file_exists(tu_path(tmp_dir, "ck-x.safetensors")));
    }

    /* refusals at save: a NaN moment, bad counters; the old file stays */
    size_t n0, n1;
    unsigned char *old = tu_read_file(good, &n0);
    float *v = download(&src.dv);
    const dsd_param_info *e = dsd_params_find(&src.d.params, "layers.1.conv.weight");
    v[e->offset + 3] = INFINITY;
    TU_OK(dsd_tensor_upload(ctx, &src.dv, v, src.d.params.count));
    TU_EXPECT_CTX_ERROR(dsd_checkpoint_save(ctx, &src.ck, good), DSD_ERR_NAN, "ck-good.safetensors",
                        "tensor 'optim.discriminator.v.layers.1.conv.weight' element 3 is inf");
    free(v);
    src.ck.n_rng = DSD_CHECKPOINT_RNG_MAX + 1;
    TU_EXPECT_CTX_ERROR(dsd_checkpoint_save(ctx, &src.ck, good), DSD_ERR_INVALID_ARGUMENT, "n_rng");
    src.ck.n_rng = 2;
    src.ck.epoch = -1;
    TU_EXPECT_CTX_ERROR(dsd_checkpoint_save(ctx, &src.ck, good), DSD_ERR_INVALID_ARGUMENT,
                        "epoch -1");
    src.ck.epoch = 0;
    src.ck.g_m = NULL;
    TU_EXPECT_CTX_ERROR(dsd_checkpoint_save(ctx, &src.ck, good), DSD_ERR_INVALID_ARGUMENT,
                        "all four Adam moment tensors");
    src.ck.g_m = &src.gm;
    unsigned char *now = tu_read_file(good, &n1);
    ck_assert(n1 == n0 && !memcmp(now, old, n0));
    free(now);
    free(old);
#undef CK_LOAD_FAILS
    snap_free(&before);
    state_free(&src);
    state_free(&s);
}
END_TEST

/* ------------------------------------------------------------------------ */

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "model-file") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("model-file");
    TCase *tc = tcase_create("model-file");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_generator_round_trip);
    tcase_add_test(tc, test_generator_f16);
    tcase_add_test(tc, test_discriminator_round_trip);
    tcase_add_test(tc, test_generator_malformed);
    tcase_add_test(tc, test_generator_config_mismatch);
    tcase_add_test(tc, test_file_config_errors);
    tcase_add_test(tc, test_save_refusals);
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_checkpoint_errors);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* frees the context */
    tu_rmtree(tmp_dir);
    return status;
}
