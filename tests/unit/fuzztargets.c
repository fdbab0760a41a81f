/* fuzztargets.c - the fuzz target bodies (see fuzztargets.h). Test code only. */
#include "tests/unit/fuzztargets.h"

#include "common/jobspec.h"
#include "common/msg.h"
#include "common/safetensors.h"
#include "worker/data/dataset.h"
#include "worker/data/imgdecode.h"
#include "worker/data/transform.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Contract violations abort with a line that says which. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz contract broken at %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- job spec -------------------------------------------------------------------- */

int fuzz_jobspec(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (in == NULL)
        return 0;
    job_spec js;
    field_errors fe;
    json_t *canon = NULL;
    int rc = jobspec_parse(&js, &canon, in, &fe);
    if (rc == 0) {
        FUZZ_CHECK(canon != NULL, "success without a canonical spec");
        FUZZ_CHECK(js.params >= 0 && js.mflops >= 0, "negative params/mflops");
        /* The canonical spec parses again to itself. */
        job_spec js2;
        json_t *canon2 = NULL;
        field_errors fe2;
        int rc2 = jobspec_parse(&js2, &canon2, canon, &fe2);
        char why[512] = "";
        if (rc2 != 0)
            fe_format(&fe2, why, sizeof why);
        FUZZ_CHECK(rc2 == 0, "the canonical spec does not parse: %s", why);
        FUZZ_CHECK(json_equal(canon, canon2), "canonical spec is not a fixed point");
        json_decref(canon2);
        jobspec_free(&js2);
    } else {
        FUZZ_CHECK(rc == ERR_INVALID || rc == ERR_UNSUPPORTED, "unexpected code %d", rc);
        FUZZ_CHECK(canon == NULL, "a failure left a canonical spec");
        FUZZ_CHECK(fe.n > 0, "a rejected spec names no field");
        for (int i = 0; i < fe.n; i++)
            FUZZ_CHECK(fe.e[i].reason[0] != '\0', "field '%s' has no reason", fe.e[i].field);
    }
    json_decref(canon);
    jobspec_free(&js);
    json_decref(in);
    return 0;
}

/* ---- safetensors ------------------------------------------------------------------- */

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    st_file *f = NULL;
    errbuf eb = {""};
    int rc = st_open_memory(&f, data, size, &eb);
    if (rc != 0) {
        FUZZ_CHECK(f == NULL, "a failed open returned a file");
        FUZZ_CHECK(eb.msg[0] != '\0', "error %d without a message", rc);
        return 0;
    }
    /* Every tensor lies inside the file; reading an f32 one works. */
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        FUZZ_CHECK(t != NULL && t->name != NULL, "tensor %d missing", i);
        FUZZ_CHECK(st_find(f, t->name) == t, "st_find does not find '%s'", t->name);
        FUZZ_CHECK(t->nbytes <= size, "tensor '%s' is larger than the file", t->name);
        if (t->dtype == ST_F32 && t->numel <= (1u << 20)) {
            float *buf = malloc(t->numel * sizeof *buf + 1);
            errbuf reb = {""};
            int r = st_read_f32(f, t->name, buf, t->numel, &reb);
            FUZZ_CHECK(r == 0, "reading f32 tensor '%s' failed: %s", t->name, reb.msg);
            free(buf);
        }
    }
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *k = st_meta_key(f, i);
        FUZZ_CHECK(k != NULL && st_meta(f, k) != NULL, "metadata %d broken", i);
    }
    st_close(f);
    return 0;
}

/* ---- IDX and CIFAR (file readers) ---------------------------------------------------- */

static char tmp_dir[64];

static const char *tmp_path(const char *name, char *buf, size_t len)
{
    if (tmp_dir[0] == '\0') {
        snprintf(tmp_dir, sizeof tmp_dir, "%s/kiln-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (mkdtemp(tmp_dir) == NULL)
            abort();
    }
    snprintf(buf, len, "%s/%s", tmp_dir, name);
    return buf;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        abort(); /* the harness's own failure, not the reader's */
}

static void check_dataset(const dataset *d, int rc, const errbuf *eb)
{
    if (rc != 0) {
        FUZZ_CHECK(eb->msg[0] != '\0', "error %d without a message", rc);
        FUZZ_CHECK(d->n == 0 && d->images == NULL && d->labels == NULL,
                   "a failed load left data behind");
        return;
    }
    FUZZ_CHECK(d->n > 0 && d->H > 0 && d->W > 0 && d->C > 0, "empty dataset accepted");
    for (int i = 0; i < d->n; i++)
        FUZZ_CHECK(d->labels[i] < d->num_classes, "label %d of sample %d is out of range",
                   d->labels[i], i);
    /* touch the last pixel: the buffer holds n * H * W * C bytes */
    size_t last = (size_t)d->n * (size_t)d->H * (size_t)d->W * (size_t)d->C - 1;
    volatile uint8_t px = d->images[last];
    (void)px;
}

int fuzz_idx(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t split = le32(data);
    if (split > size - 4)
        split = size - 4;
    char ip[128], lp[128];
    tmp_path("images", ip, sizeof ip);
    tmp_path("labels", lp, sizeof lp);
    write_file(ip, data + 4, split);
    write_file(lp, data + 4 + split, size - 4 - split);
    dataset d;
    memset(&d, 0, sizeof d);
    errbuf eb = {""};
    int rc = dataset_load_idx(&d, ip, lp, 10, &eb);
    check_dataset(&d, rc, &eb);
    dataset_free(&d);
    return 0;
}

int fuzz_cifar(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char p[128];
    tmp_path("batch.bin", p, sizeof p);
    write_file(p, data + 1, size - 1);
    const char *paths[1] = {p};
    dataset d;
    memset(&d, 0, sizeof d);
    errbuf eb = {""};
    int rc = dataset_load_cifar(&d, paths, 1, data[0] & 1, &eb);
    check_dataset(&d, rc, &eb);
    if (rc == 0)
        FUZZ_CHECK(d.H == 32 && d.W == 32 && d.C == 3, "CIFAR shape %dx%dx%d", d.H, d.W, d.C);
    dataset_free(&d);
    return 0;
}

/* ---- pool-protocol messages ------------------------------------------------------------ */

int fuzz_msg(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    int nblobs = data[0] % (MSG_MAX_BLOBS + 2);
    size_t hlen = le32(data + 1);
    if (hlen > size - 5)
        hlen = size - 5;
    const uint8_t *hdr = data + 5, *rest = hdr + hlen;
    size_t rest_len = size - 5 - hlen;
    msg m;
    errbuf eb = {""};
    int rc = msg_decode(&m, hdr, hlen, &eb);
    if (rc != 0) {
        FUZZ_CHECK(rc == ERR_FORMAT || rc == ERR_INVALID, "unexpected code %d", rc);
        FUZZ_CHECK(eb.msg[0] != '\0', "error %d without a message", rc);
        msg_deinit(&m);
        return 0;
    }
    /* The frames that follow, as the broker attaches them. */
    int added = 0;
    for (int i = 0; i < nblobs; i++) {
        size_t lo = rest_len * (size_t)i / (size_t)nblobs;
        size_t hi = rest_len * (size_t)(i + 1) / (size_t)nblobs;
        if (msg_add_blob(&m, rest + lo, hi - lo) == 0)
            added++;
    }
    FUZZ_CHECK(added == (nblobs < MSG_MAX_BLOBS ? nblobs : MSG_MAX_BLOBS), "blob count");
    errbuf beb = {""};
    if (msg_check_blobs(&m, &beb) != 0)
        FUZZ_CHECK(beb.msg[0] != '\0', "blob check failed without a message");
    /* What decodes re-encodes to something that decodes to the same. */
    if (msg_is_job_message(m.type))
        FUZZ_CHECK(m.seq >= 1 && m.attempt >= 1 && msg_name_ok(m.job_id), "job fields");
    size_t len;
    char *text = msg_encode(&m, &len);
    msg m2;
    errbuf eb2 = {""};
    int rc2 = msg_decode(&m2, text, len, &eb2);
    FUZZ_CHECK(rc2 == 0, "a decoded message does not decode again: %s", eb2.msg);
    FUZZ_CHECK(m2.type == m.type && m2.seq == m.seq && m2.attempt == m.attempt &&
                   strcmp(m2.job_id, m.job_id) == 0,
               "the round trip changed the message");
    msg_deinit(&m2);
    free(text);
    msg_deinit(&m);
    return 0;
}

int fuzz_image(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int channels = (data[0] & 1) ? 3 : 1;
    image im = {0};
    errbuf eb = {""};
    int rc = imgdecode(&im, data + 1, size - 1, channels, "fuzz", &eb);
    if (rc != 0) {
        if (rc != ERR_FORMAT || strncmp(eb.msg, "fuzz: ", 6) != 0) {
            fprintf(stderr, "fuzz contract: image refused with %d and message \"%s\"\n", rc,
                    eb.msg);
            abort();
        }
    } else {
        if (im.h < 1 || im.w < 1 || im.h > IMGDECODE_MAX_SIDE || im.w > IMGDECODE_MAX_SIDE ||
            im.c != channels) {
            fprintf(stderr, "fuzz contract: decoded shape %dx%dx%d\n", im.h, im.w, im.c);
            abort();
        }
        /* The eval transform must take whatever the decoder gives. */
        transform_spec s = {.size = 8, .channels = channels, .resize = 9};
        for (int c = 0; c < 3; c++)
            s.mean[c] = 0.5f, s.std[c] = 0.25f;
        float out[8 * 8 * 3];
        transform_work w = {0};
        transform_apply_eval(out, &im, &s, &w);
        transform_work_free(&w);
    }
    image_free(&im);
    return 0;
}

fuzz_fn fuzz_target(const char *name)
{
    static const struct {
        const char *name;
        fuzz_fn fn;
    } t[] = {
        {"jobspec", fuzz_jobspec}, {"safetensors", fuzz_safetensors},
        {"idx", fuzz_idx},         {"cifar", fuzz_cifar},
        {"msg", fuzz_msg},         {"image", fuzz_image},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, name) == 0)
            return t[i].fn;
    return NULL;
}
