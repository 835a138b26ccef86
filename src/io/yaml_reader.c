/*
 * yaml_reader.c: the YAML event reader shared by the configuration and the
 * device profile files (yaml_reader.h). Tests: tests/test-config.c and
 * tests/test-profile.c (malformed files, with the messages they must give).
 */
#include "yaml_reader.h"

#include <errno.h>
#include <string.h>

dsd_status dsd_yaml_reader_init(dsd_yaml_reader *r, const char *path, FILE *f,
                                const char *kind, dsd_error *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->file = f;
    r->kind = kind;
    r->err = err;
    if (!yaml_parser_initialize(&r->parser))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: cannot start the YAML parser", path);
    yaml_parser_set_input_file(&r->parser, f);
    return DSD_OK;
}

dsd_status dsd_yaml_reader_finish(dsd_yaml_reader *r, dsd_status st)
{
    if (r->have_event)
        yaml_event_delete(&r->event);
    r->have_event = 0;
    yaml_parser_delete(&r->parser);
    if (st == DSD_OK && ferror(r->file))
        st = DSD_FAIL(r->err, DSD_ERR_IO, "%s: read error", r->path);
    return st;
}

void dsd_yaml_at(const dsd_yaml_reader *r, const yaml_mark_t *m, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%lu:%lu", r->path, (unsigned long)m->line + 1,
             (unsigned long)m->column + 1);
}

dsd_status dsd_yaml_next(dsd_yaml_reader *r)
{
    if (r->have_event)
        yaml_event_delete(&r->event);
    r->have_event = 0;
    if (!yaml_parser_parse(&r->parser, &r->event)) {
        const yaml_parser_t *p = &r->parser;
        if (p->error == YAML_READER_ERROR && ferror(r->file))
            return DSD_FAIL(r->err, DSD_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
        char where[512];
        if (p->error == YAML_READER_ERROR) /* bad encoding: libyaml gives a byte offset */
            snprintf(where, sizeof where, "%s: byte %zu", r->path, p->problem_offset);
        else
            dsd_yaml_at(r, &p->problem_mark, where, sizeof where);
        /* libyaml's words, then what it was reading and where that began:
         * "did not find expected ',' or ']' (while parsing a flow sequence
         * that starts at line 2, column 7)" */
        char context[256] = "";
        if (p->context)
            snprintf(context, sizeof context, " (%s that starts at line %lu, column %lu)",
                     p->context, (unsigned long)p->context_mark.line + 1,
                     (unsigned long)p->context_mark.column + 1);
        return DSD_FAIL(r->err, DSD_ERR_CONFIG, "%s: not valid YAML: %s%s", where,
                        p->problem ? p->problem : "syntax error", context);
    }
    r->have_event = 1;
    if (r->event.type == YAML_ALIAS_EVENT) {
        char where[512];
        dsd_yaml_at(r, &r->event.start_mark, where, sizeof where);
        return DSD_FAIL(r->err, DSD_ERR_CONFIG, "%s: aliases are not allowed in %s", where,
                        r->kind);
    }
    return DSD_OK;
}
