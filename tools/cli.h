/*
 * cli.h: what the command-line tools share: reading the command line (the
 * options every tool spells the same way, and one way to take a value),
 * turning a dsd_error into one line on stderr, listing devices, creating a
 * context from --device, a monotonic clock, the image files of a folder,
 * the rules every tool applies to the files it reads and writes, text built
 * in memory and saved atomically, and the one JSON writer of the tools'
 * report files. Only tools/ exit; these helpers return.
 */
#ifndef DSDEBLUR_CLI_H
#define DSDEBLUR_CLI_H

#include "dsdeblur.h"

#include <stdio.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define CLI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CLI_PRINTF(fmt, args)
#endif

// ----------------------------------------------------------------------------
// The command line
//
//     cli_args a;
//     cli_args_init(&a, prog, argc, argv, usage, CLI_LIST_DEVICES | CLI_QUIET);
//     while (cli_args_next(&a)) {
//         if (cli_args_option(&a, "-o", "--output"))
//             out = cli_args_value(&a);
//         else if (cli_args_flag(&a, NULL, "--force"))
//             force = 1;
//         else if (cli_args_positional(&a))
//             inputs[n++] = a.arg;
//         else
//             cli_args_unknown(&a);
//     }
//     if ((rc = cli_args_end(&a)) >= 0)
//         return rc;               // --help, --version, --list-devices or an error
//
// cli_args_next() answers the options every tool shares itself and never
// returns them: --device SEL (-d SEL), --help (-h, the tool's usage on
// stdout), --version, and those of --list-devices and -q/--quiet that the
// tool asks for; their values are in the struct afterwards. An option taking
// a value reads it from the next argument or, for a long option, as
// --name=VALUE. "--" ends the options: every later argument is positional.
// The first error is printed as "prog: error: ..." and ends the loop with
// exit_status 2.

enum {
    CLI_LIST_DEVICES = 1 << 0, /* --list-devices sets list_devices */
    CLI_QUIET = 1 << 1,        /* -q, --quiet sets quiet */
};

typedef struct cli_args {
    const char *prog;
    int argc;
    char **argv;
    void (*usage)(FILE *out);
    int accept;           /* CLI_* bits: which optional shared options the tool has */
    int next;             /* index of the next argument to read */
    int options_ended;    /* "--" seen */
    int index;            /* argv index of the current argument */
    const char *arg;      /* the current argument */
    const char *inline_value; /* after '=' in the current --name=VALUE, else NULL */
    int exit_status;      /* -1 while reading; 0 after --help/--version; 2 on an error */
    /* the shared options */
    const char *device;   /* --device SEL, -d SEL; NULL when not given */
    int list_devices;     /* --list-devices (with CLI_LIST_DEVICES) */
    int quiet;            /* -q, --quiet (with CLI_QUIET) */
} cli_args;

void cli_args_init(cli_args *a, const char *prog, int argc, char **argv, void (*usage)(FILE *),
                   int accept);
/* Moves to the next argument the tool has to look at (a.arg); 0 when none is
 * left or reading has ended (exit_status >= 0). */
int cli_args_next(cli_args *a);
/* Whether the current argument is not an option: it does not start with '-',
 * is "-" alone, or comes after "--". */
int cli_args_positional(const cli_args *a);
/* Whether the current argument is the option short_name ("-o") or long_name
 * ("--output", also as --output=VALUE; either name may be NULL); read its
 * value with cli_args_value. */
int cli_args_option(const cli_args *a, const char *short_name, const char *long_name);
/* Whether the current argument is the flag short_name or long_name exactly
 * (either may be NULL; a flag takes no value: --force=1 is not the flag). */
int cli_args_flag(const cli_args *a, const char *short_name, const char *long_name);
/* The value of the option just matched: after '=', else the next argument.
 * NULL when there is none ("needs a value" printed, exit_status 2). */
const char *cli_args_value(cli_args *a);
/* The value when one is given inline or the next argument does not start
 * with '-'; "" when the option stands alone (as --resume [FILE]). */
const char *cli_args_optional_value(cli_args *a);
/* The value as a whole number in lo..hi into *out; 0, or 2 with the error
 * printed (exit_status 2). */
int cli_args_int(cli_args *a, int lo, int hi, int *out);
/* "prog: error: <fmt> (see --help)" on stderr; exit_status 2. */
void cli_args_fail(cli_args *a, const char *fmt, ...) CLI_PRINTF(2, 3);
/* The current argument is not one the tool knows: says so, exit_status 2. */
void cli_args_unknown(cli_args *a);
/* After the loop: the exit status when the tool stops here (0 after --help
 * or --version; 2 after a usage error; after --list-devices, the devices
 * listed on stdout and 0, or 1 when they cannot be), else -1. */
int cli_args_end(cli_args *a);

/* -c/--config FILE and --set KEY=VALUE, as dsdeblur-train and dsdeblur-bench
 * read them: files applied in order over the paper's defaults, then the
 * overrides. */
enum { CLI_MAX_CONFIGS = 32, CLI_MAX_SETS = 128 };
typedef struct cli_config_args {
    const char *files[CLI_MAX_CONFIGS];
    int n_files;
    const char *sets[CLI_MAX_SETS];
    int n_sets;
} cli_config_args;
/* Whether the current argument is -c/--config or --set; its value is then
 * recorded (or the error printed). */
int cli_args_config(cli_args *a, cli_config_args *c);

// ----------------------------------------------------------------------------
// Devices, configuration, errors

/* "prog: error: <formatted error>" on stderr: what went wrong first, the
 * failing OpenCL call and its error name in parentheses after it, the source
 * location in brackets at the end (dsd_error_format). */
void cli_print_error(const char *prog, const dsd_error *err);
/* The same about subject (the file the user gave): "prog: error: subject:
 * ...", unless the message already starts with "subject:". */
void cli_print_error_for(const char *prog, const char *subject, const dsd_error *err);
/* Prints every device as --list-devices does; returns 0 or 1 (error printed). */
int cli_list_devices(const char *prog, FILE *out);
/* Creates a context for selector (NULL: DSDEBLUR_DEVICE / default); prints the
 * error and returns NULL on failure. Sets POCL_EXTRA_BUILD_FLAGS=-w first
 * when it is unset, so that PoCL's kernel compiler prints no warning counts
 * on the tool's stderr. */
dsd_context *cli_context(const char *prog, const char *selector, int profiling);
/* cfg = the paper's defaults, then each file of c (in order), then each
 * "key=value" override. Prints the error and returns 2 (1 when the defaults
 * cannot be built); 0 on success (cfg must then be freed with
 * dsd_config_free). */
int cli_config_build(const char *prog, dsd_config *cfg, const cli_config_args *c);
/* Seconds from a monotonic clock. */
double cli_now(void);
/* From now on SIGINT (Ctrl-C) and SIGTERM only set a flag, which
 * cli_stop_requested() reads: a long loop finishes its step and stops
 * cleanly. */
void cli_catch_stop_signals(void);
int cli_stop_requested(void);

// ----------------------------------------------------------------------------
// Files and folders

/* dir/name (no second '/' when dir ends in one), malloc'd; NULL when out of
 * memory. */
char *cli_path_join(const char *dir, const char *name);

/* Non-zero when name ends in .png, .jpg, .jpeg, .bmp or .tga (any case) and
 * is not only that extension. */
int cli_has_image_extension(const char *name);

/* File names (not paths) of a folder, malloc'd; free with cli_names_free
 * (safe on a zeroed struct). */
typedef struct cli_names {
    char **names;
    size_t count, cap;
} cli_names;
void cli_names_free(cli_names *l);
/* Appends the image files of dir (by extension, hidden names skipped) to out,
 * sorted by strcmp. With skip_folders, entries that are folders are left out
 * (otherwise a folder named like an image is listed, so that it fails later
 * by name). Returns 0; 1 when dir cannot be opened ("prog: error: dir: cannot
 * open folder: ..." printed); -1 when out of memory (nothing printed). */
int cli_list_images(const char *prog, const char *dir, int skip_folders, cli_names *out);

// ----------------------------------------------------------------------------
// Inputs and outputs: the rules of every tool
//
// 1. Only regular files are read. A FIFO named like an image would block a
//    plain open() forever, a device would be read without end; such a file
//    is one clear line and is skipped (in a folder of images) or refused (a
//    model, a configuration).
// 2. An output never replaces an input of the same command, even with
//    --force: "the same" is the same file (st_dev and st_ino, through links),
//    whatever the two paths look like.
// 3. An output never replaces an existing file without --force.
//
//     cli_files inputs = {0};
//     cli_files_add(&inputs, model);            // every file the command reads
//     ...
//     if (cli_check_output(prog, &inputs, csv_path, force))
//         return 1;                             // the line is printed
//     cli_files_free(&inputs);

/* Why path cannot be read as a file: NULL when it is a regular file, or
 * when it cannot be stat'ed (the reader then says why, e.g. "No such file");
 * else text such as "is a FIFO, not a regular file" (static). stat() does
 * not open, so it never blocks. */
const char *cli_not_regular(const char *path);
/* For a file named on the command line (-m, -c, --resume, --vgg): 0 when it
 * may be read, else 1 with "prog: error: PATH: is a FIFO, not a regular
 * file" printed. */
int cli_check_input(const char *prog, const char *path);

/* The files a command reads, by identity (device and inode). */
typedef struct cli_file_id {
    dev_t dev;
    ino_t ino;
    char *path;
} cli_file_id;
typedef struct cli_files {
    cli_file_id *v;
    size_t count, cap;
} cli_files;
/* Records path (following links); a path that does not exist (yet) is
 * skipped. 0, or -1 when out of memory. */
int cli_files_add(cli_files *f, const char *path);
/* Frees the list (safe on a zeroed struct). */
void cli_files_free(cli_files *f);
/* The recorded path of the file that path is, or NULL when it is none of
 * them (or does not exist). */
const char *cli_files_find(const cli_files *f, const char *path);
/* Whether the output path may be written: NULL when it may (it does not exist,
 * or it exists, is no input and force is set); else the reason, written to
 * buf: "PATH is the input IN; refusing to overwrite an input (even with
 * --force)" ("PATH is an input of this command; ..." when IN is spelled as
 * PATH) or "PATH exists; use --force to replace it". */
const char *cli_output_refusal(const cli_files *inputs, const char *path, int force, char *buf,
                               size_t size);
/* The same, with the reason printed as "prog: error: ..."; 0 or 1. */
int cli_check_output(const char *prog, const cli_files *inputs, const char *path, int force);

/* Removes the temporaries that writers killed mid-write left in dir
 * (dsd_remove_stale_temporaries) and, when there were some, says so in one
 * line on stderr: "prog: removed 3 stale temporary files (12.5 MB) that
 * killed runs left in DIR". A failure is a warning: the run goes on. */
void cli_remove_stale_temporaries(const char *prog, const char *dir);

// ----------------------------------------------------------------------------
// Report files: text built in memory, then written at once

typedef struct cli_text {
    char *data;
    size_t len, cap;
    int failed;           /* out of memory: cli_text_save refuses to write */
} cli_text;

/* Appends printf-formatted text (safe on a zeroed struct). */
void cli_text_printf(cli_text *t, const char *fmt, ...) CLI_PRINTF(2, 3);
void cli_text_free(cli_text *t);
/* Writes t to path through path.tmp.<pid>, fsync and rename, so that a reader
 * sees the old file or the new one, never half of one. Returns 0, or 1 with
 * "prog: error: path: ..." printed (the temporary file removed). */
int cli_text_save(const char *prog, const cli_text *t, const char *path);

// ----------------------------------------------------------------------------
// JSON: the one writer of the tools' report files
//
// Values are written in order into text; inside an object each value has a
// key, inside an array key is NULL. A container opened with lines != 0 puts
// each member on its own line, indented by depth; otherwise members follow
// each other on one line ("a": 1, "b": 2). Strings are escaped (quotes,
// backslashes, control characters; UTF-8 passes through); a number that is
// not finite is written as null, since JSON has no infinity or NaN.
//
//     cli_json j = {0};
//     cli_json_open(&j, NULL, '{', 1);
//     cli_json_string(&j, "name", "a.png");
//     cli_json_number(&j, "psnr", "%.6f", psnr);
//     cli_json_close(&j);                         // '}' and a final newline
//     cli_text_save(prog, &j.text, path);
//     cli_text_free(&j.text);
//
// Why not libyaml's emitter, although JSON is YAML in flow style: its double-
// quoted scalars use escapes JSON does not have (\e, \x7F, \N) and it refuses
// bytes that are not UTF-8, which file names may hold.

enum { CLI_JSON_MAX_DEPTH = 8 };

typedef struct cli_json {
    cli_text text;
    int depth;
    struct {
        char close;       /* '}' or ']' */
        char lines;       /* members on lines of their own */
        int count;        /* members written so far */
    } level[CLI_JSON_MAX_DEPTH];
} cli_json;

/* Opens an object ('{') or an array ('['). */
void cli_json_open(cli_json *j, const char *key, char bracket, int lines);
/* Closes the innermost container; after the outermost, a newline. */
void cli_json_close(cli_json *j);
void cli_json_string(cli_json *j, const char *key, const char *s);
/* v formatted with fmt (one double conversion: "%.6f", "%.9g"), or null. */
void cli_json_number(cli_json *j, const char *key, const char *fmt, double v);
void cli_json_int(cli_json *j, const char *key, long long v);
void cli_json_bool(cli_json *j, const char *key, int v);
void cli_json_null(cli_json *j, const char *key);

#endif
