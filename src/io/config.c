/*
 * config.c: the training configuration (dsdeblur_config.h is the manual):
 * a table of every key with its type, range and place in dsd_config; a YAML
 * reader on libyaml's event parser that walks a two-level mapping and sets
 * keys through the table; the same setter for "key=value" overrides; and a
 * YAML writer on libyaml's emitter. Tests: tests/test-config.c.
 *
 * It does not know what the settings mean beyond their ranges and a few
 * cross-field rules (dsd_config_validate); the trainer interprets them.
 */
#include "internal.h"
#include "yaml_reader.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* The schema */

typedef enum key_type { KEY_INT, KEY_LONG, KEY_DOUBLE, KEY_BOOL, KEY_STRING, KEY_MODE } key_type;

typedef struct key_spec {
    const char *name;      /* "train.lr" */
    key_type type;
    size_t offset;         /* into dsd_config */
    double lo, hi;         /* numeric range, inclusive */
    const char *choices;   /* KEY_STRING restricted to "a|b|c", or NULL */
    const char *help;      /* one line, for the written file */
} key_spec;

#define OFF(field) offsetof(dsd_config, field)
#define BIG 1e9

static const key_spec keys[] = {
    {"data.mode", KEY_MODE, OFF(data.mode), 0, 0, "gopro|paired|synthetic",
     "gopro | paired | synthetic"},
    {"data.train", KEY_STRING, OFF(data.train), 0, 0, NULL,
     "gopro: root of <sequence>/{blur,sharp}; synthetic: folder of sharp images"},
    {"data.train_blur", KEY_STRING, OFF(data.train_blur), 0, 0, NULL, "paired: blurred images"},
    {"data.train_sharp", KEY_STRING, OFF(data.train_sharp), 0, 0, NULL, "paired: sharp images"},
    {"data.val", KEY_STRING, OFF(data.val), 0, 0, NULL, "held-out set, layout of data.mode"},
    {"data.val_blur", KEY_STRING, OFF(data.val_blur), 0, 0, NULL, "paired held-out set"},
    {"data.val_sharp", KEY_STRING, OFF(data.val_sharp), 0, 0, NULL, "paired held-out set"},
    {"data.val_count", KEY_INT, OFF(data.val_count), 0, BIG, NULL, "0 = every image"},
    {"data.crop", KEY_INT, OFF(data.crop), 8, 16384, NULL, "square random crop (multiple of 4)"},
    {"data.flip", KEY_BOOL, OFF(data.flip), 0, 1, NULL, "random horizontal flips"},
    {"data.crop_tries", KEY_INT, OFF(data.crop_tries), 1, 64, NULL,
     "the most detailed of this many random crops (1: plain random crops)"},
    {"data.kernel_size", KEY_INT, OFF(data.kernel_size), 3, 255, NULL,
     "synthetic: largest blur kernel side"},
    {"data.noise_sigma", KEY_DOUBLE, OFF(data.noise_sigma), 0, 1, NULL,
     "synthetic: Gaussian noise std ([-1, 1] units; 1/255 of 8 bits is 0.00784)"},
    {"data.noise_sigma_max", KEY_DOUBLE, OFF(data.noise_sigma_max), 0, 1, NULL,
     "synthetic: when above noise_sigma, each step's std is drawn from that range"},
    {"data.blur_length", KEY_DOUBLE, OFF(data.blur_length), 0, 62, NULL,
     "synthetic: camera path length in pixels (0: (kernel_size - 1) x 60/62)"},
    {"data.blur_length_max", KEY_DOUBLE, OFF(data.blur_length_max), 0, 62, NULL,
     "synthetic: when above blur_length, each kernel's length is drawn from that range"},
    {"data.exposure", KEY_DOUBLE, OFF(data.exposure), 0, 1, NULL,
     "synthetic: exposed fraction of the path (0: 0.1, 0.5 or 1 at random)"},
    {"data.exposure_max", KEY_DOUBLE, OFF(data.exposure_max), 0, 1, NULL,
     "synthetic: when above exposure, each kernel's fraction is drawn from that range"},
    {"data.anxiety", KEY_DOUBLE, OFF(data.anxiety), -1, 1, NULL,
     "synthetic: camera shake, 0 = a straight path (-1: DeblurGAN's 0.003..0.01 at random)"},
    {"data.anxiety_max", KEY_DOUBLE, OFF(data.anxiety_max), 0, 1, NULL,
     "synthetic: when above anxiety, each kernel's shake is drawn from that range"},
    {"data.max_bad", KEY_INT, OFF(data.max_bad), 0, BIG, NULL,
     "unreadable samples skipped before stopping"},
    {"generator.n_blocks", KEY_INT, OFF(generator.n_blocks), 0, 64, NULL, "DSCRb blocks"},
    {"generator.base_width", KEY_INT, OFF(generator.base_width), 1, 1024, NULL,
     "channels B, 2B, 4B"},
    {"generator.mlp_ratio", KEY_INT, OFF(generator.mlp_ratio), 1, 4096, NULL,
     "channel attention reduction"},
    {"generator.up_kernel", KEY_INT, OFF(generator.up_kernel), 1, 7, NULL,
     "conv before PixelShuffle (odd)"},
    {"generator.dropout", KEY_DOUBLE, OFF(generator.dropout), 0, 0.99, NULL, "in the blocks"},
    {"generator.slope", KEY_DOUBLE, OFF(generator.slope), 0, 1, NULL, "LeakyReLU slope"},
    {"discriminator.base_width", KEY_INT, OFF(discriminator.base_width), 1, 1024, NULL,
     "PatchGAN width"},
    {"discriminator.n_layers", KEY_INT, OFF(discriminator.n_layers), 1,
     DSD_DISCRIMINATOR_MAX_LAYERS, NULL, "stride-2 layers"},
    {"discriminator.norm_affine", KEY_BOOL, OFF(discriminator.norm_affine), 0, 1, NULL,
     "InstanceNorm with weight and bias"},
    {"train.batch", KEY_INT, OFF(train.batch), 1, 4096, NULL, "images per step"},
    {"train.epochs", KEY_INT, OFF(train.epochs), 1, 1000000, NULL, "total epochs"},
    {"train.decay_from", KEY_INT, OFF(train.decay_from), 0, 1000000, NULL,
     "epoch where the linear decay to 0 starts"},
    {"train.steps_per_epoch", KEY_INT, OFF(train.steps_per_epoch), 0, BIG, NULL,
     "0 = one pass over the training set"},
    {"train.lr", KEY_DOUBLE, OFF(train.lr), 0, 1, NULL, "Adam learning rate"},
    {"train.beta1", KEY_DOUBLE, OFF(train.beta1), 0, 0.999999, NULL, "Adam beta1"},
    {"train.beta2", KEY_DOUBLE, OFF(train.beta2), 0, 0.999999999, NULL, "Adam beta2"},
    {"train.eps", KEY_DOUBLE, OFF(train.eps), 1e-30, 1, NULL, "Adam epsilon"},
    {"train.lambda", KEY_DOUBLE, OFF(train.lambda), 0, 1e6, NULL, "content-loss weight"},
    {"train.content_loss", KEY_STRING, OFF(train.content_loss), 0, 0,
     "perceptual|l1|mse|fft|l1+fft", "perceptual | l1 | mse | fft | l1+fft"},
    {"train.fft_weight", KEY_DOUBLE, OFF(train.fft_weight), 0, 1e6, NULL,
     "l1+fft: weight of the FFT term (L1 + w FFT)"},
    {"train.warmup_steps", KEY_INT, OFF(train.warmup_steps), 0, BIG, NULL,
     "first steps on the content loss alone (no discriminator, no adversarial term)"},
    {"train.vgg_weights", KEY_STRING, OFF(train.vgg_weights), 0, 0, NULL,
     "VGG-19 safetensors (doc/vgg.md)"},
    {"train.seed", KEY_LONG, OFF(train.seed), 0, 9007199254740992.0, NULL,
     "crops, kernels, dropout, init"},
    {"run.dir", KEY_STRING, OFF(run.dir), 0, 0, NULL, "checkpoints, logs and plots"},
    {"run.every", KEY_INT, OFF(run.every), 1, BIG, NULL, "steps between checkpoints"},
    {"run.keep", KEY_INT, OFF(run.keep), 1, 1000, NULL, "checkpoints kept"},
    {"run.val_every", KEY_INT, OFF(run.val_every), 0, BIG, NULL,
     "steps between validations (0 = at the end)"},
    {"device", KEY_STRING, OFF(device), 0, 0, NULL, "OpenCL device selector"},
};
enum { N_KEYS = sizeof keys / sizeof keys[0] };

static const char *const mode_names[] = {"gopro", "paired", "synthetic"};

const char *dsd_data_mode_name(dsd_data_mode mode)
{
    return (unsigned)mode < 3 ? mode_names[mode] : "unknown";
}

int dsd_config_key(int i, const char **name, const char **help)
{
    if (i < 0 || i >= N_KEYS)
        return 0;
    *name = keys[i].name;
    *help = keys[i].help;
    return 1;
}

static void *field(dsd_config *cfg, const key_spec *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield(const dsd_config *cfg, const key_spec *k)
{
    return (const char *)cfg + k->offset;
}

static const key_spec *find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

/* Edit distance, for "did you mean". */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static const char *closest_key(const char *name)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < N_KEYS; i++) {
        int d = distance(name, keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = keys[i].name;
        }
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* Setting one key from text */

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return 1;
        p += len + (bar ? 1 : 0);
    }
    return 0;
}

/* Sets key k from text v; where says where it came from ("f.yaml:3:7" or
 * "--set a=b"). */
static dsd_status set_key(dsd_config *cfg, const key_spec *k, const char *v, const char *where,
                          dsd_error *err)
{
    char *end = NULL;
    errno = 0;
    switch (k->type) {
    case KEY_INT:
    case KEY_LONG: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: '%s' is not an integer", where,
                            k->name, v);
        if ((double)x < k->lo || (double)x > k->hi)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s must be between %.0f and %.0f, not %s",
                            where, k->name, k->lo, k->hi, v);
        if (k->type == KEY_INT)
            *(int *)field(cfg, k) = (int)x;
        else
            *(long long *)field(cfg, k) = x;
        return DSD_OK;
    }
    case KEY_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: '%s' is not a number", where, k->name,
                            v);
        if (x < k->lo || x > k->hi)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s must be between %g and %g, not %s",
                            where, k->name, k->lo, k->hi, v);
        *(double *)field(cfg, k) = x;
        return DSD_OK;
    }
    case KEY_BOOL: {
        static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(v, yes[i])) {
                *(int *)field(cfg, k) = 1;
                return DSD_OK;
            }
            if (!strcasecmp(v, no[i])) {
                *(int *)field(cfg, k) = 0;
                return DSD_OK;
            }
        }
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: '%s' is not true or false", where, k->name,
                        v);
    }
    case KEY_MODE:
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, mode_names[i])) {
                *(dsd_data_mode *)field(cfg, k) = (dsd_data_mode)i;
                return DSD_OK;
            }
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: '%s' is not one of %s", where, k->name, v,
                        k->choices);
    case KEY_STRING: {
        if (k->choices && !choice_ok(k->choices, v))
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: '%s' is not one of %s", where,
                            k->name, v, k->choices);
        char *s = dup_string(v);
        if (!s)
            return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        char **slot = field(cfg, k);
        free(*slot);
        *slot = s;
        return DSD_OK;
    }
    }
    return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: %s: unsupported type", where, k->name);
}

static dsd_status unknown_key(const char *name, const char *where, dsd_error *err)
{
    const char *near = closest_key(name);
    if (near)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where,
                        name, near);
    return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: unknown key '%s' (dsdeblur-train(1) lists the "
                    "keys)", where, name);
}

/* ------------------------------------------------------------------------ */
/* Defaults and lifetime */

void dsd_config_free(dsd_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].type == KEY_STRING)
            free(*(char **)field(cfg, &keys[i]));
    memset(cfg, 0, sizeof *cfg);
}

dsd_status dsd_config_defaults(dsd_config *cfg, dsd_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    dsd_generator_config g = dsd_generator_default_config();
    dsd_discriminator_config d = dsd_discriminator_default_config();
    cfg->data.mode = DSD_DATA_GOPRO;
    cfg->data.val_count = 0;
    cfg->data.crop = 256;
    cfg->data.flip = 1;
    cfg->data.crop_tries = 1;
    cfg->data.kernel_size = 64;
    cfg->data.noise_sigma = 0.0;
    cfg->data.noise_sigma_max = 0.0;
    cfg->data.blur_length = cfg->data.blur_length_max = 0.0;
    cfg->data.exposure = cfg->data.exposure_max = 0.0;
    cfg->data.anxiety = -1.0;
    cfg->data.anxiety_max = 0.0;
    cfg->data.max_bad = 10;
    cfg->generator.n_blocks = g.n_blocks;
    cfg->generator.base_width = g.base_width;
    cfg->generator.mlp_ratio = g.mlp_ratio;
    cfg->generator.up_kernel = g.up_kernel;
    cfg->generator.dropout = 0.5; /* as decimals, not the float struct's roundings */
    cfg->generator.slope = 0.2;
    cfg->discriminator.base_width = d.base_width;
    cfg->discriminator.n_layers = d.n_layers;
    cfg->discriminator.norm_affine = d.norm_affine;
    cfg->train.batch = 1;
    cfg->train.epochs = 500;
    cfg->train.decay_from = 150;
    cfg->train.steps_per_epoch = 0;
    cfg->train.lr = 1e-4;
    cfg->train.beta1 = 0.5;
    cfg->train.beta2 = 0.999;
    cfg->train.eps = 1e-8;
    cfg->train.lambda = 100;
    cfg->train.fft_weight = 0.1;
    cfg->train.warmup_steps = 0;
    cfg->train.seed = 1;
    cfg->run.every = 1000;
    cfg->run.keep = 3;
    cfg->run.val_every = 1000;
    /* every string starts as a valid, owned value */
    static const struct {
        const char *key, *value;
    } strings[] = {
        {.key = "data.train", .value = ""},
        {.key = "data.train_blur", .value = ""},
        {.key = "data.train_sharp", .value = ""},
        {.key = "data.val", .value = ""},
        {.key = "data.val_blur", .value = ""},
        {.key = "data.val_sharp", .value = ""},
        {.key = "train.content_loss", .value = "perceptual"},
        {.key = "train.vgg_weights", .value = ""},
        {.key = "run.dir", .value = "runs/paper"},
        {.key = "device", .value = ""},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        dsd_status st = set_key(cfg, find_key(strings[i].key), strings[i].value, "defaults", err);
        if (st != DSD_OK) {
            dsd_config_free(cfg);
            return st;
        }
    }
    return DSD_OK;
}

dsd_generator_config dsd_config_generator(const dsd_config *c)
{
    dsd_generator_config g = dsd_generator_default_config();
    g.n_blocks = c->generator.n_blocks;
    g.base_width = c->generator.base_width;
    g.mlp_ratio = c->generator.mlp_ratio;
    g.up_kernel = c->generator.up_kernel;
    g.dropout = (float)c->generator.dropout;
    g.slope = (float)c->generator.slope;
    return g;
}

dsd_discriminator_config dsd_config_discriminator(const dsd_config *c)
{
    dsd_discriminator_config d = dsd_discriminator_default_config();
    d.base_width = c->discriminator.base_width;
    d.n_layers = c->discriminator.n_layers;
    d.norm_affine = c->discriminator.norm_affine;
    d.slope = (float)c->generator.slope;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Overrides */

dsd_status dsd_config_set(dsd_config *cfg, const char *assignment, dsd_error *err)
{
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (!eq || eq == assignment)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "--set %s: expected key=value (e.g. train.lr=2e-4)",
                        assignment ? assignment : "(null)");
    char name[96], where[160];
    size_t len = (size_t)(eq - assignment);
    snprintf(where, sizeof where, "--set %s", assignment);
    if (len >= sizeof name)
        return unknown_key("(too long)", where, err);
    memcpy(name, assignment, len);
    name[len] = '\0';
    const key_spec *k = find_key(name);
    if (!k)
        return unknown_key(name, where, err);
    return set_key(cfg, k, eq + 1, where, err);
}

/* ------------------------------------------------------------------------ */
/* Reading YAML */

typedef struct reader {
    dsd_yaml_reader y; /* the events (yaml_reader.h) */
    unsigned char seen[N_KEYS];
} reader;

static const char *event_text(const yaml_event_t *e)
{
    return (const char *)e->data.scalar.value;
}

/* When the current event opens a list or a mapping, reads on to its end, so
 * that a syntax error inside it ("lr: [1" never closed) is reported as one
 * rather than as a list where a value belongs. */
static dsd_status skip_collection(reader *r)
{
    int depth = 0;
    do {
        if (r->y.event.type == YAML_SEQUENCE_START_EVENT || r->y.event.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (r->y.event.type == YAML_SEQUENCE_END_EVENT ||
                 r->y.event.type == YAML_MAPPING_END_EVENT)
            depth--;
        if (depth > 0)
            DSD_TRY(dsd_yaml_next(&r->y));
    } while (depth > 0);
    return DSD_OK;
}

static dsd_status expect_error(reader *r, const char *what)
{
    yaml_mark_t mark = r->y.event.start_mark;
    DSD_TRY(skip_collection(r));
    char where[512];
    dsd_yaml_at(&r->y, &mark, where, sizeof where);
    return DSD_FAIL(r->y.err, DSD_ERR_CONFIG, "%s: expected %s", where, what);
}

/* The value event for key `name` (its key event at key_mark) is current. */
static dsd_status apply_value(reader *r, dsd_config *cfg, const char *name,
                              const yaml_mark_t *key_mark)
{
    char where[512];
    dsd_yaml_at(&r->y, key_mark, where, sizeof where);
    const key_spec *k = find_key(name);
    if (!k)
        return unknown_key(name, where, r->y.err);
    int idx = (int)(k - keys);
    if (r->seen[idx])
        return DSD_FAIL(r->y.err, DSD_ERR_CONFIG, "%s: %s is set twice", where, name);
    r->seen[idx] = 1;
    if (r->y.event.type != YAML_SCALAR_EVENT) {
        dsd_yaml_at(&r->y, &r->y.event.start_mark, where, sizeof where);
        const char *what = r->y.event.type == YAML_SEQUENCE_START_EVENT ? "list" : "mapping";
        DSD_TRY(skip_collection(r));
        return DSD_FAIL(r->y.err, DSD_ERR_CONFIG, "%s: %s takes a single value, not a %s", where,
                        name, what);
    }
    dsd_yaml_at(&r->y, &r->y.event.start_mark, where, sizeof where);
    return set_key(cfg, k, event_text(&r->y.event), where, r->y.err);
}

/* Whether some key lives in section name. */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].name, name, n) && keys[i].name[n] == '.')
            return 1;
    return 0;
}

static dsd_status read_section(reader *r, dsd_config *cfg, const char *section)
{
    for (;;) {
        DSD_TRY(dsd_yaml_next(&r->y));
        if (r->y.event.type == YAML_MAPPING_END_EVENT)
            return DSD_OK;
        if (r->y.event.type != YAML_SCALAR_EVENT)
            return expect_error(r, "a key");
        char name[128];
        snprintf(name, sizeof name, "%s.%s", section, event_text(&r->y.event));
        yaml_mark_t key_mark = r->y.event.start_mark;
        DSD_TRY(dsd_yaml_next(&r->y));
        DSD_TRY(apply_value(r, cfg, name, &key_mark));
    }
}

static dsd_status read_document(reader *r, dsd_config *cfg)
{
    DSD_TRY(dsd_yaml_next(&r->y)); /* stream start */
    DSD_TRY(dsd_yaml_next(&r->y));
    if (r->y.event.type == YAML_STREAM_END_EVENT)
        return DSD_OK; /* an empty file changes nothing */
    if (r->y.event.type != YAML_DOCUMENT_START_EVENT)
        return expect_error(r, "a document");
    DSD_TRY(dsd_yaml_next(&r->y));
    if (r->y.event.type == YAML_SCALAR_EVENT && !*event_text(&r->y.event))
        return DSD_OK; /* "---" alone */
    if (r->y.event.type != YAML_MAPPING_START_EVENT)
        return expect_error(r, "a mapping of sections (data:, generator:, train:, ...)");
    for (;;) {
        DSD_TRY(dsd_yaml_next(&r->y));
        if (r->y.event.type == YAML_MAPPING_END_EVENT)
            break;
        if (r->y.event.type != YAML_SCALAR_EVENT)
            return expect_error(r, "a section name");
        char section[64];
        snprintf(section, sizeof section, "%s", event_text(&r->y.event));
        yaml_mark_t key_mark = r->y.event.start_mark;
        DSD_TRY(dsd_yaml_next(&r->y));
        if (r->y.event.type == YAML_MAPPING_START_EVENT) {
            DSD_TRY(read_section(r, cfg, section));
        } else if (r->y.event.type == YAML_SCALAR_EVENT && find_key(section)) {
            DSD_TRY(apply_value(r, cfg, section, &key_mark)); /* top-level key: device */
        } else {
            char where[512];
            dsd_yaml_at(&r->y, &key_mark, where, sizeof where);
            DSD_TRY(skip_collection(r));
            if (r->y.event.type == YAML_SCALAR_EVENT && !is_section(section))
                return unknown_key(section, where, r->y.err);
            return DSD_FAIL(r->y.err, DSD_ERR_CONFIG, "%s: section '%s' must be a mapping of "
                            "keys", where, section);
        }
    }
    DSD_TRY(dsd_yaml_next(&r->y));
    if (r->y.event.type != YAML_DOCUMENT_END_EVENT)
        return expect_error(r, "the end of the document");
    DSD_TRY(dsd_yaml_next(&r->y));
    if (r->y.event.type != YAML_STREAM_END_EVENT)
        return expect_error(r, "a single document");
    return DSD_OK;
}

dsd_status dsd_config_load(dsd_config *cfg, const char *path, dsd_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) { /* fopen opens one for reading */
        fclose(f);
        return DSD_FAIL(err, DSD_ERR_IO, "%s: is a directory, not a configuration file", path);
    }
    reader r;
    memset(&r, 0, sizeof r);
    dsd_status st = dsd_yaml_reader_init(&r.y, path, f, "a configuration", err);
    if (st == DSD_OK)
        st = dsd_yaml_reader_finish(&r.y, read_document(&r, cfg));
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Cross-field checks */

/* A synthetic-blur range needs its low end set (0, or -1 for anxiety, is
 * "DeblurGAN's choice", which has no range), and a _max, when set, above it. */
static dsd_status check_blur_ranges(const dsd_config *c, const char *who, dsd_error *err)
{
    const struct {
        const char *name;
        double lo, hi, unset;
    } r[] = {
        {"blur_length", c->data.blur_length, c->data.blur_length_max, 0.0},
        {"exposure", c->data.exposure, c->data.exposure_max, 0.0},
        {"anxiety", c->data.anxiety, c->data.anxiety_max, -1.0},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        if (r[i].hi <= 0.0)
            continue;
        if (r[i].lo == r[i].unset)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.%s_max is set but data.%s is not: "
                            "set data.%s to the low end of the range", who, r[i].name,
                            r[i].name, r[i].name);
        if (r[i].hi < r[i].lo)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.%s_max %g is below data.%s %g", who,
                            r[i].name, r[i].hi, r[i].name, r[i].lo);
    }
    return DSD_OK;
}

dsd_status dsd_config_validate(const dsd_config *c, dsd_error *err)
{
    const char *who = "configuration";
    if (c->data.mode == DSD_DATA_PAIRED) {
        if (!*c->data.train_blur || !*c->data.train_sharp)
            return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.mode paired needs data.train_blur and "
                            "data.train_sharp", who);
    } else if (!*c->data.train) {
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.mode %s needs data.train (a folder)", who,
                        dsd_data_mode_name(c->data.mode));
    }
    if (c->data.mode == DSD_DATA_PAIRED && *c->data.val_blur && !*c->data.val_sharp)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.val_blur is set but data.val_sharp is "
                        "not", who);
    if (c->data.crop % 4 != 0)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: data.crop %d is not a multiple of 4 (the "
                        "generator downsamples twice)", who, c->data.crop);
    if (c->generator.up_kernel % 2 == 0)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: generator.up_kernel %d must be odd", who,
                        c->generator.up_kernel);
    if (c->generator.mlp_ratio > 4 * c->generator.base_width)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: generator.mlp_ratio %d exceeds the block width "
                        "%d", who, c->generator.mlp_ratio, 4 * c->generator.base_width);
    if (c->train.decay_from > c->train.epochs)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: train.decay_from %d is after train.epochs %d",
                        who, c->train.decay_from, c->train.epochs);
    if (!strcmp(c->train.content_loss, "perceptual") && !*c->train.vgg_weights)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: train.content_loss perceptual needs "
                        "train.vgg_weights, a VGG-19 safetensors file (doc/vgg.md explains where "
                        "to get one), or choose train.content_loss l1, mse, fft or l1+fft", who);
    if (!*c->run.dir)
        return DSD_FAIL(err, DSD_ERR_CONFIG, "%s: run.dir is empty", who);
    return check_blur_ranges(c, who, err);
}

/* ------------------------------------------------------------------------ */
/* Writing YAML */

typedef struct writer {
    yaml_emitter_t emitter;
    int failed;
} writer;

static void emit(writer *w, yaml_event_t *e)
{
    if (!w->failed && !yaml_emitter_emit(&w->emitter, e))
        w->failed = 1;
}

static void emit_scalar(writer *w, const char *text, int plain)
{
    yaml_event_t e;
    yaml_scalar_event_initialize(&e, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), plain,
                                 1, plain ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    emit(w, &e);
}

static void emit_mapping(writer *w, int start)
{
    yaml_event_t e;
    if (start)
        yaml_mapping_start_event_initialize(&e, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    else
        yaml_mapping_end_event_initialize(&e);
    emit(w, &e);
}

/* Shortest "%.*g" that reads back as the same double. */
static void format_double(double x, char *buf, size_t size)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

static void value_text(const dsd_config *cfg, const key_spec *k, char *buf, size_t size,
                       const char **str)
{
    *str = NULL;
    switch (k->type) {
    case KEY_INT: snprintf(buf, size, "%d", *(const int *)cfield(cfg, k)); break;
    case KEY_LONG: snprintf(buf, size, "%lld", *(const long long *)cfield(cfg, k)); break;
    case KEY_DOUBLE: format_double(*(const double *)cfield(cfg, k), buf, size); break;
    case KEY_BOOL: snprintf(buf, size, "%s", *(const int *)cfield(cfg, k) ? "true" : "false"); break;
    case KEY_MODE: snprintf(buf, size, "%s", dsd_data_mode_name(*(const dsd_data_mode *)cfield(cfg, k))); break;
    case KEY_STRING: *str = *(char *const *)cfield(cfg, k); if (!*str) *str = ""; break;
    }
}

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    FILE *f = data;
    return fwrite(buffer, 1, size, f) == size;
}

dsd_status dsd_config_write(const dsd_config *cfg, FILE *out, dsd_error *err)
{
    writer w = {0};
    if (!yaml_emitter_initialize(&w.emitter))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot start the YAML emitter");
    yaml_emitter_set_output(&w.emitter, write_handler, out);
    yaml_emitter_set_unicode(&w.emitter, 1);
    yaml_event_t e;
    yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING);
    emit(&w, &e);
    yaml_document_start_event_initialize(&e, NULL, NULL, NULL, 1);
    emit(&w, &e);
    emit_mapping(&w, 1);
    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        size_t slen = dot ? (size_t)(dot - k->name) : 0;
        if (strlen(section) != slen || strncmp(section, k->name, slen)) {
            if (*section)
                emit_mapping(&w, 0);
            section[0] = '\0';
            if (dot) {
                memcpy(section, k->name, slen);
                section[slen] = '\0';
                emit_scalar(&w, section, 1);
                emit_mapping(&w, 1);
            }
        }
        char buf[64];
        const char *str;
        value_text(cfg, k, buf, sizeof buf, &str);
        emit_scalar(&w, dot ? dot + 1 : k->name, 1);
        /* strings are quoted, so a path like "yes" or "1e3" stays a string */
        emit_scalar(&w, str ? str : buf, str == NULL);
    }
    if (*section)
        emit_mapping(&w, 0);
    emit_mapping(&w, 0);
    yaml_document_end_event_initialize(&e, 1);
    emit(&w, &e);
    yaml_stream_end_event_initialize(&e);
    emit(&w, &e);
    int failed = w.failed || !yaml_emitter_flush(&w.emitter);
    const char *problem = w.emitter.problem;
    dsd_status st = DSD_OK;
    if (failed)
        st = DSD_FAIL(err, DSD_ERR_IO, "writing the configuration failed: %s",
                      problem ? problem : "write error");
    yaml_emitter_delete(&w.emitter);
    return st;
}

dsd_status dsd_config_to_string(const dsd_config *cfg, char **out, dsd_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot buffer the configuration");
    dsd_status st = dsd_config_write(cfg, f, err);
    if (fclose(f) != 0 && st == DSD_OK)
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot buffer the configuration");
    if (st != DSD_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return DSD_OK;
}

dsd_status dsd_config_save(const dsd_config *cfg, const char *path, dsd_error *err)
{
    char *text;
    DSD_TRY(dsd_config_to_string(cfg, &text, err));
    const void *parts[] = {text};
    size_t sizes[] = {strlen(text)};
    dsd_status st = dsd_write_file_atomic(path, parts, sizes, 1, err);
    free(text);
    return st;
}
