/* jsonfield.h - typed readers for the fields of a JSON object, by path.
 *
 * The validators (job spec, model config) read each object through a jsonfield_obj:
 * every read names the key, checks the type and range, applies the default
 * when the key is absent, and on a problem adds one entry to a field_errors
 * list with the full dotted path ("optim.lr", "model.stages[1].mids[0]").
 * The reader remembers which keys it was asked about, so jsonfield_finish can name
 * every unknown field. Reading goes on after an error, so that one pass
 * collects every problem. Borrowed pointers only, no allocation; a jsonfield_obj is
 * used by one thread. Pure C + jansson.
 */
#ifndef KILN_JSONFIELD_H
#define KILN_JSONFIELD_H

#include "common/fielderr.h"

#include <jansson.h>
#include <stddef.h>

#define JSONFIELD_MAX_KEYS 32
#define JSONFIELD_PATH_MAX 128

/* What a read found. */
enum { JSONFIELD_BAD = -1, JSONFIELD_ABSENT = 0, JSONFIELD_SET = 1 };

/* Range flags for jsonfield_num: the bound itself is not allowed. */
#define JSONFIELD_LO_OPEN 1u
#define JSONFIELD_HI_OPEN 2u

typedef struct jsonfield_obj {
    const json_t *j;               /* borrowed; NULL when absent or not an object */
    field_errors *fe;              /* borrowed; may be NULL (errors are then only counted) */
    char path[JSONFIELD_PATH_MAX]; /* dotted path of this object; "" for the root */
    const char *known[JSONFIELD_MAX_KEYS]; /* keys read so far (borrowed, usually literals) */
    int n_known;
    int n_err; /* problems found through this reader */
} jsonfield_obj;

/* Starts reading j, whose path is `path` ("" or NULL for the root). j NULL:
 * the object is absent and every read gives its default (JSONFIELD_ABSENT). j not
 * an object: adds "must be an object" at `path` and returns JSONFIELD_BAD; reads
 * then give defaults. Otherwise JSONFIELD_SET. */
int jsonfield_open(jsonfield_obj *o, const json_t *j, const char *path, field_errors *fe);

/* Opens the object at key `key` of parent as *child (as jsonfield_open). The
 * child's problems are counted in the child: add jsonfield_finish(child) to the
 * parent's n_err. */
int jsonfield_child(jsonfield_obj *child, jsonfield_obj *parent, const char *key);

/* Writes the path of `key` below o ("a.b"; key NULL: o's own path) into buf. */
void jsonfield_path(char *buf, size_t len, const jsonfield_obj *o, const char *key);

/* Writes "<base>[i]" into buf: the path of an array element. */
void jsonfield_index_path(char *buf, size_t len, const char *base, int i);

/* Adds a problem at the path of key (key NULL: o itself) and counts it. */
void jsonfield_err(jsonfield_obj *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks key as known and returns its value (borrowed), or NULL if absent. */
const json_t *jsonfield_get(jsonfield_obj *o, const char *key);

/* Integer field in lo..hi. Absent: *out = def, JSONFIELD_ABSENT. Not an integer
 * (a JSON real such as 2.0 is not) or out of range: error, *out = def,
 * JSONFIELD_BAD. The _req variants add "is required" when the key is absent. */
int jsonfield_int(jsonfield_obj *o, const char *key, int *out, int def, int lo, int hi);
int jsonfield_int_req(jsonfield_obj *o, const char *key, int *out, int lo, int hi);
int jsonfield_long(jsonfield_obj *o, const char *key, long long *out, long long def, long long lo,
                   long long hi);

/* Number (integer or real) in the range lo..hi; flags JSONFIELD_LO_OPEN / JSONFIELD_HI_OPEN
 * exclude a bound; use -HUGE_VAL / HUGE_VAL for no bound. As jsonfield_int. */
int jsonfield_num(jsonfield_obj *o, const char *key, double *out, double def, double lo, double hi,
                  unsigned flags);

/* true/false. As jsonfield_int. */
int jsonfield_bool(jsonfield_obj *o, const char *key, int *out, int def);

/* String of 1..size-1 bytes without control characters, copied into buf
 * (size bytes). Absent: buf = def (def NULL: ""). As jsonfield_int. */
int jsonfield_str(jsonfield_obj *o, const char *key, char *buf, size_t size, const char *def);

/* One of names[0..n-1]; *out = its index. Absent: *out = def. As jsonfield_int. */
int jsonfield_enum(jsonfield_obj *o, const char *key, int *out, int def, const char *const *names,
                   int n);

/* An array of 1..max_len integers in lo..hi, into out[]; *len = its length.
 * Absent: *len = 0, JSONFIELD_ABSENT. Each bad element is reported at "key[i]". */
int jsonfield_int_array(jsonfield_obj *o, const char *key, int *out, int *len, int max_len, int lo,
                        int hi);

/* An array of exactly len numbers in the range of jsonfield_num, into out[] (left
 * untouched unless every element is good). len <= JSONFIELD_MAX_KEYS. As jsonfield_int. */
int jsonfield_num_array(jsonfield_obj *o, const char *key, double *out, int len, double lo,
                        double hi, unsigned flags);

/* Reports every key of o that no read asked about as "unknown field".
 * Returns o->n_err (0 when o had no problem at all). */
int jsonfield_finish(jsonfield_obj *o);

/* A JSON number for v: an integer when v is integral and small enough
 * (so 4.0 prints as 4), a real otherwise. New reference. */
json_t *jsonfield_number_json(double v);

#endif
