/*
 * cli.h: what the command-line tools share: turning a dsd_error into one line
 * on stderr, listing devices, creating a context from --device, a monotonic
 * clock, and the image files of a folder. Only tools/ exit; these helpers
 * return.
 */
#ifndef DSDEBLUR_CLI_H
#define DSDEBLUR_CLI_H

#include "dsdeblur.h"

#include <stdio.h>

/* "prog: <formatted error>" on stderr. */
void cli_print_error(const char *prog, const dsd_error *err);
/* Prints every device as --list-devices does; returns 0 or 1 (error printed). */
int cli_list_devices(const char *prog, FILE *out);
/* Creates a context for selector (NULL: DSDEBLUR_DEVICE / default); prints the
 * error and returns NULL on failure. */
dsd_context *cli_context(const char *prog, const char *selector, int profiling);
/* cfg = the paper's defaults, then each file (in order), then each
 * "key=value" override, as dsdeblur-train and dsdeblur-bench read them.
 * Prints the error and returns 2 (1 when the defaults cannot be built); 0 on
 * success (cfg must then be freed with dsd_config_free). */
int cli_config_build(const char *prog, dsd_config *cfg, const char *const *files, int n_files,
                     const char *const *sets, int n_sets);
/* Seconds from a monotonic clock. */
double cli_now(void);

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

#endif
