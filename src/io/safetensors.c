/*
 * safetensors.c: the safetensors reader and writer declared in safetensors.h.
 * Host-only: files are read whole into memory, validated completely, and
 * converted to float on request; the writer builds the header JSON itself and
 * replaces files atomically (temporary + fsync + rename).
 *
 * It does not memory-map files, stream tensors larger than memory, or convert
 * integer dtypes. Reference: the format description in the README of
 * https://github.com/huggingface/safetensors.
 *
 * Sections: dtypes and half-precision conversion; reading the file; parsing
 * the header with libyaml; checks across tensors; lookups; writing.
 */
#include "safetensors.h"
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* Dtypes */

static const struct dtype_info {
    const char *name;
    size_t size;
} dtype_table[] = {
    [DSD_ST_BOOL] = {"BOOL", 1},       [DSD_ST_U8] = {"U8", 1},
    [DSD_ST_I8] = {"I8", 1},           [DSD_ST_F8_E5M2] = {"F8_E5M2", 1},
    [DSD_ST_F8_E4M3] = {"F8_E4M3", 1}, [DSD_ST_I16] = {"I16", 2},
    [DSD_ST_U16] = {"U16", 2},         [DSD_ST_F16] = {"F16", 2},
    [DSD_ST_BF16] = {"BF16", 2},       [DSD_ST_I32] = {"I32", 4},
    [DSD_ST_U32] = {"U32", 4},         [DSD_ST_F32] = {"F32", 4},
    [DSD_ST_F64] = {"F64", 8},         [DSD_ST_I64] = {"I64", 8},
    [DSD_ST_U64] = {"U64", 8},
};
enum { N_DTYPES = (int)(sizeof dtype_table / sizeof dtype_table[0]) };

const char *dsd_st_dtype_name(dsd_st_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_table[dtype].name : "?";
}

size_t dsd_st_dtype_size(dsd_st_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_table[dtype].size : 0;
}

static int dtype_from_name(const char *name, dsd_st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++) {
        if (!strcmp(dtype_table[i].name, name)) {
            *out = (dsd_st_dtype)i;
            return 1;
        }
    }
    return 0;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dsd_st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24, exact in binary32 */
        float v = (float)mantissa * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exponent == 31) /* infinity (mantissa 0) or NaN (payload kept) */
        return bits_float(sign | 0x7f800000u | (mantissa << 13));
    return bits_float(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

/* Drops the low `shift` bits of value, rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t value, unsigned shift)
{
    uint32_t kept = value >> shift;
    uint32_t rest = value & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1)))
        kept++;
    return kept;
}

uint16_t dsd_st_f32_to_f16(float f)
{
    uint32_t x = float_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t magnitude = x & 0x7fffffffu;
    if (magnitude > 0x7f800000u) /* NaN: quiet, keep the payload's top bits */
        return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    if (magnitude >= 0x477ff000u) /* >= 65520 (incl. inf): rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (magnitude >= 0x38800000u) { /* >= 2^-14: normal half */
        uint32_t rebiased = magnitude - ((uint32_t)(127 - 15) << 23);
        /* a carry out of the mantissa correctly bumps the exponent */
        return (uint16_t)(sign | shift_round_even(rebiased, 13));
    }
    if (magnitude <= 0x33000000u) /* <= 2^-25: ties to even give zero */
        return sign;
    /* subnormal half: count units of 2^-24; 0x400 (a carry) is the smallest normal */
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(mantissa, 126 - exponent));
}

float dsd_st_bf16_to_f32(uint16_t b)
{
    return bits_float((uint32_t)b << 16);
}

static uint16_t get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* "[64,3,7,7]", "[]" for a scalar. */
static const char *format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, i ? "," : "", shape[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
    return buf;
}
enum { SHAPE_TEXT_MAX = DSD_ST_MAX_DIMS * 21 + 3 };

/* Makes room for `need` elements of `elem` bytes in *items. 0 when out of memory. */
static int grow_array(void **items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t new_cap = *cap ? *cap * 2 : 16;
    if (new_cap < need)
        new_cap = need;
    if (new_cap > SIZE_MAX / elem)
        return 0;
    void *p = realloc(*items, new_cap * elem);
    if (!p)
        return 0;
    *items = p;
    *cap = new_cap;
    return 1;
}

static char *copy_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Reading: the file */

typedef struct st_meta {
    char *key;
    char *value; /* NULL only while the entry is being parsed */
} st_meta;

struct dsd_safetensors {
    char *path;
    unsigned char *file;         /* the whole file */
    size_t file_size;
    uint64_t header_size;        /* N */
    const unsigned char *data;   /* file + 8 + N */
    uint64_t data_size;
    dsd_st_tensor *tensors;      /* sorted by name once open succeeds */
    size_t n_tensors, cap_tensors;
    st_meta *meta;               /* file order */
    size_t n_meta, cap_meta;
};

static dsd_status read_failure(const char *path, FILE *f, dsd_error *err)
{
    if (ferror(f))
        return DSD_FAIL(err, DSD_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    return DSD_FAIL(err, DSD_ERR_IO, "%s: file ended early (changed while being read?)", path);
}

/* Checks the size and the header length before allocating, then reads it all. */
static dsd_status load_file(dsd_safetensors *st, dsd_error *err)
{
    const char *path = st->path;
    /* O_NONBLOCK: opened plainly, a FIFO would wait forever for a writer;
     * here it opens at once and is refused as not a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return DSD_FAIL(err, DSD_ERR_IO, "%s: not a regular file (%s)", path,
                        S_ISDIR(sb.st_mode)    ? "a folder"
                        : S_ISFIFO(sb.st_mode) ? "a FIFO"
                                               : "a device or socket");
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ? NULL
                                                                        : fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    dsd_status status = DSD_OK;
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: file is %" PRIu64 " bytes, shorter than "
                          "the 8-byte header length: not a safetensors file", path, size);
        goto done;
    }
    unsigned char prefix[8];
    if (fread(prefix, 1, sizeof prefix, f) != sizeof prefix) {
        status = read_failure(path, f, err);
        goto done;
    }
    uint64_t header_size = get_le64(prefix);
    if (header_size > DSD_ST_MAX_HEADER_BYTES) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the "
                          "%u-byte limit: not a safetensors file, or corrupt", path,
                          header_size, DSD_ST_MAX_HEADER_BYTES);
        goto done;
    }
    if (header_size > size - 8) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: header length %" PRIu64 " is larger than "
                          "the %" PRIu64 " bytes that follow it: truncated or not a "
                          "safetensors file", path, header_size, size - 8);
        goto done;
    }
    if (size > SIZE_MAX) {
        status = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: %" PRIu64 " bytes do not fit in "
                          "memory", path, size);
        goto done;
    }
    st->file = malloc((size_t)size);
    if (!st->file) {
        status = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRIu64
                          " bytes to read it", path, size);
        goto done;
    }
    memcpy(st->file, prefix, sizeof prefix);
    if (fread(st->file + 8, 1, (size_t)size - 8, f) != (size_t)size - 8) {
        status = read_failure(path, f, err);
        goto done;
    }
    st->file_size = (size_t)size;
    st->header_size = header_size;
    st->data = st->file + 8 + header_size;
    st->data_size = size - 8 - header_size;
done:
    fclose(f); /* read-only: nothing to lose */
    return status;
}

/* ------------------------------------------------------------------------ */
/* Reading: the header, through libyaml's event parser.
 *
 * JSON is YAML flow syntax, and in flow context libyaml takes every ':' as
 * the value indicator, so compact JSON ("a":1) parses. YAML accepts much that
 * JSON does not, so next_event() refuses, as it pulls each event, whatever
 * only YAML can express: block collections, single-quoted and block scalars,
 * anchors, aliases, tags, directives and explicit documents. The parse
 * functions then require double-quoted strings where JSON has strings and
 * JSON integers where it has numbers. */

typedef struct header_reader {
    dsd_safetensors *st;
    dsd_error *err;
    yaml_parser_t parser;
    yaml_event_t event;          /* the current event, valid while has_event */
    int has_event;
} header_reader;

static dsd_status yaml_failure(header_reader *hr)
{
    const yaml_parser_t *p = &hr->parser;
    const char *path = hr->st->path;
    if (p->error == YAML_MEMORY_ERROR)
        return DSD_FAIL(hr->err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory parsing the header",
                        path);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR)
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: header is not valid JSON: %s (byte %zu of "
                        "the header, value 0x%x)", path, problem, p->problem_offset,
                        (unsigned)p->problem_value);
    return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: header is not valid JSON: %s%s%s (header "
                    "line %zu, column %zu)", path, problem, p->context ? " " : "",
                    p->context ? p->context : "", p->problem_mark.line + 1,
                    p->problem_mark.column + 1);
}

static dsd_status not_json(header_reader *hr, const char *what)
{
    const yaml_mark_t *m = &hr->event.start_mark;
    return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: header is not JSON: it uses %s (header line "
                    "%zu, column %zu)", hr->st->path, what, m->line + 1, m->column + 1);
}

/* Replaces the current event with the next one; refuses YAML-only syntax. */
static dsd_status next_event(header_reader *hr)
{
    if (hr->has_event) {
        yaml_event_delete(&hr->event);
        hr->has_event = 0;
    }
    if (!yaml_parser_parse(&hr->parser, &hr->event))
        return yaml_failure(hr);
    hr->has_event = 1;
    const yaml_event_t *e = &hr->event;
    switch (e->type) {
    case YAML_ALIAS_EVENT:
        return not_json(hr, "a YAML alias");
    case YAML_DOCUMENT_START_EVENT:
        if (!e->data.document_start.implicit || e->data.document_start.version_directive ||
            e->data.document_start.tag_directives.start != e->data.document_start.tag_directives.end)
            return not_json(hr, "a YAML document marker or directive");
        break;
    case YAML_SCALAR_EVENT:
        if (e->data.scalar.anchor || e->data.scalar.tag)
            return not_json(hr, "a YAML anchor or tag");
        if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
            e->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE)
            return not_json(hr, "a single-quoted or block YAML string");
        break;
    case YAML_MAPPING_START_EVENT:
        if (e->data.mapping_start.anchor || e->data.mapping_start.tag)
            return not_json(hr, "a YAML anchor or tag");
        if (e->data.mapping_start.style != YAML_FLOW_MAPPING_STYLE)
            return not_json(hr, "a YAML block mapping");
        break;
    case YAML_SEQUENCE_START_EVENT:
        if (e->data.sequence_start.anchor || e->data.sequence_start.tag)
            return not_json(hr, "a YAML anchor or tag");
        if (e->data.sequence_start.style != YAML_FLOW_SEQUENCE_STYLE)
            return not_json(hr, "a YAML block sequence");
        break;
    default:
        break;
    }
    return DSD_OK;
}

static int event_is(const header_reader *hr, yaml_event_type_t type)
{
    return hr->event.type == type;
}

static int event_is_string(const header_reader *hr)
{
    return hr->event.type == YAML_SCALAR_EVENT &&
           hr->event.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

/* What the current event is, for messages: "an array", "the string \"x\"". */
static const char *describe_event(const header_reader *hr, char *buf, size_t size)
{
    const yaml_event_t *e = &hr->event;
    switch (e->type) {
    case YAML_MAPPING_START_EVENT: return "an object";
    case YAML_SEQUENCE_START_EVENT: return "an array";
    case YAML_MAPPING_END_EVENT: return "the end of the object";
    case YAML_SEQUENCE_END_EVENT: return "the end of the array";
    case YAML_SCALAR_EVENT:
        if (e->data.scalar.length == 0 && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            return "nothing";
        snprintf(buf, size, e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "%.40s%s"
                                                                            : "the string \"%.40s%s\"",
                 (const char *)e->data.scalar.value, e->data.scalar.length > 40 ? "..." : "");
        return buf;
    default: return "something else";
    }
}
enum { DESCRIBE_MAX = 80 };

/* Copies the current (string) scalar; what names it in messages. */
static dsd_status copy_string(header_reader *hr, const char *what, char **out)
{
    const char *s = (const char *)hr->event.data.scalar.value;
    size_t n = hr->event.data.scalar.length;
    *out = NULL;
    if (memchr(s, '\0', n))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: %s \"%s...\" contains a NUL character",
                        hr->st->path, what, s);
    *out = copy_bytes(s, n);
    if (!*out)
        return DSD_FAIL(hr->err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header",
                        hr->st->path);
    return DSD_OK;
}

/* The current scalar as a JSON integer in [0, limit]; field/index name it. */
static dsd_status take_count(header_reader *hr, const char *tensor, const char *field,
                             size_t index, uint64_t limit, uint64_t *out)
{
    char what[DESCRIBE_MAX];
    int ok = event_is(hr, YAML_SCALAR_EVENT) &&
             hr->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *p = ok ? (const char *)hr->event.data.scalar.value : "";
    int negative = *p == '-';
    if (negative)
        p++;
    /* JSON: 0 or a non-zero digit followed by digits; no sign, fraction, exponent */
    ok = ok && (*p == '0' ? p[1] == '\0' : (*p >= '1' && *p <= '9'));
    uint64_t value = 0;
    for (; ok && *p; p++) {
        if (*p < '0' || *p > '9') {
            ok = 0;
            break;
        }
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10 || value * 10 + digit > limit)
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': %s[%zu] is %s, too large",
                            hr->st->path, tensor, field, index,
                            describe_event(hr, what, sizeof what));
        value = value * 10 + digit;
    }
    if (!ok || (negative && value != 0))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': %s[%zu] is %s, not a "
                        "non-negative integer", hr->st->path, tensor, field, index,
                        describe_event(hr, what, sizeof what));
    *out = value;
    return DSD_OK;
}

/* Reads an array of at most max_count integers, each <= limit. */
static dsd_status parse_count_array(header_reader *hr, const char *tensor, const char *field,
                                    size_t max_count, uint64_t limit, uint64_t *out,
                                    size_t *count)
{
    char what[DESCRIBE_MAX];
    DSD_TRY(next_event(hr));
    if (!event_is(hr, YAML_SEQUENCE_START_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': %s must be an array of "
                        "integers, found %s", hr->st->path, tensor, field,
                        describe_event(hr, what, sizeof what));
    size_t n = 0;
    for (;;) {
        DSD_TRY(next_event(hr));
        if (event_is(hr, YAML_SEQUENCE_END_EVENT))
            break;
        if (n == max_count)
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': %s has more than %zu "
                            "entries", hr->st->path, tensor, field, max_count);
        DSD_TRY(take_count(hr, tensor, field, n, limit, &out[n]));
        n++;
    }
    *count = n;
    return DSD_OK;
}

/* Checks an entry's offsets against the data section and its shape x dtype. */
static dsd_status check_entry_size(header_reader *hr, dsd_st_tensor *t, const uint64_t *offsets)
{
    const char *path = hr->st->path;
    char shape[SHAPE_TEXT_MAX];
    if (offsets[0] > offsets[1])
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %"
                        PRIu64 "] has begin > end", path, t->name, offsets[0], offsets[1]);
    if (offsets[1] > hr->st->data_size)
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %"
                        PRIu64 "] run past the end of the data section (%" PRIu64 " bytes)",
                        path, t->name, offsets[0], offsets[1], hr->st->data_size);
    uint64_t numel = 1, elem = dsd_st_dtype_size(t->dtype);
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (d != 0 && numel > UINT64_MAX / d)
            overflow = 1;
        numel *= d;
    }
    format_shape(shape, sizeof shape, t->ndim, t->shape);
    if (overflow || (numel != 0 && numel > UINT64_MAX / elem))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': shape %s x %s is too large",
                        path, t->name, shape, dsd_st_dtype_name(t->dtype));
    uint64_t needed = numel * elem;
    if (needed != offsets[1] - offsets[0])
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': shape %s x %s needs %" PRIu64
                        " bytes but data_offsets give %" PRIu64, path, t->name, shape,
                        dsd_st_dtype_name(t->dtype), needed, offsets[1] - offsets[0]);
    t->numel = numel;
    t->nbytes = (size_t)needed; /* <= data_size, which is in memory */
    t->offset = offsets[0];
    t->data = hr->st->data + offsets[0];
    return DSD_OK;
}

/* Parses one tensor entry; takes ownership of name. */
static dsd_status parse_tensor(header_reader *hr, char *name)
{
    dsd_safetensors *st = hr->st;
    const char *path = st->path;
    char what[DESCRIBE_MAX];
    if (!grow_array((void **)&st->tensors, &st->cap_tensors, st->n_tensors + 1,
                    sizeof *st->tensors)) {
        free(name);
        return DSD_FAIL(hr->err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header",
                        path);
    }
    /* stored at once so that close() frees the name on any later failure */
    dsd_st_tensor *t = &st->tensors[st->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = name;
    if (name[0] == '\0')
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: a tensor has an empty name", path);

    DSD_TRY(next_event(hr));
    if (!event_is(hr, YAML_MAPPING_START_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': expected an object with "
                        "dtype, shape and data_offsets, found %s", path, name,
                        describe_event(hr, what, sizeof what));
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    uint64_t offsets[2] = {0, 0};
    for (;;) {
        DSD_TRY(next_event(hr));
        if (event_is(hr, YAML_MAPPING_END_EVENT))
            break;
        if (!event_is_string(hr))
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': expected a field name, "
                            "found %s", path, name, describe_event(hr, what, sizeof what));
        const char *field = (const char *)hr->event.data.scalar.value;
        int *seen = !strcmp(field, "dtype")          ? &have_dtype
                    : !strcmp(field, "shape")        ? &have_shape
                    : !strcmp(field, "data_offsets") ? &have_offsets
                                                     : NULL;
        if (!seen)
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': unknown field '%s' "
                            "(expected dtype, shape, data_offsets)", path, name, field);
        if (*seen)
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice",
                            path, name, field);
        *seen = 1;
        if (seen == &have_dtype) {
            DSD_TRY(next_event(hr));
            if (!event_is_string(hr))
                return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': dtype must be a "
                                "string, found %s", path, name,
                                describe_event(hr, what, sizeof what));
            const char *dtype = (const char *)hr->event.data.scalar.value;
            if (strlen(dtype) != hr->event.data.scalar.length ||
                !dtype_from_name(dtype, &t->dtype))
                return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s' "
                                "(known: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, "
                                "I32, U32, F32, F64, I64, U64)", path, name, dtype);
        } else if (seen == &have_shape) {
            uint64_t dims[DSD_ST_MAX_DIMS];
            size_t n;
            DSD_TRY(parse_count_array(hr, name, "shape", DSD_ST_MAX_DIMS, INT64_MAX, dims, &n));
            t->ndim = (int)n;
            for (size_t i = 0; i < n; i++)
                t->shape[i] = (int64_t)dims[i];
        } else {
            size_t n;
            DSD_TRY(parse_count_array(hr, name, "data_offsets", 2, UINT64_MAX, offsets, &n));
            if (n != 2)
                return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': data_offsets must be "
                                "[begin, end], found %zu entries", path, name, n);
        }
    }
    const char *missing = !have_dtype ? "dtype" : !have_shape ? "shape"
                        : !have_offsets ? "data_offsets" : NULL;
    if (missing)
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", path, name,
                        missing);
    return check_entry_size(hr, t, offsets);
}

static dsd_status parse_metadata(header_reader *hr)
{
    dsd_safetensors *st = hr->st;
    const char *path = st->path;
    char what[DESCRIBE_MAX];
    DSD_TRY(next_event(hr));
    if (!event_is(hr, YAML_MAPPING_START_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: __metadata__ must be an object of "
                        "strings, found %s", path, describe_event(hr, what, sizeof what));
    for (;;) {
        DSD_TRY(next_event(hr));
        if (event_is(hr, YAML_MAPPING_END_EVENT))
            return DSD_OK;
        if (!event_is_string(hr))
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: __metadata__: expected a key, found %s",
                            path, describe_event(hr, what, sizeof what));
        if (!grow_array((void **)&st->meta, &st->cap_meta, st->n_meta + 1, sizeof *st->meta))
            return DSD_FAIL(hr->err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory reading the "
                            "header", path);
        st_meta *m = &st->meta[st->n_meta];
        DSD_TRY(copy_string(hr, "__metadata__ key", &m->key));
        m->value = NULL;
        st->n_meta++;
        for (size_t i = 0; i + 1 < st->n_meta; i++)
            if (!strcmp(st->meta[i].key, m->key))
                return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: __metadata__ has key '%s' twice",
                                path, m->key);
        DSD_TRY(next_event(hr));
        if (!event_is_string(hr))
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: __metadata__ '%s' must be a string, "
                            "found %s", path, m->key, describe_event(hr, what, sizeof what));
        DSD_TRY(copy_string(hr, "__metadata__ value", &m->value));
    }
}

/* The whole header: one JSON object, then nothing but spaces. */
static dsd_status parse_document(header_reader *hr)
{
    const char *path = hr->st->path;
    char what[DESCRIBE_MAX];
    DSD_TRY(next_event(hr)); /* stream start */
    DSD_TRY(next_event(hr));
    if (event_is(hr, YAML_STREAM_END_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: header is empty (%" PRIu64 " bytes of "
                        "whitespace)", path, hr->st->header_size);
    DSD_TRY(next_event(hr)); /* after the document start: the root */
    if (!event_is(hr, YAML_MAPPING_START_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: the header must be a JSON object, found "
                        "%s", path, describe_event(hr, what, sizeof what));
    int have_metadata = 0;
    for (;;) {
        DSD_TRY(next_event(hr));
        if (event_is(hr, YAML_MAPPING_END_EVENT))
            break;
        if (!event_is_string(hr))
            return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: expected a tensor name (a string), "
                            "found %s", path, describe_event(hr, what, sizeof what));
        if (!strcmp((const char *)hr->event.data.scalar.value, "__metadata__")) {
            if (have_metadata)
                return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: __metadata__ appears twice", path);
            have_metadata = 1;
            DSD_TRY(parse_metadata(hr));
        } else {
            char *name;
            DSD_TRY(copy_string(hr, "tensor name", &name));
            DSD_TRY(parse_tensor(hr, name));
        }
    }
    DSD_TRY(next_event(hr)); /* document end */
    DSD_TRY(next_event(hr));
    if (!event_is(hr, YAML_STREAM_END_EVENT))
        return DSD_FAIL(hr->err, DSD_ERR_FORMAT, "%s: header holds more than one JSON value",
                        path);
    return DSD_OK;
}

static dsd_status parse_header(dsd_safetensors *st, dsd_error *err)
{
    header_reader hr;
    memset(&hr, 0, sizeof hr);
    hr.st = st;
    hr.err = err;
    if (!yaml_parser_initialize(&hr.parser))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: cannot initialize the YAML parser",
                        st->path);
    yaml_parser_set_input_string(&hr.parser, st->file + 8, (size_t)st->header_size);
    yaml_parser_set_encoding(&hr.parser, YAML_UTF8_ENCODING);
    dsd_status status = parse_document(&hr);
    if (hr.has_event)
        yaml_event_delete(&hr.event);
    yaml_parser_delete(&hr.parser);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Reading: checks across tensors */

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const dsd_st_tensor *)a)->name, ((const dsd_st_tensor *)b)->name);
}

static int compare_by_offset(const void *a, const void *b)
{
    const dsd_st_tensor *x = *(const dsd_st_tensor *const *)a;
    const dsd_st_tensor *y = *(const dsd_st_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Sorts by name, then refuses duplicate names and overlapping bytes. Empty
 * tensors own no bytes and overlap nothing. */
static dsd_status check_tensors(dsd_safetensors *st, dsd_error *err)
{
    if (st->n_tensors == 0)
        return DSD_OK;
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, compare_by_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
            return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: duplicate tensor name '%s'", st->path,
                            st->tensors[i].name);

    const dsd_st_tensor **by_offset = malloc(st->n_tensors * sizeof *by_offset);
    if (!by_offset)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory checking offsets",
                        st->path);
    size_t n = 0;
    for (size_t i = 0; i < st->n_tensors; i++)
        if (st->tensors[i].nbytes > 0)
            by_offset[n++] = &st->tensors[i];
    qsort(by_offset, n, sizeof *by_offset, compare_by_offset);
    dsd_status status = DSD_OK;
    for (size_t i = 1; i < n; i++) {
        const dsd_st_tensor *a = by_offset[i - 1], *b = by_offset[i];
        if (a->offset + a->nbytes > b->offset) {
            status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensors '%s' (bytes [%" PRIu64 ", %"
                              PRIu64 ")) and '%s' (bytes [%" PRIu64 ", %" PRIu64 ")) overlap",
                              st->path, a->name, a->offset, a->offset + a->nbytes, b->name,
                              b->offset, b->offset + b->nbytes);
            break;
        }
    }
    free(by_offset);
    return status;
}

dsd_status dsd_safetensors_open(const char *path, dsd_safetensors **out, dsd_error *err)
{
    if (!out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_open: out is NULL");
    *out = NULL;
    if (!path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_open: path is NULL");
    dsd_safetensors *st = calloc(1, sizeof *st);
    if (st)
        st->path = copy_bytes(path, strlen(path));
    if (!st || !st->path) {
        free(st);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    dsd_status status = load_file(st, err);
    if (status == DSD_OK)
        status = parse_header(st, err);
    if (status == DSD_OK)
        status = check_tensors(st, err);
    if (status != DSD_OK) {
        dsd_safetensors_close(st);
        return status;
    }
    *out = st;
    return DSD_OK;
}

void dsd_safetensors_close(dsd_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free((char *)st->tensors[i].name);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->tensors);
    free(st->meta);
    free(st->file);
    free(st->path);
    free(st);
}

/* ------------------------------------------------------------------------ */
/* Lookups */

size_t dsd_safetensors_count(const dsd_safetensors *st)
{
    return st ? st->n_tensors : 0;
}

const dsd_st_tensor *dsd_safetensors_tensor(const dsd_safetensors *st, size_t index)
{
    return st && index < st->n_tensors ? &st->tensors[index] : NULL;
}

static int compare_name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const dsd_st_tensor *)elem)->name);
}

const dsd_st_tensor *dsd_safetensors_find(const dsd_safetensors *st, const char *name)
{
    if (!st || !name || st->n_tensors == 0)
        return NULL;
    return bsearch(name, st->tensors, st->n_tensors, sizeof *st->tensors, compare_name_key);
}

const char *dsd_safetensors_metadata(const dsd_safetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key))
            return st->meta[i].value;
    return NULL;
}

size_t dsd_safetensors_metadata_count(const dsd_safetensors *st)
{
    return st ? st->n_meta : 0;
}

const char *dsd_safetensors_metadata_key(const dsd_safetensors *st, size_t index)
{
    return st && index < st->n_meta ? st->meta[index].key : NULL;
}

dsd_status dsd_safetensors_read_f32(const dsd_safetensors *st, const char *name, int ndim,
                                    const int64_t *expected_shape, float *out, dsd_error *err)
{
    if (!st || !name)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_read_f32: %s is NULL",
                        st ? "name" : "st");
    if (ndim < 0 || ndim > DSD_ST_MAX_DIMS || (ndim > 0 && !expected_shape))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: reading tensor '%s': ndim %d "
                        "(must be 0..%d, with a shape when > 0)", st->path, name, ndim,
                        DSD_ST_MAX_DIMS);
    const dsd_st_tensor *t = dsd_safetensors_find(st, name);
    if (!t)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: no tensor '%s' (the file has %zu tensors)",
                        st->path, name, st->n_tensors);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == expected_shape[i];
    if (!same) {
        char want[SHAPE_TEXT_MAX], have[SHAPE_TEXT_MAX];
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensor '%s': expected shape %s but the file "
                        "has %s", st->path, name, format_shape(want, sizeof want, ndim,
                                                               expected_shape),
                        format_shape(have, sizeof have, t->ndim, t->shape));
    }
    if (t->dtype != DSD_ST_F32 && t->dtype != DSD_ST_F16 && t->dtype != DSD_ST_BF16)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensor '%s' is %s; only F32, F16 and BF16 "
                        "convert to float", st->path, name, dsd_st_dtype_name(t->dtype));
    if (!out && t->numel > 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: reading tensor '%s': out is NULL",
                        st->path, name);
    const unsigned char *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case DSD_ST_F32:
        for (size_t i = 0; i < n; i++)
            out[i] = bits_float(get_le32(p + 4 * i));
        break;
    case DSD_ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = dsd_st_f16_to_f32(get_le16(p + 2 * i));
        break;
    default: /* BF16 */
        for (size_t i = 0; i < n; i++)
            out[i] = dsd_st_bf16_to_f32(get_le16(p + 2 * i));
        break;
    }
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing */

typedef struct writer_tensor {
    char *name;
    dsd_st_dtype dtype;
    int ndim;
    int64_t shape[DSD_ST_MAX_DIMS];
    unsigned char *bytes;        /* little-endian, as in the file */
    size_t nbytes;
} writer_tensor;

struct dsd_safetensors_writer {
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    st_meta *meta;
    size_t n_meta, cap_meta;
};

/* A growing string; `failed` records an allocation failure. */
typedef struct strbuf {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_append(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap && !grow_array((void **)&b->data, &b->cap, b->len + n + 1, 1)) {
        b->failed = 1;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof small); /* only used for numbers and short text */
    sb_append(b, small, (size_t)n);
}

/* Decodes one well-formed UTF-8 character; returns its length, 0 if malformed. */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (len == 0 || s[0] > 0xf4)
        return 0;
    uint32_t c = s[0] & (0x7fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_for_len[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Characters written as \uXXXX: what JSON requires (controls) and what
 * libyaml's reader would refuse or fold (DEL, C1 controls incl. NEL, the
 * line/paragraph separators, the BOM, U+FFFE/FFFF), so our files read back. */
static int needs_unicode_escape(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0xfeff || cp == 0xfffe || cp == 0xffff;
}

/* Length of s as a JSON string in characters (quotes included), or 0 when s
 * is not valid UTF-8. */
static size_t json_string_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 2;
    while (*p) {
        uint32_t cp;
        int len = utf8_decode(p, &cp);
        if (len == 0)
            return 0;
        chars += needs_unicode_escape(cp) ? 6 : (cp == '"' || cp == '\\') ? 2 : 1;
        p += len;
    }
    return chars;
}

/* Appends s (valid UTF-8) as a quoted JSON string. */
static void sb_json_string(strbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_append(b, "\"", 1);
    while (*p) {
        uint32_t cp;
        int len = utf8_decode(p, &cp);
        assert(len > 0);
        if (needs_unicode_escape(cp))
            sb_printf(b, "\\u%04x", (unsigned)cp);
        else if (cp == '"' || cp == '\\')
            sb_printf(b, "\\%c", (char)cp);
        else
            sb_append(b, (const char *)p, (size_t)len);
        p += len;
    }
    sb_append(b, "\"", 1);
}

/* libyaml reads a JSON object key only if it spans at most 1024 characters
 * with its quotes (YAML's limit on implicit keys). */
enum { JSON_KEY_CHARS_MAX = 1024 };

static dsd_status check_key(const char *key, const char *what, dsd_error *err)
{
    size_t chars = json_string_chars(key);
    if (chars == 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s '%s' is not valid UTF-8", what, key);
    if (chars > JSON_KEY_CHARS_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s '%.60s...' is too long: %zu "
                        "characters as JSON, at most %d", what, key, chars, JSON_KEY_CHARS_MAX);
    return DSD_OK;
}

dsd_status dsd_safetensors_writer_init(dsd_safetensors_writer **out, dsd_error *err)
{
    if (!out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_writer_init: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of memory creating a safetensors writer");
    return DSD_OK;
}

void dsd_safetensors_writer_free(dsd_safetensors_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].bytes);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->tensors);
    free(w->meta);
    free(w);
}

dsd_status dsd_safetensors_writer_add_f32(dsd_safetensors_writer *w, const char *name, int ndim,
                                          const int64_t *shape, const float *data,
                                          int store_f16, dsd_error *err)
{
    if (!w || !name)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_writer_add_f32: %s is "
                        "NULL", w ? "name" : "w");
    if (name[0] == '\0')
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "a tensor name must not be empty");
    if (!strcmp(name, "__metadata__"))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "'__metadata__' is reserved, not a "
                        "tensor name");
    DSD_TRY(check_key(name, "tensor name", err));
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "tensor '%s' was already added", name);
    if (ndim < 0 || ndim > DSD_ST_MAX_DIMS || (ndim > 0 && !shape))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "tensor '%s': ndim %d (must be 0..%d, "
                        "with a shape when > 0)", name, ndim, DSD_ST_MAX_DIMS);
    dsd_st_dtype dtype = store_f16 ? DSD_ST_F16 : DSD_ST_F32;
    size_t elem = dsd_st_dtype_size(dtype), numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "tensor '%s': dimension %d is %"
                            PRId64, name, i, shape[i]);
        if (shape[i] != 0 && numel > SIZE_MAX / elem / (uint64_t)shape[i])
            return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "tensor '%s' is too large", name);
        numel *= (size_t)shape[i];
    }
    if (numel > 0 && !data)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "tensor '%s': data is NULL", name);

    if (!grow_array((void **)&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of memory adding tensor '%s'", name);
    writer_tensor t = {.dtype = dtype, .ndim = ndim, .nbytes = numel * elem};
    t.name = copy_bytes(name, strlen(name));
    t.bytes = malloc(t.nbytes ? t.nbytes : 1);
    if (!t.name || !t.bytes) {
        free(t.name);
        free(t.bytes);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of memory copying tensor '%s' (%zu "
                        "bytes)", name, t.nbytes);
    }
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    for (size_t i = 0; i < numel; i++) {
        if (store_f16)
            put_le16(t.bytes + 2 * i, dsd_st_f32_to_f16(data[i]));
        else
            put_le32(t.bytes + 4 * i, float_bits(data[i]));
    }
    w->tensors[w->n_tensors++] = t;
    return DSD_OK;
}

dsd_status dsd_safetensors_writer_set_metadata(dsd_safetensors_writer *w, const char *key,
                                               const char *value, dsd_error *err)
{
    if (!w || !key || !value)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_writer_set_metadata: "
                        "%s is NULL", !w ? "w" : !key ? "key" : "value");
    DSD_TRY(check_key(key, "metadata key", err));
    if (json_string_chars(value) == 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "metadata '%s': value is not valid UTF-8",
                        key);
    char *v = copy_bytes(value, strlen(value));
    if (!v)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of memory setting metadata '%s'", key);
    for (size_t i = 0; i < w->n_meta; i++) {
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return DSD_OK;
        }
    }
    char *k = copy_bytes(key, strlen(key));
    if (!k || !grow_array((void **)&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta)) {
        free(k);
        free(v);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "out of memory setting metadata '%s'", key);
    }
    w->meta[w->n_meta++] = (st_meta){.key = k, .value = v};
    return DSD_OK;
}

static int compare_writer_names(const void *a, const void *b)
{
    return strcmp(((const writer_tensor *)a)->name, ((const writer_tensor *)b)->name);
}

/* The header JSON (tensors in w's order, offsets consecutive), space-padded
 * to a multiple of 8 bytes so the data section starts 8-aligned. */
static void build_header(const dsd_safetensors_writer *w, strbuf *b)
{
    sb_append(b, "{", 1);
    if (w->n_meta > 0) {
        sb_append(b, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i)
                sb_append(b, ",", 1);
            sb_json_string(b, w->meta[i].key);
            sb_append(b, ":", 1);
            sb_json_string(b, w->meta[i].value);
        }
        sb_append(b, "}", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        if (i || w->n_meta > 0)
            sb_append(b, ",", 1);
        sb_json_string(b, t->name);
        sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dsd_st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            sb_printf(b, "%s%" PRId64, d ? "," : "", t->shape[d]);
        sb_printf(b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset,
                  offset + t->nbytes);
        offset += t->nbytes;
    }
    sb_append(b, "}", 1);
    while (!b->failed && b->len % 8 != 0)
        sb_append(b, " ", 1);
}

dsd_status dsd_safetensors_writer_save(dsd_safetensors_writer *w, const char *path,
                                       dsd_error *err)
{
    if (!w || !path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_safetensors_writer_save: %s is NULL",
                        w ? "path" : "w");
    qsort(w->tensors, w->n_tensors, sizeof *w->tensors, compare_writer_names);
    strbuf header = {0};
    build_header(w, &header);
    if (header.failed) {
        free(header.data);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory building the header",
                        path);
    }
    /* length, header, then every tensor's bytes in name order */
    size_t count = 2 + w->n_tensors;
    const void **parts = malloc(count * sizeof *parts);
    size_t *sizes = malloc(count * sizeof *sizes);
    if (!parts || !sizes) {
        free(parts);
        free(sizes);
        free(header.data);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    unsigned char length[8];
    put_le64(length, header.len);
    parts[0] = length;
    sizes[0] = sizeof length;
    parts[1] = header.data;
    sizes[1] = header.len;
    for (size_t i = 0; i < w->n_tensors; i++) {
        parts[2 + i] = w->tensors[i].bytes;
        sizes[2 + i] = w->tensors[i].nbytes;
    }
    dsd_status status = dsd_write_file_atomic(path, parts, sizes, count, err);
    free(parts);
    free(sizes);
    free(header.data);
    return status;
}
