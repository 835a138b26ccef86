/*
 * test-safetensors.c: the safetensors reader and writer (src/io/safetensors.c),
 * host-only: no OpenCL context is created. Covers the half-precision
 * converters against known bit patterns and exhaustive round trips, writer ->
 * reader round trips on odd shapes in F32 and F16, JSON escaping of names and
 * metadata, files written byte by byte from the format description (so the
 * reader is checked against the spec, not only against our writer), a table
 * of malformed files each with the error text it must produce, read_f32's
 * shape and name checks, and atomic saving (failures leave no temporary and
 * no damaged file). Files live in a mkdtemp directory removed at the end.
 */
#include "testutil.h"

#include "io/safetensors.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[64];

/* A file built by hand: u64 little-endian `declared` (or the header's length
 * when declared < 0), the header text, then data_size bytes of data (zeros
 * when data is NULL). */
static void write_handmade(const char *path, const char *header, long long declared,
                           const unsigned char *data, size_t data_size)
{
    size_t hlen = strlen(header);
    unsigned long long n = declared < 0 ? hlen : (unsigned long long)declared;
    size_t total = 8 + hlen + data_size;
    unsigned char *buf = calloc(total, 1);
    ck_assert(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (data)
        memcpy(buf + 8 + hlen, data, data_size);
    tu_write_file(path, buf, total);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Half precision */

START_TEST(test_f16_known_values)
{
    static const struct {
        float f;
        uint16_t h;
    } exact[] = {
        {1.0f, 0x3c00},        {-2.0f, 0xc000},     {0.5f, 0x3800},
        {65504.0f, 0x7bff},    {-65504.0f, 0xfbff}, {0x1p-24f, 0x0001},
        {0x1p-14f, 0x0400},    {1023 * 0x1p-24f, 0x03ff}, {0.0f, 0x0000},
        {-0.0f, 0x8000},       {INFINITY, 0x7c00},  {-INFINITY, 0xfc00},
        {0.333251953125f, 0x3555},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        ck_assert_msg(dsd_st_f32_to_f16(exact[i].f) == exact[i].h, "%a -> 0x%04x, want 0x%04x",
                      (double)exact[i].f, dsd_st_f32_to_f16(exact[i].f), exact[i].h);
        float back = dsd_st_f16_to_f32(exact[i].h);
        ck_assert_msg(back == exact[i].f && signbit(back) == signbit(exact[i].f),
                      "0x%04x -> %a, want %a", exact[i].h, (double)back, (double)exact[i].f);
    }
    /* rounding */
    static const struct {
        float f;
        uint16_t h;
    } rounded[] = {
        {65519.0f, 0x7bff},             /* below the midpoint to 65536 */
        {65520.0f, 0x7c00},             /* the midpoint: ties to even = inf */
        {1e10f, 0x7c00},                /* overflow */
        {1.0f + 0x1p-11f, 0x3c00},      /* tie between 0x3c00 and 0x3c01: even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},  /* tie between 0x3c01 and 0x3c02: even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},
        {0x1p-25f, 0x0000},             /* tie between 0 and the smallest subnormal */
        {0x1.8p-25f, 0x0001},
        {0x1p-26f, 0x0000},
        {-0x1p-30f, 0x8000},            /* underflow keeps the sign */
        {0x1.ffcp-15f, 0x0400},         /* largest subnormal rounds up into normals */
        {0.1f, 0x2e66},
        {-3.14159265f, 0xc248},
    };
    for (size_t i = 0; i < sizeof rounded / sizeof rounded[0]; i++)
        ck_assert_msg(dsd_st_f32_to_f16(rounded[i].f) == rounded[i].h,
                      "%a -> 0x%04x, want 0x%04x", (double)rounded[i].f,
                      dsd_st_f32_to_f16(rounded[i].f), rounded[i].h);
    /* NaN both ways, sign kept */
    ck_assert(isnan(dsd_st_f16_to_f32(0x7e00)));
    ck_assert(isnan(dsd_st_f16_to_f32(0x7c01)));
    ck_assert(signbit(dsd_st_f16_to_f32(0xfe00)));
    uint16_t hn = dsd_st_f32_to_f16(NAN);
    ck_assert_msg((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "NaN -> 0x%04x", hn);
    ck_assert(dsd_st_f32_to_f16(-NAN) & 0x8000);
    /* a NaN whose payload lives only in the low float bits stays NaN */
    uint32_t low_payload = 0x7f800001u;
    float nan_low;
    memcpy(&nan_low, &low_payload, sizeof nan_low);
    ck_assert((dsd_st_f32_to_f16(nan_low) & 0x3ff) != 0);
    /* bfloat16 */
    ck_assert(dsd_st_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(dsd_st_bf16_to_f32(0xc000) == -2.0f);
    ck_assert(isinf(dsd_st_bf16_to_f32(0x7f80)));
    ck_assert(isnan(dsd_st_bf16_to_f32(0x7fc0)));
}
END_TEST

/* Every half value survives half -> float -> half; every midpoint between two
 * neighbouring finite halves rounds to the even one; random floats round to
 * a nearest half (checked against both neighbours in double precision). */
START_TEST(test_f16_exhaustive)
{
    for (uint32_t h = 0; h <= 0xffff; h++) {
        float f = dsd_st_f16_to_f32((uint16_t)h);
        uint16_t back = dsd_st_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            ck_assert_msg(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff) &&
                          (back & 0x8000) == (h & 0x8000), "NaN 0x%04x -> 0x%04x", h, back);
            continue;
        }
        ck_assert_msg(back == h, "0x%04x -> %a -> 0x%04x", h, (double)f, back);
    }
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = dsd_st_f16_to_f32((uint16_t)h), hi = dsd_st_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact: 12 significant bits */
        uint16_t want = (uint16_t)((h & 1) ? h + 1 : h);
        ck_assert_msg(dsd_st_f32_to_f16(mid) == want && dsd_st_f32_to_f16(-mid) == (want | 0x8000),
                      "midpoint %a -> 0x%04x, want 0x%04x", (double)mid, dsd_st_f32_to_f16(mid),
                      want);
    }
    tu_rng r = tu_rng_init(0x5eed);
    for (int i = 0; i < 200000; i++) {
        float x = (float)ldexp(tu_uniform(&r, 1.0, 2.0), (int)tu_uniform(&r, -27.0, 16.0));
        uint16_t h = dsd_st_f32_to_f16(x);
        if (x >= 65520.0f) { /* past the midpoint between 65504 and 65536 */
            ck_assert_msg(h == 0x7c00, "%a -> 0x%04x, want inf", (double)x, h);
            continue;
        }
        double err = fabs((double)dsd_st_f16_to_f32(h) - x);
        double below = h > 0 ? fabs((double)dsd_st_f16_to_f32((uint16_t)(h - 1)) - x) : INFINITY;
        double above = h < 0x7bff ? fabs((double)dsd_st_f16_to_f32((uint16_t)(h + 1)) - x)
                                  : INFINITY;
        ck_assert_msg(h <= 0x7bff && err <= below && err <= above,
                      "%a -> 0x%04x (error %g, neighbours %g %g)", (double)x, h, err, below, above);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Round trips through the writer */

static const struct {
    const char *name;
    int ndim;
    int64_t shape[4];
} rt_tensors[] = {
    /* added out of name order on purpose */
    {"scalar", 0, {0}},
    {"enc.conv1.weight", 3, {3, 5, 7}},
    {"zero.sized", 3, {2, 0, 3}},
    {"bias", 1, {1}},
    {"dec.w", 4, {17, 3, 1, 1}},
};
enum { N_RT = sizeof rt_tensors / sizeof rt_tensors[0] };

static size_t numel_of(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

START_TEST(test_round_trip)
{
    int store_f16 = _i;
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, store_f16 ? "rt16.safetensors" : "rt32.safetensors");
    tu_rng r = tu_rng_init(17 + (uint64_t)_i);
    float *data[N_RT];
    dsd_safetensors_writer *w;
    TU_HOST_OK(dsd_safetensors_writer_init(&w, &err), err);
    for (int i = 0; i < N_RT; i++) {
        size_t n = numel_of(rt_tensors[i].ndim, rt_tensors[i].shape);
        data[i] = malloc((n ? n : 1) * sizeof(float));
        ck_assert(data[i]);
        for (size_t j = 0; j < n; j++)
            data[i][j] = (float)tu_uniform(&r, -10.0, 10.0);
        if (n > 2) { /* values at the edges of half precision */
            data[i][0] = 3e-6f;
            data[i][1] = -60000.0f;
        }
        TU_HOST_OK(dsd_safetensors_writer_add_f32(w, rt_tensors[i].name, rt_tensors[i].ndim,
                                                  rt_tensors[i].ndim ? rt_tensors[i].shape : NULL,
                                                  data[i], store_f16, &err),
                   err);
    }
    TU_HOST_OK(dsd_safetensors_writer_set_metadata(w, "format", "pt", &err), err);
    TU_HOST_OK(dsd_safetensors_writer_set_metadata(w, "step", "1", &err), err);
    TU_HOST_OK(dsd_safetensors_writer_set_metadata(w, "step", "1200", &err), err); /* replaces */
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err);
    dsd_safetensors_writer_free(w);

    /* the raw layout: header padded to 8 with spaces, data right after */
    size_t size;
    unsigned char *raw = tu_read_file(path, &size);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)raw[i] << (8 * i);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert(hlen <= size - 8);
    ck_assert_msg(raw[8] == '{', "header starts with '%c'", raw[8]);
    size_t last = 8 + (size_t)hlen - 1;
    while (raw[last] == ' ')
        last--;
    ck_assert_msg(raw[last] == '}', "header ends with '%c'", raw[last]);

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(st), N_RT);
    ck_assert_ptr_null(dsd_safetensors_tensor(st, N_RT));
    /* index order is name order, and offsets are consecutive in that order */
    uint64_t offset = 0;
    for (size_t i = 0; i < N_RT; i++) {
        const dsd_st_tensor *t = dsd_safetensors_tensor(st, i);
        if (i > 0)
            ck_assert_msg(strcmp(dsd_safetensors_tensor(st, i - 1)->name, t->name) < 0,
                          "'%s' before '%s'", dsd_safetensors_tensor(st, i - 1)->name, t->name);
        ck_assert_uint_eq(t->offset, offset);
        offset += t->nbytes;
    }
    ck_assert_uint_eq(size, 8 + hlen + offset);

    for (int i = 0; i < N_RT; i++) {
        const dsd_st_tensor *t = dsd_safetensors_find(st, rt_tensors[i].name);
        ck_assert_msg(t, "'%s' not found", rt_tensors[i].name);
        ck_assert_str_eq(t->name, rt_tensors[i].name);
        ck_assert_int_eq(t->dtype, store_f16 ? DSD_ST_F16 : DSD_ST_F32);
        ck_assert_int_eq(t->ndim, rt_tensors[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_int_eq(t->shape[d], rt_tensors[i].shape[d]);
        size_t n = numel_of(rt_tensors[i].ndim, rt_tensors[i].shape);
        ck_assert_uint_eq(t->numel, n);
        ck_assert_uint_eq(t->nbytes, n * (store_f16 ? 2 : 4));
        float *got = malloc((n ? n : 1) * sizeof(float));
        ck_assert(got);
        TU_HOST_OK(dsd_safetensors_read_f32(st, rt_tensors[i].name, rt_tensors[i].ndim,
                                            rt_tensors[i].shape, got, &err),
                   err);
        for (size_t j = 0; j < n; j++) {
            float x = data[i][j];
            if (!store_f16) {
                ck_assert_msg(got[j] == x, "'%s'[%zu]: %a != %a", t->name, j, (double)got[j],
                              (double)x);
                continue;
            }
            /* half keeps 11 significant bits; below 2^-14 steps are 2^-24 */
            double tol = fmax(fabs(x) * 0x1p-11, 0x1p-25);
            ck_assert_msg(fabs((double)got[j] - x) <= tol && got[j] ==
                          dsd_st_f16_to_f32(dsd_st_f32_to_f16(x)),
                          "'%s'[%zu]: %a vs %a", t->name, j, (double)got[j], (double)x);
        }
        free(got);
        free(data[i]);
    }
    ck_assert_ptr_null(dsd_safetensors_find(st, "missing"));
    ck_assert_uint_eq(dsd_safetensors_metadata_count(st), 2);
    ck_assert_str_eq(dsd_safetensors_metadata_key(st, 0), "format");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format"), "pt");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "step"), "1200");
    ck_assert_ptr_null(dsd_safetensors_metadata(st, "epoch"));
    dsd_safetensors_close(st);
    free(raw);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* Names and metadata that need JSON escaping, or that libyaml would fold if
 * written raw, come back byte for byte; the writer refuses what it cannot
 * write. */
START_TEST(test_escaping_and_names)
{
    static const char *const names[] = {
        "quote\"inside",
        "back\\slash\\",
        "ctrl\x01\x1f\x7f",
        "line\nbreak\ttab\r",
        "nel\xc2\x85 and sep\xe2\x80\xa8 bom\xef\xbb\xbf",
        "unicode \xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80",
        "{\"fake\":[0,8]}, :# &a *a !tag",
        "__metadata__x",
    };
    enum { N = sizeof names / sizeof names[0] };
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "escape.safetensors");
    dsd_safetensors_writer *w;
    TU_HOST_OK(dsd_safetensors_writer_init(&w, &err), err);
    for (int i = 0; i < N; i++) {
        float v[2] = {(float)i, -(float)i};
        int64_t shape[1] = {2};
        TU_HOST_OK(dsd_safetensors_writer_add_f32(w, names[i], 1, shape, v, 0, &err), err);
    }
    /* the longest name libyaml can read back: 1022 characters + 2 quotes */
    char *long_name = malloc(1100);
    ck_assert(long_name);
    memset(long_name, 'n', 1022);
    long_name[1022] = '\0';
    float one = 1.0f;
    TU_HOST_OK(dsd_safetensors_writer_add_f32(w, long_name, 0, NULL, &one, 1, &err), err);
    char *long_value = malloc(5001);
    ck_assert(long_value);
    memset(long_value, 'v', 5000);
    long_value[5000] = '\0';
    TU_HOST_OK(dsd_safetensors_writer_set_metadata(w, "k\"e\\y", "va\"l\\ue\n\x01", &err), err);
    TU_HOST_OK(dsd_safetensors_writer_set_metadata(w, "long", long_value, &err), err);

    /* refusals */
    int64_t bad_shape[1] = {-1};
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, "", 0, NULL, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "empty");
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, "__metadata__", 0, NULL, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "reserved");
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, names[0], 0, NULL, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "already added");
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, "bad\xff", 0, NULL, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "UTF-8");
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, "neg", 1, bad_shape, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "'neg'", "-1");
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, "deep", 9, bad_shape, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "ndim 9");
    long_name[1022] = 'n';
    long_name[1023] = '\0';
    TU_EXPECT_ERROR(dsd_safetensors_writer_add_f32(w, long_name, 0, NULL, &one, 0, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "too long", "1025");
    long_name[1022] = '\0';
    TU_EXPECT_ERROR(dsd_safetensors_writer_set_metadata(w, "k", "\xc0\x80", &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "UTF-8");
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err);
    dsd_safetensors_writer_free(w);

    /* the header is JSON: escapes, not raw control characters */
    size_t size;
    unsigned char *raw = tu_read_file(path, &size);
    ck_assert(strstr((char *)raw + 8, "\"quote\\\"inside\""));
    ck_assert(strstr((char *)raw + 8, "\"back\\\\slash\\\\\""));
    ck_assert(strstr((char *)raw + 8, "ctrl\\u0001\\u001f\\u007f"));
    ck_assert(strstr((char *)raw + 8, "nel\\u0085 and sep\\u2028 bom\\ufeff"));
    free(raw);

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(st), N + 1);
    for (int i = 0; i < N; i++) {
        const dsd_st_tensor *t = dsd_safetensors_find(st, names[i]);
        ck_assert_msg(t, "name %d not found", i);
        float v[2];
        int64_t shape[1] = {2};
        TU_HOST_OK(dsd_safetensors_read_f32(st, names[i], 1, shape, v, &err), err);
        ck_assert(v[0] == (float)i && v[1] == -(float)i);
    }
    ck_assert(dsd_safetensors_find(st, long_name));
    for (size_t i = 1; i < dsd_safetensors_count(st); i++)
        ck_assert(strcmp(dsd_safetensors_tensor(st, i - 1)->name,
                         dsd_safetensors_tensor(st, i)->name) < 0);
    ck_assert_str_eq(dsd_safetensors_metadata(st, "k\"e\\y"), "va\"l\\ue\n\x01");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "long"), long_value);
    dsd_safetensors_close(st);
    free(long_name);
    free(long_value);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Files written byte by byte from the format description */

START_TEST(test_read_handmade_minimal)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "hand1.safetensors");
    const char *header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"__metadata__\":{\"format\":\"pt\"}}";
    /* 1.0f and -2.0f, little-endian */
    static const unsigned char data[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    write_handmade(path, header, -1, data, sizeof data);

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(st), 1);
    const dsd_st_tensor *t = dsd_safetensors_find(st, "b");
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_eq(t, dsd_safetensors_tensor(st, 0));
    ck_assert_int_eq(t->dtype, DSD_ST_F32);
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_uint_eq(t->nbytes, 8);
    ck_assert_uint_eq(t->offset, 0);
    float v[2];
    int64_t shape[1] = {2};
    TU_HOST_OK(dsd_safetensors_read_f32(st, "b", 1, shape, v, &err), err);
    ck_assert(v[0] == 1.0f && v[1] == -2.0f);
    ck_assert_uint_eq(dsd_safetensors_metadata_count(st), 1);
    ck_assert_str_eq(dsd_safetensors_metadata(st, "format"), "pt");
    ck_assert_ptr_null(dsd_safetensors_metadata(st, "pt"));
    dsd_safetensors_close(st);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* Pretty-printed JSON (as Python's json.dumps(indent=2) writes it) padded
 * with spaces, entries out of order, F16/BF16/I64 data, an empty tensor, a
 * gap in the data section, escapes in metadata. */
START_TEST(test_read_handmade_mixed)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "hand2.safetensors");
    const char *header =
        "{\n"
        "  \"z.half\": {\n"
        "    \"dtype\": \"F16\",\n"
        "    \"shape\": [2, 3],\n"
        "    \"data_offsets\": [16, 28]\n"
        "  },\n"
        "  \"a.bf16\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [0, 4]},\n"
        "  \"m.int\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [4, 12]},\n"
        "  \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [12, 12]},\n"
        "  \"__metadata__\": {\"k\\\"q\": \"v\\\\w\", \"accent\": \"\\u00e9t\\u00e9\\/\"}\n"
        "}      ";
    static const unsigned char data[28] = {
        0x80, 0x3f, 0xc0, 0x7f,                         /* BF16 1.0, NaN */
        42, 0, 0, 0, 0, 0, 0, 0,                        /* I64 42 */
        0xee, 0xee, 0xee, 0xee,                         /* gap: no tensor */
        0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c,             /* F16 1, 2^-24, inf */
        0x00, 0xfc, 0xff, 0x7b, 0x00, 0x80,             /* F16 -inf, 65504, -0 */
    };
    write_handmade(path, header, -1, data, sizeof data);

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(st), 4);
    static const char *const order[] = {"a.bf16", "empty", "m.int", "z.half"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(dsd_safetensors_tensor(st, i)->name, order[i]);

    float h[6];
    int64_t hs[2] = {2, 3};
    TU_HOST_OK(dsd_safetensors_read_f32(st, "z.half", 2, hs, h, &err), err);
    ck_assert(h[0] == 1.0f && h[1] == 0x1p-24f && isinf(h[2]) && h[2] > 0);
    ck_assert(isinf(h[3]) && h[3] < 0 && h[4] == 65504.0f && h[5] == 0.0f && signbit(h[5]));

    float b[2];
    int64_t bs[1] = {2};
    TU_HOST_OK(dsd_safetensors_read_f32(st, "a.bf16", 1, bs, b, &err), err);
    ck_assert(b[0] == 1.0f && isnan(b[1]));

    const dsd_st_tensor *m = dsd_safetensors_find(st, "m.int");
    ck_assert_int_eq(m->dtype, DSD_ST_I64);
    ck_assert_int_eq(m->ndim, 0);
    ck_assert_uint_eq(m->numel, 1);
    ck_assert_int_eq(((const unsigned char *)m->data)[0], 42);
    float dummy;
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "m.int", 0, NULL, &dummy, &err), DSD_ERR_FORMAT,
                    err, "hand2.safetensors", "'m.int'", "I64");

    int64_t es[2] = {0, 5};
    TU_HOST_OK(dsd_safetensors_read_f32(st, "empty", 2, es, NULL, &err), err);
    ck_assert_uint_eq(dsd_safetensors_find(st, "empty")->nbytes, 0);

    ck_assert_str_eq(dsd_safetensors_metadata(st, "k\"q"), "v\\w");
    ck_assert_str_eq(dsd_safetensors_metadata(st, "accent"), "\xc3\xa9t\xc3\xa9/");
    dsd_safetensors_close(st);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Malformed files: each must fail with DSD_ERR_FORMAT and say why */

#define ENTRY(name, dtype, shape, offsets) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static const struct bad_file {
    const char *label;
    const char *header;      /* NULL: the file is raw[0..raw_len) */
    long long declared;      /* header length to write, -1 for the real one */
    size_t data_size;
    const char *raw;
    size_t raw_len;
    const char *want[3];     /* substrings of the message */
} bad_files[] = {
    {"empty file", NULL, 0, 0, "", 0, {"0 bytes, shorter than the 8-byte"}},
    {"5-byte file", NULL, 0, 0, "\x10\x00\x00\x00\x00", 5, {"5 bytes, shorter than the 8-byte"}},
    {"header length past the end", "{}", 1000, 0, NULL, 0,
     {"header length 1000 is larger than the 2 bytes"}},
    {"absurd header length", "{}", 1LL << 40, 0, NULL, 0, {"exceeds the 100000000-byte limit"}},
    {"truncated JSON", "{\"a\":{\"dtype\":\"F32\",", -1, 0, NULL, 0,
     {"header is not valid JSON", "line"}},
    {"control bytes", "PK\x03\x04", -1, 0, NULL, 0, {"header is not valid JSON", "byte 2"}},
    {"invalid UTF-8", "{\"\xff\":{}}", -1, 0, NULL, 0, {"header is not valid JSON", "UTF-8"}},
    {"blank header", "        ", -1, 0, NULL, 0, {"header is empty"}},
    {"top level an array", "[1,2]", -1, 0, NULL, 0, {"must be a JSON object", "found an array"}},
    {"top level a number", "42", -1, 0, NULL, 0, {"must be a JSON object", "found 42"}},
    {"YAML block mapping", "a: 1\nb: 2", -1, 0, NULL, 0, {"not JSON", "block mapping"}},
    {"single-quoted key", "{'a': {}}", -1, 0, NULL, 0, {"not JSON", "single-quoted"}},
    {"YAML alias", "{\"a\":&x {\"dtype\":\"F32\"},\"b\":*x}", -1, 0, NULL, 0,
     {"not JSON", "anchor or tag"}},
    {"two documents", "{}\n---\n{}", -1, 0, NULL, 0, {"not JSON", "document marker"}},
    {"entry not an object", "{\"w\":[1]}", -1, 0, NULL, 0,
     {"tensor 'w'", "expected an object", "found an array"}},
    {"missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, NULL, 0,
     {"tensor 'w'", "missing \"dtype\""}},
    {"missing data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", -1, 8, NULL, 0,
     {"tensor 'w'", "missing \"data_offsets\""}},
    {"unknown dtype", "{" ENTRY("w", "Q4_K", "[2]", "[0,8]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "unknown dtype 'Q4_K'"}},
    {"dtype not a string", "{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8,
     NULL, 0, {"tensor 'w'", "dtype must be a string, found 32"}},
    {"negative dimension", "{" ENTRY("w", "F32", "[2,-3]", "[0,8]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "shape[1] is -3, not a non-negative integer"}},
    {"fractional dimension", "{" ENTRY("w", "F32", "[2.5]", "[0,8]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "shape[0] is 2.5, not a non-negative integer"}},
    {"quoted dimension", "{" ENTRY("w", "F32", "[\"2\"]", "[0,8]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "shape[0] is the string \"2\""}},
    {"leading zero", "{" ENTRY("w", "F32", "[02]", "[0,8]") "}", -1, 8, NULL, 0,
     {"shape[0] is 02, not a non-negative integer"}},
    {"huge dimension", "{" ENTRY("w", "F32", "[99999999999999999999]", "[0,8]") "}", -1, 8,
     NULL, 0, {"tensor 'w'", "shape[0]", "too large"}},
    {"shape not an array", "{" ENTRY("w", "F32", "7", "[0,28]") "}", -1, 28, NULL, 0,
     {"tensor 'w'", "shape must be an array of integers, found 7"}},
    {"nine dimensions", "{" ENTRY("w", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", -1, 4, NULL,
     0, {"tensor 'w'", "shape has more than 8 entries"}},
    {"data_offsets out of bounds", "{" ENTRY("w", "F32", "[2]", "[8,16]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "[8, 16] run past the end of the data section (8 bytes)"}},
    {"begin > end", "{" ENTRY("w", "F32", "[2]", "[8,0]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "[8, 0] has begin > end"}},
    {"three offsets", "{" ENTRY("w", "F32", "[2]", "[0,4,8]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "data_offsets has more than 2 entries"}},
    {"one offset", "{" ENTRY("w", "F32", "[2]", "[0]") "}", -1, 8, NULL, 0,
     {"tensor 'w'", "found 1 entries"}},
    {"size mismatch", "{" ENTRY("model.0.weight", "F32", "[64,3,7,7]", "[0,37630]") "}", -1,
     37630, NULL, 0,
     {"tensor 'model.0.weight': shape [64,3,7,7] x F32 needs 37632 bytes but data_offsets "
      "give 37630"}},
    {"overlapping tensors",
     "{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F16", "[4]", "[4,12]") "}", -1, 12,
     NULL, 0, {"tensors 'a' (bytes [0, 8)) and 'b' (bytes [4, 12)) overlap"}},
    {"duplicate names",
     "{" ENTRY("w", "F32", "[1]", "[0,4]") "," ENTRY("w", "F32", "[1]", "[4,8]") "}", -1, 8,
     NULL, 0, {"duplicate tensor name 'w'"}},
    {"empty name", "{" ENTRY("", "F32", "[1]", "[0,4]") "}", -1, 4, NULL, 0,
     {"a tensor has an empty name"}},
    {"unknown field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
     "\"strides\":[1]}}", -1, 4, NULL, 0, {"tensor 'w'", "unknown field 'strides'"}},
    {"repeated field", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
     "\"data_offsets\":[0,4]}}", -1, 4, NULL, 0, {"tensor 'w'", "field 'dtype' appears twice"}},
    {"metadata value not a string", "{\"__metadata__\":{\"step\":3}}", -1, 0, NULL, 0,
     {"__metadata__ 'step' must be a string, found 3"}},
    {"metadata not an object", "{\"__metadata__\":[\"a\"]}", -1, 0, NULL, 0,
     {"__metadata__ must be an object"}},
    {"metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", -1, 0, NULL, 0,
     {"__metadata__ has key 'k' twice"}},
    {"NUL in a name", "{" ENTRY("a\\u0000b", "F32", "[1]", "[0,4]") "}", -1, 4, NULL, 0,
     {"tensor name", "NUL"}},
};
enum { N_BAD = sizeof bad_files / sizeof bad_files[0] };

START_TEST(test_malformed)
{
    const struct bad_file *b = &bad_files[_i];
    dsd_error err;
    char path[256], file[64];
    snprintf(file, sizeof file, "bad%02d.safetensors", _i);
    tu_path_into(path, sizeof path, tmp_dir, file);
    if (b->header)
        write_handmade(path, b->header, b->declared, NULL, b->data_size);
    else
        tu_write_file(path, b->raw, b->raw_len);
    dsd_safetensors *st = (dsd_safetensors *)&err; /* must be reset to NULL */
    dsd_status status = dsd_safetensors_open(path, &st, &err);
    ck_assert_msg(status == DSD_ERR_FORMAT, "%s: got %s (%s)", b->label,
                  dsd_status_name(status), status == DSD_OK ? "opened" : err.message);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err.message, path), "%s: message \"%s\" does not name the file",
                  b->label, err.message);
    for (int k = 0; k < 3 && b->want[k]; k++)
        ck_assert_msg(strstr(err.message, b->want[k]), "%s: message \"%s\" lacks \"%s\"",
                      b->label, err.message, b->want[k]);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

START_TEST(test_open_missing_file)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "does-not-exist.safetensors");
    dsd_safetensors *st;
    TU_EXPECT_ERROR(dsd_safetensors_open(path, &st, &err), DSD_ERR_IO, err, path, "No such file");
    ck_assert_ptr_null(st);
    TU_EXPECT_ERROR(dsd_safetensors_open(tmp_dir, &st, &err), DSD_ERR_IO, err,
                    "not a regular file");
}
END_TEST

/* read_f32 names the tensor and both shapes. */
START_TEST(test_read_f32_errors)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "shapes.safetensors");
    dsd_safetensors_writer *w;
    TU_HOST_OK(dsd_safetensors_writer_init(&w, &err), err);
    float x[15] = {0};
    int64_t shape[2] = {3, 5};
    TU_HOST_OK(dsd_safetensors_writer_add_f32(w, "enc.w", 2, shape, x, 0, &err), err);
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err);
    dsd_safetensors_writer_free(w);

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    float out[16];
    int64_t wrong[2] = {3, 4}, flat[1] = {15};
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 2, wrong, out, &err), DSD_ERR_FORMAT, err,
                    "shapes.safetensors: tensor 'enc.w': expected shape [3,4] but the file has "
                    "[3,5]");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 1, flat, out, &err), DSD_ERR_FORMAT, err,
                    "'enc.w'", "expected shape [15]", "has [3,5]");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 0, NULL, out, &err), DSD_ERR_FORMAT, err,
                    "expected shape []");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.v", 2, shape, out, &err), DSD_ERR_FORMAT, err,
                    "shapes.safetensors", "no tensor 'enc.v'");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 9, shape, out, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "ndim 9");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 2, NULL, out, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "ndim 2");
    TU_EXPECT_ERROR(dsd_safetensors_read_f32(st, "enc.w", 2, shape, NULL, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "out is NULL");
    TU_HOST_OK(dsd_safetensors_read_f32(st, "enc.w", 2, shape, out, &err), err);
    dsd_safetensors_close(st);
    dsd_safetensors_close(NULL);
    dsd_safetensors_writer_free(NULL);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Atomic saving */

static dsd_safetensors_writer *writer_with(const char *name, size_t n, float value)
{
    dsd_error err;
    dsd_safetensors_writer *w;
    TU_HOST_OK(dsd_safetensors_writer_init(&w, &err), err);
    float *x = malloc(n * sizeof *x);
    ck_assert(x);
    for (size_t i = 0; i < n; i++)
        x[i] = value;
    int64_t shape[1] = {(int64_t)n};
    TU_HOST_OK(dsd_safetensors_writer_add_f32(w, name, 1, shape, x, 0, &err), err);
    free(x);
    return w;
}

/* A save replaces the file by rename: a reader holding the old file keeps
 * its contents, the path shows the new ones, and no temporary remains. */
START_TEST(test_save_replaces_atomically)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "replace.safetensors");
    dsd_safetensors_writer *w = writer_with("old", 4, 1.0f);
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err);
    dsd_safetensors_writer_free(w);
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    FILE *old = fopen(path, "rb");
    ck_assert(old);

    w = writer_with("new", 6, 2.0f);
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err);
    TU_HOST_OK(dsd_safetensors_writer_save(w, path, &err), err); /* the writer can save again */
    dsd_safetensors_writer_free(w);
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_msg(before.st_ino != after.st_ino, "file was rewritten in place");

    /* the old open file still reads as the old contents */
    unsigned char first[64];
    size_t got = fread(first, 1, sizeof first, old);
    fclose(old);
    ck_assert(got > 16);
    int found = 0;
    for (size_t i = 0; i + 5 <= got; i++)
        found |= !memcmp(first + i, "\"old\"", 5);
    ck_assert_msg(found, "old handle lost its contents");

    dsd_safetensors *st;
    TU_HOST_OK(dsd_safetensors_open(path, &st, &err), err);
    ck_assert_uint_eq(dsd_safetensors_count(st), 1);
    ck_assert_ptr_nonnull(dsd_safetensors_find(st, "new"));
    ck_assert_ptr_null(dsd_safetensors_find(st, "old"));
    dsd_safetensors_close(st);
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
    ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* Failing saves report DSD_ERR_IO, leave no temporary and leave an existing
 * file byte for byte as it was. */
START_TEST(test_save_failures)
{
    dsd_error err;
    char path[256], dir_path[256], existing[256];
    dsd_safetensors_writer *w = writer_with("w", 16384, 3.0f); /* 64 KiB of data */

    /* a directory that does not exist: the temporary cannot be created */
    tu_path_into(path, sizeof path, tmp_dir, "no-such-dir/model.safetensors");
    TU_EXPECT_ERROR(dsd_safetensors_writer_save(w, path, &err), DSD_ERR_IO, err, path,
                    "No such file");
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);

    /* path is a directory: everything is written, then rename() fails */
    tu_path_into(dir_path, sizeof dir_path, tmp_dir, "a-directory");
    ck_assert_int_eq(mkdir(dir_path, 0700), 0);
    TU_EXPECT_ERROR(dsd_safetensors_writer_save(w, dir_path, &err), DSD_ERR_IO, err, dir_path,
                    "cannot rename");
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
    struct stat sb;
    ck_assert(stat(dir_path, &sb) == 0 && S_ISDIR(sb.st_mode));
    ck_assert_int_eq(rmdir(dir_path), 0);

    /* a write failing half-way (file size limit) over an existing file */
    tu_path_into(existing, sizeof existing, tmp_dir, "existing.safetensors");
    dsd_safetensors_writer *small = writer_with("kept", 3, 5.0f);
    TU_HOST_OK(dsd_safetensors_writer_save(small, existing, &err), err);
    dsd_safetensors_writer_free(small);
    size_t size_before, size_after;
    unsigned char *before = tu_read_file(existing, &size_before);

    struct rlimit saved, limited;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    limited = saved;
    limited.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limited), 0);
    dsd_status status = dsd_safetensors_writer_save(w, existing, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    TU_EXPECT_ERROR(status, DSD_ERR_IO, err, "write failed", "File too large");
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
    unsigned char *after = tu_read_file(existing, &size_after);
    ck_assert_uint_eq(size_after, size_before);
    ck_assert(memcmp(before, after, size_before) == 0);
    free(before);
    free(after);

    dsd_safetensors_writer_free(w);
    ck_assert_int_eq(remove(existing), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "safetensors") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_f16_known_values);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_loop_test(tc, test_round_trip, 0, 2); /* F32, F16 */
    tcase_add_test(tc, test_escaping_and_names);
    tcase_add_test(tc, test_read_handmade_minimal);
    tcase_add_test(tc, test_read_handmade_mixed);
    tcase_add_loop_test(tc, test_malformed, 0, N_BAD);
    tcase_add_test(tc, test_open_missing_file);
    tcase_add_test(tc, test_read_f32_errors);
    tcase_add_test(tc, test_save_replaces_atomically);
    tcase_add_test(tc, test_save_failures);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* no OpenCL context is ever created */
    tu_rmtree(tmp_dir);
    return status;
}
