/* fielderr.h - a list of validation problems, each naming a field path.
 *
 * Validators (job spec, model config) add one entry per problem found, with
 * the dotted path of the field ("optim.lr", "model.stages[1].mids[0]") and a
 * reason a person can act on ("must be > 0"). The server returns them as the
 * `details` of a 400; the CLI and kiln-worker print them. Fixed size: past
 * FE_MAX entries further problems are counted in `dropped`. No allocation.
 */
#ifndef KILN_FIELDERR_H
#define KILN_FIELDERR_H

#define FE_MAX 16

typedef struct field_error {
    char field[128];
    char reason[192];
} field_error;

typedef struct field_errors {
    int n;
    int dropped;
    field_error e[FE_MAX];
} field_errors;

void fe_init(field_errors *fe);
void fe_add(field_errors *fe, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "field: reason; field: reason" into buf (always NUL-terminated). */
void fe_format(const field_errors *fe, char *buf, unsigned long len);

#endif
