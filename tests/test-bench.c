/*
 * test-bench.c: the dsdeblur-bench tool (tools/dsdeblur-bench.c) end to end,
 * at tiny sizes so it takes seconds: runs the built tool, checks its exit
 * status, parses its JSON with libyaml (JSON is YAML flow syntax) and checks
 * the documented fields (doc/dsdeblur-bench.1): the schema name, the device
 * block, the networks, the repetitions, median/min/max against the list of
 * times, the analytic conv FLOP count against a hand count, that the work
 * model still matches the library's kernel routing (rates present, no
 * mismatch), and that the training step is the real trainer step (two Adam
 * launches: discriminator and generator). Also: the perceptual loss with the
 * random VGG file, the temporary folder removed afterwards, usage errors
 * (exit 2) and runtime errors (exit 1); the report file's rules (an existing
 * --json only with --force, a -c file never, in dsdeblur-bench-ops too) and a
 * FIFO as --vgg refused, not waited on; --tune writing a device profile
 * into the cache directory that the next run takes. It measures nothing
 * itself.
 * Run from the build directory (make check does), where tools/dsdeblur-bench
 * lives; it uses the default OpenCL device (PoCL on CI).
 */
#include <config.h>

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

static char tmp_dir[64];

/* The small networks every run here uses. */
#define TINY "--set generator.base_width=8 --set generator.n_blocks=1 " \
             "--set generator.mlp_ratio=4 --set discriminator.base_width=8"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "%s: %s", path, strerror(errno));
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    ck_assert(size >= 0 && fseek(f, 0, SEEK_SET) == 0);
    char *buf = malloc((size_t)size + 1);
    ck_assert(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    buf[size] = '\0';
    fclose(f);
    return buf;
}

/* Runs the tool with args (TMPDIR = tmp_dir/t, so its temporary folder can be
 * checked), stdout/stderr into tmp_dir/out, tmp_dir/err; returns the exit
 * status. */
static int run_bench_env(const char *env, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/t && %s TMPDIR=%s/t timeout 600 "
             "./tools/dsdeblur-bench %s >%s/out 2>%s/err", tmp_dir, env, tmp_dir, args, tmp_dir,
             tmp_dir);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

static int run_bench(const char *args)
{
    return run_bench_env("", args);
}

static char *output(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return slurp(path);
}

/* Nothing left in the tool's TMPDIR. */
static void check_temp_removed(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/t", tmp_dir);
    DIR *d = opendir(path);
    ck_assert_msg(d, "%s: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        ck_assert_msg(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."),
                      "the tool left %s/%s behind", path, e->d_name);
    closedir(d);
}

/* ------------------------------------------------------------------------ */
/* A parsed JSON document and lookups by path */

typedef struct json_doc {
    yaml_document_t doc;
    char *text;
} json_doc;

static void json_load(json_doc *j, const char *path)
{
    j->text = slurp(path);
    yaml_parser_t p;
    ck_assert(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)j->text, strlen(j->text));
    int ok = yaml_parser_load(&p, &j->doc);
    ck_assert_msg(ok, "%s does not parse: %s at line %zu", path, p.problem ? p.problem : "?",
                  p.problem_mark.line + 1);
    ck_assert_msg(yaml_document_get_root_node(&j->doc), "%s is empty", path);
    yaml_parser_delete(&p);
}

static void json_free(json_doc *j)
{
    yaml_document_delete(&j->doc);
    free(j->text);
}

/* The member key of mapping node m, or NULL. */
static yaml_node_t *member(json_doc *j, yaml_node_t *m, const char *key)
{
    ck_assert_msg(m && m->type == YAML_MAPPING_NODE, "looking up '%s' in a non-object", key);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&j->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
            return yaml_document_get_node(&j->doc, p->value);
    }
    return NULL;
}

/* Node at a dotted path from the root; "inference.0.width" indexes arrays. */
static yaml_node_t *at(json_doc *j, const char *path)
{
    yaml_node_t *n = yaml_document_get_root_node(&j->doc);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *part = strtok(buf, "."); part; part = strtok(NULL, ".")) {
        ck_assert_msg(n, "%s: missing before '%s'", path, part);
        if (n->type == YAML_SEQUENCE_NODE) {
            long i = strtol(part, NULL, 10);
            long len = n->data.sequence.items.top - n->data.sequence.items.start;
            ck_assert_msg(i >= 0 && i < len, "%s: index %ld of %ld", path, i, len);
            n = yaml_document_get_node(&j->doc, n->data.sequence.items.start[i]);
        } else {
            n = member(j, n, part);
        }
    }
    ck_assert_msg(n, "%s: missing", path);
    return n;
}

static const char *str_at(json_doc *j, const char *path)
{
    yaml_node_t *n = at(j, path);
    ck_assert_msg(n->type == YAML_SCALAR_NODE, "%s is not a scalar", path);
    return (const char *)n->data.scalar.value;
}

static double num_at(json_doc *j, const char *path)
{
    const char *s = str_at(j, path);
    char *end;
    double v = strtod(s, &end);
    ck_assert_msg(*s && !*end, "%s = '%s' is not a number", path, s);
    return v;
}

static long len_at(json_doc *j, const char *path)
{
    yaml_node_t *n = at(j, path);
    ck_assert_msg(n->type == YAML_SEQUENCE_NODE, "%s is not an array", path);
    return n->data.sequence.items.top - n->data.sequence.items.start;
}

/* Index of the kernel called name in <prefix>.profile.kernels, or -1. */
static int kernel_index(json_doc *j, const char *prefix, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s.profile.kernels", prefix);
    long n = len_at(j, path);
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s.profile.kernels.%ld.name", prefix, i);
        if (!strcmp(str_at(j, path), name))
            return (int)i;
    }
    return -1;
}

/* median/min/max consistent with times_s, reps entries, positive. */
static void check_times(json_doc *j, const char *prefix, int reps)
{
    char path[128];
    snprintf(path, sizeof path, "%s.times_s", prefix);
    ck_assert_int_eq(len_at(j, path), reps);
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < reps; i++) {
        snprintf(path, sizeof path, "%s.times_s.%d", prefix, i);
        double t = num_at(j, path);
        ck_assert_msg(t > 0, "%s = %g", path, t);
        lo = fmin(lo, t);
        hi = fmax(hi, t);
    }
    snprintf(path, sizeof path, "%s.min_s", prefix);
    ck_assert_msg(num_at(j, path) == lo, "%s %g, smallest time %g", path, num_at(j, path), lo);
    snprintf(path, sizeof path, "%s.max_s", prefix);
    ck_assert_msg(num_at(j, path) == hi, "%s %g, largest time %g", path, num_at(j, path), hi);
    snprintf(path, sizeof path, "%s.median_s", prefix);
    double med = num_at(j, path);
    ck_assert_msg(med >= lo && med <= hi, "%s %g outside [%g, %g]", path, med, lo, hi);
    snprintf(path, sizeof path, "%s.profile.wall_s", prefix);
    ck_assert_msg(num_at(j, path) == med, "%s is not the median run's time", path);
    snprintf(path, sizeof path, "%s.profile.kernels", prefix);
    long nk = len_at(j, path);
    ck_assert_msg(nk > 0, "%s is empty", path);
    double prev = INFINITY;
    for (long i = 0; i < nk; i++) {
        snprintf(path, sizeof path, "%s.profile.kernels.%ld.calls", prefix, i);
        ck_assert_msg(num_at(j, path) >= 1, "%s < 1", path);
        snprintf(path, sizeof path, "%s.profile.kernels.%ld.total_ms", prefix, i);
        double ms = num_at(j, path);
        ck_assert_msg(ms >= 0 && ms <= prev, "%s = %g: not sorted by time", path, ms);
        prev = ms;
        snprintf(path, sizeof path, "%s.profile.kernels.%ld.share", prefix, i);
        (void)at(j, path);
        snprintf(path, sizeof path, "%s.profile.kernels.%ld.gbps", prefix, i);
        (void)at(j, path);
    }
}

/* ------------------------------------------------------------------------ */

START_TEST(test_bench_tiny)
{
    char args[1024], json[256];
    snprintf(json, sizeof json, "%s/r.json", tmp_dir);
    snprintf(args, sizeof args, "--size 64x48 --size 32x16 --train-size 32 --reps 2 "
             "--warmup 1 --content l1 " TINY " --json %s", json);
    int rc = run_bench(args);
    char *err = output("err");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(err);
    check_temp_removed();
    char *out = output("out");
    ck_assert_msg(strstr(out, "inference 64x48: median") && strstr(out, "inference 32x16: median")
                  && strstr(out, "training step 32x32 batch 1: median")
                  && strstr(out, "libdsdeblur " PACKAGE_VERSION), "stdout:\n%s", out);
    free(out);

    json_doc j;
    json_load(&j, json);
    ck_assert_str_eq(str_at(&j, "schema"), "dsdeblur-bench/1");
    ck_assert_str_eq(str_at(&j, "version"), PACKAGE_VERSION);
    const char *ts = str_at(&j, "timestamp"); /* 2025-01-31T12:34:56Z */
    ck_assert_msg(strlen(ts) == 20 && ts[4] == '-' && ts[10] == 'T' && ts[19] == 'Z',
                  "timestamp '%s'", ts);
    ck_assert_msg(*str_at(&j, "device.name") && *str_at(&j, "device.platform") &&
                  *str_at(&j, "device.opencl_c_version"), "empty device fields");
    (void)str_at(&j, "device.vendor");
    (void)str_at(&j, "device.driver");
    (void)str_at(&j, "device.version");
    const char *type = str_at(&j, "device.type");
    ck_assert_msg(!strcmp(type, "cpu") || !strcmp(type, "gpu") || !strcmp(type, "accelerator"),
                  "device.type '%s'", type);
    ck_assert(num_at(&j, "device.compute_units") >= 1);
    ck_assert(num_at(&j, "device.global_mem_bytes") > 0);
    ck_assert(num_at(&j, "device.max_alloc_bytes") > 0);

    dsd_generator_config gc = dsd_generator_default_config();
    gc.base_width = 8;
    gc.n_blocks = 1;
    gc.mlp_ratio = 4;
    ck_assert_int_eq(num_at(&j, "generator.base_width"), 8);
    ck_assert_int_eq(num_at(&j, "generator.n_blocks"), 1);
    ck_assert_int_eq(num_at(&j, "generator.mlp_ratio"), 4);
    ck_assert_int_eq(num_at(&j, "generator.params"), (double)dsd_generator_param_count(&gc));
    ck_assert_int_eq(num_at(&j, "discriminator.base_width"), 8);
    ck_assert(strstr(str_at(&j, "config_yaml"), "base_width: 8"));
    ck_assert_int_eq(num_at(&j, "warmup"), 1);
    ck_assert_int_eq(num_at(&j, "reps"), 2);
    ck_assert_str_eq(str_at(&j, "reps_default"), "false");

    ck_assert_int_eq(len_at(&j, "inference"), 2);
    ck_assert_int_eq(num_at(&j, "inference.0.width"), 64);
    ck_assert_int_eq(num_at(&j, "inference.0.height"), 48);
    ck_assert_int_eq(num_at(&j, "inference.1.width"), 32);
    ck_assert_int_eq(num_at(&j, "inference.1.height"), 16);
    check_times(&j, "inference.0", 2);
    check_times(&j, "inference.1", 2);
    /* Hand count of the multiply-adds at 64x48 (B 8, C 32, hidden 8, K 3):
     * head 8*3072*3*49 = 3,612,672; down.0 16*768*8*9 = 884,736; down.1
     * 32*192*16*9 = 884,736; block: fc 4*8*32 = 1,024, sa 192*2*49 = 18,816,
     * depthwise 3*32*192*9 = 165,888, pointwise 3*32*192*32 = 589,824; up.0
     * 64*192*32*9 = 3,538,944; up.1 32*768*16*9 = 3,538,944; tail 3*3072*8*49
     * = 3,612,672: 16,848,256 MACs, 33,696,512 FLOPs. */
    ck_assert_msg(num_at(&j, "inference.0.conv_flop") == 33696512.0, "conv_flop %.0f",
                  num_at(&j, "inference.0.conv_flop"));
    double gf = num_at(&j, "inference.0.gflops");
    double want = 33696512.0 / num_at(&j, "inference.0.median_s") * 1e-9;
    ck_assert_msg(fabs(gf - want) <= 1e-6 * want, "gflops %g, conv_flop / median_s %g", gf, want);
    /* the work model agrees with the library's routing: the GEMM has a rate */
    ck_assert_str_eq(str_at(&j, "inference.0.profile.model_mismatch"), "false");
    int k = kernel_index(&j, "inference.0", "clblast_sgemm");
    ck_assert_msg(k >= 0, "no clblast_sgemm in the inference profile");
    char path[128];
    snprintf(path, sizeof path, "inference.0.profile.kernels.%d.gflops", k);
    ck_assert_msg(num_at(&j, path) > 0, "%s", path);

    ck_assert_int_eq(num_at(&j, "train.width"), 32);
    ck_assert_int_eq(num_at(&j, "train.batch"), 1);
    ck_assert_str_eq(str_at(&j, "train.content_loss"), "l1");
    check_times(&j, "train", 2);
    k = kernel_index(&j, "train", "adam_step");
    ck_assert_msg(k >= 0, "no adam_step in the training profile");
    snprintf(path, sizeof path, "train.profile.kernels.%d.calls", k);
    ck_assert_msg(num_at(&j, path) == 2, "adam_step calls %g, want 2 (D and G)",
                  num_at(&j, path));
    ck_assert_msg(kernel_index(&j, "train", "l1_loss_backward") >= 0, "no L1 content loss");
    json_free(&j);
}
END_TEST

/* Default content loss (perceptual) with the random VGG-19 file; batch 2;
 * no JSON file left half-written beside the result. */
START_TEST(test_bench_perceptual)
{
    char args[1024], json[256];
    snprintf(json, sizeof json, "%s/p.json", tmp_dir);
    snprintf(args, sizeof args, "--size 16x8 --train-size 32 --batch 2 --reps 1 " TINY
             " --json %s", json);
    int rc = run_bench(args);
    char *err = output("err");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(err);
    check_temp_removed();
    char *out = output("out");
    ck_assert_msg(strstr(out, "RANDOM VGG-19 weights"), "stdout:\n%s", out);
    free(out);
    json_doc j;
    json_load(&j, json);
    ck_assert_str_eq(str_at(&j, "train.content_loss"), "perceptual");
    ck_assert_str_eq(str_at(&j, "train.vgg_weights"), "random");
    ck_assert_int_eq(num_at(&j, "train.batch"), 2);
    ck_assert_int_eq(num_at(&j, "reps"), 1);
    check_times(&j, "train", 1);
    /* VGG to conv3_3 has two pools: run on the fake and the real image, and
     * backpropagated through the fake one */
    int k = kernel_index(&j, "train", "maxpool2x2_forward");
    ck_assert_msg(k >= 0, "no VGG pool in the training profile");
    char path[128];
    snprintf(path, sizeof path, "train.profile.kernels.%d.calls", k);
    ck_assert_msg(num_at(&j, path) == 4, "maxpool2x2_forward calls %g, want 4",
                  num_at(&j, path));
    ck_assert_msg(kernel_index(&j, "train", "mse_loss_backward") >= 0,
                  "no feature MSE backward in the training profile");
    json_free(&j);
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "temporary %s left", e->d_name);
    closedir(d);
}
END_TEST

START_TEST(test_bench_errors)
{
    const char *usage[] = {
        "--size 63x48", "--size 64", "--size 64x48x2", "--size 4x4", "--bogus", "--reps 0",
        "--reps x", "--warmup 0", "--batch 0", "--content nope", "--json",
        "--set generator.nope=1", "--set generator.base_width=zero",
        "--set generator.up_kernel=2", "--config /nonexistent/bench.yaml", "--tune-seconds 0",
        "--tune-candidates 0", "--tune-seconds"};
    for (int i = 0; i < TU_COUNT(usage); i++) {
        int rc = run_bench(usage[i]);
        char *err = output("err");
        ck_assert_msg(rc == 2, "'%s': exit %d, want 2 (stderr: %s)", usage[i], rc, err);
        ck_assert_msg(strstr(err, "dsdeblur-bench: error"), "'%s': stderr '%s'", usage[i], err);
        free(err);
        check_temp_removed();
    }
    ck_assert_int_eq(run_bench("--help"), 0);
    /* runtime errors: no such device; an unwritable JSON path; VGG file missing */
    const char *runtime[] = {
        "--device no-such-device-anywhere --size 16x8 --no-train",
        "--size 16x8 --no-train --reps 1 " TINY " --json /nonexistent-dir/r.json",
        "--size 16x8 --reps 1 --train-size 32 " TINY " --vgg /nonexistent/vgg.safetensors"};
    for (int i = 0; i < TU_COUNT(runtime); i++) {
        int rc = run_bench(runtime[i]);
        char *err = output("err");
        ck_assert_msg(rc == 1, "'%s': exit %d, want 1 (stderr: %s)", runtime[i], rc, err);
        ck_assert_msg(strstr(err, "error"), "'%s': stderr '%s'", runtime[i], err);
        free(err);
        check_temp_removed();
    }
}
END_TEST

/* The --json file's rules, checked before any benchmark runs. */
START_TEST(test_bench_report_file)
{
    char json[256], yaml[256], fifo[256], args[1024];
    snprintf(json, sizeof json, "%s/old.json", tmp_dir);
    snprintf(yaml, sizeof yaml, "%s/c.yaml", tmp_dir);
    tu_write_file(json, "keep", 4);
    tu_write_file(yaml, "train:\n  batch: 1\n", 19);
    char cases[2][1024];
    const char *messages[2] = {"exists; use --force", "refusing to overwrite an input"};
    snprintf(cases[0], sizeof cases[0], "--size 16x8 --no-train --json %s", json);
    snprintf(cases[1], sizeof cases[1], "--size 16x8 --no-train --force -c %s --json %s", yaml,
             yaml);
    for (int i = 0; i < 2; i++) {
        int rc = run_bench(cases[i]);
        char *err = output("err");
        ck_assert_msg(rc == 1 && strstr(err, messages[i]), "'%s': exit %d, stderr '%s'",
                      cases[i], rc, err);
        free(err);
        check_temp_removed();
    }
    char *kept = tu_read_file(json, NULL), *config = tu_read_file(yaml, NULL);
    ck_assert_str_eq(kept, "keep");
    ck_assert_str_eq(config, "train:\n  batch: 1\n");
    free(kept);
    free(config);

    /* dsdeblur-bench-ops: the same refusal, before any device work */
    snprintf(args, sizeof args, "--reps 1 --json %s", json);
    ck_assert_int_eq(tu_run_tool_limit("dsdeblur-bench-ops", args, tmp_dir, 60), 1);
    char *err = output("err");
    ck_assert_msg(strstr(err, "exists; use --force"), "%s", err);
    free(err);

    /* a FIFO as the VGG weights: refused at once */
    snprintf(fifo, sizeof fifo, "%s/vgg.safetensors", tmp_dir);
    tu_mkfifo(fifo);
    snprintf(args, sizeof args, "--size 16x8 --reps 1 --train-size 32 " TINY " --vgg %s", fifo);
    ck_assert_int_eq(run_bench(args), 1);
    err = output("err");
    ck_assert_msg(strstr(err, "vgg.safetensors: is a FIFO"), "%s", err);
    free(err);
}
END_TEST

/* --tune: measures candidates on the tiny networks' products, writes the
 * profile into the cache directory (XDG_CACHE_HOME here; PoCL keeps its own
 * kernel cache where it was), and the next run's context takes it; a tight
 * --tune-seconds stops early and says so, and still saves the best so far. */
START_TEST(test_bench_tune)
{
    char pocl[1200], env[4096], cache[256];
    const char *pc = getenv("POCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    if (pc && *pc)
        snprintf(pocl, sizeof pocl, "%s", pc);
    else if (xdg && *xdg)
        snprintf(pocl, sizeof pocl, "%s/pocl/kcache", xdg);
    else
        snprintf(pocl, sizeof pocl, "%s/.cache/pocl/kcache", getenv("HOME") ? getenv("HOME") : "");
    snprintf(cache, sizeof cache, "%s/cache", tmp_dir);
    snprintf(env, sizeof env, "POCL_CACHE_DIR='%s' XDG_CACHE_HOME='%s' DSDEBLUR_PROFILE=", pocl,
             cache);
    const char *args = "--tune --tune-candidates 3 --train-size 32 --content l1 " TINY;
    int rc = run_bench_env(env, args);
    char *out = output("out"), *err = output("err");
    ck_assert_msg(rc == 0, "exit %d\nstdout: %s\nstderr: %s", rc, out, err);
    ck_assert_msg(strstr(out, "tuning: GEMMs of one training pass at 32x32") &&
                      strstr(out, "in effect") && strstr(out, "fastest: ") &&
                      strstr(out, "largest error") && strstr(out, "not tried (--tune-candidates 3)"),
                  "%s", out);
    char want[512];
    snprintf(want, sizeof want, "written to %s/dsdeblur/profiles/", cache);
    const char *at_path = strstr(out, want);
    ck_assert_msg(at_path, "'%s' not in %s", want, out);
    char path[1024];
    ck_assert(sscanf(at_path + strlen("written to "), "%1023s", path) == 1);
    dsd_device_profile p;
    dsd_error e;
    TU_HOST_OK(dsd_device_profile_load(path, &p, &e), e);
    ck_assert_msg(!strncmp(p.name, "tuned: ", 7), "%s", p.name);
    ck_assert(*p.device && *p.driver && strlen(p.tuned_at) == 20);
    free(out);
    free(err);

    /* the next context on this device takes it */
    rc = run_bench_env(env, "--size 16x8 --no-train --reps 1 " TINY);
    out = output("out");
    char line[1400];
    snprintf(line, sizeof line, "device profile: %s (%s)", p.name, path);
    ck_assert_msg(rc == 0 && strstr(out, line), "exit %d; '%s' not in %s", rc, line, out);
    free(out);

    /* a tight time bound: stops, says so, still saves (the paper's networks at
     * 64x64, whose candidates take well over the bound even with every kernel
     * already compiled; the tiny ones can all finish within a second) */
    ck_assert_int_eq(remove(path), 0);
    rc = run_bench_env(env, "--tune --tune-seconds 1 --train-size 64 --content l1");
    out = output("out");
    ck_assert_msg(rc == 0 && strstr(out, "stopped after --tune-seconds 1") &&
                      tu_file_exists(path), "exit %d: %s", rc, out);
    free(out);
    check_temp_removed();
}
END_TEST

static void remove_tree(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "test-bench: could not remove %s\n", path);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/dsd-bench-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bench_tiny);
    tcase_add_test(tc, test_bench_perceptual);
    tcase_add_test(tc, test_bench_errors);
    tcase_add_test(tc, test_bench_report_file);
    tcase_add_test(tc, test_bench_tune);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* the tool creates the contexts, in its own process */
    remove_tree(tmp_dir);
    return status;
}
