/*
 * Redacts raw BGR frames from stdin to stdout through bystander's C ABI, and writes each frame's
 * boxes to stderr as one JSON line. A host loop as a C or C++ NVR would write it.
 *
 *   scripts/build-c
 *   cc -O2 examples/c/redact_frames.c $(PKG_CONFIG_PATH=target/c pkg-config --cflags --libs bystander) \
 *      -Wl,-rpath,target/c -o target/c/redact_frames
 *   ffmpeg -i clip.mp4 -f rawvideo -pix_fmt bgr24 - \
 *      | target/c/redact_frames 1920 1080 > redacted.bgr 2> boxes.jsonl
 *
 * Usage: redact_frames WIDTH HEIGHT [THREADS [BACKFILL [LOW_MEMORY]]]
 * Exit status: 0 when every frame came back, 1 on any error (its message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bystander.h"

static int failed(const char *what, BystanderStatus s) {
    fprintf(stderr, "redact_frames: %s: status %d: %s\n", what, (int)s, bystander_last_error());
    return 1;
}

/* Writes every ready frame to stdout and its boxes to stderr. */
static int drain(uint64_t r, uint8_t *out, size_t len, BystanderBox *boxes, size_t cap) {
    for (;;) {
        BystanderFrameInfo info;
        int has = 0;
        BystanderStatus s = bystander_next(r, out, len, &info, &has);
        if (s != BYSTANDER_STATUS_OK) return failed("next", s);
        if (!has) return 0;
        if (fwrite(out, 1, info.len, stdout) != info.len) {
            fprintf(stderr, "redact_frames: cannot write a frame\n");
            return 1;
        }
        size_t n = 0;
        s = bystander_boxes(r, boxes, cap, &n);
        if (s != BYSTANDER_STATUS_OK) return failed("boxes", s);
        fprintf(stderr, "{\"pts\": %lld, \"fault\": %u, \"boxes\": [", (long long)info.pts, info.fault);
        for (size_t i = 0; i < n; i++) {
            fprintf(stderr, "%s[%u, %.9g, %.9g, %.9g, %.9g, %.9g]", i ? ", " : "", boxes[i].class_id,
                    boxes[i].score, boxes[i].x1, boxes[i].y1, boxes[i].x2, boxes[i].y2);
        }
        fprintf(stderr, "]}\n");
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: redact_frames WIDTH HEIGHT [THREADS [BACKFILL [LOW_MEMORY]]]\n");
        return 1;
    }
    uint32_t w = (uint32_t)strtoul(argv[1], NULL, 10), h = (uint32_t)strtoul(argv[2], NULL, 10);

    BystanderConfig cfg;
    BystanderStatus s = bystander_config_default(&cfg);
    if (argc > 3) cfg.threads = (uint32_t)strtoul(argv[3], NULL, 10);
    if (argc > 4) cfg.backfill = (uint32_t)strtoul(argv[4], NULL, 10);
    /* Fewer sessions, the same pixels, on a box with little memory for this process. */
    cfg.low_memory = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : bystander_memory_is_short();
    uint64_t r = 0;
    if ((s = bystander_create(&cfg, &r)) != BYSTANDER_STATUS_OK) return failed("create", s);

    BystanderLayout layout;
    if ((s = bystander_layout_packed(BYSTANDER_PIXEL_FORMAT_BGR24, w, h, &layout)) != BYSTANDER_STATUS_OK)
        return failed("layout", s);
    size_t len = bystander_layout_len(&layout);
    uint8_t *in = malloc(len), *out = malloc(len);
    size_t cap = 256;
    BystanderBox *boxes = calloc(cap, sizeof *boxes);
    int rc = (in && out && boxes) ? 0 : 1;

    for (int64_t pts = 0; rc == 0; pts++) {
        size_t got = fread(in, 1, len, stdin);
        if (got != len) break; /* end of input (a partial frame is dropped) */
        if ((s = bystander_push(r, in, len, &layout, pts)) != BYSTANDER_STATUS_OK) {
            rc = failed("push", s);
            break;
        }
        rc = drain(r, out, len, boxes, cap);
    }
    if (rc == 0) {
        if ((s = bystander_flush(r)) != BYSTANDER_STATUS_OK) rc = failed("flush", s);
        else rc = drain(r, out, len, boxes, cap);
    }
    /* Misuse is an error, not a crash: the handle is unknown once freed. */
    bystander_free(r);
    if (rc == 0 && bystander_flush(r) != BYSTANDER_STATUS_BAD_HANDLE) {
        fprintf(stderr, "redact_frames: a freed handle was accepted\n");
        rc = 1;
    }
    free(in);
    free(out);
    free(boxes);
    return rc;
}
