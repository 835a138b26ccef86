/*
 * yaml_reader.h: the event reader that the configuration (config.c) and the
 * device profile files (profile_file.c) share: libyaml's parser on an open
 * file, one event at a time, with its errors turned into statuses that say
 * path:line:column, libyaml's problem and what it was reading. Each caller
 * opens its file (its own messages for a missing file or a directory) and
 * interprets the events itself.
 */
#ifndef DSD_IO_YAML_READER_H
#define DSD_IO_YAML_READER_H

#include "internal.h"

#include <stdio.h>
#include <yaml.h>

typedef struct dsd_yaml_reader {
    yaml_parser_t parser;
    yaml_event_t event; /* the current event, valid when have_event */
    int have_event;
    const char *path;
    FILE *file;
    const char *kind;   /* "a configuration": what aliases are not allowed in */
    dsd_error *err;
} dsd_yaml_reader;

/* Starts a parser on f (read from path, which errors name). */
dsd_status dsd_yaml_reader_init(dsd_yaml_reader *r, const char *path, FILE *f,
                                const char *kind, dsd_error *err);
/* Frees the parser and its event; a read error on the file turns an OK
 * status into an I/O error. Returns the status to report. The caller closes
 * the file. */
dsd_status dsd_yaml_reader_finish(dsd_yaml_reader *r, dsd_status st);
/* The next event into r->event (the previous one deleted); syntax errors,
 * bad encodings, read errors and aliases are errors. */
dsd_status dsd_yaml_next(dsd_yaml_reader *r);
/* "path:line:column" of a mark, 1-based. */
void dsd_yaml_at(const dsd_yaml_reader *r, const yaml_mark_t *m, char *buf, size_t size);

#endif
