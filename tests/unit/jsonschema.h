/* jsonschema.h - a JSON Schema (2020-12) validator for the tests.
 *
 * Checks a JSON value against a schema as api/openapi.yaml (OpenAPI 3.1)
 * and api/schemas/jobspec.schema.json write them: $ref (in the same
 * document, or another one through a loader), type, enum, const,
 * properties, required, additionalProperties, unevaluatedProperties,
 * items, min/maxItems, allOf, anyOf, oneOf, not, if/then/else,
 * (exclusive)minimum/maximum, min/maxLength, pattern (POSIX ERE after
 * turning \uXXXX below 0x80 into bytes) and format date-time. A keyword it
 * does not know fails the check (so nothing is skipped silently); the
 * annotations (description, default, example, ...) are known and ignored.
 * Test code only; no state, thread-safe. Depends on jansson and libc.
 */
#ifndef KILN_TEST_JSONSCHEMA_H
#define KILN_TEST_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Returns the root of the document at `uri` (the part of a $ref before
 * '#', as written), borrowed for the whole validation; NULL if none. */
typedef const json_t *(*jsonschema_load_fn)(void *ctx, const char *uri);

/* jsonschema_check validates instance against schema, whose "#..." refs
 * resolve in root (the document schema is part of). Returns 0 when valid;
 * -1 with err naming the instance path (e.g. "$.jobs[0].state") and the
 * keyword that failed, or the schema problem (an unknown keyword, a $ref
 * that does not resolve). */
int jsonschema_check(const json_t *schema, const json_t *root, const json_t *instance,
                     jsonschema_load_fn load, void *ctx, char *err, size_t errlen);

#endif
