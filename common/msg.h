/* msg.h - the server <-> pool messages (api/messages.md): encode and decode.
 *
 * A message travels as one ZeroMQ multipart message: a JSON header frame
 * ({"type": ..., fields}) followed by `blobs` binary frames (checkpoint or
 * artifact bytes). This module only turns a struct msg into the header text
 * and back, and checks every field the type requires; it knows nothing about
 * sockets (no zmq.h), so the server's broker and the pool's link share it.
 * Pure C + jansson; a msg is owned by one thread at a time.
 */
#ifndef KILN_MSG_H
#define KILN_MSG_H

#include "common/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MSG_HELLO = 0, /* pool -> server: pool_id, ranks, hosts, cores, version, current */
    MSG_WELCOME,   /* server -> pool: heartbeat_ms, liveness */
    MSG_HEARTBEAT, /* both ways */
    MSG_READY,     /* pool -> server: idle, asks for work; cached (init weights it holds) */
    MSG_ASSIGN,    /* server -> pool: job_id, attempt, spec, resume_step, init
                    * (+ checkpoint blob) (+ init weights blob, when init.attached) */
    MSG_STARTED,   /* pool -> server, job message: total_steps */
    MSG_METRIC,    /* pool -> server, job message: points [{step, epoch?, time?, name: value...}] */
    MSG_LOG,       /* pool -> server, job message: lines [{level, text, time}] */
    MSG_CHECKPOINT, /* pool -> server, job message: step (+ safetensors blob) */
    MSG_FINISHED,   /* pool -> server, job message: status, result, artifacts (+ one blob each) */
    MSG_FAILED,     /* pool -> server, job message: reason, message */
    MSG_CANCEL,     /* server -> pool: job_id, attempt */
    MSG_ACK,        /* server -> pool: job_id, attempt, seq (cumulative) */
    MSG__COUNT
} msg_type;

#define MSG_ID_MAX        64         /* job and pool ids, including the NUL */
#define MSG_MAX_BLOBS     16         /* binary frames after the header */
#define MSG_HEADER_MAX    (4u << 20) /* a header frame larger than this is refused */
#define MSG_ARTIFACT_NAME 128        /* artifact names, including the NUL */
#define MSG_MAX_CACHED    64         /* SHA-256s in a ready's "cached" */
#define MSG_MAX_RUNNING   1024       /* jobs in a hello's "current" or a ready's "running" */

typedef struct msg_blob {
    unsigned char *data; /* owned by the msg */
    size_t len;
} msg_blob;

typedef struct msg {
    msg_type type;
    char job_id[MSG_ID_MAX]; /* job messages, assign, cancel, ack; "" otherwise */
    int attempt;             /* 1, 2, ... ; 0 when the type has no job */
    uint64_t seq;            /* job messages: 1, 2, ... per (job, attempt); ack: cumulative */
    json_t *body;            /* the header object, including type/job_id/attempt/seq (owned) */
    int n_blobs;
    msg_blob blobs[MSG_MAX_BLOBS];
} msg;

/* msg_init makes an empty message of type t (body = {"type": t}). Pair with
 * msg_deinit. */
void msg_init(msg *m, msg_type t);

/* msg_deinit releases the body and blobs; m can be msg_init'ed again. */
void msg_deinit(msg *m);

/* msg_set_job sets job_id (copied, truncated to MSG_ID_MAX-1), attempt and seq,
 * in the struct and in the body. */
void msg_set_job(msg *m, const char *job_id, int attempt, uint64_t seq);

/* msg_set steals the reference `value` and stores it as body[key]. */
void msg_set(msg *m, const char *key, json_t *value);

/* msg_add_blob appends a copy of len bytes (len may be 0). Returns 0, or
 * ERR_TOO_LARGE past MSG_MAX_BLOBS frames. */
int msg_add_blob(msg *m, const void *data, size_t len);

/* msg_take_blob appends data without copying: the msg takes ownership of a
 * malloc'd buffer. Returns 0, or ERR_TOO_LARGE (the buffer is freed). */
int msg_take_blob(msg *m, void *data, size_t len);

/* msg_encode returns the header frame as compact JSON text (malloc'd, caller
 * frees) and its length; the body gets "blobs": n_blobs when n_blobs > 0. */
char *msg_encode(const msg *m, size_t *len);

/* msg_decode parses a header frame into m (which it msg_init's; msg_deinit it
 * in every case), checks the type and every field the type requires, and
 * fills job_id/attempt/seq. The blob frames are attached afterwards with
 * msg_add_blob/msg_take_blob, then msg_check_blobs checks their count.
 * Returns 0, ERR_FORMAT (not JSON, not an object, too large) or ERR_INVALID
 * (unknown type, missing or mistyped field), with the field named in eb. */
int msg_decode(msg *m, const void *header, size_t len, errbuf *eb);

/* msg_blobs_expected is the "blobs" count the decoded header announced. */
int msg_blobs_expected(const msg *m);

/* msg_check_blobs checks that the frames attached match the header (count,
 * and for checkpoint/finished the announced sizes). Returns 0 or ERR_INVALID. */
int msg_check_blobs(const msg *m, errbuf *eb);

/* msg_type_name gives the wire name ("hello", ...); msg_type_parse the
 * reverse, or -1. */
const char *msg_type_name(msg_type t);
int msg_type_parse(const char *name);

/* msg_is_job_message: started, metric, log, checkpoint, finished, failed:
 * the messages that carry (job_id, attempt, seq) and are acked. */
int msg_is_job_message(msg_type t);

/* msg_name_ok says whether s is a safe file name for an artifact:
 * 1..127 characters of [A-Za-z0-9._-], not starting with '.'. */
int msg_name_ok(const char *s);

/* Shorthands for body fields; defaults when absent or mistyped. */
const char *msg_str(const msg *m, const char *key, const char *dflt);
long long msg_int(const msg *m, const char *key, long long dflt);
json_t *msg_get(const msg *m, const char *key); /* borrowed, may be NULL */

#endif
