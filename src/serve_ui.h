/*
 * serve_ui.h - the dashboard's static files (ui/ and the uPlot files from the cache), embedded
 * in the binary at build time by scripts/embed.sh (the Makefile's rule for
 * BUILD/gen/ui_files.c), served at /ui/ by serve_http.c. See serve_ui.c.
 */
#ifndef DR_SERVE_UI_H
#define DR_SERVE_UI_H

#include <stddef.h>

typedef struct dr_ui_file {
    const char *name;           /* path under /ui/, e.g. "index.html", "vendor/uPlot.esm.js" */
    const char *type;           /* Content-Type */
    const unsigned char *data;  /* (len) the file's bytes */
    size_t len;
    const char *etag;           /* "\"CRC-LEN\"" (POSIX cksum of the bytes), quotes included */
} dr_ui_file;

/* The generated table (scripts/embed.sh). */
extern const dr_ui_file dr__ui_files[];
extern const size_t dr__ui_n_files;

/* The file for the path after /ui/ ("" and "/"-ending paths: their index.html); NULL when
 * there is none. */
const dr_ui_file *dr__ui_find(const char *path);

#endif /* DR_SERVE_UI_H */
