/*
 * cli.h: what the command-line tools share: turning a dsd_error into one line
 * on stderr, listing devices, creating a context from --device, and a
 * monotonic clock. Only tools/ exit; these helpers return.
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
/* Seconds from a monotonic clock. */
double cli_now(void);

#endif
