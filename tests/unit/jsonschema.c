/* jsonschema.c - a JSON Schema (2020-12) validator for the tests (see jsonschema.h).
 *
 * One recursive walk. Each call validates one instance against one schema
 * and, for unevaluatedProperties, collects the property names it evaluated
 * (a JSON object used as a set) into the caller's set when it succeeds.
 */
#include "tests/unit/jsonschema.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vctx {
    jsonschema_load_fn load;
    void *ctx;
    char *err;
    size_t errlen;
    int depth;
} vctx;

static int validate(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                    const char *path, json_t *evaluated);

/* jansson's iterators take non-const objects; they only read them here. */
static json_t *readonly(const json_t *j)
{
    return (json_t *)(uintptr_t)j;
}

static int fail(vctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(vctx *v, const char *path, const char *fmt, ...)
{
    if (v->err == NULL)
        return -1;
    int n = snprintf(v->err, v->errlen, "%s: ", path);
    if (n < 0 || (size_t)n >= v->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Validates a subschema with its error text kept out of err (a branch of
 * anyOf, oneOf, not, if): returns 0 or -1. */
static int quiet(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                 const char *path, json_t *evaluated)
{
    char *e = v->err;
    v->err = NULL;
    int rc = validate(v, schema, root, inst, path, evaluated);
    v->err = e;
    return rc;
}

/* ---- $ref ------------------------------------------------------------------------- */

/* Follows a JSON pointer ("/a/b~1c") from doc; NULL if it does not resolve. */
static const json_t *pointer(const json_t *doc, const char *ptr)
{
    const json_t *cur = doc;
    while (*ptr == '/' && cur != NULL) {
        ptr++;
        char key[256];
        size_t k = 0;
        while (*ptr != '\0' && *ptr != '/' && k < sizeof key - 1) {
            if (ptr[0] == '~' && (ptr[1] == '0' || ptr[1] == '1')) {
                key[k++] = ptr[1] == '0' ? '~' : '/';
                ptr += 2;
            } else {
                key[k++] = *ptr++;
            }
        }
        key[k] = '\0';
        if (json_is_object(cur))
            cur = json_object_get(cur, key);
        else if (json_is_array(cur))
            cur = json_array_get(cur, (size_t)strtoul(key, NULL, 10));
        else
            cur = NULL;
    }
    return *ptr == '\0' ? cur : NULL;
}

static int follow_ref(vctx *v, const char *ref, const json_t *root, const json_t *inst,
                      const char *path, json_t *evaluated)
{
    const char *hash = strchr(ref, '#');
    const json_t *doc = root;
    if (hash != ref) {
        char uri[512];
        size_t n = hash != NULL ? (size_t)(hash - ref) : strlen(ref);
        if (n >= sizeof uri)
            return fail(v, path, "$ref '%s' is too long", ref);
        memcpy(uri, ref, n);
        uri[n] = '\0';
        doc = v->load != NULL ? v->load(v->ctx, uri) : NULL;
        if (doc == NULL)
            return fail(v, path, "$ref '%s': no document '%s'", ref, uri);
    }
    const json_t *target = hash != NULL ? pointer(doc, hash + 1) : doc;
    if (target == NULL)
        return fail(v, path, "$ref '%s' does not resolve", ref);
    return validate(v, target, doc, inst, path, evaluated);
}

/* ---- the keywords ----------------------------------------------------------------- */

static int type_is(const json_t *inst, const char *t)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(inst);
    if (strcmp(t, "array") == 0)
        return json_is_array(inst);
    if (strcmp(t, "string") == 0)
        return json_is_string(inst);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(inst) ||
               (json_is_real(inst) && json_real_value(inst) == floor(json_real_value(inst)));
    if (strcmp(t, "number") == 0)
        return json_is_number(inst);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(inst);
    if (strcmp(t, "null") == 0)
        return json_is_null(inst);
    return -1;
}

static int check_type(vctx *v, const json_t *t, const json_t *inst, const char *path)
{
    if (json_is_string(t)) {
        int ok = type_is(inst, json_string_value(t));
        if (ok < 0)
            return fail(v, path, "unknown type '%s'", json_string_value(t));
        return ok ? 0 : fail(v, path, "not of type %s", json_string_value(t));
    }
    size_t i;
    json_t *x;
    json_array_foreach(t, i, x)
    {
        int ok = type_is(inst, json_string_value(x) ? json_string_value(x) : "");
        if (ok < 0)
            return fail(v, path, "unknown type in a type list");
        if (ok)
            return 0;
    }
    return fail(v, path, "not of any type listed");
}

/* Numbers compare as values (1 == 1.0), everything else as jansson does. */
static int same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* ECMA-262 pattern -> POSIX ERE: \uXXXX below 0x80 become the byte (0 as 1:
 * a C string holds no NUL, and the caller rejects strings that do). */
static int pattern_match(vctx *v, const char *pat, const json_t *inst, const char *path)
{
    char ere[512];
    size_t k = 0;
    for (const char *p = pat; *p != '\0'; p++) {
        if (k + 2 >= sizeof ere)
            return fail(v, path, "pattern '%s' is too long", pat);
        if (p[0] == '\\' && p[1] == 'u') {
            unsigned c;
            if (sscanf(p + 2, "%4x", &c) != 1 || c >= 0x80)
                return fail(v, path, "pattern '%s': only \\u escapes below 0x80 are supported",
                            pat);
            ere[k++] = (char)(c == 0 ? 1 : c);
            p += 5;
        } else {
            ere[k++] = *p;
        }
    }
    ere[k] = '\0';
    regex_t re;
    if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0)
        return fail(v, path, "pattern '%s' does not compile as POSIX ERE", pat);
    const char *s = json_string_value(inst);
    int ok = strlen(s) == json_string_length(inst) && regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok ? 0 : fail(v, path, "does not match the pattern %s", pat);
}

static int date_time_ok(const char *s)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") == 0)
        return 1;
    int oh, om;
    return (*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && n == 5 &&
           p[6] == '\0';
}

static int check_number(vctx *v, const json_t *schema, const json_t *inst, const char *path)
{
    double x = json_number_value(inst);
    json_t *b;
    if ((b = json_object_get(schema, "minimum")) != NULL && x < json_number_value(b))
        return fail(v, path, "%g is below the minimum %g", x, json_number_value(b));
    if ((b = json_object_get(schema, "maximum")) != NULL && x > json_number_value(b))
        return fail(v, path, "%g is above the maximum %g", x, json_number_value(b));
    if ((b = json_object_get(schema, "exclusiveMinimum")) != NULL && x <= json_number_value(b))
        return fail(v, path, "%g is not above %g", x, json_number_value(b));
    if ((b = json_object_get(schema, "exclusiveMaximum")) != NULL && x >= json_number_value(b))
        return fail(v, path, "%g is not below %g", x, json_number_value(b));
    return 0;
}

static int check_string(vctx *v, const json_t *schema, const json_t *inst, const char *path)
{
    size_t n = utf8_chars(json_string_value(inst), json_string_length(inst));
    json_t *b;
    if ((b = json_object_get(schema, "minLength")) != NULL && n < (size_t)json_integer_value(b))
        return fail(v, path, "shorter than %lld characters", (long long)json_integer_value(b));
    if ((b = json_object_get(schema, "maxLength")) != NULL && n > (size_t)json_integer_value(b))
        return fail(v, path, "longer than %lld characters", (long long)json_integer_value(b));
    if ((b = json_object_get(schema, "pattern")) != NULL &&
        pattern_match(v, json_string_value(b), inst, path) < 0)
        return -1;
    const char *fmt = json_string_value(json_object_get(schema, "format"));
    if (fmt != NULL && strcmp(fmt, "date-time") == 0 && !date_time_ok(json_string_value(inst)))
        return fail(v, path, "'%s' is not an RFC 3339 date-time", json_string_value(inst));
    return 0;
}

static int check_array(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                       const char *path)
{
    size_t n = json_array_size(inst);
    json_t *b;
    if ((b = json_object_get(schema, "minItems")) != NULL && n < (size_t)json_integer_value(b))
        return fail(v, path, "fewer than %lld items", (long long)json_integer_value(b));
    if ((b = json_object_get(schema, "maxItems")) != NULL && n > (size_t)json_integer_value(b))
        return fail(v, path, "more than %lld items", (long long)json_integer_value(b));
    const json_t *items = json_object_get(schema, "items");
    if (items == NULL)
        return 0;
    size_t i;
    json_t *x;
    json_array_foreach(inst, i, x)
    {
        char sub[512];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (validate(v, items, root, x, sub, NULL) < 0)
            return -1;
    }
    return 0;
}

/* properties, required, additionalProperties; marks what it evaluated. */
static int check_object(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                        const char *path, json_t *seen)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(schema, "required"), i, x)
    {
        if (json_object_get(inst, json_string_value(x)) == NULL)
            return fail(v, path, "required property '%s' is missing", json_string_value(x));
    }
    const json_t *props = json_object_get(schema, "properties");
    const json_t *extra = json_object_get(schema, "additionalProperties");
    const char *k;
    json_t *val;
    json_object_foreach(readonly(inst), k, val)
    {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, k);
        const json_t *ps = json_object_get(props, k);
        if (ps == NULL && extra == NULL)
            continue;
        if (ps == NULL && json_is_false(extra))
            return fail(v, sub, "is not a property the schema allows");
        const json_t *use = ps != NULL ? ps : extra;
        if (!json_is_true(use) && validate(v, use, root, val, sub, NULL) < 0)
            return -1;
        json_object_set_new(seen, k, json_true());
    }
    return 0;
}

/* allOf, anyOf, oneOf, not, if/then/else and $ref: the in-place applicators. */
static int check_applicators(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                             const char *path, json_t *seen)
{
    size_t i;
    json_t *x;
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (ref != NULL && follow_ref(v, ref, root, inst, path, seen) < 0)
        return -1;
    json_array_foreach(json_object_get(schema, "allOf"), i, x)
    {
        if (validate(v, x, root, inst, path, seen) < 0)
            return -1;
    }
    const json_t *any = json_object_get(schema, "anyOf");
    if (any != NULL) {
        int ok = 0;
        json_array_foreach(any, i, x) ok |= quiet(v, x, root, inst, path, seen) == 0;
        if (!ok)
            return fail(v, path, "matches none of anyOf");
    }
    const json_t *one = json_object_get(schema, "oneOf");
    if (one != NULL) {
        int ok = 0;
        json_array_foreach(one, i, x)
        {
            json_t *tmp = json_object();
            if (quiet(v, x, root, inst, path, tmp) == 0) {
                ok++;
                json_object_update(seen, tmp);
            }
            json_decref(tmp);
        }
        if (ok != 1)
            return fail(v, path, "matches %d of oneOf, not exactly one", ok);
    }
    const json_t *no = json_object_get(schema, "not");
    if (no != NULL && quiet(v, no, root, inst, path, NULL) == 0)
        return fail(v, path, "matches what `not` excludes");
    const json_t *cond = json_object_get(schema, "if");
    if (cond != NULL) {
        const json_t *branch = quiet(v, cond, root, inst, path, seen) == 0
                                   ? json_object_get(schema, "then")
                                   : json_object_get(schema, "else");
        if (branch != NULL && validate(v, branch, root, inst, path, seen) < 0)
            return -1;
    }
    return 0;
}

static int keyword_known(const char *k)
{
    static const char *const known[] = {"$ref",
                                        "$schema",
                                        "$id",
                                        "$defs",
                                        "$comment",
                                        "title",
                                        "description",
                                        "default",
                                        "example",
                                        "examples",
                                        "deprecated",
                                        "readOnly",
                                        "writeOnly",
                                        "contentMediaType",
                                        "contentEncoding",
                                        "format",
                                        "type",
                                        "enum",
                                        "const",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "unevaluatedProperties",
                                        "items",
                                        "minItems",
                                        "maxItems",
                                        "allOf",
                                        "anyOf",
                                        "oneOf",
                                        "not",
                                        "if",
                                        "then",
                                        "else",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        "minLength",
                                        "maxLength",
                                        "pattern"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(k, known[i]) == 0)
            return 1;
    return 0;
}

static int validate(vctx *v, const json_t *schema, const json_t *root, const json_t *inst,
                    const char *path, json_t *evaluated)
{
    if (json_is_true(schema))
        return 0;
    if (json_is_false(schema))
        return fail(v, path, "the schema `false` allows nothing");
    if (!json_is_object(schema))
        return fail(v, path, "a schema must be an object or a boolean");
    if (++v->depth > 64) {
        v->depth--;
        return fail(v, path, "schema nesting deeper than 64 ($ref loop?)");
    }
    const char *k;
    json_t *x;
    json_object_foreach(readonly(schema), k, x)
    {
        if (!keyword_known(k)) {
            v->depth--;
            return fail(v, path, "the schema uses '%s', which this validator does not check", k);
        }
    }
    json_t *seen = json_object();
    int rc = 0;
    const json_t *t = json_object_get(schema, "type");
    if (t != NULL)
        rc = check_type(v, t, inst, path);
    const json_t *e = json_object_get(schema, "enum");
    if (rc == 0 && e != NULL) {
        size_t i;
        int ok = 0;
        json_array_foreach(e, i, x) ok |= same(x, inst);
        if (!ok)
            rc = fail(v, path, "not one of the enum's values");
    }
    const json_t *c = json_object_get(schema, "const");
    if (rc == 0 && c != NULL && !same(c, inst))
        rc = fail(v, path, "not the const value");
    if (rc == 0 && json_is_number(inst))
        rc = check_number(v, schema, inst, path);
    if (rc == 0 && json_is_string(inst))
        rc = check_string(v, schema, inst, path);
    if (rc == 0 && json_is_array(inst))
        rc = check_array(v, schema, root, inst, path);
    if (rc == 0 && json_is_object(inst))
        rc = check_object(v, schema, root, inst, path, seen);
    if (rc == 0)
        rc = check_applicators(v, schema, root, inst, path, seen);
    const json_t *uneval = json_object_get(schema, "unevaluatedProperties");
    if (rc == 0 && uneval != NULL && json_is_object(inst)) {
        json_t *val;
        json_object_foreach(readonly(inst), k, val)
        {
            if (json_object_get(seen, k) != NULL)
                continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            if (json_is_false(uneval)) {
                rc = fail(v, sub, "is not a property the schema (or its subschemas) allows");
                break;
            }
            if ((rc = validate(v, uneval, root, val, sub, NULL)) < 0)
                break;
            json_object_set_new(seen, k, json_true());
        }
    }
    if (rc == 0 && evaluated != NULL)
        json_object_update(evaluated, seen);
    json_decref(seen);
    v->depth--;
    return rc;
}

int jsonschema_check(const json_t *schema, const json_t *root, const json_t *instance,
                     jsonschema_load_fn load, void *ctx, char *err, size_t errlen)
{
    vctx v = {.load = load, .ctx = ctx, .err = err, .errlen = errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return validate(&v, schema, root, instance, "$", NULL);
}
