/*
 * test-run.c: the dsdeblur-run tool and dsdeblur-eval's model mode end to
 * end. Writes a tiny generator (B 8, r 4, 1 block) with dsd_generator_save
 * and test images into a temporary folder, runs the built tools (from the
 * build directory, as make check does) and checks:
 *   - outputs written with their inputs' sizes, for files and folders, PNG by
 *     default, JPEG via --format jpg or an -o FILE.jpg, and the pixels equal
 *     to dsd_deblur_image's (the tool adds nothing of its own); --time lines;
 *   - an existing output refused without --force (one line per image, exit 1)
 *     and replaced with it;
 *   - an input never overwritten, even with --force: -o naming the input
 *     itself, the input's folder, or a hard link to it;
 *   - bad inputs (not an image, truncated PNG, 0-byte file, a 100000x100000
 *     header, a folder named like an image inside an input folder, a missing
 *     file) each give one stderr line naming the file, exit 1, and the good
 *     image is still written;
 *   - a FIFO named like an image (in an input folder or on the command line)
 *     is one line and skipped, the other images written; a FIFO as -m is
 *     refused; neither hangs; a killed run's temporaries in the output folder
 *     are removed;
 *   - no -m: the build tree's bundled model (data/dsdeblur-default.safetensors)
 *     is found and named on the first stdout line ("model: ..."; not with
 *     -q); a copy of the program in another tree's tools/ takes that tree's
 *     data/ model, and without one names the places it looked at; with
 *     $DSDEBLUR_DEFAULT_MODEL naming a missing file: the message and exit 2;
 *     usage errors 2;
 *   - --progress (what a terminal gets): "[i/n] name S.S s" per image on
 *     stderr; none without it on a pipe, none with -q;
 *   - SIGINT during a folder run: the image at hand finished, "interrupted: N
 *     of M images finished (last written: X)" and exit 130;
 *   - dsdeblur-eval -m: the table's rows carry the library's input and output
 *     PSNR/SSIM, the parameter count is printed, CSV and JSON have their
 *     columns and keys; --report DIR writes index.html with the metrics table
 *     (the library's scores) and three 1:1 crops per image (the sharp crop
 *     equal to the window of the sharp image the page names, which holds the
 *     image's textured patch), refuses to replace them without --force, and
 *     is a usage error in folder mode.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp_dir[64];
static char model_path[128];

/* tmp_dir/name, read whole (tu_read_file); free() it. */
static char *tmp_file(const char *name)
{
    return tu_read_file(tu_path(tmp_dir, name), NULL);
}

static void test_image(dsd_image *img, int w, int h, int seed)
{
    dsd_error e;
    ck_assert(dsd_image_alloc(img, w, h, &e) == DSD_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img->data[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((x * (7 + seed) + y * (3 + c) + seed * 40 + ((x * y) % 17) * 5) & 255);
}

static void write_image(const char *rel, int w, int h, int seed)
{
    dsd_image img = {0};
    dsd_error e;
    test_image(&img, w, h, seed);
    ck_assert_msg(dsd_image_save(tu_path(tmp_dir, rel), &img, &e) == DSD_OK, "%s", e.message);
    dsd_image_free(&img);
}

static void check_size(const char *rel, int w, int h)
{
    dsd_image img = {0};
    dsd_error e;
    ck_assert_msg(dsd_image_load(tu_path(tmp_dir, rel), &img, &e) == DSD_OK, "%s", e.message);
    ck_assert_msg(img.width == w && img.height == h, "%s is %d x %d, want %d x %d", rel,
                  img.width, img.height, w, h);
    dsd_image_free(&img);
}

/* Called at the start of each test (Check's asserts need a running test). */
static void make_model(void)
{
    if (model_path[0])
        return;
    dsd_context *ctx = tu_ctx();
    dsd_generator g;
    dsd_generator_config cfg = dsd_generator_default_config();
    cfg.base_width = 8;
    cfg.mlp_ratio = 4;
    cfg.n_blocks = 1;
    TU_OK(dsd_generator_init(ctx, &g, &cfg));
    TU_OK(dsd_generator_init_weights(ctx, &g, 3));
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", tmp_dir);
    TU_OK(dsd_generator_save(ctx, &g, model_path, DSD_STORAGE_F32));
    dsd_generator_free(ctx, &g);
}

/* The library's result for one image, to compare the tool's output with. */
static void library_deblur(const dsd_image *in, dsd_image *out)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator g;
    dsd_generator_config cfg;
    dsd_error e;
    ck_assert(dsd_generator_file_config(model_path, &cfg, &e) == DSD_OK);
    TU_OK(dsd_generator_init(ctx, &g, &cfg));
    TU_OK(dsd_generator_load(ctx, &g, model_path));
    TU_OK(dsd_deblur_image(ctx, &g, in, out, NULL, NULL));
    dsd_generator_free(ctx, &g);
}

START_TEST(test_run_outputs)
{
    make_model();
    char args[2048];
    ck_assert(mkdir(tu_path(tmp_dir, "imgs"), 0755) == 0);
    write_image("a.png", 37, 29, 1);
    write_image("b.jpg", 20, 16, 2);
    write_image("imgs/c.png", 13, 11, 3);
    write_image("imgs/d.jpeg", 9, 8, 4);
    snprintf(args, sizeof args, "-m %s -o %s --time %s %s %s", model_path, tu_path(tmp_dir, "res/"),
             tu_path(tmp_dir, "a.png"), tu_path(tmp_dir, "b.jpg"), tu_path(tmp_dir, "imgs"));
    int rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);
    ck_assert_msg(err[0] == '\0', "stderr not empty:\n%s", err);
    check_size("res/a.png", 37, 29);
    check_size("res/b.png", 20, 16);
    check_size("res/c.png", 13, 11);
    check_size("res/d.png", 9, 8);
    ck_assert_msg(strstr(out, "37 x 29, device ") && strstr(out, "end to end") &&
                      strstr(out, "4 images, mean device"),
                  "--time output:\n%s", out);
    free(out);
    free(err);

    /* the tool's pixels are the library's */
    dsd_image in = {0}, want = {0}, got = {0};
    dsd_error e;
    ck_assert(dsd_image_load(tu_path(tmp_dir, "a.png"), &in, &e) == DSD_OK);
    ck_assert(dsd_image_load(tu_path(tmp_dir, "res/a.png"), &got, &e) == DSD_OK);
    library_deblur(&in, &want);
    ck_assert_msg(!memcmp(want.data, got.data, dsd_image_numel(&in)),
                  "res/a.png differs from dsd_deblur_image");
    size_t changed = 0;
    for (size_t i = 0; i < dsd_image_numel(&in); i++)
        changed += in.data[i] != got.data[i];
    ck_assert_msg(changed > dsd_image_numel(&in) / 2, "only %zu values changed", changed);
    dsd_image_free(&in);
    dsd_image_free(&want);
    dsd_image_free(&got);

    /* one file to one JPEG file; --format jpg for a folder; tiles */
    snprintf(args, sizeof args, "-m %s -o %s %s", model_path, tu_path(tmp_dir, "single.jpg"),
             tu_path(tmp_dir, "a.png"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", args, tmp_dir), 0);
    check_size("single.jpg", 37, 29);
    char *jpg = tmp_file("single.jpg");
    ck_assert_msg((unsigned char)jpg[0] == 0xFF && (unsigned char)jpg[1] == 0xD8, "not a JPEG");
    free(jpg);
    snprintf(args, sizeof args, "-m %s --format jpg --tile 16 -o %s %s", model_path,
             tu_path(tmp_dir, "outj"), tu_path(tmp_dir, "imgs"));
    ck_assert(mkdir(tu_path(tmp_dir, "outj"), 0755) == 0); /* an existing folder without '/' */
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", args, tmp_dir), 0);
    check_size("outj/c.jpg", 13, 11);
    check_size("outj/d.jpg", 9, 8);

    /* existing outputs: refused one by one, then replaced with --force */
    snprintf(args, sizeof args, "-m %s -o %s %s %s", model_path, tu_path(tmp_dir, "res/"),
             tu_path(tmp_dir, "a.png"), tu_path(tmp_dir, "imgs"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", args, tmp_dir), 1);
    err = tmp_file("err");
    ck_assert_msg(tu_count_lines(err) == 3 && strstr(err, "res/a.png exists; use --force") &&
                      strstr(err, "res/c.png exists") && strstr(err, "res/d.png exists"),
                  "stderr:\n%s", err);
    free(err);
    ck_assert(remove(tu_path(tmp_dir, "res/c.png")) == 0);
    snprintf(args, sizeof args, "-m %s -o %s --force %s %s", model_path, tu_path(tmp_dir, "res/"),
             tu_path(tmp_dir, "a.png"), tu_path(tmp_dir, "imgs"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", args, tmp_dir), 0);
    check_size("res/c.png", 13, 11);

    /* two inputs with one stem: the second is refused */
    snprintf(args, sizeof args, "-m %s -o %s %s %s", model_path, tu_path(tmp_dir, "dup/"),
             tu_path(tmp_dir, "a.png"), tu_path(tmp_dir, "a.png"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", args, tmp_dir), 1);
    err = tmp_file("err");
    ck_assert_msg(tu_count_lines(err) == 1 && strstr(err, "already writes"), "stderr:\n%s", err);
    free(err);
}
END_TEST

START_TEST(test_never_overwrite_input)
{
    make_model();
    char args[2048];
    size_t n0, n1;
    ck_assert(mkdir(tu_path(tmp_dir, "in"), 0755) == 0 &&
              mkdir(tu_path(tmp_dir, "linked"), 0755) == 0);
    write_image("in/p.png", 16, 12, 5);
    char *before = tu_read_file(tu_path(tmp_dir, "in/p.png"), &n0);
    ck_assert(link(tu_path(tmp_dir, "in/p.png"), tu_path(tmp_dir, "linked/p.png")) == 0);
    const char *cases[][2] = {
        {"in/p.png", "in/p.png"}, /* -o is the input file */
        {"in/", "in/p.png"},      /* the output folder is the input's */
        {"linked/", "in/p.png"},  /* the output is a hard link to the input */
    };
    for (int k = 0; k < TU_COUNT(cases); k++) {
        const char *o = tu_path(tmp_dir, cases[k][0]);
        snprintf(args, sizeof args, "-m %s --force -o %s %s", model_path, o,
                 tu_path(tmp_dir, cases[k][1]));
        int rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
        char *err = tmp_file("err");
        ck_assert_msg(rc == 1 && tu_count_lines(err) == 1 &&
                          strstr(err, "refusing to overwrite an input"),
                      "case %d: exit %d, stderr:\n%s", k, rc, err);
        free(err);
        char *after = tu_read_file(tu_path(tmp_dir, "in/p.png"), &n1);
        ck_assert_msg(n0 == n1 && !memcmp(before, after, n0), "case %d: the input changed", k);
        free(after);
    }
    free(before);
}
END_TEST

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

START_TEST(test_bad_inputs)
{
    make_model();
    char args[2048];
    ck_assert(mkdir(tu_path(tmp_dir, "bad"), 0755) == 0);
    write_image("bad/good.png", 12, 10, 6);
    tu_write_file(tu_path(tmp_dir, "bad/notimg.png"), "hello, not an image\n", 20);
    size_t n;
    char *png = tu_read_file(tu_path(tmp_dir, "bad/good.png"), &n);
    tu_write_file(tu_path(tmp_dir, "bad/trunc.png"), png, n / 2);
    free(png);
    tu_write_file(tu_path(tmp_dir, "bad/empty.png"), "", 0);
    unsigned char h[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_be32(h + 8, 13);
    memcpy(h + 12, "IHDR", 4);
    put_be32(h + 16, 100000);
    put_be32(h + 20, 100000);
    h[24] = 8;
    h[25] = 2;
    put_be32(h + 29, crc32_png(h + 12, 17));
    tu_write_file(tu_path(tmp_dir, "bad/huge.png"), h, sizeof h);
    ck_assert(mkdir(tu_path(tmp_dir, "bad/sub.png"), 0755) == 0);
    snprintf(args, sizeof args, "-m %s -o %s %s %s", model_path, tu_path(tmp_dir, "badout/"),
             tu_path(tmp_dir, "bad"), tu_path(tmp_dir, "missing.png"));
    int rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    char *err = tmp_file("err");
    ck_assert_msg(rc == 1, "exit %d, stderr:\n%s", rc, err);
    ck_assert_msg(tu_count_lines(err) == 6, "want 6 lines, got:\n%s", err);
    static const char *names[] = {"notimg.png", "trunc.png", "empty.png", "huge.png",
                                  "sub.png", "missing.png"};
    for (int k = 0; k < TU_COUNT(names); k++) {
        char *line = strstr(err, names[k]);
        ck_assert_msg(line, "no line names %s:\n%s", names[k], err);
    }
    ck_assert_msg(strstr(err, "empty file") && strstr(err, "is a directory") &&
                      strstr(err, "cannot open"),
                  "stderr:\n%s", err);
    free(err);
    check_size("badout/good.png", 12, 10);
}
END_TEST

START_TEST(test_fifo_inputs)
{
    make_model();
    char args[2048], name[128];
    ck_assert(mkdir(tu_path(tmp_dir, "ff"), 0755) == 0 &&
              mkdir(tu_path(tmp_dir, "ffout"), 0755) == 0);
    write_image("ff/a.png", 12, 10, 8);
    tu_mkfifo(tu_path(tmp_dir, "ff/b.png"));
    write_image("ff/c.png", 9, 7, 9);
    tu_mkfifo(tu_path(tmp_dir, "lone.png"));
    snprintf(name, sizeof name, "ffout/a.png.tmp.%ld.0", tu_dead_pid());
    tu_write_file(tu_path(tmp_dir, name), "partial", 7);
    snprintf(args, sizeof args, "-m %s -o %s %s %s", model_path, tu_path(tmp_dir, "ffout/"),
             tu_path(tmp_dir, "ff"), tu_path(tmp_dir, "lone.png"));
    int rc = tu_run_tool_limit("dsdeblur-run", args, tmp_dir, 300);
    char *err = tmp_file("err");
    ck_assert_msg(rc == 1 && tu_count_lines(err) == 3 && strstr(err, "ff/b.png: is a FIFO") &&
                      strstr(err, "lone.png: is a FIFO") &&
                      strstr(err, "removed 1 stale temporary file"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    check_size("ffout/a.png", 12, 10);
    check_size("ffout/c.png", 9, 7);
    ck_assert(!tu_file_exists(tu_path(tmp_dir, name)));

    tu_mkfifo(tu_path(tmp_dir, "fifo.safetensors"));
    snprintf(args, sizeof args, "-m %s -o %s %s", tu_path(tmp_dir, "fifo.safetensors"),
             tu_path(tmp_dir, "ffout2/"), tu_path(tmp_dir, "ff/a.png"));
    rc = tu_run_tool_limit("dsdeblur-run", args, tmp_dir, 60);
    err = tmp_file("err");
    ck_assert_msg(rc == 1 && strstr(err, "fifo.safetensors: is a FIFO"), "exit %d, stderr:\n%s",
                  rc, err);
    free(err);
}
END_TEST

START_TEST(test_usage_and_no_model)
{
    make_model();
    write_image("u.png", 10, 10, 7);
    char args[2048];
    snprintf(args, sizeof args, "-o %s %s", tu_path(tmp_dir, "nomodel/"),
             tu_path(tmp_dir, "u.png"));
    /* the only place looked at, and missing (Check forks: the setting stays here) */
    setenv("DSDEBLUR_DEFAULT_MODEL", tu_path(tmp_dir, "missing.safetensors"), 1);
    int rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    unsetenv("DSDEBLUR_DEFAULT_MODEL");
    char *err = tmp_file("err");
    ck_assert_msg(rc == 2 && strstr(err, "no default model is installed yet") &&
                      strstr(err, "missing.safetensors") && strstr(err, "pass -m"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    struct stat st;
    ck_assert_msg(stat(tu_path(tmp_dir, "nomodel"), &st) != 0,
                  "the output folder was created anyway");

    const char *bad[] = {"-m M -o %s/x.png %s/u.png %s/u.png", /* one file, two inputs */
                         "-m M -o %s/x.gif %s/u.png",          /* unknown output format */
                         "-m M --format gif -o %s/ %s/u.png",  /* unknown --format */
                         "-m M --tile -3 -o %s/ %s/u.png",     /* bad tile */
                         "-m M %s/u.png",                      /* no -o */
                         "--bogus"};
    for (int k = 0; k < TU_COUNT(bad); k++) {
        snprintf(args, sizeof args, bad[k], tmp_dir, tmp_dir, tmp_dir);
        rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
        err = tmp_file("err");
        ck_assert_msg(rc == 2 && tu_count_lines(err) >= 1, "'%s': exit %d, stderr:\n%s", args, rc,
                      err);
        free(err);
    }
    /* the device plumbing still answers */
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", "--help", tmp_dir), 0);
    ck_assert_int_eq(tu_run_tool("dsdeblur-run", "--list-devices", tmp_dir), 0);
}
END_TEST

START_TEST(test_eval_model_mode)
{
    make_model();
    char args[2048];
    ck_assert(mkdir(tu_path(tmp_dir, "blur"), 0755) == 0 &&
              mkdir(tu_path(tmp_dir, "sharp"), 0755) == 0);
    static const char *names[] = {"p1.png", "p2.png"};
    static const int sizes[][2] = {{33, 21}, {24, 16}};
    for (int k = 0; k < 2; k++) {
        dsd_image s = {0}, b = {0};
        dsd_error e;
        int w = sizes[k][0], h = sizes[k][1];
        test_image(&s, w, h, 8 + k);
        ck_assert(dsd_image_alloc(&b, w, h, &e) == DSD_OK);
        for (int y = 0; y < h; y++) /* horizontal 3-tap box blur */
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int sum = 0;
                    for (int d = -1; d <= 1; d++) {
                        int xx = x + d < 0 ? 0 : x + d >= w ? w - 1 : x + d;
                        sum += s.data[((size_t)y * w + xx) * 3 + c];
                    }
                    b.data[((size_t)y * w + x) * 3 + c] = (uint8_t)(sum / 3);
                }
        char p[64];
        snprintf(p, sizeof p, "sharp/%s", names[k]);
        ck_assert(dsd_image_save(tu_path(tmp_dir, p), &s, &e) == DSD_OK);
        snprintf(p, sizeof p, "blur/%s", names[k]);
        ck_assert(dsd_image_save(tu_path(tmp_dir, p), &b, &e) == DSD_OK);
        dsd_image_free(&s);
        dsd_image_free(&b);
    }
    snprintf(args, sizeof args, "-m %s --blur %s --sharp %s --csv %s --json %s", model_path,
             tu_path(tmp_dir, "blur"), tu_path(tmp_dir, "sharp"), tu_path(tmp_dir, "m.csv"),
             tu_path(tmp_dir, "m.json"));
    int rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);
    ck_assert_msg(strstr(out, "in PSNR") && strstr(out, "out SSIM") && strstr(out, "time(s)"),
                  "%s", out);

    /* each row: the library's input and output scores */
    dsd_generator_config cfg;
    dsd_error e;
    ck_assert(dsd_generator_file_config(model_path, &cfg, &e) == DSD_OK);
    for (int k = 0; k < 2; k++) {
        char p[64], row[256];
        dsd_image b = {0}, s = {0}, o = {0};
        snprintf(p, sizeof p, "blur/%s", names[k]);
        ck_assert(dsd_image_load(tu_path(tmp_dir, p), &b, &e) == DSD_OK);
        snprintf(p, sizeof p, "sharp/%s", names[k]);
        ck_assert(dsd_image_load(tu_path(tmp_dir, p), &s, &e) == DSD_OK);
        library_deblur(&b, &o);
        double ip, is, op, os;
        ck_assert(dsd_psnr(&b, &s, &ip, &e) == DSD_OK);
        ck_assert(dsd_ssim(&b, &s, DSD_SSIM_SKIMAGE, &is, &e) == DSD_OK);
        ck_assert(dsd_psnr(&o, &s, &op, &e) == DSD_OK);
        ck_assert(dsd_ssim(&o, &s, DSD_SSIM_SKIMAGE, &os, &e) == DSD_OK);
        snprintf(row, sizeof row, "%s  %9.4f  %8.6f  %9.4f  %8.6f  ", names[k], ip, is, op, os);
        ck_assert_msg(strstr(out, row), "want a row starting '%s' in:\n%s", row, out);
        dsd_image_free(&b);
        dsd_image_free(&s);
        dsd_image_free(&o);
    }
    char params[64];
    snprintf(params, sizeof params, "%zu parameters", dsd_generator_param_count(&cfg));
    ck_assert_msg(strstr(out, params) && strstr(out, "2 images, SSIM protocol skimage"), "%s",
                  out);

    char *csv = tmp_file("m.csv");
    const char *hdr = "name,input_psnr_db,input_ssim_skimage,output_psnr_db,output_ssim_skimage,"
                      "seconds,device_seconds,error\n";
    ck_assert_msg(!strncmp(csv, hdr, strlen(hdr)) && tu_count_lines(csv) == 3, "CSV:\n%s", csv);
    ck_assert_msg(strstr(csv, "\np1.png,") && strstr(csv, "\np2.png,"), "CSV:\n%s", csv);
    char *json = tmp_file("m.json");
    snprintf(params, sizeof params, "\"parameters\": %zu", dsd_generator_param_count(&cfg));
    ck_assert_msg(strstr(json, "\"mode\": \"model\"") && strstr(json, params) &&
                      strstr(json, "\"name\": \"p1.png\", \"width\": 33, \"height\": 21") &&
                      strstr(json, "\"mean\": {\"count\": 2, \"input_psnr\": ") &&
                      strstr(json, "\"device_seconds\""),
                  "JSON:\n%s", json);
    free(out);
    free(err);
    free(csv);
    free(json);

    /* a pair missing its sharp image: one line, exit 1; usage errors */
    tu_write_file(tu_path(tmp_dir, "blur/lonely.png"), "x", 1);
    snprintf(args, sizeof args, "-m %s --blur %s --sharp %s", model_path, tu_path(tmp_dir, "blur"),
             tu_path(tmp_dir, "sharp"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 1);
    err = tmp_file("err");
    ck_assert_msg(tu_count_lines(err) == 1 && strstr(err, "lonely.png: only in"), "%s", err);
    free(err);
    snprintf(args, sizeof args, "-m %s --blur %s", model_path, tu_path(tmp_dir, "blur"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 2);
}
END_TEST

/* Without -m, from the build tree: the bundled model is found (in-tree or
 * VPATH build) and named first; -q drops the line. Folder runs with
 * --progress say "[i/n] name S.S s" per image; a pipe without it gets none. */
START_TEST(test_default_model_and_progress)
{
    unsetenv("DSDEBLUR_DEFAULT_MODEL");
    ck_assert(mkdir(tu_path(tmp_dir, "dm"), 0755) == 0);
    write_image("dm/a.png", 12, 10, 1);
    write_image("dm/b.png", 9, 8, 2);
    char args[2048];
    snprintf(args, sizeof args, "-o %s %s", tu_path(tmp_dir, "dmout/"), tu_path(tmp_dir, "dm"));
    int rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);
    ck_assert_msg(!strncmp(out, "model: ", 7) &&
                      strstr(out, "/data/dsdeblur-default.safetensors (the ") &&
                      strstr(out, " default model)\n") && tu_count_lines(out) == 1,
                  "want one 'model: .../data/dsdeblur-default.safetensors (the ... default "
                  "model)' line; stdout:\n%s", out);
    ck_assert_msg(!strstr(err, "[1/2]"), "progress on a pipe without --progress:\n%s", err);
    check_size("dmout/a.png", 12, 10);
    check_size("dmout/b.png", 9, 8);
    free(out);
    free(err);

    snprintf(args, sizeof args, "--progress --force -o %s %s", tu_path(tmp_dir, "dmout/"),
             tu_path(tmp_dir, "dm"));
    rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    err = tmp_file("err");
    ck_assert_msg(rc == 0 && tu_count_lines(err) == 2, "exit %d, stderr:\n%s", rc, err);
    const char *lines[] = {"[1/2] a.png ", "[2/2] b.png "};
    for (int k = 0; k < 2; k++) {
        const char *at = strstr(err, lines[k]);
        double secs = -1;
        ck_assert_msg(at && sscanf(at + strlen(lines[k]), "%lf s\n", &secs) == 1 && secs >= 0,
                      "want '%sS.S s' in stderr:\n%s", lines[k], err);
    }
    free(err);

    snprintf(args, sizeof args, "-q --progress --force -o %s %s", tu_path(tmp_dir, "dmout/"),
             tu_path(tmp_dir, "dm"));
    rc = tu_run_tool("dsdeblur-run", args, tmp_dir);
    out = tmp_file("out");
    err = tmp_file("err");
    ck_assert_msg(rc == 0 && !out[0] && !err[0], "-q: exit %d\nstdout:\n%s\nstderr:\n%s", rc, out,
                  err);
    free(out);
    free(err);
}
END_TEST

/* The real program of the build tree (libtool keeps it in tools/.libs/ when
 * the library is shared; tools/dsdeblur-run is then a script), copied to
 * to_rel (under tmp_dir), executable. */
static void copy_program(const char *to_rel)
{
    static const char *const candidates[] = {"tools/.libs/dsdeblur-run",
                                             "tools/.libs/lt-dsdeblur-run", "tools/dsdeblur-run"};
    for (int i = 0; i < TU_COUNT(candidates); i++) {
        size_t n;
        if (!tu_file_exists(candidates[i]))
            continue;
        char *b = tu_read_file(candidates[i], &n);
        int elf = n > 4 && !memcmp(b, "\177ELF", 4);
        if (elf) {
            tu_write_file(tu_path(tmp_dir, to_rel), b, n);
            ck_assert(chmod(tu_path(tmp_dir, to_rel), 0755) == 0);
        }
        free(b);
        if (elf)
            return;
    }
    ck_abort_msg("no dsdeblur-run executable in tools/ or tools/.libs/");
}

/* A copy of dsdeblur-run in another tree: <tree>/tools/dsdeblur-run takes
 * <tree>/data/dsdeblur-default.safetensors (how a build tree finds its
 * bundled model, wherever it is); without that file it says where it
 * looked (that place first) and exits 2, unless a default is installed. */
START_TEST(test_default_model_relocated)
{
    make_model();
    unsetenv("DSDEBLUR_DEFAULT_MODEL");
    write_image("rel.png", 11, 9, 4);
    tu_mkdir_p(tu_path(tmp_dir, "tree/tools"));
    tu_mkdir_p(tu_path(tmp_dir, "tree/data"));
    copy_program("tree/tools/dsdeblur-run");
    size_t n;
    char *m = tu_read_file(model_path, &n);
    tu_write_file(tu_path(tmp_dir, "tree/data/dsdeblur-default.safetensors"), m, n);
    free(m);
    char cmd[4096], cwd[1024];
    ck_assert(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s/.libs' timeout 120 %s/tree/tools/dsdeblur-run "
             "-o %s/relout/ %s/rel.png >%s/out 2>%s/err </dev/null", cwd, tmp_dir, tmp_dir,
             tmp_dir, tmp_dir, tmp_dir);
    int st = system(cmd);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s\nstatus %d\nstdout:\n%s\nstderr:\n%s",
                  cmd, st, out, err);
    ck_assert_msg(strstr(out, "/tree/data/dsdeblur-default.safetensors (the build tree's default "
                              "model)\n"),
                  "stdout:\n%s", out);
    check_size("relout/rel.png", 11, 9);
    free(out);
    free(err);

    ck_assert(unlink(tu_path(tmp_dir, "tree/data/dsdeblur-default.safetensors")) == 0);
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s/.libs' timeout 120 %s/tree/tools/dsdeblur-run "
             "--force -o %s/relout/ %s/rel.png >%s/out 2>%s/err </dev/null", cwd, tmp_dir,
             tmp_dir, tmp_dir, tmp_dir, tmp_dir);
    st = system(cmd);
    out = tmp_file("out");
    err = tmp_file("err");
    ck_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 0) /* this machine has one installed */
        ck_assert_msg(strstr(out, "(the installed default model)"), "stdout:\n%s", out);
    else
        ck_assert_msg(WEXITSTATUS(st) == 2 && strstr(err, "no default model") &&
                          strstr(err, "/tree/data/dsdeblur-default.safetensors, "),
                      "status %d, stderr:\n%s", WEXITSTATUS(st), err);
    free(out);
    free(err);
}
END_TEST

/* Sharp image for the report: flat gray with a textured 40 x 40 patch at
 * (px, py), where the report's crop must go. */
static void patch_image(dsd_image *img, int w, int h, int px, int py)
{
    dsd_error e;
    ck_assert(dsd_image_alloc(img, w, h, &e) == DSD_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int in = x >= px && x < px + 40 && y >= py && y < py + 40;
                img->data[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(in ? ((x * 37 + y * 91 + c * 50) * 13) & 255 : 120);
            }
}

START_TEST(test_eval_report)
{
    make_model();
    char args[2048];
    ck_assert(mkdir(tu_path(tmp_dir, "rblur"), 0755) == 0 &&
              mkdir(tu_path(tmp_dir, "rsharp"), 0755) == 0);
    /* big.png 300 x 280 (a 256 x 256 crop around the patch), s&m.png 24 x 16
     * (all of it; a name HTML must escape) */
    static const char *names[] = {"big.png", "s&m.png"};
    static const int sizes[][2] = {{300, 280}, {24, 16}};
    for (int k = 0; k < 2; k++) {
        dsd_image s = {0}, b = {0};
        dsd_error e;
        int w = sizes[k][0], h = sizes[k][1];
        if (k == 0)
            patch_image(&s, w, h, 230, 200);
        else
            test_image(&s, w, h, 3);
        ck_assert(dsd_image_alloc(&b, w, h, &e) == DSD_OK);
        for (size_t i = 0; i < dsd_image_numel(&s); i++)
            b.data[i] = (uint8_t)((s.data[i] + 128) / 2);
        char p[64];
        snprintf(p, sizeof p, "rsharp/%s", names[k]);
        ck_assert(dsd_image_save(tu_path(tmp_dir, p), &s, &e) == DSD_OK);
        snprintf(p, sizeof p, "rblur/%s", names[k]);
        ck_assert(dsd_image_save(tu_path(tmp_dir, p), &b, &e) == DSD_OK);
        dsd_image_free(&s);
        dsd_image_free(&b);
    }
    snprintf(args, sizeof args, "-m %s --blur %s --sharp %s --report %s", model_path,
             tu_path(tmp_dir, "rblur"), tu_path(tmp_dir, "rsharp"), tu_path(tmp_dir, "rep"));
    int rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
    char *out = tmp_file("out"), *err = tmp_file("err");
    ck_assert_msg(rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);
    free(out);
    free(err);

    char *html = tmp_file("rep/index.html");
    ck_assert_msg(strstr(html, "<table id=\"metrics\">") && strstr(html, "</html>") &&
                      strstr(html, "s&amp;m.png") && !strstr(html, "s&m.png"),
                  "index.html:\n%s", html);
    /* each row: the library's scores, as the page rounds them */
    dsd_error e;
    double sum_in = 0, sum_out = 0;
    for (int k = 0; k < 2; k++) {
        char p[64], row[512];
        dsd_image b = {0}, s = {0}, o = {0};
        snprintf(p, sizeof p, "rblur/%s", names[k]);
        ck_assert(dsd_image_load(tu_path(tmp_dir, p), &b, &e) == DSD_OK);
        snprintf(p, sizeof p, "rsharp/%s", names[k]);
        ck_assert(dsd_image_load(tu_path(tmp_dir, p), &s, &e) == DSD_OK);
        library_deblur(&b, &o);
        double ip, op;
        ck_assert(dsd_psnr(&b, &s, &ip, &e) == DSD_OK);
        ck_assert(dsd_psnr(&o, &s, &op, &e) == DSD_OK);
        sum_in += ip;
        sum_out += op;
        snprintf(row, sizeof row, "</td><td>%d &times; %d</td><td>%.3f</td><td>%.3f</td>",
                 sizes[k][0], sizes[k][1], ip, op);
        ck_assert_msg(strstr(html, row), "want '%s' in:\n%s", row, html);
        /* the crops: 1:1, the window the page names; the sharp one is the
         * sharp image's pixels there */
        int cw = sizes[k][0] < 256 ? sizes[k][0] : 256, ch = sizes[k][1] < 256 ? sizes[k][1] : 256;
        char head[128];
        snprintf(head, sizeof head, "<p>%d &times; %d crop at (", cw, ch);
        const char *at = strstr(html, k ? "id=\"i001\"" : "id=\"i000\"");
        ck_assert_msg(at && (at = strstr(at, head)), "want '%s' for image %d in:\n%s", head, k,
                      html);
        int x0 = -1, y0 = -1;
        ck_assert(sscanf(at + strlen(head), "%d, %d)", &x0, &y0) == 2);
        if (k == 0)
            ck_assert_msg(x0 <= 230 && x0 + 256 >= 270 && y0 <= 200 && y0 + 256 >= 240,
                          "the crop at (%d, %d) misses the patch at (230, 200)", x0, y0);
        else
            ck_assert_msg(x0 == 0 && y0 == 0, "crop at (%d, %d) of a small image", x0, y0);
        static const char *kinds[] = {"blurred", "deblurred", "sharp"};
        for (int q = 0; q < 3; q++) {
            snprintf(p, sizeof p, "rep/%03d-%s.png", k, kinds[q]);
            check_size(p, cw, ch);
            snprintf(row, sizeof row, "<img src=\"%03d-%s.png\"", k, kinds[q]);
            ck_assert_msg(strstr(html, row), "want '%s' in:\n%s", row, html);
        }
        dsd_image c = {0};
        snprintf(p, sizeof p, "rep/%03d-sharp.png", k);
        ck_assert(dsd_image_load(tu_path(tmp_dir, p), &c, &e) == DSD_OK);
        for (int y = 0; y < ch; y++)
            ck_assert_msg(!memcmp(c.data + (size_t)y * cw * 3,
                                  s.data + ((size_t)(y0 + y) * s.width + x0) * 3, (size_t)cw * 3),
                          "image %d: row %d of the sharp crop is not the sharp image's", k, y);
        dsd_image_free(&c);
        dsd_image_free(&b);
        dsd_image_free(&s);
        dsd_image_free(&o);
    }
    char mean[256];
    snprintf(mean, sizeof mean, "<tr><td><b>mean</b></td><td></td><td><b>%.3f</b></td><td><b>%.3f"
             "</b></td>", sum_in / 2, sum_out / 2);
    ck_assert_msg(strstr(html, mean), "want '%s' in:\n%s", mean, html);
    free(html);

    /* existing report files: refused without --force (nothing scored), replaced with it */
    rc = tu_run_tool("dsdeblur-eval", args, tmp_dir);
    err = tmp_file("err");
    ck_assert_msg(rc == 1 && strstr(err, "index.html exists") && strstr(err, "--force"),
                  "exit %d, stderr:\n%s", rc, err);
    free(err);
    char forced[2100];
    snprintf(forced, sizeof forced, "--force %s", args);
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", forced, tmp_dir), 0);
    /* folder mode has no report */
    snprintf(args, sizeof args, "--report %s %s %s", tu_path(tmp_dir, "rep2"),
             tu_path(tmp_dir, "rblur"), tu_path(tmp_dir, "rsharp"));
    ck_assert_int_eq(tu_run_tool("dsdeblur-eval", args, tmp_dir), 2);
}
END_TEST

/* Ctrl-C in a folder run: the image at hand is finished, then one line says
 * how far the run got, and the exit status is 130 (128 + SIGINT). */
START_TEST(test_sigint_folder_run)
{
    make_model();
    enum { N = 120 };
    tu_mkdir_p(tu_path(tmp_dir, "many"));
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "many/i%03d.png", i);
        write_image(name, 16, 12, i);
    }
    char out_dir[128], cmd[1024];
    snprintf(out_dir, sizeof out_dir, "%s", tu_path(tmp_dir, "many-out"));
    snprintf(cmd, sizeof cmd, "exec ./tools/dsdeblur-run -m %s -o %s/ %s >%s/out 2>%s/err",
             model_path, out_dir, tu_path(tmp_dir, "many"), tmp_dir, tmp_dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* the first image written (kernels compiled), then Ctrl-C */
    char first[160];
    snprintf(first, sizeof first, "%s/i000.png", out_dir);
    for (int i = 0; i < 600000 && !tu_file_exists(first); i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    ck_assert_msg(tu_file_exists(first), "no first output");
    kill(pid, SIGINT);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    char *err = tmp_file("err");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d, stderr:\n%s", st, err);
    int done = -1, last = -1, used = 0;
    char want_dir[200];
    snprintf(want_dir, sizeof want_dir, "dsdeblur-run: interrupted: %%d of %d images finished "
             "(last written: %s/i%%d.png)\n%%n", N, out_dir);
    ck_assert_msg(sscanf(err, want_dir, &done, &last, &used) == 2 && err[used] == '\0',
                  "stderr:\n%s", err);
    ck_assert_msg(done >= 1 && done < N && last == done - 1, "%d done, last %d", done, last);
    char next[160];
    snprintf(next, sizeof next, "%s/i%03d.png", out_dir, done);
    ck_assert_msg(!tu_file_exists(next), "%s written after the interruption", next);
    free(err);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "run") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("run");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_run_outputs);
    tcase_add_test(tc, test_never_overwrite_input);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_fifo_inputs);
    tcase_add_test(tc, test_usage_and_no_model);
    tcase_add_test(tc, test_eval_model_mode);
    tcase_add_test(tc, test_eval_report);
    tcase_add_test(tc, test_default_model_and_progress);
    tcase_add_test(tc, test_default_model_relocated);
    tcase_add_test(tc, test_sigint_folder_run);
    suite_add_tcase(s, tc);
    int status = tu_run(s);
    tu_ctx_free();
    tu_rmtree(tmp_dir);
    return status;
}
