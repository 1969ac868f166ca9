/*
 * serve_ui.c - lookup of the dashboard's embedded files (serve_ui.h).
 *
 * DESIGN: the files of ui/ (and uPlot's, fetched once by scripts/deps.sh into the cache) are
 * turned into C arrays at build time (scripts/embed.sh, with xxd when present, else od), so
 * the dashboard is part of the binary: nothing is read from disk or fetched at run time, and
 * a binary serves the UI of its own version. Each file carries its content type (from the
 * extension) and an ETag computed at build; serve_http.c answers If-None-Match with 304.
 * Lookup is a linear scan: a dozen files. Rejected: serving ui/ from disk (a binary would
 * depend on where it was built, and a path in a request would reach the file system).
 */
#include "serve_ui.h"

#include <string.h>

const dr_ui_file *dr__ui_find(const char *path) {
    char name[256];
    size_t n = strlen(path);
    if (n >= sizeof name - 16) return NULL;
    memcpy(name, path, n + 1);
    if (!n || name[n - 1] == '/') memcpy(name + n, "index.html", 11);
    for (size_t k = 0; k < dr__ui_n_files; k++)
        if (!strcmp(dr__ui_files[k].name, name)) return &dr__ui_files[k];
    return NULL;
}
