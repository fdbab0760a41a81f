/* yamljson.c - YAML to JSON with libyaml's event parser (see yamljson.h). */
#include "yamljson.h"

#include "common/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static json_t *scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, n);
    if (strcmp(v, "true") == 0)
        return json_true();
    if (strcmp(v, "false") == 0)
        return json_false();
    if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || n == 0)
        return json_null();
    char *end;
    long long i = strtoll(v, &end, 10);
    if (end != v && *end == '\0' && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
        return json_integer(i);
    double d = strtod(v, &end);
    if (end != v && *end == '\0' && (v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9')))
        return json_real(d);
    return json_stringn(v, n);
}

/* Builds the node that starts with ev (already taken); reads until its end. */
static int node(yaml_parser_t *p, yaml_event_t *ev, json_t **out, errbuf *eb)
{
    *out = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        *out = scalar(ev);
        return 0;
    case YAML_ALIAS_EVENT:
        return err_set(eb, ERR_FORMAT, "line %zu: YAML aliases are not supported",
                       ev->start_mark.line + 1);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        json_t *c = is_map ? json_object() : json_array();
        for (;;) {
            yaml_event_t e;
            if (!yaml_parser_parse(p, &e)) {
                json_decref(c);
                return err_set(eb, ERR_FORMAT, "line %zu: %s", p->problem_mark.line + 1,
                               p->problem != NULL ? p->problem : "YAML error");
            }
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            char *key = NULL;
            if (is_map) {
                if (e.type != YAML_SCALAR_EVENT) {
                    size_t line = e.start_mark.line + 1;
                    yaml_event_delete(&e);
                    json_decref(c);
                    return err_set(eb, ERR_FORMAT, "line %zu: a mapping key must be a scalar",
                                   line);
                }
                key = xstrdup((const char *)e.data.scalar.value);
                yaml_event_delete(&e);
                if (!yaml_parser_parse(p, &e)) {
                    free(key);
                    json_decref(c);
                    return err_set(eb, ERR_FORMAT, "line %zu: %s", p->problem_mark.line + 1,
                                   p->problem != NULL ? p->problem : "YAML error");
                }
            }
            json_t *v;
            int rc = node(p, &e, &v, eb);
            yaml_event_delete(&e);
            if (rc < 0) {
                free(key);
                json_decref(c);
                return rc;
            }
            if (is_map)
                json_object_set_new(c, key, v);
            else
                json_array_append_new(c, v);
            free(key);
        }
        *out = c;
        return 0;
    }
    default:
        return err_set(eb, ERR_FORMAT, "line %zu: unexpected YAML event %d",
                       ev->start_mark.line + 1, (int)ev->type);
    }
}

int yamljson_parse(const char *text, size_t len, json_t **out, errbuf *eb)
{
    *out = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return err_set(eb, ERR_INTERNAL, "yaml: cannot initialise the parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            rc = err_set(eb, ERR_FORMAT, "line %zu: %s", p.problem_mark.line + 1,
                         p.problem != NULL ? p.problem : "YAML error");
            break;
        }
        int t = e.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&e);
            if (*out == NULL)
                rc = err_set(eb, ERR_FORMAT, "no YAML document");
            break;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
            t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            rc = node(&p, &e, out, eb);
            yaml_event_delete(&e);
            break; /* the first document only */
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    return rc;
}
