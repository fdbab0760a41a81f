/* yamljson.h - YAML documents to JSON (libyaml), for serving the OpenAPI file as JSON.
 *
 * Handles what an OpenAPI document uses: mappings, sequences and scalars.
 * Plain scalars become numbers, true/false or null when they read as such
 * (YAML 1.2 core schema); quoted scalars stay strings. Anchors and tags are
 * not supported (an alias is an error). Thread-safe (no shared state).
 */
#ifndef KILN_YAMLJSON_H
#define KILN_YAMLJSON_H

#include "common/err.h"

#include <jansson.h>
#include <stddef.h>

/* Converts the first document of text into *out (new reference). Returns 0,
 * or ERR_FORMAT with the line and problem in eb. */
int yamljson_parse(const char *text, size_t len, json_t **out, errbuf *eb);

#endif
