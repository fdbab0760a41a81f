/* jsonfield.h - typed readers for the fields of a JSON object, by path.
 *
 * The validators (job spec, model config) read each object through a jf_obj:
 * every read names the key, checks the type and range, applies the default
 * when the key is absent, and on a problem adds one entry to a field_errors
 * list with the full dotted path ("optim.lr", "model.stages[1].mids[0]").
 * The reader remembers which keys it was asked about, so jf_finish can name
 * every unknown field. Reading goes on after an error, so that one pass
 * collects every problem. Borrowed pointers only, no allocation; a jf_obj is
 * used by one thread. Pure C + jansson.
 */
#ifndef KILN_JSONFIELD_H
#define KILN_JSONFIELD_H

#include "common/fielderr.h"

#include <jansson.h>
#include <stddef.h>

#define JF_MAX_KEYS 32
#define JF_PATH_MAX 128

/* What a read found. */
enum { JF_BAD = -1, JF_ABSENT = 0, JF_SET = 1 };

/* Range flags for jf_num: the bound itself is not allowed. */
#define JF_LO_OPEN 1u
#define JF_HI_OPEN 2u

typedef struct jf_obj {
    const json_t *j;                /* borrowed; NULL when absent or not an object */
    field_errors *fe;               /* borrowed; may be NULL (errors are then only counted) */
    char path[JF_PATH_MAX];         /* dotted path of this object; "" for the root */
    const char *known[JF_MAX_KEYS]; /* keys read so far (borrowed, usually literals) */
    int n_known;
    int n_err; /* problems found through this reader */
} jf_obj;

/* Starts reading j, whose path is `path` ("" or NULL for the root). j NULL:
 * the object is absent and every read gives its default (JF_ABSENT). j not
 * an object: adds "must be an object" at `path` and returns JF_BAD; reads
 * then give defaults. Otherwise JF_SET. */
int jf_open(jf_obj *o, const json_t *j, const char *path, field_errors *fe);

/* Opens the object at key `key` of parent as *child (as jf_open). The
 * child's problems are counted in the child: add jf_finish(child) to the
 * parent's n_err. */
int jf_child(jf_obj *child, jf_obj *parent, const char *key);

/* Writes the path of `key` below o ("a.b"; key NULL: o's own path) into buf. */
void jf_path(char *buf, size_t len, const jf_obj *o, const char *key);

/* Writes "<base>[i]" into buf: the path of an array element. */
void jf_index_path(char *buf, size_t len, const char *base, int i);

/* Adds a problem at the path of key (key NULL: o itself) and counts it. */
void jf_err(jf_obj *o, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Marks key as known and returns its value (borrowed), or NULL if absent. */
const json_t *jf_get(jf_obj *o, const char *key);

/* Integer field in lo..hi. Absent: *out = def, JF_ABSENT. Not an integer
 * (a JSON real such as 2.0 is not) or out of range: error, *out = def,
 * JF_BAD. The _req variants add "is required" when the key is absent. */
int jf_int(jf_obj *o, const char *key, int *out, int def, int lo, int hi);
int jf_int_req(jf_obj *o, const char *key, int *out, int lo, int hi);
int jf_long(jf_obj *o, const char *key, long long *out, long long def, long long lo, long long hi);

/* Number (integer or real) in the range lo..hi; flags JF_LO_OPEN / JF_HI_OPEN
 * exclude a bound; use -HUGE_VAL / HUGE_VAL for no bound. As jf_int. */
int jf_num(jf_obj *o, const char *key, double *out, double def, double lo, double hi,
           unsigned flags);

/* true/false. As jf_int. */
int jf_bool(jf_obj *o, const char *key, int *out, int def);

/* String of 1..size-1 bytes without control characters, copied into buf
 * (size bytes). Absent: buf = def (def NULL: ""). As jf_int. */
int jf_str(jf_obj *o, const char *key, char *buf, size_t size, const char *def);

/* One of names[0..n-1]; *out = its index. Absent: *out = def. As jf_int. */
int jf_enum(jf_obj *o, const char *key, int *out, int def, const char *const *names, int n);

/* An array of 1..max_len integers in lo..hi, into out[]; *len = its length.
 * Absent: *len = 0, JF_ABSENT. Each bad element is reported at "key[i]". */
int jf_int_array(jf_obj *o, const char *key, int *out, int *len, int max_len, int lo, int hi);

/* An array of exactly len numbers in the range of jf_num, into out[] (left
 * untouched unless every element is good). len <= JF_MAX_KEYS. As jf_int. */
int jf_num_array(jf_obj *o, const char *key, double *out, int len, double lo, double hi,
                 unsigned flags);

/* Reports every key of o that no read asked about as "unknown field".
 * Returns o->n_err (0 when o had no problem at all). */
int jf_finish(jf_obj *o);

/* A JSON number for v: an integer when v is integral and small enough
 * (so 4.0 prints as 4), a real otherwise. New reference. */
json_t *jf_number_json(double v);

#endif
